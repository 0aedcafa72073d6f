//! `shoal dumpcap` against a running mp_server and mp_client: tshark reads what it wrote, and a
//! dumpcap killed in the middle of a capture costs the group no mbuf.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal::ethdev::pcap::PcapWriter;
use shoal_testkit::{Group, Proc, TempDir};

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// Writes `n` Ethernet frames of varied sizes (60 to 1013 bytes) to a pcap file; returns the
/// total bytes.
fn write_pcap(path: &Path, n: usize) -> u64 {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let mut total = 0;
    for i in 0..n {
        let len = 60 + (i * 37) % 954;
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        // A local experimental ethertype: no client treats it as ARP or ND.
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        for (k, b) in f[14..].iter_mut().enumerate() {
            *b = (i + k) as u8;
        }
        w.write(i as u64 * 1000, &f).unwrap();
        total += len as u64;
    }
    w.into_inner().unwrap();
    total
}

/// `tshark -r file` fields, one Vec per frame.
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// mp_server (`shoal mp_server`) on `vdevs` with one client ring, waiting for its client.
fn server(g: &Group, vdevs: &[String], wait_clients: bool) -> Proc {
    let mut args: Vec<&str> = vec!["mp_server", "-l", "0", "--no-huge"];
    for v in vdevs {
        args.extend(["--vdev", v.as_str()]);
    }
    args.extend(["--", "-n", "1", "--stats-interval", "0"]);
    if wait_clients {
        args.push("--wait-clients");
    }
    let mut s = g.spawn(SHOAL, &args);
    s.wait_for("server ready", T);
    s
}

fn client(g: &Group) -> Proc {
    let mut c = g.spawn(
        SHOAL,
        &[
            "mp_client",
            "-l",
            "1",
            "--proc-type=secondary",
            "--",
            "-n",
            "0",
        ],
    );
    c.wait_for("handling packets", T);
    c
}

/// Stops the client and the server with SIGINT; returns the server's final line, which
/// checks that every mbuf is back in the pool.
fn stop_all(mut c: Proc, mut s: Proc) -> String {
    assert_eq!(c.stop(libc::SIGINT, T).0, Some(0), "{}", c.output());
    let (code, out) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    let fin = out
        .lines()
        .find(|l| l.starts_with("Final:"))
        .unwrap_or_else(|| panic!("no final line:\n{out}"))
        .to_string();
    assert!(fin.ends_with("pool in use 0"), "{fin}");
    fin
}

#[test]
fn tshark_reads_what_dumpcap_captured_on_port_0_rx_and_port_1_tx() {
    if !shoal_testkit::require_tool("tshark") {
        return;
    }
    const N: usize = 300;
    let dir = TempDir::new("dumpcap");
    let input = dir.join("in.pcap");
    let bytes = write_pcap(&input, N);
    let empty = dir.join("empty.pcap");
    write_pcap(&empty, 0);
    let sent = dir.join("tx.pcap");
    let cap = dir.join("cap.pcapng");
    let g = Group::new("dumpcap");
    let s = server(
        &g,
        &[
            format!("net_pcap0,rx_pcap={}", input.display()),
            format!(
                "net_pcap1,rx_pcap={},tx_pcap={}",
                empty.display(),
                sent.display()
            ),
        ],
        true,
    );
    let total = (2 * N).to_string();
    let mut d = g.spawn_raw(
        SHOAL,
        &[
            "dumpcap",
            "--file-prefix",
            g.prefix(),
            "-i",
            "0:rx,1:tx",
            "-w",
            cap.to_str().unwrap(),
            "-c",
            &total,
            "-q",
        ],
    );
    d.wait_for("Capturing on 'net_pcap0':rx, 'net_pcap1':tx", T);
    // The server receives nothing until its client is there, so nothing passes uncaptured.
    let c = client(&g);
    assert_eq!(d.wait_exit(T), Some(0), "{}", d.output());
    let out = d.output();
    assert!(
        out.contains(&format!("Packets captured: {} ", 2 * N)),
        "{out}"
    );
    assert!(out.contains("dropped: 0 "), "{out}");
    stop_all(c, s);

    // tshark: N inbound frames on interface 0, N outbound on interface 1, the input's bytes
    // on each, and the same frames as the port wrote to its own file.
    let frames = tshark_fields(
        &cap,
        &[
            "frame.interface_id",
            "frame.len",
            "frame.packet_flags_direction",
            "frame.interface_name",
        ],
    );
    assert_eq!(frames.len(), 2 * N);
    // epb_flags direction: 1 inbound, 2 outbound (tshark prints it in decimal or hex).
    let dir_of = |s: &str| match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    };
    for (iface, dir, name) in [("0", 1, "net_pcap0"), ("1", 2, "net_pcap1")] {
        let on: Vec<&Vec<String>> = frames.iter().filter(|f| f[0] == iface).collect();
        assert_eq!(on.len(), N, "interface {iface}");
        let bad = on.iter().find(|f| dir_of(&f[2]) != dir || f[3] != name);
        assert!(bad.is_none(), "interface {iface}: {bad:?}");
        let sum: u64 = on.iter().map(|f| f[1].parse::<u64>().unwrap()).sum();
        assert_eq!(sum, bytes, "interface {iface}");
    }
    let written = tshark_fields(&sent, &["frame.len"]);
    assert_eq!(written.len(), N);
}

#[test]
fn a_dumpcap_killed_mid_capture_turns_the_capture_off_and_loses_no_mbuf() {
    let dir = TempDir::new("dumpcap-kill");
    let g = Group::new("dumpcap-kill");
    // Two generator ports: traffic never stops, so the capture ring is busy when it dies.
    let mut s = server(&g, &[], false);
    let c = client(&g);
    let cap = dir.join("cap.pcapng");
    let mut d = g.spawn_raw(
        SHOAL,
        &[
            "dumpcap",
            "--file-prefix",
            g.prefix(),
            "-w",
            cap.to_str().unwrap(),
        ],
    );
    d.wait_for("Capturing on", T);
    // Its progress line: it has been taking packets for a second.
    d.wait_for("Packets: ", T);
    let pid = d.pid();
    d.kill9();
    // The primary turns the capture off, and its reaper returns what the dead tool held.
    s.wait_for(&format!("its process (pid {pid}) died"), T);
    s.wait_for(&format!("process {pid} (secondary) died"), T);
    // The capture is off and its state cleared: a new dumpcap may start at once.
    let cap2 = dir.join("cap2.pcapng");
    let mut d2 = g.spawn_raw(
        SHOAL,
        &[
            "dumpcap",
            "--file-prefix",
            g.prefix(),
            "-i",
            "1",
            "-w",
            cap2.to_str().unwrap(),
            "-c",
            "10",
            "-q",
        ],
    );
    assert_eq!(d2.wait_exit(T), Some(0), "{}", d2.output());
    assert!(
        d2.output().contains("Packets captured: 10 "),
        "{}",
        d2.output()
    );
    stop_all(c, s);
}

#[test]
fn bad_dumpcap_requests_are_refused() {
    let g = Group::new("dumpcap-bad");
    for (args, want) in [
        (&["dumpcap", "-i", "0:sideways", "-w", "x"][..], "direction"),
        (&["dumpcap", "-i", "0"], "-w FILE"),
        (&["dumpcap", "-w", "x", "-c", "many"], "invalid -c \"many\""),
        (
            &["dumpcap", "-w", "x", "-s", "0"],
            "invalid --snapshot-length \"0\"",
        ),
    ] {
        let mut p = g.spawn_raw(SHOAL, args);
        assert_eq!(p.wait_exit(T), Some(2), "{args:?}: {}", p.output());
        let err = p.stderr_lines();
        let first = err.first().map(String::as_str).unwrap_or("");
        assert!(first.contains(want), "{args:?}: {first:?}");
    }
    // A port the group does not have: refused after joining, with the reason.
    let dir = TempDir::new("dumpcap-bad");
    let s = server(&g, &[], false);
    let c = client(&g);
    let cap = dir.join("x.pcapng");
    let mut p = g.spawn_raw(
        SHOAL,
        &[
            "dumpcap",
            "--file-prefix",
            g.prefix(),
            "-i",
            "5",
            "-w",
            cap.to_str().unwrap(),
        ],
    );
    assert_eq!(p.wait_exit(T), Some(1), "{}", p.output());
    assert!(p.output().contains("no port 5"), "{}", p.output());
    stop_all(c, s);
}
