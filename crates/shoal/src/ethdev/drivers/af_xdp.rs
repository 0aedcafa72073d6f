//! `net_af_xdp`: a kernel interface through AF_XDP sockets, one per queue, bound to queues
//! `start_queue .. start_queue + queue_count` of the interface. An XDP program assembled in
//! `sys::xdp` redirects each receive queue's frames to its socket through an XSKMAP and lets
//! frames of other queues go on to the kernel's stack. The socket binds in zero-copy mode where
//! the driver has it and in copy mode otherwise (veth); the mode is logged and kept in the
//! port table for `shoal info`.
//!
//! # Memory
//! Each queue has its own UMEM: a page-aligned part of the memzone `xdp_umem_<port>` in the
//! group's shared memory, registered by the primary. Its first [`RX_FRAMES`] frames of
//! [`FRAME`] bytes circulate between the fill and rx rings; the next [`TX_FRAMES`] are the
//! transmit frames, used in ring order: tx ring index `i` always sends from tx frame
//! `i mod TX_FRAMES`, and that frame is free again once the completion ring's producer has
//! passed `i` (completions come in order, one per descriptor: descriptors are checked here, so
//! the kernel never skips one as invalid). So no free list exists anywhere: a queue's whole
//! state is the four rings' indices, which live in the socket's mapping that every process
//! holding the socket shares.
//!
//! Received frames are copied once into mbufs from the port's pool. A copy, not a hand-over:
//! mbuf data rooms (2048 + headroom bytes, pool-sized objects) are not the power-of-two chunks
//! of an aligned UMEM, and the mbuf pool's memory is not registered with the socket; the copy
//! also lets the frame go straight back to the fill ring. Transmitted mbufs are copied into
//! the tx frames likewise.
//!
//! # Processes
//! The primary makes the sockets, the UMEM, the XSKMAP and the program, and attaches the
//! program through a BPF link whose only fd it keeps: stopping the port closes it (the
//! program is detached), starting it again makes a new link, and the primary's death closes
//! it too, so no program outlives the primary. A secondary gets the sockets over IPC (as for
//! `net_af_packet`), maps their rings, finds the UMEM memzone by name, and then receives and
//! sends on its queues exactly as the primary does.
//!
//! # Crash story
//! Receiving moves `n` descriptors from the rx ring to the fill ring: the frame addresses are
//! written into fill slots (unpublished), then the queue's driver words record the two target
//! indices and a flag, then the fill producer and the rx consumer are published, then the
//! flag is cleared. A poller killed before the flag leaves nothing published: the next poller
//! of the queue reads the same descriptors again. Killed after it, the next poller finds the
//! flag and publishes both targets itself (idempotent stores of the same values). Either way
//! every rx frame stays in circulation; the mbufs the dead poller held are returned by the
//! mbuf owner tags as for any dead process. Transmit publishes with one store of the tx
//! producer and the completion consumer is a plain counter, so a kill there leaves nothing to
//! repair. One queue is polled by one process at a time, as everywhere in ethdev.
#![allow(unsafe_code)] // copies between the UMEM (shared with the kernel) and mbufs

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, TryLockError};

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::spec::{DriverArgs, MIN_FRAME};
use crate::ethdev::table::{bump, PortShared};
use crate::group::Group;
use crate::mbuf::MbufBatch;
use crate::memory::Region;
use crate::memzone::Memzone;
use crate::sync::atomic::Ordering;
use crate::sys::packet as pk;
use crate::sys::xdp::{self, RingKind, XskRing};

/// Bytes of a UMEM frame.
pub(crate) const FRAME: u32 = 2048;
/// Receive frames per queue (the fill and rx ring sizes).
pub(crate) const RX_FRAMES: u32 = 2048;
/// Transmit frames per queue (the tx and completion ring sizes).
pub(crate) const TX_FRAMES: u32 = 1024;
/// Bytes of UMEM per queue.
const UMEM_PER_QUEUE: usize = (RX_FRAMES + TX_FRAMES) as usize * FRAME as usize;

/// Receive queue words: the recovery record of a burst in progress.
const W_PENDING: usize = 0;
const W_FILL_TO: usize = 1;
const W_RX_TO: usize = 2;
/// Kernel drop counter last folded into `missed`.
const W_SEEN_DROPS: usize = 3;
/// Transmit queue words: largest frame the interface sends; bind mode (1 copy, 2 zero-copy).
const W_MAX_LEN: usize = 0;
pub(crate) const W_MODE: usize = 1;

/// Name of the memzone that holds a port's UMEMs.
fn umem_name(port: u16) -> String {
    format!("xdp_umem_{port}")
}

struct RxSide {
    rx: XskRing,
    fill: XskRing,
}

struct TxSide {
    tx: XskRing,
    comp: XskRing,
}

enum Queue {
    /// An AF_XDP socket.
    Xsk {
        rx: Box<Mutex<RxSide>>,
        tx: Box<Mutex<TxSide>>,
        /// This queue's UMEM in this process.
        umem: Region,
    },
    /// A transmit-only queue beyond the interface's queues (an application asking for more
    /// transmit queues than the device has, as mp_server does with one per client): a plain
    /// AF_PACKET socket, one `write` per frame.
    Packet(Mutex<()>),
}

/// The program and its map; the link while the port is started. Primary only.
struct Program {
    ifindex: u32,
    map: OwnedFd,
    prog: OwnedFd,
    link: Mutex<Option<OwnedFd>>,
}

pub(crate) struct AfXdp {
    iface: String,
    mac: [u8; 6],
    fds: Arc<Vec<OwnedFd>>,
    queues: Vec<Queue>,
    zero_copy: bool,
    program: Option<Program>,
}

fn args(a: &DriverArgs) -> Result<(&str, u16, u16), String> {
    match a {
        DriverArgs::AfXdp {
            iface,
            start_queue,
            queue_count,
        } => Ok((iface, *start_queue, *queue_count)),
        _ => Err("not an af_xdp spec".into()),
    }
}

fn map_rings(fd: &OwnedFd) -> std::io::Result<(RxSide, TxSide)> {
    let f = fd.as_fd();
    Ok((
        RxSide {
            rx: XskRing::map(f, RingKind::Rx, RX_FRAMES)?,
            fill: XskRing::map(f, RingKind::Fill, RX_FRAMES)?,
        },
        TxSide {
            tx: XskRing::map(f, RingKind::Tx, TX_FRAMES)?,
            comp: XskRing::map(f, RingKind::Completion, TX_FRAMES)?,
        },
    ))
}

impl AfXdp {
    pub fn probe(
        group: &Group,
        port: u16,
        a: &DriverArgs,
        nb_rxq: u16,
        nb_txq: u16,
        shared: &PortShared,
    ) -> Result<AfXdp, String> {
        let (iface, start_queue, _) = args(a)?;
        let queues = nb_rxq.max(nb_txq);
        let ifindex =
            pk::if_index(iface).map_err(|e| format!("interface {iface:?} not found ({e})"))?;
        let mac = pk::if_hwaddr(iface).map_err(|e| format!("interface {iface:?}: {e}"))?;
        let mtu = pk::if_mtu(iface).map_err(|e| format!("interface {iface:?}: {e}"))?;
        let max_len = (mtu as usize + 14).min(FRAME as usize);
        let zone = Memzone::reserve_aligned(
            group,
            &umem_name(port),
            UMEM_PER_QUEUE * queues as usize,
            4096,
        )
        .map_err(|e| format!("UMEM of {queues} queues: {e}"))?;
        let map = xdp::xskmap_create(start_queue as u32 + queues as u32).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (BPF needs root or CAP_BPF and CAP_NET_ADMIN)"
            } else {
                ""
            };
            format!("creating the XSKMAP: {e}{hint}")
        })?;
        let prog = xdp::load_redirect_program(map.as_fd())
            .map_err(|(e, log)| format!("loading the XDP program: {e}; verifier: {log}"))?;
        // Attached before any socket is bound, so that an interface some other program
        // holds is refused before anything of its queues is touched. Until a queue's socket
        // is in the map, the program passes its frames on to the kernel.
        let program = Program {
            ifindex,
            map,
            prog,
            link: Mutex::new(None),
        };
        program.attach(iface)?;
        let mut fds = Vec::new();
        let mut zero_copy = None;
        for q in 0..queues {
            let qid = start_queue as u32 + q as u32;
            let umem = zone
                .region()
                .sub(q as usize * UMEM_PER_QUEUE, UMEM_PER_QUEUE)
                .ok_or("UMEM memzone too small")?;
            let txq = &shared.txq[q as usize];
            for w in &txq.drv {
                w.store(0, Ordering::Relaxed);
            }
            for w in &shared.rxq[q as usize].drv {
                w.store(0, Ordering::Relaxed);
            }
            txq.drv[W_MAX_LEN].store(max_len as u64, Ordering::Relaxed);
            let fd = xdp::socket().map_err(|e| format!("AF_XDP socket: {e}"))?;
            let f = fd.as_fd();
            let step = |what: &str, r: std::io::Result<()>| {
                r.map_err(|e| format!("queue {qid} on {iface:?}: {what}: {e}"))
            };
            step(
                "registering the UMEM",
                xdp::umem_reg(f, umem.as_ptr(), UMEM_PER_QUEUE, FRAME),
            )?;
            step(
                "fill ring",
                xdp::set_ring_size(f, RingKind::Fill, RX_FRAMES),
            )?;
            step(
                "completion ring",
                xdp::set_ring_size(f, RingKind::Completion, TX_FRAMES),
            )?;
            step("rx ring", xdp::set_ring_size(f, RingKind::Rx, RX_FRAMES))?;
            step("tx ring", xdp::set_ring_size(f, RingKind::Tx, TX_FRAMES))?;
            // Zero-copy where the driver has it; veth and most virtual devices say EOPNOTSUPP.
            let bound = match zero_copy {
                Some(false) => xdp::bind(f, ifindex, qid, false),
                _ => xdp::bind(f, ifindex, qid, true).or_else(|e| {
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EINVAL)
                    ) {
                        xdp::bind(f, ifindex, qid, false)
                    } else {
                        Err(e)
                    }
                }),
            };
            if q >= nb_rxq
                && bound
                    .as_ref()
                    .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
            {
                // A transmit-only queue the device has no queue for.
                let pf = xdp::packet_tx_socket(ifindex)
                    .map_err(|e| format!("queue {q}: AF_PACKET transmit socket: {e}"))?;
                tracing::debug!(target: "shoal::ethdev", "af_xdp on {iface:?}: transmit queue {q} has no device queue {qid}; it sends through AF_PACKET");
                fds.push(pf);
                continue;
            }
            step("binding the socket", bound).map_err(|e| {
                if e.contains("busy") {
                    format!("{e} (another AF_XDP socket holds the queue)")
                } else if e.contains("No such device") || e.contains("Invalid argument") {
                    format!("{e} (does {iface:?} have a queue {qid}? see `ethtool -l {iface}`)")
                } else {
                    e
                }
            })?;
            let zc = xdp::is_zero_copy(f).unwrap_or(false);
            zero_copy.get_or_insert(zc);
            if q < nb_rxq {
                // Only receive queues get frames: a transmit-only socket's device queue keeps
                // going to the kernel's stack.
                step(
                    "adding the socket to the XSKMAP",
                    xdp::xskmap_set(program.map.as_fd(), qid, f),
                )?;
            }
            let (rx, tx) =
                map_rings(&fd).map_err(|e| format!("mapping the rings of queue {qid}: {e}"))?;
            // Every receive frame starts in the fill ring.
            let p = rx.fill.producer();
            for i in 0..RX_FRAMES {
                rx.fill.set_addr(p.wrapping_add(i), (i * FRAME) as u64);
            }
            rx.fill.publish_prod(p.wrapping_add(RX_FRAMES));
            txq.drv[W_MODE].store(if zc { 2 } else { 1 }, Ordering::Relaxed);
            drop((rx, tx));
            fds.push(fd);
        }
        let zero_copy = zero_copy.unwrap_or(false);
        let mut d = Self::from_fds(group, port, iface, mac, fds, zero_copy)?;
        d.program = Some(program);
        if !pk::if_link_up(iface) {
            tracing::warn!(target: "shoal::ethdev", "interface {iface:?} is down or has no carrier; nothing will be received until it is up");
        }
        tracing::info!(target: "shoal::ethdev", "af_xdp on {iface:?}: queues {start_queue}..{}, {} mode, {RX_FRAMES} rx and {TX_FRAMES} tx frames of {FRAME} bytes per queue", start_queue + queues, if zero_copy { "zero-copy" } else { "copy" });
        Ok(d)
    }

    fn from_fds(
        group: &Group,
        port: u16,
        iface: &str,
        mac: [u8; 6],
        fds: Vec<OwnedFd>,
        zero_copy: bool,
    ) -> Result<AfXdp, String> {
        let zone = Memzone::lookup(group, &umem_name(port))
            .map_err(|e| format!("finding the UMEM memzone: {e}"))?;
        let queues = fds
            .iter()
            .enumerate()
            .map(|(q, fd)| {
                if xdp::socket_domain(fd.as_fd()).ok() == Some(libc::AF_PACKET) {
                    return Ok(Queue::Packet(Mutex::new(())));
                }
                let umem = zone
                    .region()
                    .sub(q * UMEM_PER_QUEUE, UMEM_PER_QUEUE)
                    .ok_or_else(|| format!("UMEM memzone too small for queue {q}"))?;
                let (rx, tx) =
                    map_rings(fd).map_err(|e| format!("mapping the rings of queue {q}: {e}"))?;
                Ok(Queue::Xsk {
                    rx: Box::new(Mutex::new(rx)),
                    tx: Box::new(Mutex::new(tx)),
                    umem,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(AfXdp {
            iface: iface.to_owned(),
            mac,
            fds: Arc::new(fds),
            queues,
            zero_copy,
            program: None,
        })
    }

    pub fn attach(
        group: &Group,
        port: u16,
        a: &DriverArgs,
        fds: Vec<OwnedFd>,
    ) -> Result<AfXdp, String> {
        let (iface, _, _) = args(a)?;
        if fds.is_empty() {
            return Err("the primary passed no sockets".into());
        }
        let zc = fds
            .first()
            .map(|f| xdp::is_zero_copy(f.as_fd()).unwrap_or(false))
            .unwrap_or(false);
        Self::from_fds(group, port, iface, [0; 6], fds, zc)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn fds_arc(&self) -> Arc<Vec<OwnedFd>> {
        self.fds.clone()
    }
}

impl Program {
    /// Attaches the program unless it is attached.
    fn attach(&self, iface: &str) -> Result<(), String> {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        if link.is_some() {
            return Ok(());
        }
        let l = xdp::link_xdp(self.prog.as_fd(), self.ifindex).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EBUSY | libc::EEXIST) => format!(
                    "interface {iface:?} already has an XDP program attached; shoal does not replace it (detach it with `ip link set dev {iface} xdp off` if it is not needed)"
                ),
                _ => format!("attaching the XDP program to {iface:?}: {e}"),
            }
        })?;
        *link = Some(l);
        tracing::debug!(target: "shoal::ethdev", "XDP program attached to {iface:?}");
        Ok(())
    }
}

/// Where a receive frame's chunk starts (aligned UMEM: the kernel adds headroom to the chunk
/// address it was given), folded into the receive frames' range.
fn chunk_of(addr: u64) -> u64 {
    (addr % (RX_FRAMES as u64 * FRAME as u64)) & !(FRAME as u64 - 1)
}

impl Driver for AfXdp {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let (Some(Queue::Xsk { rx, umem, .. }), Some(fd)) = (self.queues.get(q), self.fds.get(q))
        else {
            return 0;
        };
        let side = match rx.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let w = &cx.q.drv;
        // A poller died between recording a burst and clearing the record: finish its
        // publication (see the module doc).
        if w[W_PENDING].load(Ordering::Acquire) != 0 {
            side.fill
                .publish_prod(w[W_FILL_TO].load(Ordering::Relaxed) as u32);
            side.rx
                .publish_cons(w[W_RX_TO].load(Ordering::Relaxed) as u32);
            w[W_PENDING].store(0, Ordering::Release);
        }
        // Relaxed would do for our own index in one process; Acquire (inside `consumer`)
        // covers a queue that another process polled before.
        let cons = side.rx.consumer();
        let avail = side.rx.producer().wrapping_sub(cons).min(RX_FRAMES) as usize;
        let want = avail.min(max);
        if want == 0 {
            if side.fill.needs_wakeup() {
                xdp::wakeup_rx(fd.as_fd());
            }
            return 0;
        }
        let fprod = side.fill.producer();
        let rx_bytes = RX_FRAMES as u64 * FRAME as u64;
        let mut done = 0u32;
        let mut n = 0;
        while (done as usize) < want {
            let (addr, len) = side.rx.desc(cons.wrapping_add(done));
            let len = len as usize;
            let valid = addr.checked_add(len as u64).is_some_and(|e| e <= rx_bytes);
            if valid && len >= MIN_FRAME {
                let Some(mut m) = cx.pool.alloc() else {
                    bump(&cx.q.nombuf, 1);
                    // Leave this descriptor (and the rest) for the next call.
                    break;
                };
                match m.append(len as u16).filter(|b| b.len() == len) {
                    Some(buf) => {
                        // SAFETY: the frame lies inside this queue's receive frames (checked
                        // above); the kernel wrote it before it published the descriptor (K,
                        // the Acquire in `producer`) and does not write it again until the
                        // frame comes back through the fill ring, after this copy.
                        let ok = unsafe { umem.read(addr as usize, buf) };
                        debug_assert!(ok);
                        m.set_port(cx.port);
                        if batch.push(m).is_err() {
                            break;
                        }
                        n += 1;
                    }
                    None => bump(&cx.q.errors, 1),
                }
            } else {
                // A runt, or a descriptor outside the receive frames: counted, frame recycled.
                bump(&cx.q.errors, 1);
            }
            side.fill.set_addr(fprod.wrapping_add(done), chunk_of(addr));
            done += 1;
        }
        if done > 0 {
            let (fill_to, rx_to) = (fprod.wrapping_add(done), cons.wrapping_add(done));
            w[W_FILL_TO].store(fill_to as u64, Ordering::Relaxed);
            w[W_RX_TO].store(rx_to as u64, Ordering::Relaxed);
            // The record is complete before it is marked pending.
            w[W_PENDING].store(1, Ordering::Release);
            crate::fault::point("xdp.rx.recorded");
            side.fill.publish_prod(fill_to);
            crate::fault::point("xdp.rx.filled");
            side.rx.publish_cons(rx_to);
            w[W_PENDING].store(0, Ordering::Release);
        }
        if side.fill.needs_wakeup() {
            xdp::wakeup_rx(fd.as_fd());
        }
        n
    }

    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let (tx, umem, fd) = match (self.queues.get(q), self.fds.get(q)) {
            (Some(Queue::Xsk { tx, umem, .. }), Some(fd)) => (tx, umem, fd),
            (Some(Queue::Packet(lock)), Some(fd)) => return packet_tx(lock, fd, cx, batch),
            _ => return 0,
        };
        let side = match tx.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        // Completions: only their count matters (frames are used in ring order).
        let done = side.comp.producer();
        if side.comp.consumer() != done {
            side.comp.publish_cons(done);
        }
        let max_len = match cx.q.drv[W_MAX_LEN].load(Ordering::Relaxed) as usize {
            0 => 1514,
            l => l.min(FRAME as usize),
        };
        let prod = side.tx.producer();
        let in_flight = prod.wrapping_sub(done);
        let room = TX_FRAMES.saturating_sub(in_flight);
        let (mut taken, mut queued, mut bytes, mut dropped) = (0usize, 0u32, 0u64, 0u64);
        for m in batch.iter() {
            if queued == room {
                break;
            }
            let data = m.data();
            taken += 1;
            if data.len() < MIN_FRAME || data.len() > max_len {
                dropped += 1;
                continue;
            }
            let i = prod.wrapping_add(queued);
            let addr = (RX_FRAMES + (i & (TX_FRAMES - 1))) as u64 * FRAME as u64;
            // SAFETY: tx frame `i mod TX_FRAMES` is ours: the completion ring has passed
            // index i - TX_FRAMES (room above), so the kernel no longer reads it, and no other
            // poller sends on this queue (the lock in this process, the one-sender rule
            // across processes). The descriptor is published after the copy (P).
            let ok = unsafe { umem.write(addr as usize, data) };
            debug_assert!(ok);
            side.tx.set_desc(i, addr, data.len() as u32);
            queued += 1;
            bytes += data.len() as u64;
        }
        if queued > 0 {
            side.tx.publish_prod(prod.wrapping_add(queued));
        }
        // Copy mode sends only when asked, at most a few dozen frames a call: ask until the
        // kernel has taken the ring (bounded; what is left goes with the next burst).
        if queued > 0 || side.tx.consumer() != side.tx.producer() {
            let target = prod.wrapping_add(queued);
            for _ in 0..64 {
                if (!self.zero_copy || side.tx.needs_wakeup())
                    && xdp::wakeup_tx(fd.as_fd()).is_err()
                {
                    break;
                }
                if side.tx.consumer() == target {
                    break;
                }
            }
        }
        drop(batch.drain(..taken));
        bump(&cx.q.packets, queued as u64);
        bump(&cx.q.bytes, bytes);
        bump(&cx.q.errors, dropped);
        taken
    }

    fn link_up(&self) -> bool {
        pk::if_link_up(&self.iface)
    }

    fn refresh(&self, port: &PortShared) {
        for (q, fd) in self.fds.iter().enumerate() {
            if !matches!(self.queues.get(q), Some(Queue::Xsk { .. })) {
                continue;
            }
            if let Ok((drops, _, _)) = xdp::stats(fd.as_fd()) {
                // Cumulative kernel counts: whoever swaps in the new value adds the difference.
                let seen = port.rxq[q].drv[W_SEEN_DROPS].swap(drops, Ordering::Relaxed);
                if drops > seen {
                    port.rxq[q]
                        .missed
                        .fetch_add(drops - seen, Ordering::Relaxed);
                }
            }
        }
    }

    fn started(&self) -> Result<(), String> {
        match &self.program {
            Some(p) => p.attach(&self.iface),
            None => Ok(()),
        }
    }

    fn stopped(&self) {
        if let Some(p) = &self.program {
            if p.link
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
            {
                tracing::debug!(target: "shoal::ethdev", "XDP program detached from {:?}", self.iface);
            }
        }
    }
}

/// Transmit on an AF_PACKET queue: one `write` per frame until the socket would block.
fn packet_tx(lock: &Mutex<()>, fd: &OwnedFd, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
    let _g = match lock.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return 0,
    };
    let max_len = match cx.q.drv[W_MAX_LEN].load(Ordering::Relaxed) as usize {
        0 => 1514,
        l => l,
    };
    let (mut taken, mut sent, mut bytes, mut dropped) = (0usize, 0u64, 0u64, 0u64);
    for m in batch.iter() {
        let data = m.data();
        if data.len() < MIN_FRAME || data.len() > max_len {
            dropped += 1;
            taken += 1;
            continue;
        }
        match pk::write_frame(fd.as_fd(), data) {
            Ok(true) => {
                sent += 1;
                bytes += data.len() as u64;
                taken += 1;
            }
            Ok(false) => break,
            Err(_) => {
                dropped += 1;
                taken += 1;
            }
        }
    }
    drop(batch.drain(..taken));
    bump(&cx.q.packets, sent);
    bump(&cx.q.bytes, bytes);
    bump(&cx.q.errors, dropped);
    taken
}
