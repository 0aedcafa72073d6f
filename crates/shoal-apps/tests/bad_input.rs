//! Every sample refuses bad input the same way, before it does anything else: exit status 2,
//! the problem on the first line of stderr (the usage may follow), never a panic.

use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(20);

const SIMPLE_MP: &str = env!("CARGO_BIN_EXE_simple_mp");
const IPC_HELLO: &str = env!("CARGO_BIN_EXE_ipc_hello");
const RING_PINGPONG: &str = env!("CARGO_BIN_EXE_ring_pingpong");
const SYMMETRIC_MP: &str = env!("CARGO_BIN_EXE_symmetric_mp");
const MP_SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const MP_CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");

const ALL: [&str; 6] = [
    SIMPLE_MP,
    IPC_HELLO,
    RING_PINGPONG,
    SYMMETRIC_MP,
    MP_SERVER,
    MP_CLIENT,
];

/// Runs `bin args` in a group of its own and checks that it is refused: exit status 2, `want`
/// on the first stderr line, and that it never joined the group.
fn refused(bin: &str, args: &[&str], want: &str) {
    let g = Group::new("bad");
    let mut p = g.spawn(bin, args);
    let code = p.wait_exit(T);
    let out = p.output();
    let err = p.stderr_lines();
    let name = bin.rsplit('/').next().unwrap_or(bin);
    assert_eq!(code, Some(2), "{name} {args:?}:\n{out}");
    let first = err.first().map(String::as_str).unwrap_or("");
    assert!(
        first.contains(want),
        "{name} {args:?}: first stderr line {first:?}\n{out}"
    );
    assert!(!out.contains("panicked"), "{name} {args:?}:\n{out}");
    assert!(
        !shoal_testkit::runtime_dir(g.prefix()).exists(),
        "{name} {args:?} created its runtime directory"
    );
}

/// Application options each binary accepts, so that only the EAL options are wrong.
fn good_app_args(bin: &str) -> &'static [&'static str] {
    match bin {
        SYMMETRIC_MP => &["--", "-p", "0x3", "--num-procs", "1", "--proc-id", "0"],
        MP_CLIENT => &["--", "-n", "0"],
        _ => &[],
    }
}

#[test]
fn an_unknown_vdev_driver_is_refused_by_every_sample() {
    for bin in ALL {
        let mut args = vec!["--vdev", "net_bogus0"];
        args.extend_from_slice(good_app_args(bin));
        refused(bin, &args, "unknown driver in \"net_bogus0\"");
    }
}

#[test]
fn bad_vdev_arguments_are_refused_by_every_sample() {
    for bin in ALL {
        for (spec, want) in [
            ("net_null0,bogus=1", "unknown argument \"bogus\""),
            ("net_gen0,flows=x", "flows=\"x\" is not a valid number"),
            ("net_pcap0", "needs rx_pcap"),
        ] {
            let mut args = vec!["--vdev", spec];
            args.extend_from_slice(good_app_args(bin));
            refused(bin, &args, want);
        }
    }
}

#[test]
fn a_file_prefix_that_leaves_the_runtime_dir_is_refused() {
    for bin in ALL {
        let mut args = vec!["--file-prefix", "../../etc"];
        args.extend_from_slice(good_app_args(bin));
        refused(bin, &args, "invalid --file-prefix \"../../etc\"");
    }
}

#[test]
fn a_priority_for_a_client_that_does_not_exist_is_refused() {
    refused(
        MP_SERVER,
        &["--no-huge", "--", "--dist", "prio:10=5", "-n", "1"],
        "worker 5",
    );
}

#[test]
fn bad_durations_and_intervals_are_refused_not_panics() {
    for d in ["-1", "0", "nan", "inf", "1e300", "soon"] {
        refused(
            MP_SERVER,
            &["--no-huge", "--", "--duration", d],
            "invalid --duration",
        );
        refused(
            IPC_HELLO,
            &["--no-huge", "--", "--sync-interval", d],
            "invalid --sync-interval",
        );
    }
    refused(
        RING_PINGPONG,
        &["--no-huge", "--", "--ring-size", "1000"],
        "--ring-size must be a power of two",
    );
}

#[test]
fn symmetric_mp_argument_errors_come_before_joining() {
    refused(
        SYMMETRIC_MP,
        &["--no-huge", "--", "-p", "0x3", "--num-procs", "2"],
        "Error: Invalid or missing proc-id parameter",
    );
    refused(
        SYMMETRIC_MP,
        &["--no-huge", "--", "--num-procs", "2", "--proc-id", "0"],
        "Error: Invalid or missing port mask",
    );
}

#[test]
fn help_works_before_and_after_the_separator() {
    for bin in ALL {
        let name = bin.rsplit('/').next().unwrap_or(bin);
        for args in [&["--help"][..], &["--no-huge", "--", "--help"][..]] {
            let g = Group::new("help");
            let mut p = g.spawn(bin, args);
            let code = p.wait_exit(T);
            let out = p.output();
            assert_eq!(code, Some(0), "{name} {args:?}:\n{out}");
            assert!(out.contains("Usage:"), "{name} {args:?}:\n{out}");
            assert!(out.contains(name), "{name} {args:?}:\n{out}");
            assert!(p.stderr_lines().is_empty(), "{name} {args:?}:\n{out}");
            assert!(
                !shoal_testkit::runtime_dir(g.prefix()).exists(),
                "{name} {args:?} created its runtime directory"
            );
        }
    }
}

#[test]
fn unknown_application_options_are_one_line_and_status_2() {
    for bin in ALL {
        let mut args = vec!["--no-huge", "--", "--bogus"];
        if bin == SYMMETRIC_MP {
            args.extend_from_slice(&["-p", "0x3", "--proc-id", "0"]);
        }
        refused(bin, &args, "unexpected argument '--bogus'");
    }
    refused(
        MP_SERVER,
        &["--no-huge", "--", "-n", "x"],
        "invalid -n \"x\"",
    );
    refused(MP_CLIENT, &["--no-huge", "--"], "a client id is required");
}
