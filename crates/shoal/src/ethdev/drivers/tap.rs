//! `net_tap`: a kernel TAP interface the port creates (`/dev/net/tun`, IFF_TAP | IFF_NO_PI,
//! IFF_MULTI_QUEUE for several queues). What the port sends, the kernel receives on the
//! interface, and the other way round. One fd per queue; the kernel spreads its transmit
//! traffic over the queues by flow. The interface lives while any process holds a queue fd.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::{Driver, RxCtx, TxCtx};
use crate::ethdev::spec::MIN_FRAME;
use crate::ethdev::table::bump;
use crate::mbuf::MbufBatch;
use crate::sys::packet as pk;

pub(crate) struct Tap {
    iface: String,
    fds: Arc<Vec<OwnedFd>>,
}

impl Tap {
    pub fn probe(iface: &str, queues: u16) -> Result<Tap, String> {
        let mut fds = Vec::new();
        for q in 0..queues {
            let fd = pk::open_tap_queue(iface, queues > 1).map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EPERM) => " (TAP interfaces need root or CAP_NET_ADMIN)",
                    Some(libc::EBUSY) | Some(libc::EINVAL) => {
                        " (is the name taken by another interface?)"
                    }
                    _ => "",
                };
                format!("queue {q} of TAP {iface:?}: {e}{hint}")
            })?;
            fds.push(fd);
        }
        pk::if_set_up(iface, true).map_err(|e| format!("bringing {iface:?} up: {e}"))?;
        tracing::debug!(target: "shoal::ethdev", "TAP {iface:?} with {queues} queues");
        Ok(Tap {
            iface: iface.to_owned(),
            fds: Arc::new(fds),
        })
    }

    pub fn attach(iface: &str, fds: Vec<OwnedFd>) -> Tap {
        Tap {
            iface: iface.to_owned(),
            fds: Arc::new(fds),
        }
    }

    pub fn fds_arc(&self) -> Arc<Vec<OwnedFd>> {
        self.fds.clone()
    }
}

impl Driver for Tap {
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize {
        let Some(fd) = self.fds.get(q) else { return 0 };
        let mut n = 0;
        while n < max {
            let Some(mut m) = cx.pool.alloc() else {
                bump(&cx.q.nombuf, 1);
                break;
            };
            let room = m.tailroom();
            let Some(buf) = m.append(room) else { break };
            match pk::read_frame(fd.as_fd(), buf) {
                Ok(Some(len)) if len > 0 && len < MIN_FRAME => {
                    // A runt: no Ethernet header. `m` goes back to the pool.
                    bump(&cx.q.errors, 1);
                }
                Ok(Some(len)) if len > 0 => {
                    m.trim(room - len as u16);
                    m.set_port(cx.port);
                    if batch.push(m).is_err() {
                        break;
                    }
                    n += 1;
                }
                Ok(_) => break,
                Err(_) => {
                    bump(&cx.q.errors, 1);
                    break;
                }
            }
        }
        n
    }

    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize {
        let Some(fd) = self.fds.get(q) else { return 0 };
        let (mut taken, mut sent, mut bytes, mut dropped) = (0usize, 0u64, 0u64, 0u64);
        for m in batch.iter() {
            match pk::write_frame(fd.as_fd(), m.data()) {
                Ok(true) => {
                    sent += 1;
                    bytes += m.data().len() as u64;
                }
                Ok(false) => break,
                Err(_) => dropped += 1,
            }
            taken += 1;
        }
        drop(batch.drain(..taken));
        bump(&cx.q.packets, sent);
        bump(&cx.q.bytes, bytes);
        bump(&cx.q.errors, dropped);
        taken
    }

    fn link_up(&self) -> bool {
        pk::if_link_up(&self.iface)
    }
}
