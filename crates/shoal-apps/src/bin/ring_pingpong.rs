//! ring_pingpong: round-trip times through two rings (lesson 7, lab 2).
//!
//! The primary sends pings carrying a sequence number and a timestamp on `PING`; the secondary
//! answers each with a pong on `PONG`, unchanged. The primary prints each RTT when asked
//! (`--verbose`) and at the end the counts, the loss rate and RTT percentiles.

use std::time::{Duration, Instant};

use shoal::eal::{Eal, ProcType};
use shoal::ring::{Ring, RingConfig, SyncMode};
use shoal::sync::Backoff;
use shoal_apps::args::Opts;
use shoal_apps::now_ns;

const PING: &str = "PING";
const PONG: &str = "PONG";
/// Sequence number of the message that tells the responder to leave.
const FIN: u64 = u64::MAX;

const USAGE: &str = "\
ring_pingpong options (primary = sender, secondary = responder):
  --count N          pings to send (default 1000)
  --interval USEC    pause between bursts (default 1000; 0 = back to back: the next burst
                     leaves as soon as the last one's pongs are back, so nothing queues)
  --burst N          pings per burst (default 1)
  --ring-size N      ring size, a power of two (default 1024)
  --timeout MS       how long to wait for the last pongs (default 1000)
  --peer-timeout MS  how long the sender waits for a responder to attach (default 30000)
  --verbose          print every RTT
  --poll             busy-poll instead of backing off when idle (lowest RTT; costs a CPU)";

/// A ping or a pong.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Msg {
    seq: u64,
    sent_ns: u64,
}

struct Config {
    count: u64,
    interval: Duration,
    burst: usize,
    ring_size: u32,
    timeout: Duration,
    peer_timeout: Duration,
    verbose: bool,
    poll: bool,
}

fn parse(args: &[String]) -> Result<Config, String> {
    let mut c = Config {
        count: 1000,
        interval: Duration::from_micros(1000),
        burst: 1,
        ring_size: 1024,
        timeout: Duration::from_millis(1000),
        peer_timeout: Duration::from_secs(30),
        verbose: false,
        poll: false,
    };
    let mut o = Opts::new(args);
    while let Some(opt) = o.next_opt()? {
        match opt.as_str() {
            "--count" => c.count = o.num("--count")?,
            "--interval" => c.interval = Duration::from_micros(o.num("--interval")?),
            "--burst" => {
                c.burst = o.num("--burst")?;
                if c.burst == 0 || c.burst > 512 {
                    return Err("--burst must be 1 to 512".into());
                }
            }
            "--ring-size" => {
                c.ring_size = o.num("--ring-size")?;
                if !c.ring_size.is_power_of_two() || c.ring_size < 2 {
                    return Err("--ring-size must be a power of two, 2 or more".into());
                }
            }
            "--timeout" => c.timeout = Duration::from_millis(o.num("--timeout")?),
            "--peer-timeout" => c.peer_timeout = Duration::from_millis(o.num("--peer-timeout")?),
            "--verbose" => c.verbose = true,
            "--poll" => c.poll = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if c.count == 0 || c.count == FIN {
        return Err("--count must be at least 1".into());
    }
    Ok(c)
}

fn main() {
    let (eal, cfg) = shoal_apps::args::init(std::env::args().collect(), USAGE, parse);
    let r = match eal.proc_type() {
        ProcType::Primary => sender(&eal, &cfg),
        ProcType::Secondary => responder(&eal, &cfg),
    };
    if let Err(e) = r {
        eprintln!("ring_pingpong: {e}");
        std::process::exit(1);
    }
}

fn sender(eal: &Eal, cfg: &Config) -> Result<(), String> {
    let rc = RingConfig {
        prod: SyncMode::Sp,
        cons: SyncMode::Sp,
        ..RingConfig::new(cfg.ring_size)
    };
    let ping = Ring::<Msg>::create(eal, PING, &rc).map_err(|e| format!("ring {PING}: {e}"))?;
    let pong = Ring::<Msg>::create(eal, PONG, &rc).map_err(|e| format!("ring {PONG}: {e}"))?;
    let mut tx = ping.producer().ok_or("PING already has a producer")?;
    let mut rx = pong.consumer().ok_or("PONG already has a consumer")?;
    println!("sender ready; waiting for a responder");
    let deadline = Instant::now() + cfg.peer_timeout;
    while !eal
        .processes()
        .iter()
        .any(|p| p.proc_type == "secondary" && p.alive)
    {
        if Instant::now() >= deadline || eal.should_quit() {
            return Err("no responder attached (start ring_pingpong --proc-type=secondary)".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let responder_cpu = eal
        .processes()
        .iter()
        .find(|p| p.proc_type == "secondary" && p.alive)
        .and_then(|p| p.lcores.first().copied())
        .map(|l| eal.cpu_of(shoal::eal::LcoreId(l)));
    println!("responder attached; sending {} pings", cfg.count);
    let mut rtts: Vec<u64> = Vec::with_capacity(cfg.count as usize);
    let (mut sent, mut ring_full) = (0u64, 0u64);
    let mut buf = vec![Msg::default(); cfg.burst.max(32)];
    let mut seen = vec![false; cfg.count as usize];
    let mut collect =
        |rx: &mut shoal::ring::Consumer<Msg>, rtts: &mut Vec<u64>, buf: &mut [Msg]| {
            let n = rx.dequeue_burst(buf);
            let now = now_ns();
            for m in &buf[..n] {
                if let Some(s) = seen.get_mut(m.seq as usize) {
                    if !*s {
                        *s = true;
                        let rtt = now.saturating_sub(m.sent_ns);
                        rtts.push(rtt);
                        if cfg.verbose {
                            println!("pong {} rtt {:.2} us", m.seq, rtt as f64 / 1e3);
                        }
                    }
                }
            }
            n
        };
    let mut next_burst = Instant::now();
    while sent < cfg.count && !eal.should_quit() {
        // Back to back: one burst in flight at a time, so an RTT never includes queueing.
        let idle = !cfg.interval.is_zero() || rtts.len() as u64 >= sent - ring_full;
        if idle && Instant::now() >= next_burst {
            let n = (cfg.burst as u64).min(cfg.count - sent) as usize;
            let t = now_ns();
            let msgs: Vec<Msg> = (0..n as u64)
                .map(|i| Msg {
                    seq: sent + i,
                    sent_ns: t,
                })
                .collect();
            let ok = tx.enqueue_burst(&msgs);
            ring_full += (n - ok) as u64;
            sent += n as u64;
            next_burst = Instant::now() + cfg.interval;
        }
        collect(&mut rx, &mut rtts, &mut buf);
    }
    let deadline = Instant::now() + cfg.timeout;
    let mut backoff = Backoff::new();
    while (rtts.len() as u64) < sent - ring_full && Instant::now() < deadline && !eal.should_quit()
    {
        if collect(&mut rx, &mut rtts, &mut buf) == 0 && !cfg.poll {
            backoff.snooze();
        }
    }
    let _ = tx.enqueue(Msg {
        seq: FIN,
        sent_ns: 0,
    });
    let p50 = report(sent, ring_full, &mut rtts);
    // Give the responder a moment to see FIN and leave before the group goes away.
    let deadline = Instant::now() + Duration::from_secs(2);
    while eal
        .processes()
        .iter()
        .any(|p| p.proc_type == "secondary" && p.alive)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The floor under the RTT, measured now on the same two CPUs (their placement on the host
    // can change between runs, so a figure from another run says little).
    let mine = eal.cpu_of(eal.main_lcore());
    match responder_cpu {
        Some(theirs) if theirs != mine => {
            match shoal::eal::cache_line_round_trip(mine, theirs, 20_000) {
                Ok(c2c) => {
                    let c2c_us = c2c.as_nanos() as f64 / 1e3;
                    print!("cache-line round trip us (CPU {mine} <-> CPU {theirs}): {c2c_us:.2}");
                    match p50 {
                        Some(p) if c2c_us > 0.0 => println!("; rtt p50 = {:.1}x that", p / c2c_us),
                        _ => println!(),
                    }
                }
                Err(e) => println!("cache-line round trip: not measured ({e})"),
            }
        }
        _ => {
            println!("cache-line round trip: not measured (sender and responder share CPU {mine})")
        }
    }
    Ok(())
}

/// Prints the statistics; returns the p50 RTT in microseconds, if any pong came back.
fn report(sent: u64, ring_full: u64, rtts: &mut [u64]) -> Option<f64> {
    let received = rtts.len() as u64;
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * (sent - received) as f64 / sent as f64
    };
    println!("--- ring_pingpong statistics ---");
    println!(
        "sent {sent}, received {received}, lost {} ({loss:.2}%), ring full {ring_full}",
        sent - received
    );
    if rtts.is_empty() {
        println!("rtt: no pongs");
        return None;
    }
    rtts.sort_unstable();
    let pct = |p: f64| {
        rtts[((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1] as f64 / 1e3
    };
    println!(
        "rtt us: min {:.2} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        rtts[0] as f64 / 1e3,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        *rtts.last().unwrap() as f64 / 1e3
    );
    Some(pct(0.50))
}

fn responder(eal: &Eal, cfg: &Config) -> Result<(), String> {
    let ping = Ring::<Msg>::lookup(eal, PING).map_err(|e| format!("ring {PING}: {e}"))?;
    let pong = Ring::<Msg>::lookup(eal, PONG).map_err(|e| format!("ring {PONG}: {e}"))?;
    let mut rx = ping
        .consumer()
        .ok_or("PING already has a consumer (another responder?)")?;
    let mut tx = pong
        .producer()
        .ok_or("PONG already has a producer (another responder?)")?;
    println!("responder ready");
    let mut buf = [Msg::default(); 64];
    let mut answered = 0u64;
    let mut backoff = Backoff::new();
    while !eal.should_quit() {
        let n = rx.dequeue_burst(&mut buf);
        if n == 0 {
            if cfg.poll {
                std::hint::spin_loop();
            } else {
                backoff.snooze();
            }
            continue;
        }
        backoff.reset();
        let fin = buf[..n].iter().position(|m| m.seq == FIN);
        let upto = fin.unwrap_or(n);
        let mut done = 0;
        while done < upto && !eal.should_quit() {
            done += tx.enqueue_burst(&buf[done..upto]);
        }
        answered += upto as u64;
        if fin.is_some() {
            break;
        }
    }
    println!("responder answered {answered} pings");
    Ok(())
}
