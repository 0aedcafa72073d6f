//! The common store of free object indices: a `Ring<u32>`, multi-producer and multi-consumer
//! unless the pool's flags say otherwise (DPDK's default mempool ops, `ring_mp_mc`).
//!
//! Ring operations go through producer and consumer handles, which take `&mut self`. An lcore
//! thread keeps its own pair in this process's view of the pool (one slot per lcore id, used by
//! that lcore's registered thread only); other threads make a handle per operation. A single
//! side (`SP_PUT`, `SC_GET`) is claimed for one operation at a time, so even a broken promise of
//! single-threaded use serialises instead of corrupting the ring.
#![allow(unsafe_code)] // per-lcore handle slots behind UnsafeCell

use std::cell::UnsafeCell;

use crate::memory::{Fresh, Region, MAX_LCORES};
use crate::ring::{Consumer, Producer, Ring, RingConfig, SyncMode};
use crate::sync::Backoff;

/// One lcore's handles on the ring, made on first use.
type Handles = (Option<Producer<u32>>, Option<Consumer<u32>>);

/// A slot for one lcore's handles.
struct LcoreHandles(UnsafeCell<Handles>);

/// A handle on a pool's common store.
pub(crate) struct Store {
    ring: Ring<u32>,
    sp: bool,
    sc: bool,
    lcores: Box<[LcoreHandles]>,
}

// SAFETY: `lcores[l]` is used only by the thread registered as lcore `l` of the group in this
// process (see `crate::eal::lcore_in`), so no two threads use one slot at once; everything else
// is the ring, which synchronises itself.
unsafe impl Sync for Store {}
// SAFETY: the handles are Send; see above for the slots.
unsafe impl Send for Store {}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("ring", &self.ring).finish()
    }
}

/// The ring for `size` objects: `size + 1` rounded up to a power of two, as DPDK's
/// `ring_mp_mc` ops make it, so that every object of the pool fits.
///
/// DPDK's `MP` mode makes each thread wait for the ones that reserved before it. On these VMs,
/// two lcores that share a pool *without caches* then wait on each other for microseconds
/// (the ring yields after a short spin, and a vCPU that spins on `pause` may be descheduled),
/// which makes that case far slower than DPDK's; with caches the ring is rarely touched. Relaxed
/// tail sync (`MpRts`) avoids the waits, but needs room above `size` (a lagging consumer tail
/// counts objects twice) and lost objects under the bench profile in a two-lcore test; it is
/// left for when that is understood.
fn config(size: u32, sp: bool, sc: bool) -> RingConfig {
    let side = |single| if single { SyncMode::Sp } else { SyncMode::Mp };
    RingConfig {
        count: (size + 1).next_power_of_two(),
        prod: side(sp),
        cons: side(sc),
        ..RingConfig::new(2)
    }
}

impl Store {
    /// Bytes a store for `size` objects needs.
    pub(crate) fn memsize(size: u32) -> Option<usize> {
        Ring::<u32>::memsize(&config(size, false, false)).ok()
    }

    /// Builds an empty store in `region`.
    pub(crate) fn init(region: Fresh, name: &str, size: u32, sp: bool, sc: bool) -> Option<Store> {
        match Ring::<u32>::init(region, name, &config(size, sp, sc)) {
            Ok(ring) => Some(Self::wrap(ring)),
            Err(e) => {
                tracing::debug!(target: "shoal::mempool", "store of {name:?}: {e}");
                None
            }
        }
    }

    /// A handle on a store built by [`Store::init`].
    pub(crate) fn attach(region: Region) -> Option<Store> {
        match Ring::<u32>::attach(region) {
            Ok(ring) => Some(Self::wrap(ring)),
            Err(e) => {
                tracing::debug!(target: "shoal::mempool", "store: {e}");
                None
            }
        }
    }

    fn wrap(ring: Ring<u32>) -> Store {
        Store {
            sp: ring.prod_mode() == SyncMode::Sp,
            sc: ring.cons_mode() == SyncMode::Sp,
            ring,
            lcores: (0..MAX_LCORES)
                .map(|_| LcoreHandles(UnsafeCell::new((None, None))))
                .collect(),
        }
    }

    /// The calling lcore thread's handles (made on first use; only for multi-thread sides, so
    /// no single-side claim is ever kept).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    fn handles(&self, lcore: u32) -> Option<&mut Handles> {
        let slot = self.lcores.get(lcore as usize)?;
        // SAFETY: only the thread registered as `lcore` calls with it (type-level doc), and it
        // holds no other reference to the slot while this one lives (no reentrancy below).
        Some(unsafe { &mut *slot.0.get() })
    }

    /// Waits for the single side's claim (held only for the length of one operation).
    fn claim<H>(mut get: impl FnMut() -> Option<H>) -> H {
        let mut backoff = Backoff::new();
        loop {
            if let Some(h) = get() {
                return h;
            }
            backoff.snooze();
        }
    }

    /// Adds all of `objs`, or nothing when they do not fit.
    #[inline]
    pub(crate) fn enqueue(&self, lcore: Option<u32>, objs: &[u32]) -> bool {
        if !self.sp {
            if let Some(h) = lcore.and_then(|l| self.handles(l)) {
                if h.0.is_none() {
                    h.0 = self.ring.producer();
                }
                if let Some(p) = &mut h.0 {
                    return p.enqueue_bulk(objs).is_ok();
                }
            }
        }
        let mut p = Self::claim(|| self.ring.producer());
        p.enqueue_bulk(objs).is_ok()
    }

    /// Takes `out.len()` objects, or nothing when there are fewer.
    #[inline]
    pub(crate) fn dequeue(&self, lcore: Option<u32>, out: &mut [u32]) -> bool {
        if !self.sc {
            if let Some(h) = lcore.and_then(|l| self.handles(l)) {
                if h.1.is_none() {
                    h.1 = self.ring.consumer();
                }
                if let Some(c) = &mut h.1 {
                    return c.dequeue_bulk(out).is_ok();
                }
            }
        }
        let mut c = Self::claim(|| self.ring.consumer());
        c.dequeue_bulk(out).is_ok()
    }

    /// Objects in the store now (a snapshot).
    pub(crate) fn count(&self) -> u32 {
        self.ring.count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_store_gives_back_everything_it_was_given() {
        for (sp, sc) in [(false, false), (true, true), (true, false)] {
            let size = if cfg!(miri) { 63 } else { 2047 };
            let region = Fresh::heap(Store::memsize(size).unwrap());
            let st = Store::init(region, "t", size, sp, sc).unwrap();
            let all: Vec<u32> = (0..size).collect();
            for chunk in all.chunks(1024) {
                assert!(st.enqueue(None, chunk));
            }
            assert_eq!(st.count(), size);
            let mut got = Vec::new();
            let mut one = [0u32];
            while st.dequeue(None, &mut one) {
                got.push(one[0]);
            }
            assert_eq!(got, all, "sp {sp} sc {sc}");
            assert!(st.enqueue(None, &all));
            assert_eq!(st.count(), size);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod stress {
    use super::*;

    #[test]
    fn two_threads_lose_nothing() {
        let size = if cfg!(miri) { 63 } else { 2047 };
        let region = Fresh::heap(Store::memsize(size).unwrap());
        let st = Store::init(region, "t", size, false, false).unwrap();
        let all: Vec<u32> = (0..size).collect();
        assert!(st.enqueue(None, &all));
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for l in 0..2u32 {
                let st = &st;
                let barrier = &barrier;
                s.spawn(move || {
                    let _ = crate::sys::pin_current_thread(l as usize);
                    barrier.wait();
                    let mut buf = [0u32; 32];
                    for _ in 0..if cfg!(miri) { 300 } else { 100_000 } {
                        if st.dequeue(Some(l), &mut buf) {
                            assert!(st.enqueue(Some(l), &buf));
                        }
                    }
                });
            }
        });
        assert_eq!(st.count(), size);
        let mut out = vec![0u32; size as usize];
        assert!(st.dequeue(None, &mut out));
        out.sort_unstable();
        assert_eq!(out, all);
    }
}
