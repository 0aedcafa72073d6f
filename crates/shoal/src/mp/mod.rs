//! IPC between the processes of a group: messages, actions, requests and replies (DPDK's
//! `rte_mp_*`, `lib/eal/common/eal_common_proc.c`).
//!
//! Each process binds a Unix datagram socket in the group's runtime dir: the primary
//! `mp_socket`, each secondary `mp_socket_<pid>_<slot>`. A secondary talks to the primary only; the
//! primary reaches every secondary by sending to each `mp_socket_*` file. A message has an
//! action name, parameter bytes and file descriptors (passed with `SCM_RIGHTS`). Each process
//! runs one IPC thread that receives datagrams and runs the registered actions.
//!
//! | DPDK                        | shoal                                   |
//! |-----------------------------|-----------------------------------------|
//! | `rte_mp_channel_init`       | [`Mp::start`]                           |
//! | `rte_mp_channel_cleanup`    | [`Mp::shutdown`], or drop the last `Mp` |
//! | `struct rte_mp_msg`         | [`Message`]                             |
//! | `struct rte_mp_reply`       | [`Reply`]                               |
//! | `rte_mp_action_register`    | [`Mp::action_register`]                 |
//! | `rte_mp_action_unregister`  | [`Mp::action_unregister`]               |
//! | `rte_mp_sendmsg`            | [`Mp::sendmsg`]                         |
//! | `rte_mp_request_sync`       | [`Mp::request_sync`]                    |
//! | `rte_mp_request_async`      | [`Mp::request_async`], [`Mp::request_future`] |
//! | `rte_mp_reply`              | [`Peer::reply`] (`MP_REP`), [`Peer::ignore`] (`MP_IGN`) |
//!
//! # Differences from DPDK
//! - The datagram format is shoal's own: a versioned header with a magic, checked field by
//!   field (see `wire.rs`). A malformed, truncated or oversized datagram is counted in
//!   [`Stats::malformed`] and dropped; the IPC thread carries on (DPDK's thread stops).
//! - Every datagram carries the sender's credentials (`SO_PASSCRED`); those of another user
//!   are dropped and counted. Socket files have mode 0600.
//! - A request for a name without an action gets an immediate "no handler" answer, which the
//!   requester reports as [`Error::NoHandler`] instead of waiting for its timeout. Before
//!   [`Mp::mark_init_complete`], the answer is DPDK's "ignore me" (`MP_IGN`), so that a
//!   secondary still registering its actions does not fail the primary's broadcasts.
//! - Answers are matched by a request id as well as by name and sender, so requests with the
//!   same name may be in flight together (DPDK refuses that with `EEXIST`). Answers that match
//!   nothing are counted in [`Stats::dropped_unknown_reply`].
//! - A peer whose socket file has no process behind it is skipped, its file removed (by the
//!   primary), and a peer that dies while a request waits for it is noticed within
//!   20 ms and listed in [`Reply::gone`] rather than reported as a timeout.
//! - A timeout names the peers that did not answer ([`Error::Timeout`]).
//! - A synchronous request may be made from an action or an async callback.
//!
//! # Latency
//! A cross-CPU wake-up costs about 25 µs on the machines shoal is measured on, and DPDK pays
//! two per synchronous request (its IPC thread on each side). shoal pays at most one: the
//! synchronous requester sends from a socket of its own and reads the answers itself,
//! polling without blocking for 50 µs (yielding the CPU between tries) before it blocks; and
//! the answering IPC thread keeps polling for 100 µs after each datagram before it blocks,
//! so a steady exchange wakes nobody. Idle, both block: no CPU is used.
//!
//! # Memory orderings
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | S1 | `stopping.swap` in `Mp::shutdown` | `Core::is_stopping` | the stop request only |
//! | I1 | `init_complete.store` in `Mp::mark_init_complete` | `dispatch_action` | actions registered before are seen |
//!
//! Counters and the request id generator are `Relaxed`: they publish nothing.
//!
//! # Example
//! ```
//! use shoal::mp::{Message, Mp, MpConfig, Role};
//! use std::time::Duration;
//!
//! let dir = std::env::temp_dir().join(format!("shoal-mp-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let primary = Mp::start(MpConfig { dir: dir.clone(), role: Role::Primary }).unwrap();
//! primary
//!     .action_register("hello_request", |msg, peer| {
//!         let answer = Message::new(msg.name(), b"hello back").unwrap();
//!         let _ = peer.reply(&answer);
//!     })
//!     .unwrap();
//! // A secondary lives in another process; in this example the same process plays it.
//! let secondary = Mp::start(MpConfig { dir: dir.clone(), role: Role::Secondary }).unwrap();
//! let req = Message::new("hello_request", b"hello").unwrap();
//! let reply = secondary.request_sync(&req, Duration::from_secs(5)).unwrap();
//! assert_eq!(reply.msgs[0].param(), b"hello back");
//! # drop((primary, secondary));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod channel;
mod message;
mod request;
mod stats;
mod wire;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use channel::secondary_socket_name;
pub use channel::{Mp, Peer};
pub use message::{Message, PeerName, Reply};
pub use stats::Stats;

/// Room for an action name, NUL included (DPDK's `RTE_MP_MAX_NAME_LEN`): names have 1 to 63 bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most parameter bytes a message carries (DPDK's `RTE_MP_MAX_PARAM_LEN` is 256).
pub const MAX_PARAM_LEN: usize = 4096;
/// Most file descriptors a message carries (DPDK 24.11's `RTE_MP_MAX_FD_NUM`, the kernel's
/// `SCM_MAX_FD`).
pub const MAX_FDS: usize = crate::sys::unix_dgram::MAX_FDS;
/// The primary's socket file in the runtime dir.
pub const PRIMARY_SOCKET: &str = "mp_socket";
/// The start of each secondary's socket file name, followed by its pid.
pub const SECONDARY_SOCKET_PREFIX: &str = "mp_socket_";

/// Which side of the group this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The process that set the group up; talks to every secondary.
    Primary,
    /// A process that attached to the group; talks to the primary.
    Secondary,
}

/// How to start a process's channel.
#[derive(Clone, Debug)]
pub struct MpConfig {
    /// The group's runtime dir (it exists, with mode 0700).
    pub dir: PathBuf,
    /// This process's role.
    pub role: Role,
}

fn strerror(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

/// Errors of the IPC module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The action name is empty, contains NUL or is too long.
    #[error("IPC action name {0:?} is invalid: it needs 1 to {max} bytes and no NUL", max = MAX_NAME_LEN - 1)]
    InvalidName(String),
    /// The parameter is longer than [`MAX_PARAM_LEN`].
    #[error("IPC parameter of {len} bytes is longer than the {MAX_PARAM_LEN} a message carries")]
    ParamTooLong {
        /// Its length.
        len: usize,
    },
    /// More descriptors than [`MAX_FDS`].
    #[error("{count} file descriptors are more than the {MAX_FDS} one IPC message carries")]
    TooManyFds {
        /// How many were given.
        count: usize,
    },
    /// An action is registered for the name already (DPDK's `EEXIST`).
    #[error("an IPC action is already registered for {0:?}; unregister it first")]
    ActionExists(String),
    /// The runtime dir cannot be resolved or listed.
    #[error("IPC runtime dir {dir:?} is not usable: {}", strerror(*errno))]
    Dir {
        /// The dir.
        dir: PathBuf,
        /// The OS error.
        errno: i32,
    },
    /// The socket path is longer than a Unix socket address holds.
    #[error("IPC socket path {path:?} is too long for a Unix socket (107 bytes); use a shorter runtime dir")]
    PathTooLong {
        /// The path.
        path: PathBuf,
    },
    /// A live process holds this socket already.
    #[error(
        "IPC socket {path:?} is held by a live process (another primary in this runtime dir?)"
    )]
    AddrInUse {
        /// The path.
        path: PathBuf,
    },
    /// Creating, binding or setting up the socket failed.
    #[error("cannot set up the IPC socket {path:?}: {}", strerror(*errno))]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        errno: i32,
    },
    /// The IPC thread could not be started.
    #[error("cannot start the IPC thread: {}", strerror(*errno))]
    Thread {
        /// The OS error.
        errno: i32,
    },
    /// No process holds the primary's socket.
    #[error("no primary process behind {path:?} (is it running? same runtime dir?)")]
    PrimaryGone {
        /// The primary's socket path.
        path: PathBuf,
    },
    /// The peer to answer is gone.
    #[error("IPC peer {peer} is gone")]
    PeerGone {
        /// The peer.
        peer: PeerName,
    },
    /// A send failed.
    #[error("IPC send to {peer} failed: {}", strerror(*errno))]
    Send {
        /// The peer.
        peer: PeerName,
        /// The OS error.
        errno: i32,
    },
    /// [`Peer::reply`] on a one-way message.
    #[error("the message from {0} was not a request; there is nothing to reply to")]
    NotARequest(String),
    /// A reply must carry its request's name.
    #[error("a reply must carry its request's name {expected:?}, not {got:?}")]
    ReplyName {
        /// The request's name.
        expected: String,
        /// The reply's name.
        got: String,
    },
    /// Some peers did not answer in time.
    #[error("IPC request {name:?}: no answer within {timeout:?} from {missing:?}")]
    Timeout {
        /// The request's name.
        name: String,
        /// The timeout that passed.
        timeout: Duration,
        /// The peers that did not answer.
        missing: Vec<PeerName>,
        /// Peers that answered they have no action for the name.
        no_handler: Vec<PeerName>,
        /// What was gathered.
        partial: Box<Reply>,
    },
    /// Some peers have no action for the request's name.
    #[error("IPC request {name:?}: no action registered for it at {peers:?}")]
    NoHandler {
        /// The request's name.
        name: String,
        /// The peers without an action.
        peers: Vec<PeerName>,
        /// What was gathered from the others.
        partial: Box<Reply>,
    },
    /// The channel was shut down.
    #[error("the IPC channel is shut down")]
    Shutdown,
}
