//! Cross-process tests of the IPC channel (`shoal::mp`).
//!
//! The test binary re-executes itself as the secondary, as DPDK's `process_dup` does:
//! `current_exe() <test> --exact --nocapture` with `SHOAL_TEST_ROLE=secondary` and
//! `SHOAL_TEST_DIR=<runtime dir>`; each test body branches on the role. Every wait is bounded.
#![allow(unsafe_code)] // pipe2 for the fd-passing test

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use shoal::mp::{Error, Message, Mp, MpConfig, Peer, Role};
use shoal_testkit::{block_on, eventually, pin_to, role, Group, Proc, TempDir};

/// Upper bound of every wait; never reached when things work.
const T: Duration = Duration::from_secs(20);

fn is_secondary() -> bool {
    role().as_deref() == Some("secondary")
}

fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var("SHOAL_TEST_DIR").expect("SHOAL_TEST_DIR is set for secondaries"))
}

fn start(dir: &Path, role: Role) -> Mp {
    Mp::start(MpConfig {
        dir: dir.to_path_buf(),
        role,
    })
    .unwrap()
}

/// Runs `test` again as a secondary in `dir`.
fn spawn(group: &Group, test: &str, dir: &TempDir, env: &[(&str, &str)]) -> Proc {
    let d = dir.path().to_str().unwrap().to_owned();
    let mut all = vec![("SHOAL_TEST_DIR", d.as_str())];
    all.extend_from_slice(env);
    let mut p = group.spawn_self(test, "secondary", &all);
    p.wait_for("secondary ready", T);
    p
}

/// The secondary's side of the protocol: registers `quit`, then the test's actions.
struct Secondary {
    mp: Mp,
    quit: mpsc::Receiver<()>,
}

impl Secondary {
    fn start() -> Secondary {
        let mp = start(&child_dir(), Role::Secondary);
        let (tx, quit) = mpsc::channel();
        let tx = Mutex::new(tx);
        mp.action_register("quit", move |_, _| {
            let _ = tx.lock().unwrap().send(());
        })
        .unwrap();
        Secondary { mp, quit }
    }

    fn ready(&self) {
        self.mp.mark_init_complete();
        println!("secondary ready");
    }

    fn wait_quit(self) {
        self.quit
            .recv_timeout(T)
            .expect("the primary never said quit");
        println!("secondary quits");
    }
}

/// Broadcasts `quit` and checks that every secondary exits cleanly.
fn quit_all(mp: &Mp, procs: &mut [Proc]) {
    mp.sendmsg(&Message::new("quit", b"").unwrap()).unwrap();
    for p in procs.iter_mut() {
        let code = p.wait_exit(T);
        assert_eq!(
            code,
            Some(0),
            "secondary {} failed:\n{}",
            p.pid(),
            p.output()
        );
    }
}

fn echo(mp: &Mp, name: &str) {
    mp.action_register(name, |m, peer| {
        let mut param = b"re:".to_vec();
        param.extend_from_slice(m.param());
        peer.reply(&Message::new(m.name(), &param).unwrap())
            .unwrap();
    })
    .unwrap();
}

fn async_sync(mp: &Mp, req: &Message) -> Result<shoal::mp::Reply, Error> {
    let (tx, rx) = mpsc::channel();
    mp.request_async(req, T, move |r| tx.send(r).unwrap())
        .unwrap();
    rx.recv_timeout(T + Duration::from_secs(5))
        .expect("async callback never ran")
}

fn msg(name: &str, param: &[u8]) -> Message {
    Message::new(name, param).unwrap()
}

#[test]
fn every_message_kind_crosses_between_processes() {
    const NAME: &str = "every_message_kind_crosses_between_processes";
    if is_secondary() {
        let s = Secondary::start();
        echo(&s.mp, "echo_s");
        s.mp.action_register("note_s", |m, peer| {
            println!(
                "note_s got {} from {}",
                String::from_utf8_lossy(m.param()),
                peer.name()
            );
        })
        .unwrap();
        s.ready();
        let mp = &s.mp;
        let r = mp.request_sync(&msg("echo", b"sync"), T).unwrap();
        assert_eq!(
            (r.nb_sent, r.nb_received, r.msgs[0].param()),
            (1, 1, &b"re:sync"[..])
        );
        assert_eq!(r.msgs[0].sender().unwrap().as_str(), "mp_socket");
        let r = async_sync(mp, &msg("echo", b"async")).unwrap();
        assert_eq!(r.msgs[0].param(), b"re:async");
        let r = block_on(mp.request_future(&msg("echo", b"future"), T), T).unwrap();
        assert_eq!(r.msgs[0].param(), b"re:future");
        assert_eq!(mp.sendmsg(&msg("note", b"one-way")).unwrap(), 1);
        let r = mp.request_sync(&msg("shy", b""), T).unwrap();
        assert_eq!(
            (r.nb_sent, r.nb_received),
            (0, 0),
            "an IGN answer is not counted"
        );
        match mp.request_sync(&msg("nothing", b""), T) {
            Err(Error::NoHandler { peers, .. }) => assert_eq!(peers[0].as_str(), "mp_socket"),
            other => panic!("expected NoHandler, got {other:?}"),
        }
        println!("secondary done");
        s.wait_quit();
        return;
    }

    let dir = TempDir::new("kinds");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    echo(&p, "echo");
    let (tx, notes) = mpsc::channel();
    let tx = Mutex::new(tx);
    p.action_register("note", move |m, peer| {
        tx.lock()
            .unwrap()
            .send((m.param().to_vec(), peer.pid(), peer.name().clone()))
            .unwrap();
    })
    .unwrap();
    p.action_register("shy", |_, peer| peer.ignore().unwrap())
        .unwrap();
    p.mark_init_complete();

    let mut child = spawn(&group, NAME, &dir, &[]);
    child.wait_for("secondary done", T);
    let (param, pid, from) = notes.recv_timeout(T).unwrap();
    assert_eq!(param, b"one-way");
    assert_eq!(pid as u32, child.pid());
    assert_eq!(from.pid(), Some(child.pid()));

    // And from the primary to the secondary.
    let r = p.request_sync(&msg("echo_s", b"down"), T).unwrap();
    assert_eq!(
        (r.nb_sent, r.nb_received, r.msgs[0].param()),
        (1, 1, &b"re:down"[..])
    );
    assert_eq!(r.msgs[0].sender().unwrap().pid(), Some(child.pid()));
    assert_eq!(
        async_sync(&p, &msg("echo_s", b"a")).unwrap().msgs[0].param(),
        b"re:a"
    );
    assert_eq!(
        block_on(p.request_future(&msg("echo_s", b"f"), T), T)
            .unwrap()
            .msgs[0]
            .param(),
        b"re:f"
    );
    assert_eq!(p.sendmsg(&msg("note_s", b"hello")).unwrap(), 1);
    child.wait_for("note_s got hello from mp_socket", T);
    match p.request_sync(&msg("nothing", b""), T) {
        Err(Error::NoHandler { peers, .. }) => assert_eq!(peers[0].pid(), Some(child.pid())),
        other => panic!("expected NoHandler, got {other:?}"),
    }
    let st = p.stats();
    assert_eq!(
        (
            st.malformed,
            st.rejected_credentials,
            st.dropped_unknown_reply
        ),
        (0, 0, 0),
        "{st:?}"
    );
    quit_all(&p, &mut [child]);
}

#[test]
fn a_broadcast_gathers_the_replies_of_every_secondary() {
    const NAME: &str = "a_broadcast_gathers_the_replies_of_every_secondary";
    if is_secondary() {
        let s = Secondary::start();
        s.mp.action_register("who", |m, peer| {
            let pid = std::process::id().to_string();
            peer.reply(&Message::new(m.name(), pid.as_bytes()).unwrap())
                .unwrap();
        })
        .unwrap();
        s.ready();
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("bcast");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    p.mark_init_complete();
    let mut kids: Vec<Proc> = (0..3).map(|_| spawn(&group, NAME, &dir, &[])).collect();
    let pids: BTreeSet<u32> = kids.iter().map(|k| k.pid()).collect();
    let answered = |r: &shoal::mp::Reply| -> BTreeSet<u32> {
        r.msgs
            .iter()
            .map(|m| std::str::from_utf8(m.param()).unwrap().parse().unwrap())
            .collect()
    };
    let r = p.request_sync(&msg("who", b""), T).unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (3, 3));
    assert_eq!(answered(&r), pids);
    let senders: BTreeSet<u32> = r
        .msgs
        .iter()
        .map(|m| m.sender().unwrap().pid().unwrap())
        .collect();
    assert_eq!(senders, pids);
    let r = async_sync(&p, &msg("who", b"")).unwrap();
    assert_eq!(answered(&r), pids);
    let r = block_on(p.request_future(&msg("who", b""), T), T).unwrap();
    assert_eq!(answered(&r), pids);
    assert_eq!(p.sendmsg(&msg("quit", b"")).unwrap(), 3);
    for k in kids.iter_mut() {
        assert_eq!(k.wait_exit(T), Some(0), "{}", k.output());
    }
}

#[test]
fn a_silent_secondary_is_named_in_the_timeout_and_its_late_reply_counted() {
    const NAME: &str = "a_silent_secondary_is_named_in_the_timeout_and_its_late_reply_counted";
    if is_secondary() {
        let s = Secondary::start();
        let silent = std::env::var("SILENT").is_ok();
        let kept: Arc<Mutex<Vec<Peer>>> = Arc::default();
        let k = Arc::clone(&kept);
        s.mp.action_register("q", move |m, peer| {
            if silent {
                k.lock().unwrap().push(peer); // answer later, when told
            } else {
                peer.reply(&Message::new(m.name(), b"here").unwrap())
                    .unwrap();
            }
        })
        .unwrap();
        s.mp.action_register("answer_now", move |_, _| {
            for peer in kept.lock().unwrap().drain(..) {
                peer.reply(&Message::new("q", b"late").unwrap()).unwrap();
            }
            println!("late replies sent");
        })
        .unwrap();
        s.ready();
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("silent");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    p.mark_init_complete();
    let talker = spawn(&group, NAME, &dir, &[]);
    let mut mute = spawn(&group, NAME, &dir, &[("SILENT", "1")]);
    match p.request_sync(&msg("q", b""), Duration::from_millis(300)) {
        Err(Error::Timeout {
            name,
            missing,
            partial,
            ..
        }) => {
            assert_eq!(name, "q");
            assert_eq!(missing.len(), 1);
            assert_eq!(
                missing[0].pid(),
                Some(mute.pid()),
                "the wrong peer was named: {missing:?}"
            );
            assert_eq!((partial.nb_sent, partial.nb_received), (2, 1));
            assert_eq!(partial.msgs[0].sender().unwrap().pid(), Some(talker.pid()));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(p.stats().timeouts, 1);
    // The reply that comes after the timeout answers nothing: dropped and counted.
    p.sendmsg(&msg("answer_now", b"")).unwrap();
    mute.wait_for("late replies sent", T);
    let before = p.stats().dropped_unknown_reply;
    let _ = p.request_sync(&msg("q", b""), Duration::from_millis(100));
    assert_eq!(p.stats().dropped_unknown_reply, before + 1);
    quit_all(&p, &mut [talker, mute]);
}

#[test]
fn a_secondary_killed_mid_request_is_skipped_and_its_socket_removed() {
    const NAME: &str = "a_secondary_killed_mid_request_is_skipped_and_its_socket_removed";
    if is_secondary() {
        let s = Secondary::start();
        let stuck = std::env::var("STUCK").is_ok();
        s.mp.action_register("q", move |m, peer| {
            if stuck {
                println!("got q, hanging");
                std::thread::sleep(T); // killed before this ends
            }
            peer.reply(&Message::new(m.name(), b"ok").unwrap()).unwrap();
        })
        .unwrap();
        s.ready();
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("killed");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    p.mark_init_complete();
    let alive = spawn(&group, NAME, &dir, &[]);
    for asynchronous in [false, true] {
        let mut victim = spawn(&group, NAME, &dir, &[("STUCK", "1")]);
        let victim_sock = dir
            .path()
            .canonicalize()
            .unwrap()
            .join(format!("mp_socket_{}", victim.pid()));
        assert!(victim_sock.exists());
        let p2 = p.clone();
        let req = std::thread::spawn(move || {
            let m = msg("q", b"");
            // Long timeout: the death must be noticed well before it.
            if asynchronous {
                block_on(p2.request_future(&m, Duration::from_secs(60)), T)
            } else {
                p2.request_sync(&m, Duration::from_secs(60))
            }
        });
        victim.wait_for("got q, hanging", T);
        let victim_pid = victim.pid();
        victim.kill9();
        let r = req
            .join()
            .unwrap()
            .expect("the request failed instead of skipping the dead peer");
        assert_eq!((r.nb_sent, r.nb_received), (1, 1), "{r:?}");
        assert_eq!(r.gone.len(), 1);
        assert_eq!(r.gone[0].pid(), Some(victim_pid));
        assert!(
            !victim_sock.exists(),
            "the dead secondary's socket file was left behind"
        );
    }
    assert_eq!(p.stats().dead_peers, 2);
    assert_eq!(p.stats().timeouts, 0);
    quit_all(&p, &mut [alive]);
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

#[test]
fn pipe_descriptors_work_across_processes() {
    const NAME: &str = "pipe_descriptors_work_across_processes";
    if is_secondary() {
        let s = Secondary::start();
        // Primary -> secondary: we get a write end and write into it.
        s.mp.action_register("take_w", |mut m, _peer| {
            let w = m.take_fds().pop().expect("a descriptor");
            let mut w = std::fs::File::from(w);
            write!(w, "written by {}", std::process::id()).unwrap();
            println!("wrote into the primary's pipe");
        })
        .unwrap();
        s.ready();
        // Secondary -> primary: we send a read end with data waiting behind it.
        let (r, w) = pipe();
        let mut w = std::fs::File::from(w);
        w.write_all(b"from the secondary").unwrap();
        drop(w);
        let rep =
            s.mp.request_sync(&Message::with_fds("take_r", b"", vec![r]).unwrap(), T)
                .unwrap();
        assert_eq!(rep.msgs[0].param(), b"from the secondary");
        println!("secondary done");
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("pipe");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    p.action_register("take_r", |mut m, peer| {
        let r = m.take_fds().pop().expect("a descriptor");
        let mut text = Vec::new();
        std::fs::File::from(r).read_to_end(&mut text).unwrap();
        peer.reply(&Message::new(m.name(), &text).unwrap()).unwrap();
    })
    .unwrap();
    p.mark_init_complete();
    let mut child = spawn(&group, NAME, &dir, &[]);
    child.wait_for("secondary done", T);

    let (r, w) = pipe();
    assert_eq!(
        p.sendmsg(&Message::with_fds("take_w", b"", vec![w]).unwrap())
            .unwrap(),
        1
    );
    // Our copy of the write end went with the message; the secondary's closes when it drops.
    child.wait_for("wrote into the primary's pipe", T);
    let mut text = String::new();
    std::fs::File::from(r).read_to_string(&mut text).unwrap();
    assert_eq!(text, format!("written by {}", child.pid()));
    quit_all(&p, &mut [child]);
}

/// Where the IPC thread (`shoal-mp`) of `pid` is: its /proc/<pid>/task/<tid>/syscall, that is
/// `running`, or the number of the system call it waits in and the call's arguments.
fn ipc_thread_syscall(pid: u32) -> String {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "shoal-mp" {
            return std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        }
    }
    panic!("process {pid} has no shoal-mp thread");
}

/// True when a syscall line says: waiting in `ppoll` with no timeout (the third argument, the
/// timeout's address, is null), so that only a datagram or a kick can wake the thread.
fn blocked_in_ppoll_for_good(syscall: &str) -> bool {
    let f: Vec<&str> = syscall.split_whitespace().collect();
    f.first() == Some(&libc::SYS_ppoll.to_string().as_str()) && f.get(3) == Some(&"0x0")
}

#[test]
fn an_idle_channel_blocks_until_a_message_comes() {
    const NAME: &str = "an_idle_channel_blocks_until_a_message_comes";
    if is_secondary() {
        let s = Secondary::start();
        echo(&s.mp, "echo");
        s.ready();
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("idle");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    echo(&p, "echo");
    p.mark_init_complete();
    let child = spawn(&group, NAME, &dir, &[]);
    // Some traffic first, so that the IPC threads went through their polling windows.
    for _ in 0..100 {
        p.request_sync(&msg("echo", b""), T).unwrap();
    }
    // Idle, the secondary's IPC thread neither spins nor sleeps in a loop: it waits in ppoll
    // with no timeout, and a request wakes it.
    eventually(
        "the secondary's IPC thread to block in ppoll with no timeout",
        T,
        || blocked_in_ppoll_for_good(&ipc_thread_syscall(child.pid())),
    );
    let r = p.request_sync(&msg("echo", b"awake?"), T).unwrap();
    assert_eq!(r.msgs[0].param(), b"re:awake?");
    quit_all(&p, &mut [child]);
}

/// A datagram in shoal's wire format (see `mp/wire.rs`), built by hand.
fn handmade(kind: u8, id: u64, name: &str, param: &[u8]) -> Vec<u8> {
    let mut b = b"SHmp".to_vec();
    b.extend_from_slice(&[1, kind, name.len() as u8, 0]);
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(param.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(param);
    b
}

#[test]
fn garbage_from_another_process_is_counted_and_ipc_keeps_working() {
    const NAME: &str = "garbage_from_another_process_is_counted_and_ipc_keeps_working";
    if is_secondary() {
        let s = Secondary::start();
        s.ready();
        let primary = child_dir().join("mp_socket");
        let raw = UnixDatagram::unbound().unwrap();
        let good = handmade(0, 0, "note", b"a well-formed one-way message");
        let mut sent = 0;
        for n in 0..good.len() {
            raw.send_to(&good[..n], &primary).unwrap();
            sent += 1;
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..100 {
            let len = (x % 200) as usize + 1;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            raw.send_to(&bytes, &primary).unwrap();
            sent += 1;
            if i % 8 == 0 {
                // Leave the primary's queue (net.unix.max_dgram_qlen) room to drain.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // A good message from the raw socket, then a request through the channel.
        raw.send_to(&good, &primary).unwrap();
        let r = s.mp.request_sync(&msg("echo", b"still there?"), T).unwrap();
        assert_eq!(r.msgs[0].param(), b"re:still there?");
        println!("sent {sent} bad datagrams");
        s.wait_quit();
        return;
    }
    let dir = TempDir::new("garbage");
    let group = Group::new("mp");
    let p = start(dir.path(), Role::Primary);
    echo(&p, "echo");
    let notes = Arc::new(AtomicUsize::new(0));
    let n2 = Arc::clone(&notes);
    p.action_register("note", move |_, _| {
        n2.fetch_add(1, SeqCst);
    })
    .unwrap();
    p.mark_init_complete();
    let mut child = spawn(&group, NAME, &dir, &[]);
    let line = child.wait_for("bad datagrams", T);
    let sent: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    eventually("every bad datagram to be counted", T, || {
        p.stats().malformed >= sent
    });
    assert_eq!(p.stats().malformed, sent, "{:?}", p.stats());
    assert_eq!(
        notes.load(SeqCst),
        1,
        "the good datagram after the bad ones was lost"
    );
    quit_all(&p, &mut [child]);
}

// ---------------------------------------------------------------------------------------------
// Latency: `cargo test --release -p shoal --test mp -- --ignored --nocapture sync_round_trip`

/// Median one-way cache-line latency between CPU 0 and CPU 1, in ns (benchmarking.md's probe).
fn c2c_one_way_ns() -> f64 {
    use std::sync::atomic::{
        AtomicU64,
        Ordering::{Acquire, Release},
    };
    const ROUNDS: u64 = 2000;
    let flag = Arc::new(AtomicU64::new(0));
    let f2 = Arc::clone(&flag);
    let peer = std::thread::spawn(move || {
        pin_to(1);
        for batch in 0..15u64 {
            for i in 0..ROUNDS {
                let base = (batch * ROUNDS + i) * 2;
                while f2.load(Acquire) != base + 1 {
                    std::hint::spin_loop();
                }
                f2.store(base + 2, Release);
            }
        }
    });
    pin_to(0);
    let mut samples = Vec::new();
    for batch in 0..15u64 {
        let t0 = Instant::now();
        for i in 0..ROUNDS {
            let base = (batch * ROUNDS + i) * 2;
            flag.store(base + 1, Release);
            while flag.load(Acquire) != base + 2 {
                std::hint::spin_loop();
            }
        }
        samples.push(t0.elapsed().as_nanos() as f64 / (2 * ROUNDS) as f64);
    }
    peer.join().unwrap();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn measure(mp: &Mp, n: usize) -> (f64, f64) {
    let req = msg("rtt", b"0123456789abcdef");
    for _ in 0..n / 10 {
        mp.request_sync(&req, T).unwrap();
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let r = mp.request_sync(&req, T).unwrap();
        v.push(t0.elapsed().as_nanos() as f64 / 1000.0);
        assert_eq!(r.nb_received, 1);
    }
    percentiles(v)
}

/// The secondary of the ignored latency test: like [`spawn`], but the child must be told
/// `--ignored` too.
struct BenchChild {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl BenchChild {
    fn spawn(test: &str, dir: &TempDir, cpu: &str) -> BenchChild {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                test,
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "--ignored",
            ])
            .env("SHOAL_TEST_ROLE", "secondary")
            .env("SHOAL_TEST_DIR", dir.path())
            .env("CPU", cpu)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        BenchChild { child, lines }
    }

    fn line_with(&mut self, pat: &str) -> String {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(pat) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {pat:?} from the secondary: {e}"),
            }
        }
    }
}

impl Drop for BenchChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture, release build"]
fn sync_round_trip_latency() {
    const NAME: &str = "sync_round_trip_latency";
    const N: usize = 20_000;
    if is_secondary() {
        pin_to(std::env::var("CPU").unwrap().parse().unwrap());
        let s = Secondary::start();
        echo(&s.mp, "rtt");
        s.ready();
        let (p50, p99) = measure(&s.mp, N);
        println!("secondary->primary p50 {p50:.1} p99 {p99:.1}");
        s.wait_quit();
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (case, cpu) in [("cross-cpu", "1"), ("same-cpu", "0")] {
        if cpu == "1" && cpus < 2 {
            continue;
        }
        let before = if cpus >= 2 { c2c_one_way_ns() } else { 0.0 };
        let dir = TempDir::new("rtt");
        // Pin before starting, so that the IPC thread inherits CPU 0.
        pin_to(0);
        let p = start(dir.path(), Role::Primary);
        echo(&p, "rtt");
        p.mark_init_complete();
        let mut child = BenchChild::spawn(NAME, &dir, cpu);
        let line = child.line_with("secondary->primary p50");
        let f: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (p2s50, p2s99) = measure(&p, N);
        p.sendmsg(&msg("quit", b"")).unwrap();
        child.line_with("secondary quits");
        drop(p);
        let after = if cpus >= 2 { c2c_one_way_ns() } else { 0.0 };
        let tag = |ns: f64| if ns < 80.0 { "near" } else { "far" };
        let placement = if case == "same-cpu" {
            "one-cpu".to_owned()
        } else if tag(before) == tag(after) {
            tag(before).to_owned()
        } else {
            "mixed".to_owned()
        };
        for (dirn, p50, p99) in [
            ("secondary->primary", f[0], f[1]),
            ("primary->secondary", p2s50, p2s99),
        ] {
            println!(
                "{{\"bench\":\"mp_request_sync\",\"case\":\"{dirn} {case}\",\"unit\":\"us\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"placement\":\"{placement}\",\"c2c_ns\":[{before:.0},{after:.0}]}}"
            );
        }
    }
}
