//! The Toeplitz hash of receive-side scaling (DPDK's `rte_softrss`, Microsoft's RSS).
//!
//! For every set bit *i* of the input (most significant bit of the first byte is bit 0) the
//! hash XORs in the 32 key bits starting at key bit *i*. A NIC computes it over
//! `src addr | dst addr | src port | dst port` (ports only for TCP/UDP/SCTP hash types), in
//! network byte order; the helpers below build that input.
//!
//! With [`RSS_KEY_DEFAULT`] the two directions of a flow hash differently. With
//! [`RSS_KEY_SYMMETRIC`], whose 16-bit pattern repeats, swapping the addresses and the ports
//! moves every input bit by a multiple of 16 and so leaves the hash unchanged: both directions
//! land on the same queue.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Microsoft's default 40-byte RSS key, used by most NIC drivers and DPDK's `test_thash`.
pub const RSS_KEY_DEFAULT: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The 40-byte symmetric key: `0x6d5a` repeated, so a flow and its reverse hash alike. The
/// key's 16-bit period makes the hash's two 16-bit halves equal: there are 16 bits of hash,
/// plenty for an RSS redirection table of up to 65536 entries.
pub const RSS_KEY_SYMMETRIC: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Longest RSS input: two IPv6 addresses and two ports.
pub const MAX_INPUT_LEN: usize = 36;

/// Toeplitz hash of `input` under `key`. The key should be at least `input.len() + 4` bytes
/// long; key bits past its end count as zero.
pub fn toeplitz_hash(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
    // `window` holds key bytes n .. n+8, big-endian: bit b of input byte n uses window bits
    // b .. b+32 from the top.
    let mut window = (0..8).fold(0u64, |w, i| (w << 8) | key_byte(i));
    let mut hash = 0u32;
    for (n, &byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= (window >> (32 - bit)) as u32;
            }
        }
        window = (window << 8) | key_byte(n + 8);
    }
    hash
}

/// An RSS hash input held on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssInput {
    buf: [u8; MAX_INPUT_LEN],
    len: usize,
}

impl RssInput {
    fn new() -> Self {
        Self {
            buf: [0; MAX_INPUT_LEN],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        // Callers push at most MAX_INPUT_LEN bytes in total (two addresses and two ports).
        let end = (self.len + bytes.len()).min(MAX_INPUT_LEN);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    /// `src | dst` (8 bytes), then `src_port | dst_port` when `ports` is given.
    pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ports: Option<(u16, u16)>) -> Self {
        let mut input = Self::new();
        input.push(&src.octets());
        input.push(&dst.octets());
        if let Some((sp, dp)) = ports {
            input.push(&sp.to_be_bytes());
            input.push(&dp.to_be_bytes());
        }
        input
    }

    /// `src | dst` (32 bytes), then `src_port | dst_port` when `ports` is given.
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, ports: Option<(u16, u16)>) -> Self {
        let mut input = Self::new();
        input.push(&src.octets());
        input.push(&dst.octets());
        if let Some((sp, dp)) = ports {
            input.push(&sp.to_be_bytes());
            input.push(&dp.to_be_bytes());
        }
        input
    }

    /// The input bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The Toeplitz hash of these bytes under `key`.
    pub fn hash(&self, key: &[u8]) -> u32 {
        toeplitz_hash(key, self.as_bytes())
    }
}

/// RSS hash of an IPv4 address pair (`RTE_THASH_V4_L3_LEN`).
pub fn hash_ipv4(key: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    RssInput::ipv4(src, dst, None).hash(key)
}

/// RSS hash of an IPv4 address pair and ports (`RTE_THASH_V4_L4_LEN`).
pub fn hash_ipv4_l4(key: &[u8], src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> u32 {
    RssInput::ipv4(src, dst, Some((src_port, dst_port))).hash(key)
}

/// RSS hash of an IPv6 address pair (`RTE_THASH_V6_L3_LEN`).
pub fn hash_ipv6(key: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
    RssInput::ipv6(src, dst, None).hash(key)
}

/// RSS hash of an IPv6 address pair and ports (`RTE_THASH_V6_L4_LEN`).
pub fn hash_ipv6_l4(key: &[u8], src: Ipv6Addr, dst: Ipv6Addr, src_port: u16, dst_port: u16) -> u32 {
    RssInput::ipv6(src, dst, Some((src_port, dst_port))).hash(key)
}

/// A Toeplitz hasher with one 256-entry table per input byte position: one lookup and XOR per
/// input byte instead of up to eight. Gives the same results as [`toeplitz_hash`].
#[derive(Clone)]
pub struct ToeplitzTable {
    key: Vec<u8>,
    tables: Vec<[u32; 256]>,
}

impl ToeplitzTable {
    /// Tables for inputs of up to `max_input_len` bytes (longer inputs are hashed bit by bit
    /// past that point). `36` covers every RSS input.
    pub fn new(key: &[u8], max_input_len: usize) -> Self {
        let mut tables = vec![[0u32; 256]; max_input_len];
        for (pos, table) in tables.iter_mut().enumerate() {
            // Contribution of each single bit at this position, then XOR combinations.
            let mut probe = vec![0u8; pos + 1];
            let mut bit_hash = [0u32; 8];
            for (bit, h) in bit_hash.iter_mut().enumerate() {
                probe[pos] = 0x80 >> bit;
                *h = toeplitz_hash(key, &probe);
            }
            for (value, entry) in table.iter_mut().enumerate() {
                *entry = (0..8)
                    .filter(|bit| value & (0x80 >> bit) != 0)
                    .fold(0, |acc, bit| acc ^ bit_hash[bit]);
            }
        }
        Self {
            key: key.to_vec(),
            tables,
        }
    }

    /// The Toeplitz hash of `input`.
    pub fn hash(&self, input: &[u8]) -> u32 {
        let split = input.len().min(self.tables.len());
        let mut hash = input[..split]
            .iter()
            .zip(&self.tables)
            .fold(0, |acc, (&b, t)| acc ^ t[usize::from(b)]);
        if split < input.len() {
            // Bits past the tables: hash the tail with its leading positions zeroed.
            let mut tail = vec![0u8; input.len()];
            tail[split..].copy_from_slice(&input[split..]);
            hash ^= toeplitz_hash(&self.key, &tail);
        }
        hash
    }
}

impl core::fmt::Debug for ToeplitzTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ToeplitzTable")
            .field("key_len", &self.key.len())
            .field("max_input_len", &self.tables.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSS verification suite of Microsoft's RSS specification and the Intel 82599
    /// datasheet (section 7.1.2.8.3), as DPDK's app/test/test_thash.c carries it:
    /// (destination, source, destination port, source port, L3 hash, L3+L4 hash).
    const V4: [(Ipv4Addr, Ipv4Addr, u16, u16, u32, u32); 5] = [
        (
            Ipv4Addr::new(161, 142, 100, 80),
            Ipv4Addr::new(66, 9, 149, 187),
            1766,
            2794,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            Ipv4Addr::new(65, 69, 140, 83),
            Ipv4Addr::new(199, 92, 111, 2),
            4739,
            14230,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            Ipv4Addr::new(12, 22, 207, 184),
            Ipv4Addr::new(24, 19, 198, 95),
            38024,
            12898,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            Ipv4Addr::new(209, 142, 163, 6),
            Ipv4Addr::new(38, 27, 205, 30),
            2217,
            48228,
            0x82989176,
            0xafc7327f,
        ),
        (
            Ipv4Addr::new(202, 188, 127, 2),
            Ipv4Addr::new(153, 39, 163, 191),
            1303,
            44251,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn v6_vectors() -> [(Ipv6Addr, Ipv6Addr, u16, u16, u32, u32); 3] {
        [
            (
                v6("3ffe:2501:200:3::1"),
                v6("3ffe:2501:200:1fff::7"),
                1766,
                2794,
                0x2cc18cd5,
                0x40207d3d,
            ),
            (
                v6("ff02::1"),
                v6("3ffe:501:8::260:97ff:fe40:efab"),
                4739,
                14230,
                0x0f0c461c,
                0xdde51bbf,
            ),
            (
                v6("fe80::200:f8ff:fe21:67cf"),
                v6("3ffe:1900:4545:3:200:f8ff:fe21:67cf"),
                38024,
                44251,
                0x4b61e985,
                0x02d1feef,
            ),
        ]
    }

    #[test]
    fn microsoft_ipv4_verification_suite() {
        for (dst, src, dport, sport, l3, l4) in V4 {
            assert_eq!(hash_ipv4(&RSS_KEY_DEFAULT, src, dst), l3, "{src} -> {dst}");
            assert_eq!(
                hash_ipv4_l4(&RSS_KEY_DEFAULT, src, dst, sport, dport),
                l4,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn microsoft_ipv6_verification_suite() {
        for (dst, src, dport, sport, l3, l4) in v6_vectors() {
            assert_eq!(hash_ipv6(&RSS_KEY_DEFAULT, src, dst), l3, "{src} -> {dst}");
            assert_eq!(
                hash_ipv6_l4(&RSS_KEY_DEFAULT, src, dst, sport, dport),
                l4,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn table_hasher_matches_bitwise_hash() {
        let table = ToeplitzTable::new(&RSS_KEY_DEFAULT, MAX_INPUT_LEN);
        for (dst, src, dport, sport, _, l4) in V4 {
            assert_eq!(
                table.hash(RssInput::ipv4(src, dst, Some((sport, dport))).as_bytes()),
                l4
            );
        }
        for (dst, src, dport, sport, _, l4) in v6_vectors() {
            assert_eq!(
                table.hash(RssInput::ipv6(src, dst, Some((sport, dport))).as_bytes()),
                l4
            );
        }
        // Inputs longer than the tables fall back to the bitwise hash for the tail.
        let short = ToeplitzTable::new(&RSS_KEY_DEFAULT, 5);
        let input: Vec<u8> = (1..=12).collect();
        assert_eq!(short.hash(&input), toeplitz_hash(&RSS_KEY_DEFAULT, &input));
    }

    #[test]
    fn symmetric_key_hashes_both_directions_alike() {
        for (dst, src, dport, sport, _, _) in V4 {
            let fwd = hash_ipv4_l4(&RSS_KEY_SYMMETRIC, src, dst, sport, dport);
            let rev = hash_ipv4_l4(&RSS_KEY_SYMMETRIC, dst, src, dport, sport);
            assert_eq!(fwd, rev);
            // The default key is not symmetric.
            assert_ne!(
                hash_ipv4_l4(&RSS_KEY_DEFAULT, src, dst, sport, dport),
                hash_ipv4_l4(&RSS_KEY_DEFAULT, dst, src, dport, sport)
            );
        }
        for (dst, src, dport, sport, _, _) in v6_vectors() {
            let fwd = hash_ipv6_l4(&RSS_KEY_SYMMETRIC, src, dst, sport, dport);
            assert_eq!(
                fwd,
                hash_ipv6_l4(&RSS_KEY_SYMMETRIC, dst, src, dport, sport)
            );
        }
    }

    #[test]
    fn symmetric_key_matches_dpdk_softrss() {
        // DPDK 22.11 rte_softrss(10.0.0.1:1234 -> 192.168.7.9:80, V4_L4_LEN, 0x6d5a key), and
        // the same for the reverse direction: both 0x3d9d3d9d (a 16-bit periodic key gives a
        // 16-bit periodic hash).
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(192, 168, 7, 9);
        assert_eq!(
            hash_ipv4_l4(&RSS_KEY_SYMMETRIC, a, b, 1234, 80),
            0x3d9d_3d9d
        );
        assert_eq!(
            hash_ipv4_l4(&RSS_KEY_SYMMETRIC, b, a, 80, 1234),
            0x3d9d_3d9d
        );
    }

    #[test]
    fn short_key_reads_as_zero_bits() {
        assert_eq!(toeplitz_hash(&[], &[0xff; 12]), 0);
        assert_eq!(toeplitz_hash(&[0x80, 0, 0, 0], &[0x80]), 0x8000_0000);
    }
}
