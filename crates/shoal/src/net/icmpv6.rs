//! ICMP for IPv6: type, code, checksum, and the neighbour discovery messages (RFC 4861) that
//! replace ARP.

use core::fmt;
use std::net::{IpAddr, Ipv6Addr};

use super::{checksum, Error, IpProtocol, Layer, Result};

/// An ICMPv6 message type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Icmpv6Message(pub u8);

impl Icmpv6Message {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Self = Self(1);
    /// Packet too big.
    pub const PKT_TOO_BIG: Self = Self(2);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Self = Self(3);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Self = Self(4);
    /// Echo request.
    pub const ECHO_REQUEST: Self = Self(128);
    /// Echo reply.
    pub const ECHO_REPLY: Self = Self(129);
    /// Router solicitation.
    pub const ROUTER_SOLICIT: Self = Self(133);
    /// Router advertisement.
    pub const ROUTER_ADVERT: Self = Self(134);
    /// Neighbour solicitation: who has this address?
    pub const NEIGHBOR_SOLICIT: Self = Self(135);
    /// Neighbour advertisement: this address is here.
    pub const NEIGHBOR_ADVERT: Self = Self(136);
    /// Redirect.
    pub const REDIRECT: Self = Self(137);

    /// One of the five neighbour discovery messages (router solicitation to redirect).
    pub const fn is_ndisc(self) -> bool {
        matches!(self.0, 133..=137)
    }

    /// An error message (types below 128).
    pub const fn is_error(self) -> bool {
        self.0 < 128
    }
}

impl fmt::Debug for Icmpv6Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::DST_UNREACHABLE => "destination unreachable",
            Self::PKT_TOO_BIG => "packet too big",
            Self::TIME_EXCEEDED => "time exceeded",
            Self::PARAM_PROBLEM => "parameter problem",
            Self::ECHO_REQUEST => "echo request",
            Self::ECHO_REPLY => "echo reply",
            Self::ROUTER_SOLICIT => "router solicitation",
            Self::ROUTER_ADVERT => "router advertisement",
            Self::NEIGHBOR_SOLICIT => "neighbour solicitation",
            Self::NEIGHBOR_ADVERT => "neighbour advertisement",
            Self::REDIRECT => "redirect",
            Self(v) => return write!(f, "Icmpv6Message({v})"),
        };
        write!(f, "Icmpv6Message({name})")
    }
}

mod field {
    use crate::net::{Field, Rest};
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: Field = 2..4;
    pub(crate) const ECHO_IDENT: Field = 4..6;
    pub(crate) const ECHO_SEQNO: Field = 6..8;
    pub(crate) const NA_FLAGS: usize = 4;
    pub(crate) const PAYLOAD: Rest = 8..;
    pub(crate) const TARGET: Field = 8..24;
}

/// Length of an ICMPv6 header (type, code, checksum and four message-specific bytes).
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of a neighbour solicitation or advertisement without options.
pub const NDISC_NS_NA_LEN: usize = field::TARGET.end;

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
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

    /// Checks that the buffer holds the 8-byte header, and for a neighbour solicitation or
    /// advertisement the target address too.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Icmpv6,
                need: HEADER_LEN,
                have,
            });
        }
        if self.has_target() && have < NDISC_NS_NA_LEN {
            return Err(Error::Truncated {
                layer: Layer::Icmpv6,
                need: NDISC_NS_NA_LEN,
                have,
            });
        }
        Ok(())
    }

    fn has_target(&self) -> bool {
        matches!(
            self.msg_type(),
            Icmpv6Message::NEIGHBOR_SOLICIT
                | Icmpv6Message::NEIGHBOR_ADVERT
                | Icmpv6Message::REDIRECT
        )
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[range.start], d[range.start + 1]])
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv6Message {
        Icmpv6Message(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request and reply).
    pub fn echo_ident(&self) -> u16 {
        self.u16_at(field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request and reply).
    pub fn echo_seq_no(&self) -> u16 {
        self.u16_at(field::ECHO_SEQNO)
    }

    /// The target address of a neighbour solicitation, advertisement or redirect; `None` for
    /// other messages or when the buffer is too short.
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        if !self.has_target() {
            return None;
        }
        let b: [u8; 16] = self.buffer.as_ref().get(field::TARGET)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// Router flag of a neighbour advertisement.
    pub fn na_router(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }

    /// Solicited flag of a neighbour advertisement.
    pub fn na_solicited(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }

    /// Override flag of a neighbour advertisement.
    pub fn na_override(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }

    fn sum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::ICMPV6, len),
            checksum::data(data),
        ])
    }

    /// The checksum over the whole buffer and the pseudo header is right (pass exactly the
    /// upper-layer bytes).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.sum(src, dst) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv6Packet<&'a T> {
    /// The bytes after the 8-byte header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Icmpv6Message) {
        self.buffer.as_mut()[field::TYPE] = value.0;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.set_u16_at(field::ECHO_SEQNO, value);
    }

    /// Sets the neighbour advertisement flags and clears the reserved bytes.
    pub fn set_na_flags(&mut self, router: bool, solicited: bool, override_: bool) {
        let mut flags = 0;
        if router {
            flags |= NA_ROUTER;
        }
        if solicited {
            flags |= NA_SOLICITED;
        }
        if override_ {
            flags |= NA_OVERRIDE;
        }
        self.buffer.as_mut()[4..8].copy_from_slice(&[flags, 0, 0, 0]);
    }

    /// Sets the target address of a neighbour solicitation, advertisement or redirect.
    ///
    /// # Panics
    /// If the buffer is shorter than [`NDISC_NS_NA_LEN`].
    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets());
    }

    /// Computes and stores the checksum over the whole buffer and the pseudo header.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(!sum);
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Neighbour solicitation for 2001:db8::2, with a source link-layer address option.
    static NS_BYTES: [u8; 32] = [
        0x87, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // type 135, code 0, checksum, reserved
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // target
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // option 1 (source lladdr), len 1
    ];

    #[test]
    fn deconstruct_neighbor_solicitation() {
        let packet = Icmpv6Packet::new_checked(&NS_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv6Message::NEIGHBOR_SOLICIT);
        assert!(packet.msg_type().is_ndisc());
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.target_addr(), Some("2001:db8::2".parse().unwrap()));
        assert_eq!(&packet.payload()[16..], &NS_BYTES[24..]);
    }

    #[test]
    fn construct_neighbor_advertisement() {
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut bytes = [0xa5u8; 24];
        let mut packet = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv6Message::NEIGHBOR_ADVERT);
        packet.set_msg_code(0);
        packet.set_na_flags(false, true, true);
        packet.set_target_addr(src);
        packet.fill_checksum(src.into(), dst.into());
        assert_eq!(bytes[4..8], [0x60, 0, 0, 0]);
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.na_router());
        assert!(packet.na_solicited());
        assert!(packet.na_override());
        assert_eq!(packet.target_addr(), Some(src));
        assert!(packet.verify_checksum(src.into(), dst.into()));
        // The pseudo-header sum is symmetric in the addresses, so test another address.
        assert!(!packet.verify_checksum(dst.into(), dst.into()));
    }

    #[test]
    fn echo_has_no_target() {
        let bytes = [0x80, 0, 0, 0, 0x12, 0x34, 0, 7];
        let packet = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv6Message::ECHO_REQUEST);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 7);
        assert_eq!(packet.target_addr(), None);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..NDISC_NS_NA_LEN {
            let err = Icmpv6Packet::new_checked(&NS_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Icmpv6,
                        ..
                    }
                ),
                "{len}"
            );
        }
    }
}
