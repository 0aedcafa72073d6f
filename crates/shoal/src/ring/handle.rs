//! Producer and consumer handles: the data path (DPDK's `rte_ring_elem_pvt.h` entry points).
#![allow(unsafe_code)] // slot copies under a reservation made by a head move

use bytemuck::Pod;
use tracing::warn;

use super::header::{Entry, HeadTail, Side, MAX_RESV};
use super::headtail::{want, Move};
use super::resv::{Holes, Stalled, State, MAX_OP};
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
    /// Multi-thread side: this handle's reservation record.
    pub(super) slot: u32,
    /// Operations in a row that moved nothing (see [`Ring::sweep`]); `u32::MAX` on a ring
    /// without an RTS side, which never sweeps.
    idle: u32,
}

/// The dequeue side of a ring (see [`Ring::consumer`]).
pub struct Consumer<T: Pod> {
    pub(super) ring: Ring<T>,
    /// Multi-thread side: this handle's reservation record.
    pub(super) slot: u32,
    /// Operations in a row that moved nothing, as for [`Producer`].
    idle: u32,
}

/// Operations in a row that move nothing after which a handle of an `MpRts` ring sweeps it for
/// dead members' operations. An RTS side whose dead operation holds publication back makes the
/// others see a full or empty ring, and nobody waits unless the head runs `htd_max` ahead (the
/// other modes always have a waiter behind a dead operation that matters: the next operation
/// of its side).
pub(super) const SWEEP_AFTER: u32 = 4096;

/// Counts an operation that moved nothing; sweeps now and then (RTS rings only: elsewhere the
/// count would cost an empty poll a store on its critical path for nothing).
#[inline(always)]
fn note_idle<T: Pod>(ring: &Ring<T>, idle: &mut u32, moved: u32) {
    if *idle == NEVER_SWEEPS {
        return;
    }
    if moved != 0 {
        // No store when there is nothing to reset.
        if *idle != 0 {
            *idle = 0;
        }
        return;
    }
    *idle += 1;
    if *idle >= SWEEP_AFTER {
        *idle = 0;
        ring.sweep();
    }
}

/// The idle count of a handle on a ring that never sweeps.
const NEVER_SWEEPS: u32 = u32::MAX;

/// The initial idle count of a handle on `ring`.
fn idle_start<T: Pod>(ring: &Ring<T>) -> u32 {
    if ring.prod_mode == SyncMode::MpRts || ring.cons_mode == SyncMode::MpRts {
        0
    } else {
        NEVER_SWEEPS
    }
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
        let h = self.ring.mem.hdr().side(true);
        if self.ring.prod_mode == SyncMode::Sp {
            release(&h.own.owner);
        } else {
            h.free_entry(self.slot);
        }
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        let h = self.ring.mem.hdr().side(false);
        if self.ring.cons_mode == SyncMode::Sp {
            release(&h.own.owner);
        } else {
            h.free_entry(self.slot);
        }
    }
}

/// What a transfer does with the reserved slots: copy in or out, and optionally run a hook
/// between the copy and the publication.
pub(super) trait Xfer<T> {
    /// True when [`Xfer::mid`] does something (the record then shows `WRITTEN` meanwhile).
    const MID: bool = false;
    /// Copies `len` values between the slots from position `pos` on and the caller's buffer
    /// from index `at` on.
    fn copy(&mut self, pos: u32, at: usize, len: usize);
    /// Runs after the copy of `vals` values, before the publication.
    fn mid(&mut self, _vals: usize) {}
}

/// An enqueue from `src`, with `hook(n)` before the publication when given.
struct Put<'a, T, F> {
    mem: &'a super::header::Mem<T>,
    src: &'a [T],
    hook: Option<F>,
}

impl<T: Pod, F: FnOnce(usize)> Xfer<T> for Put<'_, T, F> {
    const MID: bool = true;
    #[inline(always)]
    fn copy(&mut self, pos: u32, at: usize, len: usize) {
        debug_assert!(at + len <= self.src.len());
        // SAFETY: the transfer reserved slots pos .. pos + len for this thread (a head move not
        // yet published) and len <= capacity < size; at + len <= src.len() because a move
        // never takes more than asked.
        unsafe { self.mem.write(pos, self.src.get_unchecked(at..at + len)) }
    }
    #[inline(always)]
    fn mid(&mut self, vals: usize) {
        if let Some(f) = self.hook.take() {
            f(vals);
        }
    }
}

/// A plain enqueue from `src`.
struct PutPlain<'a, T> {
    mem: &'a super::header::Mem<T>,
    src: &'a [T],
}

impl<T: Pod> Xfer<T> for PutPlain<'_, T> {
    #[inline(always)]
    fn copy(&mut self, pos: u32, at: usize, len: usize) {
        debug_assert!(at + len <= self.src.len());
        // SAFETY: as in `Put::copy`.
        unsafe { self.mem.write(pos, self.src.get_unchecked(at..at + len)) }
    }
}

/// A dequeue into `dst`, with `hook(values)` before the publication when given.
struct Get<'a, T, F> {
    mem: &'a super::header::Mem<T>,
    dst: &'a mut [T],
    hook: Option<F>,
}

impl<T: Pod, F: FnOnce(&[T])> Xfer<T> for Get<'_, T, F> {
    const MID: bool = true;
    #[inline(always)]
    fn copy(&mut self, pos: u32, at: usize, len: usize) {
        debug_assert!(at + len <= self.dst.len());
        // SAFETY: the transfer reserved slots pos .. pos + len, which the producers published
        // (their tail, read with A1, is past them); len <= capacity < size; at + len <=
        // dst.len() because a move never delivers more values than asked.
        unsafe { self.mem.read(pos, self.dst.get_unchecked_mut(at..at + len)) }
    }
    #[inline(always)]
    fn mid(&mut self, vals: usize) {
        if let Some(f) = self.hook.take() {
            f(&self.dst[..vals.min(self.dst.len())]);
        }
    }
}

/// A plain dequeue into `dst`.
struct GetPlain<'a, T> {
    mem: &'a super::header::Mem<T>,
    dst: &'a mut [T],
}

impl<T: Pod> Xfer<T> for GetPlain<'_, T> {
    #[inline(always)]
    fn copy(&mut self, pos: u32, at: usize, len: usize) {
        debug_assert!(at + len <= self.dst.len());
        // SAFETY: as in `Get::copy`.
        unsafe { self.mem.read(pos, self.dst.get_unchecked_mut(at..at + len)) }
    }
}

/// The fault site of a step of a multi-thread operation.
#[inline(always)]
fn site(mode: SyncMode, prod: bool, ready: bool) -> &'static str {
    match (mode, prod, ready) {
        (SyncMode::MpRts, true, false) => "ring.mp_rts.reserved",
        (SyncMode::MpRts, true, true) => "ring.mp_rts.ready",
        (SyncMode::MpRts, false, false) => "ring.mc_rts.reserved",
        (SyncMode::MpRts, false, true) => "ring.mc_rts.ready",
        (SyncMode::MpHts, true, false) => "ring.mp_hts.reserved",
        (SyncMode::MpHts, true, true) => "ring.mp_hts.ready",
        (SyncMode::MpHts, false, false) => "ring.mc_hts.reserved",
        (SyncMode::MpHts, false, true) => "ring.mc_hts.ready",
        (_, true, false) => "ring.mp.reserved",
        (_, true, true) => "ring.mp.ready",
        (_, false, false) => "ring.mc.reserved",
        (_, false, true) => "ring.mc.ready",
    }
}

impl<T: Pod> Ring<T> {
    /// Empties the ring by moving every position back to 0 (DPDK's `rte_ring_reset`).
    ///
    /// # Safety
    /// No thread of any process may enqueue, dequeue or hold a reservation on the ring while
    /// this runs: it rewrites positions that such an operation is using, and the operation
    /// could then access slots that another one owns. Single-side claims are kept, and so are
    /// the records of multi-thread handles; holes are forgotten.
    pub unsafe fn reset(&self) {
        let h = self.mem.hdr();
        h.side(true).reset();
        h.side(false).reset();
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
    pub(super) fn sides(&self, prod: bool) -> (Side<'_>, Side<'_>, u32, SyncMode) {
        let h = self.mem.hdr();
        if prod {
            (h.side(true), h.side(false), self.capacity, self.prod_mode)
        } else {
            let mut p = h.side(true);
            p.may_hole = matches!(self.prod_mode, SyncMode::Mp | SyncMode::MpRts);
            (h.side(false), p, 0, self.cons_mode)
        }
    }

    /// Moves a side's head by up to `want` slots with the side's algorithm (peek starts, for
    /// SP/SC and HTS sides); `slot` is the handle's record (HTS); `contig`: a consumer
    /// reservation without holes.
    #[inline(always)]
    pub(super) fn move_head(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        contig: bool,
    ) -> Move {
        let (d, s, offset, mode) = self.sides(prod);
        let cap = self.capacity;
        let stall = Stalled { ring: self, prod };
        let want = want.min(MAX_OP);
        let e = d.entry(slot);
        let m = match mode {
            SyncMode::Sp => d.move_head_st(s, offset, cap, want, fixed, contig),
            SyncMode::Mp => d.move_head_mt(s, offset, cap, want, fixed, e),
            SyncMode::MpRts => d.rts_move_head(s, offset, cap, want, fixed, e, stall),
            SyncMode::MpHts => d.hts_move_head(s, offset, cap, want, fixed, contig, e, stall),
        };
        if !m.saw_holes() {
            return m;
        }
        match mode {
            SyncMode::Sp => d.move_head_st_in::<true>(s, offset, cap, want, fixed, contig),
            SyncMode::Mp => d.move_head_mt_in::<true>(s, offset, cap, want, fixed, e),
            SyncMode::MpRts => d.rts_move_head_in::<true, _>(s, offset, cap, want, fixed, e, stall),
            SyncMode::MpHts => {
                d.hts_move_head_in::<true, _>(s, offset, cap, want, fixed, contig, e, stall)
            }
        }
    }

    /// One whole enqueue (`prod`) or dequeue: head move, copy of the reserved slots (`x`),
    /// tail update; returns how many values moved and the free slots (or values) left. DPDK's
    /// `__rte_ring_do_enqueue_elem` / `__rte_ring_do_dequeue_elem` and their RTS and HTS
    /// variants. `slot` is the handle's record on a multi-thread side. The mode is matched
    /// once, so each arm is straight-line code; SP and MP are inlined into the caller, RTS and
    /// HTS (a CAS more) are called.
    #[inline(always)]
    pub(super) fn transfer<X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        x: X,
    ) -> (u32, u32) {
        self.transfer_in::<false, X>(prod, slot, want, fixed, x)
    }

    /// [`Ring::transfer`] when the producers left holes: the moves' `H` copies, out of line.
    #[cold]
    #[inline(never)]
    fn transfer_holes<X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        x: X,
    ) -> (u32, u32) {
        self.transfer_in::<true, X>(prod, slot, want, fixed, x)
    }

    #[inline(always)]
    fn transfer_in<const H: bool, X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        mut x: X,
    ) -> (u32, u32) {
        let (d, s, offset, mode) = self.sides(prod);
        let cap = self.capacity;
        match mode {
            SyncMode::Sp => {
                let m = d.move_head_st_in::<H>(s, offset, cap, want, fixed, false);
                if m.saw_holes() {
                    return self.transfer_holes(prod, slot, want, fixed, x);
                }
                self.complete(m, want, fixed, &mut x, |_, new| d.update_tail_st(new))
            }
            SyncMode::Mp => {
                if want > MAX_OP {
                    return self.transfer_big(prod, slot, want, fixed, x);
                }
                let e = d.entry(slot);
                let m = d.move_head_mt_in::<H>(s, offset, cap, want, fixed, e);
                if m.saw_holes() {
                    return self.transfer_holes(prod, slot, want, fixed, x);
                }
                let stall = Stalled { ring: self, prod };
                self.complete_mt(prod, mode, e, m, want, fixed, &mut x, |old, new| {
                    d.update_tail_mt(old, new, stall)
                })
            }
            SyncMode::MpRts | SyncMode::MpHts if H => {
                self.transfer_sync_in::<true, X>(prod, slot, want, fixed, x)
            }
            SyncMode::MpRts | SyncMode::MpHts => self.transfer_sync(prod, slot, want, fixed, x),
        }
    }

    /// [`Ring::transfer`] for the RTS and HTS modes, out of line.
    #[inline(never)]
    fn transfer_sync<X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        x: X,
    ) -> (u32, u32) {
        self.transfer_sync_in::<false, X>(prod, slot, want, fixed, x)
    }

    #[inline(always)]
    fn transfer_sync_in<const H: bool, X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        want: u32,
        fixed: bool,
        mut x: X,
    ) -> (u32, u32) {
        if want > MAX_OP {
            return self.transfer_big(prod, slot, want, fixed, x);
        }
        let (d, s, offset, mode) = self.sides(prod);
        let cap = self.capacity;
        let e = d.entry(slot);
        let stall = Stalled { ring: self, prod };
        if mode == SyncMode::MpRts {
            let m = d.rts_move_head_in::<H, _>(s, offset, cap, want, fixed, e, stall);
            if m.saw_holes() {
                return self.transfer_holes(prod, slot, want, fixed, x);
            }
            self.complete_mt(prod, mode, e, m, want, fixed, &mut x, |_, _| {
                d.rts_update_tail()
            })
        } else {
            let m = d.hts_move_head_in::<H, _>(s, offset, cap, want, fixed, false, e, stall);
            if m.saw_holes() {
                return self.transfer_holes(prod, slot, want, fixed, x);
            }
            self.complete_mt(prod, mode, e, m, want, fixed, &mut x, |_, new| {
                d.hts_set_head_tail(new)
            })
        }
    }

    /// A multi-thread request beyond what a record can describe: a burst is cut to
    /// [`MAX_OP`], a bulk is refused.
    #[cold]
    #[inline(never)]
    fn transfer_big<X: Xfer<T>>(
        &self,
        prod: bool,
        slot: u32,
        _want: u32,
        fixed: bool,
        x: X,
    ) -> (u32, u32) {
        if fixed {
            return (0, 0);
        }
        self.transfer(prod, slot, MAX_OP, false, x)
    }

    /// Copies what a single-side head move reserved and publishes it.
    #[inline(always)]
    fn complete<X: Xfer<T>>(
        &self,
        m: Move,
        want: u32,
        fixed: bool,
        x: &mut X,
        publish: impl FnOnce(u32, u32),
    ) -> (u32, u32) {
        if m.n == 0 {
            return (0, m.entries);
        }
        self.copy_reserved(m, want, fixed, x);
        if X::MID {
            x.mid(m.vals as usize);
        }
        publish(m.head, m.head.wrapping_add(m.n));
        if m.holey {
            self.clear_stale_holes();
        }
        (m.vals, m.entries - m.vals)
    }

    /// Copies and publishes what a multi-thread head move reserved (the record is `TRYING`),
    /// then records `IDLE`; a journaled operation records `WRITTEN` and `READY` around its
    /// hook.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn complete_mt<X: Xfer<T>>(
        &self,
        prod: bool,
        mode: SyncMode,
        e: &Entry,
        m: Move,
        want: u32,
        fixed: bool,
        x: &mut X,
        publish: impl FnOnce(u32, u32),
    ) -> (u32, u32) {
        if m.n == 0 {
            return (0, m.entries);
        }
        crate::fault::point(site(mode, prod, false));
        self.copy_reserved(m, want, fixed, x);
        if X::MID {
            e.set(m.head, m.n, State::Written);
            if mode == SyncMode::Mp {
                crate::fault::point(if prod {
                    "ring.mp.written"
                } else {
                    "ring.mc.written"
                });
            }
            x.mid(m.vals as usize);
            e.set(m.head, m.n, State::Ready);
        }
        crate::fault::point(site(mode, prod, true));
        publish(m.head, m.head.wrapping_add(m.n));
        e.idle();
        if m.holey {
            self.clear_stale_holes();
        }
        (m.vals, m.entries - m.vals)
    }

    /// The copy of a reservation: one run, or the runs between holes. `m` by value, and the
    /// hole runs computed out of line without `x`, so that neither has to live in memory on
    /// the fast path.
    #[inline(always)]
    fn copy_reserved<X: Xfer<T>>(&self, m: Move, want: u32, fixed: bool, x: &mut X) {
        if !m.holey {
            // A fixed move takes all or nothing, so here n == want: saying so lets a
            // single-value call compile to a single slot store.
            debug_assert!(!fixed || m.n == want);
            let n = if fixed { want } else { m.n };
            x.copy(m.head, 0, n as usize);
        } else {
            let runs = self.value_runs(m.head, m.n);
            let mut at = 0usize;
            for &(off, len) in runs.as_slice() {
                let len = (len as usize).min(m.vals as usize - at);
                if len == 0 {
                    break;
                }
                x.copy(m.head.wrapping_add(off), at, len);
                at += len;
            }
        }
    }

    /// The runs of values between the holes of a consumer reservation `[head, head + n)`.
    #[cold]
    #[inline(never)]
    fn value_runs(&self, head: u32, n: u32) -> Runs {
        // The holes of the reservation stay recorded until the consumer tail passes them,
        // which needs our publication.
        let holes = Holes::within(self.mem.hdr().side(true), head, n);
        let mut r = Runs {
            runs: [(0, 0); MAX_RESV + 1],
            len: 0,
        };
        for run in holes.runs(n) {
            if r.len < r.runs.len() {
                r.runs[r.len] = run;
                r.len += 1;
            }
        }
        r
    }
}

/// Runs of values (offset, length) between holes: at most one more than there are holes.
struct Runs {
    runs: [(u32, u32); MAX_RESV + 1],
    len: usize,
}

impl Runs {
    fn as_slice(&self) -> &[(u32, u32)] {
        &self.runs[..self.len]
    }
}

/// Claims a single side, or takes a record of a multi-thread side; the record index (0 for a
/// single side).
fn open_side(
    ht: Side<'_>,
    mode: SyncMode,
    members: &dyn Members,
    ring: &str,
    side: &str,
) -> Option<u32> {
    if mode == SyncMode::Sp {
        claim(&ht, members, ring, side).then_some(0)
    } else {
        ht.take_entry(members, ring, side)
    }
}

impl<T: Pod> Producer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        let slot = open_side(
            ring.mem.hdr().side(true),
            ring.prod_mode,
            &**ring.region().mapping(),
            &ring.name,
            "producer",
        )?;
        Some(Self {
            idle: idle_start(&ring),
            ring,
            slot,
        })
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
        let x = PutPlain { mem: &r.mem, src };
        let (n, free) = r.transfer(true, self.slot, want(src.len()), fixed, x);
        note_idle(r, &mut self.idle, n);
        (n, free)
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
    /// A burst (or, with `fixed`, bulk) enqueue that runs `before_publish(n)` after the `n`
    /// values are in their slots and before they are published, with the operation recorded
    /// meanwhile: in the side's journal for a single producer, in the handle's reservation
    /// record (`WRITTEN`) for a multi-thread side. For values that carry ownership (mbuf
    /// indices), `before_publish` marks them given away: a kill before the publication leaves a
    /// record from which the reaper (or a repairing waiter) gives them back. Returns how many
    /// were enqueued.
    pub(crate) fn enqueue_journaled(
        &mut self,
        values: &[T],
        fixed: bool,
        before_publish: impl FnOnce(usize),
    ) -> usize {
        let r = &self.ring;
        if r.prod_mode != SyncMode::Sp {
            let x = Put {
                mem: &r.mem,
                src: values,
                hook: Some(before_publish),
            };
            let (n, _) = r.transfer(true, self.slot, want(values.len()), fixed, x);
            note_idle(r, &mut self.idle, n);
            return n as usize;
        }
        let (d, s, offset, _) = r.sides(true);
        let m = d.move_head_st(s, offset, r.capacity, want(values.len()), fixed, false);
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
    /// A burst dequeue that runs `before_publish(values)` on the values taken before the slots
    /// are given back to the producers, with the operation recorded meanwhile (the side's
    /// journal for a single consumer, the handle's record for a multi-thread side). For values
    /// that carry ownership, `before_publish` claims them. A kill before the publication: on
    /// a single side, the values stay in the ring and the reaper undoes the claims from the
    /// journal; on a multi-thread side, the repair publishes the dequeue and hands the values
    /// to its sink (an HTS dequeue killed before its values were read is cancelled instead).
    /// Returns how many were dequeued.
    pub(crate) fn dequeue_journaled(
        &mut self,
        dst: &mut [T],
        before_publish: impl FnOnce(&[T]),
    ) -> usize {
        let r = &self.ring;
        if r.cons_mode != SyncMode::Sp {
            let want = want(dst.len());
            let x = Get {
                mem: &r.mem,
                dst,
                hook: Some(before_publish),
            };
            let (n, _) = r.transfer(false, self.slot, want, false, x);
            note_idle(r, &mut self.idle, n);
            return n as usize;
        }
        let (d, s, offset, _) = r.sides(false);
        let mut m = d.move_head_st(s, offset, r.capacity, want(dst.len()), false, false);
        if m.saw_holes() {
            m = d.move_head_st_in::<true>(s, offset, r.capacity, want(dst.len()), false, false);
        }
        if m.n == 0 {
            return 0;
        }
        let n = m.vals as usize;
        // Before the claims: the slots stay published until our tail store, so the journal
        // names values that are there whatever step we die at.
        d.own.journal.store(journal(m.head, m.n), Relaxed);
        crate::fault::point("ring.recv.journaled");
        let mut x = GetPlain {
            mem: &r.mem,
            dst: &mut *dst,
        };
        r.copy_reserved(m, m.n, false, &mut x);
        before_publish(&dst[..n]);
        crate::fault::point("ring.recv.claimed");
        d.update_tail_st(m.head.wrapping_add(m.n));
        d.own.journal.store(0, Relaxed);
        if m.holey {
            r.clear_stale_holes();
        }
        n
    }
}

impl<T: Pod> Consumer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        let slot = open_side(
            ring.mem.hdr().side(false),
            ring.cons_mode,
            &**ring.region().mapping(),
            &ring.name,
            "consumer",
        )?;
        Some(Self {
            idle: idle_start(&ring),
            ring,
            slot,
        })
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
        let want = want(dst.len());
        let x = GetPlain { mem: &r.mem, dst };
        let (n, left) = r.transfer(false, self.slot, want, fixed, x);
        note_idle(r, &mut self.idle, n);
        (n, left)
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
