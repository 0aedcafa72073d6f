//! A lock for shared metadata that survives the death of its holder.
//!
//! The lock word holds the [`MemberId`] of the holder (0 = free). A waiter that has waited a
//! while asks the group's [`Members`] oracle whether the holder is still alive (its liveness
//! lock, see [`super::members`]; no pid is involved) and, when it is dead, takes the lock over
//! with a compare-and-swap from the dead holder's id, logging the recovery. The new holder learns
//! that it took the lock over ([`ShmGuard::recovered_from`]), so that a structure whose update
//! can be cut short repairs itself before it is used; structures that need no repair are written
//! so that an update cut short leaves them consistent (entries are published by a final store).
//!
//! A kill at each step leaves: before the CAS, nothing; after it, a lock word naming a dead
//! member, which the next waiter takes over after its bounded wait; after the guarded writes,
//! the same, with the writes complete; after the release store, nothing.
#![allow(unsafe_code)] // UnsafeCell access behind the lock

use std::cell::UnsafeCell;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU64, Ordering};
use super::Shared;
use super::{Backoff, Liveness, MemberId, Members};

/// How long a waiter spins and sleeps before it starts asking whether the holder lives.
const LIVENESS_AFTER: Duration = Duration::from_millis(2);

/// The lock word. `#[repr(C)]`, 16 bytes.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Debug, Default)]
pub struct OwnerLock {
    /// [`MemberId`] of the holder, 0 when free.
    owner: AtomicU64,
    /// How many times a dead holder's lock was taken over (for `shoal info`).
    recoveries: AtomicU64,
}

// SAFETY: repr(C), atomics only, every bit pattern valid.
unsafe impl Shared for OwnerLock {}

impl OwnerLock {
    /// Takes the lock, waiting as long as a live (or undecidable) member holds it. Returns the
    /// dead member it was taken over from, if it was.
    ///
    /// # Panics
    /// When `members` gives this process no identity (`MemberId::NONE`): only members and
    /// guests of a group may take its locks.
    #[inline]
    pub fn lock(&self, members: &dyn Members) -> Option<MemberId> {
        let me = members.me();
        assert!(
            !me.is_none(),
            "a process without a member id took a group lock"
        );
        // A0: pairs with R0 in `unlock`: what the previous holder wrote is visible to us.
        if self
            .owner
            .compare_exchange(0, me.raw(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return None;
        }
        self.lock_contended(me, members)
    }

    /// The waiting part of [`OwnerLock::lock`]: back off, and after a while ask whether the
    /// holder lives.
    #[cold]
    #[inline(never)]
    fn lock_contended(&self, me: MemberId, members: &dyn Members) -> Option<MemberId> {
        let mut backoff = Backoff::new();
        let started = Instant::now();
        loop {
            backoff.snooze();
            // A0, as in `lock`.
            match self.owner.compare_exchange_weak(
                0,
                me.raw(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return None,
                Err(holder) if holder != 0 && started.elapsed() >= LIVENESS_AFTER => {
                    let holder = MemberId::from_raw(holder);
                    if members.liveness(holder) == Liveness::Dead
                        // A0 again: the dead holder's writes, as far as they went, are visible.
                        && self
                            .owner
                            .compare_exchange(
                                holder.raw(),
                                me.raw(),
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        // The holder's death was observed through the kernel (its liveness
                        // lock); this fence orders its writes, as far as they went, before our
                        // reads of the structure it was changing.
                        super::atomic::fence(Ordering::SeqCst);
                        self.recoveries.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            target: "shoal::sync",
                            "took over a lock held by dead member {holder}"
                        );
                        return Some(holder);
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Releases the lock.
    pub fn unlock(&self) {
        // R0: pairs with A0 in `lock`: publishes the guarded writes to the next holder.
        self.owner.store(0, Ordering::Release);
    }

    /// The member holding the lock ([`MemberId::NONE`] when free).
    pub fn holder(&self) -> MemberId {
        MemberId::from_raw(self.owner.load(Ordering::Relaxed))
    }

    /// Sets the lock word as a holder that died would leave it (tests of recovery).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn force_holder(&self, id: MemberId) {
        self.owner.store(id.raw(), Ordering::Relaxed);
    }

    /// How many times a dead holder's lock was taken over.
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }
}

/// A value in shared memory guarded by an [`OwnerLock`].
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
pub struct ShmMutex<T> {
    lock: OwnerLock,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `lock`.
unsafe impl<T: Send> Sync for ShmMutex<T> {}
// SAFETY: repr(C); the lock is Shared and T is required to be Shared-compatible plain data
// (checked by the bound); all mutation of T happens behind the lock.
unsafe impl<T: Send + SharedPlain> Shared for ShmMutex<T> {}

/// Plain data that may sit behind a [`ShmMutex`] in shared memory.
///
/// Every bit pattern being valid is checked ([`super::AnyBits`], derived).
///
/// # Safety
/// `#[repr(C)]`, no pointers or process-local values.
pub unsafe trait SharedPlain: super::AnyBits {}

impl<T> ShmMutex<T> {
    /// Locks and returns a guard giving exclusive access (see [`OwnerLock::lock`]).
    pub fn lock(&self, members: &dyn Members) -> ShmGuard<'_, T> {
        let recovered = self.lock.lock(members);
        ShmGuard {
            mutex: self,
            recovered,
        }
    }

    /// The lock itself (holder pid, recoveries).
    pub fn raw(&self) -> &OwnerLock {
        &self.lock
    }
}

/// Exclusive access to a [`ShmMutex`]'s value; unlocks on drop.
pub struct ShmGuard<'a, T> {
    mutex: &'a ShmMutex<T>,
    recovered: Option<MemberId>,
}

impl<T> ShmGuard<'_, T> {
    /// The dead member this lock was taken over from, if it was: the value may hold an update
    /// that member did not finish.
    #[allow(
        dead_code,
        reason = "no structure behind a ShmMutex needs to repair an update yet"
    )]
    pub fn recovered_from(&self) -> Option<MemberId> {
        self.recovered
    }
}

impl<T> std::ops::Deref for ShmGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other process or thread accesses data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> std::ops::DerefMut for ShmGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for ShmGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.lock.unlock();
    }
}
