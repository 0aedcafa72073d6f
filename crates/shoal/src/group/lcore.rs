//! Which lcore the calling thread is (DPDK's `rte_lcore_id()`), per group membership.
//!
//! DPDK's EAL starts one thread per lcore and each knows its id from birth; a thread the
//! application starts itself is "not an EAL thread" and gets `LCORE_ID_ANY`. shoal keeps the
//! same rule (the EAL registers its main thread and the threads the application asks for), and
//! per-lcore state in shared memory (mempool caches) is used only by the registered thread,
//! which is what makes its lock-free use sound.
//!
//! A registration belongs to one membership (a [`super::Group`]): a thread registered in one
//! group is not an lcore of another, and a registration ends when the membership ends, so a
//! later member of the group that claims the same lcore id never shares a cache with us. The
//! registrations of a membership live in that membership's context; the only process-wide
//! things are the thread-locals (which thread is which lcore) and the counter that numbers
//! memberships.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// An lcore id: names a slot (per-lcore caches, statistics), not a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LcoreId(pub u32);

impl std::fmt::Display for LcoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Another live thread of this process already is that lcore.
#[derive(Debug)]
pub(crate) struct LcoreTaken;

/// Numbers memberships (a counter, never reused; 0 means "no membership").
static NEXT_MEMBERSHIP: AtomicUsize = AtomicUsize::new(1);

/// The lcore registrations of one membership.
#[derive(Debug)]
pub(crate) struct Lcores {
    id: usize,
    /// Set when the membership ends: its registrations stop counting.
    ended: AtomicBool,
    /// (lcore, thread) pairs.
    regs: Mutex<Vec<(u32, ThreadId)>>,
}

impl Lcores {
    pub(super) fn new() -> Lcores {
        Lcores {
            id: NEXT_MEMBERSHIP.fetch_add(1, StdOrdering::Relaxed),
            ended: AtomicBool::new(false),
            regs: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn id(&self) -> usize {
        self.id
    }

    pub(super) fn end(&self) {
        // Relaxed: a process-local flag; a thread that reads it late is still registered for
        // a moment, which `lcore_id` tolerates (the pools' views stop matching first).
        self.ended.store(true, StdOrdering::Relaxed);
        self.regs.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What the calling thread is, as seen by the data path. `Copy`, so that the thread-local needs
/// no destructor and reads cost one TLS access.
#[derive(Clone, Copy)]
struct Current {
    /// The membership the registration belongs to; 0 when the thread is not an lcore.
    member: usize,
    lcore: u32,
}

impl Current {
    const NONE: Current = Current {
        member: 0,
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
    lcores: Arc<Lcores>,
    lcore: u32,
    thread: ThreadId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut regs = self.lcores.regs.lock().unwrap_or_else(|e| e.into_inner());
        regs.retain(|r| !(r.0 == self.lcore && r.1 == self.thread));
    }
}

/// The calling thread's lcore id, in whichever group it was registered (DPDK's
/// `rte_lcore_id()`); `None` for a thread that is not an lcore (DPDK's `LCORE_ID_ANY`).
pub fn lcore_id() -> Option<LcoreId> {
    GUARD.with(|g| {
        g.borrow()
            .as_ref()
            .filter(|r| !r.lcores.ended.load(StdOrdering::Relaxed))
            .map(|r| LcoreId(r.lcore))
    })
}

/// The calling thread's lcore in the membership `member`, if it is one. The data path's check:
/// one TLS read and a compare. A membership that ended has its id taken off the pools' views,
/// so its threads stop matching.
#[inline(always)]
pub(crate) fn lcore_in(member: usize) -> Option<u32> {
    let c = CURRENT.with(|c| c.get());
    (c.member == member && member != 0).then_some(c.lcore)
}

pub(super) fn claim(lcores: &Arc<Lcores>, lcore: LcoreId) -> Result<(), LcoreTaken> {
    let me = std::thread::current().id();
    // A thread that just ended unregisters from its thread-local destructor, which may run a
    // moment after a join returned: give it that moment.
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let mut regs = lcores.regs.lock().unwrap_or_else(|e| e.into_inner());
        if !regs.iter().any(|r| r.0 == lcore.0 && r.1 != me) {
            regs.retain(|r| r.1 != me);
            regs.push((lcore.0, me));
            break;
        }
        drop(regs);
        if Instant::now() >= deadline {
            return Err(LcoreTaken);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    CURRENT.with(|c| {
        c.set(Current {
            member: lcores.id,
            lcore: lcore.0,
        })
    });
    // Replacing an older registration of this thread drops it, which unregisters it.
    GUARD.with(|g| {
        *g.borrow_mut() = Some(Registration {
            lcores: lcores.clone(),
            lcore: lcore.0,
            thread: me,
        })
    });
    Ok(())
}

pub(super) fn release(lcores: &Lcores) {
    if CURRENT.with(|c| c.get().member) == lcores.id {
        CURRENT.with(|c| c.set(Current::NONE));
        GUARD.with(|g| g.borrow_mut().take());
    }
}
