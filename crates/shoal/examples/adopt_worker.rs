//! A worker that survives its distributor's restart: the distributor is the primary, the worker
//! a secondary with a `--primary-grace` that waits for an adopter. Kill the distributor
//! (`kill -9`) and start it again with `--adopt`: it adopts the group and the pipeline, and the
//! worker carries on with its ring and what was in it, never restarted.
//!
//! ```text
//! cargo run --example adopt_worker -- --file-prefix demo -- distributor
//! cargo run --example adopt_worker -- --file-prefix demo -l 1 --proc-type=secondary --primary-grace 30000 -- worker
//! kill -9 <distributor>
//! cargo run --example adopt_worker -- --file-prefix demo --adopt -- distributor
//! ```
use std::error::Error;
use std::time::Duration;

use shoal::dispatch::{Distributor, RoundRobin, Worker};
use shoal::eal::{self, Eal};
use shoal::ethdev::{self, PortConf};
use shoal::mbuf::{MbufBatch, MbufPool};

const USAGE: &str = "adopt_worker [EAL options] -- distributor | worker";

fn main() -> Result<(), Box<dyn Error>> {
    eal::init_logging(None);
    let (eal, args) = eal::init_or_exit(USAGE);
    match args.get(1).map(String::as_str) {
        Some("distributor") => distributor(&eal),
        Some("worker") => worker(&eal),
        _ => {
            eprintln!("usage: {USAGE}");
            std::process::exit(2);
        }
    }
}

fn distributor(eal: &Eal) -> Result<(), Box<dyn Error>> {
    // A primary that adopted a dead one's group (EAL --adopt) finds its objects by name.
    let pool = if eal.adopted() {
        MbufPool::lookup(eal, "mbuf_pool")?
    } else {
        MbufPool::create(eal, "mbuf_pool", 4095, 0, 0, 2048 + 128)?
    };
    let conf = PortConf {
        tx_queues: Some(2), // queue 0 for answers, queue 1 for the worker
        pool: Some(pool.clone()),
        default_vdevs: vec!["net_gen0,rate=10000".into()],
        ..Default::default()
    };
    let ports = ethdev::ports_with(eal, &conf)?;
    let b = Distributor::builder(eal, "adopting");
    let mut d = if eal.adopted() {
        b.adopt(ports, pool.clone(), RoundRobin::default())?
    } else {
        b.create(ports, pool.clone(), RoundRobin::default())?
    };
    println!("distributor ready (adoptions {})", d.stats().adoptions);
    d.run(false, |_| !eal.should_quit(), |event| println!("{event:?}"));
    let pause = d.stats().last_adoption_pause_ns;
    let s = d.stop(Duration::from_secs(3));
    let w = &s.workers[0];
    println!(
        "final: pause {:.1} ms; worker enqueued {} taken {} taken back {} in ring {} starts {}; pool in use {}",
        pause as f64 / 1e6,
        w.enqueued,
        w.rx,
        w.taken_back,
        w.ring_count,
        w.starts,
        pool.in_use_count()
    );
    Ok(())
}

fn worker(eal: &Eal) -> Result<(), Box<dyn Error>> {
    let ports = ethdev::ports(eal)?;
    let mut w = Worker::attach(eal, "adopting", 0)?;
    w.set_wait_for_adoption(true);
    println!("worker ready (start {})", w.starts());
    let mut rx = MbufBatch::new();
    while let Some(n) = w.recv(&mut rx) {
        if n > 0 {
            w.tx_burst(&ports[0], &mut rx);
        }
    }
    let s = w.stats();
    println!("worker: rx {} tx {} tx_drop {}", s.rx, s.tx, s.tx_drop);
    Ok(())
}
