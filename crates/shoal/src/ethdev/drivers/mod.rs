//! The drivers behind ports. Each is a process-local object made by the primary at probe
//! time or by a secondary at attach time; what must be shared lives in the port table
//! (per-queue driver words) or in memzones and rings of its own.

pub(crate) mod af_packet;
pub(crate) mod af_xdp;
pub(crate) mod gen;
pub(crate) mod memif;
pub(crate) mod null;
pub(crate) mod pcap;
pub(crate) mod ring;
pub(crate) mod tap;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::table::{PortConfig, PortShared, RxqShared, TxqShared};
use super::{DriverArgs, Error, Planned, PortId};
use crate::group::Group;
use crate::mbuf::{MbufBatch, MbufPool};
use crate::memory::Region;
use crate::net::EthernetAddress;
use crate::sync::Members;

/// What a receive burst needs besides the driver.
pub(crate) struct RxCtx<'a> {
    /// The queue's shared block (counters are bumped by the caller; drivers use `drv`,
    /// `missed`, `errors` and `nombuf`).
    pub q: &'a RxqShared,
    /// Where mbufs come from.
    pub pool: &'a MbufPool,
    /// The port number, stamped on each mbuf.
    pub port: u16,
    /// The group's members: who this process is, and whether another one lives.
    pub members: &'a dyn Members,
}

/// What a transmit burst needs besides the driver.
pub(crate) struct TxCtx<'a> {
    /// The queue's shared block: the driver bumps `packets`, `bytes` and `errors`.
    pub q: &'a TxqShared,
    /// The group's members: who this process is, and whether another one lives.
    pub members: &'a dyn Members,
}

/// A port's driver in this process. Methods on one queue are called by one thread at a time.
pub(crate) trait Driver: Send + Sync {
    /// Appends up to `max` received packets to `batch` (which has room for them).
    fn rx_burst(&self, q: usize, cx: &RxCtx<'_>, batch: &mut MbufBatch, max: usize) -> usize;
    /// Takes packets from the front of `batch`; returns how many it took.
    fn tx_burst(&self, q: usize, cx: &TxCtx<'_>, batch: &mut MbufBatch) -> usize;
    /// Link state.
    fn link_up(&self) -> bool {
        true
    }
    /// Folds counters kept elsewhere (the kernel's) into the table.
    fn refresh(&self, _port: &PortShared) {}
    /// Gives up whatever this process claimed in the port's shared block (queues it polls),
    /// when its last handle on the port drops.
    fn release(&self, _port: &PortShared, _members: &dyn Members) {}
    /// The primary started the port (the driver attaches what it needs while started).
    fn started(&self) -> Result<(), String> {
        Ok(())
    }
    /// The primary stopped the port.
    fn stopped(&self) {}
    /// The primary detached the port (its state is already RETIRED): give back what it holds
    /// that nobody will take any more (packets in its rings).
    fn retired(&self) {}
}

/// A port the primary made.
pub(crate) struct Made {
    pub mac: EthernetAddress,
    pub driver: Box<dyn Driver>,
}

/// A locally administered MAC for a port of a driver without one of its own:
/// 02:73:68:<tag>:<port hi>:<port lo> ("sh" for shoal).
pub(crate) fn local_mac(port: u16, tag: u8) -> [u8; 6] {
    let p = port.to_be_bytes();
    [0x02, 0x73, 0x68, tag, p[0], p[1]]
}

fn driver_err(p: &Planned, why: impl std::fmt::Display) -> Error {
    Error::Driver {
        port: p.spec.name.clone(),
        driver: p.spec.args.kind(),
        why: why.to_string(),
    }
}

/// Sets a port up in the primary.
pub(crate) fn probe(
    group: &Group,
    id: PortId,
    p: &Planned,
    promisc: bool,
    shared: &PortShared,
) -> Result<Made, Error> {
    let made = match &p.spec.args {
        DriverArgs::Null { size, copy, .. } => Made {
            mac: EthernetAddress(local_mac(id.0, 0x6e)),
            driver: Box::new(null::Null::new(*size, *copy)),
        },
        DriverArgs::Gen { .. } => Made {
            mac: EthernetAddress(local_mac(id.0, 0x67)),
            driver: Box::new(
                gen::Gen::new(id, &p.spec.args, p.nb_rxq, shared, true)
                    .map_err(|e| driver_err(p, e))?,
            ),
        },
        DriverArgs::Ring { size, .. } => Made {
            mac: EthernetAddress(local_mac(id.0, 0x72)),
            driver: Box::new(
                ring::Ring::create(group, &p.spec.name, p.nb_rxq.max(p.nb_txq), *size)
                    .map_err(|e| driver_err(p, e))?,
            ),
        },
        DriverArgs::Pcap { .. } => Made {
            mac: EthernetAddress(local_mac(id.0, 0x70)),
            driver: Box::new(
                pcap::Pcap::probe(group, id, &p.spec.args, p.nb_rxq, shared)
                    .map_err(|e| driver_err(p, e))?,
            ),
        },
        DriverArgs::AfPacket { .. } => {
            let d = af_packet::AfPacket::probe(&p.spec.args, p.nb_rxq, p.nb_txq, promisc, shared)
                .map_err(|e| driver_err(p, e))?;
            publish_fds(group, id, &d.fds_arc());
            Made {
                mac: EthernetAddress(d.mac()),
                driver: Box::new(d),
            }
        }
        DriverArgs::AfXdp { .. } => {
            let d = af_xdp::AfXdp::probe(
                group,
                id.0,
                &p.spec.args,
                p.nb_rxq,
                p.nb_txq,
                promisc,
                shared,
            )
            .map_err(|e| driver_err(p, e))?;
            publish_fds(group, id, &d.fds_arc());
            Made {
                mac: EthernetAddress(d.mac()),
                driver: Box::new(d),
            }
        }
        DriverArgs::Tap { iface, .. } => {
            let name = iface.clone().unwrap_or_else(|| format!("dtap{}", id.0));
            let d = tap::Tap::probe(&name, p.nb_rxq.max(p.nb_txq)).map_err(|e| driver_err(p, e))?;
            publish_fds(group, id, &d.fds_arc());
            Made {
                mac: EthernetAddress(local_mac(id.0, 0x74)),
                driver: Box::new(d),
            }
        }
        DriverArgs::Memif { .. } => Made {
            mac: EthernetAddress(local_mac(id.0, 0x6d)),
            driver: Box::new(
                memif::Memif::probe(group, id, &p.spec.name, &p.spec.args, p.nb_rxq, p.nb_txq)
                    .map_err(|e| driver_err(p, e))?,
            ),
        },
    };
    Ok(made)
}

/// Reaches a port the primary made, from a secondary.
pub(crate) fn attach(
    group: &Group,
    id: PortId,
    p: &Planned,
    c: &PortConfig,
    fds: Vec<OwnedFd>,
    shared: &PortShared,
) -> Result<Box<dyn Driver>, Error> {
    Ok(match &p.spec.args {
        DriverArgs::Null { size, copy, .. } => Box::new(null::Null::new(*size, *copy)),
        DriverArgs::Gen { .. } => Box::new(
            gen::Gen::new(id, &p.spec.args, p.nb_rxq, shared, false)
                .map_err(|e| driver_err(p, e))?,
        ),
        DriverArgs::Ring { .. } if c.rx_rings[0][0] != 0 => {
            Box::new(ring::attach_rings(group, c).map_err(|e| driver_err(p, e))?)
        }
        DriverArgs::Ring { .. } => Box::new(
            ring::Ring::lookup(group, &p.spec.name, p.nb_rxq.max(p.nb_txq))
                .map_err(|e| driver_err(p, e))?,
        ),
        DriverArgs::Pcap { .. } => Box::new(
            pcap::Pcap::attach(group, id, &p.spec.args, p.nb_rxq).map_err(|e| driver_err(p, e))?,
        ),
        DriverArgs::AfPacket { .. } => {
            let d = af_packet::AfPacket::attach(&p.spec.args, fds).map_err(|e| driver_err(p, e))?;
            // Held here too: a primary adopting the group takes the sockets back from us.
            publish_fds(group, id, &d.fds_arc());
            Box::new(d)
        }
        DriverArgs::AfXdp { .. } => Box::new(
            af_xdp::AfXdp::attach(group, id.0, &p.spec.args, fds).map_err(|e| driver_err(p, e))?,
        ),
        DriverArgs::Tap { iface, .. } => {
            let name = iface.clone().unwrap_or_else(|| format!("dtap{}", id.0));
            Box::new(tap::Tap::attach(&name, fds))
        }
        DriverArgs::Memif { .. } => Box::new(
            memif::Memif::attach(group, id, p.nb_rxq, p.nb_txq).map_err(|e| driver_err(p, e))?,
        ),
    })
}

/// IPC action that hands a port's fds to a secondary.
pub(crate) const FD_ACTION: &str = "shoal_ethdev_fds";

type FdMap = HashMap<u16, Weak<Vec<OwnedFd>>>;

/// The fds of this membership's kernel-backed ports, by port (a state of its [`Group`]).
#[derive(Default)]
struct Fds(Arc<Mutex<FdMap>>);

fn fd_map(group: &Group) -> Arc<Mutex<FdMap>> {
    group.state::<Fds>().0.clone()
}

fn publish_fds(group: &Group, id: PortId, fds: &Arc<Vec<OwnedFd>>) {
    fd_map(group)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.0, Arc::downgrade(fds));
}

/// Registers (once per group and process) the action that answers secondaries' requests for
/// a port's fds: the request's parameter is the port number (2 bytes, little endian); the
/// answer's is `ok` with the fds in queue order, or an error text.
pub(crate) fn register_fd_action(group: &Group, _table: &Region) -> Result<(), Error> {
    let Some(mp) = group.mp() else {
        return Ok(());
    };
    let map = fd_map(group);
    let res = mp.action_register(FD_ACTION, move |msg, peer| {
        let answer = (|| {
            let id = u16::from_le_bytes(msg.param().get(..2)?.try_into().ok()?);
            let fds = map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)?
                .upgrade()?;
            fds.iter()
                .map(|f| f.try_clone().ok())
                .collect::<Option<Vec<OwnedFd>>>()
        })();
        let reply = match answer {
            Some(fds) => crate::mp::Message::with_fds(FD_ACTION, b"ok", fds),
            None => crate::mp::Message::new(FD_ACTION, b"no such kernel-backed port"),
        };
        if let Ok(reply) = reply {
            let _ = peer.reply(&reply);
        }
    });
    match res {
        Ok(()) | Err(crate::mp::Error::ActionExists(_)) => Ok(()),
        Err(e) => Err(Error::Shared {
            what: "registering the fd-passing IPC action".into(),
            why: e.to_string(),
        }),
    }
}

/// Asks the primary for port `id`'s fds.
pub(crate) fn request_fds(
    group: &Group,
    id: PortId,
    name: &str,
    timeout: Duration,
) -> Result<Vec<OwnedFd>, Error> {
    let fail = |why: String| Error::FdPassing {
        port: name.to_owned(),
        why,
    };
    let mp = group
        .mp()
        .ok_or_else(|| fail("this process has no IPC channel".into()))?;
    let req =
        crate::mp::Message::new(FD_ACTION, &id.0.to_le_bytes()).map_err(|e| fail(e.to_string()))?;
    let reply = mp
        .request_sync(&req, timeout)
        .map_err(|e| fail(e.to_string()))?;
    let mut msg = reply
        .msgs
        .into_iter()
        .next()
        .ok_or_else(|| fail("the primary did not answer".into()))?;
    if msg.param() != b"ok" {
        return Err(fail(String::from_utf8_lossy(msg.param()).into_owned()));
    }
    Ok(msg.take_fds())
}

/// Asks every secondary for port `id`'s fds (a primary adopting the group): the first
/// complete answer, or none when no secondary holds them.
pub(crate) fn request_fds_from_secondaries(
    group: &Group,
    id: PortId,
    name: &str,
    timeout: Duration,
) -> Vec<OwnedFd> {
    let Some(mp) = group.mp() else {
        return Vec::new();
    };
    let Ok(req) = crate::mp::Message::new(FD_ACTION, &id.0.to_le_bytes()) else {
        return Vec::new();
    };
    let reply = match mp.request_sync(&req, timeout) {
        Ok(r) => r,
        // Secondaries without the action (no ports) or slow to answer: use the others'.
        Err(crate::mp::Error::NoHandler { partial, .. })
        | Err(crate::mp::Error::Timeout { partial, .. }) => *partial,
        Err(e) => {
            tracing::warn!(target: "shoal::ethdev", "port {name}: asking the secondaries for its sockets: {e}");
            return Vec::new();
        }
    };
    reply
        .msgs
        .into_iter()
        .filter(|m| m.param() == b"ok")
        .map(|mut m| m.take_fds())
        .find(|f| !f.is_empty())
        .unwrap_or_default()
}
