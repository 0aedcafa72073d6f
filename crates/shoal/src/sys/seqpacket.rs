//! Unix `SOCK_SEQPACKET` sockets (connection-oriented, message boundaries kept): a listener
//! bound to a path and its connections. std has no seqpacket socket; DPDK's telemetry v2
//! protocol uses one.
#![allow(unsafe_code)] // FFI to libc: socket, bind, listen, accept4, connect, send, recvmsg

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use super::cvt;
use super::unix_dgram::{sockaddr, Addr};

/// A new `AF_UNIX` `SOCK_SEQPACKET` socket, close-on-exec, with extra `flags`.
pub(super) fn socket(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | flags,
            0,
        )
    })?;
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening seqpacket socket bound to a path. Dropping it closes it; the socket file stays
/// (the owner removes it).
#[derive(Debug)]
pub(crate) struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Creates the socket file at `path` (which must not exist) and listens on it. The
    /// listener does not block: [`Listener::accept`] returns `WouldBlock` when nobody waits.
    pub(crate) fn bind(path: &Path, backlog: i32) -> io::Result<Listener> {
        let fd = socket(libc::SOCK_NONBLOCK)?;
        let (sa, len) = sockaddr(&Addr::Path(path.to_path_buf()))?;
        // SAFETY: sa is a valid sockaddr_un of at least len bytes.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len,
            )
        })?;
        // SAFETY: plain syscall on a socket we own.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
        Ok(Listener { fd })
    }

    /// Accepts one pending connection without waiting for one (`WouldBlock` when none is
    /// pending: poll the listener first). The connection itself blocks.
    pub(crate) fn accept(&self) -> io::Result<Conn> {
        loop {
            // SAFETY: null address and length pointers are allowed (the peer's address is
            // not wanted).
            let ret = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            match cvt(ret) {
                Ok(fd) => {
                    // SAFETY: accept4 returned a new descriptor that nobody else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    return Ok(Conn { fd });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One end of a seqpacket connection: each `send` is one message, each `recv` reads one.
#[derive(Debug)]
pub(crate) struct Conn {
    fd: OwnedFd,
}

/// What [`Conn::recv`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    /// A message of this many bytes, whole in the buffer.
    Message(usize),
    /// A message longer than the buffer: its first `buf.len()` bytes are in the buffer and
    /// the rest is gone.
    Truncated,
    /// The peer closed the connection (or sent an empty message, which reads the same).
    Closed,
}

impl Conn {
    /// Connects to the listener at `path` (a symbolic link to the socket file works too).
    pub(crate) fn connect(path: &Path) -> io::Result<Conn> {
        let fd = socket(0)?;
        let (sa, len) = sockaddr(&Addr::Path(path.to_path_buf()))?;
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
                Ok(_) => return Ok(Conn { fd }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes [`Conn::send`] give up with `WouldBlock` once it has waited `t` for room in the
    /// peer's queue (a peer that stops reading cannot hold the sender forever).
    pub(crate) fn set_write_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: optval points at a live timeval and optlen is its size.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// Sends `data` as one message (blocking while the peer's queue is full). A closed peer
    /// gives `BrokenPipe` (no SIGPIPE).
    pub(crate) fn send(&self, data: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: data is valid for reads of data.len() bytes for the call.
            let ret = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if ret >= 0 {
                // A seqpacket message goes whole or not at all.
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

    /// Receives one message into `buf`, waiting for it.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zeroed is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let len = loop {
            // SAFETY: msg points at one iovec describing `buf`, live and writable for the
            // call; no name or control buffer.
            let ret = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) };
            if ret >= 0 {
                break ret as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        Ok(if msg.msg_flags & libc::MSG_TRUNC != 0 {
            Recv::Truncated
        } else if len == 0 {
            Recv::Closed
        } else {
            Recv::Message(len)
        })
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_boundaries_and_long_ones_are_flagged() {
        let dir = std::env::temp_dir().join(format!("shoal-sys-seqpacket-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let l = Listener::bind(&path, 4).unwrap();
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // Through a symbolic link, as DPDK's script connects.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let c = Conn::connect(&link).unwrap();
        let s = l.accept().unwrap();
        c.send(b"one").unwrap();
        c.send(b"two!").unwrap();
        c.send(&[7u8; 100]).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.recv(&mut buf).unwrap(), Recv::Message(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(s.recv(&mut buf).unwrap(), Recv::Message(4));
        assert_eq!(s.recv(&mut buf).unwrap(), Recv::Truncated);
        s.send(b"back").unwrap();
        assert_eq!(c.recv(&mut buf).unwrap(), Recv::Message(4));
        drop(c);
        assert_eq!(s.recv(&mut buf).unwrap(), Recv::Closed);
        assert_eq!(s.send(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        // A peer that stops reading: sends time out instead of blocking for ever.
        let c2 = Conn::connect(&path).unwrap();
        let s2 = l.accept().unwrap();
        s2.set_write_timeout(Duration::from_millis(50)).unwrap();
        let big = vec![0u8; 16 * 1024];
        let err = (0..100_000)
            .find_map(|_| s2.send(&big).err())
            .expect("the peer's queue never filled");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop((c2, s2, l));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
