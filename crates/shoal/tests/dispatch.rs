//! `shoal::dispatch` with real ports and, for liveness, real worker processes (the test binary
//! re-executed as a secondary).

use std::time::{Duration, Instant};

use shoal::dispatch::{Ctx, Distributor, Error, Verdict, Worker, WorkerEvent};
use shoal::ethdev::{self, PortConf};
use shoal::mbuf::{Mbuf, MbufBatch, MbufPool};
use shoal_testkit::{child_or, child_prefix, init, ports_eal, Group};

const T: Duration = Duration::from_secs(30);

#[test]
fn a_dispatcher_may_answer_and_drop_and_every_packet_is_counted() {
    let eal = ports_eal("disp-ans", &["net_gen0,flows=8", "net_gen1,flows=8"]);
    let pool = MbufPool::create(&eal, "dpool", 4095, 0, 0, 2048 + 128).unwrap();
    let conf = PortConf {
        tx_queues: Some(2),
        pool: Some(pool.clone()),
        ..Default::default()
    };
    let ports = ethdev::ports_with(&eal, &conf).unwrap();
    let mut n = 0u64;
    let sut = move |_: &mut Mbuf, ctx: &Ctx<'_>| {
        n += 1;
        match n % 4 {
            0 => Verdict::Answer(ctx.port()),
            1 => Verdict::Drop,
            2 => Verdict::Worker(7), // no such worker: dropped, counted
            _ => Verdict::Worker(0),
        }
    };
    let mut d = Distributor::builder(&eal, "ans")
        .workers(1)
        .ring_size(1024)
        .create(ports, pool.clone(), sut)
        .unwrap();
    let mut w = Worker::attach(&eal, "ans", 0).unwrap();
    let mut events = Vec::new();
    d.check(&mut events);
    assert_eq!(
        events,
        vec![WorkerEvent::Joined {
            id: 0,
            pid: std::process::id() as u64
        }]
    );
    let mut b = MbufBatch::new();
    let deadline = Instant::now() + T;
    while d.stats().rx < 4000 {
        assert!(Instant::now() < deadline, "{:?}", d.stats());
        d.poll(&mut events);
        while w.recv(&mut b).is_some_and(|n| n > 0) {
            b.clear();
        }
    }
    drop(w); // leaves: the distributor need not wait for it
    let s = d.stop(Duration::from_secs(5));
    assert_eq!(s.unaccounted(), 0, "{s:?}");
    assert!(
        s.answered > 0 && s.drop_by_dispatcher > 0 && s.drop_bad_verdict > 0,
        "{s:?}"
    );
    let w0 = &s.workers[0];
    assert_eq!(w0.enqueued, w0.rx + w0.taken_back, "{s:?}");
    assert_eq!(s.state, "stopped");
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn each_packet_is_parsed_once_along_the_pipeline() {
    use shoal::dispatch::{self, FlowHash};
    use shoal::mbuf::ol_flags;
    use shoal::net::{self, ptype};
    let eal = ports_eal("disp-once", &["net_gen0,flows=16"]);
    let pool = MbufPool::create(&eal, "opool", 4095, 0, 0, 2048 + 128).unwrap();
    let conf = PortConf {
        tx_queues: Some(2),
        pool: Some(pool.clone()),
        ..Default::default()
    };
    let ports = ethdev::ports_with(&eal, &conf).unwrap();
    let mut d = Distributor::builder(&eal, "once")
        .workers(1)
        .ring_size(1024)
        .create(ports, pool.clone(), FlowHash)
        .unwrap();
    let mut w = Worker::attach(&eal, "once", 0).unwrap();
    let mut events = Vec::new();
    d.check(&mut events);
    let mut b = MbufBatch::new();
    let (mut flows, mut arps) = (0u64, 0u64);
    let deadline = Instant::now() + T;
    while flows < 2000 || arps < 10 {
        assert!(Instant::now() < deadline, "{flows} {arps} {:?}", d.stats());
        d.poll(&mut events);
        while w.recv(&mut b).is_some_and(|n| n > 0) {
            for m in b.iter() {
                let info = net::parse_frame(m.data()).unwrap();
                // The generator says what it built, as a NIC does.
                assert_eq!(m.packet_type(), info.ptype());
                if m.packet_type() == ptype::L2_ETHER_ARP {
                    // A neighbour frame, copied to every worker: no flow hash.
                    assert!(dispatch::is_neighbour_frame(m.data()));
                    assert_eq!(m.flow_hash(), None);
                    arps += 1;
                } else {
                    // What the dispatcher computed travels with the packet.
                    assert_eq!(m.flow_hash(), Some(dispatch::flow_hash(m.data())));
                    assert_ne!(m.flow_hash(), Some(0));
                    assert_ne!(m.ol_flags() & ol_flags::RX_RSS_HASH, 0);
                    assert_eq!(info.ptype() & ptype::L3_MASK, ptype::L3_IPV4);
                    flows += 1;
                }
            }
            b.clear();
        }
    }
    drop(w);
    let s = d.stop(Duration::from_secs(5));
    assert_eq!(s.unaccounted(), 0, "{s:?}");
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn a_neighbour_frame_of_unknown_type_is_found_by_its_bytes_and_typed() {
    use shoal::dispatch;
    use shoal::net::{self, ptype, EthernetAddress};
    let eal = ports_eal("disp-neigh", &["net_null0"]);
    let pool = MbufPool::create(&eal, "npool", 63, 0, 0, 2048 + 128).unwrap();
    let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let mut frame = [0u8; 64];
    let n =
        net::build_arp_request(&mut frame, a, [10, 0, 0, 1].into(), [10, 0, 0, 2].into()).unwrap();
    let mut m = pool.alloc().unwrap();
    m.append(n as u16).unwrap().copy_from_slice(&frame[..n]);
    assert_eq!(m.packet_type(), 0);
    assert!(dispatch::is_neighbour(&mut m));
    assert_eq!(m.packet_type(), ptype::L2_ETHER_ARP);
    // A known IPv4 type is answered without reading the bytes: claim UDP over an ARP frame.
    m.set_packet_type(ptype::L2_ETHER | ptype::L3_IPV4 | ptype::L4_UDP);
    assert!(!dispatch::is_neighbour(&mut m));
    drop(m);
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn with_backpressure_a_slow_worker_holds_the_ports_back_and_nothing_is_dropped() {
    let eal = ports_eal("disp-bp", &["net_gen0,flows=8"]);
    let pool = MbufPool::create(&eal, "bpool", 4095, 0, 0, 2048 + 128).unwrap();
    let conf = PortConf {
        tx_queues: Some(2),
        pool: Some(pool.clone()),
        ..Default::default()
    };
    let ports = ethdev::ports_with(&eal, &conf).unwrap();
    let mut d = Distributor::builder(&eal, "bp")
        .workers(1)
        .ring_size(512)
        .copy_neighbour_frames(false)
        .backpressure(true)
        .create(ports, pool.clone(), shoal::dispatch::RoundRobin::default())
        .unwrap();
    let mut events = Vec::new();
    // No live worker: nothing is received (it would have nowhere to go).
    for _ in 0..100 {
        assert_eq!(d.poll(&mut events), 0);
    }
    assert_eq!(d.stats().rx, 0);
    let mut w = Worker::attach(&eal, "bp", 0).unwrap();
    d.check(&mut events);
    // A worker that takes nothing: the distributor stops at half its ring.
    for _ in 0..1000 {
        d.poll(&mut events);
    }
    let s = d.stats();
    assert!(s.rx > 0 && s.rx <= 256 + 32, "{s:?}");
    assert_eq!(s.workers[0].drop_ring_full, 0, "{s:?}");
    // It takes them: the distributor goes on.
    let mut b = MbufBatch::new();
    let deadline = Instant::now() + T;
    let mut got = 0;
    while got < 5000 {
        assert!(Instant::now() < deadline, "{:?}", d.stats());
        d.poll(&mut events);
        while let Some(n) = w.recv(&mut b).filter(|&n| n > 0) {
            got += n;
            b.clear();
        }
    }
    drop(w);
    let s = d.stop(Duration::from_secs(5));
    assert_eq!(s.unaccounted(), 0, "{s:?}");
    assert_eq!(s.dropped(), 0, "{s:?}");
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn joining_errors_say_what_is_wrong() {
    let eal = ports_eal("disp-err", &["net_null0"]);
    let err = Worker::attach(&eal, "nope", 0).unwrap_err();
    assert!(matches!(err, Error::Counters { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is a distributor of that name running?"),
        "{err}"
    );
    let pool = MbufPool::create(&eal, "epool", 511, 0, 0, 2048).unwrap();
    let ports = ethdev::ports(&eal).unwrap();
    let b = || Distributor::builder(&eal, "errs");
    let rr = shoal::dispatch::RoundRobin::default;
    assert!(matches!(
        b().workers(0).create(ports.clone(), pool.clone(), rr()),
        Err(Error::BadWorkerCount(0))
    ));
    assert!(matches!(
        b().ring_size(1000)
            .create(ports.clone(), pool.clone(), rr()),
        Err(Error::BadRingSize(1000))
    ));
    assert!(matches!(
        b().create(vec![], pool.clone(), rr()),
        Err(Error::NoPorts)
    ));
    assert!(matches!(
        Distributor::builder(&eal, "bad/name").create(ports.clone(), pool.clone(), rr()),
        Err(Error::BadName(_))
    ));
    let _d = b()
        .workers(2)
        .create(ports.clone(), pool.clone(), rr())
        .unwrap();
    assert!(matches!(
        b().create(ports, pool.clone(), rr()),
        Err(Error::Counters { .. })
    ));
    let err = Worker::attach(&eal, "errs", 2).unwrap_err();
    assert!(
        matches!(err, Error::NoSuchWorker { id: 2, workers: 2 }),
        "{err}"
    );
}

const TAKEOVER: &str = "a_live_workers_id_is_refused_and_a_dead_ones_is_taken_over";

/// A worker process: role `w<lcore>`.
fn worker_child(role: &str) {
    let lcore = role.trim_start_matches('w');
    let eal = init(
        &child_prefix(),
        &["--no-huge", "--proc-type=secondary", "-l", lcore],
    )
    .unwrap();
    match Worker::attach(&eal, "take", 0) {
        Ok(mut w) => {
            println!("attached start {}", w.starts());
            let mut b = MbufBatch::new();
            while w.recv(&mut b).is_some() {
                b.clear();
            }
            println!("left");
        }
        Err(e) => println!("refused: {e}"),
    }
}

#[test]
fn a_live_workers_id_is_refused_and_a_dead_ones_is_taken_over() {
    child_or!(worker_child);
    let g = Group::new("disp-take");
    let eal = init(
        g.prefix(),
        &["--no-huge", "-l", "0", "--vdev", "net_gen0,rate=20000"],
    )
    .unwrap();
    let pool = MbufPool::create(&eal, "tpool", 4095, 0, 0, 2048 + 128).unwrap();
    let conf = PortConf {
        tx_queues: Some(2),
        pool: Some(pool.clone()),
        ..Default::default()
    };
    let ports = ethdev::ports_with(&eal, &conf).unwrap();
    let mut d = Distributor::builder(&eal, "take")
        .create(ports, pool.clone(), shoal::dispatch::FlowHash)
        .unwrap();
    let mut first = g.spawn_self(TAKEOVER, "w1", &[]);
    first.wait_for("attached start 1", T);
    let mut second = g.spawn_self(TAKEOVER, "w2", &[]);
    assert_eq!(second.wait_exit(T), Some(0));
    let out = second.output();
    assert!(
        out.contains("refused: worker 0 is already running"),
        "{out}"
    );

    // Packets flow to the first, which is then killed: its ring is taken back, its id free.
    let mut events = Vec::new();
    let until = |d: &mut Distributor<_>,
                 events: &mut Vec<WorkerEvent>,
                 what: &str,
                 f: &dyn Fn(&WorkerEvent) -> bool| {
        let deadline = Instant::now() + T;
        loop {
            d.poll(events);
            if events.iter().any(f) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what}: {events:?}");
            std::thread::yield_now();
        }
    };
    until(&mut d, &mut events, "join", &|e| {
        matches!(e, WorkerEvent::Joined { id: 0, .. })
    });
    let deadline = Instant::now() + T;
    while d.stats().workers[0].enqueued < 1000 {
        assert!(Instant::now() < deadline, "{:?}", d.stats());
        d.poll(&mut events);
    }
    first.kill9();
    until(&mut d, &mut events, "death", &|e| {
        matches!(e, WorkerEvent::Died { id: 0, .. })
    });
    let mut third = g.spawn_self(TAKEOVER, "w3", &[]);
    third.wait_for("attached start 2", T);
    events.clear();
    until(&mut d, &mut events, "rejoin", &|e| {
        matches!(e, WorkerEvent::Joined { id: 0, .. })
    });
    let before = d.stats().workers[0].rx;
    let deadline = Instant::now() + T;
    while d.stats().workers[0].rx <= before {
        assert!(Instant::now() < deadline, "{:?}", d.stats());
        d.poll(&mut events);
    }
    let s = d.stop(T);
    assert_eq!(third.wait_exit(T), Some(0));
    assert!(third.output().contains("left"));
    assert_eq!(s.unaccounted(), 0, "{s:?}");
    let w = &s.workers[0];
    assert_eq!(w.starts, 2);
    assert_eq!(w.ring_count, 0);
    // The killed worker may have died between taking a burst and counting it.
    assert!(w.enqueued >= w.rx + w.taken_back, "{s:?}");
    assert!(
        w.enqueued - (w.rx + w.taken_back) <= shoal::mbuf::MAX_BURST as u64,
        "{s:?}"
    );
    eal.reap_dead();
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn only_a_dead_distributors_pipeline_can_be_adopted_and_counters_are_aligned() {
    let eal = ports_eal("disp-adopt-err", &["net_null0"]);
    let pool = MbufPool::create(&eal, "apool", 511, 0, 0, 2048).unwrap();
    let ports = ethdev::ports(&eal).unwrap();
    // Half a line right before the counters: they are still aligned as lines (128 bytes, more
    // than a memzone's default alignment).
    shoal::memzone::Memzone::reserve_aligned(&eal, "half", 64, 128).unwrap();
    let rr = shoal::dispatch::RoundRobin::default;
    let err = Distributor::builder(&eal, "nope")
        .adopt(ports.clone(), pool.clone(), rr())
        .unwrap_err();
    assert!(matches!(err, Error::Counters { .. }), "{err}");
    let d = Distributor::builder(&eal, "live")
        .workers(2)
        .create(ports.clone(), pool.clone(), rr())
        .unwrap();
    let err = Distributor::builder(&eal, "live")
        .workers(2)
        .adopt(ports, pool.clone(), rr())
        .unwrap_err();
    assert!(
        matches!(err, Error::DistributorRunning { pid, .. } if pid == std::process::id() as u64),
        "{err}"
    );
    let listed = shoal::dispatch::list(&eal);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].adoptions, 0);
    assert_eq!(listed[0].adopted_first_burst_ns, 0);
    let s = d.stop(Duration::from_secs(1));
    assert_eq!(s.workers.len(), 2);
}

const ADOPT: &str = "a_worker_waiting_for_adoption_keeps_its_ring_through_a_distributors_death";

/// Roles: `dist` (the primary's distributor), `worker` (a secondary that waits for an
/// adopter), `adopter` (a primary adopting the dead one's group and pipeline).
fn adopt_roles(role: &str) {
    shoal::eal::setup_process(&[]);
    let join = |extra: &[&str]| init(&child_prefix(), &[&["--no-huge"], extra].concat());
    match role {
        "dist" | "adopter" => {
            let adopter = role == "adopter";
            let eal = if adopter {
                join(&["-l", "0", "--adopt"]).unwrap()
            } else {
                join(&["-l", "0", "--vdev", "net_gen0,flows=16,rate=20000"]).unwrap()
            };
            let pool = if adopter {
                MbufPool::lookup(&eal, "adpool").unwrap()
            } else {
                MbufPool::create(&eal, "adpool", 4095, 0, 0, 2048 + 128).unwrap()
            };
            let conf = PortConf {
                tx_queues: Some(2),
                pool: Some(pool.clone()),
                ..Default::default()
            };
            let ports = ethdev::ports_with(&eal, &conf).unwrap();
            let b = || Distributor::builder(&eal, "adp").ring_size(256);
            let mut d = if adopter {
                let err = b()
                    .workers(2)
                    .adopt(
                        ports.clone(),
                        pool.clone(),
                        shoal::dispatch::RoundRobin::default(),
                    )
                    .unwrap_err();
                println!("refused: {err}");
                b().adopt(ports, pool.clone(), shoal::dispatch::RoundRobin::default())
                    .unwrap()
            } else {
                b().create(ports, pool.clone(), shoal::dispatch::RoundRobin::default())
                    .unwrap()
            };
            println!("{role} ready");
            let mut events = Vec::new();
            while !eal.should_quit() {
                d.poll(&mut events);
                for e in events.drain(..) {
                    println!("event {e:?}");
                }
                if let Some(p) = d.take_adoption_pause() {
                    println!("pause {} us", p.pause.as_micros());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let s = d.stop(T);
            eal.reap_dead();
            println!(
                "stopped: unaccounted {} ring {} pool in use {}",
                s.unaccounted(),
                s.workers[0].ring_count,
                pool.in_use_count()
            );
        }
        _ => {
            let eal = join(&[
                "-l",
                "1",
                "--proc-type=secondary",
                "--primary-grace",
                "60000",
            ])
            .unwrap();
            let mut w = Worker::attach(&eal, "adp", 0).unwrap();
            w.set_wait_for_adoption(true);
            println!("worker ready");
            let mut b = MbufBatch::new();
            while w.recv(&mut b).is_some() {
                b.clear();
            }
            println!("worker left: rx {}", w.stats().rx);
        }
    }
}

#[test]
fn a_worker_waiting_for_adoption_keeps_its_ring_through_a_distributors_death() {
    child_or!(adopt_roles);
    let g = Group::new("disp-adopt");
    let mut dist = g.spawn_self(ADOPT, "dist", &[]);
    dist.wait_for("dist ready", T);
    let mut worker = g.spawn_self(ADOPT, "worker", &[]);
    worker.wait_for("worker ready", T);
    dist.wait_for("event Joined { id: 0", T);
    let eal = shoal::eal::Eal::inspect(g.prefix()).unwrap();
    let stats = || shoal::dispatch::list(&eal).pop().expect("the pipeline");
    let deadline = Instant::now() + T;
    while stats().workers[0].rx < 200 {
        assert!(Instant::now() < deadline, "{:?}", stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    dist.kill9();
    worker.wait_for("carrying on for up to 60000 ms", T);
    let rx_before = stats().workers[0].rx;

    let mut adopter = g.spawn_self(ADOPT, "adopter", &[]);
    adopter.wait_for("refused: pipeline \"adp\" has 1 workers, not 2", T);
    adopter.wait_for("adopter ready", T);
    adopter.wait_for("event Joined { id: 0", T);
    adopter.wait_for("pause ", T);
    let deadline = Instant::now() + T;
    while stats().workers[0].rx < rx_before + 200 {
        assert!(Instant::now() < deadline, "{:?}", stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = stats();
    assert_eq!(s.adoptions, 1, "{s:?}");
    assert!(s.adopted_first_burst_ns > 0, "{s:?}");
    assert!(s.last_adoption_pause_ns > 0, "{s:?}");
    assert_eq!(s.workers[0].starts, 1, "the worker never restarted: {s:?}");
    assert!(worker.try_exit().is_none(), "{}", worker.output());

    let (code, out) = adopter.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(worker.wait_exit(T), Some(0), "{}", worker.output());
    assert!(worker.output().contains("worker left: rx"));
    // The worker drained its ring; every buffer, the dead distributor's included, is back.
    assert!(out.contains(" ring 0 pool in use 0"), "{out}");
}
