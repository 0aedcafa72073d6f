//! AF_PACKET sockets with TPACKET_V3 mmap rings, and network interface ioctls.
//!
//! One socket per queue carries both rings: the receive ring (TPACKET_V3 blocks the kernel
//! fills and retires) and the transmit ring (fixed frames we fill and mark SEND_REQUEST, then
//! kick with `send`). Both sit in one `mmap` of the socket, receive ring first, so a process that
//! got the socket through fd passing maps the very same rings.
//!
//! Status words are shared with the kernel and read and written as `AtomicU32`:
//!
//! | edge | Release site | Acquire site | protects |
//! |------|--------------|--------------|----------|
//! | K→U rx | kernel `prb_close_block` (smp_wmb, then block_status) | `PacketRx::rx_block` | the block's frames |
//! | U→K rx | `RxBlock::release` | kernel (smp_rmb before reusing the block) | our reads are done |
//! | U→K tx | `PacketTx::tx_fill` (status = SEND_REQUEST) | kernel `tpacket_snd` (smp_rmb) | frame bytes and length |
//! | K→U tx | kernel `tpacket_destruct_skb` | `PacketTx::tx_fill` (status == AVAILABLE) | the kernel is done with the slot |
//!
//! One poller per ring is a property of the types: [`PacketRing::map`] hands out one
//! [`PacketRx`] and one [`PacketTx`], each `Send` but not `Sync`, whose methods take `&mut self`;
//! a received block borrows its `PacketRx` until it is released, so no second block (nor a
//! second thread) can read the ring meanwhile.
#![allow(unsafe_code)] // FFI: sockets, ioctls, mmap of the packet rings

use std::cell::Cell;
use std::ffi::c_void;
use std::io;

use super::cvt;
use std::marker::PhantomData;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// `struct ifreq` as the kernel lays it out on 64-bit Linux: a name and a 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?}"),
            ));
        }
        let mut r = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        r.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(r)
    }
}

fn ifreq_ioctl(req: libc::c_ulong, r: &mut IfReq) -> io::Result<()> {
    // SAFETY: a plain datagram socket for ioctls; no pointers are passed.
    let s = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .or_else(|_| {
        // SAFETY: as above, in a namespace without IPv4.
        cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
    })?;
    // SAFETY: s is a fresh socket we own.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: r is a valid, writable ifreq of the size the kernel expects for these requests.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), req as _, r as *mut IfReq) })?;
    Ok(())
}

/// The interface index of `name`.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ifreq_ioctl(libc::SIOCGIFINDEX, &mut r)?;
    Ok(i32::from_ne_bytes(r.data[..4].try_into().expect("4 bytes")) as u32)
}

/// The hardware (MAC) address of `name`.
pub(crate) fn if_hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let mut r = IfReq::new(name)?;
    ifreq_ioctl(libc::SIOCGIFHWADDR, &mut r)?;
    // struct sockaddr: sa_family (2 bytes), then the address.
    Ok(r.data[2..8].try_into().expect("6 bytes"))
}

/// The interface flags (IFF_UP, IFF_RUNNING, IFF_LOWER_UP, ...) of `name`.
pub(crate) fn if_flags(name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ifreq_ioctl(libc::SIOCGIFFLAGS, &mut r)?;
    Ok(u16::from_ne_bytes(r.data[..2].try_into().expect("2 bytes")) as u32)
}

/// Sets or clears IFF_UP on `name`.
pub(crate) fn if_set_up(name: &str, up: bool) -> io::Result<()> {
    let mut r = IfReq::new(name)?;
    ifreq_ioctl(libc::SIOCGIFFLAGS, &mut r)?;
    let mut flags = u16::from_ne_bytes(r.data[..2].try_into().expect("2 bytes"));
    if up {
        flags |= libc::IFF_UP as u16;
    } else {
        flags &= !(libc::IFF_UP as u16);
    }
    r.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ifreq_ioctl(libc::SIOCSIFFLAGS, &mut r)
}

/// The MTU of `name`.
pub(crate) fn if_mtu(name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ifreq_ioctl(libc::SIOCGIFMTU, &mut r)?;
    Ok(i32::from_ne_bytes(r.data[..4].try_into().expect("4 bytes")) as u32)
}

/// True when the interface is up and has carrier (IFF_UP and IFF_RUNNING).
pub(crate) fn if_link_up(name: &str) -> bool {
    if_flags(name).is_ok_and(|f| f & libc::IFF_UP as u32 != 0 && f & libc::IFF_RUNNING as u32 != 0)
}

/// Sizes of one queue's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingLayout {
    /// Bytes per block (power of two, multiple of the page size).
    pub block_size: u32,
    /// Receive ring blocks.
    pub rx_blocks: u32,
    /// Frame size (tx slots; the nominal rx frame size).
    pub frame_size: u32,
    /// Transmit ring blocks.
    pub tx_blocks: u32,
}

impl RingLayout {
    fn frames_per_block(&self) -> u32 {
        self.block_size / self.frame_size
    }
    fn rx_len(&self) -> usize {
        self.block_size as usize * self.rx_blocks as usize
    }
    fn tx_len(&self) -> usize {
        self.block_size as usize * self.tx_blocks as usize
    }
    /// Transmit slots.
    pub fn tx_frames(&self) -> u32 {
        self.frames_per_block() * self.tx_blocks
    }
    /// Largest frame a tx slot holds.
    pub fn tx_max_frame(&self) -> usize {
        self.frame_size as usize - TX_DATA_OFFSET
    }
}

/// Offset of the packet bytes in a TPACKET_V3 transmit frame: the kernel's
/// `tp_hdrlen - sizeof(struct sockaddr_ll)` = `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`.
pub(crate) const TX_DATA_OFFSET: usize = 48;
const _: () = assert!(size_of::<libc::tpacket3_hdr>() == TX_DATA_OFFSET);

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points to a live T of the size given.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast::<c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Whether and how a queue socket joins a fanout group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fanout {
    /// A port with one queue: no fanout.
    None,
    /// The first queue: a new group with an id the kernel picks (unique in the namespace).
    New,
    /// The other queues: join the first queue's group.
    Join(u16),
}

/// Options of one queue's socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueSocketOpts {
    /// Interface index to bind to.
    pub ifindex: u32,
    /// Ring sizes.
    pub layout: RingLayout,
    /// Fanout group (PACKET_FANOUT_HASH) when the port has several queues.
    pub fanout: Fanout,
    /// Put the interface in promiscuous mode while the socket lives.
    pub promisc: bool,
    /// PACKET_QDISC_BYPASS on transmit.
    pub qdisc_bypass: bool,
    /// Block retire timeout in milliseconds.
    pub retire_ms: u32,
    /// Receive on the socket (bound for every protocol). False for a transmit-only queue:
    /// bound with protocol 0, it gets no copy of the interface's frames.
    pub receive: bool,
}

/// Opens one queue's AF_PACKET socket: TPACKET_V3, both rings, bound to the interface for
/// every protocol, joined to the fanout group and in promiscuous mode as asked. Returns the
/// socket and the fanout group id.
pub(crate) fn open_queue_socket(o: &QueueSocketOpts) -> io::Result<(OwnedFd, Option<u16>)> {
    // Protocol 0: nothing is received until the rings exist and bind() names ETH_P_ALL.
    // SAFETY: plain socket(2) call.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })?;
    // SAFETY: raw is a fresh socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
    setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)?;
    let l = &o.layout;
    let rx = libc::tpacket_req3 {
        tp_block_size: l.block_size,
        tp_block_nr: l.rx_blocks,
        tp_frame_size: l.frame_size,
        tp_frame_nr: l.frames_per_block() * l.rx_blocks,
        tp_retire_blk_tov: o.retire_ms,
        tp_sizeof_priv: 0,
        // The flow hash is free with fanout (the kernel computed it to pick the socket);
        // without, it would cost a flow dissection per packet on the sending CPU.
        tp_feature_req_word: if o.fanout == Fanout::None {
            0
        } else {
            libc::TP_FT_REQ_FILL_RXHASH
        },
    };
    setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &rx)?;
    let tx = libc::tpacket_req3 {
        tp_block_size: l.block_size,
        tp_block_nr: l.tx_blocks,
        tp_frame_size: l.frame_size,
        tp_frame_nr: l.tx_frames(),
        tp_retire_blk_tov: 0,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    };
    setsockopt(raw, libc::SOL_PACKET, libc::PACKET_TX_RING, &tx)?;
    if o.qdisc_bypass {
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
    }
    // Do not see what this host sends on the interface (our own tx among it); older kernels
    // lack the option, which only matters when several sockets share an interface.
    let _ = setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32);
    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = if o.receive {
        (libc::ETH_P_ALL as u16).to_be()
    } else {
        0
    };
    sll.sll_ifindex = o.ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
    let group = match o.fanout {
        Fanout::None => None,
        Fanout::New => {
            let arg: u32 = (mode | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16;
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
            let mut got: u32 = 0;
            let mut len = size_of::<u32>() as libc::socklen_t;
            // SAFETY: got and len are valid and writable; the kernel writes a u32.
            cvt(unsafe {
                libc::getsockopt(
                    raw,
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    (&mut got as *mut u32).cast(),
                    &mut len,
                )
            })?;
            Some(got as u16)
        }
        Fanout::Join(id) => {
            let arg: u32 = id as u32 | (mode << 16);
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
            Some(id)
        }
    };
    if o.promisc {
        // SAFETY: packet_mreq is a plain C struct; all-zero is valid.
        let mut mr: libc::packet_mreq = unsafe { zeroed() };
        mr.mr_ifindex = o.ifindex as i32;
        mr.mr_type = libc::PACKET_MR_PROMISC as u16;
        // Counted by the kernel per socket and undone when the socket closes.
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)?;
    }
    Ok((fd, group))
}

/// Receive statistics since the last call (the kernel resets them on read): packets seen and
/// packets dropped because the ring was full.
pub(crate) fn socket_stats(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: plain C struct; all-zero is valid.
    let mut st: libc::tpacket_stats_v3 = unsafe { zeroed() };
    let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: st and len are valid and writable; the kernel writes at most len bytes.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats_v3).cast(),
            &mut len,
        )
    })?;
    Ok((st.tp_packets, st.tp_drops))
}

/// Asks the kernel to send every frame marked SEND_REQUEST, without waiting.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length send with no buffer is how the tx ring is flushed.
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
        // EAGAIN/ENOBUFS: the device queue is full; frames stay marked and go next time.
        if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS)) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Waits up to `timeout_ms` for the socket to become readable.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout_ms) > 0 }
}

/// A process's mapping of one queue socket's rings, shared by its two halves.
#[derive(Debug)]
pub(crate) struct PacketRing {
    base: NonNull<u8>,
    len: usize,
    layout: RingLayout,
}

// SAFETY: the mapping is an address range that only `PacketRx` and `PacketTx` access (each
// ring through its own half, under `&mut`); dropping it (munmap) can happen on any thread.
unsafe impl Send for PacketRing {}
// SAFETY: `&PacketRing` gives access to nothing but the layout and status words, which are
// atomics.
unsafe impl Sync for PacketRing {}

/// The receive ring of a queue socket: one poller at a time (`&mut self`, not `Sync`).
#[derive(Debug)]
pub(crate) struct PacketRx {
    ring: Arc<PacketRing>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The transmit ring of a queue socket: one sender at a time (`&mut self`, not `Sync`).
#[derive(Debug)]
pub(crate) struct PacketTx {
    ring: Arc<PacketRing>,
    _not_sync: PhantomData<Cell<()>>,
}

/// One received frame.
#[derive(Debug)]
pub(crate) struct RxFrame<'a> {
    /// Captured bytes, from the Ethernet header on.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
    /// VLAN tag the kernel took off the frame: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// Flow hash the kernel computed (0 for a port with one queue, where none is asked for).
    pub rxhash: u32,
}

/// A retired receive block, owned by user space until released; it borrows its [`PacketRx`]
/// mutably, so the ring is not polled again while its bytes are read.
#[derive(Debug)]
pub(crate) struct RxBlock<'a> {
    bytes: &'a [u8],
    status: &'a AtomicU32,
    num_pkts: u32,
    first: u32,
}

impl<'a> RxBlock<'a> {
    /// Frames in the block.
    pub fn num_pkts(&self) -> u32 {
        self.num_pkts
    }

    /// Offset of the first frame.
    pub fn first_offset(&self) -> u32 {
        self.first
    }

    /// The frame at `offset` and the offset of the next one (0 = last). `None` when the
    /// header is out of bounds or inconsistent.
    pub fn frame(&self, offset: u32) -> Option<(RxFrame<'a>, u32)> {
        let off = offset as usize;
        let hdr = self.bytes.get(off..off.checked_add(TX_DATA_OFFSET)?)?;
        let word = |i: usize| u32::from_ne_bytes(hdr[i..i + 4].try_into().expect("4 bytes"));
        let half = |i: usize| u16::from_ne_bytes(hdr[i..i + 2].try_into().expect("2 bytes"));
        // tpacket3_hdr: next_offset 0, sec 4, nsec 8, snaplen 12, len 16, status 20, mac 24,
        // net 26, rxhash 28, vlan_tci 32, vlan_tpid 36.
        let next = word(0);
        let snaplen = word(12) as usize;
        let len = word(16);
        let status = word(20);
        let mac = half(24) as usize;
        let start = off.checked_add(mac)?;
        let data = self.bytes.get(start..start.checked_add(snaplen)?)?;
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                half(36)
            } else {
                0x8100
            };
            (tpid, word(32) as u16)
        });
        Some((
            RxFrame {
                data,
                wire_len: len,
                vlan,
                rxhash: word(28),
            },
            next,
        ))
    }

    /// Hands the block back to the kernel.
    pub fn release(self) {
        // U→K rx: the kernel may refill the block once it sees TP_STATUS_KERNEL; our reads of
        // it happen before.
        self.status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// Result of filling a transmit slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxFill {
    /// Filled and marked for sending.
    Queued,
    /// The kernel still owns the slot (ring full).
    Busy,
    /// The kernel refused the frame that was there before (TP_STATUS_WRONG_FORMAT); the slot
    /// was reset and can be filled again.
    WasRejected,
}

impl PacketRing {
    /// Maps the rings of `fd` and returns its receive and transmit halves.
    pub fn map(fd: BorrowedFd<'_>, layout: RingLayout) -> io::Result<(PacketRx, PacketTx)> {
        let len = layout.rx_len() + layout.tx_len();
        // SAFETY: a fresh shared mapping of the socket's rings chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let ring = Arc::new(PacketRing { base, len, layout });
        Ok((
            PacketRx {
                ring: ring.clone(),
                _not_sync: PhantomData,
            },
            PacketTx {
                ring,
                _not_sync: PhantomData,
            },
        ))
    }

    fn status_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 4 <= self.len && offset.is_multiple_of(4));
        // SAFETY: offset is inside the mapping (callers compute it from the layout) and
        // 4-aligned (block and frame sizes are multiples of 16); status words are only ever
        // accessed atomically, by us and by the kernel.
        unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU32) }
    }
}

// Neither half is Sync: two threads can never poll (or fill) one ring through shared
// references. (The trait is ambiguous, and this fails to compile, for a type that is Sync.)
const _: () = {
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
    let _ = <PacketRx as AmbiguousIfSync<_>>::check;
    let _ = <PacketTx as AmbiguousIfSync<_>>::check;
};

// SAFETY: a PacketRx is the only user of its receive ring in this process (one per socket
// mapping, not Clone); moving it to another thread moves that right along.
unsafe impl Send for PacketRx {}
// SAFETY: as for PacketRx, for the transmit ring.
unsafe impl Send for PacketTx {}

impl PacketRx {
    /// The ring sizes.
    pub fn layout(&self) -> &RingLayout {
        &self.ring.layout
    }

    /// Receive block `b` when the kernel has retired it to user space. The block borrows the
    /// ring until it is released (or dropped, which leaves it to user space for a later call).
    pub fn rx_block(&mut self, b: u32) -> Option<RxBlock<'_>> {
        let ring = &*self.ring;
        let bs = ring.layout.block_size as usize;
        let off = (b % ring.layout.rx_blocks) as usize * bs;
        // tpacket_block_desc: version 0, offset_to_priv 4, then tpacket_hdr_v1:
        // block_status 8, num_pkts 12, offset_to_first_pkt 16, blk_len 20.
        let status = ring.status_at(off + 8);
        // K→U rx: pairs with the kernel's smp_wmb before it sets block_status.
        if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block is inside the mapping and belongs to user space until released;
        // the kernel does not write it meanwhile, and the slice borrows `self` mutably, so no
        // other block of this ring is handed out (or released) while it lives.
        let bytes = unsafe { std::slice::from_raw_parts(ring.base.as_ptr().add(off), bs) };
        let word = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        Some(RxBlock {
            bytes,
            status,
            num_pkts: word(12),
            first: word(16),
        })
    }
}

impl PacketTx {
    /// The ring sizes.
    pub fn layout(&self) -> &RingLayout {
        &self.ring.layout
    }

    /// Fills transmit slot `i` with `data` (at most [`RingLayout::tx_max_frame`] bytes) and
    /// marks it for sending.
    pub fn tx_fill(&mut self, i: u32, data: &[u8]) -> TxFill {
        let ring = &*self.ring;
        let l = &ring.layout;
        let fs = l.frame_size as usize;
        let fpb = l.frames_per_block() as usize;
        let i = (i % l.tx_frames()) as usize;
        let off = l.rx_len() + (i / fpb) * l.block_size as usize + (i % fpb) * fs;
        // tpacket3_hdr.tp_status is at offset 20.
        let status = ring.status_at(off + 20);
        // K→U tx: pairs with the kernel's release of the slot after the skb is gone.
        let st = status.load(Ordering::Acquire);
        if st & libc::TP_STATUS_WRONG_FORMAT != 0 {
            status.store(libc::TP_STATUS_AVAILABLE, Ordering::Relaxed);
            return TxFill::WasRejected;
        }
        if st != libc::TP_STATUS_AVAILABLE {
            return TxFill::Busy;
        }
        let n = data.len().min(fs - TX_DATA_OFFSET);
        // SAFETY: the slot [off, off + fs) is inside the tx ring of the mapping and belongs to
        // user space (status AVAILABLE); `&mut self` makes this the only filler in the process.
        unsafe {
            let frame = ring.base.as_ptr().add(off);
            std::ptr::copy_nonoverlapping(data.as_ptr(), frame.add(TX_DATA_OFFSET), n);
            // tp_next_offset (0) must be zero; tp_snaplen (12) and tp_len (16).
            std::ptr::write_unaligned(frame.cast::<u32>(), 0);
            std::ptr::write_unaligned(frame.add(12).cast::<u32>(), n as u32);
            std::ptr::write_unaligned(frame.add(16).cast::<u32>(), n as u32);
        }
        // U→K tx: the frame bytes and lengths above are visible before the kernel sees the
        // request (the kernel reads the status, then smp_rmb, then the frame).
        status.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        TxFill::Queued
    }
}

impl Drop for PacketRing {
    fn drop(&mut self) {
        // SAFETY: the range was mapped in `map` and nothing borrows it past self.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Opens `/dev/net/tun` and attaches a queue of TAP interface `name` (created when it does not
/// exist; `multi_queue` for several queues). Returns the queue's fd, non-blocking.
pub(crate) fn open_tap_queue(name: &str, multi_queue: bool) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: a valid NUL-terminated path.
    let raw = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut r = IfReq::new(name)?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    r.data[..2].copy_from_slice(&(flags as u16).to_ne_bytes());
    // SAFETY: r is a valid, writable ifreq; TUNSETIFF reads and writes it.
    cvt(unsafe { libc::ioctl(raw, libc::TUNSETIFF as _, &mut r as *mut IfReq) })?;
    Ok(fd)
}

/// Reads one frame from a non-blocking fd. `Ok(None)` when nothing is waiting.
pub(crate) fn read_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid and writable for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(n as usize))
}

/// Writes one frame to a non-blocking fd. `Ok(false)` when the fd would block.
pub(crate) fn write_frame(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<bool> {
    // SAFETY: data is valid for reads of its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR)) {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(true)
}
