//! Liveness of a group's members through open-file-description locks on the segment file.
//!
//! Byte `s` of the segment file (an advisory lock range, unrelated to the bytes' contents) is
//! locked by the process in process-table slot `s` for as long as it is a member; byte
//! `MAX_PROCS + k` by guest `k` (a tool such as `shoal info` that takes group locks without a
//! slot). The locks are held through a descriptor that this process opened for that purpose
//! only, and tested through another (the one the segment was mapped from), so a process sees its
//! own locks as held too. The kernel drops them when the holder dies: SIGKILL included, zombies
//! included, whatever PID or mount namespace the holder lives in, as long as it opened the same
//! file. A forked child that has not yet called `exec` shares the description and keeps the lock
//! alive until it execs or exits.

use std::fs::File;
use std::io;

use super::header::{SegmentHeader, MAX_PROCS};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Liveness, MemberId};
use crate::sys;

/// Guest lock bytes that follow the member bytes.
pub const MAX_GUESTS: u32 = 64;

/// This process's liveness locks on one segment file.
#[derive(Debug)]
pub(crate) struct Membership {
    /// The descriptor the segment was mapped from: tests other holders' locks.
    check: File,
    /// A description of our own, opened only to hold our lock byte.
    lock: File,
    /// Our identity in the group (0 until we claim a slot or a guest byte).
    me: AtomicU64,
}

impl Membership {
    pub(crate) fn new(check: File, lock: File) -> Membership {
        Membership {
            check,
            lock,
            me: AtomicU64::new(0),
        }
    }

    pub(crate) fn me(&self) -> MemberId {
        MemberId::from_raw(self.me.load(Ordering::Relaxed))
    }

    pub(crate) fn set_me(&self, id: MemberId) {
        // Read back only by this process's threads, which learn of the identity through the
        // synchronisation that handed them the Eal.
        self.me.store(id.raw(), Ordering::Relaxed);
    }

    /// Takes the lock byte of process slot `slot`: true when no other process holds it.
    pub(crate) fn lock_slot(&self, slot: u32) -> io::Result<bool> {
        sys::ofd_try_lock(&self.lock, u64::from(slot), 1)
    }

    /// Drops the lock byte of `slot` (leaving the group cleanly).
    pub(crate) fn unlock_slot(&self, slot: u32) {
        let _ = sys::ofd_unlock(&self.lock, u64::from(slot), 1);
    }

    /// Takes a free guest byte and makes this process that guest.
    pub(crate) fn become_guest(&self) -> io::Result<Option<MemberId>> {
        for k in 0..MAX_GUESTS {
            if sys::ofd_try_lock(&self.lock, (MAX_PROCS as u64) + u64::from(k), 1)? {
                let id = MemberId::guest(k);
                self.set_me(id);
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Gives up guest byte `k` (the identity moved to a slot, or the guest leaves).
    pub(crate) fn leave_guest(&self, id: MemberId) {
        if let Some(k) = id.guest_index() {
            let _ = sys::ofd_unlock(&self.lock, (MAX_PROCS as u64) + u64::from(k), 1);
            if self.me() == id {
                self.set_me(MemberId::NONE);
            }
        }
    }

    fn byte_locked(&self, byte: u64) -> Liveness {
        match sys::ofd_locked(&self.check, byte, 1) {
            Ok(true) => Liveness::Alive,
            Ok(false) => Liveness::Dead,
            Err(e) => {
                tracing::debug!(target: "shoal::memory", "liveness lock byte {byte}: {e}");
                Liveness::Unknown
            }
        }
    }

    /// Whether `id` is alive, given the group's header.
    pub(crate) fn liveness(&self, hdr: &SegmentHeader, id: MemberId) -> Liveness {
        if id.is_none() {
            return Liveness::Dead;
        }
        if id == self.me() {
            return Liveness::Alive;
        }
        if let Some(k) = id.guest_index() {
            if k >= MAX_GUESTS {
                return Liveness::Dead;
            }
            return self.byte_locked(MAX_PROCS as u64 + u64::from(k));
        }
        let Some(slot) = id.slot() else {
            return Liveness::Dead;
        };
        let Some(ps) = hdr.procs.get(slot as usize) else {
            // No process can hold a slot that does not exist.
            return Liveness::Dead;
        };
        // A claim bumps the generation after it took the lock byte, so a generation other than
        // the id's means that member left or was reaped and the slot went to another process.
        if ps.generation.load(Ordering::Acquire) != id.generation() {
            return Liveness::Dead;
        }
        match self.byte_locked(u64::from(slot)) {
            // The byte may be held by a process that is claiming the slot anew and has not yet
            // bumped the generation: then the id's member is reported alive a moment longer,
            // which is the safe mistake.
            Liveness::Alive => Liveness::Alive,
            other => other,
        }
    }
}

/// True once the member `id` no longer holds its slot: the reaper freed it (state `FREE`) or it
/// went to another process (generation moved on). Guests have no slot and nothing to reap.
pub(crate) fn reaped(hdr: &SegmentHeader, id: MemberId) -> bool {
    let Some(slot) = id.slot() else {
        return id.guest_index().is_some();
    };
    let Some(ps) = hdr.procs.get(slot as usize) else {
        return true;
    };
    ps.generation.load(Ordering::Acquire) != id.generation()
        || ps.state.load(Ordering::Acquire) == super::header::slot_state::FREE
}
