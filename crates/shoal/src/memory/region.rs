//! Regions: ranges of bytes inside a mapping that stays alive as long as any handle uses it.
#![allow(unsafe_code)] // owns raw mappings (mmap or heap) and hands out pointers into them

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

use super::header::SegmentHeader;
use super::members::Membership;
use crate::sync::{Liveness, Local, MemberId, Members};
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

    /// True for a zero-length mapping (never made in practice).
    pub fn is_empty(&self) -> bool {
        self.len == 0
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

/// A range of bytes inside a [`Mapping`] (a memzone's bytes, typically). Cloning is cheap and
/// keeps the mapping alive.
#[derive(Clone, Debug)]
pub struct Region {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl Region {
    /// The range `offset .. offset + len` of `map`, or `None` when it does not fit.
    pub fn new(map: Arc<Mapping>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        (end <= map.len()).then_some(Self { map, offset, len })
    }

    /// A zeroed process-local region of `len` bytes (page aligned), for tests.
    pub fn heap(len: usize) -> Self {
        let map = Mapping::heap(len);
        Self {
            map,
            offset: 0,
            len,
        }
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
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// A shared reference to a `T` at `offset` inside the region, checked for bounds and
    /// alignment.
    pub fn get<T: Shared>(&self, offset: usize) -> Option<&T> {
        let end = offset.checked_add(std::mem::size_of::<T>())?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds (checked above) of a live mapping kept alive by `self.map`.
        let ptr = unsafe { self.as_ptr().add(offset) };
        if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        // SAFETY: in bounds, aligned, and `T: Shared` promises every bit pattern is a valid T
        // and that all mutation goes through interior mutability (atomics/UnsafeCell), so a
        // shared reference is sound even while other processes write.
        Some(unsafe { &*(ptr as *const T) })
    }
}

/// Types that may live in memory shared between processes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain no pointers, references, file descriptors or
/// other process-local values, accept every bit pattern as a valid value (a peer that died
/// mid-write must not make a read undefined behaviour), and mutate only through atomics or
/// `UnsafeCell` with documented synchronisation.
pub unsafe trait Shared: Sync {}

impl Region {
    /// Sets every byte of the region to zero. Callers make sure no other process uses the
    /// region yet (it is being handed out).
    pub(crate) fn fill_zero(&self) {
        // SAFETY: the range is inside the live mapping (checked at construction); the region is
        // not yet published to any other user, so there is no concurrent access.
        unsafe { std::ptr::write_bytes(self.as_ptr(), 0, self.len) };
    }
}

impl Region {
    /// Copies `src` into the region at `offset`. Returns false (and copies nothing) when it does
    /// not fit. Concurrent writers of the same bytes in other processes must be coordinated by
    /// the caller (through a ring, an atomic flag or IPC), as with any shared memory.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        if offset
            .checked_add(src.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the destination range is inside the live mapping (checked above) and cannot
        // overlap `src`, which is process-local memory of the caller.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.as_ptr().add(offset), src.len())
        };
        true
    }

    /// Copies bytes at `offset` into `dst`. Returns false (and copies nothing) when the range
    /// does not fit.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        if offset
            .checked_add(dst.len())
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the source range is inside the live mapping (checked above); `dst` is the
        // caller's own memory and cannot overlap the mapping range it borrowed from.
        unsafe {
            std::ptr::copy_nonoverlapping(self.as_ptr().add(offset), dst.as_mut_ptr(), dst.len())
        };
        true
    }
}

#[cfg(not(loom))]
mod shared_atomics {
    use super::Shared;
    use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};
    // SAFETY: atomics of plain integers: no pointers, every bit pattern valid, interior
    // mutability only through atomic operations.
    unsafe impl Shared for AtomicU8 {}
    // SAFETY: as above.
    unsafe impl Shared for AtomicU16 {}
    // SAFETY: as above.
    unsafe impl Shared for AtomicU32 {}
    // SAFETY: as above.
    unsafe impl Shared for AtomicU64 {}
    // SAFETY: as above.
    unsafe impl Shared for AtomicUsize {}
}

// SAFETY: an array of Shared values is repr(C)-compatible, pointer-free and valid for every bit
// pattern when its elements are.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}
// SAFETY: CachePadded is repr(C, align(128)) around a Shared value; padding bytes are never read.
unsafe impl<T: Shared> Shared for crate::sync::CachePadded<T> {}
