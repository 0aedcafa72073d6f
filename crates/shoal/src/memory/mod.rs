//! Shared memory: segments (hugetlbfs or /dev/shm), the header at offset 0, regions and the
//! [`Shared`] marker for types that live in shared memory.

mod region;

pub use region::{Mapping, Region, Shared};
