//! The ring module's error type and the two data-path outcomes, [`Full`] and [`Empty`].

use super::{SyncMode, RING_NAMESIZE, RING_SZ_MASK};

/// What can go wrong when a ring is sized, created, attached or reconfigured.
///
/// The data path never returns this type: enqueue and dequeue report counts, [`Full`] or
/// [`Empty`], as DPDK returns counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `count` is 0, above [`RING_SZ_MASK`], or not a power of two without `exact_size`.
    #[error(
        "ring count {count} is invalid: it must be a power of two in 1..={max} \
         (or any count up to {max_exact} with exact_size)",
        max = RING_SZ_MASK,
        max_exact = RING_SZ_MASK / 2
    )]
    InvalidCount {
        /// The count asked for.
        count: u32,
    },
    /// Unknown flag bits, or two modes asked for one side.
    #[error("ring flags {flags:#x} hold unknown bits or two modes for one side")]
    InvalidFlags {
        /// The flags given.
        flags: u32,
    },
    /// The name does not fit in [`RING_NAMESIZE`] bytes with its terminating NUL.
    #[error("ring name {0:?} is longer than {max} bytes", max = RING_NAMESIZE - 1)]
    NameTooLong(String),
    /// The name holds a NUL byte.
    #[error("ring name {0:?} contains a NUL byte")]
    InvalidName(String),
    /// The element type cannot be stored in a ring (zero-sized, or aligned to more than 128).
    #[error("element type of {size} bytes aligned to {align} cannot be stored in a ring (need 1.. bytes, align <= 128)")]
    ElementType {
        /// `size_of::<T>()`.
        size: usize,
        /// `align_of::<T>()`.
        align: usize,
    },
    /// `htd_max` was given but neither side uses [`SyncMode::MpRts`].
    #[error("htd_max is only meaningful for an MpRts side; neither side is MpRts")]
    HtdMaxWithoutRts,
    /// The head-tail distance can only be read or set on an [`SyncMode::MpRts`] side.
    #[error("the {side} side is {mode}, not MP_RTS: it has no head-tail distance")]
    NotRts {
        /// `"prod"` or `"cons"`.
        side: &'static str,
        /// That side's mode.
        mode: SyncMode,
    },
    /// Peek and zero-copy operations exist only for SP/SC and HTS sides, as in DPDK.
    #[error("the {side} side is {mode}: peek and zero-copy need SP/SC or MP_HTS")]
    PeekUnsupported {
        /// `"prod"` or `"cons"`.
        side: &'static str,
        /// That side's mode.
        mode: SyncMode,
    },
    /// The region is smaller than [`Ring::memsize`](super::Ring::memsize) asks for.
    #[error("region of {have} bytes is too small for this ring ({need} bytes needed)")]
    RegionTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes in the region.
        have: usize,
    },
    /// The region does not start on a 128-byte boundary.
    #[error("region at {addr:#x} is not aligned to 128 bytes")]
    Misaligned {
        /// The region's address in this process.
        addr: usize,
    },
    /// The region holds no ring header (wrong magic number, or not yet initialised).
    #[error("no ring header in this region (magic {found:#x}); was the ring created?")]
    NotARing {
        /// The magic number found.
        found: u64,
    },
    /// The header was written by a build with another ring layout.
    #[error("ring layout version {theirs} differs from this binary's {ours}; rebuild both")]
    LayoutMismatch {
        /// This build's layout version.
        ours: u32,
        /// The header's.
        theirs: u32,
    },
    /// The ring holds elements of another size than `T`.
    #[error("ring {name:?} holds {theirs}-byte elements, this handle wants {ours}-byte elements")]
    ElementSizeMismatch {
        /// The ring's name.
        name: String,
        /// `size_of::<T>()`.
        ours: usize,
        /// The element size in the header.
        theirs: u32,
    },
    /// A header field is inconsistent (a corrupted or foreign header).
    #[error("ring header is corrupt: {0}")]
    Corrupt(&'static str),
    /// The ring's memzone could not be reserved or found.
    #[error(transparent)]
    Memzone(#[from] crate::memzone::Error),
}

/// A bulk enqueue (or a single one) found too little room; nothing was enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring full: {free} free slots")]
pub struct Full {
    /// Free slots seen by the attempt (DPDK's `free_space`).
    pub free: u32,
}

/// A bulk dequeue (or a single one) found too few entries; nothing was dequeued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring has only {available} entries")]
pub struct Empty {
    /// Entries seen by the attempt (DPDK's `available`).
    pub available: u32,
}
