//! Regions: ranges of bytes inside a mapping that stays alive as long as any handle uses it.
#![allow(unsafe_code)] // owns raw mappings (mmap or heap) and hands out pointers into them

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Arc;

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
        }
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
/// Every bit pattern must be a valid value: a peer that died mid-write, or one that scribbles,
/// must not make a read undefined behaviour. That part is checked by the compiler rather than
/// promised: `Shared` requires [`AnyBits`], which is zerocopy's `FromBytes`, and that can only
/// be derived (`#[derive(zerocopy::FromBytes)]`), which fails for a `bool`, an enum, a
/// reference or a pointer anywhere inside the type.
///
/// ```
/// use shoal::memory::Shared;
/// use shoal::sync::atomic::AtomicU64;
///
/// #[derive(shoal::memory::zerocopy::FromBytes)]
/// #[zerocopy(crate = "shoal::memory::zerocopy")]
/// #[repr(C)]
/// struct Counters {
///     hits: AtomicU64,
///     misses: AtomicU64,
/// }
/// // SAFETY: repr(C), atomics only, no process-local values.
/// unsafe impl Shared for Counters {}
/// ```
///
/// A field whose type has invalid bit patterns does not compile, whether the check is derived
/// or skipped:
///
/// ```compile_fail
/// use shoal::sync::atomic::AtomicU64;
///
/// #[derive(shoal::memory::zerocopy::FromBytes)]
/// #[zerocopy(crate = "shoal::memory::zerocopy")]
/// #[repr(C)]
/// struct Port {
///     up: bool, // 2..=255 are not bools
///     packets: AtomicU64,
/// }
/// ```
/// ```compile_fail
/// use shoal::sync::atomic::AtomicU32;
///
/// #[repr(u32)]
/// enum State { Free = 0, Live = 1 }
/// #[repr(C)]
/// struct Slot {
///     state: State, // a peer can write 7 here
///     pid: AtomicU32,
/// }
/// // SAFETY: claimed, but Slot is not FromBytes, so this impl is refused.
/// unsafe impl shoal::memory::Shared for Slot {}
/// ```
///
/// # Safety
/// Beyond the checked bit validity: implementors must be `#[repr(C)]`, contain no file
/// descriptors, offsets into this process's memory or other process-local values, and mutate
/// only through atomics or `UnsafeCell` with documented synchronisation (plain fields are
/// written before the object is published and never after).
pub unsafe trait Shared: Sync + AnyBits {}

/// "Every bit pattern is a valid value": zerocopy's `FromBytes`, which only its derive can
/// implement. (Under `cfg(loom)`, whose atomics are not `FromBytes` and never sit in real shared
/// memory, every type qualifies.)
#[cfg(not(loom))]
pub trait AnyBits: zerocopy::FromBytes {}
#[cfg(not(loom))]
impl<T: zerocopy::FromBytes + ?Sized> AnyBits for T {}

/// "Every bit pattern is a valid value" (no check under `cfg(loom)`, where nothing is mapped).
#[cfg(loom)]
pub trait AnyBits {}
#[cfg(loom)]
impl<T: ?Sized> AnyBits for T {}

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
