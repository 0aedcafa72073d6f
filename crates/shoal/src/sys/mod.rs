//! The only place that talks to libc directly: mmap, file locks, process liveness, CPU
//! affinity, signals. Everything above this module sees safe functions and `io::Error`s that
//! callers turn into their own error variants.
#![allow(unsafe_code)] // FFI to libc

#[allow(dead_code)] // used by the af_packet and tap drivers as they land
pub(crate) mod packet;
pub(crate) mod xdp;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

/// A libc return value as an `io::Result`: negative is the thread's `errno`.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Maps `len` bytes of `file` shared and read-write.
pub(crate) fn mmap_shared(file: &File, len: usize, populate: bool) -> io::Result<NonNull<u8>> {
    let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: a fresh mapping chosen by the kernel (addr = NULL); the fd is valid for the call.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Unmaps a range mapped with `mmap`.
pub(crate) fn munmap(base: NonNull<u8>, len: usize) {
    // SAFETY: callers pass a range they mapped and no longer use.
    unsafe {
        libc::munmap(base.as_ptr().cast(), len);
    }
}

fn flock_struct(kind: libc::c_int) -> libc::flock {
    // SAFETY: libc::flock is a plain C struct for which all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// A byte range `start .. start + len` of a file (`len` 0: to the end of the file and beyond).
fn range_lock(kind: libc::c_int, start: u64, len: u64) -> libc::flock {
    let mut fl = flock_struct(kind);
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl
}

/// Takes an open-file-description write lock on `start .. start + len` of `file` without
/// waiting (`F_OFD_SETLK`). `Ok(false)` when another open file description holds a
/// conflicting lock.
///
/// OFD locks belong to the open file description, not to the process: closing another
/// descriptor of the same file does not drop them (as it would a POSIX `F_SETLK` lock), and the
/// kernel drops them when the last descriptor of the description closes, at the latest when the
/// process dies, whatever PID namespace it lives in. That makes them shoal's liveness token.
pub(crate) fn ofd_try_lock(file: &File, start: u64, len: u64) -> io::Result<bool> {
    let fl = range_lock(libc::F_WRLCK, start, len);
    // SAFETY: valid fd and a valid flock struct (l_pid 0, as F_OFD_* require) for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Drops an OFD lock taken with [`ofd_try_lock`] on the same description.
pub(crate) fn ofd_unlock(file: &File, start: u64, len: u64) -> io::Result<()> {
    let fl = range_lock(libc::F_UNLCK, start, len);
    // SAFETY: valid fd and a valid flock struct for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True when an open file description other than `file`'s holds a lock on part of
/// `start .. start + len` (`F_OFD_GETLK`): the holder of that range is alive.
pub(crate) fn ofd_locked(file: &File, start: u64, len: u64) -> io::Result<bool> {
    let mut fl = range_lock(libc::F_WRLCK, start, len);
    // SAFETY: valid fd and a valid, writable flock struct for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// The PID namespace this process lives in (the inode of `/proc/self/ns/pid`), 0 when unknown.
/// Pids are only comparable between processes of one namespace.
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// This process's id.
pub(crate) fn getpid() -> u32 {
    std::process::id()
}

/// The effective user id.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC: the same clock in every process).
pub(crate) fn monotonic_ns() -> u64 {
    // SAFETY: libc::timespec is a plain C struct; all-zero is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of CPUs online. Not the affinity mask's size: a process started by a pinned parent
/// inherits its mask, but its lcores still map onto every CPU of the machine.
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// Pins the calling thread to one CPU.
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit inside the set; cpu is reduced modulo CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu % libc::CPU_SETSIZE as usize, &mut set) };
    // SAFETY: pid 0 = calling thread; set is valid for the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Free and total huge pages of the default size, and that size in bytes.
pub(crate) fn hugepages() -> Option<(u64, u64, u64)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((
        field("HugePages_Free:")?,
        field("HugePages_Total:")?,
        field("Hugepagesize:")? * 1024,
    ))
}

/// The first mount point of a hugetlbfs file system, from /proc/mounts.
pub(crate) fn hugetlbfs_mount() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "hugetlbfs").then(|| std::path::PathBuf::from(dir))
    })
}

/// True when `path` is on a hugetlbfs file system.
pub(crate) fn is_hugetlbfs(path: &Path) -> bool {
    const HUGETLBFS_MAGIC: libc::c_long = 0x958458f6;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: libc::statfs is a plain C struct; all-zero is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path; st is writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == HUGETLBFS_MAGIC
}

static QUIT_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_quit_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    QUIT_SIGNAL.store(sig, std::sync::atomic::Ordering::Relaxed);
}

/// Installs SIGINT/SIGTERM handlers that record the signal (see [`quit_signal`]). Without
/// SA_RESTART, so blocking calls return EINTR and loops get to see the request.
pub(crate) fn install_quit_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_quit_handlers_now);
}

fn install_quit_handlers_now() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction is a plain C struct; all-zero is valid (empty mask, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_quit_signal as *const () as libc::sighandler_t;
        // SAFETY: the handler only performs an atomic store; sa is valid for the call.
        unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    }
}

/// The signal (SIGINT or SIGTERM) that asked this process to stop, or 0.
pub(crate) fn quit_signal() -> i32 {
    QUIT_SIGNAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Records a stop request as if a signal had arrived.
pub(crate) fn request_quit(sig: i32) {
    QUIT_SIGNAL.store(sig, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) mod memif;
pub(crate) mod seqpacket;
pub(crate) mod unix_dgram;

/// Sends `sig` to process `pid`.
/// Dies at once, as `kill -9` would make this process die (fault injection).
#[cfg(feature = "fault-injection")]
pub(crate) fn kill_self() -> ! {
    // SAFETY: raise has no memory-safety preconditions; SIGKILL cannot be caught.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    unreachable!("SIGKILL returned")
}

pub(crate) fn send_signal(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
