//! mempool_perf: DPDK 22.11's `mempool_perf_autotest`, for shoal's mempool.
//!
//! Each core gets `n_keep` objects by bulks of `n_get_bulk`, then puts them back by bulks of
//! `n_put_bulk`, 65536 objects per loop, for `--secs` seconds; the rate is objects got and put
//! per second, summed over the cores (DPDK's `rate_persec`). Pools hold
//! `cores * (512 + 512) - 1` objects of 2048 bytes, with a 512-object cache or none, as DPDK's.
//! One JSON line per case; `ns/obj` is 1e9 / rate.
//!
//! ```text
//! mempool_perf [EAL options] -- [--secs S] [--cases quick|all] [--tracking on|off|both] [--probe-only]
//! ```
//! EAL options default to `-l 0-1 --file-prefix mempool-perf-<pid> -m 256 --log-level warning`.
//! The main lcore runs on CPU 0, the second core's thread is lcore 1 on CPU 1. `--tracking off`
//! builds the pools with `NO_OWNER_TAGS`, to measure what the owner tags cost.
#![allow(unsafe_code)] // sched_setaffinity for the placement probe's threads

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::mempool::{flags, Mempool, MempoolConfig, PoolObj, PoolObjs, CACHE_MAX_SIZE};

/// `--handles vec`: time the `Vec<PoolObj>` API instead of `PoolObjs`.
static VEC: AtomicBool = AtomicBool::new(false);

const USAGE: &str = "mempool_perf options: [--secs S] [--cases quick|all] [--tracking on|off|both] [--cache 0|512] [--only SUBSTRING] [--handles batch|vec] [--probe-only]";
const N: usize = 65536;
const MAX_KEEP: u32 = 512;
const ELT_SIZE: u32 = 2048;

struct Opts {
    secs: f64,
    all: bool,
    tracking: Vec<bool>,
    /// Only the cases whose name contains this.
    only: Option<String>,
    /// Only pools with this cache size.
    cache: Option<u32>,
}

fn parse(app: &[String]) -> Opts {
    let mut o = Opts {
        secs: 1.0,
        all: false,
        tracking: vec![true, false],
        only: None,
        cache: None,
    };
    let mut it = app.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => o.secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(1.0),
            "--cases" => o.all = it.next().map(String::as_str) == Some("all"),
            "--tracking" => {
                o.tracking = match it.next().map(String::as_str) {
                    Some("on") => vec![true],
                    Some("off") => vec![false],
                    _ => vec![true, false],
                }
            }
            "--probe-only" => {}
            "--only" => o.only = it.next().cloned(),
            "--cache" => o.cache = it.next().and_then(|s| s.parse().ok()),
            "--handles" => VEC.store(
                it.next().map(String::as_str) == Some("vec"),
                Ordering::Relaxed,
            ),
            other => {
                eprintln!("mempool_perf: unknown option {other}");
                std::process::exit(2);
            }
        }
    }
    o
}

/// DPDK's test_loop: get `keep` objects by `get_bulk`, put them back by `put_bulk`.
#[inline(never)]
fn test_loop(objs: &mut PoolObjs, keep: usize, get: usize, put: usize) {
    for _ in 0..N / keep {
        let mut idx = 0;
        while idx < keep {
            if !objs.get_bulk(get) {
                eprintln!(
                    "mempool_perf: get_bulk({get}) failed: {:?}",
                    objs.pool().usage()
                );
                std::process::exit(1);
            }
            idx += get;
        }
        while !objs.is_empty() {
            objs.put_bulk(put);
        }
    }
}

/// The same with a `Vec` of single handles (`--handles vec`).
#[inline(never)]
fn test_loop_vec(pool: &Mempool, objs: &mut Vec<PoolObj>, keep: usize, get: usize, put: usize) {
    for _ in 0..N / keep {
        let mut idx = 0;
        while idx < keep {
            if !pool.get_bulk(get, objs) {
                eprintln!("mempool_perf: get_bulk({get}) failed: {:?}", pool.usage());
                std::process::exit(1);
            }
            idx += get;
        }
        while !objs.is_empty() {
            pool.put_tail(objs, put);
        }
    }
}

/// Runs one core's share for `secs`; returns objects per second.
fn per_lcore(pool: &Mempool, keep: usize, get: usize, put: usize, secs: f64) -> f64 {
    let mut objs = PoolObjs::with_capacity(pool, MAX_KEEP as usize);
    let mut vec = Vec::with_capacity(MAX_KEEP as usize);
    let t0 = Instant::now();
    let mut count = 0u64;
    let limit = Duration::from_secs_f64(secs);
    let use_vec = VEC.load(Ordering::Relaxed);
    loop {
        if use_vec {
            test_loop_vec(pool, &mut vec, keep, get, put);
        } else {
            test_loop(&mut objs, keep, get, put);
        }
        count += N as u64;
        let el = t0.elapsed();
        if el >= limit {
            return count as f64 / el.as_secs_f64();
        }
    }
}

/// The second core: lcore 1 on CPU 1, running cases the main thread hands it.
struct Worker {
    go: AtomicU64,
    done: AtomicU64,
    rate: AtomicU64,
    quit: AtomicBool,
}

#[derive(Clone, Copy)]
struct Case {
    cores: u32,
    get: usize,
    put: usize,
    keep: usize,
}

fn cases(all: bool) -> Vec<Case> {
    let bulks: &[usize] = if all { &[1, 4, 8, 32] } else { &[1, 4, 32] };
    let keeps: &[usize] = if all { &[32, 128, 512] } else { &[32, 128] };
    let mut v = Vec::new();
    for cores in [1, 2] {
        for &get in bulks {
            for &put in bulks {
                if !all && get != put {
                    continue;
                }
                for &keep in keeps {
                    v.push(Case {
                        cores,
                        get,
                        put,
                        keep,
                    });
                }
            }
        }
    }
    v
}

/// Cache-line ping-pong between CPU 0 and CPU 1 for about 1.2 s: the median one-way latency
/// in ns over 20 ms slices (`None` when the partner stalls for a second: a CPU is taken).
fn probe() -> Option<f64> {
    #[repr(align(128))]
    struct Line(AtomicU64);
    let ball = Line(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let mut samples = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(1);
            let mut v = 1;
            while !stop.load(Ordering::Relaxed) {
                if ball.0.load(Ordering::Acquire) == v {
                    ball.0.store(v + 1, Ordering::Release);
                    v += 2;
                }
            }
        });
        pin(0);
        let mut v = 0u64;
        let t0 = Instant::now();
        'outer: while t0.elapsed() < Duration::from_millis(1200) {
            let start = Instant::now();
            let v0 = v;
            while start.elapsed() < Duration::from_millis(20) {
                for _ in 0..1000 {
                    ball.0.store(v + 1, Ordering::Release);
                    let spin = Instant::now();
                    while ball.0.load(Ordering::Acquire) != v + 2 {
                        if spin.elapsed() > Duration::from_secs(1) {
                            break 'outer;
                        }
                    }
                    v += 2;
                }
            }
            samples.push(start.elapsed().as_nanos() as f64 / (v - v0) as f64);
        }
        stop.store(true, Ordering::Relaxed);
    });
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sets a bit inside the set.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the set lives across the call.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// `near` under 80 ns one way, `far` up to 250 ns (the VMs' far mode is 160-175 ns), `busy`
/// above (another process shares a CPU: discard the run), as ring_perf tags its runs.
fn placement(ns: Option<f64>) -> &'static str {
    match ns {
        Some(ns) if ns < 80.0 => "near",
        Some(ns) if ns <= 250.0 => "far",
        Some(_) => "busy",
        None => "unknown",
    }
}

fn probe_line(when: &str) -> Option<f64> {
    let ns = probe();
    println!(
        "{}",
        serde_json::json!({"bench": "c2c", "when": when, "one_way_ns": ns.map(|v| (v * 10.0).round() / 10.0), "placement": placement(ns)})
    );
    ns
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    // No `--`: every argument is the benchmark's.
    if !args.iter().any(|a| a == "--") {
        args.insert(1, "--".into());
    }
    let split = args.iter().position(|a| a == "--").unwrap_or(1);
    if args[split + 1..].iter().any(|a| a == "--probe-only") {
        probe_line("now");
        return;
    }
    if split == 1 {
        let defaults = [
            "-l".to_string(),
            "0-1".into(),
            "--file-prefix".into(),
            format!("mempool-perf-{}", std::process::id()),
            "-m".into(),
            "256".into(),
            "--log-level".into(),
            "warning".into(),
        ];
        args.splice(1..1, defaults);
    }
    let (eal, app) = match Eal::init(args) {
        Ok(v) => v,
        Err(e) => shoal::eal::exit_on_error(&e, USAGE),
    };
    let o = parse(&app);
    run(&eal, &o);
}

fn run(eal: &Eal, o: &Opts) {
    let lcores = eal.lcores().len() as u32;
    if lcores < 2 {
        eprintln!("mempool_perf: two lcores needed (-l 0-1)");
        std::process::exit(2);
    }
    let size = 2 * (MAX_KEEP + CACHE_MAX_SIZE) - 1;
    let worker = Worker {
        go: AtomicU64::new(0),
        done: AtomicU64::new(0),
        rate: AtomicU64::new(0),
        quit: AtomicBool::new(false),
    };
    let current: std::sync::Mutex<Option<(Mempool, Case)>> = std::sync::Mutex::new(None);
    let barrier = Barrier::new(2);
    let second = eal.lcores()[1];
    let before = probe_line("before");
    let mut rows = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            eal.register_thread(second).expect("second lcore");
            let mut seen = 0;
            loop {
                // Sleep while the other core runs one-core cases (a spinning sibling would
                // take execution resources from it, as DPDK's idle workers, blocked on a
                // pipe, do not).
                while worker.go.load(Ordering::Acquire) == seen {
                    if worker.quit.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                seen = worker.go.load(Ordering::Acquire);
                let (pool, c) = current.lock().unwrap().clone().expect("a case");
                barrier.wait();
                let r = per_lcore(&pool, c.keep, c.get, c.put, o.secs);
                worker.rate.store(r.to_bits(), Ordering::Relaxed);
                worker.done.store(seen, Ordering::Release);
            }
        });
        // Tells the second core to stop even when this one panics (else the scope would wait
        // for it for ever).
        struct QuitOnDrop<'a>(&'a AtomicBool);
        impl Drop for QuitOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _quit = QuitOnDrop(&worker.quit);
        let mut round = 0;
        for cache in [0, CACHE_MAX_SIZE] {
            if o.cache.is_some_and(|c| c != cache) {
                continue;
            }
            // One pool per tracking mode; each case runs on both, in alternating order, so
            // that drift over the run does not pass for the cost of tracking.
            let pools: Vec<(bool, Mempool)> = o
                .tracking
                .iter()
                .map(|&tracked| {
                    let name = format!(
                        "perf_{}_{}",
                        if cache > 0 { "cache" } else { "nocache" },
                        if tracked { "t" } else { "u" }
                    );
                    let cfg = MempoolConfig::new(size, ELT_SIZE)
                        .cache_size(cache)
                        .flags(if tracked { 0 } else { flags::NO_OWNER_TAGS });
                    let pool = Mempool::create_with(eal, &name, cfg, |obj, i| {
                        obj.fill(0);
                        obj[..4].copy_from_slice(&i.to_le_bytes());
                    })
                    .expect("pool");
                    (tracked, pool)
                })
                .collect();
            for (k, c) in cases(o.all).into_iter().enumerate() {
                let case = format!(
                    "cache={cache} cores={} n_get_bulk={} n_put_bulk={} n_keep={}",
                    c.cores, c.get, c.put, c.keep
                );
                if o.only.as_ref().is_some_and(|f| !case.contains(f.as_str())) {
                    continue;
                }
                let mut order: Vec<&(bool, Mempool)> = pools.iter().collect();
                if k % 2 == 1 {
                    order.reverse();
                }
                for (tracked, pool) in order.iter().map(|&(t, p)| (*t, p.clone())) {
                    assert_eq!(pool.avail_count(), size, "mempool is not full");
                    let rate = if c.cores == 1 {
                        per_lcore(&pool, c.keep, c.get, c.put, o.secs)
                    } else {
                        *current.lock().unwrap() = Some((pool.clone(), c));
                        round += 1;
                        worker.go.store(round, Ordering::Release);
                        barrier.wait();
                        let mine = per_lcore(&pool, c.keep, c.get, c.put, o.secs);
                        while worker.done.load(Ordering::Acquire) != round {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        mine + f64::from_bits(worker.rate.load(Ordering::Relaxed))
                    };
                    let name = if tracked {
                        case.clone()
                    } else {
                        format!("{case} untracked")
                    };
                    rows.push((name, rate));
                }
            }
            for (_, pool) in &pools {
                assert!(pool.audit().is_ok(), "{:?}", pool.audit());
            }
        }
    });
    let after = probe_line("after");
    let tag = match (placement(before), placement(after)) {
        (a, b) if a == b => a,
        _ => "mixed",
    };
    for (case, rate) in rows {
        println!(
            "{}",
            serde_json::json!({
                "bench": "mempool_perf",
                "case": case,
                "unit": "ns/obj",
                "shoal": (1e12 / rate).round() / 1000.0,
                "rate_persec": rate.round(),
                "placement": tag,
            })
        );
    }
}
