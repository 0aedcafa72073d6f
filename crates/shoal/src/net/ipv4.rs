//! IPv4 packets (`rte_ipv4_hdr`): header length and options, fragments, the header checksum.

use std::net::Ipv4Addr;

use super::{checksum, Error, IpProtocol, Layer, Result};

mod field {
    use crate::net::Field;
    pub(crate) const VER_IHL: usize = 0;
    pub(crate) const DSCP_ECN: usize = 1;
    pub(crate) const LENGTH: Field = 2..4;
    pub(crate) const IDENT: Field = 4..6;
    pub(crate) const FLG_OFF: Field = 6..8;
    pub(crate) const TTL: usize = 8;
    pub(crate) const PROTOCOL: usize = 9;
    pub(crate) const CHECKSUM: Field = 10..12;
    pub(crate) const SRC_ADDR: Field = 12..16;
    pub(crate) const DST_ADDR: Field = 16..20;
}

/// Length of a header without options (`RTE_IPV4_MIN_IHL * 4`).
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Length of a header with the most options (`RTE_IPV4_MAX_IHL * 4`).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
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

    /// Checks that the buffer holds the fixed header, that the header length (IHL) is at least
    /// 20 bytes and no more than the total length, and that the buffer holds the total length.
    /// The buffer may be longer (Ethernet padding); [`payload`](Ipv4Packet::payload) stops at
    /// the total length. The version is not checked here.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Ipv4,
                need: HEADER_LEN,
                have,
            });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                what: "IHL below 5",
            });
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                what: "total length below header length",
            });
        }
        if have < total_len {
            return Err(Error::Truncated {
                layer: Layer::Ipv4,
                need: total_len,
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

    /// IP version (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point (the high 6 bits of the old TOS byte).
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification (the low 2 bits of the old TOS byte).
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length: header and payload.
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Don't fragment.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments follow.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram (`rte_ipv4_frag_pkt_is_fragmented`).
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The header checksum is right (`rte_ipv4_cksum` over the header gives 0).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The options: the header bytes after the first 20.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes; it is stored divided by 4 (IHL).
    pub fn set_header_len(&mut self, value: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP (6 bits).
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Sets the ECN (2 bits).
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        self.set_u16_at(field::IDENT, value);
    }

    fn set_flg_off(&mut self, mask: u16, bits: u16) {
        let old = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, (old & !mask) | (bits & mask));
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_u16_at(field::FLG_OFF, 0);
    }

    /// Sets or clears don't-fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets or clears more-fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        self.set_flg_off(OFFSET_MASK, value >> 3);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the payload protocol.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    /// Sets the stored checksum.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes and stores the header checksum (`rte_ipv4_cksum`), options included.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(!sum);
    }

    /// The options, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let range = HEADER_LEN..self.header_len();
        &mut self.buffer.as_mut()[range]
    }

    /// The payload up to the total length, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub next_header: IpProtocol,
    /// Payload length (total length minus the header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, 6 bits.
    pub dscp: u8,
    /// ECN, 2 bits.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Reads a header. Options are skipped (they stay readable through the view).
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`] from [`Ipv4Packet::check_len`],
    /// [`Error::Malformed`] if the version is not 4, [`Error::Checksum`] if the header checksum
    /// is wrong.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed {
                layer: Layer::Ipv4,
                what: "version is not 4",
            });
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum { layer: Layer::Ipv4 });
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header and its checksum; the total length is `20 + payload_len`,
    /// saturated at 65535.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, DF, TTL 64, 4 bytes of payload.
    static PACKET_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0xbc, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7, 0xde, 0xad, 0xbe, 0xef,
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            next_header: IpProtocol::UDP,
            payload_len: 4,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 24);
        assert!(packet.dont_frag());
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.next_header(), IpProtocol::UDP);
        assert_eq!(packet.checksum(), 0xb8bc);
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Ipv4Repr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet
            .payload_mut()
            .copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn padding_after_total_length_is_not_payload() {
        let mut bytes = [0u8; 46];
        bytes[..24].copy_from_slice(&PACKET_BYTES);
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), 4);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..PACKET_BYTES.len() {
            let err = Ipv4Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Ipv4,
                        ..
                    }
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn bad_ihl_and_total_length_are_malformed() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x44;
        assert!(matches!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(Error::Malformed { .. })
        ));
        let mut bytes = PACKET_BYTES;
        bytes[3] = 19;
        assert!(matches!(
            Ipv4Packet::new_checked(&bytes[..]),
            Err(Error::Malformed { .. })
        ));
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x4f; // 60-byte header in a 24-byte packet
        assert!(Ipv4Packet::new_checked(&bytes[..]).is_err());
    }

    #[test]
    fn wrong_version_and_checksum_fail_the_repr() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(
            Ipv4Repr::parse(&packet),
            Err(Error::Malformed { .. })
        ));
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(
            Ipv4Repr::parse(&packet),
            Err(Error::Checksum { layer: Layer::Ipv4 })
        );
    }

    #[test]
    fn options_count_in_header_length_and_checksum() {
        let mut bytes = [0u8; 28];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet
            .options_mut()
            .copy_from_slice(&[0x01, 0x01, 0x01, 0x00]); // NOP NOP NOP EOL
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload().len(), 4);
        assert!(packet.verify_checksum());
        let parsed = Ipv4Repr::parse(&packet).unwrap();
        assert_eq!(parsed.payload_len, 4);
    }

    #[test]
    fn fragment_fields_round_trip() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        packet.set_dscp(46);
        packet.set_ecn(1);
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.more_frags());
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
        assert_eq!(packet.dscp(), 46);
        assert_eq!(packet.ecn(), 1);
    }
}
