//! memif control messages (protocol 2.0, as DPDK's `drivers/net/memif/memif.h` and libmemif
//! define them): every message is exactly 128 bytes, packed, little-endian, a `u16` type at
//! offset 0 and the payload from offset 2, the rest zero.
//!
//! [`Msg::parse`] is the only way in for bytes from a peer: it checks the length and the
//! type and returns a typed message, or an error that names what is wrong. Parsing reads
//! fields only; what they mean (a region index in sequence, a ring inside its region) is
//! checked by the connection that receives them.

/// Every message's size.
pub(crate) const MSG_SIZE: usize = 128;
/// Ring cookie.
pub(crate) const COOKIE: u32 = 0x3E31F20;
/// Protocol version 2.0.
pub(crate) const VERSION: u16 = 0x0200;
/// Length of names in messages.
pub(crate) const NAME_SIZE: usize = 32;
/// Length of the secret.
pub(crate) const SECRET_SIZE: usize = 24;
/// Length of a disconnect reason.
pub(crate) const REASON_SIZE: usize = 96;
/// `add_ring` flag: the ring carries client-to-server traffic.
pub(crate) const RING_C2S: u16 = 1;
/// Interface mode: Ethernet (the only one supported, as in DPDK).
pub(crate) const MODE_ETHERNET: u8 = 0;

mod kind {
    pub const ACK: u16 = 1;
    pub const HELLO: u16 = 2;
    pub const INIT: u16 = 3;
    pub const ADD_REGION: u16 = 4;
    pub const ADD_RING: u16 = 5;
    pub const CONNECT: u16 = 6;
    pub const CONNECTED: u16 = 7;
    pub const DISCONNECT: u16 = 8;
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    Ack,
    /// Server → client: the server's limits (maxima are counts minus one, as DPDK sends).
    Hello {
        name: String,
        min_version: u16,
        max_version: u16,
        max_region: u16,
        max_s2c_ring: u16,
        max_c2s_ring: u16,
        max_log2_ring_size: u8,
    },
    /// Client → server: which interface, and the secret.
    Init {
        version: u16,
        id: u32,
        mode: u8,
        secret: [u8; SECRET_SIZE],
        name: String,
    },
    /// Client → server, with the region's fd.
    AddRegion {
        index: u16,
        size: u64,
    },
    /// Client → server, with the ring's interrupt eventfd.
    AddRing {
        flags: u16,
        index: u16,
        region: u16,
        offset: u32,
        log2_ring_size: u8,
        private_hdr_size: u16,
    },
    /// Client → server: all sent, map it.
    Connect {
        if_name: String,
    },
    /// Server → client: mapped, up.
    Connected {
        if_name: String,
    },
    /// Either way: going down, and why.
    Disconnect {
        code: u32,
        reason: String,
    },
}

/// What is wrong with a received message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("a control message of {0} bytes (memif messages are exactly {MSG_SIZE})")]
    Size(usize),
    #[error("unknown control message type {0}")]
    Type(u16),
}

fn name_of(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn put_name(dst: &mut [u8], s: &str) {
    // Cut to fit, keeping a NUL (strlcpy).
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

struct R<'a>(&'a [u8]);
impl R<'_> {
    fn u8(&self, at: usize) -> u8 {
        self.0[at]
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
}

impl Msg {
    /// Reads a message (`buf` is what was received: its length is checked).
    pub(crate) fn parse(buf: &[u8]) -> Result<Msg, ParseError> {
        if buf.len() != MSG_SIZE {
            return Err(ParseError::Size(buf.len()));
        }
        let r = R(buf);
        // Payload offsets are from the start of the message: the type takes bytes 0..2.
        Ok(match r.u16(0) {
            kind::ACK => Msg::Ack,
            kind::HELLO => Msg::Hello {
                name: name_of(&buf[2..2 + NAME_SIZE]),
                min_version: r.u16(34),
                max_version: r.u16(36),
                max_region: r.u16(38),
                max_s2c_ring: r.u16(40),
                max_c2s_ring: r.u16(42),
                max_log2_ring_size: r.u8(44),
            },
            kind::INIT => Msg::Init {
                version: r.u16(2),
                id: r.u32(4),
                mode: r.u8(8),
                secret: buf[9..9 + SECRET_SIZE].try_into().expect("24 bytes"),
                name: name_of(&buf[33..33 + NAME_SIZE]),
            },
            kind::ADD_REGION => Msg::AddRegion {
                index: r.u16(2),
                size: r.u64(4),
            },
            kind::ADD_RING => Msg::AddRing {
                flags: r.u16(2),
                index: r.u16(4),
                region: r.u16(6),
                offset: r.u32(8),
                log2_ring_size: r.u8(12),
                private_hdr_size: r.u16(13),
            },
            kind::CONNECT => Msg::Connect {
                if_name: name_of(&buf[2..2 + NAME_SIZE]),
            },
            kind::CONNECTED => Msg::Connected {
                if_name: name_of(&buf[2..2 + NAME_SIZE]),
            },
            kind::DISCONNECT => Msg::Disconnect {
                code: r.u32(2),
                reason: name_of(&buf[6..6 + REASON_SIZE]),
            },
            t => return Err(ParseError::Type(t)),
        })
    }

    /// The 128 bytes of the message.
    pub(crate) fn encode(&self) -> [u8; MSG_SIZE] {
        let mut b = [0u8; MSG_SIZE];
        let put16 = |b: &mut [u8; MSG_SIZE], at: usize, v: u16| {
            b[at..at + 2].copy_from_slice(&v.to_le_bytes())
        };
        match self {
            Msg::Ack => put16(&mut b, 0, kind::ACK),
            Msg::Hello {
                name,
                min_version,
                max_version,
                max_region,
                max_s2c_ring,
                max_c2s_ring,
                max_log2_ring_size,
            } => {
                put16(&mut b, 0, kind::HELLO);
                put_name(&mut b[2..2 + NAME_SIZE], name);
                put16(&mut b, 34, *min_version);
                put16(&mut b, 36, *max_version);
                put16(&mut b, 38, *max_region);
                put16(&mut b, 40, *max_s2c_ring);
                put16(&mut b, 42, *max_c2s_ring);
                b[44] = *max_log2_ring_size;
            }
            Msg::Init {
                version,
                id,
                mode,
                secret,
                name,
            } => {
                put16(&mut b, 0, kind::INIT);
                put16(&mut b, 2, *version);
                b[4..8].copy_from_slice(&id.to_le_bytes());
                b[8] = *mode;
                b[9..9 + SECRET_SIZE].copy_from_slice(secret);
                put_name(&mut b[33..33 + NAME_SIZE], name);
            }
            Msg::AddRegion { index, size } => {
                put16(&mut b, 0, kind::ADD_REGION);
                put16(&mut b, 2, *index);
                b[4..12].copy_from_slice(&size.to_le_bytes());
            }
            Msg::AddRing {
                flags,
                index,
                region,
                offset,
                log2_ring_size,
                private_hdr_size,
            } => {
                put16(&mut b, 0, kind::ADD_RING);
                put16(&mut b, 2, *flags);
                put16(&mut b, 4, *index);
                put16(&mut b, 6, *region);
                b[8..12].copy_from_slice(&offset.to_le_bytes());
                b[12] = *log2_ring_size;
                put16(&mut b, 13, *private_hdr_size);
            }
            Msg::Connect { if_name } => {
                put16(&mut b, 0, kind::CONNECT);
                put_name(&mut b[2..2 + NAME_SIZE], if_name);
            }
            Msg::Connected { if_name } => {
                put16(&mut b, 0, kind::CONNECTED);
                put_name(&mut b[2..2 + NAME_SIZE], if_name);
            }
            Msg::Disconnect { code, reason } => {
                put16(&mut b, 0, kind::DISCONNECT);
                b[2..6].copy_from_slice(&code.to_le_bytes());
                put_name(&mut b[6..6 + REASON_SIZE], reason);
            }
        }
        b
    }

    /// The message's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Msg::Ack => "ACK",
            Msg::Hello { .. } => "HELLO",
            Msg::Init { .. } => "INIT",
            Msg::AddRegion { .. } => "ADD_REGION",
            Msg::AddRing { .. } => "ADD_RING",
            Msg::Connect { .. } => "CONNECT",
            Msg::Connected { .. } => "CONNECTED",
            Msg::Disconnect { .. } => "DISCONNECT",
        }
    }
}

/// A secret as the protocol carries it: NUL-padded to 24 bytes.
pub(crate) fn secret_bytes(s: &str) -> [u8; SECRET_SIZE] {
    let mut b = [0u8; SECRET_SIZE];
    let n = s.len().min(SECRET_SIZE);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A HELLO as DPDK 22.11's server sends it (name "DPDK 22.11.x", versions 2.0, 255
    /// regions minus one, 255 rings each way minus one... as the bytes show).
    fn dpdk_hello() -> [u8; MSG_SIZE] {
        let mut b = [0u8; MSG_SIZE];
        b[0] = 2;
        b[2..14].copy_from_slice(b"DPDK 22.11.4");
        b[34..36].copy_from_slice(&0x0200u16.to_le_bytes());
        b[36..38].copy_from_slice(&0x0200u16.to_le_bytes());
        b[38..40].copy_from_slice(&254u16.to_le_bytes());
        b[40..42].copy_from_slice(&255u16.to_le_bytes());
        b[42..44].copy_from_slice(&255u16.to_le_bytes());
        b[44] = 14;
        b
    }

    #[test]
    fn hello_deconstruct_and_construct() {
        let m = Msg::parse(&dpdk_hello()).unwrap();
        assert_eq!(
            m,
            Msg::Hello {
                name: "DPDK 22.11.4".into(),
                min_version: VERSION,
                max_version: VERSION,
                max_region: 254,
                max_s2c_ring: 255,
                max_c2s_ring: 255,
                max_log2_ring_size: 14
            }
        );
        assert_eq!(m.encode(), dpdk_hello());
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            Msg::Ack,
            Msg::Init {
                version: VERSION,
                id: 7,
                mode: MODE_ETHERNET,
                secret: secret_bytes("s3cret"),
                name: "shoal".into(),
            },
            Msg::AddRegion {
                index: 0,
                size: 1 << 33,
            },
            Msg::AddRing {
                flags: RING_C2S,
                index: 3,
                region: 0,
                offset: 0x1_0080,
                log2_ring_size: 10,
                private_hdr_size: 0,
            },
            Msg::Connect {
                if_name: "net_memif0".into(),
            },
            Msg::Connected {
                if_name: "x".repeat(40),
            },
            Msg::Disconnect {
                code: 5,
                reason: "Incorrect secret".into(),
            },
        ];
        for m in msgs {
            let b = m.encode();
            let back = Msg::parse(&b).unwrap();
            match (&m, &back) {
                // Names longer than the field are cut (31 bytes and a NUL).
                (Msg::Connected { .. }, Msg::Connected { if_name }) => {
                    assert_eq!(if_name.len(), NAME_SIZE - 1)
                }
                _ => assert_eq!(back, m),
            }
        }
        // Field offsets DPDK's packed structs give: INIT id at 4, mode at 8, secret at 9.
        let b = Msg::Init {
            version: VERSION,
            id: 0x01020304,
            mode: 0,
            secret: secret_bytes("ab"),
            name: "n".into(),
        }
        .encode();
        assert_eq!(&b[..12], &[3, 0, 0, 2, 4, 3, 2, 1, 0, b'a', b'b', 0]);
        assert_eq!(b[33], b'n');
        // ADD_RING: offset at 8, log2 at 12, private_hdr_size at 13.
        let b = Msg::AddRing {
            flags: 1,
            index: 2,
            region: 3,
            offset: 0x11223344,
            log2_ring_size: 10,
            private_hdr_size: 0x0506,
        }
        .encode();
        assert_eq!(
            &b[..15],
            &[5, 0, 1, 0, 2, 0, 3, 0, 0x44, 0x33, 0x22, 0x11, 10, 6, 5]
        );
    }

    #[test]
    fn malformed_messages_are_named() {
        for n in [0, 1, 2, 64, 127, 129, 256] {
            assert_eq!(Msg::parse(&vec![1u8; n]), Err(ParseError::Size(n)));
        }
        let mut b = [0u8; MSG_SIZE];
        assert_eq!(Msg::parse(&b), Err(ParseError::Type(0)));
        b[0] = 9;
        assert_eq!(Msg::parse(&b), Err(ParseError::Type(9)));
        b[0] = 0xff;
        b[1] = 0xff;
        assert!(Msg::parse(&b).unwrap_err().to_string().contains("65535"));
        // Names without a NUL and with bytes that are not UTF-8 read without panicking.
        let mut b = [0xffu8; MSG_SIZE];
        b[0] = 6;
        b[1] = 0;
        assert!(matches!(Msg::parse(&b), Ok(Msg::Connect { .. })));
    }
}
