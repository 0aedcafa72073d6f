//! Lcore registration of the application's threads (DPDK's EAL threads): the checks against
//! this process's `-l`, and CPU pinning. Which thread is which lcore is kept per membership by
//! [`crate::group`].

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
