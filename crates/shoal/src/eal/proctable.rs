//! The process table: a slot per member process (identity, type, lcores, heartbeat).
//!
//! A process claims a slot by taking the slot's liveness lock byte (see
//! [`crate::memory::members`]): the kernel lets one process hold it, so no two processes can
//! claim a slot at once, and drops it when the process dies. Lcore claims happen under the
//! metadata lock; the fields are atomics so that tools read them without it.
//!
//! A kill at each step leaves:
//! - after the lock byte, before `CLAIMING`: a free slot whose byte is free again (nothing);
//! - in `CLAIMING` (lcores not yet recorded): a slot that the reaper frees (its byte is free);
//! - `LIVE`: a dead member that the reaper finds by its free byte, whose objects it returns
//!   through the reclaimers the owning layers registered with the [`Group`] (by their owner
//!   tags) before it frees the slot;
//! - during reaping (`DEAD`), a reaper's own death: the slot stays `DEAD` and the next reaper
//!   finishes the job (reclaiming by tag is idempotent).
//!
//! Liveness is decided by the lock byte and the slot's generation, never by a pid: pids are
//! kept for display, with the PID namespace they belong to.

use super::{Error, LcoreId, ProcType};
use crate::group::Group;
use crate::memory::header::{slot_state, ProcSlot, SegmentHeader};
use crate::memory::{Mapping, MAX_LCORES, MAX_PROCS};
use crate::sync::atomic::Ordering;
use crate::sync::{Liveness, MemberId, Members};
use crate::sys;

/// A process as the table records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessInfo {
    /// Slot index.
    pub slot: u32,
    /// Process id, as the process sees itself (in its own PID namespace).
    pub pid: u32,
    /// Inode of the process's PID namespace (0 when unknown).
    pub pid_ns: u64,
    /// True when the process lives in the caller's PID namespace, so `pid` names it here.
    pub same_pid_ns: bool,
    /// `primary` or `secondary`.
    pub proc_type: String,
    /// Lcore ids it holds.
    pub lcores: Vec<u32>,
    /// Whether the process is alive right now (`liveness` is `alive`).
    pub alive: bool,
    /// What its liveness lock says: alive, dead, or unknown (never reclaimed while unknown).
    pub liveness: Liveness,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// How many times the slot has been claimed.
    pub generation: u32,
    /// Its identity in the group.
    pub member: MemberId,
}

pub(crate) fn lcores_of(s: &ProcSlot) -> Vec<u32> {
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

/// The member id of whoever holds slot `i` now.
pub(crate) fn member_of(i: usize, s: &ProcSlot) -> MemberId {
    MemberId::member(i as u32, s.generation.load(Ordering::Acquire))
}

fn info(map: &Mapping, i: usize, s: &ProcSlot, now: u64) -> ProcessInfo {
    let member = member_of(i, s);
    let liveness = map.liveness(member);
    let pid_ns = s.pid_ns.load(Ordering::Relaxed);
    let ours = sys::pid_namespace();
    ProcessInfo {
        slot: i as u32,
        pid: s.pid.load(Ordering::Relaxed),
        pid_ns,
        same_pid_ns: pid_ns != 0 && pid_ns == ours,
        proc_type: match s.proc_type.load(Ordering::Relaxed) {
            1 => "primary".into(),
            _ => "secondary".into(),
        },
        lcores: lcores_of(s),
        alive: liveness == Liveness::Alive,
        liveness,
        heartbeat_age_ms: now.saturating_sub(s.heartbeat_ns.load(Ordering::Relaxed)) / 1_000_000,
        generation: s.generation.load(Ordering::Relaxed),
        member,
    }
}

/// The member (and not yet reaped) processes.
pub(crate) fn list(map: &Mapping, hdr: &SegmentHeader) -> Vec<ProcessInfo> {
    let now = sys::monotonic_ns();
    hdr.procs
        .iter()
        .enumerate()
        // A1: pairs with R1 in `claim`: a slot seen LIVE has its fields filled in.
        .filter(|(_, s)| s.state.load(Ordering::Acquire) != slot_state::FREE)
        .map(|(i, s)| info(map, i, s, now))
        .collect()
}

fn clear(s: &ProcSlot) {
    for w in &s.lcores {
        w.store(0, Ordering::Relaxed);
    }
    s.pid.store(0, Ordering::Relaxed);
    // R2: pairs with the Acquire loads of `state` in `claim`: a claimer that sees FREE sees the
    // slot emptied.
    s.state.store(slot_state::FREE, Ordering::Release);
}

/// Takes a free slot: its lock byte first (one process at a time), then the slot itself.
fn take_slot(map: &Mapping, hdr: &SegmentHeader, proc_type: ProcType) -> Result<u32, Error> {
    let m = map.membership().ok_or(Error::NotASegment)?;
    for (i, s) in hdr.procs.iter().enumerate() {
        if s.state.load(Ordering::Acquire) != slot_state::FREE {
            continue;
        }
        match m.lock_slot(i as u32) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(source) => {
                return Err(Error::Memory {
                    what: "taking a process slot's liveness lock".into(),
                    source,
                })
            }
        }
        // Holding the byte, no other process can be claiming this slot; a reaper may still be
        // emptying it (DEAD), which it ends by storing FREE.
        if s.state.load(Ordering::Acquire) != slot_state::FREE {
            m.unlock_slot(i as u32);
            continue;
        }
        let gen = s.generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        s.pid.store(sys::getpid(), Ordering::Relaxed);
        s.pid_ns.store(sys::pid_namespace(), Ordering::Relaxed);
        s.proc_type.store(proc_type.as_u32(), Ordering::Relaxed);
        let now = sys::monotonic_ns();
        s.heartbeat_ns.store(now, Ordering::Relaxed);
        s.attached_ns.store(now, Ordering::Relaxed);
        for w in &s.lcores {
            w.store(0, Ordering::Relaxed);
        }
        s.state.store(slot_state::CLAIMING, Ordering::Release);
        m.set_me(MemberId::member(i as u32, gen));
        crate::fault::point("proctable.claiming");
        return Ok(i as u32);
    }
    Err(Error::TooManyProcesses { max: MAX_PROCS })
}

/// Gives up a slot taken by `take_slot` (a claim that failed, or a clean exit).
fn drop_slot(map: &Mapping, s: &ProcSlot, slot: u32) {
    clear(s);
    if let Some(m) = map.membership() {
        m.set_me(MemberId::NONE);
        m.unlock_slot(slot);
    }
}

/// Claims a slot and the lcores asked for (or the lowest free lcore id when none was).
pub(crate) fn claim(
    map: &Mapping,
    hdr: &SegmentHeader,
    proc_type: ProcType,
    wanted: &[(LcoreId, Option<usize>)],
) -> Result<(u32, Vec<LcoreId>), Error> {
    let slot = take_slot(map, hdr, proc_type)?;
    let s = &hdr.procs[slot as usize];
    // An lcore of a dead process is free only once the primary's reaper has returned what its
    // caches hold and cleared its slot (every 200 ms): until then the caches are the dead
    // process's, and a new holder would share them with the reaper. Wait for that, as long as
    // a primary lives to do it.
    let deadline = std::time::Instant::now() + REAP_WAIT;
    let result = loop {
        match claim_lcores(map, hdr, slot, wanted) {
            Err(Error::LcoreOfDeadProcess { .. })
                if std::time::Instant::now() < deadline
                    && map.liveness(MemberId::from_raw(hdr.primary_id.load(Ordering::Acquire)))
                        == Liveness::Alive =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => break r,
        }
    };
    match result {
        Ok(lcores) => Ok((slot, lcores)),
        Err(e) => {
            let _guard = hdr.memzones.lock(map);
            drop_slot(map, s, slot);
            Err(e)
        }
    }
}

/// How long a joining process waits for the primary's reaper to free the lcores of a dead
/// process it asked for (the reaper runs every 200 ms; a loaded machine delays it).
const REAP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn claim_lcores(
    map: &Mapping,
    hdr: &SegmentHeader,
    slot: u32,
    wanted: &[(LcoreId, Option<usize>)],
) -> Result<Vec<LcoreId>, Error> {
    let _guard = hdr.memzones.lock(map);
    let mut taken = [0u64; MAX_LCORES / 64];
    let mut owner = [0u32; MAX_LCORES];
    let mut dead = [0u64; MAX_LCORES / 64];
    for (i, s) in hdr.procs.iter().enumerate() {
        // DEAD: a reaper is at work on the slot; its lcores are not free until it is FREE.
        let state = s.state.load(Ordering::Acquire);
        if i == slot as usize || (state != slot_state::LIVE && state != slot_state::DEAD) {
            continue;
        }
        // A dead member's lcores are taken until the reaper has emptied their caches and
        // cleared the slot: a new holder would share the caches with the reaper.
        let gone = state == slot_state::DEAD || map.liveness(member_of(i, s)) == Liveness::Dead;
        let pid = s.pid.load(Ordering::Relaxed);
        for l in lcores_of(s) {
            taken[l as usize / 64] |= 1 << (l % 64);
            if gone {
                dead[l as usize / 64] |= 1 << (l % 64);
            }
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
            let bit = 1 << (l.0 % 64);
            if taken[l.0 as usize / 64] & bit != 0 && dead[l.0 as usize / 64] & bit == 0 {
                return Err(Error::LcoreInUse {
                    lcore: l.0,
                    pid: owner[l.0 as usize],
                });
            }
        }
        if let Some((l, _)) = wanted
            .iter()
            .find(|(l, _)| dead[l.0 as usize / 64] & (1 << (l.0 % 64)) != 0)
        {
            return Err(Error::LcoreOfDeadProcess {
                lcore: l.0,
                pid: owner[l.0 as usize],
            });
        }
        wanted.iter().map(|(l, _)| *l).collect()
    };
    let s = &hdr.procs[slot as usize];
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
    Ok(lcores)
}

/// Updates a slot's heartbeat.
pub(crate) fn beat(hdr: &SegmentHeader, slot: u32) {
    if let Some(s) = hdr.procs.get(slot as usize) {
        s.heartbeat_ns.store(sys::monotonic_ns(), Ordering::Relaxed);
    }
}

/// Releases our own slot on a clean exit, returning what we still hold to the pools.
pub(crate) fn release(group: &Group, slot: u32) {
    let map = &**group.whole().mapping();
    let hdr = group.header();
    let Some(s) = hdr.procs.get(slot as usize) else {
        return;
    };
    group.reclaim(slot, false);
    let _guard = hdr.memzones.lock(map);
    drop_slot(map, s, slot);
}

/// Finds slots whose processes are provably gone, returns their buffers and frees the slots. A
/// slot whose liveness cannot be decided is left alone.
pub(crate) fn reap_dead(group: &Group) -> Vec<ProcessInfo> {
    let map = &**group.whole().mapping();
    let hdr = group.header();
    let now = sys::monotonic_ns();
    let mut reaped = Vec::new();
    for (i, s) in hdr.procs.iter().enumerate() {
        let state = s.state.load(Ordering::Acquire);
        if state == slot_state::FREE {
            continue;
        }
        let member = member_of(i, s);
        if state != slot_state::DEAD && map.liveness(member) != Liveness::Dead {
            continue;
        }
        // Only one reaper wins the slot; a DEAD slot is one whose reaper died: finish its job.
        if state != slot_state::DEAD
            && s.state
                .compare_exchange(state, slot_state::DEAD, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        let mut p = info(map, i, s, now);
        p.alive = false;
        p.liveness = Liveness::Dead;
        group.reclaim(i as u32, true);
        let _guard = hdr.memzones.lock(map);
        // Another reaper may have finished the slot meanwhile.
        if s.state.load(Ordering::Acquire) == slot_state::DEAD
            && s.generation.load(Ordering::Acquire) == member.generation()
        {
            clear(s);
            reaped.push(p);
        }
    }
    reaped
}
