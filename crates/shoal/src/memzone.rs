//! Memzones: named, aligned allocations of shared memory, visible to every process of a group
//! (DPDK's `rte_memzone_*`). Rings and mempools are memzones too (`RG_<name>`, `MP_<name>`).
#![allow(unsafe_code)] // hands the creator of a reserved zone its Fresh (exclusive) region
//!
//! The registry is a fixed table in the segment header guarded by the metadata lock. Space is
//! found first-fit in the gaps between the live memzones, so freeing needs no separate free list.
//!
//! **Publication.** An entry is *reserved* while its creator fills the zone (a ring or mempool
//! header, captured packets) through a [`Fresh`] region that only it holds, and *published*
//! once the contents are complete. Lookups see published entries only: a zone being built is
//! "not found", so no process ever reads a half-written header. A plain [`Memzone::reserve`]
//! is zeroed and published at once.
//!
//! **Attachments.** Every region handed out by a reservation or a lookup carries an attachment,
//! counted in the entry and released when the last clone of that region (a [`Memzone`], a
//! a ring handle, a pool's view) is dropped. [`Memzone::free`] refuses a zone that is
//! attached anywhere, in this process or another, so its bytes are never handed to a new zone
//! while an old view can still touch them. A process that dies keeps its attachments: such a
//! zone is not freed again (the memory stays reserved, which is safe).
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | R-pub / A-pub | metadata lock released after `used = PUBLISHED` (`Reservation::publish`) | metadata lock taken by [`Memzone::lookup`] | everything the creator wrote into the zone before publishing |

use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::Arc;

use crate::group::Group;
use crate::memory::header::{MemzoneEntry, MemzoneTable, SegmentHeader, MAX_MEMZONES};
use crate::memory::{Fresh, MemzoneKind, Region, MEMZONE_NAMESIZE};
use crate::sync::Shared;
use crate::sync::{Liveness, MemberId, Members};
use crate::sys;

/// Values of an entry's `used` word.
pub(crate) mod state {
    /// No zone.
    pub const FREE: u32 = 0;
    /// Visible to lookups: the zone's contents are complete.
    pub const PUBLISHED: u32 = 1;
    /// Being built by its creator; lookups do not see it, its name and space are taken.
    pub const RESERVED: u32 = 2;
    /// Its creator gave up before publishing; freed when its last attachment goes.
    pub const CANCELLED: u32 = 3;
}

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
    /// A zone that belongs to a layer (a ring, a pool, a table) was asked for a typed view.
    #[error("memzone {0:?} holds a ring, a pool or a table: use that object's handle")]
    NotPlain(String),
    /// The zone is bound to another type than the one asked for.
    #[error("memzone {name:?} was first viewed as another type than {ty}; a zone holds one type")]
    OtherType {
        /// The zone.
        name: String,
        /// The type asked for.
        ty: &'static str,
    },
    /// The zone's start is not aligned for the type asked for.
    #[error("memzone {0:?} is not aligned for that type (reserve it with that alignment)")]
    Misaligned(String),
    /// Views of the zone are still alive (in this process or others).
    #[error("memzone {name:?} is still attached {attached} times (drop the handles on it first)")]
    InUse {
        /// The zone.
        name: String,
        /// Live attachments.
        attached: u32,
    },
}

/// A plain memzone bound to one type `T` ([`Memzone::typed`]): derefs to its values.
pub struct TypedZone<T> {
    zone: Memzone,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for TypedZone<T> {
    fn clone(&self) -> Self {
        TypedZone {
            zone: self.zone.clone(),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for TypedZone<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedZone")
            .field("zone", &self.zone)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Shared> TypedZone<T> {
    /// The memzone.
    pub fn zone(&self) -> &Memzone {
        &self.zone
    }
}

impl<T: Shared> std::ops::Deref for TypedZone<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the zone was bound to `T` when this handle was made.
        unsafe { slice_of(&self.zone.region) }
    }
}

/// The bytes of `region` as `len / size_of::<T>()` values of `T`.
///
/// # Safety
/// `region` is a plain zone bound to `T` (its type word, under the metadata lock), and its
/// start is aligned for `T`.
unsafe fn slice_of<T: Shared>(region: &Region) -> &[T] {
    let n = region.len() / std::mem::size_of::<T>();
    // SAFETY: the region is in bounds of a mapping it keeps alive (and its attachment keeps
    // the zone from being freed) for as long as it is borrowed; aligned (the caller's
    // contract, checked by `bind`); `T: Shared` makes every bit pattern valid and allows only
    // interior, synchronised mutation, so shared references are sound while other processes
    // write; and the zone's bytes are bound to `T` alone in every process, so no other type
    // overlays them.
    unsafe { std::slice::from_raw_parts(region.as_ptr().cast::<T>(), n) }
}

/// The word a plain zone's type is recorded as: a hash of `T`'s name, size and alignment.
fn type_word<T>() -> u64 {
    let name = std::any::type_name::<T>();
    let mut facts: Vec<u64> = name.bytes().map(u64::from).collect();
    facts.push(std::mem::size_of::<T>() as u64);
    facts.push(std::mem::align_of::<T>() as u64);
    crate::memory::layout_hash(&facts) | 1
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

/// The entry named `name` in any state but free.
fn find<'t>(table: &'t MemzoneTable, name: &str) -> Option<(usize, &'t MemzoneEntry)> {
    table
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.used != state::FREE && e.name_str() == name)
}

/// The published entry named `name`.
fn find_published<'t>(table: &'t MemzoneTable, name: &str) -> Option<(usize, &'t MemzoneEntry)> {
    find(table, name).filter(|(_, e)| e.used == state::PUBLISHED)
}

/// One counted view of a memzone: made with the region a reservation or lookup hands out,
/// shared by every clone of it, and released when the last one drops.
pub(crate) struct Attachment {
    /// The whole segment (offset 0 = the segment header).
    whole: Region,
    idx: usize,
    offset: u64,
    /// False once the count was given up otherwise (see [`Attachment::disarm`]).
    armed: AtomicBool,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("idx", &self.idx)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Attachment {
    /// Counts a new attachment of entry `idx`, which the caller holds the table lock on.
    fn new(whole: &Region, table: &mut MemzoneTable, idx: usize) -> Arc<Attachment> {
        let e = &mut table.entries[idx];
        e.attached = e.attached.saturating_add(1);
        Arc::new(Attachment {
            whole: whole.clone(),
            idx,
            offset: e.offset,
            armed: AtomicBool::new(true),
        })
    }

    /// Forgets the attachment without touching the entry: for a zone that was freed while
    /// this attachment was the one allowed to remain (a pool freeing itself).
    pub(crate) fn disarm(&self) {
        // Relaxed: a process-local flag, read by this attachment's own drop, which comes after
        // every use of it (the last Arc is gone).
        self.armed.store(false, StdOrdering::Relaxed);
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if !self.armed.load(StdOrdering::Relaxed) {
            return;
        }
        let Some(hdr) = self.whole.get::<SegmentHeader>(0) else {
            return;
        };
        let mut table = hdr.memzones.lock(&**self.whole.mapping());
        let e = &mut table.entries[self.idx];
        // An entry with attachments is never freed, so it is still ours; the offset check only
        // guards against a corrupted table.
        if e.used == state::FREE || e.offset != self.offset {
            return;
        }
        e.attached = e.attached.saturating_sub(1);
        if e.attached == 0 && e.used == state::CANCELLED {
            e.used = state::FREE;
        }
    }
}

/// A memzone entry reserved and not yet published: the creator fills the zone through the
/// [`Fresh`] region that came with it, then publishes. Dropped unpublished, it gives the
/// zone back (once the last region made from it is gone).
#[derive(Debug)]
pub(crate) struct Reservation {
    whole: Region,
    idx: usize,
    offset: u64,
    name: String,
    kind: MemzoneKind,
    published: bool,
}

impl Reservation {
    /// The entry's index (a mempool's id).
    pub(crate) fn index(&self) -> usize {
        self.idx
    }

    /// Makes the zone visible to lookups. Everything written into it before is visible to
    /// whoever finds it (R-pub: the metadata lock is released after the store).
    pub(crate) fn publish(mut self) {
        self.set(state::PUBLISHED);
        self.published = true;
        tracing::debug!(target: "shoal::memzone", "published {:?}", self.name);
    }

    fn set(&self, to: u32) {
        let Some(hdr) = self.whole.get::<SegmentHeader>(0) else {
            return;
        };
        let mut table = hdr.memzones.lock(&**self.whole.mapping());
        let e = &mut table.entries[self.idx];
        if e.used != state::RESERVED || e.offset != self.offset {
            return;
        }
        e.used = if to == state::CANCELLED && e.attached == 0 {
            state::FREE
        } else {
            to
        };
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.published {
            self.set(state::CANCELLED);
            tracing::debug!(target: "shoal::memzone", "gave up {:?} ({:?}) unpublished", self.name, self.kind);
        }
    }
}

/// First fit between live memzones, sorted by offset.
fn place(table: &MemzoneTable, heap: (u64, u64), len: u64, align: u64) -> Result<u64, Error> {
    let mut used: Vec<(u64, u64)> = table
        .entries
        .iter()
        .filter(|e| e.used != state::FREE)
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
    pub fn reserve(group: &impl AsRef<Group>, name: &str, len: usize) -> Result<Memzone, Error> {
        let group = group.as_ref();
        Self::reserve_aligned(group, name, len, DEFAULT_ALIGN)
    }

    /// Reserves `len` bytes aligned to `align` (a power of two), zeroed.
    pub fn reserve_aligned(
        group: &impl AsRef<Group>,
        name: &str,
        len: usize,
        align: usize,
    ) -> Result<Memzone, Error> {
        let group = group.as_ref();
        Self::reserve_kind(group, name, len, align, MemzoneKind::Plain)
    }

    /// Reserves a zeroed zone that is published at once (its contents, all zero, are valid
    /// for the `Shared` types that will be read from it).
    pub(crate) fn reserve_kind(
        group: &Group,
        name: &str,
        len: usize,
        align: usize,
        kind: MemzoneKind,
    ) -> Result<Memzone, Error> {
        let (res, fresh) = Self::reserve_fresh(group, name, len, align, kind)?;
        res.publish();
        Ok(Memzone {
            name: name.to_owned(),
            kind,
            region: fresh.publish(),
        })
    }

    /// Reserves a zeroed zone that lookups do not see until the returned [`Reservation`] is
    /// published; the creator fills it through the [`Fresh`] region meanwhile.
    pub(crate) fn reserve_fresh(
        group: &Group,
        name: &str,
        len: usize,
        align: usize,
        kind: MemzoneKind,
    ) -> Result<(Reservation, Fresh), Error> {
        Self::reserve_fresh_in(group.whole(), name, len, align, kind)
    }

    /// [`Memzone::reserve_fresh`] in the segment `whole` (offset 0 = its header).
    pub(crate) fn reserve_fresh_in(
        whole: &Region,
        name: &str,
        len: usize,
        align: usize,
        kind: MemzoneKind,
    ) -> Result<(Reservation, Fresh), Error> {
        check_name(name)?;
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if !align.is_power_of_two() {
            return Err(Error::BadAlign(align));
        }
        let align = align.max(DEFAULT_ALIGN);
        let hdr: &SegmentHeader = whole.get(0).ok_or(Error::NoSpace { len, free: 0 })?;
        let (idx, offset, attachment) = {
            let members: &dyn Members = &**whole.mapping();
            let mut table = hdr.memzones.lock(members);
            crate::fault::point("memzone.locked");
            if let Some((i, e)) = find(&table, name) {
                // A creator that died before publishing leaves its reservation: take it back.
                let abandoned = e.used != state::PUBLISHED
                    && members.liveness(MemberId::from_raw(e.creator)) == Liveness::Dead;
                if !abandoned {
                    tracing::debug!(target: "shoal::memzone", "reserve {name:?}: exists");
                    return Err(Error::Exists(name.to_owned()));
                }
                tracing::warn!(target: "shoal::memzone", "memzone {name:?}: taking back the unpublished reservation of dead process {}", e.creator_pid);
                table.entries[i].used = state::FREE;
            }
            let idx = table
                .entries
                .iter()
                .position(|e| e.used == state::FREE)
                .ok_or(Error::TableFull)?;
            let heap = (
                crate::memory::header::heap_start() as u64,
                whole.len() as u64,
            );
            let offset = place(&table, heap, len as u64, align as u64)?;
            if whole.sub(offset as usize, len).is_none() {
                return Err(Error::NoSpace { len, free: 0 });
            }
            let mut n = [0u8; MEMZONE_NAMESIZE];
            n[..name.len()].copy_from_slice(name.as_bytes());
            table.entries[idx] = MemzoneEntry {
                used: state::RESERVED,
                kind: kind as u32,
                name: n,
                offset,
                len: len as u64,
                align: align as u64,
                creator_pid: sys::getpid(),
                attached: 0,
                creator: members.me().raw(),
                elt_type: 0,
            };
            let attachment = Attachment::new(whole, &mut table, idx);
            (idx, offset, attachment)
        };
        let res = Reservation {
            whole: whole.clone(),
            idx,
            offset,
            name: name.to_owned(),
            kind,
            published: false,
        };
        let region = whole
            .sub(offset as usize, len)
            .ok_or(Error::NoSpace { len, free: 0 })?
            .with_attachment(attachment);
        // SAFETY: the entry is RESERVED: lookups do not return it, `place` keeps other zones
        // out of its bytes, and it cannot be freed (free finds published entries only); this
        // region is the only one made over them until the reservation is published.
        let mut fresh = unsafe { Fresh::new_unchecked(region) };
        // Zeroed before anyone can see it, so every process sees a clean zone.
        fresh.fill_zero();
        tracing::debug!(target: "shoal::memzone", "reserved {name:?}: {len} bytes at offset {offset:#x}");
        Ok((res, fresh))
    }

    /// Finds a published memzone by name. A zone still being built by its creator is not
    /// found.
    pub fn lookup(group: &impl AsRef<Group>, name: &str) -> Result<Memzone, Error> {
        let group = group.as_ref();
        check_name(name)?;
        let whole = group.whole();
        let (region, kind) = {
            // A-pub: taking the lock pairs with the creator's release after publishing.
            let mut table = group.header().memzones.lock(&**whole.mapping());
            let (idx, e) =
                find_published(&table, name).ok_or_else(|| Error::NotFound(name.to_owned()))?;
            let (offset, len, kind) = (e.offset as usize, e.len as usize, e.kind);
            let Some(region) = whole.sub(offset, len) else {
                return Err(Error::NotFound(name.to_owned()));
            };
            let attachment = Attachment::new(whole, &mut table, idx);
            (region.with_attachment(attachment), kind)
        };
        Ok(Memzone {
            name: name.to_owned(),
            kind: MemzoneKind::from_u32(kind),
            region,
        })
    }

    /// Frees a memzone by name, unless it is attached: any [`Memzone`], ring or other handle
    /// made from it, in any process, must be dropped first.
    ///
    /// # Errors
    /// [`Error::NotFound`], or [`Error::InUse`] while the zone is attached.
    pub fn free(group: &impl AsRef<Group>, name: &str) -> Result<(), Error> {
        let group = group.as_ref();
        check_name(name)?;
        free_where(group.whole(), name, 0, || ())
    }

    /// Every memzone of the group, by offset.
    pub fn list(group: &impl AsRef<Group>) -> Vec<MemzoneInfo> {
        let group = group.as_ref();
        let table = group.header().memzones.lock(&**group.whole().mapping());
        let mut v: Vec<MemzoneInfo> = table
            .entries
            .iter()
            .filter(|e| e.used != state::FREE)
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

    /// Its bytes. Reading them as values goes through [`Memzone::as_slice`], which binds the
    /// zone to one type.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The zone's bytes as `len / size_of::<T>()` values of `T` (shared memory: interior
    /// mutability only, so `&[T]` is what every process gets). A plain zone is bound to the
    /// first type it is viewed as, in any process of the group, for as long as it lives: a
    /// view of another type is refused, since two types over the same bytes (a `u64` counter
    /// read as two `u32`s, a lock word read as data) would be undefined behaviour. Zones that
    /// hold rings, pools or internal tables belong to their layers and cannot be viewed.
    ///
    /// # Errors
    /// [`Error::NotPlain`], [`Error::OtherType`], [`Error::Misaligned`], or
    /// [`Error::NotFound`] when the zone was freed meanwhile.
    pub fn as_slice<T: Shared>(&self) -> Result<&[T], Error> {
        self.bind::<T>()?;
        // SAFETY: bound to `T` just above (see `TypedZone::deref`).
        Ok(unsafe { slice_of(&self.region) })
    }

    /// As [`Memzone::as_slice`], keeping the binding in a handle that derefs to `[T]` without
    /// asking the table again.
    ///
    /// # Errors
    /// As [`Memzone::as_slice`].
    pub fn typed<T: Shared>(self) -> Result<TypedZone<T>, Error> {
        self.bind::<T>()?;
        Ok(TypedZone {
            zone: self,
            _t: std::marker::PhantomData,
        })
    }

    /// Binds the zone to `T` (or checks that it is bound to `T`).
    fn bind<T: Shared>(&self) -> Result<(), Error> {
        let size = std::mem::size_of::<T>();
        if self.kind != MemzoneKind::Plain {
            return Err(Error::NotPlain(self.name.clone()));
        }
        if size == 0 || !(self.region.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(Error::Misaligned(self.name.clone()));
        }
        let want = type_word::<T>();
        let map = self.region.mapping().clone();
        let whole =
            Region::new(map.clone(), 0, map.len()).ok_or(Error::NotFound(self.name.clone()))?;
        let hdr: &SegmentHeader = whole.get(0).ok_or(Error::NotFound(self.name.clone()))?;
        {
            let mut table = hdr.memzones.lock(&*map);
            let e = table
                .entries
                .iter_mut()
                .find(|e| {
                    e.used == state::PUBLISHED
                        && e.offset == self.region.offset() as u64
                        && e.name_str() == self.name
                })
                .ok_or(Error::NotFound(self.name.clone()))?;
            match e.elt_type {
                0 => e.elt_type = want,
                t if t == want => {}
                _ => {
                    return Err(Error::OtherType {
                        name: self.name.clone(),
                        ty: std::any::type_name::<T>(),
                    })
                }
            }
        }
        Ok(())
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
pub fn usage(group: &impl AsRef<Group>) -> (usize, usize) {
    let group = group.as_ref();
    let used: u64 = Memzone::list(group).iter().map(|m| m.len).sum();
    let heap = group.memory_len() - crate::memory::header::heap_start();
    (used as usize, heap)
}

/// Frees the published zone `name` of the segment `whole` when at most `allowed` attachments
/// remain, running `before` under the metadata lock first (while the zone is still intact).
pub(crate) fn free_where(
    whole: &Region,
    name: &str,
    allowed: u32,
    before: impl FnOnce(),
) -> Result<(), Error> {
    let hdr: &SegmentHeader = whole
        .get(0)
        .ok_or_else(|| Error::NotFound(name.to_owned()))?;
    let mut table = hdr.memzones.lock(&**whole.mapping());
    let (idx, e) = find_published(&table, name).ok_or_else(|| Error::NotFound(name.to_owned()))?;
    if e.attached > allowed {
        let attached = e.attached - allowed;
        drop(table);
        tracing::debug!(target: "shoal::memzone", "free {name:?}: attached {attached} times");
        return Err(Error::InUse {
            name: name.to_owned(),
            attached,
        });
    }
    before();
    let e = &mut table.entries[idx];
    e.used = state::FREE;
    e.attached = 0;
    tracing::debug!(target: "shoal::memzone", "freed {name:?}");
    Ok(())
}

/// The memzone attachment `region` was made with, if any.
pub(crate) fn attachment_of(region: &Region) -> Option<Arc<Attachment>> {
    region.attachment()?.clone().downcast::<Attachment>().ok()
}

/// A new attachment of the published entry `idx` of kind `kind`: its region, counted.
pub(crate) fn attach_index(whole: &Region, idx: usize, kind: MemzoneKind) -> Option<Region> {
    let hdr: &SegmentHeader = whole.get(0)?;
    let mut table = hdr.memzones.lock(&**whole.mapping());
    let e = table.entries.get(idx)?;
    if e.used != state::PUBLISHED || e.kind != kind as u32 {
        return None;
    }
    let region = whole.sub(e.offset as usize, e.len as usize)?;
    let attachment = Attachment::new(whole, &mut table, idx);
    Some(region.with_attachment(attachment))
}
