//! The only place that talks to libc directly.
#![allow(unsafe_code)] // FFI to libc

use std::ptr::NonNull;

/// Unmaps a range mapped with `mmap`.
pub(crate) fn munmap(base: NonNull<u8>, len: usize) {
    // SAFETY: callers pass a range they mapped and no longer use.
    unsafe {
        libc::munmap(base.as_ptr().cast(), len);
    }
}
