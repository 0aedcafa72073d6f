//! The marker for types that live in memory shared between processes, with its derived
//! bit-validity check.
#![allow(unsafe_code)] // implements the unsafe marker trait for atomics, arrays and padding

/// Types that may live in memory shared between processes.
///
/// Every bit pattern must be a valid value: a peer that died mid-write, or one that scribbles,
/// must not make a read undefined behaviour. That part is checked by the compiler rather than
/// promised: `Shared` requires [`AnyBits`], which is zerocopy's `FromBytes`, and that can only
/// be derived (`#[derive(zerocopy::FromBytes)]`), which fails for a `bool`, an enum, a
/// reference or a pointer anywhere inside the type.
///
/// ```
/// use shoal::sync::Shared;
/// use shoal::sync::atomic::AtomicU64;
///
/// #[derive(shoal::sync::zerocopy::FromBytes)]
/// #[zerocopy(crate = "shoal::sync::zerocopy")]
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
/// #[derive(shoal::sync::zerocopy::FromBytes)]
/// #[zerocopy(crate = "shoal::sync::zerocopy")]
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
/// unsafe impl shoal::sync::Shared for Slot {}
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
unsafe impl<T: Shared> Shared for super::CachePadded<T> {}
