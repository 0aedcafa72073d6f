//! `net_ring`: ports backed by mbuf rings. A `--vdev net_ringN` port gets one ring per queue,
//! `ETH_RXTX<q>_<name>`, that both directions of the queue use (DPDK's net_ring vdev: what is
//! sent on a queue is received on it). [`crate::ethdev::from_rings`] makes a port from rings
//! the application created (DPDK's `rte_eth_from_rings`).

use std::sync::{Arc, Mutex};

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::table::{bump, cstr, PortConfig};
use crate::group::Group;
use crate::mbuf::{MbufBatch, MbufRing};
use crate::ring::RingConfig;

/// A ring handle is used by one thread at a time; the lock is uncontended when each queue is
/// polled by one thread, as ports require.
type Shared = Arc<Mutex<MbufRing>>;

pub(crate) struct Ring {
    rx: Vec<Shared>,
    tx: Vec<Shared>,
}

fn wrap(v: Vec<MbufRing>) -> Vec<Shared> {
    v.into_iter().map(|r| Arc::new(Mutex::new(r))).collect()
}

fn ring_name(port: &str, q: u16) -> String {
    format!("ETH_RXTX{q}_{port}")
}

impl Ring {
    pub fn create(
        group: &impl AsRef<Group>,
        port: &str,
        queues: u16,
        size: u32,
    ) -> Result<Ring, String> {
        let group = group.as_ref();
        let mut rings = Vec::new();
        for q in 0..queues {
            let name = ring_name(port, q);
            let r = MbufRing::create(group, &name, RingConfig::new(size))
                .map_err(|e| format!("creating ring {name:?}: {e}"))?;
            rings.push(r);
        }
        let rings = wrap(rings);
        Ok(Ring {
            rx: rings.clone(),
            tx: rings,
        })
    }

    pub fn lookup(group: &impl AsRef<Group>, port: &str, queues: u16) -> Result<Ring, String> {
        let group = group.as_ref();
        let mut rings = Vec::new();
        for q in 0..queues {
            let name = ring_name(port, q);
            rings.push(
                MbufRing::lookup(group, &name)
                    .map_err(|e| format!("finding ring {name:?}: {e}"))?,
            );
        }
        let rings = wrap(rings);
        Ok(Ring {
            rx: rings.clone(),
            tx: rings,
        })
    }
}

/// A port over the application's rings.
pub(crate) fn from_rings(rx: Vec<MbufRing>, tx: Vec<MbufRing>) -> Box<dyn Driver> {
    Box::new(Ring {
        rx: wrap(rx),
        tx: wrap(tx),
    })
}

/// The same port, from a secondary: the rings are found by the names in the table.
pub(crate) fn attach_rings(group: &Group, c: &PortConfig) -> Result<Ring, String> {
    let find = |names: &[[u8; crate::memory::MEMZONE_NAMESIZE]], n: u16| {
        names[..n as usize]
            .iter()
            .map(|b| {
                let name = cstr(b);
                MbufRing::lookup(group, name).map_err(|e| format!("finding ring {name:?}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    Ok(Ring {
        rx: wrap(find(&c.rx_rings, c.nb_rxq)?),
        tx: wrap(find(&c.tx_rings, c.nb_txq)?),
    })
}

impl Driver for Ring {
    fn retired(&self) {
        // The port is retired: no burst takes from these rings any more; what they hold goes
        // back to the pool (the batch frees what it holds when dropped).
        for r in self.rx.iter().chain(&self.tx) {
            let r = r.lock().unwrap_or_else(|e| e.into_inner());
            let mut batch = MbufBatch::new();
            while r.dequeue_burst(&mut batch, crate::mbuf::MAX_BURST) > 0 {
                batch.clear();
            }
        }
    }

    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let Some(r) = self.rx.get(q) else { return 0 };
        let before = batch.len();
        let n = r
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dequeue_burst(batch, max);
        for m in batch.iter_mut().skip(before) {
            m.set_port(cx.port);
        }
        n
    }

    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let Some(r) = self.tx.get(q) else { return 0 };
        let mut lens = [0u32; crate::mbuf::MAX_BURST];
        for (l, m) in lens.iter_mut().zip(batch.iter()) {
            *l = m.pkt_len();
        }
        let n = r
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .enqueue_burst(batch);
        bump(&cx.q.packets, n as u64);
        bump(&cx.q.bytes, lens[..n].iter().map(|&l| l as u64).sum());
        n
    }
}
