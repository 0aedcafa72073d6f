//! client_server_mp's shared names and statistics layout (DPDK's `shared/common.h`), and the
//! server's dispatchers.
//!
//! Statistics live in the memzone [`SHARED_INFO_NAME`] as counter lines, one writer per line:
//! the control line and per-port lines are the server's; each client has a line it writes
//! itself and a line the server writes about it.

use shoal::eal::Eal;
use shoal::memzone::Memzone;
use shoal::sync::atomic::AtomicU64;

use crate::{get, Lines};

/// Most clients a server serves.
pub const MAX_CLIENTS: usize = 16;
/// Most ports, and one more than the highest port id: every port a group can have
/// ([`shoal::ethdev::MAX_PORTS`]) has a statistics line of its own.
pub const MAX_PORTS: usize = shoal::ethdev::MAX_PORTS;
/// The packet pool (DPDK's name).
pub const MBUF_POOL_NAME: &str = "mbuf_pool";
/// The statistics memzone.
pub const SHARED_INFO_NAME: &str = "MProc_shared_info";
/// Default client ring size (the lesson's 4096).
pub const RING_SIZE: u32 = 4096;
/// Magic in the control line, so a client can tell a server of this layout.
pub const MAGIC: u64 = 0x5348_4f41_4c43_5332; // "SHOALCS2"

/// A client's receive ring: `MProc_Client_RX_<id>` (DPDK's name).
pub fn client_ring_name(id: usize) -> String {
    format!("MProc_Client_RX_{id}")
}

/// Control line (server-written) counter indices.
pub mod ctl {
    /// [`super::MAGIC`] once the server is ready.
    pub const MAGIC: usize = 0;
    /// Number of clients.
    pub const NUM_CLIENTS: usize = 1;
    /// Number of ports.
    pub const NUM_PORTS: usize = 2;
    /// 1 once the server asked everybody to stop.
    pub const SHUTDOWN: usize = 3;
    /// The server's pid.
    pub const SERVER_PID: usize = 4;
    /// Packets dropped because no client was live.
    pub const DROP_NO_CLIENT: usize = 5;
    /// ARP/ND frames seen (each copied to every live client).
    pub const BCAST_FRAMES: usize = 6;
    /// Extra copies made for broadcasts (copies beyond the first).
    pub const BCAST_COPIES: usize = 7;
    /// Copies that could not be made (pool empty): counted drops.
    pub const BCAST_COPY_FAIL: usize = 8;
    /// Port ids served, as a bit mask.
    pub const PORT_MASK: usize = 9;
    /// When the server last handed packets to clients (monotonic ns): where an adopting
    /// server measures the pause from.
    pub const LAST_FWD_NS: usize = 10;
    /// The ports' `imissed` total, as the server last saw it (every 50 ms).
    pub const PORTS_MISSED: usize = 11;
    /// How many times a new server adopted the group (`mp_server --adopt`).
    pub const ADOPTIONS: usize = 12;
    /// The last adoption's pause: from the dead server's last forwarded burst to the new
    /// server's first, in ns.
    pub const LAST_PAUSE_NS: usize = 13;
    /// Packets the ports dropped during the last adoption's pause (`imissed`).
    pub const LAST_PAUSE_MISSED: usize = 14;
    /// When the last adopting server forwarded its first burst (monotonic ns).
    pub const ADOPTED_FIRST_FWD_NS: usize = 15;
}

/// Per-port line (server-written) indices.
pub mod port {
    /// Packets received.
    pub const RX: usize = 0;
    /// Bytes received.
    pub const RX_BYTES: usize = 1;
}

/// Per-client line written by the client.
pub mod cli {
    /// Last heartbeat, monotonic ns.
    pub const HEARTBEAT: usize = 0;
    /// The client's pid.
    pub const PID: usize = 1;
    /// Packets taken from the ring.
    pub const RX: usize = 2;
    /// Packets sent.
    pub const TX: usize = 3;
    /// Packets the port would not take (freed, counted).
    pub const TX_DROP: usize = 4;
    /// How many times a client has started with this id.
    pub const STARTS: usize = 5;
    /// 1 running, 2 stopped cleanly.
    pub const STATE: usize = 6;
    /// Bytes taken from the ring.
    pub const RX_BYTES: usize = 7;
    /// ARP and IPv6 neighbour discovery frames received (each client gets a copy).
    pub const NEIGH: usize = 8;
    /// The client's member id in the group (`shoal::sync::MemberId`): how the server tells
    /// whether it lives, in any PID namespace.
    pub const MEMBER: usize = 9;
}

/// Per-client line written by the server.
pub mod srv {
    /// Packets put on the client's ring.
    pub const ENQUEUED: usize = 0;
    /// Packets dropped because the ring was full.
    pub const DROP_FULL: usize = 1;
    /// Packets taken back from the ring of a client that died.
    pub const FLUSHED: usize = 2;
    /// 1 while the server dispatches to the client.
    pub const LIVE: usize = 3;
    /// Ring-usage warnings logged.
    pub const WARNINGS: usize = 4;
    /// 1 while the client is alive but has taken nothing from a non-empty ring for the
    /// timeout: out of the rotation, its ring kept for it.
    pub const STALLED: usize = 5;
}

/// Line index of the control line.
pub const CTL_LINE: usize = 0;
/// Line index of port `p`'s line. Panics when `p` is not below [`MAX_PORTS`] (a port id
/// the group cannot have): its line would be a client's.
pub const fn port_line(p: usize) -> usize {
    assert!(p < MAX_PORTS, "port id out of range");
    1 + p
}
/// Line index of client `c`'s own line.
pub const fn client_line(c: usize) -> usize {
    1 + MAX_PORTS + 2 * c
}
/// Line index of the server's line about client `c`.
pub const fn server_line(c: usize) -> usize {
    2 + MAX_PORTS + 2 * c
}
/// Lines in the block.
pub const LINES: usize = 1 + MAX_PORTS + 2 * MAX_CLIENTS;

/// The statistics block.
#[derive(Debug, Clone)]
pub struct SharedInfo {
    lines: Lines,
}

impl SharedInfo {
    /// Reserves it (the server).
    pub fn create(eal: &Eal) -> Result<SharedInfo, shoal::memzone::Error> {
        let mz =
            Memzone::reserve_aligned(eal, SHARED_INFO_NAME, Lines::bytes(LINES), Lines::ALIGN)?;
        Ok(SharedInfo {
            lines: Lines::new(mz)?,
        })
    }

    /// Finds it (clients, tools).
    pub fn lookup(eal: &Eal) -> Result<SharedInfo, shoal::memzone::Error> {
        let mz = Memzone::lookup(eal, SHARED_INFO_NAME)?;
        Ok(SharedInfo {
            lines: Lines::new(mz)?,
        })
    }

    /// A counter of the control line.
    pub fn ctl(&self, i: usize) -> &AtomicU64 {
        &self.lines.line(CTL_LINE)[i]
    }

    /// A counter of port `p`'s line.
    pub fn port(&self, p: usize, i: usize) -> &AtomicU64 {
        &self.lines.line(port_line(p))[i]
    }

    /// A counter of client `c`'s own line.
    pub fn client(&self, c: usize, i: usize) -> &AtomicU64 {
        &self.lines.line(client_line(c))[i]
    }

    /// A counter of the server's line about client `c`.
    pub fn server(&self, c: usize, i: usize) -> &AtomicU64 {
        &self.lines.line(server_line(c))[i]
    }

    /// True once the server is up and this layout is its layout.
    pub fn ready(&self) -> bool {
        get(self.ctl(ctl::MAGIC)) == MAGIC
    }

    /// Number of clients the server serves.
    pub fn num_clients(&self) -> usize {
        (get(self.ctl(ctl::NUM_CLIENTS)) as usize).min(MAX_CLIENTS)
    }
}

/// How the server picks a client for a packet.
#[derive(Debug, Clone)]
pub enum Dist {
    /// Round robin over live clients (the default).
    RoundRobin,
    /// Rendezvous hashing of the 5-tuple over live clients: a flow stays on one client while it
    /// lives, and only the flows of a client that goes away move.
    Flow,
    /// Chosen DSCP values to chosen clients; everything else by flow.
    Priority(Vec<(u8, usize)>),
}

impl Dist {
    /// Parses `rr`, `flow`, or `prio:DSCP=CLIENT[,DSCP=CLIENT...]`.
    pub fn parse(s: &str) -> Result<Dist, String> {
        match s {
            "rr" | "round-robin" => Ok(Dist::RoundRobin),
            "flow" | "hash" => Ok(Dist::Flow),
            _ => {
                let spec = s.strip_prefix("prio:").ok_or_else(|| {
                    format!("unknown --dist {s:?} (rr, flow or prio:DSCP=CLIENT,...)")
                })?;
                let mut map = Vec::new();
                for item in spec.split(',') {
                    let (d, c) = item
                        .split_once('=')
                        .ok_or_else(|| format!("bad priority item {item:?}"))?;
                    let d: u8 = d
                        .parse()
                        .ok()
                        .filter(|&d| d < 64)
                        .ok_or_else(|| format!("bad DSCP {d:?} (0-63)"))?;
                    let c: usize = c.parse().map_err(|_| format!("bad client {c:?}"))?;
                    map.push((d, c));
                }
                Ok(Dist::Priority(map))
            }
        }
    }

    /// Checks that every client a `prio:` map names is one of `n` clients.
    pub fn check_clients(&self, n: usize) -> Result<(), String> {
        if let Dist::Priority(map) = self {
            if let Some((d, c)) = map.iter().find(|(_, c)| *c >= n) {
                return Err(format!(
                    "--dist maps DSCP {d} to client {c}, but there are {n} clients (ids 0 to {})",
                    n.saturating_sub(1)
                ));
            }
        }
        Ok(())
    }
}

/// ARP and IPv6 neighbour discovery frames, which the server copies to every client: the
/// library's test ([`shoal::dispatch::is_neighbour_frame`]).
pub use shoal::dispatch::is_neighbour_frame;

/// Picks clients for packets.
#[derive(Debug)]
pub struct Dispatcher {
    dist: Dist,
    next: usize,
}

/// What the dispatcher looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketKey {
    /// A hash of the 5-tuple (0 when the packet has none).
    pub flow_hash: u32,
    /// DSCP, when IP.
    pub dscp: Option<u8>,
}

/// Rendezvous score of a flow on a client.
fn score(flow_hash: u32, client: usize) -> u32 {
    let mut x = (flow_hash as u64) << 32 | client as u64;
    // SplitMix64 finaliser: cheap, well mixed.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    (x ^ (x >> 31)) as u32
}

impl Dispatcher {
    /// A dispatcher for `dist`.
    pub fn new(dist: Dist) -> Dispatcher {
        Dispatcher { dist, next: 0 }
    }

    /// True when [`Dispatcher::pick`] looks at the flow hash or DSCP (so packets must be
    /// parsed); round robin does not.
    pub fn needs_parse(&self) -> bool {
        !matches!(self.dist, Dist::RoundRobin)
    }

    /// The client for a packet, among `live` (sorted ids); None when nobody is live.
    pub fn pick(&mut self, key: PacketKey, live: &[usize]) -> Option<usize> {
        if live.is_empty() {
            return None;
        }
        match &self.dist {
            Dist::RoundRobin => {
                self.next = (self.next + 1) % live.len();
                Some(live[self.next])
            }
            Dist::Flow => Some(Self::by_flow(key.flow_hash, live)),
            Dist::Priority(map) => {
                if let Some(d) = key.dscp {
                    if let Some(&(_, c)) = map.iter().find(|(x, c)| *x == d && live.contains(c)) {
                        return Some(c);
                    }
                }
                Some(Self::by_flow(key.flow_hash, live))
            }
        }
    }

    fn by_flow(hash: u32, live: &[usize]) -> usize {
        *live
            .iter()
            .max_by_key(|&&c| (score(hash, c), c))
            .expect("live is not empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_of_live_clients_stay_put_when_one_leaves() {
        let mut d = Dispatcher::new(Dist::Flow);
        let all = [0, 1, 2, 3];
        let without2 = [0, 1, 3];
        let mut moved = 0;
        for h in 0..10_000u32 {
            let k = PacketKey {
                flow_hash: h.wrapping_mul(2654435761),
                dscp: None,
            };
            let before = d.pick(k, &all).unwrap();
            let after = d.pick(k, &without2).unwrap();
            if before != 2 {
                assert_eq!(before, after, "flow {h} moved from a live client");
            } else {
                moved += 1;
                assert_ne!(after, 2);
            }
        }
        // Roughly a quarter of the flows lived on client 2.
        assert!((1500..3500).contains(&moved), "{moved}");
    }

    #[test]
    fn neighbour_frames_are_told_apart_as_the_full_parser_does() {
        use shoal::net::{self, EthernetAddress, FiveTuple, FrameBuilder, PacketClass, VlanTci};
        let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let mut buf = [0u8; 256];
        let n = net::build_arp_request(&mut buf, a, [10, 0, 0, 1].into(), [10, 0, 0, 2].into())
            .unwrap();
        assert!(is_neighbour_frame(&buf[..n]));
        let t = FiveTuple {
            src: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            dst: std::net::Ipv4Addr::new(10, 0, 0, 2).into(),
            src_port: 1,
            dst_port: 2,
            proto: 17,
        };
        let n = net::build_udp_ipv4(&mut buf, a, a, &t, 10).unwrap();
        assert!(!is_neighbour_frame(&buf[..n]));
        let mut b = FrameBuilder::new(a, EthernetAddress::BROADCAST);
        b.vlan = Some(VlanTci::new(0, false, 7));
        let n = b
            .arp(
                &mut buf,
                net::ArpOperation::REQUEST,
                [10, 0, 0, 1].into(),
                EthernetAddress([0; 6]),
                [10, 0, 0, 9].into(),
            )
            .unwrap();
        assert!(is_neighbour_frame(&buf[..n]));
        assert_eq!(net::parse_frame(&buf[..n]).unwrap().class, PacketClass::Arp);
        for cut in 0..n {
            let _ = is_neighbour_frame(&buf[..cut]);
        }
    }

    #[test]
    fn every_port_and_client_has_lines_of_its_own() {
        let mut lines = vec![CTL_LINE];
        lines.extend((0..shoal::ethdev::MAX_PORTS).map(port_line));
        lines.extend((0..MAX_CLIENTS).flat_map(|c| [client_line(c), server_line(c)]));
        assert!(lines.iter().all(|&l| l < LINES), "{lines:?}");
        let mut unique = lines.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), lines.len(), "two writers share a line");
    }

    #[test]
    fn round_robin_cycles_and_priority_maps_dscp() {
        let mut d = Dispatcher::new(Dist::RoundRobin);
        let got: Vec<usize> = (0..4)
            .map(|_| d.pick(PacketKey::default(), &[0, 1]).unwrap())
            .collect();
        assert_eq!(got, vec![1, 0, 1, 0]);
        let mut p = Dispatcher::new(Dist::parse("prio:46=1,10=0").unwrap());
        assert_eq!(
            p.pick(
                PacketKey {
                    flow_hash: 7,
                    dscp: Some(46)
                },
                &[0, 1]
            ),
            Some(1)
        );
        assert_eq!(
            p.pick(
                PacketKey {
                    flow_hash: 7,
                    dscp: Some(10)
                },
                &[0, 1]
            ),
            Some(0)
        );
        // A mapped client that is not live falls back to the flow hash.
        assert!(p
            .pick(
                PacketKey {
                    flow_hash: 7,
                    dscp: Some(46)
                },
                &[0]
            )
            .is_some());
        assert!(Dist::parse("prio:99=1").is_err());
        let prio = Dist::parse("prio:10=5").unwrap();
        assert!(prio.check_clients(6).is_ok());
        assert!(prio.check_clients(1).unwrap_err().contains("client 5"));
        assert!(Dist::parse("bogus").is_err());
        assert_eq!(d.pick(PacketKey::default(), &[]), None);
    }
}
