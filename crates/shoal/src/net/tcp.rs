//! TCP segments (`rte_tcp_hdr`): ports, sequence numbers, data offset, flags, checksum.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use std::net::IpAddr;

use super::{checksum, Error, IpProtocol, Layer, Result};

/// TCP flags (the low byte of the flags field: FIN..CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push.
    pub const PSH: Self = Self(0x08);
    /// The acknowledgement number is valid.
    pub const ACK: Self = Self(0x10);
    /// The urgent pointer is valid.
    pub const URG: Self = Self(0x20);
    /// ECN echo.
    pub const ECE: Self = Self(0x40);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x80);

    /// All of `other`'s flags are set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        f.write_str("TcpFlags(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

mod field {
    use crate::net::Field;
    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const SEQ_NUM: Field = 4..8;
    pub(crate) const ACK_NUM: Field = 8..12;
    pub(crate) const DATA_OFF: usize = 12;
    pub(crate) const FLAGS: usize = 13;
    pub(crate) const WIN_SIZE: Field = 14..16;
    pub(crate) const CHECKSUM: Field = 16..18;
    pub(crate) const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
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

    /// Checks that the buffer holds the fixed header, that the data offset is at least 5 words,
    /// and that the buffer holds the header with its options.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Tcp,
                need: HEADER_LEN,
                have,
            });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Tcp,
                what: "data offset below 5",
            });
        }
        if have < header_len {
            return Err(Error::Truncated {
                layer: Layer::Tcp,
                need: header_len,
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

    fn u32_at(&self, range: core::ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[range];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ_NUM)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK_NUM)
    }

    /// Header length in bytes, options included (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Receive window.
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WIN_SIZE)
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// Options: the header bytes after the first 20.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The checksum is right, taking the whole buffer as the segment (pass exactly the IP
    /// payload).
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::TCP, len),
            checksum::data(data),
        ]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The data after the header and options.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the acknowledgement number.
    pub fn set_ack_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the header length in bytes (stored divided by 4); clears the reserved bits.
    pub fn set_header_len(&mut self, value: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((value / 4) as u8) << 4;
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, value: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the receive window.
    pub fn set_window_len(&mut self, value: u16) {
        self.set_u16_at(field::WIN_SIZE, value);
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        self.set_u16_at(field::URGENT, value);
    }

    /// Computes and stores the checksum over the whole buffer (header and data).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::TCP, len),
            checksum::data(data),
        ]);
        self.set_checksum(!sum);
    }

    /// The data after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// The fields of a TCP header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number.
    pub ack_number: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window.
    pub window_len: u16,
}

impl TcpRepr {
    /// Reads a header; options are skipped.
    ///
    /// # Errors
    /// As [`TcpPacket::check_len`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Self {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with a zero checksum and urgent pointer; call
    /// [`TcpPacket::fill_checksum`] once the data is in place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(HEADER_LEN);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));

    // 48896 -> 80, seq 0x01234567, ack 0x89abcdef, data offset 6 (4 bytes of options), PSH|ACK,
    // window 0x0123, checksum filled below, 4 bytes of data.
    static PACKET_BYTES: [u8; 28] = [
        0xbf, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x60, 0x18, 0x01,
        0x23, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00, 0xaa, 0x00, 0x00, 0xff,
    ];

    #[test]
    fn deconstruct() {
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert!(packet.flags().contains(TcpFlags::ACK));
        assert!(!packet.flags().contains(TcpFlags::SYN));
        assert_eq!(packet.window_len(), 0x0123);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        let repr = TcpRepr::parse(&packet).unwrap();
        assert_eq!(repr.flags, TcpFlags::PSH | TcpFlags::ACK);
    }

    #[test]
    fn construct_and_checksum() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        TcpRepr {
            src_port: 48896,
            dst_port: 80,
            seq_number: 0x0123_4567,
            ack_number: 0x89ab_cdef,
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window_len: 0x0123,
        }
        .emit(&mut packet);
        packet.set_header_len(24);
        bytes[20..].copy_from_slice(&PACKET_BYTES[20..]);
        assert_eq!(bytes, PACKET_BYTES);

        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(SRC, DST);
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, DST));
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..24 {
            let err = TcpPacket::new_checked(&PACKET_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Tcp,
                        ..
                    }
                ),
                "{len}"
            );
        }
        assert!(TcpPacket::new_checked(&PACKET_BYTES[..24]).is_ok());
    }

    #[test]
    fn data_offset_below_five_is_malformed() {
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0x40;
        assert!(matches!(
            TcpPacket::new_checked(&bytes[..]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn flags_debug_lists_names() {
        assert_eq!(
            format!("{:?}", TcpFlags::SYN | TcpFlags::ACK),
            "TcpFlags(SYN|ACK)"
        );
    }
}
