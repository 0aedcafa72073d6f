//! Who holds what: reclaiming a process's objects, per-process counts and the audit.

use super::layout::tag;
use super::pool::PoolInner;
use super::{registry, Error};
use crate::group::{Group, Reclaimer};
use crate::memory::header::{slot_state, ProcSlot, SegmentHeader};
use crate::memory::MAX_PROCS;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{Liveness, MemberId, Members};

fn lcores_of(s: &ProcSlot) -> Vec<u32> {
    let mut v = Vec::new();
    for (w, word) in s.lcores.iter().enumerate() {
        let bits = word.load(Relaxed);
        for b in 0..64 {
            if bits & (1 << b) != 0 {
                v.push((w * 64 + b) as u32);
            }
        }
    }
    v
}

/// Objects of one pool held by one process slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SlotUsage {
    /// Process slot.
    pub slot: u32,
    /// Its pid.
    pub pid: u32,
    /// Objects in the process's hands.
    pub in_hand: u32,
    /// Objects in its lcores' caches.
    pub in_cache: u32,
}

/// Where a pool's objects are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    /// Objects in the pool.
    pub size: u32,
    /// Available: store and caches (DPDK's avail count).
    pub avail: u32,
    /// `size - avail`.
    pub in_use: u32,
    /// In the common store.
    pub in_store: u32,
    /// In lcore caches.
    pub cached: u32,
    /// Handed to another process through a ring and not yet claimed.
    pub in_flight: u32,
    /// Mbuf buffers kept alive only by clones.
    pub shared: u32,
    /// Held by processes without a slot.
    pub unattributed: u32,
    /// Per live (or not yet reaped) process.
    pub by_slot: Vec<SlotUsage>,
}

struct TagCounts {
    free: u32,
    in_flight: u32,
    shared: u32,
    reclaiming: u32,
    unattributed: u32,
    invalid: u32,
    /// Held, by (slot, generation).
    held: Vec<((u32, u32), u32)>,
}

fn count_tags(p: &PoolInner) -> TagCounts {
    let mut c = TagCounts {
        free: 0,
        in_flight: 0,
        shared: 0,
        reclaiming: 0,
        unattributed: 0,
        invalid: 0,
        held: Vec::new(),
    };
    if !p.tracked {
        return c;
    }
    let mut held = std::collections::HashMap::<(u32, u32), u32>::new();
    for i in 0..p.size {
        match p.tag(i).load(Relaxed) {
            tag::FREE => c.free += 1,
            tag::IN_FLIGHT => c.in_flight += 1,
            tag::SHARED => c.shared += 1,
            tag::RECLAIMING => c.reclaiming += 1,
            tag::UNATTRIBUTED => c.unattributed += 1,
            t => match tag::holder(t) {
                Some(h) => *held.entry(h).or_default() += 1,
                None => c.invalid += 1,
            },
        }
    }
    c.held = held.into_iter().collect();
    c.held.sort_unstable();
    c
}

/// Live slots: (slot, pid, generation & 0x7fff, lcores).
fn slots(hdr: &SegmentHeader) -> Vec<(u32, u32, u32, Vec<u32>)> {
    hdr.procs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state.load(Relaxed) != slot_state::FREE)
        .map(|(i, s)| {
            (
                i as u32,
                s.pid.load(Relaxed),
                s.generation.load(Relaxed) & 0x7fff,
                lcores_of(s),
            )
        })
        .collect()
}

pub(crate) fn usage(p: &'static PoolInner) -> PoolUsage {
    let counts = count_tags(p);
    let hdr = p.group.header();
    let in_store = p.store_count();
    let cached = p.cached_count();
    let avail = (in_store + cached).min(p.size);
    let by_slot = slots(hdr)
        .into_iter()
        .map(|(slot, pid, gen, lcores)| {
            let held = counts
                .held
                .iter()
                .find(|(h, _)| *h == (slot, gen))
                .map_or(0, |(_, n)| *n);
            let in_cache: u32 = lcores.iter().map(|&l| p.cache_len(l)).sum();
            SlotUsage {
                slot,
                pid,
                in_hand: held.saturating_sub(in_cache),
                in_cache,
            }
        })
        .collect();
    PoolUsage {
        size: p.size,
        avail,
        in_use: p.size - avail,
        in_store,
        cached,
        in_flight: counts.in_flight,
        shared: counts.shared,
        unattributed: counts.unattributed,
        by_slot,
    }
}

/// The result of [`super::Mempool::audit`]. Counts are a snapshot: while other processes work,
/// objects move between them as they are counted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// Objects in the pool.
    pub size: u32,
    /// False for a pool made with `NO_OWNER_TAGS` (tag counts are then zero).
    pub tracked: bool,
    /// Objects tagged free.
    pub free: u32,
    /// Objects in the common store (equals `free` when nothing moves).
    pub in_store: u32,
    /// Objects in lcore caches.
    pub cached: u32,
    /// Objects in flight.
    pub in_flight: u32,
    /// Mbuf buffers kept alive by clones.
    pub shared: u32,
    /// Objects held by processes without a slot.
    pub unattributed: u32,
    /// Objects held per (slot, generation) whose process is in the process table.
    pub held: Vec<(u32, u32)>,
    /// Objects held by slots whose process left or was replaced (never reclaimed).
    pub orphaned: u32,
    /// Objects being reclaimed right now.
    pub reclaiming: u32,
    /// Tags with values no code writes (memory corruption).
    pub invalid: u32,
    /// Objects lost to corruption noticed by the data path.
    pub lost: u64,
    /// Common-store operations of dead processes that were finished or undone.
    pub store_repairs: u32,
    /// What is wrong, in words; empty when all is well.
    pub problems: Vec<String>,
}

impl Audit {
    /// True when the audit found nothing wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn audit(p: &'static PoolInner) -> Audit {
    let counts = count_tags(p);
    let live = slots(p.group.header());
    let mut problems = Vec::new();
    let mut held = Vec::new();
    let mut orphaned = 0;
    for &((slot, gen), n) in &counts.held {
        if live.iter().any(|&(s, _, g, _)| s == slot && g == gen) {
            held.push((slot, n));
        } else {
            orphaned += n;
        }
    }
    if orphaned > 0 {
        problems.push(format!(
            "{orphaned} objects are held by process slots that are gone"
        ));
    }
    if counts.invalid > 0 {
        problems.push(format!(
            "{} objects have invalid owner tags",
            counts.invalid
        ));
    }
    if p.cache_size > 0 {
        for l in 0..crate::memory::MAX_LCORES as u32 {
            let len = p.cache_len(l);
            if len > p.flushthresh {
                problems.push(format!(
                    "lcore {l}'s cache holds {len} objects, above its flush threshold {}",
                    p.flushthresh
                ));
            }
        }
    }
    let lost = p.hdr().lost.load(Relaxed);
    if lost > 0 {
        problems.push(format!("{lost} objects were lost to corruption"));
    }
    let total: u32 = counts.free
        + counts.in_flight
        + counts.shared
        + counts.reclaiming
        + counts.unattributed
        + counts.invalid
        + counts.held.iter().map(|(_, n)| n).sum::<u32>();
    if p.tracked && total != p.size {
        problems.push(format!("{total} tags counted for {} objects", p.size));
    }
    Audit {
        size: p.size,
        tracked: p.tracked,
        free: counts.free,
        in_store: p.store_count(),
        cached: p.cached_count(),
        in_flight: counts.in_flight,
        shared: counts.shared,
        unattributed: counts.unattributed,
        held,
        orphaned,
        reclaiming: counts.reclaiming,
        invalid: counts.invalid,
        lost,
        store_repairs: p.store.repairs(),
        problems,
    }
}

/// Returns to its pool every object the process in `slot` holds, in hand and in its caches.
/// For a dead process that is everything tagged with its slot and generation; for the calling
/// process itself (leaving the group cleanly) only what sits in its caches, since objects in
/// its hands belong to live handles that will return them. Returns (pool, objects) pairs.
fn reclaim_in(group: &Group, slot: u32) -> Vec<(String, u32)> {
    let whole = group.whole();
    let Some(hdr) = whole.get::<SegmentHeader>(0) else {
        return Vec::new();
    };
    let Some(ps) = hdr.procs.get(slot as usize) else {
        return Vec::new();
    };
    let group = registry::views(group);
    let zones = group.pool_zones();
    if zones.is_empty() {
        return Vec::new();
    }
    let gen = ps.generation.load(Relaxed);
    let own = whole.mapping().me() == MemberId::member(slot, gen);
    let lcores = lcores_of(ps);
    let t = tag::held(slot, gen);
    if own {
        group.end_membership();
    } else {
        // Operations the dead member left half done on the registered kinds' rings are
        // undone first, so that its objects' tags are exact before they are counted.
        for k in group.kinds() {
            k.settle_dead(group, MemberId::member(slot, gen), t);
        }
    }
    let mut out = Vec::new();
    for z in zones {
        let Some(p) = group.pool(z) else {
            continue;
        };
        let n = if own {
            reclaim_own(p, &lcores, t)
        } else {
            reclaim_dead(p, &lcores, t)
        };
        if n > 0 {
            out.push((p.name.clone(), n));
        }
    }
    out
}

fn reclaim_own(p: &'static PoolInner, lcores: &[u32], t: u32) -> u32 {
    let mut back = Vec::new();
    for &l in lcores {
        for i in p.cache_contents(l) {
            if i >= p.size {
                continue;
            }
            let ours = !p.tracked
                || p.tag(i)
                    .compare_exchange(t, tag::RECLAIMING, Relaxed, Relaxed)
                    .is_ok();
            if ours {
                back.push(i);
            }
        }
        p.cache_reset(l);
    }
    p.give_back(&back);
    back.len() as u32
}

fn reclaim_dead(p: &'static PoolInner, lcores: &[u32], t: u32) -> u32 {
    // A store operation the dead process left half done is finished or undone first, so that
    // its objects' tags are exact before they are counted.
    p.settle_store();
    let mut back = Vec::new();
    if p.tracked {
        for i in 0..p.size {
            let tg = p.tag(i);
            if tg.load(Relaxed) != t {
                continue;
            }
            // Only one reclaimer (the reaper, `shoal reclaim`) wins each object.
            if tg
                .compare_exchange(t, tag::RECLAIMING, Relaxed, Relaxed)
                .is_err()
            {
                continue;
            }
            let keep = match p.group.kind(p.kind) {
                Some(k) => !k.reclaim_object(p, i),
                None => false,
            };
            if !keep {
                back.push(i);
            }
        }
    }
    for &l in lcores {
        p.cache_reset(l);
    }
    p.give_back(&back);
    back.len() as u32
}

/// The owner-tag protocol as the layers above use it when they repair a dead member's
/// operations on rings of their objects. The protocol has one home, this module and the tag
/// moves of `pool.rs` (values in `layout.rs`); mbufs call into it and name no tag.
impl PoolInner {
    /// Object `i`, which a dead member was sending (in flight, not published), goes back to
    /// the dead member (`dead_tag`), so that reclaiming returns it. False when its tag was not
    /// "in flight".
    pub(crate) fn unsend(&self, i: u32, dead_tag: u32) -> bool {
        self.move_tag(i, tag::IN_FLIGHT, dead_tag)
    }

    /// Object `i`, which a dead member had taken out of a ring without publishing the
    /// receive, goes back in flight (it is still in the ring). False when its tag was not the
    /// dead member's.
    pub(crate) fn unreceive(&self, i: u32, dead_tag: u32) -> bool {
        self.move_tag(i, dead_tag, tag::IN_FLIGHT)
    }
}

/// The mempool layer's reclaimer, registered with every group: the process table calls it
/// when a process died (by the reaper) or leaves by itself (what sat in its caches).
pub(crate) struct PoolReclaimer;

impl Reclaimer for PoolReclaimer {
    fn reclaim(&self, group: &Group, slot: u32, _died: bool) -> Vec<(String, u32)> {
        reclaim_in(group, slot)
            .into_iter()
            .map(|(pool, n)| (format!("mempool {pool:?}"), n))
            .collect()
    }
}

/// Returns to their pools the objects held by the process in `slot`, which must be dead (or
/// gone): what `shoal reclaim` runs. The primary's reaper does the same by itself when it sees
/// a process die; this is for when no primary watches, or to be sure. Returns the objects
/// returned per pool.
///
/// # Errors
/// [`Error::NoSuchSlot`], or [`Error::SlotAlive`] when a live process holds the slot.
pub fn reclaim(group: &impl AsRef<Group>, slot: u32) -> Result<Vec<(String, u32)>, Error> {
    let group = group.as_ref();
    let hdr = group.header();
    let Some(ps) = hdr.procs.get(slot as usize) else {
        return Err(Error::NoSuchSlot(slot));
    };
    if slot as usize >= MAX_PROCS {
        return Err(Error::NoSuchSlot(slot));
    }
    let pid = ps.pid.load(Relaxed);
    let member = MemberId::member(slot, ps.generation.load(Relaxed));
    if ps.state.load(Relaxed) != slot_state::FREE && group.liveness(member) != Liveness::Dead {
        return Err(Error::SlotAlive { slot, pid });
    }
    Ok(reclaim_in(group, slot))
}
