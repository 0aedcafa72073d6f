//! A lock for shared metadata that survives the death of its holder.
//!
//! The lock word holds the pid of the holder (0 = free). A waiter that has waited a while checks
//! whether the holder is still alive (`/proc/PID/stat`, zombies count as dead) and, if not, takes
//! the lock over with a compare-and-swap from the dead pid, logging the recovery. Structures
//! guarded by it are written so that an update cut short leaves them consistent (entries are
//! published by a final store), which makes taking over safe.
#![allow(unsafe_code)] // UnsafeCell access behind the lock

use std::cell::UnsafeCell;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, Ordering};
use super::Backoff;
use crate::memory::Shared;
use crate::sys;

/// How long a waiter spins and sleeps before it starts asking whether the holder lives.
const LIVENESS_AFTER: Duration = Duration::from_millis(2);

/// The lock word. `#[repr(C)]`, 8 bytes.
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[repr(C)]
#[derive(Debug, Default)]
pub struct OwnerLock {
    /// Pid of the holder, 0 when free.
    owner: AtomicU32,
    /// How many times a dead holder's lock was taken over (for `shoal info`).
    recoveries: AtomicU32,
}

// SAFETY: repr(C), atomics only, every bit pattern valid.
unsafe impl Shared for OwnerLock {}

impl OwnerLock {
    /// Takes the lock, waiting as long as a live process holds it.
    pub fn lock(&self) {
        let me = sys::getpid();
        let mut backoff = Backoff::new();
        let started = Instant::now();
        loop {
            // A0: pairs with R0 in `unlock`: what the previous holder wrote is visible to us.
            match self
                .owner
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(holder) if holder != 0 && started.elapsed() >= LIVENESS_AFTER => {
                    if !sys::process_alive(holder, 0) {
                        // A0 again: the dead holder's writes, as far as they went, are visible.
                        if self
                            .owner
                            .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            self.recoveries.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                target: "shoal::sync",
                                "took over a metadata lock held by dead process {holder}"
                            );
                            return;
                        }
                    }
                }
                Err(_) => {}
            }
            backoff.snooze();
        }
    }

    /// Releases the lock.
    pub fn unlock(&self) {
        // R0: pairs with A0 in `lock`: publishes the guarded writes to the next holder.
        self.owner.store(0, Ordering::Release);
    }

    /// The pid holding the lock, 0 when free.
    pub fn holder(&self) -> u32 {
        self.owner.load(Ordering::Relaxed)
    }

    /// How many times a dead holder's lock was taken over.
    pub fn recoveries(&self) -> u32 {
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
/// Every bit pattern being valid is checked ([`crate::memory::AnyBits`], derived).
///
/// # Safety
/// `#[repr(C)]`, no pointers or process-local values.
pub unsafe trait SharedPlain: crate::memory::AnyBits {}

impl<T> ShmMutex<T> {
    /// Locks and returns a guard giving exclusive access.
    pub fn lock(&self) -> ShmGuard<'_, T> {
        self.lock.lock();
        ShmGuard { mutex: self }
    }

    /// The lock itself (holder pid, recoveries).
    pub fn raw(&self) -> &OwnerLock {
        &self.lock
    }
}

/// Exclusive access to a [`ShmMutex`]'s value; unlocks on drop.
pub struct ShmGuard<'a, T> {
    mutex: &'a ShmMutex<T>,
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
