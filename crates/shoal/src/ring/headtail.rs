//! Head and tail moves for the four sync modes (DPDK's `rte_ring_c11_pvt.h`,
//! `rte_ring_rts_elem_pvt.h`, `rte_ring_hts_elem_pvt.h` and `rte_ring_peek_elem_pvt.h`).
//!
//! Each function works on one side's [`HeadTail`] (`self`, the side that moves) and reads the
//! other side's tail. The edge labels (`A0`, `R1`, ...) are those of the module documentation's
//! table in `ring/mod.rs`.

use super::header::{Entry, HeadTail, Side};
use super::resv::{fit_holes, Stall, State, Wait};
use crate::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// A successful or failed head move.
#[derive(Debug, Clone, Copy)]
pub(super) struct Move {
    /// Position of the first reserved slot (the old head).
    pub(super) head: u32,
    /// Slots reserved: 0, or `n` for a fixed move, `0 ..= n` for a variable one.
    pub(super) n: u32,
    /// Values in the reserved slots: `n`, less the holes of a consumer reservation.
    pub(super) vals: u32,
    /// Free slots (producer) or values (consumer) seen before the move, at most the capacity.
    pub(super) entries: u32,
    /// The producer side has hole records: the consumer copies around those in its
    /// reservation, and frees the ones it finds passed once it has published.
    pub(super) holey: bool,
}

impl Move {
    /// What a fast move returns when the producers left holes: nothing reserved, `holey`
    /// set; the caller redoes the operation out of line, with the moves' `H` copies.
    #[inline(always)]
    fn holes_seen(head: u32) -> Move {
        Move {
            head,
            n: 0,
            vals: 0,
            entries: 0,
            holey: true,
        }
    }

    /// True for [`Move::holes_seen`].
    #[inline(always)]
    pub(super) fn saw_holes(&self) -> bool {
        self.n == 0 && self.holey
    }
}

/// Low 32 bits of a position word: the position.
#[inline(always)]
pub(super) fn lo(w: u64) -> u32 {
    w as u32
}

/// High 32 bits of a position word: RTS counter or HTS head.
#[inline(always)]
pub(super) fn hi(w: u64) -> u32 {
    (w >> 32) as u32
}

#[inline(always)]
pub(super) fn pack(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Length of a slice as a request count (a ring never holds more than 2^31 values, so
/// saturating is exact).
#[inline(always)]
pub(super) fn want(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// How many of `want` slots to take when `entries` are there.
#[inline(always)]
pub(super) fn fit(want: u32, entries: u32, fixed: bool) -> u32 {
    if want <= entries {
        want
    } else if fixed {
        0
    } else {
        entries
    }
}

/// Free slots (producer: `offset` = capacity) or entries (consumer: `offset` = 0) between our
/// head and the other side's tail. Wrapping `u32` arithmetic gives the distance even when the
/// positions wrapped. The result is clamped to the capacity: a valid ring never exceeds it, and
/// the clamp keeps a corrupted header from reserving more slots than exist.
#[inline(always)]
fn room(offset: u32, other_tail: u32, head: u32, capacity: u32) -> u32 {
    offset
        .wrapping_add(other_tail)
        .wrapping_sub(head)
        .min(capacity)
}

/// Sizes a reservation at `head` given the other side's tail `stail`: the plain fit, or
/// with `H` (a consumer whose producers left holes, in the out-of-line copies of the moves)
/// around the holes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sized<const H: bool>(
    other: Side<'_>,
    offset: u32,
    stail: u32,
    head: u32,
    capacity: u32,
    want: u32,
    fixed: bool,
    contig: bool,
) -> Move {
    let entries = room(offset, stail, head, capacity);
    if H {
        return fit_holes(other, head, entries, want, fixed, contig);
    }
    let n = fit(want, entries, fixed);
    Move {
        head,
        n,
        vals: n,
        entries,
        holey: false,
    }
}

/// True when the producers (`other` of a consumer) left holes: the fast move then returns
/// [`Move::holes_seen`], and its caller redoes the whole operation out of line, so that the
/// fast path keeps nothing more live.
#[inline(always)]
fn holes<const H: bool>(other: Side<'_>) -> bool {
    // H1: the hole mask is on the line of the tail just read; never set on a consumer side
    // (the `other` of a producer) nor on a producer side of SP or HTS mode, which `may_hole`
    // says without a load.
    !H && other.may_hole && other.tail.holes.load(Relaxed) != 0
}

impl HeadTail {
    /// The published position of this side, as the other side reads it.
    #[inline(always)]
    pub(super) fn tail_acquire(&self) -> u32 {
        // A1: pairs with R0 (or R-rts/R-hts) of this side: the slot accesses before the tail
        // store that we read are complete.
        lo(self.tail.load(Acquire))
    }

    /// Single thread head move (SP/SC).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn move_head_st(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        contig: bool,
    ) -> Move {
        self.move_head_st_in::<false>(other, offset, capacity, want, fixed, contig)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn move_head_st_in<const H: bool>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        contig: bool,
    ) -> Move {
        // Single producer (consumer): only the handle that owns this side writes `head`; a
        // change of owner is ordered by C0/C1 (the claim), so Relaxed reads our own last value.
        let head = lo(self.own.head.load(Relaxed));
        let stail = other.tail_acquire();
        if holes::<H>(other) {
            return Move::holes_seen(head);
        }
        let m = sized::<H>(other, offset, stail, head, capacity, want, fixed, contig);
        if m.n != 0 {
            // Only read back by this owner (and by `info`/peek finish, which is this owner too).
            self.own
                .head
                .store(u64::from(head.wrapping_add(m.n)), Relaxed);
        }
        m
    }

    /// Multi-thread head move (MP/MC): compare-and-swap on `head`, recorded in `e` (TRYING
    /// before the CAS; IDLE again when a retry finds nothing to take).
    #[inline(always)]
    pub(super) fn move_head_mt(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        e: &Entry,
    ) -> Move {
        self.move_head_mt_in::<false>(other, offset, capacity, want, fixed, e)
    }

    #[inline(always)]
    pub(super) fn move_head_mt_in<const H: bool>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        e: &Entry,
    ) -> Move {
        // A0: pairs with R1 (the head CAS of another thread of this side). Having seen its new
        // head, we read the other side's tail no older than the one it used, so our `entries`
        // cannot underflow into a huge number.
        let mut old = self.own.head.load(Acquire);
        let mut tried = false;
        loop {
            let head = lo(old);
            let stail = other.tail_acquire();
            if holes::<H>(other) {
                if tried {
                    e.idle();
                }
                return Move::holes_seen(head);
            }
            let m = sized::<H>(other, offset, stail, head, capacity, want, fixed, false);
            if m.n == 0 {
                if tried {
                    e.idle();
                }
                return m;
            }
            e.trying(head, m.n);
            tried = true;
            // R1: pairs with A0/A2 of the next thread of this side (see A0).
            // A2 (failure): as A0, for the head value we retry with.
            match self.own.head.compare_exchange(
                old,
                u64::from(head.wrapping_add(m.n)),
                Release,
                Acquire,
            ) {
                Ok(_) => return m,
                Err(cur) => old = cur,
            }
        }
    }

    /// SP/SC tail publication.
    #[inline(always)]
    pub(super) fn update_tail_st(&self, new: u32) {
        // R0: pairs with A1 of the other side: our slot accesses happen before it sees the tail.
        self.tail.store(u64::from(new), Release);
    }

    /// MP/MC tail publication: wait for the threads that reserved before us, then publish.
    /// A long wait asks `stall` to look for a dead owner of the reservation we wait for.
    #[inline(always)]
    pub(super) fn update_tail_mt<S: Stall>(&self, old: u32, new: u32, stall: S) {
        // A3: pairs with R0 of the thread of this side that reserved just before us (or of a
        // repair on its behalf): its slot accesses happen before our R0 below, so the other
        // side's A1 sees them too (a plain store does not extend that thread's release
        // sequence; this acquire does the chaining).
        if lo(self.tail.load(Acquire)) != old {
            self.wait_tail(old, stall);
        }
        // R0: pairs with A1 of the other side.
        self.tail.store(u64::from(new), Release);
    }

    /// The waiting part of [`HeadTail::update_tail_mt`], out of line: the wait's state lives
    /// in memory only when there is a wait.
    #[cold]
    #[inline(never)]
    fn wait_tail<S: Stall>(&self, old: u32, stall: S) {
        let mut w = Wait::new();
        // A3, as in `update_tail_mt`.
        while lo(self.tail.load(Acquire)) != old {
            if w.pause() {
                stall.stalled();
            }
        }
    }

    /// RTS head wait: until the head is at most `htd_max` ahead of the tail.
    #[inline(always)]
    fn rts_head_wait<S: Stall>(&self, stall: S) -> u64 {
        // A-rts1: pairs with R-rts1 (the head CAS of another thread of this side), for the
        // same reason as A0.
        let h = self.own.head.load(Acquire);
        // Only a distance estimate for back-pressure; the tail CAS re-checks everything.
        let t = self.tail.load(Relaxed);
        // Tuning knob, changed only by `set_*_htd_max`; any value it returns is acceptable.
        if lo(h).wrapping_sub(lo(t)) <= self.own.htd_max.load(Relaxed) {
            return h;
        }
        self.rts_wait(stall)
    }

    /// The waiting part of [`HeadTail::rts_head_wait`], out of line.
    #[cold]
    #[inline(never)]
    fn rts_wait<S: Stall>(&self, stall: S) -> u64 {
        let max = self.own.htd_max.load(Relaxed);
        let mut w = Wait::new();
        loop {
            // A-rts1 and the estimate, as in `rts_head_wait`.
            let h = self.own.head.load(Acquire);
            let t = self.tail.load(Relaxed);
            if lo(h).wrapping_sub(lo(t)) <= max {
                return h;
            }
            if w.pause() {
                stall.stalled();
            }
        }
    }

    /// RTS head move: CAS of (position, counter), recorded in `e` as for MP.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rts_move_head<S: Stall>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        e: &Entry,
        stall: S,
    ) -> Move {
        self.rts_move_head_in::<false, S>(other, offset, capacity, want, fixed, e, stall)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rts_move_head_in<const H: bool, S: Stall>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        e: &Entry,
        stall: S,
    ) -> Move {
        loop {
            let old = self.rts_head_wait(stall);
            let head = lo(old);
            let stail = other.tail_acquire();
            if holes::<H>(other) {
                return Move::holes_seen(head);
            }
            let m = sized::<H>(other, offset, stail, head, capacity, want, fixed, false);
            if m.n == 0 {
                return m;
            }
            let new = pack(head.wrapping_add(m.n), hi(old).wrapping_add(1));
            e.trying(head, m.n);
            // R-rts1: pairs with A-rts1 of the next thread of this side.
            if self
                .own
                .head
                .compare_exchange(old, new, Release, Relaxed)
                .is_ok()
            {
                return m;
            }
            // Back to waiting: no record of a CAS that is not about to happen.
            e.idle();
        }
    }

    /// RTS tail update: count one more finished operation; when every started one has finished
    /// (counters equal), move the tail position to the head.
    #[inline(always)]
    pub(super) fn rts_update_tail(&self) {
        // A-rts0: pairs with R-rts0 of the other threads of this side, so the counter we
        // increment is the latest (the CAS below re-checks it).
        let mut old = self.tail.load(Acquire);
        loop {
            // The counter comparison decides; the CAS fails if anything moved meanwhile.
            let h = self.own.head.load(Relaxed);
            let cnt = hi(old).wrapping_add(1);
            let pos = if cnt == hi(h) { lo(h) } else { lo(old) };
            // R-rts0: pairs with A1 of the other side. A release read-modify-write continues the
            // release sequences of the earlier tail CASes of this side, so the other side also
            // sees the slot accesses of the threads that finished before us.
            match self
                .tail
                .compare_exchange(old, pack(pos, cnt), Release, Acquire)
            {
                Ok(_) => return,
                Err(cur) => old = cur,
            }
        }
    }

    /// HTS head wait: until no operation of this side is in flight (head == tail).
    #[inline(always)]
    fn hts_head_wait<S: Stall>(&self, stall: S) -> u64 {
        // A-hts0: pairs with R-hts1 and R-hts0 of the previous thread of this side: its slot
        // accesses and its view of the other side's tail are visible to us.
        let w = self.tail.load(Acquire);
        if lo(w) == hi(w) {
            return w;
        }
        self.hts_wait(stall)
    }

    /// The waiting part of [`HeadTail::hts_head_wait`], out of line.
    #[cold]
    #[inline(never)]
    fn hts_wait<S: Stall>(&self, stall: S) -> u64 {
        let mut wait = Wait::new();
        loop {
            // A-hts0, as in `hts_head_wait`.
            let w = self.tail.load(Acquire);
            if lo(w) == hi(w) {
                return w;
            }
            if wait.pause() {
                stall.stalled();
            }
        }
    }

    /// HTS head move: CAS of the (tail, head) word, only when no operation is in flight,
    /// recorded in `e` as for MP. `contig` (peek): a consumer reservation without holes.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hts_move_head<S: Stall>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        contig: bool,
        e: &Entry,
        stall: S,
    ) -> Move {
        self.hts_move_head_in::<false, S>(other, offset, capacity, want, fixed, contig, e, stall)
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hts_move_head_in<const H: bool, S: Stall>(
        &self,
        other: Side<'_>,
        offset: u32,
        capacity: u32,
        want: u32,
        fixed: bool,
        contig: bool,
        e: &Entry,
        stall: S,
    ) -> Move {
        loop {
            let old = self.hts_head_wait(stall);
            let head = hi(old);
            let stail = other.tail_acquire();
            if holes::<H>(other) {
                return Move::holes_seen(head);
            }
            let m = sized::<H>(other, offset, stail, head, capacity, want, fixed, contig);
            if m.n == 0 {
                return m;
            }
            e.trying(head, m.n);
            // R-hts1: pairs with A-hts0 of the next thread of this side. The tail half is
            // unchanged, so the other side sees nothing new.
            if self
                .tail
                .compare_exchange(old, pack(lo(old), head.wrapping_add(m.n)), Release, Relaxed)
                .is_ok()
            {
                return m;
            }
            e.idle();
        }
    }

    /// HTS tail update (and peek finish): head and tail both become `new`. Between our head move
    /// and this store no other thread writes the word (they wait for head == tail).
    #[inline(always)]
    pub(super) fn hts_set_head_tail(&self, new: u32) {
        // R-hts0: pairs with A1 of the other side and A-hts0 of this side.
        self.tail.store(pack(new, new), Release);
    }

    /// SP/SC peek finish: head and tail both become `new` (releasing any reserved slots past it).
    #[inline(always)]
    pub(super) fn st_set_head_tail(&self, new: u32) {
        // Owner-only field, as in `move_head_st`.
        self.own.head.store(u64::from(new), Relaxed);
        self.update_tail_st(new);
    }

    /// Head and tail positions for display, plus the RTS counters.
    pub(super) fn snapshot(&self) -> (u64, u64) {
        // A snapshot for display; nothing is accessed on the strength of it.
        (self.own.head.load(Relaxed), self.tail.load(Relaxed))
    }
}

impl Side<'_> {
    /// Resets positions to 0 (DPDK's `reset_headtail`), and forgets holes and the operations
    /// of records (handles keep their records); the caller guarantees nobody else uses the
    /// ring.
    pub(super) fn reset(&self) {
        for e in self.resv {
            let hole = matches!(
                super::resv::Op::unpack(e.op.load(Relaxed)).state,
                State::Hole | State::HolePending
            );
            e.op.store(0, Relaxed);
            if hole {
                e.member.store(0, Relaxed);
            }
        }
        self.tail.holes.store(0, Relaxed);
        // R-reset: publishes the zeroed positions together; users resynchronise through
        // whatever told them the reset was done.
        self.own.head.store(0, Release);
        self.tail.store(0, Release);
    }
}
