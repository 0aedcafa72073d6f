//! `net_memif`: a shared-memory packet interface to another process, speaking memif protocol
//! 2.0 as DPDK's `net_memif` and libmemif do, in either role
//! (`--vdev net_memif0,role=server|client,socket=PATH[,socket-abstract=yes|no][,id=N]
//! [,secret=S][,rsize=LOG2][,bsize=BYTES][,queues=N]`).
//!
//! # Connection
//! The primary runs one control thread per memif port. A server listens on the socket
//! (bound before the port is returned, so a peer may connect as soon as [`ports`] is back);
//! a client connects and retries every 200 ms while no server answers. The handshake is
//! DPDK's: HELLO (server), INIT, ADD_REGION per region, ADD_RING per ring (c2s first), CONNECT
//! (client), each answered by ACK, then CONNECTED. The client creates the memory: one memfd
//! region holding its c2s rings, its s2c rings, then one buffer of `bsize` bytes per
//! descriptor, in ring order. Both sides poll (`MEMIF_RING_FLAG_MASK_INT` on each side's
//! receive rings); an eventfd is still exchanged per ring, as the protocol requires, and
//! written after a transmit when the peer asks for interrupts.
//!
//! A peer that closes the socket, dies, sends DISCONNECT or breaks the protocol takes the
//! link down: bursts return 0, the mappings go once no burst uses them, and the port waits
//! for (server) or looks for (client) a new peer. Frames are copied between mbufs and the
//! peer's buffers in both directions, so no mbuf is ever lent to a peer and a peer's death
//! strands none.
//!
//! # What a peer may not do
//! Everything a peer writes is checked before it is used: message sizes and types, the
//! order of the handshake, region indices (in sequence, fewer than [`MAX_REGIONS`]), region
//! sizes (no larger than the file passed with them, so no access can fault), rings (inside
//! their region, aligned, the cookie in place, at most 2^14 descriptors), and, on every burst,
//! each descriptor's region, offset and length (a descriptor that points outside its region
//! drops its frame and counts an error) and the peer's ring index (a peer that claims more
//! descriptors than the ring holds is counted and ignored). A refused handshake sends
//! DISCONNECT with the reason, as DPDK does, and logs it.
//!
//! # Processes
//! Every queue's state that must survive a change of process lives in shared memory: the
//! ring indices in the memif rings themselves, the client's receive cursor in the queue's
//! driver words of the port table, and the link generation (odd while connected) in every
//! queue's driver words, written by the control thread. A secondary that sees a generation
//! it has not mapped asks the primary over IPC for the connection's regions (their memfds,
//! `SCM_RIGHTS`) and layout, and maps them; DPDK's `net_memif` does the same.
//!
//! # Kills
//! A process killed inside a burst leaves the ring index it had not stored yet: the next
//! poller of the queue repeats the burst from the same place (a receive copies the same
//! frames again; the mbufs the dead process held are returned by the reaper), so nothing is
//! lost. A primary killed takes the control channel with it: the peer sees the socket close
//! and goes down, as the group does. A peer killed anywhere leaves only memory that our
//! checks keep us inside.
//!
//! # Orderings
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | P | the producer's head (c2s, client) or tail (s2c, server) store after filling descriptors and buffers | the consumer's load of it before reading them | frame bytes and descriptors |
//! | C | the consumer's tail (c2s, server) or head (s2c, client refill) store after reading | the producer's load before reusing the slots | slots are not overwritten while read |
//! | G | the control thread's store of the link generation after publishing the connection | each burst's load of it | the connection's mappings are set up before a burst uses them |
//!
//! Indices are free-running `u16`s, masked by the ring size; `head - tail` (wrapping) is the
//! number of filled (c2s) or posted (s2c) descriptors, never more than the ring size from an
//! honest peer.
//!
//! Why not a crate: no Rust memif implementation was at hand that speaks DPDK's variant and
//! can hand its regions to another process; the wire format is small (`msg`).
//!
//! [`ports`]: crate::ethdev::ports

mod msg;

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering as O};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};

use self::msg::{Msg, COOKIE, MODE_ETHERNET, MSG_SIZE, RING_C2S, VERSION};
use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::spec::{DriverArgs, MIN_FRAME};
use crate::ethdev::table::{bump, PortTable, TABLE_NAME};
use crate::ethdev::PortId;
use crate::group::Group;
use crate::mbuf::MbufBatch;
use crate::memory::Region;
use crate::memzone::Memzone;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sys::memif::{self as sys, ShmRegion};
use crate::sys::unix_dgram::Addr;

/// Most regions a client may add (DPDK's zero-copy clients add one per memory segment list).
pub(crate) const MAX_REGIONS: usize = 16;
/// Largest ring a peer may offer (log2), as DPDK.
const MAX_LOG2_RING: u8 = 14;
/// Ring header bytes; descriptors follow.
const RING_HDR: usize = 128;
const DESC: usize = 16;
const OFF_FLAGS: usize = 4;
const OFF_HEAD: usize = 6;
const OFF_TAIL: usize = 64;
/// Ring flag: the ring's consumer polls, do not write its eventfd.
const MASK_INT: u16 = 1;
/// Descriptor flag: the frame goes on in the next descriptor.
const DESC_NEXT: u16 = 1;

/// Queue driver words: the link generation (odd while connected), written by the control
/// thread in every rx and tx queue.
const W_GEN: usize = 7;
/// Receive queue words of a client: its cursor in the s2c ring, and the generation it is for.
const W_CURSOR: usize = 0;
const W_CURSOR_GEN: usize = 1;

/// How long a handshake may take before the peer is dropped.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How often a client without a server tries again.
const RETRY: Duration = Duration::from_millis(200);
/// How long a secondary waits for the primary's answer with a connection's regions.
const IPC_TIMEOUT: Duration = Duration::from_secs(5);
/// IPC action that hands a memif connection's regions to a secondary.
const CONN_ACTION: &str = "shoal_memif_conn";

/// Where a ring sits, validated against its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RingAt {
    region: usize,
    off: usize,
    log2: u8,
    /// Client only: offset (region 0) of the buffer of descriptor 0; descriptor j's buffer
    /// follows at `buf + j * bsize`.
    buf: usize,
}

impl RingAt {
    fn size(&self) -> u16 {
        1u16 << self.log2
    }
    fn bytes(log2: u8) -> usize {
        RING_HDR + (DESC << log2)
    }
    fn desc(&self, slot: u16) -> usize {
        self.off + RING_HDR + DESC * (slot & (self.size() - 1)) as usize
    }
}

/// A descriptor as read from a ring.
#[derive(Debug, Clone, Copy)]
struct Desc {
    flags: u16,
    region: u16,
    length: u32,
    offset: u32,
}

impl Desc {
    fn decode(b: &[u8; DESC]) -> Desc {
        Desc {
            flags: u16::from_le_bytes([b[0], b[1]]),
            region: u16::from_le_bytes([b[2], b[3]]),
            length: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            offset: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        }
    }
    fn encode(&self) -> [u8; DESC] {
        let mut b = [0u8; DESC];
        b[0..2].copy_from_slice(&self.flags.to_le_bytes());
        b[2..4].copy_from_slice(&self.region.to_le_bytes());
        b[4..8].copy_from_slice(&self.length.to_le_bytes());
        b[8..12].copy_from_slice(&self.offset.to_le_bytes());
        b
    }
}

/// One connection as this process sees it: the mapped regions and where each queue's ring
/// is. Immutable; replaced as a whole when the link changes.
#[derive(Debug)]
struct Conn {
    generation: u64,
    client: bool,
    bsize: u32,
    regions: Vec<ShmRegion>,
    /// Per receive queue: the ring it reads (client: s2c; server: c2s).
    rx: Vec<Option<RingAt>>,
    /// Per transmit queue: the ring it fills (client: c2s; server: s2c).
    tx: Vec<Option<RingAt>>,
    /// Per transmit queue: the eventfd to write when the peer asks for interrupts.
    kick: Vec<Option<OwnedFd>>,
}

impl Conn {
    fn idx(&self, r: &RingAt, at: usize) -> Option<&AtomicU16> {
        self.regions.get(r.region)?.atomic_u16(r.off + at)
    }

    fn read_desc(&self, r: &RingAt, slot: u16) -> Option<Desc> {
        let mut b = [0u8; DESC];
        self.regions[r.region]
            .read(r.desc(slot), &mut b)
            .then(|| Desc::decode(&b))
    }

    fn write_desc(&self, r: &RingAt, slot: u16, d: &Desc) {
        self.regions[r.region].write(r.desc(slot), &d.encode());
    }

    /// Checks that every ring is inside its region and aligned, and carries the cookie.
    fn check_rings(&self) -> Result<(), String> {
        for r in self.rx.iter().chain(&self.tx).flatten() {
            let reg = self.regions.get(r.region).ok_or_else(|| {
                format!("a ring in region {} of {}", r.region, self.regions.len())
            })?;
            let end = r.off.checked_add(RingAt::bytes(r.log2));
            if end.is_none_or(|e| e > reg.len()) || !r.off.is_multiple_of(8) {
                return Err(format!(
                    "a ring at offset {} of {} descriptors does not fit its region of {} bytes",
                    r.off,
                    r.size(),
                    reg.len()
                ));
            }
            let cookie = reg.atomic_u32(r.off).map(|c| c.load(O::Acquire));
            if cookie != Some(COOKIE) {
                return Err(format!(
                    "the ring at offset {} has cookie {:#x}, not {COOKIE:#x}",
                    r.off,
                    cookie.unwrap_or(0)
                ));
            }
        }
        Ok(())
    }

    /// Sets head and tail of every ring to 0 and asks the peer not to interrupt our receive
    /// rings (both sides poll). Relaxed: nobody polls the rings yet; the link generation's
    /// Release store (G) publishes them to our bursts, and the CONNECTED message to the peer.
    fn reset_rings(&self) {
        for (r, ours) in self
            .rx
            .iter()
            .map(|r| (r, true))
            .chain(self.tx.iter().map(|r| (r, false)))
        {
            let Some(r) = r else { continue };
            if let Some(h) = self.idx(r, OFF_HEAD) {
                h.store(0, O::Relaxed);
            }
            if let Some(t) = self.idx(r, OFF_TAIL) {
                t.store(0, O::Relaxed);
            }
            if ours {
                if let Some(f) = self.idx(r, OFF_FLAGS) {
                    f.store(MASK_INT, O::Relaxed);
                }
            }
        }
    }

    /// Client: posts every buffer of every s2c ring (head = ring size), so the server can
    /// send at once.
    fn post_all(&self) {
        if !self.client {
            return;
        }
        for r in self.rx.iter().flatten() {
            for j in 0..r.size() {
                self.write_desc(
                    r,
                    j,
                    &Desc {
                        flags: 0,
                        region: r.region as u16,
                        length: self.bsize,
                        offset: (r.buf + j as usize * self.bsize as usize) as u32,
                    },
                );
            }
            if let Some(h) = self.idx(r, OFF_HEAD) {
                // C: the descriptors above are written before the server sees them posted.
                h.store(r.size(), O::Release);
            }
        }
    }

    /// The layout, for a secondary (regions go as fds beside it).
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.generation.to_le_bytes());
        b.push(self.client as u8);
        b.extend(self.bsize.to_le_bytes());
        b.extend((self.regions.len() as u16).to_le_bytes());
        for r in &self.regions {
            b.extend((r.len() as u64).to_le_bytes());
        }
        for q in [&self.rx, &self.tx] {
            b.extend((q.len() as u16).to_le_bytes());
            for r in q {
                match r {
                    None => b.push(0),
                    Some(r) => {
                        b.push(1);
                        b.extend((r.region as u16).to_le_bytes());
                        b.extend((r.off as u64).to_le_bytes());
                        b.push(r.log2);
                        b.extend((r.buf as u64).to_le_bytes());
                    }
                }
            }
        }
        for k in &self.kick {
            b.push(k.is_some() as u8);
        }
        b
    }

    fn fds(&self) -> Vec<OwnedFd> {
        self.regions
            .iter()
            .filter_map(|r| r.fd().try_clone_to_owned().ok())
            .chain(
                self.kick
                    .iter()
                    .flatten()
                    .filter_map(|k| k.try_clone().ok()),
            )
            .collect()
    }

    /// Rebuilds a connection from [`Conn::encode`]'s bytes and the fds (in a secondary).
    fn decode(b: &[u8], fds: Vec<OwnedFd>) -> Option<Conn> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8"));
        let generation = u64_(take(8)?);
        let client = take(1)?[0] != 0;
        let bsize = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let nreg = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        if nreg > MAX_REGIONS {
            return None;
        }
        let mut sizes = Vec::new();
        for _ in 0..nreg {
            sizes.push(u64_(take(8)?));
        }
        let mut qs: [Vec<Option<RingAt>>; 2] = [Vec::new(), Vec::new()];
        for q in &mut qs {
            let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
            for _ in 0..n.min(crate::ethdev::MAX_QUEUES) {
                q.push(match take(1)?[0] {
                    0 => None,
                    _ => Some(RingAt {
                        region: u16::from_le_bytes(take(2)?.try_into().ok()?) as usize,
                        off: u64_(take(8)?) as usize,
                        log2: take(1)?[0].min(MAX_LOG2_RING),
                        buf: u64_(take(8)?) as usize,
                    }),
                });
            }
        }
        let [rx, tx] = qs;
        let has_kick: Vec<bool> = (0..tx.len())
            .map(|_| take(1).map(|k| k[0] != 0))
            .collect::<Option<_>>()?;
        let mut fds = fds.into_iter();
        let mut regions = Vec::new();
        for s in sizes {
            regions.push(ShmRegion::map(File::from(fds.next()?), s).ok()?);
        }
        let kick = has_kick
            .into_iter()
            .map(|k| if k { fds.next() } else { None })
            .collect();
        let c = Conn {
            generation,
            client,
            bsize,
            regions,
            rx,
            tx,
            kick,
        };
        c.check_rings().ok()?;
        Some(c)
    }
}

/// What the control thread and the port's handle share, in the primary.
#[derive(Debug, Default)]
struct Link {
    current: Mutex<Option<Arc<Conn>>>,
    stop: AtomicBool,
}

/// A queue's view in this process: the connection of the generation it last saw.
#[derive(Debug, Default)]
struct View {
    generation: u64,
    conn: Option<Arc<Conn>>,
    /// When a secondary that could not get the connection asks again.
    retry_at: Option<Instant>,
}

/// Where the connection comes from in this process.
enum Source {
    /// The primary's control thread.
    Primary {
        link: Arc<Link>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// The primary, asked over IPC.
    Secondary { group: Group, port: PortId },
}

pub(crate) struct Memif {
    source: Source,
    table: Region,
    port: usize,
    rxv: Vec<Mutex<View>>,
    txv: Vec<Mutex<View>>,
}

/// Settings of a port.
#[derive(Debug, Clone)]
struct Cfg {
    name: String,
    server: bool,
    addr: Addr,
    shown: String,
    id: u32,
    secret: Option<String>,
    log2: u8,
    bsize: u16,
    nb_rxq: usize,
    nb_txq: usize,
}

fn cfg_of(name: &str, args: &DriverArgs, nb_rxq: u16, nb_txq: u16) -> Result<Cfg, String> {
    let DriverArgs::Memif {
        server,
        socket,
        abstract_ns,
        id,
        secret,
        log2_ring_size,
        buffer_size,
        ..
    } = args
    else {
        return Err("not a memif spec".into());
    };
    Ok(Cfg {
        name: name.to_owned(),
        server: *server,
        addr: sys::sock_addr(socket, *abstract_ns),
        shown: if *abstract_ns {
            format!("@{socket}")
        } else {
            socket.clone()
        },
        id: *id,
        secret: secret.clone().filter(|s| !s.is_empty()),
        log2: *log2_ring_size,
        bsize: *buffer_size,
        nb_rxq: nb_rxq as usize,
        nb_txq: nb_txq as usize,
    })
}

fn table_of(group: &Group) -> Result<Region, String> {
    let mz = Memzone::lookup(group, TABLE_NAME).map_err(|e| format!("the port table: {e}"))?;
    let r = mz.region().clone();
    r.get::<PortTable>(0)
        .ok_or_else(|| "the port table has the wrong size".to_string())?;
    Ok(r)
}

/// The primary's memif links of one group membership (its state in the [`Group`]), by port,
/// for the IPC action that hands a secondary the current connection.
#[derive(Default)]
struct Links(Mutex<Vec<(u16, Weak<Link>)>>);

impl Links {
    fn lock(&self) -> MutexGuard<'_, Vec<(u16, Weak<Link>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn register_action(group: &Group) -> Result<(), String> {
    let Some(mp) = group.mp() else { return Ok(()) };
    let links = group.state::<Links>();
    let res = mp.action_register(CONN_ACTION, move |m, peer| {
        let conn = (|| {
            let id = u16::from_le_bytes(m.param().get(..2)?.try_into().ok()?);
            let link = links.lock().iter().find(|(i, _)| *i == id)?.1.upgrade()?;
            let c = link
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            c
        })();
        let reply = match conn {
            Some(c) => crate::mp::Message::with_fds(CONN_ACTION, &c.encode(), c.fds()),
            None => crate::mp::Message::new(CONN_ACTION, b"down"),
        };
        if let Ok(r) = reply {
            let _ = peer.reply(&r);
        }
    });
    match res {
        Ok(()) | Err(crate::mp::Error::ActionExists(_)) => Ok(()),
        Err(e) => Err(format!("registering the memif IPC action: {e}")),
    }
}

impl Memif {
    /// Sets the port up in the primary: binds (server) and starts the control thread.
    pub fn probe(
        group: &Group,
        id: PortId,
        name: &str,
        args: &DriverArgs,
        nb_rxq: u16,
        nb_txq: u16,
    ) -> Result<Memif, String> {
        let cfg = cfg_of(name, args, nb_rxq, nb_txq)?;
        let table = table_of(group)?;
        let port = id.0 as usize;
        {
            let t: &PortTable = table.get(0).expect("checked");
            for q in t.ports[port].rxq.iter() {
                for w in &q.drv {
                    w.store(0, Ordering::Relaxed);
                }
            }
            for q in t.ports[port].txq.iter() {
                q.drv[W_GEN].store(0, Ordering::Relaxed);
            }
        }
        let listener = if cfg.server { Some(bind(&cfg)?) } else { None };
        register_action(group)?;
        let link = Arc::new(Link::default());
        {
            let links = group.state::<Links>();
            let mut links = links.lock();
            links.retain(|(_, w)| w.strong_count() > 0);
            links.push((id.0, Arc::downgrade(&link)));
        }
        let ctl = Control {
            cfg: cfg.clone(),
            link: link.clone(),
            table: table.clone(),
            port,
            generation: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("memif-{}", id.0))
            .spawn(move || ctl.run(listener))
            .map_err(|e| format!("starting the control thread: {e}"))?;
        tracing::debug!(target: "shoal::ethdev", "{name}: memif {} on {}, id {}", if cfg.server { "server" } else { "client" }, cfg.shown, cfg.id);
        Ok(Memif {
            source: Source::Primary {
                link,
                thread: Some(thread),
            },
            table,
            port,
            rxv: (0..nb_rxq).map(|_| Mutex::default()).collect(),
            txv: (0..nb_txq).map(|_| Mutex::default()).collect(),
        })
    }

    /// Reaches the primary's port from a secondary.
    pub fn attach(group: &Group, id: PortId, nb_rxq: u16, nb_txq: u16) -> Result<Memif, String> {
        Ok(Memif {
            source: Source::Secondary {
                group: group.clone(),
                port: id,
            },
            table: table_of(group)?,
            port: id.0 as usize,
            rxv: (0..nb_rxq).map(|_| Mutex::default()).collect(),
            txv: (0..nb_txq).map(|_| Mutex::default()).collect(),
        })
    }

    fn table(&self) -> &PortTable {
        self.table.get(0).expect("checked at probe")
    }

    /// The connection of the current generation, as this process can have it.
    fn conn_now(&self) -> Option<Arc<Conn>> {
        match &self.source {
            Source::Primary { link, .. } => link
                .current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            Source::Secondary { group, port } => {
                let mp = group.mp()?;
                let req = crate::mp::Message::new(CONN_ACTION, &port.0.to_le_bytes()).ok()?;
                let reply = mp.request_sync(&req, IPC_TIMEOUT).ok()?;
                let mut m = reply.msgs.into_iter().next()?;
                let fds = m.take_fds();
                let c = Conn::decode(m.param(), fds);
                if c.is_none() {
                    tracing::warn!(target: "shoal::ethdev", "port {}: the primary's memif connection could not be mapped here", port.0);
                }
                c.map(Arc::new)
            }
        }
    }

    /// The queue's view, refreshed when the generation moved; None while the link is down
    /// or another thread polls the queue.
    fn view<'a>(&self, v: &'a Mutex<View>, gen_word: &AtomicU64) -> Option<MutexGuard<'a, View>> {
        // G: pairs with the control thread's Release store of the generation.
        let g = gen_word.load(Ordering::Acquire);
        if g & 1 == 0 {
            return None;
        }
        let mut view = match v.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let retry = view.conn.is_none() && view.retry_at.is_some_and(|t| Instant::now() >= t);
        if view.generation != g || retry {
            view.conn = None;
            view.generation = g;
            view.retry_at = None;
            match self.conn_now() {
                Some(c) => {
                    view.generation = c.generation;
                    view.conn = Some(c);
                }
                // The primary did not answer, or had no connection at that instant: ask again
                // in a while, not on every burst.
                None => view.retry_at = Some(Instant::now() + RETRY),
            }
        }
        view.conn.as_ref()?;
        Some(view)
    }
}

impl Drop for Memif {
    fn drop(&mut self) {
        if let Source::Primary { link, thread } = &mut self.source {
            // Relaxed: a flag the thread polls; join() below is the synchronisation.
            link.stop.store(true, O::Relaxed);
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Driver for Memif {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let Some(v) = self.rxv.get(q) else { return 0 };
        let Some(view) = self.view(v, &cx.q.drv[W_GEN]) else {
            return 0;
        };
        let conn = view.conn.as_ref().expect("view has a connection");
        let Some(r) = conn.rx.get(q).copied().flatten() else {
            return 0;
        };
        rx(conn, &r, cx, batch, max)
    }

    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let Some(v) = self.txv.get(q) else { return 0 };
        let Some(view) = self.view(v, &cx.q.drv[W_GEN]) else {
            return 0;
        };
        let conn = view.conn.as_ref().expect("view has a connection");
        let Some(r) = conn.tx.get(q).copied().flatten() else {
            return 0;
        };
        let n = tx(conn, &r, cx, batch);
        if n > 0 {
            let wants = conn
                .idx(&r, OFF_FLAGS)
                // Relaxed: a hint; a missed change costs one interrupt more or less.
                .is_some_and(|f| f.load(O::Relaxed) & MASK_INT == 0);
            if let (true, Some(Some(k))) = (wants, conn.kick.get(q)) {
                sys::kick(k.as_fd());
            }
        }
        n
    }

    fn link_up(&self) -> bool {
        self.table().ports[self.port].rxq[0].drv[W_GEN].load(Ordering::Relaxed) & 1 == 1
    }
}

/// Receives from ring `r` (client: s2c, whose cursor is in the queue's words; server: c2s,
/// whose tail is ours).
fn rx(conn: &Conn, r: &RingAt, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
    let (Some(head), Some(tail)) = (conn.idx(r, OFF_HEAD), conn.idx(r, OFF_TAIL)) else {
        return 0;
    };
    let size = r.size();
    let (mut cur, last) = if conn.client {
        let mut cur = cx.q.drv[W_CURSOR].load(Ordering::Relaxed) as u16;
        if cx.q.drv[W_CURSOR_GEN].load(Ordering::Relaxed) != conn.generation {
            cur = 0;
            cx.q.drv[W_CURSOR_GEN].store(conn.generation, Ordering::Relaxed);
        }
        // P: pairs with the server's Release store of tail after filling.
        (cur, tail.load(O::Acquire))
    } else {
        // P: pairs with the client's Release store of head after filling.
        // tail is ours (server): only this queue's poller writes it.
        (tail.load(O::Relaxed), head.load(O::Acquire))
    };
    let mut avail = last.wrapping_sub(cur);
    if avail > size {
        // The peer claims more than the ring holds.
        bump(&cx.q.errors, 1);
        avail = 0;
    }
    let mut n = 0;
    while avail > 0 && n < max {
        // The frame: one descriptor, or a chain of them (NEXT).
        let Some(mut m) = cx.pool.alloc() else {
            bump(&cx.q.nombuf, 1);
            break;
        };
        let room = m.tailroom() as usize;
        let (mut len, mut used, mut bad) = (0usize, 0u16, false);
        loop {
            let Some(d) = conn.read_desc(r, cur.wrapping_add(used)) else {
                bad = true;
                used += 1;
                break;
            };
            used += 1;
            let (reg, off) = if conn.client {
                // Our own buffer for this slot, whatever the server wrote in the descriptor.
                (
                    r.region,
                    r.buf
                        + (cur.wrapping_add(used - 1) & (size - 1)) as usize * conn.bsize as usize,
                )
            } else {
                (d.region as usize, d.offset as usize)
            };
            let dlen = d.length as usize;
            if (conn.client && dlen > conn.bsize as usize) || len + dlen > room {
                bad = true;
            } else if !bad {
                // Straight from the peer's buffer into the mbuf (one copy); a region or range
                // the peer made up fails the bounds check and drops the frame.
                let ok = match (conn.regions.get(reg), m.append(dlen as u16)) {
                    (Some(region), Some(dst)) => region.read(off, dst),
                    _ => false,
                };
                bad = !ok;
                len += dlen;
            }
            if d.flags & DESC_NEXT == 0 || used >= avail {
                if d.flags & DESC_NEXT != 0 {
                    // A chain that runs past what the peer has filled.
                    bad = true;
                }
                break;
            }
        }
        cur = cur.wrapping_add(used);
        avail -= used;
        if bad || len < MIN_FRAME {
            bump(&cx.q.errors, 1);
            continue;
        }
        m.set_port(cx.port);
        if batch.push(m).is_err() {
            break;
        }
        n += 1;
    }
    if conn.client {
        cx.q.drv[W_CURSOR].store(cur as u64, Ordering::Relaxed);
        // Refill: post every consumed buffer back to the server.
        // head is ours (client): only this queue's poller writes it.
        let mut h = head.load(O::Relaxed);
        let mut post = size.wrapping_sub(h.wrapping_sub(cur));
        if post > size {
            post = 0;
        }
        while post > 0 {
            conn.write_desc(
                r,
                h,
                &Desc {
                    flags: 0,
                    region: r.region as u16,
                    length: conn.bsize,
                    offset: (r.buf + (h & (size - 1)) as usize * conn.bsize as usize) as u32,
                },
            );
            h = h.wrapping_add(1);
            post -= 1;
        }
        // C: pairs with the server's Acquire load of head; the descriptors above are set.
        head.store(h, O::Release);
    } else {
        // C: pairs with the client's Acquire load of tail; we are done reading the slots.
        tail.store(cur, O::Release);
    }
    n
}

/// Sends on ring `r` (client: c2s, into our own buffers; server: s2c, into the buffers the
/// client posted).
fn tx(conn: &Conn, r: &RingAt, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
    let (Some(head), Some(tail)) = (conn.idx(r, OFF_HEAD), conn.idx(r, OFF_TAIL)) else {
        return 0;
    };
    let size = r.size();
    let (mut slot, mut free) = if conn.client {
        // head is ours (client).
        let h = head.load(O::Relaxed);
        // C: pairs with the server's Release store of tail.
        let t = tail.load(O::Acquire);
        (h, size.wrapping_sub(h.wrapping_sub(t)))
    } else {
        // tail is ours (server).
        let t = tail.load(O::Relaxed);
        // C: pairs with the client's Release store of head (buffers posted).
        let h = head.load(O::Acquire);
        (t, h.wrapping_sub(t))
    };
    if free > size {
        bump(&cx.q.errors, 1);
        free = 0;
    }
    let (mut taken, mut sent, mut bytes, mut dropped) = (0usize, 0u64, 0u64, 0u64);
    for m in batch.iter() {
        if free == 0 {
            break;
        }
        // Descriptors this frame needs, and the buffers they point to.
        let start = slot;
        let mut used = 0u16;
        let mut ok = true;
        let mut cur: Option<(Desc, usize, usize, usize)> = None; // (desc, region, offset, capacity)
        let mut fill = 0usize;
        for seg in m.segments() {
            let mut s = seg;
            while !s.is_empty() {
                if cur.as_ref().is_none_or(|c| fill == c.3) {
                    if let Some((mut d, ..)) = cur.take() {
                        d.flags |= DESC_NEXT;
                        d.length = fill as u32;
                        conn.write_desc(r, slot.wrapping_add(used - 1), &d);
                    }
                    if used == free {
                        ok = false;
                        break;
                    }
                    let sl = slot.wrapping_add(used);
                    used += 1;
                    fill = 0;
                    cur = Some(if conn.client {
                        let off = r.buf + (sl & (size - 1)) as usize * conn.bsize as usize;
                        (
                            Desc {
                                flags: 0,
                                region: r.region as u16,
                                length: 0,
                                offset: off as u32,
                            },
                            r.region,
                            off,
                            conn.bsize as usize,
                        )
                    } else {
                        match conn.read_desc(r, sl) {
                            Some(d) => (
                                Desc { flags: 0, ..d },
                                d.region as usize,
                                d.offset as usize,
                                d.length as usize,
                            ),
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    });
                }
                let c = cur.as_ref().expect("set above");
                let k = s.len().min(c.3 - fill);
                if k == 0
                    || !conn
                        .regions
                        .get(c.1)
                        .is_some_and(|g| g.write(c.2 + fill, &s[..k]))
                {
                    ok = false;
                    break;
                }
                fill += k;
                s = &s[k..];
            }
            if !ok {
                break;
            }
        }
        if let Some((mut d, ..)) = cur {
            d.length = fill as u32;
            conn.write_desc(r, slot.wrapping_add(used.max(1) - 1), &d);
        }
        if ok && used > 0 {
            slot = start.wrapping_add(used);
            free -= used;
            sent += 1;
            bytes += m.pkt_len() as u64;
            taken += 1;
        } else if used == free && used > 0 && !ok {
            // Not enough descriptors for the whole frame: it waits for the next burst.
            break;
        } else {
            // A descriptor of the peer's that points outside its region: the frame is
            // dropped; the slots it used go out empty.
            if !conn.client && used > 0 {
                for i in 0..used {
                    if let Some(d) = conn.read_desc(r, start.wrapping_add(i)) {
                        conn.write_desc(
                            r,
                            start.wrapping_add(i),
                            &Desc {
                                flags: 0,
                                length: 0,
                                ..d
                            },
                        );
                    }
                }
                slot = start.wrapping_add(used);
                free -= used;
            }
            dropped += 1;
            taken += 1;
        }
    }
    if sent > 0 || dropped > 0 {
        // P: pairs with the consumer's Acquire load; descriptors and bytes are written.
        if conn.client {
            head.store(slot, O::Release);
        } else {
            tail.store(slot, O::Release);
        }
    }
    drop(batch.drain(..taken));
    bump(&cx.q.packets, sent);
    bump(&cx.q.bytes, bytes);
    bump(&cx.q.errors, dropped);
    taken
}

/// Binds the server's socket. A socket file that nobody listens on any more (left by a
/// killed server) is replaced; one with a live server behind it is an error.
fn bind(cfg: &Cfg) -> Result<OwnedFd, String> {
    match sys::listen(&cfg.addr) {
        Ok(l) => Ok(l),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            if let Addr::Path(p) = &cfg.addr {
                if sys::connect(&cfg.addr).is_err() {
                    let _ = std::fs::remove_file(p);
                    return sys::listen(&cfg.addr)
                        .map_err(|e| format!("listening on {}: {e}", cfg.shown));
                }
            }
            Err(format!(
                "socket {} is in use by a live memif server (another process listens on it)",
                cfg.shown
            ))
        }
        Err(e) => Err(format!("listening on {}: {e}", cfg.shown)),
    }
}

/// Why a connection ended: what we tell the peer (if anything) and log.
struct End {
    /// Sent to the peer in a DISCONNECT (None: the peer is gone or sent one).
    tell: Option<String>,
    why: String,
}

fn refuse(why: impl Into<String>) -> End {
    let why = why.into();
    End {
        tell: Some(why.clone()),
        why,
    }
}

fn gone(why: impl Into<String>) -> End {
    End {
        tell: None,
        why: why.into(),
    }
}

/// The primary's control thread of one port.
struct Control {
    cfg: Cfg,
    link: Arc<Link>,
    table: Region,
    port: usize,
    generation: u64,
}

impl Control {
    fn stopping(&self) -> bool {
        self.link.stop.load(O::Relaxed)
    }

    fn publish_generation(&self) {
        let t: &PortTable = self.table.get(0).expect("checked");
        let p = &t.ports[self.port];
        // G: the connection (or its absence) is published before the new generation.
        for q in p.rxq.iter() {
            q.drv[W_GEN].store(self.generation, Ordering::Release);
        }
        for q in p.txq.iter() {
            q.drv[W_GEN].store(self.generation, Ordering::Release);
        }
    }

    fn up(&mut self, mut conn: Conn, peer: &str) -> Arc<Conn> {
        self.generation += 1;
        conn.generation = self.generation;
        let conn = Arc::new(conn);
        *self.link.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        self.publish_generation();
        let rings = |q: &[Option<RingAt>]| q.iter().flatten().count();
        tracing::info!(target: "shoal::ethdev", "{}: memif connected to {peer:?} on {} ({} rx, {} tx rings of {} descriptors)", self.cfg.name, self.cfg.shown, rings(&conn.rx), rings(&conn.tx), conn.rx.iter().chain(&conn.tx).flatten().next().map_or(0, |r| r.size()));
        conn
    }

    fn down(&mut self, why: &str) {
        if self.generation & 1 == 1 {
            self.generation += 1;
            self.publish_generation();
            tracing::info!(target: "shoal::ethdev", "{}: memif link down: {why}", self.cfg.name);
        }
        *self.link.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn run(mut self, listener: Option<OwnedFd>) {
        let mut waiting_logged = false;
        let mut last_refusal: Option<String> = None;
        while !self.stopping() {
            let sock = match &listener {
                Some(l) => {
                    if !sys::poll_in(&[l.as_fd()], 100)[0] {
                        continue;
                    }
                    match sys::accept(l.as_fd()) {
                        Ok(Some(s)) => s,
                        Ok(None) => continue,
                        Err(e) => {
                            // Out of descriptors, say: do not spin on a readable listener.
                            tracing::warn!(target: "shoal::ethdev", "{}: accepting a memif peer: {e}", self.cfg.name);
                            self.sleep(RETRY);
                            continue;
                        }
                    }
                }
                None => match sys::connect(&self.cfg.addr) {
                    Ok(s) => {
                        waiting_logged = false;
                        s
                    }
                    Err(e) => {
                        if !waiting_logged {
                            tracing::info!(target: "shoal::ethdev", "{}: waiting for a memif server on {} ({e})", self.cfg.name, self.cfg.shown);
                            waiting_logged = true;
                        }
                        self.sleep(RETRY);
                        continue;
                    }
                },
            };
            let end = if self.cfg.server {
                self.serve(&sock, listener.as_ref())
            } else {
                self.client(&sock)
            };
            if let Some(t) = &end.tell {
                let _ = sys::send_msg(
                    sock.as_fd(),
                    &Msg::Disconnect {
                        code: 0,
                        reason: t.clone(),
                    }
                    .encode(),
                    None,
                );
            }
            if self.generation & 1 == 0 && !self.stopping() {
                // The same refusal again (a client retrying a server that will not have it):
                // logged once.
                if last_refusal.as_deref() != Some(end.why.as_str()) {
                    tracing::warn!(target: "shoal::ethdev", "{}: memif peer on {} refused: {}", self.cfg.name, self.cfg.shown, end.why);
                    last_refusal = Some(end.why.clone());
                }
            } else {
                last_refusal = None;
            }
            self.down(&end.why);
            drop(sock);
            if !self.cfg.server && !self.stopping() {
                // A server that refused us would refuse again at once: do not spin.
                self.sleep(Duration::from_secs(1));
            }
        }
        if let (Some(_), Addr::Path(p)) = (&listener, &self.cfg.addr) {
            let _ = std::fs::remove_file(p);
        }
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Receives one message, waiting until `deadline` (None: for ever, while not stopping).
    fn recv(&self, s: &OwnedFd, deadline: Option<Instant>) -> Result<(Msg, Vec<OwnedFd>), End> {
        loop {
            if self.stopping() {
                return Err(refuse("Device closed"));
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(refuse("Handshake timed out"));
            }
            if !sys::poll_in(&[s.as_fd()], 100)[0] {
                continue;
            }
            let mut buf = [0u8; MSG_SIZE + 1];
            match sys::recv_msg(s.as_fd(), &mut buf) {
                Ok(r) if r.len == 0 => return Err(gone("the peer closed the connection")),
                Ok(r) => {
                    let len = if r.truncated { buf.len() + 1 } else { r.len };
                    return match Msg::parse(&buf[..r.len.min(MSG_SIZE + 1)]) {
                        Ok(Msg::Disconnect { reason, .. }) => {
                            Err(gone(format!("the peer disconnected: {reason}")))
                        }
                        Ok(m) => Ok((m, r.fds)),
                        Err(msg::ParseError::Size(_)) => Err(refuse(format!(
                            "Invalid message size ({len} bytes, not {MSG_SIZE})"
                        ))),
                        Err(e) => Err(refuse(e.to_string())),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(gone(format!("the control socket failed: {e}"))),
            }
        }
    }

    fn send(
        &self,
        s: &OwnedFd,
        m: &Msg,
        fd: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<(), End> {
        sys::send_msg(s.as_fd(), &m.encode(), fd)
            .map_err(|e| gone(format!("sending {}: {e}", m.name())))
    }

    /// Server side of one connection, until it ends.
    fn serve(&mut self, s: &OwnedFd, listener: Option<&OwnedFd>) -> End {
        let deadline = Some(Instant::now() + HANDSHAKE);
        if let Err(e) = self.send(
            s,
            &Msg::Hello {
                name: "shoal".into(),
                min_version: VERSION,
                max_version: VERSION,
                max_region: (MAX_REGIONS - 1) as u16,
                max_s2c_ring: (self.cfg.nb_txq - 1) as u16,
                max_c2s_ring: (self.cfg.nb_rxq - 1) as u16,
                max_log2_ring_size: MAX_LOG2_RING,
            },
            None,
        ) {
            return e;
        }
        let peer = match self.recv(s, deadline) {
            Err(e) => return e,
            Ok((
                Msg::Init {
                    version,
                    id,
                    mode,
                    secret,
                    name,
                },
                _,
            )) => {
                if version != VERSION {
                    return refuse(format!("Incompatible memif version {version:#06x}"));
                }
                if id != self.cfg.id {
                    return refuse("ID not found");
                }
                if mode != MODE_ETHERNET {
                    return refuse("Only ethernet mode supported");
                }
                if let Some(want) = &self.cfg.secret {
                    if secret[0] == 0 {
                        return refuse("Secret required");
                    }
                    if secret != msg::secret_bytes(want) {
                        return refuse("Incorrect secret");
                    }
                }
                name
            }
            Ok((m, _)) => return refuse(format!("Unexpected message {} (INIT first)", m.name())),
        };
        if let Err(e) = self.send(s, &Msg::Ack, None) {
            return e;
        }
        let mut regions: Vec<ShmRegion> = Vec::new();
        let mut rx: Vec<Option<RingAt>> = vec![None; self.cfg.nb_rxq];
        let mut tx: Vec<Option<RingAt>> = vec![None; self.cfg.nb_txq];
        let mut kick: Vec<Option<OwnedFd>> = (0..self.cfg.nb_txq).map(|_| None).collect();
        let if_name = loop {
            let (m, mut fds) = match self.recv(s, deadline) {
                Ok(x) => x,
                Err(e) => return e,
            };
            match m {
                Msg::AddRegion { index, size } => {
                    let Some(fd) = fds.pop() else {
                        return refuse("Missing region fd");
                    };
                    if index as usize != regions.len() || regions.len() >= MAX_REGIONS {
                        return refuse(format!("Invalid region index {index}"));
                    }
                    match ShmRegion::map(File::from(fd), size) {
                        Ok(r) => regions.push(r),
                        Err(_) => {
                            return refuse(format!(
                                "Region {index} of {size} bytes is larger than its file (or empty)"
                            ))
                        }
                    }
                }
                Msg::AddRing {
                    flags,
                    index,
                    region,
                    offset,
                    log2_ring_size,
                    ..
                } => {
                    let Some(fd) = fds.pop() else {
                        return refuse("Missing interrupt fd");
                    };
                    let c2s = flags & RING_C2S != 0;
                    let qs = if c2s { &mut rx } else { &mut tx };
                    let Some(slot) = qs.get_mut(index as usize) else {
                        return refuse(format!("Invalid ring index {index}"));
                    };
                    if slot.is_some() {
                        return refuse(format!("Ring {index} added twice"));
                    }
                    if !(1..=MAX_LOG2_RING).contains(&log2_ring_size) {
                        return refuse(format!("Invalid ring size 2^{log2_ring_size}"));
                    }
                    let Some(reg) = regions.get(region as usize) else {
                        return refuse(format!("Ring {index} in unknown region {region}"));
                    };
                    let off = offset as usize;
                    if !off.is_multiple_of(8) || off + RingAt::bytes(log2_ring_size) > reg.len() {
                        return refuse(format!(
                            "Ring {index} at offset {offset} does not fit region {region} ({} bytes)",
                            reg.len()
                        ));
                    }
                    *slot = Some(RingAt {
                        region: region as usize,
                        off,
                        log2: log2_ring_size,
                        buf: 0,
                    });
                    if !c2s {
                        kick[index as usize] = Some(fd);
                    }
                }
                Msg::Connect { if_name } => break if_name,
                m => return refuse(format!("Unexpected message {}", m.name())),
            }
            if let Err(e) = self.send(s, &Msg::Ack, None) {
                return e;
            }
        };
        let conn = Conn {
            generation: 0,
            client: false,
            bsize: 0,
            regions,
            rx,
            tx,
            kick,
        };
        if let Err(e) = conn.check_rings() {
            return refuse(format!("Wrong ring: {e}"));
        }
        conn.reset_rings();
        let conn = self.up(conn, &format!("{peer} ({if_name})"));
        if let Err(e) = self.send(
            s,
            &Msg::Connected {
                if_name: self.cfg.name.clone(),
            },
            None,
        ) {
            return e;
        }
        drop(conn);
        self.watch(s, listener)
    }

    /// While connected: answers nothing but DISCONNECT or the end of the socket; a second
    /// client is told the interface is taken.
    fn watch(&self, s: &OwnedFd, listener: Option<&OwnedFd>) -> End {
        loop {
            if self.stopping() {
                return refuse("Device closed");
            }
            let mut fds = vec![s.as_fd()];
            if let Some(l) = listener {
                fds.push(l.as_fd());
            }
            let ready = sys::poll_in(&fds, 100);
            if ready.get(1) == Some(&true) {
                if let Some(l) = listener {
                    if let Ok(Some(other)) = sys::accept(l.as_fd()) {
                        let _ = sys::send_msg(
                            other.as_fd(),
                            &Msg::Disconnect {
                                code: 0,
                                reason: "Already connected".into(),
                            }
                            .encode(),
                            None,
                        );
                    }
                }
            }
            if ready[0] {
                match self.recv(s, None) {
                    Err(e) => return e,
                    Ok((m, _)) => {
                        return refuse(format!("Unexpected message {} while connected", m.name()))
                    }
                }
            }
        }
    }

    /// Client side of one connection, until it ends.
    fn client(&mut self, s: &OwnedFd) -> End {
        let deadline = Some(Instant::now() + HANDSHAKE);
        let (peer, max_s2c, max_c2s, max_log2) = match self.recv(s, deadline) {
            Err(e) => return e,
            Ok((
                Msg::Hello {
                    name,
                    min_version,
                    max_version,
                    max_s2c_ring,
                    max_c2s_ring,
                    max_log2_ring_size,
                    ..
                },
                _,
            )) => {
                if min_version > VERSION || max_version < VERSION {
                    return refuse("Incompatible memif version");
                }
                (name, max_s2c_ring, max_c2s_ring, max_log2_ring_size)
            }
            Ok((m, _)) => return refuse(format!("Unexpected message {} (HELLO first)", m.name())),
        };
        let n_c2s = self.cfg.nb_txq.min(max_c2s as usize + 1);
        let n_s2c = self.cfg.nb_rxq.min(max_s2c as usize + 1);
        let log2 = self.cfg.log2.min(max_log2.max(1));
        let bsize = self.cfg.bsize as usize;
        let ring_bytes = RingAt::bytes(log2);
        let bufs_at = (n_c2s + n_s2c) * ring_bytes;
        let size = bufs_at + ((n_c2s + n_s2c) << log2) * bsize;
        if size > u32::MAX as usize {
            return refuse("Region too large");
        }
        let region = match sys::memfd("memif_region_0", size as u64)
            .and_then(|f| ShmRegion::map(f, size as u64))
        {
            Ok(r) => r,
            Err(e) => return refuse(format!("Failed to create the shared memory: {e}")),
        };
        let ring = |g: usize| RingAt {
            region: 0,
            off: g * ring_bytes,
            log2,
            buf: bufs_at + (g << log2) * bsize,
        };
        let tx: Vec<Option<RingAt>> = (0..self.cfg.nb_txq)
            .map(|i| (i < n_c2s).then(|| ring(i)))
            .collect();
        let rx: Vec<Option<RingAt>> = (0..self.cfg.nb_rxq)
            .map(|i| (i < n_s2c).then(|| ring(n_c2s + i)))
            .collect();
        for r in tx.iter().chain(&rx).flatten() {
            if let Some(c) = region.atomic_u32(r.off) {
                // Relaxed: the peer maps the region only after our ADD_REGION message.
                c.store(COOKIE, O::Relaxed);
            }
            for j in 0..r.size() {
                region.write(
                    r.desc(j),
                    &Desc {
                        flags: 0,
                        region: 0,
                        length: bsize as u32,
                        offset: (r.buf + j as usize * bsize) as u32,
                    }
                    .encode(),
                );
            }
        }
        let mut events: Vec<OwnedFd> = Vec::new();
        for _ in 0..n_c2s + n_s2c {
            match sys::eventfd() {
                Ok(e) => events.push(e),
                Err(e) => return refuse(format!("Failed to create an eventfd: {e}")),
            }
        }
        let secret = msg::secret_bytes(self.cfg.secret.as_deref().unwrap_or(""));
        let steps: Vec<(Msg, Option<std::os::fd::BorrowedFd<'_>>)> = std::iter::once((
            Msg::Init {
                version: VERSION,
                id: self.cfg.id,
                mode: MODE_ETHERNET,
                secret,
                name: "shoal".into(),
            },
            None,
        ))
        .chain(std::iter::once((
            Msg::AddRegion {
                index: 0,
                size: size as u64,
            },
            Some(region.fd()),
        )))
        .chain((0..n_c2s + n_s2c).map(|g| {
            let c2s = g < n_c2s;
            (
                Msg::AddRing {
                    flags: if c2s { RING_C2S } else { 0 },
                    index: if c2s { g } else { g - n_c2s } as u16,
                    region: 0,
                    offset: (g * ring_bytes) as u32,
                    log2_ring_size: log2,
                    private_hdr_size: 0,
                },
                Some(events[g].as_fd()),
            )
        }))
        .collect();
        for (m, fd) in &steps {
            if let Err(e) = self.send(s, m, *fd) {
                return e;
            }
            match self.recv(s, deadline) {
                Err(e) => return e,
                Ok((Msg::Ack, _)) => {}
                Ok((other, _)) => {
                    return refuse(format!(
                        "Unexpected message {} (ACK to {})",
                        other.name(),
                        m.name()
                    ))
                }
            }
        }
        drop(steps);
        if let Err(e) = self.send(
            s,
            &Msg::Connect {
                if_name: self.cfg.name.clone(),
            },
            None,
        ) {
            return e;
        }
        match self.recv(s, deadline) {
            Err(e) => return e,
            Ok((Msg::Connected { .. }, _)) => {}
            Ok((other, _)) => {
                return refuse(format!(
                    "Unexpected message {} (CONNECTED expected)",
                    other.name()
                ))
            }
        }
        let mut events = events.into_iter().map(Some).collect::<Vec<_>>();
        let kick = (0..self.cfg.nb_txq)
            .map(|i| if i < n_c2s { events[i].take() } else { None })
            .collect();
        let conn = Conn {
            generation: 0,
            client: true,
            bsize: bsize as u32,
            regions: vec![region],
            rx,
            tx,
            kick,
        };
        conn.reset_rings();
        conn.post_all();
        let conn = self.up(conn, &peer);
        drop(conn);
        // The s2c eventfds stay open while connected (the server holds its own copies).
        let _keep = events;
        self.watch(s, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip() {
        let d = Desc {
            flags: DESC_NEXT,
            region: 2,
            length: 1514,
            offset: 0x1234_5678,
        };
        let b = d.encode();
        assert_eq!(
            &b[..12],
            &[1, 0, 2, 0, 0xea, 5, 0, 0, 0x78, 0x56, 0x34, 0x12]
        );
        let back = Desc::decode(&b);
        assert_eq!(
            (back.flags, back.region, back.length, back.offset),
            (1, 2, 1514, 0x1234_5678)
        );
    }

    #[test]
    fn a_layout_that_lies_is_refused_when_decoded() {
        // A region bigger than its file, a ring outside its region.
        let f = sys::memfd("t", 4096).unwrap();
        let r = ShmRegion::map(f, 4096).unwrap();
        let conn = Conn {
            generation: 1,
            client: false,
            bsize: 0,
            regions: vec![r],
            rx: vec![Some(RingAt {
                region: 0,
                off: 4096 - 128,
                log2: 4,
                buf: 0,
            })],
            tx: vec![None],
            kick: vec![None],
        };
        assert!(conn.check_rings().unwrap_err().contains("does not fit"));
        let conn = Conn {
            rx: vec![Some(RingAt {
                region: 0,
                off: 0,
                log2: 4,
                buf: 0,
            })],
            ..conn
        };
        assert!(conn.check_rings().unwrap_err().contains("cookie"));
        conn.regions[0]
            .atomic_u32(0)
            .unwrap()
            .store(COOKIE, O::Relaxed);
        assert!(conn.check_rings().is_ok());
        let bytes = conn.encode();
        let back = Conn::decode(&bytes, conn.fds()).unwrap();
        assert_eq!(back.rx, conn.rx);
        // Truncated layouts never decode (and never panic).
        for n in 0..bytes.len() {
            assert!(Conn::decode(&bytes[..n], conn.fds()).is_none(), "{n}");
        }
    }
}
