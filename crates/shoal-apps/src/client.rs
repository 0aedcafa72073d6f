//! The client_server_mp client (`mp_client`): DPDK's client_server_mp client (lesson 7, lab 3).
//!
//! Takes packets from its ring `MProc_Client_RX_<n>`, sends each out of the paired port
//! (port XOR 1) on its own transmit queue, keeps a flow table (packets and bytes per 5-tuple) and
//! prints the top flows on exit. It heartbeats through shared memory so the server can tell it
//! is alive; on SIGINT/SIGTERM, or when the server stops, it drains its ring and leaves.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::args;
use crate::cs::{self, cli, ctl, SharedInfo, MAX_CLIENTS};
use crate::{bump, get, now_ns};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, Port, QueueId};
use shoal::mbuf::{MbufBatch, MbufRing};
use shoal::net::{self, FiveTuple};
use shoal::sync::Backoff;
use shoal::sync::{Liveness, MemberId};

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

const BURST: usize = 32;

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
    let deadline = Instant::now() + Duration::from_secs(5);
    let info = loop {
        match SharedInfo::lookup(eal) {
            Ok(i) if i.ready() => break i,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) | Err(_) => {
                return Err("the primary is not an mp_server (no ready MProc_shared_info)".into())
            }
        }
    };
    if id >= info.num_clients() {
        return Err(format!(
            "client id {id} is not below the server's -n {}",
            info.num_clients()
        ));
    }
    let other = MemberId::from_raw(get(info.client(id, cli::MEMBER)));
    if get(info.client(id, cli::STATE)) == 1
        && !other.is_none()
        && other != eal.member()
        && eal.liveness(other) != Liveness::Dead
    {
        let pid = get(info.client(id, cli::PID));
        return Err(format!(
            "client id {id} is already running (pid {pid}, {other})"
        ));
    }
    let name = cs::client_ring_name(id);
    println!("Looking up ring: {name}");
    let ring = MbufRing::lookup(eal, &name).map_err(|e| format!("cannot find ring {name}: {e}"))?;
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
    bump(info.client(id, cli::STARTS), 1);
    info.client(id, cli::PID).store(
        std::process::id() as u64,
        shoal::sync::atomic::Ordering::Relaxed,
    );
    info.client(id, cli::MEMBER)
        .store(eal.member().raw(), shoal::sync::atomic::Ordering::Relaxed);
    info.client(id, cli::HEARTBEAT)
        .store(now_ns(), shoal::sync::atomic::Ordering::Relaxed);
    info.client(id, cli::STATE)
        .store(1, shoal::sync::atomic::Ordering::Release);
    println!(
        "Client process {id} handling packets (pid {})",
        std::process::id()
    );

    let txq = QueueId(id as u16 + 1);
    let mut rx = MbufBatch::new();
    let mut out: Vec<MbufBatch> = (0..nports).map(|_| MbufBatch::new()).collect();
    let mut flows: HashMap<FiveTuple, (u64, u64)> = HashMap::new();
    let mut backoff = Backoff::new();
    let mut iter = 0u64;
    let mut draining = false;
    loop {
        iter += 1;
        if iter.is_multiple_of(64) || backoff.is_sleeping() {
            info.client(id, cli::HEARTBEAT)
                .store(now_ns(), shoal::sync::atomic::Ordering::Relaxed);
        }
        if !draining && (eal.should_quit() || get(info.ctl(ctl::SHUTDOWN)) == 1) {
            draining = true;
        }
        let n = ring.dequeue_burst(&mut rx, BURST);
        if n == 0 {
            if draining {
                break;
            }
            if !cfg.poll {
                backoff.snooze();
            }
            continue;
        }
        backoff.reset();
        let mut neigh = 0;
        bump(info.client(id, cli::RX), n as u64);
        bump(
            info.client(id, cli::RX_BYTES),
            rx.iter().map(|m| m.pkt_len() as u64).sum(),
        );
        for m in rx.drain(..) {
            // Without the flow table the packet's bytes are never touched (DPDK's sample reads
            // only the mbuf's port): no ARP/ND counting either.
            if !cfg.flow_table {
            } else if cs::is_neighbour_frame(m.data()) {
                neigh += 1;
            } else {
                if let Some(t) = net::parse_frame(m.data()).ok().and_then(|i| i.tuple) {
                    let e = flows.entry(t).or_default();
                    e.0 += 1;
                    e.1 += m.pkt_len() as u64;
                }
            }
            let dst = (m.port() ^ 1) as usize;
            // A packet for a port that does not exist, or beyond the batch: counted, freed.
            match out.get_mut(dst).map(|b| b.push(m)) {
                Some(Ok(())) => {}
                Some(Err(m)) => {
                    drop(m);
                    bump(info.client(id, cli::TX_DROP), 1);
                }
                None => bump(info.client(id, cli::TX_DROP), 1),
            }
        }
        if neigh > 0 {
            bump(info.client(id, cli::NEIGH), neigh);
        }
        for (dst, batch) in out.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let want = batch.len();
            let sent = match &by_id[dst] {
                Some(p) => p.tx_burst(txq, batch),
                None => 0,
            };
            bump(info.client(id, cli::TX), sent as u64);
            if sent < want {
                bump(info.client(id, cli::TX_DROP), (want - sent) as u64);
                batch.clear();
            }
        }
        if let Some(d) = cfg.delay {
            std::thread::sleep(d);
        }
    }
    info.client(id, cli::STATE)
        .store(2, shoal::sync::atomic::Ordering::Release);
    println!(
        "Client {id}: rx {} tx {} tx_drop {} arp/nd {}",
        get(info.client(id, cli::RX)),
        get(info.client(id, cli::TX)),
        get(info.client(id, cli::TX_DROP)),
        get(info.client(id, cli::NEIGH))
    );
    let mut top: Vec<(FiveTuple, (u64, u64))> = flows.into_iter().collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(b.1 .1.cmp(&a.1 .1)));
    println!("Top flows of client {id} ({} flows):", top.len());
    for (t, (pkts, bytes)) in top.iter().take(cfg.top) {
        println!("  {t}  packets {pkts} bytes {bytes}");
    }
    Ok(())
}
