//! `shoal info`: attach read-only to a running group and print it; with dpdk-proc-info's
//! switches (`--stats`, `--xstats`, `--reset-stats`, `--show-ring[=NAME]`,
//! `--show-mempool[=NAME]`, `-p PORTMASK`), only what they ask for.

use shoal::eal::Eal;
use shoal::telemetry::{snapshot, Snapshot};

/// `shoal info`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Print a running group: memory, memzones, rings, mempools, processes (DPDK's dpdk-proc-info)"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Print the snapshot as JSON
    #[arg(long)]
    json: bool,
    /// Ports the port switches apply to, hexadecimal (dpdk-proc-info's -p; default: all)
    #[arg(short = 'p', value_name = "PORTMASK", value_parser = shoal_apps::args::portmask)]
    portmask: Option<u64>,
    /// Print the ports' statistics
    #[arg(long)]
    stats: bool,
    /// Print the ports' extended statistics
    #[arg(long)]
    xstats: bool,
    /// Zero the ports' statistics
    #[arg(long = "reset-stats")]
    reset_stats: bool,
    /// Print the rings, or the ring NAME
    #[arg(long = "show-ring", value_name = "NAME", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    show_ring: Option<String>,
    /// Print the mempools, or the mempool NAME
    #[arg(long = "show-mempool", value_name = "NAME", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    show_mempool: Option<String>,
}

impl Opts {
    fn switches(&self) -> bool {
        self.stats
            || self.xstats
            || self.reset_stats
            || self.show_ring.is_some()
            || self.show_mempool.is_some()
    }
}

pub(crate) fn run(args: &[String]) -> i32 {
    let opts: Opts = match crate::parse_cmd("info", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let eal = match Eal::inspect(&opts.group.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if opts.switches() {
        return match proc_info(&eal, &opts) {
            Ok(text) => {
                crate::print_out(&text);
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
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

/// What dpdk-proc-info's switches ask for, as text (or one JSON object with `--json`).
fn proc_info(eal: &Eal, o: &Opts) -> Result<String, String> {
    use std::fmt::Write;
    let mask = o.portmask.unwrap_or(u64::MAX);
    let picked = |id: u16| id < 64 && mask & (1 << id) != 0;
    let mut out = String::new();
    let mut json = serde_json::Map::new();
    if o.stats || o.xstats {
        let ports = shoal::ethdev::inspect_ports(eal).map_err(|e| e.to_string())?;
        let ports: Vec<_> = ports.into_iter().filter(|p| picked(p.id.0)).collect();
        if o.stats {
            for p in &ports {
                let s = &p.stats;
                let _ = writeln!(
                    out,
                    "  ######################## NIC statistics for port {:<2} ########################",
                    p.id
                );
                let _ = writeln!(out, "  {} ({}, {})", p.name, p.spec, p.state);
                let _ = writeln!(
                    out,
                    "  RX-packets: {:<10} RX-errors:  {:<10} RX-bytes:  {:<10}",
                    s.ipackets, s.ierrors, s.ibytes
                );
                let _ = writeln!(
                    out,
                    "  RX-missed:  {:<10} RX-nombuf:  {:<10}",
                    s.imissed, s.rx_nombuf
                );
                let _ = writeln!(
                    out,
                    "  TX-packets: {:<10} TX-errors:  {:<10} TX-bytes:  {:<10}",
                    s.opackets, s.oerrors, s.obytes
                );
            }
            json.insert("stats".into(), serde_json::json!(ports));
        }
        if o.xstats {
            let mut all = serde_json::Map::new();
            for p in &ports {
                let _ = writeln!(
                    out,
                    "###### NIC extended statistics for port {:<2} #########",
                    p.id
                );
                let x = p.stats.xstats(shoal::ethdev::MAX_QUEUES);
                for (k, v) in &x {
                    let _ = writeln!(out, "{k}: {v}");
                }
                all.insert(
                    p.id.to_string(),
                    x.into_iter()
                        .map(|(k, v)| (k, serde_json::json!(v)))
                        .collect(),
                );
            }
            json.insert("xstats".into(), serde_json::Value::Object(all));
        }
    }
    if o.reset_stats {
        let ports = shoal::ethdev::inspect_ports(eal).map_err(|e| e.to_string())?;
        let mut reset = Vec::new();
        for p in ports.iter().filter(|p| picked(p.id.0)) {
            if shoal::ethdev::reset_port_stats(eal, p.id).map_err(|e| e.to_string())? {
                let _ = writeln!(out, "port {}: statistics reset", p.id);
                reset.push(p.id.0);
            }
        }
        json.insert("reset".into(), serde_json::json!(reset));
    }
    let snap = (o.show_ring.is_some() || o.show_mempool.is_some()).then(|| snapshot(eal));
    let pick = |list: &[serde_json::Value], name: &str, what: &str| {
        let v: Vec<serde_json::Value> = list
            .iter()
            .filter(|r| name.is_empty() || r.get("name").and_then(|n| n.as_str()) == Some(name))
            .cloned()
            .collect();
        if v.is_empty() && !name.is_empty() {
            return Err(format!(
                "no {what} named {name:?} in group {:?}",
                o.group.prefix
            ));
        }
        Ok(v)
    };
    if let (Some(name), Some(s)) = (&o.show_ring, &snap) {
        let rings = pick(&s.rings, name, "ring")?;
        for r in &rings {
            let _ = writeln!(out, "  - Name ({})", field(r, "name"));
            for (k, v) in r.as_object().into_iter().flatten() {
                if k != "name" {
                    let _ = writeln!(out, "  \\-- {k} ({v})");
                }
            }
        }
        json.insert("rings".into(), serde_json::json!(rings));
    }
    if let (Some(name), Some(s)) = (&o.show_mempool, &snap) {
        let pools = pick(&s.mempools, name, "mempool")?;
        for m in &pools {
            let _ = writeln!(out, "  - Name: {}", field(m, "name"));
            for (k, v) in m.as_object().into_iter().flatten() {
                if k != "name" {
                    let _ = writeln!(out, "  \\- {k}: {v}");
                }
            }
        }
        json.insert("mempools".into(), serde_json::json!(pools));
    }
    if o.json {
        return Ok(serde_json::to_string_pretty(&json).expect("serialises") + "\n");
    }
    Ok(out)
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
    let _ = writeln!(o, "\nports ({})", s.ports.len());
    let _ = writeln!(
        o,
        "  {:>4} {:<16} {:<13} {:<17} {:<10} {:<9} {:>12} {:>12} {:>10} {:>10}",
        "PORT", "NAME", "DRIVER", "MAC", "STATE", "MODE", "RX", "TX", "RX_DROP", "TX_DROP"
    );
    for p in &s.ports {
        let n = |k: &str| p.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let mode = p.get("mode").and_then(|x| x.as_str()).unwrap_or("-");
        let _ = writeln!(
            o,
            "  {:>4} {:<16} {:<13} {:<17} {:<10} {:<9} {:>12} {:>12} {:>10} {:>10}",
            n("port"),
            field(p, "name"),
            field(p, "driver"),
            field(p, "mac"),
            field(p, "state"),
            mode,
            n("ipackets"),
            n("opackets"),
            n("imissed") + n("ierrors") + n("rx_nombuf"),
            n("oerrors")
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
    o
}
