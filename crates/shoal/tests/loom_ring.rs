//! Loom models of the ring's sync modes. They run the real `Ring` code: under `cfg(loom)` the
//! header's atomics are loom's (the header is built on a process-local region), and every slot
//! access is mirrored on a loom cell, so loom checks both the position protocol and that each
//! slot write happens before the read of it (and each read before the next write).
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release -p shoal --test loom_ring`
#![cfg(loom)]

use loom::thread;

use shoal::memory::Fresh;
use shoal::ring::{Ring, RingConfig, SyncMode};

fn ring(count: u32, exact_size: bool, prod: SyncMode, cons: SyncMode) -> Ring<u32> {
    let cfg = RingConfig {
        count,
        prod,
        cons,
        exact_size,
        htd_max: None,
    };
    Ring::init(
        Fresh::heap(Ring::<u32>::memsize(&cfg).unwrap()),
        "loom",
        &cfg,
    )
    .unwrap()
}

fn drain(c: &mut shoal::ring::Consumer<u32>, buf: &mut [u32], got: &mut Vec<u32>) {
    let n = c.dequeue_burst(buf);
    got.extend_from_slice(&buf[..n]);
}

/// Tries to dequeue `tries` times, letting other threads run before each try (loom explores
/// where they stand when we look), then waits for `producers` and takes what is left.
fn drain_around(
    c: &mut shoal::ring::Consumer<u32>,
    tries: usize,
    producers: Vec<thread::JoinHandle<()>>,
) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = [0u32; 4];
    for _ in 0..tries {
        thread::yield_now();
        drain(c, &mut buf, &mut got);
    }
    for t in producers {
        t.join().unwrap();
    }
    drain(c, &mut buf, &mut got);
    got
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// SP/SC through a ring of capacity 1: every value wraps round the two slots; the consumer
/// sees 1, 2, 3 in order.
#[test]
fn spsc_capacity_one_keeps_order() {
    model(|| {
        let r = ring(1, true, SyncMode::Sp, SyncMode::Sp);
        let mut p = r.producer().unwrap();
        let mut c = r.consumer().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3u32 {
                while p.enqueue(v).is_err() {
                    thread::yield_now();
                }
            }
        });
        for want in 1..=3u32 {
            loop {
                if let Some(v) = c.dequeue() {
                    assert_eq!(v, want);
                    break;
                }
                thread::yield_now();
            }
        }
        t.join().unwrap();
        assert!(r.is_empty());
    });
}

/// SP/SC bursts that straddle the end of the slots.
#[test]
fn spsc_bursts_wrap() {
    model(|| {
        let r = ring(4, false, SyncMode::Sp, SyncMode::Sp);
        let mut p = r.producer().unwrap();
        let mut c = r.consumer().unwrap();
        let t = thread::spawn(move || {
            let vals = [1u32, 2, 3, 4, 5];
            let mut i = 0;
            while i < vals.len() {
                let n = p.enqueue_burst(&vals[i..(i + 2).min(vals.len())]);
                if n == 0 {
                    thread::yield_now();
                }
                i += n;
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u32; 3];
        while got.len() < 5 {
            let n = c.dequeue_burst(&mut buf);
            if n == 0 {
                thread::yield_now();
            }
            got.extend_from_slice(&buf[..n]);
        }
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3, 4, 5]);
    });
}

/// Two producers race for the head of a `mode` side while a consumer drains concurrently.
/// Each value comes out exactly once, each producer's pair whole and in order.
fn two_producers(mode: SyncMode) {
    model(move || {
        let r = ring(8, false, mode, SyncMode::Sp);
        let mut c = r.consumer().unwrap();
        let ts: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let mut p = r.producer().unwrap();
                thread::spawn(move || {
                    assert_eq!(p.enqueue_bulk(&[base, base + 1]).map(|_| ()), Ok(()));
                })
            })
            .collect();
        let got = drain_around(&mut c, 2, ts);
        assert_eq!(got.len(), 4);
        let pos = |v: u32| got.iter().position(|&g| g == v).unwrap();
        assert!(pos(10) + 1 == pos(11) && pos(20) + 1 == pos(21), "{got:?}");
        assert!(r.is_empty());
    });
}

/// Two consumers race for the head of a `mode` side while a producer fills it.
fn two_consumers(mode: SyncMode) {
    model(move || {
        let r = ring(4, false, SyncMode::Sp, mode);
        let mut p = r.producer().unwrap();
        assert_eq!(p.enqueue(1), Ok(()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let mut c = r.consumer().unwrap();
                thread::spawn(move || {
                    let mut buf = [0u32; 2];
                    let n = c.dequeue_burst(&mut buf);
                    buf[..n].to_vec()
                })
            })
            .collect();
        assert_eq!(p.enqueue_burst(&[2, 3]), 2);
        let mut got: Vec<u32> = ts.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let mut c = r.consumer().unwrap();
        let mut buf = [0u32; 4];
        drain(&mut c, &mut buf, &mut got);
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn mp_producers_publish_every_value_once() {
    two_producers(SyncMode::Mp);
}

#[test]
fn mc_consumers_take_every_value_once() {
    two_consumers(SyncMode::Mp);
}

#[test]
fn rts_producers_publish_every_value_once() {
    two_producers(SyncMode::MpRts);
}

#[test]
fn rts_consumers_take_every_value_once() {
    two_consumers(SyncMode::MpRts);
}

#[test]
fn hts_producers_publish_every_value_once() {
    two_producers(SyncMode::MpHts);
}

#[test]
fn hts_consumers_take_every_value_once() {
    two_consumers(SyncMode::MpHts);
}

/// HTS zero-copy reservations: a second producer waits while the first writes in place.
#[test]
fn hts_zero_copy_reservations_are_serialised() {
    model(|| {
        let r = ring(4, false, SyncMode::MpHts, SyncMode::Sp);
        let mut c = r.consumer().unwrap();
        let ts: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|base| {
                let mut p = r.producer().unwrap();
                thread::spawn(move || {
                    let mut res = p.enqueue_bulk_start(1).unwrap();
                    assert_eq!(res.len(), 1);
                    res.slices_mut().0[0] = base;
                    res.finish(1);
                })
            })
            .collect();
        let mut got = drain_around(&mut c, 2, ts);
        got.sort_unstable();
        assert_eq!(got, [10, 20]);
    });
}
