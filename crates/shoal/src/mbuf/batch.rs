//! A fixed-capacity burst of mbufs: what rx/tx bursts and ring bursts fill and drain.
#![allow(unsafe_code)] // a MaybeUninit array whose first `len` slots are initialised

use std::mem::MaybeUninit;
use std::ops::{Bound, RangeBounds};

use super::header::{Seg, NONE};
use super::{free_chain, Mbuf};
use crate::mempool::PoolInner;
use crate::sync::atomic::Ordering::Relaxed;

/// Most mbufs in a batch (DPDK applications' usual `MAX_PKT_BURST` is 32; ours leaves room).
pub const MAX_BURST: usize = 64;

/// Up to [`MAX_BURST`] mbufs, like a `Vec` that never allocates. Dropping or clearing it frees
/// the mbufs it holds.
pub struct MbufBatch {
    len: usize,
    items: [MaybeUninit<Mbuf>; MAX_BURST],
}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MbufBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl MbufBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        Self {
            len: 0,
            items: [const { MaybeUninit::uninit() }; MAX_BURST],
        }
    }

    /// Mbufs in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds [`MAX_BURST`] mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// [`MAX_BURST`].
    #[inline]
    pub fn capacity(&self) -> usize {
        MAX_BURST
    }

    /// Room left.
    #[inline]
    pub fn room(&self) -> usize {
        MAX_BURST - self.len
    }

    /// Adds `m` at the end; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.items[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Adds `m`, which the caller made room for (a full batch frees it instead).
    #[inline]
    pub(crate) fn push_unchecked(&mut self, m: Mbuf) {
        debug_assert!(self.len < MAX_BURST);
        if let Err(m) = self.push(m) {
            drop(m);
        }
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` (the old last) is initialised and now outside the live prefix.
        Some(unsafe { self.items[self.len].assume_init_read() })
    }

    /// The mbufs, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first `len` slots are initialised; MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(self.items.as_ptr() as *const Mbuf, self.len) }
    }

    /// The mbufs, in order, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.items.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Iterates the mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates the mbufs, writable.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// The `i`th mbuf.
    pub fn get(&self, i: usize) -> Option<&Mbuf> {
        self.as_slice().get(i)
    }

    /// The `i`th mbuf, writable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Mbuf> {
        self.as_mut_slice().get_mut(i)
    }

    /// Frees every mbuf (in bulk, per pool).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Frees the mbufs from index `n` on.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        let old = self.len;
        self.len = n;
        // SAFETY: slots n .. old were initialised and are no longer in the live prefix, so each
        // is read exactly once here.
        free_bulk((n..old).map(|i| unsafe { self.items[i].assume_init_read() }));
    }

    /// Removes the mbufs in `range` and returns them (in a batch of their own), keeping the
    /// others in order, like `Vec::drain`.
    pub fn drain(&mut self, range: impl RangeBounds<usize>) -> MbufBatch {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        }
        .min(self.len);
        let end = match range.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        }
        .clamp(start, self.len);
        let mut out = MbufBatch::new();
        let n = end - start;
        // SAFETY: slots start .. end are initialised; they move to `out` (bitwise, once), and
        // the tail end .. len moves down over them; `len` then counts only live slots.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.items.as_ptr().add(start),
                out.items.as_mut_ptr(),
                n,
            );
            std::ptr::copy(
                self.items.as_ptr().add(end),
                self.items.as_mut_ptr().add(start),
                self.len - end,
            );
        }
        out.len = n;
        self.len -= n;
        out
    }

    /// The first `n` mbufs' segments, for a ring that is about to move them.
    pub(crate) fn front_segs(&self, n: usize) -> impl Iterator<Item = Seg> + '_ {
        self.as_slice()[..n.min(self.len)].iter().map(Mbuf::seg)
    }

    /// Forgets the first `n` mbufs (their ownership moved elsewhere, e.g. into a ring) and
    /// moves the rest to the front.
    pub(crate) fn forget_front(&mut self, n: usize) {
        let n = n.min(self.len);
        // SAFETY: slots 0 .. n are given up without being dropped (moved out by the caller);
        // slots n .. len move down to 0 ..
        unsafe {
            std::ptr::copy(
                self.items.as_ptr().add(n),
                self.items.as_mut_ptr(),
                self.len - n,
            )
        };
        self.len -= n;
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterates the mbufs of a batch by value.
#[derive(Debug)]
pub struct IntoIter {
    batch: MbufBatch,
    next: usize,
}

impl Iterator for IntoIter {
    type Item = Mbuf;
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.batch.len {
            return None;
        }
        let i = self.next;
        self.next += 1;
        // SAFETY: slot i is initialised and read once; Drop below skips slots < next.
        Some(unsafe { self.batch.items[i].assume_init_read() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.batch.len - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for IntoIter {}

impl Drop for IntoIter {
    fn drop(&mut self) {
        let (start, end) = (self.next, self.batch.len);
        self.batch.len = 0;
        // SAFETY: slots next .. len were not yet read; each is read once here.
        free_bulk((start..end).map(|i| unsafe { self.batch.items[i].assume_init_read() }));
    }
}

impl IntoIterator for MbufBatch {
    type Item = Mbuf;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter {
            batch: self,
            next: 0,
        }
    }
}

/// Frees mbufs, returning single-segment direct ones to their pools in bulk.
pub(crate) fn free_bulk(mbufs: impl Iterator<Item = Mbuf>) {
    let mut buf = [0u32; MAX_BURST];
    let mut n = 0;
    let mut pool: Option<&'static PoolInner> = None;
    for m in mbufs {
        let s = m.seg();
        std::mem::forget(m);
        let simple = s.next() == NONE && s.attached() == NONE && s.refcnt().load(Relaxed) == 1;
        if !simple {
            free_chain(s);
            continue;
        }
        if !pool.is_some_and(|p| std::ptr::eq(p, s.pool)) || n == MAX_BURST {
            if let Some(p) = pool {
                p.put(&buf[..n]);
            }
            pool = Some(s.pool);
            n = 0;
        }
        buf[n] = s.idx;
        n += 1;
    }
    if let Some(p) = pool {
        p.put(&buf[..n]);
    }
}
