//! Regions: ranges of bytes inside a mapping that stays alive as long as any handle uses it.
#![allow(unsafe_code)] // owns raw mappings (mmap or heap) and hands out pointers into them

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use super::header::SegmentHeader;
use super::members::Membership;
use crate::sync::{Liveness, Local, MemberId, Members, Shared};
use crate::sys;

enum Backing {
    /// A shared mapping made with `mmap`; unmapped on drop.
    Mmap,
    /// A process-local heap allocation (tests, Miri, loom-free unit tests).
    Heap(Layout),
}

/// A whole mapping: a group's segment, or a heap block standing in for one.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
    backing: Backing,
    /// Liveness locks, for a group's segment (None for heap blocks).
    membership: Option<Membership>,
}

// SAFETY: a Mapping is a plain address range; all access to its bytes goes through types that
// synchronise themselves (atomics) or through raw pointers whose users document their own
// synchronisation. Sharing the range between threads is what it is for.
unsafe impl Send for Mapping {}
// SAFETY: as above; &Mapping only exposes the base address and length.
unsafe impl Sync for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl Mapping {
    /// Wraps a shared mapping returned by `mmap`.
    ///
    /// # Safety
    /// `base` must be the start of a live mapping of `len` bytes made by `mmap`, owned by
    /// nothing else: it is unmapped when the last handle drops.
    pub(crate) unsafe fn from_mmap(base: NonNull<u8>, len: usize) -> Self {
        Self {
            base,
            len,
            backing: Backing::Mmap,
            membership: None,
        }
    }

    /// Attaches the liveness locks of the segment this mapping was made from.
    pub(crate) fn with_membership(mut self, m: Membership) -> Self {
        self.membership = Some(m);
        self
    }

    /// The liveness locks, for a group's segment.
    pub(crate) fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// A zeroed, process-local block of `len` bytes aligned to 4096, for tests and for
    /// objects that never leave the process.
    pub fn heap(len: usize) -> Arc<Self> {
        let layout = Layout::from_size_align(len.max(1), 4096).expect("heap mapping layout");
        // SAFETY: layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Arc::new(Self {
            base,
            len,
            backing: Backing::Heap(layout),
            membership: None,
        })
    }

    /// The address this process sees the mapping at. Other processes see it elsewhere.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// A group's mapping answers liveness questions about the group's members (see
/// `memory::members`); a heap block is process-local, so every holder is alive ([`Local`]).
impl Members for Mapping {
    fn me(&self) -> MemberId {
        match &self.membership {
            Some(m) => m.me(),
            None => Local.me(),
        }
    }

    fn liveness(&self, id: MemberId) -> Liveness {
        match &self.membership {
            Some(m) if self.len >= std::mem::size_of::<SegmentHeader>() => {
                // SAFETY: the mapping holds a segment header at offset 0 (it is at least that
                // long, and page aligned); SegmentHeader is Shared (atomics only).
                let hdr = unsafe { &*(self.base.as_ptr() as *const SegmentHeader) };
                m.liveness(hdr, id)
            }
            Some(_) => Liveness::Unknown,
            None => Local.liveness(id),
        }
    }

    fn reaped(&self, id: MemberId) -> bool {
        match &self.membership {
            Some(_) if self.len >= std::mem::size_of::<SegmentHeader>() => {
                // SAFETY: as in `liveness`.
                let hdr = unsafe { &*(self.base.as_ptr() as *const SegmentHeader) };
                super::members::reaped(hdr, id)
            }
            Some(_) => false,
            None => Local.reaped(id),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.backing {
            Backing::Mmap => sys::munmap(self.base, self.len),
            // SAFETY: allocated in `heap` with this very layout.
            Backing::Heap(layout) => unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) },
        }
    }
}

/// A range of bytes inside a mapping of the group's memory or of the heap (a memzone's bytes,
/// typically). Cloning is cheap and keeps the mapping alive, and whatever token the region was
/// made with (a memzone's attachment, which keeps the zone from being freed while any clone of
/// one of its regions lives). The token is opaque here: the layer that made it gives it its
/// meaning.
#[derive(Clone)]
pub struct Region {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
    attachment: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("map", &self.map)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl Region {
    /// The range `offset .. offset + len` of `map`, or `None` when it does not fit. Crate-only:
    /// a region that overlaps bytes some other handle owns (a zone being built, a published
    /// ring's header) must not be made by safe code.
    pub(crate) fn new(map: Arc<Mapping>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= map.len()).then_some(Self {
            map,
            offset,
            len,
            attachment: None,
        })
    }

    /// A zeroed process-local region of `len` bytes (page aligned), for tests.
    pub fn heap(len: usize) -> Self {
        Fresh::heap(len).publish()
    }

    /// The same region, keeping `attachment` alive as long as any clone of it.
    pub(crate) fn with_attachment(
        mut self,
        attachment: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        self.attachment = Some(attachment);
        self
    }

    /// The token the region was made with, if it has one.
    pub(crate) fn attachment(&self) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.attachment.as_ref()
    }

    /// The part `offset .. offset + len` of this region, with the same attachment.
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Option<Region> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| Region {
            map: self.map.clone(),
            offset: self.offset + offset,
            len,
            attachment: self.attachment.clone(),
        })
    }

    /// Start of the region in this process.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: offset + len <= map.len() was checked at construction, so the result stays
        // inside the mapping.
        unsafe { self.map.base().add(self.offset) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the region from the start of its mapping (the same in every process).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The mapping the region lives in.
    pub(crate) fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// A shared reference to a `T` at `offset` inside the region, checked for bounds and
    /// alignment.
    ///
    /// Crate-private: bounds, alignment and bit validity are checked, but nothing here stops
    /// two types from being laid over the same bytes (mixed-size atomics, or a lock-guarded
    /// plain value over words others access atomically), which would be undefined behaviour.
    /// Inside the crate each layer views only the zones it made, as the type it made them
    /// with; applications go through `Memzone::as_slice` (in the memzone layer), which binds a zone
    /// to one type.
    pub(crate) fn get<T: Shared>(&self, offset: usize) -> Option<&T> {
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above) of a live mapping kept alive by `self.map`.
        let ptr = unsafe { self.as_ptr().add(offset) };
        if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: in bounds, aligned, and `T: Shared` guarantees every bit pattern is a valid T
        // (derived, see `AnyBits`) and that all mutation goes through interior mutability
        // (atomics/UnsafeCell), so a shared reference is sound even while other processes write.
        Some(unsafe { &*(ptr as *const T) })
    }

    /// Copies `src` into the region at `offset`. Returns false (and copies nothing) when it does
    /// not fit. A plain (non-atomic) write into memory that other handles and processes map:
    /// to write a region nobody else can see yet, use [`Fresh::write`], which is safe.
    ///
    /// # Safety
    /// For the duration of the call, no other thread or process reads or writes the bytes
    /// `offset .. offset + src.len()` (coordinated by the caller through a ring, an atomic flag
    /// with release/acquire, a lock or IPC), and no reference into them is live.
    pub(crate) unsafe fn write(&self, offset: usize, src: &[u8]) -> bool {
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the destination range is inside the live mapping (checked above) and cannot
        // overlap `src`, which is process-local memory of the caller; nobody else accesses it
        // meanwhile (the function's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len())
        };
        true
    }

    /// Copies bytes at `offset` into `dst`. Returns false (and copies nothing) when the range
    /// does not fit. A plain (non-atomic) read of memory that other handles and processes map.
    ///
    /// # Safety
    /// For the duration of the call, no other thread or process writes the bytes
    /// `offset .. offset + dst.len()`: they were written before they were published to this
    /// process (with release/acquire ordering) and are not written again while it reads, or
    /// the caller coordinates the writers otherwise.
    pub(crate) unsafe fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        if offset
            .checked_add(dst.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the source range is inside the live mapping (checked above); `dst` is the
        // caller's own memory and cannot overlap the mapping range it borrowed from; nobody
        // writes the source meanwhile (the function's contract).
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        };
        true
    }
}

/// A region that no other handle, thread or process can see yet: a new heap block, or a
/// memzone reserved and not yet published. It is not `Clone`, so holding it (or `&mut` to it)
/// proves exclusive access, and plain writes through it are safe. [`Fresh::publish`] turns it
/// into an ordinary [`Region`] once its contents are complete.
#[derive(Debug)]
pub struct Fresh {
    region: Region,
}

impl Fresh {
    /// A zeroed process-local region of `len` bytes, page aligned.
    pub fn heap(len: usize) -> Fresh {
        let map = Mapping::heap(len);
        Fresh {
            region: Region {
                map,
                offset: 0,
                len,
                attachment: None,
            },
        }
    }

    /// Wraps a region that nothing else accesses yet.
    ///
    /// # Safety
    /// Until the returned value is published or dropped, no other thread or process reads or
    /// writes the bytes of `region`, and no other [`Region`] over them is handed to safe code
    /// that could (the memzone is reserved and not yet published, say).
    pub(crate) unsafe fn new_unchecked(region: Region) -> Fresh {
        Fresh { region }
    }

    /// Start of the region in this process.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// True when the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Offset of the region from the start of its mapping.
    pub fn offset(&self) -> usize {
        self.region.offset()
    }

    /// A shared reference to a `T` at `offset` (see `Region::get`, crate-private for the
    /// same reason).
    pub(crate) fn get<T: Shared>(&self, offset: usize) -> Option<&T> {
        self.region.get(offset)
    }

    /// Sets every byte to zero.
    pub fn fill_zero(&mut self) {
        // SAFETY: the range is inside the live mapping (checked at construction) and `self`
        // is the only access to it (`Fresh` is exclusive; `&mut self` excludes our own
        // shared references).
        unsafe { std::ptr::write_bytes(self.as_ptr(), 0, self.len()) };
    }

    /// Copies `src` in at `offset`; false (and nothing copied) when it does not fit.
    pub fn write(&mut self, offset: usize, src: &[u8]) -> bool {
        // SAFETY: nobody else accesses the bytes of a Fresh region, and `&mut self` excludes
        // references of our own into them.
        unsafe { self.region.write(offset, src) }
    }

    /// Copies bytes at `offset` into `dst`; false when the range does not fit.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        // SAFETY: nobody else writes the bytes of a Fresh region, and writes of our own need
        // `&mut self`.
        unsafe { self.region.read(offset, dst) }
    }

    /// `len` bytes at `offset`, writable; `None` when out of range.
    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        // SAFETY: in bounds (checked above); exclusive as in `write`, and the slice borrows
        // `self` mutably, so no other access through this value overlaps it.
        Some(unsafe { std::slice::from_raw_parts_mut(self.as_ptr().add(offset), len) })
    }

    /// Splits off `offset .. offset + len` as a fresh region of its own.
    ///
    /// # Safety
    /// `self` is not used to access those bytes again (they belong to the returned value).
    pub(crate) unsafe fn carve(&self, offset: usize, len: usize) -> Option<Fresh> {
        Some(Fresh {
            region: self.region.sub(offset, len)?,
        })
    }

    /// The finished region, from now on visible to whoever it is handed to. Whatever was
    /// written before is visible to a thread that gets the region (or a clone) through a
    /// synchronising channel (a spawn, a lock, a release store that it acquires).
    pub fn publish(self) -> Region {
        self.region
    }
}
