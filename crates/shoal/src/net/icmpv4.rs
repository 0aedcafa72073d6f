//! ICMP for IPv4 (`rte_icmp_hdr`): type, code, checksum and the echo fields.

use core::fmt;

use super::{checksum, Error, Layer, Result};

/// An ICMPv4 message type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Icmpv4Message(pub u8);

impl Icmpv4Message {
    /// Echo reply.
    pub const ECHO_REPLY: Self = Self(0);
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Self = Self(3);
    /// Redirect.
    pub const REDIRECT: Self = Self(5);
    /// Echo request.
    pub const ECHO_REQUEST: Self = Self(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Self = Self(11);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Self = Self(12);
}

impl fmt::Debug for Icmpv4Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::ECHO_REPLY => "echo reply",
            Self::DST_UNREACHABLE => "destination unreachable",
            Self::REDIRECT => "redirect",
            Self::ECHO_REQUEST => "echo request",
            Self::TIME_EXCEEDED => "time exceeded",
            Self::PARAM_PROBLEM => "parameter problem",
            Self(v) => return write!(f, "Icmpv4Message({v})"),
        };
        write!(f, "Icmpv4Message({name})")
    }
}

mod field {
    use crate::net::{Field, Rest};
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: Field = 2..4;
    pub(crate) const ECHO_IDENT: Field = 4..6;
    pub(crate) const ECHO_SEQNO: Field = 6..8;
    pub(crate) const PAYLOAD: Rest = 8..;
}

/// Length of an ICMPv4 header (type, code, checksum and four message-specific bytes).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
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

    /// Checks that the buffer holds the 8-byte header.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Icmpv4,
                need: HEADER_LEN,
                have,
            });
        }
        Ok(())
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
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message(self.buffer.as_ref()[field::TYPE])
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

    /// The checksum over the whole buffer is right (pass exactly the IP payload).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// The bytes after the 8-byte header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
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

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
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

    // Echo request, id 0x1234, seq 1, payload "ping", checksum left zero (filled in the test).
    static PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn deconstruct() {
        let packet = Icmpv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Message::ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.payload(), b"ping");
    }

    #[test]
    fn construct_and_checksum() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv4Message::ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(1);
        packet.payload_mut().copy_from_slice(b"ping");
        packet.set_checksum(0);
        assert_eq!(bytes, PACKET_BYTES);
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum();
        // 0x0800 + 0x1234 + 0x0001 + 0x7069 + 0x6e67 = 0xf905; stored !0xf905 = 0x06fa.
        assert_eq!(packet.checksum(), 0x06fa);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..HEADER_LEN {
            assert!(
                Icmpv4Packet::new_checked(&PACKET_BYTES[..len]).is_err(),
                "{len}"
            );
        }
    }
}
