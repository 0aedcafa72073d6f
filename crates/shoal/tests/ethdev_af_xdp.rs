//! net_af_xdp against real kernel interfaces: veth pairs in a network namespace each test
//! creates, fed by tcpreplay, with the XDP program checked with `ip link`. Skips (with the
//! reason printed) when not root or when the tools are missing; fails instead under CI=true.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal::ethdev::{self, pcap::PcapWriter, Port, QueueId};
use shoal::mbuf::MbufBatch;
use shoal_testkit::netns::NetNs;
use shoal_testkit::{eventually, ports_eal, require_tool};

const T: Duration = Duration::from_secs(20);

/// `n` generated frames over `flows` flows, plus malformed ones (bad IPv4 header length, IPv4
/// total length beyond the frame, unknown EtherType, a 20-byte runt), written to a capture.
fn capture(tag: &str, n: usize, flows: u32) -> (PathBuf, Vec<Vec<u8>>) {
    let eal = ports_eal("axg", &[format!("net_gen0,flows={flows},size=mixed")]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut frames = Vec::new();
    while frames.len() < n {
        let mut b = MbufBatch::new();
        p.rx_burst(QueueId(0), &mut b, 32.min(n - frames.len()));
        frames.extend(b.iter().map(|m| m.data().to_vec()));
    }
    let mut bad_ihl = frames[0].clone();
    bad_ihl[14] = 0x41;
    let mut bad_len = frames[1].clone();
    bad_len[16] = 0xff;
    let mut odd = frames[2].clone();
    odd[12] = 0x88;
    odd[13] = 0xb5;
    let runt = frames[3][..20].to_vec();
    frames.extend([bad_ihl, bad_len, odd, runt]);
    let path = std::env::temp_dir().join(format!("shoal-axdp-{}-{tag}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for f in &frames {
        w.write(0, f).unwrap();
    }
    w.into_inner().unwrap();
    (path, frames)
}

/// Polls `port`'s queues until `want` packets came (and a short quiet spell followed) or the
/// time is up.
fn drain(port: &Port, want: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let mut n = 0;
        for q in 0..port.nb_rx_queues() {
            let mut b = MbufBatch::new();
            n += port.rx_burst(QueueId(q), &mut b, 32);
            got.extend(b.iter().map(|m| m.data().to_vec()));
        }
        if n == 0 {
            if got.len() >= want && quiet_since.elapsed() > Duration::from_millis(100) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        } else {
            quiet_since = Instant::now();
        }
    }
    got
}

/// True when `ip link` shows an XDP program on `iface` (run in the namespace `ns`).
fn has_xdp(ns: &NetNs, iface: &str) -> bool {
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ip", "link", "show", "dev", iface,
        ])
        .output()
        .expect("ip link");
    assert!(out.status.success(), "ip link show {iface} failed");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

fn send_frames(port: &Port, frames: &[Vec<u8>]) -> usize {
    let pool = port.pool();
    let mut sent = 0;
    for chunk in frames.chunks(16) {
        let mut b = MbufBatch::new();
        for f in chunk {
            let mut m = pool.alloc().unwrap();
            m.append(f.len() as u16).unwrap().copy_from_slice(f);
            let _ = b.push(m);
        }
        let deadline = Instant::now() + T;
        while !b.is_empty() {
            sent += port.tx_burst(QueueId(0), &mut b);
            assert!(Instant::now() < deadline, "tx ring never drained");
        }
    }
    sent
}

#[test]
fn af_xdp_receives_what_tcpreplay_sends_and_sends_what_the_peer_receives() {
    let Some(ns) = NetNs::new("axdp1") else {
        return;
    };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("xa", "xb").unwrap();
    ns.enter().unwrap();
    let (file, frames) = capture("one", 400, 50);
    let eal = ports_eal("axdp", &["net_af_xdp0,iface=xa", "net_af_packet1,iface=xb"]);
    let ports = ethdev::ports(&eal).unwrap();
    assert!(has_xdp(&ns, "xa"), "no XDP program on xa after start");
    // veth has no zero-copy AF_XDP: the sockets are bound in copy mode, and the table says so.
    let info = ethdev::table_info(&eal);
    assert_eq!(
        (info[0].driver.as_str(), info[0].mode),
        ("net_af_xdp", Some("copy"))
    );
    assert!(ports[0].link_up());
    assert_eq!(ports[0].mac().to_string(), ns.read_sys("xa", "address"));
    // Real tool in, shoal out: every frame, malformed ones included, arrives intact and in
    // order.
    ns.tcpreplay("xb", &file).unwrap();
    let got = drain(&ports[0], frames.len(), T);
    assert_eq!(
        got.len(),
        frames.len(),
        "received {} of {}",
        got.len(),
        frames.len()
    );
    assert_eq!(got, frames, "frames arrive in order and unchanged");
    let s0 = ports[0].stats();
    assert_eq!(s0.ipackets, frames.len() as u64);
    assert_eq!(
        s0.ibytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!((s0.ierrors, s0.imissed), (0, 0));

    // shoal out: what port 0 sends, the af_packet port on the peer receives, frame for frame;
    // and the kernel counts it on xb.
    let before = ns.rx_packets("xb");
    let sent = send_frames(&ports[0], &frames);
    assert_eq!(sent, frames.len());
    let back = drain(&ports[1], frames.len(), T);
    assert_eq!(back.len(), frames.len());
    assert_eq!(back, frames, "sent frames arrive in order and unchanged");
    assert_eq!(ports[0].stats().opackets, frames.len() as u64);
    assert_eq!(ns.rx_packets("xb") - before, frames.len() as u64);

    // Bad transmit input is counted, not sent: a runt and a frame over the MTU.
    let pool = ports[0].pool();
    let mut b = MbufBatch::new();
    for len in [10u16, 1600] {
        let mut m = pool.alloc().unwrap();
        m.append(len).unwrap().fill(0x5a);
        let _ = b.push(m);
    }
    assert_eq!(ports[0].tx_burst(QueueId(0), &mut b), 2);
    let s = ports[0].stats();
    assert_eq!((s.opackets, s.oerrors), (frames.len() as u64, 2));
    let _ = std::fs::remove_file(file);
}

#[test]
fn af_xdp_counts_frames_too_big_for_its_frames_and_keeps_receiving() {
    let Some(ns) = NetNs::new("axdp2") else {
        return;
    };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("ya", "yb").unwrap();
    // Jumbo-ish MTUs (XDP on veth allows up to about 3.5 KB): a 2500-byte frame reaches the
    // XDP program but does not fit a 2048-byte UMEM frame.
    ns.exec(&["ip", "link", "set", "ya", "mtu", "3000"])
        .unwrap();
    ns.exec(&["ip", "link", "set", "yb", "mtu", "3000"])
        .unwrap();
    ns.enter().unwrap();
    let (_, frames) = capture("big", 20, 4);
    let mut big = frames[0].clone();
    big.resize(2500, 0xab);
    let mut all = vec![big];
    all.extend(frames.iter().take(20).cloned());
    let path = std::env::temp_dir().join(format!("shoal-axdp-{}-big2.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for f in &all {
        w.write(0, f).unwrap();
    }
    w.into_inner().unwrap();
    let eal = ports_eal("axdp", &["net_af_xdp0,iface=ya"]);
    let ports = ethdev::ports(&eal).unwrap();
    ns.tcpreplay("yb", &path).unwrap();
    let got = drain(&ports[0], 20, T);
    assert_eq!(got, all[1..].to_vec(), "the frames that fit arrive intact");
    eventually("the oversized frame to be counted", T, || {
        ports[0].stats().imissed == 1
    });
    assert_eq!(ports[0].stats().ipackets, 20);
    let _ = std::fs::remove_file(path);
}

#[test]
fn af_xdp_program_is_detached_at_stop_and_an_occupied_interface_is_refused() {
    let Some(ns) = NetNs::new("axdp3") else {
        return;
    };
    ns.veth("za", "zb").unwrap();
    ns.enter().unwrap();
    let eal = ports_eal("axdp", &["net_af_xdp0,iface=za"]);
    let ports = ethdev::ports(&eal).unwrap();
    assert!(has_xdp(&ns, "za"));
    // A second group on the same interface: a clear error, and the first program stays.
    let other = shoal_testkit::init(
        &shoal_testkit::unique_prefix("axdp-b"),
        &["--no-huge", "--vdev", "net_af_xdp0,iface=za"],
    )
    .unwrap();
    let err = match ethdev::ports(&other) {
        Ok(_) => panic!("a second XDP program was attached to za"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("already has an XDP program"),
        "unclear error: {err}"
    );
    assert!(has_xdp(&ns, "za"));
    ports[0].stop().unwrap();
    assert!(!has_xdp(&ns, "za"), "program still attached after stop");
    ports[0].start().unwrap();
    assert!(has_xdp(&ns, "za"), "no program after a new start");
    drop(ports);
    drop(eal);
    eventually("the program to go with the port", T, || !has_xdp(&ns, "za"));
}

/// A 60-byte frame carrying sequence number `seq` (EtherType 0x88b5, local experimental).
fn seq_frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0x73, 0x68, 0x74, 0x00, 0x01]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
    }
    f
}

#[cfg(feature = "fault-injection")]
fn seq_of(f: &[u8]) -> u32 {
    assert_eq!(f.len(), 60, "frame of {} bytes", f.len());
    let s = u32::from_be_bytes(f[14..18].try_into().unwrap());
    assert_eq!(f, seq_frame(s), "frame {s} damaged");
    s
}

#[cfg(feature = "fault-injection")]
fn seq_capture(tag: &str, seqs: std::ops::Range<u32>) -> PathBuf {
    let path = std::env::temp_dir().join(format!("shoal-axdp-{}-{tag}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for s in seqs {
        w.write(0, &seq_frame(s)).unwrap();
    }
    w.into_inner().unwrap();
    path
}

/// The secondary of the kill test: polls queue 0 and prints the sequence numbers of each
/// burst, until the fault site kills it (or, bounded, 30 s pass).
#[cfg(feature = "fault-injection")]
fn xdp_victim() {
    let prefix = shoal_testkit::child_prefix();
    let eal = shoal_testkit::init(
        &prefix,
        &[
            "--no-huge",
            "--proc-type=secondary",
            "-l",
            "1",
            "--log-level",
            "error",
        ],
    )
    .unwrap();
    let ports = ethdev::ports(&eal).unwrap();
    println!("polling");
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let mut b = MbufBatch::new();
        if ports[0].rx_burst(QueueId(0), &mut b, 32) > 0 {
            let seqs: Vec<String> = b.iter().map(|m| seq_of(m.data()).to_string()).collect();
            println!("burst {}", seqs.join(","));
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// A secondary receiving on an AF_XDP queue is killed inside a burst, at each of the receive
/// path's fault sites: the primary, polling the queue next, finishes the dead burst's
/// publication, so that the frames of that one burst are gone (they died in the victim's
/// mbufs) but none is received twice, and the UMEM's receive frames all stay in circulation:
/// three times as many frames as the queue has then arrive, in order and undamaged.
#[cfg(feature = "fault-injection")]
#[test]
fn a_receiver_killed_inside_a_burst_leaves_every_umem_frame_in_circulation() {
    shoal_testkit::child_or!(|_: &str| xdp_victim());
    let Some(ns) = NetNs::new("axdpk") else {
        return;
    };
    if !require_tool("tcpreplay") {
        return;
    }
    ns.veth("ka", "kb").unwrap();
    ns.enter().unwrap();
    let first = 300u32;
    let cap1 = seq_capture("k1", 0..first);
    let more = 3 * 2048 + 100;
    let cap2 = seq_capture("k2", 10_000..10_000 + more);
    for site in shoal::fault::SITES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| shoal::fault::is_port_site(s))
    {
        let g = shoal_testkit::Group::new("axdpk");
        let eal = shoal_testkit::init(
            g.prefix(),
            &["--no-huge", "-l", "0", "--vdev", "net_af_xdp0,iface=ka"],
        )
        .unwrap();
        let ports = ethdev::ports(&eal).unwrap();
        let fault = format!("{site}:5");
        let mut v = g.spawn_self(
            "a_receiver_killed_inside_a_burst_leaves_every_umem_frame_in_circulation",
            "victim",
            &[("SHOAL_FAULT", &fault)],
        );
        v.wait_for("polling", T);
        ns.tcpreplay("kb", &cap1).unwrap();
        assert_eq!(v.wait_exit(T), None, "{site}: the victim was not killed");
        let mut seen: Vec<u32> = v
            .output()
            .lines()
            .filter_map(|l| l.strip_prefix("burst "))
            .flat_map(|l| l.split(',').map(|s| s.parse::<u32>().unwrap()))
            .collect();
        seen.extend(
            drain(&ports[0], 0, Duration::from_millis(500))
                .iter()
                .map(|f| seq_of(f)),
        );
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            seen.len(),
            "{site}: a frame was received twice"
        );
        let missing: Vec<u32> = (0..first)
            .filter(|s| sorted.binary_search(s).is_err())
            .collect();
        println!(
            "{site}: victim and primary got {} of {first}; lost with the victim: {missing:?}",
            seen.len()
        );
        // At most the dead burst is lost: what the victim had copied into its mbufs.
        assert!(missing.len() <= 32, "{site}: lost {} frames", missing.len());
        if let (Some(a), Some(b)) = (missing.first(), missing.last()) {
            assert_eq!(
                b - a + 1,
                missing.len() as u32,
                "{site}: the lost frames are not one burst: {missing:?}"
            );
        }
        // Every receive frame still circulates: far more frames than the queue has arrive.
        let replay = {
            let (name, file) = (ns.name.clone(), cap2.clone());
            std::thread::spawn(move || shoal_testkit::netns::tcpreplay(&name, "kb", &file))
        };
        let got = drain(&ports[0], more as usize, T);
        replay.join().unwrap().unwrap();
        let got: Vec<u32> = got.iter().map(|f| seq_of(f)).collect();
        let want: Vec<u32> = (10_000..10_000 + more).collect();
        if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
            panic!(
                "{site}: frame {i} is {} where {} was sent (a frame used twice?)",
                got[i], want[i]
            );
        }
        assert_eq!(got.len(), want.len(), "{site}: frames received");
        assert_eq!(ports[0].stats().imissed, 0, "{site}");
        drop(ports);
        drop(eal);
    }
    let _ = std::fs::remove_file(cap1);
    let _ = std::fs::remove_file(cap2);
}

/// An application asking for more transmit queues than the device has (mp_server: one per
/// client) gets them: the extra ones send through AF_PACKET, and what each sends arrives (the
/// kernel counts it on the peer).
#[test]
fn af_xdp_transmit_queues_beyond_the_devices_still_send() {
    let Some(ns) = NetNs::new("axdp4") else {
        return;
    };
    ns.veth("wa", "wb").unwrap();
    ns.enter().unwrap();
    let eal = ports_eal("axdp", &["net_af_xdp0,iface=wa"]);
    let conf = ethdev::PortConf {
        rx_queues: Some(1),
        tx_queues: Some(3),
        ..Default::default()
    };
    let ports = ethdev::ports_with(&eal, &conf).unwrap();
    assert_eq!(ports[0].nb_tx_queues(), 3);
    let pool = ports[0].pool();
    let mut want = Vec::new();
    for q in 0..3u16 {
        let mut b = MbufBatch::new();
        for i in 0..5u32 {
            let f = seq_frame(u32::from(q) * 100 + i);
            let mut m = pool.alloc().unwrap();
            m.append(f.len() as u16).unwrap().copy_from_slice(&f);
            let _ = b.push(m);
            want.push(f);
        }
        let deadline = Instant::now() + T;
        while !b.is_empty() {
            ports[0].tx_burst(QueueId(q), &mut b);
            assert!(Instant::now() < deadline, "queue {q} never sent");
        }
    }
    eventually("wb to count every frame", T, || {
        ns.rx_packets("wb") >= want.len() as u64
    });
    assert_eq!(ns.rx_packets("wb"), want.len() as u64);
    let s = ports[0].stats();
    assert_eq!(
        s.tx_queues.iter().map(|q| q.packets).collect::<Vec<_>>(),
        [5, 5, 5]
    );
}
