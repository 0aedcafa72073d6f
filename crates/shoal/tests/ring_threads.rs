//! Thread stress tests: several producer and consumer threads move tagged values through one
//! ring; every tag must come out exactly once, and each producer's values in the order it
//! enqueued them (per consumer). Every pair of sync modes, several capacities, all the APIs.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use shoal::memory::Fresh;
use shoal::ring::{Consumer, Producer, Ring, RingConfig, SyncMode};

const MODES: [SyncMode; 4] = [SyncMode::Sp, SyncMode::Mp, SyncMode::MpRts, SyncMode::MpHts];
/// Values per producer.
const PER_PRODUCER: u64 = if cfg!(miri) {
    20
} else if cfg!(debug_assertions) {
    20_000
} else {
    100_000
};

/// Aborts the test binary if the guarded test runs longer than `secs` (a hang is a failure,
/// never a stuck CI job).
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(what: String, secs: u64) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if cfg!(miri) {
            // Miri runs a thousand times slower than the time limit assumes.
            return Watchdog(done);
        }
        let d = done.clone();
        std::thread::spawn(move || {
            for _ in 0..secs * 10 {
                std::thread::sleep(Duration::from_millis(100));
                if d.load(Ordering::Relaxed) {
                    return;
                }
            }
            eprintln!("watchdog: {what} still running after {secs} s; aborting");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Spin a little, then yield: the machines have two CPUs and more threads than that.
fn idle(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn tag(producer: u64, seq: u64) -> u64 {
    (producer << 40) | seq
}

fn produce(mut p: Producer<u64>, id: u64, peek: bool) {
    let mut seq = 0u64;
    let mut round = 0u64;
    let mut spins = 0;
    while seq < PER_PRODUCER {
        let want = ((round * 7 + id) % 13 + 1).min(PER_PRODUCER - seq) as usize;
        let batch: Vec<u64> = (seq..seq + want as u64).map(|s| tag(id, s)).collect();
        let n = match round % if peek { 5 } else { 3 } {
            0 => usize::from(p.enqueue(batch[0]).is_ok()),
            1 => p.enqueue_bulk(&batch).map_or(0, |_| want),
            2 => p.enqueue_burst(&batch),
            3 => p
                .enqueue_burst_start(want)
                .expect("peek side")
                .finish_with(&batch),
            _ => {
                let mut r = p.enqueue_bulk_start(want).expect("peek side");
                let n = r.len();
                let (a, b) = r.slices_mut();
                let k = a.len();
                a.copy_from_slice(&batch[..k]);
                b.copy_from_slice(&batch[k..n]);
                r.finish(n)
            }
        };
        round += 1;
        if n == 0 {
            idle(&mut spins);
        } else {
            spins = 0;
            seq += n as u64;
        }
    }
}

fn consume(
    mut c: Consumer<u64>,
    producers: usize,
    taken: &AtomicUsize,
    total: usize,
    peek: bool,
) -> Vec<u64> {
    let mut got = Vec::new();
    let mut last = vec![None::<u64>; producers];
    let mut buf = [0u64; 16];
    let mut round = 0u64;
    let mut spins = 0;
    while taken.load(Ordering::Relaxed) < total {
        let want = (round % 16 + 1) as usize;
        let n = match round % if peek { 5 } else { 3 } {
            0 => match c.dequeue() {
                Some(v) => {
                    buf[0] = v;
                    1
                }
                None => 0,
            },
            1 => c.dequeue_bulk(&mut buf[..want]).map_or(0, |_| want),
            2 => c.dequeue_burst(&mut buf[..want]),
            3 => {
                let r = c.dequeue_burst_start(&mut buf[..want]).expect("peek side");
                let n = r.len();
                r.finish(n)
            }
            _ => {
                let r = c.dequeue_zc_burst_start(want).expect("peek side");
                let (a, b) = r.slices();
                buf[..a.len()].copy_from_slice(a);
                buf[a.len()..a.len() + b.len()].copy_from_slice(b);
                let n = r.len();
                r.finish(n)
            }
        };
        round += 1;
        if n == 0 {
            idle(&mut spins);
            continue;
        }
        spins = 0;
        taken.fetch_add(n, Ordering::Relaxed);
        for &v in &buf[..n] {
            let (id, seq) = ((v >> 40) as usize, v & ((1 << 40) - 1));
            assert!(id < producers, "value {v:#x} from no producer");
            // Values of one producer reach one consumer in the order they were enqueued.
            assert!(
                last[id].is_none_or(|l| seq > l),
                "producer {id}: {seq} after {:?}",
                last[id]
            );
            last[id] = Some(seq);
            got.push(v);
        }
    }
    got
}

/// Runs producers and consumers (one each on an `Sp` side, three otherwise) through a ring of
/// `count` slots and checks that every tag comes out exactly once.
fn stress(prod: SyncMode, cons: SyncMode, count: u32, exact_size: bool) {
    let what = format!("{prod:?}/{cons:?} count {count} exact {exact_size}");
    let _dog = Watchdog::new(what.clone(), 300);
    let cfg = RingConfig {
        count,
        prod,
        cons,
        exact_size,
        htd_max: None,
    };
    let ring = Ring::<u64>::init(
        Fresh::heap(Ring::<u64>::memsize(&cfg).unwrap()),
        "stress",
        &cfg,
    )
    .unwrap();
    let np = if prod == SyncMode::Sp { 1 } else { 3 };
    let nc = if cons == SyncMode::Sp { 1 } else { 3 };
    let total = np * PER_PRODUCER as usize;
    let taken = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(np + nc));
    let peek = prod.supports_peek() && cons.supports_peek();
    let mut producers = Vec::new();
    for id in 0..np {
        let p = ring.producer().expect("producer handle");
        let start = start.clone();
        producers.push(std::thread::spawn(move || {
            start.wait();
            produce(p, id as u64, peek)
        }));
    }
    let mut consumers = Vec::new();
    for _ in 0..nc {
        let c = ring.consumer().expect("consumer handle");
        let (start, taken) = (start.clone(), taken.clone());
        consumers.push(std::thread::spawn(move || {
            start.wait();
            consume(c, np, &taken, total, peek)
        }));
    }
    for p in producers {
        p.join().expect("producer panicked");
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().expect("consumer panicked"))
        .collect();
    assert_eq!(all.len(), total, "{what}");
    all.sort_unstable();
    let want: Vec<u64> = (0..np as u64)
        .flat_map(|id| (0..PER_PRODUCER).map(move |s| tag(id, s)))
        .collect();
    assert!(all == want, "{what}: some tags missing or seen twice");
    assert!(ring.is_empty(), "{what}");
}

macro_rules! per_prod_mode {
    ($($name:ident => $prod:expr;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn every_tag_is_seen_exactly_once_in_a_ring_of_1024() {
                for cons in MODES {
                    stress($prod, cons, 1024, false);
                }
            }
            #[test]
            fn every_tag_is_seen_exactly_once_in_a_ring_of_8() {
                for cons in MODES {
                    stress($prod, cons, 8, false);
                }
            }
            #[test]
            fn every_tag_is_seen_exactly_once_in_a_ring_of_capacity_1() {
                for cons in MODES {
                    stress($prod, cons, 1, true);
                }
            }
        }
    )*};
}

per_prod_mode! {
    sp_producers => SyncMode::Sp;
    mp_producers => SyncMode::Mp;
    rts_producers => SyncMode::MpRts;
    hts_producers => SyncMode::MpHts;
}

#[test]
fn rts_with_zero_head_tail_distance_still_delivers_everything() {
    let _dog = Watchdog::new("rts htd 0".into(), 300);
    let cfg = RingConfig {
        count: 64,
        prod: SyncMode::MpRts,
        cons: SyncMode::MpRts,
        exact_size: false,
        htd_max: Some(0),
    };
    let ring = Ring::<u64>::init(
        Fresh::heap(Ring::<u64>::memsize(&cfg).unwrap()),
        "htd0",
        &cfg,
    )
    .unwrap();
    let total = 2 * PER_PRODUCER as usize;
    let taken = Arc::new(AtomicUsize::new(0));
    let ps: Vec<_> = (0..2)
        .map(|id| {
            let p = ring.producer().unwrap();
            std::thread::spawn(move || produce(p, id, false))
        })
        .collect();
    let cs: Vec<_> = (0..2)
        .map(|_| {
            let (c, taken) = (ring.consumer().unwrap(), taken.clone());
            std::thread::spawn(move || consume(c, 2, &taken, total, false))
        })
        .collect();
    ps.into_iter().for_each(|p| p.join().unwrap());
    let n: usize = cs.into_iter().map(|c| c.join().unwrap().len()).sum();
    assert_eq!(n, total);
}
