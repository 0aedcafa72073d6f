//! The commands the primary's telemetry server answers: DPDK's standard ones, with DPDK's
//! field names (22.11's; `/eal/lcore/*` and `/ring/*` from the releases that added them), and
//! shoal's own under `/shoal/`.
//!
//! Where shoal has no counterpart of a DPDK field the value is DPDK's for the simplest case:
//! socket (NUMA node) 0, no flags, no offloads. Memzone ids are positions in the list of
//! memzones by offset, mempool ids positions in the list of pools.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::server::{Registry, ServerStats};
use crate::eal::Eal;
use crate::ethdev::{self, Port};
use crate::mbuf::MbufPool;
use crate::memory::Backing;
use crate::mempool::Mempool;
use crate::memzone::{Memzone, MemzoneInfo};

/// A command's answer for a group, given the parameters.
type Answer = dyn Fn(&Eal, &str) -> Value + Send + Sync;

/// Registers every standard command in `reg`, answering for `eal`'s group.
pub(crate) fn register_all(reg: &Registry, eal: &Eal, stats: &Arc<ServerStats>) {
    let cmds: Vec<(&str, &str, Box<Answer>)> = vec![
        (
            "/eal/params",
            "Returns EAL commandline parameters used. Takes no parameters",
            Box::new(|_, _| json!(argv_split().0)),
        ),
        (
            "/eal/app_params",
            "Returns app commandline parameters used. Takes no parameters",
            Box::new(|_, _| json!(argv_split().1)),
        ),
        (
            "/eal/lcore/list",
            "List of lcore ids. Takes no parameters",
            Box::new(|e, _| json!(lcores(e))),
        ),
        (
            "/eal/lcore/info",
            "Returns lcore info. Parameters: int lcore_id",
            Box::new(lcore_info),
        ),
        (
            "/eal/memzone_list",
            "List of memzone index reserved. Takes no parameters",
            Box::new(|e, _| json!((0..Memzone::list(e).len()).collect::<Vec<_>>())),
        ),
        (
            "/eal/memzone_info",
            "Returns memzone info. Parameters: int mz_id",
            Box::new(memzone_info),
        ),
        (
            "/eal/heap_list",
            "List of heap index setup. Takes no parameters",
            Box::new(|_, _| json!([0])),
        ),
        (
            "/eal/heap_info",
            "Returns malloc heap stats. Parameters: int heap_id",
            Box::new(heap_info),
        ),
        (
            "/ethdev/list",
            "Returns list of available ethdev ports. Takes no parameters",
            Box::new(|e, _| json!(ports(e).iter().map(|p| p.id().0).collect::<Vec<_>>())),
        ),
        (
            "/ethdev/stats",
            "Returns the common stats for a port. Parameters: int port_id",
            Box::new(|e, p| with_port(e, p, port_stats)),
        ),
        (
            "/ethdev/xstats",
            "Returns the extended stats for a port. Parameters: int port_id",
            Box::new(|e, p| with_port(e, p, port_xstats)),
        ),
        (
            "/ethdev/link_status",
            "Returns the link status for a port. Parameters: int port_id",
            Box::new(|e, p| with_port(e, p, link_status)),
        ),
        (
            "/ethdev/info",
            "Returns the device info for a port. Parameters: int port_id",
            Box::new(|e, p| with_port(e, p, port_info)),
        ),
        (
            "/ring/list",
            "Returns list of available rings. Takes no parameters",
            Box::new(|e, _| json!(rings(e).iter().map(|r| r.name.clone()).collect::<Vec<_>>())),
        ),
        (
            "/ring/info",
            "Returns ring info. Parameters: ring_name.",
            Box::new(ring_info),
        ),
        (
            "/mempool/list",
            "Returns list of available mempool. Takes no parameters",
            Box::new(|e, _| {
                json!(Mempool::list(e)
                    .into_iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>())
            }),
        ),
        (
            "/mempool/info",
            "Returns mempool info. Parameters: pool_name",
            Box::new(mempool_info),
        ),
        (
            "/shoal/snapshot",
            "The whole group: memory, memzones, rings, mempools, processes",
            Box::new(|e, _| serde_json::to_value(super::snapshot(e)).unwrap_or(Value::Null)),
        ),
        (
            "/shoal/processes",
            "The process table, with each member's liveness. Takes no parameters",
            Box::new(|e, _| serde_json::to_value(e.processes()).unwrap_or(Value::Null)),
        ),
        (
            "/shoal/pipelines",
            "Counters of every pipeline (shoal::dispatch) of the group. Takes no parameters",
            Box::new(|e, _| serde_json::to_value(crate::dispatch::list(e)).unwrap_or(Value::Null)),
        ),
        (
            "/shoal/audit",
            "Owner-tag audit of a mempool or mbuf pool. Parameters: pool_name",
            Box::new(audit),
        ),
    ];
    for (cmd, help, f) in cmds {
        let e = eal.clone();
        if let Err(err) = reg.register(cmd, help, move |p| f(&e, p)) {
            tracing::error!(target: "shoal::telemetry", "{err}");
        }
    }
    let s = stats.clone();
    if let Err(err) = reg.register(
        "/shoal/telemetry",
        "This telemetry server's counters. Takes no parameters",
        move |_| s.to_json(),
    ) {
        tracing::error!(target: "shoal::telemetry", "{err}");
    }
}

/// The process's command line split at the first `--`: EAL arguments (program name first)
/// and application arguments, as DPDK's `eal_save_args` keeps them.
fn argv_split() -> (Vec<String>, Vec<String>) {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.iter().skip(1).position(|a| a == "--") {
        Some(i) => (args[..=i].to_vec(), args[i + 2..].to_vec()),
        None => (args, Vec::new()),
    }
}

/// A number at the start of `p` (DPDK: the parameter must start with a digit; what follows
/// the digits is ignored).
fn leading_number(p: &str) -> Option<u64> {
    let digits: &str = &p[..p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len())];
    digits.parse().ok()
}

/// The lcores this process holds, ascending.
fn lcores(eal: &Eal) -> Vec<u32> {
    let mut v: Vec<u32> = eal.lcores().iter().map(|l| l.0).collect();
    v.sort_unstable();
    v
}

fn lcore_info(eal: &Eal, p: &str) -> Value {
    // DPDK: the whole parameter is the id.
    let Some(id) = p.parse::<u32>().ok().filter(|id| lcores(eal).contains(id)) else {
        return Value::Null;
    };
    let ncpus = crate::sys::cpu_count().max(1);
    let cpu = eal
        .args()
        .lcores
        .iter()
        .find(|(l, _)| l.0 == id)
        .and_then(|(_, cpu)| *cpu)
        .unwrap_or(id as usize % ncpus);
    json!({ "lcore_id": id, "socket": 0, "role": "RTE", "cpuset": [cpu] })
}

/// Bytes of a page of the group's memory.
fn page_size(eal: &Eal) -> u64 {
    match eal.backing() {
        Backing::Hugetlbfs => crate::sys::hugepages().map_or(2 << 20, |(_, _, sz)| sz),
        Backing::Shm => 4096,
    }
}

fn memzone_info(eal: &Eal, p: &str) -> Value {
    if p.is_empty() {
        return Value::Null;
    }
    let zones = Memzone::list(eal);
    let Some((id, z)) = leading_number(p).and_then(|i| Some((i, zones.get(i as usize)?))) else {
        return Value::Null;
    };
    let Ok(mz) = Memzone::lookup(eal, &z.name) else {
        return Value::Null;
    };
    let addr = mz.region().as_ptr() as usize;
    let page = page_size(eal) as usize;
    let base = addr / page * page;
    let pages = (addr + mz.len()).div_ceil(page) - addr / page;
    json!({
        "Zone": id,
        "Name": z.name,
        "Length": z.len,
        "Address": format!("{addr:#x}"),
        "Socket": 0,
        "Flags": 0,
        "Hugepage_size": page,
        "Hugepage_base": format!("{base:#x}"),
        "Hugepage_used": pages,
    })
}

fn heap_info(eal: &Eal, p: &str) -> Value {
    if leading_number(p) != Some(0) {
        return Value::Null;
    }
    let zones: Vec<MemzoneInfo> = Memzone::list(eal);
    let start = crate::memory::header::heap_start() as u64;
    let end = eal.memory_len() as u64;
    // Free runs between memzones (by offset).
    let mut gaps = Vec::new();
    let mut at = start;
    for z in &zones {
        if z.offset > at {
            gaps.push(z.offset - at);
        }
        at = at.max(z.offset + z.len);
    }
    if end > at {
        gaps.push(end - at);
    }
    let alloc: u64 = zones.iter().map(|z| z.len).sum();
    json!({
        // DPDK 22.11's spelling.
        "Head_id": 0,
        "Name": "socket_0",
        "Heap_size": end - start,
        "Free_size": gaps.iter().sum::<u64>(),
        "Alloc_size": alloc,
        "Greatest_free_size": gaps.iter().max().copied().unwrap_or(0),
        "Alloc_count": zones.len(),
        "Free_count": gaps.len(),
    })
}

/// This process's ports (none before it has made or attached them).
fn ports(eal: &Eal) -> Vec<Port> {
    ethdev::registered(eal.group()).unwrap_or_default()
}

fn with_port(eal: &Eal, p: &str, f: fn(&Port) -> Value) -> Value {
    let Some(id) = leading_number(p) else {
        return Value::Null;
    };
    ports(eal)
        .iter()
        .find(|port| u64::from(port.id().0) == id)
        .map_or(Value::Null, f)
}

/// DPDK's `RTE_ETHDEV_QUEUE_STAT_CNTRS`: per-queue arrays have this many entries.
const QUEUE_STAT_CNTRS: usize = 16;

fn port_stats(port: &Port) -> Value {
    let s = port.stats();
    let per_queue = |qs: &[ethdev::QueueStats], f: fn(&ethdev::QueueStats) -> u64| {
        (0..QUEUE_STAT_CNTRS)
            .map(|i| qs.get(i).map_or(0, f))
            .collect::<Vec<u64>>()
    };
    let q_errors: Vec<u64> = (0..QUEUE_STAT_CNTRS)
        .map(|i| s.rx_queues.get(i).map_or(0, |q| q.errors))
        .collect();
    json!({
        "ipackets": s.ipackets,
        "opackets": s.opackets,
        "ibytes": s.ibytes,
        "obytes": s.obytes,
        "imissed": s.imissed,
        "ierrors": s.ierrors,
        "oerrors": s.oerrors,
        "rx_nombuf": s.rx_nombuf,
        "q_ipackets": per_queue(&s.rx_queues, |q| q.packets),
        "q_opackets": per_queue(&s.tx_queues, |q| q.packets),
        "q_ibytes": per_queue(&s.rx_queues, |q| q.bytes),
        "q_obytes": per_queue(&s.tx_queues, |q| q.bytes),
        "q_errors": q_errors,
    })
}

/// DPDK's generic extended statistics (`eth_dev_stats_strings` and the per-queue ones).
fn port_xstats(port: &Port) -> Value {
    let s = port.stats();
    let mut m = Map::new();
    for (k, v) in [
        ("rx_good_packets", s.ipackets),
        ("tx_good_packets", s.opackets),
        ("rx_good_bytes", s.ibytes),
        ("tx_good_bytes", s.obytes),
        ("rx_missed_errors", s.imissed),
        ("rx_errors", s.ierrors),
        ("tx_errors", s.oerrors),
        ("rx_mbuf_allocation_errors", s.rx_nombuf),
    ] {
        m.insert(k.into(), json!(v));
    }
    for (i, q) in s.rx_queues.iter().take(QUEUE_STAT_CNTRS).enumerate() {
        m.insert(format!("rx_q{i}_packets"), json!(q.packets));
        m.insert(format!("rx_q{i}_bytes"), json!(q.bytes));
        m.insert(format!("rx_q{i}_errors"), json!(q.errors));
    }
    for (i, q) in s.tx_queues.iter().take(QUEUE_STAT_CNTRS).enumerate() {
        m.insert(format!("tx_q{i}_packets"), json!(q.packets));
        m.insert(format!("tx_q{i}_bytes"), json!(q.bytes));
    }
    Value::Object(m)
}

fn link_status(port: &Port) -> Value {
    if !port.link_up() {
        return json!({ "status": "DOWN" });
    }
    // Virtual devices report DPDK's 10G, as DPDK's vdevs do.
    json!({ "status": "UP", "speed": 10000, "duplex": "full-duplex" })
}

fn port_info(port: &Port) -> Value {
    let started = port.is_started();
    let queues = |n: u16| vec![u8::from(started); n as usize];
    json!({
        "name": port.name(),
        // RTE_ETH_DEV_ATTACHED
        "state": 1,
        "nb_rx_queues": port.nb_rx_queues(),
        "nb_tx_queues": port.nb_tx_queues(),
        "port_id": port.id().0,
        "mtu": 1500,
        "rx_mbuf_size_min": 0,
        "mac_addr": port.mac().to_string().to_uppercase(),
        "promiscuous": 1,
        "scattered_rx": 0,
        "all_multicast": 0,
        "dev_started": u8::from(started),
        "lro": 0,
        "dev_configured": 1,
        "rxq_state": queues(port.nb_rx_queues()),
        "txq_state": queues(port.nb_tx_queues()),
        "numa_node": 0,
        "dev_flags": 0,
        "rx_offloads": 0,
        "tx_offloads": 0,
        "ethdev_rss_hf": 0,
    })
}

/// A ring as the ring registry describes it.
struct RingDesc {
    name: String,
    raw: Value,
}

fn rings(eal: &Eal) -> Vec<RingDesc> {
    crate::ring::describe_all(eal.group(), &Memzone::list(eal))
        .into_iter()
        .filter_map(|raw| {
            let name = raw.get("name")?.as_str()?.to_owned();
            Some(RingDesc { name, raw })
        })
        .collect()
}

/// DPDK's sync type names: `ST` → `SP`/`SC`, `MT` → `MP`/`MC`, `MT_RTS` → `MP_RTS`/`MC_RTS`.
fn sync_name(mode: Option<&str>, single: &str, multi: &str) -> String {
    match mode {
        Some("ST") => single.to_owned(),
        Some(m) if m.starts_with("MT") => format!("{multi}{}", &m[2..]),
        _ => "Unknown".to_owned(),
    }
}

fn ring_info(eal: &Eal, p: &str) -> Value {
    if p.is_empty() || p.len() >= crate::memory::MEMZONE_NAMESIZE {
        return Value::Null;
    }
    let Some(r) = rings(eal).into_iter().find(|r| r.name == p) else {
        // DPDK: an empty object for a name it does not know.
        return json!({});
    };
    let num = |k: &str| r.raw.get(k).and_then(Value::as_u64).unwrap_or(0);
    let size = num("size");
    let mz_name = format!("{}{}", crate::ring::RING_MZ_PREFIX, r.name);
    let mz_len = Memzone::lookup(eal, &mz_name).map_or(0, |m| m.len());
    json!({
        "name": r.name,
        "socket": 0,
        "flags": num("flags"),
        "producer_type": sync_name(r.raw.get("prod").and_then(Value::as_str), "SP", "MP"),
        "consumer_type": sync_name(r.raw.get("cons").and_then(Value::as_str), "SC", "MC"),
        "size": size,
        "mask": format!("{:#x}", size.saturating_sub(1)),
        "capacity": num("capacity"),
        "used_count": num("count"),
        "mz_name": mz_name,
        "mz_len": mz_len,
        "mz_hugepage_sz": page_size(eal),
        "mz_socket_id": 0,
        "mz_flags": "0x0",
    })
}

/// A pool of either kind.
enum AnyPool {
    Plain(Mempool),
    Mbuf(MbufPool),
}

impl AnyPool {
    fn find(eal: &Eal, name: &str) -> Option<AnyPool> {
        MbufPool::lookup(eal, name)
            .map(AnyPool::Mbuf)
            .or_else(|_| Mempool::lookup(eal, name).map(AnyPool::Plain))
            .ok()
    }

    fn usage(&self) -> crate::mempool::PoolUsage {
        match self {
            AnyPool::Plain(p) => p.usage(),
            AnyPool::Mbuf(p) => p.usage(),
        }
    }

    fn audit(&self) -> crate::mempool::Audit {
        match self {
            AnyPool::Plain(p) => p.audit(),
            AnyPool::Mbuf(p) => p.audit(),
        }
    }
}

fn mempool_info(eal: &Eal, p: &str) -> Value {
    if p.is_empty() {
        return Value::Null;
    }
    let list = Mempool::list(eal);
    let Some((id, m)) = list.iter().enumerate().find(|(_, m)| m.name == p) else {
        // DPDK: an empty object for a name it does not know.
        return json!({});
    };
    let usage = AnyPool::find(eal, p).map(|pool| pool.usage());
    let mz_name = format!("MP_{}", m.name);
    let mz_len = Memzone::lookup(eal, &mz_name).map_or(0, |z| z.len());
    json!({
        "name": m.name,
        "pool_id": id,
        "flags": m.flags,
        "socket_id": 0,
        "size": m.size,
        "cache_size": m.cache_size,
        "elt_size": m.elt_size,
        "header_size": 0,
        "trailer_size": 0,
        "private_data_size": 0,
        "ops_index": 0,
        "populated_size": m.size,
        "total_cache_count": usage.as_ref().map_or(0, |u| u.cached),
        "common_pool_count": usage.as_ref().map_or(m.avail, |u| u.in_store),
        "mz_name": mz_name,
        "mz_len": mz_len,
        "mz_hugepage_sz": page_size(eal),
        "mz_socket_id": 0,
        "mz_flags": 0,
    })
}

fn audit(eal: &Eal, p: &str) -> Value {
    if p.is_empty() {
        return Value::Null;
    }
    AnyPool::find(eal, p).map_or(Value::Null, |pool| {
        let a = pool.audit();
        let mut v = serde_json::to_value(&a).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("ok".into(), json!(a.is_ok()));
        }
        v
    })
}
