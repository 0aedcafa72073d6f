//! The client_server_mp client (`mp_client`): DPDK's client_server_mp client (lesson 7, lab 3).
//!
//! A worker of the server's pipeline ([`shoal::dispatch::Worker`]): takes packets from its ring
//! `MProc_Client_RX_<n>`, sends each out of the paired port (port XOR 1) on its own transmit
//! queue, keeps a flow table (packets and bytes per 5-tuple) and prints the top flows on exit.
//! On SIGINT/SIGTERM, or when the server stops, it drains its ring and leaves; when the server
//! dies it keeps its ring for a server that adopts the group (with `--primary-grace`; without,
//! it exits as every secondary whose primary died).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::args;
use crate::cs::{self, MAX_CLIENTS};
use shoal::dispatch::{self, Worker};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, Port};
use shoal::mbuf::{ol_flags, Mbuf, MbufBatch};
use shoal::net::{self, FiveTuple};

/// mp_client's options (after `--`).
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    name = "mp_client",
    override_usage = "mp_client [EAL options] -- [OPTIONS]",
    about = "client_server_mp's client: forwards what its ring holds out of port^1"
)]
struct Opts {
    /// This client's id (required)
    #[arg(short = 'n', value_name = "CLIENT_ID", value_parser = args::num::<usize>)]
    id: Option<usize>,
    /// If the server is not running yet, wait for it
    #[arg(long)]
    wait: bool,
    /// Flows to print on exit
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = args::num::<usize>)]
    top: usize,
    /// Sleep this long after each burst (simulates a slow client)
    #[arg(long, value_name = "N", value_parser = args::micros)]
    delay_us: Option<Duration>,
    /// Keep no per-flow or ARP/ND counters and never read packet bytes (the plain L2
    /// forwarder of DPDK's sample)
    #[arg(long)]
    no_flow_table: bool,
    /// Busy-poll without idle back-off (benchmarks)
    #[arg(long)]
    poll: bool,
}

struct Config {
    id: usize,
    wait: bool,
    top: usize,
    delay: Option<Duration>,
    flow_table: bool,
    poll: bool,
}

fn parse(args: &[String]) -> Result<Config, String> {
    let o: Opts = args::parse(args)?;
    let id = o.id.ok_or("a client id is required: -n CLIENT_ID")?;
    if id >= MAX_CLIENTS {
        return Err(format!("client id must be below {MAX_CLIENTS}"));
    }
    Ok(Config {
        id,
        wait: o.wait,
        top: o.top,
        delay: o.delay_us,
        flow_table: !o.no_flow_table,
        poll: o.poll,
    })
}

/// Runs the client with a full command line (program name first); returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    // Application options are needed before joining the group (for --wait).
    let usage = args::usage::<Opts>();
    let cfg = args::check(&args, &usage, parse);
    let prog = args[0].clone();
    eal::setup_process(&args);
    let mut said_waiting = false;
    let eal = loop {
        match Eal::init(args.clone()) {
            Ok((eal, _)) => break eal,
            Err(eal::Error::NoPrimary { prefix }) if cfg.wait => {
                if shoal::eal::quit_requested() {
                    return 0;
                }
                if !said_waiting {
                    println!("mp_client: waiting for the server (file prefix {prefix:?})");
                    said_waiting = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(eal::Error::NoPrimary { prefix }) => {
                eprintln!("mp_client: the server is not running (no primary for file prefix {prefix:?}); start mp_server first, or pass --wait");
                return 1;
            }
            Err(e) => eal::exit_with(&prog, &e, &usage),
        }
    };
    eal.exit_when_primary_dies();
    match run(&eal, cfg) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mp_client: {e}");
            1
        }
    }
}

fn run(eal: &Eal, cfg: Config) -> Result<(), String> {
    let id = cfg.id;
    let name = cs::client_ring_name(id);
    println!("Looking up ring: {name}");
    // A server that is still setting up (a client started with --wait) gets a few seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut w = loop {
        match Worker::attach_ring(eal, cs::PIPELINE, id, &name) {
            Ok(w) => break w,
            Err(dispatch::Error::Counters { .. } | dispatch::Error::NotReady(_))
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(format!("client {id}: {e}")),
        }
    };
    w.set_busy_poll(cfg.poll);
    w.set_wait_for_adoption(true);
    let ports = ethdev::ports(eal).map_err(|e| format!("ports: {e}"))?;
    // Ports by id, and one pending transmit batch per port: plain indexing on the data path.
    let nports = ports
        .iter()
        .map(|p| p.id().0 as usize + 1)
        .max()
        .unwrap_or(0);
    let mut by_id: Vec<Option<Port>> = vec![None; nports];
    for p in ports {
        let i = p.id().0 as usize;
        by_id[i] = Some(p);
    }
    println!(
        "Client process {id} handling packets (pid {})",
        std::process::id()
    );

    let mut rx = MbufBatch::new();
    let mut out: Vec<MbufBatch> = (0..nports).map(|_| MbufBatch::new()).collect();
    let mut flows = FlowTable::default();
    let mut neigh = 0u64;
    while let Some(n) = w.recv(&mut rx) {
        if n == 0 {
            continue;
        }
        for mut m in rx.drain(..) {
            // Without the flow table the packet's bytes are never touched (DPDK's sample reads
            // only the mbuf's port): no ARP/ND counting either.
            if !cfg.flow_table {
            } else if dispatch::is_neighbour(&mut m) {
                neigh += 1;
            } else {
                flows.count(&m);
            }
            let dst = (m.port() ^ 1) as usize;
            // A packet for a port that does not exist, or beyond the batch: counted, freed.
            match out.get_mut(dst).map(|b| b.push(m)) {
                Some(Ok(())) => {}
                Some(Err(m)) => {
                    drop(m);
                    w.count_dropped(1);
                }
                None => w.count_dropped(1),
            }
        }
        for (dst, batch) in out.iter_mut().enumerate() {
            match &by_id[dst] {
                Some(p) => {
                    w.tx_burst(p, batch);
                }
                None if !batch.is_empty() => {
                    w.count_dropped(batch.len() as u64);
                    batch.clear();
                }
                None => {}
            }
        }
        if let Some(d) = cfg.delay {
            std::thread::sleep(d);
        }
    }
    w.leave();
    let s = w.stats();
    println!(
        "Client {id}: rx {} tx {} tx_drop {} arp/nd {neigh}",
        s.rx, s.tx, s.tx_drop
    );
    let mut top: Vec<(FiveTuple, (u64, u64))> = flows
        .by_key
        .into_values()
        .map(|(t, p, b)| (t, (p, b)))
        .collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(b.1 .1.cmp(&a.1 .1)));
    println!("Top flows of client {id} ({} flows):", top.len());
    for (t, (pkts, bytes)) in top.iter().take(cfg.top) {
        println!("  {t}  packets {pkts} bytes {bytes}");
    }
    Ok(())
}

/// The flow table: packets and bytes per flow. Keyed by the hash that came with the packet
/// (the symmetric flow hash a dispatcher stored, else the receive side's RSS hash), so a packet
/// is parsed only when its flow is new (to name it) or when no hash came with it: each packet
/// is parsed once along the pipeline, as DPDK applications key flows by the NIC's `hash.rss`.
/// With a flow-hash dispatcher both directions of a flow share an entry; two flows whose
/// 32-bit hashes collide would too (one pair in 2^32).
#[derive(Default)]
struct FlowTable {
    by_key: HashMap<u64, (FiveTuple, u64, u64), BuildHasherDefault<Prehashed>>,
}

impl FlowTable {
    fn count(&mut self, m: &Mbuf) {
        let tuple = || net::parse_frame(m.data()).ok().and_then(|i| i.tuple);
        let (key, parsed) = match (m.flow_hash(), m.ol_flags() & ol_flags::RX_RSS_HASH != 0) {
            // A packet without a 5-tuple (the dispatcher hashed it to 0): not a flow.
            (Some(0), _) => return,
            (Some(h), _) => (1 << 32 | u64::from(h), None),
            (None, true) => (2 << 32 | u64::from(m.rss_hash()), None),
            (None, false) => {
                let Some(t) = tuple() else {
                    return;
                };
                (3 << 32 | u64::from(t.crc_hash(0)), Some(t))
            }
        };
        let e = match self.by_key.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let Some(t) = parsed.or_else(tuple) else {
                    return;
                };
                v.insert((t, 0, 0))
            }
        };
        e.1 += 1;
        e.2 += m.pkt_len() as u64;
    }
}

/// A hasher for keys that are hashes already: one multiply spreads them over the table.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
