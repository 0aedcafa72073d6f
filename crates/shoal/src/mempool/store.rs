//! The common store of free object indices: a stack under a robust lock, with a journal that
//! makes every operation repairable after its process dies (DPDK's `stack` mempool driver is a
//! stack under a spinlock too; its ring driver cannot be repaired).
//!
//! Why not a multi-producer ring, as DPDK's default `ring_mp_mc` ops? A process killed between
//! its head reservation and its tail publication wedges every later producer of a DPDK ring for
//! good, and the objects it held are lost. Here the holder of the lock is a
//! [`crate::sync::MemberId`]; a waiter that finds it dead takes the lock over (after a bounded
//! wait, by the holder's liveness lock) and first replays or rolls back the journal, so the store
//! and the objects' owner tags are exact again before anyone uses them. With per-lcore caches the
//! store is touched once per cache fill or flush; without them its cost is one lock word and one
//! line of state, about what a ring's head and tail cost.
//!
//! Layout: a 128-byte [`StoreHeader`] (lock, count, journal), then `cap` slots of `u32`.
//!
//! Every operation runs under the lock, in this order, and a kill at each step leaves:
//!
//! | step | take `n` (pop) | give `n` (push) | a kill here leaves |
//! |---|---|---|---|
//! | 1 | read `count` = c | read `count` = c | nothing |
//! | 2 | journal `POP c n`, owner tag t | write slots `c .. c+n` | scratch slots: nothing |
//! | 3 | copy slots `c-n .. c` out | journal `PUSH c n`, tag t | a journal; `count` = c |
//! | 4 | tag the objects t | tag the objects `FREE` | a journal, some tags moved; `count` = c |
//! | 5 | `count` = c-n | `count` = c+n | a journal; the operation done |
//! | 6 | clear the journal, unlock | clear the journal, unlock | nothing |
//!
//! Repair (by whoever takes the lock over, before anything else): with a journal and `count`
//! still c, the operation did not happen: a pop's objects are tagged `FREE` again (they are
//! still in the store), a push's objects are tagged t again (they are still the dead process's,
//! and the reaper returns them by that tag). With `count` moved, it happened: a pop's objects are
//! tagged t (the dead process's, returned by the reaper), a push's `FREE`. The reaper takes each
//! store's lock before it reclaims by tag, so it never counts an object twice.
//!
//! Orderings: everything under the lock is `Relaxed`; the lock's Acquire/Release edges order
//! one holder's accesses before the next one's. A holder that died published nothing, but its
//! death is observed through the kernel (its liveness lock), after which the taker issues a
//! `SeqCst` fence ([`crate::sync::OwnerLock::lock`]): the dead holder's writes, as far as they
//! went, are visible. `count` is also read without the lock, as a snapshot for statistics.
#![allow(unsafe_code)] // a typed view of the store's bytes in the shared region

use crate::memory::{Region, Shared};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::sync::{CachePadded, OwnerLock};

use super::layout::tag;

/// Journal operation codes (top two bits of the journal word).
const OP_POP: u64 = 1;
const OP_PUSH: u64 = 2;

fn journal(op: u64, c: u32, n: u32) -> u64 {
    (op << 62) | (u64::from(n & 0x3fff_ffff) << 32) | u64::from(c)
}

fn unjournal(j: u64) -> (u64, u32, u32) {
    (j >> 62, ((j >> 32) & 0x3fff_ffff) as u32, j as u32)
}

/// The store's control block, at offset 0 of its region. One cache line pair: the lock word and
/// the state it guards travel together between CPUs.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub(crate) struct StoreHeader {
    lock: OwnerLock,
    /// Objects in the store: slots `0 .. count` hold them.
    count: AtomicU32,
    /// Slots, fixed at init.
    cap: AtomicU32,
    /// The operation in progress (see the module doc), 0 when none.
    journal: AtomicU64,
    /// The owner tag of the process that wrote the journal.
    journal_tag: AtomicU32,
    /// Operations of dead holders repaired.
    repairs: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<CachePadded<StoreHeader>>() == 128);

// SAFETY: repr(C), atomics and the OwnerLock (itself Shared) only; every bit pattern is valid
// (counts and journal entries are bounds-checked when read).
unsafe impl Shared for StoreHeader {}

/// A handle on a pool's common store.
pub(crate) struct Store {
    region: Region,
    cap: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("cap", &self.cap)
            .field("count", &self.count())
            .finish()
    }
}

/// Owner tags to keep exact as objects move: the pool's tag array, or none for a pool made
/// without owner tags.
pub(crate) type Tags<'a> = Option<&'a [AtomicU32]>;

const HDR: usize = std::mem::size_of::<CachePadded<StoreHeader>>();

impl Store {
    /// Bytes a store for `size` objects needs.
    pub(crate) fn memsize(size: u32) -> Option<usize> {
        HDR.checked_add((size as usize).checked_mul(4)?)
    }

    /// Builds an empty store in `region` (zeroed, not yet published to other processes).
    pub(crate) fn init(
        region: Region,
        name: &str,
        size: u32,
        _sp: bool,
        _sc: bool,
    ) -> Option<Store> {
        if Self::memsize(size).is_none_or(|n| n > region.len()) {
            tracing::debug!(target: "shoal::mempool", "store of {name:?}: region too small");
            return None;
        }
        let h: &StoreHeader = region.get(0)?;
        h.count.store(0, Relaxed);
        h.cap.store(size, Relaxed);
        h.journal.store(0, Relaxed);
        Self::attach(region)
    }

    /// A handle on a store built by [`Store::init`].
    pub(crate) fn attach(region: Region) -> Option<Store> {
        let h: &StoreHeader = region.get(0)?;
        let cap = h.cap.load(Relaxed);
        if Self::memsize(cap).is_none_or(|n| n > region.len()) {
            tracing::debug!(target: "shoal::mempool", "store: capacity {cap} does not fit its region");
            return None;
        }
        Some(Store { region, cap })
    }

    fn hdr(&self) -> &StoreHeader {
        self.region.get(0).expect("checked at attach")
    }

    fn slots(&self) -> &[AtomicU32] {
        // SAFETY: `cap` slots of AtomicU32 follow the 128-byte header inside the region
        // (checked at attach); the region's mapping lives as long as `self`; atomics are valid
        // for every bit pattern and may be shared with other processes.
        unsafe {
            std::slice::from_raw_parts(
                self.region.as_ptr().add(HDR) as *const AtomicU32,
                self.cap as usize,
            )
        }
    }

    /// Takes the lock, repairing what a dead holder left.
    #[inline]
    fn lock(&self, tags: Tags<'_>) -> &StoreHeader {
        let h = self.hdr();
        if h.lock.lock(&**self.region.mapping()).is_some() {
            self.repair(h, tags);
        }
        h
    }

    /// Finishes or undoes a dead holder's operation (see the module doc). Under the lock.
    #[cold]
    fn repair(&self, h: &StoreHeader, tags: Tags<'_>) {
        let j = h.journal.load(Relaxed);
        if j == 0 {
            return;
        }
        let (op, n, c) = unjournal(j);
        let t = h.journal_tag.load(Relaxed);
        let count = h.count.load(Relaxed);
        let slots = self.slots();
        let (range, committed) = match op {
            OP_POP if n <= c && c <= self.cap => (c - n..c, count == c - n),
            OP_PUSH if c.checked_add(n).is_some_and(|e| e <= self.cap) => {
                (c..c + n, count == c + n)
            }
            _ => {
                tracing::error!(target: "shoal::mempool", "common store: journal {j:#x} makes no sense; left as it is");
                h.journal.store(0, Relaxed);
                return;
            }
        };
        if !committed && count != c {
            tracing::error!(target: "shoal::mempool", "common store: count {count} fits neither side of journal {j:#x}");
        }
        let to = match (op, committed) {
            (OP_POP, true) | (OP_PUSH, false) => t,
            _ => tag::FREE,
        };
        if let Some(tags) = tags {
            for k in range {
                if let Some(tg) = tags.get(slots[k as usize].load(Relaxed) as usize) {
                    tg.store(to, Relaxed);
                }
            }
        }
        h.journal.store(0, Relaxed);
        h.repairs.fetch_add(1, Relaxed);
        tracing::warn!(
            target: "shoal::mempool",
            "common store: {} of {n} objects by a dead process {}",
            if op == OP_POP { "a take" } else { "a return" },
            if committed { "finished" } else { "undone" }
        );
    }

    /// Takes `out.len()` objects, or nothing when there are fewer, tagging them `t`.
    #[inline]
    pub(crate) fn dequeue(&self, out: &mut [u32], tags: Tags<'_>, t: u32) -> bool {
        let n = out.len() as u32;
        let h = self.lock(tags);
        let c = h.count.load(Relaxed).min(self.cap);
        if n > c {
            h.lock.unlock();
            return false;
        }
        h.journal_tag.store(t, Relaxed);
        h.journal.store(journal(OP_POP, c, n), Relaxed);
        crate::fault::point("store.take.journaled");
        let slots = &self.slots()[(c - n) as usize..c as usize];
        // One pass: each index is tagged as it is read, so the tag stores do not sit between
        // the reads of `out` (a second pass read back what the first had just written).
        match tags {
            Some(tags) => {
                for (o, s) in out.iter_mut().zip(slots) {
                    let i = s.load(Relaxed);
                    *o = i;
                    if let Some(tg) = tags.get(i as usize) {
                        tg.store(t, Relaxed);
                    }
                }
            }
            None => {
                for (o, s) in out.iter_mut().zip(slots) {
                    *o = s.load(Relaxed);
                }
            }
        }
        crate::fault::point("store.take.tagged");
        h.count.store(c - n, Relaxed);
        h.journal.store(0, Relaxed);
        h.lock.unlock();
        true
    }

    /// Adds all of `objs`, or nothing when they do not fit; tags them `FREE`. `t` is the tag
    /// they carry now (the caller's), restored if the caller dies before the push takes effect.
    #[inline]
    pub(crate) fn enqueue(&self, objs: &[u32], tags: Tags<'_>, t: u32) -> bool {
        let n = objs.len() as u32;
        let h = self.lock(tags);
        let c = h.count.load(Relaxed).min(self.cap);
        if n > self.cap - c {
            h.lock.unlock();
            return false;
        }
        let slots = &self.slots()[c as usize..(c + n) as usize];
        for (s, &o) in slots.iter().zip(objs) {
            s.store(o, Relaxed);
        }
        h.journal_tag.store(t, Relaxed);
        h.journal.store(journal(OP_PUSH, c, n), Relaxed);
        crate::fault::point("store.give.journaled");
        if let Some(tags) = tags {
            for &i in objs {
                if let Some(tg) = tags.get(i as usize) {
                    tg.store(tag::FREE, Relaxed);
                }
            }
        }
        crate::fault::point("store.give.tagged");
        h.count.store(c + n, Relaxed);
        h.journal.store(0, Relaxed);
        h.lock.unlock();
        true
    }

    /// Takes the lock and releases it: repairs a dead holder's operation, and waits for a live
    /// holder's to end. The reaper does this before it reclaims objects by their tags.
    pub(crate) fn settle(&self, tags: Tags<'_>) {
        self.lock(tags).lock.unlock();
    }

    /// Objects in the store now (a snapshot).
    pub(crate) fn count(&self) -> u32 {
        self.hdr().count.load(Relaxed).min(self.cap)
    }

    /// Operations of dead processes repaired so far.
    pub(crate) fn repairs(&self) -> u32 {
        self.hdr().repairs.load(Relaxed)
    }

    /// For fault injection in tests: runs `f` while holding the store's lock with a journal
    /// that says a pop of `n` from the top is in progress and the objects tagged `t`, as a
    /// process killed at step 4 of a take leaves it.
    #[cfg(all(test, not(loom)))]
    fn half_take(&self, n: u32, tags: Tags<'_>, t: u32) {
        let h = self.lock(tags);
        let c = h.count.load(Relaxed);
        h.journal_tag.store(t, Relaxed);
        h.journal.store(journal(OP_POP, c, n), Relaxed);
        if let Some(tags) = tags {
            for s in &self.slots()[(c - n) as usize..c as usize] {
                tags[s.load(Relaxed) as usize].store(t, Relaxed);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{MemberId, LOCAL_ME};

    fn tag_array(n: usize) -> Vec<AtomicU32> {
        (0..n).map(|_| AtomicU32::new(tag::FREE)).collect()
    }

    #[test]
    fn a_store_gives_back_everything_it_was_given() {
        let size = 2047;
        let region = Region::heap(Store::memsize(size).unwrap());
        let st = Store::init(region, "t", size, false, false).unwrap();
        let tags = tag_array(size as usize);
        let mine = tag::held(1, 1);
        let all: Vec<u32> = (0..size).collect();
        for chunk in all.chunks(1024) {
            assert!(st.enqueue(chunk, Some(&tags), mine));
        }
        assert_eq!(st.count(), size);
        let mut got = Vec::new();
        let mut one = [0u32];
        while st.dequeue(&mut one, Some(&tags), mine) {
            got.push(one[0]);
            assert_eq!(tags[one[0] as usize].load(Relaxed), mine);
        }
        got.sort_unstable();
        assert_eq!(got, all);
        assert!(st.enqueue(&all, Some(&tags), mine));
        assert!(tags.iter().all(|t| t.load(Relaxed) == tag::FREE));
        assert!(!st.enqueue(&[0], Some(&tags), mine), "over capacity");
        let mut too_many = vec![0u32; size as usize + 1];
        assert!(!st.dequeue(&mut too_many, Some(&tags), mine));
        assert_eq!(st.count(), size);
    }

    /// Sets the lock word as a process that died holding it would leave it.
    fn force_owner(st: &Store, id: MemberId) {
        assert_ne!(id, LOCAL_ME);
        st.hdr().lock.force_holder(id);
    }

    #[test]
    fn a_dead_holders_take_is_finished_or_undone_by_the_count() {
        let size = 64;
        for committed in [false, true] {
            let region = Region::heap(Store::memsize(size).unwrap());
            let st = Store::init(region, "t", size, false, false).unwrap();
            let tags = tag_array(size as usize);
            let all: Vec<u32> = (0..size).collect();
            assert!(st.enqueue(&all, Some(&tags), tag::held(0, 1)));
            let dead = tag::held(5, 3);
            st.half_take(8, Some(&tags), dead);
            if committed {
                st.hdr().count.store(size - 8, Relaxed);
            }
            force_owner(&st, MemberId::member(5, 3));
            st.settle(Some(&tags));
            let held = tags.iter().filter(|t| t.load(Relaxed) == dead).count();
            if committed {
                assert_eq!((st.count(), held), (size - 8, 8));
            } else {
                assert_eq!((st.count(), held), (size, 0));
            }
            assert_eq!(st.repairs(), 1);
            assert_eq!(st.hdr().journal.load(Relaxed), 0);
        }
    }

    #[test]
    fn a_dead_holders_return_is_finished_or_undone_by_the_count() {
        let size = 64;
        for committed in [false, true] {
            let region = Region::heap(Store::memsize(size).unwrap());
            let st = Store::init(region, "t", size, false, false).unwrap();
            let dead = tag::held(5, 3);
            let tags: Vec<AtomicU32> = (0..size).map(|_| AtomicU32::new(dead)).collect();
            // Steps 2-4 of a return of 8 objects, by hand.
            let h = st.hdr();
            for (k, s) in st.slots()[..8].iter().enumerate() {
                s.store(k as u32, Relaxed);
            }
            h.journal_tag.store(dead, Relaxed);
            h.journal.store(journal(OP_PUSH, 0, 8), Relaxed);
            for t in &tags[..4] {
                t.store(tag::FREE, Relaxed);
            }
            if committed {
                h.count.store(8, Relaxed);
            }
            force_owner(&st, MemberId::member(5, 3));
            st.settle(Some(&tags));
            let free = tags.iter().filter(|t| t.load(Relaxed) == tag::FREE).count();
            if committed {
                assert_eq!((st.count(), free), (8, 8));
            } else {
                assert_eq!((st.count(), free), (0, 0));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod stress {
    use super::*;

    #[test]
    fn two_threads_lose_nothing() {
        let size = 2047;
        let region = Region::heap(Store::memsize(size).unwrap());
        let st = Store::init(region, "t", size, false, false).unwrap();
        let tags: Vec<AtomicU32> = (0..size).map(|_| AtomicU32::new(0)).collect();
        let all: Vec<u32> = (0..size).collect();
        assert!(st.enqueue(&all, Some(&tags), 0));
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for l in 0..2u32 {
                let (st, barrier, tags) = (&st, &barrier, &tags);
                s.spawn(move || {
                    let _ = crate::sys::pin_current_thread(l as usize);
                    barrier.wait();
                    let mine = tag::held(l, 1);
                    let mut buf = [0u32; 32];
                    for _ in 0..100_000 {
                        if st.dequeue(&mut buf, Some(tags), mine) {
                            for &i in &buf {
                                assert_eq!(tags[i as usize].load(Relaxed), mine);
                            }
                            assert!(st.enqueue(&buf, Some(tags), mine));
                        }
                    }
                });
            }
        });
        assert_eq!(st.count(), size);
        let mut out = vec![0u32; size as usize];
        assert!(st.dequeue(&mut out, Some(&tags), 0));
        out.sort_unstable();
        assert_eq!(out, all);
    }
}
