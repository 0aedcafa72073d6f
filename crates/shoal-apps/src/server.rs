//! The client_server_mp server (`mp_server`): DPDK's client_server_mp server (lesson 7, lab 3),
//! as a distributor of the library's pipeline API ([`shoal::dispatch`]).
//!
//! The primary receives bursts from its ports and hands each packet to a client ring
//! `MProc_Client_RX_<n>` chosen by the `--dist` dispatcher; ARP and IPv6 neighbour discovery
//! frames are copied to every live client. Liveness, take-back of a departed client's ring, the
//! stall timeout (`--client-timeout`), the drain on stop, the counters (memzone `PL_MProc`,
//! which `shoal info`, `shoal top` and telemetry show) and adoption (`--adopt`) are the
//! library's; this file is options, output and the main loop.

use std::time::{Duration, Instant};

use crate::args;
use crate::cs::{self, MAX_CLIENTS};
use shoal::dispatch::{self, Distributor, PipelineStats, WorkerEvent};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, Port};
use shoal::mbuf::{MbufPool, MbufRing};
use shoal::sync::Backoff;

/// mp_server's options (after `--`).
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    name = "mp_server",
    override_usage = "mp_server [EAL options] -- [OPTIONS]",
    about = "client_server_mp's server: receives from the ports and spreads packets over client rings"
)]
struct Opts {
    /// Ports to use, hexadecimal (default: all)
    #[arg(short = 'p', value_name = "PORTMASK", value_parser = args::portmask)]
    portmask: Option<u64>,
    /// Number of client rings
    #[arg(short = 'n', value_name = "NUM_CLIENTS", default_value_t = 1, value_parser = args::num::<usize>)]
    num_clients: usize,
    /// How packets are spread over clients: rr, flow or prio:DSCP=CLIENT,...
    #[arg(long, value_name = "DIST", default_value = "rr", value_parser = dist)]
    dist: String,
    /// Client ring size, a power of two
    #[arg(long, value_name = "N", default_value_t = cs::RING_SIZE, value_parser = args::num::<u32>)]
    ring_size: u32,
    /// Mbufs in the pool
    #[arg(long, value_name = "N", default_value_t = 16383, value_parser = args::num::<u32>)]
    mbufs: u32,
    /// A live client that takes nothing from its non-empty ring for this long leaves the
    /// rotation until it does
    #[arg(long, value_name = "MS", default_value = "1000", value_parser = args::millis)]
    client_timeout: Duration,
    /// Statistics period, 0 for none
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = args::num::<u64>)]
    stats_interval: u64,
    /// Stop by itself after this long (default: run until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECS", value_parser = args::secs, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// How long clients get to drain their rings on stop
    #[arg(long, value_name = "MS", default_value = "3000", value_parser = args::millis)]
    drain_timeout: Duration,
    /// Receive nothing until all clients are connected
    #[arg(long)]
    wait_clients: bool,
    /// Busy-poll without idle back-off (benchmarks)
    #[arg(long)]
    poll: bool,
    /// Receive only while every live client's ring has room for a burst: forward what the
    /// clients sustain instead of dropping at a full ring (a NIC drops the rest, counted as
    /// its missed packets)
    #[arg(long)]
    backpressure: bool,
    /// Do not copy ARP and IPv6 neighbour-discovery frames to every client (the server then
    /// never reads packet bytes, as DPDK's client_server_mp does not)
    #[arg(long)]
    no_neighbour_copy: bool,
}

/// Value parser of `--dist`: a dispatcher spec of the library ([`dispatch::from_spec`]).
fn dist(v: &str) -> Result<String, String> {
    dispatch::from_spec(v, MAX_CLIENTS)?;
    Ok(v.to_owned())
}

/// How the ready line names a dispatcher spec.
fn dist_name(spec: &str) -> &str {
    match spec {
        "rr" | "round-robin" => "RoundRobin",
        "flow" | "hash" => "Flow",
        _ => spec,
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let o: Opts = args::parse(args)?;
    if o.portmask == Some(0) {
        return Err("invalid portmask 0x0".into());
    }
    if o.num_clients == 0 || o.num_clients > MAX_CLIENTS {
        return Err(format!("-n must be 1 to {MAX_CLIENTS}"));
    }
    if !o.ring_size.is_power_of_two() || o.ring_size < 2 {
        return Err("--ring-size must be a power of two".into());
    }
    dispatch::from_spec(&o.dist, o.num_clients).map_err(|e| format!("--dist: {e}"))?;
    Ok(o)
}

/// Runs the server with a full command line (program name first); returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    let (eal, o) = args::init(args, &args::usage::<Opts>(), parse);
    match run(&eal, o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mp_server: {e}");
            1
        }
    }
}

fn run(eal: &Eal, o: Opts) -> Result<(), String> {
    if eal.proc_type() != eal::ProcType::Primary {
        return Err("mp_server must be the primary process (--proc-type=primary)".into());
    }
    // A server that adopted the group of a dead one (EAL --adopt) finds its objects by name.
    let adopted = eal.adopted();
    let pool = if adopted {
        MbufPool::lookup(eal, cs::MBUF_POOL_NAME)
            .map_err(|e| format!("adopting: cannot find the mbuf pool: {e}"))?
    } else {
        MbufPool::create(eal, cs::MBUF_POOL_NAME, o.mbufs, 256, 0, 2048 + 128)
            .map_err(|e| format!("cannot create the mbuf pool: {e}"))?
    };
    let conf = ethdev::PortConf {
        rx_queues: Some(1),
        // Queue 0 is the server's; client n sends on queue n + 1.
        tx_queues: Some(o.num_clients as u16 + 1),
        pool: Some(pool.clone()),
        default_vdevs: vec!["net_gen0".into(), "net_gen1".into()],
        ..Default::default()
    };
    let mask = o.portmask.unwrap_or(u64::MAX);
    let ports: Vec<Port> = ethdev::ports_with(eal, &conf)
        .map_err(|e| format!("ports: {e}"))?
        .into_iter()
        .filter(|p| p.id().0 < 64 && mask & (1 << p.id().0) != 0)
        .collect();
    if ports.is_empty() {
        return Err("no port selected by the portmask".into());
    }
    for p in &ports {
        println!("PORT {}: {} ({})", p.id().0, p.mac(), p.name());
    }
    let dispatcher = dispatch::from_spec(&o.dist, o.num_clients)?;
    let b = Distributor::builder(eal, cs::PIPELINE)
        .workers(o.num_clients)
        .ring_size(o.ring_size)
        .ring_names(cs::client_ring_name)
        .stall_timeout(o.client_timeout)
        .backpressure(o.backpressure)
        .copy_neighbour_frames(!o.no_neighbour_copy);
    let nports = ports.len();
    let mut d = if adopted {
        b.adopt(ports, pool.clone(), dispatcher)
            .map_err(|e| format!("adopting: {e}"))?
    } else {
        b.create(ports, pool.clone(), dispatcher)
            .map_err(|e| e.to_string())?
    };
    // Ring capacities, for the statistics lines.
    let mut cap = Vec::new();
    for (c, w) in d.stats().workers.iter().enumerate() {
        let name = cs::client_ring_name(c);
        let ring = MbufRing::lookup(eal, &name).map_err(|e| format!("ring {name}: {e}"))?;
        cap.push(ring.ring().capacity());
        if adopted {
            println!("Found ring '{name}' ({} packets in it)", w.ring_count);
        } else {
            println!("Creating ring '{name}'");
        }
    }
    let telemetry =
        shoal::telemetry::Server::start(eal).map_err(|e| format!("telemetry socket: {e}"))?;
    // Packet capture for `shoal dumpcap` (DPDK's pdump server in the primary).
    let pdump = shoal::pdump::Server::start(eal).map_err(|e| format!("capture server: {e}"))?;
    // Ports attached and detached at run time (`shoal port`, DPDK's hotplug_mp).
    let hotplug = shoal::hotplug::Server::start(eal).map_err(|e| format!("hotplug server: {e}"))?;
    let teal = eal.clone();
    telemetry
        .registry()
        .register("/cs/stats", "client_server_mp counters", move |_| {
            let s = dispatch::list(&teal)
                .into_iter()
                .find(|p| p.name == cs::PIPELINE);
            serde_json::to_value(s).unwrap_or_default()
        })
        .map_err(|e| format!("telemetry: {e}"))?;
    println!(
        "server ready: {nports} ports, {} clients, dist {}{}",
        o.num_clients,
        dist_name(&o.dist),
        if adopted { " (adopted the group)" } else { "" }
    );

    let stats_interval = (o.stats_interval > 0).then(|| Duration::from_millis(o.stats_interval));
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut prev = d.stats();
    let mut backoff = Backoff::new();
    let mut events = Vec::new();
    let mut waiting_for_clients = o.wait_clients;
    loop {
        if eal.should_quit() || o.duration.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        let got = if waiting_for_clients {
            d.check(&mut events);
            if d.live().len() == o.num_clients {
                waiting_for_clients = false;
                println!("all {} clients connected; receiving", o.num_clients);
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
            0
        } else {
            d.poll(&mut events)
        };
        for e in events.drain(..) {
            let pid = |id: usize| d.stats().workers[id].pid;
            report(&e, o.client_timeout, pid);
        }
        if let Some(p) = d.take_adoption_pause() {
            println!(
                "adopted: forwarding resumed after a pause of {:.3} ms (the dead server's last forwarded burst to this one's first); the ports dropped {} packets meanwhile",
                p.pause.as_secs_f64() * 1e3,
                p.ports_missed
            );
        }
        if got == 0 && !o.poll {
            backoff.snooze();
        } else {
            backoff.reset();
        }
        if let Some(iv) = stats_interval {
            if last_stats.elapsed() >= iv {
                let s = d.stats();
                print_stats(d.ports(), &s, &prev, &cap, last_stats.elapsed());
                prev = s;
                last_stats = Instant::now();
            }
        }
    }
    // Captures end before the drain, so that the final pool count includes their clones.
    drop(pdump);
    drop(hotplug);
    println!("\nStopping: no more reception; waiting for clients to drain their rings");
    let ports: Vec<Port> = d.ports().to_vec();
    let s = d.stop(o.drain_timeout);
    print_stats(&ports, &s, &s, &cap, Duration::from_secs(1));
    println!(
        "Final: received {} + broadcast copies {} = delivered {} + dropped {}; taken back from departed clients {}; pool in use {}",
        s.rx,
        s.neighbour_copies,
        s.enqueued() + s.answered,
        s.dropped(),
        s.workers.iter().map(|w| w.taken_back).sum::<u64>(),
        pool.in_use_count()
    );
    drop(telemetry);
    Ok(())
}

/// Prints what the distributor saw happen to a client (`pid` finds a client's pid).
fn report(e: &WorkerEvent, timeout: Duration, pid: impl Fn(usize) -> u64) {
    match *e {
        WorkerEvent::Joined { id, pid } => println!("Client process {id} connected (pid {pid})"),
        WorkerEvent::Resumed { id } => println!(
            "Client process {id} is taking packets again (pid {}); back in the rotation",
            pid(id)
        ),
        WorkerEvent::Stalled { id } => println!(
            "Client process {id} (pid {}) took nothing from its ring for {} ms; its flows move to the others until it does",
            pid(id),
            timeout.as_millis()
        ),
        WorkerEvent::Died { id, pid } => {
            println!("Client process {id} (pid {pid}) died; its flows move to the others")
        }
        WorkerEvent::Left { id } => println!("Client process {id} left"),
        WorkerEvent::TakenBack { id, packets } => {
            println!("Client process {id}: {packets} packets taken back from its ring")
        }
    }
}

fn forwarded(s: &PipelineStats) -> u64 {
    s.workers.iter().map(|w| w.tx).sum()
}

fn print_stats(ports: &[Port], s: &PipelineStats, prev: &PipelineStats, cap: &[u32], dt: Duration) {
    let secs = dt.as_secs_f64().max(1e-9);
    println!("\nPort statistics ====================================");
    for p in ports {
        let st = p.stats();
        let rx = s.ports.iter().find(|c| c.port == p.id().0 as usize);
        println!(
            "Port {:>2}: rx {:>12} tx {:>12} rx_missed {:>8} tx_drop {:>8}",
            p.id().0,
            rx.map_or(0, |c| c.rx),
            st.opackets,
            st.imissed,
            st.oerrors
        );
    }
    println!("Client statistics ==================================");
    for (w, cap) in s.workers.iter().zip(cap) {
        println!(
            "Client {:>2}: enqueued {:>12} dropped {:>8} rx {:>12} tx {:>12} tx_drop {:>8} ring {:>5}/{:<5} {}",
            w.id,
            w.enqueued,
            w.drop_ring_full,
            w.rx,
            w.tx,
            w.tx_drop,
            w.ring_count,
            cap,
            if w.live { "live" } else { "down" }
        );
    }
    println!(
        "Total: rx {} enqueued {} dropped {} forwarded {} ({:.3} Mpps in, {:.3} Mpps out)",
        s.rx,
        s.enqueued(),
        s.dropped(),
        forwarded(s),
        s.rx.saturating_sub(prev.rx) as f64 / secs / 1e6,
        forwarded(s).saturating_sub(forwarded(prev)) as f64 / secs / 1e6
    );
}
