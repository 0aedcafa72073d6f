//! `shoal telemetry`: query a group's telemetry socket, or print its counters for Prometheus.

use std::fmt::Write as _;
use std::io::BufRead;

use serde_json::Value;
use shoal::telemetry::Client;

/// `shoal telemetry`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Query the group's telemetry socket (`/` lists commands), or print its counters for Prometheus"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Print the group's counters in Prometheus' text exposition format
    #[arg(long, conflicts_with = "cmds")]
    prometheus: bool,
    /// Commands, e.g. /ethdev/stats,0; with none, read them from stdin, one per line
    #[arg(value_name = "CMD")]
    cmds: Vec<String>,
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("telemetry", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (prometheus, cmds, opts) = (o.prometheus, o.cmds, o.group);
    let no_socket = |e: std::io::Error| {
        eprintln!(
            "error: no telemetry socket for file prefix {:?} ({e}); is its primary running?",
            opts.prefix
        );
        1
    };
    let mut client = match Client::connect(&opts.prefix) {
        Ok(c) => c,
        Err(e) => return no_socket(e),
    };
    if prometheus {
        return match prometheus_text(&mut client) {
            Ok(text) => {
                crate::print_out(&text);
                0
            }
            Err(e) => no_socket(e),
        };
    }
    let cmds: Vec<String> = if cmds.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        cmds
    };
    for cmd in cmds {
        match client.query(cmd.trim()) {
            Ok(v) => crate::print_out(&format!("{v}\n")),
            Err(e) => return no_socket(e),
        }
    }
    0
}

/// One metric family of the text exposition format: `# HELP`, `# TYPE`, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample with `labels` (name, value) when `value` is a number.
    fn add(&mut self, labels: &[(&str, String)], value: Option<f64>) {
        if let Some(v) = value {
            self.samples.push((label_set(labels), v));
        }
    }
}

/// `{a="x",b="y"}` with the values escaped as the format asks (`\\`, `\"`, `\n`).
fn label_set(labels: &[(&str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let body: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Asks `cmd` and returns the value under its key (Null when it has none).
fn ask(c: &mut Client, cmd: &str) -> std::io::Result<Value> {
    let key = cmd.split(',').next().unwrap_or(cmd).to_owned();
    Ok(c.query(cmd)?.get(&key).cloned().unwrap_or(Value::Null))
}

/// The group's counters (ports, rings, mempools, processes, memory, the telemetry server) in
/// Prometheus' text exposition format, gathered through the telemetry socket.
fn prometheus_text(c: &mut Client) -> std::io::Result<String> {
    let port_counters: [(&str, &'static str, &'static str); 8] = [
        (
            "ipackets",
            "shoal_port_rx_packets_total",
            "Packets received by the port.",
        ),
        (
            "opackets",
            "shoal_port_tx_packets_total",
            "Packets sent by the port.",
        ),
        (
            "ibytes",
            "shoal_port_rx_bytes_total",
            "Bytes received by the port.",
        ),
        (
            "obytes",
            "shoal_port_tx_bytes_total",
            "Bytes sent by the port.",
        ),
        (
            "imissed",
            "shoal_port_rx_missed_total",
            "Packets dropped before reception.",
        ),
        (
            "ierrors",
            "shoal_port_rx_errors_total",
            "Bad frames received.",
        ),
        (
            "oerrors",
            "shoal_port_tx_errors_total",
            "Packets that could not be sent.",
        ),
        (
            "rx_nombuf",
            "shoal_port_rx_nombuf_total",
            "Receive attempts that found no free mbuf.",
        ),
    ];
    let mut ports: Vec<Family> = port_counters
        .iter()
        .map(|(_, name, help)| Family::new(name, "counter", help))
        .collect();
    let mut link = Family::new(
        "shoal_port_link_up",
        "gauge",
        "1 when the port's link is up.",
    );
    let ids = ask(c, "/ethdev/list")?;
    for id in ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
    {
        let info = ask(c, &format!("/ethdev/info,{id}"))?;
        let stats = ask(c, &format!("/ethdev/stats,{id}"))?;
        let status = ask(c, &format!("/ethdev/link_status,{id}"))?;
        let labels = [("port", id.to_string()), ("name", text(&info, "name"))];
        for ((key, _, _), fam) in port_counters.iter().zip(ports.iter_mut()) {
            fam.add(&labels, num(&stats, key));
        }
        let up = status.get("status").and_then(Value::as_str);
        link.add(&labels, up.map(|s| f64::from(u8::from(s == "UP"))));
    }
    ports.push(link);

    let snap = ask(c, "/shoal/snapshot")?;
    let mut memory = vec![
        Family::new(
            "shoal_memory_bytes",
            "gauge",
            "Bytes of the group's shared memory.",
        ),
        Family::new(
            "shoal_memory_used_bytes",
            "gauge",
            "Bytes of the shared heap used by memzones.",
        ),
        Family::new(
            "shoal_heap_bytes",
            "gauge",
            "Bytes of the shared heap in all.",
        ),
    ];
    memory[0].add(&[], num(&snap, "memory_bytes"));
    memory[1].add(&[], num(&snap, "memory_used"));
    memory[2].add(&[], num(&snap, "heap_bytes"));

    let mut rings = [
        Family::new("shoal_ring_size", "gauge", "Slots of the ring."),
        Family::new("shoal_ring_capacity", "gauge", "Values the ring can hold."),
        Family::new("shoal_ring_used", "gauge", "Values in the ring."),
        Family::new("shoal_ring_free", "gauge", "Free slots of the ring."),
    ];
    for r in snap["rings"].as_array().into_iter().flatten() {
        let labels = [("ring", text(r, "name"))];
        for (fam, key) in rings.iter_mut().zip(["size", "capacity", "count", "free"]) {
            fam.add(&labels, num(r, key));
        }
    }

    let mut pools = [
        Family::new("shoal_mempool_size", "gauge", "Objects of the pool."),
        Family::new(
            "shoal_mempool_available",
            "gauge",
            "Free objects of the pool (common store and lcore caches).",
        ),
        Family::new(
            "shoal_mempool_in_use",
            "gauge",
            "Objects of the pool in use.",
        ),
        Family::new(
            "shoal_mempool_cache_size",
            "gauge",
            "Per-lcore cache size of the pool.",
        ),
    ];
    for m in snap["mempools"].as_array().into_iter().flatten() {
        let labels = [("pool", text(m, "name")), ("kind", text(m, "kind"))];
        for (fam, key) in pools
            .iter_mut()
            .zip(["size", "available", "in_use", "cache_size"])
        {
            fam.add(&labels, num(m, key));
        }
    }

    let mut procs = [
        Family::new(
            "shoal_processes",
            "gauge",
            "Processes in the group's process table.",
        ),
        Family::new(
            "shoal_process_alive",
            "gauge",
            "1 while the process in the slot is alive.",
        ),
        Family::new(
            "shoal_process_heartbeat_age_seconds",
            "gauge",
            "Seconds since the process's last heartbeat.",
        ),
    ];
    let list = snap["processes"].as_array().cloned().unwrap_or_default();
    procs[0].add(&[], Some(list.len() as f64));
    for p in &list {
        let labels = [
            ("slot", text(p, "slot")),
            ("pid", text(p, "pid")),
            ("type", text(p, "proc_type")),
        ];
        let alive = p.get("alive").and_then(Value::as_bool);
        procs[1].add(&labels, alive.map(|a| f64::from(u8::from(a))));
        procs[2].add(&labels, num(p, "heartbeat_age_ms").map(|ms| ms / 1000.0));
    }

    let tel = ask(c, "/shoal/telemetry")?;
    let mut server = [
        Family::new(
            "shoal_telemetry_requests_total",
            "counter",
            "Requests the telemetry server answered.",
        ),
        Family::new(
            "shoal_telemetry_malformed_requests_total",
            "counter",
            "Malformed requests, answered with null.",
        ),
        Family::new(
            "shoal_telemetry_clients",
            "gauge",
            "Telemetry clients connected.",
        ),
    ];
    server[0].add(&[], num(&tel, "requests"));
    server[1].add(&[], num(&tel, "malformed"));
    server[2].add(&[], num(&tel, "clients"));

    let mut out = String::new();
    for fam in ports
        .iter()
        .chain(&memory)
        .chain(&rings)
        .chain(&pools)
        .chain(&procs)
        .chain(&server)
    {
        let _ = writeln!(out, "# HELP {} {}", fam.name, fam.help);
        let _ = writeln!(out, "# TYPE {} {}", fam.name, fam.kind);
        for (labels, v) in &fam.samples {
            let _ = writeln!(out, "{}{labels} {v}", fam.name);
        }
    }
    Ok(out)
}
