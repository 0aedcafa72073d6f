//! Lock-free rings (under construction).

/// Layout hash of the ring structures placed in shared memory.
pub(crate) const SHARED_LAYOUT: u64 = 0;

/// One JSON object per ring of the group, for `shoal info` (name, size, capacity, count).
pub(crate) fn describe_all(
    _eal: &crate::eal::Eal,
    _zones: &[crate::memzone::MemzoneInfo],
) -> Vec<serde_json::Value> {
    Vec::new()
}
