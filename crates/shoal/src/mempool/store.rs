//! The common store of free object indices (DPDK's mempool "ops"; the default is a ring).
//!
//! Stand-in until the ring lands: a FIFO of indices guarded by a robust owner lock. Same
//! interface as the ring-backed store that replaces it.
#![allow(unsafe_code)] // implements Shared for the store header

use crate::memory::{Region, Shared};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::OwnerLock;

#[repr(C)]
struct FifoHeader {
    lock: OwnerLock,
    /// Capacity (slots).
    cap: AtomicU32,
    head: AtomicU32,
    tail: AtomicU32,
    _pad: AtomicU32,
}

// SAFETY: repr(C), atomics only.
unsafe impl Shared for FifoHeader {}

/// A handle on a pool's common store.
pub(crate) struct Store {
    region: Region,
    cap: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("cap", &self.cap).finish()
    }
}

impl Store {
    /// Bytes a store for `size` objects needs.
    pub(crate) fn memsize(size: u32) -> Option<usize> {
        Some(32 + 4 * (size as usize + 1))
    }

    /// Builds an empty store in `region`.
    pub(crate) fn init(
        region: Region,
        _name: &str,
        size: u32,
        _sp: bool,
        _sc: bool,
    ) -> Option<Store> {
        let h: &FifoHeader = region.get(0)?;
        h.cap.store(size + 1, Ordering::Relaxed);
        Self::attach(region)
    }

    /// A handle on a store built by [`Store::init`].
    pub(crate) fn attach(region: Region) -> Option<Store> {
        let h: &FifoHeader = region.get(0)?;
        let cap = h.cap.load(Ordering::Relaxed);
        if 32 + 4 * cap as usize > region.len() {
            return None;
        }
        Some(Store { region, cap })
    }

    fn hdr(&self) -> &FifoHeader {
        self.region.get(0).expect("checked at attach")
    }

    fn slot(&self, i: u32) -> &AtomicU32 {
        self.region
            .get(32 + 4 * (i % self.cap) as usize)
            .expect("checked at attach")
    }

    /// Adds all of `objs`, or nothing when they do not fit.
    pub(crate) fn enqueue(&self, _lcore: Option<u32>, objs: &[u32]) -> bool {
        let h = self.hdr();
        h.lock.lock();
        let (head, tail) = (
            h.head.load(Ordering::Relaxed),
            h.tail.load(Ordering::Relaxed),
        );
        let used = tail.wrapping_sub(head);
        let ok = used as usize + objs.len() < self.cap as usize;
        if ok {
            for (k, &o) in objs.iter().enumerate() {
                self.slot(tail.wrapping_add(k as u32))
                    .store(o, Ordering::Relaxed);
            }
            h.tail
                .store(tail.wrapping_add(objs.len() as u32), Ordering::Relaxed);
        }
        h.lock.unlock();
        ok
    }

    /// Takes `out.len()` objects, or nothing when there are fewer.
    pub(crate) fn dequeue(&self, _lcore: Option<u32>, out: &mut [u32]) -> bool {
        let h = self.hdr();
        h.lock.lock();
        let (head, tail) = (
            h.head.load(Ordering::Relaxed),
            h.tail.load(Ordering::Relaxed),
        );
        let used = tail.wrapping_sub(head);
        let ok = used as usize >= out.len();
        if ok {
            for (k, o) in out.iter_mut().enumerate() {
                *o = self
                    .slot(head.wrapping_add(k as u32))
                    .load(Ordering::Relaxed);
            }
            h.head
                .store(head.wrapping_add(out.len() as u32), Ordering::Relaxed);
        }
        h.lock.unlock();
        ok
    }

    /// Objects in the store now (a snapshot).
    pub(crate) fn count(&self) -> u32 {
        let h = self.hdr();
        h.tail
            .load(Ordering::Relaxed)
            .wrapping_sub(h.head.load(Ordering::Relaxed))
            .min(self.cap)
    }
}
