//! What the memif driver needs from the kernel: the control channel (`AF_UNIX`
//! `SOCK_SEQPACKET`, on a path or in the abstract namespace, one file descriptor passed with
//! a message), shared-memory regions (`memfd_create` with a shrink seal, mapped shared), and
//! the interrupt eventfds the protocol exchanges.
//!
//! A [`ShmRegion`] is a mapping that a peer process writes while we read it. Every access goes
//! through a bounds-checked method, so that offsets and lengths that come from the peer can
//! never reach outside the mapping; the bytes themselves are copied with raw-pointer copies
//! (never through references), since the peer may change them at any moment.
#![allow(unsafe_code)] // FFI to libc: socket, bind, connect, sendmsg, memfd_create, eventfd, mmap

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::unix_dgram::{self, sockaddr, Addr};
use super::{cvt, seqpacket};
// Atomics shared with a process outside the group (a peer that may not be shoal at all): the
// real ones, also under loom, which cannot model another program.
use std::sync::atomic::{AtomicU16, AtomicU32};

/// A socket address: a path, or (`abstract_ns`) a name in the abstract namespace whose
/// length is exactly the name's (as DPDK's `socket-abstract=yes` and libmemif's `@name`).
pub(crate) fn sock_addr(name: &str, abstract_ns: bool) -> Addr {
    if abstract_ns {
        Addr::Abstract(name.as_bytes().to_vec())
    } else {
        Addr::Path(name.into())
    }
}

/// A non-blocking listening seqpacket socket bound to `addr`.
pub(crate) fn listen(addr: &Addr) -> io::Result<OwnedFd> {
    let fd = seqpacket::socket(libc::SOCK_NONBLOCK)?;
    let (sa, len) = sockaddr(addr)?;
    // SAFETY: sa is a valid sockaddr_un of at least len bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: plain syscall on a socket we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 4) })?;
    Ok(fd)
}

/// Accepts a pending connection (`Ok(None)` when none waits); the connection does not block.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        // SAFETY: null address pointers are allowed (the peer's address is not wanted).
        let ret = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        match cvt(ret) {
            // SAFETY: accept4 returned a new descriptor that nobody else owns.
            Ok(fd) => return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Connects to the listener at `addr`; the connection does not block.
pub(crate) fn connect(addr: &Addr) -> io::Result<OwnedFd> {
    let fd = seqpacket::socket(0)?;
    let (sa, len) = sockaddr(addr)?;
    loop {
        // SAFETY: sa is a valid sockaddr_un of at least len bytes.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        match cvt(ret) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // SAFETY: plain fcntl on a descriptor we own.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(fd)
}

/// Sends one message on a connected socket, with `fd` attached (`SCM_RIGHTS`) when given.
pub(crate) fn send_msg(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(f) = fd {
        // SAFETY: arithmetic only.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
        debug_assert!(space <= std::mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes we own, aligned for cmsghdr; the header
        // and one int fit (CMSG_SPACE computed for them).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            libc::CMSG_DATA(cmsg)
                .cast::<libc::c_int>()
                .write_unaligned(f.as_raw_fd());
        }
    }
    loop {
        // SAFETY: msg and what it points to (iovec, data, control) are live for the call.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if ret >= 0 {
            return if ret as usize == data.len() {
                Ok(())
            } else {
                Err(io::Error::from(io::ErrorKind::WriteZero))
            };
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One received control message.
pub(crate) struct Received {
    /// Bytes of the message (0: the peer closed the connection).
    pub len: usize,
    /// The message was longer than the buffer.
    pub truncated: bool,
    /// Descriptors that came with it.
    pub fds: Vec<OwnedFd>,
}

/// Receives one message without waiting (`WouldBlock` when none is queued).
pub(crate) fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let d = unix_dgram::recv(sock, buf, false)?;
    Ok(Received {
        len: d.len,
        truncated: d.truncated,
        fds: d.fds,
    })
}

/// Waits up to `timeout_ms` until one of `fds` is readable or hung up; returns, per fd, true
/// when it is.
pub(crate) fn poll_in(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p holds p.len() valid pollfd structs for the call.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    p.iter().map(|x| n > 0 && x.revents != 0).collect()
}

/// A new anonymous shared-memory file of `len` bytes that cannot shrink (a peer that maps it
/// can rely on its size): `memfd_create` with sealing allowed, `F_SEAL_SHRINK`, `ftruncate`.
pub(crate) fn memfd(name: &str, len: u64) -> io::Result<File> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: cname is a valid NUL-terminated string for the call.
    let fd = cvt(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC)
    })?;
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len)?;
    // SAFETY: plain fcntl on a descriptor we own.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) })?;
    Ok(file)
}

/// A new non-blocking eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
    // SAFETY: fd was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (a memif interrupt); a full counter or any error is ignored.
pub(crate) fn kick(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// A shared mapping of a memif region, written by the peer too. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct ShmRegion {
    base: NonNull<u8>,
    len: usize,
    file: File,
}

// SAFETY: the mapping is plain shared memory; every access copies through raw pointers or
// goes through atomics, so it may be used from any thread.
unsafe impl Send for ShmRegion {}
// SAFETY: as above: no method hands out a reference to bytes another thread could write,
// except atomics.
unsafe impl Sync for ShmRegion {}

impl ShmRegion {
    /// Maps `len` bytes of `file`. Refuses (`EINVAL`) a file shorter than `len`, which would
    /// make an access past its end fault, or an empty one.
    pub(crate) fn map(file: File, len: u64) -> io::Result<ShmRegion> {
        let size = file.metadata()?.len();
        if len == 0 || size < len || len > isize::MAX as u64 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let base = super::mmap_shared(&file, len as usize, false)?;
        Ok(ShmRegion {
            base,
            len: len as usize,
            file,
        })
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The file behind the mapping (to pass it on).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn span(&self, off: usize, n: usize, align: usize) -> Option<*mut u8> {
        let end = off.checked_add(n)?;
        if end > self.len || !off.is_multiple_of(align) {
            return None;
        }
        // SAFETY: off + n <= len: the pointer stays inside the mapping.
        Some(unsafe { self.base.as_ptr().add(off) })
    }

    /// The 16-bit atomic at `off` (2-byte aligned, inside the mapping).
    pub(crate) fn atomic_u16(&self, off: usize) -> Option<&AtomicU16> {
        let p = self.span(off, 2, 2)?;
        // SAFETY: in bounds and aligned (mmap returns page-aligned memory); the mapping lives
        // as long as &self; AtomicU16 has the layout of u16 and any bit pattern is valid.
        Some(unsafe { &*(p as *const AtomicU16) })
    }

    /// The 32-bit atomic at `off` (4-byte aligned, inside the mapping).
    pub(crate) fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.span(off, 4, 4)?;
        // SAFETY: as for atomic_u16.
        Some(unsafe { &*(p as *const AtomicU32) })
    }

    /// Copies `dst.len()` bytes from `off`; false (nothing copied) when out of bounds.
    pub(crate) fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        let Some(p) = self.span(off, dst.len(), 1) else {
            return false;
        };
        // SAFETY: the source range is inside the mapping; dst is our own buffer, which cannot
        // overlap a shared mapping we never hand out references into.
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies `src` to `off`; false (nothing copied) when out of bounds.
    pub(crate) fn write(&self, off: usize, src: &[u8]) -> bool {
        let Some(p) = self.span(off, src.len(), 1) else {
            return false;
        };
        // SAFETY: the destination range is inside the mapping; src is our own memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        true
    }
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        super::munmap(self.base, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_bounds_checked_and_shared_between_mappings() {
        let f = memfd("t", 8192).unwrap();
        let f2 = f.try_clone().unwrap();
        let a = ShmRegion::map(f, 8192).unwrap();
        let b = ShmRegion::map(f2, 4096).unwrap();
        assert!(a.write(100, b"hello"));
        let mut got = [0u8; 5];
        assert!(b.read(100, &mut got));
        assert_eq!(&got, b"hello");
        assert!(!b.read(4094, &mut got), "past the end");
        assert!(!a.write(usize::MAX - 1, b"xx"), "overflowing offset");
        assert!(a.atomic_u16(3).is_none(), "misaligned");
        assert!(a.atomic_u16(8190).is_some());
        assert!(a.atomic_u32(8190).is_none());
        // A file shorter than the length asked for is refused (no SIGBUS later).
        let short = memfd("s", 100).unwrap();
        assert!(ShmRegion::map(short, 4096).is_err());
    }

    #[test]
    fn messages_carry_one_fd_over_an_abstract_socket() {
        let name = format!("shoal-test-memif-{}", std::process::id());
        let addr = sock_addr(&name, true);
        let l = listen(&addr).unwrap();
        assert!(accept(l.as_fd()).unwrap().is_none());
        let c = connect(&addr).unwrap();
        let s = loop {
            if let Some(s) = accept(l.as_fd()).unwrap() {
                break s;
            }
        };
        let e = eventfd().unwrap();
        send_msg(c.as_fd(), &[7u8; 128], Some(e.as_fd())).unwrap();
        poll_in(&[s.as_fd()], 1000);
        let mut buf = [0u8; 129];
        let r = recv_msg(s.as_fd(), &mut buf).unwrap();
        assert_eq!((r.len, r.truncated, r.fds.len()), (128, false, 1));
        drop(c);
        poll_in(&[s.as_fd()], 1000);
        assert_eq!(recv_msg(s.as_fd(), &mut buf).unwrap().len, 0, "closed");
    }
}
