//! Rings that move mbufs between threads and processes: a [`Ring<MbufIdx>`] whose every
//! operation moves ownership.

use std::cell::{Cell, RefCell};

use super::batch::MAX_BURST;
use super::header::Seg;
use super::{claim_chain, Error, Mbuf, MbufBatch, MbufIdx};
use crate::group::Group;
use crate::memory::Region;
use crate::mempool::{views, PoolViews};
use crate::ring::{Consumer, Producer, Ring, RingConfig};
use crate::sync::{MemberId, Members};

/// A ring of mbufs (DPDK's `rte_ring` of `struct rte_mbuf *`). Enqueueing gives the mbufs up
/// (they are in flight, owned by nobody, until a dequeue claims them); what did not fit stays
/// with the caller. Each handle keeps its own producer and consumer (claimed on first use for a
/// single-producer or single-consumer side, and released when the handle drops), so a handle
/// is used by one thread at a time; clone it for another.
pub struct MbufRing {
    ring: Ring<MbufIdx>,
    group: &'static PoolViews,
    prod: RefCell<Option<Producer<MbufIdx>>>,
    cons: RefCell<Option<Consumer<MbufIdx>>>,
    refused: Cell<u64>,
}

impl std::fmt::Debug for MbufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufRing")
            .field("ring", &self.ring)
            .field("refused", &self.refused.get())
            .finish()
    }
}

impl Clone for MbufRing {
    /// Another handle on the same ring, without the side claims of this one.
    fn clone(&self) -> Self {
        MbufRing::wrap(self.ring.clone(), self.group)
    }
}

impl MbufRing {
    fn wrap(mut ring: Ring<MbufIdx>, group: &'static PoolViews) -> MbufRing {
        // Mbufs of a dead process's operation that a waiter of this process repairs (values
        // that never reached the ring, or that a dead consumer had reserved): those still in
        // flight go back to their pool; those the dead process held go back with its tag.
        ring.set_orphan_hook(std::sync::Arc::new(move |_, _, vals: &[MbufIdx]| {
            for &v in vals {
                drop(claim_chain(group, v));
            }
        }));
        MbufRing {
            ring,
            group,
            prod: RefCell::new(None),
            cons: RefCell::new(None),
            refused: Cell::new(0),
        }
    }

    /// Creates a ring in the memzone `RG_<name>` ([`Ring::create`], DPDK's `rte_ring_create`).
    ///
    /// # Errors
    /// The ring's configuration errors, or the memzone's (name taken, no room).
    pub fn create(
        group: &impl AsRef<Group>,
        name: &str,
        cfg: RingConfig,
    ) -> Result<MbufRing, Error> {
        let group = group.as_ref();
        let ring = Ring::<MbufIdx>::create(group, name, &cfg)?;
        Ok(MbufRing::wrap(ring, {
            super::register(group);
            views(group)
        }))
    }

    /// Finds a ring of mbufs created by any process of the group ([`Ring::lookup`]).
    ///
    /// # Errors
    /// No such ring, or it holds no 4-byte values.
    pub fn lookup(group: &impl AsRef<Group>, name: &str) -> Result<MbufRing, Error> {
        let group = group.as_ref();
        let ring = Ring::<MbufIdx>::lookup(group, name)?;
        Ok(MbufRing::wrap(ring, {
            super::register(group);
            views(group)
        }))
    }

    /// Wraps a ring of [`MbufIdx`] made some other way.
    pub fn from_ring(group: &impl AsRef<Group>, ring: Ring<MbufIdx>) -> MbufRing {
        let group = group.as_ref();
        MbufRing::wrap(ring, {
            super::register(group);
            views(group)
        })
    }

    /// The underlying ring (counts, info).
    pub fn ring(&self) -> &Ring<MbufIdx> {
        &self.ring
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        self.ring.count()
    }

    /// Free slots now.
    pub fn free_count(&self) -> u32 {
        self.ring.free_count()
    }

    /// Indices this handle dequeued that named no mbuf in flight (dropped, not used).
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    fn with_prod<R>(&self, f: impl FnOnce(&mut Producer<MbufIdx>) -> R) -> Option<R> {
        let mut p = self.prod.borrow_mut();
        if p.is_none() {
            *p = self.ring.producer();
            if p.is_none() {
                tracing::debug!(target: "shoal::mbuf", "ring {:?}: its single producer side is held by another handle", self.ring.name());
            }
        }
        p.as_mut().map(f)
    }

    fn with_cons<R>(&self, f: impl FnOnce(&mut Consumer<MbufIdx>) -> R) -> Option<R> {
        let mut c = self.cons.borrow_mut();
        if c.is_none() {
            *c = self.ring.consumer();
            if c.is_none() {
                tracing::debug!(target: "shoal::mbuf", "ring {:?}: its single consumer side is held by another handle", self.ring.name());
            }
        }
        c.as_mut().map(f)
    }

    /// Enqueues one mbuf; gives it back when the ring is full.
    pub fn enqueue(&self, m: Mbuf) -> Result<(), Mbuf> {
        let seg = m.seg();
        let sent = self
            .with_prod(|p| p.enqueue_journaled(&[seg.raw()], true, |_| set_in_flight(seg)))
            .unwrap_or(0);
        if sent == 1 {
            std::mem::forget(m);
            return Ok(());
        }
        Err(m)
    }

    /// Enqueues as many mbufs from the front of `batch` as fit (DPDK's
    /// `rte_ring_enqueue_burst`); the others stay in `batch`, in order. Returns how many moved.
    #[inline]
    pub fn enqueue_burst(&self, batch: &mut MbufBatch) -> usize {
        self.enqueue_n(batch, false)
    }

    /// Enqueues the whole batch or nothing (DPDK's `rte_ring_enqueue_bulk`).
    pub fn enqueue_bulk(&self, batch: &mut MbufBatch) -> bool {
        self.enqueue_n(batch, true) > 0 || batch.is_empty()
    }

    #[inline]
    fn enqueue_n(&self, batch: &mut MbufBatch, all: bool) -> usize {
        let n = batch.len();
        if n == 0 {
            return 0;
        }
        let mut raw = [MbufIdx(0); MAX_BURST];
        // The mbufs are marked in flight between the slot writes and the publication, under
        // the side's journal (single producer) or the handle's reservation record (multi
        // producer), so a kill anywhere loses none of them.
        let want = n.min(MAX_BURST);
        if all && want < n {
            return 0;
        }
        for (k, seg) in batch.front_segs(want).enumerate() {
            raw[k] = seg.raw();
        }
        let b = &*batch;
        let sent = self
            .with_prod(|p| {
                p.enqueue_journaled(&raw[..want], all, |k| {
                    for seg in b.front_segs(k) {
                        set_in_flight(seg);
                    }
                })
            })
            .unwrap_or(0);
        batch.forget_front(sent);
        sent
    }

    /// Dequeues one mbuf.
    pub fn dequeue(&self) -> Option<Mbuf> {
        let mut b = MbufBatch::new();
        self.dequeue_burst(&mut b, 1);
        b.pop()
    }

    /// Dequeues up to `max` mbufs (and no more than `batch` has room for), appending them to
    /// `batch` (DPDK's `rte_ring_dequeue_burst`). Returns how many were added.
    #[inline]
    pub fn dequeue_burst(&self, batch: &mut MbufBatch, max: usize) -> usize {
        let room = batch.room().min(max);
        if room == 0 {
            return 0;
        }
        let mut raw = [MbufIdx(0); MAX_BURST];
        let room = room.min(MAX_BURST);
        // The mbufs are claimed before the slots are given back, under the side's journal
        // (single consumer) or the handle's reservation record (multi consumer), so a kill
        // anywhere leaves them in the ring, in our hands (reclaimed by tag), or in a record
        // from which the repair returns them.
        let (group, mut added, mut refused) = (self.group, 0, [MbufIdx(0); MAX_BURST]);
        let mut nref = 0;
        self.with_cons(|c| {
            c.dequeue_journaled(&mut raw[..room], |vals| {
                for &r in vals {
                    match claim_chain(group, r) {
                        Some(m) => {
                            batch.push_unchecked(m);
                            added += 1;
                        }
                        None => {
                            refused[nref] = r;
                            nref += 1;
                        }
                    }
                }
            })
        });
        for &r in &refused[..nref] {
            self.refuse(r);
        }
        added
    }

    #[cold]
    fn refuse(&self, raw: MbufIdx) {
        self.refused.set(self.refused.get() + 1);
        tracing::error!(target: "shoal::mbuf", "ring {:?}: dequeued {:#x}, which is no mbuf in flight; dropped", self.ring.name(), raw.0);
    }

    /// Takes ownership of the mbuf `raw` names, looked up in this ring's group.
    pub fn claim(&self, raw: MbufIdx) -> Option<Mbuf> {
        claim_chain(self.group, raw)
    }
}

fn set_in_flight(seg: Seg) {
    seg.pool.set_in_flight(seg.idx);
    if seg.next() != super::header::NONE {
        for s in super::chain_iter(seg).skip(1) {
            s.pool.set_in_flight(s.idx);
        }
    }
}

/// The reaper's part for rings of mbufs, before it reclaims the dead member's objects by their
/// owner tags: every single side of a ring that `dead` owned is taken over and released, and
/// the mbufs of the journaled operation it had not published are given back to their rightful
/// owner: a send cut short returns them to the dead member (its tag `dead_tag`, so that the
/// reaper returns them to their pools), a receive cut short returns them to the ring (in
/// flight, where they still are). Returns how many mbufs moved.
pub(crate) fn release_dead_sides(
    group: &'static PoolViews,
    whole: &Region,
    dead: MemberId,
    dead_tag: u32,
) -> usize {
    let me = whole.mapping().me();
    let mut moved = 0;
    for region in crate::ring::ring_regions(whole) {
        let Ok(ring) = Ring::<MbufIdx>::attach(region) else {
            continue;
        };
        // Multi-thread sides: the dead member's operations are finished; the mbufs that a
        // dead producer wrote but that became a hole, and those a dead consumer had reserved,
        // go to the dead member's tag (those in flight), or back to their pool when another
        // dead member's operation was finished on the way.
        for (prod, who, vals) in ring.repair_dead_reservations(dead, me) {
            for v in &vals {
                if who == dead {
                    let Some(head) = super::header::resolve_in(group, v.0) else {
                        continue;
                    };
                    for s in super::chain_iter(head) {
                        s.pool.unsend(s.idx, dead_tag);
                    }
                } else {
                    drop(claim_chain(group, *v));
                }
            }
            if !vals.is_empty() {
                tracing::warn!(target: "shoal::mbuf", "ring {:?}: a {} of {} mbufs by dead member {who} was cut short; finished", ring.name(), if prod { "send" } else { "receive" }, vals.len());
            }
            moved += vals.len();
        }
        for prod in [true, false] {
            let Some(vals) = ring.release_dead_side(prod, dead, me) else {
                continue;
            };
            for v in &vals {
                let Some(head) = super::header::resolve_in(group, v.0) else {
                    continue;
                };
                for s in super::chain_iter(head) {
                    if prod {
                        s.pool.unsend(s.idx, dead_tag);
                    } else {
                        s.pool.unreceive(s.idx, dead_tag);
                    }
                }
            }
            if !vals.is_empty() {
                tracing::warn!(target: "shoal::mbuf", "ring {:?}: a {} of {} mbufs by dead member {dead} was cut short; undone", ring.name(), if prod { "send" } else { "receive" }, vals.len());
            }
            moved += vals.len();
        }
    }
    moved
}
