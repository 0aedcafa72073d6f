//! `shoal info`, `top` and `telemetry` against live groups started with the sample binaries.

use std::path::PathBuf;
use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// A sibling binary of `shoal` in the same target directory (built with the workspace).
fn sibling(name: &str) -> String {
    let p: PathBuf = PathBuf::from(SHOAL).with_file_name(name);
    assert!(
        p.exists(),
        "{} is not built: build the workspace (cargo build --workspace) first",
        p.display()
    );
    p.display().to_string()
}

#[test]
fn info_prints_a_live_group_as_text_and_json() {
    let g = Group::new("info");
    let smp = sibling("simple_mp");
    let mut p = g.spawn(&smp, &["-l", "0", "--no-huge", "-m", "32"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(&smp, &["-l", "3", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    // Leave something in a ring so that counts show.
    s.send_line("send one");
    p.wait_for("Received 'one'", T);
    for i in 0..5 {
        p.send_line(&format!("send {i}"));
    }
    s.wait_for("Received '4'", T);

    let mut info = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix()]);
    assert_eq!(info.wait_exit(T), Some(0), "{}", info.output());
    let text = info.output();
    for want in [
        format!("group {:?}", g.prefix()),
        format!("primary pid     {}", p.pid()),
        "/dev/shm".to_string(),
        "RG_PRI_2_SEC".into(),
        "MP_MSG_POOL".into(),
        "PRI_2_SEC".into(),
        "MSG_POOL".into(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let procs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("primary ") || l.contains("secondary "))
        .collect();
    assert!(
        procs
            .iter()
            .any(|l| l.contains(&p.pid().to_string()) && l.contains("yes")),
        "{text}"
    );
    assert!(
        procs
            .iter()
            .any(|l| l.contains(&s.pid().to_string()) && l.contains(" 3 ")),
        "{text}"
    );

    let mut json = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix(), "--json"]);
    assert_eq!(json.wait_exit(T), Some(0));
    let v: serde_json::Value = serde_json::from_str(&json.output()).expect("valid JSON");
    assert_eq!(v["primary_pid"], p.pid());
    assert_eq!(v["backing"], "shm");
    let rings = v["rings"].as_array().unwrap();
    assert_eq!(rings.len(), 2, "{v}");
    assert!(
        rings.iter().all(|r| r["capacity"] == 63 && r["size"] == 64),
        "{v}"
    );
    let pools = v["mempools"].as_array().unwrap();
    assert_eq!(pools[0]["name"], "MSG_POOL");
    assert_eq!(pools[0]["size"], 1024);
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 2);
    assert!(procs.iter().all(|p| p["alive"] == true));

    let mut top = g.spawn_raw(
        SHOAL,
        &[
            "top",
            "--file-prefix",
            g.prefix(),
            "--iterations",
            "2",
            "--interval-ms",
            "50",
        ],
    );
    assert_eq!(top.wait_exit(T), Some(0));
    assert_eq!(
        top.output().matches("processes (2)").count(),
        2,
        "{}",
        top.output()
    );
}

#[test]
fn info_without_a_primary_exits_1_and_says_so() {
    let g = Group::new("info-none");
    let mut info = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix()]);
    assert_eq!(info.wait_exit(T), Some(1));
    let out = info.output();
    assert!(out.contains("no primary process for file prefix"), "{out}");
    assert!(out.contains(g.prefix()), "{out}");
}

#[test]
fn bad_cli_usage_exits_2() {
    let g = Group::new("cli-bad");
    let mut p = g.spawn_raw(SHOAL, &["info", "--bogus"]);
    assert_eq!(p.wait_exit(T), Some(2));
    let mut p = g.spawn_raw(SHOAL, &["frobnicate"]);
    assert_eq!(p.wait_exit(T), Some(2));
}

#[test]
fn every_command_checks_its_input_as_the_eal_does() {
    let g = Group::new("cli-input");
    let bad_prefix = ["--file-prefix", "../../etc"];
    for (args, want) in [
        (&["info"][..], "invalid --file-prefix \"../../etc\""),
        (&["top", "--iterations", "1"], "invalid --file-prefix"),
        (&["reclaim"], "invalid --file-prefix"),
        (&["telemetry", "/"], "invalid --file-prefix"),
        (&["demo", "--duration", "1"], "invalid --file-prefix"),
    ] {
        let mut all = args.to_vec();
        all.extend(bad_prefix);
        refused(&g, &all, want);
    }
    for (args, want) in [
        (&["demo", "--vdev", "net_bogus0"][..], "unknown driver"),
        (&["demo", "--dist", "prio:10=5"], "worker 5"),
        (&["mp_server", "--vdev", "net_bogus0"], "unknown driver"),
        (
            &["mp_server", "--", "--duration", "-1"],
            "invalid --duration",
        ),
        (
            &["mp_server", "--", "--dist", "prio:10=5", "-n", "1"],
            "worker 5",
        ),
        (
            &["mp_client", "--", "-n", "0", "--top", "x"],
            "invalid --top \"x\"",
        ),
    ] {
        let mut all = args.to_vec();
        if args[0].starts_with("mp_") {
            // In a group of its own, should the check let it through.
            all.insert(1, g.prefix());
            all.insert(1, "--file-prefix");
        }
        refused(&g, &all, want);
    }
}

/// `shoal args` exits 2 with `want` on the first stderr line, and no panic.
fn refused(g: &Group, args: &[&str], want: &str) {
    let mut p = g.spawn_raw(SHOAL, args);
    let code = p.wait_exit(T);
    let out = p.output();
    assert_eq!(code, Some(2), "shoal {args:?}:\n{out}");
    let err = p.stderr_lines();
    let first = err.first().map(String::as_str).unwrap_or("");
    assert!(
        first.contains(want),
        "shoal {args:?}: first stderr line {first:?}\n{out}"
    );
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn reclaim_frees_a_dead_secondarys_slot_on_demand() {
    let g = Group::new("reclaim");
    let smp = sibling("simple_mp");
    let mut p = g.spawn(&smp, &["-l", "0", "--no-huge", "-m", "32"]);
    p.wait_for("Finished Process Init.", T);
    let mut s = g.spawn(&smp, &["-l", "1", "--proc-type=secondary"]);
    s.wait_for("Finished Process Init.", T);
    for i in 0..5 {
        s.send_line(&format!("send m{i}"));
    }
    p.wait_for("Received 'm4'", T);
    let snapshot = |g: &Group| -> serde_json::Value {
        let mut j = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix(), "--json"]);
        assert_eq!(j.wait_exit(T), Some(0));
        serde_json::from_str(&j.output()).unwrap()
    };
    // Freeze the primary so that its reaper cannot do the work, then kill the secondary.
    p.signal(libc::SIGSTOP);
    s.kill9();
    let v = snapshot(&g);
    let dead: Vec<_> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["alive"] == false)
        .collect();
    assert_eq!(dead.len(), 1, "{v}");
    let mut r = g.spawn_raw(SHOAL, &["reclaim", "--file-prefix", g.prefix()]);
    assert_eq!(r.wait_exit(T), Some(0), "{}", r.output());
    assert!(
        r.output()
            .contains(&format!("process {} (secondary, slot 1) was dead", s.pid())),
        "{}",
        r.output()
    );
    let v = snapshot(&g);
    assert_eq!(v["processes"].as_array().unwrap().len(), 1, "{v}");
    // Whatever is in use is the (stopped) primary's, which may have been frozen between
    // printing a message and freeing it; nothing is the dead secondary's.
    let by_slot = v["mempools"][0]["in_use_by_slot"].as_str().unwrap_or("");
    assert!(
        by_slot
            .split(',')
            .all(|e| e.is_empty() || e.starts_with("0:")),
        "{v}"
    );
    let held: u64 = by_slot
        .split(',')
        .filter_map(|e| e.strip_prefix("0:"))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    assert_eq!(v["mempools"][0]["in_use"], held, "{v}");
    p.signal(libc::SIGCONT);
    // A live slot is refused; nothing dead is left.
    let mut r = g.spawn_raw(
        SHOAL,
        &["reclaim", "--file-prefix", g.prefix(), "--slot", "0"],
    );
    assert_eq!(r.wait_exit(T), Some(1));
    assert!(
        r.output().contains("alive") || r.output().contains("live"),
        "{}",
        r.output()
    );
    let mut r = g.spawn_raw(SHOAL, &["reclaim", "--file-prefix", g.prefix()]);
    assert_eq!(r.wait_exit(T), Some(0));
    assert!(
        r.output().contains("no dead process found"),
        "{}",
        r.output()
    );
    p.send_line("quit");
    assert_eq!(p.wait_exit(T), Some(0), "{}", p.output());
}

#[test]
fn every_command_answers_help() {
    let g = Group::new("cli-help");
    for cmd in ["info", "top", "reclaim", "telemetry", "demo", "dumpcap"] {
        let mut p = g.spawn_raw(SHOAL, &[cmd, "--help"]);
        assert_eq!(
            p.wait_exit(T),
            Some(0),
            "shoal {cmd} --help:\n{}",
            p.output()
        );
        let out = p.output();
        assert!(out.contains(&format!("Usage: shoal {cmd}")), "{out}");
        assert!(p.stderr_lines().is_empty(), "{out}");
    }
    for args in [&["mp_server", "--", "--help"][..], &["mp_client", "--help"]] {
        let mut p = g.spawn_raw(SHOAL, args);
        assert_eq!(p.wait_exit(T), Some(0), "shoal {args:?}:\n{}", p.output());
        assert!(p.output().contains("Usage: mp_"), "{}", p.output());
    }
}

/// `shoal info` with dpdk-proc-info's switches, on an mp_server that received a known number
/// of packets from a capture file.
#[test]
fn proc_info_switches_show_and_reset_what_dpdk_proc_info_does() {
    const N: usize = 50;
    let dir = shoal_testkit::TempDir::new("proc-info");
    let input = dir.join("in.pcap");
    let mut w =
        shoal::ethdev::pcap::PcapWriter::new(std::fs::File::create(&input).unwrap()).unwrap();
    for i in 0..N {
        let mut f = vec![0u8; 60 + i];
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        w.write(i as u64, &f).unwrap();
    }
    w.into_inner().unwrap();
    let g = Group::new("proc-info");
    let vdev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("out.pcap").display()
    );
    let mut s = g.spawn(
        SHOAL,
        &[
            "mp_server",
            "-l",
            "0",
            "--no-huge",
            "--vdev",
            &vdev,
            "--",
            "-n",
            "1",
            "--stats-interval",
            "0",
        ],
    );
    s.wait_for("server ready", T);
    let info = |args: &[&str]| -> (Option<i32>, String) {
        let mut all = vec!["info", "--file-prefix", g.prefix()];
        all.extend_from_slice(args);
        let mut p = g.spawn_raw(SHOAL, &all);
        let code = p.wait_exit(T);
        (code, p.output())
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (code, out) = info(&a);
        assert_eq!(code, Some(0), "{out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    // Every packet of the file is received (and dropped: no client runs).
    shoal_testkit::eventually("the file's packets received", T, || {
        json(&["--stats"])["stats"][0]["stats"]["ipackets"] == N as u64
    });
    let (code, out) = info(&["--stats"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("NIC statistics for port 0"), "{out}");
    assert!(out.contains(&format!("RX-packets: {N} ")), "{out}");
    let x = json(&["--xstats", "-p", "1"]);
    assert_eq!(x["xstats"]["0"]["rx_good_packets"], N as u64, "{x}");
    assert_eq!(x["xstats"]["0"]["rx_q0_packets"], N as u64, "{x}");
    let (code, out) = info(&["--reset-stats"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("port 0: statistics reset"), "{out}");
    assert_eq!(json(&["--stats"])["stats"][0]["stats"]["ipackets"], 0);
    let r = json(&["--show-ring=MProc_Client_RX_0"]);
    assert_eq!(r["rings"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["rings"][0]["size"], 4096, "{r}");
    let m = json(&["--show-mempool"]);
    assert!(
        m["mempools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mbuf_pool"),
        "{m}"
    );
    let (code, out) = info(&["--show-mempool=mbuf_pool"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Name: mbuf_pool"), "{out}");
    let (code, out) = info(&["--show-ring=nope"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no ring named \"nope\""), "{out}");
    let (code, out) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
}

/// `shoal info` lists the group's ports, with the mode the kernel bound AF_XDP sockets in
/// (copy on veth, which has no zero-copy).
#[test]
fn info_lists_ports_and_the_af_xdp_mode() {
    let Some(ns) = shoal_testkit::netns::NetNs::new("infox") else {
        return;
    };
    ns.veth("xa", "xb").unwrap();
    let g = Group::new("infox");
    let smp = sibling("symmetric_mp");
    let mut p = g.spawn_raw(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            &smp,
            "-l",
            "0",
            "--no-huge",
            "-m",
            "64",
            "--file-prefix",
            g.prefix(),
            "--log-level",
            "warning",
            "--vdev",
            "net_af_xdp0,iface=xa",
            "--vdev",
            "net_null1",
            "--",
            "-p",
            "0x3",
            "--num-procs",
            "1",
            "--proc-id",
            "0",
        ],
    );
    p.wait_for("Finished Process Init", T);
    let mut info = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix()]);
    assert_eq!(info.wait_exit(T), Some(0), "{}", info.output());
    let text = info.output();
    let port = text
        .lines()
        .find(|l| l.contains("net_af_xdp0"))
        .unwrap_or_else(|| panic!("no net_af_xdp0 line in:\n{text}"));
    assert!(
        port.contains("net_af_xdp ") && port.contains(" copy ") && port.contains("started"),
        "{port}"
    );
    assert!(text.contains("ports (2)"), "{text}");
    let mut json = g.spawn_raw(SHOAL, &["info", "--file-prefix", g.prefix(), "--json"]);
    assert_eq!(json.wait_exit(T), Some(0));
    let v: serde_json::Value = serde_json::from_str(&json.output()).expect("valid JSON");
    assert_eq!(v["ports"][0]["mode"], "copy", "{v}");
    assert_eq!(v["ports"][1]["driver"], "net_null", "{v}");
    let (code, out) = p.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
}
