//! simple_mp with real processes: messages both ways, a full ring, stdin as a pipe.

use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(30);
const BIN: &str = env!("CARGO_BIN_EXE_simple_mp");

#[test]
fn messages_go_both_ways() {
    let g = Group::new("smp");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    p.send_line("send hello from the primary");
    s.wait_for("core 1: Received 'hello from the primary'", T);
    s.send_line("send and back from the secondary");
    p.wait_for("core 0: Received 'and back from the secondary'", T);
    // Long texts are cut to DPDK's STR_TOKEN_SIZE - 1 bytes.
    let long = "x".repeat(300);
    p.send_line(&format!("send {long}"));
    let got = s.wait_for("Received 'xxx", T);
    assert!(got.contains(&format!("'{}'", "x".repeat(127))), "{got}");
    s.send_line("quit");
    assert_eq!(s.wait_exit(T), Some(0), "{}", s.output());
    p.send_line("quit");
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
}

#[test]
fn a_full_ring_discards_the_message_and_says_so() {
    let g = Group::new("smp-full");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    // Nobody consumes PRI_2_SEC: 63 messages fit (a ring of 64 holds 63), the 64th does not.
    for i in 0..64 {
        p.send_line(&format!("send m{i}"));
    }
    p.wait_for("Failed to send message - message discarded", T);
    p.send_line("quit");
    assert_eq!(p.wait_exit(T), Some(0));
    assert_eq!(
        p.output()
            .matches("Failed to send message - message discarded")
            .count(),
        1,
        "{}",
        p.output()
    );
}

#[test]
fn end_of_input_quits_and_unknown_commands_are_reported() {
    let g = Group::new("smp-eof");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    p.send_line("frobnicate");
    p.wait_for("Bad arguments", T);
    p.close_stdin();
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
}

#[test]
fn secondary_without_primary_fails_within_a_second_naming_the_prefix() {
    let g = Group::new("smp-nop");
    let t0 = std::time::Instant::now();
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    assert_eq!(s.wait_exit(T), Some(1));
    println!("secondary gave up after {:?}", t0.elapsed());
    let out = s.output();
    assert!(out.contains("no primary process for file prefix"), "{out}");
    assert!(out.contains(g.prefix()), "{out}");
}

#[test]
fn a_second_primary_names_the_first() {
    let g = Group::new("smp-2p");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    let mut q = g.spawn(BIN, &["-l", "1"]);
    assert_eq!(q.wait_exit(T), Some(1));
    assert!(
        q.output().contains(&format!(
            "a primary process (pid {}) is already running",
            p.pid()
        )),
        "{}",
        q.output()
    );
}

#[test]
fn auto_picks_the_role() {
    let g = Group::new("smp-auto");
    let mut a = g.spawn(BIN, &["-l", "0", "--proc-type=auto", "--log-level", "info"]);
    a.wait_for("running as primary", T);
    a.wait_for("Finished Process Init.", T);
    let mut b = g.spawn(BIN, &["-l", "1", "--proc-type=auto", "--log-level", "info"]);
    b.wait_for("running as secondary", T);
    b.wait_for("Finished Process Init.", T);
    a.send_line("send via auto");
    b.wait_for("Received 'via auto'", T);
}

#[test]
fn the_secondary_exits_when_the_primary_is_killed() {
    let g = Group::new("smp-kill");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    p.kill9();
    assert_eq!(s.wait_exit(T), Some(3), "{}", s.output());
    assert!(
        s.output()
            .contains("has exited; this secondary cannot continue"),
        "{}",
        s.output()
    );
}

#[test]
fn no_huge_groups_accept_secondaries() {
    let g = Group::new("smp-nohuge");
    let mut p = g.spawn(BIN, &["-l", "0", "--no-huge", "-m", "16"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    s.send_line("send over normal pages");
    p.wait_for("Received 'over normal pages'", T);
}

#[test]
fn sigint_and_sigterm_stop_both_processes_cleanly() {
    let g = Group::new("smp-sig");
    let mut p = g.spawn(BIN, &["-l", "0"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    let (code, out) = s.stop(libc::SIGTERM, T);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = p.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn another_user_is_told_that_roots_group_is_out_of_its_reach_and_leaves_nothing() {
    if !shoal_testkit::is_root() {
        shoal_testkit::skip_or_fail("not root: a root primary and a process as nobody are needed");
        return;
    }
    if !shoal_testkit::require_tool("setpriv") {
        return;
    }
    let nobody = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("id -u nobody");
    let uid = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(!uid.is_empty(), "no user nobody");
    let g = Group::new("smp-eacces");
    let mut p = g.spawn(BIN, &["-l", "0", "--no-huge", "-m", "32"]);
    p.wait_for("Finished Process Init.", T);
    // nobody has no XDG_RUNTIME_DIR: its runtime directory is /tmp/shoal-<uid>/<prefix>.
    let theirs = std::path::PathBuf::from(format!("/tmp/shoal-{uid}")).join(g.prefix());
    for proc_type in ["secondary", "auto", "primary"] {
        let mut c = g.spawn_raw(
            "setpriv",
            &[
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "env",
                "-u",
                "XDG_RUNTIME_DIR",
                BIN,
                "--proc-type",
                proc_type,
                "--file-prefix",
                g.prefix(),
                "--no-huge",
                "--log-level",
                "warning",
            ],
        );
        c.close_stdin();
        let code = c.wait_exit(T);
        let out = c.output();
        let exists = theirs.exists();
        let _ = std::fs::remove_dir_all(&theirs);
        assert_eq!(code, Some(1), "{proc_type}: {out}");
        let err = c.stderr_lines();
        let first = err.first().map(String::as_str).unwrap_or("");
        assert!(
            first.contains(&format!(
                "a group with file prefix {:?} exists (/var/run/shoal/{})",
                g.prefix(),
                g.prefix()
            )) && first.contains("this user may not access it"),
            "{proc_type}: {out}"
        );
        assert!(!exists, "{proc_type} left {} behind", theirs.display());
    }
    // Root's group is untouched.
    let mut s = g.spawn(BIN, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    s.send_line("quit");
    assert_eq!(s.wait_exit(T), Some(0), "{}", s.output());
}
