//! Ports attached and detached at run time by request of any process (DPDK's `hotplug_mp`
//! example): the primary runs a [`Server`] answering the IPC action [`ACTION`]; a tool (or any
//! secondary) calls [`attach`] with a `--vdev` spec or [`detach`] with a port number, and the
//! primary does it with [`ethdev::attach_vdev`] / [`ethdev::detach`]. Every process sees the
//! change at its next [`ethdev::ports`]: a new port usable, a detached one refused
//! ([`ethdev::Error::Detached`]); its slot is never used again.
//!
//! The server keeps the ports it attached (the primary's handles) until they are detached or
//! the server drops.
//!
//! # Crashes
//! - The asking process dies: the primary finishes the request; the reply goes nowhere.
//! - The primary dies mid-attach or mid-detach: see [`crate::ethdev`] (a half-made slot stays
//!   FREE and unused; a detach is one state store). The asking process's request times out.
//!
//! Wire format (text): request `attach <spec>` or `detach <port>`; reply `ok <port> <name>`,
//! `bad <why>` (the request's argument is wrong: bad spec, no such port) or `error <why>`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ethdev::{self, Port, PortId};
use crate::group::{Group, ProcType};
use crate::mp::Message;

/// The IPC action the primary answers.
pub const ACTION: &str = "shoal_hotplug";
/// How long a tool waits for the primary's answer (a probe may open kernel sockets).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of a hotplug request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The primary runs no hotplug server.
    #[error("the primary does not serve port hotplug (it started no hotplug server)")]
    NotServed,
    /// The request's argument is wrong (a bad spec, no such port, a detached port).
    #[error("{0}")]
    BadArgument(String),
    /// The primary could not do it (a driver failed, the table is full).
    #[error("{0}")]
    Refused(String),
    /// IPC failed.
    #[error("IPC: {0}")]
    Ipc(#[from] crate::mp::Error),
    /// Something only the primary may do, or a process without IPC.
    #[error("{0}")]
    Role(&'static str),
}

/// The primary's side: answers [`ACTION`] until dropped.
pub struct Server {
    group: Group,
    ports: Arc<Mutex<Vec<Port>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("hotplug::Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Starts answering [`ACTION`]. Primary only.
    ///
    /// # Errors
    /// [`Error::Role`] in a secondary or without IPC; [`Error::Ipc`] when the action cannot
    /// be registered.
    pub fn start(group: &impl AsRef<Group>) -> Result<Server, Error> {
        let eal: &Group = group.as_ref();
        if eal.proc_type() != ProcType::Primary {
            return Err(Error::Role("only the primary serves port hotplug"));
        }
        let mp = eal
            .mp()
            .ok_or(Error::Role("a process without IPC cannot serve hotplug"))?;
        let ports = Arc::new(Mutex::new(Vec::new()));
        let (e, held) = (eal.clone(), ports.clone());
        mp.action_register(ACTION, move |msg, peer| {
            let answer = handle(&e, &held, msg.param());
            if let Ok(m) = Message::new(ACTION, answer.as_bytes()) {
                let _ = peer.reply(&m);
            }
        })?;
        Ok(Server {
            group: eal.clone(),
            ports,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mp) = self.group.mp() {
            mp.action_unregister(ACTION);
        }
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

fn handle(eal: &Group, held: &Mutex<Vec<Port>>, param: &[u8]) -> String {
    let text = String::from_utf8_lossy(param);
    let (verb, arg) = text.split_once(' ').unwrap_or((&text, ""));
    let bad = |e: &ethdev::Error| {
        matches!(
            e,
            ethdev::Error::BadSpec { .. }
                | ethdev::Error::BadQueueCount { .. }
                | ethdev::Error::DuplicateName(_)
                | ethdev::Error::NoSuchPort(_)
                | ethdev::Error::Detached(_)
        )
    };
    let fail = |e: ethdev::Error| {
        let kind = if bad(&e) { "bad" } else { "error" };
        format!("{kind} {e}")
    };
    match verb {
        "attach" => match ethdev::attach_vdev(eal, arg) {
            Ok(p) => {
                let answer = format!("ok {} {}", p.id(), p.name());
                held.lock().unwrap_or_else(PoisonError::into_inner).push(p);
                answer
            }
            Err(e) => fail(e),
        },
        "detach" => {
            let Ok(id) = arg.parse::<u16>() else {
                return format!("bad not a port number: {arg:?}");
            };
            match ethdev::detach(eal, PortId(id)) {
                Ok(name) => {
                    held.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|p| p.id() != PortId(id));
                    format!("ok {id} {name}")
                }
                Err(e) => fail(e),
            }
        }
        _ => "error unknown request".into(),
    }
}

/// Asks the primary to attach a port from a `--vdev` spec; returns its number and name.
///
/// # Errors
/// [`Error::BadArgument`] for a bad spec or a name in use; [`Error::Refused`],
/// [`Error::NotServed`], [`Error::Ipc`].
pub fn attach(group: &impl AsRef<Group>, spec: &str) -> Result<(PortId, String), Error> {
    request(group.as_ref(), &format!("attach {spec}"))
}

/// Asks the primary to detach port `id`; returns its number and name.
///
/// # Errors
/// [`Error::BadArgument`] for no such port or one already detached; as [`attach`] otherwise.
pub fn detach(group: &impl AsRef<Group>, id: PortId) -> Result<(PortId, String), Error> {
    request(group.as_ref(), &format!("detach {id}"))
}

fn request(eal: &Group, text: &str) -> Result<(PortId, String), Error> {
    let mp = eal
        .mp()
        .ok_or(Error::Role("a process without IPC cannot ask"))?;
    let msg = Message::new(ACTION, text.as_bytes())?;
    let reply = match mp.request_sync(&msg, REQUEST_TIMEOUT) {
        Ok(r) => r,
        Err(crate::mp::Error::NoHandler { .. }) => return Err(Error::NotServed),
        Err(e) => return Err(e.into()),
    };
    let m = reply
        .msgs
        .first()
        .ok_or_else(|| Error::Refused("the primary did not answer".into()))?;
    let answer = String::from_utf8_lossy(m.param()).into_owned();
    let (kind, rest) = answer.split_once(' ').unwrap_or((&answer, ""));
    match kind {
        "ok" => {
            let (id, name) = rest.split_once(' ').unwrap_or((rest, ""));
            let id = id
                .parse::<u16>()
                .map_err(|_| Error::Refused(format!("malformed answer {answer:?}")))?;
            Ok((PortId(id), name.to_owned()))
        }
        "bad" => Err(Error::BadArgument(rest.to_owned())),
        _ => Err(Error::Refused(rest.to_owned())),
    }
}
