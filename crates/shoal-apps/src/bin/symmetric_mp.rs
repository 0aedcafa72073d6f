//! symmetric_mp: DPDK's symmetric multi-process sample. Every process is a peer: the first
//! (primary) sets the ports up with one queue per process, and each process, primary or
//! secondary, serves queue `--proc-id` of every port in the port mask, forwarding between
//! port pairs (0↔1, 2↔3, ...). On SIGINT/SIGTERM each prints its own counters.
//!
//! ```text
//! symmetric_mp -l 0 --proc-type=auto --vdev net_af_packet0,iface=a0,qpairs=2 \
//!     --vdev net_af_packet1,iface=a1,qpairs=2 -- -p 0x3 --num-procs=2 --proc-id=0
//! symmetric_mp -l 1 --proc-type=auto -- -p 0x3 --num-procs=2 --proc-id=1
//! ```

use shoal::eal::ProcType;
use shoal::ethdev::{self, Port, PortConf, QueueId};
use shoal::mbuf::MbufBatch;
use shoal::sync::Backoff;

/// Packets per burst (DPDK's PKT_BURST).
const PKT_BURST: usize = 32;
/// Mbufs of the pool (DPDK's NB_MBUFS is 64 K; this is per group).
const NB_MBUFS: u32 = 16 * 1024 - 1;
/// Per-lcore cache (DPDK's MBUF_CACHE_SIZE).
const MBUF_CACHE_SIZE: u32 = 256;
/// The pool's name (DPDK's _SMP_MBUF_POOL).
const SMP_MBUF_POOL: &str = "SMP_MBUF_POOL";

const APP_USAGE: &str =
    "symmetric_mp [EAL options] -- -p <port mask> --num-procs <n> --proc-id <id>
  -p PORTMASK          hexadecimal bitmask of the ports to use (an even number of them)
  --num-procs N        number of processes (the primary makes one queue per process)
  --proc-id ID         this process's id, 0 <= ID < N: it serves queue ID of every port
  --busy-poll          never back off when idle (benchmarks)
  --nb-mbufs N         mbufs of the pool the primary makes (default 16383; DPDK's sample: 65536)
  --flow-log FILE      at exit, write the 5-tuples this process forwarded, one per line (tests)";

/// Leaves the group (a primary removes its segment and runtime files) and exits with status 1.
fn bye(eal: &shoal::eal::Eal) -> ! {
    eal.leave();
    std::process::exit(1)
}

/// [`smp_usage`] after joining the group: leaves it first.
fn leave_usage(eal: &shoal::eal::Eal, prog: &str, errmsg: &str) -> ! {
    eal.leave();
    smp_usage(prog, errmsg)
}

/// DPDK's errors for the application's options (`smp_usage`), as an error line and the usage
/// on stderr, with exit status 2 as every sample here.
fn smp_usage(prog: &str, errmsg: &str) -> ! {
    shoal_apps::args::usage_exit(prog, APP_USAGE, &format!("Error: {errmsg}"))
}

struct Args {
    port_mask: u64,
    num_procs: Option<u16>,
    proc_id: u16,
    busy_poll: bool,
    nb_mbufs: u32,
    flow_log: Option<String>,
}

fn parse_args(app: &[String]) -> Result<Args, String> {
    let bad = || "Error: Cannot parse all command-line arguments".to_string();
    let mut port_mask = 0;
    let mut num_procs = None;
    let mut proc_id = None;
    let mut busy_poll = false;
    let mut nb_mbufs = NB_MBUFS;
    let mut flow_log = None;
    let mut it = app.iter().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let (name, inline) = match name {
            n if n.starts_with("-p") && n.len() > 2 => ("-p", Some(n[2..].to_string())),
            n => (n, inline),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(bad)
        };
        match name {
            "-p" => {
                let v = value()?;
                let h = v.trim_start_matches("0x").trim_start_matches("0X");
                port_mask = u64::from_str_radix(h, 16).unwrap_or(0);
            }
            "--num-procs" => num_procs = value()?.parse().ok(),
            "--proc-id" => proc_id = value()?.parse().ok(),
            "--busy-poll" => busy_poll = true,
            "--nb-mbufs" => {
                let v = value()?;
                nb_mbufs = v.parse().ok().filter(|&n: &u32| n > 0).ok_or_else(|| {
                    format!("Error: Invalid --nb-mbufs {v:?} (a number of mbufs, 1 or more)")
                })?;
            }
            "--flow-log" => flow_log = Some(value()?),
            _ => return Err(bad()),
        }
    }
    let proc_id = proc_id.ok_or("Error: Invalid or missing proc-id parameter")?;
    if port_mask == 0 {
        return Err("Error: Invalid or missing port mask".into());
    }
    Ok(Args {
        port_mask,
        num_procs,
        proc_id,
        busy_poll,
        nb_mbufs,
        flow_log,
    })
}

#[derive(Default, Clone, Copy)]
struct PortStats {
    rx: u64,
    tx: u64,
    drop: u64,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let prog = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "symmetric_mp".into());
    let (eal, args) = shoal_apps::args::init(argv, APP_USAGE, parse_args);
    let primary = eal.proc_type() == ProcType::Primary;
    let proc_id = args.proc_id;
    // Only the primary sizes the ports, so only it needs --num-procs; whether this process
    // is the primary is known once it joined (--proc-type=auto).
    if primary && args.num_procs.is_none_or(|n| n == 0) {
        leave_usage(&eal, &prog, "Invalid or missing num-procs parameter");
    }
    let all = if primary {
        let pool = shoal::mbuf::MbufPool::create(
            &eal,
            SMP_MBUF_POOL,
            args.nb_mbufs,
            MBUF_CACHE_SIZE,
            0,
            2048 + 128,
        )
        .unwrap_or_else(|e| {
            eprintln!("EAL: Error - exiting with code: 1\n  Cause: Cannot get memory pool for buffers ({e})");
            bye(&eal)
        });
        println!(
            "APP: {SMP_MBUF_POOL}: {} mbufs, cache {MBUF_CACHE_SIZE}, data room {}; burst {PKT_BURST}",
            args.nb_mbufs,
            2048 + 128
        );
        ethdev::ports_with(
            &eal,
            &PortConf {
                rx_queues: args.num_procs,
                tx_queues: args.num_procs,
                pool: Some(pool),
                ..Default::default()
            },
        )
    } else {
        ethdev::ports(&eal)
    }
    .unwrap_or_else(|e| {
        eprintln!("EAL: Error - exiting with code: 1\n  Cause: Error initialising ports: {e}");
        bye(&eal)
    });
    if all.is_empty() {
        eprintln!("EAL: Error - exiting with code: 1\n  Cause: No Ethernet ports - bye");
        bye(&eal);
    }
    let ports: Vec<Port> = all
        .iter()
        .filter(|p| p.id().0 < 64 && args.port_mask & (1 << p.id().0) != 0)
        .cloned()
        .collect();
    if ports.len() % 2 == 1 {
        eprintln!(
            "EAL: Error - exiting with code: 1\n  Cause: Application must use an even number of ports"
        );
        bye(&eal);
    }
    if let Some(p) = ports.iter().find(|p| proc_id >= p.nb_rx_queues()) {
        leave_usage(
            &eal,
            &prog,
            &format!(
                "Invalid or missing proc-id parameter (port {} has {} queues; proc-id must be below)",
                p.id(),
                p.nb_rx_queues()
            ),
        );
    }
    if primary {
        for p in &ports {
            println!(
                "Port {} {}",
                p.id(),
                if p.link_up() { "Link Up" } else { "Link Down" }
            );
        }
    }
    let lcore = eal.main_lcore();
    println!(
        "Lcore {lcore} using ports {}",
        ports
            .iter()
            .map(|p| p.id().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("lcore {lcore} using queue {proc_id} of each port");
    println!("APP: Finished Process Init.");
    let q = QueueId(proc_id);
    let mut stats = vec![PortStats::default(); ports.len()];
    let mut backoff = Backoff::new();
    let mut batch = MbufBatch::new();
    let mut flows = args
        .flow_log
        .as_ref()
        .map(|_| std::collections::BTreeSet::<String>::new());
    while !eal.should_quit() {
        let mut moved = 0;
        for i in 0..ports.len() {
            let (src, dst) = (&ports[i], &ports[i ^ 1]);
            let rx = src.rx_burst(q, &mut batch, PKT_BURST);
            if rx == 0 {
                continue;
            }
            moved += rx;
            stats[i].rx += rx as u64;
            if let Some(seen) = flows.as_mut() {
                for m in batch.iter() {
                    if let Some(t) = shoal::net::parse_frame(m.data()).ok().and_then(|i| i.tuple) {
                        seen.insert(format!(
                            "{} {}:{} > {}:{}",
                            t.proto, t.src, t.src_port, t.dst, t.dst_port
                        ));
                    }
                }
            }
            let tx = dst.tx_burst(q, &mut batch);
            stats[i ^ 1].tx += tx as u64;
            if tx != rx {
                stats[i ^ 1].drop += (rx - tx) as u64;
                batch.clear();
            }
        }
        if moved > 0 || args.busy_poll {
            backoff.reset();
        } else {
            backoff.snooze();
        }
    }
    if let (Some(path), Some(seen)) = (&args.flow_log, &flows) {
        let text: String = seen.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("--flow-log {path}: {e}");
        }
    }
    println!("\nExiting on signal {}\n", eal.quit_signal());
    for (p, s) in ports.iter().zip(&stats) {
        println!(
            "Port {}: RX - {}, TX - {}, Drop - {}",
            p.id(),
            s.rx,
            s.tx,
            s.drop
        );
    }
    // Every buffer this process held is back; with the other peers gone, the pool is whole.
    if let Ok(pool) = shoal::mbuf::MbufPool::lookup(&eal, SMP_MBUF_POOL) {
        println!("pool in use {}", pool.in_use_count());
    }
}
