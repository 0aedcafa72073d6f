//! `shoal port attach|detach|list` against a running mp_server, with the test process as a
//! secondary of the group: an attached net_ring port moves packets from the secondary, a
//! detached one is refused there and its number is not used again, bad requests exit 2 with
//! one line, and the server ends with every mbuf back in its pool.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use shoal::ethdev::pcap::PcapWriter;
use shoal::ethdev::{self, PortId, QueueId};
use shoal::mbuf::MbufBatch;
use shoal_testkit::{Group, Proc, TempDir};

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

fn empty_pcap(path: &Path) {
    PcapWriter::new(std::fs::File::create(path).unwrap())
        .unwrap()
        .into_inner()
        .unwrap();
}

fn server(g: &Group, dir: &TempDir) -> Proc {
    let input = dir.join("empty.pcap");
    empty_pcap(&input);
    let v0 = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("tx0.pcap").display()
    );
    let v1 = format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("tx1.pcap").display()
    );
    let args = [
        "mp_server",
        "-l",
        "0",
        "--no-huge",
        "--vdev",
        &v0,
        "--vdev",
        &v1,
        "--",
        "-n",
        "1",
        "--stats-interval",
        "0",
    ];
    let mut s = g.spawn(SHOAL, &args);
    s.wait_for("server ready", T);
    s
}

fn port_cmd(g: &Group, args: &[&str]) -> Output {
    let mut argv = vec!["port", args[0], "--file-prefix", g.prefix()];
    argv.extend(&args[1..]);
    Command::new(SHOAL).args(&argv).output().expect("run shoal")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit status 2 and exactly one line on stderr, containing `want`.
fn refused(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.contains(want), "stderr: {err}");
}

#[test]
fn attach_move_packets_detach_and_refuse() {
    let dir = TempDir::new("hotplug");
    let g = Group::new("hotplug");
    let mut s = server(&g, &dir);
    let lcore = format!("{}@0", shoal::memory::MAX_LCORES - 2);
    let eal = shoal_testkit::init(g.prefix(), &["--proc-type=secondary", "--lcores", &lcore])
        .expect("join as a secondary");
    assert_eq!(ethdev::ports(&eal).unwrap().len(), 2);

    // Attach while the group runs: port 2, seen by this secondary at its next `ports`.
    let out = ok(&port_cmd(&g, &["attach", "net_ring0"]));
    assert_eq!(out.trim(), "attached port 2 (net_ring0)");
    let list = ok(&port_cmd(&g, &["list"]));
    assert!(list.contains("2\tnet_ring0\tnet_ring\tstarted"), "{list}");
    let ports = ethdev::ports(&eal).unwrap();
    assert_eq!(
        ports.iter().map(|p| p.id().0).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let ring = ethdev::port(&eal, PortId(2)).unwrap();
    assert_eq!(ring.name(), "net_ring0");

    // What is sent on the queue comes back on it (net_ring), with its contents.
    let pool = ring.pool();
    let mut tx = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut tx, 16));
    for (i, m) in tx.iter_mut().enumerate() {
        m.append(64).unwrap().fill(i as u8);
    }
    assert_eq!(ring.tx_burst(QueueId(0), &mut tx), 16);
    let mut rx = MbufBatch::new();
    assert_eq!(ring.rx_burst(QueueId(0), &mut rx, 32), 16);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.data(), &[i as u8; 64][..]);
        assert_eq!(m.port(), 2);
    }
    let st = ring.stats();
    assert_eq!((st.ipackets, st.opackets), (16, 16));
    // 8 stay in the ring: the detach must give them back to the pool.
    let mut keep = rx.drain(..8);
    assert_eq!(ring.tx_burst(QueueId(0), &mut keep), 8);
    drop(rx);

    let out = ok(&port_cmd(&g, &["detach", "2"]));
    assert_eq!(out.trim(), "detached port 2 (net_ring0)");
    // Refused here: the old handle, a lookup, and the list.
    assert!(matches!(
        ring.check(),
        Err(ethdev::Error::Detached(PortId(2)))
    ));
    assert!(matches!(
        ethdev::port(&eal, PortId(2)),
        Err(ethdev::Error::Detached(PortId(2)))
    ));
    assert_eq!(ethdev::ports(&eal).unwrap().len(), 2);
    let mut more = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut more, 4));
    assert_eq!(ring.tx_burst(QueueId(0), &mut more), 0);
    assert_eq!(more.len(), 4, "a refused burst keeps its packets");
    assert_eq!(ring.rx_burst(QueueId(0), &mut more, 32), 0);
    drop(more);

    // Bad requests: one line, status 2.
    refused(&port_cmd(&g, &["detach", "2"]), "port 2 was detached");
    refused(&port_cmd(&g, &["detach", "9"]), "no port 9");
    refused(&port_cmd(&g, &["attach", "net_bogus0"]), "net_bogus0");
    refused(
        &port_cmd(&g, &["attach", "net_pcap0,rx_pcap="]),
        "net_pcap0",
    );
    refused(&port_cmd(&g, &["attach", "net_pcap0"]), "rx_pcap");
    let dup = format!("net_pcap0,tx_pcap={}", dir.join("dup.pcap").display());
    refused(&port_cmd(&g, &["attach", &dup]), "exists already");

    // The retired number is never reused; a process started later sees the current set.
    let out = ok(&port_cmd(&g, &["attach", "net_ring1"]));
    assert_eq!(out.trim(), "attached port 3 (net_ring1)");
    let list = ok(&port_cmd(&g, &["list"]));
    let ids: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(ids, ["0", "1", "3"], "{list}");
    let late = Command::new(SHOAL)
        .args(["dumpcap", "--file-prefix", g.prefix(), "-D"])
        .output()
        .unwrap();
    let late = ok(&late);
    assert!(
        late.contains("3. net_ring1") && !late.contains("net_ring0"),
        "{late}"
    );
    assert_eq!(
        ethdev::ports(&eal)
            .unwrap()
            .iter()
            .map(|p| p.id().0)
            .collect::<Vec<_>>(),
        [0, 1, 3]
    );

    drop((ring, ports));
    eal.leave();
    let (code, out) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    let fin = out
        .lines()
        .find(|l| l.starts_with("Final:"))
        .unwrap_or_else(|| panic!("no final line:\n{out}"));
    assert!(fin.ends_with("pool in use 0"), "{fin}");
}
