//! The header at offset 0 of a group's segment: magic, layout version, the primary's identity,
#![allow(unsafe_code)] // implements the Shared/SharedPlain marker traits for the header types
//! the memzone registry and the process table.

use std::mem::{align_of, size_of};

use crate::memory::{Region, Shared};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{CachePadded, SharedPlain, ShmMutex};

/// `SHOALSG1`, little endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHOALSG1");
/// Memzones a group can hold (DPDK's RTE_MAX_MEMZONE is 2560; ours is per group and smaller).
pub const MAX_MEMZONES: usize = 512;
/// Processes a group can hold at once.
pub const MAX_PROCS: usize = 64;
/// Lcore ids: 0 .. MAX_LCORES.
pub const MAX_LCORES: usize = 128;
/// Bytes of a memzone name, the terminating NUL included (DPDK's RTE_MEMZONE_NAMESIZE).
pub const MEMZONE_NAMESIZE: usize = 32;

/// What a memzone holds, so that tools can interpret it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum MemzoneKind {
    /// Application bytes (`Memzone::reserve`).
    Plain = 1,
    /// A ring (`RG_<name>`).
    Ring = 2,
    /// A mempool (`MP_<name>`).
    Mempool = 3,
    /// Internal bookkeeping (port table, statistics).
    Internal = 4,
}

impl MemzoneKind {
    pub(crate) fn from_u32(v: u32) -> MemzoneKind {
        match v {
            2 => MemzoneKind::Ring,
            3 => MemzoneKind::Mempool,
            4 => MemzoneKind::Internal,
            _ => MemzoneKind::Plain,
        }
    }
}

/// One memzone registry entry.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemzoneEntry {
    /// The memzone layer's state word: free, reserved (being built), published or cancelled.
    pub used: u32,
    pub kind: u32,
    pub name: [u8; MEMZONE_NAMESIZE],
    /// Offset from the start of the segment.
    pub offset: u64,
    pub len: u64,
    pub align: u64,
    pub creator_pid: u32,
    /// Live attachments (regions handed out by reserve and lookup) in every process.
    pub attached: u32,
    /// The creator's member id (raw), so that a reservation it left unpublished when it died
    /// can be taken back.
    pub creator: u64,
    /// For a plain zone, the type its bytes were first viewed as through the public typed
    /// view (a hash of the type's name, size and alignment); 0 while never viewed. Every later
    /// view must be of the same type, so no two types ever overlay the same bytes.
    pub elt_type: u64,
}

/// The memzone registry, guarded by the header's metadata lock.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct MemzoneTable {
    pub entries: [MemzoneEntry; MAX_MEMZONES],
}

// SAFETY: repr(C) integers and byte arrays; every bit pattern is valid.
unsafe impl SharedPlain for MemzoneTable {}

impl MemzoneEntry {
    pub fn name_str(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MEMZONE_NAMESIZE);
        std::str::from_utf8(&self.name[..end]).unwrap_or("<invalid utf-8>")
    }
}

/// Slot states of the process table.
pub(crate) mod slot_state {
    pub const FREE: u32 = 0;
    pub const LIVE: u32 = 1;
    /// Seen dead; its resources are being returned.
    pub const DEAD: u32 = 2;
    /// Taken by a process (it holds the slot's liveness lock byte) that is still filling it in.
    pub const CLAIMING: u32 = 3;
}

/// One process of the group. All fields are atomics: tools read them without the lock; the
/// owner updates its heartbeat; claims and releases happen under the metadata lock.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Debug, Default)]
pub struct ProcSlot {
    pub(crate) state: AtomicU32,
    pub(crate) proc_type: AtomicU32,
    /// The pid as the process sees itself, for display: compare it only with pids of the same
    /// PID namespace (`pid_ns`). Liveness never uses it.
    pub(crate) pid: AtomicU32,
    /// Bumped each time the slot is claimed, so a reused slot is told from its predecessor.
    pub(crate) generation: AtomicU32,
    /// Inode of the process's PID namespace (`/proc/self/ns/pid`), 0 when unknown.
    pub(crate) pid_ns: AtomicU64,
    pub(crate) heartbeat_ns: AtomicU64,
    pub(crate) attached_ns: AtomicU64,
    pub(crate) lcores: [AtomicU64; MAX_LCORES / 64],
}

/// The segment header.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct SegmentHeader {
    pub magic: AtomicU64,
    pub layout_version: AtomicU64,
    /// 0 while the primary initialises, 1 once secondaries may attach.
    pub ready: AtomicU32,
    pub backing: AtomicU32,
    pub page_size: AtomicU64,
    pub seg_len: AtomicU64,
    /// First byte of the heap that memzones are carved from.
    pub heap_start: AtomicU64,
    /// The primary's pid (display only) and PID namespace.
    pub primary_pid: AtomicU32,
    pub _pad: AtomicU32,
    pub primary_ns: AtomicU64,
    /// The primary's [`crate::sync::MemberId`], set before `ready`: a secondary attaches only
    /// while that member is alive, so it never runs on a dead primary's segment.
    pub primary_id: AtomicU64,
    pub created_ns: AtomicU64,
    pub memzones: CachePadded<ShmMutex<MemzoneTable>>,
    pub procs: [CachePadded<ProcSlot>; MAX_PROCS],
}

// SAFETY: repr(C); atomics, an OwnerLock-guarded plain table; every bit pattern is valid.
unsafe impl Shared for SegmentHeader {}

impl SegmentHeader {
    /// Initialises a zeroed header in place. Only the primary calls this, before `ready`.
    ///
    /// # Safety
    /// `region` is the whole of a segment this process has just created: no other process has
    /// attached to it yet (nothing was published), and no other header lives there.
    pub(crate) unsafe fn init(
        region: &Region,
        backing: u32,
        page_size: u64,
        pid: u32,
        pid_ns: u64,
    ) -> &Self {
        let hdr: &SegmentHeader = region.get(0).expect("segment smaller than its header");
        hdr.layout_version.store(LAYOUT_VERSION, Ordering::Relaxed);
        hdr.backing.store(backing, Ordering::Relaxed);
        hdr.page_size.store(page_size, Ordering::Relaxed);
        hdr.seg_len.store(region.len() as u64, Ordering::Relaxed);
        hdr.heap_start.store(heap_start() as u64, Ordering::Relaxed);
        hdr.primary_pid.store(pid, Ordering::Relaxed);
        hdr.primary_ns.store(pid_ns, Ordering::Relaxed);
        hdr.created_ns
            .store(crate::sys::monotonic_ns(), Ordering::Relaxed);
        hdr.magic.store(MAGIC, Ordering::Relaxed);
        hdr
    }

    /// Opens the group to secondaries.
    pub fn publish(&self) {
        // R0: pairs with A0 in `is_ready`: the whole initialised header is visible to a
        // process that sees ready == 1.
        self.ready.store(1, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        // A0: pairs with R0 in `publish`.
        self.ready.load(Ordering::Acquire) == 1
    }
}

/// Where the heap starts: after the header, on a 4 KiB boundary.
pub(crate) const fn heap_start() -> usize {
    size_of::<SegmentHeader>().div_ceil(4096) * 4096
}

const fn fnv(mut h: u64, v: u64) -> u64 {
    let bytes = v.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x100000001b3);
        i += 1;
    }
    h
}

/// Hashes a list of layout facts (sizes, alignments, offsets, constants) into a version.
pub const fn layout_hash(facts: &[u64]) -> u64 {
    let mut h = 0xcbf29ce484222325;
    let mut i = 0;
    while i < facts.len() {
        h = fnv(h, facts[i]);
        i += 1;
    }
    h
}

/// The layout version of the segment's own structures (this header, the memzone table, the
/// process table). A secondary built with a different one refuses to attach. The objects that
/// live in memzones carry layout words of their own, checked when a process attaches to one
/// (a ring's `RING_LAYOUT`, a mempool's header, an mbuf pool's private area, the port table),
/// so that this module knows nothing of the layers above it.
pub const LAYOUT_VERSION: u64 = layout_hash(&[
    3, // format generation: bump on semantic changes that keep sizes
    size_of::<SegmentHeader>() as u64,
    align_of::<SegmentHeader>() as u64,
    size_of::<MemzoneEntry>() as u64,
    size_of::<ProcSlot>() as u64,
    std::mem::offset_of!(SegmentHeader, memzones) as u64,
    std::mem::offset_of!(SegmentHeader, procs) as u64,
    MAX_MEMZONES as u64,
    MAX_PROCS as u64,
    MAX_LCORES as u64,
]);
