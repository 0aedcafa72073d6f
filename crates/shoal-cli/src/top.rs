//! `shoal top`: a live monitor of a running group. Every interval it takes a snapshot
//! ([`shoal::telemetry::snapshot`]) and prints rates against the previous one: packets and
//! bytes per second per port and per worker of every pipeline ([`shoal::dispatch`]), drops per
//! second by cause, ring fill, pool use, and each process's liveness and CPU use. Rows are
//! sorted, busiest first. On a terminal each frame replaces the last (cursor home and clear);
//! otherwise frames are plain text, one after another, with no escape sequences.
//!
//! A plain redraw rather than a TUI library: the view is one table of text per frame, which
//! also has to work through a pipe, and needs no input handling.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use shoal::dispatch::PipelineStats;
use shoal::eal::Eal;
use shoal::telemetry::{snapshot, Snapshot};

/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 on Linux).
const USER_HZ: f64 = 100.0;

/// `shoal top`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "A live monitor of a running group: rates per port, pipeline, worker, ring, pool and process"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Stop after N refreshes (default: until interrupted)
    #[arg(short = 'n', long, value_name = "N", value_parser = above_zero)]
    iterations: Option<u64>,
    /// Time between refreshes
    #[arg(long = "interval-ms", value_name = "MS", default_value = "1000", value_parser = shoal_apps::args::millis)]
    interval: Duration,
    /// Plain frames one after another, even on a terminal (no cursor movement)
    #[arg(long)]
    plain: bool,
}

/// Value parser: a count of 1 or more.
fn above_zero(v: &str) -> Result<u64, String> {
    match shoal_apps::args::num::<u64>(v)? {
        0 => Err("a number above 0".into()),
        n => Ok(n),
    }
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("top", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let opts = o.group.clone();
    let eal = match Eal::inspect(&opts.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let tty = !o.plain && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut prev = Sample::take(&eal);
    let mut n = 0u64;
    loop {
        std::thread::sleep(o.interval);
        // The group may have gone away meanwhile.
        if !eal
            .processes()
            .iter()
            .any(|p| p.alive && p.proc_type == "primary")
        {
            eprintln!("the primary of {:?} has exited", opts.prefix);
            return 1;
        }
        let cur = Sample::take(&eal);
        n += 1;
        let frame = render(&prev, &cur, n);
        if tty {
            crate::print_out(&format!("\x1b[H\x1b[2J{frame}"));
        } else {
            crate::print_out(&format!("{frame}\n"));
        }
        prev = cur;
        if o.iterations.is_some_and(|max| n >= max) {
            return 0;
        }
    }
}

/// A snapshot and the processes' CPU time, taken at one moment.
struct Sample {
    at: Instant,
    snap: Snapshot,
    /// Clock ticks (user + system) by pid, for processes in this PID namespace.
    cpu: HashMap<u32, u64>,
}

impl Sample {
    fn take(eal: &Eal) -> Sample {
        let snap = snapshot(eal);
        let cpu = snap
            .processes
            .iter()
            .filter(|p| p.same_pid_ns && p.alive)
            .filter_map(|p| Some((p.pid, cpu_ticks(p.pid)?)))
            .collect();
        Sample {
            at: Instant::now(),
            snap,
            cpu,
        }
    }
}

/// utime + stime of a process, from `/proc/<pid>/stat` (fields 14 and 15, counted after the
/// command name's closing parenthesis, since the name may hold spaces).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ')': field 3 (state) is f[0], so field k is f[k - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn per_sec(cur: u64, prev: u64, secs: f64) -> f64 {
    cur.saturating_sub(prev) as f64 / secs
}

fn render(prev: &Sample, cur: &Sample, frame: u64) -> String {
    let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-6);
    let s = &cur.snap;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "shoal top: group {:?}, primary pid {}, rates over {:.2} s (frame {frame})",
        s.file_prefix, s.primary_pid, secs
    );
    ports(&mut o, &s.ports, &prev.snap.ports, secs);
    for p in &s.pipelines {
        let old = prev.snap.pipelines.iter().find(|q| q.name == p.name);
        pipeline(&mut o, p, old, secs);
    }
    if s.pipelines.is_empty() {
        let _ = writeln!(o, "\npipelines (0)");
    }

    let _ = writeln!(o, "\nrings ({}), fullest first", s.rings.len());
    let _ = writeln!(
        o,
        "  {:<32} {:>9} {:>9} {:>6}",
        "NAME", "COUNT", "CAPACITY", "FILL"
    );
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let name = |v: &serde_json::Value| {
        v.get("name")
            .and_then(|x| x.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let mut rings: Vec<(String, u64, u64)> = s
        .rings
        .iter()
        .map(|r| (name(r), num(r, "count"), num(r, "capacity")))
        .collect();
    let fill = |c: u64, cap: u64| 100.0 * c as f64 / cap.max(1) as f64;
    rings.sort_by(|a, b| {
        fill(b.1, b.2)
            .total_cmp(&fill(a.1, a.2))
            .then(a.0.cmp(&b.0))
    });
    for (n, c, cap) in &rings {
        let _ = writeln!(o, "  {n:<32} {c:>9} {cap:>9} {:>5.1}%", fill(*c, *cap));
    }

    let _ = writeln!(o, "\nmempools ({}), fullest first", s.mempools.len());
    let _ = writeln!(
        o,
        "  {:<32} {:>9} {:>9} {:>6}",
        "NAME", "IN_USE", "SIZE", "USE"
    );
    let mut pools: Vec<(String, u64, u64)> = s
        .mempools
        .iter()
        .map(|m| (name(m), num(m, "in_use"), num(m, "size")))
        .collect();
    pools.sort_by(|a, b| {
        fill(b.1, b.2)
            .total_cmp(&fill(a.1, a.2))
            .then(a.0.cmp(&b.0))
    });
    for (n, u, size) in &pools {
        let _ = writeln!(o, "  {n:<32} {u:>9} {size:>9} {:>5.1}%", fill(*u, *size));
    }

    let _ = writeln!(o, "\nprocesses ({}), busiest first", s.processes.len());
    let _ = writeln!(
        o,
        "  {:>4} {:>10} {:<10} {:<8} {:>6} {:<12} {:>10}",
        "SLOT", "PID", "TYPE", "ALIVE", "CPU%", "LCORES", "HEARTBEAT"
    );
    let mut procs: Vec<(f64, &shoal::eal::ProcessInfo)> = s
        .processes
        .iter()
        .map(|p| {
            let cpu = match (cur.cpu.get(&p.pid), prev.cpu.get(&p.pid)) {
                (Some(&c), Some(&b)) => 100.0 * c.saturating_sub(b) as f64 / USER_HZ / secs,
                _ => f64::NAN,
            };
            (cpu, p)
        })
        .collect();
    procs.sort_by(|a, b| {
        let key = |x: f64| if x.is_nan() { -1.0 } else { x };
        key(b.0).total_cmp(&key(a.0)).then(a.1.slot.cmp(&b.1.slot))
    });
    for (cpu, p) in procs {
        let alive = match p.liveness {
            shoal::sync::Liveness::Alive => "yes",
            shoal::sync::Liveness::Dead => "no",
            shoal::sync::Liveness::Unknown => "unknown",
        };
        let lcores = p
            .lcores
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let pid = if p.same_pid_ns {
            p.pid.to_string()
        } else {
            format!("{}*", p.pid)
        };
        let cpu = if cpu.is_nan() {
            "-".to_string()
        } else {
            format!("{cpu:.1}")
        };
        let _ = writeln!(
            o,
            "  {:>4} {:>10} {:<10} {:<8} {:>6} {:<12} {:>8}ms",
            p.slot, pid, p.proc_type, alive, cpu, lcores, p.heartbeat_age_ms
        );
    }
    o
}

/// Every port of the group, from the port table: whoever polls it.
fn ports(o: &mut String, cur: &[serde_json::Value], prev: &[serde_json::Value], secs: f64) {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let drops = |v: &serde_json::Value| {
        ["imissed", "ierrors", "rx_nombuf", "oerrors"]
            .iter()
            .map(|k| num(v, k))
            .sum::<u64>()
    };
    let _ = writeln!(o, "\nports ({}), busiest first", cur.len());
    let _ = writeln!(
        o,
        "  {:>4} {:<16} {:<10} {:>11} {:>9} {:>11} {:>9} {:>9} {:>12} {:>12}",
        "PORT",
        "NAME",
        "STATE",
        "RX_PPS",
        "RX_MBPS",
        "TX_PPS",
        "TX_MBPS",
        "DROP_PS",
        "RX_TOTAL",
        "TX_TOTAL"
    );
    let mut rows: Vec<(f64, String)> = cur
        .iter()
        .map(|p| {
            let before = prev.iter().find(|q| q.get("port") == p.get("port"));
            let rate = |k: &str| per_sec(num(p, k), before.map_or(num(p, k), |b| num(b, k)), secs);
            let dr = per_sec(drops(p), before.map_or(drops(p), drops), secs);
            let rx = rate("ipackets");
            let row = format!(
                "  {:>4} {:<16} {:<10} {:>11.1} {:>9.3} {:>11.1} {:>9.3} {:>9.1} {:>12} {:>12}",
                num(p, "port"),
                p.get("name").and_then(|x| x.as_str()).unwrap_or("?"),
                p.get("state").and_then(|x| x.as_str()).unwrap_or("?"),
                rx,
                rate("ibytes") * 8.0 / 1e6,
                rate("opackets"),
                rate("obytes") * 8.0 / 1e6,
                dr,
                num(p, "ipackets"),
                num(p, "opackets"),
            );
            (rx, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, r) in rows {
        let _ = writeln!(o, "{r}");
    }
}

fn pipeline(o: &mut String, p: &PipelineStats, old: Option<&PipelineStats>, secs: f64) {
    let _ = writeln!(
        o,
        "\npipeline {:?} {}, distributor pid {} ({}), {} workers",
        p.name,
        p.state,
        p.distributor_pid,
        p.distributor_liveness,
        p.workers.len()
    );
    let _ = writeln!(
        o,
        "  {:<6} {:>12} {:>10} {:>14}",
        "PORT", "RX_PPS", "RX_MBPS", "RX_TOTAL"
    );
    let mut ports: Vec<(f64, f64, &shoal::dispatch::PortCounters)> = p
        .ports
        .iter()
        .map(|pc| {
            let before = old.and_then(|q| q.ports.iter().find(|x| x.port == pc.port));
            let pps = per_sec(pc.rx, before.map_or(pc.rx, |b| b.rx), secs);
            let bps = per_sec(
                pc.rx_bytes,
                before.map_or(pc.rx_bytes, |b| b.rx_bytes),
                secs,
            );
            (pps, bps, pc)
        })
        .collect();
    ports.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.port.cmp(&b.2.port)));
    for (pps, bps, pc) in ports {
        let _ = writeln!(
            o,
            "  {:<6} {:>12.1} {:>10.3} {:>14}",
            pc.port,
            pps,
            bps * 8.0 / 1e6,
            pc.rx
        );
    }
    let _ = writeln!(
        o,
        "  {:<6} {:<8} {:<7} {:>12} {:>10} {:>12} {:>10} {:>11} {:>12} {:>6} {:>9}",
        "WORKER",
        "STATE",
        "PID",
        "RX_PPS",
        "RX_MBPS",
        "TX_PPS",
        "DROP_PS",
        "RING",
        "RX_TOTAL",
        "STARTS",
        "HEARTBEAT"
    );
    let mut rows: Vec<(f64, String)> = p
        .workers
        .iter()
        .map(|w| {
            let b = old.and_then(|q| q.workers.get(w.id));
            let rx = per_sec(w.rx, b.map_or(w.rx, |b| b.rx), secs);
            let bytes = per_sec(w.rx_bytes, b.map_or(w.rx_bytes, |b| b.rx_bytes), secs);
            let tx = per_sec(w.tx, b.map_or(w.tx, |b| b.tx), secs);
            let drops = |x: &shoal::dispatch::WorkerStats| x.drop_ring_full + x.tx_drop;
            let dr = per_sec(drops(w), b.map_or(drops(w), drops), secs);
            let state = if w.live {
                "live"
            } else if w.stalled {
                "stalled"
            } else if w.liveness == "dead" {
                "dead"
            } else {
                "down"
            };
            let hb = w
                .heartbeat_age_ms
                .map_or("-".to_string(), |ms| format!("{ms}ms"));
            let row = format!(
                "  {:<6} {:<8} {:<7} {:>12.1} {:>10.3} {:>12.1} {:>10.1} {:>11} {:>12} {:>6} {:>9}",
                w.id,
                state,
                w.pid,
                rx,
                bytes * 8.0 / 1e6,
                tx,
                dr,
                w.ring_count,
                w.rx,
                w.starts,
                hb
            );
            (rx, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, r) in rows {
        let _ = writeln!(o, "{r}");
    }
    let rate = |f: fn(&PipelineStats) -> u64| per_sec(f(p), old.map_or(f(p), f), secs);
    let ring_full = |q: &PipelineStats| q.workers.iter().map(|w| w.drop_ring_full).sum::<u64>();
    let _ = writeln!(
        o,
        "  drops/s: no_worker {:.1}, ring_full {:.1}, by_dispatcher {:.1}, bad_verdict {:.1}, copy_fail {:.1}, answer_fail {:.1}",
        rate(|q| q.drop_no_worker),
        rate(ring_full),
        rate(|q| q.drop_by_dispatcher),
        rate(|q| q.drop_bad_verdict),
        rate(|q| q.copy_fail),
        rate(|q| q.answer_fail),
    );
    let _ = writeln!(
        o,
        "  totals: rx {} + copies {} = enqueued {} + dropped {} + answered {} (+ {} in flight); taken back {}",
        p.rx,
        p.neighbour_copies,
        p.enqueued(),
        p.dropped(),
        p.answered,
        p.unaccounted(),
        p.workers.iter().map(|w| w.taken_back).sum::<u64>()
    );
}
