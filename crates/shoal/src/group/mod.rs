//! The group context: this process's membership of a group, as the layers below the EAL see
//! it. The EAL (`eal::Eal`) makes one when it joins (or inspects) a group and owns it; every
//! named object (memzone, ring, mempool, mbuf pool, port) is created and looked up through it.
//!
//! A `Group` holds what was process-global before: the layers' per-membership state (a
//! mempool's views, the ports, the descriptors a primary hands to its secondaries) lives in its
//! `Group::state` slots, keyed by the owning layer's own type, and the layers that own
//! objects register a `Reclaimer` with it, so that the process table returns a dead member's
//! objects through the registered kinds without naming them. This module sits above `memory`
//! and `mp` and below everything that keeps objects in shared memory; it names none of those
//! layers.
//!
//! Nothing here is shared with other processes: a kill leaves nothing of it to repair.

mod lcore;

use std::any::{Any, TypeId};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use lcore::{lcore_id, LcoreId};
pub(crate) use lcore::{lcore_in, LcoreTaken};

use crate::memory::header::SegmentHeader;
use crate::memory::Region;
use crate::mp::Mp;
use crate::sync::{Liveness, MemberId, Members};

/// The role a process plays in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcType {
    /// Created the group's memory.
    Primary,
    /// Attached to a primary's memory.
    Secondary,
}

impl ProcType {
    pub(crate) fn as_u32(self) -> u32 {
        match self {
            ProcType::Primary => 1,
            ProcType::Secondary => 2,
        }
    }
}

impl std::fmt::Display for ProcType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcType::Primary => "primary",
            ProcType::Secondary => "secondary",
        })
    }
}

/// A layer that keeps objects in shared memory and can return those a member held.
pub(crate) trait Reclaimer: Send + Sync {
    /// Returns to their owners the objects the member in process-table `slot` holds: for a
    /// member that `died`, everything attributed to it; for this process leaving by itself,
    /// what sits in its caches. Returns (object, count) pairs for the log. Must be idempotent:
    /// a reaper killed half way is followed by another that runs it again.
    fn reclaim(&self, group: &Group, slot: u32, died: bool) -> Vec<(String, u32)>;
}

/// This process's membership of a group. Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

struct Inner {
    whole: Region,
    proc_type: ProcType,
    slot: Option<u32>,
    segment_path: PathBuf,
    vdevs: Vec<String>,
    mp: Option<Mp>,
    lcores: Arc<lcore::Lcores>,
    reclaimers: Mutex<Vec<(&'static str, Arc<dyn Reclaimer>)>>,
    states: Mutex<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("proc_type", &self.inner.proc_type)
            .field("slot", &self.inner.slot)
            .field("segment", &self.inner.segment_path)
            .finish_non_exhaustive()
    }
}

impl AsRef<Group> for Group {
    fn as_ref(&self) -> &Group {
        self
    }
}

/// What the EAL knows when it makes a group context.
pub(crate) struct Parts {
    /// The whole segment (offset 0 = its header, checked by the caller).
    pub whole: Region,
    pub proc_type: ProcType,
    pub slot: Option<u32>,
    pub segment_path: PathBuf,
    pub vdevs: Vec<String>,
    pub mp: Option<Mp>,
}

impl Group {
    /// A new membership context.
    pub(crate) fn new(p: Parts) -> Group {
        debug_assert!(p.whole.get::<SegmentHeader>(0).is_some());
        Group {
            inner: Arc::new(Inner {
                whole: p.whole,
                proc_type: p.proc_type,
                slot: p.slot,
                segment_path: p.segment_path,
                vdevs: p.vdevs,
                mp: p.mp,
                lcores: Arc::new(lcore::Lcores::new()),
                reclaimers: Mutex::new(Vec::new()),
                states: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The whole segment as a region (offset 0 = the segment header).
    pub(crate) fn whole(&self) -> &Region {
        &self.inner.whole
    }

    pub(crate) fn header(&self) -> &SegmentHeader {
        // Checked when the context was made.
        self.inner.whole.get(0).expect("segment header")
    }

    /// Primary or secondary.
    pub fn proc_type(&self) -> ProcType {
        self.inner.proc_type
    }

    /// This process's slot in the process table (None for an inspector).
    pub fn slot(&self) -> Option<u32> {
        self.inner.slot
    }

    /// The segment file.
    pub fn segment_path(&self) -> &Path {
        &self.inner.segment_path
    }

    /// `--vdev` specs.
    pub fn vdevs(&self) -> &[String] {
        &self.inner.vdevs
    }

    /// The group's IPC channel (None for an inspector).
    pub fn mp(&self) -> Option<&Mp> {
        self.inner.mp.as_ref()
    }

    /// Size of the shared memory in bytes.
    pub fn memory_len(&self) -> usize {
        self.inner.whole.len()
    }

    /// This process's identity in the group.
    pub fn member(&self) -> MemberId {
        self.inner.whole.mapping().me()
    }

    /// Whether member `id` of this group is alive, by its liveness lock.
    pub fn liveness(&self, id: MemberId) -> Liveness {
        self.inner.whole.mapping().liveness(id)
    }

    /// The number that tells this membership's lcore registrations from any other's in the
    /// process (never 0, never reused).
    pub(crate) fn membership(&self) -> usize {
        self.inner.lcores.id()
    }

    /// The state the layer owning `T` keeps for this membership, made on first use.
    pub(crate) fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut states = self.inner.states.lock().unwrap_or_else(|e| e.into_inner());
        let id = TypeId::of::<T>();
        if let Some((_, s)) = states.iter().find(|(t, _)| *t == id) {
            if let Ok(s) = s.clone().downcast::<T>() {
                return s;
            }
        }
        let s = Arc::new(T::default());
        states.push((id, s.clone()));
        s
    }

    /// Registers the reclaimer of the layer `name` (once: a second registration of the same
    /// name is ignored).
    pub(crate) fn add_reclaimer(&self, name: &'static str, r: Arc<dyn Reclaimer>) {
        let mut rs = self
            .inner
            .reclaimers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !rs.iter().any(|(n, _)| *n == name) {
            rs.push((name, r));
        }
    }

    /// Returns what the member in `slot` holds, through every registered reclaimer, in the
    /// order they were registered, and logs it. Returns (object, count) pairs.
    pub(crate) fn reclaim(&self, slot: u32, died: bool) -> Vec<(String, u32)> {
        let rs: Vec<_> = self
            .inner
            .reclaimers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, r)| r.clone())
            .collect();
        let done: Vec<_> = rs
            .iter()
            .flat_map(|r| r.reclaim(self, slot, died))
            .collect();
        for (what, n) in &done {
            if died {
                tracing::warn!(target: "shoal::group", "returned {n} objects held by dead process slot {slot} to {what}");
            } else {
                tracing::debug!(target: "shoal::group", "returned {n} objects held by process slot {slot} to {what}");
            }
        }
        done
    }

    /// Makes the calling thread lcore `lcore` of this membership. Fails when another live
    /// thread of this process already is (a thread that has just ended is waited for, up to
    /// 200 ms).
    pub(crate) fn claim_lcore(&self, lcore: LcoreId) -> Result<(), LcoreTaken> {
        lcore::claim(&self.inner.lcores, lcore)
    }

    /// Makes the calling thread a non-lcore thread again, if it was one of this membership.
    pub(crate) fn release_lcore(&self) {
        lcore::release(&self.inner.lcores);
    }

    /// Ends the lcore registrations of this membership: its threads are no lcores any more.
    pub(crate) fn end_lcores(&self) {
        self.inner.lcores.end();
    }
}
