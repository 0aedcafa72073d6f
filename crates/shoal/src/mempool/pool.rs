//! A process's view of one pool, and the data path: DPDK's `rte_mempool_do_generic_get/put`
//! over per-lcore caches in shared memory and a common store.
//!
//! Cache rules (DPDK 22.11):
//! - get `n`: served from the top of the cache when it holds `n`. Otherwise the cache's
//!   objects go first and the rest comes from a fill of `cache_size + rest` objects taken from
//!   the store, of which `cache_size` stay in the cache. When the store cannot give that many
//!   (or `rest` > [`CACHE_MAX_SIZE`]), the rest is taken from the store directly; when even that
//!   fails, nothing is taken and the cache is as it was.
//! - put `n`: `n` > flush threshold (1.5 × `cache_size`) goes to the store directly; when the
//!   cache would pass the threshold it is flushed whole to the store first, then holds the `n`.
//! - a thread that is not an lcore of this process (or a pool with `cache_size` 0) uses the
//!   store directly.
//!
//! Memory orderings: the caches are used by one thread each (relaxed `len`); the store (the
//! ring) carries the release/acquire edges that order object contents and owner tags between
//! processes: a tag written before an enqueue is seen by whoever dequeues the object, so the
//! receiver's tag write comes later in the tag's modification order. Tag writes themselves are
//! relaxed; reclaimers move tags only by compare-and-swap.
#![allow(unsafe_code)] // raw access to the cache arrays and objects of a mapped pool

use std::ptr::NonNull;

use super::layout::{kind, tag, CacheHeader, MempoolHeader, CACHE_MAX_SIZE, MAGIC};
use super::registry::Group;
use super::store::Store;
use super::{flags, Mempool, ObjIdx};
use crate::memory::{Region, MAX_LCORES};
use crate::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A process's view of a pool. Made once per pool and process (see the registry) and never
/// freed: object handles refer to it by `&'static`.
pub(crate) struct PoolInner {
    pub(crate) group: &'static Group,
    /// The pool's memzone; keeps the mapping (and so every pointer below) alive.
    pub(crate) zone: Region,
    /// Memzone index: the pool id in object indices.
    pub(crate) index: u32,
    pub(crate) uid: u64,
    pub(crate) name: String,
    pub(crate) kind: u32,
    pub(crate) flags: u32,
    pub(crate) size: u32,
    pub(crate) elt_size: u32,
    pub(crate) stride: u32,
    pub(crate) cache_size: u32,
    pub(crate) flushthresh: u32,
    cache_stride: u32,
    /// Mbuf pools: bytes of each mbuf's buffer (DPDK's data room size).
    pub(crate) data_room: u16,
    /// Mbuf pools: bytes of each mbuf's private area.
    pub(crate) mbuf_priv: u16,
    pub(crate) tracked: bool,
    hdr: NonNull<MempoolHeader>,
    caches: NonNull<u8>,
    tags: NonNull<AtomicU32>,
    objs: NonNull<u8>,
    pub(crate) store: Store,
}

// SAFETY: the pointers point into the mapping kept alive by `zone`; shared state behind them is
// atomics (header magic, cache len, tags), per-lcore cache arrays used by one thread each (the
// lcore registration guarantees it), and objects owned by whoever holds their handle.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl std::fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolInner")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("size", &self.size)
            .field("offset", &self.zone.offset())
            .finish_non_exhaustive()
    }
}

fn sub(zone: &Region, off: u64, len: u64) -> Option<Region> {
    Region::new(
        zone.mapping().clone(),
        zone.offset().checked_add(off as usize)?,
        len as usize,
    )
}

/// Runs `f` with a scratch buffer of `n` indices (on the stack when small).
#[inline]
fn with_buf<R>(n: usize, f: impl FnOnce(&mut [u32]) -> R) -> R {
    if n <= 64 {
        let mut b = [0u32; 64];
        f(&mut b[..n])
    } else if n <= 2 * CACHE_MAX_SIZE as usize {
        let mut b = [0u32; 2 * CACHE_MAX_SIZE as usize];
        f(&mut b[..n])
    } else {
        let mut b = vec![0u32; n];
        f(&mut b)
    }
}

impl PoolInner {
    /// A view of the published pool in `zone` (memzone `index` of `group`).
    pub(crate) fn attach(
        group: &'static Group,
        zone: Region,
        index: u32,
    ) -> Result<PoolInner, &'static str> {
        let h = MempoolHeader::read(&zone)?;
        let store_region = sub(&zone, h.off_store, h.store_len).ok_or("store out of zone")?;
        let store = Store::attach(store_region).ok_or("bad common store")?;
        let (data_room, mbuf_priv) = if h.kind == kind::MBUF {
            let mut p = [0u8; 4];
            if h.priv_size < 4 || !zone.read(h.off_priv as usize, &mut p) {
                return Err("mbuf pool without its private area");
            }
            let room = u16::from_le_bytes([p[0], p[1]]);
            let privsz = u16::from_le_bytes([p[2], p[3]]);
            if crate::mbuf::HDR_SIZE + privsz as usize + room as usize > h.elt_size as usize {
                return Err("mbuf pool whose mbufs do not fit its objects");
            }
            (room, privsz)
        } else {
            (0, 0)
        };
        let at = |off: u64| -> NonNull<u8> {
            // SAFETY: every offset was checked against zone_len <= zone.len() by `read`.
            NonNull::new(unsafe { zone.as_ptr().add(off as usize) }).expect("non-null mapping")
        };
        Ok(PoolInner {
            group,
            index,
            uid: h.uid.load(Relaxed),
            name: h.name_str(),
            kind: h.kind,
            flags: h.flags,
            size: h.size,
            elt_size: h.elt_size,
            stride: h.stride,
            cache_size: h.cache_size,
            flushthresh: h.flushthresh,
            cache_stride: h.cache_stride,
            data_room,
            mbuf_priv,
            tracked: h.flags & flags::NO_OWNER_TAGS == 0,
            hdr: at(0).cast(),
            caches: at(h.off_caches),
            tags: at(h.off_tags).cast(),
            objs: at(h.off_objs),
            store,
            zone,
        })
    }

    pub(crate) fn hdr(&self) -> &MempoolHeader {
        // SAFETY: checked by `read` at attach; the mapping lives as long as `self.zone`.
        unsafe { self.hdr.as_ref() }
    }

    /// True while the pool this view was made for is still the one in its memzone.
    #[inline]
    pub(crate) fn is_current(&self) -> bool {
        let h = self.hdr();
        h.magic.load(Relaxed) == MAGIC && h.uid.load(Relaxed) == self.uid
    }

    /// Address of object `i` (`i < size`).
    #[inline]
    pub(crate) fn obj_ptr(&self, i: u32) -> *mut u8 {
        debug_assert!(i < self.size);
        // SAFETY: i < size, so the object lies inside the zone (checked at attach).
        unsafe { self.objs.as_ptr().add(i as usize * self.stride as usize) }
    }

    /// Object `i`'s owner tag (`i < size`).
    #[inline]
    pub(crate) fn tag(&self, i: u32) -> &AtomicU32 {
        debug_assert!(i < self.size);
        // SAFETY: i < size: inside the tag array (checked at attach); atomics are Shared.
        unsafe { &*self.tags.as_ptr().add(i as usize) }
    }

    /// True when every index is a valid object of this pool. Branch-free, so it vectorises.
    #[inline]
    pub(crate) fn valid(&self, idx: &[u32]) -> bool {
        let size = self.size;
        idx.iter().fold(true, |ok, &i| ok & (i < size))
    }

    /// The cache of `lcore`: its header and object array.
    #[inline]
    fn cache(&self, lcore: u32) -> (&CacheHeader, *mut u32) {
        debug_assert!(self.cache_size > 0 && (lcore as usize) < MAX_LCORES);
        let lcore = (lcore as usize).min(MAX_LCORES - 1);
        // SAFETY: MAX_LCORES caches of cache_stride bytes were laid out at off_caches (checked
        // at attach), and lcore < MAX_LCORES.
        let base = unsafe { self.caches.as_ptr().add(lcore * self.cache_stride as usize) };
        // SAFETY: the cache header starts the cache; 64-aligned (stride is a multiple of 128).
        let hdr = unsafe { &*(base as *const CacheHeader) };
        // SAFETY: the array follows the 64-byte header inside the same cache.
        (hdr, unsafe { base.add(64) } as *mut u32)
    }

    /// The lcore whose cache the calling thread uses for this pool, if any.
    #[inline]
    fn local_lcore(&self) -> Option<u32> {
        if self.cache_size == 0 {
            None
        } else {
            crate::eal::lcore_in(self.group.key)
        }
    }

    /// Marks objects taken from the store as held by this process.
    #[inline]
    fn tag_taken(&self, idx: &[u32]) {
        if self.tracked {
            let t = self.group.my_tag;
            for &i in idx {
                self.tag(i).store(t, Relaxed);
            }
        }
    }

    /// Marks objects about to go into the store as free. Must come before the enqueue.
    #[inline]
    fn tag_freed(&self, idx: &[u32]) {
        if self.tracked {
            for &i in idx {
                self.tag(i).store(tag::FREE, Relaxed);
            }
        }
    }

    /// Takes `out.len()` objects from the store (all or nothing), validated and tagged.
    fn store_take(&self, lcore: Option<u32>, out: &mut [u32]) -> bool {
        if !self.store.dequeue(lcore, out) {
            return false;
        }
        if !self.valid(out) {
            // Only a corrupted store gets here; the bad indices cannot be used or returned.
            tracing::error!(target: "shoal::mempool", "pool {:?}: the common store held an invalid object index; {} objects dropped", self.name, out.len());
            self.hdr().lost.fetch_add(out.len() as u64, Relaxed);
            return false;
        }
        self.tag_taken(out);
        true
    }

    /// Gives objects to the store (never fails while the pool is sound).
    fn store_give(&self, lcore: Option<u32>, idx: &[u32]) {
        self.tag_freed(idx);
        if !self.store.enqueue(lcore, idx) {
            tracing::error!(target: "shoal::mempool", "pool {:?}: the common store refused {} objects (was an object freed twice?); they are lost", self.name, idx.len());
            self.hdr().lost.fetch_add(idx.len() as u64, Relaxed);
        }
    }

    /// Gets `n` objects, all or nothing, handing their indices to `emit` (one or two slices).
    #[inline]
    pub(crate) fn get_with(&self, n: usize, mut emit: impl FnMut(&[u32])) -> bool {
        if n == 0 {
            return true;
        }
        let Some(lcore) = self.local_lcore() else {
            return self.direct_get(None, n, emit);
        };
        let (c, objs) = self.cache(lcore);
        // Only this thread writes len.
        let len = c.len.load(Relaxed) as usize;
        if n <= len {
            // SAFETY: objs[0 .. len] are initialised indices of this cache, used by this thread
            // only; len <= flushthresh, the array's length.
            let top = unsafe { std::slice::from_raw_parts(objs.add(len - n), n) };
            if self.valid(top) {
                emit(top);
                c.len.store((len - n) as u32, Relaxed);
                return true;
            }
            return self.cache_corrupt(c);
        }
        self.cache_get_slow(lcore, c, objs, len, n, emit)
    }

    #[cold]
    fn cache_corrupt(&self, c: &CacheHeader) -> bool {
        tracing::error!(target: "shoal::mempool", "pool {:?}: an lcore cache held an invalid index; the cache was emptied", self.name);
        self.hdr()
            .lost
            .fetch_add(c.len.load(Relaxed) as u64, Relaxed);
        c.len.store(0, Relaxed);
        false
    }

    #[inline(never)]
    fn cache_get_slow(
        &self,
        lcore: u32,
        c: &CacheHeader,
        objs: *mut u32,
        len: usize,
        n: usize,
        mut emit: impl FnMut(&[u32]),
    ) -> bool {
        // SAFETY: as in `get_with`.
        let old = unsafe { std::slice::from_raw_parts(objs, len) };
        if !self.valid(old) {
            return self.cache_corrupt(c);
        }
        let rest = n - len;
        let size = self.cache_size as usize;
        if rest <= CACHE_MAX_SIZE as usize {
            let filled = with_buf(size + rest, |buf| {
                if !self.store_take(Some(lcore), buf) {
                    return false;
                }
                if !old.is_empty() {
                    emit(old);
                }
                emit(&buf[size..]);
                // SAFETY: size <= flushthresh: fits the array; buf is process-local.
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), objs, size) };
                c.len.store(size as u32, Relaxed);
                c.fills.fetch_add(1, Relaxed);
                true
            });
            if filled {
                return true;
            }
        }
        with_buf(rest, |buf| {
            if !self.store_take(Some(lcore), buf) {
                return false;
            }
            if !old.is_empty() {
                emit(old);
            }
            emit(buf);
            c.len.store(0, Relaxed);
            true
        })
    }

    /// Gets `n` objects from the store directly.
    fn direct_get(&self, lcore: Option<u32>, n: usize, mut emit: impl FnMut(&[u32])) -> bool {
        with_buf(n, |buf| {
            if self.store_take(lcore, buf) {
                emit(buf);
                true
            } else {
                false
            }
        })
    }

    /// Puts objects back (their handles are gone). Indices must be this pool's and held by this
    /// process.
    #[inline]
    pub(crate) fn put(&self, idx: &[u32]) {
        let n = idx.len();
        if n == 0 {
            return;
        }
        debug_assert!(self.valid(idx));
        let Some(lcore) = self.local_lcore() else {
            return self.store_give(None, idx);
        };
        if n > self.flushthresh as usize {
            return self.store_give(Some(lcore), idx);
        }
        let (c, objs) = self.cache(lcore);
        let len = c.len.load(Relaxed) as usize;
        if len + n <= self.flushthresh as usize {
            // SAFETY: len + n <= flushthresh, the array's length; used by this thread only.
            unsafe { std::ptr::copy_nonoverlapping(idx.as_ptr(), objs.add(len), n) };
            c.len.store((len + n) as u32, Relaxed);
        } else {
            self.flush_and_put(lcore, c, objs, len, idx);
        }
    }

    /// Puts one object back: [`PoolInner::put`] for one index, without the slice.
    #[inline]
    pub(crate) fn put_one(&self, i: u32) {
        debug_assert!(i < self.size);
        if let Some(lcore) = self.local_lcore() {
            let (c, objs) = self.cache(lcore);
            let len = c.len.load(Relaxed) as usize;
            if len < self.flushthresh as usize {
                // SAFETY: len < flushthresh, the array's length; used by this thread only.
                unsafe { objs.add(len).write(i) };
                c.len.store(len as u32 + 1, Relaxed);
                return;
            }
        }
        self.put(&[i]);
    }

    #[inline(never)]
    fn flush_and_put(&self, lcore: u32, c: &CacheHeader, objs: *mut u32, len: usize, idx: &[u32]) {
        // SAFETY: objs[0 .. len] are this cache's indices, used by this thread only.
        let old = unsafe { std::slice::from_raw_parts(objs, len) };
        if self.valid(old) {
            self.store_give(Some(lcore), old);
        } else {
            self.hdr().lost.fetch_add(len as u64, Relaxed);
            tracing::error!(target: "shoal::mempool", "pool {:?}: an lcore cache held an invalid index; {len} cached objects dropped", self.name);
        }
        // SAFETY: idx.len() <= flushthresh (checked by the caller): fits the array.
        unsafe { std::ptr::copy_nonoverlapping(idx.as_ptr(), objs, idx.len()) };
        c.len.store(idx.len() as u32, Relaxed);
        c.flushes.fetch_add(1, Relaxed);
    }

    /// Objects in the common store.
    pub(crate) fn store_count(&self) -> u32 {
        self.store.count()
    }

    /// Objects in `lcore`'s cache (0 without caches).
    pub(crate) fn cache_len(&self, lcore: u32) -> u32 {
        if self.cache_size == 0 || lcore as usize >= MAX_LCORES {
            return 0;
        }
        self.cache(lcore).0.len.load(Relaxed)
    }

    /// `lcore`'s cache counters: (len, fills, flushes).
    pub(crate) fn cache_stats(&self, lcore: u32) -> (u32, u64, u64) {
        if self.cache_size == 0 || lcore as usize >= MAX_LCORES {
            return (0, 0, 0);
        }
        let c = self.cache(lcore).0;
        (
            c.len.load(Relaxed),
            c.fills.load(Relaxed),
            c.flushes.load(Relaxed),
        )
    }

    /// Objects in all caches.
    pub(crate) fn cached_count(&self) -> u32 {
        if self.cache_size == 0 {
            return 0;
        }
        (0..MAX_LCORES as u32)
            .map(|l| self.cache(l).0.len.load(Relaxed).min(self.flushthresh))
            .sum()
    }

    /// The indices in `lcore`'s cache. Only for the cache's owner or after its death.
    pub(crate) fn cache_contents(&self, lcore: u32) -> Vec<u32> {
        if self.cache_size == 0 || lcore as usize >= MAX_LCORES {
            return Vec::new();
        }
        let (c, objs) = self.cache(lcore);
        let len = (c.len.load(Relaxed) as usize).min(self.flushthresh as usize);
        // SAFETY: within the array; the owner is this process (stopping) or dead, so nothing
        // writes the array meanwhile.
        unsafe { std::slice::from_raw_parts(objs, len) }.to_vec()
    }

    /// Empties `lcore`'s cache without returning anything (its objects are returned by tag).
    pub(crate) fn cache_reset(&self, lcore: u32) {
        if self.cache_size > 0 && (lcore as usize) < MAX_LCORES {
            self.cache(lcore).0.len.store(0, Relaxed);
        }
    }

    /// Returns objects to the store from a reclaimer (any thread), bypassing caches. Their tags
    /// must already have been moved off `held` by compare-and-swap.
    pub(crate) fn give_back(&self, idx: &[u32]) {
        for chunk in idx.chunks(256) {
            self.store_give(None, chunk);
        }
    }

    /// Marks object `i` (held by this process) as given away through a ring.
    #[inline]
    pub(crate) fn set_in_flight(&self, i: u32) {
        if self.tracked {
            self.tag(i).store(tag::IN_FLIGHT, Relaxed);
        }
    }

    /// Marks object `i` as kept alive by mbuf clones only. Must come before the reference
    /// count's decrement, so that whoever frees it later writes its tag after this.
    #[inline]
    pub(crate) fn set_shared(&self, i: u32) {
        if self.tracked {
            self.tag(i).store(tag::SHARED, Relaxed);
        }
    }

    /// Marks object `i` (given away, or being returned) as held by this process again.
    #[inline]
    pub(crate) fn set_mine(&self, i: u32) {
        if self.tracked {
            self.tag(i).store(self.group.my_tag, Relaxed);
        }
    }

    /// Takes ownership of object `i` if it is in flight. Not an atomic read-modify-write: the
    /// ring hands each index to one receiver; the check catches indices that are not in flight
    /// (stale, duplicated or corrupt ones).
    #[inline]
    pub(crate) fn claim_in_flight(&self, i: u32) -> bool {
        if i >= self.size {
            return false;
        }
        if !self.tracked {
            return true;
        }
        let t = self.tag(i);
        if t.load(Relaxed) != tag::IN_FLIGHT {
            return false;
        }
        t.store(self.group.my_tag, Relaxed);
        true
    }
}

impl PoolInner {
    /// The `elt_size` bytes of object `i`.
    ///
    /// # Safety
    /// The caller holds object `i` (no other process or thread writes it meanwhile), and
    /// `i < size`.
    #[inline]
    pub(crate) unsafe fn obj_bytes(&self, i: u32) -> &[u8] {
        // SAFETY: in bounds (i < size, checked at attach); no concurrent writer (caller).
        unsafe { std::slice::from_raw_parts(self.obj_ptr(i), self.elt_size as usize) }
    }

    /// The `elt_size` bytes of object `i`, writable.
    ///
    /// # Safety
    /// As for [`PoolInner::obj_bytes`], and no other reference to these bytes is alive.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn obj_bytes_mut(&self, i: u32) -> &mut [u8] {
        // SAFETY: in bounds; exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.obj_ptr(i), self.elt_size as usize) }
    }
}

/// Runs `init(bytes, index)` on each of the `size` objects of a pool being built in `zone`.
/// False when they do not fit in the zone.
pub(crate) fn init_objects(
    zone: &Region,
    off_objs: u64,
    stride: u32,
    size: u32,
    elt_size: u32,
    init: &mut dyn FnMut(&mut [u8], u32),
) -> bool {
    let end = off_objs as usize + size as usize * stride as usize;
    if end > zone.len() || (elt_size as usize) > stride as usize {
        return false;
    }
    for i in 0..size {
        let off = off_objs as usize + i as usize * stride as usize;
        // SAFETY: in bounds (checked above); objects do not overlap (elt_size <= stride); the
        // pool is not published, so this thread is the only one touching the zone.
        let obj =
            unsafe { std::slice::from_raw_parts_mut(zone.as_ptr().add(off), elt_size as usize) };
        init(obj, i);
    }
    true
}

/// An object taken from a [`Mempool`]. Owned: dropping it returns it to its pool (to the
/// calling lcore's cache when the thread is an lcore).
pub struct PoolObj {
    pub(super) pool: &'static PoolInner,
    pub(super) idx: u32,
}

impl std::fmt::Debug for PoolObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolObj")
            .field("pool", &self.pool.name)
            .field("idx", &self.idx)
            .finish()
    }
}

impl PoolObj {
    /// The object's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: this handle owns object idx (< size, checked when it entered the process).
        unsafe { self.pool.obj_bytes(self.idx) }
    }

    /// The object's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the slice unique in this process.
        unsafe { self.pool.obj_bytes_mut(self.idx) }
    }

    /// The object's index in its pool (`0 .. size`).
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// The pool it belongs to.
    pub fn pool(&self) -> Mempool {
        Mempool::from_inner(self.pool)
    }

    /// Gives the object up for another process (or thread) to claim with
    /// [`Mempool::from_raw`]; until then it is "in flight" and belongs to no process.
    pub fn into_raw(self) -> ObjIdx {
        let raw = ObjIdx::new(self.pool.index, self.idx);
        self.pool.set_in_flight(self.idx);
        std::mem::forget(self);
        raw
    }
}

impl Drop for PoolObj {
    #[inline]
    fn drop(&mut self) {
        self.pool.put_one(self.idx);
    }
}
