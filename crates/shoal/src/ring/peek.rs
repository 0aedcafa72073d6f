//! Peek and zero-copy operations (DPDK's `rte_ring_peek.h` and `rte_ring_peek_zc.h`), for SP/SC
//! and HTS sides.
//!
//! A *start* moves the head and returns a reservation; its *finish* publishes the first `n`
//! reserved slots and gives the rest back, by setting head and tail of the side to
//! `start + n`. That is only sound when no other operation of the side can move the head in
//! between: true for an SP/SC side (one handle) and for an HTS side (the others wait until head
//! equals tail). The reservation borrows the handle mutably, so the same handle cannot start
//! another operation either.
#![allow(unsafe_code)] // slices of reserved slots handed to the caller

use bytemuck::Pod;

use super::{Consumer, Error, Producer, Ring, SyncMode};

impl<T: Pod> Ring<T> {
    /// Checks that `mode` allows peek.
    fn peek_mode(mode: SyncMode, side: &'static str) -> Result<(), Error> {
        if mode.supports_peek() {
            Ok(())
        } else {
            Err(Error::PeekUnsupported { side, mode })
        }
    }

    /// Ends a peek: head and tail of the side become `head + n` (HTS: then the handle's record
    /// is idle again; a kill before the publication leaves it `TRYING`, and the repair cancels
    /// the reservation).
    #[inline]
    fn peek_finish(&self, prod: bool, slot: u32, head: u32, n: u32) {
        let (d, _, _, mode) = self.sides(prod);
        let new = head.wrapping_add(n);
        match mode {
            SyncMode::Sp => d.st_set_head_tail(new),
            SyncMode::MpHts => {
                d.hts_set_head_tail(new);
                d.entry(slot).idle();
            }
            // Unreachable: reservations are only made after `peek_mode`.
            SyncMode::Mp | SyncMode::MpRts => d.update_tail_st(new),
        }
        if !prod {
            self.clear_stale_holes();
        }
    }
}

/// Slots reserved by [`Producer::enqueue_bulk_start`] or [`Producer::enqueue_burst_start`]; the
/// other side sees none of them until [`finish`](Self::finish) (or
/// [`finish_with`](Self::finish_with)). Dropping it finishes with 0.
#[must_use = "a reservation publishes nothing until it is finished"]
pub struct EnqueueReservation<'a, T: Pod> {
    prod: &'a mut Producer<T>,
    head: u32,
    n: u32,
    free: u32,
    done: bool,
}

/// Slots reserved by one of the `Consumer::dequeue_*_start` methods; they stay in the ring
/// until [`finish`](Self::finish) consumes some of them. Dropping it finishes with 0 (nothing
/// consumed).
#[must_use = "a reservation consumes nothing until it is finished"]
pub struct DequeueReservation<'a, T: Pod> {
    cons: &'a mut Consumer<T>,
    head: u32,
    n: u32,
    available: u32,
    done: bool,
}

impl<T: Pod> Producer<T> {
    fn start(&mut self, n: usize, fixed: bool) -> Result<EnqueueReservation<'_, T>, Error> {
        Ring::<T>::peek_mode(self.ring.prod_mode, "prod")?;
        let want = super::headtail::want(n);
        let m = self.ring.move_head(true, self.slot, want, fixed, false);
        Ok(EnqueueReservation {
            head: m.head,
            n: m.n,
            free: m.entries - m.n,
            done: false,
            prod: self,
        })
    }

    /// Reserves exactly `n` slots, or none (DPDK's `rte_ring_enqueue_bulk_start` and
    /// `rte_ring_enqueue_zc_bulk_start`): check [`EnqueueReservation::len`].
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the producer side is `Sp` or `MpHts`.
    pub fn enqueue_bulk_start(&mut self, n: usize) -> Result<EnqueueReservation<'_, T>, Error> {
        self.start(n, true)
    }

    /// Reserves up to `n` slots (DPDK's `rte_ring_enqueue_burst_start` and
    /// `rte_ring_enqueue_zc_burst_start`).
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the producer side is `Sp` or `MpHts`.
    pub fn enqueue_burst_start(&mut self, n: usize) -> Result<EnqueueReservation<'_, T>, Error> {
        self.start(n, false)
    }
}

impl<T: Pod> EnqueueReservation<'_, T> {
    /// Slots reserved (0 when a bulk start found too little room).
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True when nothing was reserved.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Free slots left after the reservation (DPDK's `free_space`).
    pub fn free_space(&self) -> u32 {
        self.free
    }

    /// The reserved slots, to be written in place (DPDK's `rte_ring_zc_data`: `ptr1`/`n1`
    /// and `ptr2`); the second slice is the part that wrapped to the start of the ring. Slots
    /// hold stale values until written.
    pub fn slices_mut(&mut self) -> (&mut [T], &mut [T]) {
        // SAFETY: the head move reserved these slots for this side and no other operation of
        // the side can start before `finish` (SP: one handle, borrowed mutably here; HTS: the
        // others wait for head == tail); consumers do not read them before our tail moves. The
        // slices borrow `self`, so they end before the reservation does.
        unsafe {
            let (a, b) = self.prod.ring.mem.slices_raw(self.head, self.n, true);
            (&mut *a.as_ptr(), &mut *b.as_ptr())
        }
    }

    /// Publishes the first `n` reserved slots (at most [`len`](Self::len)) and gives the rest
    /// back (DPDK's `rte_ring_enqueue_zc_finish`); returns how many were published.
    pub fn finish(mut self, n: usize) -> usize {
        self.end(n)
    }

    /// Copies `values` (at most [`len`](Self::len) of them) into the reserved slots, publishes
    /// them and gives the rest back (DPDK's `rte_ring_enqueue_finish`); returns how many.
    pub fn finish_with(mut self, values: &[T]) -> usize {
        let n = values.len().min(self.n as usize);
        // SAFETY: as in `slices_mut`; n <= reserved <= capacity < size.
        unsafe { self.prod.ring.mem.write(self.head, &values[..n]) };
        self.end(n)
    }

    fn end(&mut self, n: usize) -> usize {
        let n = n.min(self.n as usize) as u32;
        self.done = true;
        // An empty reservation moved nothing; writing head/tail back could undo the reservation
        // that another HTS thread made meanwhile.
        if self.n != 0 {
            let slot = self.prod.slot;
            self.prod.ring.peek_finish(true, slot, self.head, n);
        }
        n as usize
    }
}

impl<T: Pod> Drop for EnqueueReservation<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.end(0);
        }
    }
}

impl<T: Pod> Consumer<T> {
    fn start(&mut self, n: usize, fixed: bool) -> Result<DequeueReservation<'_, T>, Error> {
        Ring::<T>::peek_mode(self.ring.cons_mode, "cons")?;
        let want = super::headtail::want(n);
        // A reservation never holds a hole: leading holes are consumed first, and a
        // reservation stops before the next one.
        let m = loop {
            let m = self.ring.move_head(false, self.slot, want, fixed, true);
            if m.n == 0 || m.vals != 0 || !m.holey {
                break m;
            }
            self.ring.peek_finish(false, self.slot, m.head, m.n);
        };
        Ok(DequeueReservation {
            head: m.head,
            n: m.n,
            available: m.entries - m.n,
            done: false,
            cons: self,
        })
    }

    /// Copies exactly `dst.len()` values into `dst`, or none, and keeps them in the ring until
    /// [`DequeueReservation::finish`] (DPDK's `rte_ring_dequeue_bulk_start`).
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the consumer side is `Sp` or `MpHts`.
    pub fn dequeue_bulk_start(
        &mut self,
        dst: &mut [T],
    ) -> Result<DequeueReservation<'_, T>, Error> {
        let r = self.start(dst.len(), true)?;
        r.copy_to(dst);
        Ok(r)
    }

    /// Copies up to `dst.len()` values into the front of `dst` and keeps them in the ring until
    /// [`DequeueReservation::finish`] (DPDK's `rte_ring_dequeue_burst_start`).
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the consumer side is `Sp` or `MpHts`.
    pub fn dequeue_burst_start(
        &mut self,
        dst: &mut [T],
    ) -> Result<DequeueReservation<'_, T>, Error> {
        let r = self.start(dst.len(), false)?;
        r.copy_to(dst);
        Ok(r)
    }

    /// Reserves exactly `n` values, or none, to be read in place with
    /// [`DequeueReservation::slices`] (DPDK's `rte_ring_dequeue_zc_bulk_start`).
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the consumer side is `Sp` or `MpHts`.
    pub fn dequeue_zc_bulk_start(&mut self, n: usize) -> Result<DequeueReservation<'_, T>, Error> {
        self.start(n, true)
    }

    /// Reserves up to `n` values, to be read in place (DPDK's `rte_ring_dequeue_zc_burst_start`).
    ///
    /// # Errors
    /// [`Error::PeekUnsupported`] unless the consumer side is `Sp` or `MpHts`.
    pub fn dequeue_zc_burst_start(&mut self, n: usize) -> Result<DequeueReservation<'_, T>, Error> {
        self.start(n, false)
    }
}

impl<T: Pod> DequeueReservation<'_, T> {
    /// Values reserved (0 when a bulk start found too few).
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True when nothing was reserved.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Values left in the ring after the reservation (DPDK's `available`).
    pub fn available(&self) -> u32 {
        self.available
    }

    /// The reserved values in place; the second slice is the part that wrapped.
    pub fn slices(&self) -> (&[T], &[T]) {
        // SAFETY: the head move reserved these slots for this side, and the producers published
        // them (A1 on their tail); no producer writes them before our tail moves, and no other
        // consumer operation can start before `finish` (SC: one handle, borrowed here; HTS:
        // the others wait). The slices borrow `self`.
        unsafe {
            let (a, b) = self.cons.ring.mem.slices_raw(self.head, self.n, false);
            (&*a.as_ptr(), &*b.as_ptr())
        }
    }

    fn copy_to(&self, dst: &mut [T]) {
        let n = self.n as usize;
        // SAFETY: as in `slices`; n <= dst.len() because the move never takes more than asked.
        unsafe { self.cons.ring.mem.read(self.head, &mut dst[..n]) };
    }

    /// Consumes the first `n` reserved values (at most [`len`](Self::len)) and leaves the rest
    /// in the ring (DPDK's `rte_ring_dequeue_finish`); returns how many were consumed.
    pub fn finish(mut self, n: usize) -> usize {
        self.end(n)
    }

    fn end(&mut self, n: usize) -> usize {
        let n = n.min(self.n as usize) as u32;
        self.done = true;
        // As for `EnqueueReservation::end`.
        if self.n != 0 {
            let slot = self.cons.slot;
            self.cons.ring.peek_finish(false, slot, self.head, n);
        }
        n as usize
    }
}

impl<T: Pod> Drop for DequeueReservation<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.end(0);
        }
    }
}
