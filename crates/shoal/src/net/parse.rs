//! [`parse_frame`]: one pass over an Ethernet frame that finds the layer offsets, the 5-tuple
//! and a coarse class, like DPDK's `rte_net_get_ptype` with its `rte_net_hdr_lens`.

use std::net::IpAddr;

use super::ethernet::{self, EthernetFrame};
use super::icmpv4::Icmpv4Packet;
use super::icmpv6::Icmpv6Packet;
use super::ipv4::Ipv4Packet;
use super::ipv6::Ipv6Packet;
use super::tcp::TcpPacket;
use super::udp::{self, UdpPacket};
use super::vlan::{self, VlanHeader, VlanTci};
use super::{ArpPacket, Error, EtherType, FiveTuple, IpProtocol, Layer, Result};

/// The coarse kind of a frame, what a dispatcher branches on first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketClass {
    /// ARP.
    Arp,
    /// ICMPv6 neighbour discovery (router solicitation/advertisement, neighbour
    /// solicitation/advertisement, redirect): IPv6's ARP.
    Ipv6Ndisc,
    /// Any other IPv4 packet.
    Ipv4,
    /// Any other IPv6 packet.
    Ipv6,
    /// Not IP or ARP (LLDP, MPLS, 802.3 length frames, a third VLAN tag, ...).
    Other,
}

/// What [`parse_frame`] found. Offsets count from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketInfo {
    /// Offset of the Ethernet header: always 0 (DPDK's `l2_len` is `l3_offset - l2_offset`).
    pub l2_offset: usize,
    /// The only VLAN tag, or the inner one of a QinQ pair (DPDK's `vlan_tci`).
    pub vlan: Option<VlanTci>,
    /// The outer tag of a QinQ pair (DPDK's `vlan_tci_outer`).
    pub vlan_outer: Option<VlanTci>,
    /// EtherType after any VLAN tags.
    pub ethertype: EtherType,
    /// Offset of the network header (IP or ARP), just after the Ethernet header and tags.
    pub l3_offset: usize,
    /// End of the network packet: the IPv4 total length or IPv6 payload length, which may be
    /// less than the frame (Ethernet padding). The frame's length for non-IP frames.
    pub l3_end: usize,
    /// Offset of the upper-layer header (after IPv4 options and IPv6 extension headers);
    /// `None` for non-IP frames, IPv6 "no next header", and fragments other than the first.
    pub l4_offset: Option<usize>,
    /// Offset of the data after a TCP, UDP or SCTP header.
    pub payload_offset: Option<usize>,
    /// The flow; present for every IPv4 and IPv6 packet, with zero ports for protocols without
    /// them and for non-first fragments.
    pub tuple: Option<FiveTuple>,
    /// The class.
    pub class: PacketClass,
    /// DSCP of an IP packet (0 otherwise).
    pub dscp: u8,
    /// The packet is an IPv4 or IPv6 fragment (first or later).
    pub fragment: bool,
    /// ICMP or ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
}

/// DPDK's packet type bits (`RTE_PTYPE_*` of `rte_mbuf_ptype.h`), the values
/// [`PacketInfo::ptype`] gives and an mbuf's `packet_type` carries.
pub mod ptype {
    /// Ethernet.
    pub const L2_ETHER: u32 = 0x0000_0001;
    /// ARP over Ethernet.
    pub const L2_ETHER_ARP: u32 = 0x0000_0003;
    /// Ethernet with one VLAN tag.
    pub const L2_ETHER_VLAN: u32 = 0x0000_0006;
    /// Ethernet with two VLAN tags.
    pub const L2_ETHER_QINQ: u32 = 0x0000_0007;
    /// The L2 bits.
    pub const L2_MASK: u32 = 0x0000_000f;
    /// IPv4 without options.
    pub const L3_IPV4: u32 = 0x0000_0010;
    /// IPv4 with options.
    pub const L3_IPV4_EXT: u32 = 0x0000_0030;
    /// IPv6 without extension headers.
    pub const L3_IPV6: u32 = 0x0000_0040;
    /// IPv6 with extension headers.
    pub const L3_IPV6_EXT: u32 = 0x0000_00c0;
    /// The L3 bits.
    pub const L3_MASK: u32 = 0x0000_00f0;
    /// TCP.
    pub const L4_TCP: u32 = 0x0000_0100;
    /// UDP.
    pub const L4_UDP: u32 = 0x0000_0200;
    /// An IP fragment.
    pub const L4_FRAG: u32 = 0x0000_0300;
    /// SCTP.
    pub const L4_SCTP: u32 = 0x0000_0400;
    /// ICMP or ICMPv6.
    pub const L4_ICMP: u32 = 0x0000_0500;
    /// Another IP protocol.
    pub const L4_NONFRAG: u32 = 0x0000_0600;
    /// The L4 bits.
    pub const L4_MASK: u32 = 0x0000_0f00;
}

impl PacketInfo {
    /// The packet's type as DPDK's `RTE_PTYPE_*` bits ([`ptype`]): what a NIC (or
    /// `rte_net_get_ptype`) would put in the mbuf, so that later stages need not parse again.
    pub fn ptype(&self) -> u32 {
        let l2 = match (self.vlan, self.vlan_outer) {
            _ if self.class == PacketClass::Arp => ptype::L2_ETHER_ARP,
            (Some(_), Some(_)) => ptype::L2_ETHER_QINQ,
            (Some(_), None) => ptype::L2_ETHER_VLAN,
            _ => ptype::L2_ETHER,
        };
        let Some(t) = self.tuple else {
            return l2;
        };
        let ext = self
            .l4_offset
            .map_or(0, |o| o.saturating_sub(self.l3_offset));
        let l3 = match t.src {
            std::net::IpAddr::V4(_) if ext > 20 => ptype::L3_IPV4_EXT,
            std::net::IpAddr::V4(_) => ptype::L3_IPV4,
            std::net::IpAddr::V6(_) if ext > 40 => ptype::L3_IPV6_EXT,
            std::net::IpAddr::V6(_) => ptype::L3_IPV6,
        };
        let l4 = if self.fragment {
            ptype::L4_FRAG
        } else {
            match t.proto {
                6 => ptype::L4_TCP,
                17 => ptype::L4_UDP,
                132 => ptype::L4_SCTP,
                1 | 58 => ptype::L4_ICMP,
                _ => ptype::L4_NONFRAG,
            }
        };
        l2 | l3 | l4
    }
}

/// The SCTP common header: ports, verification tag, checksum.
const SCTP_HEADER_LEN: usize = 12;

/// Walks Ethernet → up to two VLAN tags → ARP / IPv4 / IPv6 (with extension headers) →
/// TCP / UDP / SCTP / ICMP / ICMPv6.
///
/// No input makes this panic. Unknown EtherTypes and IP protocols are not errors: they stop
/// the walk with what was found so far. Checksums are not verified.
///
/// # Errors
/// [`Error::Truncated`] when a header (or the length an IP header announces) runs past the
/// end of `frame`; [`Error::Malformed`] for an impossible field (IPv4 version or IHL, TCP data
/// offset, UDP length, too many IPv6 extension headers).
pub fn parse_frame(frame: &[u8]) -> Result<PacketInfo> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut info = PacketInfo {
        l2_offset: 0,
        vlan: None,
        vlan_outer: None,
        ethertype: eth.ethertype(),
        l3_offset: ethernet::HEADER_LEN,
        l3_end: frame.len(),
        l4_offset: None,
        payload_offset: None,
        tuple: None,
        class: PacketClass::Other,
        dscp: 0,
        fragment: false,
        icmp: None,
    };

    // VLAN tags: at most two (802.1ad outer + 802.1Q inner); a third leaves the class Other.
    for _ in 0..2 {
        if !info.ethertype.is_vlan_tpid() {
            break;
        }
        let tag = VlanHeader::new_checked(frame.get(info.l3_offset..).unwrap_or_default())?;
        info.vlan_outer = info.vlan;
        info.vlan = Some(tag.tci());
        info.ethertype = tag.ethertype();
        info.l3_offset += vlan::HEADER_LEN;
    }

    let l3 = frame.get(info.l3_offset..).unwrap_or_default();
    match info.ethertype {
        EtherType::ARP => {
            let arp = ArpPacket::new_checked(l3)?;
            info.l3_end = info.l3_offset + arp.packet_len();
            info.class = PacketClass::Arp;
        }
        EtherType::IPV4 => parse_ipv4(l3, &mut info)?,
        EtherType::IPV6 => parse_ipv6(l3, &mut info)?,
        _ => {}
    }
    Ok(info)
}

fn parse_ipv4(l3: &[u8], info: &mut PacketInfo) -> Result<()> {
    let ip = Ipv4Packet::new_checked(l3)?;
    if ip.version() != 4 {
        return Err(Error::Malformed {
            layer: Layer::Ipv4,
            what: "version is not 4",
        });
    }
    info.class = PacketClass::Ipv4;
    info.dscp = ip.dscp();
    info.fragment = ip.is_fragment();
    info.l3_end = info.l3_offset + usize::from(ip.total_len());
    let first_fragment = ip.frag_offset() == 0;
    let l4_offset = info.l3_offset + ip.header_len();
    parse_l4(
        ip.src_addr().into(),
        ip.dst_addr().into(),
        ip.next_header(),
        ip.payload(),
        l4_offset,
        first_fragment,
        info,
    )
}

fn parse_ipv6(l3: &[u8], info: &mut PacketInfo) -> Result<()> {
    let ip = Ipv6Packet::new_checked(l3)?;
    if ip.version() != 6 {
        return Err(Error::Malformed {
            layer: Layer::Ipv6,
            what: "version is not 6",
        });
    }
    info.class = PacketClass::Ipv6;
    info.dscp = ip.dscp();
    info.l3_end = info.l3_offset + ipv6_header_and_payload(&ip);
    let upper = ip.upper_layer()?;
    info.fragment = upper.fragment.is_some();
    let first_fragment = !matches!(upper.fragment, Some(f) if f.offset != 0);
    let payload = ip.payload().get(upper.offset..).unwrap_or_default();
    let l4_offset = info.l3_offset + super::ipv6::HEADER_LEN + upper.offset;
    let src = ip.src_addr().into();
    let dst = ip.dst_addr().into();
    if upper.protocol == IpProtocol::IPV6_NO_NEXT {
        info.tuple = Some(FiveTuple {
            src,
            dst,
            src_port: 0,
            dst_port: 0,
            proto: upper.protocol.0,
        });
        return Ok(());
    }
    parse_l4(
        src,
        dst,
        upper.protocol,
        payload,
        l4_offset,
        first_fragment,
        info,
    )
}

fn ipv6_header_and_payload<T: AsRef<[u8]>>(ip: &Ipv6Packet<T>) -> usize {
    super::ipv6::HEADER_LEN + usize::from(ip.payload_len())
}

/// Reads the upper-layer header in `l4` (which ends where the IP packet ends) at frame offset
/// `l4_offset`.
fn parse_l4(
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    l4: &[u8],
    l4_offset: usize,
    first_fragment: bool,
    info: &mut PacketInfo,
) -> Result<()> {
    let mut tuple = FiveTuple {
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        proto: proto.0,
    };
    if !first_fragment {
        // The upper-layer header is in the first fragment, not here.
        info.tuple = Some(tuple);
        return Ok(());
    }
    info.l4_offset = Some(l4_offset);
    match proto {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(l4)?;
            tuple.src_port = tcp.src_port();
            tuple.dst_port = tcp.dst_port();
            info.payload_offset = Some(l4_offset + tcp.header_len());
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(l4)?;
            tuple.src_port = udp.src_port();
            tuple.dst_port = udp.dst_port();
            info.payload_offset = Some(l4_offset + udp::HEADER_LEN);
        }
        IpProtocol::SCTP => {
            let have = l4.len();
            let h = l4.get(..SCTP_HEADER_LEN).ok_or(Error::Truncated {
                layer: Layer::Sctp,
                need: SCTP_HEADER_LEN,
                have,
            })?;
            tuple.src_port = u16::from_be_bytes([h[0], h[1]]);
            tuple.dst_port = u16::from_be_bytes([h[2], h[3]]);
            info.payload_offset = Some(l4_offset + SCTP_HEADER_LEN);
        }
        IpProtocol::ICMP if src.is_ipv4() => {
            let icmp = Icmpv4Packet::new_checked(l4)?;
            info.icmp = Some((icmp.msg_type().0, icmp.msg_code()));
        }
        IpProtocol::ICMPV6 if src.is_ipv6() => {
            let icmp = Icmpv6Packet::new_checked(l4)?;
            info.icmp = Some((icmp.msg_type().0, icmp.msg_code()));
            if icmp.msg_type().is_ndisc() {
                info.class = PacketClass::Ipv6Ndisc;
            }
        }
        _ => {}
    }
    info.tuple = Some(tuple);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::net::build::FrameBuilder;
    use crate::net::{EthernetAddress, TcpFlags};

    const SRC_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const DST_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

    // A QinQ frame: outer S-tag 100 (0x88a8), inner C-tag 200 (0x8100), IPv4/UDP 10.0.0.1:1234
    // -> 10.0.0.2:5678 with 4 bytes of data, IPv4 checksum filled, UDP checksum zero.
    static QINQ_UDP: [u8; 54] = [
        0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xa8, // Ethernet, S-tag TPID
        0x00, 0x64, 0x81, 0x00, // outer TCI 100, C-tag TPID
        0x00, 0xc8, 0x08, 0x00, // inner TCI 200, IPv4
        0x45, 0xb8, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00,
        0x00, // IPv4 (checksum 0 here)
        10, 0, 0, 1, 10, 0, 0, 2, //
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0c, 0x00, 0x00, // UDP
        0xde, 0xad, 0xbe, 0xef,
    ];

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn qinq_udp_frame() {
        let info = parse_frame(&QINQ_UDP).unwrap();
        assert_eq!(info.vlan_outer.map(VlanTci::vid), Some(100));
        assert_eq!(info.vlan.map(VlanTci::vid), Some(200));
        assert_eq!(info.ethertype, EtherType::IPV4);
        assert_eq!(info.l3_offset, 22);
        assert_eq!(info.l4_offset, Some(42));
        assert_eq!(info.payload_offset, Some(50));
        assert_eq!(info.l3_end, 54);
        assert_eq!(info.class, PacketClass::Ipv4);
        assert_eq!(info.dscp, 46);
        assert!(!info.fragment);
        assert_eq!(
            info.tuple,
            Some(FiveTuple::new(
                v4(10, 0, 0, 1),
                1234,
                v4(10, 0, 0, 2),
                5678,
                IpProtocol::UDP
            ))
        );
    }

    #[test]
    fn single_vlan_tag() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&QINQ_UDP[..12]);
        frame.extend_from_slice(&[0x81, 0x00, 0x20, 0x0a]); // 802.1Q, PCP 1, VID 10
        frame.extend_from_slice(&QINQ_UDP[20..]);
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.vlan, Some(VlanTci::new(1, false, 10)));
        assert_eq!(info.vlan_outer, None);
        assert_eq!(info.l3_offset, 18);
        assert_eq!(info.class, PacketClass::Ipv4);
    }

    #[test]
    fn a_third_vlan_tag_is_other() {
        let mut frame = QINQ_UDP.to_vec();
        frame[20..22].copy_from_slice(&[0x81, 0x00]);
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.class, PacketClass::Other);
        assert_eq!(info.ethertype, EtherType::VLAN);
        assert_eq!(info.tuple, None);
    }

    #[test]
    fn truncated_frames_at_every_length_are_errors() {
        for len in 0..QINQ_UDP.len() {
            let err = parse_frame(&QINQ_UDP[..len]).unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{len}: {err}");
        }
    }

    #[test]
    fn ipv6_with_extension_header_reaches_tcp() {
        // IPv6, destination options (8 bytes), TCP 20 bytes, no data.
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut frame = vec![0u8; 14 + 40 + 8 + 20];
        frame[..12].copy_from_slice(&QINQ_UDP[..12]);
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ip = &mut frame[14..54];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&28u16.to_be_bytes());
        ip[6] = 60; // destination options
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.octets());
        ip[24..40].copy_from_slice(&dst.octets());
        frame[54] = 6; // next: TCP, length 0 -> 8 bytes
        let tcp = &mut frame[62..82];
        tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&50000u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = TcpFlags::SYN.0;
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.class, PacketClass::Ipv6);
        assert_eq!(info.l3_offset, 14);
        assert_eq!(info.l4_offset, Some(62));
        assert_eq!(info.payload_offset, Some(82));
        assert_eq!(
            info.tuple,
            Some(FiveTuple::new(
                src.into(),
                443,
                dst.into(),
                50000,
                IpProtocol::TCP
            ))
        );
        for len in 0..frame.len() {
            assert!(parse_frame(&frame[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn ipv6_non_first_fragment_has_no_ports() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut frame = vec![0u8; 14 + 40 + 8 + 8];
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        frame[14] = 0x60;
        frame[18..20].copy_from_slice(&16u16.to_be_bytes());
        frame[20] = 44; // fragment header
        frame[22..38].copy_from_slice(&src.octets());
        frame[38..54].copy_from_slice(&src.octets());
        frame[54] = 17; // next UDP
        frame[56..58].copy_from_slice(&(185u16 << 3).to_be_bytes()); // offset 1480, M=0
        let info = parse_frame(&frame).unwrap();
        assert!(info.fragment);
        assert_eq!(info.l4_offset, None);
        assert_eq!(
            info.tuple.map(|t| (t.proto, t.src_port, t.dst_port)),
            Some((17, 0, 0))
        );
    }

    #[test]
    fn ipv4_non_first_fragment_has_no_ports() {
        let mut frame = QINQ_UDP.to_vec();
        frame[28..30].copy_from_slice(&[0x00, 0x10]); // offset 128 bytes
        let info = parse_frame(&frame).unwrap();
        assert!(info.fragment);
        assert_eq!(info.l4_offset, None);
        assert_eq!(info.tuple.map(|t| t.src_port), Some(0));
        frame[28..30].copy_from_slice(&[0x20, 0x00]); // MF, offset 0: first fragment
        let info = parse_frame(&frame).unwrap();
        assert!(info.fragment);
        assert_eq!(info.tuple.map(|t| t.src_port), Some(1234));
    }

    #[test]
    fn arp_request_is_classified() {
        let mut buf = [0u8; 64];
        let len = crate::net::build_arp_request(
            &mut buf,
            SRC_MAC,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        )
        .unwrap();
        let info = parse_frame(&buf[..len]).unwrap();
        assert_eq!(info.class, PacketClass::Arp);
        assert_eq!(info.l3_end, 14 + 28);
        assert_eq!(info.tuple, None);
    }

    #[test]
    fn neighbor_solicitation_is_classified() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let mut frame = vec![0u8; 14 + 40 + 24];
        frame[12..14].copy_from_slice(&[0x86, 0xdd]);
        frame[14] = 0x60;
        frame[18..20].copy_from_slice(&24u16.to_be_bytes());
        frame[20] = 58;
        frame[21] = 255;
        frame[22..38].copy_from_slice(&src.octets());
        frame[38..54].copy_from_slice(&dst.octets());
        frame[54] = 135;
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.class, PacketClass::Ipv6Ndisc);
        assert_eq!(info.icmp, Some((135, 0)));
        frame[54] = 128; // echo request: plain IPv6
        assert_eq!(parse_frame(&frame).unwrap().class, PacketClass::Ipv6);
    }

    #[test]
    fn icmpv4_and_unknown_protocols() {
        let mut frame = QINQ_UDP.to_vec();
        frame[31] = 1; // ICMP
        frame[42..44].copy_from_slice(&[8, 0]); // echo request, code 0
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.icmp, Some((8, 0)));
        assert_eq!(info.tuple.map(|t| (t.proto, t.src_port)), Some((1, 0)));
        frame[31] = 47; // GRE: not parsed, still a tuple
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.l4_offset, Some(42));
        assert_eq!(info.tuple.map(|t| t.proto), Some(47));
    }

    #[test]
    fn non_ip_frames_are_other() {
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        let info = parse_frame(&frame).unwrap();
        assert_eq!(info.class, PacketClass::Other);
        assert_eq!(info.ethertype, EtherType::LLDP);
        frame[12..14].copy_from_slice(&[0x00, 0x2e]); // 802.3 length
        assert_eq!(parse_frame(&frame).unwrap().class, PacketClass::Other);
    }

    #[test]
    fn wrong_ip_version_is_malformed() {
        let mut frame = QINQ_UDP.to_vec();
        frame[22] = 0x65;
        assert!(matches!(parse_frame(&frame), Err(Error::Malformed { .. })));
    }

    #[test]
    fn built_frames_parse_back() {
        let b = FrameBuilder::new(SRC_MAC, DST_MAC);
        let mut buf = [0u8; 256];
        let t = FiveTuple::new(
            v4(192, 168, 1, 1),
            1000,
            v4(192, 168, 1, 2),
            2000,
            IpProtocol::TCP,
        );
        let len = b.tcp(&mut buf, &t, 10).unwrap();
        let info = parse_frame(&buf[..len]).unwrap();
        assert_eq!(info.tuple, Some(t));
        assert_eq!(info.payload_offset, Some(54));
    }
}
