//! The process table: a slot per live process (pid, start time, type, lcores, heartbeat).
//! Claims and releases happen under the metadata lock; the fields are atomics so that tools
//! read them without it.

use super::{Error, LcoreId, ProcType};
use crate::memory::header::{slot_state, ProcSlot, SegmentHeader};
use crate::memory::{Region, MAX_LCORES, MAX_PROCS};
use crate::sync::atomic::Ordering;
use crate::sys;

/// A process as the table records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessInfo {
    /// Slot index.
    pub slot: u32,
    /// Process id.
    pub pid: u32,
    /// `primary` or `secondary`.
    pub proc_type: String,
    /// Lcore ids it holds.
    pub lcores: Vec<u32>,
    /// Whether the process is alive right now.
    pub alive: bool,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// How many times the slot has been claimed.
    pub generation: u32,
}

fn lcores_of(s: &ProcSlot) -> Vec<u32> {
    let mut v = Vec::new();
    for (w, word) in s.lcores.iter().enumerate() {
        let bits = word.load(Ordering::Relaxed);
        for b in 0..64 {
            if bits & (1 << b) != 0 {
                v.push((w * 64 + b) as u32);
            }
        }
    }
    v
}

fn info(i: usize, s: &ProcSlot, now: u64) -> ProcessInfo {
    let pid = s.pid.load(Ordering::Relaxed);
    let start = s.start_time.load(Ordering::Relaxed);
    ProcessInfo {
        slot: i as u32,
        pid,
        proc_type: match s.proc_type.load(Ordering::Relaxed) {
            1 => "primary".into(),
            _ => "secondary".into(),
        },
        lcores: lcores_of(s),
        alive: sys::process_alive(pid, start),
        heartbeat_age_ms: now.saturating_sub(s.heartbeat_ns.load(Ordering::Relaxed)) / 1_000_000,
        generation: s.generation.load(Ordering::Relaxed),
    }
}

/// The live (and not yet reaped) processes.
pub(crate) fn list(hdr: &SegmentHeader) -> Vec<ProcessInfo> {
    let now = sys::monotonic_ns();
    hdr.procs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state.load(Ordering::Acquire) != slot_state::FREE)
        .map(|(i, s)| info(i, s, now))
        .collect()
}

/// Claims a slot and the lcores asked for (or the lowest free lcore id when none was).
pub(crate) fn claim(
    hdr: &SegmentHeader,
    proc_type: ProcType,
    wanted: &[(LcoreId, Option<usize>)],
) -> Result<(u32, Vec<LcoreId>), Error> {
    let _guard = hdr.memzones.lock();
    let mut taken = [0u64; MAX_LCORES / 64];
    let mut owner = [0u32; MAX_LCORES];
    let mut free_slot = None;
    for (i, s) in hdr.procs.iter().enumerate() {
        if s.state.load(Ordering::Relaxed) == slot_state::FREE {
            free_slot = free_slot.or(Some(i));
            continue;
        }
        let pid = s.pid.load(Ordering::Relaxed);
        for l in lcores_of(s) {
            taken[l as usize / 64] |= 1 << (l % 64);
            owner[l as usize] = pid;
        }
    }
    let lcores: Vec<LcoreId> = if wanted.is_empty() {
        let free = (0..MAX_LCORES as u32)
            .find(|&l| taken[l as usize / 64] & (1 << (l % 64)) == 0)
            .ok_or(Error::NoFreeLcore)?;
        vec![LcoreId(free)]
    } else {
        for (l, _) in wanted {
            if taken[l.0 as usize / 64] & (1 << (l.0 % 64)) != 0 {
                return Err(Error::LcoreInUse {
                    lcore: l.0,
                    pid: owner[l.0 as usize],
                });
            }
        }
        wanted.iter().map(|(l, _)| *l).collect()
    };
    let slot = free_slot.ok_or(Error::TooManyProcesses { max: MAX_PROCS })?;
    let s = &hdr.procs[slot];
    let pid = sys::getpid();
    s.pid.store(pid, Ordering::Relaxed);
    s.start_time
        .store(sys::proc_start_time(pid).unwrap_or(0), Ordering::Relaxed);
    s.proc_type.store(proc_type.as_u32(), Ordering::Relaxed);
    let now = sys::monotonic_ns();
    s.heartbeat_ns.store(now, Ordering::Relaxed);
    s.attached_ns.store(now, Ordering::Relaxed);
    s.generation.fetch_add(1, Ordering::Relaxed);
    for (w, word) in s.lcores.iter().enumerate() {
        let mut bits = 0u64;
        for l in &lcores {
            if l.0 as usize / 64 == w {
                bits |= 1 << (l.0 % 64);
            }
        }
        word.store(bits, Ordering::Relaxed);
    }
    // R1: pairs with A1 in `list`: a slot seen LIVE has its fields filled in.
    s.state.store(slot_state::LIVE, Ordering::Release);
    Ok((slot as u32, lcores))
}

/// Updates a slot's heartbeat.
pub(crate) fn beat(hdr: &SegmentHeader, slot: u32) {
    if let Some(s) = hdr.procs.get(slot as usize) {
        s.heartbeat_ns.store(sys::monotonic_ns(), Ordering::Relaxed);
    }
}

fn clear(s: &ProcSlot) {
    for w in &s.lcores {
        w.store(0, Ordering::Relaxed);
    }
    s.pid.store(0, Ordering::Relaxed);
    s.state.store(slot_state::FREE, Ordering::Release);
}

/// Releases our own slot on a clean exit, returning what we still hold to the pools.
pub(crate) fn release(hdr: &SegmentHeader, whole: &Region, slot: u32) {
    let Some(s) = hdr.procs.get(slot as usize) else {
        return;
    };
    crate::mempool::reclaim_slot(whole, slot, false);
    let _guard = hdr.memzones.lock();
    clear(s);
}

/// Finds slots whose processes are gone, returns their buffers and frees the slots.
pub(crate) fn reap_dead(hdr: &SegmentHeader, whole: &Region) -> Vec<ProcessInfo> {
    let now = sys::monotonic_ns();
    let mut reaped = Vec::new();
    for (i, s) in hdr.procs.iter().enumerate() {
        if s.state.load(Ordering::Acquire) != slot_state::LIVE {
            continue;
        }
        let pid = s.pid.load(Ordering::Relaxed);
        if sys::process_alive(pid, s.start_time.load(Ordering::Relaxed)) {
            continue;
        }
        // Only one reaper wins the slot.
        if s.state
            .compare_exchange(
                slot_state::LIVE,
                slot_state::DEAD,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            continue;
        }
        let mut p = info(i, s, now);
        p.alive = false;
        crate::mempool::reclaim_slot(whole, i as u32, true);
        let _guard = hdr.memzones.lock();
        clear(s);
        reaped.push(p);
    }
    reaped
}
