//! symmetric_mp with real processes: argument errors as DPDK's, and two peers splitting the
//! flows of an af_packet port (PACKET_FANOUT hash) on a veth pair in a namespace of its own.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use shoal::ethdev::pcap::PcapReader;
use shoal_testkit::netns::NetNs;
use shoal_testkit::require_tool;
use shoal_testkit::{eventually, Group, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_symmetric_mp");
const T: Duration = Duration::from_secs(20);

/// Runs to exit: (exit status, stderr, all output).
fn run_err(args: &[&str]) -> (Option<i32>, String, String) {
    let g = Group::new("smp-arg");
    let mut p = g.spawn(BIN, args);
    let code = p.wait_exit(T);
    (code, p.stderr_lines().join("\n"), p.output())
}

#[test]
fn argument_errors_are_dpdks() {
    let gen = [
        "--no-huge",
        "-m",
        "128",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
    ];
    for (app, want) in [
        (
            vec!["-p", "0x3", "--num-procs", "2"],
            "Error: Invalid or missing proc-id parameter",
        ),
        (
            vec!["-p", "0x3", "--proc-id", "0"],
            "Error: Invalid or missing num-procs parameter",
        ),
        (
            vec!["--num-procs", "2", "--proc-id", "0"],
            "Error: Invalid or missing port mask",
        ),
        (
            vec!["-p", "0x3", "--num-procs", "2", "--proc-id", "0", "--bogus"],
            "Error: Cannot parse all command-line arguments",
        ),
        (
            vec![
                "-p",
                "0x3",
                "--num-procs",
                "2",
                "--proc-id",
                "0",
                "--nb-mbufs",
                "0",
            ],
            "Error: Invalid --nb-mbufs \"0\"",
        ),
        (
            vec!["-p", "0x1", "--num-procs", "1", "--proc-id", "0"],
            "Application must use an even number of ports",
        ),
    ] {
        let mut args: Vec<&str> = gen.to_vec();
        args.push("--");
        args.extend(app.iter().copied());
        let (code, err, out) = run_err(&args);
        if want.starts_with("Error:") {
            // DPDK's messages, on stderr, with the usage; exit status 2 as every sample here.
            assert_eq!(code, Some(2), "{args:?}: {out}");
            assert!(
                err.lines().next().unwrap_or("").contains(want),
                "{args:?}: {err}"
            );
            assert!(err.contains("--num-procs <n> --proc-id <id>"), "{err}");
        } else {
            assert_eq!(code, Some(1), "{args:?}: {out}");
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
    let (code, _, out) = run_err(&[
        "--no-huge",
        "-m",
        "128",
        "--",
        "-p",
        "0x3",
        "--num-procs",
        "1",
        "--proc-id",
        "0",
    ]);
    assert_eq!(code, Some(1));
    assert!(out.contains("No Ethernet ports - bye"), "{out}");
}

#[test]
fn one_process_forwards_and_prints_its_counters_on_sigint() {
    let dir = TempDir::new("smp-one");
    let out = forward_into_capture("net_gen0,flows=8", &dir.join("out.pcap"), 1);
    assert!(out.contains("Exiting on signal 2"), "{out}");
    let rx0 = counter(&out, 0, "RX");
    assert!(rx0 > 0, "{out}");
    assert_eq!(counter(&out, 1, "TX"), rx0, "{out}");
}

#[test]
fn nb_mbufs_sizes_the_pool_and_every_mbuf_comes_back() {
    let dir = TempDir::new("smp-nb");
    let cap = dir.join("out.pcap");
    let tx = format!("net_pcap1,tx_pcap={}", cap.display());
    let g = Group::new("smp-nb");
    let mut p = g.spawn(
        BIN,
        &[
            "--no-huge",
            "-m",
            "64",
            "-l",
            "0",
            "--vdev",
            "net_null0",
            "--vdev",
            &tx,
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "1",
            "--proc-id",
            "0",
            "--nb-mbufs",
            "4095",
        ],
    );
    p.wait_for(
        "APP: SMP_MBUF_POOL: 4095 mbufs, cache 256, data room 2176; burst 32",
        T,
    );
    p.wait_for("Finished Process Init", T);
    eventually("frames in the capture", T, || records(&cap) >= 1);
    let (code, out) = p.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    let rx0 = counter(&out, 0, "RX");
    assert!(rx0 > 0, "{out}");
    assert_eq!(counter(&out, 1, "TX"), rx0, "{out}");
    assert!(out.contains("pool in use 0"), "{out}");
}

/// Whole records in a capture that is being written (a record cut short at the end is not
/// counted).
fn records(path: &Path) -> usize {
    let Ok(f) = std::fs::File::open(path) else {
        return 0;
    };
    PcapReader::new(std::io::BufReader::new(f))
        .map(|r| r.map_while(Result::ok).count())
        .unwrap_or(0)
}

/// Runs one symmetric_mp forwarding from `gen` (port 0) into a capture at `path` (port 1)
/// until the capture holds `at_least` frames, then stops it with SIGINT; returns its output.
fn forward_into_capture(gen: &str, path: &Path, at_least: usize) -> String {
    let g = Group::new("smp-cap");
    let tx = format!("net_pcap1,tx_pcap={}", path.display());
    let mut p = g.spawn(
        BIN,
        &[
            "--no-huge",
            "-m",
            "64",
            "-l",
            "0",
            "--vdev",
            gen,
            "--vdev",
            &tx,
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "1",
            "--proc-id",
            "0",
        ],
    );
    p.wait_for("Finished Process Init", T);
    eventually("frames in the capture", T, || records(path) >= at_least);
    let (code, out) = p.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    out
}

/// `Port <n>: RX - <rx>, TX - <tx>, Drop - <drop>`.
fn counter(out: &str, port: u16, what: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("Port {port}: RX")))
        .unwrap_or_else(|| panic!("no counters of port {port} in:\n{out}"));
    let after = line.split(&format!("{what} - ")).nth(1).unwrap();
    after.split(',').next().unwrap().trim().parse().unwrap()
}

/// A namespace with veth pairs a0/b0 and a1/b1, or `None` (the test skipped) where the
/// machine cannot have one or tcpreplay is missing.
#[track_caller]
fn netns(tag: &str) -> Option<NetNs> {
    let ns = NetNs::new(tag)?;
    if !require_tool("tcpreplay") {
        return None;
    }
    for (a, b) in [("a0", "b0"), ("a1", "b1")] {
        ns.veth(a, b).unwrap();
    }
    Some(ns)
}

/// A capture of generated frames over `flows` flows, made with symmetric_mp's own generator
/// port into a pcap port; returns how many it holds.
fn make_capture(path: &Path, flows: u32) -> u64 {
    let gen = format!("net_gen0,flows={flows},size=mixed,rate=20000");
    let out = forward_into_capture(&gen, path, 200);
    counter(&out, 1, "TX")
}

#[test]
fn two_peers_split_af_packet_flows_and_the_counts_add_up() {
    let Some(ns) = netns("smp") else { return };
    let dir = TempDir::new("smp-two");
    let cap = dir.join("in.pcap");
    let sent = make_capture(&cap, 64);
    assert!(sent >= 200, "capture has {sent} frames");
    let g = Group::new("smp-two");
    let logs: Vec<_> = (0..2).map(|i| dir.join(&format!("flows{i}"))).collect();
    let spawn = |id: u16, lcore: &str, primary: bool| {
        let log = logs[id as usize].to_str().unwrap().to_string();
        let id_s = id.to_string();
        let mut args: Vec<&str> = vec![
            "netns",
            "exec",
            &ns.name,
            BIN,
            "--no-huge",
            "-m",
            "64",
            "-l",
            lcore,
            "--file-prefix",
            g.prefix(),
            "--log-level",
            "warning",
        ];
        if primary {
            args.extend([
                "--vdev",
                "net_af_packet0,iface=a0,qpairs=2",
                "--vdev",
                "net_af_packet1,iface=a1,qpairs=2",
            ]);
        } else {
            args.extend(["--proc-type", "secondary"]);
        }
        args.extend([
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "2",
            "--proc-id",
            &id_s,
            "--flow-log",
            &log,
        ]);
        g.spawn_raw("ip", &args)
    };
    let mut p0 = spawn(0, "0", true);
    p0.wait_for("Finished Process Init", T);
    let mut p1 = spawn(1, "1", false);
    p1.wait_for("Finished Process Init", T);
    ns.tcpreplay("b0", &cap).unwrap();
    // Everything forwarded has reached b1: then stop both.
    eventually("b1 to receive every frame", T, || {
        ns.rx_packets("b1") >= sent
    });
    let (c1, out1) = p1.stop(libc::SIGINT, T);
    let (c0, out0) = p0.stop(libc::SIGINT, T);
    assert_eq!((c0, c1), (Some(0), Some(0)), "{out0}\n---\n{out1}");
    let (rx0, rx1) = (counter(&out0, 0, "RX"), counter(&out1, 0, "RX"));
    let (tx0, tx1) = (counter(&out0, 1, "TX"), counter(&out1, 1, "TX"));
    println!(
        "proc 0: rx {rx0} tx {tx0}; proc 1: rx {rx1} tx {tx1}; sent {sent}; b1 got {}",
        ns.rx_packets("b1")
    );
    assert_eq!(rx0 + rx1, sent, "{out0}\n---\n{out1}");
    assert_eq!(tx0 + tx1, sent);
    assert!(rx0 > 0 && rx1 > 0, "both peers get a share of the flows");
    assert_eq!(ns.rx_packets("b1"), sent);
    let f0: BTreeSet<String> = std::fs::read_to_string(&logs[0])
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let f1: BTreeSet<String> = std::fs::read_to_string(&logs[1])
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(
        f0.is_disjoint(&f1),
        "a flow went through both processes: {:?}",
        f0.intersection(&f1).collect::<Vec<_>>()
    );
    assert_eq!(f0.len() + f1.len(), 64);
}

/// An error after the primary created the group (here: no port at all) leaves nothing behind:
/// no segment, no runtime directory.
#[test]
fn an_error_after_joining_leaves_no_segment_or_runtime_dir() {
    let g = Group::new("smp-bye");
    let mut p = g.spawn(
        BIN,
        &[
            "-l",
            "0",
            "--no-huge",
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "1",
            "--proc-id",
            "0",
        ],
    );
    assert_eq!(p.wait_exit(T), Some(1), "{}", p.output());
    assert!(
        p.output().contains("No Ethernet ports - bye"),
        "{}",
        p.output()
    );
    let seg = format!("/dev/shm/shoal_{}_seg0", g.prefix());
    assert!(!std::path::Path::new(&seg).exists(), "{seg} left behind");
    let dir = shoal_testkit::runtime_dir(g.prefix());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Peers of symmetric_mp SIGKILLed at random and started again with the same proc-id, while
/// the primary forwards: the primary never stops, and once the last peer left cleanly the pool
/// is whole.
#[test]
fn random_kills_of_a_peer_lose_no_buffer() {
    let g = Group::new("smp-chaos");
    let common = [
        "--no-huge",
        "-m",
        "64",
        "--vdev",
        "net_gen0,flows=32,rate=200000",
        "--vdev",
        "net_null0",
    ];
    let peer = |g: &Group, id: &str, lcore: &str, extra: &[&str]| {
        let mut args: Vec<&str> = vec!["-l", lcore];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "-p", "0x3", "--num-procs", "2", "--proc-id", id]);
        g.spawn(BIN, &args)
    };
    let mut p0 = peer(&g, "0", "0", &common);
    p0.wait_for("Finished Process Init", T);
    let mut p1 = peer(&g, "1", "1", &["--proc-type=secondary"]);
    p1.wait_for("Finished Process Init", T);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed:#x}");
    for _ in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 150));
        p1.kill9();
        p1 = peer(&g, "1", "1", &["--proc-type=secondary"]);
    }
    p1.wait_for("Finished Process Init", T);
    assert!(p0.exited().is_none(), "the primary died:\n{}", p0.output());
    let (code, out1) = p1.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out1}");
    let (code, out0) = p0.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out0}");
    assert!(out0.contains("pool in use 0"), "{out0}");
}

/// True when `ip link` shows an XDP program on `iface` in the namespace.
fn has_xdp(ns: &NetNs, iface: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ip", "link", "show", "dev", iface,
        ])
        .output()
        .expect("ip link");
    assert!(out.status.success(), "ip link show {iface} failed");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Two symmetric_mp processes, the primary and a secondary, each on its own queue of two
/// 2-queue AF_XDP ports (veth pairs with two queues each): the secondary receives and sends on
/// its queues itself, the two see disjoint flows, and everything sent from the namespace comes
/// out of the other pair. Then the primary dies by SIGKILL and its XDP programs go with it.
#[test]
fn two_peers_share_af_xdp_queues_and_the_program_dies_with_the_primary() {
    let Some(ns) = NetNs::new("smpx") else { return };
    if !require_tool("tcpreplay") {
        return;
    }
    for (a, b) in [("a0", "b0"), ("a1", "b1")] {
        ns.exec(&[
            "ip",
            "link",
            "add",
            a,
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
            "type",
            "veth",
            "peer",
            "name",
            b,
            "numtxqueues",
            "2",
            "numrxqueues",
            "2",
        ])
        .unwrap();
        ns.exec(&["ip", "link", "set", a, "up"]).unwrap();
        ns.exec(&["ip", "link", "set", b, "up"]).unwrap();
    }
    let dir = TempDir::new("smpx");
    let cap = dir.join("in.pcap");
    let sent = make_capture(&cap, 64);
    assert!(sent >= 200, "capture has {sent} frames");
    let g = Group::new("smpx");
    let logs: Vec<_> = (0..2).map(|i| dir.join(&format!("flows{i}"))).collect();
    let spawn = |id: u16, lcore: &str, primary: bool| {
        let log = logs[id as usize].to_str().unwrap().to_string();
        let id_s = id.to_string();
        let mut args: Vec<&str> = vec![
            "netns",
            "exec",
            &ns.name,
            BIN,
            "--no-huge",
            "-m",
            "64",
            "-l",
            lcore,
            "--file-prefix",
            g.prefix(),
            "--log-level",
            "warning",
        ];
        if primary {
            args.extend([
                "--vdev",
                "net_af_xdp0,iface=a0,queue_count=2",
                "--vdev",
                "net_af_xdp1,iface=a1,queue_count=2",
            ]);
        } else {
            args.extend(["--proc-type", "secondary"]);
        }
        args.extend([
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "2",
            "--proc-id",
            &id_s,
            "--flow-log",
            &log,
        ]);
        g.spawn_raw("ip", &args)
    };
    let mut p0 = spawn(0, "0", true);
    p0.wait_for("Finished Process Init", T);
    assert!(has_xdp(&ns, "a0") && has_xdp(&ns, "a1"));
    let mut p1 = spawn(1, "1", false);
    p1.wait_for("Finished Process Init", T);
    ns.tcpreplay("b0", &cap).unwrap();
    eventually("b1 to receive every frame", T, || {
        ns.rx_packets("b1") >= sent
    });
    let (c1, out1) = p1.stop(libc::SIGINT, T);
    assert_eq!(c1, Some(0), "{out1}");
    let (rx1, tx1) = (counter(&out1, 0, "RX"), counter(&out1, 1, "TX"));
    // The primary is killed, not stopped: its share is what b1 got beyond the secondary's.
    p0.kill9();
    eventually("the XDP programs to go with the primary", T, || {
        !has_xdp(&ns, "a0") && !has_xdp(&ns, "a1")
    });
    println!(
        "secondary: rx {rx1} tx {tx1}; sent {sent}; b1 got {}",
        ns.rx_packets("b1")
    );
    assert!(
        rx1 > 0 && rx1 < sent,
        "the secondary gets a share: {rx1} of {sent}"
    );
    assert_eq!(tx1, rx1, "the secondary sends all it receives");
    assert_eq!(ns.rx_packets("b1"), sent);
    let f1: BTreeSet<String> = std::fs::read_to_string(&logs[1])
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(
        !f1.is_empty() && f1.len() < 64,
        "{} flows on the secondary",
        f1.len()
    );
}
