//! Flow identity: the 5-tuple, its reverse and symmetric forms, and [`FlowKey`], a fixed-size
//! `Pod` form that can travel through rings and be hashed as bytes.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::toeplitz::RssInput;
use super::{crc, IpProtocol};

/// Source and destination address and port, and the IP protocol. Protocols without ports
/// (ICMP, GRE, ...) carry zero ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiveTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination port (0 when the protocol has none).
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
}

impl FiveTuple {
    /// A tuple.
    pub fn new(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16, proto: IpProtocol) -> Self {
        Self {
            src,
            dst,
            src_port,
            dst_port,
            proto: proto.0,
        }
    }

    /// The protocol as an [`IpProtocol`].
    pub const fn protocol(&self) -> IpProtocol {
        IpProtocol(self.proto)
    }

    /// The other direction of the flow: source and destination swapped.
    #[must_use]
    pub const fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
        }
    }

    /// The same tuple for both directions: the endpoint `(address, port)` that orders first
    /// becomes the source. `t.symmetric() == t.reversed().symmetric()`.
    #[must_use]
    pub fn symmetric(&self) -> Self {
        if (self.dst, self.dst_port) < (self.src, self.src_port) {
            self.reversed()
        } else {
            *self
        }
    }

    /// The Toeplitz (RSS) input for this tuple: addresses, then ports when the protocol has
    /// them (TCP, UDP, SCTP), as a NIC hashes with L4 hash types enabled. Mixed address
    /// families take the IPv4 address in its mapped IPv6 form.
    pub fn rss_input(&self) -> RssInput {
        let ports = self
            .protocol()
            .has_ports()
            .then_some((self.src_port, self.dst_port));
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => RssInput::ipv4(s, d, ports),
            (s, d) => RssInput::ipv6(to_v6(s), to_v6(d), ports),
        }
    }

    /// The RSS hash of this tuple under `key` (see [`rss_input`](Self::rss_input)).
    pub fn rss_hash(&self, key: &[u8]) -> u32 {
        self.rss_input().hash(key)
    }

    /// The compact form.
    pub fn key(&self) -> FlowKey {
        FlowKey::from(*self)
    }

    /// `rte_hash_crc` over the compact form's bytes, from `init`.
    pub fn crc_hash(&self, init: u32) -> u32 {
        self.key().crc_hash(init)
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

impl fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |f: &mut fmt::Formatter<'_>, a: IpAddr, p: u16| match a {
            IpAddr::V4(a) => write!(f, "{a}:{p}"),
            IpAddr::V6(a) => write!(f, "[{a}]:{p}"),
        };
        ep(f, self.src, self.src_port)?;
        f.write_str(" -> ")?;
        ep(f, self.dst, self.dst_port)?;
        write!(f, " {}", self.protocol())
    }
}

/// A 5-tuple as 40 plain bytes (`repr(C)`, no padding, `Pod`): IPv4 addresses sit in the
/// first four bytes of their 16-byte slots with the rest zero, and `family` says which.
/// Equal tuples give equal keys, so the bytes can be hashed and compared directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct FlowKey {
    /// Source address bytes (network order).
    pub src: [u8; 16],
    /// Destination address bytes (network order).
    pub dst: [u8; 16],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// 4 or 6 (0 in a zeroed key).
    pub family: u8,
    /// Always zero.
    pub reserved: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

impl FlowKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    /// `rte_hash_crc` over the key's 40 bytes, from `init`.
    pub fn crc_hash(&self, init: u32) -> u32 {
        crc::hash_crc(self.as_bytes(), init)
    }

    /// The tuple back, or `None` if `family` is neither 4 nor 6.
    pub fn tuple(&self) -> Option<FiveTuple> {
        let addr = |b: &[u8; 16]| -> Option<IpAddr> {
            match self.family {
                4 => Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
                6 => Some(Ipv6Addr::from(*b).into()),
                _ => None,
            }
        };
        Some(FiveTuple {
            src: addr(&self.src)?,
            dst: addr(&self.dst)?,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: self.proto,
        })
    }
}

impl From<FiveTuple> for FlowKey {
    /// Mixed families store both addresses in IPv6 form (IPv4-mapped) with family 6.
    fn from(t: FiveTuple) -> Self {
        let mut key = Self {
            src_port: t.src_port,
            dst_port: t.dst_port,
            proto: t.proto,
            ..Self::default()
        };
        match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                key.family = 4;
                key.src[..4].copy_from_slice(&s.octets());
                key.dst[..4].copy_from_slice(&d.octets());
            }
            (s, d) => {
                key.family = 6;
                key.src = to_v6(s).octets();
                key.dst = to_v6(d).octets();
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> FiveTuple {
        FiveTuple::new(
            Ipv4Addr::new(10, 0, 0, 2).into(),
            40000,
            Ipv4Addr::new(10, 0, 0, 1).into(),
            80,
            IpProtocol::TCP,
        )
    }

    #[test]
    fn reversed_twice_is_identity() {
        let t = tuple();
        assert_eq!(t.reversed().reversed(), t);
        assert_eq!(t.reversed().src_port, 80);
    }

    #[test]
    fn symmetric_is_the_same_for_both_directions() {
        let t = tuple();
        assert_eq!(t.symmetric(), t.reversed().symmetric());
        assert_eq!(t.symmetric().src, IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)));
        // Same addresses: the ports decide.
        let same = FiveTuple::new(t.src, 9, t.src, 5, IpProtocol::UDP);
        assert_eq!(same.symmetric().src_port, 5);
        assert_eq!(same.symmetric(), same.reversed().symmetric());
    }

    #[test]
    fn flow_key_round_trips() {
        let t4 = tuple();
        let t6 = FiveTuple::new(
            "2001:db8::1".parse().unwrap(),
            1,
            "2001:db8::2".parse().unwrap(),
            2,
            IpProtocol::UDP,
        );
        for t in [t4, t6] {
            let key = t.key();
            assert_eq!(key.tuple(), Some(t));
            let copy: FlowKey = bytemuck::pod_read_unaligned(key.as_bytes());
            assert_eq!(copy, key);
            assert_eq!(copy.crc_hash(0), t.crc_hash(0));
        }
        assert_eq!(FlowKey::default().tuple(), None);
        assert_ne!(t4.crc_hash(0), t4.reversed().crc_hash(0));
        assert_eq!(
            t4.symmetric().crc_hash(0),
            t4.reversed().symmetric().crc_hash(0)
        );
    }

    #[test]
    fn rss_uses_ports_only_for_port_protocols() {
        let t = tuple();
        assert_eq!(t.rss_input().as_bytes().len(), 12);
        let icmp = FiveTuple {
            proto: IpProtocol::ICMP.0,
            src_port: 0,
            dst_port: 0,
            ..t
        };
        assert_eq!(icmp.rss_input().as_bytes().len(), 8);
    }

    #[test]
    fn display_shows_endpoints() {
        assert_eq!(tuple().to_string(), "10.0.0.2:40000 -> 10.0.0.1:80 TCP");
        let t6 = FiveTuple::new(
            "::1".parse().unwrap(),
            1,
            "::2".parse().unwrap(),
            2,
            IpProtocol::UDP,
        );
        assert_eq!(t6.to_string(), "[::1]:1 -> [::2]:2 UDP");
    }
}
