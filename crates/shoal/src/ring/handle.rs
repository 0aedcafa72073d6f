//! Producer and consumer handles: the data path (DPDK's `rte_ring_elem_pvt.h` entry points).
#![allow(unsafe_code)] // slot copies under a reservation made by a head move

use bytemuck::Pod;
use tracing::warn;

use super::header::HeadTail;
use super::headtail::{want, Move};
use super::{Empty, Full, Ring, SyncMode};
use crate::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use crate::sync::{Liveness, MemberId, Members};

/// Claims a single side for this process; false when a live (or undecidable) owner holds it.
/// The owner is a [`MemberId`]: its liveness lock, not a pid, says whether it still lives. A
/// dead owner's side is taken over only once the owner has been reaped: the reaper first undoes
/// what the owner's last journaled operation left half done (see [`Ring::release_dead_side`]).
/// The new owner starts from the published tail: a reservation the dead owner made but never
/// published is dropped.
fn claim(ht: &HeadTail, members: &dyn Members, ring: &str, side: &str) -> bool {
    let owner = &ht.own.owner;
    let me = members.me();
    if me.is_none() {
        warn!(target: "shoal::ring", "ring {ring:?}: a process that is not a member of the group cannot own the {side} side");
        return false;
    }
    let mut expected = 0;
    loop {
        // C1: pairs with C0 in `release`: the previous owner's head and tail writes (and its
        // slot accesses) happen before ours.
        match owner.compare_exchange(expected, me.raw(), Acquire, Relaxed) {
            Ok(_) if expected == 0 => return true,
            Ok(_) => {
                // Taken over from a dead, reaped owner: forget its unpublished reservation.
                ht.own.head.store(ht.tail.load(Relaxed), Relaxed);
                ht.own.journal.store(0, Relaxed);
                return true;
            }
            Err(cur) if cur == me.raw() => return false,
            Err(0) => expected = 0,
            Err(cur) => {
                let id = MemberId::from_raw(cur);
                if members.liveness(id) == Liveness::Dead && members.reaped(id) {
                    warn!(target: "shoal::ring", "ring {ring:?}: taking over the {side} side from dead member {id}");
                    expected = cur;
                } else {
                    return false;
                }
            }
        }
    }
}

/// Gives a single side back.
fn release(owner: &AtomicU64) {
    // C0: pairs with C1 of the next owner.
    owner.store(0, Release);
}

/// The enqueue side of a ring (see [`Ring::producer`]). One per thread: a handle is `Send`,
/// and its methods take `&mut self`.
pub struct Producer<T: Pod> {
    pub(super) ring: Ring<T>,
}

/// The dequeue side of a ring (see [`Ring::consumer`]).
pub struct Consumer<T: Pod> {
    pub(super) ring: Ring<T>,
}

impl<T: Pod> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<T: Pod> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.ring)
            .finish()
    }
}

impl<T: Pod> Drop for Producer<T> {
    fn drop(&mut self) {
        if self.ring.prod_mode == SyncMode::Sp {
            release(&self.ring.mem.hdr().prod.own.owner);
        }
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        if self.ring.cons_mode == SyncMode::Sp {
            release(&self.ring.mem.hdr().cons.own.owner);
        }
    }
}

impl<T: Pod> Ring<T> {
    /// Empties the ring by moving every position back to 0 (DPDK's `rte_ring_reset`).
    ///
    /// # Safety
    /// No thread of any process may enqueue, dequeue or hold a reservation on the ring while
    /// this runs: it rewrites positions that such an operation is using, and the operation
    /// could then access slots that another one owns. Single-side claims are kept.
    pub unsafe fn reset(&self) {
        let h = self.mem.hdr();
        h.prod.reset();
        h.cons.reset();
    }

    /// For the reaper: releases the single side `prod` (producer) or not (consumer) if the dead
    /// member `dead` owns it, after taking it over so that no other repairer runs at once.
    /// Returns the values of the journaled operation the dead owner had not published (its
    /// tail store never happened), for the caller to give back to their owners; an empty vector
    /// when there was none; `None` when `dead` does not own the side. The side then starts from
    /// its published tail, free for a new owner.
    pub(crate) fn release_dead_side(
        &self,
        prod: bool,
        dead: MemberId,
        me: MemberId,
    ) -> Option<Vec<T>> {
        let (d, _, _, mode) = self.sides(prod);
        if mode != SyncMode::Sp || dead.is_none() || me.is_none() {
            return None;
        }
        // C1, as in `claim`: the dead owner's writes, as far as they went, are ours to read
        // (its death was observed through the kernel; the fence orders that observation).
        d.own
            .owner
            .compare_exchange(dead.raw(), me.raw(), Acquire, Relaxed)
            .ok()?;
        crate::sync::atomic::fence(crate::sync::atomic::Ordering::SeqCst);
        let j = d.own.journal.load(Relaxed);
        let tail = d.tail.load(Relaxed) as u32;
        let mut vals = Vec::new();
        let (pos, n) = (j as u32, (j >> 32) as u32);
        if j != 0 && tail == pos && n <= self.capacity {
            vals = vec![T::zeroed(); n as usize];
            // SAFETY: slots pos .. pos + n: on the producer side, written by the dead owner and
            // never published, so no consumer reads them and no producer (the side is ours)
            // writes them; on the consumer side, published and not yet given back (the tail is
            // still at pos), so no producer writes them. n <= capacity < size.
            unsafe { self.mem.read(pos, &mut vals) };
        }
        d.own.journal.store(0, Relaxed);
        d.own.head.store(u64::from(tail), Relaxed);
        release(&d.own.owner);
        Some(vals)
    }

    /// The positions of the side that moves (`prod` or not), the other side's, the offset that
    /// turns the distance between them into free room (the capacity for producers, 0 for
    /// consumers), and the moving side's mode.
    #[inline(always)]
    pub(super) fn sides(&self, prod: bool) -> (&HeadTail, &HeadTail, u32, SyncMode) {
        let h = self.mem.hdr();
        if prod {
            (&h.prod, &h.cons, self.capacity, self.prod_mode)
        } else {
            (&h.cons, &h.prod, 0, self.cons_mode)
        }
    }

    /// Moves a side's head by up to `want` slots with the side's algorithm (peek starts).
    #[inline(always)]
    pub(super) fn move_head(&self, prod: bool, want: u32, fixed: bool) -> Move {
        let (d, s, offset, mode) = self.sides(prod);
        let cap = self.capacity;
        match mode {
            SyncMode::Sp => d.move_head_st(s, offset, cap, want, fixed),
            SyncMode::Mp => d.move_head_mt(s, offset, cap, want, fixed),
            SyncMode::MpRts => d.rts_move_head(s, offset, cap, want, fixed),
            SyncMode::MpHts => d.hts_move_head(s, offset, cap, want, fixed),
        }
    }

    /// One whole enqueue (`prod`) or dequeue: head move, `copy` of the reserved slots, tail
    /// update; returns how many moved and the free slots (or entries) left. DPDK's
    /// `__rte_ring_do_enqueue_elem` / `__rte_ring_do_dequeue_elem` and their RTS and HTS
    /// variants. The mode is matched once, so each arm is straight-line code; SP and MP are
    /// inlined into the caller, RTS and HTS (a CAS more) are called.
    #[inline(always)]
    pub(super) fn transfer(
        &self,
        prod: bool,
        want: u32,
        fixed: bool,
        copy: impl FnOnce(u32, usize),
    ) -> (u32, u32) {
        let (d, s, offset, mode) = self.sides(prod);
        let cap = self.capacity;
        match mode {
            SyncMode::Sp => {
                let m = d.move_head_st(s, offset, cap, want, fixed);
                complete(m, want, fixed, copy, |_, new| d.update_tail_st(new))
            }
            SyncMode::Mp => {
                let m = d.move_head_mt(s, offset, cap, want, fixed);
                complete(m, want, fixed, copy, |old, new| d.update_tail_mt(old, new))
            }
            SyncMode::MpRts | SyncMode::MpHts => {
                transfer_sync(d, s, offset, cap, mode, want, fixed, copy)
            }
        }
    }
}

/// [`Ring::transfer`] for the RTS and HTS modes, out of line.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn transfer_sync(
    d: &HeadTail,
    s: &HeadTail,
    offset: u32,
    cap: u32,
    mode: SyncMode,
    want: u32,
    fixed: bool,
    copy: impl FnOnce(u32, usize),
) -> (u32, u32) {
    if mode == SyncMode::MpRts {
        let m = d.rts_move_head(s, offset, cap, want, fixed);
        complete(m, want, fixed, copy, |_, _| d.rts_update_tail())
    } else {
        let m = d.hts_move_head(s, offset, cap, want, fixed);
        complete(m, want, fixed, copy, |_, new| d.hts_set_head_tail(new))
    }
}

/// Copies and publishes what a head move reserved.
#[inline(always)]
fn complete(
    m: Move,
    want: u32,
    fixed: bool,
    copy: impl FnOnce(u32, usize),
    publish: impl FnOnce(u32, u32),
) -> (u32, u32) {
    if m.n == 0 {
        return (0, m.entries);
    }
    // A fixed move takes all or nothing, so here n == want: saying so lets a single-value
    // call compile to a single slot store.
    debug_assert!(!fixed || m.n == want);
    let n = if fixed { want } else { m.n };
    copy(m.head, n as usize);
    publish(m.head, m.head.wrapping_add(n));
    (n, m.entries - n)
}

impl<T: Pod> Producer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        if ring.prod_mode == SyncMode::Sp
            && !claim(
                &ring.mem.hdr().prod,
                &**ring.region().mapping(),
                &ring.name,
                "producer",
            )
        {
            return None;
        }
        Some(Self { ring })
    }

    /// The ring this handle enqueues into.
    pub fn ring(&self) -> &Ring<T> {
        &self.ring
    }

    /// Enqueues up to `src.len()` values (all or none when `fixed`); returns how many and the
    /// free slots left. DPDK's `__rte_ring_do_enqueue_elem`.
    #[inline(always)]
    fn enqueue_n(&mut self, src: &[T], fixed: bool) -> (u32, u32) {
        let r = &self.ring;
        r.transfer(true, want(src.len()), fixed, |head, n| {
            debug_assert!(n <= src.len() && n <= r.capacity as usize);
            // SAFETY: the head move reserved slots head .. head + n for this thread and
            // n <= capacity < size; n <= src.len() because a move never takes more than asked.
            unsafe { r.mem.write(head, src.get_unchecked(..n)) }
        })
    }

    /// Enqueues one value (DPDK's `rte_ring_enqueue`).
    ///
    /// # Errors
    /// [`Full`] when there is no free slot.
    #[inline]
    pub fn enqueue(&mut self, value: T) -> Result<(), Full> {
        match self.enqueue_n(std::slice::from_ref(&value), true) {
            (0, free) => Err(Full { free }),
            _ => Ok(()),
        }
    }

    /// Enqueues all of `values` or none (DPDK's `rte_ring_enqueue_bulk`); returns the free slots
    /// left. An empty slice always succeeds.
    ///
    /// # Errors
    /// [`Full`] when fewer than `values.len()` slots are free; nothing was enqueued.
    #[inline]
    pub fn enqueue_bulk(&mut self, values: &[T]) -> Result<u32, Full> {
        match self.enqueue_n(values, true) {
            (0, free) if !values.is_empty() => Err(Full { free }),
            (_, free) => Ok(free),
        }
    }

    /// Enqueues as many of `values` as fit, in order (DPDK's `rte_ring_enqueue_burst`);
    /// returns how many.
    #[inline]
    pub fn enqueue_burst(&mut self, values: &[T]) -> usize {
        self.enqueue_n(values, false).0 as usize
    }

    /// [`Producer::enqueue_burst`] that also returns the free slots left (DPDK's
    /// `free_space`).
    #[inline]
    pub fn enqueue_burst_with_free(&mut self, values: &[T]) -> (usize, u32) {
        let (n, free) = self.enqueue_n(values, false);
        (n as usize, free)
    }
}

impl<T: Pod> Producer<T> {
    /// A burst (or, with `fixed`, bulk) enqueue on a single-producer side that runs
    /// `before_publish(n)` after the `n` values are in their slots and before they are
    /// published, with the operation recorded in the side's journal meanwhile. For values that
    /// carry ownership (mbuf indices), `before_publish` marks them given away: a kill before the
    /// tail store leaves a journal from which the reaper gives them back to their owner.
    /// Returns how many were enqueued.
    ///
    /// # Panics
    /// On a multi-producer side (debug builds): its journal would have several writers.
    pub(crate) fn enqueue_journaled(
        &mut self,
        values: &[T],
        fixed: bool,
        before_publish: impl FnOnce(usize),
    ) -> usize {
        let r = &self.ring;
        debug_assert!(r.prod_mode == SyncMode::Sp);
        let (d, s, offset, _) = r.sides(true);
        let m = d.move_head_st(s, offset, r.capacity, want(values.len()), fixed);
        if m.n == 0 {
            return 0;
        }
        let n = m.n as usize;
        // SAFETY: the head move reserved slots head .. head + n for this single producer, and
        // n <= values.len().
        unsafe { r.mem.write(m.head, &values[..n]) };
        // Written after the slots: a journal names only written slots. Read by the reaper after
        // this process died (ordered by the kernel and the reaper's fence), or by this owner.
        d.own.journal.store(journal(m.head, m.n), Relaxed);
        crate::fault::point("ring.send.journaled");
        before_publish(n);
        crate::fault::point("ring.send.marked");
        d.update_tail_st(m.head.wrapping_add(m.n));
        d.own.journal.store(0, Relaxed);
        n
    }
}

/// A journal word: the first position and the count of a single-side operation.
fn journal(pos: u32, n: u32) -> u64 {
    u64::from(pos) | (u64::from(n) << 32)
}

impl<T: Pod> Consumer<T> {
    /// A burst dequeue on a single-consumer side that runs `before_publish(values)` on the
    /// values taken before the slots are given back to the producers, with the operation
    /// recorded in the side's journal meanwhile. For values that carry ownership,
    /// `before_publish` claims them: a kill before the tail store leaves them in the ring, and
    /// the reaper undoes the claims from the journal. Returns how many were dequeued.
    ///
    /// # Panics
    /// On a multi-consumer side (debug builds).
    pub(crate) fn dequeue_journaled(
        &mut self,
        dst: &mut [T],
        before_publish: impl FnOnce(&[T]),
    ) -> usize {
        let r = &self.ring;
        debug_assert!(r.cons_mode == SyncMode::Sp);
        let (d, s, offset, _) = r.sides(false);
        let m = d.move_head_st(s, offset, r.capacity, want(dst.len()), false);
        if m.n == 0 {
            return 0;
        }
        let n = m.n as usize;
        // Before the claims: the slots stay published until our tail store, so the journal
        // names values that are there whatever step we die at.
        d.own.journal.store(journal(m.head, m.n), Relaxed);
        crate::fault::point("ring.recv.journaled");
        // SAFETY: the head move reserved slots head .. head + n, which the producer published;
        // n <= dst.len().
        unsafe { r.mem.read(m.head, &mut dst[..n]) };
        before_publish(&dst[..n]);
        crate::fault::point("ring.recv.claimed");
        d.update_tail_st(m.head.wrapping_add(m.n));
        d.own.journal.store(0, Relaxed);
        n
    }
}

impl<T: Pod> Consumer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        if ring.cons_mode == SyncMode::Sp
            && !claim(
                &ring.mem.hdr().cons,
                &**ring.region().mapping(),
                &ring.name,
                "consumer",
            )
        {
            return None;
        }
        Some(Self { ring })
    }

    /// The ring this handle dequeues from.
    pub fn ring(&self) -> &Ring<T> {
        &self.ring
    }

    /// Dequeues up to `dst.len()` values (all or none when `fixed`) into the front of `dst`;
    /// returns how many and the entries left. DPDK's `__rte_ring_do_dequeue_elem`.
    #[inline(always)]
    fn dequeue_n(&mut self, dst: &mut [T], fixed: bool) -> (u32, u32) {
        let r = &self.ring;
        r.transfer(false, want(dst.len()), fixed, |head, n| {
            debug_assert!(n <= dst.len() && n <= r.capacity as usize);
            // SAFETY: the head move reserved slots head .. head + n, which the producers
            // published (their tail, read with A1, is past them); n <= capacity < size and
            // n <= dst.len().
            unsafe { r.mem.read(head, dst.get_unchecked_mut(..n)) }
        })
    }

    /// Dequeues one value (DPDK's `rte_ring_dequeue`); `None` when the ring is empty.
    #[inline]
    pub fn dequeue(&mut self) -> Option<T> {
        let mut v = [T::zeroed()];
        match self.dequeue_n(&mut v, true) {
            (0, _) => None,
            _ => Some(v[0]),
        }
    }

    /// Fills all of `dst` or nothing (DPDK's `rte_ring_dequeue_bulk`); returns the entries
    /// left. An empty slice always succeeds.
    ///
    /// # Errors
    /// [`Empty`] when fewer than `dst.len()` values are there; nothing was dequeued.
    #[inline]
    pub fn dequeue_bulk(&mut self, dst: &mut [T]) -> Result<u32, Empty> {
        match self.dequeue_n(dst, true) {
            (0, available) if !dst.is_empty() => Err(Empty { available }),
            (_, available) => Ok(available),
        }
    }

    /// Dequeues as many values as are there, up to `dst.len()`, into the front of `dst`
    /// (DPDK's `rte_ring_dequeue_burst`); returns how many.
    #[inline]
    pub fn dequeue_burst(&mut self, dst: &mut [T]) -> usize {
        self.dequeue_n(dst, false).0 as usize
    }

    /// [`Consumer::dequeue_burst`] that also returns the entries left (DPDK's `available`).
    #[inline]
    pub fn dequeue_burst_with_available(&mut self, dst: &mut [T]) -> (usize, u32) {
        let (n, available) = self.dequeue_n(dst, false);
        (n as usize, available)
    }
}
