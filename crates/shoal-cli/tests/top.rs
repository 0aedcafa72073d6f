//! `shoal top` against a live pipeline fed by generators of known rates: its plain-text frames
//! (stdout is a pipe) show per-port rates within the generators' configured rates, the
//! workers' rates, and the processes with their CPU use. On a terminal (a tmux pane of fixed
//! size) it shows the same as tables redrawn in place, answers its keys and quits on `q`.

use std::path::PathBuf;
use std::time::Duration;

use shoal_testkit::{Group, Proc};

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

/// A pipeline of the `custom_dispatch` example fed by generators of `RATES`: the distributor
/// and its 2 workers, once each is ready and the workers have joined.
fn start_pipeline(g: &Group) -> [Proc; 3] {
    let bin = custom_dispatch();
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
    [dist, w0, w1]
}

/// The generators' rates by port, as `start_pipeline` configures them.
const RATES: [(u16, f64); 2] = [(0, 2000.0), (1, 3000.0)];

/// Stops the pipeline: the distributor on SIGINT, then the workers, each with status 0.
fn stop_pipeline([mut dist, mut w0, mut w1]: [Proc; 3]) {
    let (code, _) = dist.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0));
    assert_eq!(w0.wait_exit(T), Some(0));
    assert_eq!(w1.wait_exit(T), Some(0));
}

#[test]
fn top_shows_rates_within_the_generators_configured_rates() {
    let g = Group::new("top-rates");
    let rates = RATES;
    let pipeline = start_pipeline(&g);

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

    stop_pipeline(pipeline);
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

/// A tmux server of its own (`tmux -L NAME`), killed on drop with whatever runs in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("shoal-{tag}-{}", std::process::id()),
        }
    }

    /// Runs `tmux -L SOCKET ARGS`; its stdout, or None when tmux failed (no such session).
    fn run(&self, args: &[&str]) -> Option<String> {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What the pane of session `s` shows.
    fn screen(&self, s: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", s])
            .unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Polls `f` every 20 ms until it returns Some, for at most `T`; panics with `what` and the
/// last screen otherwise.
fn poll<R>(what: &str, mut f: impl FnMut() -> Result<R, String>) -> R {
    let end = std::time::Instant::now() + T;
    loop {
        match f() {
            Ok(r) => return r,
            Err(last) if std::time::Instant::now() >= end => {
                panic!("timed out after {T:?} waiting for {what}; last seen:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The RX_PPS of port `name` in the ports table of a terminal screen (its row reads
/// `│ PORT NAME STATE RX_PPS ...`).
fn screen_rx_pps(screen: &str, name: &str) -> Option<f64> {
    screen.lines().find_map(|l| {
        let f: Vec<&str> = l
            .split(|c: char| c.is_whitespace() || c == '│')
            .filter(|w| !w.is_empty())
            .collect();
        let at = f.iter().position(|w| *w == name)?;
        f.get(at + 2)?.parse().ok()
    })
}

/// `shoal top` in the pane of a detached tmux session of fixed size (160x60), watching group
/// `g`. The shell in the pane records, once top has ended, the terminal's settings (`stty -a`)
/// and then top's exit status.
struct TopInTmux {
    tmux: Tmux,
    _dir: shoal_testkit::TempDir,
    status: PathBuf,
    stty: PathBuf,
}

impl TopInTmux {
    /// None when tmux is missing (the test has been skipped, or failed under CI=true).
    #[track_caller]
    fn start(g: &Group, tag: &str) -> Option<TopInTmux> {
        if !std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            shoal_testkit::skip_or_fail(
                "tmux is not installed (ci/setup.sh installs the packages of ci/apt-packages.txt)",
            );
            return None;
        }
        let dir = shoal_testkit::TempDir::new(tag);
        let (status, stty) = (dir.join("status"), dir.join("stty"));
        let cmd = format!(
            "'{SHOAL}' top --file-prefix '{}' --interval-ms 300; s=$?; stty -a > '{}'; echo $s > '{}'",
            g.prefix(),
            stty.display(),
            status.display()
        );
        let tmux = Tmux::new(tag);
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "60",
            &cmd,
        ])
        .expect("tmux new-session");
        Some(TopInTmux {
            tmux,
            _dir: dir,
            status,
            stty,
        })
    }

    /// Waits until the tables show, with the generators' traffic on both ports; the screen.
    fn wait_for_tables(&self) -> String {
        poll("the ports table with traffic on both ports", || {
            let s = self.tmux.screen("top");
            let all = RATES.iter().all(|(port, _)| {
                screen_rx_pps(&s, &format!("net_gen{port}")).is_some_and(|pps| pps > 0.0)
            });
            if s.contains("ports (2)") && all {
                Ok(s)
            } else {
                Err(s)
            }
        })
    }

    /// The pid of `shoal top`: the child of the pane's shell.
    fn pid(&self) -> u32 {
        let shell = self
            .tmux
            .run(&["display-message", "-p", "-t", "top", "#{pane_pid}"])
            .expect("pane pid");
        let shell = shell.trim();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .expect("children of the pane's shell");
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child of the pane's shell {shell}"))
    }

    /// Waits for top to end; asserts that it left the terminal as it found it (canonical
    /// mode, echo on) and returns its exit status.
    fn exit_status(&self) -> String {
        let code = poll("top to exit", || {
            std::fs::read_to_string(&self.status)
                .ok()
                .filter(|s| s.ends_with('\n'))
                .ok_or_else(|| self.tmux.screen("top"))
        });
        let stty = std::fs::read_to_string(&self.stty).expect("stty -a after top");
        let modes: Vec<&str> = stty.split_whitespace().collect();
        for mode in ["icanon", "echo"] {
            assert!(
                modes.contains(&mode),
                "the terminal is left without {mode}:\n{stty}"
            );
        }
        code.trim().to_string()
    }
}

#[test]
fn top_on_a_terminal_redraws_its_tables_in_place_and_quits_on_q() {
    let g = Group::new("top-tui");
    let pipeline = start_pipeline(&g);
    let Some(top) = TopInTmux::start(&g, "top-tui") else {
        return;
    };
    let screen = top.wait_for_tables();
    for want in [
        "RX_PPS",
        "pipeline \"custom\" running",
        "workers of pipeline \"custom\"",
        "rings (2)",
        "mempools (1)",
        "processes (3)",
        "primary",
        "q quit",
    ] {
        assert!(screen.contains(want), "missing {want:?}:\n{screen}");
    }
    assert_eq!(
        screen.matches("shoal top: group").count(),
        1,
        "frames are not redrawn in place:\n{screen}"
    );

    // `s` on the first table (ports) sorts it by the next column; a narrower terminal
    // still shows the tables, within its width.
    top.tmux
        .run(&["send-keys", "-t", "top", "s"])
        .expect("send s");
    poll("the ports table sorted by RX_MBPS", || {
        let s = top.tmux.screen("top");
        if s.contains("ports (2) · sorted by RX_MBPS") {
            Ok(())
        } else {
            Err(s)
        }
    });
    top.tmux
        .run(&["resize-window", "-t", "top", "-x", "100", "-y", "40"])
        .expect("resize");
    poll("the tables redrawn at 100 columns", || {
        let s = top.tmux.screen("top");
        let fits = s.lines().all(|l| l.chars().count() <= 100);
        // The ports table's top right corner sits in the last column (cut at 100 columns,
        // the old frame's top border would end in a plain line).
        let redrawn = s
            .lines()
            .any(|l| l.starts_with("┌ ports (2)") && l.chars().count() == 100 && l.ends_with('┐'));
        if fits && redrawn && screen_rx_pps(&s, "net_gen0").is_some() {
            Ok(())
        } else {
            Err(s)
        }
    });

    // `p` pauses the display, and says so.
    top.tmux
        .run(&["send-keys", "-t", "top", "p"])
        .expect("send p");
    poll("the paused display", || {
        let s = top.tmux.screen("top");
        if s.contains("(PAUSED)") {
            Ok(())
        } else {
            Err(s)
        }
    });

    top.tmux
        .run(&["send-keys", "-t", "top", "q"])
        .expect("send q");
    assert_eq!(top.exit_status(), "0", "top's exit status after q");
    stop_pipeline(pipeline);
}

#[test]
fn top_on_a_terminal_restores_it_on_sigterm() {
    let g = Group::new("top-term");
    let pipeline = start_pipeline(&g);
    let Some(top) = TopInTmux::start(&g, "top-term") else {
        return;
    };
    top.wait_for_tables();
    shoal::eal::send_signal(top.pid(), libc::SIGTERM).expect("SIGTERM to top");
    assert_eq!(top.exit_status(), "0", "top's exit status after SIGTERM");
    stop_pipeline(pipeline);
}
