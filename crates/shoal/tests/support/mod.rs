//! Cross-process test support: re-executes the test binary as another member of a group, like
//! DPDK's `process_dup`. The child runs the same test with `SHOAL_TEST_ROLE` set, and the test
//! body branches on it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The role this process plays, when it is a re-executed child.
pub fn role() -> Option<String> {
    std::env::var("SHOAL_TEST_ROLE").ok()
}

/// The group prefix a child was given.
pub fn child_prefix() -> String {
    std::env::var("SHOAL_TEST_PREFIX").expect("SHOAL_TEST_PREFIX")
}

/// A unique file prefix for one test.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A re-executed child whose stdout lines are collected.
pub struct Member {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Member {
    /// Runs `test` (its full path name, e.g. `two_primaries_conflict`) in a child as `role`.
    pub fn spawn(test: &str, role: &str, prefix: &str, env: &[(&str, &str)]) -> Member {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("SHOAL_TEST_ROLE", role)
            .env("SHOAL_TEST_PREFIX", prefix)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
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
        Member {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line containing `pat`; panics with everything seen on timeout.
    pub fn wait_for(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(pat) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line with {pat:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded) for the child to exit and returns its status code; drains its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(l) = self.lines.try_recv() {
                    self.seen.push(l);
                }
                return st.code();
            }
            if Instant::now() >= deadline {
                panic!(
                    "child did not exit within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            while let Ok(l) = self.lines.try_recv() {
                self.seen.push(l);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// All output so far.
    pub fn output(&mut self) -> String {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocks a child until its parent goes away or the timeout passes (children must never
/// outlive a failed test for long).
pub fn park(timeout: Duration) {
    std::thread::sleep(timeout);
}
