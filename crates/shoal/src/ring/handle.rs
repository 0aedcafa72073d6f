//! Producer and consumer handles: the data path (DPDK's `rte_ring_elem_pvt.h` entry points).
#![allow(unsafe_code)] // slot copies under a reservation made by a head move

use bytemuck::Pod;
use tracing::warn;

use super::header::HeadTail;
use super::headtail::{want, Move};
use super::{Empty, Full, Ring, SyncMode};
use crate::sync::atomic::{
    AtomicU32,
    Ordering::{Acquire, Relaxed, Release},
};

/// True while a process with this pid exists.
fn process_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Claims a single side for this process; false when a live owner holds it.
fn claim(owner: &AtomicU32, ring: &str, side: &str) -> bool {
    let me = std::process::id();
    let mut expected = 0;
    loop {
        // C1: pairs with C0 in `release`: the previous owner's head and tail writes (and its
        // slot accesses) happen before ours.
        match owner.compare_exchange(expected, me, Acquire, Relaxed) {
            Ok(_) => return true,
            Err(cur) if cur == me => return false,
            Err(0) => expected = 0,
            Err(cur) if !process_alive(cur) => {
                warn!(target: "shoal::ring", "ring {ring:?}: taking over the {side} side from dead process {cur}");
                expected = cur;
            }
            Err(_) => return false,
        }
    }
}

/// Gives a single side back.
fn release(owner: &AtomicU32) {
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
            release(&self.ring.mem.hdr().prod.owner);
        }
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        if self.ring.cons_mode == SyncMode::Sp {
            release(&self.ring.mem.hdr().cons.owner);
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

    /// Moves a side's head by up to `want` slots with the side's algorithm.
    #[inline(always)]
    pub(super) fn move_head(&self, prod: bool, want: u32, fixed: bool) -> Move {
        let h = self.mem.hdr();
        let cap = self.capacity;
        let (d, s, offset, mode): (&HeadTail, &HeadTail, u32, SyncMode) = if prod {
            (&h.prod, &h.cons, cap, self.prod_mode)
        } else {
            (&h.cons, &h.prod, 0, self.cons_mode)
        };
        match mode {
            SyncMode::Sp => d.move_head_st(s, offset, cap, want, fixed),
            SyncMode::Mp => d.move_head_mt(s, offset, cap, want, fixed),
            SyncMode::MpRts => d.rts_move_head(s, offset, cap, want, fixed),
            SyncMode::MpHts => d.hts_move_head(s, offset, cap, want, fixed),
        }
    }

    /// Publishes the `n` slots reserved at `head` by `move_head`.
    #[inline(always)]
    pub(super) fn update_tail(&self, prod: bool, head: u32, n: u32) {
        let h = self.mem.hdr();
        let (d, mode) = if prod {
            (&h.prod, self.prod_mode)
        } else {
            (&h.cons, self.cons_mode)
        };
        let new = head.wrapping_add(n);
        match mode {
            SyncMode::Sp => d.update_tail_st(new),
            SyncMode::Mp => d.update_tail_mt(head, new),
            SyncMode::MpRts => d.rts_update_tail(),
            SyncMode::MpHts => d.hts_set_head_tail(new),
        }
    }
}

impl<T: Pod> Producer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        if ring.prod_mode == SyncMode::Sp
            && !claim(&ring.mem.hdr().prod.owner, &ring.name, "producer")
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
        let m = r.move_head(true, want(src.len()), fixed);
        if m.n != 0 {
            let n = m.n as usize;
            debug_assert!(n <= src.len() && m.n <= r.capacity);
            // SAFETY: the head move reserved slots m.head .. m.head + n for this thread and
            // n <= capacity < size; n <= src.len() because the move never takes more than asked.
            unsafe { r.mem.write(m.head, src.get_unchecked(..n)) };
            r.update_tail(true, m.head, m.n);
        }
        (m.n, m.entries - m.n)
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

impl<T: Pod> Consumer<T> {
    pub(super) fn new(ring: Ring<T>) -> Option<Self> {
        if ring.cons_mode == SyncMode::Sp
            && !claim(&ring.mem.hdr().cons.owner, &ring.name, "consumer")
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
        let m = r.move_head(false, want(dst.len()), fixed);
        if m.n != 0 {
            let n = m.n as usize;
            debug_assert!(n <= dst.len() && m.n <= r.capacity);
            // SAFETY: the head move reserved slots m.head .. m.head + n, which the producers
            // published (their tail, read with A1, is past them); n <= capacity < size and
            // n <= dst.len().
            unsafe { r.mem.read(m.head, dst.get_unchecked_mut(..n)) };
            r.update_tail(false, m.head, m.n);
        }
        (m.n, m.entries - m.n)
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
