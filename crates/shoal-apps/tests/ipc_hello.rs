//! ipc_hello (lesson 8) with real processes.

use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_ipc_hello");

#[test]
fn sync_and_async_replies_reach_several_clients_and_are_counted() {
    let g = Group::new("ipc");
    let mut server = g.spawn(BIN, &["-l", "0", "--", "--stats-interval", "0.2"]);
    server.wait_for("server ready", T);
    let args = [
        "--proc-type=secondary",
        "--",
        "--sync-interval",
        "0.1",
        "--async-interval",
        "0.15",
        "--count",
        "3",
    ];
    let mut a = g.spawn(BIN, &[&["-l", "1"], &args[..]].concat());
    let mut b = g.spawn(BIN, &[&["-l", "2"], &args[..]].concat());
    for c in [&mut a, &mut b] {
        assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
        let out = c.output();
        let pid = c.pid();
        for n in 1..=3 {
            assert!(
                out.contains(&format!(
                    "[SYNC] Reply: Server SYNC reply: Got 'SYNC Hello {n} from Client {pid}'"
                )),
                "{out}"
            );
            assert!(
                out.contains(&format!(
                    "[ASYNC] Reply: Server ASYNC reply: Got 'ASYNC Hello {n} from Client {pid}'"
                )),
                "{out}"
            );
        }
        assert_eq!(out.matches("[ASYNC] Callback called").count(), 3, "{out}");
        assert!(
            out.contains("sent 3 sync and 3 async requests, 0 failed"),
            "{out}"
        );
    }
    server.wait_for("handled sync requests: 6, async requests: 6", T);
    let (code, out) = server.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("final: sync requests 6, async requests 6"),
        "{out}"
    );
}

#[test]
fn a_client_without_server_fails_clearly() {
    let g = Group::new("ipc-none");
    let mut c = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    assert_eq!(c.wait_exit(T), Some(1));
    assert!(
        c.output().contains("no primary process for file prefix"),
        "{}",
        c.output()
    );
    assert!(
        !shoal_testkit::runtime_dir(g.prefix()).exists(),
        "a secondary that found no primary left its runtime directory behind"
    );
}

#[test]
fn what_a_peer_sends_is_printed_escaped() {
    let g = Group::new("ipc-esc");
    let mut server = g.spawn(BIN, &["-l", "0", "--no-huge"]);
    server.wait_for("server ready", T);
    // This test process is the client, so that it can send any bytes.
    let eal = shoal_testkit::init(g.prefix(), &["-l", "1", "--proc-type=secondary"]).unwrap();
    let evil = b"\x1b]0;owned\x07\x1b[2Jred\x9b\xffend";
    let req = shoal::mp::Message::new("hello_request", evil).unwrap();
    let reply = eal.mp().unwrap().request_sync(&req, T).unwrap();
    let answer = reply.msgs[0].param();
    let line = server.wait_for("[SYNC] Received:", T);
    assert_eq!(
        line,
        r"[SYNC] Received: \u{1b}]0;owned\u{7}\u{1b}[2Jred\x9b\xffend"
    );
    assert!(!answer.contains(&0x1b), "{answer:?}");
    drop(eal);
    let (code, out) = server.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains(['\x1b', '\x07']), "{out:?}");
}
