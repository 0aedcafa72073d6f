//! net_af_packet and net_tap against real kernel interfaces: veth pairs in a network
//! namespace each test creates, fed by tcpreplay. Skips (with the reason printed) when not
//! root or when the tools are missing; fails instead under CI=true.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shoal::ethdev::{self, pcap::PcapWriter, Port, QueueId};
use shoal::mbuf::MbufBatch;
use shoal::net::{parse_frame, FlowKey};
use shoal_testkit::netns::{self, NetNs};
use shoal_testkit::ports_eal;
use shoal_testkit::require_tool;
use shoal_testkit::{child_prefix, role, Group as TestGroup};

const T: Duration = Duration::from_secs(20);

/// Writes `n` generated frames over `flows` flows (plus a few malformed ones when asked) to a
/// capture; returns its path and the frames.
fn capture(tag: &str, n: usize, flows: u32, malformed: bool) -> (PathBuf, Vec<Vec<u8>>) {
    let eal = ports_eal("afp", &[format!("net_gen0,flows={flows},size=mixed")]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut frames = Vec::new();
    while frames.len() < n {
        let mut b = MbufBatch::new();
        p.rx_burst(QueueId(0), &mut b, 32.min(n - frames.len()));
        frames.extend(b.iter().map(|m| m.data().to_vec()));
    }
    if malformed {
        // IPv4 with a bad header length, an IPv4 total length beyond the frame, an unknown
        // EtherType, a runt (kernel pads nothing on veth: 20 bytes go as they are).
        let mut bad_ihl = frames[0].clone();
        bad_ihl[14] = 0x41;
        let mut bad_len = frames[1].clone();
        bad_len[16] = 0xff;
        let mut odd = frames[2].clone();
        odd[12] = 0x88;
        odd[13] = 0xb5;
        let runt = frames[3][..20].to_vec();
        frames.extend([bad_ihl, bad_len, odd, runt]);
    }
    let path = std::env::temp_dir().join(format!("shoal-afp-{}-{tag}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for f in &frames {
        w.write(0, f).unwrap();
    }
    w.into_inner().unwrap();
    (path, frames)
}

/// Polls `port`'s queues until `want` packets came or the time is up; returns them per queue.
fn drain(port: &Port, want: usize, timeout: Duration) -> Vec<Vec<Vec<u8>>> {
    let mut per_q = vec![Vec::new(); port.nb_rx_queues() as usize];
    let deadline = Instant::now() + timeout;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let mut got = 0;
        for q in 0..port.nb_rx_queues() {
            let mut b = MbufBatch::new();
            got += port.rx_burst(QueueId(q), &mut b, 32);
            per_q[q as usize].extend(b.iter().map(|m| m.data().to_vec()));
        }
        let total: usize = per_q.iter().map(|v| v.len()).sum();
        if got == 0 {
            if total >= want && quiet_since.elapsed() > Duration::from_millis(100) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        } else {
            quiet_since = Instant::now();
        }
    }
    per_q
}

#[test]
fn af_packet_receives_what_tcpreplay_sends_and_sends_what_the_peer_receives() {
    let Some(ns) = NetNs::new("afp1") else { return };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("va", "vb").unwrap();
    ns.enter().unwrap();
    let (file, frames) = capture("one", 300, 50, true);
    let eal = ports_eal(
        "afp",
        &["net_af_packet0,iface=va", "net_af_packet1,iface=vb"],
    );
    let ports = ethdev::ports(&eal).unwrap();
    assert!(ports[0].link_up());
    assert_eq!(ports[0].mac().to_string(), ns.read_sys("va", "address"));
    // Real tool in, shoal out: every frame (malformed ones included) arrives intact.
    ns.tcpreplay("vb", &file).unwrap();
    let got = drain(&ports[0], frames.len(), T);
    let got: Vec<Vec<u8>> = got.into_iter().flatten().collect();
    assert_eq!(
        got.len(),
        frames.len(),
        "received {} of {}",
        got.len(),
        frames.len()
    );
    assert_eq!(got, frames, "frames arrive in order and unchanged");
    // Port 1 (on vb) saw none of it: tcpreplay's frames leave vb, they are not received there.
    let s0 = ports[0].stats();
    assert_eq!(s0.ipackets, frames.len() as u64);
    assert_eq!(
        s0.ibytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );

    // shoal in, shoal out: port 1 sends, port 0 receives.
    let pool = ports[1].pool();
    let mut sent = Vec::new();
    for f in frames.iter().take(200) {
        let mut b = MbufBatch::new();
        let mut m = pool.alloc().unwrap();
        m.append(f.len() as u16).unwrap().copy_from_slice(f);
        let _ = b.push(m);
        let deadline = Instant::now() + T;
        while ports[1].tx_burst(QueueId(0), &mut b) == 0 {
            assert!(Instant::now() < deadline, "tx ring never drained");
            std::thread::sleep(Duration::from_micros(100));
        }
        sent.push(f.clone());
    }
    let got: Vec<Vec<u8>> = drain(&ports[0], sent.len(), T)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got.len(), sent.len());
    assert_eq!(got, sent);
    assert_eq!(ports[1].stats().opackets, sent.len() as u64);
    let _ = std::fs::remove_file(file);
}

fn flow_of(frame: &[u8]) -> Option<FlowKey> {
    parse_frame(frame).ok()?.tuple.map(|t| t.key())
}

#[test]
fn af_packet_fanout_keeps_each_flow_on_one_queue_while_forwarding() {
    let Some(ns) = NetNs::new("afp2") else { return };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("a0", "b0").unwrap();
    ns.veth("a1", "b1").unwrap();
    ns.enter().unwrap();
    let (file, frames) = capture("fan", 2000, 64, false);
    let eal = ports_eal(
        "afp",
        &[
            "net_af_packet0,iface=a0,qpairs=2",
            "net_af_packet1,iface=a1,qpairs=2",
            "net_af_packet2,iface=b1",
        ],
    );
    let ports = ethdev::ports(&eal).unwrap();
    let replay = {
        let (name, file) = (ns.name.clone(), file.clone());
        std::thread::spawn(move || netns::tcpreplay(&name, "b0", &file))
    };
    // Forward port 0 queue q -> port 1 queue q, as symmetric_mp does, and watch port 2 (b1).
    let mut flows_on: [HashSet<FlowKey>; 2] = [HashSet::new(), HashSet::new()];
    let mut out = Vec::new();
    let mut forwarded = 0;
    let deadline = Instant::now() + T;
    let mut done_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let mut moved = 0;
        for q in 0..2u16 {
            let mut b = MbufBatch::new();
            let n = ports[0].rx_burst(QueueId(q), &mut b, 32);
            for m in b.iter() {
                if let Some(k) = flow_of(m.data()) {
                    flows_on[q as usize].insert(k);
                }
            }
            let mut sent = 0;
            while sent < n && Instant::now() < deadline {
                sent += ports[1].tx_burst(QueueId(q), &mut b);
            }
            forwarded += sent;
            moved += n;
        }
        let mut b = MbufBatch::new();
        ports[2].rx_burst(QueueId(0), &mut b, 32);
        moved += b.len();
        out.extend(b.iter().map(|m| m.data().to_vec()));
        if replay.is_finished() && out.len() >= frames.len() {
            let t = *done_at.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_millis(200) {
                break;
            }
        }
        if moved == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    replay.join().unwrap().unwrap();
    let s0 = ports[0].stats();
    let s1 = ports[1].stats();
    println!(
        "rx per queue {:?}, forwarded {forwarded}, out {}",
        s0.rx_queues.iter().map(|q| q.packets).collect::<Vec<_>>(),
        out.len()
    );
    assert!(
        flows_on[0].is_disjoint(&flows_on[1]),
        "a flow was seen on both queues"
    );
    assert!(
        !flows_on[0].is_empty() && !flows_on[1].is_empty(),
        "fanout used one queue only"
    );
    assert_eq!(s0.ipackets, frames.len() as u64);
    assert_eq!(s1.opackets, frames.len() as u64);
    assert_eq!(out.len(), frames.len());
    // Same multiset of frames on the far side.
    let count = |v: &[Vec<u8>]| {
        let mut m: HashMap<Vec<u8>, u32> = HashMap::new();
        for f in v {
            *m.entry(f.clone()).or_default() += 1;
        }
        m
    };
    assert_eq!(count(&out), count(&frames));
    assert_eq!(ns.rx_packets("b1"), frames.len() as u64);
    let _ = std::fs::remove_file(file);
}

#[test]
fn tap_port_talks_to_the_kernel() {
    let Some(ns) = NetNs::new("tap") else { return };
    ns.enter().unwrap();
    let eal = ports_eal("afp", &["net_tap0,iface=shoaltap0"]);
    let ports = ethdev::ports(&eal).unwrap();
    let p = &ports[0];
    assert!(ns.exec(&["ip", "link", "show", "shoaltap0"]).is_ok());
    // What the port sends, the kernel counts as received on the interface.
    let pool = p.pool();
    let mut b = MbufBatch::new();
    for _ in 0..10 {
        let mut m = pool.alloc().unwrap();
        let f = m.append(60).unwrap();
        f.fill(0);
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&p.mac().0);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        let _ = b.push(m);
    }
    assert_eq!(p.tx_burst(QueueId(0), &mut b), 10);
    assert_eq!(p.stats().opackets, 10);
    assert_eq!(ns.rx_packets("shoaltap0"), 10);
    // What the kernel sends on the interface, the port receives: an ARP request for an
    // address on the TAP's subnet.
    ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "shoaltap0"])
        .unwrap();
    // A datagram to a neighbour the kernel does not know yet makes it ask by ARP.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let _ = sock.send_to(b"hello", "198.18.0.2:9");
    let got = drain(p, 1, Duration::from_secs(5));
    let arp = got[0]
        .iter()
        .filter(|f| f.len() >= 14 && f[12..14] == [0x08, 0x06])
        .count();
    assert!(arp >= 1, "no ARP request seen: {got:?}");
    drop(ports);
}

#[test]
fn one_process_polls_an_af_packet_queue_and_a_survivor_takes_over_a_dead_one() {
    const TEST: &str = "one_process_polls_an_af_packet_queue_and_a_survivor_takes_over_a_dead_one";
    if role().as_deref() == Some("poller") {
        // A secondary polling queue 0 of the primary's port, through the sockets it passed.
        let eal = shoal_testkit::init(&child_prefix(), &["--proc-type=secondary"]).unwrap();
        let ports = ethdev::ports(&eal).unwrap();
        let mut total = 0;
        let mut b = MbufBatch::new();
        total += ports[0].rx_burst(QueueId(0), &mut b, 32);
        println!("polling");
        loop {
            let mut b = MbufBatch::new();
            let n = ports[0].rx_burst(QueueId(0), &mut b, 32);
            if n > 0 {
                total += n;
                println!("got {total}");
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let Some(ns) = NetNs::new("afpxp") else {
        return;
    };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("va", "vb").unwrap();
    ns.enter().unwrap();
    let (first, first_frames) = capture("xp1", 60, 10, false);
    let (second, second_frames) = capture("xp2", 40, 10, false);
    let g = TestGroup::new("afpxp");
    let eal = shoal_testkit::init(g.prefix(), &["--vdev", "net_af_packet0,iface=va"]).unwrap();
    let port = ethdev::ports(&eal).unwrap().remove(0);
    // The secondary polls first: the queue is its own while it lives.
    let mut child = g.spawn_self(TEST, "poller", &[]);
    child.wait_for("polling", T);
    ns.tcpreplay("vb", &first).unwrap();
    let mut mine = 0;
    let line = format!("got {}", first_frames.len());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let reader = std::thread::scope(|s| {
        let poll = s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut b = MbufBatch::new();
                mine += port.rx_burst(QueueId(0), &mut b, 32);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let seen = child.wait_for(&line, T);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        poll.join().unwrap();
        seen
    });
    assert!(reader.contains(&line), "{reader}");
    assert_eq!(
        mine, 0,
        "the primary received from a queue another process owns"
    );
    // Killed, the owner leaves its id in the queue's owner word; the primary finds it dead
    // and takes the queue over, resuming where the dead one stopped.
    child.kill9();
    ns.tcpreplay("vb", &second).unwrap();
    let got: Vec<Vec<u8>> = drain(&port, second_frames.len(), T)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        got, second_frames,
        "the survivor receives every later frame, in order"
    );
    let _ = std::fs::remove_file(first);
    let _ = std::fs::remove_file(second);
}
