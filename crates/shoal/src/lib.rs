//! shoal: DPDK's multi-process packet-processing model, in Rust.
//!
//! A *primary* process creates a group's shared memory and named objects; *secondary* processes
//! attach to it and find those objects by name. Packets move between the processes of a group
//! through lock-free rings, without copies.
//!
//! | DPDK                         | shoal                     |
//! |------------------------------|---------------------------|
//! | `rte_eal_init`, EAL options  | [`eal::Eal`]              |
//! | the EAL's per-process state  | [`group::Group`]          |
//! | `rte_memzone_*`              | [`memzone::Memzone`]      |
//! | `rte_ring_*`                 | [`ring::Ring`]            |
//! | `rte_mempool_*`              | [`mempool::Mempool`]      |
//! | `rte_mbuf`, `rte_pktmbuf_*`  | [`mbuf`]                  |
//! | `rte_mp_*` (IPC)             | [`mp`]                    |
//! | `rte_eth_*`, vdev drivers    | [`ethdev`]                |
//! | `rte_ether_hdr`, hashes      | [`net`]                   |
//! | telemetry                    | [`telemetry`]             |
//! | `rte_dev_probe`/`rte_dev_remove` from any process (hotplug_mp) | [`hotplug`] |
//! | client_server_mp, F-Stack's packet dispatcher | [`dispatch`] |
//!
//! The modules import only downward: `sys` < `sync` < `memory` < `mp` < `group` < `memzone` <
//! `ring`, `mempool` < `mbuf` < `ethdev` < `pdump`, `hotplug` < `eal` < `telemetry` (`net` stands apart; `fault`,
//! the fault-injection sites, sits on `sys`).
//! A lower layer reaches a higher one only through what the higher one registered with the
//! [`group::Group`] (reclaimers, the pools' object kinds).
//!
//! Nothing in shared memory holds a raw pointer: shared structures refer to each other by
//! offset, so every process may map a group's memory wherever the kernel puts it (ASLR stays on).
//!
//! # Quick start: a two-process pipeline with your own dispatcher
//!
//! With `shoal = { path = "…/crates/shoal" }` in `Cargo.toml`, one program can be both sides:
//! the primary reads the ports and dispatches, each secondary is a worker. Run it as
//! `app --file-prefix demo -- distributor`, then `app --file-prefix demo -l 1
//! --proc-type=secondary -- worker 0` (and `worker 1`). With no `--vdev`, the ports are two
//! traffic generators. `shoal top --file-prefix demo` shows the pipeline live.
//!
//! ```no_run
//! use shoal::dispatch::{Ctx, Distributor, Verdict, Worker};
//! use shoal::ethdev::{self, PortConf};
//! use shoal::mbuf::{Mbuf, MbufBatch, MbufPool};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (eal, args) = shoal::eal::init_or_exit("app [EAL options] -- distributor | worker ID");
//!     if args.get(1).map(String::as_str) == Some("distributor") {
//!         let pool = MbufPool::create(&eal, "mbuf_pool", 8191, 256, 0, 2048 + 128)?;
//!         let conf = PortConf { tx_queues: Some(3), pool: Some(pool.clone()), ..Default::default() };
//!         let ports = ethdev::ports_with(&eal, &conf)?;
//!         // Your dispatcher: a closure (or any type implementing `Dispatcher`).
//!         let by_port = |m: &mut Mbuf, ctx: &Ctx<'_>| match ctx.live() {
//!             [] => Verdict::Drop,
//!             live => Verdict::Worker(live[m.pkt_len() as usize % live.len()]),
//!         };
//!         let mut d = Distributor::builder(&eal, "demo").workers(2).create(ports, pool, by_port)?;
//!         d.run(false, |_| !eal.should_quit(), |event| println!("{event:?}"));
//!         let stats = d.stop(std::time::Duration::from_secs(3));
//!         println!("received {} dropped {}", stats.rx, stats.dropped());
//!     } else {
//!         let id: usize = args.get(2).ok_or("worker needs an id")?.parse()?;
//!         let ports = ethdev::ports(&eal)?;
//!         let mut w = Worker::attach(&eal, "demo", id)?;
//!         let mut batch = MbufBatch::new();
//!         // Batches until the distributor stops (or dies) and the ring is drained.
//!         while let Some(_) = w.recv(&mut batch) {
//!             w.tx_burst(&ports[0], &mut batch);
//!         }
//!     }
//!     Ok(())
//! }
//! ```

pub mod dispatch;
pub mod eal;
pub mod ethdev;
// The fault-injection sites: for the library's own crash tests and the workspace's tools.
#[doc(hidden)]
pub mod fault;
pub mod group;
pub mod hotplug;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod memzone;
pub mod mp;
pub mod net;
pub mod pdump;
pub mod ring;
pub mod sync;
pub(crate) mod sys;
pub mod telemetry;
