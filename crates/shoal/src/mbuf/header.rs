//! The mbuf header in shared memory (DPDK's `struct rte_mbuf`, first two cache lines) and raw
//! access to one segment.
//!
//! An mbuf object in its pool is `[MbufHeader: 128 B][private area: priv_size][buffer:
//! data_room]`. Instead of DPDK's `buf_addr`, `pool` and `next` pointers the header holds
//! [`MbufIdx`] values (pool id + object index) that each process turns into addresses in its
//! own mapping, so a segment may be mapped at a different address in every process.
//!
//! Who may touch a header: the process holding the mbuf's handle, alone (a ring hand-over moves
//! that right, with the ring's release/acquire edges ordering the writes); `refcnt` is the one
//! field several holders share (a direct mbuf and the clones attached to its buffer), so it is
//! atomic. Reads of fields a peer could have scribbled are clamped before they form an address.
#![allow(unsafe_code)] // field access through raw pointers into a mapped pool

use std::marker::PhantomData;
use std::mem::{offset_of, size_of};
use std::ptr::{addr_of, addr_of_mut, NonNull};

use super::{Mbuf, MbufIdx};
use crate::memory::Shared;
use crate::mempool::{PoolInner, PoolViews};
use crate::sync::atomic::{AtomicU16, Ordering::Acquire};

/// "No mbuf" in `next` and `attached`.
pub(crate) const NONE: u32 = u32::MAX;

/// The first 128 bytes of every mbuf.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C, align(64))]
pub(crate) struct MbufHeader {
    pub data_off: u16,
    pub refcnt: AtomicU16,
    pub nb_segs: u16,
    pub port: u16,
    pub ol_flags: u64,
    pub packet_type: u32,
    pub pkt_len: u32,
    pub data_len: u16,
    pub vlan_tci: u16,
    pub rss_hash: u32,
    pub hash_hi: u32,
    pub vlan_tci_outer: u16,
    pub buf_len: u16,
    /// Next segment ([`MbufIdx`] raw value) or [`NONE`].
    pub next: u32,
    /// The direct mbuf whose buffer this (indirect) mbuf uses, or [`NONE`].
    pub attached: u32,
    /// This mbuf's own [`MbufIdx`], written once at pool creation.
    pub self_idx: u32,
    pub priv_size: u16,
    pub _pad: u16,
    pub tx_offload: u64,
    // second cache line: DPDK's dynamic fields
    pub timestamp: u64,
    pub dynfield: [u32; 14],
}

#[cfg(not(loom))] // loom atomics are larger; only the real build pins the layout
const _: () = assert!(size_of::<MbufHeader>() == 128);
#[cfg(not(loom))]
const _: () = assert!(offset_of!(MbufHeader, tx_offload) == 56);

// SAFETY: repr(C); integers and one atomic, no pointers; every bit pattern is a valid value.
// Plain fields are written only by the mbuf's single holder (see the module doc).
unsafe impl Shared for MbufHeader {}

/// Bytes of the header.
pub const HDR_SIZE: usize = size_of::<MbufHeader>();

/// Layout facts of the mbuf header, for the segment's layout version.
pub(crate) const LAYOUT_FACTS: [u64; 8] = [
    size_of::<MbufHeader>() as u64,
    offset_of!(MbufHeader, refcnt) as u64,
    offset_of!(MbufHeader, ol_flags) as u64,
    offset_of!(MbufHeader, pkt_len) as u64,
    offset_of!(MbufHeader, next) as u64,
    offset_of!(MbufHeader, attached) as u64,
    offset_of!(MbufHeader, timestamp) as u64,
    super::HEADROOM as u64,
];

/// One segment: an mbuf header in some pool, addressed in this process.
#[derive(Clone, Copy)]
pub(crate) struct Seg {
    pub pool: &'static PoolInner,
    pub idx: u32,
    hdr: NonNull<MbufHeader>,
}

macro_rules! field {
    ($get:ident, $set:ident, $f:ident, $t:ty) => {
        #[inline]
        pub(crate) fn $get(&self) -> $t {
            // SAFETY: the header is inside the pool (idx < size); only the holder writes it.
            unsafe { addr_of!((*self.hdr.as_ptr()).$f).read() }
        }
        #[inline]
        pub(crate) fn $set(&self, v: $t) {
            // SAFETY: as above; the caller holds the mbuf.
            unsafe { addr_of_mut!((*self.hdr.as_ptr()).$f).write(v) }
        }
    };
}

impl Seg {
    /// Segment `idx` of mbuf pool `pool`; `None` when out of range.
    #[inline]
    pub(crate) fn new(pool: &'static PoolInner, idx: u32) -> Option<Seg> {
        if idx >= pool.size {
            return None;
        }
        let hdr = NonNull::new(pool.obj_ptr(idx) as *mut MbufHeader)?;
        Some(Seg { pool, idx, hdr })
    }

    /// Segment `idx` of `pool`, `idx < pool.size` known.
    #[inline]
    pub(crate) fn of(pool: &'static PoolInner, idx: u32) -> Seg {
        debug_assert!(idx < pool.size);
        let idx = idx.min(pool.size - 1);
        let hdr = NonNull::new(pool.obj_ptr(idx) as *mut MbufHeader).expect("mapped object");
        Seg { pool, idx, hdr }
    }

    /// The segment a raw index names in this segment's group, if it is an mbuf of a live pool.
    #[inline]
    pub(crate) fn resolve(&self, raw: u32) -> Option<Seg> {
        resolve(self.pool, raw)
    }

    #[inline]
    pub(crate) fn raw(&self) -> MbufIdx {
        MbufIdx::new(self.pool.index, self.idx)
    }

    #[inline]
    pub(crate) fn refcnt(&self) -> &AtomicU16 {
        // SAFETY: inside the pool; atomics may be shared.
        unsafe { &(*self.hdr.as_ptr()).refcnt }
    }

    field!(data_off, set_data_off, data_off, u16);
    field!(nb_segs, set_nb_segs, nb_segs, u16);
    field!(port, set_port, port, u16);
    field!(ol_flags, set_ol_flags, ol_flags, u64);
    field!(packet_type, set_packet_type, packet_type, u32);
    field!(pkt_len, set_pkt_len, pkt_len, u32);
    field!(data_len, set_data_len, data_len, u16);
    field!(vlan_tci, set_vlan_tci, vlan_tci, u16);
    field!(rss_hash, set_rss_hash, rss_hash, u32);
    field!(hash_hi, set_hash_hi, hash_hi, u32);
    field!(vlan_tci_outer, set_vlan_tci_outer, vlan_tci_outer, u16);
    field!(buf_len, set_buf_len, buf_len, u16);
    field!(next, set_next, next, u32);
    field!(attached, set_attached, attached, u32);
    field!(self_idx, set_self_idx, self_idx, u32);
    field!(priv_size, set_priv_size, priv_size, u16);
    field!(tx_offload, set_tx_offload, tx_offload, u64);
    field!(timestamp, set_timestamp, timestamp, u64);

    /// This mbuf's own buffer: address and data room.
    #[inline]
    fn own_buf(&self) -> (NonNull<u8>, u16) {
        let p = self.pool;
        // SAFETY: header, private area and data room make up the object (checked when the
        // pool's view was made: HDR_SIZE + priv + data_room <= elt_size).
        let buf = unsafe { self.hdr.cast::<u8>().add(HDR_SIZE + p.mbuf_priv as usize) };
        (buf, p.data_room)
    }

    /// The buffer this segment's data is in (its own, or the direct mbuf's when attached):
    /// address and capacity. An unresolvable attachment gives an empty buffer.
    #[inline]
    pub(crate) fn buf(&self) -> (NonNull<u8>, u16) {
        let a = self.attached();
        if a == NONE {
            return self.own_buf();
        }
        match self.resolve(a) {
            Some(d) => d.own_buf(),
            None => (NonNull::dangling(), 0),
        }
    }

    /// Data offset and length clamped to the buffer: what `data()` may show.
    #[inline]
    fn window(&self) -> (NonNull<u8>, usize, usize) {
        let (buf, cap) = self.buf();
        let cap = cap as usize;
        let off = (self.data_off() as usize).min(cap);
        let len = (self.data_len() as usize).min(cap - off);
        (buf, off, len)
    }

    /// True when this segment's buffer is its own and no clone uses it: only then may its
    /// holder write the buffer.
    #[inline]
    pub(crate) fn is_sole(&self) -> bool {
        // A (refcnt): pairs with the AcqRel decrement of a clone's holder letting go (in
        // `prefree`/`detach`): its reads of the buffer happen before our writes to it.
        self.attached() == NONE && self.refcnt().load(Acquire) == 1
    }

    /// The private area between header and buffer: address and length.
    #[inline]
    fn priv_area(&self) -> (NonNull<u8>, usize) {
        // SAFETY: the private area follows the header inside the object (checked when the
        // pool's view was made: HDR_SIZE + priv + data_room <= elt_size).
        let p = unsafe { self.hdr.cast::<u8>().add(HDR_SIZE) };
        (p, self.pool.mbuf_priv as usize)
    }

    /// The dynamic-field area (second cache line).
    #[inline]
    pub(crate) fn dynfield(&self) -> [u32; 14] {
        // SAFETY: inside the header; only the holder writes it.
        unsafe { addr_of!((*self.hdr.as_ptr()).dynfield).read() }
    }

    #[inline]
    pub(crate) fn set_dynfield(&self, v: [u32; 14]) {
        // SAFETY: as above.
        unsafe { addr_of_mut!((*self.hdr.as_ptr()).dynfield).write(v) }
    }
}

/// The segment `raw` names, resolved through `via`'s group.
#[inline]
pub(crate) fn resolve(via: &'static PoolInner, raw: u32) -> Option<Seg> {
    if MbufIdx(raw).pool_id() == via.index {
        seg_in(via, raw)
    } else {
        resolve_in(via.group, raw)
    }
}

/// The segment `raw` names in `group`.
#[inline]
pub(crate) fn resolve_in(group: &'static PoolViews, raw: u32) -> Option<Seg> {
    seg_in(group.pool(MbufIdx(raw).pool_id())?, raw)
}

#[inline]
fn seg_in(pool: &'static PoolInner, raw: u32) -> Option<Seg> {
    let raw = MbufIdx(raw);
    if pool.kind != crate::mempool::kind::MBUF {
        return None;
    }
    Seg::new(pool, raw.index())
}

/// A segment of a chain, borrowed for `'a` from the [`Mbuf`] that holds the chain: the bytes it
/// hands out live no longer than that borrow, during which the holder cannot write them.
#[derive(Clone, Copy)]
pub(crate) struct SegRef<'a> {
    seg: Seg,
    _holder: PhantomData<&'a Mbuf>,
}

impl<'a> SegRef<'a> {
    /// The segment's data.
    #[inline]
    pub(crate) fn data(self) -> &'a [u8] {
        let (buf, off, len) = self.seg.window();
        // SAFETY: off + len <= cap, inside the buffer. The holder's handle is borrowed for 'a,
        // so it cannot write these bytes meanwhile, and nobody else writes a buffer that
        // others use: writing needs a `SegMut`, which exists only for a buffer no clone shares.
        unsafe { std::slice::from_raw_parts(buf.as_ptr().add(off), len) }
    }
}

/// A segment whose buffer only its holder uses (direct, reference count 1), borrowed
/// mutably for `'a` from the [`Mbuf`] that holds it.
pub(crate) struct SegMut<'a> {
    seg: Seg,
    _holder: PhantomData<&'a mut Mbuf>,
}

impl<'a> SegMut<'a> {
    /// The segment's data, writable.
    #[inline]
    pub(crate) fn data(self) -> &'a mut [u8] {
        let (buf, off, len) = self.seg.window();
        // SAFETY: inside the buffer (`window` clamps); the buffer is this mbuf's alone (no
        // clone attached: checked when the SegMut was made, and making a clone needs the
        // handle, which is borrowed mutably for 'a), so no other reference reaches it.
        unsafe { std::slice::from_raw_parts_mut(buf.as_ptr().add(off), len) }
    }

    /// `len` bytes of the buffer at `at` (clamped to the buffer), writable.
    #[inline]
    pub(crate) fn buf_bytes(self, at: usize, len: usize) -> &'a mut [u8] {
        let (buf, cap) = self.seg.buf();
        let cap = cap as usize;
        let at = at.min(cap);
        let len = len.min(cap - at);
        // SAFETY: inside the buffer (clamped above); exclusive as in `data`.
        unsafe { std::slice::from_raw_parts_mut(buf.as_ptr().add(at), len) }
    }
}

impl Mbuf {
    /// The first segment, borrowed with the handle.
    #[inline]
    pub(crate) fn first(&self) -> SegRef<'_> {
        SegRef {
            seg: self.seg,
            _holder: PhantomData,
        }
    }

    /// Every segment of the chain, borrowed with the handle.
    pub(crate) fn chain_refs(&self) -> impl Iterator<Item = SegRef<'_>> + '_ {
        super::chain_iter(self.seg).map(|seg| SegRef {
            seg,
            _holder: PhantomData,
        })
    }

    /// The first segment, writable, when its buffer is this mbuf's alone.
    #[inline]
    pub(crate) fn first_mut(&mut self) -> Option<SegMut<'_>> {
        self.seg.is_sole().then_some(SegMut {
            seg: self.seg,
            _holder: PhantomData,
        })
    }

    /// The last segment, writable, when its buffer is this mbuf's alone.
    #[inline]
    pub(crate) fn last_mut(&mut self) -> Option<SegMut<'_>> {
        let seg = self.last_seg();
        seg.is_sole().then_some(SegMut {
            seg,
            _holder: PhantomData,
        })
    }

    /// The private area of the first segment (its own, never shared by clones).
    #[inline]
    pub(crate) fn priv_bytes(&self) -> &[u8] {
        let (p, len) = self.seg.priv_area();
        // SAFETY: the private area follows the header inside this mbuf's own object; clones
        // have their own, and writing it needs `&mut self`.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
    }

    /// The private area of the first segment, writable.
    #[inline]
    pub(crate) fn priv_bytes_mut(&mut self) -> &mut [u8] {
        let (p, len) = self.seg.priv_area();
        // SAFETY: as in `priv_bytes`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) }
    }
}
