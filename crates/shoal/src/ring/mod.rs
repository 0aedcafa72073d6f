//! Lock-free rings (under construction).

/// Layout hash of the ring structures placed in shared memory.
pub(crate) const SHARED_LAYOUT: u64 = 0;
