//! `shoal dumpcap`: capture the packets of a running group's ports into a pcapng file
//! (DPDK's `dpdk-dumpcap`). It joins the group as a secondary, asks the primary to arm the
//! ports' capture taps ([`shoal::pdump`]), and writes what the processes that receive and
//! transmit on those ports hand it: one Interface Description Block per port (Ethernet,
//! nanosecond timestamps), one Enhanced Packet Block per packet with its direction
//! (`epb_flags` inbound or outbound). The files are written with the pcap-file crate.
//!
//! It stops after `-c` packets, after `--duration`, or on SIGINT/SIGTERM, and reports what was
//! captured and what the group dropped (a full capture ring or no mbuf for a clone: the data
//! path never waits for the capture). Killed, it leaves the capture to the primary, which turns
//! it off within a fraction of a second and frees what it left.

use std::borrow::Cow;
use std::io::Write;
use std::time::{Duration, Instant};

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use shoal::eal::{self, Eal};
use shoal::ethdev::capture::{RX, TX};
use shoal::mbuf::MbufBatch;
use shoal::pdump::{self, Capture};
use shoal::sync::Backoff;

/// `shoal dumpcap`'s options (dpdk-dumpcap's where they exist).
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "Capture the packets of a running group's ports into a pcapng file (DPDK's dpdk-dumpcap)",
    after_help = "Example: shoal dumpcap --file-prefix P -i 0:rx,1:tx -w out.pcapng -c 1000"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "PORTS",
        help = "Ports to capture, by number: PORT[:rx|:tx][,...] (both directions unless told; repeatable; default: every port)"
    )]
    interfaces: Vec<String>,
    /// The pcapng file to write
    #[arg(short = 'w', value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// Stop after this many packets
    #[arg(short = 'c', value_name = "COUNT", value_parser = shoal_apps::args::num::<u64>)]
    count: Option<u64>,
    /// Stop after this many seconds
    #[arg(long, value_name = "SECS", value_parser = shoal_apps::args::secs, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// Bytes kept of each packet
    #[arg(short = 's', long = "snapshot-length", value_name = "SNAPLEN", default_value_t = 262144, value_parser = snaplen)]
    snaplen: u32,
    /// List the group's ports and exit
    #[arg(short = 'D', long = "list-interfaces")]
    list: bool,
    /// Print only the final counts
    #[arg(short = 'q')]
    quiet: bool,
}

fn snaplen(v: &str) -> Result<u32, String> {
    shoal_apps::args::num::<u32>(v).and_then(|n| {
        if n == 0 {
            Err("must be above 0".into())
        } else {
            Ok(n)
        }
    })
}

/// Parses `PORT[:rx|:tx]` items into (port, direction bits).
fn parse_ports(items: &[String]) -> Result<Vec<(u16, u32)>, String> {
    let mut out: Vec<(u16, u32)> = Vec::new();
    for item in items.iter().flat_map(|s| s.split(',')) {
        let (p, dir) = match item.split_once(':') {
            Some((p, "rx")) => (p, RX),
            Some((p, "tx")) => (p, TX),
            Some((_, d)) => {
                return Err(format!(
                    "invalid -i {item:?}: direction {d:?} is not rx or tx"
                ))
            }
            None => (item, RX | TX),
        };
        let p: u16 = p
            .parse()
            .ok()
            .filter(|&p| (p as usize) < shoal::ethdev::MAX_PORTS)
            .ok_or_else(|| format!("invalid -i {item:?}: not a port number"))?;
        match out.iter_mut().find(|(q, _)| *q == p) {
            Some((_, bits)) => *bits |= dir,
            None => out.push((p, dir)),
        }
    }
    Ok(out)
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("dumpcap", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let usage_err = |msg: &str| {
        eprintln!("error: {msg}\n\n{}", crate::usage_of::<Opts>("dumpcap"));
        2
    };
    let wanted = match parse_ports(&o.interfaces) {
        Ok(w) => w,
        Err(e) => return usage_err(&e),
    };
    if o.file.is_none() && !o.list {
        return usage_err("an output file is required: -w FILE");
    }
    match dumpcap(&o, wanted) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal dumpcap: {e}");
            1
        }
    }
}

fn dumpcap(o: &Opts, wanted: Vec<(u16, u32)>) -> Result<(), String> {
    // The highest lcore id, out of the applications' way (they count from 0), on the last CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lcore = format!("{}@{}", shoal::memory::MAX_LCORES - 1, cpus - 1);
    let argv: Vec<String> = [
        "shoal-dumpcap",
        "--proc-type=secondary",
        "--lcores",
        &lcore,
        "--file-prefix",
        &o.group.prefix,
        "--log-level",
        "error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    eal::setup_process(&argv);
    let (eal, _) = Eal::init(argv).map_err(|e| e.to_string())?;
    let r = capture(&eal, o, wanted);
    eal.leave();
    r
}

fn capture(eal: &Eal, o: &Opts, wanted: Vec<(u16, u32)>) -> Result<(), String> {
    let ports = shoal::ethdev::ports(eal).map_err(|e| format!("ports: {e}"))?;
    if o.list {
        let mut text = String::new();
        for p in &ports {
            text += &format!("{}. {} ({}, {})\n", p.id(), p.name(), p.driver(), p.mac());
        }
        crate::print_out(&text);
        return Ok(());
    }
    let wanted = if wanted.is_empty() {
        ports.iter().map(|p| (p.id().0, RX | TX)).collect()
    } else {
        wanted
    };
    let mut chosen = Vec::new();
    for (id, bits) in &wanted {
        let p = ports
            .iter()
            .find(|p| p.id().0 == *id)
            .ok_or_else(|| format!("no port {id} in group {:?}", o.group.prefix))?;
        chosen.push((p.clone(), *bits));
    }
    let path = o.file.as_ref().expect("checked");
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = PcapNgWriter::new(std::io::BufWriter::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Interface id i is chosen[i].
    for (p, _) in &chosen {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: o.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(p.name().to_string())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "shoal port {} ({})",
                    p.id(),
                    p.driver()
                ))),
                InterfaceDescriptionOption::IfMacAddr(Cow::Owned(p.mac().0.to_vec())),
                // Nanoseconds, as pcap-file writes them.
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        w.write_pcapng_block(idb)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mask = |bit: u32| {
        chosen
            .iter()
            .filter(|(_, b)| b & bit != 0)
            .fold(0u64, |m, (p, _)| m | 1 << p.id().0)
    };
    let mut cap = Capture::start(eal, mask(RX), mask(TX)).map_err(|e| e.to_string())?;
    let names: Vec<String> = chosen
        .iter()
        .map(|(p, b)| {
            let dir = match *b {
                RX => ":rx",
                TX => ":tx",
                _ => "",
            };
            format!("'{}'{dir}", p.name())
        })
        .collect();
    eprintln!("Capturing on {} to {}", names.join(", "), path.display());

    let started = Instant::now();
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut batch = MbufBatch::new();
    let mut backoff = Backoff::new();
    let mut buf = Vec::new();
    let limit = o.count.unwrap_or(u64::MAX);
    let mut last_note = Instant::now();
    let mut stopping = false;
    loop {
        if !stopping
            && (eal.should_quit()
                || written >= limit
                || o.duration.is_some_and(|d| started.elapsed() >= d)
                || eal.primary_died())
        {
            // Disarm, then take what is already in the ring (up to the count).
            cap.stop().map_err(|e| e.to_string())?;
            stopping = true;
        }
        let n = cap.next_burst(&mut batch, shoal::mbuf::MAX_BURST);
        if n == 0 {
            if stopping {
                break;
            }
            backoff.snooze();
            continue;
        }
        backoff.reset();
        for m in batch.drain(..) {
            if written >= limit {
                continue;
            }
            let Some(iface) = chosen.iter().position(|(p, _)| p.id().0 == m.port()) else {
                continue;
            };
            buf.clear();
            for seg in m.segments() {
                let room = (o.snaplen as usize).saturating_sub(buf.len());
                buf.extend_from_slice(&seg[..seg.len().min(room)]);
            }
            // epb_flags bits 0-1: 1 inbound, 2 outbound.
            let flags = if pdump::direction(&m) == RX { 1 } else { 2 };
            let epb = EnhancedPacketBlock {
                interface_id: iface as u32,
                timestamp: Duration::from_nanos(m.timestamp()),
                original_len: m.pkt_len(),
                data: Cow::Borrowed(&buf),
                options: vec![EnhancedPacketOption::Flags(flags)],
            };
            w.write_pcapng_block(epb)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            written += 1;
            bytes += m.pkt_len() as u64;
        }
        if !o.quiet && last_note.elapsed() >= Duration::from_secs(1) {
            last_note = Instant::now();
            eprintln!("Packets: {written}");
        }
    }
    w.get_mut()
        .flush()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let s = cap.stats();
    drop(cap);
    println!(
        "Packets captured: {written} ({bytes} bytes); dropped: {} (capture ring full {}, no mbuf {})",
        s.dropped_full + s.dropped_nombuf,
        s.dropped_full,
        s.dropped_nombuf
    );
    Ok(())
}
