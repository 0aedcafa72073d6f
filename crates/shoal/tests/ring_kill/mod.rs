//! A process killed in the middle of a multi-thread ring operation: two producer processes and
//! one or two consumer processes move tagged values through one ring while one of them, the
//! victim, is killed (at a named fault site, or by SIGKILL at a random moment). The survivors
//! must keep going with no hang (every wait here is bounded), every value a survivor enqueued
//! must be dequeued exactly once, a dead producer's values at most once and as a prefix of
//! what it sent, and no hole may be delivered as a value. Shared by `ring_procs.rs` (random
//! SIGKILL) and `ring_faults.rs` (fault sites).

#![allow(dead_code)] // each test file uses part of it

use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::memzone::Memzone;
use shoal::ring::{Ring, RingConfig, SyncMode};
use shoal::sync::atomic::{AtomicU32, Ordering};
use shoal_testkit::{child_prefix, Group, Proc};

/// Bound of every wait: a survivor that hangs fails the test.
pub const T: Duration = Duration::from_secs(60);
/// Values a surviving producer sends when the victim is a producer.
pub const PER: u64 = if cfg!(debug_assertions) {
    20_000
} else {
    100_000
};
/// Values each producer sends when the victim is a consumer (enough traffic for the kill to
/// land in the middle of it).
pub const PER_C: u64 = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};
/// Largest burst of a victim.
const VICTIM_BURST: usize = 4096;
/// Slots of the ring.
const RING_COUNT: u32 = 16384;
/// Sequence numbers a victim producer may use (it stops there and waits for its death).
pub const VMAX: u64 = 1 << 22;
/// Producer ids: 1 and 2 (0 marks a value no producer sent, as in a slot never written).
const STOP: u64 = u64::MAX;
/// Counter index of values that no producer sent.
const BAD: u64 = 3 * VMAX;

/// Who is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// Producer 1.
    Producer,
    /// The first of two consumers.
    Consumer,
}

/// How it dies.
#[derive(Debug, Clone, Copy)]
pub enum Kill<'a> {
    /// `SHOAL_FAULT=<site>:<pass>`.
    Fault(&'a str, u32),
    /// SIGKILL from the parent, from this long after the victim started on, at a moment when
    /// the victim is inside an operation if one is found (see [`catch_in_operation`]).
    After(Duration),
}

/// Stops the victim (SIGSTOP) at random moments until it is caught inside an operation of its
/// side: while it is stopped, the side's head and tail (RTS: counters) never meet, as they do
/// between operations of the live processes. Returns whether it was caught (then it is left
/// stopped, for the SIGKILL); gives up after a while, leaving it running.
fn catch_in_operation(victim: &mut Proc, ring: &Ring<u64>, prod: bool) -> bool {
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for _ in 0..400 {
        victim.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_micros(500));
        let in_op = (0..40).all(|_| {
            let info = ring.info();
            let side = if prod { info.prod } else { info.cons };
            let idle = match (side.head_cnt, side.tail_cnt) {
                (Some(h), Some(t)) => h == t,
                _ => side.head == side.tail,
            };
            std::thread::sleep(Duration::from_micros(100));
            !idle
        });
        if in_op {
            return true;
        }
        victim.signal(libc::SIGCONT);
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        std::thread::sleep(Duration::from_micros(u64::from(rng % 2_000)));
    }
    false
}

fn init(prefix: &str, extra: &[&str]) -> Eal {
    let mut args: Vec<String> = [
        "test",
        "--file-prefix",
        prefix,
        "--no-huge",
        "-m",
        "128",
        "--log-level",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Eal::init(args).expect("init").0
}

fn counter(mz: &Memzone, i: u64) -> &AtomicU32 {
    &mz.as_slice::<AtomicU32>().expect("a zone of counters")[i as usize]
}

/// The counter of value `v`: (producer - 1) * VMAX + sequence, or BAD.
fn slot_of(v: u64) -> u64 {
    let (p, s) = (v >> 32, v & 0xffff_ffff);
    if (1..=2).contains(&p) && s < VMAX {
        (p - 1) * VMAX + s
    } else {
        BAD
    }
}

/// A child's part; `role` is "producer1", "producer2" or "consumer".
pub fn child(role: &str) {
    let prefix = child_prefix();
    let lcore = std::env::var("SHOAL_TEST_LCORE").unwrap();
    let eal = init(&prefix, &["--proc-type=secondary", "-l", &lcore]);
    let ring = Ring::<u64>::lookup(&eal, "kill").expect("lookup");
    let mz = Memzone::lookup(&eal, "seen").expect("counters");
    // A victim moves bursts of up to VICTIM_BURST values (its operations last longer, so that
    // a kill at a random moment lands inside one more often), the others up to 32.
    let mut buf = vec![0u64; VICTIM_BURST];
    let doomed = std::env::var("SHOAL_TEST_END").is_ok_and(|e| e == VMAX.to_string())
        || std::env::var("SHOAL_TEST_DOOMED").is_ok();
    let burst = if doomed { VICTIM_BURST } else { 32 };
    match role {
        "producer1" | "producer2" => {
            let id: u64 = if role == "producer1" { 1 } else { 2 };
            let end: u64 = std::env::var("SHOAL_TEST_END").unwrap().parse().unwrap();
            let mut tx = ring.producer().expect("producer");
            println!("started");
            let mut next = 0u64;
            while next < end {
                let n = ((end - next) as usize).min(1 + (next as usize % burst));
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
            if end == VMAX {
                // The victim waits for its death.
                std::thread::sleep(T);
            }
        }
        "consumer" => {
            let mut rx = ring.consumer().expect("consumer");
            println!("started");
            let mut got = 0u64;
            'outer: loop {
                let n = rx.dequeue_burst(&mut buf[..1 + (got as usize % burst)]);
                if n == 0 {
                    std::thread::yield_now();
                    continue;
                }
                for &v in &buf[..n] {
                    if v == STOP {
                        break 'outer;
                    }
                    counter(&mz, slot_of(v)).fetch_add(1, Ordering::Relaxed);
                    got += 1;
                }
            }
            println!("consumer got {got}");
        }
        other => panic!("unknown role {other}"),
    }
}

/// The parent's part: runs the scenario on a ring whose both sides are `mode`.
pub fn run(test: &str, tag: &str, mode: SyncMode, victim: Victim, kill: Kill<'_>) {
    let g = Group::new(tag);
    let eal = init(g.prefix(), &["-l", "0"]);
    let cfg = RingConfig {
        prod: mode,
        cons: mode,
        ..RingConfig::new(RING_COUNT)
    };
    let ring = Ring::<u64>::create(&eal, "kill", &cfg).expect("create");
    let mz = Memzone::reserve(&eal, "seen", ((BAD + 1) * 4) as usize).unwrap();
    let fault = match kill {
        Kill::Fault(site, pass) => Some(format!("{site}:{pass}")),
        Kill::After(_) => None,
    };
    let per_n = if victim == Victim::Consumer {
        PER_C
    } else {
        PER
    };
    let vmax = VMAX.to_string();
    let per = per_n.to_string();
    let spawn = |role: &str, lcore: &str, doomed: bool| {
        let end = if doomed { vmax.as_str() } else { per.as_str() };
        let mut env = vec![("SHOAL_TEST_LCORE", lcore), ("SHOAL_TEST_END", end)];
        if doomed {
            env.push(("SHOAL_TEST_DOOMED", "1"));
        }
        if let (true, Some(f)) = (doomed, &fault) {
            env.push(("SHOAL_FAULT", f.as_str()));
        }
        g.spawn_self(test, role, &env)
    };
    let ncons = if victim == Victim::Consumer { 2 } else { 1 };
    let mut consumers: Vec<Proc> = (0..ncons)
        .map(|c| {
            spawn(
                "consumer",
                &(10 + c).to_string(),
                victim == Victim::Consumer && c == 0,
            )
        })
        .collect();
    let mut p1 = spawn("producer1", "20", victim == Victim::Producer);
    let mut p2 = spawn("producer2", "21", false);
    // Everyone attached: the traffic is on.
    for c in &mut consumers {
        c.wait_for("started", T);
    }
    p1.wait_for("started", T);
    p2.wait_for("started", T);
    let mut caught = false;
    let doomed: &mut Proc = match victim {
        Victim::Producer => &mut p1,
        Victim::Consumer => &mut consumers[0],
    };
    match kill {
        Kill::After(d) => {
            std::thread::sleep(d);
            caught = catch_in_operation(doomed, &ring, victim == Victim::Producer);
            doomed.kill9();
        }
        Kill::Fault(site, _) => {
            let deadline = Instant::now() + T;
            while doomed.exited().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "{site} was never reached:\n{}",
                    doomed.output()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    let status = doomed.wait_exit(T);
    assert_eq!(status, None, "the victim was killed by a signal");
    // The survivors finish: producer 2 sends everything, the victim producer (if it is not
    // the victim) its VMAX values.
    assert_eq!(p2.wait_exit(T), Some(0), "{}", p2.output());
    let mut repairs = repairs_in(&p2.output());
    if victim == Victim::Consumer {
        assert_eq!(p1.wait_exit(T), Some(0), "{}", p1.output());
        repairs += repairs_in(&p1.output());
    }
    // Stop tags, one per live consumer, one at a time.
    let mut tx = ring.producer().expect("producer");
    let live: Vec<usize> = (0..ncons)
        .filter(|&c| !(victim == Victim::Consumer && c == 0))
        .collect();
    for &c in &live {
        let deadline = Instant::now() + T;
        while tx.enqueue(STOP).is_err() {
            assert!(Instant::now() < deadline, "the ring stays full");
            std::thread::yield_now();
        }
        let p = &mut consumers[c];
        assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
        repairs += repairs_in(&p.output());
    }
    drop(tx);
    assert!(
        ring.is_empty(),
        "{} values left: {:?}",
        ring.count(),
        ring.info()
    );
    let seen = |i: u64| counter(&mz, i).load(Ordering::Relaxed);
    assert_eq!(seen(BAD), 0, "values that no producer sent were delivered");
    let twice = |p: u64, s: u64, n: u32| -> ! { panic!("producer {p}'s value {s} seen {n} times") };
    if victim == Victim::Producer {
        // Producer 2: every value once. Producer 1: a prefix of what it sent, once each.
        for s in 0..per_n {
            match seen(VMAX + s) {
                1 => {}
                n => twice(2, s, n),
            }
        }
        let mut k = 0;
        while k < VMAX && seen(k) == 1 {
            k += 1;
        }
        for s in k..VMAX {
            match seen(s) {
                0 => {}
                n => panic!("producer 1's value {s} seen {n} times after a prefix of {k}"),
            }
        }
        println!("{tag}: producer 1 delivered {k} values before it died");
    } else {
        // Both producers survived: each value at most once, and the dead consumer took at
        // most one burst with it.
        let mut lost = 0;
        for p in 0..2 {
            for s in 0..per_n {
                match seen(p * VMAX + s) {
                    0 => lost += 1,
                    1 => {}
                    n => twice(p + 1, s, n),
                }
            }
        }
        assert!(
            lost <= VICTIM_BURST,
            "a dead consumer took {lost} values, more than one burst"
        );
        println!("{tag}: the dead consumer took {lost} values");
    }
    println!(
        "{tag}: victim {victim:?} killed ({kill:?}{}); {repairs} repairs by the surviving \
         children (or one by this process); nothing stuck, nothing twice",
        if caught { ", inside an operation" } else { "" }
    );
}

/// Repairs a survivor logged.
fn repairs_in(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.contains("finished the"))
        .count()
}
