//! Mempools (under construction).

/// Layout hash of the mempool structures placed in shared memory.
pub(crate) const SHARED_LAYOUT: u64 = 0;

/// Returns to their pools the objects a process slot still holds (in hand and in caches).
pub(crate) fn reclaim_slot(_whole: &crate::memory::Region, _slot: u32) {}

/// One JSON object per mempool of the group, for `shoal info` (name, size, available, in use).
pub(crate) fn describe_all(
    _eal: &crate::eal::Eal,
    _zones: &[crate::memzone::MemzoneInfo],
) -> Vec<serde_json::Value> {
    Vec::new()
}
