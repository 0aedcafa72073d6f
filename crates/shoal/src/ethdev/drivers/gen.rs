//! `net_gen`: a traffic generator. Each flow is a 5-tuple (UDP or TCP over IPv4) made from its
//! number and the seed; every 64th packet of a queue is an ARP request. Flows are split over
//! the receive queues the way a NIC's RSS does it: the Toeplitz hash of the tuple (DPDK's
//! default key) through a 128-entry redirection table filled round robin, so a flow always
//! arrives on the same queue and the mbuf carries the hash.
//!
//! A queue's sequence number and rate budget sit in its driver words in the port table, so
//! whichever process polls the queue continues the same sequence.

use std::net::{IpAddr, Ipv4Addr};

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::spec::{DriverArgs, GenSize};
use crate::ethdev::table::{bump, PortShared};
use crate::ethdev::PortId;
use crate::mbuf::{ol_flags, MbufBatch};
use crate::net::{
    ptype, toeplitz::RSS_KEY_DEFAULT, ArpOperation, EthernetAddress, FiveTuple, FrameBuilder,
    IpProtocol,
};
use crate::sync::atomic::Ordering;

/// Driver words of a receive queue.
const W_SEQ: usize = 0;
const W_START_NS: usize = 1;
const W_RATE_SENT: usize = 2;

/// One packet in this many is an ARP request.
const ARP_EVERY: u64 = 64;
/// Entries of the RSS redirection table (as on most NICs).
const RETA_SIZE: u32 = 128;

pub(crate) struct Gen {
    size: GenSize,
    /// Packets per second per queue.
    rate_q: Option<u64>,
    seed: u64,
    builder: FrameBuilder,
    /// The flows of each queue: (flow number, RSS hash).
    queues: Vec<Vec<(u32, u32)>>,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The 5-tuple of flow `f`: source 10.x.y.z (distinct per flow), destination 192.168.a.b,
/// ports and protocol from a hash of the flow number and seed.
pub(crate) fn flow_tuple(f: u32, seed: u64) -> FiveTuple {
    let h = mix(f as u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let src = Ipv4Addr::from(0x0a00_0000 | (f & 0x00ff_ffff));
    let dst = Ipv4Addr::new(192, 168, (h >> 8) as u8, (h as u8).max(1));
    let sport = 1024 + ((h >> 16) % 60000) as u16;
    let dport = [53u16, 80, 443, 123, 8080, 5000, 4789, 9000][((h >> 40) & 7) as usize];
    let proto = if (h >> 48) & 1 == 0 {
        IpProtocol::UDP
    } else {
        IpProtocol::TCP
    };
    FiveTuple::new(IpAddr::V4(src), sport, IpAddr::V4(dst), dport, proto)
}

/// The receive queue RSS puts a hash on, with `nq` queues.
pub(crate) fn rss_queue(hash: u32, nq: u16) -> u16 {
    ((hash % RETA_SIZE) % nq as u32) as u16
}

fn frame_size(size: GenSize, seq: u64) -> usize {
    match size {
        GenSize::Fixed(b) => b as usize,
        GenSize::Mixed => match seq % 12 {
            0..=6 => 64,
            7..=10 => 576,
            _ => 1500,
        },
    }
}

impl Gen {
    pub fn new(
        id: PortId,
        args: &DriverArgs,
        nb_rxq: u16,
        shared: &PortShared,
        reset: bool,
    ) -> Result<Gen, String> {
        let DriverArgs::Gen {
            flows,
            size,
            rate,
            seed,
            ..
        } = *args
        else {
            return Err("not a generator spec".into());
        };
        let nq = nb_rxq.max(1);
        let mut queues = vec![Vec::new(); nq as usize];
        for f in 0..flows {
            let h = flow_tuple(f, seed).rss_hash(&RSS_KEY_DEFAULT);
            queues[rss_queue(h, nq) as usize].push((f, h));
        }
        if reset {
            for q in shared.rxq.iter() {
                for w in &q.drv {
                    w.store(0, Ordering::Relaxed);
                }
            }
        }
        let mac = EthernetAddress(super::local_mac(id.0, 0x67));
        let mut builder =
            FrameBuilder::new(mac, EthernetAddress([0x02, 0x73, 0x68, 0x67, 0xff, 0xff]));
        builder.l4_checksum = true;
        Ok(Gen {
            size,
            rate_q: rate.map(|r| (r / nq as u64).max(1)),
            seed,
            builder,
            queues,
        })
    }

    /// How many packets the rate allows now.
    fn budget(&self, cx: &RxCtx<'_>, max: usize) -> usize {
        let Some(rate) = self.rate_q else {
            return max;
        };
        let now = crate::sys::monotonic_ns();
        let start = cx.q.drv[W_START_NS].load(Ordering::Relaxed);
        if start == 0 {
            cx.q.drv[W_START_NS].store(now, Ordering::Relaxed);
            return 0;
        }
        let allowed = ((now - start) as u128 * rate as u128 / 1_000_000_000) as u64;
        let sent = cx.q.drv[W_RATE_SENT].load(Ordering::Relaxed);
        (allowed.saturating_sub(sent) as usize).min(max)
    }

    /// Writes the frame of packet `seq` (of `flow`) into `buf`; returns its length and its
    /// packet type.
    fn build(&self, buf: &mut [u8], seq: u64, flow: u32) -> (usize, u32) {
        let t = flow_tuple(flow, self.seed);
        let len = buf.len();
        if seq % ARP_EVERY == ARP_EVERY - 1 {
            let (IpAddr::V4(s), IpAddr::V4(d)) = (t.src, t.dst) else {
                unreachable!("generator flows are IPv4")
            };
            let mut b = self.builder;
            b.dst_mac = EthernetAddress::BROADCAST;
            let n = b
                .arp(buf, ArpOperation::REQUEST, s, EthernetAddress([0; 6]), d)
                .unwrap_or(0);
            return (n, ptype::L2_ETHER_ARP);
        }
        let l4_hdr = if t.proto == IpProtocol::TCP.0 { 20 } else { 8 };
        let payload = len.saturating_sub(14 + 20 + l4_hdr);
        // The payload: sequence number and flow, then zeros.
        let off = len - payload;
        buf[off..].fill(0);
        if payload >= 12 {
            buf[off..off + 8].copy_from_slice(&seq.to_be_bytes());
            buf[off + 8..off + 12].copy_from_slice(&flow.to_be_bytes());
        }
        let (r, l4) = if t.proto == IpProtocol::TCP.0 {
            (self.builder.tcp(buf, &t, payload), ptype::L4_TCP)
        } else {
            (self.builder.udp(buf, &t, payload), ptype::L4_UDP)
        };
        (r.unwrap_or(0), ptype::L2_ETHER | ptype::L3_IPV4 | l4)
    }
}

impl Driver for Gen {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let Some(flows) = self.queues.get(q).filter(|f| !f.is_empty()) else {
            return 0;
        };
        let n = self.budget(cx, max);
        if n == 0 {
            return 0;
        }
        let before = batch.len();
        if !cx.pool.alloc_bulk(batch, n) {
            bump(&cx.q.nombuf, 1);
            return 0;
        }
        let mut seq = cx.q.drv[W_SEQ].load(Ordering::Relaxed);
        for m in batch.iter_mut().skip(before) {
            // Flows advance on the packets that are not ARP, so every flow gets its turn.
            let nth = seq - seq / ARP_EVERY;
            let (flow, hash) = flows[(nth % flows.len() as u64) as usize];
            let want = frame_size(self.size, seq);
            m.set_port(cx.port);
            if let Some(buf) = m.append(want as u16) {
                let (got, pt) = self.build(buf, seq, flow);
                // What a NIC tells about the frame it received, so that no stage parses it
                // to learn it: the packet type, and the RSS hash of an IP frame.
                m.set_packet_type(pt);
                if pt != ptype::L2_ETHER_ARP {
                    m.set_rss_hash(hash);
                    m.set_ol_flags(ol_flags::RX_RSS_HASH);
                }
                if got < want {
                    m.trim((want - got) as u16);
                }
            } else {
                bump(&cx.q.errors, 1);
            }
            seq += 1;
        }
        cx.q.drv[W_SEQ].store(seq, Ordering::Relaxed);
        if self.rate_q.is_some() {
            bump(&cx.q.drv[W_RATE_SENT], n as u64);
        }
        n
    }

    fn tx_burst(&self, _q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        // A generator swallows what it is sent, as net_null does.
        let n = batch.len();
        let bytes: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
        batch.clear();
        bump(&cx.q.packets, n as u64);
        bump(&cx.q.bytes, bytes);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_distinct_and_split_like_rss() {
        let tuples: std::collections::HashSet<_> =
            (0..1000).map(|f| flow_tuple(f, 1).key()).collect();
        assert_eq!(tuples.len(), 1000);
        let mut per_q = [0u32; 2];
        for f in 0..1000 {
            let h = flow_tuple(f, 1).rss_hash(&RSS_KEY_DEFAULT);
            per_q[rss_queue(h, 2) as usize] += 1;
        }
        assert!(per_q[0] > 300 && per_q[1] > 300, "{per_q:?}");
    }

    #[test]
    fn mixed_sizes_follow_imix() {
        let sizes: Vec<usize> = (0..12).map(|s| frame_size(GenSize::Mixed, s)).collect();
        assert_eq!(sizes.iter().filter(|&&s| s == 64).count(), 7);
        assert_eq!(sizes.iter().filter(|&&s| s == 576).count(), 4);
        assert_eq!(sizes.iter().filter(|&&s| s == 1500).count(), 1);
    }
}
