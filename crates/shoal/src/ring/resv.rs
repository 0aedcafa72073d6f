//! Reservation records: how a multi-thread side (`Mp`, `MpRts`, `MpHts`) survives a process
//! killed in the middle of an operation.
//!
//! # Records
//!
//! Each multi-thread side has [`MAX_RESV`] (64) records of 16 bytes, a 64-byte line each, in
//! the ring header after the lines of the data path ([`Entry`]). A [`super::Producer`] or
//! [`super::Consumer`] of such a side takes a free record when it is made (a compare-and-swap
//! of the record's member from 0 to this process's [`MemberId`]; a record of a dead member that
//! holds no operation is taken over) and frees it when it is dropped; with every record taken,
//! [`super::Ring::producer`] (or `consumer`) returns `None`, as DPDK bounds its threads by
//! `RTE_MAX_LCORE`.
//!
//! An operation writes its record, one 64-bit store of (position, count, state) to a line that
//! only its handle writes, at each of these steps:
//!
//! | step | state | fault sites (`crate::fault`) |
//! |------|-------|------------------------------|
//! | before the head CAS (position seen, count it will take) | `TRYING` | |
//! | the CAS won, nothing written or read yet | (still `TRYING`) | `ring.{mp,mc}{,_rts,_hts}.reserved` |
//! | journaled operations (rings of mbufs): slots written / values read, the caller's hook (marking mbufs in flight / claiming them) about to run | `WRITTEN` | `ring.mp.written`, `ring.mc.written` |
//! | journaled operations: hook run | `READY` | |
//! | slots written / values read, publication next | (`TRYING`, or `READY`) | `ring.{mp,mc}{,_rts,_hts}.ready` |
//! | after the tail publication | `IDLE` | |
//!
//! A plain operation thus costs two stores (`TRYING`, `IDLE`), both to a line that its handle
//! owns. A CAS that fails sets the record back to `IDLE` before the handle waits again (MP
//! retries at once and rewrites it), so a `TRYING` record is an operation about to CAS, or one
//! that won and has not published yet.
//!
//! # Who waits, who repairs
//!
//! No loop waits on another thread of the side without, after about a millisecond, looking at
//! the records of the operation it waits for and asking [`Members::liveness`] about their
//! members. A dead member's operation is then finished on its behalf by the waiter, by the
//! reaper through [`super::Ring::repair_dead_reservations`], or, on an `MpRts` ring, by a
//! handle whose operations keep finding nothing to do (every few thousand of them). The
//! repairer first takes the record over with a CAS of its member from the dead one to itself,
//! so that exactly one repairer works on an operation; a repairer that dies in turn is a dead
//! member whose record the next one takes over.
//!
//! | mode | what a waiter waits for | how its record is found |
//! |------|-------------------------|-------------------------|
//! | `Mp` | the operation reserved at the current tail | the record at that position (tail != head) |
//! | `MpRts` | any unfinished operation (the tail counter lags the head counter) | every record, `TRYING` and `READY` ones decided by counting (below) |
//! | `MpHts` | the operation in flight, `[tail, head)` | the records at the tail position |
//!
//! What a kill at each step leaves, and what the repair does:
//!
//! | killed at | producer side | consumer side |
//! |-----------|---------------|---------------|
//! | before the CAS, or after losing it | nothing reserved; the record is freed (it shows a position that the tail reaches without it, or that nothing reserved) | the same |
//! | `TRYING` after winning (`reserved`, `ready` sites) | slots reserved, written or not. MP/RTS: the range becomes a **hole** and the tail is published over it; HTS: the reservation is cancelled (head back to the tail) | values reserved, maybe read. MP/RTS: published as consumed, the values handed to the repairer's sink; HTS: cancelled, the values stay in the ring for the next consumer |
//! | `WRITTEN` (`written` site) | slots written, the hook (marking mbufs in flight) maybe partly run: a hole (HTS: cancelled), the values handed to the sink | values read, the hook (claiming mbufs) maybe partly run: published as consumed, the values handed to the sink |
//! | `READY` | slots written, hook run: published on the dead producer's behalf (its values are delivered) | hook run: published on its behalf |
//! | after the publication | the record is freed | the same |
//! | a repairer, inside a repair | the next repairer takes the record over and finishes the repair (`HOLE_PENDING`: the hole is recorded, its publication maybe not) | the same |
//!
//! The *sink* of a waiter is its ring handle's orphan hook (a ring of mbufs gives the mbufs
//! still in flight back to their pool, see `mbuf/ring.rs`); the reaper collects the values and
//! returns them to the mbuf layer, which gives them to the dead member's tag. Mbufs that the
//! dead process still held (not yet marked in flight, or already claimed) carry its tag, and
//! the reaper reclaims them by it.
//!
//! # Holes
//!
//! A hole is a range of producer positions published without values. It is described by the
//! record of the dead reservation itself (state `HOLE_PENDING` while the repair publishes it,
//! then `HOLE`), and by a bit per record in [`super::header::TailLine::holes`], on the line of
//! the producer tail that consumers read anyway: with no bit set, a dequeue costs one load more
//! from a line it already has. With bits set, a consumer redoes its operation out of line: it
//! sizes its reservation to take the values it wants plus the holes among them (a bulk dequeue
//! still returns all or none of the values it asks for, and a burst takes trailing holes too),
//! copies around the holes and publishes the whole range. Zero-copy and peek dequeues (SC and
//! HTS) never see a hole: leading holes are consumed first, and a reservation stops before the
//! next one. No slot value is special, so any element type works. A hole record is freed (bit
//! cleared, then member) by the first consumer or repairer that sees the consumer tail past
//! it; a record holding a hole serves no handle until then.
//!
//! # Ambiguity
//!
//! A `TRYING` record does not say whether its CAS won; the position evidence does:
//! - `Mp`: the owner of the stuck tail position `t` has its record at `t` until it publishes;
//!   a record whose position the tail has passed, or at `t` while the head is at `t`, is not in
//!   flight. A lone dead record at `t` is the owner. Two dead `TRYING` records at `t` (a winner
//!   and a loser that died within the few instructions after its failed CAS) are told apart by
//!   where the next reservation (record or head) starts; failing that an error is logged and
//!   the one with the lowest count is taken.
//! - `MpRts`: from a snapshot of head, tail and records that did not change while it was read,
//!   the number of operations in flight (head counter minus tail counter), the `WRITTEN`
//!   records (certainly in flight) and the `TRYING`, `READY` and `HOLE_PENDING` ones (in flight
//!   or not): when the counts say that all of the latter are in flight, or none, the dead ones
//!   are finished, or freed; otherwise the repair waits for the live ones to move on. Two
//!   deaths that leave one dead record in flight and one not, at once, are logged and left.
//! - `MpHts`: the operation in flight is `[tail, head)`; the records at the tail position are
//!   its owner's and those of losers, all taken over before anything is done, and the most
//!   advanced decides (losers are `TRYING`: cancelled, the same as an owner that wrote
//!   nothing).
//!
//! Loom models cannot see processes: under `cfg(loom)` waits never look at records; the
//! records are still written.
#![allow(unsafe_code)] // reads the slots of a dead process's reservation

use std::sync::Arc;

use bytemuck::Pod;
use tracing::{error, warn};

use super::header::{Entry, Side, MAX_RESV};
use super::headtail::{fit, hi, lo, pack, Move};
use super::{Ring, SyncMode};
use crate::sync::atomic::{
    fence,
    Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst},
};
use crate::sync::{Liveness, MemberId, Members};

/// Largest count one operation of a multi-thread side moves (the record has 29 bits for it).
pub(super) const MAX_OP: u32 = (1 << 29) - 1;

/// A record's state (top 3 bits of its operation word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// No operation.
    Idle,
    /// About to CAS the head for (position, count), or won it and not yet published.
    Trying,
    /// Journaled operations: slots written or values read; the caller's hook is running.
    Written,
    /// Journaled operations: slots written or values read, hook run: the publication comes
    /// next.
    Ready,
    /// A repair recorded a hole here and may not have published it yet.
    HolePending,
    /// A hole, published, not yet passed by the consumers.
    Hole,
}

/// An unpacked operation word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Op {
    pub(super) pos: u32,
    pub(super) n: u32,
    pub(super) state: State,
}

impl Op {
    #[inline(always)]
    pub(super) fn pack(pos: u32, n: u32, state: State) -> u64 {
        let s = match state {
            State::Idle => 0u64,
            State::Trying => 1,
            State::Written => 3,
            State::Ready => 4,
            State::HolePending => 5,
            State::Hole => 6,
        };
        u64::from(pos) | (u64::from(n & MAX_OP) << 32) | (s << 61)
    }

    /// The operation in a word read from shared memory; an unknown state reads as `Idle` with
    /// its bits kept, so that nothing is done on the strength of it.
    pub(super) fn unpack(w: u64) -> Op {
        let state = match w >> 61 {
            1 => State::Trying,
            3 => State::Written,
            4 => State::Ready,
            5 => State::HolePending,
            6 => State::Hole,
            _ => State::Idle,
        };
        Op {
            pos: w as u32,
            n: ((w >> 32) as u32) & MAX_OP,
            state,
        }
    }

    /// An operation a repair may have to finish (not idle, not a published hole).
    fn active(self) -> bool {
        !matches!(self.state, State::Idle | State::Hole)
    }
}

impl Entry {
    /// `TRYING` (position, count), before the head CAS.
    #[inline(always)]
    pub(super) fn trying(&self, pos: u32, n: u32) {
        // E0: sequenced before the head CAS (R1, R-rts1, R-hts1), so a thread that acquires
        // the head that this CAS made (A0, A-rts1, A-hts0) sees the record. Release (E1) as
        // well: a repairer that sees this record sees the `IDLE` before it, hence the
        // publication of the handle's previous operation.
        self.op.store(Op::pack(pos, n, State::Trying), Release);
    }

    /// Any later state.
    #[inline(always)]
    pub(super) fn set(&self, pos: u32, n: u32, state: State) {
        // E1: pairs with the Acquire loads of repairers: a repairer that sees `READY` sees the
        // slot writes and the hook's effects before it (and publishes them with its own
        // release), one that sees `WRITTEN` sees the slot writes.
        self.op.store(Op::pack(pos, n, state), Release);
    }

    /// Back to `IDLE` (after the publication, or after a failed CAS).
    #[inline(always)]
    pub(super) fn idle(&self) {
        // E1, as in `set`: a repairer that sees `IDLE` sees the tail publication before it.
        self.op.store(0, Release);
    }

    /// Frees the record (after a repair, or when its handle is dropped).
    fn free(&self) {
        self.op.store(0, Release);
        // E2: pairs with the Acquire CAS that takes a free record: the next holder sees
        // `IDLE`.
        self.member.store(0, Release);
    }

    /// Takes the record over from the dead member `dead`; returns its operation word as the
    /// dead member (or dead repairer) left it.
    fn take_over(&self, dead: u64, me: MemberId) -> Option<u64> {
        // E3: Acquire, and the fence: the dead process's writes are visible (its death was
        // observed through the kernel, which the fence orders after them).
        self.member
            .compare_exchange(dead, me.raw(), Acquire, Relaxed)
            .ok()?;
        fence(SeqCst);
        Some(self.op.load(Acquire))
    }
}

impl Side<'_> {
    /// This side's record `slot` (a handle's own index, always below [`MAX_RESV`]).
    #[inline(always)]
    pub(super) fn entry(&self, slot: u32) -> &Entry {
        &self.resv[slot as usize & (MAX_RESV - 1)]
    }

    /// Takes a record for a new handle of this multi-thread side.
    pub(super) fn take_entry(&self, members: &dyn Members, ring: &str, side: &str) -> Option<u32> {
        let me = members.me();
        if me.is_none() {
            warn!(target: "shoal::ring", "ring {ring:?}: a process that is not a member of the group cannot hold a {side} handle");
            return None;
        }
        for (i, e) in self.resv.iter().enumerate() {
            // E2: pairs with the release in `free`.
            if e.member.load(Relaxed) == 0
                && e.member
                    .compare_exchange(0, me.raw(), Acquire, Relaxed)
                    .is_ok()
            {
                return Some(i as u32);
            }
        }
        // Records that dead members left without an operation.
        for (i, e) in self.resv.iter().enumerate() {
            let m = e.member.load(Relaxed);
            if m == 0
                || m == me.raw()
                || members.liveness(MemberId::from_raw(m)) != Liveness::Dead
                || e.op.load(Acquire) != 0
            {
                continue;
            }
            if let Some(w) = e.take_over(m, me) {
                if w != 0 {
                    // Raced with a repair that finished and reused it: not ours to keep.
                    e.member.store(m, Release);
                    continue;
                }
                // A hole bit left by a clearer that died after freeing the hole: nobody else
                // can set bit i while we hold record i.
                self.tail.holes.fetch_and(!(1u64 << i), Release);
                return Some(i as u32);
            }
        }
        warn!(target: "shoal::ring", "ring {ring:?}: all {MAX_RESV} {side} records are taken; no new handle");
        None
    }

    /// Gives a handle's record back.
    pub(super) fn free_entry(&self, slot: u32) {
        let e = self.entry(slot);
        if Op::unpack(e.op.load(Relaxed)).active() {
            // An operation was cut short by a panic: leave it for a repair once this process
            // has died (it counts as a preempted thread until then).
            error!(target: "shoal::ring", "a ring handle was dropped in the middle of an operation");
            return;
        }
        e.free();
    }
}

/// The back-off of a wait for another thread of the side, which says when to look for a dead
/// owner: spin, then yield, and about every millisecond of waiting, check.
pub(super) struct Wait {
    spins: u32,
    #[cfg(not(loom))]
    next: Option<std::time::Instant>,
}

/// How long a wait goes on before it checks the liveness of what it waits for.
#[cfg(not(loom))]
const STALL: std::time::Duration = std::time::Duration::from_millis(1);

impl Wait {
    #[inline(always)]
    pub(super) fn new() -> Self {
        Self {
            spins: 0,
            #[cfg(not(loom))]
            next: None,
        }
    }

    /// One step of the wait; true when it is time to check on the owner.
    #[inline]
    pub(super) fn pause(&mut self) -> bool {
        #[cfg(loom)]
        {
            let _ = self.spins;
            loom::thread::yield_now();
            false
        }
        #[cfg(not(loom))]
        {
            const SPINS_BEFORE_YIELD: u32 = 256;
            if self.spins < SPINS_BEFORE_YIELD {
                self.spins += 1;
                std::hint::spin_loop();
                return false;
            }
            std::thread::yield_now();
            self.spins = self.spins.wrapping_add(1);
            if !self.spins.is_multiple_of(64) {
                return false;
            }
            self.clock()
        }
    }

    #[cfg(not(loom))]
    #[cold]
    fn clock(&mut self) -> bool {
        let now = std::time::Instant::now();
        match self.next {
            Some(t) if now < t => false,
            Some(_) => {
                self.next = Some(now + STALL);
                true
            }
            None => {
                self.next = Some(now + STALL);
                false
            }
        }
    }
}

/// What a wait calls when it has waited long: look for a dead owner and repair. Passed by
/// value (two words in registers), so that the fast path stores nothing for it.
pub(super) trait Stall: Copy {
    fn stalled(&self);
}

/// The [`Stall`] of a handle's wait on side `prod` of `ring`.
pub(super) struct Stalled<'a, T: Pod> {
    pub(super) ring: &'a Ring<T>,
    pub(super) prod: bool,
}

impl<T: Pod> Clone for Stalled<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for Stalled<'_, T> {}

impl<T: Pod> Stall for Stalled<'_, T> {
    #[cold]
    #[inline(never)]
    fn stalled(&self) {
        self.ring.repair_for_waiter(self.prod);
    }
}

/// Where a repair puts the values of a dead operation: (producer side, dead member, values).
pub(super) type Sink<'a, T> = &'a mut dyn FnMut(bool, MemberId, &[T]);

/// A process-local hook for the values of dead operations that a waiter repairs: (producer
/// side, dead member, values). See [`Ring::set_orphan_hook`].
pub(crate) type OrphanHook<T> = Arc<dyn Fn(bool, MemberId, &[T]) + Send + Sync>;

/// Liveness answers, cached for one repair pass.
struct Lives<'a> {
    members: &'a dyn Members,
    me: MemberId,
    seen: Vec<(u64, bool)>,
}

impl<'a> Lives<'a> {
    fn new(members: &'a dyn Members, me: MemberId) -> Self {
        Self {
            members,
            me,
            seen: Vec::new(),
        }
    }

    /// True when `raw` names a member that is certainly dead (never this process).
    fn dead(&mut self, raw: u64) -> bool {
        if raw == 0 || raw == self.me.raw() {
            return false;
        }
        if let Some(&(_, d)) = self.seen.iter().find(|(r, _)| *r == raw) {
            return d;
        }
        let d = self.members.liveness(MemberId::from_raw(raw)) == Liveness::Dead;
        self.seen.push((raw, d));
        d
    }
}

/// Hole ranges of a producer side that meet a window `[start, start + len)`, relative to its
/// start, clipped to it, sorted and merged.
pub(super) struct Holes {
    iv: [(u32, u32); MAX_RESV],
    len: usize,
}

impl Holes {
    pub(super) fn within(p: Side<'_>, start: u32, len: u32) -> Holes {
        let mut h = Holes {
            iv: [(0, 0); MAX_RESV],
            len: 0,
        };
        // H1: Relaxed; the caller acquired the producer tail (A1) after the repair recorded
        // the hole and before it published the tail over it (H0), so the record is visible.
        let mut mask = p.tail.holes.load(Relaxed);
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(e) = p.resv.get(i) else { break };
            let op = Op::unpack(e.op.load(Acquire));
            if !matches!(op.state, State::HolePending | State::Hole) {
                continue;
            }
            // Positions of a ring lie within 2^31 of each other, so the signed distance from
            // the window's start places the hole before, in or after it.
            let rel = i64::from(op.pos.wrapping_sub(start) as i32);
            let a = rel.max(0);
            let b = (rel + i64::from(op.n)).min(i64::from(len));
            if a < b && h.len < MAX_RESV {
                h.iv[h.len] = (a as u32, b as u32);
                h.len += 1;
            }
        }
        let iv = &mut h.iv[..h.len];
        iv.sort_unstable();
        // Merge overlaps (records of one side never overlap, unless corrupted).
        let mut k = 0;
        for j in 0..h.len {
            let (a, b) = h.iv[j];
            if k > 0 && a <= h.iv[k - 1].1 {
                h.iv[k - 1].1 = h.iv[k - 1].1.max(b);
            } else {
                h.iv[k] = (a, b);
                k += 1;
            }
        }
        h.len = k;
        h
    }

    fn total(&self) -> u32 {
        self.iv[..self.len].iter().map(|&(a, b)| b - a).sum()
    }

    /// The runs of values between the holes of `[0, len)`: (offset, length).
    pub(super) fn runs(&self, len: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut pos = 0;
        self.iv[..self.len]
            .iter()
            .copied()
            .chain(std::iter::once((len, len)))
            .filter_map(move |(a, b)| {
                let run = (pos, a.saturating_sub(pos));
                pos = pos.max(b);
                (run.1 > 0).then_some(run)
            })
    }
}

/// A consumer move over a window of `entries` slots at `head` that holds holes: how many slots
/// to reserve so as to take `want` values (all or nothing when `fixed`), and how many values
/// that is. With `contig` (peek and zero-copy), the reservation is holes only (leading holes,
/// to be consumed at once) or values only (up to the first hole). Called by the out-of-line
/// copies of the moves only.
pub(super) fn fit_holes(
    prod: Side<'_>,
    head: u32,
    entries: u32,
    want: u32,
    fixed: bool,
    contig: bool,
) -> Move {
    let window = entries.min(MAX_OP);
    let h = Holes::within(prod, head, window);
    if h.len == 0 {
        // No hole here, but records of holes behind: `holey` has the operation free those
        // that the consumer tail has passed once it has published.
        let n = fit(want, entries, fixed);
        return Move {
            head,
            n,
            vals: n,
            entries,
            holey: !contig && n != 0,
        };
    }
    let avail = window - h.total();
    let iv = &h.iv[..h.len];
    if contig {
        if iv[0].0 == 0 {
            return Move {
                head,
                n: iv[0].1,
                vals: 0,
                entries: avail,
                holey: true,
            };
        }
        let n = fit(want, iv[0].0, fixed);
        return Move {
            head,
            n,
            vals: n,
            entries: avail,
            holey: false,
        };
    }
    let k = fit(want, avail, fixed);
    let n = if k == 0 {
        // Nothing to deliver: a burst that finds only holes consumes them.
        if fixed || avail != 0 || want == 0 {
            0
        } else {
            window
        }
    } else if k == avail {
        window
    } else {
        // Just past the k-th value.
        let mut left = k;
        let mut end = 0;
        for (at, len) in h.runs(window) {
            if left <= len {
                end = at + left;
                break;
            }
            left -= len;
        }
        end
    };
    Move {
        head,
        n,
        vals: k,
        entries: avail,
        holey: n != 0,
    }
}

/// How long the reaper waits for a dead member's reservations to come to the front.
#[cfg(not(loom))]
const REAP_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

impl<T: Pod> Ring<T> {
    /// Sets the hook that receives the values of the dead operations this process's waiters
    /// repair on this handle of the ring (and its clones made afterwards).
    pub(crate) fn set_orphan_hook(&mut self, hook: OrphanHook<T>) {
        self.orphans = Some(hook);
    }

    /// A waiter's repair of side `prod`: values go to the orphan hook.
    pub(super) fn repair_for_waiter(&self, prod: bool) {
        let me = self.mem.region().mapping().me();
        let hook = self.orphans.clone();
        let name = &self.name;
        self.repair_side(prod, me, &mut |p, dead, vals: &[T]| match &hook {
            Some(h) => h(p, dead, vals),
            None if !vals.is_empty() => {
                warn!(target: "shoal::ring", "ring {name:?}: {} values of dead member {dead}'s {} dropped", vals.len(), if p { "enqueue" } else { "dequeue" });
            }
            None => {}
        });
    }

    /// Every multi-thread side: repair what a dead member left (called by handles of RTS rings
    /// whose operations keep finding nothing to do, which may be because of it).
    #[cold]
    #[inline(never)]
    pub(super) fn sweep(&self) {
        for prod in [true, false] {
            if self.sides(prod).3 != SyncMode::Sp {
                self.repair_for_waiter(prod);
            }
        }
    }

    /// Looks for the dead operation that holds side `prod` back and finishes it; true when it
    /// repaired something.
    pub(super) fn repair_side(&self, prod: bool, me: MemberId, sink: Sink<'_, T>) -> bool {
        let (d, _, _, mode) = self.sides(prod);
        if me.is_none() {
            return false;
        }
        let members: &dyn Members = &**self.mem.region().mapping();
        let mut lives = Lives::new(members, me);
        let done = match mode {
            SyncMode::Sp => false,
            SyncMode::Mp => self.repair_mp(prod, d, &mut lives, sink),
            SyncMode::MpRts => self.repair_rts(prod, d, &mut lives, sink),
            SyncMode::MpHts => self.repair_hts(prod, d, &mut lives, sink),
        };
        if prod {
            self.clear_stale_holes();
        }
        done
    }

    /// MP: the operation reserved at the tail.
    fn repair_mp(&self, prod: bool, d: Side<'_>, lives: &mut Lives<'_>, sink: Sink<'_, T>) -> bool {
        // A3-like: the tail and every slot access before it.
        let t = lo(d.tail.load(Acquire));
        // E0: a head that we see, we see the records of the reservations that made it.
        let head = lo(d.own.head.load(Acquire));
        let mut cands: Vec<(usize, u64, Op)> = Vec::new();
        let mut stale = false;
        for (i, e) in d.resv.iter().enumerate() {
            let m = e.member.load(Acquire);
            let op = Op::unpack(e.op.load(Acquire));
            if m == 0 || !op.active() {
                continue;
            }
            // Behind the tail, or at the tail with nothing reserved there: not in flight.
            let passed = (t.wrapping_sub(op.pos) as i32) > 0 || op.pos == t && head == t;
            if op.pos == t && head != t {
                cands.push((i, m, op));
            } else if passed && lives.dead(m) {
                stale |= forget_passed(d, i, m, lives.me);
            }
        }
        if head == t {
            return stale;
        }
        if cands.is_empty() || cands.iter().any(|&(_, m, _)| !lives.dead(m)) {
            return stale;
        }
        let strong: Vec<_> = cands
            .iter()
            .copied()
            .filter(|c| c.2.state != State::Trying)
            .collect();
        let pick = if strong.len() == 1 {
            strong[0]
        } else if strong.len() > 1 {
            error!(target: "shoal::ring", "ring {:?}: {} reservations recorded at position {t}; taking the smallest", self.name, strong.len());
            lowest(&strong)
        } else if cands.len() == 1 {
            cands[0]
        } else {
            // Two dead TRYING records at one position: the winner's end is where the next
            // reservation starts.
            let starts = |p: u32| {
                p == head
                    || d.resv.iter().any(|e| {
                        let op = Op::unpack(e.op.load(Acquire));
                        e.member.load(Relaxed) != 0 && op.active() && op.pos == p
                    })
            };
            let fits: Vec<_> = cands
                .iter()
                .copied()
                .filter(|c| starts(t.wrapping_add(c.2.n)))
                .collect();
            if fits.len() == 1 {
                fits[0]
            } else {
                error!(target: "shoal::ring", "ring {:?}: {} dead processes tried to reserve position {t} at once; taking the smallest", self.name, cands.len());
                lowest(if fits.is_empty() { &cands } else { &fits })
            }
        };
        let (i, dead, op) = pick;
        let e = &d.resv[i];
        let Some(w) = e.take_over(dead, lives.me) else {
            return false;
        };
        if Op::unpack(w) != op {
            e.member.store(dead, Release);
            return false;
        }
        if lo(d.tail.load(Acquire)) != t {
            // Published meanwhile by its owner (a lost CAS of a dead process met at the
            // position of a live one that has finished since): not in flight.
            pass_over(e, dead);
            return true;
        }
        let who = MemberId::from_raw(dead);
        if op.n == 0 || op.n > self.capacity {
            error!(target: "shoal::ring", "ring {:?}: a dead reservation of {} slots at {t}; left as is", self.name, op.n);
            e.member.store(dead, Release);
            return false;
        }
        let end = t.wrapping_add(op.n);
        let publish = || {
            // R0 on behalf of the dead process: pairs with A3 of the next thread of the side
            // and A1 of the other side. A CAS, so that a repair repeated after a repairer died
            // cannot move a tail that has moved on.
            let _ = d
                .tail
                .compare_exchange(u64::from(t), u64::from(end), Release, Relaxed);
        };
        match (prod, op.state) {
            (true, State::Ready) => {
                publish();
                e.free();
            }
            (true, _) => {
                if op.state == State::Written {
                    sink(true, who, &self.values_at(t, op.n, false));
                }
                self.record_hole(d, i, t, op.n);
                publish();
                e.set(t, op.n, State::Hole);
            }
            (false, State::Ready) => {
                publish();
                e.free();
            }
            (false, _) => {
                sink(false, who, &self.values_at(t, op.n, true));
                e.set(t, op.n, State::Ready);
                publish();
                e.free();
            }
        }
        warn!(target: "shoal::ring", "ring {:?}: finished the {} of dead member {who} at {t} ({} slots)", self.name, what(prod, op.state), op.n);
        true
    }

    /// RTS: every unfinished operation of a dead member.
    fn repair_rts(
        &self,
        prod: bool,
        d: Side<'_>,
        lives: &mut Lives<'_>,
        sink: Sink<'_, T>,
    ) -> bool {
        let mut snap = [(0u64, 0u64); MAX_RESV];
        let mut stable = None;
        for _ in 0..4 {
            // A-rts0 / A-rts1, and E0/E1 for the records.
            let (t1, h1) = (d.tail.load(Acquire), d.own.head.load(Acquire));
            for (s, e) in snap.iter_mut().zip(d.resv.iter()) {
                *s = (e.member.load(Acquire), e.op.load(Acquire));
            }
            if d.tail.load(Acquire) == t1 && d.own.head.load(Acquire) == h1 {
                stable = Some((t1, h1));
                break;
            }
        }
        let Some((t, h)) = stable else { return false };
        let in_flight = hi(h).wrapping_sub(hi(t));
        let (mut certain, mut unsure) = (0u32, 0u32);
        for &(m, w) in &snap {
            if m == 0 {
                continue;
            }
            match Op::unpack(w).state {
                State::Written => certain += 1,
                State::Trying | State::Ready | State::HolePending => unsure += 1,
                State::Idle | State::Hole => {}
            }
        }
        let all_in = in_flight == certain.wrapping_add(unsure);
        let none_in = in_flight == certain;
        let mut done = false;
        for (i, &(m, w)) in snap.iter().enumerate() {
            let op = Op::unpack(w);
            if m == 0 || !op.active() || !lives.dead(m) {
                continue;
            }
            let sure = op.state == State::Written;
            if sure || (all_in && !none_in) {
                done |= self.rts_finish(prod, d, i, m, w, lives.me, sink);
            } else if none_in && !all_in {
                done |= rts_forget(d, i, m, w, lives.me);
            } else {
                error!(target: "shoal::ring", "ring {:?}: cannot tell whether dead member {}'s {} at {} is in flight ({in_flight} in flight, {certain} sure, {unsure} unsure); waiting", self.name, MemberId::from_raw(m), what(prod, op.state), op.pos);
            }
        }
        done
    }

    /// RTS: finishes the dead operation in record `i` (whose word was `w`, member `dead`).
    #[allow(clippy::too_many_arguments)]
    fn rts_finish(
        &self,
        prod: bool,
        d: Side<'_>,
        i: usize,
        dead: u64,
        w: u64,
        me: MemberId,
        sink: Sink<'_, T>,
    ) -> bool {
        let e = &d.resv[i];
        let Some(now) = e.take_over(dead, me) else {
            return false;
        };
        if now != w {
            e.member.store(dead, Release);
            return false;
        }
        let op = Op::unpack(w);
        let who = MemberId::from_raw(dead);
        if op.n > self.capacity {
            error!(target: "shoal::ring", "ring {:?}: a dead reservation of {} slots; left as is", self.name, op.n);
            e.member.store(dead, Release);
            return false;
        }
        // The record passes through an unsure state (READY or HOLE_PENDING) before the
        // counter moves, so that a snapshot taken meanwhile counts it right.
        match (prod, op.state) {
            (true, State::Ready) => {
                d.rts_update_tail();
                e.free();
            }
            (true, _) => {
                if op.state == State::Written {
                    sink(true, who, &self.values_at(op.pos, op.n, false));
                }
                self.record_hole(d, i, op.pos, op.n);
                d.rts_update_tail();
                e.set(op.pos, op.n, State::Hole);
            }
            (false, State::Ready) => {
                d.rts_update_tail();
                e.free();
            }
            (false, _) => {
                sink(false, who, &self.values_at(op.pos, op.n, true));
                e.set(op.pos, op.n, State::Ready);
                d.rts_update_tail();
                e.free();
            }
        }
        warn!(target: "shoal::ring", "ring {:?}: finished the {} of dead member {who} at {} ({} slots)", self.name, what(prod, op.state), op.pos, op.n);
        true
    }

    /// HTS: the operation in flight, `[tail, head)`. Every dead record at the tail position is
    /// taken over before anything is done, so that no record of the old operation is left for
    /// a later repairer to mistake for a new operation over the same positions.
    fn repair_hts(
        &self,
        prod: bool,
        d: Side<'_>,
        lives: &mut Lives<'_>,
        sink: Sink<'_, T>,
    ) -> bool {
        // A-hts0; and E0: we see the record of the operation whose CAS made this word.
        let w = d.tail.load(Acquire);
        let (t, h) = (lo(w), hi(w));
        let mut at: Vec<(usize, u64, Op)> = Vec::new();
        let mut live = false;
        let mut stale = false;
        for (i, e) in d.resv.iter().enumerate() {
            let m = e.member.load(Acquire);
            let op = Op::unpack(e.op.load(Acquire));
            if m == 0 || !op.active() {
                continue;
            }
            if op.pos != t || t == h {
                // Behind the tail, or at it with nothing in flight: not in flight.
                let passed = (t.wrapping_sub(op.pos) as i32) > 0 || op.pos == t;
                if passed && lives.dead(m) {
                    stale |= forget_passed(d, i, m, lives.me);
                }
                continue;
            }
            if lives.dead(m) {
                at.push((i, m, op));
            } else {
                live = true;
            }
        }
        if live || at.is_empty() {
            return stale;
        }
        let mut taken = Vec::with_capacity(at.len());
        let put_back = |taken: &[(usize, u64)]| {
            for &(i, m) in taken {
                d.resv[i].member.store(m, Release);
            }
        };
        for &(i, m, op) in &at {
            match d.resv[i].take_over(m, lives.me) {
                Some(now) if Op::unpack(now) == op => taken.push((i, m)),
                Some(_) => {
                    taken.push((i, m));
                    put_back(&taken);
                    return false;
                }
                None => {
                    put_back(&taken);
                    return false;
                }
            }
        }
        if d.tail.load(Acquire) != w {
            // Finished or cancelled meanwhile: stale records.
            for &(i, _) in &taken {
                d.resv[i].free();
            }
            return true;
        }
        let span = h.wrapping_sub(t);
        if span > self.capacity {
            error!(target: "shoal::ring", "ring {:?}: an operation of {span} slots in flight; left as is", self.name);
            put_back(&taken);
            return false;
        }
        // The owner is the record that got furthest (the others lost their CAS).
        let mut best = at[0];
        for &c in &at {
            if rank(c.2.state) > rank(best.2.state) {
                best = c;
            }
        }
        let (_, dead, op) = best;
        let who = MemberId::from_raw(dead);
        let to = |p: u32| {
            // R-hts0 on behalf of the dead process: pairs with A-hts0 and A1.
            let _ = d.tail.compare_exchange(w, pack(p, p), Release, Relaxed);
        };
        match (prod, op.state) {
            (_, State::Ready) => to(t.wrapping_add(op.n.min(span))),
            (true, State::Written) => {
                sink(true, who, &self.values_at(t, span, false));
                to(t);
            }
            (false, State::Written) => {
                sink(false, who, &self.values_at(t, span, true));
                to(h);
            }
            _ => to(t),
        }
        for &(i, _) in &taken {
            d.resv[i].free();
        }
        warn!(target: "shoal::ring", "ring {:?}: finished the {} of dead member {who} at {t} ({span} slots)", self.name, what(prod, op.state));
        true
    }

    /// Records a hole in producer record `i` (held by the repairer) over `[pos, pos + n)`.
    fn record_hole(&self, d: Side<'_>, i: usize, pos: u32, n: u32) {
        d.resv[i].set(pos, n, State::HolePending);
        // H0: pairs with H1 through the tail publication that follows (a release): a consumer
        // that acquires a tail past the hole sees the record and the bit.
        d.tail.holes.fetch_or(1u64 << i, Release);
    }

    /// The values in slots `[pos, pos + n)` (without the holes when `skip_holes`), for a
    /// repair's sink.
    fn values_at(&self, pos: u32, n: u32, skip_holes: bool) -> Vec<T> {
        let n = n.min(self.capacity);
        let mut out = vec![T::zeroed(); n as usize];
        let h = self.mem.hdr();
        // A1: the producers' slot writes up to their tail are visible.
        let _ = h.prod.tail_acquire();
        let mut k = 0usize;
        let mut copy = |at: u32, len: u32| {
            // SAFETY: the slots belong to the dead operation that the caller has taken over
            // (its record is ours): on the producer side no consumer reads them (unpublished)
            // and no producer writes them (reserved); on the consumer side no producer writes
            // them (the consumer tail is not past them). at + len <= n <= capacity < size.
            unsafe {
                self.mem
                    .read(pos.wrapping_add(at), &mut out[k..k + len as usize])
            };
            k += len as usize;
        };
        if skip_holes {
            let holes = Holes::within(h.side(true), pos, n);
            for (at, len) in holes.runs(n) {
                copy(at, len);
            }
        } else {
            copy(0, n);
        }
        out.truncate(k);
        out
    }

    /// Frees the hole records that every consumer has passed.
    pub(super) fn clear_stale_holes(&self) {
        let h = self.mem.hdr();
        let p = h.side(true);
        let mut mask = p.tail.holes.load(Acquire);
        if mask == 0 {
            return;
        }
        // A1 on the consumer tail: the consumers' reads of the hole's slots are done.
        let ct = h.cons.tail_acquire();
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(e) = p.resv.get(i) else { break };
            let w = e.op.load(Acquire);
            let op = Op::unpack(w);
            let end = op.pos.wrapping_add(op.n);
            if op.state == State::Hole
                && (ct.wrapping_sub(end) as i32) >= 0
                && e.op.compare_exchange(w, 0, AcqRel, Relaxed).is_ok()
            {
                // The bit before the member: while the member is set, nobody can make a new
                // hole in this record, so the bit we clear is this hole's.
                p.tail.holes.fetch_and(!(1u64 << i), Release);
                e.member.store(0, Release);
            }
        }
    }

    /// For the reaper: finishes every operation that the dead member `dead` left in this
    /// ring's multi-thread sides and frees its records. An operation that waits behind live
    /// ones is waited for a while, then left to the ring's users (their waits repair it).
    /// Returns the values of the finished operations that did not reach the ring or the
    /// consumer: (producer side, member, values) — values a dead producer had written but that
    /// became a hole, values a dead consumer had reserved. Operations of other dead members met
    /// on the way are finished too, and their values returned with their member.
    pub(crate) fn repair_dead_reservations(
        &self,
        dead: MemberId,
        me: MemberId,
    ) -> Vec<(bool, MemberId, Vec<T>)> {
        let mut out = Vec::new();
        if dead.is_none() || me.is_none() || dead == me {
            return out;
        }
        for prod in [true, false] {
            let (d, _, _, mode) = self.sides(prod);
            if mode == SyncMode::Sp {
                continue;
            }
            #[cfg(not(loom))]
            let deadline = std::time::Instant::now() + REAP_PATIENCE;
            loop {
                let mut pending = false;
                for (i, e) in d.resv.iter().enumerate() {
                    if e.member.load(Acquire) != dead.raw() {
                        continue;
                    }
                    match Op::unpack(e.op.load(Acquire)).state {
                        State::Idle => {
                            if e.take_over(dead.raw(), me) == Some(0) {
                                if prod {
                                    // As in `take_entry`: a stray bit of this record.
                                    d.tail.holes.fetch_and(!(1u64 << i), Release);
                                }
                                e.free();
                            }
                        }
                        State::Hole => {}
                        _ => pending = true,
                    }
                }
                if !pending {
                    break;
                }
                let progressed = self.repair_side(prod, me, &mut |p, who, vals| {
                    out.push((p, who, vals.to_vec()))
                });
                #[cfg(not(loom))]
                {
                    if std::time::Instant::now() >= deadline {
                        warn!(target: "shoal::ring", "ring {:?}: dead member {dead}'s {} reservation waits behind live ones; its users will finish it", self.name, if prod { "producer" } else { "consumer" });
                        break;
                    }
                    if !progressed {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                }
                #[cfg(loom)]
                if !progressed {
                    break;
                }
            }
        }
        self.clear_stale_holes();
        out
    }
}

/// RTS: frees a dead record whose operation is not in flight (a lost CAS, a finished
/// operation, a hole already counted).
fn rts_forget(d: Side<'_>, i: usize, dead: u64, w: u64, me: MemberId) -> bool {
    let e = &d.resv[i];
    let Some(now) = e.take_over(dead, me) else {
        return false;
    };
    if now != w {
        e.member.store(dead, Release);
        return false;
    }
    let op = Op::unpack(w);
    if op.state == State::HolePending {
        e.set(op.pos, op.n, State::Hole);
    } else {
        e.free();
    }
    true
}

/// MP and HTS: frees a dead record whose position the tail has passed (an operation that
/// was published but not yet marked idle, or a CAS that lost); a hole record whose repairer
/// died after publishing it becomes a plain hole record.
fn forget_passed(d: Side<'_>, i: usize, dead: u64, me: MemberId) -> bool {
    let e = &d.resv[i];
    if e.take_over(dead, me).is_none() {
        return false;
    }
    pass_over(e, dead);
    true
}

/// Frees a record taken over from `dead` whose operation is not in flight; a hole record
/// (published) stays one.
fn pass_over(e: &Entry, dead: u64) {
    let op = Op::unpack(e.op.load(Acquire));
    match op.state {
        State::HolePending => e.set(op.pos, op.n, State::Hole),
        State::Hole => e.member.store(dead, Release),
        _ => e.free(),
    }
}

/// The candidate with the smallest count.
fn lowest(c: &[(usize, u64, Op)]) -> (usize, u64, Op) {
    let mut best = c[0];
    for &x in c {
        if x.2.n < best.2.n {
            best = x;
        }
    }
    best
}

/// How far an operation got, to pick among records at one position.
fn rank(s: State) -> u8 {
    match s {
        State::Idle | State::Hole => 0,
        State::Trying => 1,
        State::Written => 2,
        State::Ready => 3,
        State::HolePending => 4,
    }
}

/// "enqueue (reserved)" and the like, for logs.
fn what(prod: bool, s: State) -> String {
    format!(
        "{} ({})",
        if prod { "enqueue" } else { "dequeue" },
        format!("{s:?}").to_lowercase()
    )
}
