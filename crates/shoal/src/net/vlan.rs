//! IEEE 802.1Q VLAN tags and 802.1ad QinQ stacks (`rte_vlan_hdr`).
//!
//! A tag is announced by a TPID in the preceding EtherType field (0x8100 for 802.1Q, 0x88a8 or
//! the older 0x9100 for an 802.1ad service tag); [`VlanHeader`] views the four bytes that follow
//! the TPID: the tag control information and the EtherType of what comes next. QinQ is two such
//! headers in a row: `eth(0x88a8) | TCI(outer) 0x8100 | TCI(inner) 0x0800 | IPv4`.

use core::fmt;

use super::{Error, EtherType, Layer, Result};

/// Tag control information: priority (PCP, 3 bits), drop eligible (DEI, 1 bit), VLAN id (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VlanTci(pub u16);

impl VlanTci {
    /// Builds a TCI; out-of-range `pcp` and `vid` are masked to 3 and 12 bits.
    pub const fn new(pcp: u8, dei: bool, vid: u16) -> Self {
        Self(((pcp as u16 & 0x7) << 13) | ((dei as u16) << 12) | (vid & 0x0fff))
    }

    /// Priority code point, 0..=7.
    pub const fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }

    /// Drop eligible indicator.
    pub const fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// VLAN identifier, 0..=4095.
    pub const fn vid(self) -> u16 {
        self.0 & 0x0fff
    }
}

impl fmt::Debug for VlanTci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VlanTci(vid={} pcp={} dei={})",
            self.vid(),
            self.pcp(),
            u8::from(self.dei())
        )
    }
}

mod field {
    use crate::net::{Field, Rest};
    pub(crate) const TCI: Field = 0..2;
    pub(crate) const ETHERTYPE: Field = 2..4;
    pub(crate) const PAYLOAD: Rest = 4..;
}

/// Length of a tag after its TPID (`sizeof(struct rte_vlan_hdr)`).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of a VLAN tag (the four bytes after a TPID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Wraps a buffer without checking its length; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len); no accessor will then panic.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// Checks that the buffer holds a whole tag.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it is shorter than [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < HEADER_LEN {
            return Err(Error::Truncated {
                layer: Layer::Vlan,
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

    /// Tag control information.
    pub fn tci(&self) -> VlanTci {
        let d = self.buffer.as_ref();
        VlanTci(u16::from_be_bytes([
            d[field::TCI.start],
            d[field::TCI.start + 1],
        ]))
    }

    /// VLAN id (the low 12 bits of the TCI).
    pub fn vid(&self) -> u16 {
        self.tci().vid()
    }

    /// EtherType of what follows the tag (another TPID for QinQ).
    pub fn ethertype(&self) -> EtherType {
        let d = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([
            d[field::ETHERTYPE.start],
            d[field::ETHERTYPE.start + 1],
        ]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> VlanHeader<&'a T> {
    /// Everything after the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    /// Sets the tag control information.
    pub fn set_tci(&mut self, tci: VlanTci) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.0.to_be_bytes());
    }

    /// Sets the EtherType of what follows.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    /// Everything after the tag, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The fields of a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanRepr {
    /// Tag control information.
    pub tci: VlanTci,
    /// EtherType of what follows.
    pub ethertype: EtherType,
}

impl VlanRepr {
    /// Reads a tag.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the buffer is shorter than [`HEADER_LEN`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(tag: &VlanHeader<&T>) -> Result<Self> {
        tag.check_len()?;
        Ok(Self {
            tci: tag.tci(),
            ethertype: tag.ethertype(),
        })
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut VlanHeader<T>) {
        tag.set_tci(self.tci);
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCP 5, DEI 1, VID 0x123, then IPv6.
    static TAG_BYTES: [u8; 6] = [0xb1, 0x23, 0x86, 0xdd, 0x60, 0x00];

    #[test]
    fn deconstruct() {
        let tag = VlanHeader::new_checked(&TAG_BYTES[..]).unwrap();
        assert_eq!(tag.tci().pcp(), 5);
        assert!(tag.tci().dei());
        assert_eq!(tag.vid(), 0x123);
        assert_eq!(tag.ethertype(), EtherType::IPV6);
        assert_eq!(tag.payload(), &[0x60, 0x00]);
        let repr = VlanRepr::parse(&tag).unwrap();
        assert_eq!(
            repr,
            VlanRepr {
                tci: VlanTci::new(5, true, 0x123),
                ethertype: EtherType::IPV6
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 6];
        let mut tag = VlanHeader::new_unchecked(&mut bytes[..]);
        VlanRepr {
            tci: VlanTci::new(5, true, 0x123),
            ethertype: EtherType::IPV6,
        }
        .emit(&mut tag);
        tag.payload_mut().copy_from_slice(&[0x60, 0x00]);
        assert_eq!(bytes, TAG_BYTES);
    }

    #[test]
    fn truncated_at_every_length_is_an_error() {
        for len in 0..HEADER_LEN {
            assert!(VlanHeader::new_checked(&TAG_BYTES[..len]).is_err());
        }
    }

    #[test]
    fn tci_masks_out_of_range_values() {
        let tci = VlanTci::new(9, false, 0x1fff);
        assert_eq!(tci.pcp(), 1);
        assert_eq!(tci.vid(), 0x0fff);
        assert!(!tci.dei());
    }
}
