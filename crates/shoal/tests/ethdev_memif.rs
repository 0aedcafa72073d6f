//! net_memif against DPDK's own `net_memif`: Debian's `dpdk-testpmd` is the peer, in both
//! roles, forwarding what it receives back on the same port (`--forward-mode=io`). Frames shoal
//! sends must come back frame for frame, and testpmd's own counters must agree. Then the bad
//! peers: a client that dies, a client that lies about its memory, malformed messages.
//! Skips (with the reason printed) when dpdk-testpmd is missing; fails instead under CI=true.
#![allow(unsafe_code)] // a raw control-channel peer: socket, connect, sendmsg through libc

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use shoal::ethdev::{self, Port, QueueId};
use shoal::mbuf::MbufBatch;
use shoal_testkit::{
    child_or, child_prefix, eventually, init, ports_eal, require_tool, unique_prefix, Group, Proc,
    TempDir,
};

const T: Duration = Duration::from_secs(30);
const TESTPMD: &str = "dpdk-testpmd";

/// Starts testpmd with one memif port, interactive, and starts forwarding.
fn testpmd(g: &Group, vdev: &str, extra: &[&str]) -> Proc {
    let prefix = unique_prefix("tpmd");
    // Line-buffered: testpmd's answers go to a pipe.
    let mut args = vec![
        "-oL",
        TESTPMD,
        "-l",
        "0-1",
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--file-prefix",
        &prefix,
        "--vdev",
        vdev,
        "--",
        "-i",
        "--total-num-mbufs=8192",
        "--no-mlockall",
        "--forward-mode=io",
        // Frames that arrive while forwarding starts are forwarded, not flushed.
        "--no-flush-rx",
    ];
    args.extend(extra);
    let mut p = g.spawn_raw("stdbuf", &args);
    p.wait_for("Checking link statuses", T);
    p.send_line("start");
    p.wait_for("io packet forwarding", T);
    p
}

/// testpmd's counters of port 0: (rx packets, rx bytes, tx packets, tx bytes).
fn testpmd_stats(p: &mut Proc, nth: usize) -> (u64, u64, u64, u64) {
    p.send_line("show port stats 0");
    let rx = p.wait_for_nth("RX-packets:", nth, T);
    let tx = p.wait_for_nth("TX-packets:", nth, T);
    let field = |line: &str, key: &str| -> u64 {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("{key} in {line:?}"))
            + key.len();
        line[at..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line:?}"))
    };
    (
        field(&rx, "RX-packets:"),
        field(&rx, "RX-bytes:"),
        field(&tx, "TX-packets:"),
        field(&tx, "TX-bytes:"),
    )
}

/// Frame `i`: Ethernet to a unicast MAC, IPv4/UDP, sizes from 60 to 1514 bytes, the index in
/// the payload.
fn frame(i: u32) -> Vec<u8> {
    let len = 60 + (i as usize * 37) % (1514 - 60);
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    f[42..46].copy_from_slice(&i.to_be_bytes());
    for (k, b) in f[46..].iter_mut().enumerate() {
        *b = (k as u32 ^ i) as u8;
    }
    f
}

/// Sends `frames` on queue `q` of `port` while receiving on it, never more in flight than the
/// smallest ring holds (testpmd drops what it cannot forward, as any forwarder); returns what
/// came back.
fn send_and_collect(port: &Port, q: u16, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let pool = port.pool();
    let mut back = Vec::new();
    let mut next = 0;
    let deadline = Instant::now() + T;
    let mut quiet = Instant::now();
    while back.len() < frames.len() || quiet.elapsed() < Duration::from_millis(200) {
        if Instant::now() > deadline {
            eprintln!(
                "{} of {} frames came back (sent {next}); {:?}",
                back.len(),
                frames.len(),
                port.stats()
            );
            break;
        }
        if next < frames.len() && next - back.len() < 200 {
            let mut b = MbufBatch::new();
            for f in frames[next..].iter().take(32) {
                let mut m = pool.alloc().expect("mbuf");
                m.append(f.len() as u16).unwrap().copy_from_slice(f);
                let _ = b.push(m);
            }
            next += port.tx_burst(QueueId(q), &mut b);
        }
        let mut b = MbufBatch::new();
        if port.rx_burst(QueueId(q), &mut b, 32) > 0 {
            quiet = Instant::now();
        }
        back.extend(b.iter().map(|m| m.data().to_vec()));
        if back.len() >= frames.len() && next == frames.len() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    back
}

fn check_round_trip(port: &Port, tp: &mut Proc, n: u32) {
    let frames: Vec<Vec<u8>> = (0..n).map(frame).collect();
    let back = send_and_collect(port, 0, &frames);
    assert_eq!(
        back.len(),
        frames.len(),
        "frames came back one for one; testpmd's counters: {:?}; its output:\n{}",
        testpmd_stats(tp, 1),
        tp.output()
    );
    assert!(back == frames, "frames came back in order and unchanged");
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let s = port.stats();
    assert_eq!((s.opackets, s.obytes, s.oerrors), (n as u64, bytes, 0));
    assert_eq!((s.ipackets, s.ibytes, s.ierrors), (n as u64, bytes, 0));
    let (rxp, rxb, txp, txb) = testpmd_stats(tp, 1);
    assert_eq!(
        (rxp, rxb, txp, txb),
        (n as u64, bytes, n as u64, bytes),
        "testpmd's counters"
    );
}

#[test]
fn memif_client_round_trip_through_testpmd_server() {
    if !require_tool(TESTPMD) {
        return;
    }
    let g = Group::new("mif1");
    let dir = TempDir::new("mif1");
    let sock = dir.join("memif.sock");
    let sock = sock.to_str().unwrap();
    let mut tp = testpmd(
        &g,
        &format!("net_memif0,role=server,socket={sock},socket-abstract=no,id=3,secret=xyz"),
        &[],
    );
    let eal = ports_eal(
        "mif1",
        &[format!(
            "net_memif0,role=client,socket={sock},socket-abstract=no,id=3,secret=xyz"
        )],
    );
    let port = &ethdev::ports(&eal).unwrap()[0];
    eventually("the memif link to come up", T, || port.link_up());
    check_round_trip(port, &mut tp, 3000);

    // The server dies: the link goes down; the client finds the next server by itself.
    tp.kill9();
    eventually("the link to go down after the server's death", T, || {
        !port.link_up()
    });
    let mut b = MbufBatch::new();
    assert_eq!(port.rx_burst(QueueId(0), &mut b, 32), 0);
    let mut m = port.pool().alloc().unwrap();
    m.append(60).unwrap();
    let _ = b.push(m);
    assert_eq!(
        port.tx_burst(QueueId(0), &mut b),
        0,
        "nothing sent while down"
    );
    drop(b);
    let _ = std::fs::remove_file(sock);
    port.reset_stats();
    let mut tp = testpmd(
        &g,
        &format!("net_memif0,role=server,socket={sock},socket-abstract=no,id=3,secret=xyz"),
        &[],
    );
    eventually("the link to come up with the new server", T, || {
        port.link_up()
    });
    check_round_trip(port, &mut tp, 500);
}

#[test]
fn memif_server_round_trip_through_testpmd_client_and_its_death() {
    if !require_tool(TESTPMD) {
        return;
    }
    let g = Group::new("mif2");
    let name = format!("shoal-test-mif2-{}", std::process::id());
    let eal = ports_eal(
        "mif2",
        &[format!("net_memif0,role=server,socket={name},rsize=8")],
    );
    let port = &ethdev::ports(&eal).unwrap()[0];
    assert!(!port.link_up());
    let mut tp = testpmd(&g, &format!("net_memif0,role=client,socket={name}"), &[]);
    eventually("the memif link to come up", T, || port.link_up());
    check_round_trip(port, &mut tp, 2000);
    let before = port.pool().in_use_count();

    // The peer dies: the link goes down, nothing is stranded, and a new peer connects.
    tp.kill9();
    eventually("the link to go down after the peer's death", T, || {
        !port.link_up()
    });
    let mut b = MbufBatch::new();
    assert_eq!(port.rx_burst(QueueId(0), &mut b, 32), 0);
    assert_eq!(port.pool().in_use_count(), before, "no mbuf stranded");
    port.reset_stats();
    let mut tp = testpmd(&g, &format!("net_memif0,role=client,socket={name}"), &[]);
    eventually("the link to come up again", T, || port.link_up());
    check_round_trip(port, &mut tp, 500);
}

/// A raw control-channel client: connects to a shoal server and speaks bytes.
struct Raw(UnixStream);

fn raw_connect(path: &std::path::Path) -> Raw {
    use std::os::fd::FromRawFd;
    // std has no SOCK_SEQPACKET; libc does.
    // SAFETY: plain syscall; the fd is owned by the stream below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is a fresh socket nobody else owns.
    let s = unsafe { UnixStream::from_raw_fd(fd) };
    let p = path.as_os_str().as_encoded_bytes();
    // SAFETY: sockaddr_un is plain data; zeroed is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as _;
    for (d, b) in sa.sun_path.iter_mut().zip(p) {
        *d = *b as _;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + p.len() + 1;
    use std::os::fd::AsRawFd;
    // SAFETY: sa is valid for len bytes.
    let rc = unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len as _,
        )
    };
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    s.set_read_timeout(Some(T)).unwrap();
    Raw(s)
}

impl Raw {
    fn send(&mut self, b: &[u8]) {
        use std::io::Write;
        self.0.write_all(b).unwrap();
    }
    /// Sends `b` with `fd` attached (SCM_RIGHTS).
    fn send_fd(&mut self, b: &[u8], fd: i32) {
        use std::os::fd::AsRawFd;
        let mut iov = libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        };
        let mut control = [0u64; 4];
        // SAFETY: msghdr is plain data; zeroed is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: arithmetic only.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as _;
        // SAFETY: the control buffer has room for one header and one int.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            libc::CMSG_DATA(c).cast::<i32>().write_unaligned(fd);
        }
        // SAFETY: msg and what it points to live for the call.
        let n = unsafe { libc::sendmsg(self.0.as_raw_fd(), &msg, 0) };
        assert_eq!(n, b.len() as isize);
        // SAFETY: our own descriptor, sent (the peer has its copy).
        unsafe { libc::close(fd) };
    }
    /// The next message: (type, bytes).
    fn recv(&mut self) -> (u16, Vec<u8>) {
        use std::io::Read;
        let mut b = vec![0u8; 256];
        let n = self.0.read(&mut b).unwrap();
        b.truncate(n);
        (
            if n >= 2 {
                u16::from_le_bytes([b[0], b[1]])
            } else {
                0
            },
            b,
        )
    }
    fn reason(b: &[u8]) -> String {
        let s = &b[6..102];
        String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]).into()
    }
}

/// A memfd of `len` bytes (zeroed).
fn memfd(len: i64) -> i32 {
    // SAFETY: a valid NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"lie".as_ptr(), 0) };
    // SAFETY: plain syscall on our fd.
    assert_eq!(unsafe { libc::ftruncate(fd, len) }, 0);
    fd
}

/// A message a lying peer sends, and what goes with it: -1 nothing, 0 an eventfd, n > 0 a
/// memfd of n bytes.
type Sent = (Vec<u8>, i64);

fn add_region(index: u16, size: u64) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[0] = 4;
    b[2..4].copy_from_slice(&index.to_le_bytes());
    b[4..12].copy_from_slice(&size.to_le_bytes());
    b
}

fn add_ring(c2s: bool, index: u16, region: u16, offset: u32, log2: u8) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[0] = 5;
    b[2] = c2s as u8;
    b[4..6].copy_from_slice(&index.to_le_bytes());
    b[6..8].copy_from_slice(&region.to_le_bytes());
    b[8..12].copy_from_slice(&offset.to_le_bytes());
    b[12] = log2;
    b
}

fn init_msg(id: u32, secret: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[0] = 3;
    b[2..4].copy_from_slice(&0x0200u16.to_le_bytes());
    b[4..8].copy_from_slice(&id.to_le_bytes());
    b[9..9 + secret.len()].copy_from_slice(secret);
    b
}

#[test]
fn memif_server_refuses_malformed_and_lying_peers_and_stays_up() {
    if !require_tool(TESTPMD) {
        return;
    }
    let g = Group::new("mif3");
    let dir = TempDir::new("mif3");
    let path = dir.join("m.sock");
    // A socket file nobody listens on any more (a killed server's) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let eal = ports_eal(
        "mif3",
        &[format!(
            "net_memif0,role=server,socket={},socket-abstract=no,secret=pw",
            path.display()
        )],
    );
    let port = &ethdev::ports(&eal).unwrap()[0];
    // A second server on the same socket is refused, naming it.
    let other = ports_eal(
        "mif3b",
        &[format!(
            "net_memif0,role=server,socket={},socket-abstract=no",
            path.display()
        )],
    );
    let e = ethdev::ports(&other).unwrap_err().to_string();
    assert!(
        e.contains("in use by a live memif server") && e.contains("m.sock"),
        "{e}"
    );
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        ("short message", vec![vec![3u8; 10]], "Invalid message size"),
        ("long message", vec![vec![3u8; 200]], "Invalid message size"),
        (
            "unknown type",
            vec![{
                let mut b = vec![0u8; 128];
                b[0] = 42;
                b
            }],
            "unknown control message type 42",
        ),
        (
            "not INIT first",
            vec![{
                let mut b = vec![0u8; 128];
                b[0] = 6;
                b
            }],
            "INIT first",
        ),
        (
            "wrong version",
            vec![{
                let mut b = init_msg(0, b"pw");
                b[2] = 1;
                b[3] = 1;
                b
            }],
            "Incompatible memif version",
        ),
        ("wrong id", vec![init_msg(9, b"pw")], "ID not found"),
        ("no secret", vec![init_msg(0, b"")], "Secret required"),
        ("wrong secret", vec![init_msg(0, b"pv")], "Incorrect secret"),
        // ADD_REGION without its fd.
        (
            "region without fd",
            vec![init_msg(0, b"pw"), {
                let mut b = vec![0u8; 128];
                b[0] = 4;
                b[4] = 1;
                b
            }],
            "Missing region fd",
        ),
    ];
    // Peers that lie about their memory: (message, size of the memfd sent with it).
    let connect = {
        let mut b = vec![0u8; 128];
        b[0] = 6;
        b
    };
    let lies: Vec<(&str, Vec<Sent>, &str)> = vec![
        (
            "region larger than its file",
            vec![(add_region(0, 1 << 20), 4096)],
            "larger than its file",
        ),
        (
            "region out of sequence",
            vec![(add_region(1, 4096), 4096)],
            "Invalid region index 1",
        ),
        (
            "ring without eventfd",
            vec![
                (add_region(0, 4096), 4096),
                (add_ring(true, 0, 0, 0, 4), -1),
            ],
            "Missing interrupt fd",
        ),
        (
            "ring outside its region",
            vec![
                (add_region(0, 4096), 4096),
                (add_ring(true, 0, 0, 4000, 10), 0),
            ],
            "does not fit",
        ),
        (
            "ring in an unknown region",
            vec![(add_region(0, 4096), 4096), (add_ring(true, 0, 3, 0, 4), 0)],
            "unknown region 3",
        ),
        (
            "ring index beyond the queues",
            vec![
                (add_region(0, 4096), 4096),
                (add_ring(false, 5, 0, 0, 4), 0),
            ],
            "Invalid ring index 5",
        ),
        (
            "ring too large",
            vec![
                (add_region(0, 4096), 4096),
                (add_ring(true, 0, 0, 0, 15), 0),
            ],
            "Invalid ring size",
        ),
        (
            "ring without its cookie",
            vec![
                (add_region(0, 4096), 4096),
                (add_ring(true, 0, 0, 0, 4), 0),
                (connect.clone(), -1),
            ],
            "cookie",
        ),
    ];
    for (what, msgs, want) in lies {
        let mut c = raw_connect(&path);
        assert_eq!(c.recv().0, 2, "{what}: HELLO first");
        c.send(&init_msg(0, b"pw"));
        assert_eq!(c.recv().0, 1, "{what}: INIT acknowledged");
        let mut last = (0, Vec::new());
        for (m, fd_len) in &msgs {
            match *fd_len {
                -1 => c.send(m),
                // SAFETY: plain syscall.
                0 => c.send_fd(m, unsafe { libc::eventfd(0, 0) }),
                n => c.send_fd(m, memfd(n)),
            }
            last = c.recv();
            if last.0 != 1 {
                break;
            }
        }
        assert_eq!(last.0, 8, "{what}: DISCONNECT, got type {}", last.0);
        let reason = Raw::reason(&last.1);
        assert!(
            reason.contains(want),
            "{what}: {reason:?} should say {want:?}"
        );
        assert!(!port.link_up(), "{what}");
    }
    for (what, msgs, want) in cases {
        let mut c = raw_connect(&path);
        let (t, _) = c.recv();
        assert_eq!(t, 2, "{what}: HELLO first");
        let mut last = (0, Vec::new());
        for m in &msgs {
            c.send(m);
            last = c.recv();
            if last.0 != 1 {
                break;
            }
        }
        assert_eq!(last.0, 8, "{what}: DISCONNECT, got type {}", last.0);
        let reason = Raw::reason(&last.1);
        assert!(
            reason.contains(want),
            "{what}: {reason:?} should say {want:?}"
        );
        assert!(!port.link_up(), "{what}");
    }
    // A peer that completes the handshake, then writes descriptors that point outside its
    // memory and a head beyond its ring: each bad frame is counted, good ones arrive, and
    // shoal reads nothing outside the region.
    let mut c = raw_connect(&path);
    assert_eq!(c.recv().0, 2);
    c.send(&init_msg(0, b"pw"));
    assert_eq!(c.recv().0, 1);
    const LEN: usize = 65536;
    let region = memfd(LEN as i64);
    // SAFETY: a fresh shared mapping of the memfd, LEN bytes, unmapped below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            region,
            0,
        )
    } as *mut u8;
    assert_ne!(base as *mut libc::c_void, libc::MAP_FAILED);
    // SAFETY: the mapping is LEN bytes and only this test and the port use it.
    let mem = unsafe { std::slice::from_raw_parts_mut(base, LEN) };
    for ring in [0usize, 512] {
        mem[ring..ring + 4].copy_from_slice(&0x3E31F20u32.to_le_bytes());
    }
    c.send_fd(&add_region(0, LEN as u64), region);
    assert_eq!(c.recv().0, 1);
    // SAFETY: plain syscall.
    c.send_fd(&add_ring(true, 0, 0, 0, 4), unsafe { libc::eventfd(0, 0) });
    assert_eq!(c.recv().0, 1);
    // SAFETY: plain syscall.
    c.send_fd(&add_ring(false, 0, 0, 512, 4), unsafe {
        libc::eventfd(0, 0)
    });
    assert_eq!(c.recv().0, 1);
    c.send(&connect);
    assert_eq!(c.recv().0, 7, "CONNECTED");
    eventually("the link to come up", T, || port.link_up());
    let good = [frame(1), frame(2)];
    mem[4096..4096 + good[0].len()].copy_from_slice(&good[0]);
    mem[8192..8192 + good[1].len()].copy_from_slice(&good[1]);
    let desc = |mem: &mut [u8], slot: usize, region: u16, len: u32, off: u32| {
        let d = 128 + 16 * slot;
        mem[d..d + 2].copy_from_slice(&0u16.to_le_bytes());
        mem[d + 2..d + 4].copy_from_slice(&region.to_le_bytes());
        mem[d + 4..d + 8].copy_from_slice(&len.to_le_bytes());
        mem[d + 8..d + 12].copy_from_slice(&off.to_le_bytes());
    };
    desc(mem, 0, 0, good[0].len() as u32, 4096);
    desc(mem, 1, 0, 100, (LEN - 50) as u32); // runs past the region
    desc(mem, 2, 7, 60, 0); // a region that does not exist
    desc(mem, 3, 0, 9000, 0); // longer than an mbuf
    desc(mem, 4, 0, good[1].len() as u32, 8192);
    let head = |mem: &mut [u8], ring: usize, v: u16| {
        mem[ring + 6..ring + 8].copy_from_slice(&v.to_le_bytes())
    };
    head(mem, 0, 5);
    let mut got = Vec::new();
    eventually("the good frames", T, || {
        let mut b = MbufBatch::new();
        port.rx_burst(QueueId(0), &mut b, 32);
        got.extend(b.iter().map(|m| m.data().to_vec()));
        got.len() >= 2
    });
    assert_eq!(got, good.to_vec());
    assert_eq!(port.stats().ierrors, 3, "each bad descriptor counted");
    assert_eq!(
        u16::from_le_bytes([mem[64], mem[65]]),
        5,
        "tail moved past them"
    );
    // A head that claims more than the ring holds: ignored and counted.
    head(mem, 0, 5 + 1000);
    let mut b = MbufBatch::new();
    assert_eq!(port.rx_burst(QueueId(0), &mut b, 32), 0);
    assert_eq!(port.stats().ierrors, 4);
    drop(c);
    eventually("the link to go down", T, || !port.link_up());
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(base.cast(), LEN) };
    port.reset_stats();

    // After all that, a real peer connects and works.
    let mut tp = testpmd(
        &g,
        &format!(
            "net_memif0,role=client,socket={},socket-abstract=no,secret=pw",
            path.display()
        ),
        &[],
    );
    eventually("the memif link to come up", T, || port.link_up());
    check_round_trip(port, &mut tp, 300);
}

/// Frames a secondary echoes in `shoal_to_shoal_two_queues_one_served_by_a_secondary`.
const ECHOED: usize = 700;

fn run_child(role: &str) {
    let eal = init(&child_prefix(), &["--proc-type=secondary", "-l", "1"]).expect("eal");
    let port = ethdev::ports(&eal).unwrap().remove(0);
    println!("echo ready");
    if role == "echo_forever" {
        // Echo queue 0 until killed.
        loop {
            let mut b = MbufBatch::new();
            if port.rx_burst(QueueId(0), &mut b, 32) == 0 {
                std::thread::yield_now();
            }
            while !b.is_empty() {
                port.tx_burst(QueueId(0), &mut b);
            }
        }
    }
    assert_eq!(role, "echo");
    // Echo what queue 1 receives, on queue 1, until ECHOED frames went back.
    let mut done = 0;
    let deadline = Instant::now() + T;
    while done < ECHOED && Instant::now() < deadline {
        let mut b = MbufBatch::new();
        let n = port.rx_burst(QueueId(1), &mut b, 32);
        while !b.is_empty() && Instant::now() < deadline {
            port.tx_burst(QueueId(1), &mut b);
        }
        done += n;
        if n == 0 {
            std::thread::yield_now();
        }
    }
    println!("echoed {done}, link up {}", port.link_up());
}

#[test]
fn shoal_to_shoal_two_queues_one_served_by_a_secondary() {
    child_or!(run_child);
    let g = Group::new("mif4");
    let name = format!("shoal-test-mif4-{}", std::process::id());
    // Group A: the server, whose queue 1 a secondary serves and queue 0 the primary.
    let a = init(
        g.prefix(),
        &[
            "--no-huge",
            "-l",
            "0",
            "--vdev",
            &format!("net_memif0,role=server,socket={name},queues=2"),
        ],
    )
    .expect("eal");
    let pa = ethdev::ports(&a).unwrap().remove(0);
    let mut child = g.spawn_self(
        "shoal_to_shoal_two_queues_one_served_by_a_secondary",
        "echo",
        &[],
    );
    child.wait_for("echo ready", T);
    // Group B: the client.
    let b = ports_eal(
        "mif4b",
        &[format!(
            "net_memif0,role=client,socket={name},queues=2,rsize=9"
        )],
    );
    let pb = ethdev::ports(&b).unwrap().remove(0);
    eventually("the memif link to come up", T, || {
        pb.link_up() && pa.link_up()
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echo0 = {
        let (pa, stop) = (pa.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut b = MbufBatch::new();
                if pa.rx_burst(QueueId(0), &mut b, 32) == 0 {
                    std::thread::yield_now();
                }
                while !b.is_empty() {
                    pa.tx_burst(QueueId(0), &mut b);
                }
            }
        })
    };
    let f1: Vec<Vec<u8>> = (0..ECHOED as u32).map(|i| frame(i * 3 + 1)).collect();
    let back1 = send_and_collect(&pb, 1, &f1);
    let f0: Vec<Vec<u8>> = (0..1000).map(|i| frame(i * 3)).collect();
    let back0 = send_and_collect(&pb, 0, &f0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echo0.join().unwrap();
    let out = child.wait_for("echoed", T);
    assert_eq!(out.trim(), format!("echoed {ECHOED}, link up true"));
    assert_eq!(child.wait_exit(T), Some(0), "{}", child.output());
    assert!(
        back1 == f1,
        "queue 1 (a secondary): {} of {} back, in order",
        back1.len(),
        f1.len()
    );
    assert!(
        back0 == f0,
        "queue 0 (the primary): {} of {} back, in order",
        back0.len(),
        f0.len()
    );
    let s = pb.stats();
    assert_eq!(s.rx_queues[1].packets, f1.len() as u64);
    assert_eq!(s.tx_queues[0].packets, f0.len() as u64);
    assert_eq!((s.ierrors, s.oerrors), (0, 0));
    let sa = pa.stats();
    assert_eq!(
        sa.rx_queues[1].packets,
        f1.len() as u64,
        "counted by the secondary in shared memory"
    );
    assert_eq!(sa.tx_queues[1].packets, f1.len() as u64);
    assert_eq!(sa.rx_queues[0].packets, f0.len() as u64);
}

/// Sends `frames` on queue 0 of `port` (at most 200 in flight) until every one came back,
/// ignoring frames that are not among them; returns those that came back, in order.
fn round_trip_ignoring_others(port: &Port, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let want: std::collections::HashSet<&Vec<u8>> = frames.iter().collect();
    let pool = port.pool();
    let (mut back, mut next) = (Vec::new(), 0);
    let deadline = Instant::now() + T;
    while back.len() < frames.len() && Instant::now() < deadline {
        if next < frames.len() && next - back.len() < 200 {
            let mut b = MbufBatch::new();
            for f in frames[next..].iter().take(32) {
                let mut m = pool.alloc().expect("mbuf");
                m.append(f.len() as u16).unwrap().copy_from_slice(f);
                let _ = b.push(m);
            }
            next += port.tx_burst(QueueId(0), &mut b);
        }
        let mut b = MbufBatch::new();
        port.rx_burst(QueueId(0), &mut b, 32);
        back.extend(
            b.iter()
                .map(|m| m.data().to_vec())
                .filter(|f| want.contains(f)),
        );
    }
    back
}

#[test]
fn a_secondary_killed_while_echoing_strands_no_buffer_and_the_next_resumes() {
    child_or!(run_child);
    let g = Group::new("mif5");
    let name = format!("shoal-test-mif5-{}", std::process::id());
    let a = init(
        g.prefix(),
        &[
            "--no-huge",
            "-l",
            "0",
            "--vdev",
            &format!("net_memif0,role=server,socket={name}"),
        ],
    )
    .expect("eal");
    let pa = ethdev::ports(&a).unwrap().remove(0);
    let baseline = pa.pool().in_use_count();
    let test = "a_secondary_killed_while_echoing_strands_no_buffer_and_the_next_resumes";
    let mut child = g.spawn_self(test, "echo_forever", &[]);
    child.wait_for("echo ready", T);
    let b = ports_eal("mif5b", &[format!("net_memif0,role=client,socket={name}")]);
    let pb = ethdev::ports(&b).unwrap().remove(0);
    eventually("the memif link to come up", T, || {
        pb.link_up() && pa.link_up()
    });
    let f1: Vec<Vec<u8>> = (0..500).map(frame).collect();
    assert!(
        round_trip_ignoring_others(&pb, &f1) == f1,
        "before the kill"
    );
    // Kill the echoing secondary while frames stream through it.
    let pool = pb.pool();
    let mut sent = 0;
    while sent < 150 {
        let mut batch = MbufBatch::new();
        let mut m = pool.alloc().unwrap();
        let f = frame(10_000 + sent);
        m.append(f.len() as u16).unwrap().copy_from_slice(&f);
        let _ = batch.push(m);
        sent += pb.tx_burst(QueueId(0), &mut batch) as u32;
    }
    child.kill9();
    eventually(
        "the reaper to return what the dead secondary held",
        T,
        || pa.pool().in_use_count() == baseline,
    );
    assert!(pa.pool().audit().is_ok(), "{:?}", pa.pool().audit());
    // The next secondary takes the queue over where the rings stand.
    let mut child = g.spawn_self(test, "echo_forever", &[]);
    child.wait_for("echo ready", T);
    let f2: Vec<Vec<u8>> = (0..500).map(|i| frame(20_000 + i)).collect();
    assert!(round_trip_ignoring_others(&pb, &f2) == f2, "after the kill");
    assert!(pa.link_up() && pb.link_up());
    let s = pa.stats();
    assert_eq!((s.ierrors, s.oerrors), (0, 0));
}

#[test]
fn memif_two_queues_with_testpmd_keep_each_queue_apart() {
    if !require_tool(TESTPMD) {
        return;
    }
    let g = Group::new("mif6");
    let name = format!("shoal-test-mif6-{}", std::process::id());
    let mut tp = testpmd(
        &g,
        &format!("net_memif0,role=server,socket={name}"),
        &["--rxq=2", "--txq=2"],
    );
    let eal = ports_eal(
        "mif6",
        &[format!("net_memif0,role=client,socket={name},queues=2")],
    );
    let port = &ethdev::ports(&eal).unwrap()[0];
    eventually("the memif link to come up", T, || port.link_up());
    // testpmd forwards rx queue q to tx queue q: what goes out on a queue comes back on it.
    let f0: Vec<Vec<u8>> = (0..400).map(|i| frame(2 * i)).collect();
    let f1: Vec<Vec<u8>> = (0..400).map(|i| frame(2 * i + 1)).collect();
    assert!(send_and_collect(port, 1, &f1) == f1, "queue 1");
    assert!(send_and_collect(port, 0, &f0) == f0, "queue 0");
    let s = port.stats();
    assert_eq!((s.rx_queues[0].packets, s.rx_queues[1].packets), (400, 400));
    let (rxp, _, txp, _) = testpmd_stats(&mut tp, 1);
    assert_eq!((rxp, txp), (800, 800), "testpmd's counters");
}
