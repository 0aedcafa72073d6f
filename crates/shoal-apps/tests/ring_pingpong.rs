//! ring_pingpong with real processes.

use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_ring_pingpong");

#[test]
fn every_ping_gets_a_pong_and_percentiles_are_printed() {
    let g = Group::new("pp");
    let mut sender = g.spawn(
        BIN,
        &[
            "-l",
            "0",
            "--",
            "--count",
            "500",
            "--interval",
            "200",
            "--burst",
            "4",
            "--verbose",
        ],
    );
    sender.wait_for("waiting for a responder", T);
    let mut responder = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    let line = sender.wait_for("sent ", T);
    assert!(
        line.contains("sent 500, received 500, lost 0 (0.00%)"),
        "{line}"
    );
    let rtt = sender.wait_for("rtt us:", T);
    for p in ["min", "p50", "p90", "p99", "max"] {
        assert!(rtt.contains(p), "{rtt}");
    }
    // Per-ping lines when asked.
    sender.wait_for("pong 499 rtt", T);
    // The floor under the RTT, measured in the same run on the two processes' CPUs.
    let c2c = sender.wait_for("cache-line round trip", T);
    assert!(
        c2c.contains("(CPU 0 <-> CPU 1)") && c2c.contains("rtt p50 ="),
        "{c2c}"
    );
    assert_eq!(sender.wait_exit(T), Some(0), "{}", sender.output());
    assert_eq!(responder.wait_exit(T), Some(0), "{}", responder.output());
    assert!(
        responder.output().contains("responder answered 500 pings"),
        "{}",
        responder.output()
    );
}

#[test]
fn back_to_back_pings_never_queue_behind_each_other() {
    let g = Group::new("pp-b2b");
    let mut sender = g.spawn(
        BIN,
        &[
            "-l",
            "0",
            "--",
            "--count",
            "2000",
            "--interval",
            "0",
            "--burst",
            "2",
        ],
    );
    sender.wait_for("waiting for a responder", T);
    let mut responder = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    // With one burst in flight at a time the 1024-slot rings can never fill.
    let line = sender.wait_for("sent ", T);
    assert!(
        line.contains("sent 2000, received 2000, lost 0 (0.00%), ring full 0"),
        "{line}"
    );
    assert_eq!(sender.wait_exit(T), Some(0), "{}", sender.output());
    assert_eq!(responder.wait_exit(T), Some(0), "{}", responder.output());
}

#[test]
fn a_sender_without_responder_gives_up_clearly() {
    let g = Group::new("pp-alone");
    let mut sender = g.spawn(
        BIN,
        &["-l", "0", "--", "--count", "5", "--peer-timeout", "300"],
    );
    assert_eq!(sender.wait_exit(T), Some(1));
    assert!(
        sender.output().contains("no responder attached"),
        "{}",
        sender.output()
    );
}

#[test]
fn bad_options_exit_2_with_usage() {
    let g = Group::new("pp-bad");
    let mut p = g.spawn(BIN, &["-l", "0", "--", "--burst", "0"]);
    assert_eq!(p.wait_exit(T), Some(2));
    assert!(
        p.output().contains("--burst must be 1 to 512"),
        "{}",
        p.output()
    );
    let mut p = g.spawn(BIN, &["--proc-type=ERROR"]);
    assert_eq!(p.wait_exit(T), Some(2));
    assert!(p.output().contains("invalid --proc-type"), "{}", p.output());
}
