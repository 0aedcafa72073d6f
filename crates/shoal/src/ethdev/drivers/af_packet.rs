//! `net_af_packet`: a kernel interface through AF_PACKET sockets with TPACKET_V3 mmap rings,
//! one socket per queue pair. With several queues the sockets form a PACKET_FANOUT_HASH
//! group, so the kernel spreads flows over the queues and keeps each flow on one of them.
//!
//! The primary opens the sockets; a secondary gets them over IPC and maps the same rings. A
//! primary adopting the group of a dead one gets them back the same way from a secondary that
//! holds them (every holder answers for them), or opens new ones when none does. Sockets of
//! queues past the receive queues are bound with protocol 0: they transmit and receive nothing.
//! Where each queue stands in its rings (receive block, frame within it, next transmit slot)
//! is kept in the queue's driver words in the port table, not in the process.
//!
//! Within a process each queue's receive and transmit rings sit behind a lock of their own,
//! taken with `try_lock`: a second thread polling the same queue gets 0 packets instead of
//! reading a block the first one is about to hand back to the kernel.
//!
//! Across processes, each queue's rings have one owner at a time, recorded in the queue's
//! owner word in the port table (the member id of the process that polls it): the first
//! process to poll a queue claims it with a compare-and-swap, and another process polling the
//! same queue gets 0 packets (receive) or sends nothing (transmit) while the owner lives. The
//! owner gives the queue up when its last handle on the port drops. A kill leaves the dead
//! member's id in the word; the next process that polls the queue finds the owner dead by its
//! liveness lock (checked once every `LIVENESS_EVERY` refused polls, not at each) and takes
//! the queue over with a compare-and-swap from the dead id, resuming from the queue's ring
//! position words (the kernel's block status words say which blocks are really ready).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, TryLockError};

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::spec::{DriverArgs, MIN_FRAME};
use crate::ethdev::table::{bump, PortShared};
use crate::mbuf::MbufBatch;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{Liveness, MemberId, Members};
use crate::sys::packet::{
    self as pk, Fanout, PacketRing, PacketRx, PacketTx, QueueSocketOpts, RingLayout, TxFill,
};

/// Receive queue words: current block, offset of the next frame in it (0 = not started),
/// frames left in it.
const W_BLOCK: usize = 0;
const W_OFFSET: usize = 1;
const W_LEFT: usize = 2;
/// Transmit queue word: next slot.
const W_SLOT: usize = 0;
/// Receive and transmit queue word: the member id of the process that owns the queue's ring
/// (0 = none).
const W_OWNER: usize = crate::ethdev::table::DRIVER_WORDS - 1;
/// A process refused a queue asks whether its owner lives once every this many polls.
const LIVENESS_EVERY: u32 = 256;

/// Block retire timeout: a partly filled block reaches user space after at most this long.
const RETIRE_MS: u32 = 1;

pub(crate) struct AfPacket {
    iface: String,
    mac: [u8; 6],
    fds: Arc<Vec<OwnedFd>>,
    /// Per queue: the receive ring and the transmit ring, one user at a time each.
    rings: Vec<(Mutex<PacketRx>, Mutex<PacketTx>)>,
    /// Per queue: polls refused because another process owns the receive and the transmit
    /// ring (process-local; paces the liveness checks).
    refused: Vec<(AtomicU32, AtomicU32)>,
}

/// Whether this process may use the ring whose owner word is `word`: it owns it already, or
/// claims it now (free, or its owner is dead). `refused` paces the liveness checks.
fn owns(word: &AtomicU64, members: &dyn Members, refused: &AtomicU32) -> bool {
    let me = members.me();
    if me.is_none() {
        return false;
    }
    // A-own: pairs with R-own in `release` (and with the claim of whoever owned it before):
    // the ring position words the previous owner wrote are visible to the new one.
    let cur = word.load(Ordering::Acquire);
    if cur == me.raw() {
        return true;
    }
    if cur != 0 {
        // Relaxed: a process-local count.
        let n = refused.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(LIVENESS_EVERY)
            || members.liveness(MemberId::from_raw(cur)) != Liveness::Dead
        {
            return false;
        }
        tracing::warn!(target: "shoal::ethdev", "af_packet queue owner {} is dead; taken over", MemberId::from_raw(cur));
    }
    word.compare_exchange(cur, me.raw(), Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Gives up the ring whose owner word is `word`, if this process owns it.
fn release(word: &AtomicU64, members: &dyn Members) {
    let me = members.me();
    if !me.is_none() {
        // R-own: pairs with A-own in `owns`.
        let _ = word.compare_exchange(me.raw(), 0, Ordering::Release, Ordering::Relaxed);
    }
}

fn layout(args: &DriverArgs) -> Result<RingLayout, String> {
    let DriverArgs::AfPacket {
        blocksz,
        framesz,
        framecnt,
        ..
    } = *args
    else {
        return Err("not an af_packet spec".into());
    };
    let per_block = blocksz / framesz;
    let rx_blocks = (framecnt / per_block).max(1);
    let tx_blocks = (framecnt.min(1024) / per_block).max(1);
    Ok(RingLayout {
        block_size: blocksz,
        rx_blocks,
        frame_size: framesz,
        tx_blocks,
    })
}

impl AfPacket {
    pub fn probe(
        args: &DriverArgs,
        nb_rxq: u16,
        nb_txq: u16,
        promisc: bool,
        shared: &PortShared,
    ) -> Result<AfPacket, String> {
        let DriverArgs::AfPacket {
            iface,
            qdisc_bypass,
            ..
        } = args
        else {
            return Err("not an af_packet spec".into());
        };
        let layout = layout(args)?;
        let ifindex =
            pk::if_index(iface).map_err(|e| format!("interface {iface:?} not found ({e})"))?;
        let mac = pk::if_hwaddr(iface).map_err(|e| format!("interface {iface:?}: {e}"))?;
        let mut fds = Vec::new();
        let mut group = None;
        // One socket per queue pair; the sockets past the receive queues only transmit (the
        // kernel hands them no frames, so none is lost to a ring nobody polls).
        let queues = nb_rxq.max(nb_txq);
        for q in 0..queues {
            let receive = q < nb_rxq;
            let fanout = match (nb_rxq, group) {
                _ if !receive => Fanout::None,
                (1, _) => Fanout::None,
                (_, None) => Fanout::New,
                (_, Some(id)) => Fanout::Join(id),
            };
            let (fd, g) = pk::open_queue_socket(&QueueSocketOpts {
                ifindex,
                layout,
                fanout,
                promisc,
                qdisc_bypass: *qdisc_bypass,
                retire_ms: RETIRE_MS,
                receive,
            })
            .map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EPERM) {
                    " (AF_PACKET needs root or CAP_NET_RAW)"
                } else {
                    ""
                };
                format!("queue {q} socket on {iface:?}: {e}{hint}")
            })?;
            group = g.or(group);
            fds.push(fd);
        }
        for q in shared.rxq.iter() {
            for w in &q.drv {
                w.store(0, Ordering::Relaxed);
            }
        }
        for q in shared.txq.iter() {
            q.drv[W_SLOT].store(0, Ordering::Relaxed);
        }
        if !pk::if_link_up(iface) {
            tracing::warn!(target: "shoal::ethdev", "interface {iface:?} is down or has no carrier; nothing will be received until it is up");
        }
        let d = Self::from_fds(iface, mac, fds, layout)?;
        tracing::debug!(target: "shoal::ethdev", "af_packet on {iface:?}: {queues} queues, {} rx blocks of {} bytes, {} tx slots, fanout group {group:?}", layout.rx_blocks, layout.block_size, layout.tx_frames());
        Ok(d)
    }

    fn from_fds(
        iface: &str,
        mac: [u8; 6],
        fds: Vec<OwnedFd>,
        layout: RingLayout,
    ) -> Result<AfPacket, String> {
        let rings = fds
            .iter()
            .map(|fd| {
                PacketRing::map(fd.as_fd(), layout).map(|(rx, tx)| (Mutex::new(rx), Mutex::new(tx)))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("mapping the rings of {iface:?}: {e}"))?;
        Ok(AfPacket {
            iface: iface.to_owned(),
            mac,
            refused: (0..rings.len())
                .map(|_| (AtomicU32::new(0), AtomicU32::new(0)))
                .collect(),
            fds: Arc::new(fds),
            rings,
        })
    }

    pub fn attach(args: &DriverArgs, fds: Vec<OwnedFd>) -> Result<AfPacket, String> {
        let DriverArgs::AfPacket { iface, .. } = args else {
            return Err("not an af_packet spec".into());
        };
        if fds.is_empty() {
            return Err("the primary passed no sockets".into());
        }
        Self::from_fds(iface, [0; 6], fds, layout(args)?)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn fds_arc(&self) -> Arc<Vec<OwnedFd>> {
        self.fds.clone()
    }
}

impl Driver for AfPacket {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let (Some((rx, _)), Some((refused, _))) = (self.rings.get(q), self.refused.get(q)) else {
            return 0;
        };
        // Another process polls the queue: nothing for us.
        if !owns(&cx.q.drv[W_OWNER], cx.members, refused) {
            return 0;
        }
        // Another thread of this process is polling the queue: nothing for us.
        let mut ring = match rx.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let nblocks = ring.layout().rx_blocks as u64;
        let mut blk = cx.q.drv[W_BLOCK].load(Ordering::Relaxed) % nblocks;
        let mut off = cx.q.drv[W_OFFSET].load(Ordering::Relaxed) as u32;
        let mut left = cx.q.drv[W_LEFT].load(Ordering::Relaxed) as u32;
        let mut n = 0;
        'blocks: while n < max {
            let Some(block) = ring.rx_block(blk as u32) else {
                break;
            };
            if off == 0 {
                off = block.first_offset();
                left = block.num_pkts();
            }
            while left > 0 {
                if n == max {
                    break 'blocks;
                }
                let Some((frame, next)) = block.frame(off) else {
                    bump(&cx.q.errors, left as u64);
                    break;
                };
                left -= 1;
                off = off.wrapping_add(next);
                if next == 0 && left > 0 {
                    bump(&cx.q.errors, left as u64);
                    left = 0;
                }
                let extra = if frame.vlan.is_some() { 4 } else { 0 };
                let len = frame.data.len() + extra;
                if len < MIN_FRAME {
                    // A runt: no Ethernet header.
                    bump(&cx.q.errors, 1);
                    continue;
                }
                let Some(mut m) = cx.pool.alloc() else {
                    bump(&cx.q.nombuf, 1);
                    // Leave the frame for the next call.
                    left += 1;
                    off = off.wrapping_sub(next);
                    break 'blocks;
                };
                let Some(buf) = m
                    .append(len.min(u16::MAX as usize) as u16)
                    .filter(|b| b.len() == len)
                else {
                    bump(&cx.q.errors, 1);
                    continue;
                };
                match frame.vlan {
                    Some((tpid, tci)) if frame.data.len() >= 12 => {
                        // Put back the tag the kernel took off.
                        buf[..12].copy_from_slice(&frame.data[..12]);
                        buf[12..14].copy_from_slice(&tpid.to_be_bytes());
                        buf[14..16].copy_from_slice(&tci.to_be_bytes());
                        buf[16..].copy_from_slice(&frame.data[12..]);
                    }
                    _ => buf[..frame.data.len()].copy_from_slice(frame.data),
                }
                m.set_port(cx.port);
                m.set_rss_hash(frame.rxhash);
                if batch.push(m).is_err() {
                    break 'blocks;
                }
                n += 1;
            }
            block.release();
            blk = (blk + 1) % nblocks;
            off = 0;
            left = 0;
        }
        cx.q.drv[W_BLOCK].store(blk, Ordering::Relaxed);
        cx.q.drv[W_OFFSET].store(off as u64, Ordering::Relaxed);
        cx.q.drv[W_LEFT].store(left as u64, Ordering::Relaxed);
        n
    }

    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let (Some((_, tx)), Some(fd), Some((_, refused))) =
            (self.rings.get(q), self.fds.get(q), self.refused.get(q))
        else {
            return 0;
        };
        // Another process sends on the queue: it keeps the packets.
        if !owns(&cx.q.drv[W_OWNER], cx.members, refused) {
            return 0;
        }
        // Another thread of this process is sending on the queue: it keeps the packets.
        let mut ring = match tx.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let max_frame = ring.layout().tx_max_frame();
        let mut slot = cx.q.drv[W_SLOT].load(Ordering::Relaxed) as u32;
        let (mut taken, mut queued, mut bytes, mut dropped) = (0usize, 0u64, 0u64, 0u64);
        let mut kicked = false;
        for m in batch.iter() {
            let data = m.data();
            if data.len() > max_frame || data.len() < MIN_FRAME {
                dropped += 1;
                taken += 1;
                continue;
            }
            let mut placed = false;
            loop {
                match ring.tx_fill(slot, data) {
                    TxFill::Queued => {
                        slot = slot.wrapping_add(1) % ring.layout().tx_frames();
                        queued += 1;
                        bytes += data.len() as u64;
                        taken += 1;
                        placed = true;
                        break;
                    }
                    // A frame sent earlier from this slot was refused: count it, reuse the slot.
                    TxFill::WasRejected => bump(&cx.q.errors, 1),
                    TxFill::Busy if !kicked => {
                        // The ring is full of pending frames: flush and look again, once.
                        let _ = pk::kick_tx(fd.as_fd());
                        kicked = true;
                    }
                    TxFill::Busy => break,
                }
            }
            if !placed {
                break;
            }
        }
        if queued > 0 {
            let _ = pk::kick_tx(fd.as_fd());
        }
        cx.q.drv[W_SLOT].store(slot as u64, Ordering::Relaxed);
        drop(batch.drain(..taken));
        bump(&cx.q.packets, queued);
        bump(&cx.q.bytes, bytes);
        bump(&cx.q.errors, dropped);
        taken
    }

    fn link_up(&self) -> bool {
        pk::if_link_up(&self.iface)
    }

    fn release(&self, port: &PortShared, members: &dyn Members) {
        for q in 0..self.rings.len() {
            if let Some(rxq) = port.rxq.get(q) {
                release(&rxq.drv[W_OWNER], members);
            }
            if let Some(txq) = port.txq.get(q) {
                release(&txq.drv[W_OWNER], members);
            }
        }
    }

    fn refresh(&self, port: &PortShared) {
        for (q, fd) in self.fds.iter().enumerate() {
            if let Ok((_, drops)) = pk::socket_stats(fd.as_fd()) {
                if drops > 0 {
                    // Several processes may refresh: the kernel resets on read, so each drop
                    // is added once, by whoever read it.
                    port.rxq[q]
                        .missed
                        .fetch_add(drops as u64, Ordering::Relaxed);
                }
            }
        }
    }
}
