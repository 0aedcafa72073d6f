//! `ring_perf`: shoal's counterpart of DPDK 22.11's `ring_perf_autotest`.
//!
//! The same cases, the same ring size (4096), the same iteration counts and the same
//! arithmetic, for elements of 8 bytes (DPDK's "legacy APIs", `void *`) and 16 bytes (DPDK's
//! "elem APIs: element size 16B"):
//!
//! - one core (CPU 0): single, burst 8/32 and bulk 8/32 enqueue+dequeue, SP/SC and MP/MC; time
//!   per element (DPDK prints per enqueue+dequeue of the whole burst; we divide by the burst);
//! - empty-ring bulk dequeue of 8: time per call;
//! - two cores (a producer pinned to CPU 0, a consumer to CPU 1): bulk 8/32, the producer's time
//!   per element plus the consumer's, as DPDK adds them.
//!
//! A cache-line ping-pong between CPU 0 and CPU 1 runs before the one-core cases, between them
//! and the two-core cases, and after, to tag each group with the VMs' vCPU placement (`near`
//! under 80 ns one way, `far` up to 250 ns, `busy` above, when another process shares a CPU;
//! `mixed` when the probes around a group disagree). Output: one JSON object per line.
//!
//! `ring_perf [--probe-only] [--no-probe] [--esize 8|16] [--one-core] [--mode sp|mp]`
//!
//! `--one-core` skips the two-core cases and `--mode` runs one sync mode's cases only (for
//! counting instructions per case under `valgrind --tool=callgrind`, which runs threads one
//! at a time).
#![allow(unsafe_code)] // sched_setaffinity to pin the benchmark threads

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use serde_json::json;
use shoal::memory::Fresh;
use shoal::ring::{Consumer, Producer, Ring, RingConfig, SyncMode};

const RING_SIZE: u32 = 4096;
const MAX_BURST: usize = 32;
const BULK_SIZES: [usize; 2] = [8, 32];

/// Pins the calling thread to `cpu`; false when the machine refuses (fewer CPUs).
fn pin(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; CPU_SET writes
    // inside it for cpu < CPU_SETSIZE (checked), and sched_setaffinity only reads it.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The placement probe: one cache line bounced between a thread on CPU 0 and one on CPU 1
/// for `secs`; returns the median one-way latency in ns over 20 ms slices.
fn c2c_probe(secs: f64) -> Option<f64> {
    #[repr(align(128))]
    struct Line(AtomicU64);
    let ball = Arc::new(Line(AtomicU64::new(0)));
    let stop = Arc::new(AtomicU64::new(0));
    let (b, s) = (ball.clone(), stop.clone());
    let pong = std::thread::spawn(move || {
        if !pin(1) {
            return false;
        }
        let mut v = 1;
        while s.load(Ordering::Relaxed) == 0 {
            if b.0.load(Ordering::Acquire) == v {
                b.0.store(v + 1, Ordering::Release);
                v += 2;
            }
        }
        true
    });
    if !pin(0) {
        stop.store(1, Ordering::Relaxed);
        let _ = pong.join();
        return None;
    }
    let mut v = 0u64;
    let mut samples = Vec::new();
    let t0 = Instant::now();
    let deadline = Duration::from_secs_f64(secs);
    'outer: while t0.elapsed() < deadline {
        let start = Instant::now();
        let v0 = v;
        while start.elapsed() < Duration::from_millis(20) {
            for _ in 0..1000 {
                ball.0.store(v + 1, Ordering::Release);
                let spin_start = Instant::now();
                while ball.0.load(Ordering::Acquire) != v + 2 {
                    // The partner may be descheduled; give up on this probe after a second.
                    if spin_start.elapsed() > Duration::from_secs(1) {
                        break 'outer;
                    }
                }
                v += 2;
            }
        }
        samples.push(start.elapsed().as_nanos() as f64 / (v - v0) as f64);
    }
    stop.store(1, Ordering::Relaxed);
    let pinned = pong.join().unwrap_or(false);
    if !pinned || samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    Some(samples[samples.len() / 2])
}

/// The placement tag of a probe: `near` under 80 ns one way, `far` up to 250 ns (the VMs'
/// far mode is 160-175 ns), `busy` above (another process shares a CPU: discard the run).
fn placement(ns: Option<f64>) -> &'static str {
    match ns {
        Some(ns) if ns < 80.0 => "near",
        Some(ns) if ns <= 250.0 => "far",
        Some(_) => "busy",
        None => "unknown",
    }
}

/// The tag of a stretch between two probes: their common placement; `mixed` when it changed
/// between near and far; `busy` or `unknown` when either probe says so.
fn tag(a: Option<f64>, b: Option<f64>) -> &'static str {
    match (placement(a), placement(b)) {
        (x, y) if x == y => x,
        ("near" | "far", "near" | "far") => "mixed",
        ("busy", _) | (_, "busy") => "busy",
        _ => "unknown",
    }
}

fn probe_line(when: &str) -> Option<f64> {
    let ns = c2c_probe(1.2);
    println!(
        "{}",
        json!({"bench": "c2c", "when": when, "one_way_ns": ns.map(|v| (v * 10.0).round() / 10.0), "placement": placement(ns)})
    );
    ns
}

fn make_ring<T: Pod>(mode: SyncMode) -> Ring<T> {
    let cfg = RingConfig {
        count: RING_SIZE,
        prod: mode,
        cons: mode,
        exact_size: false,
        htd_max: None,
    };
    let region = Fresh::heap(Ring::<T>::memsize(&cfg).expect("memsize"));
    Ring::init(region, "RING_PERF", &cfg).expect("ring")
}

/// One row of results.
struct Row {
    case: String,
    unit: &'static str,
    ns: f64,
}

fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn mode_name(mode: SyncMode) -> &'static str {
    if mode == SyncMode::Sp {
        "SP/SC"
    } else {
        "MP/MC"
    }
}

/// Checks the ring before timing it (values go through unchanged and in order).
fn check<T: Pod + PartialEq>(p: &mut Producer<T>, c: &mut Consumer<T>) {
    let mut src = [T::zeroed(); MAX_BURST];
    for (i, v) in src.iter_mut().enumerate() {
        bytemuck::bytes_of_mut(v)[0] = i as u8 + 1;
    }
    let mut dst = [T::zeroed(); MAX_BURST];
    for _ in 0..(2 * RING_SIZE as usize / MAX_BURST + 3) {
        assert_eq!(p.enqueue_bulk(&src).map(|_| ()), Ok(()));
        assert_eq!(c.dequeue_burst(&mut dst), MAX_BURST);
        assert!(src == dst, "ring corrupted values");
    }
    assert!(c.ring().is_empty());
}

// Each timed loop is a function of its own, not inlined, as each of DPDK's cases is: the
// loop's registers are its own, and one case's code placement does not move another's.

/// DPDK's `test_single_enqueue_dequeue`.
#[inline(never)]
fn time_single<T: Pod>(p: &mut Producer<T>, c: &mut Consumer<T>, iters: u64) -> Duration {
    let v = T::zeroed();
    let start = Instant::now();
    for _ in 0..iters {
        let _ = p.enqueue(black_box(v));
        black_box(c.dequeue());
    }
    start.elapsed()
}

/// DPDK's `test_burst_bulk_enqueue_dequeue`, bulk API.
#[inline(never)]
fn time_bulk<T: Pod>(
    p: &mut Producer<T>,
    c: &mut Consumer<T>,
    src: &[T],
    dst: &mut [T],
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let _ = p.enqueue_bulk(src);
        let _ = c.dequeue_bulk(dst);
    }
    start.elapsed()
}

/// DPDK's `test_burst_bulk_enqueue_dequeue`, burst API.
#[inline(never)]
fn time_burst<T: Pod>(
    p: &mut Producer<T>,
    c: &mut Consumer<T>,
    src: &[T],
    dst: &mut [T],
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        p.enqueue_burst(src);
        c.dequeue_burst(dst);
    }
    start.elapsed()
}

/// DPDK's `test_empty_dequeue`.
#[inline(never)]
fn time_empty<T: Pod>(c: &mut Consumer<T>, dst: &mut [T], iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let _ = black_box(c.dequeue_bulk(dst));
    }
    start.elapsed()
}

/// The sync modes to run (`--mode sp|mp`, default both).
fn modes() -> Vec<SyncMode> {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .position(|a| a == "--mode")
        .and_then(|i| args.get(i + 1))
    {
        Some(m) if m == "sp" => vec![SyncMode::Sp],
        Some(m) if m == "mp" => vec![SyncMode::Mp],
        _ => vec![SyncMode::Sp, SyncMode::Mp],
    }
}

fn one_core<T: Pod + PartialEq>(esize: usize, rows: &mut Vec<Row>) {
    for mode in modes() {
        let ring = make_ring::<T>(mode);
        let mut p = ring.producer().expect("producer");
        let mut c = ring.consumer().expect("consumer");
        check(&mut p, &mut c);
        // DPDK: test_single_enqueue_dequeue, 2^24 iterations.
        let iters = 1u64 << 24;
        let d = time_single(&mut p, &mut c, iters);
        rows.push(Row {
            case: format!("{} single one-core {esize}B", mode_name(mode)),
            unit: "ns/elem",
            ns: ns_per(d, iters),
        });
    }
    for (api, bulk) in [("burst", false), ("bulk", true)] {
        for mode in modes() {
            let ring = make_ring::<T>(mode);
            let mut p = ring.producer().expect("producer");
            let mut c = ring.consumer().expect("consumer");
            let src = [T::zeroed(); MAX_BURST];
            let mut dst = [T::zeroed(); MAX_BURST];
            // DPDK: test_burst_bulk_enqueue_dequeue, 2^23 iterations per size; the sizes are
            // volatile there, opaque here.
            let iters = 1u64 << 23;
            for bsz in BULK_SIZES {
                let bsz = black_box(bsz);
                let d = if bulk {
                    time_bulk(&mut p, &mut c, &src[..bsz], &mut dst[..bsz], iters)
                } else {
                    time_burst(&mut p, &mut c, &src[..bsz], &mut dst[..bsz], iters)
                };
                black_box(&dst);
                rows.push(Row {
                    case: format!("{} {api} {bsz} one-core {esize}B", mode_name(mode)),
                    unit: "ns/elem",
                    ns: ns_per(d, iters * bsz as u64),
                });
            }
        }
    }
    for mode in modes() {
        let ring = make_ring::<T>(mode);
        let mut c = ring.consumer().expect("consumer");
        let mut dst = [T::zeroed(); MAX_BURST];
        // DPDK: test_empty_dequeue, 2^26 bulk dequeues of 8 from an empty ring.
        let iters = 1u64 << 26;
        let bsz = black_box(BULK_SIZES[0]);
        let d = time_empty(&mut c, &mut dst[..bsz], iters);
        rows.push(Row {
            case: format!("{} empty-dequeue bulk 8 one-core {esize}B", mode_name(mode)),
            unit: "ns/call",
            ns: ns_per(d, iters),
        });
    }
}

/// DPDK's `enqueue_dequeue_bulk_helper`: 2^15 bulk operations of `bsz` on each side, retried
/// until they succeed; returns the time per element on this side.
fn side_loop<T: Pod>(mut op: impl FnMut(&mut [T]) -> bool, bsz: usize, ready: &AtomicUsize) -> f64 {
    let iters = 1u64 << 15;
    let mut buf = [T::zeroed(); MAX_BURST];
    ready.fetch_add(1, Ordering::AcqRel);
    while ready.load(Ordering::Acquire) != 2 {
        std::hint::spin_loop();
    }
    let start = Instant::now();
    for _ in 0..iters {
        while !op(&mut buf[..bsz]) {
            std::hint::spin_loop();
        }
    }
    ns_per(start.elapsed(), iters * bsz as u64)
}

fn two_cores<T: Pod + PartialEq + Send>(esize: usize, rows: &mut Vec<Row>) {
    for bsz in BULK_SIZES {
        for mode in modes() {
            let ring = make_ring::<T>(mode);
            let mut p = ring.producer().expect("producer");
            let mut c = ring.consumer().expect("consumer");
            // Also touches every slot, as DPDK's ring is warm from the one-core cases.
            check(&mut p, &mut c);
            let ready = Arc::new(AtomicUsize::new(0));
            let r2 = ready.clone();
            let deq = std::thread::spawn(move || {
                pin(1);
                side_loop::<T>(|b| c.dequeue_bulk(b).is_ok(), black_box(bsz), &r2)
            });
            let enq_ns = side_loop::<T>(|b| p.enqueue_bulk(b).is_ok(), black_box(bsz), &ready);
            let deq_ns = deq.join().expect("dequeue thread");
            rows.push(Row {
                case: format!("{} bulk {bsz} two-cores {esize}B", mode_name(mode)),
                unit: "ns/elem",
                ns: enq_ns + deq_ns,
            });
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    if has("-h") || has("--help") {
        println!("usage: ring_perf [--probe-only] [--no-probe] [--esize 8|16] [--one-core] [--mode sp|mp]");
        return;
    }
    let esizes: Vec<usize> = match args
        .iter()
        .position(|a| a == "--esize")
        .and_then(|i| args.get(i + 1))
    {
        Some(v) => vec![v.parse().unwrap_or(8)],
        None => vec![8, 16],
    };
    let probe = !has("--no-probe");
    if has("--probe-only") {
        probe_line("probe");
        return;
    }
    // Probes before the one-core cases, between them and the (short) two-core cases, and
    // after: each group is tagged by the probes around it.
    let before = if probe { probe_line("before") } else { None };
    if !pin(0) {
        eprintln!("ring_perf: cannot pin to CPU 0; figures will be noisy");
    }
    let mut one = Vec::new();
    for &esize in &esizes {
        match esize {
            16 => one_core::<[u64; 2]>(16, &mut one),
            _ => one_core::<u64>(8, &mut one),
        }
    }
    let middle = if probe { probe_line("middle") } else { None };
    let mut two = Vec::new();
    for &esize in esizes.iter().filter(|_| !has("--one-core")) {
        match esize {
            16 => two_cores::<[u64; 2]>(16, &mut two),
            _ => two_cores::<u64>(8, &mut two),
        }
    }
    let after = if probe { probe_line("after") } else { None };
    for (rows, tag) in [(one, tag(before, middle)), (two, tag(middle, after))] {
        for r in rows {
            println!(
                "{}",
                json!({"bench": "ring_perf", "case": r.case, "unit": r.unit, "shoal": (r.ns * 1000.0).round() / 1000.0, "placement": tag})
            );
        }
    }
}
