//! This process's views of a group's pools.
//!
//! Object handles ([`super::PoolObj`], [`crate::mbuf::Mbuf`]) are as small as DPDK's object
//! pointers: a `&'static` reference to the process-local view of their pool and an index. The
//! views are therefore made once per pool and process and never freed (they keep the group's
//! mapping alive for the life of the process, as DPDK keeps its memory mapped until exit), and
//! a [`Group`] finds them by the pool's memzone index, which is the pool id carried by
//! [`super::ObjIdx`] and [`crate::mbuf::MbufIdx`].
#![allow(unsafe_code)] // views are leaked boxes reached through AtomicPtr

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};

use super::layout::tag;
use super::pool::PoolInner;
use crate::eal::Eal;
use crate::memory::header::{SegmentHeader, MAX_MEMZONES};
use crate::memory::{MemzoneKind, Region};
use crate::memzone::state;
use crate::sync::atomic::Ordering;

/// One membership of a group, as the pools see it.
pub(crate) struct Group {
    /// [`crate::eal::member_id`] of the membership while it lasts; 0 for a reclaimer's view and
    /// once the membership ended (threads then stop using lcore caches).
    pub member: AtomicUsize,
    /// The whole segment (offset 0 = the segment header).
    pub whole: Region,
    /// The tag objects held by this process carry.
    pub my_tag: u32,
    /// Views by memzone index; null until first used.
    pools: Box<[AtomicPtr<PoolInner>]>,
    attach_lock: Mutex<()>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("member", &self.member)
            .field("my_tag", &self.my_tag)
            .finish_non_exhaustive()
    }
}

static GROUPS: Mutex<Vec<&'static Group>> = Mutex::new(Vec::new());

/// Views a process can make (over all groups and pools, for its lifetime).
const MAX_VIEWS: usize = 1 << 16;
/// Every view by its process-wide number, so that object handles can carry a 32-bit number
/// (8-byte handles, like DPDK's pointers) instead of a reference.
static VIEWS: [AtomicPtr<PoolInner>; MAX_VIEWS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_VIEWS];
static NEXT_VIEW: AtomicU32 = AtomicU32::new(0);

/// The view numbered `no`, which must have been handed out by `attach_index` (every handle's
/// number was).
#[inline(always)]
pub(crate) fn view(no: u32) -> &'static PoolInner {
    // A2: pairs with R2 in `attach_index`.
    let p = VIEWS[no as usize & (MAX_VIEWS - 1)].load(StdOrdering::Acquire);
    debug_assert!(!p.is_null());
    // SAFETY: numbers are only given to handles after the view was stored under it (R2), and
    // views are leaked boxes that are never freed or replaced.
    unsafe { &*p }
}

fn mapping_id(r: &Region) -> usize {
    Arc::as_ptr(r.mapping()) as usize
}

fn find_or_make(whole: &Region, member: usize, my_tag: u32) -> &'static Group {
    let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    let id = mapping_id(whole);
    if let Some(g) = groups
        .iter()
        .find(|g| mapping_id(&g.whole) == id && g.my_tag == my_tag)
    {
        return g;
    }
    let g: &'static Group = Box::leak(Box::new(Group {
        member: AtomicUsize::new(member),
        whole: whole.clone(),
        my_tag,
        pools: (0..MAX_MEMZONES)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect(),
        attach_lock: Mutex::new(()),
    }));
    groups.push(g);
    g
}

/// The membership `eal` stands for.
pub(crate) fn group(eal: &Eal) -> &'static Group {
    let whole = eal.whole();
    let hdr = eal.header();
    let my_tag = match eal.slot() {
        Some(s) => {
            let gen = hdr.procs[s as usize].generation.load(Ordering::Relaxed);
            tag::held(s, gen)
        }
        None => tag::UNATTRIBUTED,
    };
    find_or_make(&whole, crate::eal::member_id(eal), my_tag)
}

/// Ends this process's membership `my_tag` of the group in `whole` for the data path: its
/// threads stop using lcore caches (what they put goes to the common stores).
pub(crate) fn end_membership(whole: &Region, my_tag: u32) {
    let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    let id = mapping_id(whole);
    for g in groups
        .iter()
        .filter(|g| mapping_id(&g.whole) == id && g.my_tag == my_tag)
    {
        g.member.store(0, StdOrdering::Relaxed);
        for slot in g.pools.iter() {
            let p = slot.load(StdOrdering::Acquire);
            if !p.is_null() {
                // SAFETY: non-null pointers in `pools` are leaked views, never freed.
                unsafe { &*p }.member.store(0, StdOrdering::Relaxed);
            }
        }
    }
}

/// A view of the group in `whole` for a reclaimer: an existing membership of this process if
/// there is one, else one whose objects are unattributed.
pub(crate) fn group_of(whole: &Region) -> Option<&'static Group> {
    let hdr: &SegmentHeader = whole.get(0)?;
    let id = mapping_id(whole);
    {
        let groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = groups.iter().find(|g| mapping_id(&g.whole) == id) {
            return Some(g);
        }
    }
    let _ = hdr;
    Some(find_or_make(whole, 0, tag::UNATTRIBUTED))
}

impl Group {
    pub(crate) fn header(&self) -> &SegmentHeader {
        self.whole.get(0).expect("segment header")
    }

    /// The memzone indices of every mempool of the group.
    pub(crate) fn pool_zones(&self) -> Vec<u32> {
        let table = self.header().memzones.lock(&**self.whole.mapping());
        table
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.used == state::PUBLISHED && e.kind == MemzoneKind::Mempool as u32)
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The memzone index of `MP_<name>`, if it is a mempool.
    pub(crate) fn zone_index(&self, zone_name: &str) -> Option<u32> {
        let table = self.header().memzones.lock(&**self.whole.mapping());
        table
            .entries
            .iter()
            .position(|e| {
                e.used == state::PUBLISHED
                    && e.kind == MemzoneKind::Mempool as u32
                    && e.name_str() == zone_name
            })
            .map(|i| i as u32)
    }

    /// The view of the pool in memzone `index`, made on first use. `None` when there is no
    /// published pool there.
    #[inline]
    pub(crate) fn pool(&'static self, index: u32) -> Option<&'static PoolInner> {
        let slot = self.pools.get(index as usize)?;
        // A1: pairs with R1 below: a view seen here is fully built.
        let p = slot.load(StdOrdering::Acquire);
        if !p.is_null() {
            // SAFETY: non-null pointers in `pools` come from Box::leak below and are never freed.
            let inner: &'static PoolInner = unsafe { &*p };
            if inner.is_current() {
                return Some(inner);
            }
        }
        self.attach_index(index)
    }

    #[cold]
    fn attach_index(&'static self, index: u32) -> Option<&'static PoolInner> {
        let _g = self.attach_lock.lock().unwrap_or_else(|e| e.into_inner());
        let slot = self.pools.get(index as usize)?;
        let p = slot.load(StdOrdering::Acquire);
        if !p.is_null() {
            // SAFETY: as in `pool`.
            let inner: &'static PoolInner = unsafe { &*p };
            if inner.is_current() {
                return Some(inner);
            }
        }
        // A view is an attachment of the zone (released if the view cannot be made): the pool
        // is not freed under it by another process.
        let zone = crate::memzone::attach_index(&self.whole, index as usize, MemzoneKind::Mempool)?;
        let mut inner = match PoolInner::attach(self, zone, index) {
            Ok(i) => i,
            Err(why) => {
                tracing::debug!(target: "shoal::mempool", "memzone {index}: {why}");
                return None;
            }
        };
        let no = NEXT_VIEW.fetch_add(1, StdOrdering::Relaxed);
        if no as usize >= MAX_VIEWS {
            tracing::error!(target: "shoal::mempool", "this process has made {MAX_VIEWS} pool views; no more");
            return None;
        }
        inner.no = no;
        let leaked: &'static PoolInner = Box::leak(Box::new(inner));
        // R2: pairs with A2 in `view`.
        VIEWS[no as usize].store(
            leaked as *const PoolInner as *mut PoolInner,
            StdOrdering::Release,
        );
        // R1: pairs with A1 in `pool`.
        slot.store(
            leaked as *const PoolInner as *mut PoolInner,
            StdOrdering::Release,
        );
        Some(leaked)
    }
}
