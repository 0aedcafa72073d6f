//! IPC counters.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of one process's IPC counters (see [`super::Mp::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent (each destination of a broadcast counts).
    pub sent: u64,
    /// Well-formed datagrams accepted from processes of our user.
    pub received: u64,
    /// Datagrams dropped because they were not well formed: unknown magic or version, a length
    /// that differs from the header's, truncated data or descriptors, a descriptor count that
    /// differs from the header's, or a kind the receiving socket does not expect.
    pub malformed: u64,
    /// Datagrams dropped because the sender ran under another user id, or sent no credentials.
    pub rejected_credentials: u64,
    /// Answers that matched no pending request (late, duplicate, or from a peer not asked).
    pub dropped_unknown_reply: u64,
    /// Messages and requests for a name with no registered action.
    pub unhandled: u64,
    /// Peers found dead: their socket file had no process behind it.
    pub dead_peers: u64,
    /// Requests that ended without an answer from every peer in time.
    pub timeouts: u64,
    /// Actions or async callbacks that panicked (the IPC thread survives them).
    pub handler_panics: u64,
    /// Sends that failed for a reason other than a dead peer.
    pub send_errors: u64,
}

/// The live counters. Each is a statistic only: `Relaxed` everywhere, as no other memory is
/// published through them.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) rejected_credentials: AtomicU64,
    pub(crate) dropped_unknown_reply: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) dead_peers: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) handler_panics: AtomicU64,
    pub(crate) send_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            sent: self.sent.load(Relaxed),
            received: self.received.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            rejected_credentials: self.rejected_credentials.load(Relaxed),
            dropped_unknown_reply: self.dropped_unknown_reply.load(Relaxed),
            unhandled: self.unhandled.load(Relaxed),
            dead_peers: self.dead_peers.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            handler_panics: self.handler_panics.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
        }
    }
}
