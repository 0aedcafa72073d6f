//! mp_server killed under load and replaced by `mp_server --adopt`: the clients (started with
//! `--primary-grace`) keep their processes, forwarding resumes, and no buffer is lost; with
//! af_packet ports on veth pairs, the adopter takes the sockets back from the clients and
//! every frame sent into the veth, before, during and after the pause, comes out forwarded.

use std::time::Duration;

use shoal::dispatch::{self, PipelineStats};
use shoal::eal::Eal;
use shoal_apps::cs;
use shoal_testkit::netns::NetNs;
use shoal_testkit::{eventually, require_tool, Group, Proc, TempDir};

const T: Duration = Duration::from_secs(30);
const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");

fn server(g: &Group, extra_eal: &[&str]) -> Proc {
    let mut args: Vec<&str> = vec![
        "-l",
        "0",
        "--no-huge",
        "-m",
        "64",
        "--vdev",
        "net_gen0,flows=64,rate=200000",
        "--vdev",
        "net_gen1,flows=64,rate=200000",
    ];
    args.extend_from_slice(extra_eal);
    args.extend_from_slice(&["--", "-n", "2", "--stats-interval", "0", "--mbufs", "8191"]);
    g.spawn(SERVER, &args)
}

fn client(g: &Group, id: usize) -> Proc {
    let (lcore, ids) = ((id + 1).to_string(), id.to_string());
    let mut c = g.spawn(
        CLIENT,
        &[
            "-l",
            &lcore,
            "--proc-type=secondary",
            "--primary-grace",
            "60000",
            "--",
            "-n",
            &ids,
            "--top",
            "0",
        ],
    );
    c.wait_for(&format!("Client process {id} handling packets"), T);
    c
}

/// The server's pipeline, as `shoal info` reads it.
fn pipeline(eal: &Eal) -> PipelineStats {
    dispatch::list(eal)
        .into_iter()
        .find(|p| p.name == cs::PIPELINE)
        .expect("the server's pipeline")
}

fn forwarded(eal: &Eal) -> u64 {
    pipeline(eal).workers.iter().map(|w| w.tx).sum()
}

#[test]
fn a_killed_server_is_adopted_and_its_clients_keep_running_and_lose_nothing() {
    let g = Group::new("cs-adopt");
    let mut s1 = server(&g, &[]);
    s1.wait_for("server ready", T);
    let mut clients = [client(&g, 0), client(&g, 1)];
    let pids: Vec<u32> = clients.iter().map(Proc::pid).collect();
    let eal = Eal::inspect(g.prefix()).unwrap();
    eventually("forwarding", T, || forwarded(&eal) > 1000);
    s1.kill9();
    for c in clients.iter_mut() {
        c.wait_for("carrying on for up to 60000 ms", T);
    }

    // Without --adopt: refused, naming the live clients.
    let mut plain = server(&g, &[]);
    assert_eq!(plain.wait_exit(T), Some(1), "{}", plain.output());
    let out = plain.output();
    assert!(
        out.contains(&format!("pids {}, {}", pids[0], pids[1]))
            || out.contains(&format!("pids {}, {}", pids[1], pids[0])),
        "{out}"
    );
    assert!(out.contains("--adopt"), "{out}");

    let before = forwarded(&eal);
    let mut s2 = server(&g, &["--adopt"]);
    s2.wait_for(
        "server ready: 2 ports, 2 clients, dist RoundRobin (adopted the group)",
        T,
    );
    let line = s2.wait_for("adopted: forwarding resumed after a pause of", T);
    assert!(line.contains("the ports dropped"), "{line}");
    for c in clients.iter_mut() {
        c.wait_for(&format!("a new primary process (pid {})", s2.pid()), T);
    }
    eventually("forwarding after the adoption", T, || {
        forwarded(&eal) > before + 1000
    });
    for (c, pid) in clients.iter_mut().zip(&pids) {
        assert!(c.try_exit().is_none(), "{}", c.output());
        assert_eq!(c.pid(), *pid);
    }
    let p = pipeline(&eal);
    assert_eq!(p.workers[0].starts, 1);
    assert_eq!(p.workers[1].starts, 1);
    assert_eq!(p.adoptions, 1, "{p:?}");
    assert!(p.adopted_first_burst_ns > 0, "{p:?}");

    // A graceful stop: the clients drain and leave, every buffer is back in the pool, the
    // killed server's included.
    let (code, out) = s2.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pool in use 0"), "{out}");
    for c in clients.iter_mut() {
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
    }
}

#[test]
fn a_client_whose_grace_passes_without_a_new_server_exits_3() {
    let g = Group::new("cs-grace");
    let mut s = server(&g, &[]);
    s.wait_for("server ready", T);
    let mut c = g.spawn(
        CLIENT,
        &[
            "-l",
            "1",
            "--proc-type=secondary",
            "--primary-grace",
            "300",
            "--",
            "-n",
            "0",
        ],
    );
    c.wait_for("Client process 0 handling packets", T);
    s.kill9();
    assert_eq!(c.wait_exit(T), Some(3), "{}", c.output());
    let out = c.output();
    assert!(out.contains("carrying on for up to 300 ms"), "{out}");
    assert!(
        out.contains("within 300 ms of its primary's death"),
        "{out}"
    );
}

/// A capture of `n` distinct 60-byte frames of a local experimental EtherType (nothing in the
/// namespace's kernel answers them).
fn frames(path: &std::path::Path, n: u32, tag: u8) {
    use shoal::ethdev::pcap::{file_header, push_record};
    let mut out = file_header(2048).to_vec();
    for i in 0..n {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f[14] = tag;
        f[15..19].copy_from_slice(&i.to_be_bytes());
        push_record(&mut out, u64::from(i) * 1000, &f, 2048);
    }
    std::fs::write(path, out).unwrap();
}

/// A process of the group run inside `ns` (`ip netns exec` execs it: the pid is its own).
fn in_ns(g: &Group, ns: &NetNs, bin: &str, args: &[&str]) -> Proc {
    let mut full = vec!["netns", "exec", &ns.name, bin];
    full.extend_from_slice(args);
    g.spawn("ip", &full)
}

#[test]
fn an_adopting_server_takes_af_packet_ports_back_and_forwards_every_frame() {
    let Some(ns) = NetNs::new("cs-adopt-afp") else {
        return;
    };
    if !require_tool("tcpreplay") {
        return;
    }
    for (a, b) in [("a0", "b0"), ("a1", "b1")] {
        ns.veth(a, b).unwrap();
    }
    let dir = TempDir::new("cs-adopt-afp");
    let (before, during, after) = (dir.join("before"), dir.join("during"), dir.join("after"));
    frames(&before, 300, 1);
    frames(&during, 200, 2);
    frames(&after, 300, 3);
    let g = Group::new("cs-adopt-afp");
    let server = |extra: &[&str]| {
        let mut args = vec![
            "-l",
            "0",
            "--no-huge",
            "-m",
            "64",
            "--vdev",
            "net_af_packet0,iface=a0",
            "--vdev",
            "net_af_packet1,iface=a1",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "-n", "2", "--stats-interval", "0", "--mbufs", "8191"]);
        in_ns(&g, &ns, SERVER, &args)
    };
    let client = |id: usize| {
        let (lcore, ids) = ((id + 1).to_string(), id.to_string());
        let args = [
            "-l",
            &lcore,
            "--proc-type=secondary",
            "--primary-grace",
            "60000",
            "--",
            "-n",
            &ids,
            "--top",
            "0",
        ];
        let mut c = in_ns(&g, &ns, CLIENT, &args);
        c.wait_for(&format!("Client process {id} handling packets"), T);
        c
    };
    let mut s1 = server(&[]);
    s1.wait_for("server ready", T);
    let mut clients = [client(0), client(1)];
    let pids: Vec<u32> = clients.iter().map(Proc::pid).collect();

    // Frames into b0 are received on a0, dealt to the clients and sent out of a1 to b1.
    ns.tcpreplay("b0", &before).unwrap();
    eventually("the first frames forwarded", T, || {
        ns.rx_packets("b1") >= 300
    });
    s1.kill9();
    for c in clients.iter_mut() {
        c.wait_for("carrying on for up to 60000 ms", T);
    }
    // Sent with no server: the kernel queues them in the sockets the clients still hold.
    ns.tcpreplay("b0", &during).unwrap();

    let mut s2 = server(&["--adopt", "--log-level", "info"]);
    s2.wait_for("sockets back from a secondary", T);
    s2.wait_for(
        "server ready: 2 ports, 2 clients, dist RoundRobin (adopted the group)",
        T,
    );
    for c in clients.iter_mut() {
        c.wait_for(&format!("a new primary process (pid {})", s2.pid()), T);
    }
    // The frames queued during the pause end it.
    let line = s2.wait_for("adopted: forwarding resumed after a pause of", T);
    println!("{line}");
    ns.tcpreplay("b0", &after).unwrap();
    eventually("every frame forwarded", T, || ns.rx_packets("b1") >= 800);
    for (c, pid) in clients.iter_mut().zip(&pids) {
        assert!(c.try_exit().is_none(), "{}", c.output());
        assert_eq!(c.pid(), *pid);
    }

    let (code, out) = s2.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pool in use 0"), "{out}");
    for c in clients.iter_mut() {
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
    }
    // Each frame once: none lost, none doubled by a second socket on the interface.
    assert_eq!(ns.rx_packets("b1"), 800);
}
