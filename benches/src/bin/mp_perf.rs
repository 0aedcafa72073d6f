//! mp_perf: IPC round trips and one-way throughput between a primary and a secondary, measured
//! the way `benches/dpdk/mp_perf.c` measures DPDK's `rte_mp_*`, with the same JSON lines.
//!
//! ```text
//! mp_perf -l 0 --file-prefix P -- [-n REQUESTS] [-t SECONDS]
//! ```
//! The primary starts the secondary itself (`-l 1`). The secondary measures
//! `request_sync` secondary->primary and `sendmsg` secondary->primary, then hands over and the
//! primary measures the primary->secondary direction.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::eal::{self, Eal, ProcType};
use shoal::mp::{Message, Mp};

const PING: &str = "perf_ping";
const MSG: &str = "perf_msg";
const STATS: &str = "perf_stats";
const GO: &str = "perf_go";
const DONE: &str = "perf_done";
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a receiver counted of `perf_msg`.
#[derive(Default)]
struct Recv {
    count: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

fn now_ns() -> u64 {
    eal::monotonic_ns()
}

fn register(mp: &Mp, recv: &Arc<Recv>, flag: &Arc<AtomicBool>, flag_name: &'static str) {
    mp.action_register(PING, |msg, peer| {
        let _ = Message::new(PING, msg.param()).map(|r| peer.reply(&r));
    })
    .expect("register ping");
    let r = recv.clone();
    mp.action_register(MSG, move |_, _| {
        let t = now_ns();
        if r.count.fetch_add(1, Ordering::Relaxed) == 0 {
            r.first_ns.store(t, Ordering::Relaxed);
        }
        r.last_ns.store(t, Ordering::Relaxed);
    })
    .expect("register msg");
    let r = recv.clone();
    mp.action_register(STATS, move |_, peer| {
        let mut p = [0u8; 24];
        p[..8].copy_from_slice(&r.count.swap(0, Ordering::Relaxed).to_le_bytes());
        p[8..16].copy_from_slice(&r.first_ns.load(Ordering::Relaxed).to_le_bytes());
        p[16..].copy_from_slice(&r.last_ns.load(Ordering::Relaxed).to_le_bytes());
        let _ = Message::new(STATS, &p).map(|m| peer.reply(&m));
    })
    .expect("register stats");
    let f = flag.clone();
    mp.action_register(flag_name, move |_, _| f.store(true, Ordering::Release))
        .expect("register flag");
}

fn latency_case(mp: &Mp, n: usize, direction: &str) -> bool {
    let warm = (n / 10).max(10);
    let mut lat = Vec::with_capacity(n);
    for i in 0..warm + n {
        let req = Message::new(PING, &(i as u64).to_le_bytes()).expect("message");
        let t0 = now_ns();
        match mp.request_sync(&req, TIMEOUT) {
            Ok(r) if r.nb_received == 1 => {}
            Ok(r) => {
                eprintln!("mp_perf: {} replies of {} sent", r.nb_received, r.nb_sent);
                return false;
            }
            Err(e) => {
                eprintln!("mp_perf: request failed: {e}");
                return false;
            }
        }
        if i >= warm {
            lat.push(now_ns() - t0);
        }
    }
    lat.sort_unstable();
    let us = |v: u64| v as f64 / 1e3;
    let mean = lat.iter().sum::<u64>() as f64 / n as f64 / 1e3;
    let i99 = (n * 99).div_ceil(100);
    println!(
        "{}",
        serde_json::json!({"side": "shoal", "case": format!("request_sync {direction}"), "unit": "us",
            "p50": us(lat[(n - 1) / 2]), "p99": us(lat[i99 - 1]), "mean": mean, "min": us(lat[0]), "max": us(lat[n - 1]), "n": n})
    );
    true
}

fn throughput_case(mp: &Mp, secs: f64, direction: &str) -> bool {
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            let m = Message::new(MSG, &sent.to_le_bytes()).expect("message");
            if let Err(e) = mp.sendmsg(&m) {
                eprintln!("mp_perf: sendmsg failed: {e}");
                return false;
            }
            sent += 1;
        }
    }
    // The stats request reaches the receiver's socket after every message sent above (one
    // queue, in order), and its handler runs after theirs.
    let reply = match mp.request_sync(&Message::new(STATS, &[]).expect("message"), TIMEOUT) {
        Ok(r) if r.nb_received == 1 => r,
        other => {
            eprintln!("mp_perf: stats request failed: {other:?}");
            return false;
        }
    };
    let p = reply.msgs[0].param();
    let word = |i: usize| u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let (count, first, last) = (word(0), word(1), word(2));
    let rate = if count > 1 && last > first {
        (count - 1) as f64 * 1e9 / (last - first) as f64
    } else {
        0.0
    };
    println!(
        "{}",
        serde_json::json!({"side": "shoal", "case": format!("sendmsg {direction}"), "unit": "msg/s", "rate": rate.round(), "sent": sent, "received": count})
    );
    count == sent
}

fn wait_flag(flag: &AtomicBool, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !flag.load(Ordering::Acquire) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn main() {
    let (eal, app) = eal::init_or_exit(
        "mp_perf options: [-n REQUESTS (default 10000)] [-t SECONDS of sendmsg (default 1)]",
    );
    let (mut n, mut secs) = (10_000usize, 1.0f64);
    let mut it = app.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().map(String::as_str).unwrap_or("");
        match a.as_str() {
            "-n" => n = v.parse().unwrap_or(0),
            "-t" => secs = v.parse().unwrap_or(0.0),
            _ => {
                eprintln!("mp_perf: unknown option {a:?}");
                std::process::exit(2);
            }
        }
    }
    if n < 10 || secs <= 0.0 {
        eprintln!("mp_perf: -n must be at least 10 and -t above 0");
        std::process::exit(2);
    }
    let mp = eal.mp().expect("IPC channel").clone();
    let recv = Arc::new(Recv::default());
    let ok = match eal.proc_type() {
        ProcType::Primary => primary(&eal, &mp, &recv, n, secs),
        ProcType::Secondary => secondary(&mp, &recv, n, secs),
    };
    mp.shutdown();
    drop(mp);
    // Leave the group cleanly (slot and lcores released) before exiting.
    drop(eal);
    std::process::exit(if ok { 0 } else { 1 });
}

fn primary(eal: &Eal, mp: &Mp, recv: &Arc<Recv>, n: usize, secs: f64) -> bool {
    let go = Arc::new(AtomicBool::new(false));
    register(mp, recv, &go, GO);
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "-l",
            "1",
            "--proc-type=secondary",
            "--file-prefix",
            eal.file_prefix(),
            "--log-level",
            "warning",
            "--",
        ])
        .args(["-n", &n.to_string(), "-t", &secs.to_string()])
        .spawn()
        .expect("spawn the secondary");
    let limit = 60 + (n as u64) / 100;
    let mut ok = wait_flag(&go, limit);
    if ok {
        ok = latency_case(mp, n, "primary->secondary")
            && throughput_case(mp, secs, "primary->secondary");
    } else {
        eprintln!("mp_perf: the secondary never handed over");
    }
    let _ = mp.sendmsg(&Message::new(DONE, &[]).expect("message"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return ok && st.success(),
            _ if Instant::now() >= deadline => {
                let _ = child.kill();
                return false;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn secondary(mp: &Mp, recv: &Arc<Recv>, n: usize, secs: f64) -> bool {
    let done = Arc::new(AtomicBool::new(false));
    register(mp, recv, &done, DONE);
    let ok = latency_case(mp, n, "secondary->primary")
        && throughput_case(mp, secs, "secondary->primary");
    let _ = mp.sendmsg(&Message::new(GO, &[]).expect("message"));
    ok && wait_flag(&done, 60 + (n as u64) / 100)
}
