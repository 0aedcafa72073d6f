//! Rings by name in a group: `Ring::create` / `Ring::lookup` / `Ring::free` (DPDK's
//! `rte_ring_create`, `rte_ring_lookup`, `rte_ring_free`), each ring living in the memzone
//! `RG_<name>`, and the ring list that `shoal info` prints.

use super::{Error, Ring, RingConfig};
use crate::group::Group;
use crate::memory::MemzoneKind;
use crate::memzone::{Memzone, MemzoneInfo};
use bytemuck::Pod;

/// Memzone name prefix of rings (DPDK's `RTE_RING_MZ_PREFIX`).
pub const RING_MZ_PREFIX: &str = "RG_";

/// Alignment of a ring's memzone.
const RING_ZONE_ALIGN: usize = 128;

impl<T: Pod> Ring<T> {
    /// Creates a ring named `name` in the group's memory (any process may create one).
    ///
    /// # Errors
    /// Configuration errors (count, name), or the memzone's (name taken, no room).
    pub fn create(group: &impl AsRef<Group>, name: &str, cfg: &RingConfig) -> Result<Self, Error> {
        let group = group.as_ref();
        let len = Self::memsize(cfg)?;
        super::check_name(name)?;
        let zone = format!("{RING_MZ_PREFIX}{name}");
        let (res, fresh) =
            Memzone::reserve_fresh(group, &zone, len, RING_ZONE_ALIGN, MemzoneKind::Ring)?;
        // The zone is published only once its header is complete; dropped unpublished (on an
        // error), it is given back.
        let ring = Self::init(fresh, name, cfg)?;
        res.publish();
        Ok(ring)
    }

    /// Finds a ring created by any process of the group.
    ///
    /// # Errors
    /// No such ring, or its element size is not `size_of::<T>()`.
    pub fn lookup(group: &impl AsRef<Group>, name: &str) -> Result<Self, Error> {
        let group = group.as_ref();
        super::check_name(name)?;
        let mz = Memzone::lookup(group, &format!("{RING_MZ_PREFIX}{name}"))?;
        Self::attach(mz.region().clone())
    }

    /// Frees the ring named `name`, unless a handle on it (a [`Ring`], in any process) is still
    /// alive.
    ///
    /// # Errors
    /// No such ring, or it is in use ([`crate::memzone::Error::InUse`]).
    pub fn free(group: &impl AsRef<Group>, name: &str) -> Result<(), Error> {
        let group = group.as_ref();
        super::check_name(name)?;
        Memzone::free(group, &format!("{RING_MZ_PREFIX}{name}"))?;
        Ok(())
    }
}

/// Under loom the header holds loom's atomics and cannot be read from shared memory.
#[cfg(loom)]
pub(crate) fn describe_all(_group: &Group, _zones: &[MemzoneInfo]) -> Vec<serde_json::Value> {
    Vec::new()
}

/// One JSON object per ring of the group (name, size, capacity, count, modes), read from the
/// ring headers without knowing their element types.
#[cfg(not(loom))]
pub(crate) fn describe_all(group: &Group, zones: &[MemzoneInfo]) -> Vec<serde_json::Value> {
    use super::header::{RingHeader, RING_MAGIC};
    use super::SyncMode;
    use crate::sync::atomic::Ordering::{Acquire, Relaxed};
    use serde_json::json;

    zones
        .iter()
        .filter(|z| z.kind == MemzoneKind::Ring)
        .filter_map(|z| {
            let mz = Memzone::lookup(group, &z.name).ok()?;
            let h: &RingHeader = mz.region().get(0)?;
            // Pairs with the creator's release store of the magic: the description is complete.
            if h.meta.magic.load(Acquire) != RING_MAGIC {
                return None;
            }
            let m = &h.meta;
            let mode = |code: u32| {
                SyncMode::from_code(code)
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "?".into())
            };
            // Tails are read for display only; low 32 bits are the published position.
            let prod_tail = h.prod.tail.load(Relaxed) as u32;
            let cons_tail = h.cons.tail.load(Relaxed) as u32;
            let count = prod_tail.wrapping_sub(cons_tail).min(m.capacity);
            Some(json!({
                "name": super::name_from_bytes(&m.name),
                "elt_size": m.elt_size,
                "size": m.size,
                "capacity": m.capacity,
                "count": count,
                "free": m.capacity - count,
                "prod": mode(h.prod.own.sync),
                "cons": mode(h.cons.own.sync),
                "flags": m.flags,
            }))
        })
        .collect()
}

/// The regions of every ring of the group whose segment is `whole` (for the reaper, which has
/// no `Eal`). A snapshot under the metadata lock.
pub(crate) fn ring_regions(whole: &crate::memory::Region) -> Vec<crate::memory::Region> {
    let Some(hdr) = whole.get::<crate::memory::header::SegmentHeader>(0) else {
        return Vec::new();
    };
    let table = hdr.memzones.lock(&**whole.mapping());
    table
        .entries
        .iter()
        .filter(|e| e.used != 0 && e.kind == MemzoneKind::Ring as u32)
        .filter_map(|e| {
            crate::memory::Region::new(whole.mapping().clone(), e.offset as usize, e.len as usize)
        })
        .collect()
}
