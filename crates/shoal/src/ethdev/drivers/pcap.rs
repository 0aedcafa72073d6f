//! `net_pcap`: receive replays capture files, transmit writes one.
//!
//! Receive: the primary reads each `rx_pcap` file at probe time into a memzone of its queue
//! (`PCAP<port>_<q>`: a record count, an index of (offset, length) pairs, then the bytes), so
//! any process polling the queue reads the same packets; the queue's next record number is a
//! driver word in the port table. With one file and several queues, the records are split by
//! the RSS hash of their 5-tuple (non-IP frames go to queue 0), so each flow stays on one
//! queue; otherwise file i feeds queue i. `infinite_rx=1` starts over at the end. Records
//! shorter than an Ethernet header are not delivered; they count as receive errors.
//!
//! Transmit: the primary creates the file and writes the pcap header; every process opens it
//! with `O_APPEND` and writes each burst's records with one `write`, so bursts from several
//! processes interleave whole.
#![allow(unsafe_code)] // plain reads of a capture zone that nobody writes after publishing it

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::pcap::{self as fmt, PcapReader};
use crate::ethdev::spec::{DriverArgs, MIN_FRAME};
use crate::ethdev::table::{bump, PortShared};
use crate::ethdev::PortId;
use crate::group::Group;
use crate::mbuf::MbufBatch;
use crate::memory::{MemzoneKind, Region};
use crate::memzone::Memzone;
use crate::net::toeplitz::RSS_KEY_DEFAULT;
use crate::sync::atomic::Ordering;

const W_NEXT: usize = 0;
const HEADER: usize = 8;
const ENTRY: usize = 8;

pub(crate) struct Pcap {
    rx: Vec<Region>,
    infinite: bool,
    tx: Option<(File, Mutex<Vec<u8>>)>,
}

fn zone_name(id: PortId, q: usize) -> String {
    format!("PCAP{}_{}", id.0, q)
}

fn load(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let f = File::open(path).map_err(|e| format!("rx_pcap {}: {e}", path.display()))?;
    let reader = PcapReader::new(std::io::BufReader::new(f))
        .map_err(|e| format!("rx_pcap {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for r in reader {
        let r = r.map_err(|e| format!("rx_pcap {}: {e}", path.display()))?;
        out.push(r.data);
    }
    Ok(out)
}

fn flow_queue(frame: &[u8], nq: u16) -> usize {
    match crate::net::parse_frame(frame).ok().and_then(|i| i.tuple) {
        Some(t) => super::gen::rss_queue(t.rss_hash(&RSS_KEY_DEFAULT), nq) as usize,
        None => 0,
    }
}

fn store(group: &Group, name: &str, recs: &[Vec<u8>]) -> Result<Region, String> {
    let data: usize = recs.iter().map(|r| r.len()).sum();
    let len = HEADER + ENTRY * recs.len() + data;
    let what = |e: crate::memzone::Error| {
        format!("keeping {} captured packets ({len} bytes): {e}", recs.len())
    };
    if Memzone::lookup(group, name).is_ok() {
        Memzone::free(group, name).map_err(what)?;
    }
    // Written while reserved, published complete, never written again: readers in every
    // process (`read_at`) then see the whole capture.
    let (res, mut z) = Memzone::reserve_fresh(group, name, len.max(64), 64, MemzoneKind::Internal)
        .map_err(what)?;
    let mut ok = z.write(0, &(recs.len() as u64).to_le_bytes());
    let mut off = HEADER + ENTRY * recs.len();
    for (i, rec) in recs.iter().enumerate() {
        let mut e = [0u8; ENTRY];
        e[..4].copy_from_slice(&(off as u32).to_le_bytes());
        e[4..].copy_from_slice(&(rec.len() as u32).to_le_bytes());
        ok &= z.write(HEADER + ENTRY * i, &e);
        ok &= z.write(off, rec);
        off += rec.len();
    }
    if !ok {
        return Err(format!("{name}: the capture does not fit its memzone"));
    }
    res.publish();
    Ok(z.publish())
}

/// Copies bytes of a capture zone at `off` into `buf`; false when out of range.
fn read_at(r: &Region, off: usize, buf: &mut [u8]) -> bool {
    // SAFETY: a capture zone is written only while reserved (`store`) and published complete;
    // nobody writes it afterwards, and it cannot be freed and reused while `r` (an attachment
    // of it) lives.
    unsafe { r.read(off, buf) }
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("tx_pcap {}: {e}", path.display()))
}

impl Pcap {
    pub fn probe(
        group: &impl AsRef<Group>,
        id: PortId,
        args: &DriverArgs,
        nb_rxq: u16,
        shared: &PortShared,
    ) -> Result<Pcap, String> {
        let group = group.as_ref();
        let DriverArgs::Pcap {
            rx,
            tx,
            infinite_rx,
        } = args
        else {
            return Err("not a pcap spec".into());
        };
        let nq = nb_rxq.max(1) as usize;
        let mut per_q: Vec<Vec<Vec<u8>>> = vec![Vec::new(); nq];
        match rx.len() {
            0 => {}
            1 => {
                for rec in load(&rx[0])? {
                    let q = if nq > 1 {
                        flow_queue(&rec, nq as u16)
                    } else {
                        0
                    };
                    per_q[q].push(rec);
                }
            }
            n if n == nq => {
                for (q, path) in rx.iter().enumerate() {
                    per_q[q] = load(path)?;
                }
            }
            n => {
                return Err(format!(
                    "{n} rx_pcap files for {nq} receive queues: give one file, or one per queue"
                ))
            }
        }
        let mut regions = Vec::new();
        if !rx.is_empty() {
            for (q, recs) in per_q.iter().enumerate() {
                regions.push(store(group, &zone_name(id, q), recs)?);
            }
        }
        for q in shared.rxq.iter() {
            q.drv[W_NEXT].store(0, Ordering::Relaxed);
        }
        let tx = match tx {
            Some(path) => {
                let mut f =
                    File::create(path).map_err(|e| format!("tx_pcap {}: {e}", path.display()))?;
                f.write_all(&fmt::file_header(fmt::DEFAULT_SNAPLEN))
                    .map_err(|e| format!("tx_pcap {}: {e}", path.display()))?;
                Some((open_append(path)?, Mutex::new(Vec::new())))
            }
            None => None,
        };
        Ok(Pcap {
            rx: regions,
            infinite: *infinite_rx,
            tx,
        })
    }

    pub fn attach(
        group: &impl AsRef<Group>,
        id: PortId,
        args: &DriverArgs,
        nb_rxq: u16,
    ) -> Result<Pcap, String> {
        let group = group.as_ref();
        let DriverArgs::Pcap {
            rx,
            tx,
            infinite_rx,
        } = args
        else {
            return Err("not a pcap spec".into());
        };
        let mut regions = Vec::new();
        if !rx.is_empty() {
            for q in 0..nb_rxq.max(1) as usize {
                let name = zone_name(id, q);
                let mz = Memzone::lookup(group, &name).map_err(|e| format!("{name}: {e}"))?;
                regions.push(mz.region().clone());
            }
        }
        let tx = match tx {
            Some(path) => Some((open_append(path)?, Mutex::new(Vec::new()))),
            None => None,
        };
        Ok(Pcap {
            rx: regions,
            infinite: *infinite_rx,
            tx,
        })
    }
}

fn read_u32(r: &Region, off: usize) -> Option<u32> {
    let mut b = [0u8; 4];
    read_at(r, off, &mut b).then(|| u32::from_le_bytes(b))
}

impl Driver for Pcap {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let Some(r) = self.rx.get(q) else { return 0 };
        let mut b = [0u8; 8];
        if !read_at(r, 0, &mut b) {
            return 0;
        }
        let count = u64::from_le_bytes(b);
        if count == 0 {
            return 0;
        }
        let mut next = cx.q.drv[W_NEXT].load(Ordering::Relaxed);
        let mut n = 0;
        // Records passed over (counted as errors) in this call: at most one pass over the
        // capture, so that one of nothing but bad records, replayed, cannot loop for ever.
        let mut skipped = 0u64;
        while n < max && skipped < count {
            if next >= count {
                if !self.infinite {
                    break;
                }
                next = 0;
            }
            let e = HEADER + ENTRY * next as usize;
            let (Some(off), Some(len)) = (read_u32(r, e), read_u32(r, e + 4)) else {
                break;
            };
            if (len as usize) < MIN_FRAME {
                // A runt: no Ethernet header.
                next += 1;
                skipped += 1;
                bump(&cx.q.errors, 1);
                continue;
            }
            let Some(mut m) = cx.pool.alloc() else {
                bump(&cx.q.nombuf, 1);
                break;
            };
            next += 1;
            let copied = len <= u16::MAX as u32
                && m.append(len as u16)
                    .is_some_and(|buf| read_at(r, off as usize, buf));
            if !copied {
                skipped += 1;
                bump(&cx.q.errors, 1);
                continue;
            }
            m.set_port(cx.port);
            if batch.push(m).is_err() {
                break;
            }
            n += 1;
        }
        cx.q.drv[W_NEXT].store(next, Ordering::Relaxed);
        n
    }

    fn tx_burst(&self, _q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let n = batch.len();
        let Some((file, buf)) = &self.tx else {
            // No tx_pcap: swallow, as DPDK's pcap PMD does without a tx target.
            let bytes: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
            batch.clear();
            bump(&cx.q.packets, n as u64);
            bump(&cx.q.bytes, bytes);
            return n;
        };
        let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
        buf.clear();
        let ts = fmt::now_ns();
        let mut bytes = 0u64;
        for m in batch.iter() {
            fmt::push_record(&mut buf, ts, m.data(), fmt::DEFAULT_SNAPLEN);
            bytes += m.data().len() as u64;
        }
        batch.clear();
        // One write per burst: with O_APPEND, whole bursts from several processes interleave.
        let mut f: &File = file;
        if f.write_all(&buf).is_ok() {
            bump(&cx.q.packets, n as u64);
            bump(&cx.q.bytes, bytes);
        } else {
            bump(&cx.q.errors, n as u64);
        }
        n
    }
}
