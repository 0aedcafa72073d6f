//! `--vdev` specs in DPDK's syntax: `<driver><instance>[,key=value]...`, e.g.
//! `net_gen0,flows=64,size=mixed` or `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`.
//!
//! The driver is found by prefix, as DPDK's vdev bus does (`net_null0` is an instance of
//! `net_null`; DPDK's older `eth_` names are accepted as aliases). Every driver lists the keys
//! it knows; anything else is an error that names the spec, the key and the keys allowed.

use std::path::PathBuf;

use super::Error;

/// Longest port name (DPDK's RTE_ETH_NAME_MAX_LEN is 64; names here live in shared memory).
pub const PORT_NAMESIZE: usize = 32;
/// Most queues a port can have in each direction.
pub const MAX_QUEUES: usize = 16;
/// Biggest frame a driver makes or accepts (no jumbo frames).
pub const MAX_FRAME: usize = 9216;
/// Smallest frame a driver receives: an Ethernet header. Shorter ones (runts) are dropped
/// and counted as receive errors (`ierrors`).
pub const MIN_FRAME: usize = 14;

/// Which driver runs a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum DriverKind {
    /// `net_null`: rx returns packets of a fixed length without touching their bytes, tx frees and
    /// counts.
    Null = 1,
    /// `net_gen`: a traffic generator of varied 5-tuples.
    Gen = 2,
    /// `net_ring`: ring-backed (DPDK's `rte_eth_from_rings`).
    Ring = 3,
    /// `net_pcap`: reads and writes capture files.
    Pcap = 4,
    /// `net_af_packet`: a kernel interface through AF_PACKET mmap rings.
    AfPacket = 5,
    /// `net_tap`: a kernel TAP interface this port creates.
    Tap = 6,
    /// `net_af_xdp`: a kernel interface through AF_XDP sockets.
    AfXdp = 7,
}

impl DriverKind {
    /// DPDK's driver name, e.g. `net_af_packet`.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Null => "net_null",
            DriverKind::Gen => "net_gen",
            DriverKind::Ring => "net_ring",
            DriverKind::Pcap => "net_pcap",
            DriverKind::AfPacket => "net_af_packet",
            DriverKind::Tap => "net_tap",
            DriverKind::AfXdp => "net_af_xdp",
        }
    }

    pub(crate) fn from_u32(v: u32) -> Option<DriverKind> {
        Some(match v {
            1 => DriverKind::Null,
            2 => DriverKind::Gen,
            3 => DriverKind::Ring,
            4 => DriverKind::Pcap,
            5 => DriverKind::AfPacket,
            6 => DriverKind::Tap,
            7 => DriverKind::AfXdp,
            _ => return None,
        })
    }

    /// True for drivers whose queues are kernel file descriptors (passed to secondaries).
    pub fn uses_fds(self) -> bool {
        matches!(
            self,
            DriverKind::AfPacket | DriverKind::Tap | DriverKind::AfXdp
        )
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            DriverKind::Null => &["size", "copy", "queues"],
            DriverKind::Gen => &["flows", "size", "rate", "queues", "seed"],
            DriverKind::Ring => &["queues", "size"],
            DriverKind::Pcap => &["rx_pcap", "tx_pcap", "infinite_rx"],
            DriverKind::AfPacket => &[
                "iface",
                "qpairs",
                "blocksz",
                "framesz",
                "framecnt",
                "qdisc_bypass",
            ],
            DriverKind::Tap => &["iface", "queues"],
            DriverKind::AfXdp => &["iface", "start_queue", "queue_count"],
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Frame sizes a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenSize {
    /// Every frame has this many bytes (FCS excluded), 60 to 1514.
    Fixed(u16),
    /// A simple IMIX: 64, 576 and 1500 bytes in the ratio 7:4:1.
    Mixed,
}

/// A parsed `--vdev` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdevSpec {
    /// The device name, e.g. `net_gen0`: the port's name.
    pub name: String,
    /// What the driver was told.
    pub args: DriverArgs,
}

/// Driver arguments, one variant per driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverArgs {
    /// `net_null[,size=B][,copy=0|1][,queues=N]`.
    Null {
        /// Bytes of each received packet (default 64).
        size: u16,
        /// `copy=1`: receive copies a template packet into each mbuf and transmit reads every
        /// packet's bytes, as DPDK's `net_null` with `copy=1`; by default neither touches packet
        /// bytes (only lengths are set), as DPDK's default.
        copy: bool,
        /// Queue pairs when the application does not configure them (default 1).
        queues: Option<u16>,
    },
    /// `net_gen,flows=N,size=B|mixed,rate=PPS[,queues=N][,seed=S]`.
    Gen {
        /// Number of distinct 5-tuples (default 1024).
        flows: u32,
        /// Frame sizes.
        size: GenSize,
        /// Packets per second for the whole port, split evenly over its queues; None = as
        /// fast as asked.
        rate: Option<u64>,
        /// Queue pairs when the application does not configure them.
        queues: Option<u16>,
        /// Seed of the flow table (default 1).
        seed: u64,
    },
    /// `net_ring[,queues=N][,size=S]`: each queue's rx and tx share one ring, so what is sent
    /// on a queue is received on it (DPDK's net_ring vdev).
    Ring {
        /// Queue pairs when the application does not configure them.
        queues: Option<u16>,
        /// Ring size (power of two, default 1024).
        size: u32,
    },
    /// `net_pcap,rx_pcap=F,tx_pcap=F[,infinite_rx=1]`.
    Pcap {
        /// Capture files to read (one per rx queue; repeat the key for more).
        rx: Vec<PathBuf>,
        /// Capture file to write (shared by all tx queues).
        tx: Option<PathBuf>,
        /// Replay the capture in a loop.
        infinite_rx: bool,
    },
    /// `net_af_packet,iface=IF[,qpairs=N][,blocksz=B][,framesz=F][,framecnt=C][,qdisc_bypass=0|1]`.
    AfPacket {
        /// The kernel interface.
        iface: String,
        /// Queue pairs (default 1); several queues share the traffic by flow hash
        /// (PACKET_FANOUT_HASH).
        qpairs: u16,
        /// Ring block size in bytes (power of two, multiple of the page size).
        blocksz: u32,
        /// Frame size in bytes (tx ring slots; multiple of 16).
        framesz: u32,
        /// Frames per ring.
        framecnt: u32,
        /// Bypass the kernel's queueing discipline on transmit.
        qdisc_bypass: bool,
    },
    /// `net_tap[,iface=NAME][,queues=N]`.
    Tap {
        /// The interface to create (default `dtap<instance>`, as DPDK).
        iface: Option<String>,
        /// Queue pairs when the application does not configure them.
        queues: Option<u16>,
    },
    /// `net_af_xdp,iface=IF[,start_queue=Q][,queue_count=N]`.
    AfXdp {
        /// The kernel interface.
        iface: String,
        /// First interface queue the port uses (default 0).
        start_queue: u16,
        /// Queues (default 1): the port's queue q is the interface's queue start_queue + q.
        queue_count: u16,
    },
}

impl DriverArgs {
    /// The driver.
    pub fn kind(&self) -> DriverKind {
        match self {
            DriverArgs::Null { .. } => DriverKind::Null,
            DriverArgs::Gen { .. } => DriverKind::Gen,
            DriverArgs::Ring { .. } => DriverKind::Ring,
            DriverArgs::Pcap { .. } => DriverKind::Pcap,
            DriverArgs::AfPacket { .. } => DriverKind::AfPacket,
            DriverArgs::Tap { .. } => DriverKind::Tap,
            DriverArgs::AfXdp { .. } => DriverKind::AfXdp,
        }
    }
}

const DRIVERS: &[(&str, DriverKind)] = &[
    ("net_af_xdp", DriverKind::AfXdp),
    ("eth_af_xdp", DriverKind::AfXdp),
    ("net_af_packet", DriverKind::AfPacket),
    ("eth_af_packet", DriverKind::AfPacket),
    ("net_pcap", DriverKind::Pcap),
    ("eth_pcap", DriverKind::Pcap),
    ("net_null", DriverKind::Null),
    ("eth_null", DriverKind::Null),
    ("net_ring", DriverKind::Ring),
    ("eth_ring", DriverKind::Ring),
    ("net_tap", DriverKind::Tap),
    ("net_gen", DriverKind::Gen),
];

fn bad(spec: &str, why: impl Into<String>) -> Error {
    Error::BadSpec {
        spec: spec.to_owned(),
        why: why.into(),
    }
}

fn num<T: std::str::FromStr>(spec: &str, key: &str, v: &str) -> Result<T, Error> {
    let parsed = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|n| n.to_string().parse().ok())
    } else {
        v.parse().ok()
    };
    parsed.ok_or_else(|| bad(spec, format!("{key}={v:?} is not a valid number")))
}

fn flag(spec: &str, key: &str, v: &str) -> Result<bool, Error> {
    match v {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(bad(spec, format!("{key}={v:?} must be 0 or 1"))),
    }
}

fn queues(spec: &str, key: &str, v: &str) -> Result<u16, Error> {
    let n: u16 = num(spec, key, v)?;
    if n == 0 || n as usize > MAX_QUEUES {
        return Err(bad(spec, format!("{key}={n} must be 1 to {MAX_QUEUES}")));
    }
    Ok(n)
}

fn iface_name(spec: &str, key: &str, v: &str) -> Result<String, Error> {
    // IFNAMSIZ is 16 with the NUL.
    if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', '\0']) {
        return Err(bad(
            spec,
            format!("{key}={v:?} is not an interface name (1 to 15 characters, no '/' or spaces)"),
        ));
    }
    Ok(v.to_owned())
}

/// Parses one `--vdev` spec.
///
/// # Errors
/// [`Error::BadSpec`] naming the spec and the problem: an unknown driver, an unknown or
/// repeated key, a bad value, or a missing required key.
pub fn parse(spec: &str) -> Result<VdevSpec, Error> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(bad(spec, "empty device name"));
    }
    let (prefix, kind) = DRIVERS
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .copied()
        .ok_or_else(|| {
            bad(
                spec,
                format!(
                    "unknown driver in {name:?} (known: net_null, net_gen, net_ring, net_pcap, net_af_packet, net_af_xdp, net_tap)"
                ),
            )
        })?;
    if name.len() >= PORT_NAMESIZE {
        return Err(bad(
            spec,
            format!(
                "device name {name:?} is longer than {} bytes",
                PORT_NAMESIZE - 1
            ),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(bad(
            spec,
            format!("device name {name:?} has characters other than letters, digits, '_' and '-'"),
        ));
    }
    let instance = &name[prefix.len()..];
    let mut kv: Vec<(&str, &str)> = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| bad(spec, format!("argument {p:?} is not key=value")))?;
        if !kind.keys().contains(&k) {
            return Err(bad(
                spec,
                format!(
                    "unknown argument {k:?} for {} (known: {})",
                    kind.name(),
                    kind.keys().join(", ")
                ),
            ));
        }
        if v.is_empty() {
            return Err(bad(spec, format!("argument {k:?} has an empty value")));
        }
        if k != "rx_pcap" && kv.iter().any(|(k2, _)| *k2 == k) {
            return Err(bad(spec, format!("argument {k:?} is given twice")));
        }
        kv.push((k, v));
    }
    let get = |k: &str| kv.iter().find(|(k2, _)| *k2 == k).map(|(_, v)| *v);
    let opt_queues = |k: &str| get(k).map(|v| queues(spec, k, v)).transpose();
    let args = match kind {
        DriverKind::Null => {
            let size = match get("size") {
                Some(v) => num::<u16>(spec, "size", v)?,
                None => 64,
            };
            if !(MIN_FRAME as u16..=MAX_FRAME as u16).contains(&size) {
                return Err(bad(
                    spec,
                    format!("size={size} must be {MIN_FRAME} to {MAX_FRAME}"),
                ));
            }
            let copy = match get("copy") {
                None | Some("0") => false,
                Some("1") => true,
                Some(v) => return Err(bad(spec, format!("copy={v:?} must be 0 or 1"))),
            };
            DriverArgs::Null {
                size,
                copy,
                queues: opt_queues("queues")?,
            }
        }
        DriverKind::Gen => {
            let flows = match get("flows") {
                Some(v) => num::<u32>(spec, "flows", v)?,
                None => 1024,
            };
            if flows == 0 || flows > 1 << 20 {
                return Err(bad(spec, format!("flows={flows} must be 1 to {}", 1 << 20)));
            }
            let size = match get("size") {
                None => GenSize::Fixed(64),
                Some("mixed" | "imix") => GenSize::Mixed,
                Some(v) => {
                    let b: u16 = num(spec, "size", v)?;
                    if !(60..=1514).contains(&b) {
                        return Err(bad(
                            spec,
                            format!("size={b} must be 60 to 1514 bytes, or \"mixed\""),
                        ));
                    }
                    GenSize::Fixed(b)
                }
            };
            let rate = match get("rate") {
                None => None,
                Some(v) => {
                    let r: u64 = num(spec, "rate", v)?;
                    if r == 0 {
                        return Err(bad(
                            spec,
                            "rate=0: leave rate out for an unlimited generator",
                        ));
                    }
                    Some(r)
                }
            };
            let seed = match get("seed") {
                Some(v) => num(spec, "seed", v)?,
                None => 1,
            };
            DriverArgs::Gen {
                flows,
                size,
                rate,
                queues: opt_queues("queues")?,
                seed,
            }
        }
        DriverKind::Ring => {
            let size = match get("size") {
                Some(v) => num::<u32>(spec, "size", v)?,
                None => 1024,
            };
            if !size.is_power_of_two() || !(2..=1 << 20).contains(&size) {
                return Err(bad(
                    spec,
                    format!("size={size} must be a power of two, 2 to {}", 1 << 20),
                ));
            }
            DriverArgs::Ring {
                queues: opt_queues("queues")?,
                size,
            }
        }
        DriverKind::Pcap => {
            let rx: Vec<PathBuf> = kv
                .iter()
                .filter(|(k, _)| *k == "rx_pcap")
                .map(|(_, v)| PathBuf::from(v))
                .collect();
            if rx.len() > MAX_QUEUES {
                return Err(bad(spec, format!("at most {MAX_QUEUES} rx_pcap files")));
            }
            let tx = get("tx_pcap").map(PathBuf::from);
            if rx.is_empty() && tx.is_none() {
                return Err(bad(spec, "net_pcap needs rx_pcap=FILE and/or tx_pcap=FILE"));
            }
            let infinite_rx = match get("infinite_rx") {
                Some(v) => flag(spec, "infinite_rx", v)?,
                None => false,
            };
            if infinite_rx && rx.is_empty() {
                return Err(bad(spec, "infinite_rx=1 needs rx_pcap=FILE"));
            }
            DriverArgs::Pcap {
                rx,
                tx,
                infinite_rx,
            }
        }
        DriverKind::AfPacket => {
            let iface = get("iface")
                .ok_or_else(|| bad(spec, "net_af_packet needs iface=NAME"))
                .and_then(|v| iface_name(spec, "iface", v))?;
            let qpairs = get("qpairs")
                .map(|v| queues(spec, "qpairs", v))
                .transpose()?
                .unwrap_or(1);
            let blocksz = match get("blocksz") {
                Some(v) => num::<u32>(spec, "blocksz", v)?,
                None => 1 << 18,
            };
            if !blocksz.is_power_of_two() || !(4096..=1 << 26).contains(&blocksz) {
                return Err(bad(
                    spec,
                    format!(
                        "blocksz={blocksz} must be a power of two, 4096 to {}",
                        1 << 26
                    ),
                ));
            }
            let framesz = match get("framesz") {
                Some(v) => num::<u32>(spec, "framesz", v)?,
                None => 2048,
            };
            if framesz % 16 != 0 || !(128..=blocksz).contains(&framesz) {
                return Err(bad(
                    spec,
                    format!(
                        "framesz={framesz} must be a multiple of 16, 128 to blocksz ({blocksz})"
                    ),
                ));
            }
            let framecnt = match get("framecnt") {
                Some(v) => num::<u32>(spec, "framecnt", v)?,
                None => 4096,
            };
            let per_block = blocksz / framesz;
            if framecnt == 0 || framecnt % per_block != 0 || framecnt > 1 << 20 {
                return Err(bad(
                    spec,
                    format!(
                        "framecnt={framecnt} must be a non-zero multiple of blocksz/framesz ({per_block}), at most {}",
                        1 << 20
                    ),
                ));
            }
            let qdisc_bypass = match get("qdisc_bypass") {
                Some(v) => flag(spec, "qdisc_bypass", v)?,
                None => true,
            };
            DriverArgs::AfPacket {
                iface,
                qpairs,
                blocksz,
                framesz,
                framecnt,
                qdisc_bypass,
            }
        }
        DriverKind::AfXdp => {
            let iface = get("iface")
                .ok_or_else(|| bad(spec, "net_af_xdp needs iface=NAME"))
                .and_then(|v| iface_name(spec, "iface", v))?;
            let start_queue = match get("start_queue") {
                Some(v) => num::<u16>(spec, "start_queue", v)?,
                None => 0,
            };
            if start_queue > 255 {
                return Err(bad(
                    spec,
                    format!("start_queue={start_queue} must be 0 to 255"),
                ));
            }
            let queue_count = get("queue_count")
                .map(|v| queues(spec, "queue_count", v))
                .transpose()?
                .unwrap_or(1);
            DriverArgs::AfXdp {
                iface,
                start_queue,
                queue_count,
            }
        }
        DriverKind::Tap => DriverArgs::Tap {
            iface: get("iface")
                .map(|v| iface_name(spec, "iface", v))
                .transpose()?
                .or_else(|| Some(format!("dtap{instance}")).filter(|n| n.len() <= 15)),
            queues: opt_queues("queues")?,
        },
    };
    Ok(VdevSpec {
        name: name.to_owned(),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(spec: &str) -> String {
        parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn each_driver_parses_with_defaults() {
        assert_eq!(
            parse("net_null0").unwrap().args,
            DriverArgs::Null {
                size: 64,
                copy: false,
                queues: None
            }
        );
        assert_eq!(
            parse("net_gen0").unwrap().args,
            DriverArgs::Gen {
                flows: 1024,
                size: GenSize::Fixed(64),
                rate: None,
                queues: None,
                seed: 1
            }
        );
        assert_eq!(parse("net_ring0").unwrap().args.kind(), DriverKind::Ring);
        let tap = parse("net_tap3").unwrap();
        assert_eq!(
            tap.args,
            DriverArgs::Tap {
                iface: Some("dtap3".into()),
                queues: None
            }
        );
        let af = parse("net_af_packet1,iface=veth0").unwrap();
        assert_eq!(af.name, "net_af_packet1");
        match af.args {
            DriverArgs::AfPacket {
                iface,
                qpairs,
                qdisc_bypass,
                ..
            } => {
                assert_eq!(iface, "veth0");
                assert_eq!(qpairs, 1);
                assert!(qdisc_bypass);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arguments_are_read() {
        assert_eq!(
            parse("net_gen1,flows=64,size=mixed,rate=1000000,queues=2,seed=7")
                .unwrap()
                .args,
            DriverArgs::Gen {
                flows: 64,
                size: GenSize::Mixed,
                rate: Some(1_000_000),
                queues: Some(2),
                seed: 7
            }
        );
        assert_eq!(
            parse("net_gen1,size=128").unwrap().args,
            DriverArgs::Gen {
                flows: 1024,
                size: GenSize::Fixed(128),
                rate: None,
                queues: None,
                seed: 1
            }
        );
        assert_eq!(
            parse("net_pcap0,rx_pcap=/tmp/a.pcap,rx_pcap=/tmp/b.pcap,tx_pcap=/tmp/o.pcap,infinite_rx=1")
                .unwrap()
                .args,
            DriverArgs::Pcap {
                rx: vec!["/tmp/a.pcap".into(), "/tmp/b.pcap".into()],
                tx: Some("/tmp/o.pcap".into()),
                infinite_rx: true
            }
        );
        match parse("eth_af_packet0,iface=eth1,qpairs=4,blocksz=0x10000,framesz=2048,framecnt=512,qdisc_bypass=0")
            .unwrap()
            .args
        {
            DriverArgs::AfPacket {
                qpairs,
                blocksz,
                framecnt,
                qdisc_bypass,
                ..
            } => {
                assert_eq!((qpairs, blocksz, framecnt, qdisc_bypass), (4, 65536, 512, false));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("net_tap0,iface=shoaltap").unwrap().args,
            DriverArgs::Tap {
                iface: Some("shoaltap".into()),
                queues: None
            }
        );
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        assert!(
            err("net_bogus0").contains("unknown driver"),
            "{}",
            err("net_bogus0")
        );
        assert!(err("").contains("empty device name"));
        let e = err("net_null0,flows=3");
        assert!(
            e.contains("unknown argument \"flows\" for net_null") && e.contains("size"),
            "{e}"
        );
        assert!(err("net_gen0,flows=abc").contains("not a valid number"));
        assert!(err("net_gen0,flows=0").contains("flows=0"));
        assert!(err("net_gen0,size=20").contains("60 to 1514"));
        assert!(err("net_gen0,rate=0").contains("rate=0"));
        assert!(err("net_gen0,flows").contains("not key=value"));
        assert!(err("net_gen0,flows=1,flows=2").contains("given twice"));
        assert!(err("net_gen0,flows=").contains("empty value"));
        assert!(err("net_af_packet0").contains("needs iface"));
        assert!(err("net_af_packet0,iface=a/b").contains("not an interface name"));
        assert!(err("net_af_packet0,iface=this_name_is_too_long").contains("not an interface name"));
        assert!(err("net_af_packet0,iface=e,qpairs=0").contains("1 to 16"));
        assert!(err("net_af_packet0,iface=e,qpairs=17").contains("1 to 16"));
        assert!(err("net_af_packet0,iface=e,blocksz=5000").contains("power of two"));
        assert!(err("net_af_packet0,iface=e,framecnt=3").contains("multiple"));
        assert!(err("net_af_xdp0").contains("needs iface"));
        assert!(err("net_af_xdp0,iface=e,queue_count=0").contains("1 to 16"));
        assert!(err("net_af_xdp0,iface=e,start_queue=300").contains("0 to 255"));
        assert!(err("net_af_xdp0,iface=e,busy_budget=1").contains("unknown argument"));
        assert_eq!(
            parse("net_af_xdp0,iface=veth0,start_queue=2,queue_count=4")
                .unwrap()
                .args,
            DriverArgs::AfXdp {
                iface: "veth0".into(),
                start_queue: 2,
                queue_count: 4
            }
        );
        assert!(err("net_pcap0").contains("needs rx_pcap"));
        assert!(err("net_pcap0,tx_pcap=x,infinite_rx=1").contains("needs rx_pcap"));
        assert!(err("net_pcap0,rx_pcap=x,infinite_rx=2").contains("0 or 1"));
        assert!(err("net_ring0,size=1000").contains("power of two"));
        assert!(err("net_null0 x").contains("characters"));
        assert!(err(&format!("net_null{}", "9".repeat(40))).contains("longer than"));
        // Every error names the spec it is about.
        assert!(err("net_gen0,flows=abc").contains("net_gen0,flows=abc"));
    }
}
