//! `net_null`: receive returns zeroed packets of a fixed size, transmit frees and counts
//! (DPDK's net_null, with the bytes zeroed so that what an application sees is defined).

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::table::bump;
use crate::mbuf::MbufBatch;

pub(crate) struct Null {
    size: u16,
}

impl Null {
    pub fn new(size: u16) -> Null {
        Null { size }
    }
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
            match m.append(self.size) {
                Some(d) => d.fill(0),
                None => {
                    // The pool's data room is smaller than the packet size asked for.
                    bump(&cx.q.errors, 1);
                }
            }
        }
        max
    }

    fn tx_burst(&self, _q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let n = batch.len();
        let bytes: u64 = batch.iter().map(|m| m.pkt_len() as u64).sum();
        batch.clear();
        bump(&cx.q.packets, n as u64);
        bump(&cx.q.bytes, bytes);
        n
    }
}
