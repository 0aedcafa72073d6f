//! The datagram format: a fixed 24-byte header, then the name, then the parameter bytes.
//!
//! ```text
//!  0..4   magic "SHmp"
//!  4      version (1)
//!  5      kind: 0 MSG, 1 REQ, 2 REP, 3 IGN, 4 NO_HANDLER
//!  6      name length, 1..=63
//!  7      flags, 0 (reserved)
//!  8..10  number of descriptors carried with SCM_RIGHTS, u16 LE, <= 253
//! 10..12  parameter length, u16 LE, <= MAX_PARAM_LEN
//! 12..16  reserved, 0
//! 16..24  request id, u64 LE: 0 for MSG, the request's id for REQ and its answers
//! 24..    name (UTF-8, no NUL), then the parameter
//! ```
//!
//! [`parse`] takes untrusted bytes and checks every field; the datagram's length must be exactly
//! header + name + parameter. Once it returns `Ok`, nothing read from it can panic.

use super::{MAX_FDS, MAX_NAME_LEN, MAX_PARAM_LEN};

/// First bytes of every datagram.
pub(crate) const MAGIC: [u8; 4] = *b"SHmp";
/// The format version this build speaks.
pub(crate) const VERSION: u8 = 1;
/// Bytes before the name.
pub(crate) const HEADER_LEN: usize = 24;
/// The longest valid datagram.
pub(crate) const MAX_DATAGRAM: usize = HEADER_LEN + MAX_NAME_LEN - 1 + MAX_PARAM_LEN;

mod field {
    use std::ops::Range;
    pub(super) const MAGIC: Range<usize> = 0..4;
    pub(super) const VERSION: usize = 4;
    pub(super) const KIND: usize = 5;
    pub(super) const NAME_LEN: usize = 6;
    pub(super) const FLAGS: usize = 7;
    pub(super) const NB_FDS: Range<usize> = 8..10;
    pub(super) const PARAM_LEN: Range<usize> = 10..12;
    pub(super) const RESERVED: Range<usize> = 12..16;
    pub(super) const ID: Range<usize> = 16..24;
}

/// What a datagram is (DPDK's `enum mp_type`, plus `NoHandler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One-way message (`MP_MSG`).
    Msg = 0,
    /// Request that wants an answer (`MP_REQ`).
    Req = 1,
    /// Answer to a request (`MP_REP`).
    Rep = 2,
    /// "Do not count me": the peer is not ready for this request (`MP_IGN`).
    Ign = 3,
    /// The peer has no action registered for the request's name (not in DPDK, where the
    /// requester waits for its timeout instead).
    NoHandler = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0 => Kind::Msg,
            1 => Kind::Req,
            2 => Kind::Rep,
            3 => Kind::Ign,
            4 => Kind::NoHandler,
            _ => return None,
        })
    }

    /// True for the three kinds that answer a request.
    pub(crate) fn is_answer(self) -> bool {
        matches!(self, Kind::Rep | Kind::Ign | Kind::NoHandler)
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireError {
    /// Shorter than the header.
    Short(usize),
    /// Not our magic: not a shoal datagram at all.
    Magic,
    /// A format version this build does not speak.
    Version(u8),
    /// Unknown kind byte.
    Kind(u8),
    /// Reserved bits or bytes are not zero.
    Reserved,
    /// Name empty, too long, not UTF-8 or containing NUL.
    Name,
    /// Parameter longer than `MAX_PARAM_LEN`.
    ParamLen(usize),
    /// More descriptors announced than a message may carry.
    FdCount(usize),
    /// The datagram's length differs from what the header announces.
    Length { announced: usize, actual: usize },
    /// A request or answer with id 0, or a one-way message with an id.
    Id,
}

/// A parsed datagram, borrowing the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) nb_fds: usize,
    pub(crate) name: &'a str,
    pub(crate) param: &'a [u8],
}

fn u16_at(b: &[u8], r: std::ops::Range<usize>) -> usize {
    usize::from(u16::from_le_bytes([b[r.start], b[r.start + 1]]))
}

/// Checks an action name: 1 to `MAX_NAME_LEN - 1` bytes (DPDK keeps room for the NUL), no NUL.
pub(crate) fn name_is_valid(name: &str) -> bool {
    !name.is_empty() && name.len() < MAX_NAME_LEN && !name.as_bytes().contains(&0)
}

/// Parses untrusted bytes. See the module doc for the checks.
pub(crate) fn parse(b: &[u8]) -> Result<Parsed<'_>, WireError> {
    if b.len() < HEADER_LEN {
        return Err(WireError::Short(b.len()));
    }
    if b[field::MAGIC] != MAGIC {
        return Err(WireError::Magic);
    }
    if b[field::VERSION] != VERSION {
        return Err(WireError::Version(b[field::VERSION]));
    }
    let kind = Kind::from_u8(b[field::KIND]).ok_or(WireError::Kind(b[field::KIND]))?;
    if b[field::FLAGS] != 0 || b[field::RESERVED].iter().any(|x| *x != 0) {
        return Err(WireError::Reserved);
    }
    let name_len = usize::from(b[field::NAME_LEN]);
    let nb_fds = u16_at(b, field::NB_FDS);
    let param_len = u16_at(b, field::PARAM_LEN);
    if name_len == 0 || name_len >= MAX_NAME_LEN {
        return Err(WireError::Name);
    }
    if param_len > MAX_PARAM_LEN {
        return Err(WireError::ParamLen(param_len));
    }
    if nb_fds > MAX_FDS {
        return Err(WireError::FdCount(nb_fds));
    }
    let announced = HEADER_LEN + name_len + param_len;
    if b.len() != announced {
        return Err(WireError::Length {
            announced,
            actual: b.len(),
        });
    }
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(&b[field::ID]);
    let id = u64::from_le_bytes(id_bytes);
    if (kind == Kind::Msg) != (id == 0) {
        return Err(WireError::Id);
    }
    let name =
        std::str::from_utf8(&b[HEADER_LEN..HEADER_LEN + name_len]).map_err(|_| WireError::Name)?;
    if !name_is_valid(name) {
        return Err(WireError::Name);
    }
    Ok(Parsed {
        kind,
        id,
        nb_fds,
        name,
        param: &b[HEADER_LEN + name_len..],
    })
}

/// Writes a datagram into `out` (cleared first). The caller has validated the name, the
/// parameter length and the descriptor count.
pub(crate) fn emit(
    kind: Kind,
    id: u64,
    name: &str,
    param: &[u8],
    nb_fds: usize,
    out: &mut Vec<u8>,
) {
    debug_assert!(name_is_valid(name) && param.len() <= MAX_PARAM_LEN && nb_fds <= MAX_FDS);
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.push(name.len() as u8);
    out.push(0);
    out.extend_from_slice(&(nb_fds as u16).to_le_bytes());
    out.extend_from_slice(&(param.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(param);
}

#[cfg(test)]
mod tests {
    use super::*;

    static REQ_BYTES: [u8; 30] = [
        b'S', b'H', b'm', b'p', 1, 1, 4, 0, // magic, version, REQ, name len 4, flags
        2, 0, 2, 0, 0, 0, 0, 0, // 2 fds, 2 param bytes, reserved
        7, 0, 0, 0, 0, 0, 0, 0, // id 7
        b'p', b'i', b'n', b'g', 0xab, 0xcd,
    ];

    #[test]
    fn deconstruct() {
        let p = parse(&REQ_BYTES).unwrap();
        assert_eq!(
            p,
            Parsed {
                kind: Kind::Req,
                id: 7,
                nb_fds: 2,
                name: "ping",
                param: &[0xab, 0xcd]
            }
        );
    }

    #[test]
    fn construct() {
        let mut out = Vec::new();
        emit(Kind::Req, 7, "ping", &[0xab, 0xcd], 2, &mut out);
        assert_eq!(out, REQ_BYTES);
    }

    #[test]
    fn every_truncation_is_refused() {
        for n in 0..REQ_BYTES.len() {
            assert!(
                parse(&REQ_BYTES[..n]).is_err(),
                "accepted a datagram cut at {n}"
            );
        }
        let mut long = REQ_BYTES.to_vec();
        long.push(0);
        assert!(matches!(parse(&long), Err(WireError::Length { .. })));
    }

    #[test]
    fn any_bytes_parse_without_panic() {
        proptest::proptest!(|(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400))| {
            let _ = parse(&bytes);
        });
        // With a valid header in front, the rest of the checks run too.
        proptest::proptest!(|(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), kind in 0u8..6)| {
            let mut b = REQ_BYTES[..8].to_vec();
            b[5] = kind;
            b.extend_from_slice(&tail);
            let _ = parse(&b);
        });
    }

    #[test]
    fn every_field_is_checked() {
        let bad = |i: usize, v: u8| {
            let mut b = REQ_BYTES;
            b[i] = v;
            parse(&b).map(|_| ())
        };
        assert_eq!(bad(0, b'X'), Err(WireError::Magic));
        assert_eq!(bad(4, 2), Err(WireError::Version(2)));
        assert_eq!(bad(5, 9), Err(WireError::Kind(9)));
        assert_eq!(bad(5, 0), Err(WireError::Id)); // a MSG with an id
        assert_eq!(bad(7, 1), Err(WireError::Reserved));
        assert_eq!(bad(13, 1), Err(WireError::Reserved));
        assert_eq!(bad(6, 0), Err(WireError::Name));
        assert_eq!(bad(6, 64), Err(WireError::Name));
        assert_eq!(bad(24, 0), Err(WireError::Name)); // NUL inside the name
        assert_eq!(bad(24, 0xff), Err(WireError::Name)); // not UTF-8
        assert_eq!(bad(9, 1), Err(WireError::FdCount(258)));
        assert_eq!(bad(11, 0xff), Err(WireError::ParamLen(0xff02)));
        assert_eq!(bad(16, 0), Err(WireError::Id)); // a REQ without an id
    }

    #[test]
    fn longest_message_round_trips() {
        let name = "n".repeat(MAX_NAME_LEN - 1);
        let param = vec![0x5a; MAX_PARAM_LEN];
        let mut out = Vec::new();
        emit(Kind::Rep, u64::MAX, &name, &param, MAX_FDS, &mut out);
        assert_eq!(out.len(), MAX_DATAGRAM);
        let p = parse(&out).unwrap();
        assert_eq!(
            (p.kind, p.id, p.nb_fds, p.name, p.param),
            (Kind::Rep, u64::MAX, MAX_FDS, name.as_str(), &param[..])
        );
    }

    #[test]
    fn names_follow_dpdk_limits() {
        assert!(!name_is_valid(""));
        assert!(name_is_valid(&"a".repeat(MAX_NAME_LEN - 1)));
        assert!(!name_is_valid(&"a".repeat(MAX_NAME_LEN)));
        assert!(!name_is_valid("a\0b"));
    }
}
