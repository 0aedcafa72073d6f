//! Lock-free rings of plain values in shared memory (DPDK's `rte_ring`).
//!
//! A [`Ring<T>`] is a fixed-size FIFO of `T: bytemuck::Pod` values living in a [`Region`]: a
//! `#[repr(C)]` header (8832 bytes: a 128-byte block for the description, then for each side
//! its tail, which the other side polls, its head, which only it touches, each on a 128-byte
//! block, and 64 reservation records of 64 bytes) followed by the slots.
//! The header holds no pointer; slots are addressed by index from the region's start, so every
//! process may map the region at its own address.
//!
//! ```
//! use shoal::memory::Fresh;
//! use shoal::ring::{Ring, RingConfig, SyncMode};
//!
//! let cfg = RingConfig { count: 1024, prod: SyncMode::Sp, cons: SyncMode::Sp, ..RingConfig::new(1024) };
//! let region = Fresh::heap(Ring::<u64>::memsize(&cfg)?);
//! let ring = Ring::<u64>::init(region, "demo", &cfg)?;
//! let mut tx = ring.producer().expect("first producer of an SP side");
//! let mut rx = ring.consumer().expect("first consumer of an SC side");
//! assert_eq!(tx.enqueue_burst(&[1, 2, 3]), 3);
//! let mut out = [0u64; 8];
//! assert_eq!(rx.dequeue_burst(&mut out), 3);
//! assert_eq!(&out[..3], &[1, 2, 3]);
//! # Ok::<(), shoal::ring::Error>(())
//! ```
//!
//! # Producers and consumers
//!
//! Enqueues go through a [`Producer`], dequeues through a [`Consumer`]. For a multi-thread side
//! (`Mp`, `MpRts`, `MpHts`) [`Ring::producer`] hands out up to 64 handles at once (each holds
//! one of the side's reservation records, see below; DPDK bounds its threads by
//! `RTE_MAX_LCORE` the same way), and `None` beyond. For a single side (`Sp`) it hands out one:
//! the claim is recorded in the header with the owner's member id, so a second handle, in this
//! process or another live one, gets `None` until the first is dropped (the claim of a process
//! that died is taken over once it is reaped). This is how "single producer" stays a checked
//! promise in safe Rust instead of a comment.
//!
//! # DPDK names
//!
//! | DPDK | shoal |
//! |------|-------|
//! | `rte_ring_get_memsize_elem(esize, count)` | [`Ring::memsize`] |
//! | `rte_ring_init(r, name, count, flags)` | [`Ring::init`] (on a [`Fresh`] region nobody else sees yet) |
//! | `rte_ring_create_elem` / `rte_ring_lookup` | `Ring::create` / `Ring::lookup`, on top of [`Ring::init`] / `Ring::attach` |
//! | `RING_F_SP_ENQ`, `RING_F_SC_DEQ`, `RING_F_MP_RTS_ENQ`, ... | [`RingConfig`] `prod` / `cons` = [`SyncMode`]; [`RingConfig::from_flags`] |
//! | `RING_F_EXACT_SZ` | [`RingConfig::exact_size`] |
//! | `rte_ring_enqueue(r, obj)` | [`Producer::enqueue`] `-> Result<(), Full>` |
//! | `rte_ring_enqueue_bulk(r, objs, n, &free)` | [`Producer::enqueue_bulk`] `-> Result<u32 /* free */, Full>` |
//! | `rte_ring_enqueue_burst(r, objs, n, &free)` | [`Producer::enqueue_burst`] `-> usize`, [`Producer::enqueue_burst_with_free`] `-> (usize, u32)` |
//! | `rte_ring_dequeue(r, &obj)` | [`Consumer::dequeue`] `-> Option<T>` |
//! | `rte_ring_dequeue_bulk(r, objs, n, &avail)` | [`Consumer::dequeue_bulk`] `-> Result<u32 /* left */, Empty>` |
//! | `rte_ring_dequeue_burst(r, objs, n, &avail)` | [`Consumer::dequeue_burst`] `-> usize`, [`Consumer::dequeue_burst_with_available`] `-> (usize, u32)` |
//! | `rte_ring_mp_*`, `rte_ring_sp_*`, `rte_ring_*_elem` | the side's configured mode is always used; `T` gives the element size |
//! | `rte_ring_count`, `_free_count`, `_full`, `_empty`, `_get_size`, `_get_capacity` | [`Ring::count`], [`Ring::free_count`], [`Ring::is_full`], [`Ring::is_empty`], [`Ring::size`], [`Ring::capacity`] |
//! | `rte_ring_get_prod_sync_type`, `rte_ring_get_prod_htd_max`, `rte_ring_set_prod_htd_max` | [`Ring::prod_mode`], [`Ring::prod_htd_max`], [`Ring::set_prod_htd_max`] (and `cons`) |
//! | `rte_ring_enqueue_{bulk,burst}_start` + `rte_ring_enqueue_finish(r, objs, n)` | [`Producer::enqueue_bulk_start`] / [`Producer::enqueue_burst_start`] + [`EnqueueReservation::finish_with`] |
//! | `rte_ring_enqueue_zc_{bulk,burst}_start` + `rte_ring_enqueue_zc_finish(r, n)` | the same starts + [`EnqueueReservation::slices_mut`] + [`EnqueueReservation::finish`] |
//! | `rte_ring_dequeue_{bulk,burst}_start(r, objs, n)` + `rte_ring_dequeue_finish(r, n)` | [`Consumer::dequeue_bulk_start`] / [`Consumer::dequeue_burst_start`] + [`DequeueReservation::finish`] |
//! | `rte_ring_dequeue_zc_{bulk,burst}_start` + `rte_ring_dequeue_zc_finish(r, n)` | [`Consumer::dequeue_zc_bulk_start`] / [`Consumer::dequeue_zc_burst_start`] + [`DequeueReservation::slices`] + [`DequeueReservation::finish`] |
//! | `rte_ring_reset` | [`Ring::reset`] (`unsafe`: nobody may use the ring meanwhile) |
//! | `rte_ring_dump` | [`Ring::info`], whose [`RingInfo`] implements `Display` |
//!
//! *Bulk* is all or nothing, *burst* takes as many as fit (DPDK's `RTE_RING_QUEUE_FIXED` and
//! `_VARIABLE`). A reservation that is dropped without `finish` finishes with 0 (DPDK requires
//! an explicit finish; here forgetting one cannot wedge the ring).
//!
//! # Sizes
//!
//! `count` must be a power of two in `1 ..= RING_SZ_MASK`; the ring then has `count` slots and
//! holds `count - 1` values (one slot tells full from empty). With `exact_size` any `count` in
//! `1 ..= RING_SZ_MASK / 2` works: the slots are the next power of two above `count` and the
//! ring holds exactly `count` values (DPDK's `RING_F_EXACT_SZ`). Names hold at most
//! `RING_NAMESIZE - 1` = 28 bytes, so that the memzone name `"RG_" + name` fits in 31.
//!
//! # Positions
//!
//! Each side has a head (where the next reservation starts) and a tail (what it has published).
//! Positions are `u32` counters that run freely and wrap at 2^32; a slot is `pos & mask`. Every
//! distance is a wrapping subtraction (`prod.tail - cons.tail` is the count), which is right
//! across the wrap because the capacity is below 2^31. Free space for a producer is
//! `capacity + cons.tail - prod.head`; entries for a consumer are `prod.tail - cons.head`.
//! Positions read from shared memory are only ever used masked, and distances are clamped to the
//! capacity, so a corrupted header can lose values but cannot make a process touch memory
//! outside the slots.
//!
//! # Which mode to pick
//!
//! Processes, unlike DPDK's pinned lcores, get preempted. What that does depends on the mode of
//! the side where it happens:
//!
//! - **`Sp` (SP/SC)**: one owner, no waiting on anyone. A preempted owner delays only its own
//!   values. The fastest mode; use it whenever one thread or process owns the side, as the
//!   client/server rings of `client_server_mp` do.
//! - **`Mp` (MP/MC)**: reservations are a compare-and-swap on the head, but tails are published
//!   in reservation order: each thread waits for the one that reserved before it. If that one is
//!   preempted between reserving and publishing, every later thread of the side spins until it
//!   runs again: one descheduled process can stall all the others for a time slice (one that
//!   dies stalls them for about a millisecond, see below).
//!   Fine when the threads are pinned to their own CPUs and nothing else runs there.
//! - **`MpRts` (relaxed tail sync)**: nobody waits for a predecessor; the tail moves when the
//!   last of the in-flight operations finishes. A preempted thread holds back publication (the
//!   other side sees nothing new until it resumes) but does not make the others spin, unless the
//!   head runs more than `htd_max` ahead of the tail (default capacity / 8), where new
//!   reservations wait, bounding the values held hostage. The best multi-thread choice when
//!   threads may be preempted, e.g. more busy processes than CPUs.
//! - **`MpHts` (head/tail sync)**: one operation at a time per side; the others wait until it
//!   has finished. A preempted thread in the middle of an operation stalls the whole side, as
//!   with `Mp`, but there is no ordering chain, and it is the only multi-thread mode that allows
//!   peek and zero-copy (a reservation may stay open while the caller decides).
//!
//! # A process killed in the middle of an operation
//!
//! Every mode recovers; none waits forever on a dead process. An `Sp` side is taken over by the
//! next claim once the reaper has undone what the dead owner's journaled operation left. A
//! multi-thread operation records itself in its handle's reservation record (two plain stores
//! to a line that only that handle writes: the position and count before the head CAS, idle
//! after the publication; journaled operations, those of rings of mbufs, two more), and every
//! wait for another thread of the side checks, after about a millisecond, whether the owner of
//! what it waits for is alive: a dead one's operation is finished on its behalf by the waiter,
//! by the reaper (`Ring::repair_dead_reservations`), or on an `MpRts` ring by a handle whose
//! operations keep finding a full or empty ring. Slots that a dead producer reserved on an `Mp`
//! or `MpRts` side become a *hole*, published and then skipped by every consumer (no value is
//! taken for a marker; the holes are listed in the header); an `MpHts` reservation is
//! cancelled instead. What a kill at each step leaves and who repairs it is tabled in
//! `ring/resv.rs`. An operation moves at most 2^29 - 1 values on a multi-thread side (a
//! record's count field): a larger burst is cut, a larger bulk refused. A
//! hole counts in [`Ring::count`] until a consumer passes it.
//!
//! # Memory ordering
//!
//! All atomics come from [`crate::sync::atomic`] (loom under `cfg(loom)`). The edges:
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | R0 / A1 | tail store (`update_tail_st`, `update_tail_mt`) | other side's tail load in every head move (`tail_acquire`) | slot writes of a producer are visible to the consumer that sees its tail, and a consumer's slot reads are done before a producer reuses the slots |
//! | R1 / A0, A2 | MP head CAS (success) | MP head load / CAS failure of the next thread of the side | a thread that sees a head sees the other side's tail that justified it, so free space cannot underflow |
//! | R0 / A3 | tail store of the preceding MP thread | MP wait for `tail == old head` | chains the preceding thread's slot accesses into our own R0 (a plain store does not continue a release sequence) |
//! | R-rts1 / A-rts1 | RTS head CAS | RTS head load (`rts_head_wait`) | as R1 / A0 |
//! | R-rts0 / A-rts0, A1 | RTS tail CAS (a release RMW: it continues earlier tail CASes' release sequences) | RTS tail load of the side; other side's A1 | counters stay exact; slot accesses of every finished operation are visible once the tail moves |
//! | R-hts1, R-hts0 / A-hts0 | HTS head CAS, HTS tail store | HTS wait for head == tail | the next operation of the side sees the previous one's effects |
//! | R-hts0 / A1 | HTS tail store | other side's tail load | as R0 / A1 |
//! | C0 / C1 | release of an SP/SC claim (handle drop) | claim CAS in [`Ring::producer`] / [`Ring::consumer`] | a new owner of a single side sees its predecessor's head (read `Relaxed` on the fast path) |
//! | R-init / A-init | `magic` store in [`Ring::init`] | `magic` load in `Ring::attach` | a process that sees the magic sees the whole header |
//! | R-pub / A-pub | `Ring::create` publishes the memzone after [`Ring::init`] (metadata lock release) | `Ring::lookup`'s memzone lookup (lock acquire) | a lookup finds only complete rings: a zone still being built is "not found" |
//! | E0 | `TRYING` record store, sequenced before R1 / R-rts1 / R-hts1 | A0 / A-rts1 / A-hts0 of a repairer | a repairer that sees a head (or HTS word) sees the records of the reservations that made it |
//! | E1 | record stores (`TRYING`, `WRITTEN`, `READY`, `IDLE`: Release) | record loads of a repairer (Acquire) | `WRITTEN` and `READY` come with the slot writes before them (the repairer publishes them with its own release, R0 / R-rts0 / R-hts0); `IDLE` (and so the next `TRYING`) with the tail publication before it |
//! | E2 | record free (member 0, Release) | record take (CAS, Acquire) | a new holder sees `IDLE` |
//! | E3 | (death, seen through the kernel) | record take-over CAS (Acquire) and a SeqCst fence | a repairer sees what the dead process wrote |
//! | H0 / H1 | hole record and mask bit (Release), then the repair's tail publication | consumer's A1, then the mask (Relaxed) and the record | a consumer that sees a tail past a hole knows the hole |

mod error;
mod handle;
mod header;
mod headtail;
mod named;
mod peek;
#[cfg(all(test, not(loom)))]
mod repair_tests;
mod resv;
#[cfg(all(test, not(loom)))]
mod tests;

use std::fmt;
use std::mem::size_of;
use std::sync::Arc;

use bytemuck::Pod;
use tracing::debug;

pub use error::{Empty, Error, Full};
pub use handle::{Consumer, Producer};
pub use named::RING_MZ_PREFIX;
pub(crate) use named::{describe_all, ring_regions};
pub use peek::{DequeueReservation, EnqueueReservation};

use crate::memory::{Fresh, Region};
use crate::sync::atomic::Ordering::Relaxed;
use header::{Mem, RingHeader};

/// Longest ring name plus its terminating NUL (DPDK's `RTE_RING_NAMESIZE`: a memzone name of 32
/// bytes minus the `"RG_"` prefix). Names are at most 28 bytes.
pub const RING_NAMESIZE: usize = 29;
/// Largest slot count (DPDK's `RTE_RING_SZ_MASK`).
pub const RING_SZ_MASK: u32 = 0x7fff_ffff;
/// DPDK's flag bits, as shown by [`Ring::flags`] and accepted by [`RingConfig::from_flags`].
pub mod flags {
    /// `RING_F_SP_ENQ`: single producer.
    pub const SP_ENQ: u32 = 0x0001;
    /// `RING_F_SC_DEQ`: single consumer.
    pub const SC_DEQ: u32 = 0x0002;
    /// `RING_F_EXACT_SZ`: capacity is exactly the requested count.
    pub const EXACT_SZ: u32 = 0x0004;
    /// `RING_F_MP_RTS_ENQ`: multi producer, relaxed tail sync.
    pub const MP_RTS_ENQ: u32 = 0x0008;
    /// `RING_F_MC_RTS_DEQ`: multi consumer, relaxed tail sync.
    pub const MC_RTS_DEQ: u32 = 0x0010;
    /// `RING_F_MP_HTS_ENQ`: multi producer, head/tail sync.
    pub const MP_HTS_ENQ: u32 = 0x0020;
    /// `RING_F_MC_HTS_DEQ`: multi consumer, head/tail sync.
    pub const MC_HTS_DEQ: u32 = 0x0040;
}

/// How the threads of one side (producers or consumers) synchronise; see the module
/// documentation for which to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum SyncMode {
    /// Single producer (or consumer): one handle at a time, no atomic read-modify-write.
    Sp,
    /// Multi producer (consumer): CAS on the head, tails published in order. DPDK's default.
    #[default]
    Mp,
    /// Multi, relaxed tail sync (DPDK's `RING_F_MP_RTS_ENQ` / `RING_F_MC_RTS_DEQ`).
    MpRts,
    /// Multi, head/tail sync: one operation at a time (`RING_F_MP_HTS_ENQ` / `RING_F_MC_HTS_DEQ`).
    MpHts,
}

impl SyncMode {
    /// DPDK's `enum rte_ring_sync_type` value, as stored in the header.
    fn code(self) -> u32 {
        match self {
            SyncMode::Mp => 0,
            SyncMode::Sp => 1,
            SyncMode::MpRts => 2,
            SyncMode::MpHts => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => SyncMode::Mp,
            1 => SyncMode::Sp,
            2 => SyncMode::MpRts,
            3 => SyncMode::MpHts,
            _ => return None,
        })
    }

    /// True for the modes with peek and zero-copy operations (SP/SC and HTS), as in DPDK.
    pub fn supports_peek(self) -> bool {
        matches!(self, SyncMode::Sp | SyncMode::MpHts)
    }
}

impl fmt::Display for SyncMode {
    /// DPDK's names from `rte_ring_dump`: `ST`, `MT`, `MT_RTS`, `MT_HTS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncMode::Sp => "ST",
            SyncMode::Mp => "MT",
            SyncMode::MpRts => "MT_RTS",
            SyncMode::MpHts => "MT_HTS",
        })
    }
}

/// How to build a ring: DPDK's `count` and `flags`, spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Requested size: a power of two (capacity `count - 1`), or with `exact_size` the capacity.
    pub count: u32,
    /// Producer side's mode.
    pub prod: SyncMode,
    /// Consumer side's mode.
    pub cons: SyncMode,
    /// Capacity is exactly `count` (DPDK's `RING_F_EXACT_SZ`).
    pub exact_size: bool,
    /// Head-tail distance for the `MpRts` sides; `None` is DPDK's default, capacity / 8.
    pub htd_max: Option<u32>,
}

impl RingConfig {
    /// `count` slots, multi-producer and multi-consumer (DPDK's `flags = 0`).
    pub fn new(count: u32) -> Self {
        Self {
            count,
            prod: SyncMode::Mp,
            cons: SyncMode::Mp,
            exact_size: false,
            htd_max: None,
        }
    }

    /// The same as DPDK's `rte_ring_create(name, count, socket, flags)` would build.
    ///
    /// # Errors
    /// [`Error::InvalidFlags`] for unknown bits or two modes on one side.
    pub fn from_flags(count: u32, bits: u32) -> Result<Self, Error> {
        let all = flags::SP_ENQ
            | flags::SC_DEQ
            | flags::EXACT_SZ
            | flags::MP_RTS_ENQ
            | flags::MC_RTS_DEQ
            | flags::MP_HTS_ENQ
            | flags::MC_HTS_DEQ;
        let side = |sp: u32, rts: u32, hts: u32| match bits & (sp | rts | hts) {
            0 => Some(SyncMode::Mp),
            b if b == sp => Some(SyncMode::Sp),
            b if b == rts => Some(SyncMode::MpRts),
            b if b == hts => Some(SyncMode::MpHts),
            _ => None,
        };
        let prod = side(flags::SP_ENQ, flags::MP_RTS_ENQ, flags::MP_HTS_ENQ);
        let cons = side(flags::SC_DEQ, flags::MC_RTS_DEQ, flags::MC_HTS_DEQ);
        match (prod, cons) {
            (Some(prod), Some(cons)) if bits & !all == 0 => Ok(Self {
                count,
                prod,
                cons,
                exact_size: bits & flags::EXACT_SZ != 0,
                htd_max: None,
            }),
            _ => Err(Error::InvalidFlags { flags: bits }),
        }
    }

    /// DPDK's flag bits for this configuration.
    pub fn flags(&self) -> u32 {
        let side = |m: SyncMode, sp: u32, rts: u32, hts: u32| match m {
            SyncMode::Mp => 0,
            SyncMode::Sp => sp,
            SyncMode::MpRts => rts,
            SyncMode::MpHts => hts,
        };
        side(
            self.prod,
            flags::SP_ENQ,
            flags::MP_RTS_ENQ,
            flags::MP_HTS_ENQ,
        ) | side(
            self.cons,
            flags::SC_DEQ,
            flags::MC_RTS_DEQ,
            flags::MC_HTS_DEQ,
        ) | if self.exact_size { flags::EXACT_SZ } else { 0 }
    }

    /// Slot count and capacity, or why the count is wrong.
    fn geometry(&self) -> Result<(u32, u32), Error> {
        let count = self.count;
        let bad = Error::InvalidCount { count };
        if self.exact_size {
            if count == 0 || count > RING_SZ_MASK / 2 {
                return Err(bad);
            }
            Ok(((count + 1).next_power_of_two(), count))
        } else {
            if count == 0 || !count.is_power_of_two() || count > RING_SZ_MASK {
                return Err(bad);
            }
            Ok((count, count - 1))
        }
    }
}

/// A handle on a ring in shared memory. Cloning is cheap; every clone and every process sees
/// the same ring. Enqueue and dequeue through [`Ring::producer`] and [`Ring::consumer`].
pub struct Ring<T> {
    mem: Mem<T>,
    capacity: u32,
    prod_mode: SyncMode,
    cons_mode: SyncMode,
    name: Arc<str>,
    /// Where this process's waiters put the values of dead operations they repair.
    orphans: Option<resv::OrphanHook<T>>,
}

impl<T> Clone for Ring<T> {
    fn clone(&self) -> Self {
        Self {
            mem: self.mem.clone(),
            capacity: self.capacity,
            prod_mode: self.prod_mode,
            cons_mode: self.cons_mode,
            name: self.name.clone(),
            orphans: self.orphans.clone(),
        }
    }
}

impl<T> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("prod", &self.prod_mode)
            .field("cons", &self.cons_mode)
            .finish_non_exhaustive()
    }
}

/// The name in a header's NUL-padded buffer, for messages.
fn name_from_bytes(buf: &[u8; 32]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.len() >= RING_NAMESIZE {
        return Err(Error::NameTooLong(name.to_owned()));
    }
    if name.as_bytes().contains(&0) {
        return Err(Error::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Logs a control-path error at debug level before it is returned (style: `fail!`).
fn fail<T>(what: &str, e: Error) -> Result<T, Error> {
    debug!(target: "shoal::ring", "{what}: {e}");
    Err(e)
}

impl<T: Pod> Ring<T> {
    /// Bytes of region a ring of `cfg` holding `T` needs (DPDK's `rte_ring_get_memsize_elem`):
    /// the header, the slots and a guard line, rounded to 128 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidCount`] or [`Error::ElementType`].
    pub fn memsize(cfg: &RingConfig) -> Result<usize, Error> {
        header::check_element::<T>()?;
        let (size, _) = cfg.geometry()?;
        header::memsize(size_of::<T>(), size).ok_or(Error::InvalidCount { count: cfg.count })
    }

    /// Builds an empty ring in `region` (which must be 128-byte aligned and at least
    /// [`Ring::memsize`] bytes) and returns a handle on it. This is the creator's side of
    /// DPDK's `rte_ring_create`; others find the ring with `Ring::attach` on the region that
    /// [`Ring::region`] returns. The region is [`Fresh`]: nobody else can read the header
    /// while it is written.
    ///
    /// # Errors
    /// A bad count, name, element type or `htd_max`, or an unfit region.
    pub fn init(region: Fresh, name: &str, cfg: &RingConfig) -> Result<Self, Error> {
        let checked = (|| {
            header::check_element::<T>()?;
            check_name(name)?;
            let (size, capacity) = cfg.geometry()?;
            let rts = |m: SyncMode| m == SyncMode::MpRts;
            if cfg.htd_max.is_some() && !rts(cfg.prod) && !rts(cfg.cons) {
                return Err(Error::HtdMaxWithoutRts);
            }
            let htd = |m: SyncMode| {
                if rts(m) {
                    cfg.htd_max.unwrap_or(capacity / 8)
                } else {
                    0
                }
            };
            let header = RingHeader::new(
                name.as_bytes(),
                size_of::<T>() as u32,
                size,
                capacity,
                cfg.flags(),
                [(cfg.prod, htd(cfg.prod)), (cfg.cons, htd(cfg.cons))],
            );
            Ok((Mem::init(region, header)?, capacity))
        })();
        let (mem, capacity) = match checked {
            Ok(v) => v,
            Err(e) => return fail(&format!("cannot create ring {name:?}"), e),
        };
        debug!(
            target: "shoal::ring",
            "ring {name:?} created: {} slots of {} bytes, capacity {capacity}, prod {}, cons {}",
            mem.size(),
            size_of::<T>(),
            cfg.prod,
            cfg.cons
        );
        Ok(Self {
            mem,
            capacity,
            prod_mode: cfg.prod,
            cons_mode: cfg.cons,
            name: name.into(),
            orphans: None,
        })
    }

    /// A handle on the ring that [`Ring::init`] built in `region`, in this process or another.
    /// Crate-private: `region` must be a ring's own zone (applications find rings by name,
    /// [`Ring::lookup`]), so that a ring header is never laid over bytes viewed as another type.
    ///
    /// # Errors
    /// No ring header, another layout version, another element size, or a corrupt header.
    pub(crate) fn attach(region: Region) -> Result<Self, Error> {
        let attached = (|| {
            let mem = Mem::<T>::attach(region)?;
            let h = mem.hdr();
            let mode = |code| SyncMode::from_code(code).ok_or(Error::Corrupt("unknown sync mode"));
            let (prod_mode, cons_mode) = (mode(h.prod.own.sync)?, mode(h.cons.own.sync)?);
            let raw = &h.meta.name;
            let end = raw
                .iter()
                .position(|&b| b == 0)
                .filter(|&e| e < RING_NAMESIZE);
            let end = end.ok_or(Error::Corrupt("name is not NUL-terminated"))?;
            let name = std::str::from_utf8(&raw[..end])
                .map_err(|_| Error::Corrupt("name is not UTF-8"))?;
            let capacity = h.meta.capacity;
            Ok(Self {
                name: name.into(),
                capacity,
                prod_mode,
                cons_mode,
                mem,
                orphans: None,
            })
        })();
        match attached {
            Ok(ring) => {
                debug!(target: "shoal::ring", "attached to ring {:?}", ring.name);
                Ok(ring)
            }
            Err(e) => fail("cannot attach to ring", e),
        }
    }

    /// A producer handle: always for a multi-producer side; for an `Sp` side only while no
    /// other handle (in any live process) holds it.
    pub fn producer(&self) -> Option<Producer<T>> {
        Producer::new(self.clone())
    }

    /// A consumer handle: always for a multi-consumer side; for an `Sp` (SC) side only while
    /// no other handle (in any live process) holds it.
    pub fn consumer(&self) -> Option<Consumer<T>> {
        Consumer::new(self.clone())
    }

    /// Values in the ring now (DPDK's `rte_ring_count`). A snapshot: producers and consumers
    /// may change it at once.
    pub fn count(&self) -> u32 {
        let h = self.mem.hdr();
        // Snapshot for the caller; no slot is accessed on the strength of it.
        let prod_tail = headtail::lo(h.prod.tail.load(Relaxed));
        let cons_tail = headtail::lo(h.cons.tail.load(Relaxed));
        (prod_tail.wrapping_sub(cons_tail) & self.mem.mask()).min(self.capacity)
    }

    /// Free slots now (`capacity - count`).
    pub fn free_count(&self) -> u32 {
        self.capacity - self.count()
    }

    /// True when `count == capacity`.
    pub fn is_full(&self) -> bool {
        self.free_count() == 0
    }

    /// True when `count == 0`.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Values the ring can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots in the ring (a power of two; DPDK's `rte_ring_get_size`).
    pub fn size(&self) -> u32 {
        self.mem.size()
    }

    /// Bytes per element (`size_of::<T>()`).
    pub fn elt_size(&self) -> usize {
        size_of::<T>()
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// DPDK's flag bits the ring was built with.
    pub fn flags(&self) -> u32 {
        self.mem.hdr().meta.flags
    }

    /// The producer side's mode.
    pub fn prod_mode(&self) -> SyncMode {
        self.prod_mode
    }

    /// The consumer side's mode.
    pub fn cons_mode(&self) -> SyncMode {
        self.cons_mode
    }

    /// The region holding the ring.
    pub fn region(&self) -> &Region {
        self.mem.region()
    }

    /// The producers' head-tail distance (DPDK's `rte_ring_get_prod_htd_max`).
    ///
    /// # Errors
    /// [`Error::NotRts`] unless the producer side is `MpRts`.
    pub fn prod_htd_max(&self) -> Result<u32, Error> {
        self.htd(true)
    }

    /// The consumers' head-tail distance (DPDK's `rte_ring_get_cons_htd_max`).
    ///
    /// # Errors
    /// [`Error::NotRts`] unless the consumer side is `MpRts`.
    pub fn cons_htd_max(&self) -> Result<u32, Error> {
        self.htd(false)
    }

    /// Sets the producers' head-tail distance (DPDK's `rte_ring_set_prod_htd_max`); any
    /// value is safe, smaller ones wait more.
    ///
    /// # Errors
    /// [`Error::NotRts`] unless the producer side is `MpRts`.
    pub fn set_prod_htd_max(&self, v: u32) -> Result<(), Error> {
        self.set_htd(true, v)
    }

    /// Sets the consumers' head-tail distance (DPDK's `rte_ring_set_cons_htd_max`).
    ///
    /// # Errors
    /// [`Error::NotRts`] unless the consumer side is `MpRts`.
    pub fn set_cons_htd_max(&self, v: u32) -> Result<(), Error> {
        self.set_htd(false, v)
    }

    fn side(&self, prod: bool) -> (&header::HeadTail, SyncMode, &'static str) {
        let (ht, _, _, mode) = self.sides(prod);
        (ht.ht, mode, if prod { "prod" } else { "cons" })
    }

    fn htd(&self, prod: bool) -> Result<u32, Error> {
        match self.side(prod) {
            // A tuning knob; no other memory depends on its value.
            (ht, SyncMode::MpRts, _) => Ok(ht.own.htd_max.load(Relaxed)),
            (_, mode, side) => Err(Error::NotRts { side, mode }),
        }
    }

    fn set_htd(&self, prod: bool, v: u32) -> Result<(), Error> {
        match self.side(prod) {
            // A tuning knob read Relaxed by `rts_head_wait`.
            (ht, SyncMode::MpRts, _) => {
                ht.own.htd_max.store(v, Relaxed);
                Ok(())
            }
            (_, mode, side) => Err(Error::NotRts { side, mode }),
        }
    }

    /// A snapshot of the ring for `shoal info` and telemetry (DPDK's `rte_ring_dump`).
    pub fn info(&self) -> RingInfo {
        let h = self.mem.hdr();
        let side = |ht: &header::HeadTail, mode: SyncMode| {
            let (head, tail) = ht.snapshot();
            let (head_pos, head_cnt, tail_pos, tail_cnt) = match mode {
                SyncMode::Sp | SyncMode::Mp => (headtail::lo(head), None, headtail::lo(tail), None),
                SyncMode::MpRts => (
                    headtail::lo(head),
                    Some(headtail::hi(head)),
                    headtail::lo(tail),
                    Some(headtail::hi(tail)),
                ),
                SyncMode::MpHts => (headtail::hi(tail), None, headtail::lo(tail), None),
            };
            SideInfo {
                mode,
                head: head_pos,
                tail: tail_pos,
                head_cnt,
                tail_cnt,
                // Display only.
                htd_max: (mode == SyncMode::MpRts).then(|| ht.own.htd_max.load(Relaxed)),
                owner: match ht.own.owner.load(Relaxed) {
                    0 => None,
                    raw => Some(crate::sync::MemberId::from_raw(raw)),
                },
            }
        };
        let count = self.count();
        RingInfo {
            name: self.name.to_string(),
            flags: h.meta.flags,
            elt_size: size_of::<T>() as u32,
            size: self.mem.size(),
            capacity: self.capacity,
            count,
            free: self.capacity - count,
            prod: side(&h.prod, self.prod_mode),
            cons: side(&h.cons, self.cons_mode),
        }
    }
}

/// A snapshot of a ring: DPDK's `rte_ring_dump`, as data. `Display` prints DPDK's format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RingInfo {
    /// Name.
    pub name: String,
    /// DPDK flag bits.
    pub flags: u32,
    /// Bytes per element.
    pub elt_size: u32,
    /// Slots.
    pub size: u32,
    /// Usable slots.
    pub capacity: u32,
    /// Values in the ring (DPDK's `used`).
    pub count: u32,
    /// Free slots (DPDK's `avail`).
    pub free: u32,
    /// Producer side.
    pub prod: SideInfo,
    /// Consumer side.
    pub cons: SideInfo,
}

/// One side of a [`RingInfo`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SideInfo {
    /// Sync mode.
    pub mode: SyncMode,
    /// Head position.
    pub head: u32,
    /// Tail position.
    pub tail: u32,
    /// RTS: operations started.
    pub head_cnt: Option<u32>,
    /// RTS: operations finished.
    pub tail_cnt: Option<u32>,
    /// RTS: head-tail distance.
    pub htd_max: Option<u32>,
    /// SP/SC: the member holding the side's handle.
    pub owner: Option<crate::sync::MemberId>,
}

impl fmt::Display for RingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ring <{}>", self.name)?;
        writeln!(f, "  flags={:x}", self.flags)?;
        writeln!(f, "  elt_size={}", self.elt_size)?;
        writeln!(f, "  size={}", self.size)?;
        writeln!(f, "  capacity={}", self.capacity)?;
        writeln!(f, "  used={}", self.count)?;
        writeln!(f, "  avail={}", self.free)?;
        for (prefix, s) in [("cons", &self.cons), ("prod", &self.prod)] {
            writeln!(f, "  {prefix}.sync_type={}", s.mode)?;
            match (s.head_cnt, s.tail_cnt) {
                (Some(hc), Some(tc)) => {
                    writeln!(f, "  {prefix}.head.pos={}", s.head)?;
                    writeln!(f, "  {prefix}.head.cnt={hc}")?;
                    writeln!(f, "  {prefix}.tail.pos={}", s.tail)?;
                    writeln!(f, "  {prefix}.tail.cnt={tc}")?;
                }
                _ => {
                    writeln!(f, "  {prefix}.head={}", s.head)?;
                    writeln!(f, "  {prefix}.tail={}", s.tail)?;
                }
            }
            if let Some(h) = s.htd_max {
                writeln!(f, "  {prefix}.htd_max={h}")?;
            }
            if let Some(owner) = s.owner {
                writeln!(f, "  {prefix}.owner={owner}")?;
            }
        }
        Ok(())
    }
}
