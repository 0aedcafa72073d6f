//! Test support for shoal's tests.
//!
//! A [`Group`] owns a unique `--file-prefix` and every process spawned into it; dropping it
//! kills them (SIGKILL) and removes the group's runtime directory and segment files, so tests
//! can run in parallel and never leave anything behind. Every wait is bounded.
//!
//! The helpers that tests share live here too: joining a group in the test process ([`init`],
//! [`solo_eal`]), re-executed children ([`child_or!`], [`role`]), temporary directories
//! ([`TempDir`]), CPU pinning ([`pin_to`]), bounded polling ([`eventually`], [`block_on`]), network
//! namespaces ([`netns`]), and what a test does when the machine cannot run it
//! ([`skip_or_fail`]).

pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shoal::eal::Eal;

pub use shoal::eal::runtime_dir;

/// The role this process plays when it is a re-executed test binary (see [`Group::spawn_self`]).
pub fn role() -> Option<String> {
    std::env::var("SHOAL_TEST_ROLE").ok()
}

/// The prefix a re-executed child was given.
pub fn child_prefix() -> String {
    std::env::var("SHOAL_TEST_PREFIX").expect("SHOAL_TEST_PREFIX is set for children")
}

/// In a test that re-executes itself ([`Group::spawn_self`]): when this process is such a
/// child, runs `$run(&role)` and returns from the test; otherwise goes on with the test.
#[macro_export]
macro_rules! child_or {
    ($run:expr) => {
        if let Some(r) = $crate::role() {
            $run(&r);
            return;
        }
    };
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

/// Joins the group `prefix` from the test process: EAL options `-m 64 --log-level warning`,
/// then `extra` (a later option wins, so `extra` may change those).
pub fn init<S: AsRef<str>>(prefix: &str, extra: &[S]) -> Result<Eal, shoal::eal::Error> {
    let mut args: Vec<String> = ["test", "--file-prefix", prefix, "-m", "64"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--log-level".into(), "warning".into()]);
    args.extend(extra.iter().map(|s| s.as_ref().to_string()));
    Eal::init(args).map(|(eal, _)| eal)
}

/// The primary of a fresh group of its own (prefix from [`unique_prefix`]), for tests that
/// run in one process. Panics when the EAL refuses.
pub fn solo_eal<S: AsRef<str>>(tag: &str, extra: &[S]) -> Eal {
    let prefix = unique_prefix(tag);
    init(&prefix, extra).unwrap_or_else(|e| panic!("EAL init for {prefix:?}: {e}"))
}

/// [`solo_eal`] on /dev/shm (`--no-huge`) with a port for each `--vdev` spec.
pub fn ports_eal<S: AsRef<str>>(tag: &str, vdevs: &[S]) -> Eal {
    let mut extra = vec!["--no-huge".to_string()];
    for v in vdevs {
        extra.extend(["--vdev".to_string(), v.as_ref().to_string()]);
    }
    solo_eal(tag, &extra)
}

/// What a test calls when the machine cannot run it (a package is missing, or a privilege):
/// prints `SKIP <test file>:<line> (<test>): <reason>` and the test returns. Where the
/// environment variable `CI` is `true` (CI runs so), it panics with that line instead: there
/// the machine was set up for every test, so a test that cannot run is a failure.
///
/// `#[track_caller]`: a helper that calls it on behalf of a test should be `#[track_caller]`
/// too, so that the test's own file is named.
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    let at = std::panic::Location::caller();
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let line = format!("{}:{}{test}: {reason}", at.file(), at.line());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("cannot run {line} (CI=true: a skipped test fails)");
    }
    println!("SKIP {line}");
}

/// True when `prog` can be run (it answers `--version`).
pub fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty())
}

/// True when `prog` can be run; otherwise the test has been skipped ([`skip_or_fail`], naming
/// ci/apt-packages.txt, which lists the packages the tests need), and should return.
#[track_caller]
pub fn require_tool(prog: &str) -> bool {
    if have(prog) {
        return true;
    }
    skip_or_fail(&format!(
        "{prog} is not installed (ci/setup.sh installs the packages of ci/apt-packages.txt)"
    ));
    false
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// Waits (bounded) until `cond` holds, looking every millisecond; panics naming `what` when
/// `timeout` passes first.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs a future to completion on the current thread, parking between wake-ups (a minimal
/// executor, e.g. for `Mp::request_future`). Panics when it has not completed after `timeout`.
pub fn block_on<F: std::future::Future>(f: F, timeout: Duration) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let end = Instant::now() + timeout;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the future did not complete within {timeout:?}"
        );
        std::thread::park_timeout(left.min(Duration::from_millis(100)));
    }
}

/// A fresh directory under /tmp with mode 0700, removed (with what is in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `/tmp/shoal-test-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/shoal-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Pins the calling thread to `cpu`; panics when the kernel refuses.
pub fn pin_to(cpu: usize) {
    #[allow(unsafe_code)]
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    assert!(
        cpu < libc::CPU_SETSIZE as usize,
        "cpu {cpu} beyond CPU_SETSIZE"
    );
    #[allow(unsafe_code)]
    // SAFETY: cpu is below CPU_SETSIZE (checked); set is a valid cpu_set_t.
    unsafe {
        libc::CPU_SET(cpu, &mut set)
    };
    #[allow(unsafe_code)]
    // SAFETY: pid 0 is the calling thread; set is valid for its size.
    let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(
        ret,
        0,
        "sched_setaffinity({cpu}): {}",
        std::io::Error::last_os_error()
    );
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

/// How long the output pipes may stay open after the process exited (only a child it left
/// behind holding them would keep them open).
const PIPES_CLOSE: Duration = Duration::from_secs(10);

/// What a reader thread passes on.
enum Out {
    Line {
        stderr: bool,
        line: String,
    },
    /// The stream reached its end (the process closed it, or exited).
    Eof,
}

/// A spawned process whose stdout and stderr lines are collected.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Out>,
    readers: Vec<JoinHandle<()>>,
    open_streams: usize,
    /// Every line, stdout and stderr, in arrival order.
    seen: Vec<String>,
    /// The stderr lines only.
    err: Vec<String>,
}

/// Passes on the lines of `stream` (bytes that are not UTF-8 replaced, so that a line of them
/// neither stops the reader nor leaves the process blocked on a full pipe), then its end.
fn reader(stream: impl Read + Send + 'static, stderr: bool, tx: Sender<Out>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            let _ = tx.send(Out::Line { stderr, line });
            buf.clear();
        }
        let _ = tx.send(Out::Eof);
    })
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
        let readers = vec![reader(out, false, tx.clone()), reader(err, true, tx)];
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines: rx,
            readers,
            open_streams: 2,
            seen: Vec::new(),
            err: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn take(&mut self, o: Out) {
        match o {
            Out::Line { stderr, line } => {
                if stderr {
                    self.err.push(line.clone());
                }
                self.seen.push(line);
            }
            Out::Eof => self.open_streams -= 1,
        }
    }

    fn drain(&mut self) {
        while let Ok(o) = self.lines.try_recv() {
            self.take(o);
        }
    }

    /// After the process exited: collects the rest of its output and joins the reader
    /// threads, so that every line it wrote is seen. Panics when its pipes stay open.
    fn finish_output(&mut self) {
        let deadline = Instant::now() + PIPES_CLOSE;
        while self.open_streams > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(o) => self.take(o),
                Err(_) => panic!(
                    "process {} exited but its output pipes stayed open for {PIPES_CLOSE:?} (a child of it holds them?); output:\n{}",
                    self.pid(),
                    self.seen.join("\n")
                ),
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
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
            if let Ok(o) = self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                self.take(o);
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

    /// Waits (bounded) for exit; returns the exit code (None when killed by a signal), once
    /// all the output is collected. Panics with all output on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.finish_output();
                return st.code();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.drain();
                panic!(
                    "process {} did not exit within {timeout:?}; output:\n{}",
                    self.pid(),
                    self.seen.join("\n")
                );
            }
            // Collect output while waiting; look at the process again at least every 10 ms.
            if let Ok(o) = self.lines.recv_timeout(left.min(Duration::from_millis(10))) {
                self.take(o);
            }
        }
    }

    /// The exit code if the process has exited (None inside: killed by a signal), without
    /// waiting for it; once it has, all its output is collected.
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        let st = self.child.try_wait().expect("try_wait")?;
        self.finish_output();
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

    /// The stderr lines so far.
    pub fn stderr_lines(&mut self) -> Vec<String> {
        self.drain();
        self.err.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
