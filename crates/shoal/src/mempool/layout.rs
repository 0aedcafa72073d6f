//! What a mempool looks like in shared memory: its memzone `MP_<name>` holds, in order,
//!
//! | part | size | written by |
//! |---|---|---|
//! | [`MempoolHeader`] | 256 B | the creator, once, before `magic` is published |
//! | common store (a `Ring<u32>` of free object indices) | `Ring::memsize` | any process, through the ring |
//! | per-lcore caches, [`MAX_LCORES`] of them (when `cache_size > 0`) | `cache_stride` each | the lcore's thread only |
//! | owner tags, one `AtomicU32` per object | `4 n` | see [`tag`] |
//! | pool private area (the mbuf pool's data room and private size) | `priv_size` | the creator |
//! | objects | `n * stride` | whoever holds the object |
//!
//! Offsets are from the start of the memzone and the same in every process. Every index read
//! from shared memory is checked against `size` before it is used to form an address.
#![allow(unsafe_code)] // implements Shared for the header and writes it in place before publication

use std::mem::{align_of, offset_of, size_of};

use crate::memory::{Fresh, Region, Shared, MAX_LCORES};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `SHOALMP1`, little endian: published last by the creator.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHOALMP1");
/// Written over `magic` when the pool is freed.
pub(crate) const MAGIC_FREED: u64 = u64::from_le_bytes(*b"SHOALMP0");

/// Largest per-lcore cache (DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`).
pub const CACHE_MAX_SIZE: u32 = 512;
/// Most objects a pool may hold: indices carry the pool's id in their top bits (see
/// [`super::ObjIdx`]).
pub const MAX_OBJECTS: u32 = 1 << OBJ_BITS;
/// Bits of an object index inside an [`super::ObjIdx`].
pub(crate) const OBJ_BITS: u32 = 23;
/// Bytes of a pool name (DPDK's `RTE_MEMPOOL_NAMESIZE`: the memzone name minus `MP_`).
pub const NAMESIZE: usize = crate::memory::MEMZONE_NAMESIZE - 3;

const _: () = assert!(crate::memory::header::MAX_MEMZONES <= 1 << (32 - OBJ_BITS));

/// What kind of objects a pool holds.
pub(crate) mod kind {
    /// Plain objects ([`crate::mempool::PoolObj`]).
    pub const PLAIN: u32 = 1;
    /// Packet buffers (mbufs; the mbuf layer registers this kind with each group).
    pub const MBUF: u32 = 2;
}

/// Owner tags: one per object, saying who answers for it. The data path keeps them exact at
/// every operation boundary:
///
/// - the common store holds exactly the objects tagged [`tag::FREE`];
/// - an object in a process's hands *or in one of its lcore caches* is tagged with the
///   process's slot and slot generation ([`tag::held`]): a cache fill tags what it takes, a
///   flush frees what it gives back, and moving objects between hand and cache writes no tag
///   (that is what keeps the cached fast path free of tracking costs);
/// - an object handed to another process through a ring is [`tag::IN_FLIGHT`] until the
///   receiver claims it;
/// - a direct mbuf whose handle is gone while clones still use its buffer is [`tag::SHARED`].
///
/// A dying process's objects are therefore exactly those tagged with its slot and generation.
pub(crate) mod tag {
    /// In the common store.
    pub const FREE: u32 = 0;
    /// Given away through a ring (or another channel) and not yet claimed.
    pub const IN_FLIGHT: u32 = 1;
    /// A direct mbuf kept alive only by the clones attached to it.
    pub const SHARED: u32 = 2;
    /// Being returned by a reclaimer.
    pub const RECLAIMING: u32 = 3;
    /// Held by a process that has no slot (an inspector): never reclaimed.
    pub const UNATTRIBUTED: u32 = 4;
    const HELD: u32 = 0x8000_0000;

    /// Held (in hand or in a cache) by the process in `slot` at slot generation `gen`.
    pub const fn held(slot: u32, gen: u32) -> u32 {
        HELD | ((gen & 0x7fff) << 16) | (slot & 0xffff)
    }
    /// `Some((slot, generation & 0x7fff))` for a held tag.
    pub const fn holder(t: u32) -> Option<(u32, u32)> {
        if t & HELD != 0 {
            Some((t & 0xffff, (t >> 16) & 0x7fff))
        } else {
            None
        }
    }
}

/// The control block at offset 0 of a mempool's memzone. Everything but `magic` is written by
/// the creator before it publishes `magic` and never changes after.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C, align(128))]
pub(crate) struct MempoolHeader {
    pub magic: AtomicU64,
    /// Tells this pool from an earlier one that lived at the same place.
    pub uid: AtomicU64,
    pub name: [u8; 32],
    pub kind: u32,
    pub flags: u32,
    pub size: u32,
    pub elt_size: u32,
    /// Bytes from one object to the next.
    pub stride: u32,
    pub cache_size: u32,
    pub flushthresh: u32,
    /// Bytes from one lcore's cache to the next.
    pub cache_stride: u32,
    pub priv_size: u32,
    pub creator_pid: u32,
    pub off_store: u64,
    pub store_len: u64,
    pub off_caches: u64,
    pub off_tags: u64,
    pub off_priv: u64,
    pub off_objs: u64,
    pub zone_len: u64,
    /// Objects lost to a failed flush (only after corruption); for the audit.
    pub lost: AtomicU64,
    /// [`LAYOUT`] of the binary that built the pool; checked at attach.
    pub layout: u64,
}

#[cfg(not(loom))] // loom atomics are larger; only the real build pins the layout
const _: () = assert!(size_of::<MempoolHeader>() == 256);

// SAFETY: repr(C); integers, a byte array and atomics; no pointers. The plain fields are
// written once by the creator before `magic` is published (Release) and only read after a
// reader saw `magic` (Acquire), so they are never written while shared.
unsafe impl Shared for MempoolHeader {}

/// One lcore's cache: this header, then room for `cache_size + CACHE_MAX_SIZE` object indices
/// (`u32`) in the same `cache_stride` bytes. Only the thread registered as that lcore in the process that holds
/// the lcore touches `objs`; `len` and the counters are read by anyone (statistics, counts).
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C, align(64))]
pub(crate) struct CacheHeader {
    /// Objects in the cache: `objs[0 .. len]`, always `<= flushthresh`.
    pub len: AtomicU32,
    pub _pad: u32,
    /// Times the cache was filled from the common store.
    pub fills: AtomicU64,
    /// Times the cache was flushed to the common store.
    pub flushes: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<CacheHeader>() == 64);

// SAFETY: repr(C); atomics only.
unsafe impl Shared for CacheHeader {}

/// Where the parts of a pool's memzone go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub stride: u32,
    pub flushthresh: u32,
    pub cache_stride: u32,
    pub off_store: u64,
    pub store_len: u64,
    pub off_caches: u64,
    pub off_tags: u64,
    pub off_priv: u64,
    pub off_objs: u64,
    pub zone_len: u64,
}

const fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// DPDK's `CALC_CACHE_FLUSHTHRESH`: 1.5 times the cache size.
pub(crate) const fn flushthresh(cache_size: u32) -> u32 {
    cache_size + cache_size / 2
}

impl Geometry {
    /// Lays out a pool of `size` objects of `elt_size` bytes.
    pub(crate) fn new(
        size: u32,
        elt_size: u32,
        cache_size: u32,
        priv_size: u32,
        align_objs: bool,
        store_len: u64,
    ) -> Option<Geometry> {
        let stride = if align_objs {
            round_up(elt_size.max(1) as u64, 64)
        } else {
            round_up(elt_size.max(1) as u64, 8)
        };
        let stride = u32::try_from(stride).ok()?;
        let flushthresh = flushthresh(cache_size);
        // Room for a fill of cache_size + CACHE_MAX_SIZE (DPDK's 2 * CACHE_MAX_SIZE array),
        // which also holds the flush threshold (1.5 * cache_size).
        let cache_stride = if cache_size == 0 {
            0
        } else {
            round_up(64 + 4 * (cache_size + CACHE_MAX_SIZE) as u64, 128)
        };
        let off_store = round_up(size_of::<MempoolHeader>() as u64, 128);
        let off_caches = round_up(off_store + store_len, 128);
        let caches_len = if cache_size == 0 {
            0
        } else {
            MAX_LCORES as u64 * cache_stride
        };
        let off_tags = round_up(off_caches + caches_len, 128);
        let off_priv = round_up(off_tags + 4 * size as u64, 128);
        let off_objs = round_up(off_priv + priv_size as u64, 128);
        let zone_len = off_objs.checked_add((size as u64).checked_mul(stride as u64)?)?;
        Some(Geometry {
            stride,
            flushthresh,
            cache_stride: u32::try_from(cache_stride).ok()?,
            off_store,
            store_len,
            off_caches,
            off_tags,
            off_priv,
            off_objs,
            zone_len,
        })
    }
}

impl MempoolHeader {
    /// Writes a new header at the start of `zone`, unpublished (`magic` = 0).
    ///
    /// Returns `None` when the zone is too small or misaligned for it.
    pub(crate) fn write(zone: &mut Fresh, value: MempoolHeader) -> Option<()> {
        if zone.len() < size_of::<MempoolHeader>()
            || !(zone.as_ptr() as usize).is_multiple_of(align_of::<MempoolHeader>())
        {
            return None;
        }
        // SAFETY: in bounds and aligned (checked above); a `Fresh` zone is seen by nobody else
        // (the memzone is reserved, not published), and `&mut` excludes our own references.
        unsafe { std::ptr::write(zone.as_ptr() as *mut MempoolHeader, value) };
        Some(())
    }

    /// The header of a published pool, checked for magic and internal consistency against the
    /// zone it sits in.
    pub(crate) fn read(zone: &Region) -> Result<&MempoolHeader, &'static str> {
        let h: &MempoolHeader = zone.get(0).ok_or("zone too small for a mempool header")?;
        // A0: pairs with R0 in `publish`: the fields written before magic are visible.
        match h.magic.load(Ordering::Acquire) {
            MAGIC => {}
            MAGIC_FREED => return Err("the pool was freed"),
            0 => return Err("the pool is still being created"),
            _ => return Err("not a mempool (bad magic)"),
        }
        if h.layout != LAYOUT {
            return Err(
                "built by a binary with another mempool layout; rebuild both from the same source",
            );
        }
        let geo = Geometry::new(
            h.size,
            h.elt_size,
            h.cache_size,
            h.priv_size,
            h.stride.is_multiple_of(64),
            h.store_len,
        )
        .ok_or("inconsistent geometry")?;
        let ok = h.size > 0
            && h.size <= MAX_OBJECTS
            && h.cache_size <= CACHE_MAX_SIZE
            && geo.stride == h.stride
            && geo.flushthresh == h.flushthresh
            && geo.cache_stride == h.cache_stride
            && geo.off_store == h.off_store
            && geo.off_caches == h.off_caches
            && geo.off_tags == h.off_tags
            && geo.off_priv == h.off_priv
            && geo.off_objs == h.off_objs
            && geo.zone_len == h.zone_len
            && h.zone_len <= zone.len() as u64;
        if ok {
            Ok(h)
        } else {
            Err("inconsistent header")
        }
    }

    /// Opens the pool to other processes.
    pub(crate) fn publish(&self) {
        // R0: pairs with A0 in `read`: the header, store, tags and objects written by the
        // creator are visible to whoever sees the magic.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// The name, as written by the creator.
    pub(crate) fn name_str(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(32);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// The mempool layout word, written into every pool's header and checked at attach.
pub(crate) const LAYOUT: u64 = crate::memory::layout_hash(&LAYOUT_FACTS);

/// Layout facts of the mempool structures.
const LAYOUT_FACTS: [u64; 13] = [
    size_of::<MempoolHeader>() as u64,
    align_of::<MempoolHeader>() as u64,
    offset_of!(MempoolHeader, uid) as u64,
    offset_of!(MempoolHeader, size) as u64,
    offset_of!(MempoolHeader, off_store) as u64,
    offset_of!(MempoolHeader, lost) as u64,
    offset_of!(MempoolHeader, layout) as u64,
    size_of::<CacheHeader>() as u64,
    offset_of!(CacheHeader, flushes) as u64,
    CACHE_MAX_SIZE as u64,
    OBJ_BITS as u64,
    tag::held(1, 1) as u64,
    MAGIC,
];
