//! Pipelines: one process reads the ports and hands packets to worker processes, any of which
//! may crash (DPDK's client_server_mp, F-Stack's `ff_regist_packet_dispatcher`).
//!
//! A [`Distributor`] polls ports and gives each packet to a [`Dispatcher`], which names a
//! worker, drops it, or answers it (the distributor sends the packet, rewritten in place, out of
//! a port). ARP and IPv6 neighbour-discovery frames are copied to every live worker first (as
//! F-Stack does), unless turned off. Each worker has a ring of its own, `<pipeline>_W<id>`
//! unless named otherwise; a [`Worker`] process attaches by id and takes batches from it.
//!
//! ```text
//! ports ─► Distributor ─► Dispatcher ─┬─► ring <name>_W0 ─► Worker 0 ─► tx
//!                                     ├─► ring <name>_W1 ─► Worker 1 ─► tx
//!                                     └─► drop / answer (counted)
//! ```
//!
//! Built-in dispatchers: [`RoundRobin`], [`FlowHash`] (rendezvous hashing of the 5-tuple: a
//! flow stays on its worker while that worker lives, and only a departed worker's flows move),
//! [`DscpPriority`]; or any closure `FnMut(&mut Mbuf, &Ctx<'_>) -> Verdict`, or a type of your
//! own implementing [`Dispatcher`].
//!
//! # Liveness, crashes and restarts
//! Whether a worker lives comes from the group's process table (the liveness lock of the member
//! id it published), never from a heartbeat, so a slow worker is never declared dead; the
//! heartbeat is for display. Every 50 ms the distributor looks at each worker:
//! - a worker that died (SIGKILL at any instruction) or left is taken out of the rotation: its
//!   flows move to the others, and what is left in its ring is taken back into the pool (after
//!   the group reaps the dead process, which undoes a dequeue it left half done and returns the
//!   mbufs it held, by their owner tags); counted as `taken_back`;
//! - a live worker that takes nothing from its non-empty ring for the stall timeout leaves the
//!   rotation (its ring kept for it) until it takes packets again;
//! - a process that attaches with the id of a dead worker takes its place ([`Worker::attach`]
//!   refuses the id of a live one), and is back in the rotation at the next look.
//!
//! A kill of the distributor leaves the rings and their packets; workers see its liveness lock
//! free, drain their rings and leave ([`Worker::recv`] returns `None`), unless they wait for an
//! adopter ([`Worker::set_wait_for_adoption`]): then a new distributor that adopts the pipeline
//! ([`Builder::adopt`], for example in a primary that adopted its dead predecessor's group)
//! takes over its counters and rings, the workers carry on with their rings and what is in
//! them, and the adopter measures the pause (the dead distributor's last received burst to its
//! own first, and what the ports dropped meanwhile). No loop here waits on
//! another process without checking its liveness: [`Distributor::stop`] waits for workers to
//! drain only while they live, and never beyond its timeout.
//!
//! # Conservation
//! The distributor's counters obey `rx + neighbour_copies = enqueued + dropped + answered`
//! (every drop counted by cause, see [`PipelineStats`]), and each worker's
//! `enqueued = rx + taken_back + in its ring`. [`Distributor::stop`] returns the final
//! counters, when both hold with empty rings. Two things a SIGKILL leaves on a worker's line,
//! and where the mbufs go: a worker killed between taking a burst from its ring and counting it
//! leaves up to one burst ([`MAX_BURST`]) out of its `rx`; a worker killed while holding packets
//! it counted but had not sent leaves them counted in `rx`. In both cases the mbufs are in the
//! dead process's hands, and the group's reap returns them to their pool by their owner tags,
//! so the pool's use comes back to zero.
//!
//! # Counters that show themselves
//! The counters live in the memzone `PL_<pipeline>` ([`stats`]); [`list`] finds every pipeline
//! of a group by that name, which is how `shoal info`, `shoal top` and telemetry show a user's
//! own pipeline with no extra code.
//!
//! Why this is our own code: the pieces (rings, mbufs, liveness locks) are the group's shared
//! structures, which no crate knows; the loop is a few hundred lines of policy over them.

pub mod stats;

use std::time::{Duration, Instant};

use stats::{about, bump, ctl, get, wkr, Block};
pub use stats::{list, PipelineStats, PortCounters, WorkerStats, MAX_WORKERS};

use crate::eal::Eal;
use crate::ethdev::{Port, PortId, QueueId};
use crate::mbuf::{Mbuf, MbufBatch, MbufPool, MbufRing, MAX_BURST};
use crate::ring::{RingConfig, SyncMode};
use crate::sync::atomic::Ordering;
use crate::sync::{Backoff, Liveness, MemberId};

/// Errors of building a pipeline or joining one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad pipeline name.
    #[error("pipeline name {0:?} must be 1 to 20 bytes of letters, digits, '_' or '-'")]
    BadName(String),
    /// Worker count out of range.
    #[error("a pipeline has 1 to {MAX_WORKERS} workers, not {0}")]
    BadWorkerCount(usize),
    /// Ring size not a power of two.
    #[error("worker ring size {0} must be a power of two, at least 2")]
    BadRingSize(u32),
    /// No port given.
    #[error("a distributor needs at least one port")]
    NoPorts,
    /// A port id beyond the group's ports.
    #[error("port {0} is beyond the group's {max} port ids", max = stats::MAX_PORTS)]
    BadPort(u16),
    /// The counters' memzone could not be made or found.
    #[error("pipeline {name:?}: {source} (is a distributor of that name running?)")]
    Counters {
        /// The pipeline.
        name: String,
        /// Why.
        source: crate::memzone::Error,
    },
    /// A worker ring could not be made or found.
    #[error("worker ring {name:?}: {source}")]
    Ring {
        /// The ring.
        name: String,
        /// Why.
        source: crate::mbuf::Error,
    },
    /// The distributor did not publish the pipeline in time.
    #[error("pipeline {0:?} exists but its distributor did not finish setting it up")]
    NotReady(String),
    /// The worker id is not one of the pipeline's.
    #[error("worker id {id} is not below the pipeline's {workers} workers")]
    NoSuchWorker {
        /// The id asked for.
        id: usize,
        /// Workers of the pipeline.
        workers: usize,
    },
    /// Another live process is that worker.
    #[error("worker {id} is already running (pid {pid}); stop it first, or pick another id")]
    WorkerRunning {
        /// The id asked for.
        id: usize,
        /// The process running it.
        pid: u64,
    },
    /// The pipeline is stopping.
    #[error("pipeline {0:?} is stopping; start a worker once its distributor runs again")]
    Stopping(String),
    /// Adopting a pipeline whose distributor lives.
    #[error("pipeline {name:?} has a live distributor (pid {pid}); only a dead one's pipeline can be adopted")]
    DistributorRunning {
        /// The pipeline.
        name: String,
        /// The live distributor.
        pid: u64,
    },
    /// Adopting a pipeline of another worker count.
    #[error("pipeline {name:?} has {workers} workers, not {asked}")]
    WorkerCountMismatch {
        /// The pipeline.
        name: String,
        /// Its workers.
        workers: usize,
        /// The count asked for.
        asked: usize,
    },
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to this worker (an id of the pipeline; one that is not live drops it, counted).
    Worker(usize),
    /// Drop it (counted as dropped by the dispatcher).
    Drop,
    /// Send it, as the dispatcher left it, out of this port (on transmit queue 0): an answer
    /// made in place, such as an ARP reply.
    Answer(PortId),
    /// Copy it to every live worker.
    AllWorkers,
    /// No worker can take it (none is live): dropped, counted as such rather than as the
    /// dispatcher's choice.
    NoWorker,
}

/// What a dispatcher sees beside the packet.
#[derive(Debug)]
pub struct Ctx<'a> {
    live: &'a [usize],
    port: PortId,
    workers: usize,
}

impl Ctx<'_> {
    /// Ids of the workers in the rotation now, sorted.
    pub fn live(&self) -> &[usize] {
        self.live
    }

    /// The port the packet came from.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// How many workers the pipeline has (live or not).
    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// Picks a worker for each packet (F-Stack's registered packet dispatcher).
pub trait Dispatcher {
    /// Decides what becomes of `pkt`, which may be rewritten in place (to answer it).
    fn dispatch(&mut self, pkt: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict;
}

impl<F: FnMut(&mut Mbuf, &Ctx<'_>) -> Verdict> Dispatcher for F {
    fn dispatch(&mut self, pkt: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
        self(pkt, ctx)
    }
}

impl Dispatcher for Box<dyn Dispatcher + Send> {
    fn dispatch(&mut self, pkt: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
        (**self).dispatch(pkt, ctx)
    }
}

/// Round robin over the live workers.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl Dispatcher for RoundRobin {
    fn dispatch(&mut self, _: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
        match ctx.live.len() {
            0 => Verdict::NoWorker,
            n => {
                self.next = (self.next + 1) % n;
                Verdict::Worker(ctx.live[self.next])
            }
        }
    }
}

/// The symmetric CRC32C hash of a packet's 5-tuple (0 when it has none): both directions of a
/// flow hash alike.
pub fn flow_hash(data: &[u8]) -> u32 {
    tuple_hash(crate::net::parse_frame(data).ok().as_ref())
}

/// [`flow_hash`] of a parse.
fn tuple_hash(info: Option<&crate::net::PacketInfo>) -> u32 {
    info.and_then(|i| i.tuple)
        .map(|t| t.symmetric().crc_hash(0))
        .unwrap_or(0)
}

/// Parses `pkt` once for every stage after this one: its [`flow_hash`] and packet type go into
/// the mbuf ([`Mbuf::set_flow_hash`], [`Mbuf::set_packet_type`]), where a worker finds them
/// without parsing again. Returns the parse (`None` for a frame too short or malformed to
/// parse, whose flow hash is then 0 and its type left as it was).
pub fn learn(pkt: &mut Mbuf) -> Option<crate::net::PacketInfo> {
    let info = crate::net::parse_frame(pkt.data()).ok();
    if let Some(i) = &info {
        pkt.set_packet_type(i.ptype());
    }
    pkt.set_flow_hash(tuple_hash(info.as_ref()));
    info
}

/// The flow hash of `pkt`: the one an earlier stage stored, or [`learn`]'s.
pub fn flow_hash_of(pkt: &mut Mbuf) -> u32 {
    match pkt.flow_hash() {
        Some(h) => h,
        None => {
            learn(pkt);
            pkt.flow_hash().unwrap_or(0)
        }
    }
}

/// Rendezvous score of a flow on a worker (SplitMix64's finaliser: cheap, well mixed).
fn score(hash: u32, worker: usize) -> u32 {
    let mut x = (hash as u64) << 32 | worker as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    (x ^ (x >> 31)) as u32
}

/// The live worker a flow hash belongs to (rendezvous hashing): a flow stays put while its
/// worker lives, and only a departed worker's flows move. None when nobody is live.
pub fn worker_for_hash(hash: u32, live: &[usize]) -> Option<usize> {
    live.iter().copied().max_by_key(|&w| (score(hash, w), w))
}

/// Flows to workers by their 5-tuple ([`worker_for_hash`] of [`flow_hash`]).
#[derive(Debug, Default)]
pub struct FlowHash;

impl Dispatcher for FlowHash {
    fn dispatch(&mut self, pkt: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
        worker_for_hash(flow_hash_of(pkt), ctx.live).map_or(Verdict::NoWorker, Verdict::Worker)
    }
}

/// Chosen DSCP values to chosen workers (while they live); everything else by flow.
#[derive(Debug, Default, Clone)]
pub struct DscpPriority {
    map: Vec<(u8, usize)>,
}

impl DscpPriority {
    /// Maps each `(dscp, worker)`; DSCP values are 0 to 63.
    pub fn new(map: Vec<(u8, usize)>) -> DscpPriority {
        DscpPriority { map }
    }
}

impl Dispatcher for DscpPriority {
    fn dispatch(&mut self, pkt: &mut Mbuf, ctx: &Ctx<'_>) -> Verdict {
        let info = learn(pkt);
        if let Some(i) = info.filter(|i| i.tuple.is_some()) {
            if let Some(&(_, w)) = self
                .map
                .iter()
                .find(|(d, w)| *d == i.dscp && ctx.live.contains(w))
            {
                return Verdict::Worker(w);
            }
        }
        let hash = pkt.flow_hash().unwrap_or(0);
        worker_for_hash(hash, ctx.live).map_or(Verdict::NoWorker, Verdict::Worker)
    }
}

/// Parses a dispatcher spec: `rr`, `flow`, or `prio:DSCP=WORKER[,DSCP=WORKER...]`, checking
/// that every worker named is below `workers`. The error is one line, for a command line.
pub fn from_spec(spec: &str, workers: usize) -> Result<Box<dyn Dispatcher + Send>, String> {
    match spec {
        "rr" | "round-robin" => Ok(Box::new(RoundRobin::default())),
        "flow" | "hash" => Ok(Box::new(FlowHash)),
        _ => {
            let list = spec.strip_prefix("prio:").ok_or_else(|| {
                format!("unknown dispatcher {spec:?} (rr, flow or prio:DSCP=WORKER,...)")
            })?;
            let mut map = Vec::new();
            for item in list.split(',') {
                let (d, w) = item
                    .split_once('=')
                    .ok_or_else(|| format!("bad priority item {item:?} (DSCP=WORKER)"))?;
                let d: u8 = d
                    .parse()
                    .ok()
                    .filter(|&d| d < 64)
                    .ok_or_else(|| format!("bad DSCP {d:?} (0-63)"))?;
                let w: usize = w.parse().map_err(|_| format!("bad worker {w:?}"))?;
                if w >= workers {
                    return Err(format!(
                        "DSCP {d} goes to worker {w}, but there are {workers} workers (ids 0 to {})",
                        workers.saturating_sub(1)
                    ));
                }
                map.push((d, w));
            }
            Ok(Box::new(DscpPriority::new(map)))
        }
    }
}

/// [`is_neighbour_frame`] of an mbuf, asking its packet type first: ARP, or an IP type that
/// is not ICMPv6, answers without reading the packet (a generator's frames, or a NIC's). A neighbour frame whose type was unknown gets it set, for the stages after this.
pub fn is_neighbour(pkt: &mut Mbuf) -> bool {
    use crate::net::ptype;
    let t = pkt.packet_type();
    if t & ptype::L2_MASK == ptype::L2_ETHER_ARP {
        return true;
    }
    let icmp6 = matches!(t & ptype::L3_MASK, ptype::L3_IPV6 | ptype::L3_IPV6_EXT)
        && t & ptype::L4_MASK == ptype::L4_ICMP;
    // An IP type that is not ICMPv6 is no neighbour frame; without an L3 type, look.
    if t & ptype::L3_MASK != 0 && !icmp6 {
        return false;
    }
    let Some(arp) = neighbour_kind(pkt.data()) else {
        return false;
    };
    if t == 0 {
        pkt.set_packet_type(if arp {
            ptype::L2_ETHER_ARP
        } else {
            ptype::L2_ETHER | ptype::L3_IPV6 | ptype::L4_ICMP
        });
    }
    true
}

/// True for ARP and IPv6 neighbour discovery frames (router/neighbour solicitation and
/// advertisement, redirect) behind up to two VLAN tags: the frames F-Stack copies to every
/// process. A few byte compares, so that round robin needs no full parse.
pub fn is_neighbour_frame(data: &[u8]) -> bool {
    neighbour_kind(data).is_some()
}

/// `Some(true)` for ARP, `Some(false)` for IPv6 neighbour discovery, `None` otherwise.
fn neighbour_kind(data: &[u8]) -> Option<bool> {
    let be16 = |o: usize| data.get(o..o + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut off = 12;
    let mut ethertype = be16(off);
    for _ in 0..2 {
        if matches!(ethertype, Some(0x8100 | 0x88a8)) {
            off += 4;
            ethertype = be16(off);
        }
    }
    let l3 = off + 2;
    match ethertype {
        Some(0x0806) => Some(true),
        // IPv6 whose next header is ICMPv6, of an ND type (133-137).
        Some(0x86dd) => (data.get(l3 + 6) == Some(&58)
            && matches!(data.get(l3 + 40), Some(133..=137)))
        .then_some(false),
        _ => None,
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_owned()))
    }
}

/// The default name of worker `id`'s ring in pipeline `pipeline`.
pub fn ring_name(pipeline: &str, id: usize) -> String {
    format!("{pipeline}_W{id}")
}

/// How to build a distributor ([`Distributor::builder`]).
pub struct Builder<'e> {
    eal: &'e Eal,
    name: String,
    workers: usize,
    ring_size: u32,
    ring_name: Box<dyn Fn(usize) -> String>,
    copy_neighbours: bool,
    stall_timeout: Duration,
    burst: usize,
    backpressure: bool,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("ring_size", &self.ring_size)
            .finish_non_exhaustive()
    }
}

impl Builder<'_> {
    /// Number of workers (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Each worker ring's size, a power of two (default 4096).
    pub fn ring_size(mut self, n: u32) -> Self {
        self.ring_size = n;
        self
    }

    /// Names worker rings (default [`ring_name`]); DPDK's client_server_mp uses
    /// `MProc_Client_RX_<id>`. Workers must be told the same ([`Worker::attach_ring`]).
    pub fn ring_names(mut self, f: impl Fn(usize) -> String + 'static) -> Self {
        self.ring_name = Box::new(f);
        self
    }

    /// Copies ARP and neighbour-discovery frames to every live worker before the dispatcher
    /// sees anything (default true).
    pub fn copy_neighbour_frames(mut self, on: bool) -> Self {
        self.copy_neighbours = on;
        self
    }

    /// How long a live worker may take nothing from its non-empty ring before it leaves the
    /// rotation until it takes packets again (default 1 s).
    pub fn stall_timeout(mut self, d: Duration) -> Self {
        self.stall_timeout = d;
        self
    }

    /// Packets received per port per poll (1 to [`MAX_BURST`], default 32).
    pub fn burst(mut self, n: usize) -> Self {
        self.burst = n.clamp(1, MAX_BURST);
        self
    }

    /// Receives only while every live worker's ring has room for a burst from every port
    /// (default off: a full ring drops, counted, as DPDK's client_server_mp does). The
    /// distributor then forwards what its workers sustain: a generator port produces no more
    /// than that and nothing is dropped; a NIC holds the rest and drops past its own
    /// capacity, counted as its missed packets. While it holds back, a distributor that does
    /// not busy-poll backs off and leaves its CPU to the workers.
    pub fn backpressure(mut self, on: bool) -> Self {
        self.backpressure = on;
        self
    }

    /// Creates the worker rings and the counters and publishes the pipeline. `pool` makes the
    /// neighbour-frame copies. Ports' transmit queue 0 carries answers; give ports one transmit
    /// queue per worker beside it (worker `w` sends on queue `w + 1`, [`Worker::tx_queue`]).
    ///
    /// # Errors
    /// A bad name, count or size; a port id beyond the group's; a pipeline of that name or a
    /// ring that already exists; no room in the group's memory.
    pub fn create<D: Dispatcher>(
        self,
        ports: Vec<Port>,
        pool: MbufPool,
        dispatcher: D,
    ) -> Result<Distributor<D>, Error> {
        self.build(ports, pool, dispatcher, false)
    }

    /// Takes over the pipeline of this name that a dead distributor left (for example in a
    /// primary that adopted its dead predecessor's group, [`Eal::adopted`]): its counters, its
    /// worker rings with what they hold, and its workers, which carry on with their rings if
    /// they wait for an adopter ([`Worker::set_wait_for_adoption`]). The worker count must be
    /// the pipeline's; the ring size and names are the pipeline's (ring names are looked up
    /// with [`Builder::ring_names`]). The adoption is counted, and the pause from the dead
    /// distributor's last received burst to this one's first is measured
    /// ([`PipelineStats::last_adoption_pause_ns`], [`Distributor::take_adoption_pause`]).
    ///
    /// What the dead distributor held when it died (a received burst not yet on the rings) is
    /// returned to the pool by the group's reap, and its counters stay as they were: the
    /// distributor's conservation may be off by up to one burst per port after an adoption.
    ///
    /// # Errors
    /// As [`Builder::create`]; no such pipeline or ring; a pipeline whose distributor lives;
    /// another worker count.
    pub fn adopt<D: Dispatcher>(
        self,
        ports: Vec<Port>,
        pool: MbufPool,
        dispatcher: D,
    ) -> Result<Distributor<D>, Error> {
        self.build(ports, pool, dispatcher, true)
    }

    fn build<D: Dispatcher>(
        self,
        ports: Vec<Port>,
        pool: MbufPool,
        dispatcher: D,
        adopt: bool,
    ) -> Result<Distributor<D>, Error> {
        check_name(&self.name)?;
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(Error::BadWorkerCount(self.workers));
        }
        if self.ring_size < 2 || !self.ring_size.is_power_of_two() {
            return Err(Error::BadRingSize(self.ring_size));
        }
        if ports.is_empty() {
            return Err(Error::NoPorts);
        }
        if let Some(p) = ports.iter().find(|p| p.id().0 as usize >= stats::MAX_PORTS) {
            return Err(Error::BadPort(p.id().0));
        }
        let counters = |source| Error::Counters {
            name: self.name.clone(),
            source,
        };
        let block = if adopt {
            let block = Block::lookup(self.eal, &self.name).map_err(counters)?;
            if !block.ready() {
                return Err(Error::NotReady(self.name.clone()));
            }
            let member = MemberId::from_raw(get(block.ctl(ctl::MEMBER)));
            // Unknown liveness counts as alive: a pipeline is never taken from a distributor
            // that may live (this process's own included).
            if !member.is_none() && self.eal.liveness(member) != Liveness::Dead {
                return Err(Error::DistributorRunning {
                    name: self.name.clone(),
                    pid: get(block.ctl(ctl::PID)),
                });
            }
            if block.num_workers() != self.workers {
                return Err(Error::WorkerCountMismatch {
                    name: self.name.clone(),
                    workers: block.num_workers(),
                    asked: self.workers,
                });
            }
            block
        } else {
            Block::reserve(self.eal, &self.name).map_err(counters)?
        };
        let mut workers = Vec::with_capacity(self.workers);
        for id in 0..self.workers {
            let name = (self.ring_name)(id);
            let rc = RingConfig {
                prod: SyncMode::Sp,
                cons: SyncMode::Sp,
                ..RingConfig::new(self.ring_size)
            };
            let ring = if adopt {
                MbufRing::lookup(self.eal, &name)
            } else {
                MbufRing::create(self.eal, &name, rc)
            }
            .map_err(|source| Error::Ring { name, source })?;
            workers.push(WorkerSlot {
                ring,
                batch: MbufBatch::new(),
                live: false,
                last_rx: 0,
                last_progress: Instant::now(),
                was_stalled: false,
                last_warn: None,
                seen_dead: false,
            });
        }
        // The pause of an adoption is measured from the dead distributor's last burst.
        let pause_from = adopt.then(|| {
            (
                get(block.adopt(stats::adopt::LAST_FWD_NS)),
                get(block.adopt(stats::adopt::PORTS_MISSED)),
            )
        });
        if !adopt {
            bump(block.ctl(ctl::NUM_WORKERS), self.workers as u64);
        }
        block
            .ctl(ctl::MEMBER)
            .store(self.eal.member().raw(), Ordering::Relaxed);
        block
            .ctl(ctl::PID)
            .store(std::process::id() as u64, Ordering::Relaxed);
        if adopt {
            bump(block.adopt(stats::adopt::ADOPTIONS), 1);
            // A distributor killed while stopping had asked the workers to leave; this one
            // runs on.
            block.ctl(ctl::STATE).store(1, Ordering::Release);
        } else {
            block.ctl(ctl::STATE).store(1, Ordering::Relaxed);
            // M (Release): pairs with the Acquire in `Block::ready`: workers and tools that see
            // the magic see the rings and the words above.
            block.ctl(ctl::MAGIC).store(stats::MAGIC, Ordering::Release);
        }
        tracing::debug!(target: "shoal::dispatch", "pipeline {:?}: {} workers, {} ports{}", self.name, self.workers, ports.len(), if adopt { " (adopted)" } else { "" });
        Ok(Distributor {
            eal: self.eal.clone(),
            name: self.name,
            block,
            ports,
            pool,
            dispatcher,
            workers,
            live: Vec::new(),
            copy_neighbours: self.copy_neighbours,
            stall_timeout: self.stall_timeout,
            burst: self.burst,
            backpressure: self.backpressure,
            rx: MbufBatch::new(),
            answers: Vec::new(),
            last_check: None,
            backoff: Backoff::new(),
            pause_from,
            pause: None,
        })
    }
}

/// The distributor's own state about a worker.
struct WorkerSlot {
    ring: MbufRing,
    batch: MbufBatch,
    live: bool,
    last_rx: u64,
    last_progress: Instant,
    was_stalled: bool,
    last_warn: Option<Instant>,
    seen_dead: bool,
}

/// A change the distributor saw in a worker, for the application to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// The worker joined (or came back after a restart).
    Joined {
        /// Worker id.
        id: usize,
        /// Its pid.
        pid: u64,
    },
    /// The worker died: its flows moved to the others.
    Died {
        /// Worker id.
        id: usize,
        /// Its pid.
        pid: u64,
    },
    /// The worker left cleanly.
    Left {
        /// Worker id.
        id: usize,
    },
    /// The worker, alive, took nothing from its non-empty ring for the stall timeout.
    Stalled {
        /// Worker id.
        id: usize,
    },
    /// A stalled worker takes packets again.
    Resumed {
        /// Worker id.
        id: usize,
    },
    /// Packets taken back from a departed worker's ring.
    TakenBack {
        /// Worker id.
        id: usize,
        /// How many.
        packets: u64,
    },
}

/// The distributor side of a pipeline: polls ports and hands packets to worker rings.
pub struct Distributor<D> {
    eal: Eal,
    name: String,
    block: Block,
    ports: Vec<Port>,
    pool: MbufPool,
    dispatcher: D,
    workers: Vec<WorkerSlot>,
    live: Vec<usize>,
    copy_neighbours: bool,
    stall_timeout: Duration,
    burst: usize,
    backpressure: bool,
    rx: MbufBatch,
    answers: Vec<(usize, MbufBatch)>,
    last_check: Option<Instant>,
    backoff: Backoff,
    /// An adopter's starting point of the pause: the dead distributor's last burst (ns) and
    /// the ports' `imissed` then; taken at its first burst.
    pause_from: Option<(u64, u64)>,
    pause: Option<AdoptionPause>,
}

/// The pause of an adoption ([`Builder::adopt`]), as the adopter measured it at its first
/// received burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptionPause {
    /// From the dead distributor's last received burst to the adopter's first.
    pub pause: Duration,
    /// Packets the ports dropped (`imissed`) meanwhile (as the dead distributor last saw
    /// them: up to 50 ms before it died).
    pub ports_missed: u64,
}

impl<D> std::fmt::Debug for Distributor<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor")
            .field("name", &self.name)
            .field("workers", &self.workers.len())
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Distributor<()> {
    /// Starts describing a pipeline named `name` (1 to 20 letters, digits, `_`, `-`).
    pub fn builder<'e>(eal: &'e Eal, name: &str) -> Builder<'e> {
        Builder {
            eal,
            name: name.to_owned(),
            workers: 1,
            ring_size: 4096,
            ring_name: {
                let p = name.to_owned();
                Box::new(move |id| ring_name(&p, id))
            },
            copy_neighbours: true,
            stall_timeout: Duration::from_secs(1),
            burst: 32,
            backpressure: false,
        }
    }
}

impl<D: Dispatcher> Distributor<D> {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ports it reads.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Ids of the workers in the rotation.
    pub fn live(&self) -> &[usize] {
        &self.live
    }

    /// The dispatcher.
    pub fn dispatcher_mut(&mut self) -> &mut D {
        &mut self.dispatcher
    }

    /// Once, after an adopting distributor ([`Builder::adopt`]) received its first burst: the
    /// pause it measured. `None` before that, after it was taken, and for a distributor that
    /// adopted nothing.
    pub fn take_adoption_pause(&mut self) -> Option<AdoptionPause> {
        self.pause.take()
    }

    fn ports_missed(&self) -> u64 {
        self.ports.iter().map(|p| p.stats().imissed).sum()
    }

    /// Records the time of a received burst; the first of an adopter ends its pause.
    fn note_burst(&mut self) {
        let now = crate::eal::monotonic_ns();
        let b = &self.block;
        b.adopt(stats::adopt::LAST_FWD_NS)
            .store(now, Ordering::Relaxed);
        if let Some((last, missed)) = self.pause_from.take() {
            let pause = now.saturating_sub(last);
            let missed = self.ports_missed().saturating_sub(missed);
            b.adopt(stats::adopt::LAST_PAUSE_NS)
                .store(pause, Ordering::Relaxed);
            b.adopt(stats::adopt::LAST_PAUSE_MISSED)
                .store(missed, Ordering::Relaxed);
            // A (Release): a reader that sees this time sees the pause figures above.
            b.adopt(stats::adopt::FIRST_FWD_NS)
                .store(now, Ordering::Release);
            self.pause = Some(AdoptionPause {
                pause: Duration::from_nanos(pause),
                ports_missed: missed,
            });
        }
    }

    /// One round: looks at the workers when 50 ms have passed (their changes go to `events`),
    /// receives a burst from each port and dispatches it. Returns the packets received.
    pub fn poll(&mut self, events: &mut Vec<WorkerEvent>) -> usize {
        if self
            .last_check
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(50))
        {
            self.last_check = Some(Instant::now());
            self.check(events);
        }
        if self.backpressure && !self.room_for_a_round() {
            return 0;
        }
        let mut got = 0;
        for pi in 0..self.ports.len() {
            let n = self.ports[pi].rx_burst(QueueId(0), &mut self.rx, self.burst);
            if n == 0 {
                continue;
            }
            got += n;
            let port = self.ports[pi].id();
            let b = &self.block;
            bump(b.port(port.0 as usize, stats::port::RX), n as u64);
            bump(
                b.port(port.0 as usize, stats::port::RX_BYTES),
                self.rx.iter().map(|m| m.pkt_len() as u64).sum(),
            );
            for mut m in self.rx.drain(..) {
                if self.copy_neighbours && is_neighbour(&mut m) {
                    bump(self.block.ctl(ctl::NEIGH_FRAMES), 1);
                    self.give_all(m);
                    continue;
                }
                let ctx = Ctx {
                    live: &self.live,
                    port,
                    workers: self.workers.len(),
                };
                match self.dispatcher.dispatch(&mut m, &ctx) {
                    Verdict::Worker(w) => self.give_worker(w, m),
                    Verdict::Drop => bump(self.block.ctl(ctl::DROP_BY_DISPATCHER), 1),
                    Verdict::NoWorker => bump(self.block.ctl(ctl::DROP_NO_WORKER), 1),
                    Verdict::AllWorkers => self.give_all(m),
                    Verdict::Answer(p) => self.answer(p, m),
                }
            }
            self.flush();
        }
        if got > 0 {
            self.note_burst();
        }
        got
    }

    /// Polls until `keep_going` returns false, backing off (spin, yield, then short sleeps)
    /// while no packet arrives unless `busy_poll`; worker changes go to `on_event`.
    pub fn run(
        &mut self,
        busy_poll: bool,
        mut keep_going: impl FnMut(&Self) -> bool,
        mut on_event: impl FnMut(&WorkerEvent),
    ) {
        let mut events = Vec::new();
        while keep_going(self) {
            let n = self.poll(&mut events);
            for e in events.drain(..) {
                on_event(&e);
            }
            if n == 0 && !busy_poll {
                self.backoff.snooze();
            } else {
                self.backoff.reset();
            }
        }
    }

    /// Whether there is a live worker and every live worker's ring is at most half full, with
    /// room for a burst from every port (with [`Builder::backpressure`]): half a ring keeps a
    /// worker busy while the distributor catches up, and no ring comes near the usage warning.
    fn room_for_a_round(&self) -> bool {
        let round = (self.burst * self.ports.len()) as u32;
        // Nobody to take packets: they stay where they are.
        !self.live.is_empty()
            && self.live.iter().all(|&w| {
                let r = &self.workers[w].ring;
                r.free_count() >= round.max(r.ring().capacity() / 2)
            })
    }

    fn give_worker(&mut self, w: usize, m: Mbuf) {
        let Some(slot) = self.workers.get_mut(w) else {
            bump(self.block.ctl(ctl::DROP_BAD_VERDICT), 1);
            return;
        };
        if !slot.live {
            bump(self.block.ctl(ctl::DROP_NO_WORKER), 1);
            return;
        }
        if slot.batch.is_full() {
            Self::flush_one(&self.block, w, slot);
        }
        if let Err(m) = slot.batch.push(m) {
            drop(m);
            bump(self.block.about(w, about::DROP_FULL), 1);
        }
    }

    fn give_all(&mut self, m: Mbuf) {
        let Some((&last, rest)) = self.live.split_last() else {
            bump(self.block.ctl(ctl::DROP_NO_WORKER), 1);
            return;
        };
        for i in 0..rest.len() {
            let w = self.live[i];
            match m.copy(&self.pool, 0, m.pkt_len()) {
                Some(copy) => {
                    bump(self.block.ctl(ctl::NEIGH_COPIES), 1);
                    self.give_worker(w, copy);
                }
                None => bump(self.block.ctl(ctl::COPY_FAIL), 1),
            }
        }
        self.give_worker(last, m);
    }

    fn answer(&mut self, p: PortId, m: Mbuf) {
        let Some(pi) = self.ports.iter().position(|x| x.id() == p) else {
            bump(self.block.ctl(ctl::ANSWER_FAIL), 1);
            return;
        };
        let i = match self.answers.iter().position(|(x, _)| *x == pi) {
            Some(i) => i,
            None => {
                self.answers.push((pi, MbufBatch::new()));
                self.answers.len() - 1
            }
        };
        if self.answers[i].1.is_full() {
            self.flush_answers();
        }
        if let Err(m) = self.answers[i].1.push(m) {
            drop(m);
            bump(self.block.ctl(ctl::ANSWER_FAIL), 1);
        }
    }

    fn flush_answers(&mut self) {
        for (pi, batch) in &mut self.answers {
            if batch.is_empty() {
                continue;
            }
            let want = batch.len();
            let sent = self.ports[*pi].tx_burst(QueueId(0), batch);
            bump(self.block.ctl(ctl::ANSWERED), sent as u64);
            if sent < want {
                bump(self.block.ctl(ctl::ANSWER_FAIL), (want - sent) as u64);
                batch.clear();
            }
        }
    }

    fn flush_one(block: &Block, w: usize, slot: &mut WorkerSlot) {
        if slot.batch.is_empty() {
            return;
        }
        let n = slot.batch.len();
        let bytes: u64 = slot.batch.iter().map(|m| m.pkt_len() as u64).sum();
        let sent = slot.ring.enqueue_burst(&mut slot.batch);
        // What stayed in the batch did not fit: its bytes are the tail's.
        let left: u64 = slot.batch.iter().map(|m| m.pkt_len() as u64).sum();
        bump(block.about(w, about::ENQUEUED), sent as u64);
        bump(block.about(w, about::ENQUEUED_BYTES), bytes - left);
        if sent < n {
            bump(block.about(w, about::DROP_FULL), (n - sent) as u64);
            slot.batch.clear();
        }
        let (count, cap) = (slot.ring.count(), slot.ring.ring().capacity());
        if count as u64 * 10 > cap as u64 * 9
            && slot
                .last_warn
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            slot.last_warn = Some(Instant::now());
            bump(block.about(w, about::WARNINGS), 1);
            tracing::warn!(target: "shoal::dispatch", "worker {w} ring usage {:.1}% ({count}/{cap})", 100.0 * count as f64 / cap as f64);
        }
    }

    /// Moves every pending batch onto its ring, and sends pending answers.
    pub fn flush(&mut self) {
        for (w, slot) in self.workers.iter_mut().enumerate() {
            Self::flush_one(&self.block, w, slot);
        }
        self.flush_answers();
    }

    /// Looks at every worker now and updates the rotation (see the module doc): liveness from
    /// the process table, stalls from progress, take-back of departed workers' rings; changes
    /// go to `events`. [`Distributor::poll`] does it every 50 ms; call it alone to wait for
    /// workers before receiving anything.
    pub fn check(&mut self, events: &mut Vec<WorkerEvent>) {
        let missed = self.ports_missed();
        self.block
            .adopt(stats::adopt::PORTS_MISSED)
            .store(missed, Ordering::Relaxed);
        let mut changed = false;
        let b = &self.block;
        for (id, slot) in self.workers.iter_mut().enumerate() {
            // S (Acquire): pairs with the worker's release store of STATE: its pid and member
            // id are those of the process that set it.
            let state = b.worker(id, wkr::STATE).load(Ordering::Acquire);
            let member = MemberId::from_raw(get(b.worker(id, wkr::MEMBER)));
            let pid = get(b.worker(id, wkr::PID));
            // Unknown liveness counts as alive: a ring is never taken from a process that may live.
            let alive = !member.is_none() && self.eal.liveness(member) != Liveness::Dead;
            let running = state == 1 && alive;
            let rx = get(b.worker(id, wkr::RX));
            let queued = slot.ring.count();
            if rx != slot.last_rx || queued == 0 || !running {
                slot.last_rx = rx;
                slot.last_progress = Instant::now();
            }
            let stalled = running && slot.last_progress.elapsed() >= self.stall_timeout;
            let in_rotation = running && !stalled;
            b.about(id, about::STALLED)
                .store(stalled as u64, Ordering::Relaxed);
            if in_rotation && !slot.live {
                events.push(if slot.was_stalled {
                    WorkerEvent::Resumed { id }
                } else {
                    WorkerEvent::Joined { id, pid }
                });
                slot.live = true;
                slot.was_stalled = false;
                slot.seen_dead = false;
                changed = true;
            } else if !in_rotation && slot.live {
                slot.live = false;
                changed = true;
                if stalled {
                    slot.was_stalled = true;
                    events.push(WorkerEvent::Stalled { id });
                } else if state == 1 {
                    events.push(WorkerEvent::Died { id, pid });
                } else {
                    events.push(WorkerEvent::Left { id });
                }
            }
            let departed = !running;
            if departed && state == 1 && !alive && !slot.seen_dead {
                // A dead worker's side of its ring is taken over once the group reaps it (which
                // undoes a dequeue it left half done and returns what it held).
                slot.seen_dead = true;
                self.eal.reap_dead();
            }
            if departed && queued > 0 {
                if !alive {
                    self.eal.reap_dead();
                }
                let n = take_back(&slot.ring);
                if n > 0 {
                    bump(b.about(id, about::TAKEN_BACK), n);
                    events.push(WorkerEvent::TakenBack { id, packets: n });
                }
            }
            b.about(id, about::LIVE)
                .store(slot.live as u64, Ordering::Relaxed);
        }
        if changed {
            self.live.clear();
            self.live.extend(
                self.workers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.live)
                    .map(|(i, _)| i),
            );
        }
    }

    /// The pipeline's counters now.
    pub fn stats(&self) -> PipelineStats {
        let mut s = PipelineStats::read(&self.eal, &self.name, &self.block);
        for (w, slot) in s.workers.iter_mut().zip(&self.workers) {
            w.ring_count = slot.ring.count() as u64;
        }
        s
    }

    /// Stops: no more reception; asks workers to drain their rings and leave, waits for them
    /// while they live and at most `drain`; then takes back what is left (of workers that
    /// died meanwhile too). Returns the final counters, whose conservation holds
    /// ([`PipelineStats::unaccounted`] is 0 and every ring is empty).
    pub fn stop(mut self, drain: Duration) -> PipelineStats {
        self.flush();
        self.block.ctl(ctl::STATE).store(2, Ordering::Release);
        let deadline = Instant::now() + drain;
        let b = &self.block;
        while Instant::now() < deadline {
            // Each round asks the process table again: a worker that dies while draining
            // ends the wait for it.
            let busy = (0..self.workers.len()).any(|w| {
                b.worker(w, wkr::STATE).load(Ordering::Acquire) == 1
                    && self
                        .eal
                        .liveness(MemberId::from_raw(get(b.worker(w, wkr::MEMBER))))
                        != Liveness::Dead
            });
            if !busy {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.eal.reap_dead();
        for (w, slot) in self.workers.iter().enumerate() {
            let n = take_back(&slot.ring);
            bump(b.about(w, about::TAKEN_BACK), n);
            b.about(w, about::LIVE).store(0, Ordering::Relaxed);
        }
        b.ctl(ctl::STATE).store(3, Ordering::Release);
        self.stats()
    }
}

/// Takes back what is left in a departed worker's ring, on a handle of its own whose claim on
/// the ring's consumer side is released on return, so that the worker can claim it again when
/// it comes back.
fn take_back(ring: &MbufRing) -> u64 {
    let ring = ring.clone();
    let mut b = MbufBatch::new();
    let mut n = 0;
    loop {
        let got = ring.dequeue_burst(&mut b, MAX_BURST);
        if got == 0 {
            return n;
        }
        n += got as u64;
        b.clear();
    }
}

/// The worker side of a pipeline: takes batches from its ring, sends or frees them.
#[derive(Debug)]
pub struct Worker {
    eal: Eal,
    id: usize,
    pipeline: String,
    block: Block,
    ring: MbufRing,
    busy_poll: bool,
    backoff: Backoff,
    iter: u64,
    draining: bool,
    left: bool,
    wait_for_adoption: bool,
}

impl Worker {
    /// Joins pipeline `pipeline` as worker `id`, on the ring the distributor names by default
    /// ([`ring_name`]). Waits up to two seconds for a distributor that is still setting up.
    ///
    /// # Errors
    /// No such pipeline, a distributor that never finished setting up, an id beyond the
    /// pipeline's workers, an id a live process already runs, a pipeline that is stopping.
    pub fn attach(eal: &Eal, pipeline: &str, id: usize) -> Result<Worker, Error> {
        Self::attach_ring(eal, pipeline, id, &ring_name(pipeline, id))
    }

    /// [`Worker::attach`] on a ring of another name (see [`Builder::ring_names`]).
    ///
    /// # Errors
    /// As [`Worker::attach`], or no ring of that name.
    pub fn attach_ring(eal: &Eal, pipeline: &str, id: usize, ring: &str) -> Result<Worker, Error> {
        check_name(pipeline)?;
        let block = Block::lookup(eal, pipeline).map_err(|source| Error::Counters {
            name: pipeline.to_owned(),
            source,
        })?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while !block.ready() {
            if Instant::now() >= deadline {
                return Err(Error::NotReady(pipeline.to_owned()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let workers = block.num_workers();
        if id >= workers {
            return Err(Error::NoSuchWorker { id, workers });
        }
        if get(block.ctl(ctl::STATE)) >= 2 {
            return Err(Error::Stopping(pipeline.to_owned()));
        }
        let other = MemberId::from_raw(get(block.worker(id, wkr::MEMBER)));
        if block.worker(id, wkr::STATE).load(Ordering::Acquire) == 1
            && !other.is_none()
            && other != eal.member()
            && eal.liveness(other) != Liveness::Dead
        {
            return Err(Error::WorkerRunning {
                id,
                pid: get(block.worker(id, wkr::PID)),
            });
        }
        let ring = MbufRing::lookup(eal, ring).map_err(|source| Error::Ring {
            name: ring.to_owned(),
            source,
        })?;
        bump(block.worker(id, wkr::STARTS), 1);
        block
            .worker(id, wkr::PID)
            .store(std::process::id() as u64, Ordering::Relaxed);
        block
            .worker(id, wkr::MEMBER)
            .store(eal.member().raw(), Ordering::Relaxed);
        block
            .worker(id, wkr::HEARTBEAT)
            .store(crate::eal::monotonic_ns(), Ordering::Relaxed);
        // S (Release): pairs with the distributor's Acquire load of STATE.
        block.worker(id, wkr::STATE).store(1, Ordering::Release);
        tracing::debug!(target: "shoal::dispatch", "pipeline {pipeline:?}: worker {id} attached");
        Ok(Worker {
            eal: eal.clone(),
            id,
            pipeline: pipeline.to_owned(),
            block,
            ring,
            busy_poll: false,
            backoff: Backoff::new(),
            iter: 0,
            draining: false,
            left: false,
            wait_for_adoption: false,
        })
    }

    /// Polls without idle back-off (benchmarks); by default an idle worker spins, yields, then
    /// sleeps briefly.
    pub fn set_busy_poll(&mut self, on: bool) {
        self.busy_poll = on;
    }

    /// With `on`, a dead distributor does not end the worker: it keeps its ring (and what
    /// is in it) and carries on with the distributor that adopts the pipeline
    /// ([`Builder::adopt`]). How long to wait for one is the application's choice: for
    /// example a secondary with a `--primary-grace` whose distributor is its primary sees
    /// [`Eal::should_quit`] when the grace passes. Off by default: a worker drains its ring
    /// and leaves once its distributor is dead.
    pub fn set_wait_for_adoption(&mut self, on: bool) {
        self.wait_for_adoption = on;
    }

    /// This worker's id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The transmit queue this worker sends on (`id + 1`; queue 0 is the distributor's).
    pub fn tx_queue(&self) -> QueueId {
        QueueId(self.id as u16 + 1)
    }

    /// Times a process has started as this worker (1 for the first).
    pub fn starts(&self) -> u64 {
        get(self.block.worker(self.id, wkr::STARTS))
    }

    /// Appends up to a burst of packets to `batch` and returns how many (0 when none came:
    /// the call has backed off a little). Returns `None` once the worker should leave and its
    /// ring is empty: the distributor stopped the pipeline or died (unless the worker waits for
    /// an adopter, [`Worker::set_wait_for_adoption`]), or this process was asked to quit
    /// ([`Eal::should_quit`]).
    pub fn recv(&mut self, batch: &mut MbufBatch) -> Option<usize> {
        if self.left {
            return None;
        }
        self.iter += 1;
        let b = &self.block;
        if self.iter.is_multiple_of(64) || self.backoff.is_sleeping() {
            b.worker(self.id, wkr::HEARTBEAT)
                .store(crate::eal::monotonic_ns(), Ordering::Relaxed);
        }
        if !self.draining
            && (self.eal.should_quit()
                || get(b.ctl(ctl::STATE)) >= 2
                || (self.backoff.is_sleeping()
                    && !self.wait_for_adoption
                    && !self.distributor_alive()))
        {
            self.draining = true;
        }
        let n = self.ring.dequeue_burst(batch, MAX_BURST);
        if n == 0 {
            if self.draining {
                self.leave();
                return None;
            }
            if !self.busy_poll {
                self.backoff.snooze();
            }
            return Some(0);
        }
        self.backoff.reset();
        bump(b.worker(self.id, wkr::RX), n as u64);
        let tail = batch.len() - n;
        bump(
            b.worker(self.id, wkr::RX_BYTES),
            batch.as_slice()[tail..]
                .iter()
                .map(|m| m.pkt_len() as u64)
                .sum(),
        );
        Some(n)
    }

    /// True while the distributor's process lives (unknown counts as alive).
    pub fn distributor_alive(&self) -> bool {
        let m = MemberId::from_raw(get(self.block.ctl(ctl::MEMBER)));
        m.is_none() || self.eal.liveness(m) != Liveness::Dead
    }

    /// Sends `batch` out of `port` on [`Worker::tx_queue`]; what the port does not take is
    /// freed and counted as a transmit drop. Returns the packets sent.
    pub fn tx_burst(&mut self, port: &Port, batch: &mut MbufBatch) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let want = batch.len();
        let bytes: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
        let sent = port.tx_burst(self.tx_queue(), batch);
        let left: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
        let b = &self.block;
        bump(b.worker(self.id, wkr::TX), sent as u64);
        bump(b.worker(self.id, wkr::TX_BYTES), bytes - left);
        if sent < want {
            bump(b.worker(self.id, wkr::TX_DROP), (want - sent) as u64);
            batch.clear();
        }
        sent
    }

    /// Counts `n` packets this worker dropped by its own choice (freeing them is the caller's
    /// drop of the mbufs), so that the pipeline's counters still add up.
    pub fn count_dropped(&mut self, n: u64) {
        bump(self.block.worker(self.id, wkr::TX_DROP), n);
    }

    /// Leaves the pipeline cleanly (also done on drop): the distributor takes the worker out
    /// of the rotation, and the id is free for another process.
    pub fn leave(&mut self) {
        if !self.left {
            self.left = true;
            self.block
                .worker(self.id, wkr::STATE)
                .store(2, Ordering::Release);
            tracing::debug!(target: "shoal::dispatch", "pipeline {:?}: worker {} left", self.pipeline, self.id);
        }
    }

    /// This worker's counters now.
    pub fn stats(&self) -> WorkerStats {
        let mut s = PipelineStats::read(&self.eal, &self.pipeline, &self.block);
        s.workers.swap_remove(self.id)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests;
