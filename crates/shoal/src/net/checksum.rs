//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo headers (`rte_raw_cksum`,
//! `rte_ipv4_phdr_cksum`, `rte_ipv6_phdr_cksum`).
//!
//! Sums here are *folded but not inverted*: combine partial sums with [`combine`], then store
//! `!sum` in the header. A header whose stored checksum is right sums to `0xffff`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Folds a wide one's-complement accumulator into 16 bits.
const fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of `data` taken as big-endian 16-bit words (an odd last byte is padded
/// with a zero byte), folded to 16 bits.
pub fn data(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        sum += u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    let mut rest = chunks.remainder();
    if rest.len() >= 2 {
        sum += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&last) = rest.first() {
        sum += u64::from(last) << 8;
    }
    fold(sum)
}

/// One's-complement sum of partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo header: addresses, protocol and upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, length: u16) -> u16 {
    let mut buf = [0u8; 12];
    buf[0..4].copy_from_slice(&src.octets());
    buf[4..8].copy_from_slice(&dst.octets());
    buf[9] = proto.0;
    buf[10..12].copy_from_slice(&length.to_be_bytes());
    data(&buf)
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, length: u32) -> u16 {
    let mut buf = [0u8; 40];
    buf[0..16].copy_from_slice(&src.octets());
    buf[16..32].copy_from_slice(&dst.octets());
    buf[32..36].copy_from_slice(&length.to_be_bytes());
    buf[39] = proto.0;
    data(&buf)
}

/// Sum of the pseudo header for either family. If the families differ (which no parsed packet
/// produces), the IPv4 address is taken in its IPv4-mapped IPv6 form. An IPv4 `length` above
/// 65535 is truncated to 16 bits, as the field is.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: IpProtocol, length: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, proto, length as u16),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), proto, length),
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_as_documented() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[0xff]), 0xff00);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn split_sums_combine_to_the_whole() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for cut in [0, 2, 4, 6, 100, 1000] {
            let whole = data(&bytes);
            let parts = combine(&[data(&bytes[..cut]), data(&bytes[cut..])]);
            assert_eq!(whole, parts, "cut at {cut}");
        }
    }
}
