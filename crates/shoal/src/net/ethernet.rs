//! Ethernet II frames and MAC addresses (`rte_ether_hdr`, `rte_ether_addr`).

use core::fmt;
use core::str::FromStr;

use super::{Error, Layer, Result};

/// A 48-bit MAC address (`rte_ether_addr`).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, bytemuck::Pod, bytemuck::Zeroable,
)]
#[repr(transparent)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: Self = Self([0; 6]);

    /// The address in the first six bytes of `data`, or `None` if it is shorter.
    pub fn from_bytes(data: &[u8]) -> Option<Self> {
        data.get(..6)
            .and_then(|b| <[u8; 6]>::try_from(b).ok())
            .map(Self)
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// All ones.
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// The group bit (least significant bit of the first byte) is set; broadcast is multicast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Not multicast (`rte_is_unicast_ether_addr`).
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The locally administered bit is set (`rte_is_local_admin_ether_addr`).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// All zeros.
    pub const fn is_zero(&self) -> bool {
        matches!(self.0, [0, 0, 0, 0, 0, 0])
    }

    /// A unicast, non-zero address (`rte_is_valid_assigned_ether_addr`).
    pub const fn is_valid_assigned(&self) -> bool {
        self.is_unicast() && !self.is_zero()
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EthernetAddress({self})")
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses six hex bytes separated by `:` or `-` (`02:00:00:00:00:01`).
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or(Error::MacSyntax)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::MacSyntax);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error::MacSyntax)?;
        }
        if parts.next().is_some() {
            return Err(Error::MacSyntax);
        }
        Ok(Self(out))
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }
}

/// An EtherType (or, below 0x0600, an IEEE 802.3 length).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (`RTE_ETHER_TYPE_IPV4`).
    pub const IPV4: Self = Self(0x0800);
    /// ARP (`RTE_ETHER_TYPE_ARP`).
    pub const ARP: Self = Self(0x0806);
    /// IEEE 802.1Q VLAN tag (`RTE_ETHER_TYPE_VLAN`).
    pub const VLAN: Self = Self(0x8100);
    /// IPv6 (`RTE_ETHER_TYPE_IPV6`).
    pub const IPV6: Self = Self(0x86dd);
    /// MPLS unicast.
    pub const MPLS: Self = Self(0x8847);
    /// IEEE 802.1ad service tag, the outer tag of QinQ (`RTE_ETHER_TYPE_QINQ`).
    pub const QINQ: Self = Self(0x88a8);
    /// LLDP.
    pub const LLDP: Self = Self(0x88cc);
    /// The pre-standard QinQ outer tag some switches still send (`RTE_ETHER_TYPE_QINQ1`).
    pub const QINQ_9100: Self = Self(0x9100);

    /// This value introduces a VLAN tag (802.1Q, 802.1ad or 0x9100).
    pub const fn is_vlan_tpid(self) -> bool {
        matches!(self.0, 0x8100 | 0x88a8 | 0x9100)
    }

    /// This value is an IEEE 802.3 length, not a type.
    pub const fn is_length(self) -> bool {
        self.0 < 0x0600
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::VLAN => f.write_str("VLAN"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::MPLS => f.write_str("MPLS"),
            Self::QINQ => f.write_str("QinQ"),
            Self::LLDP => f.write_str("LLDP"),
            Self::QINQ_9100 => f.write_str("QinQ(0x9100)"),
            Self(v) => write!(f, "{v:#06x}"),
        }
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({self})")
    }
}

mod field {
    use crate::net::{Field, Rest};
    pub(crate) const DESTINATION: Field = 0..6;
    pub(crate) const SOURCE: Field = 6..12;
    pub(crate) const ETHERTYPE: Field = 12..14;
    pub(crate) const PAYLOAD: Rest = 14..;
}

/// Length of an Ethernet II header (`RTE_ETHER_HDR_LEN`).
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Smallest Ethernet frame without its FCS (`RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN`).
pub const MIN_FRAME_LEN: usize = 60;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len); no accessor will then panic.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds a whole header.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it is shorter than [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Ethernet,
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

    /// Length of the header (always [`HEADER_LEN`]).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut b = [0u8; 6];
        b.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        EthernetAddress(b)
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        let mut b = [0u8; 6];
        b.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        EthernetAddress(b)
    }

    /// The EtherType (or 802.3 length).
    pub fn ethertype(&self) -> EtherType {
        let d = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([
            d[field::ETHERTYPE.start],
            d[field::ETHERTYPE.start + 1],
        ]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a checked frame.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the frame is shorter than a header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    ///
    /// # Panics
    /// If the frame's buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME_BYTES: [u8; 64] = {
        let mut b = [0u8; 64];
        let head = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
            0x08, 0x00, // IPv4
        ];
        let mut i = 0;
        while i < head.len() {
            b[i] = head[i];
            i += 1;
        }
        b[14] = 0xaa;
        b[63] = 0xff;
        b
    };

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            frame.src_addr(),
            EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16])
        );
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload().len(), 50);
        assert_eq!(frame.payload()[0], 0xaa);
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.ethertype, EtherType::IPV4);
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 64];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        frame.set_src_addr(EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        frame.set_ethertype(EtherType::IPV4);
        frame.payload_mut()[0] = 0xaa;
        frame.payload_mut()[49] = 0xff;
        assert_eq!(bytes, FRAME_BYTES);

        let repr = EthernetRepr {
            src_addr: EthernetAddress([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]),
            dst_addr: EthernetAddress([1, 2, 3, 4, 5, 6]),
            ethertype: EtherType::IPV4,
        };
        let mut bytes2 = FRAME_BYTES;
        bytes2[..14].fill(0);
        repr.emit(&mut EthernetFrame::new_unchecked(&mut bytes2[..]));
        assert_eq!(bytes2, FRAME_BYTES);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..HEADER_LEN {
            let err = EthernetFrame::new_checked(&FRAME_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Ethernet,
                        ..
                    }
                ),
                "{len}: {err}"
            );
        }
        assert!(EthernetFrame::new_checked(&FRAME_BYTES[..HEADER_LEN]).is_ok());
    }

    #[test]
    fn address_display_and_parse_round_trip() {
        let addr = EthernetAddress([0x02, 0x00, 0xab, 0xcd, 0xef, 0x01]);
        assert_eq!(addr.to_string(), "02:00:ab:cd:ef:01");
        assert_eq!(
            "02:00:ab:cd:ef:01".parse::<EthernetAddress>().unwrap(),
            addr
        );
        assert_eq!(
            "02-00-AB-CD-EF-01".parse::<EthernetAddress>().unwrap(),
            addr
        );
        for bad in [
            "",
            "02:00:ab:cd:ef",
            "02:00:ab:cd:ef:01:02",
            "02:00:ab:cd:ef:xyz",
            "0200:ab:cd:ef:01:",
            "+2:00:ab:cd:ef:01",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]).is_broadcast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_unicast());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_local());
        assert!(EthernetAddress([0x02, 0, 0, 0, 0, 1]).is_valid_assigned());
        assert!(!EthernetAddress::ZERO.is_valid_assigned());
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            EthernetAddress::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Some(EthernetAddress([1, 2, 3, 4, 5, 6]))
        );
    }

    #[test]
    fn ethertype_names() {
        assert_eq!(EtherType::IPV6.to_string(), "IPv6");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert!(EtherType::QINQ.is_vlan_tpid());
        assert!(EtherType(0x05dc).is_length());
        assert!(!EtherType::IPV4.is_length());
    }
}
