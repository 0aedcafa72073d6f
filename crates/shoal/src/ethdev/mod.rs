//! Ports (DPDK's ethdev): a port table in shared memory, configured, started and stopped by
//! the primary, with `rx_burst`/`tx_burst` on a queue from any process of the group.
//!
//! ```no_run
//! use shoal::ethdev::{self, QueueId};
//! use shoal::mbuf::MbufBatch;
//! let (eal, _app) = shoal::eal::init_or_exit("");       // e.g. --vdev net_gen0 --vdev net_null0
//! let ports = ethdev::ports(&eal).unwrap();
//! let mut batch = MbufBatch::new();
//! let n = ports[0].rx_burst(QueueId(0), &mut batch, 32);
//! let sent = ports[1].tx_burst(QueueId(0), &mut batch);  // the unsent stay in `batch`
//! # let _ = (n, sent);
//! ```
//!
//! # Processes
//! The primary probes the `--vdev` specs, creates each port's queues and shared objects,
//! writes the port table (memzone `shoal_ports`) and starts the ports. A secondary calling
//! [`ports`] attaches to the same ports by reading the table. Each process then polls queues
//! of its own, as DPDK's symmetric_mp does: one queue is polled by one thread at a time.
//!
//! | driver | per-queue state | how a secondary reaches it |
//! |--------|-----------------|----------------------------|
//! | `net_null` | none | nothing to share |
//! | `net_gen` | sequence number and rate budget in the table | shared memory |
//! | `net_ring` | the queue's ring (`ETH_RXTX<q>_<port>`) | ring lookup by name |
//! | `net_pcap` | rx: the capture, loaded by the primary into a memzone, with a shared cursor; tx: the file, opened by each process with `O_APPEND`, one `write` per burst | shared memory / its own fd |
//! | `net_af_packet` | one AF_PACKET socket per queue, both TPACKET rings mmapped; ring cursors in the table | the primary passes the sockets over IPC (`SCM_RIGHTS`); the secondary maps the same rings |
//! | `net_tap` | one TAP queue fd per queue | the primary passes the fds over IPC |
//! | `net_af_xdp` | one AF_XDP socket per queue, its four rings mmapped; UMEM in a memzone; ring indices in the socket's own mapping | the primary passes the sockets over IPC; the secondary maps their rings and the UMEM memzone |
//! | `net_memif` | one memif ring pair per queue in the peer's shared memory; the client's receive cursor and the link generation in the table | the primary passes the connection's region memfds and layout over IPC at each (re)connection |
//!
//! Ports are configured and started by the primary before secondaries attach; a port stopped
//! by the primary returns 0 from every burst in every process.
//!
//! # Hotplug
//! The primary may add a port at run time ([`attach_vdev`], DPDK's `rte_dev_probe`) into a
//! free slot of the table, or remove one ([`detach`], `rte_dev_remove`). A detached slot is
//! *retired*: its state says so, every burst on it returns 0 in every process, [`port`] and
//! [`Port::check`] refuse it with [`Error::Detached`], and it is never used again, so that a
//! handle kept anywhere can never reach another port. A secondary sees the change the next time
//! it calls [`ports`] (new ports attached, retired ones left out); a process started later sees
//! the current set. [`crate::hotplug`] carries the requests of other processes to the primary.
//!
//! A kill of the primary while it attaches leaves the claimed slot in state FREE: every process
//! skips it, and it stays unused (the table has [`MAX_PORTS`] slots for the group's life). A
//! kill while it detaches leaves the state either STARTED or RETIRED (one store); the packets a
//! retired `net_ring` port held are returned to their pool by the detaching primary, after the
//! state store, so only a burst that passed its state check before that store can still land
//! packets there.

pub mod capture;
mod drivers;
pub mod pcap;
pub mod spec;
mod table;

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use spec::{DriverArgs, DriverKind, GenSize, VdevSpec, MAX_QUEUES, PORT_NAMESIZE};
pub use table::MAX_PORTS;

use crate::group::{Group, ProcType};
use crate::mbuf::{MbufBatch, MbufPool, MbufRing};
use crate::memory::{MemzoneKind, Region};
use crate::memzone::Memzone;
use crate::net::EthernetAddress;
use crate::sync::atomic::Ordering;
use crate::sync::Members;
use drivers::{Driver, RxCtx, TxCtx};
use table::{bump, cstr, set_cstr, state, PortConfig, PortShared, PortTable, TABLE_NAME};

/// A port number, as DPDK's `port_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PortId(pub u16);

/// A queue number within a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct QueueId(pub u16);

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Errors of port set-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--vdev` spec could not be parsed.
    #[error("bad --vdev {spec:?}: {why}")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two ports have the same name.
    #[error("a port named {0:?} exists already")]
    DuplicateName(String),
    /// More ports than the table holds.
    #[error("at most {MAX_PORTS} ports")]
    TooManyPorts,
    /// A queue count outside 1 ..= MAX_QUEUES.
    #[error("port {port}: {what} queue count {n} must be 1 to {MAX_QUEUES}")]
    BadQueueCount {
        /// The port.
        port: String,
        /// rx or tx.
        what: &'static str,
        /// The count asked for.
        n: u16,
    },
    /// A driver could not set a port up.
    #[error("port {port} ({driver}): {why}")]
    Driver {
        /// The port.
        port: String,
        /// Its driver.
        driver: DriverKind,
        /// What failed.
        why: String,
    },
    /// Something only the primary may do.
    #[error("only the primary process may {0}")]
    NotPrimary(&'static str),
    /// The port table, a pool or a ring could not be made or found.
    #[error("{what}: {why}")]
    Shared {
        /// What was being done.
        what: String,
        /// The cause.
        why: String,
    },
    /// No port has this number.
    #[error("no port {0}")]
    NoSuchPort(PortId),
    /// The port was detached (hotplug); its number is not used again.
    #[error("port {0} was detached")]
    Detached(PortId),
    /// The secondary could not get a port's file descriptors from the primary.
    #[error("port {port}: could not get its file descriptors from the primary: {why}")]
    FdPassing {
        /// The port.
        port: String,
        /// The cause.
        why: String,
    },
}

fn shared_err(what: impl Into<String>) -> impl FnOnce(String) -> Error {
    let what = what.into();
    move |why| Error::Shared { what, why }
}

/// How the primary sets ports up ([`ports_with`]).
#[derive(Clone, Default)]
pub struct PortConf {
    /// Receive queues of every port (default: the spec's `queues`/`qpairs`, else 1).
    pub rx_queues: Option<u16>,
    /// Transmit queues of every port (default: as many as receive queues).
    pub tx_queues: Option<u16>,
    /// Pool that receive queues allocate from (default: a pool `eth_rx_pool` made for the
    /// purpose, sized for the ports' queues).
    pub pool: Option<MbufPool>,
    /// Leave kernel interfaces out of promiscuous mode (default: promiscuous, as DPDK's
    /// samples ask).
    pub no_promiscuous: bool,
    /// Vdev specs to probe when the command line gave no `--vdev` (e.g. two `net_gen` ports,
    /// so that an application runs on a machine with no set-up).
    pub default_vdevs: Vec<String>,
}

impl std::fmt::Debug for PortConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortConf")
            .field("rx_queues", &self.rx_queues)
            .field("tx_queues", &self.tx_queues)
            .field("pool", &self.pool.as_ref().map(|p| p.name().to_owned()))
            .field("no_promiscuous", &self.no_promiscuous)
            .field("default_vdevs", &self.default_vdevs)
            .finish()
    }
}

/// Counters of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Packets received or sent.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Receive: dropped by the kernel or device before we saw them.
    pub missed: u64,
    /// Receive: bad frames; transmit: packets taken and dropped.
    pub errors: u64,
}

/// A port's counters (DPDK's `rte_eth_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped before reception (ring full).
    pub imissed: u64,
    /// Bad received frames.
    pub ierrors: u64,
    /// Packets that could not be sent and were dropped.
    pub oerrors: u64,
    /// Receive attempts that found no free mbuf.
    pub rx_nombuf: u64,
    /// Per receive queue.
    pub rx_queues: Vec<QueueStats>,
    /// Per transmit queue.
    pub tx_queues: Vec<QueueStats>,
}

/// A port, as seen from this process. Cheap to clone.
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if let Some(table) = self.table.get::<PortTable>(0) {
            if let Some(shared) = table.ports.get(self.id.0 as usize) {
                self.driver.release(shared, &**self.table.mapping());
            }
        }
    }
}

struct PortInner {
    /// The capture ring, once the port was armed (released before `eal`).
    tap: capture::TapSlot,
    id: PortId,
    name: String,
    kind: DriverKind,
    mac: EthernetAddress,
    nb_rxq: u16,
    nb_txq: u16,
    group: Group,
    table: Region,
    pool: MbufPool,
    driver: Box<dyn Driver>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("driver", &self.inner.kind)
            .field("rx_queues", &self.inner.nb_rxq)
            .field("tx_queues", &self.inner.nb_txq)
            .finish()
    }
}

/// Most mbufs one burst moves (the batch's capacity).
pub const MAX_BURST: usize = crate::mbuf::MAX_BURST;

impl Port {
    fn table(&self) -> &PortTable {
        self.inner
            .table
            .get(0)
            .expect("port table checked at attach")
    }

    fn shared(&self) -> &PortShared {
        &self.table().ports[self.inner.id.0 as usize]
    }

    /// Receives up to `max` packets from queue `q` and appends them to `batch` (DPDK's
    /// `rte_eth_rx_burst`). Returns how many were appended: 0 when nothing waits, the port
    /// is stopped, the queue does not exist or the batch is full.
    #[inline]
    pub fn rx_burst(&self, q: QueueId, batch: &mut MbufBatch, max: usize) -> usize {
        let qi = q.0 as usize;
        let shared = self.shared();
        if qi >= self.inner.nb_rxq as usize || !shared.ctl.is_started() {
            return 0;
        }
        let max = max.min(MAX_BURST - batch.len());
        if max == 0 {
            return 0;
        }
        let rxq = &shared.rxq[qi];
        let before = batch.len();
        let cx = RxCtx {
            q: rxq,
            pool: &self.inner.pool,
            port: self.inner.id.0,
            members: &**self.inner.table.mapping(),
        };
        let n = self.inner.driver.rx_burst(qi, &cx, batch, max);
        if n > 0 {
            let bytes: u64 = batch.iter().skip(before).map(|m| m.pkt_len() as u64).sum();
            bump(&rxq.packets, n as u64);
            bump(&rxq.bytes, bytes);
            // C1 (see `capture`): relaxed; a tap armed a moment ago is seen by a later burst.
            if shared.ctl.capture.load(Ordering::Relaxed) & capture::RX != 0 {
                let c = capture::clones(
                    &self.inner.tap,
                    &self.inner.group,
                    batch,
                    before,
                    self.inner.id.0,
                    capture::RX,
                );
                capture::push(&self.inner.tap, &self.inner.group, c, n);
            }
        }
        n
    }

    /// Sends packets from the front of `batch` on queue `q` (DPDK's `rte_eth_tx_burst`).
    /// Returns how many left the batch; those not taken stay in it, in order. Packets a
    /// driver takes and cannot send (too big) count as taken and as `oerrors`.
    #[inline]
    pub fn tx_burst(&self, q: QueueId, batch: &mut MbufBatch) -> usize {
        let qi = q.0 as usize;
        let shared = self.shared();
        if qi >= self.inner.nb_txq as usize || !shared.ctl.is_started() || batch.is_empty() {
            return 0;
        }
        let cx = TxCtx {
            q: &shared.txq[qi],
            members: &**self.inner.table.mapping(),
        };
        // C1 (see `capture`): relaxed, as for receive.
        if shared.ctl.capture.load(Ordering::Relaxed) & capture::TX == 0 {
            return self.inner.driver.tx_burst(qi, &cx, batch);
        }
        // Clones of everything offered; those of the packets the port did not take are freed.
        let c = capture::clones(
            &self.inner.tap,
            &self.inner.group,
            batch,
            0,
            self.inner.id.0,
            capture::TX,
        );
        let n = self.inner.driver.tx_burst(qi, &cx, batch);
        capture::push(&self.inner.tap, &self.inner.group, c, n);
        n
    }

    /// Arms (or with 0, disarms) the capture taps of this port: [`capture::RX`],
    /// [`capture::TX`]. Used by [`crate::pdump`] in the primary.
    pub(crate) fn set_capture(&self, bits: u32) {
        // C1 (see `capture`): Release, though the tap's lookup of the ring synchronises by itself.
        self.shared().ctl.capture.store(bits, Ordering::Release);
    }

    /// The capture taps armed on this port.
    pub fn capture_bits(&self) -> u32 {
        self.shared().ctl.capture.load(Ordering::Relaxed)
    }

    /// The port's counters, summed over its queues. Kernel-backed ports fold in the drops
    /// the kernel counted since the last look.
    pub fn stats(&self) -> PortStats {
        let shared = self.shared();
        self.inner.driver.refresh(shared);
        stats_of(shared, self.inner.nb_rxq, self.inner.nb_txq)
    }

    /// Zeroes the port's counters (DPDK's `rte_eth_stats_reset`). Call it while no queue is
    /// being polled.
    pub fn reset_stats(&self) {
        reset_of(self.shared());
    }

    /// The port's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.inner.mac
    }

    /// The port's name (its `--vdev` device name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The port's number.
    pub fn id(&self) -> PortId {
        self.inner.id
    }

    /// The driver.
    pub fn driver(&self) -> DriverKind {
        self.inner.kind
    }

    /// Receive queues.
    pub fn nb_rx_queues(&self) -> u16 {
        self.inner.nb_rxq
    }

    /// Transmit queues.
    pub fn nb_tx_queues(&self) -> u16 {
        self.inner.nb_txq
    }

    /// The pool receive queues allocate from.
    pub fn pool(&self) -> MbufPool {
        self.inner.pool.clone()
    }

    /// True when the link is up (kernel interfaces: IFF_UP and IFF_RUNNING).
    pub fn link_up(&self) -> bool {
        let up = self.inner.driver.link_up();
        self.shared()
            .ctl
            .link_up
            .store(up as u32, Ordering::Relaxed);
        up
    }

    /// True once the port was detached ([`detach`]).
    pub fn is_detached(&self) -> bool {
        self.shared().ctl.state() == state::RETIRED
    }

    /// `Ok` unless the port was detached ([`Error::Detached`]): what a process holding a handle
    /// asks before it relies on the port.
    ///
    /// # Errors
    /// [`Error::Detached`].
    pub fn check(&self) -> Result<(), Error> {
        if self.is_detached() {
            return Err(Error::Detached(self.inner.id));
        }
        Ok(())
    }

    /// Whether the port is started (bursts move packets).
    pub fn is_started(&self) -> bool {
        self.shared().ctl.state() == state::STARTED
    }

    /// Starts a stopped port (DPDK's `rte_eth_dev_start`). Primary only.
    ///
    /// # Errors
    /// [`Error::NotPrimary`] in a secondary.
    pub fn start(&self) -> Result<(), Error> {
        if self.inner.group.proc_type() != ProcType::Primary {
            return Err(Error::NotPrimary("start a port"));
        }
        self.check()?;
        self.inner.driver.started().map_err(|why| Error::Driver {
            port: self.inner.name.clone(),
            driver: self.inner.kind,
            why,
        })?;
        let ctl = &self.shared().ctl;
        ctl.generation.fetch_add(1, Ordering::Relaxed);
        ctl.set_state(state::STARTED);
        tracing::debug!(target: "shoal::ethdev", "port {} ({}) started", self.inner.id, self.inner.name);
        Ok(())
    }

    /// Stops the port (DPDK's `rte_eth_dev_stop`): every burst in every process returns 0
    /// until it is started again. Primary only.
    ///
    /// # Errors
    /// [`Error::NotPrimary`] in a secondary.
    pub fn stop(&self) -> Result<(), Error> {
        if self.inner.group.proc_type() != ProcType::Primary {
            return Err(Error::NotPrimary("stop a port"));
        }
        self.check()?;
        self.shared().ctl.set_state(state::STOPPED);
        self.inner.driver.stopped();
        tracing::debug!(target: "shoal::ethdev", "port {} ({}) stopped", self.inner.id, self.inner.name);
        Ok(())
    }
}

/// A port's counters, summed over its first `nb_rxq`/`nb_txq` queues.
fn stats_of(shared: &PortShared, nb_rxq: u16, nb_txq: u16) -> PortStats {
    let mut s = PortStats::default();
    for q in &shared.rxq[..(nb_rxq as usize).min(MAX_QUEUES)] {
        let qs = QueueStats {
            packets: q.packets.load(Ordering::Relaxed),
            bytes: q.bytes.load(Ordering::Relaxed),
            missed: q.missed.load(Ordering::Relaxed),
            errors: q.errors.load(Ordering::Relaxed),
        };
        s.ipackets += qs.packets;
        s.ibytes += qs.bytes;
        s.imissed += qs.missed;
        s.ierrors += qs.errors;
        s.rx_nombuf += q.nombuf.load(Ordering::Relaxed);
        s.rx_queues.push(qs);
    }
    for q in &shared.txq[..(nb_txq as usize).min(MAX_QUEUES)] {
        let qs = QueueStats {
            packets: q.packets.load(Ordering::Relaxed),
            bytes: q.bytes.load(Ordering::Relaxed),
            missed: 0,
            errors: q.errors.load(Ordering::Relaxed),
        };
        s.opackets += qs.packets;
        s.obytes += qs.bytes;
        s.oerrors += qs.errors;
        s.tx_queues.push(qs);
    }
    s
}

fn reset_of(shared: &PortShared) {
    for q in shared.rxq.iter() {
        for c in [&q.packets, &q.bytes, &q.missed, &q.errors, &q.nombuf] {
            c.store(0, Ordering::Relaxed);
        }
    }
    for q in shared.txq.iter() {
        for c in [&q.packets, &q.bytes, &q.errors] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl PortStats {
    /// DPDK's generic extended statistics (`eth_dev_stats_strings` and the per-queue ones),
    /// for the first `max_queues` queues: what `/ethdev/xstats` and `dpdk-proc-info --xstats`
    /// show.
    pub fn xstats(&self, max_queues: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("rx_good_packets", self.ipackets),
            ("tx_good_packets", self.opackets),
            ("rx_good_bytes", self.ibytes),
            ("tx_good_bytes", self.obytes),
            ("rx_missed_errors", self.imissed),
            ("rx_errors", self.ierrors),
            ("tx_errors", self.oerrors),
            ("rx_mbuf_allocation_errors", self.rx_nombuf),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (i, q) in self.rx_queues.iter().take(max_queues).enumerate() {
            v.push((format!("rx_q{i}_packets"), q.packets));
            v.push((format!("rx_q{i}_bytes"), q.bytes));
            v.push((format!("rx_q{i}_errors"), q.errors));
        }
        for (i, q) in self.tx_queues.iter().take(max_queues).enumerate() {
            v.push((format!("tx_q{i}_packets"), q.packets));
            v.push((format!("tx_q{i}_bytes"), q.bytes));
        }
        v
    }
}

/// A port as the port table describes it: what a tool that inspects a group without joining
/// it (`shoal info --stats`) can see. No driver is attached, so kernel-side drops not yet
/// folded in by a member are not counted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortView {
    /// The port's number.
    pub id: PortId,
    /// Its `--vdev` device name.
    pub name: String,
    /// The `--vdev` spec it was made from.
    pub spec: String,
    /// "started", "stopped" or "configured".
    pub state: &'static str,
    /// Its counters.
    pub stats: PortStats,
}

/// The group's ports, read from the port table (no driver attached, no IPC): for tools.
///
/// # Errors
/// [`Error::Shared`] when the table cannot be read.
pub fn inspect_ports(group: &impl AsRef<Group>) -> Result<Vec<PortView>, Error> {
    let Some(region) = table_region(group.as_ref(), false)? else {
        return Ok(Vec::new());
    };
    let table: &PortTable = region.get(0).expect("checked");
    let configs = table.config.lock(&**region.mapping()).ports.to_vec();
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let shared = &table.ports[i];
        let st = match shared.ctl.state() {
            state::STARTED => "started",
            state::STOPPED => "stopped",
            state::CONFIGURED => "configured",
            state::RETIRED => "detached",
            _ => continue,
        };
        if c.used == 0 {
            continue;
        }
        out.push(PortView {
            id: PortId(i as u16),
            name: cstr(&c.name).to_owned(),
            spec: cstr(&c.spec).to_owned(),
            state: st,
            stats: stats_of(shared, c.nb_rxq, c.nb_txq),
        });
    }
    Ok(out)
}

/// Zeroes the counters of port `id` through the port table (DPDK's `rte_eth_stats_reset`, as
/// `dpdk-proc-info --reset-stats` does from outside). Returns false when there is no such port.
///
/// # Errors
/// [`Error::Shared`] when the table cannot be read.
pub fn reset_port_stats(group: &impl AsRef<Group>, id: PortId) -> Result<bool, Error> {
    let Some(region) = table_region(group.as_ref(), false)? else {
        return Ok(false);
    };
    let table: &PortTable = region.get(0).expect("checked");
    let used = table.config.lock(&**region.mapping()).ports[..]
        .get(id.0 as usize)
        .is_some_and(|c| c.used != 0);
    let Some(shared) = table.ports.get(id.0 as usize).filter(|_| used) else {
        return Ok(false);
    };
    if shared.ctl.state() == state::FREE {
        return Ok(false);
    }
    reset_of(shared);
    Ok(true)
}

/// This membership's ports (the ethdev layer's state in its [`Group`]), so that [`ports`]
/// called twice returns the same handles (kernel sockets and mappings are made once per
/// process). `None` until the ports were probed or attached.
#[derive(Default)]
struct PortList(Mutex<Option<Vec<Weak<PortInner>>>>);

/// One port as the port table describes it, read without attaching to it (`shoal info`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortInfo {
    /// Port number.
    #[serde(rename = "port")]
    pub id: u16,
    /// The `--vdev` spec it was made from.
    pub spec: String,
    /// Device name.
    pub name: String,
    /// Driver name (DPDK's).
    pub driver: String,
    /// Receive and transmit queues.
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// MAC address.
    pub mac: String,
    /// configured, started or stopped.
    pub state: &'static str,
    /// How the driver moves frames, where it has a choice (`net_af_xdp`: `copy` or
    /// `zero-copy`, as the kernel bound its sockets).
    pub mode: Option<&'static str>,
    /// Packets received, all queues.
    pub ipackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Frames the receive queues had no room for.
    pub imissed: u64,
    /// Frames received in error (malformed, too short).
    pub ierrors: u64,
    /// Receives that found no free mbuf.
    pub rx_nombuf: u64,
    /// Packets sent, all queues.
    pub opackets: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the transmit queues refused.
    pub oerrors: u64,
}

/// The group's ports as its port table lists them (empty when it has none).
pub fn table_info(group: &impl AsRef<Group>) -> Vec<PortInfo> {
    let Ok(Some(region)) = table_region(group.as_ref(), false) else {
        return Vec::new();
    };
    let table: &PortTable = region.get(0).expect("checked");
    let configs: Vec<PortConfig> = table.config.lock(&**region.mapping()).ports.to_vec();
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let sh = &table.ports[i];
        let st = sh.ctl.state();
        if c.used == 0 || st == state::FREE || st == state::RETIRED {
            continue;
        }
        let kind = DriverKind::from_u32(c.driver);
        let (nrx, ntx) = (
            (c.nb_rxq as usize).min(MAX_QUEUES),
            (c.nb_txq as usize).min(MAX_QUEUES),
        );
        let mode = match kind {
            Some(DriverKind::AfXdp) => {
                match sh.txq[0].drv[drivers::af_xdp::W_MODE].load(Ordering::Relaxed) {
                    2 => Some("zero-copy"),
                    1 => Some("copy"),
                    _ => None,
                }
            }
            _ => None,
        };
        // Statistics: relaxed loads of one-writer counters, summed over the queues.
        let rx = |f: fn(&table::RxqShared) -> &crate::sync::atomic::AtomicU64| -> u64 {
            sh.rxq[..nrx]
                .iter()
                .map(|q| f(q).load(Ordering::Relaxed))
                .sum()
        };
        let tx = |f: fn(&table::TxqShared) -> &crate::sync::atomic::AtomicU64| -> u64 {
            sh.txq[..ntx]
                .iter()
                .map(|q| f(q).load(Ordering::Relaxed))
                .sum()
        };
        out.push(PortInfo {
            id: i as u16,
            spec: cstr(&c.spec).to_owned(),
            name: cstr(&c.name).to_owned(),
            driver: kind.map_or("unknown", DriverKind::name).to_owned(),
            rx_queues: c.nb_rxq,
            tx_queues: c.nb_txq,
            mac: EthernetAddress(c.mac).to_string(),
            state: match st {
                state::STARTED => "started",
                state::STOPPED => "stopped",
                _ => "configured",
            },
            mode,
            ipackets: rx(|q| &q.packets),
            ibytes: rx(|q| &q.bytes),
            imissed: rx(|q| &q.missed),
            ierrors: rx(|q| &q.errors),
            rx_nombuf: rx(|q| &q.nombuf),
            opackets: tx(|q| &q.packets),
            obytes: tx(|q| &q.bytes),
            oerrors: tx(|q| &q.errors),
        });
    }
    out
}

/// The ports this process already has in `group` and still holds, without probing or
/// attaching (None before the ports were probed or attached): what telemetry reports. A port
/// whose every handle was dropped is left out ([`ports`] attaches it again in a secondary).
pub(crate) fn registered(group: &Group) -> Option<Vec<Port>> {
    let list = group.state::<PortList>();
    let reg = list.0.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        reg.as_ref()?
            .iter()
            .filter_map(|w| w.upgrade().map(|inner| Port { inner }))
            .collect(),
    )
}

fn register(group: &Group, ports: &[Port]) {
    let list = group.state::<PortList>();
    *list.0.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(ports.iter().map(|p| Arc::downgrade(&p.inner)).collect());
}

/// The group's ports. In the primary: probes every `--vdev` spec, configures each port with
/// the default [`PortConf`] and starts it. In a secondary: attaches to the primary's ports
/// (receiving the file descriptors of kernel-backed ports over IPC). Calling it again in
/// the same process returns the same ports.
///
/// # Errors
/// A bad spec, a driver that cannot set its port up, or (secondary) a port whose file
/// descriptors the primary could not pass.
pub fn ports(group: &impl AsRef<Group>) -> Result<Vec<Port>, Error> {
    let group = group.as_ref();
    ports_with(group, &PortConf::default())
}

/// As [`ports`], with the primary's port configuration given.
///
/// # Errors
/// As [`ports`]; also [`Error::BadQueueCount`].
pub fn ports_with(group: &impl AsRef<Group>, conf: &PortConf) -> Result<Vec<Port>, Error> {
    let group = group.as_ref();
    if let Some(p) = registered(group) {
        return refresh(group, p);
    }
    let ports = match group.proc_type() {
        ProcType::Primary if group.adopted() => adopt(group, conf)?,
        ProcType::Primary => probe(group, conf)?,
        ProcType::Secondary => {
            if !group.vdevs().is_empty() {
                tracing::warn!(target: "shoal::ethdev", "--vdev is ignored in a secondary process: it uses the primary's ports");
            }
            attach(group, None)?
        }
    };
    register(group, &ports);
    Ok(ports)
}

/// The ports this process has, brought up to date with the table: retired ones left out, and
/// (in a secondary) ports the primary attached since then attached here too.
fn refresh(group: &Group, mut have: Vec<Port>) -> Result<Vec<Port>, Error> {
    let before = have.len();
    have.retain(|p| !p.is_detached());
    let mut changed = have.len() != before;
    if group.proc_type() == ProcType::Secondary {
        let known: Vec<usize> = have.iter().map(|p| p.id().0 as usize).collect();
        let new = attach_slots(group, None, &|i| !known.contains(&i))?;
        changed |= !new.is_empty();
        have.extend(new);
        have.sort_by_key(|p| p.id());
    }
    if changed {
        register(group, &have);
    }
    Ok(have)
}

/// The port numbered `id`, attaching what the primary added since this process last asked.
///
/// # Errors
/// [`Error::Detached`] for a detached port, [`Error::NoSuchPort`] when no port has the number;
/// as [`ports`] otherwise.
pub fn port(group: &impl AsRef<Group>, id: PortId) -> Result<Port, Error> {
    let group = group.as_ref();
    if let Some(p) = ports(group)?.into_iter().find(|p| p.id() == id) {
        return Ok(p);
    }
    let retired = table_region(group, false)?.is_some_and(|r| {
        r.get::<PortTable>(0)
            .and_then(|t| t.ports.get(id.0 as usize))
            .is_some_and(|sh| sh.ctl.state() == state::RETIRED)
    });
    Err(if retired {
        Error::Detached(id)
    } else {
        Error::NoSuchPort(id)
    })
}

/// Counts of a port about to be made.
pub(crate) struct Planned {
    spec: VdevSpec,
    spec_text: String,
    nb_rxq: u16,
    nb_txq: u16,
}

fn default_queues(spec: &VdevSpec) -> Option<u16> {
    match &spec.args {
        DriverArgs::Null { queues, .. }
        | DriverArgs::Gen { queues, .. }
        | DriverArgs::Ring { queues, .. }
        | DriverArgs::Tap { queues, .. }
        | DriverArgs::Memif { queues, .. } => *queues,
        DriverArgs::AfPacket { qpairs, .. } => Some(*qpairs),
        DriverArgs::AfXdp { queue_count, .. } => Some(*queue_count),
        DriverArgs::Pcap { rx, .. } => Some(rx.len().max(1) as u16),
    }
}

/// One JSON object per port of the group ([`PortInfo`]), read from the port table without
/// attaching to the ports: what the snapshot (`shoal info`, `shoal top`, telemetry) shows for
/// every port, whoever polls it.
pub(crate) fn describe_all(group: &impl AsRef<Group>) -> Vec<serde_json::Value> {
    table_info(group)
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect()
}

/// The port table, created when `create` and it does not exist yet.
fn table_region(group: &Group, create: bool) -> Result<Option<Region>, Error> {
    let size = std::mem::size_of::<PortTable>();
    let mz = match Memzone::lookup(group, TABLE_NAME) {
        Ok(mz) => mz,
        Err(crate::memzone::Error::NotFound(_)) if !create => return Ok(None),
        Err(crate::memzone::Error::NotFound(_)) => {
            let (res, fresh) =
                Memzone::reserve_fresh(group, TABLE_NAME, size, 128, MemzoneKind::Internal)
                    .map_err(|e| e.to_string())
                    .map_err(shared_err("creating the port table"))?;
            // The zone is zeroed (a valid empty table); only the layout word is written, before
            // any other process can see the table.
            let mut fresh = fresh;
            let off = std::mem::offset_of!(PortTable, layout);
            if !fresh.write(off, &table::SHARED_LAYOUT.to_le_bytes()) {
                return Err(shared_err("creating the port table")("too small".into()));
            }
            res.publish();
            let region = fresh.publish();
            return Ok(Some(region));
        }
        Err(e) => return Err(shared_err("finding the port table")(e.to_string())),
    };
    let region = mz.region().clone();
    let Some(table) = region.get::<PortTable>(0) else {
        return Err(shared_err("the port table")(format!(
            "memzone {TABLE_NAME:?} has {} bytes, {size} expected",
            region.len()
        )));
    };
    let theirs = table.layout.load(crate::sync::atomic::Ordering::Relaxed);
    if theirs != table::SHARED_LAYOUT {
        return Err(shared_err("the port table")(format!(
            "layout {theirs:#018x} differs from this binary's {:#018x}; rebuild both from the same source",
            table::SHARED_LAYOUT
        )));
    }
    Ok(Some(region))
}

/// Takes a free slot of the table for `name`, under the table lock.
fn claim_slot(table: &PortTable, m: &dyn Members, name: &str) -> Result<usize, Error> {
    let mut cfgs = table.config.lock(m);
    if cfgs.ports.iter().enumerate().any(|(i, c)| {
        c.used != 0 && table.ports[i].ctl.state() != state::RETIRED && cstr(&c.name) == name
    }) {
        return Err(Error::DuplicateName(name.to_owned()));
    }
    let i = cfgs
        .ports
        .iter()
        .position(|c| c.used == 0)
        .ok_or(Error::TooManyPorts)?;
    let c = &mut cfgs.ports[i];
    // Zero the whole entry; `used` marks the slot taken while the driver sets the port up.
    *c = empty_config();
    c.used = 1;
    set_cstr(&mut c.name, name);
    Ok(i)
}

fn empty_config() -> PortConfig {
    PortConfig {
        used: 0,
        driver: 0,
        nb_rxq: 0,
        nb_txq: 0,
        mac: [0; 6],
        _pad: [0; 6],
        primary_pid: 0,
        name: [0; PORT_NAMESIZE],
        spec: [0; table::SPEC_LEN],
        pool: [0; crate::memory::MEMZONE_NAMESIZE],
        rx_rings: [[0; crate::memory::MEMZONE_NAMESIZE]; MAX_QUEUES],
        tx_rings: [[0; crate::memory::MEMZONE_NAMESIZE]; MAX_QUEUES],
    }
}

fn release_slot(table: &PortTable, m: &dyn Members, i: usize) {
    table.config.lock(m).ports[i].used = 0;
}

/// Name of the default receive pool.
pub const DEFAULT_POOL: &str = "eth_rx_pool";

fn probe(group: &Group, conf: &PortConf) -> Result<Vec<Port>, Error> {
    let mut planned = Vec::new();
    let specs = if group.vdevs().is_empty() {
        &conf.default_vdevs[..]
    } else {
        group.vdevs()
    };
    if group.vdevs().is_empty() && !specs.is_empty() {
        tracing::info!(target: "shoal::ethdev", "no --vdev given; using {}", specs.join(" "));
    }
    for text in specs {
        let p = plan(text, conf)?;
        if planned.iter().any(|q: &Planned| q.spec.name == p.spec.name) {
            return Err(Error::DuplicateName(p.spec.name));
        }
        planned.push(p);
    }
    if planned.len() > MAX_PORTS {
        return Err(Error::TooManyPorts);
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    let region = table_region(group, true)?.expect("created");
    let pool = match &conf.pool {
        Some(p) => p.clone(),
        None => {
            let queues: u32 = planned.iter().map(|p| p.nb_rxq as u32).sum();
            // Enough for every queue's burst in flight plus what sits in rings and caches.
            let n = (queues * 2048).clamp(4096, 32768) - 1;
            MbufPool::create(group, DEFAULT_POOL, n, 256, 0, 2048 + 128)
                .map_err(|e| e.to_string())
                .map_err(shared_err(format!("creating mbuf pool {DEFAULT_POOL:?}")))?
        }
    };
    // The fd-passing action is in place before any secondary can see a port.
    drivers::register_fd_action(group, &region)?;
    let mut out = Vec::new();
    for p in planned {
        out.push(make_port(group, &region, p, &pool, !conf.no_promiscuous)?);
    }
    Ok(out)
}

/// Parses a `--vdev` spec and settles its queue counts.
fn plan(text: &str, conf: &PortConf) -> Result<Planned, Error> {
    let spec = spec::parse(text)?;
    let nb_rxq = conf.rx_queues.or(default_queues(&spec)).unwrap_or(1);
    let nb_txq = conf.tx_queues.unwrap_or(nb_rxq);
    for (what, n) in [("rx", nb_rxq), ("tx", nb_txq)] {
        if n == 0 || n as usize > MAX_QUEUES {
            return Err(Error::BadQueueCount {
                port: spec.name.clone(),
                what,
                n,
            });
        }
    }
    Ok(Planned {
        spec,
        spec_text: text.to_owned(),
        nb_rxq,
        nb_txq,
    })
}

/// Claims a slot, probes the driver, writes the slot's configuration and starts the port.
fn make_port(
    group: &Group,
    region: &Region,
    p: Planned,
    pool: &MbufPool,
    promiscuous: bool,
) -> Result<Port, Error> {
    let table: &PortTable = region.get(0).expect("checked");
    let i = claim_slot(table, &**region.mapping(), &p.spec.name)?;
    let id = PortId(i as u16);
    let shared = &table.ports[i];
    let made = match drivers::probe(group, id, &p, promiscuous, shared) {
        Ok(m) => m,
        Err(e) => {
            release_slot(table, &**region.mapping(), i);
            return Err(e);
        }
    };
    {
        let mut cfgs = table.config.lock(&**region.mapping());
        let c = &mut cfgs.ports[i];
        c.driver = p.spec.args.kind() as u32;
        c.nb_rxq = p.nb_rxq;
        c.nb_txq = p.nb_txq;
        c.mac = made.mac.0;
        c.primary_pid = std::process::id();
        set_cstr(&mut c.spec, &p.spec_text);
        set_cstr(&mut c.pool, pool.name());
    }
    shared.ctl.set_state(state::CONFIGURED);
    let port = Port {
        inner: Arc::new(PortInner {
            tap: Default::default(),
            id,
            name: p.spec.name.clone(),
            kind: p.spec.args.kind(),
            mac: made.mac,
            nb_rxq: p.nb_rxq,
            nb_txq: p.nb_txq,
            group: group.clone(),
            table: region.clone(),
            pool: pool.clone(),
            driver: made.driver,
        }),
    };
    port.reset_stats();
    port.start()?;
    tracing::info!(target: "shoal::ethdev", "port {} {} ({}): {} rx / {} tx queues, MAC {}", id, p.spec.name, p.spec.args.kind(), p.nb_rxq, p.nb_txq, made.mac);
    Ok(port)
}

/// Adds a port at run time from a `--vdev` spec (DPDK's `rte_dev_probe`): the primary probes
/// it into a free slot of the table and starts it; every process sees it at its next [`ports`].
/// Its receive queues allocate from the pool of the group's other ports (else
/// [`DEFAULT_POOL`], made if missing). Primary only.
///
/// # Errors
/// [`Error::NotPrimary`], [`Error::BadSpec`], [`Error::DuplicateName`],
/// [`Error::TooManyPorts`], or the driver's error.
pub fn attach_vdev(group: &impl AsRef<Group>, text: &str) -> Result<Port, Error> {
    let group = group.as_ref();
    if group.proc_type() != ProcType::Primary {
        return Err(Error::NotPrimary("attach a port"));
    }
    let p = plan(text, &PortConf::default())?;
    let region = table_region(group, true)?.expect("created");
    let table: &PortTable = region.get(0).expect("checked");
    let pool_name = {
        let cfgs = table.config.lock(&**region.mapping());
        cfgs.ports
            .iter()
            .enumerate()
            .find(|(i, c)| {
                c.used != 0 && c.pool[0] != 0 && table.ports[*i].ctl.state() != state::RETIRED
            })
            .map(|(_, c)| cstr(&c.pool).to_owned())
    };
    let pool = match pool_name {
        Some(name) => MbufPool::lookup(group, &name)
            .map_err(|e| e.to_string())
            .map_err(shared_err(format!("finding mbuf pool {name:?}")))?,
        None => match MbufPool::lookup(group, DEFAULT_POOL) {
            Ok(p) => p,
            Err(_) => MbufPool::create(group, DEFAULT_POOL, 4095, 256, 0, 2048 + 128)
                .map_err(|e| e.to_string())
                .map_err(shared_err(format!("creating mbuf pool {DEFAULT_POOL:?}")))?,
        },
    };
    drivers::register_fd_action(group, &region)?;
    let port = make_port(group, &region, p, &pool, true)?;
    let list = group.state::<PortList>();
    if let Some(v) = list.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        v.push(Arc::downgrade(&port.inner));
    }
    Ok(port)
}

/// Removes port `id` (DPDK's `rte_dev_remove`): its slot is retired, bursts on it return 0 in
/// every process, [`ports`] leaves it out, [`port`] refuses it, and its number is never used
/// again. Packets a `net_ring` port held go back to their pool. The primary's own handles stay
/// valid (detached) until dropped. Primary only. Returns the port's name.
///
/// # Errors
/// [`Error::NotPrimary`], [`Error::NoSuchPort`], [`Error::Detached`].
pub fn detach(group: &impl AsRef<Group>, id: PortId) -> Result<String, Error> {
    let group = group.as_ref();
    if group.proc_type() != ProcType::Primary {
        return Err(Error::NotPrimary("detach a port"));
    }
    let region = table_region(group, false)?.ok_or(Error::NoSuchPort(id))?;
    let table: &PortTable = region.get(0).expect("checked");
    let i = id.0 as usize;
    let name = {
        let cfgs = table.config.lock(&**region.mapping());
        let c = cfgs.ports.get(i).ok_or(Error::NoSuchPort(id))?;
        match table.ports[i].ctl.state() {
            _ if c.used == 0 => return Err(Error::NoSuchPort(id)),
            state::FREE => return Err(Error::NoSuchPort(id)),
            state::RETIRED => return Err(Error::Detached(id)),
            _ => {}
        }
        // Under the lock, so that two detaches of one port cannot both succeed.
        table.ports[i].ctl.set_state(state::RETIRED);
        cstr(&c.name).to_owned()
    };
    let mine = registered(group)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.id() == id);
    if let Some(p) = &mine {
        p.inner.driver.stopped();
        p.inner.driver.retired();
    }
    let list = group.state::<PortList>();
    if let Some(v) = list.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        v.retain(|w| w.upgrade().is_some_and(|p| p.id != id));
    }
    tracing::info!(target: "shoal::ethdev", "port {id} ({name}) detached");
    Ok(name)
}

/// How long a secondary waits for the primary's answer with a port's fds.
const FD_TIMEOUT: Duration = Duration::from_secs(5);

/// The ports of a group this primary adopted ([`Group::adopted`]): the dead primary's, as the
/// port table describes them (this process's `--vdev` specs are not probed again).
///
/// A `net_af_packet` port's sockets outlive the primary that opened them while a secondary
/// holds copies: the adopter asks the secondaries for them (every process that holds a
/// port's fds answers the fd-passing action) and maps the same rings, so the queues' ring
/// position words in the table stay valid and the frames the kernel queued meanwhile are
/// still there. When no secondary holds them, the port is probed again from its spec in the
/// table: new sockets, the queues' position words reset. Either way the adopter publishes
/// the fds again for secondaries that join or attach later.
///
/// A kill of the adopter here changes nothing in the table but those position words (reset
/// only for sockets nobody else holds); the next adopter asks or probes again.
///
/// `net_tap` and `net_af_xdp` ports are refused: a tap interface goes when its last fd
/// closes, and an AF_XDP socket's UMEM and fill/completion rings are not re-bound here.
fn adopt(group: &Group, conf: &PortConf) -> Result<Vec<Port>, Error> {
    if let Some(region) = table_region(group, false)? {
        let table: &PortTable = region.get(0).expect("checked");
        let cfgs = table.config.lock(&**region.mapping());
        for c in cfgs.ports.iter().filter(|c| c.used != 0) {
            let from_rings = c.rx_rings[0][0] != 0;
            if from_rings {
                continue;
            }
            if let Ok(spec) = spec::parse(cstr(&c.spec)) {
                let kind = spec.args.kind();
                if kind.uses_fds() && !matches!(spec.args, DriverArgs::AfPacket { .. }) {
                    return Err(Error::Driver {
                        port: cstr(&c.name).to_owned(),
                        driver: kind,
                        why: "this kernel-backed port cannot be adopted (its descriptors died with the primary); restart the group".into(),
                    });
                }
            }
        }
    }
    if !group.vdevs().is_empty() {
        tracing::info!(target: "shoal::ethdev", "adopting the group's ports; --vdev is not probed again");
    }
    attach(group, Some(conf))
}

/// Reaches the ports the primary made: a secondary's (`adopting` None), or an adopting
/// primary's (see [`adopt`]).
fn attach(group: &Group, adopting: Option<&PortConf>) -> Result<Vec<Port>, Error> {
    attach_slots(group, adopting, &|_| true)
}

/// Attaches to the table's live ports whose slot `want` accepts.
fn attach_slots(
    group: &Group,
    adopting: Option<&PortConf>,
    want: &dyn Fn(usize) -> bool,
) -> Result<Vec<Port>, Error> {
    let Some(region) = table_region(group, false)? else {
        return Ok(Vec::new());
    };
    let table: &PortTable = region.get(0).expect("checked");
    // Every process that holds a kernel-backed port's fds answers for them: secondaries
    // serve an adopting primary, the primary serves the secondaries.
    drivers::register_fd_action(group, &region)?;
    let configs: Vec<PortConfig> = {
        let cfgs = table.config.lock(&**region.mapping());
        cfgs.ports.to_vec()
    };
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let st = table.ports[i].ctl.state();
        if c.used == 0 || st == state::FREE || st == state::RETIRED || !want(i) {
            continue;
        }
        let name = cstr(&c.name).to_owned();
        let spec_text = cstr(&c.spec).to_owned();
        let from_rings = c.rx_rings[0][0] != 0;
        let spec = if from_rings {
            VdevSpec {
                name: name.clone(),
                args: DriverArgs::Ring {
                    queues: Some(c.nb_rxq),
                    size: 0,
                },
            }
        } else {
            spec::parse(&spec_text)?
        };
        let nb_rxq = c.nb_rxq.clamp(1, MAX_QUEUES as u16);
        let nb_txq = c.nb_txq.clamp(1, MAX_QUEUES as u16);
        let pool_name = cstr(&c.pool).to_owned();
        let pool = MbufPool::lookup(group, &pool_name)
            .map_err(|e| e.to_string())
            .map_err(shared_err(format!(
                "port {name}: finding mbuf pool {pool_name:?}"
            )))?;
        let id = PortId(i as u16);
        let uses_fds = spec.args.kind().uses_fds();
        let fds: Vec<OwnedFd> = match adopting {
            _ if !uses_fds => Vec::new(),
            None => drivers::request_fds(group, id, &name, FD_TIMEOUT)?,
            Some(_) => drivers::request_fds_from_secondaries(group, id, &name, FD_TIMEOUT),
        };
        let planned = Planned {
            spec,
            spec_text,
            nb_rxq,
            nb_txq,
        };
        let driver = match adopting {
            Some(conf) if uses_fds && fds.is_empty() => {
                tracing::warn!(target: "shoal::ethdev", "adopting port {name}: no secondary holds its sockets; probing it again from {:?}", planned.spec_text);
                drivers::probe(group, id, &planned, !conf.no_promiscuous, &table.ports[i])?.driver
            }
            Some(_) if uses_fds => {
                tracing::info!(target: "shoal::ethdev", "adopting port {name}: took its {} sockets back from a secondary", fds.len());
                drivers::attach(group, id, &planned, c, fds, &table.ports[i])?
            }
            _ => drivers::attach(group, id, &planned, c, fds, &table.ports[i])?,
        };
        let mac = EthernetAddress(c.mac);
        out.push(Port {
            inner: Arc::new(PortInner {
                tap: Default::default(),
                id,
                name,
                kind: planned.spec.args.kind(),
                mac,
                nb_rxq,
                nb_txq,
                group: group.clone(),
                table: region.clone(),
                pool,
                driver,
            }),
        });
    }
    tracing::debug!(target: "shoal::ethdev", "attached to {} ports of the primary", out.len());
    Ok(out)
}

/// Makes a ring-backed port from existing rings (DPDK's `rte_eth_from_rings`): receive queue
/// q dequeues from `rx[q]`, transmit queue q enqueues into `tx[q]`. Primary only; secondaries
/// find the port through [`ports`] like any other.
///
/// # Errors
/// [`Error::NotPrimary`], [`Error::BadQueueCount`], or table errors.
pub fn from_rings(
    group: &impl AsRef<Group>,
    name: &str,
    rx: &[MbufRing],
    tx: &[MbufRing],
    pool: &MbufPool,
) -> Result<Port, Error> {
    let group = group.as_ref();
    if group.proc_type() != ProcType::Primary {
        return Err(Error::NotPrimary("create a port"));
    }
    for (what, n) in [("rx", rx.len()), ("tx", tx.len())] {
        if n == 0 || n > MAX_QUEUES {
            return Err(Error::BadQueueCount {
                port: name.to_owned(),
                what,
                n: n as u16,
            });
        }
    }
    if name.is_empty() || name.len() >= PORT_NAMESIZE {
        return Err(Error::BadSpec {
            spec: name.to_owned(),
            why: format!("a port name has 1 to {} bytes", PORT_NAMESIZE - 1),
        });
    }
    let region = table_region(group, true)?.expect("created");
    let table: &PortTable = region.get(0).expect("checked");
    let i = claim_slot(table, &**region.mapping(), name)?;
    {
        let mut cfgs = table.config.lock(&**region.mapping());
        let c = &mut cfgs.ports[i];
        c.driver = DriverKind::Ring as u32;
        c.nb_rxq = rx.len() as u16;
        c.nb_txq = tx.len() as u16;
        c.mac = drivers::local_mac(i as u16, 0x72);
        c.primary_pid = std::process::id();
        set_cstr(&mut c.spec, &format!("net_ring,from_rings={name}"));
        set_cstr(&mut c.pool, pool.name());
        for (q, r) in rx.iter().enumerate() {
            set_cstr(&mut c.rx_rings[q], r.ring().name());
        }
        for (q, r) in tx.iter().enumerate() {
            set_cstr(&mut c.tx_rings[q], r.ring().name());
        }
    }
    let shared = &table.ports[i];
    let mac = EthernetAddress(drivers::local_mac(i as u16, 0x72));
    let port = Port {
        inner: Arc::new(PortInner {
            tap: Default::default(),
            id: PortId(i as u16),
            name: name.to_owned(),
            kind: DriverKind::Ring,
            mac,
            nb_rxq: rx.len() as u16,
            nb_txq: tx.len() as u16,
            group: group.clone(),
            table: region.clone(),
            pool: pool.clone(),
            driver: drivers::ring::from_rings(rx.to_vec(), tx.to_vec()),
        }),
    };
    shared.ctl.set_state(state::CONFIGURED);
    port.reset_stats();
    port.start()?;
    let list = group.state::<PortList>();
    if let Some(v) = list.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        v.push(Arc::downgrade(&port.inner));
    }
    Ok(port)
}
