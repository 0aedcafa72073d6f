//! `shoal info`: attach read-only to a running group and print it.

use shoal::eal::Eal;
use shoal::telemetry::{snapshot, Snapshot};

pub(crate) fn run(args: &[String]) -> i32 {
    let opts = match crate::parse_group_opts(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", crate::USAGE);
            return 2;
        }
    };
    let eal = match Eal::inspect(&opts.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let snap = snapshot(&eal);
    if opts.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&snap).expect("snapshot serialises")
        );
    } else {
        print!("{}", render(&snap));
    }
    0
}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn field(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

/// The text layout of `shoal info`.
pub(crate) fn render(s: &Snapshot) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "group {:?}", s.file_prefix);
    let _ = writeln!(o, "  primary pid     {}", s.primary_pid);
    let _ = writeln!(
        o,
        "  memory          {} on {} ({})",
        mib(s.memory_bytes),
        s.backing,
        s.segment
    );
    let _ = writeln!(
        o,
        "  heap used       {} of {} in {} memzones",
        mib(s.memory_used),
        mib(s.heap_bytes),
        s.memzones.len()
    );
    let lock = if s.metadata_lock_holder.is_none() {
        "free".to_string()
    } else {
        format!("held by {}", s.metadata_lock_holder)
    };
    let _ = writeln!(
        o,
        "  metadata lock   {lock} (dead holders recovered: {})",
        s.metadata_lock_recoveries
    );
    let _ = writeln!(o, "\nmemzones ({})", s.memzones.len());
    let _ = writeln!(
        o,
        "  {:<32} {:<9} {:>12} {:>12} {:>8}",
        "NAME", "KIND", "OFFSET", "LEN", "CREATOR"
    );
    for m in &s.memzones {
        let kind = serde_json::to_value(m.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {:<32} {:<9} {:>#12x} {:>12} {:>8}",
            m.name, kind, m.offset, m.len, m.creator_pid
        );
    }
    let _ = writeln!(o, "\nrings ({})", s.rings.len());
    let _ = writeln!(
        o,
        "  {:<32} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "NAME", "SIZE", "CAPACITY", "COUNT", "PROD", "CONS"
    );
    for r in &s.rings {
        let _ = writeln!(
            o,
            "  {:<32} {:>8} {:>8} {:>8} {:>6} {:>6}",
            field(r, "name"),
            field(r, "size"),
            field(r, "capacity"),
            field(r, "count"),
            field(r, "prod"),
            field(r, "cons")
        );
    }
    let _ = writeln!(o, "\nmempools ({})", s.mempools.len());
    let _ = writeln!(
        o,
        "  {:<32} {:>8} {:>8} {:>10} {:>8}  IN_USE_BY_SLOT",
        "NAME", "SIZE", "ELT_SIZE", "AVAILABLE", "IN_USE"
    );
    for m in &s.mempools {
        let _ = writeln!(
            o,
            "  {:<32} {:>8} {:>8} {:>10} {:>8}  {}",
            field(m, "name"),
            field(m, "size"),
            field(m, "elt_size"),
            field(m, "available"),
            field(m, "in_use"),
            field(m, "in_use_by_slot")
        );
    }
    let _ = writeln!(o, "\npipelines ({})", s.pipelines.len());
    for p in &s.pipelines {
        let _ = writeln!(
            o,
            "  {:<20} {:<9} distributor {} ({}) rx {} enqueued {} dropped {} answered {}",
            p.name,
            p.state,
            p.distributor_pid,
            p.distributor_liveness,
            p.rx,
            p.enqueued(),
            p.dropped(),
            p.answered
        );
        for w in &p.workers {
            let _ = writeln!(
                o,
                "    worker {:<3} pid {:<8} {:<7} {} rx {} tx {} ring {} taken back {} starts {}",
                w.id,
                w.pid,
                w.liveness,
                if w.live { "live" } else { "down" },
                w.rx,
                w.tx,
                w.ring_count,
                w.taken_back,
                w.starts
            );
        }
    }
    let _ = writeln!(o, "\nprocesses ({})", s.processes.len());
    let _ = writeln!(
        o,
        "  {:>4} {:>10} {:<10} {:<16} {:<8} {:>10}",
        "SLOT", "PID", "TYPE", "LCORES", "ALIVE", "HEARTBEAT"
    );
    for p in &s.processes {
        let lcores = p
            .lcores
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(",");
        // A pid from another PID namespace names nothing here: mark it.
        let pid = if p.same_pid_ns {
            p.pid.to_string()
        } else {
            format!("{}*", p.pid)
        };
        let alive = match p.liveness {
            shoal::sync::Liveness::Alive => "yes",
            shoal::sync::Liveness::Dead => "no",
            shoal::sync::Liveness::Unknown => "unknown",
        };
        let _ = writeln!(
            o,
            "  {:>4} {:>10} {:<10} {:<16} {:<8} {:>8}ms",
            p.slot, pid, p.proc_type, lcores, alive, p.heartbeat_age_ms
        );
    }
    if s.processes.iter().any(|p| !p.same_pid_ns) {
        let _ = writeln!(
            o,
            "  * pid in another PID namespace (liveness does not depend on pids)"
        );
    }
    let _ = writeln!(o, "\nports ({})", s.ports.len());
    let _ = writeln!(
        o,
        "  {:>4} {:<20} {:<14} {:>5} {:>5} {:<17} {:<10} {:<9} {:>12} {:>12}",
        "ID", "NAME", "DRIVER", "RXQ", "TXQ", "MAC", "STATE", "MODE", "IPACKETS", "OPACKETS"
    );
    for p in &s.ports {
        let _ = writeln!(
            o,
            "  {:>4} {:<20} {:<14} {:>5} {:>5} {:<17} {:<10} {:<9} {:>12} {:>12}",
            p.id,
            p.name,
            p.driver,
            p.rx_queues,
            p.tx_queues,
            p.mac,
            p.state,
            p.mode.unwrap_or("-"),
            p.ipackets,
            p.opackets
        );
    }
    o
}
