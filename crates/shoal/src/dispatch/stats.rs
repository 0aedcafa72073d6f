//! A pipeline's counters: one memzone `PL_<name>` of cache-line counter lines, one writer per
//! line (DPDK's client_server_mp keeps each writer's statistics in cache lines of its own), and
//! the registry that finds every pipeline of a group by that name, so that `shoal info`,
//! `shoal top` and telemetry show any pipeline built with [`super::Distributor`].
//!
//! | line | written by | holds |
//! |------|------------|-------|
//! | control | the distributor | magic, state, worker count, drops by cause, copies, answers |
//! | port `p` | the distributor | packets and bytes received from port `p`, answers sent on it |
//! | worker `w`, own | worker `w` | heartbeat, pid, member id, rx, tx, tx drops, starts, state |
//! | worker `w`, about | the distributor | enqueued, ring-full drops, taken back, live, stalled |
//! | adoption | the distributor | last forwarded burst, ports' `imissed`, adoptions and their pauses |
//!
//! Counters are bumped with a relaxed load and store (one writer per line) and read with a
//! relaxed load: statistics, not synchronisation. Two edges synchronise:
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | M | distributor stores `MAGIC` last | [`super::Worker::attach`], [`list`] | the rings and the configuration words |
//! | S | worker stores `STATE` = running | distributor's liveness check | the worker's pid and member id |
//! | A | adopter stores its first burst's time | [`PipelineStats`] reads | the pause figures of that adoption |
//!
//! A kill leaves counters as they were: a counter is one word, and nothing else depends on it.
#![allow(unsafe_code)] // declares the counter lines Shared (atomics only)

use serde::Serialize;

use crate::eal::Eal;
use crate::memory::Region;
use crate::memzone::{self, Memzone};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{CachePadded, Liveness, MemberId};

/// Counters per line.
pub(crate) const PER_LINE: usize = 16;
/// One line of counters, one writer each.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
struct Counters([AtomicU64; PER_LINE]);

// SAFETY: repr(C), atomics only: every bit pattern is valid and all writes are atomic.
unsafe impl crate::sync::Shared for Counters {}

impl Counters {
    fn at(&self, i: usize) -> &AtomicU64 {
        &self.0[i]
    }
}

type Line = CachePadded<Counters>;

/// Most workers a pipeline has.
pub const MAX_WORKERS: usize = 64;
/// Most ports a pipeline reads (one line per port id of the group).
pub const MAX_PORTS: usize = crate::ethdev::MAX_PORTS;
/// Prefix of a pipeline's statistics memzone.
pub const MEMZONE_PREFIX: &str = "PL_";
pub(crate) const MAGIC: u64 = 0x5348_4f41_4c50_4c32; // "SHOALPL2"

/// Control line (distributor-written).
pub(crate) mod ctl {
    pub const MAGIC: usize = 0;
    pub const NUM_WORKERS: usize = 1;
    /// 1 running, 2 stopping (workers drain and leave), 3 stopped.
    pub const STATE: usize = 2;
    pub const MEMBER: usize = 3;
    pub const PID: usize = 4;
    pub const DROP_NO_WORKER: usize = 5;
    pub const NEIGH_FRAMES: usize = 6;
    pub const NEIGH_COPIES: usize = 7;
    pub const COPY_FAIL: usize = 8;
    pub const DROP_BY_DISPATCHER: usize = 9;
    pub const ANSWERED: usize = 10;
    pub const ANSWER_FAIL: usize = 11;
    pub const DROP_BAD_VERDICT: usize = 12;
}

/// Port line (distributor-written).
pub(crate) mod port {
    pub const RX: usize = 0;
    pub const RX_BYTES: usize = 1;
}

/// A worker's own line.
pub(crate) mod wkr {
    pub const HEARTBEAT: usize = 0;
    pub const PID: usize = 1;
    pub const MEMBER: usize = 2;
    pub const RX: usize = 3;
    pub const RX_BYTES: usize = 4;
    pub const TX: usize = 5;
    pub const TX_BYTES: usize = 6;
    pub const TX_DROP: usize = 7;
    pub const STARTS: usize = 8;
    /// 0 never started, 1 running, 2 left cleanly.
    pub const STATE: usize = 9;
}

/// The distributor's line about a worker.
pub(crate) mod about {
    pub const ENQUEUED: usize = 0;
    pub const ENQUEUED_BYTES: usize = 1;
    pub const DROP_FULL: usize = 2;
    pub const TAKEN_BACK: usize = 3;
    pub const LIVE: usize = 4;
    pub const STALLED: usize = 5;
    pub const WARNINGS: usize = 6;
}

/// The adoption line (distributor-written): what an adopting distributor measures its pause
/// from, and what it measured.
pub(crate) mod adopt {
    /// When the distributor last received a burst (monotonic ns).
    pub const LAST_FWD_NS: usize = 0;
    /// The ports' `imissed` total, as the distributor last saw it (every 50 ms).
    pub const PORTS_MISSED: usize = 1;
    /// Times a distributor adopted the pipeline.
    pub const ADOPTIONS: usize = 2;
    /// The last adoption's pause: the dead distributor's last burst to the adopter's first.
    pub const LAST_PAUSE_NS: usize = 3;
    /// Packets the ports dropped (`imissed`) during that pause.
    pub const LAST_PAUSE_MISSED: usize = 4;
    /// When the last adopter received its first burst (monotonic ns); stored last (Release).
    pub const FIRST_FWD_NS: usize = 5;
}

pub(crate) const CTL_LINE: usize = 0;
pub(crate) const fn port_line(p: usize) -> usize {
    1 + p
}
pub(crate) const fn worker_line(w: usize) -> usize {
    1 + MAX_PORTS + 2 * w
}
pub(crate) const fn about_line(w: usize) -> usize {
    2 + MAX_PORTS + 2 * w
}
pub(crate) const ADOPT_LINE: usize = 1 + MAX_PORTS + 2 * MAX_WORKERS;
pub(crate) const LINES: usize = ADOPT_LINE + 1;

/// Adds to a counter this process alone writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    // One writer per line: a relaxed load and store, no read-modify-write.
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[inline]
pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A view of a pipeline's counter block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    region: Region,
}

impl Block {
    pub(crate) fn memzone_name(pipeline: &str) -> String {
        format!("{MEMZONE_PREFIX}{pipeline}")
    }

    pub(crate) fn reserve(eal: &Eal, pipeline: &str) -> Result<Block, memzone::Error> {
        // Aligned as a line is (`CachePadded` may align beyond the default cache line).
        let mz = Memzone::reserve_aligned(
            eal,
            &Self::memzone_name(pipeline),
            LINES * std::mem::size_of::<Line>(),
            std::mem::align_of::<Line>(),
        )?;
        Self::from_memzone(&mz).ok_or(memzone::Error::NotFound(mz.name().to_owned()))
    }

    pub(crate) fn lookup(eal: &Eal, pipeline: &str) -> Result<Block, memzone::Error> {
        let mz = Memzone::lookup(eal, &Self::memzone_name(pipeline))?;
        Self::from_memzone(&mz).ok_or(memzone::Error::NotFound(mz.name().to_owned()))
    }

    /// The block of a memzone long enough and aligned for every line, so that
    /// [`Block::line`] never fails.
    fn from_memzone(mz: &Memzone) -> Option<Block> {
        let region = mz.region();
        let fits = mz.len() >= LINES * std::mem::size_of::<Line>()
            && region.get::<Line>(0).is_some()
            && region
                .get::<Line>((LINES - 1) * std::mem::size_of::<Line>())
                .is_some();
        fits.then(|| Block {
            region: region.clone(),
        })
    }

    fn line(&self, i: usize) -> &Line {
        // Indices are ours (below LINES); length and alignment were checked when the block
        // was made.
        self.region
            .get(i * std::mem::size_of::<Line>())
            .expect("counter line inside its block")
    }

    pub(crate) fn ctl(&self, i: usize) -> &AtomicU64 {
        self.line(CTL_LINE).at(i)
    }
    pub(crate) fn port(&self, p: usize, i: usize) -> &AtomicU64 {
        self.line(port_line(p)).at(i)
    }
    pub(crate) fn worker(&self, w: usize, i: usize) -> &AtomicU64 {
        self.line(worker_line(w)).at(i)
    }
    pub(crate) fn about(&self, w: usize, i: usize) -> &AtomicU64 {
        self.line(about_line(w)).at(i)
    }
    pub(crate) fn adopt(&self, i: usize) -> &AtomicU64 {
        self.line(ADOPT_LINE).at(i)
    }

    /// True once the distributor has published the pipeline.
    pub(crate) fn ready(&self) -> bool {
        // M (Acquire): pairs with the distributor's release store of the magic.
        self.ctl(ctl::MAGIC).load(Ordering::Acquire) == MAGIC
    }

    pub(crate) fn num_workers(&self) -> usize {
        (get(self.ctl(ctl::NUM_WORKERS)) as usize).min(MAX_WORKERS)
    }
}

/// One worker's counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WorkerStats {
    /// Worker id.
    pub id: usize,
    /// Pid of the process that last ran it (0 when none has).
    pub pid: u64,
    /// Whether that process lives (its liveness lock), `unknown` when it cannot be told.
    pub liveness: String,
    /// True while the distributor hands it packets.
    pub live: bool,
    /// True while it is alive but takes nothing from its non-empty ring.
    pub stalled: bool,
    /// Times a process started as this worker.
    pub starts: u64,
    /// Packets the distributor put on its ring.
    pub enqueued: u64,
    /// Bytes the distributor put on its ring.
    pub enqueued_bytes: u64,
    /// Packets dropped because its ring was full.
    pub drop_ring_full: u64,
    /// Packets taken back from its ring after it died or left.
    pub taken_back: u64,
    /// Packets it took from its ring.
    pub rx: u64,
    /// Bytes it took from its ring.
    pub rx_bytes: u64,
    /// Packets it sent.
    pub tx: u64,
    /// Bytes it sent.
    pub tx_bytes: u64,
    /// Packets a port would not take from it (freed, counted).
    pub tx_drop: u64,
    /// Packets in its ring now.
    pub ring_count: u64,
    /// Milliseconds since its last heartbeat (`None` when it never beat).
    pub heartbeat_age_ms: Option<u64>,
}

/// One port's counters as the distributor saw them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PortCounters {
    /// Port id.
    pub port: usize,
    /// Packets received.
    pub rx: u64,
    /// Bytes received.
    pub rx_bytes: u64,
}

/// A pipeline's counters, and the conservation they obey.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PipelineStats {
    /// Pipeline name.
    pub name: String,
    /// `running`, `stopping` or `stopped`.
    pub state: String,
    /// Distributor pid.
    pub distributor_pid: u64,
    /// Whether the distributor lives.
    pub distributor_liveness: String,
    /// Packets received from the ports.
    pub rx: u64,
    /// Bytes received from the ports.
    pub rx_bytes: u64,
    /// Per port.
    pub ports: Vec<PortCounters>,
    /// ARP and neighbour-discovery frames seen (copied to every live worker).
    pub neighbour_frames: u64,
    /// Copies made of them beyond the first.
    pub neighbour_copies: u64,
    /// Copies that could not be made (pool empty).
    pub copy_fail: u64,
    /// Packets dropped because no worker was live.
    pub drop_no_worker: u64,
    /// Packets the dispatcher chose to drop.
    pub drop_by_dispatcher: u64,
    /// Packets sent to a worker id the pipeline does not have (dropped).
    pub drop_bad_verdict: u64,
    /// Packets the dispatcher answered (sent out of a port by the distributor).
    pub answered: u64,
    /// Answers the port would not take (dropped).
    pub answer_fail: u64,
    /// Times a distributor adopted the pipeline after the previous one died
    /// ([`super::Builder::adopt`]).
    pub adoptions: u64,
    /// The last adoption's pause, in ns: from the dead distributor's last received burst to
    /// the adopter's first.
    pub last_adoption_pause_ns: u64,
    /// Packets the ports dropped (`imissed`) during that pause.
    pub last_adoption_ports_missed: u64,
    /// When the last adopter received its first burst (monotonic ns, [`crate::eal::monotonic_ns`]),
    /// 0 before that.
    pub adopted_first_burst_ns: u64,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
}

impl PipelineStats {
    /// Packets put on worker rings.
    pub fn enqueued(&self) -> u64 {
        self.workers.iter().map(|w| w.enqueued).sum()
    }

    /// Every drop, whatever its cause, of a packet the distributor held.
    pub fn dropped(&self) -> u64 {
        self.drop_no_worker
            + self.drop_by_dispatcher
            + self.drop_bad_verdict
            + self.answer_fail
            + self.workers.iter().map(|w| w.drop_ring_full).sum::<u64>()
    }

    /// Packets unaccounted for on the distributor's side: `rx + copies - enqueued - dropped -
    /// answered`. Zero whenever the distributor is between two bursts (and always after
    /// [`super::Distributor::stop`]).
    pub fn unaccounted(&self) -> i64 {
        (self.rx + self.neighbour_copies) as i64
            - (self.enqueued() + self.dropped() + self.answered) as i64
    }

    pub(crate) fn read(eal: &Eal, name: &str, b: &Block) -> PipelineStats {
        let live = |raw: u64| match MemberId::from_raw(raw) {
            m if m.is_none() => "none".to_string(),
            m => match eal.liveness(m) {
                Liveness::Alive => "alive".into(),
                Liveness::Dead => "dead".into(),
                Liveness::Unknown => "unknown".into(),
            },
        };
        let now = crate::eal::monotonic_ns();
        // A (Acquire): pairs with the adopter's Release store of its first burst's time.
        let adopted_first_burst_ns = b.adopt(adopt::FIRST_FWD_NS).load(Ordering::Acquire);
        let workers = (0..b.num_workers())
            .map(|w| {
                let hb = get(b.worker(w, wkr::HEARTBEAT));
                WorkerStats {
                    id: w,
                    pid: get(b.worker(w, wkr::PID)),
                    liveness: live(get(b.worker(w, wkr::MEMBER))),
                    live: get(b.about(w, about::LIVE)) == 1,
                    stalled: get(b.about(w, about::STALLED)) == 1,
                    starts: get(b.worker(w, wkr::STARTS)),
                    enqueued: get(b.about(w, about::ENQUEUED)),
                    enqueued_bytes: get(b.about(w, about::ENQUEUED_BYTES)),
                    drop_ring_full: get(b.about(w, about::DROP_FULL)),
                    taken_back: get(b.about(w, about::TAKEN_BACK)),
                    rx: get(b.worker(w, wkr::RX)),
                    rx_bytes: get(b.worker(w, wkr::RX_BYTES)),
                    tx: get(b.worker(w, wkr::TX)),
                    tx_bytes: get(b.worker(w, wkr::TX_BYTES)),
                    tx_drop: get(b.worker(w, wkr::TX_DROP)),
                    ring_count: 0,
                    heartbeat_age_ms: (hb != 0).then(|| now.saturating_sub(hb) / 1_000_000),
                }
            })
            .collect();
        let ports: Vec<PortCounters> = (0..MAX_PORTS)
            .map(|p| PortCounters {
                port: p,
                rx: get(b.port(p, port::RX)),
                rx_bytes: get(b.port(p, port::RX_BYTES)),
            })
            .filter(|p| p.rx > 0)
            .collect();
        PipelineStats {
            name: name.to_owned(),
            state: match get(b.ctl(ctl::STATE)) {
                1 => "running",
                2 => "stopping",
                3 => "stopped",
                _ => "starting",
            }
            .into(),
            distributor_pid: get(b.ctl(ctl::PID)),
            distributor_liveness: live(get(b.ctl(ctl::MEMBER))),
            rx: ports.iter().map(|p| p.rx).sum(),
            rx_bytes: ports.iter().map(|p| p.rx_bytes).sum(),
            ports,
            neighbour_frames: get(b.ctl(ctl::NEIGH_FRAMES)),
            neighbour_copies: get(b.ctl(ctl::NEIGH_COPIES)),
            copy_fail: get(b.ctl(ctl::COPY_FAIL)),
            drop_no_worker: get(b.ctl(ctl::DROP_NO_WORKER)),
            drop_by_dispatcher: get(b.ctl(ctl::DROP_BY_DISPATCHER)),
            drop_bad_verdict: get(b.ctl(ctl::DROP_BAD_VERDICT)),
            answered: get(b.ctl(ctl::ANSWERED)),
            answer_fail: get(b.ctl(ctl::ANSWER_FAIL)),
            // Read first: pairs with the Release store of the adopter's first burst, after
            // which the pause figures are read.
            adopted_first_burst_ns,
            adoptions: get(b.adopt(adopt::ADOPTIONS)),
            last_adoption_pause_ns: get(b.adopt(adopt::LAST_PAUSE_NS)),
            last_adoption_ports_missed: get(b.adopt(adopt::LAST_PAUSE_MISSED)),
            workers,
        }
    }
}

/// The counters of every pipeline of the group (the registry: every `PL_<name>` memzone whose
/// distributor has published it). A worker's ring fill is read from the counters: what was put
/// on the ring, less what was taken out or taken back.
pub fn list(eal: &Eal) -> Vec<PipelineStats> {
    Memzone::list(eal)
        .into_iter()
        .filter_map(|z| {
            let name = z.name.strip_prefix(MEMZONE_PREFIX)?.to_owned();
            let mz = Memzone::lookup(eal, &z.name).ok()?;
            let b = Block::from_memzone(&mz)?;
            if !b.ready() {
                return None;
            }
            let mut s = PipelineStats::read(eal, &name, &b);
            for w in &mut s.workers {
                w.ring_count = w.enqueued.saturating_sub(w.rx + w.taken_back);
            }
            Some(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_port_and_worker_has_lines_of_its_own() {
        let mut lines = vec![CTL_LINE];
        lines.extend((0..MAX_PORTS).map(port_line));
        lines.extend((0..MAX_WORKERS).flat_map(|w| [worker_line(w), about_line(w)]));
        lines.push(ADOPT_LINE);
        assert!(lines.iter().all(|&l| l < LINES), "{lines:?}");
        let mut unique = lines.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), lines.len(), "two writers share a line");
        assert_eq!(std::mem::size_of::<Line>() % 64, 0);
    }
}
