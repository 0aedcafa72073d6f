//! `net_null`: receive returns packets of a fixed size, transmit frees and counts, as DPDK's
//! `net_null`. By default neither side touches packet bytes: receive sets the lengths only (the
//! bytes are whatever the buffer last held), transmit reads lengths only. With `copy=1`, receive
//! copies a template packet (zeroes) into each mbuf and transmit copies each packet's bytes out
//! to a scratch buffer, as DPDK's `copy=1` does with its dummy packet.

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::table::bump;
use crate::mbuf::MbufBatch;

pub(crate) struct Null {
    size: u16,
    /// `copy=1`: the template packet that receive copies into each mbuf.
    template: Option<Vec<u8>>,
}

impl Null {
    pub fn new(size: u16, copy: bool) -> Null {
        Null {
            size,
            template: copy.then(|| vec![0u8; size as usize]),
        }
    }
}

/// Reads `bytes` as DPDK's `copy=1` transmit does, into a scratch buffer on the stack (one per
/// call, so several tx queues never share one), with a copy the optimiser may not remove.
#[inline]
fn absorb(bytes: &[u8]) {
    let mut buf = [0u8; 2048];
    let n = bytes.len().min(buf.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    std::hint::black_box(&buf);
}

impl Driver for Null {
    fn rx_burst(&self, _q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let before = batch.len();
        if !cx.pool.alloc_bulk(batch, max) {
            bump(&cx.q.nombuf, 1);
            return 0;
        }
        for m in batch.iter_mut().skip(before) {
            m.set_port(cx.port);
            let ok = match &self.template {
                None => m.extend(self.size),
                Some(t) => m.append(self.size).map(|d| d.copy_from_slice(t)).is_some(),
            };
            if !ok {
                // The pool's data room is smaller than the packet size asked for.
                bump(&cx.q.errors, 1);
            }
        }
        max
    }

    fn tx_burst(&self, _q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let n = batch.len();
        let bytes: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
        if self.template.is_some() {
            for m in batch.iter() {
                absorb(m.data());
            }
        }
        batch.clear();
        bump(&cx.q.packets, n as u64);
        bump(&cx.q.bytes, bytes);
        n
    }
}
