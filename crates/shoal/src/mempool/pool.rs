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
//! Memory orderings: the caches are used by one thread each (relaxed `len`); the store's lock
//! carries the release/acquire edges that order object contents and owner tags between
//! processes: the store writes an object's tag inside its critical section, so whoever takes the
//! object next writes its tag later in the tag's modification order. Tag writes themselves are
//! relaxed; reclaimers move tags only by compare-and-swap.
#![allow(unsafe_code)] // raw access to the cache arrays and objects of a mapped pool

use std::ptr::NonNull;

use super::layout::{kind, tag, CacheHeader, MempoolHeader, CACHE_MAX_SIZE, MAGIC};
use super::registry::PoolViews;
use super::store::Store;
use super::{flags, Mempool, ObjIdx};
use crate::memory::{Fresh, Region, MAX_LCORES};
use crate::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A process's view of a pool. Made once per pool and process (see the registry) and never
/// freed: object handles refer to it by `&'static`.
pub(crate) struct PoolInner {
    pub(crate) group: &'static PoolViews,
    /// The group view's membership id, copied here for the data path (one load less); zeroed
    /// with the group's when the membership ends.
    pub(crate) member: std::sync::atomic::AtomicUsize,
    /// The pool's memzone; keeps the mapping (and so every pointer below) alive.
    pub(crate) zone: Region,
    /// Memzone index: the pool id in object indices.
    pub(crate) index: u32,
    /// This view's process-wide number (see the registry).
    pub(crate) no: u32,
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
    /// Pool handles ([`Mempool`], mbuf pools, object tables) of this process on this view,
    /// with [`HANDLES_FREED`] set once a free took the last one (see `PoolRef`).
    pub(crate) handles: std::sync::atomic::AtomicU32,
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
    zone.sub(usize::try_from(off).ok()?, usize::try_from(len).ok()?)
}

/// The common store's part of a zone being built, as a fresh region of its own.
pub(crate) fn carve(zone: &Fresh, off: u64, len: u64) -> Option<Fresh> {
    let (off, len) = (usize::try_from(off).ok()?, usize::try_from(len).ok()?);
    // SAFETY: the store's bytes lie between the header and the caches (the geometry puts each
    // part in its own range), and the builder only writes the header, the private area and the
    // objects through `zone`, never the store's range.
    unsafe { zone.carve(off, len) }
}

/// Copies indices. Up to 63 are copied as two fixed-size blocks that overlap when `n` is not
/// the block size (the first and the last `k` indices, for the `k` of `n`'s size class), which
/// compile to a compare or two and a few moves; a copy loop would become a call to `memcpy`,
/// which costs more than the copy at these sizes.
#[inline(always)]
fn copy_idx(dst: &mut [u32], src: &[u32]) {
    let n = src.len().min(dst.len());
    let (d, s) = (&mut dst[..n], &src[..n]);
    /// The first and the last `K` of `n >= K` indices.
    #[inline(always)]
    fn ends<const K: usize>(d: &mut [u32], s: &[u32]) {
        let n = d.len();
        d[..K].copy_from_slice(&s[..K]);
        if n > K {
            d[n - K..].copy_from_slice(&s[n - K..]);
        }
    }
    match n {
        0 => {}
        1 => d[0] = s[0],
        2..=3 => ends::<2>(d, s),
        4..=7 => ends::<4>(d, s),
        8..=15 => ends::<8>(d, s),
        16..=31 => ends::<16>(d, s),
        32..=63 => ends::<32>(d, s),
        _ => d.copy_from_slice(s),
    }
}

impl PoolInner {
    /// A view of the published pool in `zone` (memzone `index` of `group`).
    pub(crate) fn attach(
        group: &'static PoolViews,
        zone: Region,
        index: u32,
    ) -> Result<PoolInner, &'static str> {
        let h = MempoolHeader::read(&zone)?;
        let store_region = sub(&zone, h.off_store, h.store_len).ok_or("store out of zone")?;
        let store = Store::attach(store_region).ok_or("bad common store")?;
        // Pools of a kind a layer above registered (mbufs) are checked by that layer; the two
        // values it returns are kept for its data path.
        let (data_room, mbuf_priv) = if h.kind == kind::PLAIN {
            (0, 0)
        } else {
            let k = group
                .kind(h.kind)
                .ok_or("a pool of objects of a kind this process has not registered")?;
            let mut p = vec![0u8; (h.priv_size as usize).min(64)];
            // SAFETY: the private area is written by the creator before the zone is published
            // and never after; the zone cannot be freed and reused while `zone` (an
            // attachment) lives.
            if !unsafe { zone.read(h.off_priv as usize, &mut p) } {
                return Err("private area out of the zone");
            }
            k.check(&p, h.elt_size)?
        };
        let at = |off: u64| -> NonNull<u8> {
            // SAFETY: every offset was checked against zone_len <= zone.len() by `read`.
            NonNull::new(unsafe { zone.as_ptr().add(off as usize) }).expect("non-null mapping")
        };
        Ok(PoolInner {
            group,
            member: std::sync::atomic::AtomicUsize::new(group.member.load(Relaxed)),
            index,
            no: u32::MAX,
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
            handles: std::sync::atomic::AtomicU32::new(0),
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
        // Indices that came through shared memory are clamped, never trusted (a corrupt one
        // yields a wrong object, not a wild address).
        let i = i.min(self.size - 1);
        // SAFETY: i < size, so the object lies inside the zone (checked at attach).
        unsafe { self.objs.as_ptr().add(i as usize * self.stride as usize) }
    }

    /// Object `i`'s owner tag (`i < size`).
    #[inline]
    pub(crate) fn tag(&self, i: u32) -> &AtomicU32 {
        debug_assert!(i < self.size);
        let i = i.min(self.size - 1);
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

    /// The calling thread's lcore in this pool's group, if it is one (its cache, when the pool
    /// has caches, and its store handles).
    #[inline]
    fn local_lcore(&self) -> Option<u32> {
        crate::group::lcore_in(self.member.load(Relaxed))
    }

    /// The owner tags the store keeps exact, for a tracked pool.
    #[inline]
    fn tags(&self) -> Option<&[AtomicU32]> {
        if self.tracked {
            // SAFETY: `size` tags were laid out at off_tags (checked at attach); atomics are
            // valid for every bit pattern and shared with other processes by design.
            Some(unsafe { std::slice::from_raw_parts(self.tags.as_ptr(), self.size as usize) })
        } else {
            None
        }
    }

    /// Takes `out.len()` objects from the store (all or nothing), validated and tagged as held
    /// by this process (inside the store's critical section, so that a kill leaves them exact).
    fn store_take(&self, out: &mut [u32]) -> bool {
        if !self.store.dequeue(out, self.tags(), self.group.my_tag) {
            return false;
        }
        if !self.valid(out) {
            // Only a corrupted store gets here; the bad indices cannot be used or returned.
            tracing::error!(target: "shoal::mempool", "pool {:?}: the common store held an invalid object index; {} objects dropped", self.name, out.len());
            self.hdr().lost.fetch_add(out.len() as u64, Relaxed);
            return false;
        }
        true
    }

    /// Gives objects to the store (never fails while the pool is sound); they are tagged free
    /// inside the store's critical section.
    fn store_give(&self, idx: &[u32]) {
        if !self.store.enqueue(idx, self.tags(), self.group.my_tag) {
            tracing::error!(target: "shoal::mempool", "pool {:?}: the common store refused {} objects (was an object freed twice?); they are lost", self.name, idx.len());
            self.hdr().lost.fetch_add(idx.len() as u64, Relaxed);
        }
    }

    /// Repairs the store if a dead process held it, and waits for a live holder to finish: the
    /// reaper calls this before it reclaims a dead process's objects by their tags.
    pub(crate) fn settle_store(&self) {
        self.store.settle(self.tags());
    }

    /// Gets `dst.len()` objects into `dst`, all or nothing (DPDK's
    /// `rte_mempool_do_generic_get`). `dst` is scratch until this returns true.
    #[inline(always)]
    pub(crate) fn get_into(&self, dst: &mut [u32]) -> bool {
        let n = dst.len();
        if n == 0 {
            return true;
        }
        let lcore = self.local_lcore();
        let Some(lcore) = lcore.filter(|_| self.cache_size > 0) else {
            return self.store_take(dst);
        };
        let (c, objs) = self.cache(lcore);
        // Only this thread writes len; clamped against a peer's scribbles.
        let len = (c.len.load(Relaxed) as usize).min(self.flushthresh as usize);
        if n <= len {
            // SAFETY: objs[0 .. len] are initialised indices of this cache, used by this thread
            // only; len <= flushthresh <= the array's length. (The indices are this thread's
            // own writes; every use of an index clamps it, so they need no check here.)
            let top = unsafe { std::slice::from_raw_parts(objs.add(len - n), n) };
            copy_idx(dst, top);
            c.len.store((len - n) as u32, Relaxed);
            return true;
        }
        self.cache_get_slow(c, objs, len, dst)
    }

    #[inline(never)]
    fn cache_get_slow(&self, c: &CacheHeader, objs: *mut u32, len: usize, dst: &mut [u32]) -> bool {
        // The cache's objects go first (hot ones), then the rest from the store.
        // SAFETY: objs[0 .. len] are this cache's indices, used by this thread only.
        copy_idx(&mut dst[..len], unsafe {
            std::slice::from_raw_parts(objs, len)
        });
        let rest = dst.len() - len;
        let size = self.cache_size as usize;
        if rest <= CACHE_MAX_SIZE as usize {
            // Fill: cache_size + rest objects straight into the cache array (its capacity is
            // cache_size + CACHE_MAX_SIZE); the top `rest` go to the caller.
            // SAFETY: size + rest <= the array's capacity; the cache's old objects were copied
            // out above and the array is this thread's.
            let fill = unsafe { std::slice::from_raw_parts_mut(objs, size + rest) };
            if self.store_take(fill) {
                crate::fault::point("cache.filled");
                copy_idx(&mut dst[len..], &fill[size..]);
                c.len.store(size as u32, Relaxed);
                c.fills.fetch_add(1, Relaxed);
                return true;
            }
            // A failed bulk dequeue writes nothing, but a dequeue of corrupt indices did: put the
            // cache's own objects back where they were.
            let k = len.min(fill.len());
            copy_idx(&mut fill[..k], &dst[..k]);
        }
        if self.store_take(&mut dst[len..]) {
            c.len.store(0, Relaxed);
            return true;
        }
        false
    }

    /// Puts objects back (their handles are gone). Indices must be this pool's and held by this
    /// process (DPDK's `rte_mempool_do_generic_put`).
    #[inline(always)]
    pub(crate) fn put(&self, idx: &[u32]) {
        let n = idx.len();
        if n == 0 {
            return;
        }
        debug_assert!(self.valid(idx));
        let lcore = self.local_lcore();
        if self.cache_size > 0 && n <= self.flushthresh as usize {
            if let Some(l) = lcore {
                let (c, objs) = self.cache(l);
                let len = (c.len.load(Relaxed) as usize).min(self.flushthresh as usize);
                let at = if len + n <= self.flushthresh as usize {
                    len
                } else {
                    self.flush(c, objs, len);
                    0
                };
                // SAFETY: at + n <= flushthresh <= the array's length; this thread's array.
                copy_idx(
                    unsafe { std::slice::from_raw_parts_mut(objs.add(at), n) },
                    idx,
                );
                c.len.store((at + n) as u32, Relaxed);
                return;
            }
        }
        self.store_give(idx);
    }

    /// Puts one object back: [`PoolInner::put`] for one index.
    #[inline]
    pub(crate) fn put_one(&self, i: u32) {
        debug_assert!(i < self.size);
        if self.cache_size > 0 {
            if let Some(lcore) = self.local_lcore() {
                let (c, objs) = self.cache(lcore);
                let len = c.len.load(Relaxed) as usize;
                if len < self.flushthresh as usize {
                    // SAFETY: len < flushthresh, inside the array; used by this thread only.
                    unsafe { objs.add(len).write(i) };
                    c.len.store(len as u32 + 1, Relaxed);
                    return;
                }
            }
        }
        self.put(&[i]);
    }

    /// Flushes the whole cache to the store (DPDK: when a put would pass the threshold).
    #[inline(never)]
    fn flush(&self, c: &CacheHeader, objs: *mut u32, len: usize) {
        // SAFETY: objs[0 .. len] are this cache's indices, used by this thread only.
        let old = unsafe { std::slice::from_raw_parts(objs, len) };
        if self.valid(old) {
            self.store_give(old);
            crate::fault::point("cache.flushed");
        } else {
            self.hdr().lost.fetch_add(len as u64, Relaxed);
            tracing::error!(target: "shoal::mempool", "pool {:?}: an lcore cache held an invalid index; {len} cached objects dropped", self.name);
        }
        c.len.store(0, Relaxed);
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
            self.store_give(chunk);
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

    /// Moves object `i`'s tag from `from` to `to` if it is `from` (a repair by the reaper).
    pub(crate) fn move_tag(&self, i: u32, from: u32, to: u32) -> bool {
        i < self.size
            && self.tracked
            && self
                .tag(i)
                .compare_exchange(from, to, Relaxed, Relaxed)
                .is_ok()
    }

    /// Takes ownership of object `i` if it is in flight: a compare-and-swap, so that an index
    /// found twice (a duplicate, or a stale copy in a ring) gets one owner at most.
    #[inline]
    pub(crate) fn claim_in_flight(&self, i: u32) -> bool {
        if i >= self.size {
            return false;
        }
        if !self.tracked {
            return true;
        }
        self.tag(i)
            .compare_exchange(tag::IN_FLIGHT, self.group.my_tag, Relaxed, Relaxed)
            .is_ok()
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
    zone: &mut Fresh,
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
        // The zone is Fresh: nobody else sees it until the pool is published.
        let Some(obj) = zone.bytes_mut(off, elt_size as usize) else {
            return false;
        };
        init(obj, i);
    }
    true
}

/// An object taken from a [`Mempool`]. Owned: dropping it returns it to its pool (to the
/// calling lcore's cache when the thread is an lcore). Eight bytes, like DPDK's object pointer.
#[repr(C)]
pub struct PoolObj {
    pub(super) idx: u32,
    /// The pool view's process-wide number.
    pub(super) no: u32,
}

impl std::fmt::Debug for PoolObj {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolObj")
            .field("pool", &self.view().name)
            .field("idx", &self.idx)
            .finish()
    }
}

impl PoolObj {
    #[inline(always)]
    pub(super) fn new(pool: &'static PoolInner, idx: u32) -> PoolObj {
        PoolObj { idx, no: pool.no }
    }

    #[inline(always)]
    fn view(&self) -> &'static PoolInner {
        super::registry::view(self.no)
    }

    /// The object's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: this handle owns object idx (< size, checked when it entered the process).
        unsafe { self.view().obj_bytes(self.idx) }
    }

    /// The object's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the slice unique in this process.
        unsafe { self.view().obj_bytes_mut(self.idx) }
    }

    /// The object's index in its pool (`0 .. size`).
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// The pool it belongs to.
    pub fn pool(&self) -> Mempool {
        Mempool::from_inner(self.view())
    }

    /// Gives the object up for another process (or thread) to claim with
    /// [`Mempool::from_raw`]; until then it is "in flight" and belongs to no process.
    pub fn into_raw(self) -> ObjIdx {
        let pool = self.view();
        let raw = ObjIdx::new(pool.index, self.idx);
        pool.set_in_flight(self.idx);
        std::mem::forget(self);
        raw
    }
}

/// Gets `n` objects of `pool` appended to `out` as single handles, all or none.
#[inline]
pub(super) fn get_objs(pool: &'static PoolInner, n: usize, out: &mut Vec<PoolObj>) -> bool {
    let mut small = [0u32; 64];
    let mut large = Vec::new();
    let buf = if n <= small.len() {
        &mut small[..n]
    } else {
        large.resize(n, 0);
        &mut large[..]
    };
    if !pool.get_into(buf) {
        return false;
    }
    out.reserve(n);
    out.extend(buf.iter().map(|&idx| PoolObj::new(pool, idx)));
    true
}

/// Returns the last `n` objects of `objs` to `pool` (all of them when fewer), in one bulk put
/// when they are all `pool`'s.
#[inline]
pub(super) fn put_tail(pool: &'static PoolInner, objs: &mut Vec<PoolObj>, n: usize) {
    let len = objs.len();
    let n = n.min(len);
    let tail = &objs[len - n..];
    let ours = tail.iter().fold(true, |ok, o| ok & (o.no == pool.no));
    if !ours {
        objs.truncate(len - n);
        return;
    }
    let mut buf = [0u32; 64];
    for chunk in tail.chunks(64) {
        for (d, o) in buf.iter_mut().zip(chunk) {
            *d = o.idx;
        }
        pool.put(&buf[..chunk.len()]);
    }
    // SAFETY: the last n handles were returned above (their objects are back in the pool), so
    // they must not be dropped: shrinking the length forgets them, and PoolObj owns no memory.
    unsafe { objs.set_len(len - n) };
}

impl Drop for PoolObj {
    #[inline]
    fn drop(&mut self) {
        self.view().put_one(self.idx);
    }
}

/// Objects of one pool held together: DPDK's object table for bulk gets and puts, four bytes
/// per object. Owned like [`PoolObj`]s: dropping the batch returns what it holds.
pub struct PoolObjs {
    pool: &'static PoolInner,
    /// `buf[..len]` are the objects held; the rest is initialised scratch that a get writes
    /// into directly (no zeroing per get, as a `Vec` resize would do).
    buf: Vec<u32>,
    len: usize,
    /// Keeps the pool from being freed while the table lives, even empty.
    _handle: Mempool,
}

impl std::fmt::Debug for PoolObjs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolObjs")
            .field("pool", &self.pool.name)
            .field("idx", &self.indices())
            .finish()
    }
}

impl PoolObjs {
    /// An empty batch for objects of `pool`.
    pub fn new(pool: &Mempool) -> PoolObjs {
        Self::with_capacity(pool, 0)
    }

    /// An empty batch with room for `n` objects before it allocates.
    pub fn with_capacity(pool: &Mempool, n: usize) -> PoolObjs {
        PoolObjs {
            pool: pool.inner(),
            buf: vec![0; n],
            len: 0,
            _handle: pool.clone(),
        }
    }

    /// Makes room for `n` more objects.
    #[inline]
    fn room(&mut self, n: usize) {
        let want = self.len + n;
        if want > self.buf.len() {
            self.grow(want);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, want: usize) {
        let to = want.max(self.buf.len() * 2).max(8);
        self.buf.resize(to, 0);
    }

    /// Gets `n` objects from the pool, appended, or none at all (DPDK's
    /// `rte_mempool_get_bulk`).
    #[inline]
    pub fn get_bulk(&mut self, n: usize) -> bool {
        self.room(n);
        let len = self.len;
        if self.pool.get_into(&mut self.buf[len..len + n]) {
            self.len = len + n;
            return true;
        }
        false
    }

    /// Returns the last `n` objects (all of them when fewer) to the pool (DPDK's
    /// `rte_mempool_put_bulk`).
    #[inline]
    pub fn put_bulk(&mut self, n: usize) {
        let len = self.len;
        let n = n.min(len);
        self.pool.put(&self.buf[len - n..len]);
        self.len = len - n;
    }

    /// Returns every object to the pool.
    pub fn clear(&mut self) {
        self.put_bulk(self.len);
    }

    /// Objects held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool.
    pub fn pool(&self) -> Mempool {
        Mempool::from_inner(self.pool)
    }

    /// The bytes of the `i`th object.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let &o = self.indices().get(i)?;
        // SAFETY: the batch owns object o (< size: it came from the pool).
        Some(unsafe { self.pool.obj_bytes(o) })
    }

    /// The bytes of the `i`th object, writable.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let &o = self.indices().get(i)?;
        // SAFETY: as in `get`; `&mut self` makes the slice unique in this process.
        Some(unsafe { self.pool.obj_bytes_mut(o) })
    }

    /// The objects' indices in their pool.
    pub fn indices(&self) -> &[u32] {
        &self.buf[..self.len]
    }

    /// Takes the last object out as a handle of its own.
    pub fn pop(&mut self) -> Option<PoolObj> {
        let i = *self.indices().last()?;
        self.len -= 1;
        Some(PoolObj::new(self.pool, i))
    }

    /// Adds an object of the same pool; gives back one of another pool.
    pub fn push(&mut self, o: PoolObj) -> Result<(), PoolObj> {
        if o.no != self.pool.no {
            return Err(o);
        }
        self.room(1);
        self.buf[self.len] = o.idx;
        self.len += 1;
        std::mem::forget(o);
        Ok(())
    }
}

impl Drop for PoolObjs {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::copy_idx;

    #[test]
    fn copy_idx_copies_every_length() {
        let src: Vec<u32> = (1..=200).collect();
        for n in 0..=200 {
            let mut dst = vec![0u32; n];
            copy_idx(&mut dst, &src[..n]);
            assert_eq!(dst, src[..n], "n = {n}");
        }
    }
}
