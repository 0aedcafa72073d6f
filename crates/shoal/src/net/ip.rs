//! What IPv4 and IPv6 share: the protocol / next-header number.

use core::fmt;

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: Self = Self(0);
    /// ICMP for IPv4.
    pub const ICMP: Self = Self(1);
    /// IGMP.
    pub const IGMP: Self = Self(2);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 routing header.
    pub const IPV6_ROUTING: Self = Self(43);
    /// IPv6 fragment header.
    pub const IPV6_FRAGMENT: Self = Self(44);
    /// GRE.
    pub const GRE: Self = Self(47);
    /// IPsec ESP.
    pub const ESP: Self = Self(50);
    /// IPsec authentication header.
    pub const AH: Self = Self(51);
    /// ICMP for IPv6.
    pub const ICMPV6: Self = Self(58);
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: Self = Self(59);
    /// IPv6 destination options.
    pub const IPV6_DEST_OPTS: Self = Self(60);
    /// SCTP.
    pub const SCTP: Self = Self(132);

    /// TCP, UDP and SCTP carry 16-bit ports in their first four bytes.
    pub const fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132)
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::HOP_BY_HOP => f.write_str("HOPOPT"),
            Self::ICMP => f.write_str("ICMP"),
            Self::IGMP => f.write_str("IGMP"),
            Self::TCP => f.write_str("TCP"),
            Self::UDP => f.write_str("UDP"),
            Self::IPV6_ROUTING => f.write_str("IPv6-Route"),
            Self::IPV6_FRAGMENT => f.write_str("IPv6-Frag"),
            Self::GRE => f.write_str("GRE"),
            Self::ESP => f.write_str("ESP"),
            Self::AH => f.write_str("AH"),
            Self::ICMPV6 => f.write_str("ICMPv6"),
            Self::IPV6_NO_NEXT => f.write_str("IPv6-NoNxt"),
            Self::IPV6_DEST_OPTS => f.write_str("IPv6-Opts"),
            Self::SCTP => f.write_str("SCTP"),
            Self(v) => write!(f, "{v}"),
        }
    }
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpProtocol({self})")
    }
}
