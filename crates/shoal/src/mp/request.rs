//! Requests and the gathering of their answers.
//!
//! A synchronous request goes out from a socket of the caller's own (an autobound abstract
//! socket taken from a small pool), and the caller reads the answers from it itself: it polls
//! without blocking for [`REQUEST_SPIN`], yielding the CPU between tries, then blocks in
//! `ppoll`. So no other thread has to be woken on the requester's side.
//!
//! An asynchronous request goes out from the process's own socket; the IPC thread matches the
//! answers, expires the request at its deadline and calls the callback exactly once.
//!
//! Answers are matched by request id, action name and sender. Every [`PROBE_INTERVAL`] while
//! waiting, peers that have not answered are probed (a `connect` to their socket file); a dead
//! one is dropped from the count and, in the primary, its socket file removed.

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::channel::{lock, Core, Mp, Sent, Target};
use super::message::{Message, PeerName, Reply};
use super::stats::Counters;
use super::wire::{self, Kind};
use super::{Error, Role, PRIMARY_SOCKET};
use crate::sys::unix_dgram as dgram;

/// How long a synchronous requester polls for answers before it blocks. A reply within this
/// time costs no wake-up on the requester's side.
const REQUEST_SPIN: Duration = Duration::from_micros(50);
/// How often peers that have not answered are checked for being alive.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// An async request's completion.
pub(crate) type Done = Box<dyn FnOnce(Result<Reply, Error>) + Send>;

/// The answers one request has gathered so far.
pub(crate) struct Gather {
    name: String,
    timeout: Duration,
    outstanding: Vec<Target>,
    reply: Reply,
    no_handler: Vec<PeerName>,
}

impl Gather {
    /// A request about to be sent to all of `targets`.
    fn new(name: &str, timeout: Duration, targets: Vec<Target>) -> Gather {
        let reply = Reply {
            nb_sent: targets.len(),
            ..Reply::default()
        };
        Gather {
            name: name.to_owned(),
            timeout,
            outstanding: targets,
            reply,
            no_handler: Vec::new(),
        }
    }

    /// Applies an answer; false if it answers nothing this request waits for.
    fn accept(&mut self, kind: Kind, msg: Message) -> bool {
        if !kind.is_answer() || msg.name() != self.name {
            return false;
        }
        let Some(sender) = msg.sender() else {
            return false;
        };
        let Some(i) = self.outstanding.iter().position(|t| &t.name == sender) else {
            return false;
        };
        let t = self.outstanding.remove(i);
        match kind {
            Kind::Rep => {
                self.reply.msgs.push(msg);
                self.reply.nb_received += 1;
            }
            Kind::Ign => self.reply.nb_sent -= 1,
            _ => self.no_handler.push(t.name),
        }
        true
    }

    /// `t` could not be reached or died: it no longer counts.
    fn lost(&mut self, core: &Core, name: &PeerName) {
        if let Some(i) = self.outstanding.iter().position(|t| &t.name == name) {
            let t = self.outstanding.remove(i);
            core.peer_gone(&t);
            self.reply.nb_sent -= 1;
            self.reply.gone.push(t.name);
        }
    }

    /// Checks the peers that have not answered yet; dead ones stop counting.
    fn probe(&mut self, core: &Core) {
        let dead: Vec<PeerName> = self
            .outstanding
            .iter()
            .filter(|t| !Core::is_alive(&t.addr))
            .map(|t| t.name.clone())
            .collect();
        for name in dead {
            self.lost(core, &name);
        }
    }

    fn is_complete(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// Applies the send outcomes. `Err` for a failure that makes the request pointless: no
    /// primary, or a send error other than a full queue (which the timeout reports).
    fn apply_sends(&mut self, core: &Core, outcomes: Vec<(PeerName, Sent)>) -> Result<(), Error> {
        for (name, sent) in outcomes {
            match sent {
                Sent::Ok => {}
                Sent::Gone if core.role == Role::Secondary => {
                    core.peer_gone(&core.primary_target());
                    tracing::debug!(name = %self.name, "IPC request: no primary");
                    return Err(Error::PrimaryGone {
                        path: core.dir.join(PRIMARY_SOCKET),
                    });
                }
                Sent::Gone => self.lost(core, &name),
                Sent::Failed(libc::EAGAIN) => {}
                Sent::Failed(errno) => return Err(Error::Send { peer: name, errno }),
            }
        }
        Ok(())
    }

    fn finish(self, core: &Core) -> Result<Reply, Error> {
        if core.role == Role::Secondary && !self.reply.gone.is_empty() {
            return Err(Error::PrimaryGone {
                path: core.dir.join(PRIMARY_SOCKET),
            });
        }
        if !self.outstanding.is_empty() {
            Counters::bump(&core.counters.timeouts);
            let missing: Vec<PeerName> = self.outstanding.into_iter().map(|t| t.name).collect();
            tracing::warn!(name = %self.name, ?missing, "IPC request timed out");
            return Err(Error::Timeout {
                name: self.name,
                timeout: self.timeout,
                missing,
                no_handler: self.no_handler,
                partial: Box::new(self.reply),
            });
        }
        if !self.no_handler.is_empty() {
            tracing::debug!(name = %self.name, peers = ?self.no_handler, "no action for IPC request");
            return Err(Error::NoHandler {
                name: self.name,
                peers: self.no_handler,
                partial: Box::new(self.reply),
            });
        }
        Ok(self.reply)
    }
}

/// An async request waiting for answers.
struct Pending {
    gather: Gather,
    /// False while the requester is still sending: the request cannot complete before.
    sealed: bool,
    deadline: Instant,
    next_probe: Instant,
    done: Done,
}

/// The async requests of a process, by id.
#[derive(Default)]
pub(crate) struct PendingTable {
    /// Set when the IPC thread has stopped: no new request may enter.
    closed: bool,
    map: HashMap<u64, Pending>,
}

fn send_all(
    core: &Core,
    from: std::os::fd::BorrowedFd<'_>,
    targets: &[Target],
    bytes: &[u8],
    req: &Message,
    deadline: Instant,
) -> Vec<(PeerName, Sent)> {
    targets
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                core.send_one(from, &t.addr, bytes, req.fds(), deadline),
            )
        })
        .collect()
}

impl Core {
    fn request_sync(&self, req: &Message, timeout: Duration) -> Result<Reply, Error> {
        if self.is_stopping() {
            return Err(Error::Shutdown);
        }
        let deadline = Instant::now() + timeout;
        let targets = self.targets()?;
        let id = self.new_id();
        let mut g = Gather::new(req.name(), timeout, targets.clone());
        if targets.is_empty() {
            return g.finish(self);
        }
        let mut bytes = Vec::new();
        wire::emit(
            Kind::Req,
            id,
            req.name(),
            req.param(),
            req.fds().len(),
            &mut bytes,
        );
        let sock = self.take_socket()?;
        let outcomes = send_all(self, sock.as_fd(), &targets, &bytes, req, deadline);
        let sent = g.apply_sends(self, outcomes);
        if sent.is_ok() {
            self.collect(sock.as_fd(), id, &mut g, deadline);
        }
        self.give_socket(sock);
        sent?;
        g.finish(self)
    }

    /// Reads answers for request `id` from `sock` until all are in or `deadline` passes.
    fn collect(
        &self,
        sock: std::os::fd::BorrowedFd<'_>,
        id: u64,
        g: &mut Gather,
        deadline: Instant,
    ) {
        let mut buf = [0u8; wire::MAX_DATAGRAM + 1];
        let start = Instant::now();
        let spin_until = start + REQUEST_SPIN;
        let mut next_probe = start + PROBE_INTERVAL;
        while !g.is_complete() {
            match self.receive(sock, &mut buf, false) {
                Ok(Some(inc)) => {
                    let (kind, answers_us) = (inc.kind, inc.id == id);
                    if !kind.is_answer() {
                        // Requests and messages never go to a requester's own socket.
                        Counters::bump(&self.counters.malformed);
                    } else if !(answers_us && g.accept(kind, inc.into_message())) {
                        Counters::bump(&self.counters.dropped_unknown_reply);
                        tracing::debug!(
                            request = id,
                            "dropped an IPC answer that matches no pending request"
                        );
                    }
                    continue;
                }
                Ok(None) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::warn!(error = %e, "IPC receive failed while waiting for answers");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now < spin_until {
                // Poll without blocking, but let a process that shares this CPU (perhaps the
                // very peer that must answer) run.
                std::thread::yield_now();
                continue;
            }
            if now >= next_probe {
                g.probe(self);
                next_probe = now + PROBE_INTERVAL;
                continue;
            }
            let _ = dgram::poll_readable(&[sock], Some(deadline.min(next_probe) - now));
        }
    }

    fn request_async(&self, req: &Message, timeout: Duration, done: Done) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let targets = self.targets()?;
        let id = self.new_id();
        {
            let mut t = lock(&self.pending);
            if t.closed || self.is_stopping() {
                return Err(Error::Shutdown);
            }
            let gather = Gather::new(req.name(), timeout, targets.clone());
            t.map.insert(
                id,
                Pending {
                    gather,
                    sealed: false,
                    deadline,
                    next_probe: Instant::now() + PROBE_INTERVAL,
                    done,
                },
            );
        }
        let mut bytes = Vec::new();
        wire::emit(
            Kind::Req,
            id,
            req.name(),
            req.param(),
            req.fds().len(),
            &mut bytes,
        );
        let outcomes = send_all(self, self.sock.as_fd(), &targets, &bytes, req, deadline);
        {
            let mut t = lock(&self.pending);
            // The IPC thread never removes an unsealed request, but shutdown drains them all.
            let Some(p) = t.map.get_mut(&id) else {
                return Err(Error::Shutdown);
            };
            if let Err(e) = p.gather.apply_sends(self, outcomes) {
                t.map.remove(&id);
                return Err(e);
            }
            p.sealed = true;
        }
        // Let the IPC thread re-arm its timer for the new deadline, or complete the request
        // at once if nothing is outstanding (DPDK's "dummy" request).
        self.kick();
        Ok(())
    }

    /// An answer arrived at the process's own socket: hand it to its async request.
    pub(crate) fn async_answer(&self, inc: super::channel::Incoming) {
        let (kind, id) = (inc.kind, inc.id);
        let mut t = lock(&self.pending);
        let accepted = match t.map.get_mut(&id) {
            Some(p) => p.gather.accept(kind, inc.into_message()),
            None => false,
        };
        if !accepted {
            drop(t);
            Counters::bump(&self.counters.dropped_unknown_reply);
            tracing::debug!(
                request = id,
                "dropped an IPC answer that matches no pending request"
            );
            return;
        }
        let finished = t
            .map
            .get(&id)
            .is_some_and(|p| p.sealed && p.gather.is_complete());
        let done = if finished { t.map.remove(&id) } else { None };
        drop(t);
        if let Some(p) = done {
            let result = p.gather.finish(self);
            self.run_callback(p.done, result);
        }
    }

    /// Completes async requests that are answered or past their deadline, probes silent
    /// peers, and returns when the IPC thread must look again.
    pub(crate) fn service_async(&self, now: Instant) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut finished = Vec::new();
        {
            let mut t = lock(&self.pending);
            if t.map.is_empty() {
                return None;
            }
            for (id, p) in t.map.iter_mut() {
                if !p.sealed {
                    continue;
                }
                if !p.gather.is_complete() && now >= p.next_probe && now < p.deadline {
                    p.gather.probe(self);
                    p.next_probe = now + PROBE_INTERVAL;
                }
                if p.gather.is_complete() || now >= p.deadline {
                    finished.push(*id);
                } else {
                    let at = p.deadline.min(p.next_probe);
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
            let done: Vec<Pending> = finished.iter().filter_map(|id| t.map.remove(id)).collect();
            drop(t);
            for p in done {
                let result = p.gather.finish(self);
                self.run_callback(p.done, result);
            }
        }
        wake
    }

    /// The IPC thread stops: every pending async request completes with `Shutdown`.
    pub(crate) fn close_pending(&self) {
        let drained: Vec<Pending> = {
            let mut t = lock(&self.pending);
            t.closed = true;
            t.map.drain().map(|(_, p)| p).collect()
        };
        for p in drained {
            self.run_callback(p.done, Err(Error::Shutdown));
        }
    }
}

struct FutureState {
    result: Option<Result<Reply, Error>>,
    waker: Option<Waker>,
}

/// The future [`Mp::request_future`] returns: a waker-based future that works with any
/// executor.
struct ReplyFuture {
    state: Option<Arc<Mutex<FutureState>>>,
    early: Option<Error>,
}

impl Future for ReplyFuture {
    type Output = Result<Reply, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(state) = self.state.clone() else {
            return Poll::Pending;
        };
        let mut s = lock(&state);
        match s.result.take() {
            Some(r) => {
                drop(s);
                self.state = None;
                Poll::Ready(r)
            }
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Mp {
    /// Sends a request and waits for the answers (DPDK's `rte_mp_request_sync`): from a
    /// secondary to the primary, from the primary to every secondary. Dead secondaries are
    /// skipped (and listed in [`Reply::gone`]); peers that answer "ignore me" are not counted.
    ///
    /// May be called from an action or an async callback (unlike in DPDK, the answers do not
    /// go through the IPC thread).
    ///
    /// # Errors
    /// [`Error::Timeout`] names the peers that did not answer in time and carries what was
    /// gathered; [`Error::NoHandler`] names the peers that have no action for the name;
    /// [`Error::PrimaryGone`]; [`Error::Send`]; [`Error::Dir`]; [`Error::Socket`];
    /// [`Error::Shutdown`].
    pub fn request_sync(&self, req: &Message, timeout: Duration) -> Result<Reply, Error> {
        self.core().request_sync(req, timeout)
    }

    /// Sends a request and returns at once (DPDK's `rte_mp_request_async`). `callback` runs
    /// exactly once, on the IPC thread, when every peer answered or at the timeout, with the
    /// same result [`Mp::request_sync`] would give; with [`Error::Shutdown`] if the channel
    /// stops first. If this returns `Err`, the callback is dropped without being called.
    ///
    /// # Errors
    /// [`Error::PrimaryGone`]; [`Error::Send`]; [`Error::Dir`]; [`Error::Shutdown`].
    pub fn request_async<F>(
        &self,
        req: &Message,
        timeout: Duration,
        callback: F,
    ) -> Result<(), Error>
    where
        F: FnOnce(Result<Reply, Error>) + Send + 'static,
    {
        self.core().request_async(req, timeout, Box::new(callback))
    }

    /// [`Mp::request_async`] as a future, for any executor (no runtime dependency). The
    /// request is sent when this is called, not when the future is first polled; errors
    /// detected while sending come out of the future.
    ///
    /// The IPC thread completes the future: do not block on it from an action or an async
    /// callback (use [`Mp::request_sync`] there).
    pub fn request_future(
        &self,
        req: &Message,
        timeout: Duration,
    ) -> impl Future<Output = Result<Reply, Error>> + Send + 'static {
        let state = Arc::new(Mutex::new(FutureState {
            result: None,
            waker: None,
        }));
        let theirs = Arc::clone(&state);
        let sent = self.request_async(req, timeout, move |r| {
            let waker = {
                let mut s = lock(&theirs);
                s.result = Some(r);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        match sent {
            Ok(()) => ReplyFuture {
                state: Some(state),
                early: None,
            },
            Err(e) => ReplyFuture {
                state: None,
                early: Some(e),
            },
        }
    }
}
