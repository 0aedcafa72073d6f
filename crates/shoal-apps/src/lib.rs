//! Names, shared statistics and helpers used by shoal's sample applications (DPDK's
//! `shared/common.h` of client_server_mp, and a little option parsing).

pub mod args;
pub mod client;
pub mod cs;
pub mod server;

use shoal::memory::Region;
use shoal::sync::atomic::{AtomicU64, Ordering};
use shoal::sync::CachePadded;

/// Counters per cache line in a [`Lines`] block.
pub const COUNTERS_PER_LINE: usize = 16;

/// One cache-line-padded group of counters: written by one process only.
pub type Line = CachePadded<[AtomicU64; COUNTERS_PER_LINE]>;

/// A block of counter lines in a memzone, one line per writer (DPDK client_server_mp puts each
/// writer's statistics in its own cache lines, so writers never share a line).
#[derive(Debug, Clone)]
pub struct Lines {
    region: Region,
}

impl Lines {
    /// Bytes needed for `n` lines.
    pub const fn bytes(n: usize) -> usize {
        n * std::mem::size_of::<Line>()
    }

    /// Views a region as lines.
    pub fn new(region: Region) -> Lines {
        Lines { region }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.region.len() / std::mem::size_of::<Line>()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `i`. Panics when `i` is out of range (a programming error: indices are ours).
    pub fn line(&self, i: usize) -> &Line {
        self.region
            .get(i * std::mem::size_of::<Line>())
            .unwrap_or_else(|| panic!("counter line {i} out of range ({})", self.len()))
    }
}

/// Adds to a counter owned by this process (a relaxed load and store: one writer per line).
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Reads a counter.
#[inline]
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Monotonic nanoseconds (the same clock in every process).
pub fn now_ns() -> u64 {
    shoal::eal::monotonic_ns()
}
