//! Mempools and mbufs across real processes: the test binary re-executes itself as a secondary
//! (DPDK's process_dup pattern). Objects allocated in one process are freed in another, and a
//! secondary killed with SIGKILL while holding buffers (in hand, in its cache, in flight) gives
//! them back through the primary's reaper.

use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::mbuf::{Mbuf, MbufBatch, MbufPool, MbufRing, DEFAULT_BUF_SIZE};
use shoal::mempool::{Mempool, MempoolConfig, ObjIdx};
use shoal::ring::{Ring, RingConfig, SyncMode};
use shoal_testkit::{child_or, child_prefix, init, Group};

const T: Duration = Duration::from_secs(30);

/// A ring of plain object indices.
fn obj_ring_create(eal: &Eal, name: &str) -> Ring<ObjIdx> {
    Ring::create(eal, name, &RingConfig::new(256)).unwrap()
}

fn obj_ring_lookup(eal: &Eal, name: &str) -> Ring<ObjIdx> {
    Ring::lookup(eal, name).unwrap()
}

fn pattern(m: &mut Mbuf, k: u32) {
    let n = 60 + (k % 200) as u16;
    m.append(n).unwrap().fill(k as u8);
    m.set_rss_hash(k);
}

fn check(m: &Mbuf) -> u32 {
    let k = m.rss_hash();
    assert_eq!(m.data_len() as u32, 60 + k % 200);
    assert!(m.data().iter().all(|&b| b == k as u8), "payload of {k}");
    k
}

fn run_child(role: &str) {
    let prefix = child_prefix();
    match role {
        "xfer" => {
            let eal = init(&prefix, &["--proc-type=secondary", "-l", "1"]).expect("eal");
            let pool = MbufPool::lookup(&eal, "xmb").unwrap();
            let to_primary = MbufRing::lookup(&eal, "to_primary").unwrap();
            let to_secondary = MbufRing::lookup(&eal, "to_secondary").unwrap();
            // Free in this process what the primary allocated.
            let mut got = MbufBatch::new();
            let mut seen = 0;
            while seen < 50 {
                if to_secondary.dequeue_burst(&mut got, 32) == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                for m in got.iter() {
                    check(m);
                }
                seen += got.len();
                got.clear();
            }
            // Allocate here what the primary frees.
            for k in 0..100 {
                let mut m = pool.alloc().unwrap();
                pattern(&mut m, 1000 + k);
                assert!(to_primary.enqueue(m).is_ok());
            }
            // Plain objects, through a ring of ObjIdx.
            let objs = Mempool::lookup(&eal, "xobj").unwrap();
            let mut tx = obj_ring_lookup(&eal, "objs").producer().unwrap();
            for k in 0..10u8 {
                let mut o = objs.get().unwrap();
                o.data_mut().fill(k);
                tx.enqueue(o.into_raw()).unwrap();
            }
            println!("done in_use={}", pool.in_use_count());
        }
        "holder" => {
            let eal = init(&prefix, &["--proc-type=secondary", "-l", "1"]).expect("eal");
            let pool = MbufPool::lookup(&eal, "kmb").unwrap();
            let objs = Mempool::lookup(&eal, "kobj").unwrap();
            let inflight = MbufRing::lookup(&eal, "inflight").unwrap();
            let clones_in = MbufRing::lookup(&eal, "clones").unwrap();
            // In hand.
            let mut hand: Vec<Mbuf> = (0..100).map(|_| pool.alloc().unwrap()).collect();
            let mut hand_objs = Vec::new();
            assert!(objs.get_bulk(30, &mut hand_objs));
            // In the cache: take some and give them back.
            let mut b = MbufBatch::new();
            assert!(pool.alloc_bulk(&mut b, 50));
            b.clear();
            let mut tmp = Vec::new();
            assert!(objs.get_bulk(20, &mut tmp));
            drop(tmp);
            // In flight: sent, not yet received.
            for k in 0..20 {
                let mut m = pool.alloc().unwrap();
                pattern(&mut m, k);
                inflight.enqueue(m).unwrap();
            }
            // A clone of a primary's mbuf, held here.
            let clone = loop {
                if let Some(c) = clones_in.dequeue() {
                    break c;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            assert!(clone.is_indirect());
            hand.push(clone);
            // A chain in hand.
            let mut head = pool.alloc().unwrap();
            head.chain(pool.alloc().unwrap()).unwrap();
            hand.push(head);
            println!(
                "holding cache={} objs_cache={}",
                pool.cache_stats(shoal::eal::LcoreId(1)).len,
                objs.cache_stats(shoal::eal::LcoreId(1)).len
            );
            std::thread::sleep(T);
            drop((hand, hand_objs));
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn buffers_allocated_in_one_process_are_freed_in_another() {
    child_or!(run_child);
    let g = Group::new("xproc");
    let eal = init(g.prefix(), &["-l", "0"]).expect("eal");
    let pool = MbufPool::create(&eal, "xmb", 1023, 32, 0, DEFAULT_BUF_SIZE).unwrap();
    let objs = Mempool::create(&eal, "xobj", MempoolConfig::new(255, 128).cache_size(16)).unwrap();
    let objs_ring = obj_ring_create(&eal, "objs");
    let sp = RingConfig {
        prod: SyncMode::Sp,
        cons: SyncMode::Sp,
        ..RingConfig::new(256)
    };
    let to_primary = MbufRing::create(&eal, "to_primary", sp).unwrap();
    let to_secondary = MbufRing::create(&eal, "to_secondary", sp).unwrap();
    for k in 0..50 {
        let mut m = pool.alloc().unwrap();
        pattern(&mut m, k);
        to_secondary.enqueue(m).unwrap();
    }
    assert_eq!(pool.in_use_count(), 50);
    let mut child = g.spawn_self(
        "buffers_allocated_in_one_process_are_freed_in_another",
        "xfer",
        &[],
    );
    child.wait_for("done", T);
    assert_eq!(child.wait_exit(T), Some(0), "{}", child.output());
    // The secondary freed the 50 and left cleanly: its cache went back with it.
    let mut batch = MbufBatch::new();
    let mut keys = Vec::new();
    while to_primary.dequeue_burst(&mut batch, 64) > 0 {
        keys.extend(batch.iter().map(check));
        batch.clear();
    }
    keys.sort_unstable();
    assert_eq!(keys, (1000..1100).collect::<Vec<_>>());
    assert_eq!(to_primary.refused(), 0);
    let mut rx = objs_ring.consumer().unwrap();
    let mut n = 0;
    while let Some(raw) = rx.dequeue() {
        let o = objs.from_raw(raw).expect("an object in flight");
        assert!(o.data().iter().all(|&b| b == o.data()[0]));
        n += 1;
    }
    assert_eq!(n, 10);
    assert_eq!(pool.in_use_count(), 0, "{:?}", pool.usage());
    assert_eq!(objs.in_use_count(), 0, "{:?}", objs.usage());
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
    assert!(objs.audit().is_ok(), "{:?}", objs.audit());
}

#[test]
fn killed_secondary_gives_back_what_it_held() {
    child_or!(run_child);
    let g = Group::new("kill9");
    let eal = init(g.prefix(), &["-l", "0"]).expect("eal");
    let pool = MbufPool::create(&eal, "kmb", 2047, 64, 0, DEFAULT_BUF_SIZE).unwrap();
    let clones = MbufPool::create(&eal, "kcl", 63, 0, 0, 0).unwrap();
    let objs = Mempool::create(&eal, "kobj", MempoolConfig::new(511, 64).cache_size(32)).unwrap();
    let inflight = MbufRing::create(&eal, "inflight", RingConfig::new(64)).unwrap();
    let clones_out = MbufRing::create(&eal, "clones", RingConfig::new(8)).unwrap();
    // A direct mbuf whose only other reference will be the secondary's clone.
    let mut direct = pool.alloc().unwrap();
    pattern(&mut direct, 7);
    clones_out
        .enqueue(direct.clone_in(&clones).unwrap())
        .unwrap();
    drop(direct);
    let baseline = (
        pool.in_use_count(),
        clones.in_use_count(),
        objs.in_use_count(),
    );
    assert_eq!(
        baseline,
        (1, 1, 0),
        "the direct mbuf lives on through its clone"
    );

    let mut child = g.spawn_self("killed_secondary_gives_back_what_it_held", "holder", &[]);
    let line = child.wait_for("holding", T);
    println!("secondary: {line}");
    let slot = eal
        .processes()
        .into_iter()
        .find(|p| p.pid == child.pid())
        .expect("secondary in the process table")
        .slot;
    let usage = pool.usage();
    let theirs = usage.by_slot.iter().find(|s| s.slot == slot).unwrap();
    assert_eq!(theirs.in_hand, 102, "{usage:?}");
    assert!(theirs.in_cache > 0, "{usage:?}");
    assert_eq!(usage.in_flight, 20);
    assert!(objs.in_use_by_slot().contains(&(slot, 30)));
    assert!(matches!(
        shoal::mempool::reclaim(&eal, slot),
        Err(shoal::mempool::Error::SlotAlive { .. })
    ));

    child.kill9();
    // The primary's reaper notices within a few hundred milliseconds; never assert on time,
    // only bound the wait.
    let deadline = Instant::now() + T;
    loop {
        let now = (
            pool.in_use_count(),
            clones.in_use_count(),
            objs.in_use_count(),
        );
        if now == (20, 0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still in use: {now:?}; mbufs {:?}; objs {:?}",
            pool.usage(),
            objs.usage()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(eal.processes().iter().all(|p| p.pid != child.pid()));
    // What was in flight was not the dead process's: the receiver owns it.
    let mut batch = MbufBatch::new();
    assert_eq!(inflight.dequeue_burst(&mut batch, 64), 20);
    let mut keys: Vec<u32> = batch.iter().map(check).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..20).collect::<Vec<_>>());
    drop(batch);
    assert_eq!(pool.in_use_count(), 0);
    for audit in [pool.audit(), clones.audit(), objs.audit()] {
        assert!(audit.is_ok(), "{audit:?}");
        assert_eq!((audit.orphaned, audit.in_flight, audit.shared), (0, 0, 0));
    }
    // Reclaiming again (what `shoal reclaim` does) finds nothing left.
    let again = shoal::mempool::reclaim(&eal, slot).unwrap();
    assert!(again.is_empty(), "{again:?}");
}
