//! Shared memory: segments (hugetlbfs or /dev/shm), the header at offset 0, regions and the
//! re-exported [`Shared`] marker (defined in [`crate::sync`]) for types that live in shared memory.

mod region;

/// Kept here too, where the marker used to live: [`crate::sync::Shared`] and its check.
pub use crate::sync::{zerocopy, AnyBits, Shared};
pub use region::{Fresh, Region};
// A whole mapping is the EAL's (its segment) or a heap block's owner; users hold regions.
pub(crate) use region::Mapping;

pub(crate) mod header;
pub(crate) mod members;
mod segment;

pub(crate) use header::layout_hash;
pub use header::{MemzoneKind, LAYOUT_VERSION, MAX_LCORES, MAX_PROCS, MEMZONE_NAMESIZE};
pub use members::MAX_GUESTS;
pub use segment::Backing;
// Segments are created and attached by `Eal::init`; applications see their memory through
// memzones and the EAL.
pub(crate) use segment::{Segment, SegmentRequest};
