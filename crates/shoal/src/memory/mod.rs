//! Shared memory: segments (hugetlbfs or /dev/shm), the header at offset 0, regions and the
//! [`Shared`] marker for types that live in shared memory.

mod region;

pub use region::{AnyBits, Fresh, Mapping, Region, Shared};
/// The crate behind [`AnyBits`], for `#[derive(zerocopy::FromBytes)]` with
/// `#[zerocopy(crate = "shoal::memory::zerocopy")]`.
pub use zerocopy;

pub(crate) mod header;
pub(crate) mod members;
mod segment;

pub use header::{
    layout_hash, MemzoneKind, LAYOUT_VERSION, MAX_LCORES, MAX_PROCS, MEMZONE_NAMESIZE,
};
pub use members::MAX_GUESTS;
pub use segment::{Backing, Segment, SegmentRequest};
