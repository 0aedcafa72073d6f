//! Lcore registration of the application's threads (DPDK's EAL threads): the checks against
//! this process's `-l`, and CPU pinning. Which thread is which lcore is kept per membership by
//! [`crate::group`].

use super::{Eal, LcoreId};
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};

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
        if self.group().claim_lcore(lcore).is_err() {
            tracing::debug!(target: "shoal::eal", "register_thread: lcore {lcore} taken");
            return Err(LcoreError::Taken(lcore.0));
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
        Ok(())
    }

    /// Makes the calling thread a non-lcore thread again (it then bypasses mempool caches).
    pub fn unregister_thread(&self) {
        self.group().release_lcore();
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
