//! IPv6 packets (`rte_ipv6_hdr`) and the walk over extension headers that finds the
//! upper-layer protocol (`rte_ipv6_get_next_ext`).

use std::net::Ipv6Addr;

use super::{Error, IpProtocol, Layer, Result};

mod field {
    use crate::net::{Field, Rest};
    pub(crate) const VER_TC_FLOW: Field = 0..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const NXT_HDR: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC_ADDR: Field = 8..24;
    pub(crate) const DST_ADDR: Field = 24..40;
    pub(crate) const PAYLOAD: Rest = 40..;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an IPv6 packet (the fixed header and what follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len); no accessor will then panic.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header and the payload length it announces. A
    /// longer buffer is allowed (Ethernet padding). Jumbograms (payload length 0 with a
    /// hop-by-hop jumbo option) are not supported: their payload reads as empty.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Ipv6,
                need: HEADER_LEN,
                have,
            });
        }
        let need = HEADER_LEN + usize::from(self.payload_len());
        if have < need {
            return Err(Error::Truncated {
                layer: Layer::Ipv6,
                need,
                have,
            });
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// IP version (6 for a valid packet).
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// DSCP, the high 6 bits of the traffic class.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN, the low 2 bits of the traffic class.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label, 20 bits.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Payload length: extension headers and upper-layer data.
    pub fn payload_len(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::LENGTH.start], d[field::LENGTH.start + 1]])
    }

    /// The header that follows the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(b)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(b)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload: extension headers and upper-layer data, up to the payload length.
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// Walks the extension headers to the upper-layer protocol.
    ///
    /// # Errors
    /// As [`walk_extension_headers`].
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        walk_extension_headers(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_first_word(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    pub fn set_version(&mut self, value: u8) {
        let w = self.first_word();
        self.set_first_word((w & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28));
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, value: u8) {
        let w = self.first_word();
        self.set_first_word((w & 0xf00f_ffff) | (u32::from(value) << 20));
    }

    /// Sets the flow label (20 bits).
    pub fn set_flow_label(&mut self, value: u32) {
        let w = self.first_word();
        self.set_first_word((w & 0xfff0_0000) | (value & 0x000f_ffff));
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.0;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload up to the payload length, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Fragment header fields (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Fragment {
    /// Offset of this fragment in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the upper-layer header starts, after any extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// Upper-layer protocol ([`IpProtocol::IPV6_NO_NEXT`] if there is none, [`IpProtocol::ESP`]
    /// for an encrypted payload).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the IPv6 payload.
    pub offset: usize,
    /// The fragment header, if there was one. When its offset is not zero the upper-layer
    /// header is in another fragment and the bytes at `offset` are not one.
    pub fragment: Option<Ipv6Fragment>,
}

/// The most extension headers [`walk_extension_headers`] follows before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 16;

/// Length of the fixed fragment extension header.
const FRAGMENT_HEADER_LEN: usize = 8;

/// Skips hop-by-hop, routing, fragment, destination-options and authentication headers,
/// starting with header kind `first` at the start of `payload` (the bytes after the fixed
/// IPv6 header).
///
/// # Errors
/// [`Error::Truncated`] (layer [`Layer::Ipv6Ext`]) if an extension header runs past the end of
/// `payload`; [`Error::Malformed`] after more than [`MAX_EXTENSION_HEADERS`] of them.
pub fn walk_extension_headers(first: IpProtocol, payload: &[u8]) -> Result<UpperLayer> {
    let mut kind = first;
    let mut offset = 0usize;
    let mut fragment = None;
    for _ in 0..=MAX_EXTENSION_HEADERS {
        let rest = payload.get(offset..).unwrap_or_default();
        let truncated = |need: usize| Error::Truncated {
            layer: Layer::Ipv6Ext,
            need: offset + need,
            have: payload.len(),
        };
        let len = match kind {
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTING | IpProtocol::IPV6_DEST_OPTS => {
                let units = *rest.get(1).ok_or(truncated(2))?;
                (usize::from(units) + 1) * 8
            }
            IpProtocol::AH => {
                let units = *rest.get(1).ok_or(truncated(2))?;
                (usize::from(units) + 2) * 4
            }
            IpProtocol::IPV6_FRAGMENT => {
                let h = rest
                    .get(..FRAGMENT_HEADER_LEN)
                    .ok_or(truncated(FRAGMENT_HEADER_LEN))?;
                let off_flags = u16::from_be_bytes([h[2], h[3]]);
                fragment = Some(Ipv6Fragment {
                    offset: off_flags & 0xfff8,
                    more: off_flags & 1 != 0,
                    ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                });
                FRAGMENT_HEADER_LEN
            }
            protocol => {
                return Ok(UpperLayer {
                    protocol,
                    offset,
                    fragment,
                })
            }
        };
        if rest.len() < len {
            return Err(truncated(len));
        }
        kind = IpProtocol(rest[0]);
        offset += len;
    }
    Err(Error::Malformed {
        layer: Layer::Ipv6Ext,
        what: "too many extension headers",
    })
}

/// The fields of a fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The header that follows.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label, 20 bits.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header.
    ///
    /// # Errors
    /// [`Error::Truncated`], or [`Error::Malformed`] if the version is not 6.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::Malformed {
                layer: Layer::Ipv6,
                what: "version is not 6",
            });
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; a `payload_len` above 65535 is saturated.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_first_word(0);
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // fe80::1 -> ff02::1, traffic class 0xb8 (DSCP 46), flow label 0x12345, hop-by-hop (8 bytes,
    // router alert) then UDP (8 bytes).
    static PACKET_BYTES: [u8; 56] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x10, 0x00, 0x40, // ver/tc/flow, len 16, HBH, hop 64
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // dst
        0x11, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01,
        0x00, // HBH: next UDP, len 0, router alert, PadN
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x08, 0x00, 0x00, // UDP 1234 -> 5678
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: "fe80::1".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: IpProtocol::HOP_BY_HOP,
            payload_len: 16,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.dscp(), 46);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 16);
        assert_eq!(packet.next_header(), IpProtocol::HOP_BY_HOP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(Ipv6Repr::parse(&packet).unwrap(), repr());
        let upper = packet.upper_layer().unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: IpProtocol::UDP,
                offset: 8,
                fragment: None
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 56];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PACKET_BYTES[40..]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..PACKET_BYTES.len() {
            let err = Ipv6Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Ipv6,
                        ..
                    }
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn extension_headers_truncated_at_every_length_are_errors() {
        // HBH(8) -> routing(16) -> fragment(8) -> dest opts(8) -> AH(12) -> TCP
        let mut chain = Vec::new();
        chain.extend_from_slice(&[43, 0, 0, 0, 0, 0, 0, 0]);
        chain.extend_from_slice(&[44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        chain.extend_from_slice(&[60, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // offset 0, M=1
        chain.extend_from_slice(&[51, 0, 0, 0, 0, 0, 0, 0]);
        chain.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let upper = walk_extension_headers(IpProtocol::HOP_BY_HOP, &chain).unwrap();
        assert_eq!(upper.protocol, IpProtocol::TCP);
        assert_eq!(upper.offset, chain.len());
        assert_eq!(
            upper.fragment,
            Some(Ipv6Fragment {
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        for len in 0..chain.len() {
            let err = walk_extension_headers(IpProtocol::HOP_BY_HOP, &chain[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Ipv6Ext,
                        ..
                    }
                ),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn a_long_chain_of_extension_headers_is_refused() {
        let mut chain = Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            chain.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert!(matches!(
            walk_extension_headers(IpProtocol::IPV6_DEST_OPTS, &chain),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn no_next_header_and_no_extension() {
        let upper = walk_extension_headers(IpProtocol::IPV6_NO_NEXT, &[]).unwrap();
        assert_eq!(upper.protocol, IpProtocol::IPV6_NO_NEXT);
        let upper = walk_extension_headers(IpProtocol::UDP, &[]).unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: IpProtocol::UDP,
                offset: 0,
                fragment: None
            }
        );
    }
}
