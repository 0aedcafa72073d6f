//! ARP packets (`rte_arp_hdr`). The view reads any hardware/protocol pair; [`ArpRepr`] is the
//! Ethernet/IPv4 form, the only one DPDK's `rte_arp_hdr` describes.

use core::fmt;
use std::net::Ipv4Addr;

use super::{Error, EtherType, EthernetAddress, Layer, Result};

/// The ARP operation field.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// Who has this protocol address? (`RTE_ARP_OP_REQUEST`)
    pub const REQUEST: Self = Self(1);
    /// This protocol address is at this hardware address (`RTE_ARP_OP_REPLY`).
    pub const REPLY: Self = Self(2);
}

impl fmt::Debug for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::REQUEST => f.write_str("ArpOperation::REQUEST"),
            Self::REPLY => f.write_str("ArpOperation::REPLY"),
            Self(v) => write!(f, "ArpOperation({v})"),
        }
    }
}

/// ARP hardware type for Ethernet (`RTE_ARP_HRD_ETHER`).
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    use crate::net::Field;
    pub(crate) const HTYPE: Field = 0..2;
    pub(crate) const PTYPE: Field = 2..4;
    pub(crate) const HLEN: usize = 4;
    pub(crate) const PLEN: usize = 5;
    pub(crate) const OPER: Field = 6..8;
    pub(crate) const ADDRS: usize = 8;
}

/// Length of the fixed part of an ARP header.
pub const FIXED_LEN: usize = field::ADDRS;
/// Length of an Ethernet/IPv4 ARP packet (`sizeof(struct rte_arp_hdr)`).
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);

/// A read/write view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking its length; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len); no accessor will then panic.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed part and the four addresses it announces.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it does not.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < FIXED_LEN {
            return Err(Error::Truncated {
                layer: Layer::Arp,
                need: FIXED_LEN,
                have,
            });
        }
        let need = self.packet_len();
        if have < need {
            return Err(Error::Truncated {
                layer: Layer::Arp,
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

    fn u16_at(&self, at: usize) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE.start)
    }

    /// Protocol type (an EtherType; IPv4 for ARP proper).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(self.u16_at(field::PTYPE.start))
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(self.u16_at(field::OPER.start))
    }

    /// Length of the whole packet as its address lengths announce it.
    pub fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    fn ranges(&self) -> [core::ops::Range<usize>; 4] {
        let h = usize::from(self.hardware_len());
        let p = usize::from(self.protocol_len());
        let sha = field::ADDRS;
        let spa = sha + h;
        let tha = spa + p;
        let tpa = tha + h;
        [sha..spa, spa..tha, tha..tpa, tpa..tpa + p]
    }

    /// Sender hardware address bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.ranges()[0].clone()]
    }

    /// Sender protocol address bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.ranges()[1].clone()]
    }

    /// Target hardware address bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.ranges()[2].clone()]
    }

    /// Target protocol address bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.ranges()[3].clone()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set_u16_at(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.set_u16_at(field::HTYPE.start, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.set_u16_at(field::PTYPE.start, value.0);
    }

    /// Sets the hardware address length (set it before the addresses).
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length (set it before the addresses).
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: ArpOperation) {
        self.set_u16_at(field::OPER.start, value.0);
    }

    /// Sets the sender hardware address.
    ///
    /// # Panics
    /// If `addr` is not [`hardware_len`](ArpPacket::hardware_len) bytes long.
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.ranges()[0].clone();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets the sender protocol address.
    ///
    /// # Panics
    /// If `addr` is not [`protocol_len`](ArpPacket::protocol_len) bytes long.
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.ranges()[1].clone();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets the target hardware address.
    ///
    /// # Panics
    /// If `addr` is not [`hardware_len`](ArpPacket::hardware_len) bytes long.
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.ranges()[2].clone();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets the target protocol address.
    ///
    /// # Panics
    /// If `addr` is not [`protocol_len`](ArpPacket::protocol_len) bytes long.
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.ranges()[3].clone();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it is cut short; [`Error::Unsupported`] for another
    /// hardware/protocol pair.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported {
                layer: Layer::Arp,
                what: "a hardware/protocol pair other than Ethernet/IPv4",
            });
        }
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let mac = |b: &[u8]| EthernetAddress::from_bytes(b).unwrap_or_default();
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()),
            source_protocol_addr: ip(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ip(packet.target_protocol_addr()),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`ETHERNET_IPV4_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET_BYTES: [u8; 28] = [
        0x00, 0x01, // Ethernet
        0x08, 0x00, // IPv4
        0x06, 0x04, // lengths
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sha
        0x0a, 0x00, 0x00, 0x01, // spa 10.0.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        0x0a, 0x00, 0x00, 0x02, // tpa 10.0.0.2
    ];

    fn repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::REQUEST,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = ArpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::IPV4);
        assert_eq!(packet.operation(), ArpOperation::REQUEST);
        assert_eq!(packet.source_protocol_addr(), &[10, 0, 0, 1]);
        assert_eq!(ArpRepr::parse(&packet).unwrap(), repr());
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        repr().emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..PACKET_BYTES.len() {
            let err = ArpPacket::new_checked(&PACKET_BYTES[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Truncated {
                        layer: Layer::Arp,
                        ..
                    }
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn other_address_families_are_unsupported_by_the_repr() {
        let mut bytes = PACKET_BYTES;
        bytes[1] = 6; // IEEE 802
        let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert!(matches!(
            ArpRepr::parse(&packet),
            Err(Error::Unsupported { .. })
        ));
        // Address lengths that do not fit are a length error, never a panic.
        let mut bytes = PACKET_BYTES;
        bytes[4] = 255;
        assert!(ArpPacket::new_checked(&bytes[..]).is_err());
    }
}
