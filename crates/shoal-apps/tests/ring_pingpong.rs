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
    assert_eq!(sender.wait_exit(T), Some(0), "{}", sender.output());
    assert_eq!(responder.wait_exit(T), Some(0), "{}", responder.output());
    assert!(
        responder.output().contains("responder answered 500 pings"),
        "{}",
        responder.output()
    );
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
