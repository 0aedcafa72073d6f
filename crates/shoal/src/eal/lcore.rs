//! Which lcore the calling thread is (DPDK's `rte_lcore_id()`).
#![allow(unsafe_code)] // the thread-local keeps a raw pointer to the membership flag (no TLS destructor)
//!
//! DPDK's EAL starts one thread per lcore and each knows its id from birth; a thread the
//! application starts itself is "not an EAL thread" and gets `LCORE_ID_ANY`. shoal keeps the
//! same rule: the thread that called [`Eal::init`] is the main lcore, a thread the application
//! starts becomes lcore `L` with [`Eal::register_thread`] (L must be one of the process's
//! lcores, held by no other thread of it), and every other thread is not an lcore. Per-lcore
//! state in shared memory (mempool caches) is used only by the registered thread, which is what
//! makes its lock-free use sound.
//!
//! The registration is per group membership: a thread registered in one group is not an lcore
//! of another, and a registration ends when the membership ends (the [`Eal`] is dropped), so a
//! later member of the group that claims the same lcore id never shares a cache with us.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use super::{Eal, LcoreId};
use crate::memory::header::SegmentHeader;
use crate::sync::atomic::Ordering;
use crate::sys;

/// Errors of thread registration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LcoreError {
    /// The lcore is not one of this process's (`-l`).
    #[error("lcore {0} is not one of this process's lcores (see -l)")]
    NotOurs(u32),
    /// Another thread of this process is already that lcore.
    #[error("lcore {0} is already taken by another thread of this process")]
    Taken(u32),
    /// The process is not a member of its group (an inspector).
    #[error("this process has no slot in the group, so it has no lcores")]
    NoSlot,
}

/// What the calling thread is, as seen by the data path. `Copy`, so that the thread-local needs
/// no destructor and reads cost one TLS access.
#[derive(Clone, Copy)]
struct Current {
    /// [`group_key`] of the group the registration belongs to; 0 = not an lcore.
    group: u64,
    lcore: u32,
    /// The membership's "left" flag (the EAL's stop flag). Kept alive by `KEEP`.
    left: *const AtomicBool,
}

impl Current {
    const NONE: Current = Current {
        group: 0,
        lcore: 0,
        left: std::ptr::null(),
    };
}

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(Current::NONE) };
    /// Unregisters the thread's lcore when the thread ends, so that another thread may take it.
    static GUARD: RefCell<Option<Registration>> = const { RefCell::new(None) };
}

/// One registered (thread, lcore) pair of a membership.
struct Registration {
    left: Arc<AtomicBool>,
    lcore: u32,
    thread: ThreadId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut regs = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        regs.retain(|r| {
            !(Arc::ptr_eq(&r.0, &self.left) && r.1 == self.lcore && r.2 == self.thread)
        });
    }
}

type RegEntry = (Arc<AtomicBool>, u32, ThreadId);

/// Registrations of this process: (membership flag, lcore, thread).
static REGISTERED: Mutex<Vec<RegEntry>> = Mutex::new(Vec::new());
/// Keeps every membership flag a thread-local points to alive for the life of the process.
static KEEP: Mutex<Vec<Arc<AtomicBool>>> = Mutex::new(Vec::new());

/// A number that tells one group instance from another (the primary's pid and the segment's
/// creation time), the same in every process of the group.
pub(crate) fn group_key(hdr: &SegmentHeader) -> u64 {
    let pid = hdr.primary_pid.load(Ordering::Relaxed) as u64;
    let created = hdr.created_ns.load(Ordering::Relaxed);
    // Never 0, which means "no group".
    crate::memory::layout_hash(&[pid, created]) | 1
}

/// The calling thread's lcore id, in whichever group it was registered (DPDK's
/// `rte_lcore_id()`); `None` for a thread that is not an lcore (DPDK's `LCORE_ID_ANY`).
pub fn lcore_id() -> Option<LcoreId> {
    let c = CURRENT.with(|c| c.get());
    (c.group != 0 && !left(&c)).then_some(LcoreId(c.lcore))
}

fn left(c: &Current) -> bool {
    // SAFETY: `left` is null only for NONE (group 0, checked by callers first) and otherwise
    // points into an Arc kept alive forever by KEEP.
    unsafe { &*c.left }.load(StdOrdering::Relaxed)
}

/// The calling thread's lcore in the group `key`, if it is one and the membership is live.
/// The data path's check (one TLS read, two compares).
#[inline]
pub(crate) fn lcore_in(key: u64) -> Option<u32> {
    let c = CURRENT.with(|c| c.get());
    if c.group == key && !left(&c) {
        Some(c.lcore)
    } else {
        None
    }
}

fn keep(flag: &Arc<AtomicBool>) -> *const AtomicBool {
    let mut k = KEEP.lock().unwrap_or_else(|e| e.into_inner());
    if !k.iter().any(|f| Arc::ptr_eq(f, flag)) {
        k.push(flag.clone());
    }
    Arc::as_ptr(flag)
}

impl Eal {
    /// Makes the calling thread lcore `lcore` of this process and pins it to that lcore's CPU,
    /// as DPDK's EAL does for its worker threads. From then on the thread uses `lcore`'s
    /// mempool caches. The registration ends when the thread ends, when it calls
    /// [`Eal::unregister_thread`], or when the process leaves the group.
    ///
    /// # Errors
    /// [`LcoreError::NotOurs`] when `lcore` is not among [`Eal::lcores`], [`LcoreError::Taken`]
    /// when another live thread of this process is already that lcore (a thread that has just
    /// ended is waited for, up to 200 ms).
    pub fn register_thread(&self, lcore: LcoreId) -> Result<(), LcoreError> {
        if self.slot().is_none() {
            return Err(LcoreError::NoSlot);
        }
        if !self.lcores().contains(&lcore) {
            tracing::debug!(target: "shoal::eal", "register_thread: lcore {lcore} is not ours");
            return Err(LcoreError::NotOurs(lcore.0));
        }
        let me = std::thread::current().id();
        let flag = self.inner.stop.clone();
        // A thread that just ended unregisters from its thread-local destructor, which may run
        // a moment after a join returned: give it that moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
        loop {
            let mut regs = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
            regs.retain(|r| !r.0.load(StdOrdering::Relaxed));
            let taken = regs
                .iter()
                .any(|r| Arc::ptr_eq(&r.0, &flag) && r.1 == lcore.0 && r.2 != me);
            if !taken {
                regs.retain(|r| r.2 != me);
                regs.push((flag.clone(), lcore.0, me));
                break;
            }
            drop(regs);
            if std::time::Instant::now() >= deadline {
                tracing::debug!(target: "shoal::eal", "register_thread: lcore {lcore} taken");
                return Err(LcoreError::Taken(lcore.0));
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let cpu = self
            .args()
            .lcores
            .iter()
            .find(|(l, _)| *l == lcore)
            .and_then(|(_, cpu)| *cpu)
            .unwrap_or(lcore.0 as usize % sys::cpu_count());
        if let Err(e) = sys::pin_current_thread(cpu) {
            tracing::warn!(target: "shoal::eal", "could not pin lcore {lcore} to CPU {cpu}: {e}");
        }
        let left = keep(&flag);
        CURRENT.with(|c| {
            c.set(Current {
                group: group_key(self.header()),
                lcore: lcore.0,
                left,
            })
        });
        // Replacing an older registration of this thread drops it, which unregisters it.
        GUARD.with(|g| {
            *g.borrow_mut() = Some(Registration {
                left: flag,
                lcore: lcore.0,
                thread: me,
            })
        });
        Ok(())
    }

    /// Makes the calling thread a non-lcore thread again (it then bypasses mempool caches).
    pub fn unregister_thread(&self) {
        let key = group_key(self.header());
        if CURRENT.with(|c| c.get().group) == key {
            CURRENT.with(|c| c.set(Current::NONE));
            GUARD.with(|g| g.borrow_mut().take());
        }
    }

    /// Registers the thread that initialised the EAL as the main lcore.
    pub(super) fn register_main_thread(&self) {
        if let Err(e) = self.register_thread(self.main_lcore()) {
            tracing::debug!(target: "shoal::eal", "main thread not registered as an lcore: {e}");
        }
    }
}
