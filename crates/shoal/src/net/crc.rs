#![allow(unsafe_code)] // SSE4.2 crc32 instructions, called only after runtime CPU feature detection

//! CRC32C (Castagnoli), the hash of DPDK's `rte_hash_crc`.
//!
//! [`hash_crc`] has `rte_hash_crc`'s exact semantics: the running value starts at `init`, the
//! bytes are fed in memory order, and **no** final inversion is applied, so results chain
//! (`hash_crc(b, hash_crc(a, i)) == hash_crc(a ++ b, i)`) and match DPDK's bit for bit. The
//! textbook CRC32C (init `!0`, final `!`) is [`crc32c`]. On x86-64 with SSE4.2 the `crc32`
//! instruction does the work (8 bytes at a time, as DPDK's `CRC32_SSE42_x64`); elsewhere a
//! slicing-by-8 table, DPDK's `crc32c_tables`, gives the same results.

/// The Castagnoli polynomial 0x1EDC6F41, bit-reflected.
const POLY_REFLECTED: u32 = 0x82f6_3b78;

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut n = 1;
    while n < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[n - 1][i];
            t[n][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        n += 1;
    }
    t
}

/// `TABLES[k][b]`: the CRC contribution of byte `b` followed by `k` zero bytes.
static TABLES: [[u32; 256]; 8] = make_tables();

/// CRC32C of `data` continuing from `init`, no final inversion, in software (slicing-by-8).
/// Same result as [`hash_crc`] on every machine.
pub fn hash_crc_sw(data: &[u8], init: u32) -> u32 {
    let t = &TABLES;
    let mut crc = init;
    let mut rest = data;
    while let Some((c, tail)) = rest.split_first_chunk::<8>() {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        crc = t[7][lo as u8 as usize]
            ^ t[6][(lo >> 8) as u8 as usize]
            ^ t[5][(lo >> 16) as u8 as usize]
            ^ t[4][(lo >> 24) as u8 as usize]
            ^ t[3][c[4] as usize]
            ^ t[2][c[5] as usize]
            ^ t[1][c[6] as usize]
            ^ t[0][c[7] as usize];
        rest = tail;
    }
    for &b in rest {
        crc = t[0][(crc as u8 ^ b) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CPU has the SSE4.2 `crc32` instruction, so [`hash_crc`] uses it.
pub fn hw_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sse4.2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// CRC32C of `data` continuing from `init` with the SSE4.2 instruction, or `None` when the
/// CPU lacks it.
pub fn hash_crc_hw(data: &[u8], init: u32) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if hw_available() {
        // SAFETY: the CPU supports SSE4.2, checked just above.
        return Some(unsafe { sse42::hash_crc(data, init) });
    }
    let _ = (data, init);
    None
}

/// `rte_hash_crc(data, len, init_val)`: CRC32C of `data` continuing from `init`, with no final
/// inversion. Uses SSE4.2 when the CPU has it.
pub fn hash_crc(data: &[u8], init: u32) -> u32 {
    match hash_crc_hw(data, init) {
        Some(crc) => crc,
        None => hash_crc_sw(data, init),
    }
}

/// `rte_hash_crc_4byte`: the CRC of a 32-bit value's little-endian bytes (its memory order on
/// the x86 and Arm machines DPDK runs on).
pub fn hash_crc_4byte(data: u32, init: u32) -> u32 {
    hash_crc(&data.to_le_bytes(), init)
}

/// `rte_hash_crc_8byte`: the CRC of a 64-bit value's little-endian bytes.
pub fn hash_crc_8byte(data: u64, init: u32) -> u32 {
    hash_crc(&data.to_le_bytes(), init)
}

/// The standard CRC32C checksum (iSCSI, ext4, SCTP): init `0xffffffff`, final inversion.
pub fn crc32c(data: &[u8]) -> u32 {
    !hash_crc(data, !0)
}

#[cfg(target_arch = "x86_64")]
mod sse42 {
    use core::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};

    /// CRC32C with the `crc32` instruction: 8 bytes a step, then 4, then single bytes.
    ///
    /// # Safety
    /// The CPU must support SSE4.2.
    #[target_feature(enable = "sse4.2")]
    #[allow(unused_unsafe)] // the intrinsics are safe here from Rust 1.87; the MSRV needs `unsafe`
    pub(super) unsafe fn hash_crc(data: &[u8], init: u32) -> u32 {
        let mut crc = u64::from(init);
        let mut rest = data;
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            // SAFETY: SSE4.2 is enabled for this function and present (the caller's contract).
            crc = unsafe { _mm_crc32_u64(crc, u64::from_le_bytes(*word)) };
            rest = tail;
        }
        // The instruction leaves the upper 32 bits zero.
        let mut crc = crc as u32;
        if let Some((word, tail)) = rest.split_first_chunk::<4>() {
            // SAFETY: as above.
            crc = unsafe { _mm_crc32_u32(crc, u32::from_le_bytes(*word)) };
            rest = tail;
        }
        for &b in rest {
            // SAFETY: as above.
            crc = unsafe { _mm_crc32_u8(crc, b) };
        }
        crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_dpdk_crc32c_tables() {
        // First entries of rows 0 and 1 and the last of row 0 in DPDK's lib/hash/rte_crc_sw.h.
        assert_eq!(TABLES[0][1], 0xf26b_8303);
        assert_eq!(TABLES[0][2], 0xe13b_70f7);
        assert_eq!(TABLES[0][255], 0xad7d_5351);
        assert_eq!(TABLES[1][1], 0x13a2_9877);
        assert_eq!(TABLES[1][2], 0x2745_30ee);
    }

    #[test]
    fn standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(!hash_crc_sw(b"123456789", !0), 0xe306_9283);
        // rte_hash_crc does not invert: the raw register after "123456789" from all ones.
        assert_eq!(hash_crc(b"123456789", 0xffff_ffff), 0x1cf9_6d7c);
    }

    #[test]
    fn rfc3720_iscsi_vectors() {
        let zeros = [0u8; 32];
        let ones = [0xffu8; 32];
        let inc: Vec<u8> = (0..32).collect();
        let dec: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&zeros), 0x8a91_36aa);
        assert_eq!(crc32c(&ones), 0x62a8_ab43);
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        assert_eq!(crc32c(&dec), 0x113f_db5c);
    }

    /// Outputs of DPDK 22.11's `rte_hash_crc` (both `CRC32_SW` and `CRC32_SSE42_x64`) for
    /// `buf + 3`, where `buf[i] = i * 7 + 3`: (length, init, result).
    const DPDK_RTE_HASH_CRC: [(usize, u32, u32); 24] = [
        (0, 0x12345678, 0x12345678),
        (0, 0xffffffff, 0xffffffff),
        (1, 0x12345678, 0x61d4a734),
        (1, 0xffffffff, 0x3705330e),
        (3, 0x12345678, 0xa6e5518c),
        (3, 0xffffffff, 0x09c88d80),
        (7, 0x12345678, 0xae1e5a56),
        (7, 0xffffffff, 0xfaf8481f),
        (8, 0x12345678, 0x4ee3e511),
        (8, 0xffffffff, 0x777ec573),
        (9, 0x12345678, 0xb35e7d5a),
        (9, 0xffffffff, 0x339a03ef),
        (15, 0x12345678, 0x25fade2c),
        (15, 0xffffffff, 0xde17171c),
        (16, 0x12345678, 0x1d4603ab),
        (16, 0xffffffff, 0x2d5ea7d3),
        (63, 0x12345678, 0x2a7d6bfd),
        (63, 0xffffffff, 0xde8614f7),
        (64, 0x12345678, 0x6dd43c65),
        (64, 0xffffffff, 0x06c2ef22),
        (100, 0x12345678, 0x23c72ff9),
        (100, 0xffffffff, 0x8e3a5b58),
        (1500, 0x12345678, 0x7c76d448),
        (1500, 0xffffffff, 0xe715ea86),
    ];

    #[test]
    fn matches_dpdk_rte_hash_crc_outputs() {
        let buf: Vec<u8> = (0..2048usize).map(|i| (i * 7 + 3) as u8).collect();
        for (len, init, expected) in DPDK_RTE_HASH_CRC {
            let data = &buf[3..3 + len];
            assert_eq!(hash_crc(data, init), expected, "len {len} init {init:#x}");
            assert_eq!(
                hash_crc_sw(data, init),
                expected,
                "software, len {len} init {init:#x}"
            );
        }
        // rte_hash_crc_4byte(0xdeadbeef, 7) and rte_hash_crc_8byte(0x0102030405060708, 7).
        assert_eq!(hash_crc_4byte(0xdead_beef, 7), 0x1099_a5de);
        assert_eq!(hash_crc_8byte(0x0102_0304_0506_0708, 7), 0x5088_b592);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
        for cut in 0..data.len() {
            let chained = hash_crc(&data[cut..], hash_crc(&data[..cut], 0x1234_5678));
            assert_eq!(chained, hash_crc(&data, 0x1234_5678), "cut {cut}");
        }
    }

    #[test]
    fn fixed_width_helpers_hash_little_endian_bytes() {
        let v = 0x0102_0304_0506_0708u64;
        assert_eq!(hash_crc_8byte(v, 7), hash_crc_sw(&v.to_le_bytes(), 7));
        assert_eq!(
            hash_crc_4byte(0xdead_beef, 7),
            hash_crc_sw(&[0xef, 0xbe, 0xad, 0xde], 7)
        );
    }

    #[test]
    fn hardware_equals_software_on_pseudo_random_data() {
        let Some(_) = hash_crc_hw(&[], 0) else {
            eprintln!("skipped: this CPU has no SSE4.2");
            return;
        };
        // xorshift64: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let data: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
        for _ in 0..2000 {
            let start = (next() % 64) as usize;
            let len = (next() % 1024) as usize;
            let init = next() as u32;
            let slice = &data[start..start + len];
            assert_eq!(
                hash_crc_hw(slice, init),
                Some(hash_crc_sw(slice, init)),
                "start {start} len {len}"
            );
        }
    }
}
