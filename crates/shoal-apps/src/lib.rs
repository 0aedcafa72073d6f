//! Names, shared statistics and helpers used by shoal's sample applications (DPDK's
//! `shared/common.h` of client_server_mp, and a little option parsing).

pub mod args;
pub mod client;
pub mod cs;
pub mod server;

use shoal::memzone::{Memzone, TypedZone};
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
    lines: TypedZone<Line>,
}

impl Lines {
    /// Bytes needed for `n` lines.
    pub const fn bytes(n: usize) -> usize {
        n * std::mem::size_of::<Line>()
    }

    /// Alignment to reserve the memzone with.
    pub const ALIGN: usize = std::mem::align_of::<Line>();

    /// Views a memzone (reserved with [`Lines::ALIGN`]) as lines.
    ///
    /// # Errors
    /// The zone cannot be viewed as lines (see [`Memzone::typed`]).
    pub fn new(mz: Memzone) -> Result<Lines, shoal::memzone::Error> {
        Ok(Lines { lines: mz.typed()? })
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `i`. Panics when `i` is out of range (a programming error: indices are ours).
    pub fn line(&self, i: usize) -> &Line {
        self.lines
            .get(i)
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

/// Bytes from another process, made safe to print on a terminal: control characters
/// (escape sequences among them) and other characters Rust does not consider printable are
/// shown escaped (`\u{1b}`), bytes that are not UTF-8 as `\xNN`, the rest as it is.
pub fn printable(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let quoted = matches!(c, '\\' | '\'' | '"');
            if c.is_control() || (!quoted && c.escape_debug().len() > 1) {
                out.extend(c.escape_debug());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Monotonic nanoseconds (the same clock in every process).
pub fn now_ns() -> u64 {
    shoal::eal::monotonic_ns()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_escapes_controls_and_bytes_that_are_not_utf8() {
        assert_eq!(
            printable(b"plain text, 'quoted' \"too\" \\"),
            "plain text, 'quoted' \"too\" \\"
        );
        assert_eq!(
            printable("caf\u{e9} \u{4f60}\u{597d}".as_bytes()),
            "caf\u{e9} \u{4f60}\u{597d}"
        );
        assert_eq!(
            printable(b"\x1b[2J\x07tab\tnl\n\xc2\x9b\xff"),
            "\\u{1b}[2J\\u{7}tab\\tnl\\n\\u{9b}\\xff"
        );
        assert_eq!(printable("rtl\u{202e}".as_bytes()), "rtl\\u{202e}");
    }
}
