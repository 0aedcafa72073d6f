//! Synchronisation building blocks: the atomic facade, cache padding, back-off, member
//! identities and liveness, and the robust lock that guards shared metadata.
//!
//! Every atomic in shoal comes from [`atomic`], which is `core::sync::atomic` normally and
//! loom's under `cfg(loom)`, so the ring and mempool algorithms can be model checked.

mod lock;
mod members;
mod shared;

// The robust lock and the member registry are the library's own machinery for its shared
// metadata: applications synchronise through rings, mempools and IPC.
pub(crate) use lock::{OwnerLock, SharedPlain, ShmMutex};
#[cfg(test)]
pub(crate) use members::LOCAL_ME;
pub use members::{Liveness, MemberId};
pub(crate) use members::{Local, Members};
pub use shared::{AnyBits, Shared};
/// The crate behind [`AnyBits`], for `#[derive(zerocopy::FromBytes)]` with
/// `#[zerocopy(crate = "shoal::sync::zerocopy")]`.
pub use zerocopy;

/// The atomic types shoal uses: `core`'s, or loom's under `cfg(loom)`.
pub mod atomic {
    #[cfg(not(loom))]
    pub use core::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    #[cfg(loom)]
    pub use loom::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
}

/// Pads and aligns a value to 128 bytes: x86-64's adjacent-line prefetcher pulls cache lines in
/// pairs, so 64 bytes is not enough to keep two writers' data apart (crossbeam's reasoning).
#[cfg_attr(not(loom), derive(zerocopy::FromBytes))]
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Spin, then yield, then sleep: the idle back-off of polling loops and lock waiters, so that
/// busy processes on a 2-CPU machine do not starve each other.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    const SPIN_LIMIT: u32 = 6;
    const YIELD_LIMIT: u32 = 10;

    /// A fresh back-off.
    pub fn new() -> Self {
        Self { step: 0 }
    }

    /// Forget the waiting done so far (call when work arrived).
    pub fn reset(&mut self) {
        self.step = 0;
    }

    /// Wait a little longer than last time.
    pub fn snooze(&mut self) {
        if self.step <= Self::SPIN_LIMIT {
            for _ in 0..(1u32 << self.step) {
                std::hint::spin_loop();
            }
        } else if self.step <= Self::YIELD_LIMIT {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(
                (50u64 << (self.step - Self::YIELD_LIMIT).min(4)).min(1000),
            ));
        }
        self.step = self.step.saturating_add(1).min(Self::YIELD_LIMIT + 8);
    }

    /// True once the back-off has moved past spinning.
    pub fn is_sleeping(&self) -> bool {
        self.step > Self::YIELD_LIMIT
    }
}
