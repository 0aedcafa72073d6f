//! Packet buffers (DPDK's `rte_mbuf` and `rte_pktmbuf_*`).
//!
//! ```no_run
//! use shoal::mbuf::{MbufPool, DEFAULT_BUF_SIZE};
//! let (eal, _) = shoal::eal::Eal::init(std::env::args().collect()).unwrap();
//! let pool = MbufPool::create(&eal, "mbuf_pool", 8191, 256, 0, DEFAULT_BUF_SIZE).unwrap();
//! let mut m = pool.alloc().expect("no mbuf");
//! m.append(4).unwrap().copy_from_slice(b"ping");
//! m.prepend(14).unwrap().fill(0xff); // room for an Ethernet header
//! assert_eq!(m.pkt_len(), 18);
//! // dropping `m` frees it
//! ```
//!
//! An [`Mbuf`] is an owned handle on a chain of segments: dropping it frees the chain, there is
//! no `free` to call twice, and it is not `Clone`. [`Mbuf::clone_in`] is DPDK's
//! `rte_pktmbuf_clone`: new (indirect) mbufs that share the original's buffers, which live until
//! the last of them is freed (reference counted). [`Mbuf::copy`] is a deep copy.
//!
//! Between processes an mbuf travels as an [`MbufIdx`] (a `u32`: pool id and index, valid in
//! every process of the group) through an [`MbufRing`], which moves handles: a burst enqueue
//! leaves what did not fit in the caller's [`MbufBatch`]. An index taken from shared memory
//! becomes a handle again only if it is in flight ([`MbufPool::from_raw`]); anything else is
//! refused rather than used.
//!
//! Misuse does not compile. The right way, then each mistake:
//!
//! ```no_run
//! # fn f(pool: shoal::mbuf::MbufPool, ring: shoal::mbuf::MbufRing) {
//! let m = pool.alloc().unwrap();
//! if let Err(m) = ring.enqueue(m) {
//!     drop(m); // the ring was full: it is still ours, and dropping frees it
//! }
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let m = pool.alloc().unwrap();
//! drop(m);
//! drop(m); // double free: `m` was moved by the first drop
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let m = pool.alloc().unwrap();
//! drop(m);
//! let _ = m.data_len(); // use after free
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool, ring: shoal::mbuf::MbufRing) {
//! let m = pool.alloc().unwrap();
//! let _ = ring.enqueue(m);
//! let _ = m.data(); // use after handing it to another process
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let m = pool.alloc().unwrap();
//! let twin = m.clone(); // not Clone: sharing a buffer is `clone_in`, which counts references
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let m = pool.alloc().unwrap();
//! let bytes = m.data();
//! drop(m);
//! let _ = bytes[0]; // the data outlives the handle it was borrowed from
//! # }
//! ```
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let mut m = pool.alloc().unwrap();
//! let bytes = m.data();
//! m.data_mut().unwrap()[0] = 1; // writing while a borrow of the data lives
//! let _ = bytes[0];
//! # }
//! ```
//!
//! A buffer shared by clones is never writable: [`Mbuf::data_mut`], [`Mbuf::append`] and
//! [`Mbuf::prepend`] return `None` for a clone and for an mbuf that has clones, until the
//! clones are freed (DPDK leaves that to the application).
//!
//! ```compile_fail
//! # fn f(pool: shoal::mbuf::MbufPool) {
//! let m = pool.alloc().unwrap();
//! let raw = m.into_raw();
//! let _ = m.pkt_len(); // given up with into_raw
//! # }
//! ```
//!
//! Reference counts (R/A: `refcnt`): a holder that drops a reference decrements with AcqRel, so
//! the one that reaches zero (and frees the buffer) sees every other holder's accesses to it.

mod batch;
mod header;
mod ring;
#[cfg(all(test, not(loom)))]
mod tests;

use std::mem::ManuallyDrop;

use crate::group::Group;
use crate::mempool::{self, kind, Mempool, MempoolConfig, PoolInner, PoolViews};
use crate::sync::atomic::Ordering::{AcqRel, Relaxed};
use crate::sync::MemberId;
use header::{Seg, NONE};

pub use batch::{MbufBatch, MAX_BURST};
pub use header::HDR_SIZE;
pub use ring::MbufRing;

/// Headroom left before the data of a fresh mbuf (DPDK's `RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: u16 = 128;
/// DPDK's `RTE_MBUF_DEFAULT_DATAROOM`.
pub const DEFAULT_DATAROOM: u16 = 2048;
/// DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE`: the usual `data_room` argument.
pub const DEFAULT_BUF_SIZE: u16 = DEFAULT_DATAROOM + HEADROOM;
/// The private area size must be a multiple of this (DPDK's `RTE_MBUF_PRIV_ALIGN`).
pub const PRIV_ALIGN: u16 = 8;
/// Most segments in a chain (DPDK's `RTE_MBUF_MAX_NB_SEGS`).
pub const MAX_SEGS: u16 = u16::MAX;
/// `port` of an mbuf that came from no port (DPDK's `RTE_MBUF_PORT_INVALID`).
pub const PORT_INVALID: u16 = u16::MAX;

/// The mbuf layout word, written into every mbuf pool's private area and checked when a
/// process attaches to the pool.
pub(crate) const MBUF_LAYOUT: u64 = crate::memory::layout_hash(&header::LAYOUT_FACTS);

/// Bytes of an mbuf pool's private area: data room (u16), private size (u16), 4 spare bytes,
/// [`MBUF_LAYOUT`] (u64), all little endian.
const POOL_PRIV_LEN: usize = 16;

/// The mbuf layer's hooks in the pools (see `mempool::ObjectKind`).
struct MbufKind;

impl mempool::ObjectKind for MbufKind {
    fn kind(&self) -> u32 {
        kind::MBUF
    }

    fn check(&self, p: &[u8], elt_size: u32) -> Result<(u16, u16), &'static str> {
        if p.len() < POOL_PRIV_LEN {
            return Err("mbuf pool without its private area");
        }
        let layout = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
        if layout != MBUF_LAYOUT {
            return Err("mbuf pool built by a binary with another mbuf layout; rebuild both from the same source");
        }
        let room = u16::from_le_bytes([p[0], p[1]]);
        let privsz = u16::from_le_bytes([p[2], p[3]]);
        if HDR_SIZE + privsz as usize + room as usize > elt_size as usize {
            return Err("mbuf pool whose mbufs do not fit its objects");
        }
        Ok((room, privsz))
    }

    fn settle_dead(&self, views: &'static PoolViews, dead: MemberId, dead_tag: u32) {
        ring::release_dead_sides(views, &views.whole, dead, dead_tag);
    }

    fn reclaim_object(&self, p: &'static PoolInner, i: u32) -> bool {
        reclaim_object(p, i)
    }
}

/// Registers the mbuf layer with `group`: how pools of mbufs are checked and how a dead
/// member's mbufs (in rings of mbufs, shared by clones) are reclaimed. The EAL does it for
/// every group it joins; the mbuf layer's own entry points do it too.
pub(crate) fn register(group: &Group) {
    mempool::register_kind(group, &MbufKind);
}

/// Offload flags (`ol_flags`), DPDK's `RTE_MBUF_F_*` bits.
pub mod ol_flags {
    /// RX: the VLAN tag was stripped into `vlan_tci`.
    pub const RX_VLAN: u64 = 1 << 0;
    /// RX: `rss_hash` holds the RSS hash.
    pub const RX_RSS_HASH: u64 = 1 << 1;
    /// RX: the flow director matched.
    pub const RX_FDIR: u64 = 1 << 2;
    /// RX: the L4 checksum is wrong.
    pub const RX_L4_CKSUM_BAD: u64 = 1 << 3;
    /// RX: the IP checksum is wrong.
    pub const RX_IP_CKSUM_BAD: u64 = 1 << 4;
    /// RX: the IP checksum is right.
    pub const RX_IP_CKSUM_GOOD: u64 = 1 << 7;
    /// RX: the L4 checksum is right.
    pub const RX_L4_CKSUM_GOOD: u64 = 1 << 8;
    /// The second hash word (DPDK's `hash.fdir.hi`) holds the symmetric 5-tuple hash that a
    /// stage before this one computed ([`super::Mbuf::flow_hash`]). A bit of DPDK's range for
    /// dynamic flags (between `RTE_MBUF_F_FIRST_FREE` and `RTE_MBUF_F_LAST_FREE`).
    pub const FLOW_HASH: u64 = 1 << 24;
    /// TX: the packet is IPv4.
    pub const TX_IPV4: u64 = 1 << 55;
    /// TX: the packet is IPv6.
    pub const TX_IPV6: u64 = 1 << 56;
    /// TX: compute the IP checksum.
    pub const TX_IP_CKSUM: u64 = 1 << 54;
    /// The mbuf uses another mbuf's buffer (a clone): DPDK's `RTE_MBUF_F_INDIRECT`.
    pub const INDIRECT: u64 = 1 << 62;
}

/// Errors of mbuf pool operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The underlying mempool could not be made or found.
    #[error(transparent)]
    Mempool(#[from] mempool::Error),
    /// DPDK's rule: the private area is a multiple of [`PRIV_ALIGN`] bytes.
    #[error("mbuf private size {0} is not a multiple of {PRIV_ALIGN}")]
    PrivSizeUnaligned(u16),
    /// A ring of mbufs could not be made or attached.
    #[error(transparent)]
    Ring(#[from] crate::ring::Error),
    /// The memzone of a ring of mbufs could not be had.
    #[error(transparent)]
    Memzone(#[from] crate::memzone::Error),
}

fn fail<T>(e: Error) -> Result<T, Error> {
    tracing::debug!(target: "shoal::mbuf", "{e}");
    Err(e)
}

/// An mbuf index as rings carry it: the pool's id in the top 9 bits, the mbuf's index in its
/// pool in the low 23 (the same encoding as [`mempool::ObjIdx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct MbufIdx(pub u32);

impl MbufIdx {
    pub(crate) fn new(pool_id: u32, idx: u32) -> MbufIdx {
        MbufIdx(mempool::ObjIdx::new(pool_id, idx).0)
    }

    /// The pool's id.
    pub fn pool_id(self) -> u32 {
        mempool::ObjIdx(self.0).pool_id()
    }

    /// The mbuf's index in its pool.
    pub fn index(self) -> u32 {
        mempool::ObjIdx(self.0).index()
    }
}

/// A pool of mbufs (DPDK's `rte_pktmbuf_pool_create`). Cheap to clone; counted like a
/// [`Mempool`] handle, so that none outlives the pool ([`MbufPool::free`]).
#[derive(Clone)]
pub struct MbufPool {
    inner: &'static PoolInner,
    handle: Mempool,
}

impl std::fmt::Debug for MbufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufPool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("data_room", &self.inner.data_room)
            .field("priv_size", &self.inner.mbuf_priv)
            .finish()
    }
}

impl PartialEq for MbufPool {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.inner, other.inner)
    }
}

impl Eq for MbufPool {}

/// rte_pktmbuf_reset: the fields of a fresh single-segment mbuf.
#[inline]
fn reset(s: &Seg) {
    let room = s.pool.data_room;
    s.set_next(NONE);
    s.set_attached(NONE);
    s.set_pkt_len(0);
    s.set_tx_offload(0);
    s.set_vlan_tci(0);
    s.set_vlan_tci_outer(0);
    s.set_nb_segs(1);
    s.set_port(PORT_INVALID);
    s.set_ol_flags(0);
    s.set_packet_type(0);
    s.set_buf_len(room);
    s.set_data_off(HEADROOM.min(room));
    s.set_data_len(0);
    s.refcnt().store(1, Relaxed);
}

impl MbufPool {
    /// Creates a pool of `n` mbufs whose buffers hold `data_room` bytes (headroom included;
    /// usually [`DEFAULT_BUF_SIZE`]), with a `priv_size`-byte private area each and per-lcore
    /// caches of `cache_size` (DPDK's `rte_pktmbuf_pool_create`).
    ///
    /// # Errors
    /// [`Error::PrivSizeUnaligned`], or the mempool's errors (cache too big, name taken, no
    /// room).
    pub fn create(
        group: &impl AsRef<Group>,
        name: &str,
        n: u32,
        cache_size: u32,
        priv_size: u16,
        data_room: u16,
    ) -> Result<MbufPool, Error> {
        let group = group.as_ref();
        Self::create_with_flags(group, name, n, cache_size, priv_size, data_room, 0)
    }

    /// [`MbufPool::create`] with mempool [`mempool::flags`].
    ///
    /// # Errors
    /// As [`MbufPool::create`].
    pub fn create_with_flags(
        group: &impl AsRef<Group>,
        name: &str,
        n: u32,
        cache_size: u32,
        priv_size: u16,
        data_room: u16,
        flags: u32,
    ) -> Result<MbufPool, Error> {
        let group = group.as_ref();
        register(group);
        let group = mempool::views(group);
        Self::create_in(group, name, n, cache_size, priv_size, data_room, flags)
    }

    /// [`MbufPool::create_with_flags`] in the segment of `group`.
    fn create_in(
        group: &'static PoolViews,
        name: &str,
        n: u32,
        cache_size: u32,
        priv_size: u16,
        data_room: u16,
        flags: u32,
    ) -> Result<MbufPool, Error> {
        if !priv_size.is_multiple_of(PRIV_ALIGN) {
            return fail(Error::PrivSizeUnaligned(priv_size));
        }
        let elt = HDR_SIZE as u32 + priv_size as u32 + data_room as u32;
        let cfg = MempoolConfig::new(n, elt)
            .cache_size(cache_size)
            .flags(flags);
        let mut privdata = [0u8; POOL_PRIV_LEN];
        privdata[..2].copy_from_slice(&data_room.to_le_bytes());
        privdata[2..4].copy_from_slice(&priv_size.to_le_bytes());
        privdata[8..16].copy_from_slice(&MBUF_LAYOUT.to_le_bytes());
        // The pool id is the memzone index, known only once the zone exists: the initialiser
        // writes the object index and `self_idx` is completed below.
        let mut init = |obj: &mut [u8], i: u32| {
            obj[..HDR_SIZE].fill(0);
            obj[HDR_SIZE..HDR_SIZE + priv_size as usize].fill(0);
            let _ = i;
        };
        let inner = mempool::create_pool_in(group, name, &cfg, kind::MBUF, &privdata, &mut init)?;
        // rte_pktmbuf_init for every mbuf. Nobody holds any yet: they are all in the store,
        // and handles are only made from indices taken out of it.
        for i in 0..inner.size {
            let s = Seg::of(inner, i);
            reset(&s);
            s.set_priv_size(priv_size);
            s.set_self_idx(MbufIdx::new(inner.index, i).0);
        }
        MbufPool::hold(inner, name)
    }

    /// Finds an mbuf pool created by any process of the group.
    ///
    /// # Errors
    /// The mempool's lookup errors, or [`mempool::Error::WrongKind`] for a plain mempool.
    pub fn lookup(group: &impl AsRef<Group>, name: &str) -> Result<MbufPool, Error> {
        let group = group.as_ref();
        register(group);
        let inner = mempool::lookup_pool(group, name)?;
        if inner.kind != kind::MBUF {
            return fail(Error::Mempool(mempool::Error::WrongKind {
                name: name.to_owned(),
                found: mempool::kind_name(inner.kind),
                use_instead: "Mempool::lookup",
            }));
        }
        MbufPool::hold(inner, name)
    }

    fn hold(inner: &'static PoolInner, name: &str) -> Result<MbufPool, Error> {
        let handle = Mempool::hold(inner)
            .ok_or_else(|| Error::Mempool(mempool::Error::NotFound(name.to_owned())))?;
        Ok(MbufPool { inner, handle })
    }

    /// Frees the pool; refused while mbufs are in use.
    ///
    /// # Errors
    /// As [`Mempool::free`].
    pub fn free(self, group: &impl AsRef<Group>) -> Result<(), Error> {
        Ok(self.handle.free_last(group.as_ref())?)
    }

    /// Allocates an mbuf: one empty segment with [`HEADROOM`] bytes of headroom (DPDK's
    /// `rte_pktmbuf_alloc`). `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        let mut got = [0u32];
        if !self.inner.get_into(&mut got) {
            return None;
        }
        let seg = Seg::of(self.inner, got[0]);
        reset(&seg);
        Some(Mbuf { seg })
    }

    /// Allocates `n` mbufs into `batch`, all or none (DPDK's `rte_pktmbuf_alloc_bulk`). False
    /// also when `batch` has no room for `n` more.
    #[inline]
    pub fn alloc_bulk(&self, batch: &mut MbufBatch, n: usize) -> bool {
        if batch.len() + n > MAX_BURST {
            return false;
        }
        let pool = self.inner;
        let mut idx = [0u32; MAX_BURST];
        if !pool.get_into(&mut idx[..n]) {
            return false;
        }
        for &i in &idx[..n] {
            let seg = Seg::of(pool, i);
            reset(&seg);
            batch.push_unchecked(Mbuf { seg });
        }
        true
    }

    /// Takes ownership of an mbuf handed over with [`Mbuf::into_raw`], from any mbuf pool of
    /// the group. `None` when `raw` is not an mbuf in flight.
    pub fn from_raw(&self, raw: MbufIdx) -> Option<Mbuf> {
        claim_chain(self.inner.group, raw)
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of mbufs.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Bytes of each mbuf's buffer, headroom included (DPDK's `rte_pktmbuf_data_room_size`).
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// Bytes of each mbuf's private area (DPDK's `rte_pktmbuf_priv_size`).
    pub fn priv_size(&self) -> u16 {
        self.inner.mbuf_priv
    }

    /// Per-lcore cache size.
    pub fn cache_size(&self) -> u32 {
        self.inner.cache_size
    }

    /// Available mbufs (store and caches).
    pub fn avail_count(&self) -> u32 {
        self.mempool().avail_count()
    }

    /// Mbufs in use.
    pub fn in_use_count(&self) -> u32 {
        self.mempool().in_use_count()
    }

    /// Mbufs in use per process slot (in hand), for `shoal info`.
    pub fn in_use_by_slot(&self) -> Vec<(u32, u32)> {
        self.mempool().in_use_by_slot()
    }

    /// Where every mbuf is.
    pub fn usage(&self) -> mempool::PoolUsage {
        self.mempool().usage()
    }

    /// Checks every mbuf's owner tag and the caches.
    pub fn audit(&self) -> mempool::Audit {
        self.mempool().audit()
    }

    /// The counters of `lcore`'s cache.
    pub fn cache_stats(&self, lcore: crate::group::LcoreId) -> mempool::CacheStats {
        self.mempool().cache_stats(lcore)
    }

    /// The pool's id (what [`MbufIdx::pool_id`] holds for its mbufs).
    pub fn id(&self) -> u32 {
        self.inner.index
    }

    // Crate-internal: gives object access, which would bypass mbuf semantics if public.
    fn mempool(&self) -> Mempool {
        Mempool::from_inner(self.inner)
    }
}

/// Claims the chain whose head is `raw` (every segment must be in flight).
#[inline]
pub(crate) fn claim_chain(group: &'static PoolViews, raw: MbufIdx) -> Option<Mbuf> {
    let head = header::resolve_in(group, raw.0)?;
    if head.self_idx() != raw.0 || !head.pool.claim_in_flight(head.idx) {
        return None;
    }
    let m = Mbuf { seg: head };
    let mut prev = head;
    let mut count: u32 = 1;
    loop {
        let next = prev.next();
        if next == NONE {
            break;
        }
        let claimed = prev
            .resolve(next)
            .filter(|s| count < MAX_SEGS as u32 && s.pool.claim_in_flight(s.idx));
        match claimed {
            Some(s) => {
                prev = s;
                count += 1;
            }
            None => {
                tracing::error!(target: "shoal::mbuf", "mbuf chain {:#x}: segment {count} ({next:#x}) was not in flight; chain cut there", raw.0);
                prev.set_next(NONE);
                head.set_nb_segs(count as u16);
                break;
            }
        }
    }
    Some(m)
}

/// A packet buffer: an owned chain of segments. Dropping it frees every segment (DPDK's
/// `rte_pktmbuf_free`).
pub struct Mbuf {
    seg: Seg,
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("pool", &self.seg.pool.name)
            .field("idx", &self.seg.idx)
            .field("data_off", &self.seg.data_off())
            .field("data_len", &self.seg.data_len())
            .field("pkt_len", &self.seg.pkt_len())
            .field("nb_segs", &self.seg.nb_segs())
            .field("refcnt", &self.refcnt())
            .finish()
    }
}

/// Iterates a chain from `s`, at most `MAX_SEGS` segments.
pub(crate) fn chain_iter(s: Seg) -> impl Iterator<Item = Seg> {
    let mut cur = Some(s);
    let mut n = 0u32;
    std::iter::from_fn(move || {
        let s = cur?;
        n += 1;
        let next = s.next();
        cur = if next == NONE || n >= MAX_SEGS as u32 {
            None
        } else {
            s.resolve(next)
        };
        Some(s)
    })
}

/// DPDK's `rte_pktmbuf_detach` for an indirect segment: drops its reference to the direct mbuf
/// (freeing that one when it was the last) and gives it back its own buffer.
fn detach(mi: &Seg) {
    if let Some(md) = mi.resolve(mi.attached()) {
        // R/A on refcnt: the last holder sees every other holder's use of the buffer.
        if md.refcnt().fetch_sub(1, AcqRel) == 1 {
            md.set_next(NONE);
            md.set_nb_segs(1);
            md.refcnt().store(1, Relaxed);
            md.pool.set_mine(md.idx);
            md.pool.put_one(md.idx);
        }
    }
    let room = mi.pool.data_room;
    mi.set_attached(NONE);
    mi.set_buf_len(room);
    mi.set_data_off(HEADROOM.min(room));
    mi.set_data_len(0);
    mi.set_ol_flags(0);
}

/// DPDK's `rte_pktmbuf_prefree_seg`: true when the segment may go back to its pool.
#[inline]
fn prefree(s: &Seg) -> bool {
    if s.refcnt().load(Relaxed) == 1 {
        // Sole reference: nobody else can add one (that would need a handle on it).
        if s.attached() != NONE {
            detach(s);
        }
        s.set_next(NONE);
        s.set_nb_segs(1);
        return true;
    }
    // Clones use the buffer: the object stays alive without a holder until the last reference
    // goes. Tag it first, so that the last holder's tag write comes after ours.
    s.pool.set_shared(s.idx);
    if s.refcnt().fetch_sub(1, AcqRel) != 1 {
        return false;
    }
    if s.attached() != NONE {
        detach(s);
    }
    s.set_next(NONE);
    s.set_nb_segs(1);
    s.refcnt().store(1, Relaxed);
    s.pool.set_mine(s.idx);
    true
}

/// Frees a whole chain starting at `s`.
#[inline]
fn free_chain(s: Seg) {
    if s.next() == NONE && s.attached() == NONE && s.refcnt().load(Relaxed) == 1 {
        s.pool.put_one(s.idx);
        return;
    }
    free_chain_slow(s)
}

#[inline(never)]
fn free_chain_slow(s: Seg) {
    // Collect first: freeing a segment resets its `next`.
    let segs: Vec<Seg> = chain_iter(s).collect();
    for seg in segs {
        if prefree(&seg) {
            seg.pool.put_one(seg.idx);
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        free_chain(self.seg);
    }
}

impl Mbuf {
    /// The first segment's data (DPDK's `rte_pktmbuf_mtod` over `data_len` bytes).
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.first().data()
    }

    /// The first segment's data, writable: `None` while the buffer is shared, that is for a
    /// clone, or for an mbuf that has clones (in this process or another). Unlike DPDK, a
    /// shared buffer is never written; for a private copy to write, use [`Mbuf::copy`]. Once
    /// every clone is freed, the original is writable again.
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        Some(self.first_mut()?.data())
    }

    /// True when [`Mbuf::data_mut`], [`Mbuf::prepend`] and writes into the first segment
    /// are allowed: its buffer is this mbuf's own and no clone uses it.
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.seg.is_sole()
    }

    /// Bytes of data in the first segment.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.seg.data_len()
    }

    /// Bytes of data in the whole chain.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.seg.pkt_len()
    }

    /// Segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.seg.nb_segs()
    }

    /// True for a single segment (DPDK's `rte_pktmbuf_is_contiguous`).
    pub fn is_contiguous(&self) -> bool {
        self.nb_segs() == 1
    }

    /// Bytes before the data in the first segment (DPDK's `rte_pktmbuf_headroom`).
    #[inline]
    pub fn headroom(&self) -> u16 {
        let (_, cap) = self.seg.buf();
        self.seg.data_off().min(cap)
    }

    /// Bytes after the data in the first segment (DPDK's `rte_pktmbuf_tailroom`).
    #[inline]
    pub fn tailroom(&self) -> u16 {
        tailroom(&self.seg)
    }

    /// Size of the first segment's buffer (DPDK's `buf_len`).
    pub fn buf_len(&self) -> u16 {
        self.seg.buf_len()
    }

    #[inline]
    pub(crate) fn last_seg(&self) -> Seg {
        // Most packets have one segment: no walk.
        if self.seg.nb_segs() <= 1 {
            return self.seg;
        }
        chain_iter(self.seg).last().unwrap_or(self.seg)
    }

    /// Extends the data at the end of the last segment by `n` bytes and returns them (DPDK's
    /// `rte_pktmbuf_append`); `None` when the last segment has less tailroom, or when its
    /// buffer is shared with clones (see [`Mbuf::data_mut`]).
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        let last = self.last_seg();
        if n > tailroom(&last) || !last.is_sole() {
            return None;
        }
        let at = last.data_off() as usize + last.data_len() as usize;
        last.set_data_len(last.data_len() + n);
        self.seg.set_pkt_len(self.seg.pkt_len() + n as u32);
        Some(self.last_mut()?.buf_bytes(at, n as usize))
    }

    /// Extends the data at the end of the last segment by `n` bytes without touching them (the
    /// bytes are whatever the buffer held: a driver that fills them itself, or DPDK's
    /// `net_null`, which sets lengths only); false (and nothing changed) when the last segment
    /// has less tailroom or its buffer is shared with clones.
    #[inline]
    pub fn extend(&mut self, n: u16) -> bool {
        let last = self.last_seg();
        if n > tailroom(&last) || !last.is_sole() {
            return false;
        }
        last.set_data_len(last.data_len() + n);
        self.seg.set_pkt_len(self.seg.pkt_len() + n as u32);
        true
    }

    /// Extends the data at the front by `n` bytes of headroom and returns them (DPDK's
    /// `rte_pktmbuf_prepend`); `None` when there is less headroom, or when the buffer is
    /// shared with clones (see [`Mbuf::data_mut`]).
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        if n > self.headroom() || !self.seg.is_sole() {
            return None;
        }
        let s = self.seg;
        s.set_data_off(s.data_off() - n);
        s.set_data_len(s.data_len().saturating_add(n));
        s.set_pkt_len(s.pkt_len() + n as u32);
        let at = s.data_off() as usize;
        Some(self.first_mut()?.buf_bytes(at, n as usize))
    }

    /// Removes `n` bytes from the front of the first segment (DPDK's `rte_pktmbuf_adj`); false
    /// (and nothing changed) when it holds fewer.
    pub fn adj(&mut self, n: u16) -> bool {
        let s = self.seg;
        if n > s.data_len() {
            return false;
        }
        s.set_data_len(s.data_len() - n);
        s.set_data_off(s.data_off() + n);
        s.set_pkt_len(s.pkt_len().saturating_sub(n as u32));
        true
    }

    /// Removes `n` bytes from the end of the last segment (DPDK's `rte_pktmbuf_trim`); false
    /// (and nothing changed) when it holds fewer.
    pub fn trim(&mut self, n: u16) -> bool {
        let last = self.last_seg();
        if n > last.data_len() {
            return false;
        }
        last.set_data_len(last.data_len() - n);
        self.seg
            .set_pkt_len(self.seg.pkt_len().saturating_sub(n as u32));
        true
    }

    /// Input port.
    #[inline]
    pub fn port(&self) -> u16 {
        self.seg.port()
    }

    /// Sets the input port.
    #[inline]
    pub fn set_port(&mut self, p: u16) {
        self.seg.set_port(p)
    }

    /// RSS hash (`hash.rss`).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        self.seg.rss_hash()
    }

    /// Sets the RSS hash.
    #[inline]
    pub fn set_rss_hash(&mut self, h: u32) {
        self.seg.set_rss_hash(h)
    }

    /// The symmetric 5-tuple hash ([`crate::net::FiveTuple::symmetric`], CRC32C) that an
    /// earlier stage stored with [`Mbuf::set_flow_hash`], if one did: a pipeline's
    /// distributor stores what its dispatcher computed, so that a worker keys its flow state
    /// by it without parsing the packet again (as DPDK applications use a NIC's `hash.rss`).
    #[inline]
    pub fn flow_hash(&self) -> Option<u32> {
        (self.seg.ol_flags() & ol_flags::FLOW_HASH != 0).then(|| self.seg.hash_hi())
    }

    /// Stores the packet's symmetric 5-tuple hash (see [`Mbuf::flow_hash`]).
    #[inline]
    pub fn set_flow_hash(&mut self, h: u32) {
        self.seg.set_hash_hi(h);
        self.seg
            .set_ol_flags(self.seg.ol_flags() | ol_flags::FLOW_HASH);
    }

    /// Packet type (DPDK's `RTE_PTYPE_*` bits, [`crate::net::ptype`]); 0 when unknown.
    #[inline]
    pub fn packet_type(&self) -> u32 {
        self.seg.packet_type()
    }

    /// Sets the packet type.
    #[inline]
    pub fn set_packet_type(&mut self, t: u32) {
        self.seg.set_packet_type(t)
    }

    /// Offload flags ([`ol_flags`]).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.seg.ol_flags()
    }

    /// Sets the offload flags. [`ol_flags::INDIRECT`] is kept as it is: it says what the mbuf
    /// is, not what to do with it.
    #[inline]
    pub fn set_ol_flags(&mut self, f: u64) {
        let keep = self.seg.ol_flags() & ol_flags::INDIRECT;
        self.seg.set_ol_flags((f & !ol_flags::INDIRECT) | keep)
    }

    /// VLAN tag (`vlan_tci`).
    pub fn vlan_tci(&self) -> u16 {
        self.seg.vlan_tci()
    }

    /// Sets the VLAN tag.
    pub fn set_vlan_tci(&mut self, v: u16) {
        self.seg.set_vlan_tci(v)
    }

    /// TX offload lengths (DPDK's packed `tx_offload`).
    pub fn tx_offload(&self) -> u64 {
        self.seg.tx_offload()
    }

    /// Sets the TX offload lengths.
    pub fn set_tx_offload(&mut self, v: u64) {
        self.seg.set_tx_offload(v)
    }

    /// Timestamp (a dynamic field in DPDK).
    pub fn timestamp(&self) -> u64 {
        self.seg.timestamp()
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, t: u64) {
        self.seg.set_timestamp(t)
    }

    /// Application words in the second cache line (DPDK's dynamic fields).
    pub fn dynfield(&self) -> [u32; 14] {
        self.seg.dynfield()
    }

    /// Sets the application words.
    pub fn set_dynfield(&mut self, v: [u32; 14]) {
        self.seg.set_dynfield(v)
    }

    /// The private area (`priv_size` bytes between header and buffer).
    pub fn priv_area(&self) -> &[u8] {
        self.priv_bytes()
    }

    /// The private area, writable (each mbuf has its own, clones too).
    pub fn priv_area_mut(&mut self) -> &mut [u8] {
        self.priv_bytes_mut()
    }

    /// References to this mbuf's buffer (1 unless clones share it).
    pub fn refcnt(&self) -> u16 {
        let s = match self.seg.attached() {
            NONE => self.seg,
            a => self.seg.resolve(a).unwrap_or(self.seg),
        };
        s.refcnt().load(Relaxed)
    }

    /// True when the first segment uses another mbuf's buffer (DPDK's `RTE_MBUF_CLONED`).
    pub fn is_indirect(&self) -> bool {
        self.seg.attached() != NONE
    }

    /// The pool the first segment came from.
    pub fn pool(&self) -> MbufPool {
        MbufPool {
            inner: self.seg.pool,
            handle: Mempool::from_inner(self.seg.pool),
        }
    }

    /// The first segment's index, as it would travel (without giving the mbuf up).
    pub fn raw(&self) -> MbufIdx {
        self.seg.raw()
    }

    /// The data of every segment, in order.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chain_refs().map(|s| s.data())
    }

    /// `len` bytes of packet data from offset `off`, across segments (DPDK's
    /// `rte_pktmbuf_read`): a slice of the mbuf when they are in one segment, else copied into
    /// `buf`. `None` when the packet is shorter or `buf` too small.
    pub fn read<'a>(&'a self, off: u32, len: usize, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let first = self.data();
        let o = off as usize;
        if o + len <= first.len() {
            return Some(&first[o..o + len]);
        }
        if off as u64 + len as u64 > self.pkt_len() as u64 || buf.len() < len {
            return None;
        }
        let mut skip = o;
        let mut done = 0;
        for seg in self.segments() {
            if skip >= seg.len() {
                skip -= seg.len();
                continue;
            }
            let take = (seg.len() - skip).min(len - done);
            buf[done..done + take].copy_from_slice(&seg[skip..skip + take]);
            done += take;
            skip = 0;
            if done == len {
                break;
            }
        }
        (done == len).then_some(&buf[..len])
    }

    /// A clone that shares this mbuf's buffers: for each segment, a new (indirect) mbuf from
    /// `pool` attached to it (DPDK's `rte_pktmbuf_clone`). The buffers live until the original
    /// and every clone are freed. `None` when `pool` runs out.
    pub fn clone_in(&self, pool: &MbufPool) -> Option<Mbuf> {
        let mut head: Option<Mbuf> = None;
        let mut prev: Option<Seg> = None;
        let mut n: u16 = 0;
        for md in chain_iter(self.seg) {
            let mi = pool.alloc()?;
            attach(&mi.seg, &md);
            n += 1;
            match prev {
                None => {
                    prev = Some(mi.seg);
                    head = Some(mi);
                }
                Some(p) => {
                    p.set_next(mi.seg.raw().0);
                    prev = Some(mi.seg);
                    // Owned by the chain now; freed with `head` if a later alloc fails.
                    let _ = ManuallyDrop::new(mi);
                    if let Some(h) = &head {
                        h.seg.set_nb_segs(n);
                    }
                }
            }
        }
        let head = head?;
        head.seg.set_nb_segs(n);
        head.seg.set_pkt_len(self.pkt_len());
        Some(head)
    }

    /// A deep copy of `len` bytes of the packet from `off` (all of it for `u32::MAX`), into
    /// new mbufs from `pool`, chained as needed (DPDK's `rte_pktmbuf_copy`). A copy from
    /// `off == pkt_len()` is an empty mbuf. `None` when `off` is past the end or `pool` runs out.
    pub fn copy(&self, pool: &MbufPool, off: u32, len: u32) -> Option<Mbuf> {
        let pkt_len = self.pkt_len();
        if off > pkt_len {
            return None;
        }
        let mut len = (len.min(pkt_len - off)) as usize;
        let mut mc = pool.alloc()?;
        copy_hdr(&mc.seg, &self.seg);
        mc.seg
            .set_ol_flags(self.seg.ol_flags() & !ol_flags::INDIRECT);
        // Filled in turn: `mc` itself, then one new mbuf at a time, chained to `mc` when full.
        let mut tail: Option<Mbuf> = None;
        let mut off = off as usize;
        for src in self.segments() {
            if len == 0 {
                break;
            }
            if off >= src.len() {
                off -= src.len();
                continue;
            }
            let mut src = &src[off..];
            off = 0;
            while len > 0 && !src.is_empty() {
                let dst = tail.as_mut().unwrap_or(&mut mc);
                let room = dst.tailroom() as usize;
                if room == 0 {
                    if let Some(full) = tail.take() {
                        mc.chain(full).ok()?;
                    }
                    tail = Some(pool.alloc()?);
                    continue;
                }
                let take = src.len().min(len).min(room);
                dst.append(take as u16)?.copy_from_slice(&src[..take]);
                src = &src[take..];
                len -= take;
            }
        }
        if let Some(last) = tail {
            mc.chain(last).ok()?;
        }
        Some(mc)
    }

    /// Appends `tail`'s chain to this one (DPDK's `rte_pktmbuf_chain`). Gives `tail` back when
    /// the chain would exceed [`MAX_SEGS`] segments.
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        let total = self.nb_segs() as u32 + tail.nb_segs() as u32;
        if total > MAX_SEGS as u32 {
            return Err(tail);
        }
        let last = self.last_seg();
        last.set_next(tail.seg.raw().0);
        self.seg.set_nb_segs(total as u16);
        self.seg
            .set_pkt_len(self.seg.pkt_len() + tail.seg.pkt_len());
        tail.seg.set_pkt_len(tail.seg.data_len() as u32);
        let _ = ManuallyDrop::new(tail);
        Ok(())
    }

    /// Copies every segment's data into the first one and frees the others (DPDK's
    /// `rte_pktmbuf_linearize`); false (and nothing changed) when the first segment lacks the
    /// tailroom or its buffer is shared with clones.
    pub fn linearize(&mut self) -> bool {
        if self.is_contiguous() {
            return true;
        }
        let s = self.seg;
        let copy_len = self.pkt_len().saturating_sub(s.data_len() as u32);
        if copy_len > tailroom(&s) as u32 || !s.is_sole() {
            return false;
        }
        let at = s.data_off() as usize + s.data_len() as usize;
        // The other segments' bytes (maybe clones of this very buffer) are read before the
        // first segment is written.
        let bytes: Vec<u8> = self.segments().skip(1).flatten().copied().collect();
        if bytes.len() != copy_len as usize {
            return false;
        }
        let rest: Vec<Seg> = chain_iter(s).skip(1).collect();
        match self.first_mut() {
            Some(dst) => dst.buf_bytes(at, bytes.len()).copy_from_slice(&bytes),
            None => return false,
        }
        s.set_data_len(s.data_len() + copy_len as u16);
        s.set_next(NONE);
        s.set_nb_segs(1);
        for seg in rest {
            // Unlinked above: free each segment on its own.
            seg.set_next(NONE);
            free_chain(seg);
        }
        true
    }

    /// Gives the mbuf (the whole chain) up for another process to claim with
    /// [`MbufPool::from_raw`]; until then it is in flight and belongs to no process.
    #[inline]
    pub fn into_raw(self) -> MbufIdx {
        let s = self.seg;
        let _ = ManuallyDrop::new(self);
        if s.next() == NONE {
            s.pool.set_in_flight(s.idx);
        } else {
            for seg in chain_iter(s) {
                seg.pool.set_in_flight(seg.idx);
            }
        }
        s.raw()
    }

    pub(crate) fn seg(&self) -> Seg {
        self.seg
    }
}

fn tailroom(s: &Seg) -> u16 {
    let (_, cap) = s.buf();
    let off = s.data_off().min(cap);
    let len = s.data_len().min(cap - off);
    cap - off - len
}

/// `__rte_pktmbuf_copy_hdr`.
fn copy_hdr(dst: &Seg, src: &Seg) {
    dst.set_port(src.port());
    dst.set_vlan_tci(src.vlan_tci());
    dst.set_vlan_tci_outer(src.vlan_tci_outer());
    dst.set_tx_offload(src.tx_offload());
    dst.set_rss_hash(src.rss_hash());
    dst.set_hash_hi(src.hash_hi());
    dst.set_packet_type(src.packet_type());
    dst.set_timestamp(src.timestamp());
    dst.set_dynfield(src.dynfield());
}

/// DPDK's `rte_pktmbuf_attach`: makes the fresh mbuf `mi` use `m`'s buffer (the buffer of
/// `m`'s direct mbuf when `m` is itself a clone).
fn attach(mi: &Seg, m: &Seg) {
    let md = match m.attached() {
        NONE => *m,
        a => m.resolve(a).unwrap_or(*m),
    };
    md.refcnt().fetch_add(1, Relaxed);
    copy_hdr(mi, m);
    mi.set_priv_size(m.priv_size());
    mi.set_ol_flags(m.ol_flags() | ol_flags::INDIRECT);
    mi.set_attached(md.raw().0);
    mi.set_data_off(m.data_off());
    mi.set_data_len(m.data_len());
    mi.set_buf_len(m.buf_len());
    mi.set_next(NONE);
    mi.set_pkt_len(m.data_len() as u32);
    mi.set_nb_segs(1);
}

/// Decides what reclaiming mbuf `i` of `p`, held by a dead process, means (its tag is
/// RECLAIMING): true to return it to its pool.
pub(crate) fn reclaim_object(p: &'static PoolInner, i: u32) -> bool {
    let s = Seg::of(p, i);
    if s.attached() != NONE {
        // A clone: drop its reference to the direct mbuf, returning that one if it was the
        // last; then the clone itself goes back.
        if let Some(md) = s.resolve(s.attached()) {
            if md.refcnt().fetch_sub(1, AcqRel) == 1 {
                md.refcnt().store(1, Relaxed);
                md.set_next(NONE);
                md.pool.give_back(&[md.idx]);
            }
        }
        s.set_attached(NONE);
        s.refcnt().store(1, Relaxed);
        return true;
    }
    if s.refcnt().load(Relaxed) <= 1 {
        return true;
    }
    // Clones elsewhere use its buffer: the dead process's reference goes, the mbuf stays.
    p.set_shared(i);
    if s.refcnt().fetch_sub(1, AcqRel) == 1 {
        s.refcnt().store(1, Relaxed);
        return true;
    }
    false
}
