//! The data-path half of packet capture (DPDK's `rte_pdump` callbacks): when a port's
//! capture bits are armed, every process that receives or transmits on it hands a clone (a
//! reference, DPDK's `rte_pktmbuf_clone`) of each packet to the group's capture ring, stamped
//! with the wall-clock time, the port and the direction. The control half (arming, the
//! capture's owner, the ring's cleaning) is [`crate::pdump`].
//!
//! The data path never waits on the capture: a clone that finds no mbuf, or a ring with no
//! room, is dropped and counted in the capture block (`shoal_pdump_ctl`), which the capturing
//! tool reports. With nothing armed, a burst pays one relaxed load of a word on the port's
//! control line, which it reads anyway.
//!
//! # Processes and crashes
//! The capture ring (`shoal_pdump`, multi-producer, multi-consumer) and its block are made by
//! the primary before it arms any port, and live as long as the group. A process finds them by
//! name the first time it sees an armed port (one lookup per port handle, kept with the port). Clones are owned
//! by their maker until they are enqueued, and by nobody while in the ring: a process killed
//! while cloning leaves clones tagged with its slot, which the reaper returns; one killed
//! inside the enqueue is repaired by the ring's multi-producer repair. Clones a capture leaves
//! in the ring when it stops, or that a process enqueues after the taps were disarmed (it read
//! the bits just before), are freed by the primary's capture service ([`crate::pdump`]).
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | C1 | `set_capture` (primary) | `PortCtl::capture` load (relaxed) + the memzone lookup | the ring and block exist before a tap looks for them: the lookup takes the group's memzone lock, which the primary released after making them |
//!
//! The session word is read relaxed: a clone stamped with the previous session is discarded
//! by the reader, never mistaken for a packet of the new one.

#![allow(unsafe_code)] // implements the Shared marker trait for the capture block

use std::sync::{Mutex, PoisonError};

use crate::group::Group;
use crate::mbuf::{MbufBatch, MbufRing};
use crate::memory::{Region, Shared};
use crate::memzone::Memzone;
use crate::sync::atomic::{AtomicU64, Ordering};

/// The capture ring's name.
pub const RING_NAME: &str = "shoal_pdump";
/// The capture block's memzone name.
pub const CTL_NAME: &str = "shoal_pdump_ctl";
/// Capture bit: received packets.
pub const RX: u32 = 1;
/// Capture bit: transmitted packets.
pub const TX: u32 = 2;

/// Words of the capture block (`shoal_pdump_ctl`), a line of [`AtomicU64`]s.
pub mod word {
    /// The current session (0: none).
    pub const SESSION: usize = 0;
    /// The capturing process's member id ([`crate::sync::MemberId`]).
    pub const OWNER: usize = 1;
    /// Clones handed to the ring.
    pub const CAPTURED: usize = 2;
    /// Packets not captured because the ring was full.
    pub const DROP_FULL: usize = 3;
    /// Packets not captured because no mbuf was free for the clone.
    pub const DROP_NOMBUF: usize = 4;
    /// Stale clones the primary freed (left in the ring by a stopped capture).
    pub const FREED: usize = 5;
    /// The capturing process's pid (for messages).
    pub const PID: usize = 6;
}

/// Words in the capture block.
pub const WORDS: usize = 16;

/// The capture block: a line of counters ([`word`]), written with `fetch_add` by every
/// producer (only while a capture runs).
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C, align(128))]
pub struct Block {
    words: [AtomicU64; WORDS],
}

// SAFETY: repr(C); atomics only, every bit pattern valid, no pointers.
unsafe impl Shared for Block {}

impl std::ops::Deref for Block {
    type Target = [AtomicU64; WORDS];
    fn deref(&self) -> &Self::Target {
        &self.words
    }
}

/// Where the direction and session of a clone are kept: its dynamic fields 0 and 1.
pub const DYN_DIR: usize = 0;
/// See [`DYN_DIR`].
pub const DYN_SESSION: usize = 1;

pub(crate) struct Tap {
    ring: MbufRing,
    block: Region,
}

impl Tap {
    fn block(&self) -> &Block {
        self.block.get(0).expect("capture block checked at lookup")
    }
}

/// A port's handle on the capture ring, found the first time the port is armed. Kept in the
/// port (not in a thread-local), so that it is released with the port, before the process
/// leaves its group. Its lock is taken only while the port is armed.
pub(crate) type TapSlot = Mutex<Option<Tap>>;

/// Finds the capture ring and block of `eal`'s group.
pub(crate) fn lookup(group: &Group) -> Option<(MbufRing, Region)> {
    let ring = MbufRing::lookup(group, RING_NAME).ok()?;
    let mz = Memzone::lookup(group, CTL_NAME).ok()?;
    let block = mz.region().clone();
    block.get::<Block>(0)?;
    Some((ring, block))
}

fn with_tap(slot: &TapSlot, group: &Group, f: impl FnOnce(&Tap)) {
    let mut tap = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if tap.is_none() {
        *tap = lookup(group).map(|(ring, block)| Tap { ring, block });
    }
    if let Some(t) = tap.as_ref() {
        f(t)
    }
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Clones of the packets of `batch` from index `from`, stamped for port `port` and direction
/// `dir`; packets that found no mbuf for their clone are counted as drops.
pub(crate) fn clones(
    slot: &TapSlot,
    group: &Group,
    batch: &MbufBatch,
    from: usize,
    port: u16,
    dir: u32,
) -> MbufBatch {
    let mut out = MbufBatch::new();
    with_tap(slot, group, |tap| {
        let block = tap.block();
        let session = block[word::SESSION].load(Ordering::Relaxed) as u32;
        let now = realtime_ns();
        let mut nombuf = 0;
        for m in batch.iter().skip(from) {
            match m.clone_in(&m.pool()) {
                Some(mut c) => {
                    c.set_port(port);
                    c.set_timestamp(now);
                    let mut d = [0u32; 14];
                    d[DYN_DIR] = dir;
                    d[DYN_SESSION] = session;
                    c.set_dynfield(d);
                    // Cannot fail: `out` has room for every packet of `batch`.
                    let _ = out.push(c);
                }
                None => nombuf += 1,
            }
        }
        if nombuf > 0 {
            block[word::DROP_NOMBUF].fetch_add(nombuf, Ordering::Relaxed);
        }
    });
    out
}

/// Hands the first `n` clones of `clones` to the capture ring and frees the rest (packets the
/// port did not take). A full ring drops and counts.
pub(crate) fn push(slot: &TapSlot, group: &Group, mut clones: MbufBatch, n: usize) {
    clones.truncate(n);
    if clones.is_empty() {
        return;
    }
    with_tap(slot, group, |tap| {
        let total = clones.len();
        let sent = tap.ring.enqueue_burst(&mut clones);
        let block = tap.block();
        block[word::CAPTURED].fetch_add(sent as u64, Ordering::Relaxed);
        if sent < total {
            block[word::DROP_FULL].fetch_add((total - sent) as u64, Ordering::Relaxed);
        }
    });
    // What the ring did not take is dropped here, returning to its pool.
}
