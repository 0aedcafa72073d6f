//! Packet capture from a secondary (DPDK's `rte_pdump` and `dpdk-dumpcap`): the control half.
//! The data-path half, the taps in `rx_burst`/`tx_burst`, is [`crate::ethdev::capture`].
//!
//! The primary runs a [`Server`]: it makes the capture ring and block, answers the IPC action
//! [`ACTION`], and watches the capture's owner. A tool joins the group as a secondary and calls
//! [`Capture::start`] with the ports and directions it wants; the primary arms those ports' taps
//! (the bits live in the port table, so every process that polls the ports sees them), and the
//! tool dequeues clones from the ring ([`Capture::next_burst`]) until it calls
//! [`Capture::stop`]. One capture runs at a time.
//!
//! # Crashes
//! - The capturing tool dies (even by SIGKILL): the primary's service notices within
//!   [`WATCH_PERIOD`] (its liveness lock is gone), disarms every tap and frees what is left in
//!   the ring. Clones the tool held are tagged with its slot: the reaper returns them. A tool
//!   killed inside a dequeue is repaired by the ring's multi-consumer repair.
//! - A producer dies while cloning or enqueueing: see [`crate::ethdev::capture`].
//! - The primary dies: the group ends; the tool notices as every secondary does.
//!
//! Clones that a producer enqueues after the taps were disarmed (it read the bits just before)
//! are freed by the service too, on its next round: nothing stays in the ring while no capture
//! runs. A new capture starts with a new session number, so a late clone of an older capture
//! is recognised and freed by the tool rather than written.

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ethdev::capture::{self, word, Block};
use crate::ethdev::{self, Port};
use crate::group::{Group, ProcType};
use crate::mbuf::{MbufBatch, MbufRing};
use crate::memory::{MemzoneKind, Region};
use crate::memzone::Memzone;
use crate::mp::Message;
use crate::ring::RingConfig;
use crate::sync::atomic::Ordering;
use crate::sync::{Liveness, MemberId};

/// The IPC action the primary answers.
pub const ACTION: &str = "shoal_pdump";
/// Slots of the capture ring.
pub const RING_SIZE: u32 = 4096;
/// How often the primary checks the capture's owner and cleans the ring.
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);
/// How long a tool waits for the primary's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of capture set-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The capture ring or block could not be made or found.
    #[error("{0}")]
    Shared(String),
    /// The primary does not serve captures (it runs no pdump server).
    #[error("the primary does not serve packet capture (it started no capture server)")]
    NotServed,
    /// The primary refused (a capture already runs, a port does not exist).
    #[error("{0}")]
    Refused(String),
    /// IPC failed.
    #[error("IPC: {0}")]
    Ipc(#[from] crate::mp::Error),
    /// Something only the primary may do, or a tool ran in the primary.
    #[error("{0}")]
    Role(&'static str),
}

struct State {
    ring: MbufRing,
    block: Region,
    session: u32,
}

impl State {
    fn block(&self) -> &Block {
        self.block
            .get(0)
            .expect("capture block checked at creation")
    }

    /// Frees what is in the ring; returns how many.
    fn drain(&self) -> u64 {
        let mut batch = MbufBatch::new();
        let mut n = 0;
        while self.ring.dequeue_burst(&mut batch, crate::mbuf::MAX_BURST) > 0 {
            n += batch.len() as u64;
            batch.clear();
        }
        if n > 0 {
            self.block()[word::FREED].fetch_add(n, Ordering::Relaxed);
        }
        n
    }

    fn disarm(eal: &Group) {
        for p in ethdev::registered(eal).unwrap_or_default() {
            p.set_capture(0);
        }
    }
}

/// The primary's capture service. Dropping it disarms every tap and frees the ring's content.
pub struct Server {
    group: Group,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pdump::Server").finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// Makes the capture ring and block and starts answering [`ACTION`]. Primary only; call it
    /// after the ports are made.
    ///
    /// # Errors
    /// [`Error::Role`] in a secondary; [`Error::Shared`] when the ring or block cannot be
    /// made; [`Error::Ipc`] when the action cannot be registered.
    pub fn start(group: &impl AsRef<Group>) -> Result<Server, Error> {
        let eal: &Group = group.as_ref();
        if eal.proc_type() != ProcType::Primary {
            return Err(Error::Role("only the primary serves packet capture"));
        }
        // A primary that adopted the group (`--adopt`) finds the dead primary's ring and block,
        // and carries on its session numbering: a capture still running goes on, and the
        // service stops it if its tool died meanwhile.
        let adopted = eal.adopted();
        let ring = if adopted {
            MbufRing::lookup(eal, capture::RING_NAME)
        } else {
            MbufRing::create(eal, capture::RING_NAME, RingConfig::new(RING_SIZE))
        }
        .map_err(|e| Error::Shared(format!("capture ring: {e}")))?;
        let mz = if adopted {
            Memzone::lookup(eal, capture::CTL_NAME)
        } else {
            Memzone::reserve_kind(
                eal,
                capture::CTL_NAME,
                std::mem::size_of::<Block>(),
                128,
                MemzoneKind::Internal,
            )
        }
        .map_err(|e| Error::Shared(format!("capture block: {e}")))?;
        let block = mz.region().clone();
        let Some(b) = block.get::<Block>(0) else {
            return Err(Error::Shared("capture block too small".into()));
        };
        // Relaxed: the number only; the group lock taken by the adoption ordered the dead
        // primary's writes before this load.
        let session = b[word::SESSION].load(Ordering::Relaxed) as u32;
        let state = Arc::new(Mutex::new(State {
            ring,
            block,
            session,
        }));
        let mp = eal
            .mp()
            .ok_or(Error::Role("a process without IPC cannot serve capture"))?;
        let (st, e) = (state.clone(), eal.clone());
        mp.action_register(ACTION, move |msg, peer| {
            let answer = handle(&e, &st, msg.param());
            if let Ok(m) = Message::new(ACTION, answer.as_bytes()) {
                let _ = peer.reply(&m);
            }
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (st, e, s) = (state.clone(), eal.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("shoal-pdump".into())
            .spawn(move || {
                while !s.load(StdOrdering::Relaxed) {
                    watch(&e, &st);
                    std::thread::sleep(WATCH_PERIOD);
                }
            })
            .map_err(|e| Error::Shared(format!("capture service thread: {e}")))?;
        tracing::debug!(target: "shoal::pdump", "capture server started");
        Ok(Server {
            group: eal.clone(),
            state,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, StdOrdering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mp) = self.group.mp() {
            mp.action_unregister(ACTION);
        }
        State::disarm(&self.group);
        let st = lock(&self.state);
        st.block()[word::OWNER].store(0, Ordering::Relaxed);
        st.drain();
    }
}

/// One round of the service: a dead owner's capture is turned off; with no capture running,
/// the ring is emptied.
fn watch(eal: &Group, state: &Mutex<State>) {
    let st = lock(state);
    let owner = MemberId::from_raw(st.block()[word::OWNER].load(Ordering::Relaxed));
    if owner.is_none() {
        st.drain();
        return;
    }
    if eal.liveness(owner) == Liveness::Dead {
        State::disarm(eal);
        st.block()[word::OWNER].store(0, Ordering::Relaxed);
        let freed = st.drain();
        let pid = st.block()[word::PID].load(Ordering::Relaxed);
        tracing::warn!(target: "shoal::pdump", "capture of session {} stopped: its process (pid {pid}) died; {freed} captured packets freed", st.session);
    }
}

/// Answers a request: `start OWNER PID RXMASK TXMASK` (masks in hexadecimal) or
/// `stop SESSION`.
fn handle(eal: &Group, state: &Mutex<State>, param: &[u8]) -> String {
    let text = String::from_utf8_lossy(param);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut st = lock(state);
    match words.as_slice() {
        ["start", owner, pid, rx, tx] => {
            let (Ok(owner), Ok(pid), Ok(rx), Ok(tx)) = (
                owner.parse::<u64>(),
                pid.parse::<u64>(),
                u64::from_str_radix(rx, 16),
                u64::from_str_radix(tx, 16),
            ) else {
                return "error malformed start request".into();
            };
            let current = MemberId::from_raw(st.block()[word::OWNER].load(Ordering::Relaxed));
            if !current.is_none() && eal.liveness(current) != Liveness::Dead {
                let p = st.block()[word::PID].load(Ordering::Relaxed);
                return format!("error a capture is already running (pid {p})");
            }
            let ports = ethdev::registered(eal).unwrap_or_default();
            let mut chosen: Vec<(&Port, u32)> = Vec::new();
            for bit in 0..64u16 {
                let bit_of = |mask: u64, dir: u32| if mask >> bit & 1 != 0 { dir } else { 0 };
                let want = bit_of(rx, capture::RX) | bit_of(tx, capture::TX);
                if want == 0 {
                    continue;
                }
                match ports.iter().find(|p| p.id().0 == bit) {
                    Some(p) => chosen.push((p, want)),
                    None => return format!("error no port {bit} in this group"),
                }
            }
            if chosen.is_empty() {
                return "error no port chosen".into();
            }
            State::disarm(eal);
            st.drain();
            st.session = st.session.wrapping_add(1).max(1);
            let b = st.block();
            b[word::SESSION].store(st.session as u64, Ordering::Relaxed);
            for w in [
                word::CAPTURED,
                word::DROP_FULL,
                word::DROP_NOMBUF,
                word::FREED,
            ] {
                b[w].store(0, Ordering::Relaxed);
            }
            b[word::PID].store(pid, Ordering::Relaxed);
            b[word::OWNER].store(owner, Ordering::Relaxed);
            for (p, bits) in chosen {
                p.set_capture(bits);
            }
            tracing::debug!(target: "shoal::pdump", "capture session {} started for pid {pid}", st.session);
            format!("ok {}", st.session)
        }
        ["stop", session] => {
            if session.parse::<u32>().ok() == Some(st.session)
                && !MemberId::from_raw(st.block()[word::OWNER].load(Ordering::Relaxed)).is_none()
            {
                State::disarm(eal);
                st.block()[word::OWNER].store(0, Ordering::Relaxed);
                tracing::debug!(target: "shoal::pdump", "capture session {session} stopped");
            }
            "ok".into()
        }
        _ => "error unknown request".into(),
    }
}

/// Counters of a capture, as the group counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Clones handed to the ring.
    pub captured: u64,
    /// Packets not captured: the ring was full.
    pub dropped_full: u64,
    /// Packets not captured: no mbuf for the clone.
    pub dropped_nombuf: u64,
}

/// A capture, seen from the tool that asked for it.
pub struct Capture {
    group: Group,
    ring: MbufRing,
    block: Region,
    session: u32,
    stopped: bool,
    /// Clones of an older session that were freed unread.
    pub stale: u64,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Asks the primary to capture what ports `rx_mask` receive and `tx_mask` transmit (bit
    /// `p` for port `p`). Secondary only.
    ///
    /// # Errors
    /// [`Error::NotServed`] when the primary runs no [`Server`]; [`Error::Refused`] with the
    /// primary's reason; [`Error::Ipc`]; [`Error::Shared`] when the ring cannot be found.
    pub fn start(group: &impl AsRef<Group>, rx_mask: u64, tx_mask: u64) -> Result<Capture, Error> {
        let eal: &Group = group.as_ref();
        if eal.proc_type() != ProcType::Secondary {
            return Err(Error::Role("a capture is asked for by a secondary process"));
        }
        let (ring, block) = capture::lookup(eal).ok_or(Error::NotServed)?;
        let answer = request(
            eal,
            &format!(
                "start {} {} {rx_mask:x} {tx_mask:x}",
                eal.member().raw(),
                std::process::id()
            ),
        )?;
        let session = match answer.strip_prefix("ok ") {
            Some(s) => s
                .parse()
                .map_err(|_| Error::Refused(format!("bad answer {answer:?}")))?,
            None => {
                return Err(Error::Refused(
                    answer.strip_prefix("error ").unwrap_or(&answer).to_string(),
                ))
            }
        };
        Ok(Capture {
            group: eal.clone(),
            ring,
            block,
            session,
            stopped: false,
            stale: 0,
        })
    }

    /// Appends up to `max` captured packets to `batch` (each stamped: [`Mbuf::port`],
    /// [`Mbuf::timestamp`] in ns since the epoch, [`direction`]); returns how many.
    ///
    /// [`Mbuf::port`]: crate::mbuf::Mbuf::port
    /// [`Mbuf::timestamp`]: crate::mbuf::Mbuf::timestamp
    pub fn next_burst(&mut self, batch: &mut MbufBatch, max: usize) -> usize {
        let before = batch.len();
        self.ring.dequeue_burst(batch, max);
        // Late clones of an older session are freed unread.
        let mut kept = MbufBatch::new();
        for m in batch.drain(before..) {
            if m.dynfield()[capture::DYN_SESSION] == self.session {
                let _ = kept.push(m);
            } else {
                self.stale += 1;
            }
        }
        let n = kept.len();
        for m in kept.drain(..) {
            let _ = batch.push(m);
        }
        n
    }

    /// The group's counters of this capture.
    pub fn stats(&self) -> CaptureStats {
        let b: &Block = self.block.get(0).expect("capture block checked at lookup");
        CaptureStats {
            captured: b[word::CAPTURED].load(Ordering::Relaxed),
            dropped_full: b[word::DROP_FULL].load(Ordering::Relaxed),
            dropped_nombuf: b[word::DROP_NOMBUF].load(Ordering::Relaxed),
        }
    }

    /// Asks the primary to disarm the taps. Packets already in the ring can still be read.
    ///
    /// # Errors
    /// [`Error::Ipc`].
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        request(&self.group, &format!("stop {}", self.session)).map(drop)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The direction a captured packet was stamped with: [`capture::RX`] or [`capture::TX`].
pub fn direction(m: &crate::mbuf::Mbuf) -> u32 {
    m.dynfield()[capture::DYN_DIR]
}

fn request(eal: &Group, text: &str) -> Result<String, Error> {
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
    Ok(String::from_utf8_lossy(m.param()).into_owned())
}
