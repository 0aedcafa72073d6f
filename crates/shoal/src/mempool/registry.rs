//! This process's views of a group's pools.
//!
//! Object handles ([`super::PoolObj`], mbufs) are as small as DPDK's object pointers: a
//! `&'static` reference to the process-local view of their pool and an index. The views are
//! therefore made once per pool and membership and never freed (they keep the group's mapping
//! alive for the life of the process, as DPDK keeps its memory mapped until exit). A
//! membership's views ([`PoolViews`]) are the mempool layer's state in its
//! [`crate::group::Group`], and find a pool's view by the pool's memzone index, which is the
//! pool id carried by [`super::ObjIdx`] and by mbuf indices.
//!
//! One table stays process-wide: `VIEWS`, which numbers every view the process makes so that a
//! handle can carry a 32-bit number instead of a reference (8-byte handles, like DPDK's
//! pointers). It is a numbering of leaked views, keyed by nothing else, and is only appended to.
#![allow(unsafe_code)] // views are leaked boxes reached through AtomicPtr

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, OnceLock};

use super::layout::tag;
use super::pool::PoolInner;
use super::ObjectKind;
use crate::group::Group;
use crate::memory::header::{SegmentHeader, MAX_MEMZONES};
use crate::memory::{MemzoneKind, Region};
use crate::memzone::state;
use crate::sync::atomic::Ordering;

/// One membership of a group, as the pools see it.
pub(crate) struct PoolViews {
    /// The membership's lcore id ([`Group`]'s); 0 for a reclaimer's view and once the
    /// membership ended (threads then stop using lcore caches).
    pub member: AtomicUsize,
    /// The whole segment (offset 0 = the segment header).
    pub whole: Region,
    /// The tag objects held by this process carry.
    pub my_tag: u32,
    /// Views by memzone index; null until first used.
    pools: Box<[AtomicPtr<PoolInner>]>,
    attach_lock: Mutex<()>,
    /// The object kinds the layers above registered with the group (mbufs).
    kinds: Arc<Kinds>,
}

/// The object kinds registered with a group: the mempool layer's state in it.
#[derive(Default)]
pub(crate) struct Kinds(Mutex<Vec<&'static dyn ObjectKind>>);

impl Kinds {
    pub(crate) fn add(&self, k: &'static dyn ObjectKind) {
        let mut ks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !ks.iter().any(|x| x.kind() == k.kind()) {
            ks.push(k);
        }
    }

    pub(crate) fn get(&self, kind: u32) -> Option<&'static dyn ObjectKind> {
        let ks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ks.iter().find(|x| x.kind() == kind).copied()
    }

    pub(crate) fn all(&self) -> Vec<&'static dyn ObjectKind> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for PoolViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolViews")
            .field("member", &self.member)
            .field("my_tag", &self.my_tag)
            .finish_non_exhaustive()
    }
}

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

/// Where a group keeps its pool views.
#[derive(Default)]
struct ViewsSlot(OnceLock<&'static PoolViews>);

/// The pool views of the membership `group` stands for, made on first use.
pub(crate) fn views(group: &Group) -> &'static PoolViews {
    let slot = group.state::<ViewsSlot>();
    slot.0.get_or_init(|| {
        let my_tag = match group.slot() {
            Some(s) => {
                let gen = group.header().procs[s as usize]
                    .generation
                    .load(Ordering::Relaxed);
                tag::held(s, gen)
            }
            None => tag::UNATTRIBUTED,
        };
        let member = if group.slot().is_some() {
            group.membership()
        } else {
            0
        };
        Box::leak(Box::new(PoolViews {
            member: AtomicUsize::new(member),
            whole: group.whole().clone(),
            my_tag,
            pools: (0..MAX_MEMZONES)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            attach_lock: Mutex::new(()),
            kinds: group.state::<Kinds>(),
        }))
    })
}

impl PoolViews {
    /// Ends this membership for the data path: its threads stop using lcore caches (what they
    /// put goes to the common stores).
    pub(crate) fn end_membership(&self) {
        self.member.store(0, StdOrdering::Relaxed);
        for slot in self.pools.iter() {
            let p = slot.load(StdOrdering::Acquire);
            if !p.is_null() {
                // SAFETY: non-null pointers in `pools` are leaked views, never freed.
                unsafe { &*p }.member.store(0, StdOrdering::Relaxed);
            }
        }
    }

    /// The object kind registered for pools of kind `kind`.
    pub(crate) fn kind(&self, kind: u32) -> Option<&'static dyn ObjectKind> {
        self.kinds.get(kind)
    }

    /// Every registered object kind.
    pub(crate) fn kinds(&self) -> Vec<&'static dyn ObjectKind> {
        self.kinds.all()
    }

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
