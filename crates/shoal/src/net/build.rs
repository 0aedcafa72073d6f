//! Frame builders for tests and the traffic generator: Ethernet (optionally VLAN-tagged) +
//! IPv4/IPv6 + UDP/TCP, and ARP requests and replies.
//!
//! Builders write headers only. The payload bytes are left as the buffer holds them (a
//! generator can stamp its own data there) and the L4 checksum, when asked for, covers them as
//! they are. Frames shorter than 60 bytes are zero-padded to the Ethernet minimum unless
//! [`FrameBuilder::pad`] is off; the IP length fields always give the unpadded length.

use std::net::{IpAddr, Ipv4Addr};

use super::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use super::ethernet::{self, EthernetFrame, EthernetRepr, MIN_FRAME_LEN};
use super::ipv4::{self, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::tcp::{self, TcpFlags, TcpPacket, TcpRepr};
use super::udp::{self, UdpPacket, UdpRepr};
use super::vlan::{self, VlanHeader, VlanRepr, VlanTci};
use super::{Error, EtherType, EthernetAddress, FiveTuple, IpProtocol, Layer, Result};

/// Header settings shared by the frames one source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBuilder {
    /// Ethernet source.
    pub src_mac: EthernetAddress,
    /// Ethernet destination.
    pub dst_mac: EthernetAddress,
    /// An 802.1Q tag to insert, if any.
    pub vlan: Option<VlanTci>,
    /// IPv4 TTL / IPv6 hop limit (default 64).
    pub hop_limit: u8,
    /// DSCP (default 0).
    pub dscp: u8,
    /// Fill the TCP/UDP checksum (default off). UDP over IPv6 always gets one: RFC 8200 makes
    /// it mandatory.
    pub l4_checksum: bool,
    /// TCP flags (default PSH|ACK).
    pub tcp_flags: TcpFlags,
    /// Zero-pad frames to 60 bytes (default on).
    pub pad: bool,
}

impl FrameBuilder {
    /// Defaults: no VLAN, hop limit 64, DSCP 0, no L4 checksum, PSH|ACK, padding on.
    pub const fn new(src_mac: EthernetAddress, dst_mac: EthernetAddress) -> Self {
        Self {
            src_mac,
            dst_mac,
            vlan: None,
            hop_limit: 64,
            dscp: 0,
            l4_checksum: false,
            tcp_flags: TcpFlags(TcpFlags::PSH.0 | TcpFlags::ACK.0),
            pad: true,
        }
    }

    fn l2_len(&self) -> usize {
        ethernet::HEADER_LEN
            + if self.vlan.is_some() {
                vlan::HEADER_LEN
            } else {
                0
            }
    }

    /// Writes the Ethernet header and tag; returns the L3 offset. `buf` is long enough.
    fn emit_l2(&self, buf: &mut [u8], ethertype: EtherType) -> usize {
        let mut frame = EthernetFrame::new_unchecked(&mut *buf);
        let outer = if self.vlan.is_some() {
            EtherType::VLAN
        } else {
            ethertype
        };
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: outer,
        }
        .emit(&mut frame);
        if let Some(tci) = self.vlan {
            let mut tag = VlanHeader::new_unchecked(&mut buf[ethernet::HEADER_LEN..]);
            VlanRepr { tci, ethertype }.emit(&mut tag);
        }
        self.l2_len()
    }

    fn finish(&self, buf: &mut [u8], len: usize) -> usize {
        if self.pad && len < MIN_FRAME_LEN {
            buf[len..MIN_FRAME_LEN].fill(0);
            MIN_FRAME_LEN
        } else {
            len
        }
    }

    fn check_room(&self, buf: &[u8], len: usize) -> Result<()> {
        let need = if self.pad {
            len.max(MIN_FRAME_LEN)
        } else {
            len
        };
        if buf.len() < need {
            return Err(Error::BufferTooSmall {
                need,
                have: buf.len(),
            });
        }
        Ok(())
    }

    /// Length of the frame [`udp`](Self::udp) or [`tcp`](Self::tcp) would build, padding
    /// included.
    ///
    /// # Errors
    /// As [`udp`](Self::udp), except for the buffer size.
    pub fn frame_len(
        &self,
        tuple: &FiveTuple,
        l4_header_len: usize,
        payload_len: usize,
    ) -> Result<usize> {
        let upper = l4_header_len.saturating_add(payload_len);
        // The length field each family limits to 16 bits: IPv4's total, IPv6's payload.
        let (l3_header, layer, limited) = match (tuple.src, tuple.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => (
                ipv4::HEADER_LEN,
                Layer::Ipv4,
                ipv4::HEADER_LEN.saturating_add(upper),
            ),
            (IpAddr::V6(_), IpAddr::V6(_)) => (ipv6::HEADER_LEN, Layer::Ipv6, upper),
            _ => {
                return Err(Error::AddressFamily {
                    expected: "two addresses of one family",
                })
            }
        };
        if limited > usize::from(u16::MAX) {
            return Err(Error::TooLong {
                layer,
                len: limited,
                max: usize::from(u16::MAX),
            });
        }
        let len = self.l2_len() + l3_header + l4_header_len + payload_len;
        Ok(if self.pad {
            len.max(MIN_FRAME_LEN)
        } else {
            len
        })
    }

    /// Writes L2 and the IP header for `l4_len` bytes of upper layer; returns the L4 offset.
    /// `buf` is long enough (checked by the caller).
    fn emit_ip(
        &self,
        buf: &mut [u8],
        tuple: &FiveTuple,
        proto: IpProtocol,
        l4_len: usize,
    ) -> Result<usize> {
        match (tuple.src, tuple.dst) {
            (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => {
                let l3 = self.emit_l2(buf, EtherType::IPV4);
                let repr = Ipv4Repr {
                    src_addr,
                    dst_addr,
                    next_header: proto,
                    payload_len: l4_len,
                    ttl: self.hop_limit,
                    dscp: self.dscp,
                    ecn: 0,
                    ident: 0,
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                };
                repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[l3..]));
                Ok(l3 + ipv4::HEADER_LEN)
            }
            (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => {
                let l3 = self.emit_l2(buf, EtherType::IPV6);
                let repr = Ipv6Repr {
                    src_addr,
                    dst_addr,
                    next_header: proto,
                    payload_len: l4_len,
                    hop_limit: self.hop_limit,
                    traffic_class: self.dscp << 2,
                    flow_label: 0,
                };
                repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[l3..]));
                Ok(l3 + ipv6::HEADER_LEN)
            }
            _ => Err(Error::AddressFamily {
                expected: "two addresses of one family",
            }),
        }
    }

    /// Builds an Ethernet / IPv4 or IPv6 / UDP frame with `payload_len` bytes of data from
    /// `tuple` (its `proto` is ignored); returns the frame length.
    ///
    /// # Errors
    /// [`Error::AddressFamily`] if the addresses are of different families,
    /// [`Error::TooLong`] if the IP packet would pass 65535 bytes,
    /// [`Error::BufferTooSmall`] if `buf` cannot hold the frame.
    pub fn udp(&self, buf: &mut [u8], tuple: &FiveTuple, payload_len: usize) -> Result<usize> {
        let len = self.frame_len(tuple, udp::HEADER_LEN, payload_len)?;
        self.check_room(buf, len)?;
        let l4_len = udp::HEADER_LEN + payload_len;
        let l4 = self.emit_ip(buf, tuple, IpProtocol::UDP, l4_len)?;
        let mut packet = UdpPacket::new_unchecked(&mut buf[l4..l4 + l4_len]);
        UdpRepr {
            src_port: tuple.src_port,
            dst_port: tuple.dst_port,
        }
        .emit(&mut packet, payload_len);
        if self.l4_checksum || tuple.src.is_ipv6() {
            packet.fill_checksum(tuple.src, tuple.dst);
        }
        Ok(self.finish(buf, l4 + l4_len))
    }

    /// Builds an Ethernet / IPv4 or IPv6 / TCP frame (20-byte header, sequence and
    /// acknowledgement numbers 0, window 65535, flags from [`tcp_flags`](Self::tcp_flags)) with
    /// `payload_len` bytes of data; returns the frame length.
    ///
    /// # Errors
    /// As [`udp`](Self::udp).
    pub fn tcp(&self, buf: &mut [u8], tuple: &FiveTuple, payload_len: usize) -> Result<usize> {
        let len = self.frame_len(tuple, tcp::HEADER_LEN, payload_len)?;
        self.check_room(buf, len)?;
        let l4_len = tcp::HEADER_LEN + payload_len;
        let l4 = self.emit_ip(buf, tuple, IpProtocol::TCP, l4_len)?;
        let mut packet = TcpPacket::new_unchecked(&mut buf[l4..l4 + l4_len]);
        TcpRepr {
            src_port: tuple.src_port,
            dst_port: tuple.dst_port,
            seq_number: 0,
            ack_number: 0,
            flags: self.tcp_flags,
            window_len: u16::MAX,
        }
        .emit(&mut packet);
        if self.l4_checksum {
            packet.fill_checksum(tuple.src, tuple.dst);
        }
        Ok(self.finish(buf, l4 + l4_len))
    }

    /// Builds an ARP frame from `src_mac` to `dst_mac` (set `dst_mac` to broadcast for a
    /// request); returns the frame length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn arp(
        &self,
        buf: &mut [u8],
        operation: ArpOperation,
        sender_ip: Ipv4Addr,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
    ) -> Result<usize> {
        let len = self.l2_len() + arp::ETHERNET_IPV4_LEN;
        self.check_room(buf, len)?;
        let l3 = self.emit_l2(buf, EtherType::ARP);
        let repr = ArpRepr {
            operation,
            source_hardware_addr: self.src_mac,
            source_protocol_addr: sender_ip,
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[l3..]));
        Ok(self.finish(buf, len))
    }
}

fn require_v4(tuple: &FiveTuple) -> Result<()> {
    if tuple.src.is_ipv4() && tuple.dst.is_ipv4() {
        Ok(())
    } else {
        Err(Error::AddressFamily {
            expected: "IPv4 addresses",
        })
    }
}

/// Builds an untagged Ethernet / IPv4 / UDP frame with no UDP checksum, padded to 60 bytes;
/// returns its length. See [`FrameBuilder`] for other settings.
///
/// # Errors
/// [`Error::AddressFamily`] for an IPv6 tuple, [`Error::TooLong`], [`Error::BufferTooSmall`].
pub fn build_udp_ipv4(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    tuple: &FiveTuple,
    payload_len: usize,
) -> Result<usize> {
    require_v4(tuple)?;
    FrameBuilder::new(src_mac, dst_mac).udp(buf, tuple, payload_len)
}

/// Builds an untagged Ethernet / IPv4 / TCP (PSH|ACK) frame with no TCP checksum, padded to
/// 60 bytes; returns its length.
///
/// # Errors
/// As [`build_udp_ipv4`].
pub fn build_tcp_ipv4(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    tuple: &FiveTuple,
    payload_len: usize,
) -> Result<usize> {
    require_v4(tuple)?;
    FrameBuilder::new(src_mac, dst_mac).tcp(buf, tuple, payload_len)
}

/// Builds a broadcast ARP request "who has `target_ip`? tell `src_ip`"; returns its length.
///
/// # Errors
/// [`Error::BufferTooSmall`] if `buf` is shorter than 60 bytes.
pub fn build_arp_request(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Result<usize> {
    FrameBuilder::new(src_mac, EthernetAddress::BROADCAST).arp(
        buf,
        ArpOperation::REQUEST,
        src_ip,
        EthernetAddress::ZERO,
        target_ip,
    )
}

/// Builds an ARP reply "`src_ip` is at `src_mac`" sent to `dst_mac`/`dst_ip`; returns its length.
///
/// # Errors
/// [`Error::BufferTooSmall`] if `buf` is shorter than 60 bytes.
pub fn build_arp_reply(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    src_ip: Ipv4Addr,
    dst_mac: EthernetAddress,
    dst_ip: Ipv4Addr,
) -> Result<usize> {
    FrameBuilder::new(src_mac, dst_mac).arp(buf, ArpOperation::REPLY, src_ip, dst_mac, dst_ip)
}
