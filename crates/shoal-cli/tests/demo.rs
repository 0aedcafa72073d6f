//! `shoal demo` end to end: server and clients as child processes, a client killed and
//! restarted, and the pool's in-use count back at its baseline.

use std::time::Duration;

use shoal_testkit::Group;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

#[test]
fn demo_forwards_survives_a_killed_client_and_loses_no_buffer() {
    let g = Group::new("demo");
    let mut d = g.spawn_raw(
        SHOAL,
        &[
            "demo",
            "--duration",
            "3",
            "--kill-client",
            "--no-huge",
            "--file-prefix",
            g.prefix(),
            "--vdev",
            "net_gen0,rate=300000",
            "--vdev",
            "net_gen1,rate=300000",
        ],
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        d.output()
    );
    let out = d.output();
    for want in [
        "2 clients connected",
        "killing client 1",
        "client 1 is back",
        "==== shoal demo summary ====",
        "— no buffer lost",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let fwd = out.lines().find(|l| l.starts_with("forwarded")).unwrap();
    let n: u64 = fwd.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n > 0, "{out}");
    let starts = out.lines().find(|l| l.starts_with("client 1 ")).unwrap();
    assert!(starts.ends_with("starts 2"), "{starts}");
}

#[test]
fn demo_on_its_defaults_forwards_what_the_clients_sustain_and_drops_nothing() {
    // Unpaced generators, three pollers: the server receives only what the clients take.
    let g = Group::new("demo-bp");
    let mut d = g.spawn_raw(
        SHOAL,
        &[
            "demo",
            "--duration",
            "2",
            "--no-huge",
            "--file-prefix",
            g.prefix(),
        ],
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        d.output()
    );
    let out = d.output();
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p:?} line in:\n{out}"))
            .to_owned()
    };
    assert!(line("dropped ").starts_with("dropped         0 ("), "{out}");
    assert!(line("receive ").contains("backpressure"), "{out}");
    assert!(line("cpu ").contains("Mpps forwarded per CPU"), "{out}");
    let n: u64 = line("forwarded")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "{out}");
    assert!(out.contains("— no buffer lost"), "{out}");
}

#[test]
fn demo_rejects_bad_options() {
    let g = Group::new("demo-bad");
    let mut d = g.spawn_raw(SHOAL, &["demo", "--clients", "0"]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(2));
    assert!(
        d.output().contains("--clients must be 1 to 16"),
        "{}",
        d.output()
    );
}

#[test]
fn demo_kill_server_is_adopted_and_the_clients_carry_on() {
    let g = Group::new("demo-adopt");
    let mut d = g.spawn_raw(
        SHOAL,
        &[
            "demo",
            "--duration",
            "3",
            "--kill-server=2",
            "--no-huge",
            "--quiet",
            "--file-prefix",
            g.prefix(),
            "--vdev",
            "net_gen0,rate=300000",
            "--vdev",
            "net_gen1,rate=300000",
        ],
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        d.output()
    );
    let out = d.output();
    assert_eq!(
        out.matches("adopted the group; forwarding paused").count(),
        2,
        "{out}"
    );
    for want in [
        "server kills    2: forwarding paused p50",
        "clients never restarted (same pids)",
        "— no buffer lost",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    for c in 0..2 {
        let l = out
            .lines()
            .find(|l| l.starts_with(&format!("client {c} ")))
            .unwrap();
        assert!(l.ends_with("starts 1"), "{l}");
    }
}
