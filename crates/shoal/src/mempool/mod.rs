//! Mempools: fixed-size objects in shared memory with per-lcore caches (DPDK's
//! `rte_mempool_*`).
//!
//! ```no_run
//! use shoal::mempool::{Mempool, MempoolConfig};
//! let (eal, _) = shoal::eal::Eal::init(std::env::args().collect()).unwrap();
//! let pool = Mempool::create(&eal, "msgs", MempoolConfig::new(1023, 256).cache_size(32)).unwrap();
//! let mut obj = pool.get().expect("pool empty");
//! obj.data_mut()[..5].copy_from_slice(b"hello");
//! drop(obj); // back to the pool (to this lcore's cache)
//! ```
//!
//! A pool lives in the memzone `MP_<name>`: a header, a common store of free object indices (a
//! multi-producer/multi-consumer ring, like DPDK's default `ring_mp_mc` ops), one cache per
//! lcore id, an owner tag per object and the objects (see `layout.rs`). Any process of the
//! group finds it with [`Mempool::lookup`].
//!
//! **Ownership.** [`PoolObj`] is an owned handle: dropping it returns the object, so an object
//! cannot be freed twice or used after it was freed. To move an object to another process,
//! [`PoolObj::into_raw`] turns it into an [`ObjIdx`] (a `Pod` that rings carry) and the
//! receiver takes ownership with [`Mempool::from_raw`], which refuses an index that was not
//! handed over that way.
//!
//! ```compile_fail
//! # fn f(pool: shoal::mempool::Mempool) {
//! let o = pool.get().unwrap();
//! drop(o);
//! let _ = o.data(); // use after it went back to the pool
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mempool::Mempool) {
//! let o = pool.get().unwrap();
//! let raw = o.into_raw();
//! drop(o); // freeing what another process now owns
//! # }
//! ```
//!
//! A [`PoolObj`] is eight bytes, like DPDK's object pointer. For bulk work, [`PoolObjs`] holds
//! objects of one pool as plain indices (DPDK's object table, four bytes each): its `get_bulk`
//! and `put_bulk` copy indices between the table and the lcore cache and nothing else.
//!
//! **Caches.** A thread registered as an lcore (the EAL's main thread, or one registered with
//! `Eal::register_thread`) uses its lcore's cache; other threads use the common store
//! directly, as in DPDK. The cache rules are DPDK 22.11's (`pool.rs`). Like DPDK, counts of
//! available objects include what sits in caches.
//!
//! **Owner tags and reclaiming.** Every object carries a tag saying who answers for it: the
//! store, a process slot (in its hands or its caches), "in flight" (handed over through a ring)
//! or "shared" (an mbuf buffer kept alive by clones). When a process dies, even by `SIGKILL`,
//! the primary's reaper returns everything tagged with the dead slot to the store and empties
//! its caches; [`reclaim`] does the same on demand (`shoal reclaim`). What was in flight is not the dead process's
//! any more: the process that dequeues it owns it. Two windows remain, both a few instructions
//! wide: a process killed between taking indices out of a ring and claiming them (in
//! an mbuf ring's `dequeue_burst` or between a dequeue and [`Mempool::from_raw`])
//! leaves those objects in flight for ever, and one killed inside a store operation of its own
//! may lose the objects of that operation. Neither corrupts a pool: the [`Mempool::audit`]
//! reports such objects.
//!
//! What the tags cost: with a cache, nothing on the fast path (moving objects between hand and
//! cache writes no tag; fills and flushes write one tag per object they move). Without a cache
//! every get and put writes each object's tag, about a nanosecond per object here
//! (`flags::NO_OWNER_TAGS` turns tags off, and with them reclaiming).
//!
//! Memory orderings:
//!
//! | edge | Release site | Acquire site | protects |
//! |---|---|---|---|
//! | R0/A0 | header `publish` | header `read` (lookup, attach) | the header, store and objects the creator initialised |
//! | R1/A1 | registry view store | registry view load | a process-local view is fully built |
//! | ring | store enqueue (prod tail) | store dequeue | object contents and owner tags between processes |

mod layout;
mod pool;
mod reclaim;
mod registry;
mod store;

use crate::group::Group;
use crate::memory::{Fresh, MemzoneKind};
use crate::memzone::{self, Memzone};
use crate::sync::atomic::Ordering;
use crate::sync::MemberId;
use crate::sys;

pub(crate) use layout::kind;
pub use layout::{CACHE_MAX_SIZE, MAX_OBJECTS, NAMESIZE};
pub(crate) use pool::PoolInner;
pub use pool::{PoolObj, PoolObjs};
pub use reclaim::{reclaim, Audit, PoolUsage, SlotUsage};
pub(crate) use registry::{views, PoolViews};

/// What a layer that keeps its own objects in pools (mbufs) tells the pools about them. It
/// registers one with each group ([`register_kind`]); a pool of a kind that has none
/// registered is not attached to. The mempool layer calls these hooks and names no layer
/// above it.
pub(crate) trait ObjectKind: Send + Sync {
    /// The pool kind (`kind::*`) it answers for.
    fn kind(&self) -> u32;
    /// Checks the private area a pool's creator wrote (`priv_area`, at most 64 bytes of it)
    /// for objects of `elt_size` bytes, at attach; returns the two values the views keep for
    /// that layer's data path (an mbuf pool's data room and private size).
    fn check(&self, priv_area: &[u8], elt_size: u32) -> Result<(u16, u16), &'static str>;
    /// Before the objects of the dead member `dead` are reclaimed by their owner tags (which
    /// must then be exact): finishes or undoes what it left half done elsewhere (operations on
    /// rings of these objects), moving tags through the pools' own methods.
    fn settle_dead(&self, views: &'static PoolViews, dead: MemberId, dead_tag: u32);
    /// What reclaiming object `i` of `p`, held by a dead member (its tag is `RECLAIMING`),
    /// means: true to return it to its pool, false when it stays in use (by clones).
    fn reclaim_object(&self, p: &'static PoolInner, i: u32) -> bool;
}

/// Registers an object kind with `group` (once per kind).
pub(crate) fn register_kind(group: &Group, k: &'static dyn ObjectKind) {
    group.state::<registry::Kinds>().add(k);
}

/// Registers the mempool layer's reclaimer with `group`: the process table returns a member's
/// objects through it.
pub(crate) fn register(group: &Group) {
    group.add_reclaimer("mempool", std::sync::Arc::new(reclaim::PoolReclaimer));
}

/// Pool flags (DPDK's `RTE_MEMPOOL_F_*` values where DPDK has the flag).
pub mod flags {
    /// Objects are not aligned to cache lines (`RTE_MEMPOOL_F_NO_CACHE_ALIGN`).
    pub const NO_CACHE_ALIGN: u32 = 0x0002;
    /// Only one thread puts into the common store at a time (`RTE_MEMPOOL_F_SP_PUT`).
    pub const SP_PUT: u32 = 0x0004;
    /// Only one thread gets from the common store at a time (`RTE_MEMPOOL_F_SC_GET`).
    pub const SC_GET: u32 = 0x0008;
    /// No owner tags (shoal's own flag, for measuring their cost): objects of a process that
    /// dies are not returned, and [`super::Mempool::from_raw`] cannot check its argument.
    pub const NO_OWNER_TAGS: u32 = 0x1000;
    /// Every flag an application may pass.
    pub const VALID: u32 = NO_CACHE_ALIGN | SP_PUT | SC_GET | NO_OWNER_TAGS;
}

/// How to build a pool (the arguments of DPDK's `rte_mempool_create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Number of objects. `2^q - 1` uses the store's ring best, as in DPDK.
    pub size: u32,
    /// Bytes per object.
    pub elt_size: u32,
    /// Per-lcore cache size, 0 for none; at most [`CACHE_MAX_SIZE`] and `size / 1.5`.
    pub cache_size: u32,
    /// [`flags`].
    pub flags: u32,
}

impl MempoolConfig {
    /// `size` objects of `elt_size` bytes, no cache, no flags.
    pub fn new(size: u32, elt_size: u32) -> Self {
        Self {
            size,
            elt_size,
            cache_size: 0,
            flags: 0,
        }
    }

    /// With per-lcore caches of `cache_size` objects.
    pub fn cache_size(mut self, cache_size: u32) -> Self {
        self.cache_size = cache_size;
        self
    }

    /// With `flags`.
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

/// Errors of mempool operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A pool of zero objects was asked for.
    #[error("a mempool needs at least one object")]
    ZeroSize,
    /// More objects than a pool can index.
    #[error("{0} objects asked for; a pool holds at most {MAX_OBJECTS}")]
    TooManyObjects(u32),
    /// The cache is too big for DPDK's rules.
    #[error("cache size {cache_size} is too big: at most {CACHE_MAX_SIZE} and at most size / 1.5 (size {size})")]
    CacheTooBig {
        /// Asked cache size.
        cache_size: u32,
        /// Pool size.
        size: u32,
    },
    /// Unknown flag bits.
    #[error("invalid mempool flags {0:#x}")]
    InvalidFlags(u32),
    /// Empty or too long a name.
    #[error("mempool name {0:?} must be 1 to {max} bytes", max = NAMESIZE - 1)]
    BadName(String),
    /// The name is taken.
    #[error("a mempool named {0:?} already exists")]
    Exists(String),
    /// No pool has this name.
    #[error("no mempool named {0:?}")]
    NotFound(String),
    /// The memzone exists but holds no usable pool.
    #[error("mempool {name:?} cannot be used: {why}")]
    Unusable {
        /// The pool.
        name: String,
        /// Why.
        why: String,
    },
    /// A pool of mbufs was looked up as a plain mempool, or the other way round.
    #[error("mempool {name:?} holds {found}; use {use_instead}")]
    WrongKind {
        /// The pool.
        name: String,
        /// What it holds.
        found: &'static str,
        /// The lookup to use.
        use_instead: &'static str,
    },
    /// Objects are still in use.
    #[error("mempool {name:?} still has {in_use} objects in use")]
    InUse {
        /// The pool.
        name: String,
        /// Objects out of the pool.
        in_use: u32,
    },
    /// Memory for the pool could not be had.
    #[error("memory for mempool {name:?}: {source}")]
    Memzone {
        /// The pool.
        name: String,
        /// The cause.
        source: memzone::Error,
    },
    /// The pool's layout does not fit in memory.
    #[error("mempool {0:?} is too large")]
    TooLarge(String),
    /// `reclaim` was asked for the slot of a live process.
    #[error("process slot {slot} belongs to live process {pid}; only a dead process's objects can be reclaimed")]
    SlotAlive {
        /// The slot.
        slot: u32,
        /// Its process.
        pid: u32,
    },
    /// Other handles of this process on the pool are alive.
    #[error("mempool {name:?} still has {others} other handles in this process (clones, object tables); drop them before freeing it")]
    HandlesAlive {
        /// The pool.
        name: String,
        /// Handles besides the one freeing.
        others: u32,
    },
    /// No such process slot.
    #[error("no process slot {0}")]
    NoSuchSlot(u32),
}

fn fail<T>(e: Error) -> Result<T, Error> {
    tracing::debug!(target: "shoal::mempool", "{e}");
    Err(e)
}

fn zone_name(name: &str) -> Result<String, Error> {
    if name.is_empty() || name.len() >= NAMESIZE || name.contains('\0') {
        return fail(Error::BadName(name.to_owned()));
    }
    Ok(format!("MP_{name}"))
}

/// What kind of pool a name is looked up as.
pub(crate) fn kind_name(k: u32) -> &'static str {
    if k == kind::MBUF {
        "mbufs"
    } else {
        "plain objects"
    }
}

/// Builds a pool: the common part of [`Mempool::create`] and `MbufPool::create`.
pub(crate) fn create_pool(
    group: &Group,
    name: &str,
    cfg: &MempoolConfig,
    pool_kind: u32,
    priv_data: &[u8],
    init: &mut dyn FnMut(&mut [u8], u32),
) -> Result<&'static PoolInner, Error> {
    let group = registry::views(group);
    create_pool_in(group, name, cfg, pool_kind, priv_data, init)
}

/// [`create_pool`] in the segment of `group`.
pub(crate) fn create_pool_in(
    group: &'static PoolViews,
    name: &str,
    cfg: &MempoolConfig,
    pool_kind: u32,
    priv_data: &[u8],
    init: &mut dyn FnMut(&mut [u8], u32),
) -> Result<&'static PoolInner, Error> {
    let zname = zone_name(name)?;
    if cfg.size == 0 {
        return fail(Error::ZeroSize);
    }
    if cfg.size > MAX_OBJECTS {
        return fail(Error::TooManyObjects(cfg.size));
    }
    if cfg.cache_size > CACHE_MAX_SIZE || layout::flushthresh(cfg.cache_size) > cfg.size {
        return fail(Error::CacheTooBig {
            cache_size: cfg.cache_size,
            size: cfg.size,
        });
    }
    if cfg.flags & !flags::VALID != 0 {
        return fail(Error::InvalidFlags(cfg.flags));
    }
    let too_large = || Error::TooLarge(name.to_owned());
    let store_len = store::Store::memsize(cfg.size).ok_or_else(too_large)? as u64;
    let geo = layout::Geometry::new(
        cfg.size,
        cfg.elt_size,
        cfg.cache_size,
        priv_data.len() as u32,
        cfg.flags & flags::NO_CACHE_ALIGN == 0,
        store_len,
    )
    .ok_or_else(too_large)?;
    let zone_len = usize::try_from(geo.zone_len).map_err(|_| too_large())?;
    let reserved =
        Memzone::reserve_fresh_in(&group.whole, &zname, zone_len, 128, MemzoneKind::Mempool)
            .map_err(|e| match e {
                memzone::Error::Exists(_) => Error::Exists(name.to_owned()),
                source => Error::Memzone {
                    name: name.to_owned(),
                    source,
                },
            });
    let (res, zone) = match reserved {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Dropped unpublished on an error, the reservation gives the zone back.
    if let Err(e) = build(name, &zname, zone, cfg, &geo, pool_kind, priv_data, init) {
        return fail(e);
    }
    let index = res.index() as u32;
    res.publish();
    let p = group.pool(index).ok_or_else(|| Error::Unusable {
        name: name.to_owned(),
        why: "just-built pool fails its checks".to_owned(),
    })?;
    tracing::debug!(target: "shoal::mempool", "created mempool {name:?}: {} objects of {} bytes, cache {}, {} bytes", cfg.size, cfg.elt_size, cfg.cache_size, geo.zone_len);
    Ok(p)
}

/// Fills the reserved zone: header, private area, store (holding every object), objects.
#[allow(clippy::too_many_arguments)]
fn build(
    name: &str,
    zname: &str,
    mut zone: Fresh,
    cfg: &MempoolConfig,
    geo: &layout::Geometry,
    pool_kind: u32,
    priv_data: &[u8],
    init: &mut dyn FnMut(&mut [u8], u32),
) -> Result<(), Error> {
    let unusable = |why: &str| Error::Unusable {
        name: name.to_owned(),
        why: why.to_owned(),
    };
    let mut name_bytes = [0u8; 32];
    name_bytes[..name.len()].copy_from_slice(name.as_bytes());
    let pid = sys::getpid();
    let uid = crate::memory::layout_hash(&[pid as u64, sys::monotonic_ns(), zone.offset() as u64]);
    layout::MempoolHeader::write(
        &mut zone,
        layout::MempoolHeader {
            magic: Default::default(),
            uid: uid.into(),
            name: name_bytes,
            kind: pool_kind,
            flags: cfg.flags,
            size: cfg.size,
            elt_size: cfg.elt_size,
            stride: geo.stride,
            cache_size: cfg.cache_size,
            flushthresh: geo.flushthresh,
            cache_stride: geo.cache_stride,
            priv_size: priv_data.len() as u32,
            creator_pid: pid,
            off_store: geo.off_store,
            store_len: geo.store_len,
            off_caches: geo.off_caches,
            off_tags: geo.off_tags,
            off_priv: geo.off_priv,
            off_objs: geo.off_objs,
            zone_len: geo.zone_len,
            lost: Default::default(),
            layout: layout::LAYOUT,
        },
    )
    .ok_or_else(|| unusable("memzone too small"))?;
    if !zone.write(geo.off_priv as usize, priv_data) {
        return Err(unusable("private area out of the zone"));
    }
    let store_region = pool::carve(&zone, geo.off_store, geo.store_len)
        .ok_or_else(|| unusable("store out of the zone"))?;
    // The store's part is initialised through atomics, then only used by this builder until
    // the zone is published.
    let st = store::Store::init(
        store_region.publish(),
        zname,
        cfg.size,
        cfg.flags & flags::SP_PUT != 0,
        cfg.flags & flags::SC_GET != 0,
    )
    .ok_or_else(|| unusable("the common store could not be built"))?;
    // Objects: run the initialiser once per object, then hand them all to the store (tags are
    // zero = FREE from the memzone's zeroing). The pool is not published yet, so nothing else
    // touches these bytes.
    if !pool::init_objects(
        &mut zone,
        geo.off_objs,
        geo.stride,
        cfg.size,
        cfg.elt_size,
        init,
    ) {
        return Err(unusable("objects out of the zone"));
    }
    let all: Vec<u32> = (0..cfg.size).collect();
    for chunk in all.chunks(1024) {
        if !st.enqueue(chunk, None, layout::tag::FREE) {
            return Err(unusable("the common store is too small"));
        }
    }
    // R0 (pairs with A0 in `MempoolHeader::read`); the zone itself is published after this.
    zone.get::<layout::MempoolHeader>(0)
        .ok_or_else(|| unusable("memzone too small"))?
        .publish();
    Ok(())
}

/// Finds a pool by name in any process of the group.
pub(crate) fn lookup_pool(group: &Group, name: &str) -> Result<&'static PoolInner, Error> {
    let zname = zone_name(name)?;
    let views = registry::views(group);
    let Some(index) = views.zone_index(&zname) else {
        return fail(Error::NotFound(name.to_owned()));
    };
    match views.pool(index) {
        Some(p) => Ok(p),
        None => {
            let why = Memzone::lookup(group, &zname)
                .map_err(|e| e.to_string())
                .and_then(|mz| {
                    layout::MempoolHeader::read(mz.region())
                        .map(|_| ())
                        .map_err(str::to_owned)
                })
                .err()
                .unwrap_or_else(|| "it changed while being looked up".into());
            fail(Error::Unusable {
                name: name.to_owned(),
                why,
            })
        }
    }
}

/// Frees a pool whose objects are all back (in the store or in caches).
pub(crate) fn free_pool(group: &Group, p: &'static PoolInner) -> Result<(), Error> {
    let in_use = p.size.saturating_sub(avail(p));
    if in_use > 0 {
        return fail(Error::InUse {
            name: p.name.clone(),
            in_use,
        });
    }
    // This process's view holds one attachment, which may remain; any other (another
    // process's view, a Memzone handle) keeps the pool.
    let mine = memzone::attachment_of(&p.zone);
    let allowed = u32::from(mine.is_some());
    memzone::free_where(group.whole(), &format!("MP_{}", p.name), allowed, || {
        p.hdr().magic.store(layout::MAGIC_FREED, Ordering::Release);
    })
    .map_err(|source| Error::Memzone {
        name: p.name.clone(),
        source,
    })?;
    if let Some(a) = mine {
        a.disarm();
    }
    tracing::debug!(target: "shoal::mempool", "freed mempool {:?}", p.name);
    Ok(())
}

/// DPDK's `rte_mempool_avail_count`: the store plus every cache, capped at the size.
pub(crate) fn avail(p: &PoolInner) -> u32 {
    (p.store_count() + p.cached_count()).min(p.size)
}

/// Set in a view's handle count once a free took the last handle: no handle is made from the
/// view again (a lookup finds the pool gone).
const HANDLES_FREED: u32 = 1 << 31;

/// A handle on a mempool; every process of the group sees the same pool. Cheap to clone, not
/// `Copy`: this process's handles are counted on its view of the pool, and [`Mempool::free`]
/// takes the last one, so no handle of this process outlives the pool it names.
pub struct Mempool {
    inner: &'static PoolInner,
}

impl Clone for Mempool {
    fn clone(&self) -> Self {
        Mempool::from_inner(self.inner)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Relaxed: a process-local count; the free that tests it is a compare-and-swap, and
        // what a handle did before it dropped is ordered by whatever handed the pool over.
        self.inner
            .handles
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("elt_size", &self.inner.elt_size)
            .field("cache_size", &self.inner.cache_size)
            .finish()
    }
}

impl PartialEq for Mempool {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.inner, other.inner)
    }
}

impl Eq for Mempool {}

/// Per-lcore cache counters (DPDK's cache statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Objects in the cache now.
    pub len: u32,
    /// Times the cache was filled from the common store.
    pub fills: u64,
    /// Times the cache was flushed to the common store.
    pub flushes: u64,
}

/// A pool as listed by [`Mempool::list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct MempoolInfo {
    /// Name (without the memzone's `MP_`).
    pub name: String,
    /// `mempool` or `mbuf`.
    pub kind: &'static str,
    /// Objects.
    pub size: u32,
    /// Bytes per object.
    pub elt_size: u32,
    /// Per-lcore cache size.
    pub cache_size: u32,
    /// Flags.
    pub flags: u32,
    /// Available objects (store and caches).
    pub avail: u32,
    /// Objects in use.
    pub in_use: u32,
    /// Objects in use per process slot (in hand, caches excluded).
    pub in_use_by_slot: Vec<(u32, u32)>,
}

impl Mempool {
    /// Creates a pool named `name` (DPDK's `rte_mempool_create` without an initialiser).
    ///
    /// # Errors
    /// [`Error::ZeroSize`], [`Error::TooManyObjects`], [`Error::CacheTooBig`] (more than
    /// [`CACHE_MAX_SIZE`] or more than `size / 1.5`), [`Error::InvalidFlags`],
    /// [`Error::BadName`], [`Error::Exists`], [`Error::Memzone`] (no room: grow `-m`).
    pub fn create(
        group: &impl AsRef<Group>,
        name: &str,
        cfg: MempoolConfig,
    ) -> Result<Mempool, Error> {
        let group = group.as_ref();
        Self::create_with(group, name, cfg, |_, _| {})
    }

    /// Creates a pool and runs `init(object bytes, index)` once per object before anyone can
    /// use it (DPDK's `obj_init`). Objects start zeroed.
    ///
    /// # Errors
    /// As [`Mempool::create`].
    pub fn create_with(
        group: &impl AsRef<Group>,
        name: &str,
        cfg: MempoolConfig,
        mut init: impl FnMut(&mut [u8], u32),
    ) -> Result<Mempool, Error> {
        let group = group.as_ref();
        let inner = create_pool(group, name, &cfg, kind::PLAIN, &[], &mut init)?;
        Mempool::hold(inner).ok_or_else(|| Error::NotFound(name.to_owned()))
    }

    /// Finds a pool created by any process of the group.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Unusable`] (still being created, or freed), or
    /// [`Error::WrongKind`] for a pool of mbufs (use `MbufPool::lookup`).
    pub fn lookup(group: &impl AsRef<Group>, name: &str) -> Result<Mempool, Error> {
        let group = group.as_ref();
        let inner = lookup_pool(group, name)?;
        if inner.kind != kind::PLAIN {
            return fail(Error::WrongKind {
                name: name.to_owned(),
                found: kind_name(inner.kind),
                use_instead: "MbufPool::lookup",
            });
        }
        Mempool::hold(inner).ok_or_else(|| Error::NotFound(name.to_owned()))
    }

    /// Frees the pool (DPDK's `rte_mempool_free`). Refused while objects are in use (objects
    /// sitting in lcore caches count as free) and while another process has a view of the
    /// pool (it looked the pool up or received its objects; views last as long as their
    /// process), so the pool's memory is never reused under another process.
    ///
    /// Other handles of this process on the pool (clones, object tables) must be dropped
    /// first, so that none outlives the pool.
    ///
    /// # Errors
    /// [`Error::HandlesAlive`], [`Error::InUse`], or [`Error::Memzone`] when the memzone is
    /// already gone or still attached elsewhere ([`memzone::Error::InUse`]).
    pub fn free(self, group: &impl AsRef<Group>) -> Result<(), Error> {
        self.free_last(group.as_ref())
    }

    /// Every pool of the group (mbuf pools included), for tools such as `shoal info`.
    pub fn list(group: &impl AsRef<Group>) -> Vec<MempoolInfo> {
        let group = group.as_ref();
        let group = registry::views(group);
        group
            .pool_zones()
            .into_iter()
            .filter_map(|z| group.pool(z))
            .map(|p| {
                let usage = reclaim::usage(p);
                MempoolInfo {
                    name: p.name.clone(),
                    kind: if p.kind == kind::MBUF {
                        "mbuf"
                    } else {
                        "mempool"
                    },
                    size: p.size,
                    elt_size: p.elt_size,
                    cache_size: p.cache_size,
                    flags: p.flags,
                    avail: usage.avail,
                    in_use: usage.in_use,
                    in_use_by_slot: usage.by_slot.iter().map(|s| (s.slot, s.in_hand)).collect(),
                }
            })
            .collect()
    }

    /// A new handle on a view that some handle or object of this process already keeps from
    /// being freed (an object of the pool, or another handle).
    pub(crate) fn from_inner(inner: &'static PoolInner) -> Mempool {
        inner
            .handles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Mempool { inner }
    }

    /// A new handle on a view found by a create or a lookup; `None` once a free took the
    /// view's last handle.
    pub(crate) fn hold(inner: &'static PoolInner) -> Option<Mempool> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut n = inner.handles.load(Relaxed);
        loop {
            if n & HANDLES_FREED != 0 {
                return None;
            }
            match inner
                .handles
                .compare_exchange_weak(n, n + 1, Relaxed, Relaxed)
            {
                Ok(_) => return Some(Mempool { inner }),
                Err(now) => n = now,
            }
        }
    }

    /// Frees the pool through its last handle in this process (`self`).
    pub(crate) fn free_last(self, group: &Group) -> Result<(), Error> {
        use std::sync::atomic::Ordering::{AcqRel, Relaxed};
        let p = self.inner;
        // Take the last handle for the free: a lookup meanwhile finds the pool gone.
        if let Err(n) = p
            .handles
            .compare_exchange(1, 1 | HANDLES_FREED, AcqRel, Relaxed)
        {
            return fail(Error::HandlesAlive {
                name: p.name.clone(),
                others: (n & !HANDLES_FREED).saturating_sub(1),
            });
        }
        let freed = free_pool(group, p);
        if freed.is_err() {
            p.handles.fetch_and(!HANDLES_FREED, Relaxed);
        }
        freed
    }

    pub(crate) fn inner(&self) -> &'static PoolInner {
        self.inner
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of objects.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Bytes per object.
    pub fn elt_size(&self) -> u32 {
        self.inner.elt_size
    }

    /// Per-lcore cache size.
    pub fn cache_size(&self) -> u32 {
        self.inner.cache_size
    }

    /// Flags.
    pub fn flags(&self) -> u32 {
        self.inner.flags
    }

    /// Gets one object (DPDK's `rte_mempool_get`); `None` when the pool (this lcore's cache
    /// and the common store) is empty. Objects in other lcores' caches are not reachable.
    #[inline]
    pub fn get(&self) -> Option<PoolObj> {
        let mut i = [0u32];
        self.inner
            .get_into(&mut i)
            .then(|| PoolObj::new(self.inner, i[0]))
    }

    /// Gets `n` objects, appended to `out`, or none at all (DPDK's `rte_mempool_get_bulk`).
    /// [`PoolObjs`] does the same with less copying.
    #[inline]
    pub fn get_bulk(&self, n: usize, out: &mut Vec<PoolObj>) -> bool {
        pool::get_objs(self.inner, n, out)
    }

    /// Returns every object of `objs` (DPDK's `rte_mempool_put_bulk`) and empties it; dropping
    /// them one by one does the same at a higher cost. Objects of other pools go back to their
    /// own pools.
    #[inline]
    pub fn put_bulk(&self, objs: &mut Vec<PoolObj>) {
        pool::put_tail(self.inner, objs, objs.len());
    }

    /// Returns the last `n` objects of `objs` (all of them when it holds fewer) in one bulk.
    #[inline]
    pub fn put_tail(&self, objs: &mut Vec<PoolObj>, n: usize) {
        pool::put_tail(self.inner, objs, n);
    }

    /// Returns objects from any iterator (bulk by bulk).
    pub fn put_iter(&self, objs: impl IntoIterator<Item = PoolObj>) {
        let mut buf = Vec::with_capacity(64);
        for o in objs {
            buf.push(o);
            if buf.len() == 64 {
                self.put_bulk(&mut buf);
            }
        }
        self.put_bulk(&mut buf);
    }

    /// Takes ownership of an object handed over with [`PoolObj::into_raw`]; `None` when `raw`
    /// is not an object of this pool in flight (already claimed, never sent, out of range).
    pub fn from_raw(&self, raw: ObjIdx) -> Option<PoolObj> {
        if raw.pool_id() != self.inner.index {
            return None;
        }
        let idx = raw.index();
        // `then`, not `then_some`: a handle made eagerly would be dropped, returning an object
        // that is not ours.
        self.inner
            .claim_in_flight(idx)
            .then(|| PoolObj::new(self.inner, idx))
    }

    /// Available objects: the common store plus every lcore cache (DPDK's
    /// `rte_mempool_avail_count`).
    pub fn avail_count(&self) -> u32 {
        avail(self.inner)
    }

    /// Objects in use: `size - avail_count` (DPDK's `rte_mempool_in_use_count`).
    pub fn in_use_count(&self) -> u32 {
        self.inner.size - avail(self.inner)
    }

    /// True when every object is available (DPDK's `rte_mempool_full`).
    pub fn is_full(&self) -> bool {
        self.avail_count() == self.inner.size
    }

    /// True when no object is available (DPDK's `rte_mempool_empty`).
    pub fn is_empty(&self) -> bool {
        self.avail_count() == 0
    }

    /// Objects in the common store (not in any cache).
    pub fn common_count(&self) -> u32 {
        self.inner.store_count()
    }

    /// The counters of `lcore`'s cache.
    pub fn cache_stats(&self, lcore: crate::group::LcoreId) -> CacheStats {
        let (len, fills, flushes) = self.inner.cache_stats(lcore.0);
        CacheStats {
            len,
            fills,
            flushes,
        }
    }

    /// Objects in use per process slot, in hand (caches excluded), for `shoal info`.
    pub fn in_use_by_slot(&self) -> Vec<(u32, u32)> {
        reclaim::usage(self.inner)
            .by_slot
            .iter()
            .map(|s| (s.slot, s.in_hand))
            .collect()
    }

    /// Where every object is: store, caches, processes, in flight.
    pub fn usage(&self) -> PoolUsage {
        reclaim::usage(self.inner)
    }

    /// Checks every object's state and the caches (DPDK's `rte_mempool_audit`).
    pub fn audit(&self) -> Audit {
        reclaim::audit(self.inner)
    }
}

/// An object index as rings carry it: the pool's id (its memzone's index) in the top 9 bits and
/// the object's index in the low 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct ObjIdx(pub u32);

impl ObjIdx {
    pub(crate) fn new(pool_id: u32, idx: u32) -> ObjIdx {
        ObjIdx(pool_id << layout::OBJ_BITS | idx)
    }

    /// The pool's id.
    pub fn pool_id(self) -> u32 {
        self.0 >> layout::OBJ_BITS
    }

    /// The object's index in its pool.
    pub fn index(self) -> u32 {
        self.0 & (MAX_OBJECTS - 1)
    }
}

/// One JSON object per mempool of the group, for `shoal info` (name, size, available, in use).
pub(crate) fn describe_all(
    group: &Group,
    _zones: &[crate::memzone::MemzoneInfo],
) -> Vec<serde_json::Value> {
    Mempool::list(group)
        .into_iter()
        .map(|m| {
            let by_slot: Vec<String> = m.in_use_by_slot.iter().map(|(s, n)| format!("{s}:{n}")).collect();
            serde_json::json!({
                "name": m.name,
                "kind": m.kind,
                "size": m.size,
                "elt_size": m.elt_size,
                "cache_size": m.cache_size,
                "available": m.avail,
                "in_use": m.in_use,
                "in_use_by_slot": if by_slot.is_empty() { "-".to_string() } else { by_slot.join(",") },
            })
        })
        .collect()
}
