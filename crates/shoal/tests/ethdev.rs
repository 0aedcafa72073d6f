//! Ports without kernel interfaces: net_null, net_gen, net_ring, net_pcap, bad specs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::ethdev::{self, pcap::PcapReader, DriverKind, PortConf, QueueId};
use shoal::mbuf::MbufBatch;
use shoal::net::{parse_frame, EtherType};
use shoal_testkit::{ports_eal, skip_or_fail, unique_prefix, TempDir};

const T: Duration = Duration::from_secs(20);

#[test]
fn null_port_sets_lengths_only_unless_copy_and_counts_what_it_drops() {
    let eal = ports_eal(
        "null",
        &["net_null0", "net_null1,size=128", "net_null2,copy=1"],
    );
    let ports = ethdev::ports(&eal).unwrap();
    assert_eq!(ports.len(), 3);
    assert_eq!(ports[0].name(), "net_null0");
    assert_eq!(ports[0].driver(), DriverKind::Null);
    let mut b = MbufBatch::new();
    assert_eq!(ports[0].rx_burst(QueueId(0), &mut b, 32), 32);
    assert!(b.iter().all(|m| m.data().len() == 64 && m.port() == 0));
    // As DPDK's net_null, receive does not touch packet bytes: what a buffer held before is
    // what the next packet in it shows.
    for m in b.iter_mut() {
        m.data_mut().expect("sole owner").fill(0xab);
    }
    drop(std::mem::take(&mut b));
    assert_eq!(ports[0].rx_burst(QueueId(0), &mut b, 32), 32);
    assert!(
        b.iter().any(|m| m.data().iter().all(|&x| x == 0xab)),
        "net_null wrote the bytes of packets it received"
    );
    drop(std::mem::take(&mut b));
    // copy=1 copies its template (zeroes) into every packet, as DPDK's copy=1.
    assert_eq!(ports[2].rx_burst(QueueId(0), &mut b, 32), 32);
    assert!(b
        .iter()
        .all(|m| m.data().len() == 64 && m.data().iter().all(|&x| x == 0)));
    assert_eq!(ports[2].tx_burst(QueueId(0), &mut b), 32);
    assert_eq!(ports[0].rx_burst(QueueId(0), &mut b, 32), 32);
    assert_eq!(ports[1].rx_burst(QueueId(0), &mut b, 8), 8);
    assert_eq!(b.iter().last().unwrap().data().len(), 128);
    assert_eq!(ports[1].tx_burst(QueueId(0), &mut b), 40);
    assert!(b.is_empty());
    let s0 = ports[0].stats();
    let s1 = ports[1].stats();
    assert_eq!((s0.ipackets, s0.ibytes), (96, 96 * 64));
    assert_eq!((s1.ipackets, s1.opackets), (8, 40));
    assert_eq!(s1.obytes, 32 * 64 + 8 * 128);
    // A queue that does not exist and a stopped port move nothing.
    assert_eq!(ports[0].rx_burst(QueueId(5), &mut b, 8), 0);
    ports[0].stop().unwrap();
    assert!(!ports[0].is_started());
    assert_eq!(ports[0].rx_burst(QueueId(0), &mut b, 8), 0);
    ports[0].start().unwrap();
    assert_eq!(ports[0].rx_burst(QueueId(0), &mut b, 8), 8);
    // ports() again returns the same ports.
    let again = ethdev::ports(&eal).unwrap();
    assert_eq!(again[1].stats().opackets, 40);
}

#[test]
fn generator_makes_valid_varied_frames_and_splits_flows_by_rss() {
    let eal = ports_eal("gen", &["net_gen0,flows=64,size=mixed"]);
    let ports = ethdev::ports_with(
        &eal,
        &PortConf {
            rx_queues: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let p = &ports[0];
    assert_eq!(p.nb_rx_queues(), 2);
    let mut flows_of: [HashSet<_>; 2] = [HashSet::new(), HashSet::new()];
    let (mut arp, mut udp, mut tcp) = (0, 0, 0);
    let mut sizes: HashMap<usize, u32> = HashMap::new();
    for round in 0..40 {
        for q in 0..2u16 {
            let mut b = MbufBatch::new();
            let n = p.rx_burst(QueueId(q), &mut b, 32);
            assert_eq!(n, 32, "round {round} queue {q}");
            for m in b.iter() {
                let info = parse_frame(m.data()).expect("valid frame");
                *sizes.entry(m.data().len()).or_default() += 1;
                if info.ethertype == EtherType::ARP {
                    arp += 1;
                    continue;
                }
                let t = info.tuple.expect("IPv4 5-tuple");
                match t.proto {
                    6 => tcp += 1,
                    17 => udp += 1,
                    other => panic!("protocol {other}"),
                }
                assert_eq!(
                    m.rss_hash(),
                    t.rss_hash(&shoal::net::toeplitz::RSS_KEY_DEFAULT)
                );
                flows_of[q as usize].insert(t.key());
            }
        }
    }
    // Each flow is seen on one queue only, and both queues have flows.
    assert!(flows_of[0].is_disjoint(&flows_of[1]));
    assert!(!flows_of[0].is_empty() && !flows_of[1].is_empty());
    assert_eq!(flows_of[0].len() + flows_of[1].len(), 64);
    assert!(
        arp > 0 && udp > 0 && tcp > 0,
        "arp {arp} udp {udp} tcp {tcp}"
    );
    assert!(sizes.contains_key(&64) && sizes.contains_key(&576) && sizes.contains_key(&1500));
    assert_eq!(p.stats().ipackets, 40 * 64);
}

#[test]
fn generator_rate_is_a_budget_not_a_burst() {
    let eal = ports_eal("genrate", &["net_gen0,flows=4,rate=1000"]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut total = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(200) {
        let mut b = MbufBatch::new();
        total += p.rx_burst(QueueId(0), &mut b, 32);
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // 1000 pps: never more than the elapsed time allows (plus one burst of slack).
    assert!(
        (total as f64) <= 1000.0 * elapsed + 32.0,
        "{total} in {elapsed}s"
    );
    assert!(total > 0);
}

#[test]
fn ring_port_loops_back_what_it_sends() {
    let eal = ports_eal("ring", &["net_ring0,queues=2"]);
    let ports = ethdev::ports(&eal).unwrap();
    let p = &ports[0];
    let pool = p.pool();
    let mut b = MbufBatch::new();
    for i in 0..10u8 {
        let mut m = pool.alloc().unwrap();
        m.append(60).unwrap().fill(i);
        b.push(m).map_err(|_| ()).unwrap();
    }
    assert_eq!(p.tx_burst(QueueId(1), &mut b), 10);
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 32), 0);
    assert_eq!(p.rx_burst(QueueId(1), &mut b, 32), 10);
    let firsts: Vec<u8> = b.iter().map(|m| m.data()[0]).collect();
    assert_eq!(firsts, (0..10).collect::<Vec<u8>>());
    let s = p.stats();
    assert_eq!((s.opackets, s.ipackets, s.obytes), (10, 10, 600));
}

#[test]
fn pcap_port_replays_a_capture_and_writes_one_tshark_reads() {
    let dir = TempDir::new("ethdev");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    // A capture of generated frames, written with the pcap writer.
    {
        let eal = ports_eal("pcapsrc", &["net_gen0,flows=16,size=100"]);
        let p = &ethdev::ports(&eal).unwrap()[0];
        let mut b = MbufBatch::new();
        p.rx_burst(QueueId(0), &mut b, 50);
        let mut w = ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
        for (i, m) in b.iter().enumerate() {
            w.write(1_700_000_000_000_000_000 + i as u64 * 1000, m.data())
                .unwrap();
        }
        w.into_inner().unwrap();
    }
    let spec = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let eal = ports_eal("pcap", &[&spec]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut got = 0;
    let mut b = MbufBatch::new();
    loop {
        let n = p.rx_burst(QueueId(0), &mut b, 16);
        if n == 0 {
            break;
        }
        got += n;
        assert_eq!(p.tx_burst(QueueId(0), &mut b), n);
    }
    assert_eq!(got, 50, "the capture is read once without infinite_rx");
    let s = p.stats();
    assert_eq!((s.ipackets, s.opackets), (50, 50));
    let back: Vec<_> = PcapReader::new(std::fs::File::open(&output).unwrap())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let orig: Vec<_> = PcapReader::new(std::fs::File::open(&input).unwrap())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back.len(), 50);
    assert!(back.iter().zip(&orig).all(|(a, b)| a.data == b.data));
    match std::process::Command::new("tshark")
        .args([
            "-r",
            output.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.len",
            "-e",
            "ip.src",
        ])
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 50, "{text}");
            assert!(
                lines.iter().filter(|l| l.starts_with("100\t10.")).count() > 40,
                "{text}"
            );
        }
        Err(e) => skip_or_fail(&format!(
            "the tshark check: tshark not runnable ({e}); ci/setup.sh installs it, from ci/apt-packages.txt"
        )),
    }
}

#[test]
fn frames_shorter_than_an_ethernet_header_count_as_rx_errors() {
    let dir = TempDir::new("ethdev");
    let input = dir.join("runts.pcap");
    let mut w = ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
    for len in [60usize, 10, 60, 13, 14, 0] {
        w.write(0, &vec![len as u8; len]).unwrap();
    }
    w.into_inner().unwrap();
    let eal = ports_eal(
        "runts",
        &[&format!("net_pcap0,rx_pcap={}", input.display())],
    );
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut b = MbufBatch::new();
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 32), 3);
    let lens: Vec<usize> = b.iter().map(|m| m.data().len()).collect();
    assert_eq!(lens, vec![60, 60, 14]);
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 32), 0);
    let s = p.stats();
    assert_eq!((s.ipackets, s.ibytes, s.ierrors), (3, 134, 3), "{s:?}");

    // Replayed, a capture of nothing but runts counts each pass and delivers nothing.
    let input = dir.join("runts-only.pcap");
    let mut w = ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
    for len in [1usize, 5, 13] {
        w.write(0, &vec![0; len]).unwrap();
    }
    w.into_inner().unwrap();
    let spec = format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display());
    let eal = ports_eal("runts-loop", &[&spec]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 32), 0);
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 32), 0);
    let s = p.stats();
    assert_eq!((s.ipackets, s.ierrors), (0, 6), "{s:?}");
}

#[test]
fn pcap_infinite_rx_loops_and_bad_captures_are_clear_errors() {
    let dir = TempDir::new("ethdev");
    let input = dir.join("loop.pcap");
    let mut w = ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
    for i in 0..3u8 {
        w.write(0, &[i; 60]).unwrap();
    }
    w.into_inner().unwrap();
    let spec = format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display());
    let eal = ports_eal("pcaploop", &[&spec]);
    let p = &ethdev::ports(&eal).unwrap()[0];
    let mut b = MbufBatch::new();
    assert_eq!(p.rx_burst(QueueId(0), &mut b, 10), 10);
    let firsts: Vec<u8> = b.iter().map(|m| m.data()[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);

    // A truncated capture and a missing one.
    let bad = dir.join("bad.pcap");
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 5]).unwrap();
    let spec = format!("net_pcap0,rx_pcap={}", bad.display());
    let eal = ports_eal("pcapbad", &[&spec]);
    let err = ethdev::ports(&eal).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains("net_pcap0"),
        "{err}"
    );
    let eal = ports_eal("pcapmissing", &["net_pcap0,rx_pcap=/nonexistent/x.pcap"]);
    let err = ethdev::ports(&eal).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/x.pcap"), "{err}");
}

#[test]
fn bad_vdev_specs_fail_with_clear_messages() {
    // A spec that does not parse stops the EAL, before the group is joined.
    for (specs, want) in [
        (&["net_bogus0"][..], "unknown driver"),
        (&["net_gen0,flows=x"], "not a valid number"),
        (&["net_af_packet0"], "needs iface"),
        (&["net_null0", "net_null0"], "two --vdev specs"),
        (&["net_null0,copy=2"], "must be 0 or 1"),
    ] {
        let mut args = vec!["test".to_string()];
        for s in specs {
            args.extend(["--vdev".to_string(), s.to_string()]);
        }
        args.extend(["--file-prefix".into(), unique_prefix("badspec")]);
        match Eal::init(args) {
            Err(shoal::eal::Error::Usage(m)) => assert!(m.contains(want), "{specs:?}: {m}"),
            other => panic!("{specs:?}: {other:?}"),
        }
    }
    // One that parses but names what is not there fails at probe time.
    let spec = "net_af_packet0,iface=shoal-nope-if";
    let eal = ports_eal("badspec", &[spec]);
    let err = ethdev::ports(&eal).unwrap_err().to_string();
    assert!(err.contains("not found"), "{spec}: {err}");
}

#[test]
fn a_group_without_vdevs_has_no_ports() {
    let eal = ports_eal::<&str>("none", &[]);
    assert!(ethdev::ports(&eal).unwrap().is_empty());
    let _ = T;
}

#[test]
fn one_capture_is_split_over_queues_by_flow() {
    let dir = TempDir::new("ethdev");
    let input = dir.join("split.pcap");
    {
        let eal = ports_eal("splitsrc", &["net_gen0,flows=32,size=80"]);
        let p = &ethdev::ports(&eal).unwrap()[0];
        let mut w = ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
        for _ in 0..4 {
            let mut b = MbufBatch::new();
            p.rx_burst(QueueId(0), &mut b, 50);
            for m in b.iter() {
                w.write(0, m.data()).unwrap();
            }
        }
        w.into_inner().unwrap();
    }
    let spec = format!("net_pcap0,rx_pcap={}", input.display());
    let eal = ports_eal("split", &[&spec]);
    let p = &ethdev::ports_with(
        &eal,
        &PortConf {
            rx_queues: Some(2),
            ..Default::default()
        },
    )
    .unwrap()[0];
    let mut flows: [HashSet<_>; 2] = [HashSet::new(), HashSet::new()];
    let mut total = 0;
    for q in 0..2u16 {
        loop {
            let mut b = MbufBatch::new();
            if p.rx_burst(QueueId(q), &mut b, 32) == 0 {
                break;
            }
            total += b.len();
            for m in b.iter() {
                if let Some(t) = parse_frame(m.data()).ok().and_then(|i| i.tuple) {
                    flows[q as usize].insert(t.key());
                }
            }
        }
    }
    assert_eq!(total, 200);
    assert!(flows[0].is_disjoint(&flows[1]));
    assert!(!flows[0].is_empty() && !flows[1].is_empty());
}

#[test]
fn hotplug_retires_a_detached_slot_and_never_reuses_it() {
    use ethdev::{Error, PortId};
    let eal = ports_eal("hotplug", &["net_null0"]);
    let first = ethdev::ports(&eal).unwrap();
    assert_eq!(first.len(), 1);
    let ring = ethdev::attach_vdev(&eal, "net_ring0").unwrap();
    assert_eq!(ring.id(), PortId(1));
    assert!(ring.is_started());
    let ids = |eal: &Eal| -> Vec<u16> {
        ethdev::ports(eal)
            .unwrap()
            .iter()
            .map(|p| p.id().0)
            .collect()
    };
    assert_eq!(ids(&eal), [0, 1]);
    // Packets left in the ring go back to the pool at detach.
    let pool = ring.pool();
    let before = pool.avail_count();
    let mut b = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut b, 8));
    assert_eq!(ring.tx_burst(QueueId(0), &mut b), 8);
    assert_eq!(ethdev::detach(&eal, PortId(1)).unwrap(), "net_ring0");
    assert_eq!(pool.avail_count(), before);
    assert!(matches!(ring.check(), Err(Error::Detached(PortId(1)))));
    assert!(matches!(ring.start(), Err(Error::Detached(PortId(1)))));
    assert!(!ring.is_started());
    assert!(matches!(
        ethdev::detach(&eal, PortId(1)),
        Err(Error::Detached(PortId(1)))
    ));
    assert!(matches!(
        ethdev::port(&eal, PortId(1)),
        Err(Error::Detached(PortId(1)))
    ));
    assert!(matches!(
        ethdev::detach(&eal, PortId(7)),
        Err(Error::NoSuchPort(PortId(7)))
    ));
    assert!(matches!(
        ethdev::attach_vdev(&eal, "net_null0"),
        Err(Error::DuplicateName(_))
    ));
    assert!(matches!(
        ethdev::attach_vdev(&eal, "net_bogus0"),
        Err(Error::BadSpec { .. })
    ));
    // A failed attach does not use up a slot; the retired one is skipped.
    let again = ethdev::attach_vdev(&eal, "net_null1").unwrap();
    assert_eq!(again.id(), PortId(2));
    assert_eq!(ids(&eal), [0, 2]);
    assert!(ethdev::table_info(&eal).iter().all(|p| p.id != 1));
}
