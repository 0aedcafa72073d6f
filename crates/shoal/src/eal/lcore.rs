//! Which lcore the calling thread is (DPDK's `rte_lcore_id()`).
#![allow(unsafe_code)] // membership ids are addresses of flags kept alive for ever
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
    /// [`member_id`] of the membership the registration belongs to; [`NO_MEMBER`] when the
    /// thread is not an lcore.
    member: usize,
    lcore: u32,
}

/// Never a membership id (those are addresses of live flags, aligned).
const NO_MEMBER: usize = 1;

impl Current {
    const NONE: Current = Current {
        member: NO_MEMBER,
        lcore: 0,
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

/// The calling thread's lcore id, in whichever group it was registered (DPDK's
/// `rte_lcore_id()`); `None` for a thread that is not an lcore (DPDK's `LCORE_ID_ANY`).
pub fn lcore_id() -> Option<LcoreId> {
    let c = CURRENT.with(|c| c.get());
    if c.member == NO_MEMBER {
        return None;
    }
    // SAFETY: a member id is the address of a membership flag kept alive for ever by KEEP.
    let left = unsafe { &*(c.member as *const AtomicBool) }.load(StdOrdering::Relaxed);
    (!left).then_some(LcoreId(c.lcore))
}

/// The calling thread's lcore in the membership `member`, if it is one. The data path's check:
/// one TLS read and a compare. A membership that ended has its id taken off the pools' views,
/// so its threads stop matching.
#[inline(always)]
pub(crate) fn lcore_in(member: usize) -> Option<u32> {
    let c = CURRENT.with(|c| c.get());
    (c.member == member).then_some(c.lcore)
}

/// An id for this process's membership of its group: the same for every clone of an `Eal`,
/// never reused in the process.
pub(crate) fn member_id(eal: &Eal) -> usize {
    keep(&eal.inner.stop) as usize
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
        let member = keep(&flag) as usize;
        CURRENT.with(|c| {
            c.set(Current {
                member,
                lcore: lcore.0,
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
        if CURRENT.with(|c| c.get().member) == member_id(self) {
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

/// The round trip of one cache line between CPUs `a` and `b`: the median over `rounds` of
/// the time for a store on `a` to be seen on `b` and answered back. The floor under any
/// cross-process handoff between threads on those CPUs (a ring ping-pong costs at least this).
/// Runs two threads pinned to the CPUs for the length of the measurement; the caller's thread
/// and its affinity are untouched. With `a == b` the figure is a handoff through the
/// scheduler, which says little: measure between two CPUs.
///
/// # Errors
/// A CPU that a thread cannot be pinned to.
pub fn cache_line_round_trip(
    a: usize,
    b: usize,
    rounds: u32,
) -> std::io::Result<std::time::Duration> {
    use std::sync::atomic::AtomicU64;
    /// Its own pair of cache lines, so nothing else shares them.
    #[repr(align(128))]
    struct Line(AtomicU64);
    let line = Line(AtomicU64::new(0));
    // Set by a side that gives up (its pin failed): the other side stops waiting.
    let abort = AtomicBool::new(false);
    let rounds = u64::from(rounds.max(1));
    std::thread::scope(|s| {
        let echo = s.spawn(|| -> std::io::Result<()> {
            if let Err(e) = sys::pin_current_thread(b) {
                abort.store(true, StdOrdering::Relaxed);
                return Err(e);
            }
            // Answers each odd value v with v + 1. Acquire/Release: a plain handoff.
            let mut want = 1;
            while want < 2 * rounds && !abort.load(StdOrdering::Relaxed) {
                if line.0.load(StdOrdering::Acquire) == want {
                    line.0.store(want + 1, StdOrdering::Release);
                    want += 2;
                } else {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        });
        let ping = s.spawn(|| -> std::io::Result<Vec<std::time::Duration>> {
            if let Err(e) = sys::pin_current_thread(a) {
                abort.store(true, StdOrdering::Relaxed);
                return Err(e);
            }
            let mut times = Vec::with_capacity(rounds as usize);
            for r in 0..rounds {
                let t = std::time::Instant::now();
                line.0.store(2 * r + 1, StdOrdering::Release);
                while line.0.load(StdOrdering::Acquire) != 2 * r + 2 {
                    if abort.load(StdOrdering::Relaxed) {
                        return Ok(times);
                    }
                    std::hint::spin_loop();
                }
                times.push(t.elapsed());
            }
            Ok(times)
        });
        let panicked = || std::io::Error::other("cache-line probe thread panicked");
        let times = ping.join().map_err(|_| panicked())?;
        echo.join().map_err(|_| panicked())??;
        let mut times = times?;
        times.sort_unstable();
        times
            .get(times.len() / 2)
            .copied()
            .ok_or_else(|| std::io::Error::other("no round trip measured"))
    })
}
