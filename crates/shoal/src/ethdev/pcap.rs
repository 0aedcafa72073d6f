//! The classic libpcap capture format (what `tcpdump -w` writes and `tshark -r` reads).
//!
//! A file is a 24-byte global header followed by records, each a 16-byte header and the
//! captured bytes:
//!
//! | offset | global header   | record header         |
//! |--------|-----------------|-----------------------|
//! | 0      | magic           | seconds               |
//! | 4      | version 2.4     | micro- or nanoseconds |
//! | 8      | thiszone (0)    | captured length       |
//! | 12     | sigfigs (0)     | original length       |
//! | 16     | snaplen         |                       |
//! | 20     | link type (1)   |                       |
//!
//! The magic tells byte order and timestamp resolution: `a1b2c3d4` (microseconds) or
//! `a1b23c4d` (nanoseconds), read in either byte order. The reader treats the file as untrusted:
//! every length is checked against the snap length and [`MAX_RECORD`] before it is used.

use std::io::{self, Read, Write};

/// Microsecond-resolution magic.
pub const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Nanosecond-resolution magic.
pub const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
/// Ethernet link type (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest captured length the reader accepts (libpcap's MAXIMUM_SNAPLEN).
pub const MAX_RECORD: u32 = 262_144;
/// Size of the global header.
pub const FILE_HEADER_LEN: usize = 24;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// Errors of reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file does not start with a pcap magic number.
    #[error("not a classic pcap file (magic {0:#010x}; pcapng is not supported)")]
    BadMagic(u32),
    /// The link type is not Ethernet.
    #[error("link type {0} is not Ethernet (1)")]
    LinkType(u32),
    /// The file ends inside a header or record.
    #[error("truncated {what} at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// File offset of the record or header.
        offset: u64,
    },
    /// A record claims more bytes than allowed.
    #[error(
        "record at byte {offset} has captured length {len} (snaplen {snaplen}, limit {MAX_RECORD})"
    )]
    BadLength {
        /// File offset of the record.
        offset: u64,
        /// Its captured length.
        len: u32,
        /// The file's snap length.
        snaplen: u32,
    },
    /// An I/O error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` when the capture was cut).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Reads records from a classic pcap stream.
#[derive(Debug)]
pub struct PcapReader<R> {
    inner: R,
    swapped: bool,
    nanos: bool,
    snaplen: u32,
    offset: u64,
}

impl<R: Read> PcapReader<R> {
    /// Reads and checks the global header.
    ///
    /// # Errors
    /// [`Error::BadMagic`], [`Error::LinkType`], [`Error::Truncated`] or I/O errors.
    pub fn new(mut inner: R) -> Result<Self, Error> {
        let mut h = [0u8; FILE_HEADER_LEN];
        read_full(&mut inner, &mut h, "file header", 0)?;
        let magic_le = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        let (swapped, nanos) = match magic_le {
            MAGIC_USEC => (false, false),
            MAGIC_NSEC => (false, true),
            m if m.swap_bytes() == MAGIC_USEC => (true, false),
            m if m.swap_bytes() == MAGIC_NSEC => (true, true),
            m => return Err(Error::BadMagic(m)),
        };
        let word = |i: usize| {
            let v = u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let snaplen = word(16);
        // Some writers put 0 or absurd values in snaplen; clamp to the reader's limit.
        let snaplen = if snaplen == 0 || snaplen > MAX_RECORD {
            MAX_RECORD
        } else {
            snaplen
        };
        let link = word(20) & 0x0fff_ffff; // the top bits carry FCS information
        if link != LINKTYPE_ETHERNET {
            return Err(Error::LinkType(link));
        }
        Ok(Self {
            inner,
            swapped,
            nanos,
            snaplen,
            offset: FILE_HEADER_LEN as u64,
        })
    }

    /// The file's snap length (clamped to [`MAX_RECORD`]).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// True when timestamps are in nanoseconds.
    pub fn is_nanosecond(&self) -> bool {
        self.nanos
    }

    /// Reads the next record into `data` (cleared first) and returns (timestamp ns, original
    /// length); `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the file ends inside a record, [`Error::BadLength`] for a
    /// record longer than the snap length allows, or I/O errors.
    pub fn next_into(&mut self, data: &mut Vec<u8>) -> Result<Option<(u64, u32)>, Error> {
        let mut h = [0u8; RECORD_HEADER_LEN];
        let at = self.offset;
        let n = read_some(&mut self.inner, &mut h)?;
        if n == 0 {
            return Ok(None);
        }
        if n < h.len() {
            return Err(Error::Truncated {
                what: "record header",
                offset: at,
            });
        }
        let word = |i: usize| {
            let v = u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
            if self.swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let (sec, frac, incl, orig) = (word(0), word(4), word(8), word(12));
        if incl > self.snaplen.max(orig.min(MAX_RECORD)) || incl > MAX_RECORD {
            return Err(Error::BadLength {
                offset: at,
                len: incl,
                snaplen: self.snaplen,
            });
        }
        data.clear();
        data.resize(incl as usize, 0);
        read_full(&mut self.inner, data, "record", at)?;
        self.offset = at + (RECORD_HEADER_LEN as u64) + incl as u64;
        let frac_ns = if self.nanos {
            frac as u64
        } else {
            frac as u64 * 1000
        };
        Ok(Some((sec as u64 * 1_000_000_000 + frac_ns, orig)))
    }

    /// Reads the next record; `Ok(None)` at a clean end of file.
    ///
    /// # Errors
    /// As [`PcapReader::next_into`].
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        let mut data = Vec::new();
        Ok(self.next_into(&mut data)?.map(|(ts_ns, orig_len)| Record {
            ts_ns,
            orig_len,
            data,
        }))
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_full<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
    offset: u64,
) -> Result<(), Error> {
    if read_some(r, buf)? < buf.len() {
        return Err(Error::Truncated { what, offset });
    }
    Ok(())
}

/// The global header of a capture we write: microsecond timestamps, native byte order
/// (little endian here), Ethernet, snap length 65535.
pub fn file_header(snaplen: u32) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC_USEC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Appends one record (header and bytes, cut to `snaplen`) to `out`.
pub fn push_record(out: &mut Vec<u8>, ts_ns: u64, data: &[u8], snaplen: u32) {
    let incl = data.len().min(snaplen as usize);
    let sec = (ts_ns / 1_000_000_000) as u32;
    let usec = ((ts_ns % 1_000_000_000) / 1000) as u32;
    out.extend_from_slice(&sec.to_le_bytes());
    out.extend_from_slice(&usec.to_le_bytes());
    out.extend_from_slice(&(incl as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data[..incl]);
}

/// Default snap length of the captures we write.
pub const DEFAULT_SNAPLEN: u32 = 65_535;

/// Writes a classic pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    inner: W,
    snaplen: u32,
    buf: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    ///
    /// # Errors
    /// I/O errors of the write.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&file_header(DEFAULT_SNAPLEN))?;
        Ok(Self {
            inner,
            snaplen: DEFAULT_SNAPLEN,
            buf: Vec::new(),
        })
    }

    /// Writes one record.
    ///
    /// # Errors
    /// I/O errors of the write.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        self.buf.clear();
        push_record(&mut self.buf, ts_ns, data, self.snaplen);
        self.inner.write_all(&self.buf)
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors of the flush.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

/// Wall-clock time in nanoseconds since the epoch, for record timestamps.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_000_123_456_000, &[0xaa; 60]).unwrap();
        w.write(1_700_000_001_000_001_000, &[0x55; 1514]).unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn written_records_read_back() {
        let bytes = sample();
        assert_eq!(bytes.len(), 24 + 16 + 60 + 16 + 1514);
        let recs: Vec<Record> = PcapReader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].ts_ns, 1_700_000_000_123_456_000);
        assert_eq!(recs[0].data, vec![0xaa; 60]);
        assert_eq!(recs[1].orig_len, 1514);
    }

    #[test]
    fn big_endian_and_nanosecond_files_are_read() {
        let mut be = vec![];
        be.extend_from_slice(&MAGIC_NSEC.to_be_bytes());
        be.extend_from_slice(&2u16.to_be_bytes());
        be.extend_from_slice(&4u16.to_be_bytes());
        be.extend_from_slice(&[0; 8]);
        be.extend_from_slice(&96u32.to_be_bytes());
        be.extend_from_slice(&1u32.to_be_bytes());
        be.extend_from_slice(&5u32.to_be_bytes());
        be.extend_from_slice(&7u32.to_be_bytes());
        be.extend_from_slice(&4u32.to_be_bytes());
        be.extend_from_slice(&100u32.to_be_bytes());
        be.extend_from_slice(&[1, 2, 3, 4]);
        let mut r = PcapReader::new(&be[..]).unwrap();
        assert!(r.is_nanosecond());
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(rec.ts_ns, 5_000_000_007);
        assert_eq!(rec.orig_len, 100);
        assert_eq!(rec.data, vec![1, 2, 3, 4]);
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn truncated_files_fail_at_every_length() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            let res: Result<Vec<Record>, Error> =
                PcapReader::new(&bytes[..cut]).and_then(|r| r.collect::<Result<Vec<_>, _>>());
            // A cut exactly between records is a clean, shorter file.
            let clean = cut == 24 + 16 + 60;
            match res {
                Ok(v) => assert!(
                    clean && v.len() == 1 || cut == 24 && v.is_empty(),
                    "cut {cut}"
                ),
                Err(Error::Truncated { .. }) => {}
                Err(e) => panic!("cut {cut}: {e}"),
            }
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut bytes = sample();
        bytes[0] = 0;
        assert!(matches!(
            PcapReader::new(&bytes[..]),
            Err(Error::BadMagic(_))
        ));
        let mut bytes = sample();
        bytes[20] = 105; // 802.11
        assert!(matches!(
            PcapReader::new(&bytes[..]),
            Err(Error::LinkType(105))
        ));
        // A record that claims a huge length.
        let mut bytes = sample();
        bytes[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next_record(), Err(Error::BadLength { .. })));
    }
}
