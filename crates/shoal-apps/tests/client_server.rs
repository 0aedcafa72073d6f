//! client_server_mp with real processes: distribution, conservation of counts, crashes,
//! restarts, ARP copies, pcap in and out, graceful stop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal::ethdev::pcap::{PcapReader, PcapWriter};
use shoal::net::{build_arp_request, build_udp_ipv4, EthernetAddress, FiveTuple};
use shoal_testkit::{eventually, Group, Proc, TempDir};

const T: Duration = Duration::from_secs(30);
const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");

/// Generator ports at a modest rate, so that tests running side by side on two CPUs stay fair.
const GEN: [&str; 4] = [
    "--vdev",
    "net_gen0,flows=64,rate=200000",
    "--vdev",
    "net_gen1,flows=64,rate=200000",
];

fn server(g: &Group, extra_eal: &[&str], app: &[&str]) -> Proc {
    let mut args: Vec<&str> = vec!["-l", "0", "--no-huge", "-m", "64"];
    args.extend_from_slice(extra_eal);
    args.push("--");
    args.extend_from_slice(&["--stats-interval", "200", "--mbufs", "8191"]);
    args.extend_from_slice(app);
    let mut s = g.spawn(SERVER, &args);
    s.wait_for("server ready", T);
    s
}

fn client(g: &Group, id: usize, extra: &[&str]) -> Proc {
    let lcore = (id + 1).to_string();
    let ids = id.to_string();
    let mut args = vec![
        "-l",
        &lcore,
        "--proc-type=secondary",
        "--",
        "-n",
        &ids,
        "--top",
        "100000",
    ];
    args.extend_from_slice(extra);
    g.spawn(CLIENT, &args)
}

/// Numbers after each of `keys` in `line` ("rx 12 tx 10" -> [12, 10]).
fn nums(line: &str, keys: &[&str]) -> Vec<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    keys.iter()
        .map(|k| {
            let i = words
                .iter()
                .position(|w| w == k)
                .unwrap_or_else(|| panic!("no {k:?} in {line:?}"));
            words[i + 1]
                .trim_end_matches([';', ','])
                .parse()
                .unwrap_or_else(|_| panic!("bad number after {k:?} in {line:?}"))
        })
        .collect()
}

/// The server's final conservation line: (received, copies, delivered, dropped, taken back, pool in use).
fn final_line(out: &str) -> (u64, u64, u64, u64, u64, u64) {
    let l = out
        .lines()
        .find(|l| l.starts_with("Final:"))
        .unwrap_or_else(|| panic!("no Final line:\n{out}"));
    let v = nums(
        l,
        &[
            "received",
            "copies",
            "delivered",
            "dropped",
            "clients",
            "use",
        ],
    );
    (v[0], v[1], v[2], v[3], v[4], v[5])
}

/// Client `c`'s last statistics line of the server: (enqueued, dropped, rx).
fn server_client_line(out: &str, c: usize) -> (u64, u64, u64) {
    let l = out
        .lines()
        .rfind(|l| l.starts_with(&format!("Client {c:>2}:")))
        .expect("client line");
    let v = nums(l, &["enqueued", "dropped", "rx"]);
    (v[0], v[1], v[2])
}

/// A client's flows from its exit listing.
fn flows(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter(|l| l.starts_with("  ") && l.contains(" -> ") && l.contains("packets"))
        .map(|l| l.split("  packets").next().unwrap().trim().to_string())
        .collect()
}

fn stop_all(server: &mut Proc, clients: &mut [Proc]) -> (String, Vec<String>) {
    let (code, sout) = server.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "server:\n{sout}");
    let outs = clients
        .iter_mut()
        .map(|c| {
            let code = c.wait_exit(T);
            let out = c.output();
            assert_eq!(code, Some(0), "client:\n{out}");
            out
        })
        .collect();
    (sout, outs)
}

#[test]
fn round_robin_reaches_every_client_and_counts_are_conserved() {
    let g = Group::new("cs-rr");
    let mut s = server(&g, &GEN, &["-n", "2"]);
    let mut cs = vec![client(&g, 0, &[]), client(&g, 1, &[])];
    s.wait_for("Client process 1 connected", T);
    s.wait_for_nth("Client  1: enqueued", 3, T);
    let (sout, couts) = stop_all(&mut s, &mut cs);
    let (rx, copies, delivered, dropped, flushed, in_use) = final_line(&sout);
    assert!(rx > 0);
    assert_eq!(rx + copies, delivered + dropped, "{sout}");
    assert_eq!(
        flushed, 0,
        "clients drained their rings before leaving:\n{sout}"
    );
    assert_eq!(in_use, 0, "{sout}");
    let mut client_rx = 0;
    for (c, out) in couts.iter().enumerate() {
        let l = out
            .lines()
            .find(|l| l.starts_with(&format!("Client {c}: rx")))
            .expect("client exit line");
        let v = nums(l, &["rx", "tx", "tx_drop"]);
        assert!(v[0] > 0, "client {c} got nothing:\n{out}");
        assert_eq!(v[0], v[1] + v[2], "client {c}: rx = tx + tx_drop\n{out}");
        let (enq, _, srx) = server_client_line(&sout, c);
        assert_eq!(enq, v[0], "server enqueued what client {c} received");
        assert_eq!(srx, v[0]);
        client_rx += v[0];
    }
    assert_eq!(client_rx, delivered);
}

#[test]
fn flow_distribution_never_splits_a_flow_between_live_clients() {
    let g = Group::new("cs-flow");
    let mut s = server(&g, &GEN, &["-n", "2", "--dist", "flow", "--wait-clients"]);
    let mut cs = vec![client(&g, 0, &[]), client(&g, 1, &[])];
    s.wait_for("all 2 clients connected; receiving", T);
    s.wait_for_nth("Client  1: enqueued", 3, T);
    let (_, couts) = stop_all(&mut s, &mut cs);
    let (f0, f1) = (flows(&couts[0]), flows(&couts[1]));
    assert!(!f0.is_empty() && !f1.is_empty(), "{f0:?} {f1:?}");
    let both: Vec<_> = f0.intersection(&f1).collect();
    assert!(both.is_empty(), "flows seen by both clients: {both:?}");
}

#[test]
fn a_slow_client_drops_at_the_server_and_counts_still_add_up() {
    let g = Group::new("cs-slow");
    let mut s = server(&g, &GEN, &["-n", "2", "--ring-size", "256"]);
    let mut cs = vec![client(&g, 0, &[]), client(&g, 1, &["--delay-us", "2000"])];
    s.wait_for("Client process 1 connected", T);
    s.wait_for("worker 1 ring usage", T);
    s.wait_for_nth("Client  1: enqueued", 5, T);
    let (sout, _) = stop_all(&mut s, &mut cs);
    let (rx, copies, delivered, dropped, _, in_use) = final_line(&sout);
    assert_eq!(rx + copies, delivered + dropped, "{sout}");
    let (_, drop1, _) = server_client_line(&sout, 1);
    assert!(drop1 > 0, "the slow client's ring overflowed:\n{sout}");
    assert_eq!(in_use, 0, "{sout}");
}

/// Liveness comes from the process table, not from a heartbeat counted in bursts: a client that
/// takes 200 ms per burst stays in the rotation, keeps its ring, and leaves cleanly.
#[test]
fn a_very_slow_live_client_is_never_declared_dead() {
    let g = Group::new("cs-vslow");
    let mut s = server(
        &g,
        &GEN,
        &[
            "-n",
            "2",
            "--ring-size",
            "256",
            "--client-timeout",
            "300",
            "--drain-timeout",
            "20000",
        ],
    );
    let mut cs = vec![client(&g, 0, &[]), client(&g, 1, &["--delay-us", "200000"])];
    s.wait_for("Client process 1 connected", T);
    s.wait_for("worker 1 ring usage", T);
    // Two seconds of statistics: ten bursts of the slow client, far beyond 64 bursts' worth of
    // heartbeats at this speed.
    let before = s
        .output()
        .lines()
        .filter(|l| l.starts_with("Client  1:"))
        .count();
    s.wait_for_nth("Client  1: enqueued", before + 10, T);
    let (sout, couts) = stop_all(&mut s, &mut cs);
    assert!(
        !sout.contains("Client process 1 (pid")
            && !sout.contains("packets taken back from its ring"),
        "the slow client was declared dead or robbed of its ring:\n{sout}"
    );
    let (rx, copies, delivered, dropped, flushed, in_use) = final_line(&sout);
    assert_eq!(rx + copies, delivered + dropped, "{sout}");
    assert_eq!(flushed, 0, "{sout}");
    assert_eq!(in_use, 0, "{sout}");
    assert!(couts[1].contains("Client 1: rx"), "{}", couts[1]);
}

#[test]
fn a_killed_client_loses_nothing_its_flows_move_and_it_comes_back_by_id() {
    let g = Group::new("cs-kill");
    let mut s = server(
        &g,
        &GEN,
        &[
            "-n",
            "3",
            "--dist",
            "flow",
            "--wait-clients",
            "--client-timeout",
            "300",
        ],
    );
    let c0 = client(&g, 0, &[]);
    let mut c1 = client(&g, 1, &[]);
    let c2 = client(&g, 2, &[]);
    s.wait_for("all 3 clients connected", T);
    s.wait_for_nth("Client  1: enqueued", 3, T);
    c1.kill9();
    s.wait_for("Client process 1 (pid", T);
    s.wait_for_nth("Client  1: enqueued", 8, T);
    // The others keep forwarding, and flows of live clients never moved between them.
    let before = s
        .output()
        .lines()
        .filter(|l| l.starts_with("Client  0:"))
        .count();
    s.wait_for_nth("Client  0:", before + 2, T);
    let c1b = client(&g, 1, &[]);
    s.wait_for_nth("Client process 1 connected", 2, T);
    s.wait_for_nth("Client  1: enqueued", 12, T);
    let mut clients = vec![c0, c1b, c2];
    let (sout, couts) = stop_all(&mut s, &mut clients);
    let (rx, copies, delivered, dropped, flushed, in_use) = final_line(&sout);
    assert_eq!(rx + copies, delivered + dropped, "{sout}");
    assert_eq!(
        in_use, 0,
        "every buffer is back in the pool, including the killed client's:\n{sout}"
    );
    println!("taken back from the killed client's ring: {flushed}");
    let (f0, f2) = (flows(&couts[0]), flows(&couts[2]));
    assert!(
        f0.intersection(&f2).next().is_none(),
        "a flow moved between live clients"
    );
    let l = couts[1]
        .lines()
        .find(|l| l.starts_with("Client 1: rx"))
        .unwrap();
    assert!(
        nums(l, &["rx"])[0] > 0,
        "the restarted client received:\n{}",
        couts[1]
    );
}

fn write_capture(path: &std::path::Path, udp: usize, arp: usize) -> Vec<Vec<u8>> {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let (a, b) = (
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        EthernetAddress([2, 0, 0, 0, 0, 2]),
    );
    let mut frames = Vec::new();
    for i in 0..udp + arp {
        let mut buf = vec![0u8; 128];
        let n = if i % ((udp + arp) / arp.max(1)) == 0
            && frames
                .iter()
                .filter(|f: &&Vec<u8>| f[12..14] == [8, 6])
                .count()
                < arp
        {
            build_arp_request(
                &mut buf,
                a,
                [10, 0, 0, 1].into(),
                [10, 0, 0, (i % 200) as u8 + 2].into(),
            )
            .unwrap()
        } else {
            let t = FiveTuple {
                src: std::net::Ipv4Addr::new(10, 0, 0, (i % 250) as u8).into(),
                dst: std::net::Ipv4Addr::new(192, 168, 0, 1).into(),
                src_port: 1000 + i as u16,
                dst_port: 80,
                proto: 17,
            };
            build_udp_ipv4(&mut buf, a, b, &t, 18).unwrap()
        };
        buf.truncate(n);
        w.write(i as u64 * 1000, &buf).unwrap();
        frames.push(buf);
    }
    w.into_inner().unwrap();
    frames
}

#[test]
fn pcap_in_pcap_out_packet_for_packet_with_arp_copied_to_every_client() {
    let g = Group::new("cs-pcap");
    let dir = TempDir::new("cs-pcap");
    let (inp, outp) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let frames = write_capture(&inp, 200, 10);
    let arps = frames.iter().filter(|f| f[12..14] == [8, 6]).count();
    assert_eq!(arps, 10);
    let rx = format!("net_pcap0,rx_pcap={}", inp.display());
    let tx = format!("net_pcap1,tx_pcap={}", outp.display());
    let mut s = server(
        &g,
        &["--vdev", &rx, "--vdev", &tx],
        &["-n", "2", "--wait-clients", "--stats-interval", "100"],
    );
    let mut cs = vec![client(&g, 0, &[]), client(&g, 1, &[])];
    s.wait_for("all 2 clients connected", T);
    // Everything read (200 + 10) and every copy (10 more) forwarded.
    let want = frames.len() as u64 + arps as u64;
    eventually("every frame to be forwarded", T, || {
        s.output()
            .lines()
            .filter(|l| l.starts_with("Total:"))
            .any(|l| nums(l, &["forwarded"])[0] >= want)
    });
    let (_, couts) = stop_all(&mut s, &mut cs);
    for (c, out) in couts.iter().enumerate() {
        let l = out
            .lines()
            .find(|l| l.starts_with(&format!("Client {c}: rx")))
            .unwrap();
        assert_eq!(
            nums(l, &["arp/nd"])[0],
            arps as u64,
            "client {c} got every ARP frame:\n{out}"
        );
    }
    let mut got: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut r = PcapReader::new(std::fs::File::open(&outp).unwrap()).unwrap();
    while let Some(rec) = r.next_record().unwrap() {
        *got.entry(rec.data).or_default() += 1;
    }
    let mut expected: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for f in &frames {
        *expected.entry(f.clone()).or_default() += if f[12..14] == [8, 6] { 2 } else { 1 };
    }
    assert_eq!(
        got, expected,
        "out.pcap holds every frame once, and every ARP frame once per client"
    );
}

#[test]
fn a_client_waits_for_the_server_when_asked_and_says_so_otherwise() {
    let g = Group::new("cs-wait");
    let mut alone = client(&g, 0, &[]);
    assert_eq!(alone.wait_exit(T), Some(1));
    assert!(
        alone.output().contains("the server is not running"),
        "{}",
        alone.output()
    );
    let mut early = client(&g, 0, &["--wait"]);
    early.wait_for("waiting for the server", T);
    let mut s = server(&g, &GEN, &["-n", "1"]);
    s.wait_for("Client process 0 connected", T);
    s.wait_for_nth("Client  0: enqueued", 2, T);
    let (_, outs) = stop_all(&mut s, std::slice::from_mut(&mut early));
    assert!(outs[0].contains("Client 0: rx"), "{}", outs[0]);
}

#[test]
fn bad_server_and_client_options_are_usage_errors() {
    let g = Group::new("cs-bad");
    let mut p = g.spawn(SERVER, &["-l", "0", "--no-huge", "--", "-n", "0"]);
    assert_eq!(p.wait_exit(T), Some(2));
    assert!(p.output().contains("-n must be 1 to 16"), "{}", p.output());
    let mut p = g.spawn(SERVER, &["-l", "0", "--no-huge", "--", "--dist", "random"]);
    assert_eq!(p.wait_exit(T), Some(2));
    let mut p = g.spawn(CLIENT, &["-l", "1", "--proc-type=secondary", "--"]);
    assert_eq!(p.wait_exit(T), Some(2));
    assert!(p.output().contains("-n CLIENT_ID"), "{}", p.output());
}

#[test]
fn ports_with_high_ids_keep_counters_of_their_own() {
    // Ports 16 and 17 (the 17th and 18th vdevs) carry the traffic; a client runs beside them.
    let g = Group::new("cs-hiport");
    let mut vdevs: Vec<String> = (0..16).map(|i| format!("net_null{i}")).collect();
    vdevs.push("net_gen16,flows=16,rate=100000".into());
    vdevs.push("net_gen17,flows=16,rate=100000".into());
    let eal: Vec<&str> = vdevs.iter().flat_map(|v| ["--vdev", v.as_str()]).collect();
    let mut s = server(&g, &eal, &["-p", "0x30000", "-n", "1"]);
    let mut c = client(&g, 0, &[]);
    s.wait_for("Client process 0 connected", T);
    s.wait_for_nth("Client  0: enqueued", 3, T);
    let (sout, _) = stop_all(&mut s, std::slice::from_mut(&mut c));
    let (rx, copies, delivered, dropped, _, _) = final_line(&sout);
    assert!(rx > 0 && delivered > 0, "{sout}");
    assert_eq!(rx + copies, delivered + dropped, "{sout}");
}

#[test]
fn no_telemetry_leaves_no_telemetry_socket() {
    for (flag, want) in [(None, true), (Some("--no-telemetry"), false)] {
        let g = Group::new("cs-notel");
        let dir = shoal_testkit::runtime_dir(g.prefix());
        let mut eal = GEN.to_vec();
        eal.extend(flag);
        let mut s = server(&g, &eal, &["-n", "1"]);
        assert!(dir.join("mp_socket").exists(), "{}", dir.display());
        assert_eq!(dir.join("telemetry").exists(), want, "{flag:?}");
        let (code, out) = s.stop(libc::SIGINT, T);
        assert_eq!(code, Some(0), "{out}");
    }
}
