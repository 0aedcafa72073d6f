//! In-process tests of the IPC channel: one process plays the primary and a secondary (their
//! sockets differ), and raw datagrams probe the parser and the credential check.
//! The cross-process tests are in `tests/mp.rs`.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::wire::{self, Kind};
use super::*;
use crate::sys::unix_dgram::{self as dgram, Addr, Creds};
use shoal_testkit::{eventually, TempDir};

/// [`shoal_testkit::block_on`], bounded by two minutes.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    shoal_testkit::block_on(f, Duration::from_secs(120))
}

const LONG: Duration = Duration::from_secs(10);

fn pair(dir: &TempDir) -> (Mp, Mp) {
    let p = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Primary,
    })
    .unwrap();
    let s = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Secondary,
    })
    .unwrap();
    p.mark_init_complete();
    s.mark_init_complete();
    (p, s)
}

fn echo(mp: &Mp, name: &str) {
    mp.action_register(name, |msg, peer| {
        let mut param = b"re:".to_vec();
        param.extend_from_slice(msg.param());
        peer.reply(&Message::new(msg.name(), &param).unwrap())
            .unwrap();
    })
    .unwrap();
}

/// Waits, bounded, until `cond` holds.
fn raw_send(to: &Path, bytes: &[u8]) {
    let s = UnixDatagram::unbound().unwrap();
    s.send_to(bytes, to).unwrap();
}

#[test]
fn sockets_are_named_as_dpdk_and_private() {
    let dir = TempDir::new("names");
    let (p, s) = pair(&dir);
    assert_eq!(
        p.socket_path(),
        dir.path().canonicalize().unwrap().join("mp_socket")
    );
    assert_eq!(
        s.socket_path().file_name().unwrap().to_str().unwrap(),
        format!("mp_socket_{}", std::process::id())
    );
    for m in [&p, &s] {
        let mode = std::fs::metadata(m.socket_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let sp = s.socket_path().to_owned();
    drop(s);
    assert!(!sp.exists(), "a secondary's socket file outlived it");
    let pp = p.socket_path().to_owned();
    p.shutdown();
    assert!(!pp.exists());
}

#[test]
fn a_live_socket_is_not_taken_over_and_a_stale_one_is() {
    let dir = TempDir::new("bind");
    let p = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Primary,
    })
    .unwrap();
    let again = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Primary,
    });
    assert!(matches!(again, Err(Error::AddrInUse { .. })), "{again:?}");
    drop(p);
    // A socket file left by a process that died.
    let stale = dir.path().join(PRIMARY_SOCKET);
    drop(UnixDatagram::bind(&stale).unwrap());
    assert!(stale.exists());
    let p = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Primary,
    })
    .unwrap();
    assert!(p.socket_path().exists());
}

#[test]
fn requests_and_messages_go_both_ways() {
    let dir = TempDir::new("both");
    let (p, s) = pair(&dir);
    echo(&p, "to_primary");
    echo(&s, "to_secondary");

    let r = s
        .request_sync(&Message::new("to_primary", b"x").unwrap(), LONG)
        .unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (1, 1));
    assert_eq!(r.msgs[0].param(), b"re:x");
    assert_eq!(r.msgs[0].sender().unwrap().as_str(), "mp_socket");

    let r = p
        .request_sync(&Message::new("to_secondary", b"y").unwrap(), LONG)
        .unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (1, 1));
    assert_eq!(r.msgs[0].param(), b"re:y");
    assert_eq!(r.msgs[0].sender().unwrap().pid(), Some(std::process::id()));

    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    p.action_register("note", move |m, peer| {
        tx.send(("p", m.param().to_vec(), peer.is_request()))
            .unwrap()
    })
    .unwrap();
    s.action_register("note", move |m, peer| {
        tx2.send(("s", m.param().to_vec(), peer.is_request()))
            .unwrap()
    })
    .unwrap();
    assert_eq!(s.sendmsg(&Message::new("note", b"up").unwrap()).unwrap(), 1);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ("p", b"up".to_vec(), false));
    assert_eq!(
        p.sendmsg(&Message::new("note", b"down").unwrap()).unwrap(),
        1
    );
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        ("s", b"down".to_vec(), false)
    );

    let st = s.stats();
    assert!(st.sent >= 2 && st.received >= 2, "{st:?}");
    assert_eq!(
        (
            st.malformed,
            st.dropped_unknown_reply,
            st.rejected_credentials
        ),
        (0, 0, 0)
    );
}

#[test]
fn async_and_future_requests_complete_once() {
    let dir = TempDir::new("async");
    let (p, s) = pair(&dir);
    echo(&p, "a");
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let c = Arc::clone(&calls);
    s.request_async(&Message::new("a", b"1").unwrap(), LONG, move |r| {
        c.fetch_add(1, SeqCst);
        tx.send(r).unwrap();
    })
    .unwrap();
    let r = rx.recv_timeout(LONG).unwrap().unwrap();
    assert_eq!(r.msgs[0].param(), b"re:1");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(SeqCst), 1);

    let r = block_on(s.request_future(&Message::new("a", b"2").unwrap(), LONG)).unwrap();
    assert_eq!(r.msgs[0].param(), b"re:2");

    // Several requests with the same name in flight at once (DPDK refuses that).
    let futs: Vec<_> = (0..5u8)
        .map(|i| s.request_future(&Message::new("a", &[i]).unwrap(), LONG))
        .collect();
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(
            block_on(f).unwrap().msgs[0].param(),
            &[b'r', b'e', b':', i as u8]
        );
    }

    // The primary with no secondary: completes at once with nothing sent.
    drop(s);
    let r = block_on(p.request_future(&Message::new("a", b"").unwrap(), LONG)).unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (0, 0));
}

#[test]
fn concurrent_requests_from_many_threads_get_their_own_answers() {
    let dir = TempDir::new("concurrent");
    let (p, s) = pair(&dir);
    echo(&p, "e");
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let param = format!("{t}-{i}");
                    let r = if i % 2 == 0 {
                        s.request_sync(&Message::new("e", param.as_bytes()).unwrap(), LONG)
                            .unwrap()
                    } else {
                        block_on(
                            s.request_future(&Message::new("e", param.as_bytes()).unwrap(), LONG),
                        )
                        .unwrap()
                    };
                    assert_eq!(r.msgs[0].param(), format!("re:{param}").as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = s.stats();
    assert_eq!(
        (st.dropped_unknown_reply, st.timeouts, st.malformed),
        (0, 0, 0),
        "{st:?}"
    );
}

#[test]
fn an_async_request_times_out_naming_the_silent_peer() {
    let dir = TempDir::new("atimeout");
    let (p, s) = pair(&dir);
    s.action_register("silent", |_m, _peer| {}).unwrap();
    let err = block_on(p.request_future(
        &Message::new("silent", b"").unwrap(),
        Duration::from_millis(100),
    ))
    .unwrap_err();
    match err {
        Error::Timeout {
            missing, partial, ..
        } => {
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].pid(), Some(std::process::id()));
            assert_eq!((partial.nb_sent, partial.nb_received), (1, 0));
        }
        e => panic!("expected a timeout, got {e:?}"),
    }
    assert_eq!(p.stats().timeouts, 1);
}

#[test]
fn names_and_sizes_are_limited_and_duplicates_refused() {
    let dir = TempDir::new("limits");
    let (p, _s) = pair(&dir);
    p.action_register("dup", |_, _| {}).unwrap();
    assert!(
        matches!(p.action_register("dup", |_, _| {}), Err(Error::ActionExists(n)) if n == "dup")
    );
    assert!(p.action_unregister("dup"));
    assert!(!p.action_unregister("dup"));
    p.action_register("dup", |_, _| {}).unwrap();
    assert!(matches!(
        p.action_register("", |_, _| {}),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        p.action_register(&"n".repeat(MAX_NAME_LEN), |_, _| {}),
        Err(Error::InvalidName(_))
    ));
    p.action_register(&"n".repeat(MAX_NAME_LEN - 1), |_, _| {})
        .unwrap();
    assert!(
        matches!(Message::new("x", &[0; MAX_PARAM_LEN + 1]), Err(Error::ParamTooLong { len }) if len == MAX_PARAM_LEN + 1)
    );
    let fds: Vec<_> = (0..MAX_FDS + 1)
        .map(|_| std::fs::File::open("/dev/null").unwrap().into())
        .collect();
    assert!(
        matches!(Message::with_fds("x", b"", fds), Err(Error::TooManyFds { count }) if count == MAX_FDS + 1)
    );
}

#[test]
fn the_largest_message_with_all_descriptors_arrives() {
    let dir = TempDir::new("large");
    let (p, s) = pair(&dir);
    let name = "b".repeat(MAX_NAME_LEN - 1);
    let fds: Vec<_> = (0..MAX_FDS)
        .map(|_| std::fs::File::open("/dev/null").unwrap().into())
        .collect();
    let req = Message::with_fds(&name, &[7; MAX_PARAM_LEN], fds).unwrap();
    p.action_register(&name, |mut m, peer| {
        let fds = m.take_fds();
        assert_eq!(m.param(), &[7; MAX_PARAM_LEN][..]);
        let param = (fds.len() as u16).to_le_bytes();
        peer.reply(&Message::with_fds(m.name(), &param, fds).unwrap())
            .unwrap();
    })
    .unwrap();
    let r = s.request_sync(&req, LONG).unwrap();
    assert_eq!(r.msgs[0].param(), &(MAX_FDS as u16).to_le_bytes());
    assert_eq!(r.msgs[0].fds().len(), MAX_FDS);
}

#[test]
fn a_request_without_action_gets_an_immediate_no_handler() {
    let dir = TempDir::new("nohandler");
    let p = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Primary,
    })
    .unwrap();
    let s = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Secondary,
    })
    .unwrap();
    // While the primary is still initialising, DPDK's "ignore me" answer: not counted.
    let r = s
        .request_sync(&Message::new("nobody", b"").unwrap(), LONG)
        .unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (0, 0));
    p.mark_init_complete();
    let t0 = Instant::now();
    let e = s
        .request_sync(
            &Message::new("nobody", b"").unwrap(),
            Duration::from_secs(60),
        )
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "waited for the timeout"
    );
    assert!(
        matches!(&e, Error::NoHandler { name, peers, .. } if name == "nobody" && peers[0].as_str() == "mp_socket"),
        "{e:?}"
    );
    assert_eq!(p.stats().unhandled, 2);
}

#[test]
fn replies_must_answer_a_request_with_its_name() {
    let dir = TempDir::new("replyname");
    let (p, s) = pair(&dir);
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    p.action_register("req", move |_m, peer| {
        tx.send(
            peer.reply(&Message::new("other", b"").unwrap())
                .map_err(|e| e.to_string()),
        )
        .unwrap();
        peer.ignore().unwrap();
    })
    .unwrap();
    p.action_register("msg", move |m, peer| {
        tx2.send(
            peer.reply(&Message::new(m.name(), b"").unwrap())
                .map_err(|e| e.to_string()),
        )
        .unwrap();
    })
    .unwrap();
    let r = s
        .request_sync(&Message::new("req", b"").unwrap(), LONG)
        .unwrap();
    assert_eq!(r.nb_sent, 0, "an ignored request counts no peer");
    assert!(rx
        .recv_timeout(LONG)
        .unwrap()
        .unwrap_err()
        .contains("request's name"));
    s.sendmsg(&Message::new("msg", b"").unwrap()).unwrap();
    assert!(rx
        .recv_timeout(LONG)
        .unwrap()
        .unwrap_err()
        .contains("not a request"));
}

#[test]
fn malformed_datagrams_are_counted_and_the_thread_keeps_working() {
    let dir = TempDir::new("malformed");
    let (p, s) = pair(&dir);
    echo(&p, "ping");
    let mut good = Vec::new();
    wire::emit(Kind::Msg, 0, "ping", b"0123456789", 0, &mut good);
    let mut sent = 0;
    for n in 0..good.len() {
        raw_send(p.socket_path(), &good[..n]);
        sent += 1;
    }
    let mut x = 0x2545_f491_4f6c_dd1du64; // xorshift: reproducible noise
    for _ in 0..200 {
        let len = (x % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        raw_send(p.socket_path(), &bytes);
        sent += 1;
        if sent % 8 == 0 {
            eventually("the primary to drain its queue", LONG, || {
                p.stats().malformed as usize == sent
            });
        }
    }
    // Magic right, but oversized; and an announced descriptor that is not there.
    let mut long = good.clone();
    long.resize(wire::MAX_DATAGRAM + 100, 0);
    raw_send(p.socket_path(), &long);
    let mut fd_lie = Vec::new();
    wire::emit(Kind::Msg, 0, "ping", b"", 1, &mut fd_lie);
    raw_send(p.socket_path(), &fd_lie);
    sent += 2;
    eventually("every bad datagram to be counted", LONG, || {
        p.stats().malformed as usize == sent
    });
    let r = s
        .request_sync(&Message::new("ping", b"!").unwrap(), LONG)
        .unwrap();
    assert_eq!(r.msgs[0].param(), b"re:!");
}

#[test]
fn answers_to_nothing_are_dropped_and_counted() {
    let dir = TempDir::new("unknown");
    let (p, s) = pair(&dir);
    // An answer for a request id nobody sent, at the IPC thread.
    let mut rep = Vec::new();
    wire::emit(Kind::Rep, 999_999, "ghost", b"", 0, &mut rep);
    raw_send(p.socket_path(), &rep);
    eventually("the stray answer to be counted", LONG, || {
        p.stats().dropped_unknown_reply == 1
    });

    // A late answer: the requester gave up before it came.
    let (tx, rx) = mpsc::channel::<Peer>();
    let tx = std::sync::Mutex::new(tx);
    p.action_register("slow", move |_m, peer| {
        tx.lock().unwrap().send(peer).unwrap()
    })
    .unwrap();
    let e = s
        .request_sync(
            &Message::new("slow", b"").unwrap(),
            Duration::from_millis(50),
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { missing, .. } if missing[0].as_str() == "mp_socket"),
        "{e:?}"
    );
    let peer = rx.recv_timeout(LONG).unwrap();
    peer.reply(&Message::new("slow", b"late").unwrap()).unwrap();
    // It waits in the requester's socket until that is used again.
    echo(&p, "ping");
    s.request_sync(&Message::new("ping", b"").unwrap(), LONG)
        .unwrap();
    assert_eq!(s.stats().dropped_unknown_reply, 1);

    // Same for async requests, answered at the IPC thread.
    let e = block_on(s.request_future(
        &Message::new("slow", b"").unwrap(),
        Duration::from_millis(50),
    ))
    .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }));
    rx.recv_timeout(LONG)
        .unwrap()
        .reply(&Message::new("slow", b"late").unwrap())
        .unwrap();
    eventually("the late async answer to be counted", LONG, || {
        s.stats().dropped_unknown_reply == 2
    });
}

#[test]
fn datagrams_from_another_user_are_rejected() {
    if dgram::uid() != 0 {
        shoal_testkit::skip_or_fail(
            "claiming another uid in SCM_CREDENTIALS needs CAP_SETUID (run as root)",
        );
        return;
    }
    let dir = TempDir::new("creds");
    let (p, s) = pair(&dir);
    echo(&p, "ping");
    let mut good = Vec::new();
    wire::emit(Kind::Msg, 0, "ping", b"", 0, &mut good);
    let sock = dgram::socket().unwrap();
    let fake = Creds {
        pid: std::process::id() as i32,
        uid: 4242,
        gid: 4242,
    };
    dgram::send(
        sock.as_fd(),
        &Addr::Path(p.socket_path().into()),
        &good,
        &[],
        Some(fake),
    )
    .unwrap();
    eventually("the foreign datagram to be rejected", LONG, || {
        p.stats().rejected_credentials == 1
    });
    assert_eq!(p.stats().unhandled, 0, "a foreign message reached dispatch");
    s.request_sync(&Message::new("ping", b"").unwrap(), LONG)
        .unwrap();
}

#[test]
fn shutdown_completes_pending_requests_and_refuses_new_ones() {
    let dir = TempDir::new("shutdown");
    let (p, s) = pair(&dir);
    p.action_register("silent", |_, _| {}).unwrap();
    let fut = s.request_future(
        &Message::new("silent", b"").unwrap(),
        Duration::from_secs(60),
    );
    let path = s.socket_path().to_owned();
    s.shutdown();
    assert!(matches!(block_on(fut), Err(Error::Shutdown)));
    assert!(!path.exists());
    assert!(matches!(
        s.sendmsg(&Message::new("x", b"").unwrap()),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        s.request_sync(&Message::new("x", b"").unwrap(), LONG),
        Err(Error::Shutdown)
    ));
    // The secondary removed its socket, so a broadcast reaches nobody.
    assert_eq!(p.sendmsg(&Message::new("x", b"").unwrap()).unwrap(), 0);
}

#[test]
fn an_action_may_make_a_sync_request_and_hold_a_handle() {
    let dir = TempDir::new("nested");
    let (p, s) = pair(&dir);
    echo(&s, "inner");
    let p2 = p.clone();
    p.action_register("outer", move |m, peer| {
        // A request from the IPC thread itself: DPDK would deadlock here.
        let r = p2
            .request_sync(&Message::new("inner", m.param()).unwrap(), LONG)
            .unwrap();
        peer.reply(&Message::new(m.name(), r.msgs[0].param()).unwrap())
            .unwrap();
    })
    .unwrap();
    let r = s
        .request_sync(&Message::new("outer", b"z").unwrap(), LONG)
        .unwrap();
    assert_eq!(r.msgs[0].param(), b"re:z");
    // The action holds a clone: shutdown breaks the cycle.
    p.shutdown();
    assert!(!dir.path().join(PRIMARY_SOCKET).exists());
}

#[test]
fn a_panicking_action_is_counted_and_the_thread_survives() {
    let dir = TempDir::new("panic");
    let (p, s) = pair(&dir);
    p.action_register("boom", |_, _| panic!("test action panics on purpose"))
        .unwrap();
    echo(&p, "ping");
    let e = s
        .request_sync(
            &Message::new("boom", b"").unwrap(),
            Duration::from_millis(100),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }));
    eventually("the panic to be counted", LONG, || {
        p.stats().handler_panics == 1
    });
    s.request_sync(&Message::new("ping", b"").unwrap(), LONG)
        .unwrap();
}

#[test]
fn a_secondary_without_primary_fails_clearly() {
    let dir = TempDir::new("noprimary");
    let s = Mp::start(MpConfig {
        dir: dir.path().into(),
        role: Role::Secondary,
    })
    .unwrap();
    let m = Message::new("x", b"").unwrap();
    assert!(matches!(s.sendmsg(&m), Err(Error::PrimaryGone { .. })));
    assert!(matches!(
        s.request_sync(&m, LONG),
        Err(Error::PrimaryGone { .. })
    ));
    assert!(matches!(
        s.request_async(&m, LONG, |_| panic!("called")),
        Err(Error::PrimaryGone { .. })
    ));
    assert!(matches!(
        block_on(s.request_future(&m, LONG)),
        Err(Error::PrimaryGone { .. })
    ));
    let e = Mp::start(MpConfig {
        dir: dir.path().join("missing"),
        role: Role::Secondary,
    })
    .unwrap_err();
    assert!(matches!(e, Error::Dir { .. }), "{e}");
}

#[test]
fn dead_secondaries_are_skipped_and_their_sockets_removed() {
    let dir = TempDir::new("dead");
    let (p, _s) = pair(&dir);
    // A socket file whose process is gone (pid 1 never runs a shoal secondary here).
    let ghost = dir.path().join("mp_socket_1");
    drop(UnixDatagram::bind(&ghost).unwrap());
    echo(&_s, "ping");
    let r = p
        .request_sync(&Message::new("ping", b"").unwrap(), LONG)
        .unwrap();
    assert_eq!((r.nb_sent, r.nb_received), (1, 1));
    assert_eq!(r.gone[0].as_str(), "mp_socket_1");
    assert!(!ghost.exists());
    assert_eq!(p.stats().dead_peers, 1);
}

#[test]
fn a_socket_path_too_long_is_refused() {
    let deep = TempDir::new("long");
    let mut p = deep.path().to_path_buf();
    while p.as_os_str().len() < 110 {
        p.push("dddddddddd");
    }
    std::fs::create_dir_all(&p).unwrap();
    let e = Mp::start(MpConfig {
        dir: p,
        role: Role::Primary,
    })
    .unwrap_err();
    assert!(matches!(e, Error::PathTooLong { .. }), "{e}");
}
