//! Several producer and consumer processes move tagged values through one ring; every tag is
//! seen exactly once. The test binary re-executes itself as the producers and consumers.

use std::time::Duration;

use shoal::eal::Eal;
use shoal::memzone::Memzone;
use shoal::ring::{Ring, RingConfig, SyncMode};
use shoal::sync::atomic::{AtomicU32, Ordering};
use shoal_testkit::{child_or, child_prefix, init, role, Group, Proc};

const T: Duration = Duration::from_secs(60);
const PRODUCERS: u64 = 2;
const CONSUMERS: usize = 2;
/// Values per producer.
const PER: u64 = if cfg!(debug_assertions) {
    50_000
} else {
    200_000
};
/// A tag that tells consumers to stop (one per consumer).
const STOP: u64 = u64::MAX;

fn counters(eal: &Eal) -> Memzone {
    Memzone::lookup(eal, "seen").expect("seen counters")
}

fn seen_slot(mz: &Memzone, tag: u64) -> &AtomicU32 {
    let (p, i) = (tag >> 32, tag & 0xffff_ffff);
    mz.as_slice::<AtomicU32>()
        .expect("a zone of counters")
        .get((p * PER + i) as usize)
        .expect("tag in range")
}

fn child(role: &str) {
    let prefix = child_prefix();
    let lcore: u32 = std::env::var("SHOAL_TEST_LCORE").unwrap().parse().unwrap();
    let lcore = lcore.to_string();
    let eal = init(
        &prefix,
        &["--no-huge", "--proc-type=secondary", "-l", &lcore],
    )
    .expect("init");
    let ring = Ring::<u64>::lookup(&eal, "stress").expect("lookup");
    let mz = counters(&eal);
    match role {
        "producer" => {
            let id: u64 = std::env::var("SHOAL_TEST_ID").unwrap().parse().unwrap();
            let mut tx = ring.producer().expect("producer");
            let mut next = 0u64;
            let mut buf = [0u64; 32];
            while next < PER {
                let n = ((PER - next) as usize).min(1 + (next as usize % 32));
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = id << 32 | (next + k as u64);
                }
                let sent = tx.enqueue_burst(&buf[..n]);
                next += sent as u64;
                if sent == 0 {
                    std::thread::yield_now();
                }
            }
            println!("producer {id} done");
        }
        "consumer" => {
            let mut rx = ring.consumer().expect("consumer");
            let mut buf = [0u64; 32];
            let mut got = 0u64;
            'outer: loop {
                let n = rx.dequeue_burst(&mut buf[..1 + (got as usize % 32)]);
                if n == 0 {
                    std::thread::yield_now();
                    continue;
                }
                for &v in &buf[..n] {
                    if v == STOP {
                        // The parent sends the next stop tag only after this consumer left.
                        break 'outer;
                    }
                    seen_slot(&mz, v).fetch_add(1, Ordering::Relaxed);
                    got += 1;
                }
            }
            println!("consumer got {got}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn run(mode: SyncMode, tag: &str) {
    let g = Group::new(tag);
    let eal = init(g.prefix(), &["--no-huge", "-l", "0"]).expect("init");
    let cfg = RingConfig {
        prod: mode,
        cons: mode,
        ..RingConfig::new(1024)
    };
    let ring = Ring::<u64>::create(&eal, "stress", &cfg).expect("create");
    let mz = Memzone::reserve(&eal, "seen", (PRODUCERS * PER * 4) as usize).unwrap();
    let test = format!("{tag}_every_tag_is_seen_once");
    let mut procs: Vec<Proc> = Vec::new();
    for c in 0..CONSUMERS {
        let lc = (10 + c).to_string();
        procs.push(g.spawn_self(&test, "consumer", &[("SHOAL_TEST_LCORE", &lc)]));
    }
    let mut producers: Vec<Proc> = (0..PRODUCERS)
        .map(|p| {
            let (lc, id) = ((20 + p).to_string(), p.to_string());
            g.spawn_self(
                &test,
                "producer",
                &[("SHOAL_TEST_LCORE", &lc), ("SHOAL_TEST_ID", &id)],
            )
        })
        .collect();
    for p in &mut producers {
        assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
    }
    // Every value is in; now a stop tag after all of them, one consumer at a time (a consumer
    // leaves at the first stop tag it dequeues, so two tags in one burst would strand one).
    let mut tx = ring.producer().expect("producer");
    let mut total = 0u64;
    let mut left = vec![false; procs.len()];
    for _ in 0..procs.len() {
        while tx.enqueue(STOP).is_err() {
            std::thread::yield_now();
        }
        // Whichever consumer took it leaves; wait for it.
        let deadline = std::time::Instant::now() + T;
        let c = loop {
            if let Some(i) = (0..procs.len()).find(|&i| !left[i] && procs[i].try_exit().is_some()) {
                left[i] = true;
                break &mut procs[i];
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no consumer took the stop tag"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
        let out = c.output();
        let got = out
            .split("consumer got ")
            .nth(1)
            .unwrap_or_else(|| panic!("no count in:\n{out}"));
        total += got
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap();
    }
    assert_eq!(total, PRODUCERS * PER);
    let mut wrong = Vec::new();
    for p in 0..PRODUCERS {
        for i in 0..PER {
            let n = seen_slot(&mz, p << 32 | i).load(Ordering::Relaxed);
            if n != 1 && wrong.len() < 10 {
                wrong.push((p, i, n));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "tags not seen exactly once (producer, seq, times): {wrong:?}"
    );
    assert!(ring.is_empty());
}

macro_rules! stress {
    ($name:ident, $mode:expr, $tag:literal) => {
        #[test]
        fn $name() {
            child_or!(child);
            run($mode, $tag);
        }
    };
}

stress!(mp_every_tag_is_seen_once, SyncMode::Mp, "mp");
stress!(rts_every_tag_is_seen_once, SyncMode::MpRts, "rts");
stress!(hts_every_tag_is_seen_once, SyncMode::MpHts, "hts");

mod ring_kill;

/// A producer or a consumer SIGKILLed at a random moment in the middle of MP, RTS and HTS
/// traffic: the survivors go on, nothing is delivered twice, no hole is delivered.
fn killed_at_random(test: &str, mode: SyncMode, tag: &str) {
    if let Some(r) = role() {
        ring_kill::child(&r);
        return;
    }
    // A few rounds, with the kill at a different moment each time (the clock's nanoseconds
    // pick it), so that some land inside an operation.
    for round in 0..3u32 {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let after = Duration::from_micros(2_000 + u64::from(ns % 40_000));
        for victim in [ring_kill::Victim::Producer, ring_kill::Victim::Consumer] {
            ring_kill::run(
                test,
                &format!("{tag}{round}"),
                mode,
                victim,
                ring_kill::Kill::After(after),
            );
        }
    }
}

#[test]
fn mp_survives_a_process_killed_at_random() {
    killed_at_random(
        "mp_survives_a_process_killed_at_random",
        SyncMode::Mp,
        "kmp",
    );
}

#[test]
fn rts_survives_a_process_killed_at_random() {
    killed_at_random(
        "rts_survives_a_process_killed_at_random",
        SyncMode::MpRts,
        "krts",
    );
}

#[test]
fn hts_survives_a_process_killed_at_random() {
    killed_at_random(
        "hts_survives_a_process_killed_at_random",
        SyncMode::MpHts,
        "khts",
    );
}
