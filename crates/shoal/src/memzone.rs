//! Memzones: named, aligned allocations of shared memory, visible to every process of a group
//! (DPDK's `rte_memzone_*`). Rings and mempools are memzones too (`RG_<name>`, `MP_<name>`).
//!
//! The registry is a fixed table in the segment header guarded by the metadata lock. Space is
//! found first-fit in the gaps between the live memzones, so freeing needs no separate free list.

use crate::eal::Eal;
use crate::memory::header::{MemzoneEntry, MemzoneTable, SegmentHeader, MAX_MEMZONES};
use crate::memory::{MemzoneKind, Region, MEMZONE_NAMESIZE};
use crate::sys;

/// Errors of memzone operations.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The name is already used in this group.
    #[error("memzone {0:?} already exists")]
    Exists(String),
    /// No memzone has this name.
    #[error("no memzone named {0:?}")]
    NotFound(String),
    /// The name is empty or too long.
    #[error("memzone name {0:?} must be 1 to {max} bytes", max = MEMZONE_NAMESIZE - 1)]
    BadName(String),
    /// Alignment is not a power of two.
    #[error("alignment {0} is not a power of two")]
    BadAlign(usize),
    /// Not enough contiguous free space.
    #[error("no space for {len} bytes in the group's memory ({free} bytes free in all; grow it with -m)")]
    NoSpace {
        /// Bytes asked for.
        len: usize,
        /// Free bytes in total (maybe fragmented).
        free: usize,
    },
    /// The registry is full.
    #[error("the memzone table is full ({MAX_MEMZONES} entries)")]
    TableFull,
    /// A zero-length memzone was asked for.
    #[error("memzone length must be non-zero")]
    ZeroLength,
}

/// Default memzone alignment: a cache line.
pub const DEFAULT_ALIGN: usize = 64;

/// A named shared allocation, as seen from this process.
#[derive(Debug, Clone)]
pub struct Memzone {
    name: String,
    kind: MemzoneKind,
    region: Region,
}

/// A memzone as the registry lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemzoneInfo {
    /// Name.
    pub name: String,
    /// What it holds.
    pub kind: MemzoneKind,
    /// Offset from the start of the segment.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Alignment.
    pub align: u64,
    /// Process that reserved it.
    pub creator_pid: u32,
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() >= MEMZONE_NAMESIZE || name.contains('\0') {
        return Err(Error::BadName(name.to_owned()));
    }
    Ok(())
}

fn entry_info(e: &MemzoneEntry) -> MemzoneInfo {
    MemzoneInfo {
        name: e.name_str().to_owned(),
        kind: MemzoneKind::from_u32(e.kind),
        offset: e.offset,
        len: e.len,
        align: e.align,
        creator_pid: e.creator_pid,
    }
}

fn find<'t>(table: &'t MemzoneTable, name: &str) -> Option<(usize, &'t MemzoneEntry)> {
    table
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.used != 0 && e.name_str() == name)
}

/// First fit between live memzones, sorted by offset.
fn place(table: &MemzoneTable, heap: (u64, u64), len: u64, align: u64) -> Result<u64, Error> {
    let mut used: Vec<(u64, u64)> = table
        .entries
        .iter()
        .filter(|e| e.used != 0)
        .map(|e| (e.offset, e.offset + e.len))
        .collect();
    used.sort_unstable();
    let mut cursor = heap.0;
    let mut free = 0u64;
    for (start, end) in used
        .iter()
        .copied()
        .chain(std::iter::once((heap.1, heap.1)))
    {
        let at = cursor.div_ceil(align) * align;
        if at.checked_add(len).is_some_and(|e| e <= start) {
            return Ok(at);
        }
        free += start.saturating_sub(cursor);
        cursor = cursor.max(end);
    }
    Err(Error::NoSpace {
        len: len as usize,
        free: free as usize,
    })
}

impl Memzone {
    /// Reserves `len` bytes named `name`, aligned to a cache line, zeroed.
    pub fn reserve(eal: &Eal, name: &str, len: usize) -> Result<Memzone, Error> {
        Self::reserve_aligned(eal, name, len, DEFAULT_ALIGN)
    }

    /// Reserves `len` bytes aligned to `align` (a power of two), zeroed.
    pub fn reserve_aligned(
        eal: &Eal,
        name: &str,
        len: usize,
        align: usize,
    ) -> Result<Memzone, Error> {
        Self::reserve_kind(eal, name, len, align, MemzoneKind::Plain)
    }

    pub(crate) fn reserve_kind(
        eal: &Eal,
        name: &str,
        len: usize,
        align: usize,
        kind: MemzoneKind,
    ) -> Result<Memzone, Error> {
        check_name(name)?;
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if !align.is_power_of_two() {
            return Err(Error::BadAlign(align));
        }
        let align = align.max(DEFAULT_ALIGN);
        let hdr: &SegmentHeader = eal.header();
        let whole = eal.whole();
        let mut table = hdr.memzones.lock(&**whole.mapping());
        crate::fault::point("memzone.locked");
        if find(&table, name).is_some() {
            tracing::debug!(target: "shoal::memzone", "reserve {name:?}: exists");
            return Err(Error::Exists(name.to_owned()));
        }
        let idx = table
            .entries
            .iter()
            .position(|e| e.used == 0)
            .ok_or(Error::TableFull)?;
        let heap = (
            crate::memory::header::heap_start() as u64,
            whole.len() as u64,
        );
        let offset = place(&table, heap, len as u64, align as u64)?;
        let region = Region::new(whole.mapping().clone(), offset as usize, len)
            .ok_or(Error::NoSpace { len, free: 0 })?;
        // Zero before publishing, so every process sees a clean zone.
        zero(&region);
        let e = &mut table.entries[idx];
        let mut n = [0u8; MEMZONE_NAMESIZE];
        n[..name.len()].copy_from_slice(name.as_bytes());
        *e = MemzoneEntry {
            used: 0,
            kind: kind as u32,
            name: n,
            offset,
            len: len as u64,
            align: align as u64,
            creator_pid: sys::getpid(),
            _pad: 0,
        };
        // Published last: an update cut short by the death of this process leaves no entry.
        e.used = 1;
        tracing::debug!(target: "shoal::memzone", "reserved {name:?}: {len} bytes at offset {offset:#x}");
        Ok(Memzone {
            name: name.to_owned(),
            kind,
            region,
        })
    }

    /// Finds a memzone by name.
    pub fn lookup(eal: &Eal, name: &str) -> Result<Memzone, Error> {
        check_name(name)?;
        let table = eal.header().memzones.lock(&**eal.whole().mapping());
        let (_, e) = find(&table, name).ok_or_else(|| Error::NotFound(name.to_owned()))?;
        let region = Region::new(
            eal.whole().mapping().clone(),
            e.offset as usize,
            e.len as usize,
        )
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
        Ok(Memzone {
            name: name.to_owned(),
            kind: MemzoneKind::from_u32(e.kind),
            region,
        })
    }

    /// Frees a memzone by name. Processes still using it keep their mapping but must not.
    pub fn free(eal: &Eal, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let mut table = eal.header().memzones.lock(&**eal.whole().mapping());
        let (idx, _) = find(&table, name).ok_or_else(|| Error::NotFound(name.to_owned()))?;
        table.entries[idx].used = 0;
        tracing::debug!(target: "shoal::memzone", "freed {name:?}");
        Ok(())
    }

    /// Every memzone of the group, by offset.
    pub fn list(eal: &Eal) -> Vec<MemzoneInfo> {
        let table = eal.header().memzones.lock(&**eal.whole().mapping());
        let mut v: Vec<MemzoneInfo> = table
            .entries
            .iter()
            .filter(|e| e.used != 0)
            .map(entry_info)
            .collect();
        v.sort_by_key(|m| m.offset);
        v
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it holds.
    pub fn kind(&self) -> MemzoneKind {
        self.kind
    }

    /// Its bytes.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// True for a zero-length zone (never made).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Offset from the start of the segment: the same in every process.
    pub fn offset(&self) -> usize {
        self.region.offset()
    }
}

/// Bytes of the heap in use by memzones, and the heap's size.
pub fn usage(eal: &Eal) -> (usize, usize) {
    let used: u64 = Memzone::list(eal).iter().map(|m| m.len).sum();
    let heap = eal.memory_len() - crate::memory::header::heap_start();
    (used as usize, heap)
}

fn zero(region: &Region) {
    region.fill_zero();
}
