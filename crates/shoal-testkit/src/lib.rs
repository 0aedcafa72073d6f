//! Test support for multi-process tests.
//!
//! A [`Group`] owns a unique `--file-prefix` and every process spawned into it; dropping it
//! kills them (SIGKILL) and removes the group's runtime directory and segment files, so tests
//! can run in parallel and never leave anything behind. Every wait is bounded.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The role this process plays when it is a re-executed test binary (see [`Group::spawn_self`]).
pub fn role() -> Option<String> {
    std::env::var("SHOAL_TEST_ROLE").ok()
}

/// The prefix a re-executed child was given.
pub fn child_prefix() -> String {
    std::env::var("SHOAL_TEST_PREFIX").expect("SHOAL_TEST_PREFIX is set for children")
}

/// A unique file prefix: `t-<tag>-<pid>-<n>`.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The runtime directory shoal uses for `prefix` (mirrors `shoal::eal::runtime_dir`).
pub fn runtime_dir(prefix: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    let base = if uid == 0 {
        PathBuf::from("/var/run/shoal")
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("shoal")
    } else {
        PathBuf::from(format!("/tmp/shoal-{uid}"))
    };
    base.join(prefix)
}

/// A process group under test.
pub struct Group {
    prefix: String,
}

impl Group {
    /// A group with a fresh unique prefix.
    pub fn new(tag: &str) -> Group {
        Group {
            prefix: unique_prefix(tag),
        }
    }

    /// The group's `--file-prefix`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Spawns `bin` with `args`, inserting `--file-prefix <prefix>` and `--log-level warning`
    /// (unless given) before the application's `--`.
    pub fn spawn(&self, bin: &str, args: &[&str]) -> Proc {
        let mut full: Vec<String> = Vec::new();
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        full.extend(args[..split].iter().map(|s| s.to_string()));
        full.push("--file-prefix".into());
        full.push(self.prefix.clone());
        if !args[..split].iter().any(|a| a.starts_with("--log-level")) {
            full.push("--log-level".into());
            full.push("warning".into());
        }
        full.extend(args[split..].iter().map(|s| s.to_string()));
        let mut cmd = Command::new(bin);
        cmd.args(&full);
        Proc::spawn(cmd)
    }

    /// Spawns `bin` with exactly `args` (no prefix inserted): for tools like `shoal info`.
    pub fn spawn_raw(&self, bin: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Proc::spawn(cmd)
    }

    /// Re-executes the current test binary as `role`, running the test named `test`.
    pub fn spawn_self(&self, test: &str, role: &str, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("SHOAL_TEST_ROLE", role)
            .env("SHOAL_TEST_PREFIX", &self.prefix);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::spawn(cmd)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(runtime_dir(&self.prefix));
        for dir in ["/dev/shm", "/dev/hugepages"] {
            let _ = std::fs::remove_file(format!("{dir}/shoal_{}_seg0", self.prefix));
        }
    }
}

/// A spawned process whose stdout and stderr lines are collected.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let (tx, rx) = channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(l);
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Waits (bounded) for an output line containing `pat`, seen before or after this call.
    /// Panics with all output on timeout.
    pub fn wait_for(&mut self, pat: &str, timeout: Duration) -> String {
        self.wait_for_nth(pat, 1, timeout)
    }

    /// Waits (bounded) until `n` output lines contain `pat`; returns the n-th.
    pub fn wait_for_nth(&mut self, pat: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(l) = self.seen.iter().filter(|l| l.contains(pat)).nth(n - 1) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no line #{n} with {pat:?} within {timeout:?}; output:\n{}",
                    self.seen.join("\n")
                );
            }
            if let Ok(l) = self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                self.seen.push(l);
            }
        }
    }

    /// Writes one line to the process's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends a signal (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a pid we spawned and still own (not yet reaped).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// The exit status if the process has ended (never waits).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for exit; returns the exit code (None when killed by a signal).
    /// Panics with all output on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads a moment to pass on the last lines.
                std::thread::sleep(Duration::from_millis(30));
                self.drain();
                return st.code();
            }
            if Instant::now() >= deadline {
                self.drain();
                panic!(
                    "process {} did not exit within {timeout:?}; output:\n{}",
                    self.pid(),
                    self.seen.join("\n")
                );
            }
            self.drain();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit code if the process has exited (None inside: killed by a signal), without
    /// waiting.
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        let st = self.child.try_wait().expect("try_wait")?;
        std::thread::sleep(Duration::from_millis(30));
        self.drain();
        Some(st.code())
    }

    /// Sends `sig`, waits for exit, returns the exit code and the whole output.
    pub fn stop(&mut self, sig: i32, timeout: Duration) -> (Option<i32>, String) {
        self.signal(sig);
        let code = self.wait_exit(timeout);
        (code, self.output())
    }

    /// All output so far, lines joined with '\n'.
    pub fn output(&mut self) -> String {
        self.drain();
        self.seen.join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
