//! `shoal top` against a live pipeline fed by generators of known rates: its plain-text frames
//! (stdout is a pipe) show per-port rates within the generators' configured rates, the
//! workers' rates, and the processes with their CPU use.

use std::path::PathBuf;
use std::time::Duration;

use shoal_testkit::Group;

const T: Duration = Duration::from_secs(30);
const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// The library's `custom_dispatch` example (built with the workspace's examples).
fn custom_dispatch() -> String {
    let p: PathBuf = PathBuf::from(SHOAL)
        .with_file_name("examples")
        .join("custom_dispatch");
    assert!(
        p.exists(),
        "{} is not built: cargo build --release --workspace --examples",
        p.display()
    );
    p.display().to_string()
}

/// Columns of the port rows: PORT RX_PPS RX_MBPS RX_TOTAL.
fn port_rows(frame: &str) -> Vec<(u16, f64)> {
    frame
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 {
                return None;
            }
            Some((f[0].parse().ok()?, f[1].parse().ok()?))
        })
        .collect()
}

#[test]
fn top_shows_rates_within_the_generators_configured_rates() {
    let bin = custom_dispatch();
    let g = Group::new("top-rates");
    let rates = [(0u16, 2000.0), (1u16, 3000.0)];
    let mut dist = g.spawn(
        &bin,
        &[
            "--no-huge",
            "-l",
            "0",
            "--vdev",
            "net_gen0,rate=2000",
            "--vdev",
            "net_gen1,rate=3000",
            "--",
            "distributor",
        ],
    );
    dist.wait_for("distributor ready", T);
    let mut w0 = g.spawn(
        &bin,
        &[
            "--no-huge",
            "-l",
            "1",
            "--proc-type=secondary",
            "--",
            "worker",
            "0",
        ],
    );
    let mut w1 = g.spawn(
        &bin,
        &[
            "--no-huge",
            "-l",
            "2",
            "--proc-type=secondary",
            "--",
            "worker",
            "1",
        ],
    );
    w0.wait_for("worker 0 ready", T);
    w1.wait_for("worker 1 ready", T);
    dist.wait_for("Joined { id: 1", T);
    dist.wait_for("Joined { id: 0", T);

    let mut top = g.spawn_raw(
        SHOAL,
        &[
            "top",
            "--file-prefix",
            g.prefix(),
            "--iterations",
            "3",
            "--interval-ms",
            "500",
        ],
    );
    assert_eq!(top.wait_exit(T), Some(0), "{}", top.output());
    let out = top.output();
    assert!(
        !out.contains('\x1b'),
        "escape sequences in plain mode:\n{out}"
    );
    let frames: Vec<&str> = out.split("shoal top: ").skip(1).collect();
    assert_eq!(frames.len(), 3, "{out}");
    for (port, rate) in rates {
        let seen: Vec<f64> = frames
            .iter()
            .filter_map(|f| port_rows(f).into_iter().find(|(p, _)| *p == port))
            .map(|(_, pps)| pps)
            .collect();
        assert_eq!(seen.len(), 3, "port {port} missing from a frame:\n{out}");
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        // The generator never runs ahead of its rate over its lifetime; a frame may catch up
        // on a poll that came late, hence a margin above, and some traffic must show.
        assert!(
            mean > 0.0 && mean <= rate * 1.25 + 64.0,
            "port {port}: {seen:?} for {rate} pps\n{out}"
        );
    }
    // The group's port table says the same, whoever polls the ports.
    for (port, rate) in rates {
        let name = format!("net_gen{port}");
        let seen: Vec<f64> = frames
            .iter()
            .filter_map(|f| {
                f.lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>())
                    .find(|c| c.len() == 10 && c[1] == name)
                    .and_then(|c| c[3].parse().ok())
            })
            .collect();
        assert_eq!(seen.len(), 3, "{name} missing from a frame:\n{out}");
        let mean = seen.iter().sum::<f64>() / seen.len() as f64;
        assert!(
            mean > 0.0 && mean <= rate * 1.25 + 64.0,
            "{name}: {seen:?} for {rate} pps\n{out}"
        );
    }
    for want in [
        "pipeline \"custom\" running",
        "WORKER",
        "drops/s:",
        "processes (3)",
        "custom_W0",
        "mbuf_pool",
    ] {
        assert!(out.contains(want), "missing {want:?}:\n{out}");
    }
    // Each worker row carries a live state and a numeric rate; the processes their CPU use.
    let last = frames[2];
    for w in ["0", "1"] {
        let row = last
            .lines()
            .find(|l| l.split_whitespace().next() == Some(w) && l.contains("live"))
            .unwrap_or_else(|| panic!("no live row for worker {w}:\n{last}"));
        let rx_pps: f64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert!(rx_pps >= 0.0, "{row}");
    }
    let primary = last
        .lines()
        .find(|l| l.starts_with("  ") && l.split_whitespace().nth(2) == Some("primary"))
        .unwrap_or_else(|| panic!("no primary row:\n{last}"));
    let cpu: f64 = primary
        .split_whitespace()
        .nth(4)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no CPU use in {primary:?}:\n{out}"));
    assert!(cpu >= 0.0, "{primary}");

    let (code, _) = dist.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0));
    assert_eq!(w0.wait_exit(T), Some(0));
    assert_eq!(w1.wait_exit(T), Some(0));
}

#[test]
fn top_refuses_bad_arguments_with_status_2() {
    let g = Group::new("top-bad");
    for args in [
        &["top", "--iterations", "0"][..],
        &["top", "--interval-ms", "x"],
        &["top", "--bogus"],
    ] {
        let mut p = g.spawn_raw(SHOAL, args);
        assert_eq!(p.wait_exit(T), Some(2), "{args:?}: {}", p.output());
        assert!(p.output().contains("error: "), "{}", p.output());
    }
}
