//! The channel: the process's socket, its IPC thread, actions and peers.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::message::{check_name, Message, PeerName, Reply};
use super::request::{Done, PendingTable};
use super::stats::{Counters, Stats};
use super::wire::{self, Kind};
use super::{Error, MpConfig, Role, PRIMARY_SOCKET, SECONDARY_SOCKET_PREFIX};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sys::unix_dgram::{self as dgram, Addr};

/// How long the IPC thread keeps polling without blocking after it handled a datagram: a peer
/// that answers within this window finds it awake, and a request/reply exchange pays no
/// cross-CPU wake-up (about 25 µs on the reference machines). Idle, the thread blocks.
const POLL_WINDOW: Duration = Duration::from_micros(100);
/// How long a replier retries a peer whose receive queue is full before giving up.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) type Action = Arc<dyn Fn(Message, Peer) + Send + Sync>;

/// A destination: a peer's socket file in the runtime dir.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: PeerName,
    pub(crate) addr: Addr,
}

/// A datagram that passed the credential and format checks.
pub(crate) struct Incoming {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) param: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) from: Addr,
    pub(crate) peer: PeerName,
    pub(crate) pid: i32,
}

impl Incoming {
    pub(crate) fn into_message(self) -> Message {
        Message::received(&self.name, &self.param, self.fds, self.peer)
    }
}

/// What became of one send.
pub(crate) enum Sent {
    Ok,
    /// The socket file has no process behind it, or is gone.
    Gone,
    /// Any other failure, with its errno.
    Failed(i32),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Actions and callbacks run outside every lock, so a poisoned lock only means a panic in
    // our own short critical sections; the data is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State shared by the handles, the IPC thread and the peers handed to actions.
pub(crate) struct Core {
    pub(crate) role: Role,
    pub(crate) dir: PathBuf,
    pub(crate) own_path: PathBuf,
    own_file: (u64, u64),
    pub(crate) sock: OwnedFd,
    uid: u32,
    actions: RwLock<HashMap<String, Action>>,
    pub(crate) pending: Mutex<PendingTable>,
    pool: Mutex<Vec<OwnedFd>>,
    next_id: AtomicU64,
    pub(crate) counters: Counters,
    init_complete: AtomicBool,
    stopping: AtomicBool,
    kick_tx: UnixDatagram,
}

impl Core {
    pub(crate) fn primary_target(&self) -> Target {
        Target {
            name: PeerName(PRIMARY_SOCKET.into()),
            addr: Addr::Path(self.dir.join(PRIMARY_SOCKET)),
        }
    }

    /// Where a request or message goes: the primary from a secondary; every secondary's socket
    /// from the primary (DPDK's `mp_socket_*` filter).
    pub(crate) fn targets(&self) -> Result<Vec<Target>, Error> {
        if self.role == Role::Secondary {
            return Ok(vec![self.primary_target()]);
        }
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::Dir {
            dir: self.dir.clone(),
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        let mut out: Vec<Target> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.len() > SECONDARY_SOCKET_PREFIX.len() && n.starts_with(SECONDARY_SOCKET_PREFIX)
            })
            .map(|n| Target {
                addr: Addr::Path(self.dir.join(&n)),
                name: PeerName(n),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn new_id(&self) -> u64 {
        // Uniqueness only: the read-modify-write gives each caller its own value.
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn is_stopping(&self) -> bool {
        // S1 (Acquire): pairs with the swap in `Mp::shutdown`; only the flag is published.
        self.stopping.load(Ordering::Acquire)
    }

    /// Wakes the IPC thread (blocked in `ppoll`) so that it looks at its state again.
    pub(crate) fn kick(&self) {
        // A full kick queue already holds a wake-up; nothing to do then.
        let _ = self.kick_tx.send(&[1]);
    }

    /// Sends one datagram, retrying a full receive queue until `deadline`.
    pub(crate) fn send_one(
        &self,
        from: BorrowedFd<'_>,
        to: &Addr,
        bytes: &[u8],
        fds: &[OwnedFd],
        deadline: Instant,
    ) -> Sent {
        let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let mut tries = 0u32;
        loop {
            match dgram::send(from, to, bytes, &fds, None) {
                Ok(()) => {
                    Counters::bump(&self.counters.sent);
                    return Sent::Ok;
                }
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    libc::ECONNREFUSED | libc::ENOENT => return Sent::Gone,
                    libc::EAGAIN | libc::ENOBUFS if Instant::now() < deadline => {
                        // The peer's queue is full (net.unix.max_dgram_qlen): let it drain.
                        tries += 1;
                        if tries < 16 {
                            thread::yield_now();
                        } else {
                            thread::sleep(Duration::from_micros(
                                50 << tries.min(20).saturating_sub(16),
                            ));
                        }
                    }
                    errno => {
                        Counters::bump(&self.counters.send_errors);
                        tracing::warn!(to = ?to, error = %e, "IPC send failed");
                        return Sent::Failed(errno);
                    }
                },
            }
        }
    }

    /// Counts a dead peer and, in the primary, removes its socket file (DPDK does the same on
    /// `ECONNREFUSED`).
    pub(crate) fn peer_gone(&self, t: &Target) {
        Counters::bump(&self.counters.dead_peers);
        if self.role == Role::Primary && t.name.as_str().starts_with(SECONDARY_SOCKET_PREFIX) {
            if let Addr::Path(p) = &t.addr {
                match std::fs::remove_file(p) {
                    Ok(()) => {
                        tracing::info!(peer = %t.name, "removed the socket of a dead secondary")
                    }
                    Err(e) => {
                        tracing::debug!(peer = %t.name, error = %e, "dead secondary's socket already gone")
                    }
                }
                return;
            }
        }
        tracing::info!(peer = %t.name, "IPC peer is gone");
    }

    /// Whether a process still holds the socket at `addr` bound.
    pub(crate) fn is_alive(addr: &Addr) -> bool {
        let Addr::Path(p) = addr else { return true };
        let Ok(probe) = UnixDatagram::unbound() else {
            return true;
        };
        match probe.connect(p) {
            Ok(()) => true,
            Err(e) => !matches!(
                e.raw_os_error(),
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
            ),
        }
    }

    pub(crate) fn take_socket(&self) -> Result<OwnedFd, Error> {
        if let Some(s) = lock(&self.pool).pop() {
            return Ok(s);
        }
        let s = dgram::socket().map_err(|e| self.socket_error(e))?;
        dgram::autobind(s.as_fd()).map_err(|e| self.socket_error(e))?;
        Ok(s)
    }

    pub(crate) fn give_socket(&self, s: OwnedFd) {
        let mut pool = lock(&self.pool);
        if pool.len() < 8 {
            pool.push(s);
        }
    }

    fn socket_error(&self, e: std::io::Error) -> Error {
        tracing::debug!(error = %e, "cannot create an IPC socket");
        Error::Socket {
            path: self.own_path.clone(),
            errno: e.raw_os_error().unwrap_or(0),
        }
    }

    /// Receives one datagram from `fd` and checks it. `Ok(None)`: it was dropped and counted.
    pub(crate) fn receive(
        &self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        wait: bool,
    ) -> std::io::Result<Option<Incoming>> {
        let d = dgram::recv(fd, buf, wait)?;
        let creds = match d.creds {
            Some(c) if c.uid == self.uid => c,
            other => {
                Counters::bump(&self.counters.rejected_credentials);
                tracing::warn!(creds = ?other, from = ?d.from, "dropped an IPC datagram from another user");
                return Ok(None);
            }
        };
        if d.truncated {
            Counters::bump(&self.counters.malformed);
            tracing::debug!(from = ?d.from, "dropped a truncated IPC datagram");
            return Ok(None);
        }
        let p = match wire::parse(&buf[..d.len]) {
            Ok(p) => p,
            Err(e) => {
                Counters::bump(&self.counters.malformed);
                tracing::debug!(from = ?d.from, error = ?e, len = d.len, "dropped a malformed IPC datagram");
                return Ok(None);
            }
        };
        if p.nb_fds != d.fds.len() {
            Counters::bump(&self.counters.malformed);
            tracing::debug!(
                announced = p.nb_fds,
                got = d.fds.len(),
                "dropped an IPC datagram: descriptor count"
            );
            return Ok(None);
        }
        Counters::bump(&self.counters.received);
        let peer = peer_name(&d.from);
        Ok(Some(Incoming {
            kind: p.kind,
            id: p.id,
            name: p.name.to_owned(),
            param: p.param.to_vec(),
            fds: d.fds,
            from: d.from,
            peer,
            pid: creds.pid,
        }))
    }

    /// Sends an answer (REP, IGN or NO_HANDLER) from the process's own socket, whose name is
    /// what the requester matches answers against.
    pub(crate) fn answer(
        &self,
        kind: Kind,
        id: u64,
        name: &str,
        param: &[u8],
        fds: &[OwnedFd],
        to: &Addr,
    ) -> Sent {
        let mut bytes = Vec::with_capacity(wire::HEADER_LEN + name.len() + param.len());
        wire::emit(kind, id, name, param, fds.len(), &mut bytes);
        self.send_one(
            self.sock.as_fd(),
            to,
            &bytes,
            fds,
            Instant::now() + SEND_TIMEOUT,
        )
    }

    fn dispatch(self: &Arc<Self>, inc: Incoming) {
        match inc.kind {
            Kind::Msg | Kind::Req => self.dispatch_action(inc),
            Kind::Rep | Kind::Ign | Kind::NoHandler => self.async_answer(inc),
        }
    }

    fn dispatch_action(self: &Arc<Self>, inc: Incoming) {
        let action = self
            .actions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&inc.name)
            .cloned();
        let Some(action) = action else {
            Counters::bump(&self.counters.unhandled);
            if inc.kind == Kind::Req {
                // I1 (Acquire): pairs with the Release in `mark_init_complete`: every action
                // registered before that call is in the table we just read.
                let kind = if self.init_complete.load(Ordering::Acquire) {
                    Kind::NoHandler
                } else {
                    Kind::Ign
                };
                tracing::debug!(name = %inc.name, from = %inc.peer, answer = ?kind, "no action for IPC request");
                self.answer(kind, inc.id, &inc.name, &[], &[], &inc.from);
            } else {
                tracing::warn!(name = %inc.name, from = %inc.peer, "no action for IPC message");
            }
            return;
        };
        let peer = Peer {
            core: Arc::clone(self),
            addr: inc.from.clone(),
            name: inc.peer.clone(),
            pid: inc.pid,
            request: (inc.kind == Kind::Req).then(|| (inc.id, inc.name.clone())),
        };
        let name = inc.name.clone();
        let msg = inc.into_message();
        if catch_unwind(AssertUnwindSafe(|| action(msg, peer))).is_err() {
            Counters::bump(&self.counters.handler_panics);
            tracing::error!(name = %name, "IPC action panicked");
        }
    }

    pub(crate) fn run_callback(&self, done: Done, result: Result<Reply, Error>) {
        if catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
            Counters::bump(&self.counters.handler_panics);
            tracing::error!("IPC async request callback panicked");
        }
    }
}

/// The peer name for an address: the socket file's name, `@name` for an abstract address.
fn peer_name(addr: &Addr) -> PeerName {
    PeerName(match addr {
        Addr::Path(p) => p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        Addr::Abstract(n) => format!("@{}", String::from_utf8_lossy(n)),
        Addr::Unnamed => "(unnamed)".into(),
    })
}

/// The IPC thread: receives, dispatches, expires async requests; polls briefly after activity,
/// then blocks in `ppoll` until a datagram, a kick or the next async deadline.
fn run(core: Arc<Core>, kick_rx: UnixDatagram) {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM + 1];
    let mut busy_until: Option<Instant> = None;
    while !core.is_stopping() {
        let mut got_one = false;
        match core.receive(core.sock.as_fd(), &mut buf, false) {
            Ok(got) => {
                if let Some(inc) = got {
                    core.dispatch(inc);
                }
                busy_until = Some(Instant::now() + POLL_WINDOW);
                got_one = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(error = %e, "IPC receive failed");
                thread::sleep(Duration::from_millis(1));
            }
        }
        let now = Instant::now();
        let wake_at = core.service_async(now);
        if got_one {
            continue; // drain the queue before waiting
        }
        if let Some(until) = busy_until {
            if now < until {
                thread::yield_now();
                continue;
            }
            busy_until = None;
        }
        let timeout = wake_at.map(|t| t.saturating_duration_since(now));
        match dgram::poll_readable(&[core.sock.as_fd(), kick_rx.as_fd()], timeout) {
            Ok(mask) if mask & 2 != 0 => while kick_rx.recv(&mut [0u8; 16]).is_ok() {},
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "IPC poll failed");
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    core.close_pending();
    tracing::debug!(path = %core.own_path.display(), "IPC thread stopped");
}

/// The sender of a message or request, handed to the action: answer it with
/// [`Peer::reply`] (DPDK's `rte_mp_reply`). A `Peer` may be kept and answered later, from
/// any thread.
#[derive(Clone)]
pub struct Peer {
    core: Arc<Core>,
    addr: Addr,
    name: PeerName,
    pid: i32,
    request: Option<(u64, String)>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("request", &self.request)
            .finish()
    }
}

impl Peer {
    /// The sender's socket name: `mp_socket`, `mp_socket_<pid>`, or `@<name>` for the socket a
    /// process sends synchronous requests from.
    pub fn name(&self) -> &PeerName {
        &self.name
    }

    /// The sender's process id, as the kernel reported it with the datagram.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True if the message was a request, which wants an answer.
    pub fn is_request(&self) -> bool {
        self.request.is_some()
    }

    fn request(&self) -> Result<(u64, &str), Error> {
        match &self.request {
            Some((id, name)) => Ok((*id, name)),
            None => {
                tracing::debug!(peer = %self.name, "reply to a one-way message");
                Err(Error::NotARequest(self.name.to_string()))
            }
        }
    }

    fn send(
        &self,
        kind: Kind,
        id: u64,
        msg_name: &str,
        param: &[u8],
        fds: &[OwnedFd],
    ) -> Result<(), Error> {
        if self.core.is_stopping() {
            return Err(Error::Shutdown);
        }
        match self.core.answer(kind, id, msg_name, param, fds, &self.addr) {
            Sent::Ok => Ok(()),
            Sent::Gone => {
                tracing::debug!(peer = %self.name, "reply to a peer that is gone");
                Err(Error::PeerGone {
                    peer: self.name.clone(),
                })
            }
            Sent::Failed(errno) => Err(Error::Send {
                peer: self.name.clone(),
                errno,
            }),
        }
    }

    /// Answers the request (DPDK's `rte_mp_reply`). The reply must carry the request's name.
    ///
    /// # Errors
    /// [`Error::NotARequest`] for a one-way message; [`Error::ReplyName`] if `msg` has another
    /// name; [`Error::PeerGone`] if the requester died; [`Error::Send`] on other failures.
    pub fn reply(&self, msg: &Message) -> Result<(), Error> {
        let (id, name) = self.request()?;
        if msg.name() != name {
            tracing::debug!(
                expected = name,
                got = msg.name(),
                "reply name differs from the request's"
            );
            return Err(Error::ReplyName {
                expected: name.to_owned(),
                got: msg.name().to_owned(),
            });
        }
        self.send(Kind::Rep, id, name, msg.param(), msg.fds())
    }

    /// Tells the requester not to count this process (DPDK's `MP_IGN`): its `nb_sent` drops
    /// by one instead of it waiting for an answer.
    ///
    /// # Errors
    /// As [`Peer::reply`].
    pub fn ignore(&self) -> Result<(), Error> {
        let (id, name) = self.request()?;
        self.send(Kind::Ign, id, name, &[], &[])
    }
}

struct Handle {
    core: Arc<Core>,
    thread: Mutex<Option<(ThreadId, JoinHandle<()>)>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Handle {
    fn shutdown(&self) {
        // S1 (AcqRel): the swap decides which caller stops the channel; the IPC thread's
        // Acquire load pairs with it.
        if self.core.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.core.kick();
        if let Some((id, join)) = lock(&self.thread).take() {
            if id != thread::current().id() && join.join().is_err() {
                tracing::error!("IPC thread panicked");
            }
        }
        // Actions may hold `Mp` handles; dropping them here breaks such cycles.
        self.core
            .actions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        lock(&self.core.pool).clear();
        let ours = std::fs::symlink_metadata(&self.core.own_path).map(|m| (m.dev(), m.ino()));
        if ours.ok() == Some(self.core.own_file) {
            let _ = std::fs::remove_file(&self.core.own_path);
        }
        tracing::debug!(path = %self.core.own_path.display(), "IPC channel shut down");
    }
}

/// One process's IPC channel (DPDK's `rte_mp_*` state): its socket in the group's runtime
/// dir, its IPC thread and its actions. Cheap to clone; the channel stops when the last clone
/// drops or on [`Mp::shutdown`].
#[derive(Clone)]
pub struct Mp {
    handle: Arc<Handle>,
}

impl fmt::Debug for Mp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.handle.core;
        f.debug_struct("Mp")
            .field("role", &c.role)
            .field("socket", &c.own_path)
            .finish()
    }
}

/// `mp_socket` for the primary; `mp_socket_<pid>` for a secondary, or `mp_socket_<pid>_<slot>`
/// when it has a process-table slot: pids repeat across PID namespaces (two containers' clients
/// may both be pid 1), slots of live members never do.
pub(crate) fn socket_name(role: Role, slot: Option<u32>) -> String {
    match (role, slot) {
        (Role::Primary, _) => PRIMARY_SOCKET.to_owned(),
        (Role::Secondary, None) => format!("{SECONDARY_SOCKET_PREFIX}{}", std::process::id()),
        (Role::Secondary, Some(s)) => secondary_socket_name(std::process::id(), s),
    }
}

/// The socket name of the member secondary with `pid` (in its own PID namespace) in `slot`.
pub(crate) fn secondary_socket_name(pid: u32, slot: u32) -> String {
    format!("{SECONDARY_SOCKET_PREFIX}{pid}_{slot}")
}

/// Binds `fd` at `path`, replacing a stale socket file that no process holds any more.
fn bind_own(fd: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::Socket {
        path: path.to_owned(),
        errno: e.raw_os_error().unwrap_or(0),
    };
    match dgram::bind(fd, path) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            if Core::is_alive(&Addr::Path(path.to_owned())) {
                tracing::debug!(path = %path.display(), "IPC socket held by a live process");
                return Err(Error::AddrInUse {
                    path: path.to_owned(),
                });
            }
            tracing::debug!(path = %path.display(), "replacing a stale IPC socket");
            std::fs::remove_file(path).map_err(err)?;
            dgram::bind(fd, path).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

impl Mp {
    /// Opens the process's IPC channel: binds `<dir>/mp_socket` (primary) or
    /// `<dir>/mp_socket_<pid>` (secondary) with mode 0600 and starts the IPC thread.
    ///
    /// Until [`Mp::mark_init_complete`] is called, requests for a name with no action are
    /// answered "ignore me" (DPDK's behaviour during initialisation) rather than "no handler".
    ///
    /// # Errors
    /// [`Error::Dir`] if `dir` cannot be resolved; [`Error::PathTooLong`] if the socket path
    /// does not fit a `sockaddr_un`; [`Error::AddrInUse`] if a live process holds the socket;
    /// [`Error::Socket`] if the socket cannot be created or bound; [`Error::Thread`] if the
    /// thread cannot start.
    pub fn start(cfg: MpConfig) -> Result<Mp, Error> {
        Self::start_as(cfg, None)
    }

    /// As [`Mp::start`], for the member in process-table slot `slot`: a secondary's socket is
    /// then `<dir>/mp_socket_<pid>_<slot>`, unique among live members whatever their PID
    /// namespaces.
    ///
    /// # Errors
    /// As [`Mp::start`].
    pub fn start_as(cfg: MpConfig, slot: Option<u32>) -> Result<Mp, Error> {
        let dir = cfg.dir.canonicalize().map_err(|e| {
            tracing::debug!(dir = %cfg.dir.display(), error = %e, "IPC runtime dir unusable");
            Error::Dir {
                dir: cfg.dir.clone(),
                errno: e.raw_os_error().unwrap_or(0),
            }
        })?;
        let own_path = dir.join(socket_name(cfg.role, slot));
        let longest = dir.join(format!(
            "{SECONDARY_SOCKET_PREFIX}{}_{}",
            u32::MAX,
            u16::MAX
        ));
        if longest.as_os_str().len() > dgram::MAX_PATH_LEN {
            tracing::debug!(path = %own_path.display(), "IPC socket path too long");
            return Err(Error::PathTooLong { path: own_path });
        }
        let sock_err = |e: std::io::Error| Error::Socket {
            path: own_path.clone(),
            errno: e.raw_os_error().unwrap_or(0),
        };
        let sock = dgram::socket().map_err(sock_err)?;
        bind_own(sock.as_fd(), &own_path)?;
        std::fs::set_permissions(&own_path, std::fs::Permissions::from_mode(0o600))
            .map_err(sock_err)?;
        let meta = std::fs::symlink_metadata(&own_path).map_err(sock_err)?;
        let (kick_tx, kick_rx) = UnixDatagram::pair().map_err(sock_err)?;
        kick_tx.set_nonblocking(true).map_err(sock_err)?;
        kick_rx.set_nonblocking(true).map_err(sock_err)?;
        let core = Arc::new(Core {
            role: cfg.role,
            dir,
            own_path: own_path.clone(),
            own_file: (meta.dev(), meta.ino()),
            sock,
            uid: dgram::uid(),
            actions: RwLock::new(HashMap::new()),
            pending: Mutex::new(PendingTable::default()),
            pool: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            init_complete: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            kick_tx,
        });
        let thread_core = Arc::clone(&core);
        let join = thread::Builder::new()
            .name("shoal-mp".into())
            .spawn(move || run(thread_core, kick_rx));
        let join = match join {
            Ok(j) => j,
            Err(e) => {
                let _ = std::fs::remove_file(&own_path);
                tracing::debug!(error = %e, "cannot start the IPC thread");
                return Err(Error::Thread {
                    errno: e.raw_os_error().unwrap_or(0),
                });
            }
        };
        tracing::debug!(path = %own_path.display(), role = ?cfg.role, "IPC channel started");
        let thread = Mutex::new(Some((join.thread().id(), join)));
        Ok(Mp {
            handle: Arc::new(Handle { core, thread }),
        })
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.handle.core
    }

    /// This process's role.
    pub fn role(&self) -> Role {
        self.core().role
    }

    /// This process's socket file.
    pub fn socket_path(&self) -> &Path {
        &self.core().own_path
    }

    /// The runtime dir (canonical).
    pub fn dir(&self) -> &Path {
        &self.core().dir
    }

    /// Declares initialisation finished: from now on a request for a name with no action is
    /// answered "no handler" (an error at the requester) instead of "ignore me".
    pub fn mark_init_complete(&self) {
        // I1 (Release): pairs with the Acquire in `dispatch_action`.
        self.core().init_complete.store(true, Ordering::Release);
    }

    /// Registers `action` for messages and requests named `name` (DPDK's
    /// `rte_mp_action_register`). It runs on the IPC thread and gets the message and the
    /// [`Peer`] to answer. A panic in it is caught and counted.
    ///
    /// An action that holds an `Mp` clone keeps the channel alive until [`Mp::shutdown`].
    ///
    /// # Errors
    /// [`Error::InvalidName`]; [`Error::ActionExists`] if `name` has an action already
    /// (DPDK's `EEXIST`); [`Error::Shutdown`].
    pub fn action_register<F>(&self, name: &str, action: F) -> Result<(), Error>
    where
        F: Fn(Message, Peer) + Send + Sync + 'static,
    {
        check_name(name)?;
        if self.core().is_stopping() {
            return Err(Error::Shutdown);
        }
        let mut actions = self
            .core()
            .actions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if actions.contains_key(name) {
            tracing::debug!(name, "IPC action already registered");
            return Err(Error::ActionExists(name.to_owned()));
        }
        actions.insert(name.to_owned(), Arc::new(action));
        Ok(())
    }

    /// Removes the action for `name` (DPDK's `rte_mp_action_unregister`). Returns whether
    /// there was one.
    pub fn action_unregister(&self, name: &str) -> bool {
        self.core()
            .actions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some()
    }

    /// Sends a one-way message (DPDK's `rte_mp_sendmsg`): from a secondary to the primary,
    /// from the primary to every secondary. Dead secondaries are skipped and their sockets
    /// removed. Returns how many peers it reached.
    ///
    /// # Errors
    /// [`Error::PrimaryGone`] from a secondary whose primary is not there; [`Error::Send`]
    /// if a send failed for another reason (the other peers were still tried);
    /// [`Error::Dir`]; [`Error::Shutdown`].
    pub fn sendmsg(&self, msg: &Message) -> Result<usize, Error> {
        let core = self.core();
        if core.is_stopping() {
            return Err(Error::Shutdown);
        }
        let mut bytes = Vec::new();
        wire::emit(
            Kind::Msg,
            0,
            msg.name(),
            msg.param(),
            msg.fds().len(),
            &mut bytes,
        );
        let mut reached = 0;
        let mut first_err = None;
        for t in core.targets()? {
            match core.send_one(
                core.sock.as_fd(),
                &t.addr,
                &bytes,
                msg.fds(),
                Instant::now() + SEND_TIMEOUT,
            ) {
                Sent::Ok => reached += 1,
                Sent::Gone if core.role == Role::Secondary => {
                    core.peer_gone(&t);
                    return Err(Error::PrimaryGone {
                        path: core.dir.join(PRIMARY_SOCKET),
                    });
                }
                Sent::Gone => core.peer_gone(&t),
                Sent::Failed(errno) => {
                    first_err.get_or_insert(Error::Send {
                        peer: t.name.clone(),
                        errno,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(reached),
        }
    }

    /// A snapshot of this process's IPC counters.
    pub fn stats(&self) -> Stats {
        self.core().counters.snapshot()
    }

    /// Stops the IPC thread, drops the actions, completes pending async requests with
    /// [`Error::Shutdown`] and removes this process's socket file. Idempotent; also done when
    /// the last clone drops.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}
