//! Unix datagram sockets with ancillary data: file descriptors (`SCM_RIGHTS`) and the sender's
//! credentials (`SCM_CREDENTIALS`), plus `ppoll` and autobind. The IPC module (`mp`) builds on it.
#![allow(unsafe_code)] // FFI to libc: sendmsg/recvmsg with control messages, setsockopt, bind, ppoll

use std::io;

use super::cvt;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most file descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// The sender's identity as the kernel reports it (`struct ucred`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Creds {
    /// Process id (of the sender's thread group), 0 if not visible from this pid namespace.
    pub(crate) pid: i32,
    /// Real user id.
    pub(crate) uid: u32,
    /// Real group id.
    pub(crate) gid: u32,
}

/// A Unix socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Addr {
    /// A socket file.
    Path(PathBuf),
    /// A name in the abstract namespace (without the leading NUL), e.g. from autobind.
    Abstract(Vec<u8>),
    /// No address (the sender never bound its socket); nothing can be sent back.
    Unnamed,
}

/// One received datagram: its length in the caller's buffer and its ancillary data.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// Bytes written to the buffer.
    pub(crate) len: usize,
    /// The datagram or its control data did not fit (`MSG_TRUNC`/`MSG_CTRUNC`).
    pub(crate) truncated: bool,
    /// Descriptors received with `SCM_RIGHTS`; they close on drop, whatever becomes of the datagram.
    pub(crate) fds: Vec<OwnedFd>,
    /// The sender's credentials, present when the socket has `SO_PASSCRED`.
    pub(crate) creds: Option<Creds>,
    /// The sender's address.
    pub(crate) from: Addr,
}

const SUN_PATH_OFFSET: usize = std::mem::offset_of!(libc::sockaddr_un, sun_path);
const SUN_PATH_LEN: usize = 108;

/// Room a control message with `len` payload bytes takes, header and padding included.
const fn cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE only does arithmetic on its argument.
    (unsafe { libc::CMSG_SPACE(len as u32) }) as usize
}

const RIGHTS_SPACE: usize = cmsg_space(MAX_FDS * size_of::<RawFd>());
const CREDS_SPACE: usize = cmsg_space(size_of::<libc::ucred>());
/// Control buffer, in u64 so that it is aligned for `cmsghdr`; room for both messages and slack.
const CONTROL_WORDS: usize = (RIGHTS_SPACE + CREDS_SPACE) / 8 + 8;

/// The longest socket path `sockaddr_un` holds (107 bytes plus the NUL).
pub(crate) const MAX_PATH_LEN: usize = SUN_PATH_LEN - 1;

pub(super) fn sockaddr(addr: &Addr) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) value.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, lead): (&[u8], usize) = match addr {
        Addr::Path(p) => (p.as_os_str().as_bytes(), 0),
        Addr::Abstract(name) => (name.as_slice(), 1),
        Addr::Unnamed => return Err(io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
    };
    if bytes.len() + lead > MAX_PATH_LEN || (lead == 0 && bytes.contains(&0)) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in sa.sun_path[lead..].iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // A path gets its NUL counted; an abstract name is exactly its bytes after the leading NUL.
    let len = SUN_PATH_OFFSET + lead + bytes.len() + (1 - lead);
    Ok((sa, len as libc::socklen_t))
}

fn addr_from(sa: &libc::sockaddr_un, len: libc::socklen_t) -> Addr {
    let len = (len as usize).min(size_of::<libc::sockaddr_un>());
    if len <= SUN_PATH_OFFSET {
        return Addr::Unnamed;
    }
    let path: Vec<u8> = sa.sun_path[..len - SUN_PATH_OFFSET]
        .iter()
        .map(|c| *c as u8)
        .collect();
    match path.split_first() {
        None => Addr::Unnamed,
        Some((0, rest)) => Addr::Abstract(rest.to_vec()),
        Some(_) => {
            let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
            Addr::Path(PathBuf::from(std::ffi::OsStr::from_bytes(&path[..end])))
        }
    }
}

/// A new `AF_UNIX`/`SOCK_DGRAM` socket, close-on-exec, with `SO_PASSCRED` set so that every
/// datagram it receives carries the sender's credentials.
pub(crate) fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: optval points at a live c_int and optlen is its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Binds `fd` to a socket file at `path`.
pub(crate) fn bind(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let (sa, len) = sockaddr(&Addr::Path(path.to_path_buf()))?;
    // SAFETY: sa is a valid sockaddr_un of at least len bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(())
}

/// Binds `fd` to a fresh, unique name in the abstract namespace chosen by the kernel
/// ("autobind"), so that peers can answer datagrams sent from it.
pub(crate) fn autobind(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: zeroed sockaddr_un is valid; only its family is read because of the length.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let len = size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: sa is valid for len bytes; a length of just the family asks for autobind.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(())
}

/// The address `fd` is bound to.
#[cfg(test)]
pub(crate) fn local_addr(fd: BorrowedFd<'_>) -> io::Result<Addr> {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa and len are valid for writes; len holds the buffer size.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_un).cast(),
            &mut len,
        )
    })?;
    Ok(addr_from(&sa, len))
}

/// Sends one datagram to `to` without blocking (`MSG_DONTWAIT`): a full receive queue at the
/// peer gives `WouldBlock`, a socket file nobody has bound gives `ECONNREFUSED`. `fds` go along
/// with `SCM_RIGHTS`; `creds`, if given, are sent explicitly with `SCM_CREDENTIALS` (the kernel
/// only accepts credentials the caller may claim).
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    to: &Addr,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    creds: Option<Creds>,
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    let (mut sa, sa_len) = sockaddr(to)?;
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sa as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = sa_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;

    let rights_len = fds.len() * size_of::<RawFd>();
    let mut control_len = if fds.is_empty() {
        0
    } else {
        cmsg_space(rights_len)
    };
    if creds.is_some() {
        control_len += CREDS_SPACE;
    }
    if control_len > 0 {
        debug_assert!(control_len <= size_of::<[u64; CONTROL_WORDS]>());
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
        // SAFETY: msg_control points at control_len bytes we own, aligned for cmsghdr.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if !fds.is_empty() {
            debug_assert!(!cmsg.is_null());
            // SAFETY: cmsg points inside `control` with room for a header and rights_len bytes
            // (control_len was computed with CMSG_SPACE for them); writes stay in bounds.
            unsafe {
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(rights_len as u32) as _;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for (i, f) in fds.iter().enumerate() {
                    data.add(i).write_unaligned(f.as_raw_fd());
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        if let Some(c) = creds {
            debug_assert!(!cmsg.is_null());
            let uc = libc::ucred {
                pid: c.pid,
                uid: c.uid,
                gid: c.gid,
            };
            // SAFETY: CREDS_SPACE bytes for this header and a ucred were reserved after the
            // rights message; cmsg points at them.
            unsafe {
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_CREDENTIALS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::ucred>() as u32) as _;
                libc::CMSG_DATA(cmsg)
                    .cast::<libc::ucred>()
                    .write_unaligned(uc);
            }
        }
    }
    loop {
        // SAFETY: msg and everything it points to (address, iovec, data, control) are live
        // for the call; the kernel only reads them.
        let ret = unsafe {
            libc::sendmsg(
                fd.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if ret >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one datagram into `buf`; with `wait == false` an empty queue gives `WouldBlock`.
/// Received descriptors are close-on-exec and owned by the returned [`Datagram`].
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], wait: bool) -> io::Result<Datagram> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut sa = MaybeUninit::<libc::sockaddr_un>::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = sa.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
    let flags = libc::MSG_CMSG_CLOEXEC | if wait { 0 } else { libc::MSG_DONTWAIT };
    let len = loop {
        // SAFETY: every buffer msg points to is live and writable for its stated length.
        let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
        if ret >= 0 {
            break ret as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    let mut creds = None;
    // SAFETY: the kernel updated msg_controllen to the bytes it wrote into `control`; the
    // CMSG_* walk stays within them.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is a header the kernel wrote inside `control`.
        let (level, kind, clen) = unsafe {
            (
                (*cmsg).cmsg_level,
                (*cmsg).cmsg_type,
                (*cmsg).cmsg_len as usize,
            )
        };
        // SAFETY: arithmetic only.
        let payload = clen.saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: the payload holds payload / 4 descriptors the kernel just installed in
            // this process; each is owned by nothing else, so OwnedFd takes it over.
            unsafe {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..payload / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
        } else if level == libc::SOL_SOCKET
            && kind == libc::SCM_CREDENTIALS
            && payload >= size_of::<libc::ucred>()
        {
            // SAFETY: the payload holds a ucred.
            let uc = unsafe { libc::CMSG_DATA(cmsg).cast::<libc::ucred>().read_unaligned() };
            creds = Some(Creds {
                pid: uc.pid,
                uid: uc.uid,
                gid: uc.gid,
            });
        }
        // SAFETY: as for CMSG_FIRSTHDR; NXTHDR returns null past the end.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let truncated = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
    // SAFETY: zero-initialised, then possibly filled by the kernel: valid either way.
    let sa = unsafe { sa.assume_init() };
    Ok(Datagram {
        len: len.min(buf.len()),
        truncated,
        fds,
        creds,
        from: addr_from(&sa, msg.msg_namelen),
    })
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no limit). Returns a bit
/// mask of the readable ones (bit i for `fds[i]`, at most 32); 0 on timeout or `EINTR`.
pub(crate) fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<u32> {
    debug_assert!(fds.len() <= 32);
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: pfds is a live array of pfds.len() entries; ts_ptr is null or points at ts.
    let ret = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(err)
        };
    }
    Ok(pfds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
        .fold(0, |m, (i, _)| m | (1 << i)))
}

/// This process's real user id (what the kernel puts in `SCM_CREDENTIALS`).
pub(crate) fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn fds_and_credentials_travel_with_a_datagram() {
        let dir = std::env::temp_dir().join(format!("shoal-sys-dgram-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rx");
        let rx = socket().unwrap();
        bind(rx.as_fd(), &path).unwrap();
        let tx = socket().unwrap();
        autobind(tx.as_fd()).unwrap();
        let Addr::Abstract(name) = local_addr(tx.as_fd()).unwrap() else {
            panic!("autobind gave no abstract name")
        };
        assert!(!name.is_empty());

        let mut pair = [0 as RawFd; 2];
        // SAFETY: pair has room for the two descriptors pipe2 writes.
        let ret = unsafe { libc::pipe2(pair.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(ret, 0);
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        send(
            tx.as_fd(),
            &Addr::Path(path.clone()),
            b"hello",
            &[r.as_fd(), w.as_fd()],
            None,
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let d = recv(rx.as_fd(), &mut buf, false).unwrap();
        assert_eq!(&buf[..d.len], b"hello");
        assert!(!d.truncated);
        assert_eq!(d.fds.len(), 2);
        assert_eq!(d.creds.unwrap().uid, uid());
        assert_eq!(d.creds.unwrap().pid as u32, std::process::id());
        assert_eq!(d.from, Addr::Abstract(name));

        // Answer the autobound sender by its address.
        send(rx.as_fd(), &d.from, b"back", &[], None).unwrap();
        let d2 = recv(tx.as_fd(), &mut buf, false).unwrap();
        assert_eq!(&buf[..d2.len], b"back");
        assert_eq!(d2.from, Addr::Path(path.clone()));

        let e = recv(rx.as_fd(), &mut buf, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            poll_readable(&[rx.as_fd()], Some(Duration::from_millis(1))).unwrap(),
            0
        );

        let short = &mut [0u8; 2];
        send(tx.as_fd(), &Addr::Path(path.clone()), b"toolong", &[], None).unwrap();
        assert_eq!(
            poll_readable(&[rx.as_fd()], Some(Duration::from_secs(5))).unwrap(),
            1
        );
        let d3 = recv(rx.as_fd(), short, false).unwrap();
        assert!(d3.truncated);
        assert_eq!(d3.len, 2);

        drop(rx);
        let e = send(tx.as_fd(), &Addr::Path(path.clone()), b"x", &[], None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
