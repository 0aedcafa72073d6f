//! AF_XDP sockets and the bpf(2) calls behind them: an XSKMAP, a four-instruction XDP program
//! that redirects each receive queue's frames to the socket of that queue, and the BPF link
//! that attaches it to an interface. No compiler or loader library is involved: the program
//! is assembled here, from the kernel's instruction encoding (`include/uapi/linux/bpf.h`).
//!
//! A socket's four rings (fill, completion, rx, tx) are mmapped from the socket itself, so any
//! process holding the socket's fd maps the same rings; the UMEM (frame memory) is registered
//! by address, from one process's mapping of a shared file, so that every process of the group
//! sees the frames through its own mapping of that file.
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | P | [`XskRing::publish_prod`] (fill, tx) | the kernel's `smp_load_acquire` of the producer | descriptors written before the producer moves |
//! | C | [`XskRing::publish_cons`] (rx, completion) | the kernel's load of the consumer | our reads of the slots happen before the kernel reuses them |
//! | K | the kernel's `smp_store_release` of the producer (rx, completion) | [`XskRing::producer`] | descriptors and frame bytes the kernel wrote |
#![allow(unsafe_code)] // FFI: socket options, mmap of the rings, bpf(2)

use std::io;

use super::cvt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::sync::atomic::{AtomicU32, Ordering};

fn setsockopt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a valid, initialised T for the duration of the call and the length is
    // its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, opt: libc::c_int, mut v: T) -> io::Result<T> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `v`, a plain C struct of that size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (&mut v as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// A new AF_XDP socket (close-on-exec).
pub(crate) fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the returned fd is owned by us alone.
    let fd = cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers `len` bytes at `addr` (page aligned) as the socket's UMEM, in frames of
/// `frame_size` bytes (a power of two, 2048 to the page size).
pub(crate) fn umem_reg(
    fd: BorrowedFd<'_>,
    addr: *mut u8,
    len: usize,
    frame_size: u32,
) -> io::Result<()> {
    let reg = libc::xdp_umem_reg {
        addr: addr as u64,
        len: len as u64,
        chunk_size: frame_size,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg)
}

/// Which ring a size or a mapping is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingKind {
    /// Frames user space gives the kernel to receive into (u64 addresses).
    Fill,
    /// Frames the kernel has finished sending (u64 addresses).
    Completion,
    /// Received frames (descriptors).
    Rx,
    /// Frames to send (descriptors).
    Tx,
}

impl RingKind {
    fn opt(self) -> libc::c_int {
        match self {
            RingKind::Fill => libc::XDP_UMEM_FILL_RING,
            RingKind::Completion => libc::XDP_UMEM_COMPLETION_RING,
            RingKind::Rx => libc::XDP_RX_RING,
            RingKind::Tx => libc::XDP_TX_RING,
        }
    }

    fn pgoff(self) -> i64 {
        match self {
            RingKind::Fill => libc::XDP_UMEM_PGOFF_FILL_RING as i64,
            RingKind::Completion => libc::XDP_UMEM_PGOFF_COMPLETION_RING as i64,
            RingKind::Rx => libc::XDP_PGOFF_RX_RING,
            RingKind::Tx => libc::XDP_PGOFF_TX_RING,
        }
    }

    fn entry(self) -> usize {
        match self {
            RingKind::Fill | RingKind::Completion => 8,
            RingKind::Rx | RingKind::Tx => std::mem::size_of::<libc::xdp_desc>(),
        }
    }
}

/// Sets the number of entries (a power of two) of one of the socket's rings.
pub(crate) fn set_ring_size(fd: BorrowedFd<'_>, ring: RingKind, entries: u32) -> io::Result<()> {
    setsockopt(fd, ring.opt(), &entries)
}

/// Binds the socket to queue `queue` of interface `ifindex`. `zero_copy`: ask for zero-copy
/// (fails with EOPNOTSUPP where the driver has none), else copy mode. Always asks for
/// need_wakeup.
pub(crate) fn bind(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    queue: u32,
    zero_copy: bool,
) -> io::Result<()> {
    let mode = if zero_copy {
        libc::XDP_ZEROCOPY
    } else {
        libc::XDP_COPY
    };
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: a valid sockaddr_xdp and its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// True when the bound socket runs in zero-copy mode.
pub(crate) fn is_zero_copy(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let o = getsockopt(fd, libc::XDP_OPTIONS, libc::xdp_options { flags: 0 })?;
    Ok(o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// The kernel's counters of the socket: (dropped for lack of rx ring room or fill frames,
/// invalid rx descriptors, invalid tx descriptors). Cumulative since the socket was made.
pub(crate) fn stats(fd: BorrowedFd<'_>) -> io::Result<(u64, u64, u64)> {
    let s = getsockopt(
        fd,
        libc::XDP_STATISTICS,
        libc::xdp_statistics {
            rx_dropped: 0,
            rx_invalid_descs: 0,
            tx_invalid_descs: 0,
            rx_ring_full: 0,
            rx_fill_ring_empty_descs: 0,
            tx_ring_empty_descs: 0,
        },
    )?;
    Ok((
        s.rx_dropped + s.rx_ring_full,
        s.rx_invalid_descs,
        s.tx_invalid_descs,
    ))
}

/// Asks the kernel to send what the tx ring holds (copy mode needs this call; need_wakeup
/// tells when zero-copy does). EAGAIN, EBUSY and ENOBUFS mean "try later" and are not errors.
pub(crate) fn wakeup_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: sendto with no data and no address only kicks the socket.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN) => Ok(()),
            _ => Err(e),
        };
    }
    Ok(())
}

/// Wakes the kernel's receive side when the fill ring asks for it (need_wakeup).
pub(crate) fn wakeup_rx(fd: BorrowedFd<'_>) {
    // SAFETY: recvfrom with no buffer only kicks the socket; the result is not needed.
    unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

/// A send-only AF_PACKET socket bound to interface `ifindex` (protocol 0: it receives
/// nothing), non-blocking, bypassing the queueing discipline: the transmit path of queues an
/// interface has no hardware queue for.
pub(crate) fn packet_tx_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: raw is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: a valid int option and its size.
    cvt(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// An AF_PACKET socket that holds interface `ifindex` in promiscuous mode while it is open
/// (PACKET_MR_PROMISC membership: counted by the kernel and undone when the socket closes, by
/// exit or death).
pub(crate) fn promisc_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let fd = packet_tx_socket(ifindex)?;
    // SAFETY: packet_mreq is a plain C struct; all-zero is valid.
    let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mr.mr_ifindex = ifindex as i32;
    mr.mr_type = libc::PACKET_MR_PROMISC as u16;
    // SAFETY: a valid packet_mreq and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mr as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// The address family of socket `fd` (SO_DOMAIN): AF_XDP or AF_PACKET here.
pub(crate) fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes one int into v.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// One of a socket's rings as mapped in this process. The producer and consumer indices are
/// free-running `u32`s; a slot is `index & (size - 1)`.
#[derive(Debug)]
pub(crate) struct XskRing {
    base: NonNull<u8>,
    len: usize,
    prod: usize,
    cons: usize,
    flags: usize,
    desc: usize,
    size: u32,
    kind: RingKind,
}

// SAFETY: the mapping is plain shared memory; indices are atomics and slots are written only
// by the one user of the ring (the driver serialises users per queue).
unsafe impl Send for XskRing {}
// SAFETY: as above: `&XskRing` reads atomics; slot access goes through methods whose callers
// hold the queue.
unsafe impl Sync for XskRing {}

impl XskRing {
    /// Maps ring `kind` of the bound (or UMEM-registered) socket `fd`, of `size` entries.
    pub fn map(fd: BorrowedFd<'_>, kind: RingKind, size: u32) -> io::Result<XskRing> {
        let off = getsockopt(
            fd,
            libc::XDP_MMAP_OFFSETS,
            libc::xdp_mmap_offsets {
                rx: zero_off(),
                tx: zero_off(),
                fr: zero_off(),
                cr: zero_off(),
            },
        )?;
        let o = match kind {
            RingKind::Fill => off.fr,
            RingKind::Completion => off.cr,
            RingKind::Rx => off.rx,
            RingKind::Tx => off.tx,
        };
        let len = o.desc as usize + size as usize * kind.entry();
        // SAFETY: a fresh shared mapping of the socket's ring, chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                kind.pgoff(),
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let in_map = |x: u64| (x as usize).checked_add(4).is_some_and(|e| e <= len);
        if !(in_map(o.producer) && in_map(o.consumer) && in_map(o.flags) && o.producer % 4 == 0)
            || o.consumer % 4 != 0
            || o.flags % 4 != 0
            || o.desc % 8 != 0
        {
            // SAFETY: the range was just mapped and nothing refers to it.
            unsafe { libc::munmap(p, len) };
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(XskRing {
            base,
            len,
            prod: o.producer as usize,
            cons: o.consumer as usize,
            flags: o.flags as usize,
            desc: o.desc as usize,
            size,
            kind,
        })
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is one of the offsets checked in `map` (inside the mapping, 4-aligned);
        // the kernel and we access these words atomically only.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU32) }
    }

    /// The producer index (Acquire: K when the kernel produces).
    pub fn producer(&self) -> u32 {
        self.word(self.prod).load(Ordering::Acquire)
    }

    /// The consumer index (Acquire: the kernel's consumption of fill and tx entries).
    pub fn consumer(&self) -> u32 {
        self.word(self.cons).load(Ordering::Acquire)
    }

    /// True when the kernel asks to be woken (need_wakeup).
    pub fn needs_wakeup(&self) -> bool {
        // Relaxed: a hint; a stale value costs one needless or one late syscall.
        self.word(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Publishes entries written up to index `v` (fill, tx). R(P).
    pub fn publish_prod(&self, v: u32) {
        self.word(self.prod).store(v, Ordering::Release);
    }

    /// Hands back entries read up to index `v` (rx, completion). R(C).
    pub fn publish_cons(&self, v: u32) {
        self.word(self.cons).store(v, Ordering::Release);
    }

    fn slot(&self, i: u32) -> *mut u8 {
        let s = (i & (self.size - 1)) as usize;
        debug_assert!(self.desc + (s + 1) * self.kind.entry() <= self.len);
        // SAFETY: desc + size * entry == len (from `map`) and s < size.
        unsafe { self.base.as_ptr().add(self.desc + s * self.kind.entry()) }
    }

    /// Writes the address at index `i` of a fill ring (published later by `publish_prod`).
    pub fn set_addr(&self, i: u32, addr: u64) {
        debug_assert!(matches!(self.kind, RingKind::Fill | RingKind::Completion));
        // SAFETY: the slot is inside the mapping and 8-aligned (desc offset checked); it belongs to user space (between consumer and
        // producer + size) and the caller is its ring's only writer.
        unsafe { std::ptr::write_volatile(self.slot(i).cast::<u64>(), addr) }
    }

    /// The descriptor (address, length) at index `i` of an rx or tx ring.
    pub fn desc(&self, i: u32) -> (u64, u32) {
        debug_assert!(matches!(self.kind, RingKind::Rx | RingKind::Tx));
        // SAFETY: the slot is inside the mapping and 8-aligned (desc offset checked); a torn or
        // stale value is only a wrong number, which callers bound-check.
        let d = unsafe { std::ptr::read_volatile(self.slot(i).cast::<libc::xdp_desc>()) };
        (d.addr, d.len)
    }

    /// Writes the descriptor at index `i` of a tx ring (published later by `publish_prod`).
    pub fn set_desc(&self, i: u32, addr: u64, len: u32) {
        debug_assert!(matches!(self.kind, RingKind::Rx | RingKind::Tx));
        let d = libc::xdp_desc {
            addr,
            len,
            options: 0,
        };
        // SAFETY: as in `set_addr`, for a 16-byte descriptor.
        unsafe { std::ptr::write_volatile(self.slot(i).cast::<libc::xdp_desc>(), d) }
    }
}

fn zero_off() -> libc::xdp_ring_offset {
    libc::xdp_ring_offset {
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
    }
}

impl Drop for XskRing {
    fn drop(&mut self) {
        // SAFETY: the range was mapped in `map`; nothing borrows it past self.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// ---- bpf(2) ----

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// XDP_PASS: what the program returns for a queue whose map entry is empty.
const XDP_PASS: i32 = 2;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the command's layout; the kernel
    // reads (and for some commands writes) at most size_of::<T>() bytes of it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: for the commands used here a non-negative result is a new fd we own (or 0 for
    // BPF_MAP_UPDATE_ELEM, which callers drop at once without using; see `map_update`).
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// An XSKMAP of `entries` slots (key: rx queue index; value: an AF_XDP socket fd).
pub(crate) fn xskmap_create(entries: u32) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"shoal_xsk");
    let mut a = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_name: name,
        ..Default::default()
    };
    bpf(BPF_MAP_CREATE, &mut a)
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Puts socket `xsk` in slot `queue` of XSKMAP `map`.
pub(crate) fn xskmap_set(map: BorrowedFd<'_>, queue: u32, xsk: BorrowedFd<'_>) -> io::Result<()> {
    let key = queue;
    let value = xsk.as_raw_fd() as u32;
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    // SAFETY: as in `bpf`; BPF_MAP_UPDATE_ELEM returns 0, not an fd, so the raw result is
    // not wrapped in an OwnedFd here (that would close fd 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            (&mut a as *mut MapElemAttr).cast::<libc::c_void>(),
            std::mem::size_of::<MapElemAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One eBPF instruction: opcode, dst register (low nibble) and src register (high nibble),
/// offset, immediate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program, as C: `return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);`
/// (the flags' low bits are the action when the map has no socket for the queue, so frames
/// of queues without a socket go on to the kernel's stack).
fn redirect_program(map_fd: i32) -> [Insn; 6] {
    [
        // r2 = *(u32 *)(r1 + 16): xdp_md.rx_queue_index (BPF_LDX | BPF_MEM | BPF_W)
        insn(0x61, 2, 1, 16, 0),
        // r1 = map (BPF_LD | BPF_DW | BPF_IMM, src = BPF_PSEUDO_MAP_FD; two slots)
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS (BPF_ALU64 | BPF_MOV | BPF_K)
        insn(0xb7, 3, 0, 0, XDP_PASS),
        // call bpf_redirect_map (BPF_JMP | BPF_CALL)
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // return r0 (BPF_JMP | BPF_EXIT)
        insn(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads the redirect program for XSKMAP `map`. The error carries the verifier's log.
pub(crate) fn load_redirect_program(map: BorrowedFd<'_>) -> Result<OwnedFd, (io::Error, String)> {
    let prog = redirect_program(map.as_raw_fd());
    let license = c"Dual MIT/GPL";
    let mut log = vec![0u8; 4096];
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"shoal_xsk");
    let mut a = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    bpf(BPF_PROG_LOAD, &mut a).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        (e, String::from_utf8_lossy(&log[..end]).trim().to_owned())
    })
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Attaches XDP program `prog` to interface `ifindex` through a BPF link (driver mode where
/// the driver has XDP, else generic). The program stays attached while the returned fd is
/// open: closing it, or the death of every process holding it, detaches it. EBUSY or EEXIST:
/// the interface already has an XDP program.
pub(crate) fn link_xdp(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: 0,
    };
    bpf(BPF_LINK_CREATE, &mut a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encodes_as_the_kernel_expects() {
        let p = redirect_program(7);
        // ldx: dst r2, src r1 -> regs 0x12; ld_imm64 r1 with the map pseudo-source -> 0x11.
        assert_eq!((p[0].code, p[0].regs, p[0].off), (0x61, 0x12, 16));
        assert_eq!((p[1].code, p[1].regs, p[1].imm), (0x18, 0x11, 7));
        assert_eq!((p[3].regs, p[3].imm), (0x03, XDP_PASS));
        assert_eq!(p[4].imm, 51);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}
