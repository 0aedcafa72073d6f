//! `c2c`: the placement probe of the benchmark scripts.
//!
//! A cache line is passed back and forth between a thread pinned to CPU 0 and one pinned to CPU 1,
//! the same method as `shared/tools/c2c_latency.c`: the CPU 0 thread writes `v + 1` and spins until
//! it reads `v + 2`, which the CPU 1 thread writes on seeing `v + 1`. Round trips are counted in
//! batches of 10 000; every interval gives one mean one-way figure (interval ÷ 2 × round trips),
//! and the probe prints the median of those figures, in nanoseconds, as its only line on stdout.
//!
//! On the 2-vCPU VMs this project is measured on, the figure is either about 30 ns ("near") or
//! about 170 ns ("far"); `benches/lib.sh` calls anything under 80 ns near.
//!
//! ```text
//! c2c [SECONDS=0.3] [INTERVAL_MS=20] [-v]
//! ```
//! `-v` also prints every interval's figure to stderr.
#![allow(unsafe_code)] // sched_setaffinity through libc, to pin each thread to its CPU

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Round trips between two clock readings.
const BATCH: u64 = 10_000;

/// The cache line that moves between the two CPUs (128 bytes: x86's adjacent-line prefetcher
/// pairs lines, so the neighbour must not share the pair either).
#[repr(C, align(128))]
struct Line {
    ball: AtomicU64,
}

static LINE: Line = Line {
    ball: AtomicU64::new(0),
};
static STOP: AtomicBool = AtomicBool::new(false);

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Options {
    run: Duration,
    interval: Duration,
    verbose: bool,
}

/// Reads `[SECONDS] [INTERVAL_MS] [-v]`; `Err` carries the message to print with the usage.
fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut numbers = Vec::new();
    let mut verbose = false;
    for arg in args {
        match arg.as_str() {
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => return Err(String::new()),
            s => match s.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 && x < 3600.0 => numbers.push(x),
                _ => return Err(format!("not a positive number below 3600: {s:?}")),
            },
        }
    }
    if numbers.len() > 2 {
        return Err("too many arguments".to_owned());
    }
    let secs = numbers.first().copied().unwrap_or(0.3);
    let interval_ms = numbers.get(1).copied().unwrap_or(20.0);
    Ok(Options {
        run: Duration::from_secs_f64(secs),
        interval: Duration::from_secs_f64(interval_ms / 1000.0),
        verbose,
    })
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit inside `set`; cpu is below CPU_SETSIZE (callers pass 0 or 1).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is valid for the length passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPU 1 side: answers every odd value with the next even one until told to stop.
fn pong() {
    let mut expect = 1;
    while !STOP.load(Ordering::Relaxed) {
        // Acquire: pairs with the Release store of `ping` (P0), as in c2c_latency.c; the value
        // itself is the only thing exchanged.
        if LINE.ball.load(Ordering::Acquire) == expect {
            // P1: Release, read by the Acquire spin in `ping`.
            LINE.ball.store(expect + 1, Ordering::Release);
            expect += 2;
        }
    }
}

/// The CPU 0 side: one batch of round trips, starting from the even value `v`; returns the next.
fn ping_batch(mut v: u64) -> u64 {
    for _ in 0..BATCH {
        // P0: Release, read by the Acquire load in `pong`.
        LINE.ball.store(v + 1, Ordering::Release);
        // Acquire: pairs with P1 in `pong`.
        while LINE.ball.load(Ordering::Acquire) != v + 2 {}
        v += 2;
    }
    v
}

/// Runs the probe and returns the one-way figure (ns) of every interval.
fn measure(opts: Options) -> io::Result<Vec<f64>> {
    STOP.store(false, Ordering::Relaxed);
    LINE.ball.store(0, Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel();
    let partner = thread::spawn(move || {
        let pinned = pin_to(1);
        let ok = pinned.is_ok();
        // A closed channel only means the main thread gave up already.
        let _ = tx.send(pinned);
        if ok {
            pong();
        }
    });
    let pinned = rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("partner thread ended early")));
    let result = pinned.and_then(|()| pin_to(0)).map(|()| {
        let mut samples = Vec::new();
        let (mut v, mut last_v) = (0u64, 0u64);
        let start = Instant::now();
        let mut last = start;
        while start.elapsed() < opts.run {
            v = ping_batch(v);
            let now = Instant::now();
            let span = now - last;
            if span >= opts.interval {
                let one_way = span.as_secs_f64() * 1e9 / (v - last_v) as f64;
                if opts.verbose {
                    eprintln!(
                        "t={:5.2}s one-way={:6.1} ns",
                        (now - start).as_secs_f64(),
                        one_way
                    );
                }
                samples.push(one_way);
                last = now;
                last_v = v;
            }
        }
        samples
    });
    STOP.store(true, Ordering::Relaxed);
    if partner.join().is_err() {
        return Err(io::Error::other("partner thread panicked"));
    }
    result
}

/// Median of the figures (mean of the middle two for an even count); `None` when empty.
fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("c2c: {msg}");
            }
            eprintln!("usage: c2c [SECONDS=0.3] [INTERVAL_MS=20] [-v]");
            eprintln!("prints the median one-way CPU 0 <-> CPU 1 cache-line handoff latency in ns");
            return ExitCode::from(2);
        }
    };
    match measure(opts).map(median) {
        Ok(Some(ns)) => {
            println!("{ns:.1}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("c2c: no complete interval; run longer than one interval");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("c2c: {e} (needs CPUs 0 and 1)");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_are_a_third_of_a_second_in_20_ms_intervals() {
        let o = parse_args(&[]).unwrap();
        assert_eq!(o.run, Duration::from_millis(300));
        assert_eq!(o.interval, Duration::from_millis(20));
        assert!(!o.verbose);
    }

    #[test]
    fn seconds_interval_and_verbose_are_read() {
        let o = parse_args(&strings(&["1.5", "100", "-v"])).unwrap();
        assert_eq!(o.run, Duration::from_millis(1500));
        assert_eq!(o.interval, Duration::from_millis(100));
        assert!(o.verbose);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_args(&strings(&["x"])).is_err());
        assert!(parse_args(&strings(&["-1"])).is_err());
        assert!(parse_args(&strings(&["NaN"])).is_err());
        assert!(parse_args(&strings(&["1", "2", "3"])).is_err());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
