//! UDP datagrams (`rte_udp_hdr`).

use std::net::IpAddr;

use super::{checksum, Error, IpProtocol, Layer, Result};

mod field {
    use crate::net::Field;
    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const CHECKSUM: Field = 6..8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
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

    /// Checks that the buffer holds the header, that the length field is at least 8, and that
    /// the buffer holds that length.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Udp,
                need: HEADER_LEN,
                have,
            });
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Udp,
                what: "length below 8",
            });
        }
        if have < len {
            return Err(Error::Truncated {
                layer: Layer::Udp,
                need: len,
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Length of header and data.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Checksum as stored (0: none, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    fn sum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let data = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::UDP, u32::from(self.len())),
            checksum::data(data),
        ])
    }

    /// The checksum is right, or absent (zero) over IPv4.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 && src.is_ipv4() {
            return true;
        }
        self.sum(src, dst) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The data, up to the length field.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the length of header and data.
    pub fn set_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Computes and stores the checksum over header and data (a computed zero is sent as
    /// 0xffff, RFC 768).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let sum = !self.sum(src, dst);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// The data up to the length field, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Reads a header.
    ///
    /// # Errors
    /// As [`UdpPacket::check_len`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &UdpPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with length `8 + payload_len` (saturated at 65535) and a zero checksum;
    /// call [`UdpPacket::fill_checksum`] once the data is in place if one is wanted.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        payload_len: usize,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(HEADER_LEN + payload_len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));

    // 53 -> 1234, 4 bytes of data, no checksum.
    static PACKET_BYTES: [u8; 12] = [
        0x00, 0x35, 0x04, 0xd2, 0x00, 0x0c, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];

    #[test]
    fn deconstruct() {
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 53);
        assert_eq!(packet.dst_port(), 1234);
        assert_eq!(packet.len(), 12);
        assert_eq!(packet.checksum(), 0);
        assert!(packet.verify_checksum(SRC, DST));
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            UdpRepr::parse(&packet).unwrap(),
            UdpRepr {
                src_port: 53,
                dst_port: 1234
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        UdpRepr {
            src_port: 53,
            dst_port: 1234,
        }
        .emit(&mut packet, 4);
        packet
            .payload_mut()
            .copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn checksum_round_trip_v4_and_v6() {
        let v6s: IpAddr = "2001:db8::1".parse().unwrap();
        let v6d: IpAddr = "2001:db8::2".parse().unwrap();
        for (src, dst) in [(SRC, DST), (v6s, v6d)] {
            let mut bytes = PACKET_BYTES;
            let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
            packet.fill_checksum(src, dst);
            assert_ne!(packet.checksum(), 0);
            assert!(packet.verify_checksum(src, dst));
            packet.payload_mut()[0] ^= 0x40;
            assert!(!packet.verify_checksum(src, dst));
        }
        // No checksum is not acceptable over IPv6.
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert!(!packet.verify_checksum(v6s, v6d));
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..PACKET_BYTES.len() {
            let err = UdpPacket::new_checked(&PACKET_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Udp,
                        ..
                    }
                ),
                "{len}"
            );
        }
        let mut bytes = PACKET_BYTES;
        bytes[5] = 7;
        assert!(matches!(
            UdpPacket::new_checked(&bytes[..]),
            Err(Error::Malformed { .. })
        ));
    }
}
