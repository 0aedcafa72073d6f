//! A pipeline with a dispatcher of your own and two worker processes, any of which may crash.
//! UDP packets go to worker `destination port % 2`; other IP packets follow their flow; frames
//! that are not IP are dropped (and counted). ARP/ND frames are copied to both workers.
//!
//! ```text
//! cargo run --example custom_dispatch -- --file-prefix demo -- distributor
//! cargo run --example custom_dispatch -- --file-prefix demo -l 1 --proc-type=secondary -- worker 0
//! cargo run --example custom_dispatch -- --file-prefix demo -l 2 --proc-type=secondary -- worker 1
//! ```
//! Kill a worker (`kill -9`) and start it again: its packets are taken back, nothing is lost.
use std::error::Error;
use std::time::{Duration, Instant};

use shoal::dispatch::{self, Ctx, Distributor, Verdict, Worker};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, PortConf};
use shoal::mbuf::{Mbuf, MbufBatch, MbufPool};

const USAGE: &str = "custom_dispatch [EAL options] -- distributor [SECS] | worker ID";

fn main() -> Result<(), Box<dyn Error>> {
    eal::init_logging(None);
    let (eal, args) = eal::init_or_exit(USAGE);
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.as_slice() {
        ["distributor"] => distributor(&eal, None),
        ["distributor", secs] => distributor(&eal, Some(secs.parse()?)),
        ["worker", id] => worker(&eal, id.parse()?),
        _ => {
            eprintln!("usage: {USAGE}");
            std::process::exit(2);
        }
    }
}

/// The user's dispatcher: any closure (or type) implementing `dispatch::Dispatcher`.
fn by_udp_port(m: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
    match shoal::net::parse_frame(m.data()).ok().and_then(|i| i.tuple) {
        Some(t) if t.proto == 17 => Verdict::Worker(t.dst_port as usize % 2),
        Some(_) => dispatch::worker_for_hash(dispatch::flow_hash(m.data()), ctx.live())
            .map_or(Verdict::NoWorker, Verdict::Worker),
        None => Verdict::Drop,
    }
}

fn distributor(eal: &Eal, secs: Option<u64>) -> Result<(), Box<dyn Error>> {
    let pool = MbufPool::create(eal, "mbuf_pool", 8191, 256, 0, 2048 + 128)?;
    let conf = PortConf {
        tx_queues: Some(3), // queue 0 for answers, one per worker
        pool: Some(pool.clone()),
        default_vdevs: vec!["net_gen0,rate=10000".into(), "net_gen1,rate=10000".into()],
        ..Default::default()
    };
    let ports = ethdev::ports_with(eal, &conf)?;
    let mut d =
        Distributor::builder(eal, "custom")
            .workers(2)
            .create(ports, pool.clone(), by_udp_port)?;
    println!("distributor ready: pipeline {:?}, 2 workers", d.name());
    let end = secs.map(|s| Instant::now() + Duration::from_secs(s));
    d.run(
        false,
        |_| !eal.should_quit() && end.is_none_or(|t| Instant::now() < t),
        |event| println!("{event:?}"),
    );
    let s = d.stop(Duration::from_secs(3));
    println!(
        "final: rx {} + copies {} = enqueued {} + dropped {} + answered {}; unaccounted {}; taken back {}; pool in use {}",
        s.rx,
        s.neighbour_copies,
        s.enqueued(),
        s.dropped(),
        s.answered,
        s.unaccounted(),
        s.workers.iter().map(|w| w.taken_back).sum::<u64>(),
        pool.in_use_count()
    );
    for w in &s.workers {
        println!(
            "worker {}: enqueued {} = taken {} + taken back {} + in ring {}; starts {}",
            w.id, w.enqueued, w.rx, w.taken_back, w.ring_count, w.starts
        );
    }
    Ok(())
}

fn worker(eal: &Eal, id: usize) -> Result<(), Box<dyn Error>> {
    let ports = ethdev::ports(eal)?;
    let mut w = Worker::attach(eal, "custom", id)?;
    println!("worker {id} ready (start {})", w.starts());
    let (mut rx, mut out) = (MbufBatch::new(), MbufBatch::new());
    while let Some(n) = w.recv(&mut rx) {
        if n == 0 {
            continue;
        }
        // Forward each packet out of the other port (port id XOR 1).
        for p in &ports {
            for m in rx.drain(..) {
                if m.port() ^ 1 == p.id().0 {
                    let _ = out.push(m); // `out` has room for a whole burst
                } else {
                    let _ = rx.push(m);
                }
            }
            w.tx_burst(p, &mut out);
        }
        let stray = rx.len() as u64; // packets of a port with no pair: freed, counted
        w.count_dropped(stray);
        rx.clear();
    }
    let s = w.stats();
    println!("worker {id}: rx {} tx {} tx_drop {}", s.rx, s.tx, s.tx_drop);
    Ok(())
}
