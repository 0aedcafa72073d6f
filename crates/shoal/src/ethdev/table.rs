//! The port table: one memzone (`shoal_ports`, kind Internal) that every process of a group
//! maps. It holds each port's configuration, written by the primary under the table lock,
//! and its run-time state and per-queue counters, written without locks by the processes that
//! poll the queues.
//!
//! | part | written by | read by |
//! |------|------------|---------|
//! | `config` (name, driver, spec, MAC, queue counts, pool, ring names) | primary, under the lock | any process at attach |
//! | `PortCtl` (state, link, generation) | primary | every `rx_burst`/`tx_burst` (relaxed) |
//! | `RxqShared` of queue q | the one process polling rx queue q | `stats()` anywhere |
//! | `TxqShared` of queue q | the one process sending on tx queue q | `stats()` anywhere |
//!
//! Each queue's block is its own 128-byte line, so two processes polling two queues never
//! write the same cache line. Counters are written with a relaxed load and store (one writer);
//! readers see them with a relaxed load: statistics, not synchronisation.
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | S | `PortCtl::set_state` (STARTED) | `PortCtl::state` in attach | driver memzones and fds set up before start |
#![allow(unsafe_code)] // implements the Shared/SharedPlain marker traits for the table types

use std::mem::{align_of, offset_of, size_of};

use super::spec::{MAX_QUEUES, PORT_NAMESIZE};
use crate::memory::{layout_hash, Shared, MEMZONE_NAMESIZE};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{CachePadded, SharedPlain, ShmMutex};

/// Ports a group can hold (DPDK's RTE_MAX_ETHPORTS).
pub const MAX_PORTS: usize = 32;
/// Name of the table's memzone.
pub(crate) const TABLE_NAME: &str = "shoal_ports";
/// Bytes of a `--vdev` spec kept in the table.
pub(crate) const SPEC_LEN: usize = 512;

/// Port states.
pub(crate) mod state {
    /// No port in this slot.
    pub const FREE: u32 = 0;
    /// Probed and configured, not started.
    pub const CONFIGURED: u32 = 1;
    /// Started: bursts move packets.
    pub const STARTED: u32 = 2;
    /// Stopped by the primary: bursts return 0.
    pub const STOPPED: u32 = 3;
    /// Detached (hotplug): bursts return 0, the slot is never used again, so that a handle
    /// kept by any process can never reach another port.
    pub const RETIRED: u32 = 4;
}

/// A port's configuration. Plain data behind the table lock.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct PortConfig {
    pub used: u32,
    pub driver: u32,
    pub nb_rxq: u16,
    pub nb_txq: u16,
    pub mac: [u8; 6],
    pub _pad: [u8; 6],
    pub primary_pid: u32,
    pub name: [u8; PORT_NAMESIZE],
    /// The `--vdev` spec the port was made from (NUL-padded).
    pub spec: [u8; SPEC_LEN],
    /// Mbuf pool that rx allocates from.
    pub pool: [u8; MEMZONE_NAMESIZE],
    /// Ring names of ring-backed ports (`from_rings`), per queue.
    pub rx_rings: [[u8; MEMZONE_NAMESIZE]; MAX_QUEUES],
    pub tx_rings: [[u8; MEMZONE_NAMESIZE]; MAX_QUEUES],
}

/// All ports' configurations.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct PortConfigs {
    pub ports: [PortConfig; MAX_PORTS],
}

// SAFETY: repr(C) integers and byte arrays; every bit pattern is valid.
unsafe impl SharedPlain for PortConfigs {}

/// Run-time control words of a port.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Default)]
pub(crate) struct PortCtl {
    pub state: AtomicU32,
    /// 1 when the link is up (refreshed by whoever asks).
    pub link_up: AtomicU32,
    /// Bumped by every start, so that stale per-process state can be told apart.
    pub generation: AtomicU32,
    /// Capture taps armed on this port ([`super::capture`]): bit 0 receive, bit 1 transmit.
    pub capture: AtomicU32,
}

impl PortCtl {
    pub fn state(&self) -> u32 {
        // A(S): pairs with the Release in `set_state`.
        self.state.load(Ordering::Acquire)
    }

    pub fn is_started(&self) -> bool {
        // Relaxed on the hot path: a burst racing with stop() may move a last burst, as in DPDK.
        self.state.load(Ordering::Relaxed) == state::STARTED
    }

    pub fn set_state(&self, s: u32) {
        // R(S): everything the primary set up before (memzones, table entries) is visible to a
        // process that sees the new state.
        self.state.store(s, Ordering::Release);
    }
}

/// Driver words of a queue: cursors and generator state, in shared memory so that whichever
/// process polls the queue continues where the last one stopped.
pub(crate) const DRIVER_WORDS: usize = 8;

/// One receive queue: counters and driver state, written by the process polling it.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Default)]
pub(crate) struct RxqShared {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Dropped before we saw them (kernel ring full).
    pub missed: AtomicU64,
    /// Bad frames (too big, malformed ring entries).
    pub errors: AtomicU64,
    /// No mbuf was free.
    pub nombuf: AtomicU64,
    pub drv: [AtomicU64; DRIVER_WORDS],
}

/// One transmit queue: counters and driver state, written by the process sending on it.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Default)]
pub(crate) struct TxqShared {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets the driver took and could not send (dropped).
    pub errors: AtomicU64,
    pub _pad: AtomicU64,
    pub drv: [AtomicU64; DRIVER_WORDS],
}

/// Adds to a counter that only this process writes.
#[inline]
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// A port's run-time block.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct PortShared {
    pub ctl: CachePadded<PortCtl>,
    pub rxq: [CachePadded<RxqShared>; MAX_QUEUES],
    pub txq: [CachePadded<TxqShared>; MAX_QUEUES],
}

/// The whole table.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct PortTable {
    pub config: CachePadded<ShmMutex<PortConfigs>>,
    pub ports: [PortShared; MAX_PORTS],
    /// [`SHARED_LAYOUT`] of the binary that made the table, written before the table's
    /// memzone is published and checked by every process that attaches to it.
    pub layout: AtomicU64,
}

// SAFETY: repr(C); atomics only, every bit pattern valid.
unsafe impl Shared for PortCtl {}
// SAFETY: as above.
unsafe impl Shared for RxqShared {}
// SAFETY: as above.
unsafe impl Shared for TxqShared {}
// SAFETY: as above; CachePadded and arrays of Shared types.
unsafe impl Shared for PortShared {}
// SAFETY: a lock-guarded plain table and Shared blocks; every bit pattern valid.
unsafe impl Shared for PortTable {}

#[cfg(not(loom))] // loom atomics are larger; only the real build pins the layout
const _: () = assert!(size_of::<RxqShared>() <= 128 && size_of::<TxqShared>() <= 128);

/// Layout hash of the port table, kept in the table itself.
pub(crate) const SHARED_LAYOUT: u64 = layout_hash(&[
    4, // 3: PortCtl's fourth word holds the capture bits; 4: the RETIRED state
    size_of::<super::capture::Block>() as u64,
    super::capture::WORDS as u64,
    size_of::<PortTable>() as u64,
    align_of::<PortTable>() as u64,
    size_of::<PortConfig>() as u64,
    size_of::<PortShared>() as u64,
    offset_of!(PortTable, ports) as u64,
    offset_of!(PortShared, rxq) as u64,
    offset_of!(PortShared, txq) as u64,
    offset_of!(RxqShared, drv) as u64,
    offset_of!(TxqShared, drv) as u64,
    MAX_PORTS as u64,
    MAX_QUEUES as u64,
    offset_of!(PortTable, layout) as u64,
]);

/// Reads a NUL-padded name.
pub(crate) fn cstr(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap_or("")
}

/// Writes a NUL-padded name (cut to fit, keeping a NUL).
pub(crate) fn set_cstr(dst: &mut [u8], s: &str) {
    dst.fill(0);
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}
