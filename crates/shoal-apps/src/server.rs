//! The client_server_mp server (`mp_server`): DPDK's client_server_mp server (lesson 7, lab 3).
//!
//! The primary receives bursts from its ports and hands each packet to a client ring
//! `MProc_Client_RX_<n>` chosen by the dispatcher; ARP and IPv6 neighbour discovery frames are
//! copied to every live client (F-Stack). Whether a client lives comes from the group's process
//! table (its liveness lock), so a slow client is never declared dead: a client that dies or
//! leaves is taken out of the rotation (its flows move, the others' stay), what is left in its
//! ring goes back to the pool, and it is taken back when it returns with the same id; a live
//! client that takes nothing from its non-empty ring for `--client-timeout` leaves the rotation
//! (keeping its ring) until it makes progress again.

use std::time::{Duration, Instant};

use crate::args;
use crate::cs::{self, ctl, srv, Dispatcher, Dist, PacketKey, SharedInfo, MAX_CLIENTS, MAX_PORTS};
use crate::{bump, get};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, Port, QueueId};
use shoal::mbuf::{MbufBatch, MbufPool, MbufRing};
use shoal::net;
use shoal::ring::{RingConfig, SyncMode};
use shoal::sync::{Backoff, Liveness, MemberId};

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
    #[arg(long, value_name = "DIST", default_value = "rr", value_parser = Dist::parse)]
    dist: Dist,
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
}

const BURST: usize = 32;

struct Config {
    portmask: u64,
    num_clients: usize,
    dist: Dist,
    ring_size: u32,
    mbufs: u32,
    client_timeout: Duration,
    stats_interval: Option<Duration>,
    duration: Option<Duration>,
    drain_timeout: Duration,
    wait_clients: bool,
    poll: bool,
}

fn parse(args: &[String]) -> Result<Config, String> {
    let o: Opts = args::parse(args)?;
    let c = Config {
        portmask: o.portmask.unwrap_or(u64::MAX),
        num_clients: o.num_clients,
        dist: o.dist,
        ring_size: o.ring_size,
        mbufs: o.mbufs,
        client_timeout: o.client_timeout,
        stats_interval: (o.stats_interval > 0).then(|| Duration::from_millis(o.stats_interval)),
        duration: o.duration,
        drain_timeout: o.drain_timeout,
        wait_clients: o.wait_clients,
        poll: o.poll,
    };
    if c.portmask == 0 {
        return Err(format!("invalid portmask {:#x}", c.portmask));
    }
    if c.num_clients == 0 || c.num_clients > MAX_CLIENTS {
        return Err(format!("-n must be 1 to {MAX_CLIENTS}"));
    }
    if !c.ring_size.is_power_of_two() || c.ring_size < 2 {
        return Err("--ring-size must be a power of two".into());
    }
    c.dist.check_clients(c.num_clients)?;
    Ok(c)
}

/// Per-client state the server keeps in its own memory.
struct Client {
    ring: MbufRing,
    batch: MbufBatch,
    live: bool,
    last_warn: Option<Instant>,
    /// The client's RX counter when it last moved (or its ring was last empty).
    last_rx: u64,
    last_progress: Instant,
    /// Out of the rotation for lack of progress, not death.
    was_stalled: bool,
}

/// Runs the server with a full command line (program name first); returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    let (eal, cfg) = args::init(args, &args::usage::<Opts>(), parse);
    match run(&eal, cfg) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mp_server: {e}");
            1
        }
    }
}

fn run(eal: &Eal, cfg: Config) -> Result<(), String> {
    if eal.proc_type() != eal::ProcType::Primary {
        return Err("mp_server must be the primary process (--proc-type=primary)".into());
    }
    // A server that adopted the group of a dead one (EAL --adopt) finds its objects by name.
    let adopted = eal.adopted();
    let pool = if adopted {
        MbufPool::lookup(eal, cs::MBUF_POOL_NAME)
            .map_err(|e| format!("adopting: cannot find the mbuf pool: {e}"))?
    } else {
        MbufPool::create(eal, cs::MBUF_POOL_NAME, cfg.mbufs, 256, 0, 2048 + 128)
            .map_err(|e| format!("cannot create the mbuf pool: {e}"))?
    };
    let conf = ethdev::PortConf {
        rx_queues: Some(1),
        // Queue 0 is the server's; client n sends on queue n + 1.
        tx_queues: Some(cfg.num_clients as u16 + 1),
        pool: Some(pool.clone()),
        default_vdevs: vec!["net_gen0".into(), "net_gen1".into()],
        ..Default::default()
    };
    let ports = ethdev::ports_with(eal, &conf).map_err(|e| format!("ports: {e}"))?;
    let ports: Vec<Port> = ports
        .into_iter()
        .filter(|p| p.id().0 < 64 && cfg.portmask & (1 << p.id().0) != 0)
        .collect();
    if ports.is_empty() {
        return Err("no port selected by the portmask".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!("at most {MAX_PORTS} ports"));
    }
    for p in &ports {
        println!("PORT {}: {} ({})", p.id().0, p.mac(), p.name());
    }
    let info = if adopted {
        let info = SharedInfo::lookup(eal).map_err(|e| format!("adopting: shared info: {e}"))?;
        if !info.ready() || info.num_clients() != cfg.num_clients {
            return Err(format!(
                "adopting: the group's server served {} clients, not -n {}",
                info.num_clients(),
                cfg.num_clients
            ));
        }
        info
    } else {
        SharedInfo::create(eal).map_err(|e| format!("shared info: {e}"))?
    };
    let mut clients = Vec::new();
    for c in 0..cfg.num_clients {
        let name = cs::client_ring_name(c);
        let ring = if adopted {
            let r =
                MbufRing::lookup(eal, &name).map_err(|e| format!("adopting: ring {name}: {e}"))?;
            println!("Found ring '{name}' ({} packets in it)", r.count());
            r
        } else {
            let rc = RingConfig {
                prod: SyncMode::Sp,
                cons: SyncMode::Sp,
                ..RingConfig::new(cfg.ring_size)
            };
            let r = MbufRing::create(eal, &name, rc).map_err(|e| format!("ring {name}: {e}"))?;
            println!("Creating ring '{name}'");
            r
        };
        clients.push(Client {
            ring,
            batch: MbufBatch::new(),
            live: false,
            last_warn: None,
            last_rx: 0,
            last_progress: Instant::now(),
            was_stalled: false,
        });
    }
    info.ctl(ctl::SERVER_PID).store(
        std::process::id() as u64,
        shoal::sync::atomic::Ordering::Relaxed,
    );
    // The pause of an adoption ends at the first burst this server forwards.
    let mut pause_from = adopted.then(|| {
        // A server killed while stopping had asked the clients to leave; this one serves on.
        info.ctl(ctl::SHUTDOWN)
            .store(0, shoal::sync::atomic::Ordering::Release);
        bump(info.ctl(ctl::ADOPTIONS), 1);
        (
            get(info.ctl(ctl::LAST_FWD_NS)),
            get(info.ctl(ctl::PORTS_MISSED)),
        )
    });
    if !adopted {
        bump(info.ctl(ctl::NUM_CLIENTS), cfg.num_clients as u64);
        bump(info.ctl(ctl::NUM_PORTS), ports.len() as u64);
        bump(
            info.ctl(ctl::PORT_MASK),
            ports.iter().map(|p| 1u64 << p.id().0).sum(),
        );
        // Published last: clients wait for it.
        bump(info.ctl(ctl::MAGIC), cs::MAGIC);
    }
    let telemetry =
        shoal::telemetry::Server::start(eal).map_err(|e| format!("telemetry socket: {e}"))?;
    // Packet capture for `shoal dumpcap` (DPDK's pdump server in the primary).
    let pdump = shoal::pdump::Server::start(eal).map_err(|e| format!("capture server: {e}"))?;
    // Ports attached and detached at run time (`shoal port`, DPDK's hotplug_mp).
    let hotplug = shoal::hotplug::Server::start(eal).map_err(|e| format!("hotplug server: {e}"))?;
    let tinfo = info.clone();
    telemetry
        .registry()
        .register("/cs/stats", "client_server_mp counters", move |_| {
            stats_json(&tinfo)
        })
        .map_err(|e| format!("telemetry: {e}"))?;
    println!(
        "server ready: {} ports, {} clients, dist {:?}{}",
        ports.len(),
        cfg.num_clients,
        cfg.dist,
        if adopted { " (adopted the group)" } else { "" }
    );

    let mut dispatcher = Dispatcher::new(cfg.dist.clone());
    let parse = dispatcher.needs_parse();
    let mut rx = MbufBatch::new();
    let mut live: Vec<usize> = Vec::new();
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_check = Instant::now() - Duration::from_secs(1);
    let mut backoff = Backoff::new();
    let mut prev = Totals::default();
    let mut waiting_for_clients = cfg.wait_clients;
    loop {
        if eal.should_quit() || cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if last_check.elapsed() >= Duration::from_millis(50) {
            last_check = Instant::now();
            check_clients(eal, &info, &mut clients, &mut live, cfg.client_timeout);
            info.ctl(ctl::PORTS_MISSED)
                .store(ports_missed(&ports), shoal::sync::atomic::Ordering::Relaxed);
        }
        let mut got = 0;
        if waiting_for_clients {
            if live.len() < cfg.num_clients {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            waiting_for_clients = false;
            println!("all {} clients connected; receiving", cfg.num_clients);
        }
        for p in &ports {
            let n = p.rx_burst(QueueId(0), &mut rx, BURST);
            if n == 0 {
                continue;
            }
            got += n;
            let pid = p.id().0 as usize;
            bump(info.port(pid, cs::port::RX), n as u64);
            bump(
                info.port(pid, cs::port::RX_BYTES),
                rx.iter().map(|m| m.pkt_len() as u64).sum(),
            );
            for m in rx.drain(..) {
                if cs::is_neighbour_frame(m.data()) {
                    bump(info.ctl(ctl::BCAST_FRAMES), 1);
                    broadcast(&info, &mut clients, &live, m, &pool);
                    continue;
                }
                let meta = if parse {
                    net::parse_frame(m.data()).ok()
                } else {
                    None
                };
                let key = PacketKey {
                    flow_hash: meta
                        .as_ref()
                        .and_then(|i| i.tuple)
                        .map(|t| t.symmetric().crc_hash(0))
                        .unwrap_or(0),
                    dscp: meta.as_ref().filter(|i| i.tuple.is_some()).map(|i| i.dscp),
                };
                match dispatcher.pick(key, &live) {
                    Some(c) => {
                        if let Err(m) = clients[c].batch.push(m) {
                            drop(m);
                            bump(info.server(c, srv::DROP_FULL), 1);
                        }
                    }
                    None => bump(info.ctl(ctl::DROP_NO_CLIENT), 1),
                }
            }
            flush_all(&info, &mut clients);
        }
        if got > 0 {
            let now = shoal::eal::monotonic_ns();
            info.ctl(ctl::LAST_FWD_NS)
                .store(now, shoal::sync::atomic::Ordering::Relaxed);
            if let Some((last, missed)) = pause_from.take() {
                let pause = now.saturating_sub(last);
                let dropped = ports_missed(&ports).saturating_sub(missed);
                info.ctl(ctl::LAST_PAUSE_NS)
                    .store(pause, shoal::sync::atomic::Ordering::Relaxed);
                info.ctl(ctl::LAST_PAUSE_MISSED)
                    .store(dropped, shoal::sync::atomic::Ordering::Relaxed);
                // Release: a reader that sees this time sees the pause figures above.
                info.ctl(ctl::ADOPTED_FIRST_FWD_NS)
                    .store(now, shoal::sync::atomic::Ordering::Release);
                println!(
                    "adopted: forwarding resumed after a pause of {:.3} ms (the dead server's last forwarded burst to this one's first); the ports dropped {dropped} packets meanwhile",
                    pause as f64 / 1e6
                );
            }
        }
        if got == 0 && !cfg.poll {
            backoff.snooze();
        } else {
            backoff.reset();
        }
        if let Some(iv) = cfg.stats_interval {
            if last_stats.elapsed() >= iv {
                let t = totals(&info, &ports, cfg.num_clients);
                print_stats(&info, &ports, &clients, &t, &prev, last_stats.elapsed());
                prev = t;
                last_stats = Instant::now();
            }
        }
    }
    // Captures end before the drain, so that the final pool count includes their clones.
    drop(pdump);
    drop(hotplug);
    stop(eal, &info, &mut clients, &ports, &pool, cfg.drain_timeout);
    drop(telemetry);
    Ok(())
}

/// The ports' `imissed` total.
fn ports_missed(ports: &[Port]) -> u64 {
    ports.iter().map(|p| p.stats().imissed).sum()
}

/// Moves each client's pending batch onto its ring; what does not fit is dropped and counted,
/// and a ring above 90% full earns a (rate limited) warning.
fn flush_all(info: &SharedInfo, clients: &mut [Client]) {
    for (c, cl) in clients.iter_mut().enumerate() {
        if cl.batch.is_empty() {
            continue;
        }
        let n = cl.batch.len();
        let sent = cl.ring.enqueue_burst(&mut cl.batch);
        bump(info.server(c, srv::ENQUEUED), sent as u64);
        if sent < n {
            bump(info.server(c, srv::DROP_FULL), (n - sent) as u64);
            cl.batch.clear();
        }
        let (count, cap) = (cl.ring.count(), cl.ring.ring().capacity());
        if count as u64 * 10 > cap as u64 * 9
            && cl
                .last_warn
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            cl.last_warn = Some(Instant::now());
            bump(info.server(c, srv::WARNINGS), 1);
            tracing::warn!(
                "client {c} ring usage {:.1}% ({count}/{cap})",
                100.0 * count as f64 / cap as f64
            );
        }
    }
}

/// Copies an ARP/ND frame to every live client (F-Stack's broadcast by cloning).
fn broadcast(
    info: &SharedInfo,
    clients: &mut [Client],
    live: &[usize],
    m: shoal::mbuf::Mbuf,
    pool: &MbufPool,
) {
    let Some((&last, rest)) = live.split_last() else {
        bump(info.ctl(ctl::DROP_NO_CLIENT), 1);
        return;
    };
    for &c in rest {
        match m.copy(pool, 0, m.pkt_len()) {
            Some(copy) => {
                bump(info.ctl(ctl::BCAST_COPIES), 1);
                if let Err(copy) = clients[c].batch.push(copy) {
                    drop(copy);
                    bump(info.server(c, srv::DROP_FULL), 1);
                }
            }
            None => bump(info.ctl(ctl::BCAST_COPY_FAIL), 1),
        }
    }
    if let Err(m) = clients[last].batch.push(m) {
        drop(m);
        bump(info.server(last, srv::DROP_FULL), 1);
    }
}

/// Updates the set of clients in the rotation. Whether a client lives comes from the group's
/// process table (its member id's liveness lock), not from a heartbeat, so a slow client is
/// never declared dead. A live client is taken out of the rotation only while it makes no
/// progress (takes nothing from its non-empty ring) for `timeout`; it keeps its ring, and comes
/// back as soon as it takes packets again. The ring of a client that died or left is taken back
/// into the pool, every time it holds something.
fn check_clients(
    eal: &Eal,
    info: &SharedInfo,
    clients: &mut [Client],
    live: &mut Vec<usize>,
    timeout: Duration,
) {
    let mut changed = false;
    for (c, cl) in clients.iter_mut().enumerate() {
        let state = get(info.client(c, cs::cli::STATE));
        let member = MemberId::from_raw(get(info.client(c, cs::cli::MEMBER)));
        let pid = get(info.client(c, cs::cli::PID));
        // Unknown liveness counts as alive: a ring is never taken from a process that may live.
        let alive = !member.is_none() && eal.liveness(member) != Liveness::Dead;
        let running = state == 1 && alive;
        let rx = get(info.client(c, cs::cli::RX));
        let queued = cl.ring.count();
        if rx != cl.last_rx || queued == 0 || !running {
            cl.last_rx = rx;
            cl.last_progress = Instant::now();
        }
        let stalled = running && cl.last_progress.elapsed() >= timeout;
        let in_rotation = running && !stalled;
        info.server(c, srv::STALLED)
            .store(stalled as u64, shoal::sync::atomic::Ordering::Relaxed);
        if in_rotation && !cl.live {
            if cl.was_stalled {
                println!(
                    "Client process {c} is taking packets again (pid {pid}); back in the rotation"
                );
            } else {
                println!("Client process {c} connected (pid {pid})");
            }
            cl.live = true;
            cl.was_stalled = false;
            changed = true;
        } else if !in_rotation && cl.live {
            cl.live = false;
            changed = true;
            if stalled {
                cl.was_stalled = true;
                println!("Client process {c} (pid {pid}) took nothing from its ring for {} ms; its flows move to the others until it does", timeout.as_millis());
            } else if state == 1 {
                println!("Client process {c} (pid {pid}) died; its flows move to the others");
            } else {
                println!("Client process {c} left");
            }
        }
        // A client that died or left gives its ring back, whatever is in it, as often as
        // something is found there.
        if !running && queued > 0 && !(state == 1 && alive) {
            // A dead client's side of its ring is taken over once the client is reaped (which
            // undoes a receive it left half done); reap now rather than at the next round.
            if !alive {
                eal.reap_dead();
            }
            let flushed = flush_ring(&cl.ring);
            if flushed > 0 {
                bump(info.server(c, srv::FLUSHED), flushed as u64);
                println!("Client process {c}: {flushed} packets taken back from its ring");
            }
        }
        info.server(c, srv::LIVE)
            .store(cl.live as u64, shoal::sync::atomic::Ordering::Relaxed);
    }
    if changed {
        live.clear();
        live.extend(
            clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.live)
                .map(|(i, _)| i),
        );
    }
}

/// Takes back what is left in a departed client's ring. Works on a handle of its own, whose
/// claim on the ring's single-consumer side is released on return, so that the client can
/// claim it again when it comes back.
fn flush_ring(ring: &MbufRing) -> usize {
    let ring = ring.clone();
    let mut b = MbufBatch::new();
    let mut n = 0;
    loop {
        let got = ring.dequeue_burst(&mut b, BURST);
        if got == 0 {
            return n;
        }
        n += got;
        b.clear();
    }
}

#[derive(Default, Clone)]
struct Totals {
    rx: u64,
    enqueued: u64,
    dropped: u64,
    client_tx: u64,
}

fn totals(info: &SharedInfo, ports: &[Port], n: usize) -> Totals {
    let mut t = Totals::default();
    for p in ports {
        t.rx += get(info.port(p.id().0 as usize, cs::port::RX));
    }
    for c in 0..n {
        t.enqueued += get(info.server(c, srv::ENQUEUED));
        t.dropped += get(info.server(c, srv::DROP_FULL));
        t.client_tx += get(info.client(c, cs::cli::TX));
    }
    // A failed broadcast copy is a copy that never existed: it is counted on its own
    // (`bcast_copy_fail`), not among the dropped packets, so that received + copies made =
    // delivered + dropped + taken back.
    t.dropped += get(info.ctl(ctl::DROP_NO_CLIENT));
    t
}

fn print_stats(
    info: &SharedInfo,
    ports: &[Port],
    clients: &[Client],
    t: &Totals,
    prev: &Totals,
    dt: Duration,
) {
    let secs = dt.as_secs_f64().max(1e-9);
    println!("\nPort statistics ====================================");
    for p in ports {
        let s = p.stats();
        println!(
            "Port {:>2}: rx {:>12} tx {:>12} rx_missed {:>8} tx_drop {:>8}",
            p.id().0,
            get(info.port(p.id().0 as usize, cs::port::RX)),
            s.opackets,
            s.imissed,
            s.oerrors
        );
    }
    println!("Client statistics ==================================");
    for (c, cl) in clients.iter().enumerate() {
        println!(
            "Client {:>2}: enqueued {:>12} dropped {:>8} rx {:>12} tx {:>12} tx_drop {:>8} ring {:>5}/{:<5} {}",
            c,
            get(info.server(c, srv::ENQUEUED)),
            get(info.server(c, srv::DROP_FULL)),
            get(info.client(c, cs::cli::RX)),
            get(info.client(c, cs::cli::TX)),
            get(info.client(c, cs::cli::TX_DROP)),
            cl.ring.count(),
            cl.ring.ring().capacity(),
            if cl.live { "live" } else { "down" }
        );
    }
    println!(
        "Total: rx {} enqueued {} dropped {} forwarded {} ({:.3} Mpps in, {:.3} Mpps out)",
        t.rx,
        t.enqueued,
        t.dropped,
        t.client_tx,
        (t.rx - prev.rx) as f64 / secs / 1e6,
        (t.client_tx - prev.client_tx) as f64 / secs / 1e6
    );
}

fn stats_json(info: &SharedInfo) -> serde_json::Value {
    let n = info.num_clients();
    let clients: Vec<serde_json::Value> = (0..n)
        .map(|c| {
            serde_json::json!({
                "client": c,
                "enqueued": get(info.server(c, srv::ENQUEUED)),
                "dropped": get(info.server(c, srv::DROP_FULL)),
                "flushed": get(info.server(c, srv::FLUSHED)),
                "live": get(info.server(c, srv::LIVE)) == 1,
                "rx": get(info.client(c, cs::cli::RX)),
                "tx": get(info.client(c, cs::cli::TX)),
                "tx_drop": get(info.client(c, cs::cli::TX_DROP)),
                "starts": get(info.client(c, cs::cli::STARTS)),
            })
        })
        .collect();
    let mask = get(info.ctl(ctl::PORT_MASK));
    let ports: Vec<serde_json::Value> = (0..MAX_PORTS)
        .filter(|p| mask & (1 << p) != 0)
        .map(|p| serde_json::json!({"port": p, "rx": get(info.port(p, cs::port::RX)), "rx_bytes": get(info.port(p, cs::port::RX_BYTES))}))
        .collect();
    serde_json::json!({
        "ports": ports,
        "clients": clients,
        "drop_no_client": get(info.ctl(ctl::DROP_NO_CLIENT)),
        "bcast_frames": get(info.ctl(ctl::BCAST_FRAMES)),
        "bcast_copies": get(info.ctl(ctl::BCAST_COPIES)),
        "bcast_copy_fail": get(info.ctl(ctl::BCAST_COPY_FAIL)),
        "adoptions": get(info.ctl(ctl::ADOPTIONS)),
        "last_adoption_pause_ns": get(info.ctl(ctl::LAST_PAUSE_NS)),
        "last_adoption_ports_missed": get(info.ctl(ctl::LAST_PAUSE_MISSED)),
    })
}

/// Graceful stop: no more reception; clients drain their rings and leave; final statistics.
fn stop(
    eal: &Eal,
    info: &SharedInfo,
    clients: &mut [Client],
    ports: &[Port],
    pool: &MbufPool,
    drain: Duration,
) {
    println!("\nStopping: no more reception; waiting for clients to drain their rings");
    for c in 0..clients.len() {
        flush_all(info, clients);
        let _ = c;
    }
    info.ctl(ctl::SHUTDOWN)
        .store(1, shoal::sync::atomic::Ordering::Release);
    let deadline = Instant::now() + drain;
    while Instant::now() < deadline {
        let busy = (0..clients.len()).any(|c| {
            get(info.client(c, cs::cli::STATE)) == 1
                && eal.liveness(MemberId::from_raw(get(info.client(c, cs::cli::MEMBER))))
                    != Liveness::Dead
        });
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Clients that died while draining are reaped first, so that their rings can be emptied.
    eal.reap_dead();
    for (c, cl) in clients.iter_mut().enumerate() {
        let flushed = flush_ring(&cl.ring);
        bump(info.server(c, srv::FLUSHED), flushed as u64);
    }
    let t = totals(info, ports, clients.len());
    print_stats(info, ports, clients, &t, &t, Duration::from_secs(1));
    let flushed: u64 = (0..clients.len())
        .map(|c| get(info.server(c, srv::FLUSHED)))
        .sum();
    let copies = get(info.ctl(ctl::BCAST_COPIES));
    println!(
        "Final: received {} + broadcast copies {} = delivered {} + dropped {}; taken back from departed clients {}; pool in use {}",
        t.rx,
        copies,
        t.enqueued,
        t.dropped,
        flushed,
        pool.in_use_count()
    );
    let _ = eal;
}
