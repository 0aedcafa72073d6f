//! `shoal up`, `shoal status`, `shoal down`: a group of processes described in one TOML file,
//! started in order and kept running.
//!
//! ```toml
//! file_prefix = "cs"                # the group's --file-prefix, given to every command
//!
//! [primary]
//! name = "server"
//! command = ["mp_server", "-l", "0", "--", "-n", "2"]
//! ready = "server ready"            # a line the primary prints once secondaries may start
//! restart = "always"                # always | on-failure (the default) | never
//! adopt = true                      # restart it with --adopt (the default)
//!
//! [[secondary]]
//! name = "client0"
//! command = ["mp_client", "-l", "1", "--proc-type=secondary", "--", "-n", "0"]
//! backoff_ms = 100                  # first restart delay, doubled per quick failure ...
//! backoff_max_ms = 5000             # ... up to this
//! max_restarts_per_minute = 10      # beyond this the process is given up
//! ```
//!
//! `shoal up FILE` starts the primary, waits until it is ready (its `ready` line, or else the
//! group's segment published), then starts the secondaries. A process that dies is restarted
//! with the same command line, hence the same id and lcores, after its back-off: `backoff_ms`,
//! doubled for each death that follows a run shorter than [`STABLE_RUN`], capped at
//! `backoff_max_ms`. Every death (exit status or signal) and every restart is logged. A
//! secondary that dies while the primary is down (shoal's secondaries exit with status 3 when
//! their primary dies, unless a `--primary-grace` keeps them waiting for a new one) waits for
//! the primary to be ready again. A primary is restarted with `--adopt` (EAL option, inserted
//! before the application's `--`), so that it takes over the live group of its predecessor:
//! secondaries started with `--primary-grace` keep running and follow it. With `adopt =
//! false`, it is restarted only once the secondaries of the group it leaves have exited (the
//! new primary makes a new group). SIGINT or SIGTERM to `shoal up` (or `shoal down`) stops the group: SIGINT to the
//! secondaries, which drain their rings and leave, then to the primary, which takes back what
//! is left in the rings of departed clients; a process that does not exit within
//! `stop_timeout_ms` is killed. Children run in a process group of their own, so that a
//! Ctrl-C reaches the supervisor alone and the order holds.
//!
//! Programs: `mp_server` and `mp_client` run as `shoal mp_server`/`shoal mp_client` (the same
//! code, built into this binary); another name without a `/` is looked up beside this binary,
//! then in `PATH`.
//!
//! The supervisor keeps its state in `<runtime base>/.up-<prefix>/` (beside the group's
//! runtime directory; a prefix cannot start with a dot): `lock`, on which it holds a `flock`
//! while it runs, and `state.json`, rewritten (by rename) at each change, which `shoal status`
//! reads. A supervisor killed by SIGKILL leaves its processes running unsupervised; its lock
//! goes with it, so `shoal status` says that no supervisor runs and shows the last state, and a
//! new `shoal up` for the prefix is refused by the EAL while the old primary lives.

#![allow(unsafe_code)] // one flock(2) call: std's File::try_lock is newer than the crate's MSRV

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A run at least this long resets a process's back-off to `backoff_ms`.
pub(crate) const STABLE_RUN: Duration = Duration::from_secs(10);
/// How long the primary may take to become ready before it is counted as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at its processes.
const TICK: Duration = Duration::from_millis(20);

const UP_USAGE: &str = "\
usage: shoal up FILE [--file-prefix P] [--check]

Starts the group FILE describes (TOML: [primary] and [[secondary]] processes, each a command
line with a restart policy), restarts a process that dies, and stops the group in order
(secondaries first) on SIGINT/SIGTERM or `shoal down`. --file-prefix overrides the file's
file_prefix; --check prints the command lines and exits.";

const STATUS_USAGE: &str = "\
usage: shoal status [FILE] [--file-prefix P] [--json]

Shows each process of a group started by `shoal up`: pid, state, restarts, uptime, last exit.";

const DOWN_USAGE: &str = "\
usage: shoal down [FILE] [--file-prefix P] [--timeout SECS]

Stops a group started by `shoal up` (secondaries first, the primary last) and waits for it
(default 60 s).";

/// When a process that exited is started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Restart {
    /// Whatever the exit.
    Always,
    /// After a signal or a non-zero exit status.
    #[default]
    OnFailure,
    /// Never.
    Never,
}

/// The group file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    file_prefix: Option<String>,
    #[serde(default = "default_stop_timeout")]
    stop_timeout_ms: u64,
    primary: ProcSpec,
    #[serde(default)]
    secondary: Vec<ProcSpec>,
}

/// One process of the group file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcSpec {
    name: Option<String>,
    command: Vec<String>,
    #[serde(default)]
    restart: Restart,
    ready: Option<String>,
    #[serde(default = "default_backoff")]
    backoff_ms: u64,
    #[serde(default = "default_backoff_max")]
    backoff_max_ms: u64,
    #[serde(default = "default_limit")]
    max_restarts_per_minute: u32,
    /// Primary only: restart it with `--adopt` (the default), so that it takes over the live
    /// group its predecessor left instead of waiting for the secondaries to exit.
    adopt: Option<bool>,
}

fn default_stop_timeout() -> u64 {
    15_000
}
fn default_backoff() -> u64 {
    100
}
fn default_backoff_max() -> u64 {
    5_000
}
fn default_limit() -> u32 {
    10
}

/// A checked group: the prefix, and each process with its full command line.
#[derive(Debug)]
struct Group {
    prefix: String,
    stop_timeout: Duration,
    /// The primary first.
    procs: Vec<(ProcSpec, String, Vec<String>)>,
}

fn load(path: &Path, prefix_override: Option<&str>) -> Result<Group, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: GroupFile = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), one_line(&e.to_string())))?;
    let prefix = prefix_override
        .map(str::to_owned)
        .or(f.file_prefix)
        .unwrap_or_else(|| "shoal".into());
    shoal::eal::check_file_prefix(&prefix).map_err(|e| e.to_string())?;
    let mut procs = Vec::new();
    let specs =
        std::iter::once((f.primary, true)).chain(f.secondary.into_iter().map(|s| (s, false)));
    for (i, (spec, primary)) in specs.enumerate() {
        let name = spec.name.clone().unwrap_or_else(|| {
            if primary {
                "primary".into()
            } else {
                format!("secondary{}", i - 1)
            }
        });
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!("process name {name:?}: use letters, digits, - _ ."));
        }
        if procs
            .iter()
            .any(|(_, n, _): &(ProcSpec, String, Vec<String>)| *n == name)
        {
            return Err(format!("two processes are named {name:?}"));
        }
        if spec.command.is_empty() {
            return Err(format!("{name}: command is empty"));
        }
        let eal_part = spec
            .command
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--file-prefix" || a.starts_with("--file-prefix="));
        if eal_part {
            return Err(format!(
                "{name}: the command gives --file-prefix; set file_prefix at the top of the file instead"
            ));
        }
        if spec.backoff_max_ms < spec.backoff_ms {
            return Err(format!("{name}: backoff_max_ms is below backoff_ms"));
        }
        if spec.max_restarts_per_minute == 0 && spec.restart != Restart::Never {
            return Err(format!(
                "{name}: max_restarts_per_minute must be at least 1 (or restart = \"never\")"
            ));
        }
        if !primary && spec.adopt.is_some() {
            return Err(format!("{name}: adopt is for the primary only"));
        }
        let argv = command_line(&spec.command, &prefix);
        procs.push((spec, name, argv));
    }
    Ok(Group {
        prefix,
        stop_timeout: Duration::from_millis(f.stop_timeout_ms),
        procs,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The program to run for `prog`, and the words that go before the arguments.
fn resolve(prog: &str) -> Vec<String> {
    let me = std::env::current_exe().unwrap_or_else(|_| "shoal".into());
    if matches!(prog, "mp_server" | "mp_client") {
        return vec![me.display().to_string(), prog.to_owned()];
    }
    if prog.contains('/') {
        return vec![prog.to_owned()];
    }
    let beside = me.parent().map(|d| d.join(prog));
    let in_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    });
    match beside.filter(|p| p.is_file()).or(in_path) {
        Some(p) => vec![p.display().to_string()],
        None => vec![prog.to_owned()],
    }
}

/// The full command line: the program resolved, `--file-prefix P` before the application's `--`.
fn command_line(cmd: &[String], prefix: &str) -> Vec<String> {
    let mut v = resolve(&cmd[0]);
    let split = cmd.iter().position(|a| a == "--").unwrap_or(cmd.len());
    v.extend(cmd[1..split].iter().cloned());
    v.extend(["--file-prefix".to_owned(), prefix.to_owned()]);
    v.extend(cmd[split..].iter().cloned());
    v
}

/// `<runtime base>/.up-<prefix>`.
fn state_dir(prefix: &str) -> PathBuf {
    let rt = shoal::eal::runtime_dir(prefix);
    let base = rt.parent().map(Path::to_path_buf).unwrap_or_default();
    base.join(format!(".up-{prefix}"))
}

/// Takes `flock(LOCK_EX | LOCK_NB)` on `f`: false when another open file holds it.
fn try_flock(f: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor that `f` owns for the duration of the call.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// True while a supervisor holds the lock of `prefix`.
fn supervisor_running(prefix: &str) -> bool {
    let Ok(f) = File::open(state_dir(prefix).join("lock")) else {
        return false;
    };
    // Taking it proves nobody holds it; ours goes when `f` closes.
    matches!(try_flock(&f), Ok(false))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What `state.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    prefix: String,
    file: String,
    supervisor_pid: u32,
    started_unix: u64,
    processes: Vec<ProcState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProcState {
    name: String,
    role: String,
    /// 0 when not running.
    pid: u32,
    /// starting, running, backoff, waiting (for the primary), exited, failed, stopped.
    state: String,
    restarts: u32,
    /// When the current run started (0 when not running).
    started_unix: u64,
    last_exit: Option<String>,
}

fn describe_exit(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("signal {s} ({})", signal_name(s)),
        _ => st.to_string(),
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGHUP => "SIGHUP",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

fn failed(st: ExitStatus) -> bool {
    st.code() != Some(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    /// Restart due at this instant.
    Backoff(Instant),
    /// A secondary waiting for the primary to be ready.
    Waiting,
    Exited,
    Failed,
    Stopped,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Backoff(_) => "backoff",
            Phase::Waiting => "waiting",
            Phase::Exited => "exited",
            Phase::Failed => "failed",
            Phase::Stopped => "stopped",
        }
    }
}

/// One supervised process.
struct Member {
    spec: ProcSpec,
    name: String,
    primary: bool,
    argv: Vec<String>,
    child: Option<Child>,
    phase: Phase,
    started: Instant,
    started_unix: u64,
    ready: Arc<AtomicBool>,
    restarts: u32,
    /// Deaths in a row after short runs (the back-off's exponent).
    quick_deaths: u32,
    recent: VecDeque<Instant>,
    last_exit: Option<String>,
}

/// Prints the supervisor's own lines, and the children's with their name in front.
#[derive(Clone)]
struct Log(Arc<Mutex<()>>);

impl Log {
    fn line(&self, text: &str) {
        let _g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|_| out.flush());
    }
    fn event(&self, text: &str) {
        self.line(&format!("shoal up: {text}"));
    }
}

fn forward(
    stream: impl Read + Send + 'static,
    name: String,
    ready: Option<(String, Arc<AtomicBool>)>,
    log: Log,
) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches('\n');
            if let Some((pat, flag)) = &ready {
                if line.contains(pat.as_str()) {
                    flag.store(true, Ordering::Release);
                }
            }
            log.line(&format!("[{name}] {line}"));
            buf.clear();
        }
    });
}

impl Member {
    /// True for a primary restarted with `--adopt`.
    fn adopts(&self) -> bool {
        self.primary && self.spec.adopt.unwrap_or(true)
    }

    fn spawn(&mut self, log: &Log) -> Result<(), String> {
        let mut argv = self.argv.clone();
        if self.adopts() && self.restarts > 0 {
            // EAL options end at the application's `--`.
            let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
            argv.insert(at, "--adopt".into());
        }
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Ctrl-C reaches the supervisor only; it stops the group in order.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {} ({}): {e}", self.name, self.argv[0]))?;
        self.ready = Arc::new(AtomicBool::new(false));
        let ready = self.spec.ready.clone().map(|p| (p, self.ready.clone()));
        if let Some(out) = child.stdout.take() {
            forward(out, self.name.clone(), ready.clone(), log.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(err, self.name.clone(), ready, log.clone());
        }
        self.started = Instant::now();
        self.started_unix = unix_now();
        self.phase = if self.primary {
            Phase::Starting
        } else {
            Phase::Running
        };
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Decides what follows the exit `st`: a restart after the back-off, or none.
    fn after_exit(&mut self, st: ExitStatus, log: &Log) {
        let ran = self.started.elapsed();
        let what = describe_exit(st);
        self.last_exit = Some(what.clone());
        let again = match self.spec.restart {
            Restart::Always => true,
            Restart::OnFailure => failed(st),
            Restart::Never => false,
        };
        if !again {
            log.event(&format!(
                "{} ({}) ended: {what} after {:.1} s; not restarted (restart = {:?})",
                self.name,
                self.role(),
                ran.as_secs_f64(),
                self.spec.restart
            ));
            self.phase = Phase::Exited;
            return;
        }
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.spec.max_restarts_per_minute as usize {
            log.event(&format!(
                "{} ({}) ended: {what}; restarted {} times within a minute already: giving up",
                self.name,
                self.role(),
                self.recent.len()
            ));
            self.phase = Phase::Failed;
            return;
        }
        self.quick_deaths = if ran >= STABLE_RUN {
            0
        } else {
            self.quick_deaths + 1
        };
        let delay = backoff(&self.spec, self.quick_deaths);
        log.event(&format!(
            "{} ({}) ended: {what} after {:.1} s; restarting in {} ms",
            self.name,
            self.role(),
            ran.as_secs_f64(),
            delay.as_millis()
        ));
        self.phase = Phase::Backoff(now + delay);
    }

    fn role(&self) -> &'static str {
        if self.primary {
            "primary"
        } else {
            "secondary"
        }
    }

    fn state(&self) -> ProcState {
        ProcState {
            name: self.name.clone(),
            role: self.role().into(),
            pid: self.pid(),
            state: self.phase.name().into(),
            restarts: self.restarts,
            started_unix: if self.alive() { self.started_unix } else { 0 },
            last_exit: self.last_exit.clone(),
        }
    }
}

/// The delay before a restart: `backoff_ms` doubled per quick death after the first, capped.
fn backoff(spec: &ProcSpec, quick_deaths: u32) -> Duration {
    let shift = quick_deaths.saturating_sub(1).min(20);
    Duration::from_millis(
        spec.backoff_ms
            .saturating_mul(1 << shift)
            .min(spec.backoff_max_ms),
    )
}

/// Arguments of the three commands: an optional FILE, `--file-prefix`, and flags.
#[derive(Default)]
struct Args {
    file: Option<PathBuf>,
    prefix: Option<String>,
    json: bool,
    check: bool,
    timeout: Option<Duration>,
}

fn parse_args(args: &[String], flags: &[&str]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    while let Some(s) = it.next() {
        let (k, inline) = match s.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_owned())),
            _ => (s.as_str(), None),
        };
        let mut val = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(format!("{k} needs a value"))
        };
        match k {
            "-h" | "--help" => return Err(String::new()),
            "--file-prefix" => a.prefix = Some(val()?),
            "--json" if flags.contains(&k) => a.json = true,
            "--check" if flags.contains(&k) => a.check = true,
            "--timeout" if flags.contains(&k) => {
                let v = val()?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or(format!("invalid --timeout {v:?}"))?;
                a.timeout = Some(Duration::from_secs_f64(secs));
            }
            o if o.starts_with('-') => return Err(format!("unknown option {o:?}")),
            f if a.file.is_none() => a.file = Some(PathBuf::from(f)),
            f => return Err(format!("unexpected argument {f:?}")),
        }
    }
    if let Some(p) = &a.prefix {
        shoal::eal::check_file_prefix(p).map_err(|e| e.to_string())?;
    }
    Ok(a)
}

/// Parses or prints the usage: Err(status) to return.
fn args_or_exit(args: &[String], flags: &[&str], usage: &str) -> Result<Args, i32> {
    match parse_args(args, flags) {
        Ok(a) => Ok(a),
        Err(e) if e.is_empty() => {
            println!("{usage}");
            Err(0)
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{usage}");
            Err(2)
        }
    }
}

/// The prefix `status`/`down` look at: `--file-prefix`, else FILE's, else `shoal`.
fn target_prefix(a: &Args) -> Result<String, String> {
    match (&a.prefix, &a.file) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(f)) => load(f, None).map(|g| g.prefix),
        (None, None) => Ok("shoal".into()),
    }
}

/// `shoal up`.
pub(crate) fn run_up(args: &[String]) -> i32 {
    let a = match args_or_exit(args, &["--check"], UP_USAGE) {
        Ok(a) => a,
        Err(c) => return c,
    };
    let Some(file) = a.file.clone() else {
        eprintln!("error: shoal up needs a group file\n\n{UP_USAGE}");
        return 2;
    };
    let group = match load(&file, a.prefix.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if a.check {
        println!("file prefix {:?}", group.prefix);
        for (i, (spec, name, argv)) in group.procs.iter().enumerate() {
            println!(
                "{name} ({}, restart {:?}): {}",
                if i == 0 { "primary" } else { "secondary" },
                spec.restart,
                argv.join(" ")
            );
        }
        return 0;
    }
    match supervise(group, &file) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shoal up: {e}");
            1
        }
    }
}

/// The supervisor's lock and state files; the directory goes when this drops.
struct StateFiles {
    dir: PathBuf,
    _lock: File,
}

impl StateFiles {
    fn take(prefix: &str) -> Result<StateFiles, String> {
        let dir = state_dir(prefix);
        if let Some(base) = dir.parent() {
            if !base.exists() {
                let mode = if shoal_is_root() { 0o711 } else { 0o700 };
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(mode)
                    .create(base)
                    .map_err(|e| format!("{}: {e}", base.display()))?;
            }
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| format!("{}: {e}", dir.join("lock").display()))?;
        if !try_flock(&lock).map_err(|e| format!("locking {}: {e}", dir.display()))? {
            let pid = read_state(prefix).map_or(0, |s| s.supervisor_pid);
            return Err(format!(
                "a group with file prefix {prefix:?} is already up (shoal up pid {pid}); `shoal down --file-prefix {prefix}` stops it"
            ));
        }
        Ok(StateFiles { dir, _lock: lock })
    }

    fn write(&self, st: &State) {
        let tmp = self.dir.join("state.json.tmp");
        let body = serde_json::to_vec_pretty(st).unwrap_or_default();
        if std::fs::write(&tmp, body).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join("state.json"));
        }
    }
}

impl Drop for StateFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("state.json"));
        let _ = std::fs::remove_file(self.dir.join("lock"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn shoal_is_root() -> bool {
    shoal::eal::runtime_dir("x").starts_with("/var/run/shoal")
}

fn read_state(prefix: &str) -> Option<State> {
    let text = std::fs::read(state_dir(prefix).join("state.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// True once the primary may take secondaries: its ready line was seen, or (without one) the
/// group's segment is published by a live primary.
fn primary_ready(m: &Member, prefix: &str) -> bool {
    match &m.spec.ready {
        Some(_) => m.ready.load(Ordering::Acquire),
        None => shoal::eal::Eal::inspect(prefix).is_ok(),
    }
}

fn supervise(group: Group, file: &Path) -> Result<i32, String> {
    shoal::eal::quit_requested(); // installs the SIGINT/SIGTERM handlers
    let files = StateFiles::take(&group.prefix)?;
    let log = Log(Arc::new(Mutex::new(())));
    let started_unix = unix_now();
    let file_name = std::fs::canonicalize(file)
        .unwrap_or_else(|_| file.to_owned())
        .display()
        .to_string();
    let mut members: Vec<Member> = group
        .procs
        .into_iter()
        .enumerate()
        .map(|(i, (spec, name, argv))| Member {
            spec,
            name,
            primary: i == 0,
            argv,
            child: None,
            phase: Phase::Waiting,
            started: Instant::now(),
            started_unix: 0,
            ready: Arc::new(AtomicBool::new(false)),
            restarts: 0,
            quick_deaths: 0,
            recent: VecDeque::new(),
            last_exit: None,
        })
        .collect();
    let snapshot = |members: &[Member]| State {
        prefix: group.prefix.clone(),
        file: file_name.clone(),
        supervisor_pid: std::process::id(),
        started_unix,
        processes: members.iter().map(Member::state).collect(),
    };
    log.event(&format!(
        "group {:?} from {file_name}: {} processes (pid {})",
        group.prefix,
        members.len(),
        std::process::id()
    ));
    members[0].spawn(&log)?;
    log.event(&format!(
        "{} (primary) started, pid {}",
        members[0].name,
        members[0].pid()
    ));
    files.write(&snapshot(&members));
    let mut give_up = false;
    let mut primary_due_since: Option<Instant> = None;
    while !shoal::eal::quit_requested() && !give_up {
        let mut changed = false;
        // Deaths.
        for m in members.iter_mut() {
            let Some(c) = m.child.as_mut() else { continue };
            let st = match c.try_wait() {
                Ok(Some(st)) => st,
                Ok(None) => continue,
                Err(e) => return Err(format!("waiting for {}: {e}", m.name)),
            };
            m.child = None;
            changed = true;
            m.after_exit(st, &log);
        }
        if shoal::eal::quit_requested() {
            break;
        }
        let primary_up = members[0].phase == Phase::Running;
        // The primary becoming ready.
        if members[0].phase == Phase::Starting {
            if primary_ready(&members[0], &group.prefix) {
                members[0].phase = Phase::Running;
                changed = true;
                log.event(&format!(
                    "{} (primary) ready after {:.0} ms",
                    members[0].name,
                    members[0].started.elapsed().as_secs_f64() * 1e3
                ));
            } else if members[0].started.elapsed() >= READY_TIMEOUT {
                log.event(&format!(
                    "{} (primary) not ready after {} s; killing it",
                    members[0].name,
                    READY_TIMEOUT.as_secs()
                ));
                if let Some(c) = members[0].child.as_mut() {
                    let _ = c.kill();
                }
            }
        }
        // A secondary that died while the primary was down waits for it.
        for m in members.iter_mut().skip(1) {
            if !primary_up && matches!(m.phase, Phase::Backoff(_)) {
                m.phase = Phase::Waiting;
                changed = true;
            }
        }
        // Restarts that are due.
        let secondaries_alive = members.iter().skip(1).any(Member::alive);
        let now = Instant::now();
        for i in 0..members.len() {
            let m = &members[i];
            let due = match m.phase {
                Phase::Backoff(t) => now >= t,
                Phase::Waiting => !m.primary && members[0].phase == Phase::Running,
                _ => false,
            };
            // Without adoption, a new primary makes a new group: the old group's secondaries
            // go first. They exit by themselves when their primary dies (after their grace);
            // those still there `stop_timeout_ms` after the restart fell due are stopped.
            if m.primary && due && !m.adopts() && secondaries_alive {
                let since = *primary_due_since.get_or_insert(now);
                if now.duration_since(since) >= group.stop_timeout {
                    log.event("secondaries of the dead primary still run; stopping them");
                    stop_all(&mut members[1..], group.stop_timeout, &log);
                    for m in members.iter_mut().skip(1) {
                        if m.phase == Phase::Stopped {
                            m.phase = Phase::Waiting;
                        }
                    }
                }
                continue;
            }
            if !due {
                continue;
            }
            if m.primary {
                primary_due_since = None;
            }
            let m = &mut members[i];
            let first = m.last_exit.is_none() && m.restarts == 0 && !m.primary;
            if !first {
                m.restarts += 1;
                m.recent.push_back(now);
            }
            match m.spawn(&log) {
                Ok(()) => log.event(&format!(
                    "{} ({}) {}, pid {}",
                    m.name,
                    m.role(),
                    if first {
                        "started".to_owned()
                    } else {
                        format!("restarted (restart {})", m.restarts)
                    },
                    m.pid()
                )),
                Err(e) => {
                    log.event(&e);
                    m.phase = Phase::Failed;
                }
            }
            changed = true;
        }
        if members[0].phase == Phase::Failed || members[0].phase == Phase::Exited {
            log.event(&format!(
                "the primary {} is not running; stopping the group",
                members[0].name
            ));
            give_up = members[0].phase == Phase::Failed;
            if !give_up {
                break;
            }
        }
        if changed {
            files.write(&snapshot(&members));
        }
        std::thread::sleep(TICK);
    }
    let why = match shoal::eal::quit_requested() {
        true => "signal",
        false => "primary gone",
    };
    log.event(&format!(
        "stopping the group ({why}): secondaries first, the primary last"
    ));
    for m in members.iter_mut() {
        if matches!(m.phase, Phase::Backoff(_) | Phase::Waiting) {
            m.phase = Phase::Stopped;
        }
    }
    files.write(&snapshot(&members));
    stop_all(&mut members[1..], group.stop_timeout, &log);
    files.write(&snapshot(&members));
    stop_all(&mut members[..1], group.stop_timeout, &log);
    log.event(&format!("group {:?} stopped", group.prefix));
    drop(files);
    Ok(if give_up { 1 } else { 0 })
}

/// SIGINT to each running process of `ms`, then waits for them all; one that outlives
/// `timeout` is killed. Each exit is logged.
fn stop_all(ms: &mut [Member], timeout: Duration, log: &Log) {
    for m in ms.iter() {
        if let Some(c) = &m.child {
            let _ = shoal::eal::send_signal(c.id(), libc::SIGINT);
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = false;
        for m in ms.iter_mut() {
            let (name, role) = (m.name.clone(), m.role());
            let Some(c) = m.child.as_mut() else { continue };
            match c.try_wait() {
                Ok(Some(st)) => {
                    log.event(&format!("{name} ({role}) stopped: {}", describe_exit(st)));
                    m.last_exit = Some(describe_exit(st));
                    m.child = None;
                    m.phase = Phase::Stopped;
                }
                Ok(None) if Instant::now() >= deadline => {
                    log.event(&format!(
                        "{name} ({role}) did not stop within {} ms; killing it",
                        timeout.as_millis()
                    ));
                    let _ = c.kill();
                    let _ = c.wait();
                    m.last_exit = Some("killed at stop".into());
                    m.child = None;
                    m.phase = Phase::Stopped;
                }
                Ok(None) => left = true,
                Err(_) => {
                    m.child = None;
                    m.phase = Phase::Stopped;
                }
            }
        }
        if !left {
            return;
        }
        std::thread::sleep(TICK);
    }
}

/// `shoal status`.
pub(crate) fn run_status(args: &[String]) -> i32 {
    let a = match args_or_exit(args, &["--json"], STATUS_USAGE) {
        Ok(a) => a,
        Err(c) => return c,
    };
    let prefix = match target_prefix(&a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let running = supervisor_running(&prefix);
    let Some(st) = read_state(&prefix) else {
        eprintln!("shoal status: no group is up with file prefix {prefix:?} (started by shoal up)");
        return 1;
    };
    if a.json {
        let mut v = serde_json::to_value(&st).unwrap_or_default();
        v["supervised"] = running.into();
        crate::print_out(&format!("{v}\n"));
        return 0;
    }
    let now = unix_now();
    let mut out = format!(
        "group {:?} ({}), shoal up pid {}{}, up {}\n",
        st.prefix,
        st.file,
        st.supervisor_pid,
        if running {
            ""
        } else {
            " (NOT RUNNING: processes are unsupervised)"
        },
        human_secs(now.saturating_sub(st.started_unix))
    );
    out.push_str(&format!(
        "{:<12} {:<10} {:>8} {:<9} {:>8} {:>9}  {}\n",
        "NAME", "ROLE", "PID", "STATE", "RESTARTS", "UPTIME", "LAST EXIT"
    ));
    for p in &st.processes {
        out.push_str(&format!(
            "{:<12} {:<10} {:>8} {:<9} {:>8} {:>9}  {}\n",
            p.name,
            p.role,
            if p.pid == 0 {
                "-".into()
            } else {
                p.pid.to_string()
            },
            p.state,
            p.restarts,
            if p.started_unix == 0 {
                "-".into()
            } else {
                human_secs(now.saturating_sub(p.started_unix))
            },
            p.last_exit.as_deref().unwrap_or("-")
        ));
    }
    crate::print_out(&out);
    0
}

fn human_secs(s: u64) -> String {
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `shoal down`.
pub(crate) fn run_down(args: &[String]) -> i32 {
    let a = match args_or_exit(args, &["--timeout"], DOWN_USAGE) {
        Ok(a) => a,
        Err(c) => return c,
    };
    let prefix = match target_prefix(&a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let timeout = a.timeout.unwrap_or(Duration::from_secs(60));
    let st = read_state(&prefix);
    let (true, Some(st)) = (supervisor_running(&prefix), st) else {
        eprintln!("shoal down: no group is up with file prefix {prefix:?} (started by shoal up)");
        return 1;
    };
    if let Err(e) = shoal::eal::send_signal(st.supervisor_pid, libc::SIGTERM) {
        eprintln!(
            "shoal down: cannot signal shoal up (pid {}): {e}",
            st.supervisor_pid
        );
        return 1;
    }
    println!(
        "stopping group {prefix:?} (shoal up pid {})",
        st.supervisor_pid
    );
    let deadline = Instant::now() + timeout;
    while supervisor_running(&prefix) {
        if Instant::now() >= deadline {
            eprintln!(
                "shoal down: group {prefix:?} still up after {:.0} s",
                timeout.as_secs_f64()
            );
            return 1;
        }
        std::thread::sleep(TICK);
    }
    println!("group {prefix:?} stopped");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(backoff: u64, max: u64) -> ProcSpec {
        ProcSpec {
            name: None,
            command: vec!["x".into()],
            restart: Restart::OnFailure,
            ready: None,
            backoff_ms: backoff,
            backoff_max_ms: max,
            max_restarts_per_minute: 10,
            adopt: None,
        }
    }

    #[test]
    fn backoff_doubles_per_quick_death_up_to_the_cap() {
        let s = spec(100, 1000);
        let ms: Vec<u128> = (0..7).map(|n| backoff(&s, n).as_millis()).collect();
        assert_eq!(ms, [100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&s, u32::MAX).as_millis(), 1000);
    }

    #[test]
    fn the_prefix_goes_before_the_application_options() {
        let v = command_line(
            &[
                "/bin/x".into(),
                "-l".into(),
                "1".into(),
                "--".into(),
                "-n".into(),
                "0".into(),
            ],
            "P",
        );
        assert_eq!(
            v,
            ["/bin/x", "-l", "1", "--file-prefix", "P", "--", "-n", "0"]
        );
        let v = command_line(&["/bin/x".into(), "-l".into(), "1".into()], "P");
        assert_eq!(v, ["/bin/x", "-l", "1", "--file-prefix", "P"]);
    }

    fn load_text(text: &str) -> Result<Group, String> {
        let dir = std::env::temp_dir().join(format!("shoal-up-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join(format!("g{}.toml", text.len()));
        std::fs::write(&f, text).unwrap();
        let r = load(&f, None);
        let _ = std::fs::remove_file(&f);
        r
    }

    #[test]
    fn group_files_are_checked() {
        let ok = load_text(
            "file_prefix = \"p\"\n[primary]\ncommand = [\"/bin/a\"]\n[[secondary]]\ncommand = [\"/bin/b\", \"--\", \"-n\", \"0\"]\nrestart = \"always\"\n",
        )
        .unwrap();
        assert_eq!(ok.prefix, "p");
        assert_eq!(ok.procs[1].1, "secondary0");
        assert_eq!(ok.procs[1].0.restart, Restart::Always);
        for (bad, want) in [
            ("[primary]\ncommand = []\n", "command is empty"),
            ("[primary]\ncommand = [\"/bin/a\"]\nrestart = \"sometimes\"\n", "unknown variant"),
            ("[primary]\ncommand = [\"/bin/a\"]\ncolour = 1\n", "unknown field"),
            ("[primary]\ncommand = [\"/bin/a\", \"--file-prefix\", \"x\"]\n", "set file_prefix"),
            ("[primary]\ncommand = [\"/bin/a\"]\nbackoff_ms = 10\nbackoff_max_ms = 5\n", "backoff_max_ms"),
            ("file_prefix = \".x\"\n[primary]\ncommand = [\"/bin/a\"]\n", "invalid --file-prefix"),
            ("[primary]\nname = \"a\"\ncommand = [\"/bin/a\"]\n[[secondary]]\nname = \"a\"\ncommand = [\"/bin/a\"]\n", "two processes"),
            ("[[secondary]]\ncommand = [\"/bin/a\"]\n", "primary"),
        ] {
            let e = load_text(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
