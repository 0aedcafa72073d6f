//! Packet headers, flow tuples and flow hashes: DPDK's `rte_ether.h`, `rte_ip.h`,
//! `rte_tcp.h`/`rte_udp.h`/`rte_icmp.h`/`rte_arp.h`, `rte_net_get_ptype`, `rte_hash_crc` and
//! `rte_thash`, written in the style of smoltcp's `wire` module.
//!
//! | DPDK                                  | shoal                                           |
//! |---------------------------------------|-------------------------------------------------|
//! | `rte_ether_hdr`, `rte_ether_addr`     | [`EthernetFrame`], [`EthernetRepr`], [`EthernetAddress`], [`EtherType`] |
//! | `rte_vlan_hdr` (802.1Q, QinQ)         | [`VlanHeader`], [`VlanRepr`], [`VlanTci`]       |
//! | `rte_arp_hdr`                         | [`ArpPacket`], [`ArpRepr`]                      |
//! | `rte_ipv4_hdr`, `rte_ipv4_cksum`      | [`Ipv4Packet`], [`Ipv4Repr`]                    |
//! | `rte_ipv6_hdr`, `rte_ipv6_get_next_ext` | [`Ipv6Packet`], [`Ipv6Repr`], [`ipv6::walk_extension_headers`] |
//! | `rte_tcp_hdr`, `rte_udp_hdr`          | [`TcpPacket`], [`TcpRepr`], [`UdpPacket`], [`UdpRepr`] |
//! | `rte_icmp_hdr`, ICMPv6 / ND           | [`Icmpv4Packet`], [`Icmpv6Packet`]              |
//! | `rte_raw_cksum`, `rte_ipv4_phdr_cksum`| [`checksum`]                                    |
//! | `rte_net_get_ptype` + `rte_net_hdr_lens` | [`parse_frame`] → [`PacketInfo`]             |
//! | `struct rte_ipv4_tuple` / 5-tuple     | [`FiveTuple`], [`FlowKey`] (`Pod`)              |
//! | `rte_hash_crc`, `rte_hash_crc_4byte`  | [`crc::hash_crc`], [`crc::hash_crc_4byte`]      |
//! | `rte_softrss`, default RSS key        | [`toeplitz::toeplitz_hash`], [`toeplitz::RSS_KEY_DEFAULT`] |
//! | (test-pmd / pktgen frame setup)       | [`FrameBuilder`], [`build_udp_ipv4`], [`build_arp_request`] |
//!
//! # Views and representations
//!
//! Each header has a zero-copy view, `XxxPacket<T: AsRef<[u8]>>` (`EthernetFrame` for
//! Ethernet), that reads fields in place, with setters when `T: AsMut<[u8]>`, and where it
//! helps a plain `XxxRepr` with `parse` (from a view) and `emit` (into one).
//!
//! - `new_checked(buffer)` is `new_unchecked(buffer)` followed by `check_len()`. After it
//!   succeeds **no accessor of that view panics**, whatever the bytes: header lengths (IPv4
//!   IHL, TCP data offset) and announced lengths (IPv4 total length, IPv6 payload length, UDP
//!   length, ARP address lengths) have been checked against the buffer. Use it for anything
//!   that came off the wire.
//! - `new_unchecked(buffer)` is for emitting into a buffer you sized yourself; accessors and
//!   setters then panic if the buffer is too short (documented under `# Panics`).
//! - A buffer may be longer than the packet (Ethernet padding): `payload()` stops where the
//!   length fields say.
//!
//! # The no-panic contract
//!
//! No input makes [`parse_frame`], any `new_checked`, any `Repr::parse`, the checksum
//! functions or the hashes panic; bad bytes come back as an [`Error`]. The builders check the
//! buffer size first and return [`Error::BufferTooSmall`]. A proptest feeds `parse_frame`
//! arbitrary bytes and corrupted valid frames to hold this.
//!
//! # Hashes
//!
//! [`crc::hash_crc`] matches `rte_hash_crc` bit for bit (no final inversion; SSE4.2 when the
//! CPU has it, a slicing-by-8 table otherwise). [`toeplitz`] reproduces Microsoft's RSS
//! verification suite; its [`toeplitz::RSS_KEY_SYMMETRIC`] key makes a flow's two directions
//! hash alike. [`FiveTuple::symmetric`] is the other way to the same end.

pub mod arp;
mod build;
pub mod checksum;
pub mod crc;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
mod ip;
pub mod ipv4;
pub mod ipv6;
mod parse;
pub mod tcp;
pub mod toeplitz;
mod tuple;
pub mod udp;
pub mod vlan;

#[cfg(test)]
mod tests;

use core::fmt;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use build::{build_arp_reply, build_arp_request, build_tcp_ipv4, build_udp_ipv4, FrameBuilder};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{Icmpv4Message, Icmpv4Packet};
pub use icmpv6::{Icmpv6Message, Icmpv6Packet};
pub use ip::IpProtocol;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use parse::{parse_frame, ptype, PacketClass, PacketInfo};
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use tuple::{FiveTuple, FlowKey};
pub use udp::{UdpPacket, UdpRepr};
pub use vlan::{VlanHeader, VlanRepr, VlanTci};

/// A header field's byte range.
pub(crate) type Field = core::ops::Range<usize>;
/// The bytes from an offset to the end.
pub(crate) type Rest = core::ops::RangeFrom<usize>;

/// The header an [`Error`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet II.
    Ethernet,
    /// An 802.1Q / 802.1ad tag.
    Vlan,
    /// ARP.
    Arp,
    /// IPv4.
    Ipv4,
    /// The fixed IPv6 header.
    Ipv6,
    /// An IPv6 extension header.
    Ipv6Ext,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// ICMP for IPv4.
    Icmpv4,
    /// ICMP for IPv6.
    Icmpv6,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ethernet => "Ethernet",
            Self::Vlan => "VLAN",
            Self::Arp => "ARP",
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
            Self::Ipv6Ext => "IPv6 extension",
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Icmpv4 => "ICMPv4",
            Self::Icmpv6 => "ICMPv6",
        })
    }
}

/// Errors of the `net` module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes end before the header, or before the length a header announces.
    #[error("{layer} header truncated: needs {need} bytes, {have} available")]
    Truncated {
        /// The header.
        layer: Layer,
        /// Bytes needed, counted from the start of that header.
        need: usize,
        /// Bytes available from there.
        have: usize,
    },
    /// A field holds a value its format does not allow.
    #[error("{layer} header malformed: {what}")]
    Malformed {
        /// The header.
        layer: Layer,
        /// What is wrong.
        what: &'static str,
    },
    /// A checksum does not match.
    #[error("{layer} checksum mismatch")]
    Checksum {
        /// The header.
        layer: Layer,
    },
    /// A valid packet this code does not handle.
    #[error("{layer}: {what} is not supported")]
    Unsupported {
        /// The header.
        layer: Layer,
        /// What is not supported.
        what: &'static str,
    },
    /// A builder's buffer cannot hold the frame.
    #[error("buffer of {have} bytes is too small for a {need}-byte frame")]
    BufferTooSmall {
        /// Frame length.
        need: usize,
        /// Buffer length.
        have: usize,
    },
    /// A builder was asked for a packet its length field cannot describe.
    #[error("{layer} packet of {len} bytes is longer than the {max} its length field allows")]
    TooLong {
        /// The header whose length field overflows.
        layer: Layer,
        /// Requested length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A tuple's addresses are not of the family a builder needs.
    #[error("wrong address family: expected {expected}")]
    AddressFamily {
        /// What was expected.
        expected: &'static str,
    },
    /// Text that should be a MAC address is not.
    #[error("invalid MAC address: expected six hex bytes such as 02:00:00:00:00:01")]
    MacSyntax,
}

/// `Result` with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
