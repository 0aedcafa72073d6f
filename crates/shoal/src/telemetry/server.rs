//! The telemetry sockets, served by the primary.
//!
//! - `<runtime dir>/dpdk_telemetry.v2`: DPDK's telemetry v2 protocol, so that DPDK's own client
//!   (`dpdk-telemetry.py -f <prefix>`) works unchanged. A symbolic link to it sits where that
//!   client looks: `<run dir>/dpdk/<prefix>/dpdk_telemetry.v2` (see [`dpdk_socket_path`]). It
//!   is an `AF_UNIX` `SOCK_SEQPACKET` socket: on connect the server sends one message,
//!   `{"version":"shoal <v> (DPDK 22.11 telemetry v2)","pid":P,"max_output_len":16384}`; then
//!   each message the client sends is one request (a command, then optionally `,` and its
//!   parameters, at most 1023 bytes) and each answer is one message of compact JSON,
//!   `{"<command>":<value>}`, at most [`MAX_OUTPUT_LEN`] bytes. At most [`MAX_CLIENTS`]
//!   clients are served at once; more are accepted and closed at once, as DPDK does.
//! - `<runtime dir>/telemetry`: the same commands over a stream socket, one request per line
//!   and one answer per line, answers up to [`STREAM_MAX_OUTPUT_LEN`] bytes: what
//!   `shoal telemetry` and [`query`] use.
//!
//! Both answer alike: `{"<command>":null}` for an unknown command, parameters a command cannot
//! use, or a malformed request (not UTF-8, too long; these are counted); `/` lists the
//! commands, `/help,<command>` gives `{"/help":{"<command>":"text"}}` (`{"/help":null}` for an
//! unknown one) and `/info` the greeting's object. An answer longer than the limit is cut as
//! DPDK cuts it: the members of the top-level object or array that do not fit are left out
//! (a value that is neither becomes `null`), so the answer stays valid JSON.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::eal::{Eal, ProcType};
use crate::sys::seqpacket::{self, Recv};
use crate::sys::unix_dgram::poll_readable;

/// Longest answer on the DPDK socket, in bytes, as DPDK's `MAX_OUTPUT_LEN` (16 KiB); an
/// answer is at most one byte shorter (DPDK's buffer ends with a NUL).
pub const MAX_OUTPUT_LEN: usize = 16 * 1024;
/// Longest answer line on the stream socket (snapshots of large groups are long).
pub const STREAM_MAX_OUTPUT_LEN: usize = 1 << 20;
/// Commands are shorter than this (DPDK's `MAX_CMD_LEN`).
pub const MAX_CMD_LEN: usize = 56;
/// Help texts are shorter than this (DPDK's `RTE_TEL_MAX_STRING_LEN`).
pub const MAX_HELP_LEN: usize = 128;
/// Clients served at once on each socket (DPDK's `MAX_CONNECTIONS`).
pub const MAX_CLIENTS: usize = 10;
/// Longest request on the DPDK socket (DPDK reads into a 1024-byte buffer, NUL included).
pub const MAX_REQUEST_LEN: usize = 1023;
/// The DPDK socket's file name.
pub const SOCKET_NAME: &str = "dpdk_telemetry.v2";
/// Longest request line on the stream socket.
const STREAM_MAX_REQUEST_LEN: usize = 64 * 1024;
/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long an answer may wait for a client that reads nothing before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The greeting's `version`.
pub fn version() -> String {
    format!(
        "shoal {} (DPDK 22.11 telemetry v2)",
        env!("CARGO_PKG_VERSION")
    )
}

/// The greeting, which `/info` also answers.
fn info_value() -> Value {
    json!({
        "version": version(),
        "pid": std::process::id(),
        "max_output_len": MAX_OUTPUT_LEN,
    })
}

/// Where DPDK's tools look for a group's runtime files: `<run dir>/dpdk/<prefix>`, the run dir
/// being `$RUNTIME_DIRECTORY`, else `/var/run` for root, else `$XDG_RUNTIME_DIR`, else `/tmp`
/// (as DPDK's EAL and `dpdk-telemetry.py` choose it).
pub fn dpdk_runtime_dir(prefix: &str) -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let run = if let Some(d) = env("RUNTIME_DIRECTORY") {
        PathBuf::from(d)
    } else if crate::sys::unix_dgram::uid() == 0 {
        PathBuf::from("/var/run")
    } else if let Some(d) = env("XDG_RUNTIME_DIR") {
        PathBuf::from(d)
    } else {
        PathBuf::from("/tmp")
    };
    run.join("dpdk").join(prefix)
}

/// Where `dpdk-telemetry.py -f <prefix>` connects: `<dpdk runtime dir>/dpdk_telemetry.v2`.
pub fn dpdk_socket_path(prefix: &str) -> PathBuf {
    dpdk_runtime_dir(prefix).join(SOCKET_NAME)
}

/// Why a command cannot be registered (DPDK's rules for command names and help texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name does not start with `/`.
    #[error("telemetry command {0:?} does not start with '/'")]
    NoLeadingSlash(String),
    /// The name is too long.
    #[error("telemetry command {cmd:?} is {len} bytes long; the limit is {}", MAX_CMD_LEN - 1)]
    TooLong {
        /// The name.
        cmd: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name has a character other than letters, digits, `_` and `/`.
    #[error(
        "telemetry command {cmd:?} contains {ch:?}; only A-Z, a-z, 0-9, '_' and '/' are allowed"
    )]
    BadChar {
        /// The name.
        cmd: String,
        /// The first character not allowed.
        ch: char,
    },
    /// The help text is too long.
    #[error("help text of telemetry command {cmd:?} is {len} bytes long; the limit is {}", MAX_HELP_LEN - 1)]
    HelpTooLong {
        /// The name.
        cmd: String,
        /// The help text's length in bytes.
        len: usize,
    },
    /// `/`, `/help` and `/info` are the server's own.
    #[error("telemetry command {0:?} is built in")]
    BuiltIn(String),
}

/// Checks a command name as DPDK's `rte_telemetry_register_cmd` does.
pub fn validate_command(cmd: &str) -> Result<(), RegisterError> {
    if !cmd.starts_with('/') {
        return Err(RegisterError::NoLeadingSlash(cmd.to_owned()));
    }
    if cmd.len() >= MAX_CMD_LEN {
        return Err(RegisterError::TooLong {
            cmd: cmd.to_owned(),
            len: cmd.len(),
        });
    }
    if let Some(ch) = cmd
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '/'))
    {
        return Err(RegisterError::BadChar {
            cmd: cmd.to_owned(),
            ch,
        });
    }
    Ok(())
}

type Handler = dyn Fn(&str) -> Value + Send + Sync;

struct Entry {
    help: String,
    /// None for the built-in commands, which the registry answers itself.
    handler: Option<Arc<Handler>>,
}

const BUILT_IN: [(&str, &str); 3] = [
    (
        "/",
        "Returns list of available commands, Takes no parameters",
    ),
    (
        "/help",
        "Returns help text for a command. Parameters: string command",
    ),
    (
        "/info",
        "Returns DPDK Telemetry information. Takes no parameters",
    ),
];

/// Commands a process answers on its telemetry sockets.
#[derive(Clone)]
pub struct Registry {
    cmds: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl Default for Registry {
    fn default() -> Self {
        let cmds = BUILT_IN
            .iter()
            .map(|(c, h)| {
                (
                    (*c).to_owned(),
                    Entry {
                        help: (*h).to_owned(),
                        handler: None,
                    },
                )
            })
            .collect();
        Registry {
            cmds: Arc::new(Mutex::new(cmds)),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("commands", &self.commands())
            .finish()
    }
}

impl Registry {
    /// A registry with only the built-in commands (`/`, `/help`, `/info`).
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers (or replaces) a command. `handler` gets the parameters after the first comma
    /// (empty when there are none) and returns the value to answer, `Value::Null` when it
    /// cannot answer (bad parameters).
    ///
    /// # Errors
    /// A name DPDK would refuse: not starting with `/`, [`MAX_CMD_LEN`] bytes or longer, or
    /// with characters other than `[A-Za-z0-9_/]`; a help text of [`MAX_HELP_LEN`] bytes or
    /// more; or a built-in command.
    pub fn register(
        &self,
        cmd: &str,
        help: &str,
        handler: impl Fn(&str) -> Value + Send + Sync + 'static,
    ) -> Result<(), RegisterError> {
        validate_command(cmd)?;
        if help.len() >= MAX_HELP_LEN {
            return Err(RegisterError::HelpTooLong {
                cmd: cmd.to_owned(),
                len: help.len(),
            });
        }
        if BUILT_IN.iter().any(|(c, _)| *c == cmd) {
            return Err(RegisterError::BuiltIn(cmd.to_owned()));
        }
        let mut cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
        cmds.insert(
            cmd.to_owned(),
            Entry {
                help: help.to_owned(),
                handler: Some(Arc::new(handler)),
            },
        );
        Ok(())
    }

    /// Every command, in DPDK's order (byte-wise).
    pub fn commands(&self) -> Vec<String> {
        let cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
        cmds.keys().cloned().collect()
    }

    /// A command's help text.
    pub fn help(&self, cmd: &str) -> Option<String> {
        let cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
        cmds.get(cmd).map(|e| e.help.clone())
    }

    /// The value answering `cmd` with `params` (`Value::Null` for an unknown command or one
    /// that cannot answer). Handlers run without the registry's lock held.
    pub fn respond(&self, cmd: &str, params: Option<&str>) -> Value {
        if cmd.len() >= MAX_CMD_LEN {
            return Value::Null;
        }
        match cmd {
            "/" => return json!(self.commands()),
            "/info" => return info_value(),
            "/help" => {
                // DPDK: with no parameter, the help of /help itself, as a string.
                return match params {
                    None => self.help(cmd).map(Value::String).unwrap_or(Value::Null),
                    Some(p) => match self.help(p) {
                        Some(text) => json!({ p: text }),
                        None => Value::Null,
                    },
                };
            }
            _ => {}
        }
        let handler = {
            let cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
            cmds.get(cmd).and_then(|e| e.handler.clone())
        };
        match handler {
            Some(h) => h(params.unwrap_or("")),
            None => Value::Null,
        }
    }

    /// Runs one request (`<command>[,<params>]`, a trailing newline ignored) and returns the
    /// answer object `{"<command>": <value>}`, uncut.
    pub fn answer(&self, line: &str) -> Value {
        let line = line.trim_end_matches(['\n', '\r']);
        let (cmd, params) = split_request(line);
        let v = self.respond(cmd, params);
        json!({ answer_key(cmd): v })
    }
}

/// Splits a request as DPDK's `strtok` does: leading commas are skipped, the command ends at
/// the next comma, and what follows it (if anything) is the parameter string.
fn split_request(req: &str) -> (&str, Option<&str>) {
    let req = req.trim_start_matches(',');
    match req.split_once(',') {
        Some((cmd, params)) => (cmd, (!params.is_empty()).then_some(params)),
        None => (req, None),
    }
}

/// The key of an answer: the command, cut to DPDK's length (`"%.*s"`), `none` when empty.
fn answer_key(cmd: &str) -> &str {
    if cmd.is_empty() {
        return "none";
    }
    let mut end = cmd.len().min(MAX_CMD_LEN);
    while !cmd.is_char_boundary(end) {
        end -= 1;
    }
    &cmd[..end]
}

/// Writes `{"<key>":<value>}` in at most `limit` bytes. Over the limit, the members of a
/// top-level object or array that do not fit are left out, in order, as DPDK's JSON writer
/// does (each member is added only if it fits); any other value becomes `null`. Returns the
/// text and whether anything was left out.
pub(crate) fn render(key: &str, value: &Value, limit: usize) -> (String, bool) {
    let key = answer_key(key);
    let mut out = String::from("{");
    out.push_str(&Value::String(key.to_owned()).to_string());
    out.push(':');
    let whole = value.to_string();
    if out.len() + whole.len() < limit {
        out.push_str(&whole);
        out.push('}');
        return (out, false);
    }
    // Room for the members: the limit less the prefix, the closing brackets and a NUL.
    let room = limit.saturating_sub(out.len() + 3);
    let (open, close, members): (char, char, Vec<String>) = match value {
        Value::Object(m) => (
            '{',
            '}',
            m.iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect(),
        ),
        Value::Array(a) => ('[', ']', a.iter().map(Value::to_string).collect()),
        _ => {
            out.push_str("null}");
            return (out, true);
        }
    };
    let mut body = String::new();
    for m in members {
        let need = m.len() + usize::from(!body.is_empty());
        if body.len() + need <= room {
            if !body.is_empty() {
                body.push(',');
            }
            body.push_str(&m);
        }
    }
    out.push(open);
    out.push_str(&body);
    out.push(close);
    out.push('}');
    (out, true)
}

/// The answer to one request datagram of the DPDK socket (`truncated`: it was longer than
/// [`MAX_REQUEST_LEN`]), and whether the request was malformed.
fn answer_datagram(registry: &Registry, req: &[u8], truncated: bool) -> (String, bool, bool) {
    let (text, malformed) = match std::str::from_utf8(req) {
        Ok(s) if !truncated && !s.contains('\0') => (std::borrow::Cow::Borrowed(s), false),
        _ => (String::from_utf8_lossy(req), true),
    };
    let (cmd, params) = split_request(&text);
    let value = if malformed {
        Value::Null
    } else {
        registry.respond(cmd, params)
    };
    let (out, cut) = render(cmd, &value, MAX_OUTPUT_LEN);
    (out, malformed, cut)
}

/// Counters of a telemetry server (its own `/shoal/telemetry` answers them).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients connected now (both sockets).
    pub clients: AtomicUsize,
    /// Connections accepted and served.
    pub connections: AtomicU64,
    /// Connections closed at once because [`MAX_CLIENTS`] were being served.
    pub refused: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Malformed requests (not UTF-8, a NUL byte, too long), answered with null.
    pub malformed: AtomicU64,
    /// Answers cut to fit the output limit.
    pub truncated: AtomicU64,
}

impl ServerStats {
    /// The counters as a JSON object.
    pub fn to_json(&self) -> Value {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "clients": self.clients.load(Ordering::Relaxed),
            "connections": r(&self.connections),
            "refused": r(&self.refused),
            "requests": r(&self.requests),
            "malformed": r(&self.malformed),
            "truncated": r(&self.truncated),
        })
    }
}

/// A running telemetry server; stops, and removes its sockets and the DPDK link, on drop.
#[derive(Debug)]
pub struct Server {
    /// None with `--no-telemetry`, as `dpdk_path`.
    stream_path: Option<PathBuf>,
    dpdk_path: Option<PathBuf>,
    dpdk_link: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    registry: Registry,
    stats: Arc<ServerStats>,
    thread: Option<JoinHandle<()>>,
    clients: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Server {
    /// Starts serving both sockets of the group's primary, with DPDK's standard commands
    /// (`/eal/...`, `/ethdev/...`, `/ring/...`, `/mempool/...`) and shoal's (`/shoal/...`).
    /// Ports are reported once this process has them (`ethdev::ports`).
    ///
    /// Links that killed primaries left under DPDK's run dir (their primaries dead) are
    /// removed first. With `--no-telemetry` there is no socket and nothing is served; the
    /// registry still takes commands, so applications need not tell the two cases apart.
    ///
    /// # Errors
    /// A secondary (the sockets are the primary's), or a socket that cannot be made. A DPDK
    /// link that cannot be made is only logged.
    pub fn start(eal: &Eal) -> std::io::Result<Server> {
        if eal.proc_type() != ProcType::Primary {
            return Err(std::io::Error::other(
                "the telemetry sockets are served by the primary process",
            ));
        }
        if eal.args().no_telemetry {
            tracing::debug!(target: "shoal::telemetry", "--no-telemetry: no telemetry socket");
            let registry = Registry::new();
            let stats = Arc::new(ServerStats::default());
            super::commands::register_all(&registry, eal, &stats);
            return Ok(Server {
                stream_path: None,
                dpdk_path: None,
                dpdk_link: None,
                stop: Arc::new(AtomicBool::new(false)),
                registry,
                stats,
                thread: None,
                clients: Arc::new(Mutex::new(Vec::new())),
            });
        }
        let dir = eal.runtime_dir();
        let stream_path = dir.join("telemetry");
        let _ = std::fs::remove_file(&stream_path);
        let stream = UnixListener::bind(&stream_path)?;
        std::fs::set_permissions(&stream_path, std::fs::Permissions::from_mode(0o600))?;
        stream.set_nonblocking(true)?;
        let dpdk_path = dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&dpdk_path);
        let dpdk = match seqpacket::Listener::bind(&dpdk_path, MAX_CLIENTS as i32) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&stream_path);
                return Err(e);
            }
        };
        let _ = std::fs::set_permissions(&dpdk_path, std::fs::Permissions::from_mode(0o600));
        sweep_stale_links();
        let dpdk_link = match publish_link(&dpdk_path, eal.file_prefix()) {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::warn!(target: "shoal::telemetry",
                    "no DPDK telemetry link in {}: {e}; connect to {} directly",
                    dpdk_runtime_dir(eal.file_prefix()).display(), dpdk_path.display());
                None
            }
        };
        let registry = Registry::new();
        let stats = Arc::new(ServerStats::default());
        super::commands::register_all(&registry, eal, &stats);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let ctx = Ctx {
            stop: stop.clone(),
            registry: registry.clone(),
            stats: stats.clone(),
            clients: clients.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("shoal-telemetry".into())
            .spawn(move || serve(stream, dpdk, ctx));
        let mut server = Server {
            stream_path: Some(stream_path),
            dpdk_path: Some(dpdk_path),
            dpdk_link,
            stop,
            registry,
            stats,
            thread: None,
            clients,
        };
        // On an error here, dropping `server` removes the sockets.
        server.thread = Some(thread?);
        Ok(server)
    }

    /// The command registry, to add application commands.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The server's counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// The DPDK socket (in the runtime directory); None with `--no-telemetry`.
    pub fn dpdk_socket(&self) -> Option<&Path> {
        self.dpdk_path.as_deref()
    }

    /// The link at DPDK's path, if it could be made.
    pub fn dpdk_link(&self) -> Option<&Path> {
        self.dpdk_link.as_deref()
    }
}

/// Makes `<dpdk runtime dir>/dpdk_telemetry.v2` a symbolic link to `target`, replacing a stale
/// socket or link; when a live socket (a DPDK application of the same prefix) holds that name,
/// the next free `dpdk_telemetry.v2:<n>` (`dpdk-telemetry.py -i <n>`), as DPDK does.
fn publish_link(target: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = dpdk_runtime_dir(prefix);
    // Twice: another primary's sweep may remove the directory between the two steps.
    for attempt in 0..2 {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        match link_in(&dir, target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt == 0 => continue,
            other => return other,
        }
    }
    Err(std::io::ErrorKind::NotFound.into())
}

fn link_in(dir: &Path, target: &Path) -> std::io::Result<PathBuf> {
    for n in 0..64 {
        let link = if n == 0 {
            dir.join(SOCKET_NAME)
        } else {
            dir.join(format!("{SOCKET_NAME}:{n}"))
        };
        match std::fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(_) => {
                let ours = std::fs::read_link(&link).is_ok_and(|t| t == target);
                if !ours && seqpacket::Conn::connect(&link).is_ok() {
                    continue;
                }
                match std::fs::remove_file(&link) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        std::os::unix::fs::symlink(target, &link)?;
        return Ok(link);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "every telemetry socket name is in use",
    ))
}

/// Whether the primary of the group whose runtime directory is `dir` is alive: it holds the
/// lock on `config` while it lives (the kernel drops it when it dies). Asked of the lock, not
/// of the socket, so that no live server sees a connection. When in doubt, alive.
fn primary_lives(dir: &Path) -> bool {
    match std::fs::File::open(dir.join("config")) {
        Ok(f) => crate::sys::ofd_locked(&f, 0, 0).unwrap_or(true),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Removes the links that primaries which died without cleaning up (SIGKILL) left under DPDK's
/// run dir: links named `dpdk_telemetry.v2*` to a `dpdk_telemetry.v2` in one of shoal's
/// runtime directories whose primary is dead, and their directories once empty. Nothing else
/// is touched (a DPDK application's sockets are files, not links).
fn sweep_stale_links() {
    let Some(dpdk_base) = dpdk_runtime_dir("x").parent().map(Path::to_path_buf) else {
        return;
    };
    let Some(shoal_base) = crate::eal::runtime_dir("x").parent().map(Path::to_path_buf) else {
        return;
    };
    let Ok(groups) = std::fs::read_dir(&dpdk_base) else {
        return;
    };
    for group in groups.flatten() {
        let dir = group.path();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut removed = false;
        for e in entries.flatten() {
            let link = e.path();
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            let named = e.file_name().to_string_lossy().starts_with(SOCKET_NAME);
            let Ok(target) = std::fs::read_link(&link) else {
                continue;
            };
            let shoals = target.file_name().is_some_and(|n| n == SOCKET_NAME)
                && target.parent().and_then(Path::parent) == Some(shoal_base.as_path());
            if !(is_link && named && shoals) {
                continue;
            }
            if primary_lives(target.parent().unwrap_or(&shoal_base)) {
                continue;
            }
            if std::fs::remove_file(&link).is_ok() {
                tracing::debug!(target: "shoal::telemetry", "removed the stale link {}", link.display());
                removed = true;
            }
        }
        if removed {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// What the server's threads share.
#[derive(Clone)]
struct Ctx {
    stop: Arc<AtomicBool>,
    registry: Registry,
    stats: Arc<ServerStats>,
    clients: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Starts a client thread unless `count` clients of this socket are being served.
    fn spawn_client(&self, count: &Arc<AtomicUsize>, run: impl FnOnce(Ctx) + Send + 'static) {
        if count.load(Ordering::Relaxed) >= MAX_CLIENTS {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        self.stats.clients.fetch_add(1, Ordering::Relaxed);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        let ctx = self.clone();
        let done = count.clone();
        let spawned = std::thread::Builder::new()
            .name("shoal-telemetry-client".into())
            .spawn(move || {
                let stats = ctx.stats.clone();
                run(ctx);
                stats.clients.fetch_sub(1, Ordering::Relaxed);
                done.fetch_sub(1, Ordering::Relaxed);
            });
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => clients.push(h),
            Err(e) => {
                tracing::warn!(target: "shoal::telemetry", "no thread for a telemetry client: {e}");
                self.stats.clients.fetch_sub(1, Ordering::Relaxed);
                count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

fn serve(stream: UnixListener, dpdk: seqpacket::Listener, ctx: Ctx) {
    let dpdk_clients = Arc::new(AtomicUsize::new(0));
    let stream_clients = Arc::new(AtomicUsize::new(0));
    while !ctx.stopping() {
        let ready = match poll_readable(&[dpdk.as_fd(), stream.as_fd()], Some(POLL)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "shoal::telemetry", "telemetry poll: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if ready & 1 != 0 {
            if let Ok(conn) = dpdk.accept() {
                // Over the limit, `conn` is dropped: accepted and closed, as DPDK does.
                ctx.spawn_client(&dpdk_clients, move |ctx| dpdk_client(conn, ctx));
            }
        }
        if ready & 2 != 0 {
            if let Ok((s, _)) = stream.accept() {
                ctx.spawn_client(&stream_clients, move |ctx| stream_client(s, ctx));
            }
        }
    }
}

/// Waits until `fd` is readable; false when the server stops first.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, ctx: &Ctx) -> bool {
    loop {
        if ctx.stopping() {
            return false;
        }
        match poll_readable(&[fd], Some(POLL)) {
            Ok(0) => continue,
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
}

fn dpdk_client(conn: seqpacket::Conn, ctx: Ctx) {
    if conn.set_write_timeout(WRITE_TIMEOUT).is_err()
        || conn.send(info_value().to_string().as_bytes()).is_err()
    {
        return;
    }
    let mut buf = [0u8; MAX_REQUEST_LEN];
    while wait_readable(conn.as_fd(), &ctx) {
        let (req, truncated) = match conn.recv(&mut buf) {
            Ok(Recv::Message(n)) => (&buf[..n], false),
            Ok(Recv::Truncated) => (&buf[..], true),
            Ok(Recv::Closed) | Err(_) => return,
        };
        let (out, malformed, cut) = answer_datagram(&ctx.registry, req, truncated);
        count(&ctx.stats, malformed, cut);
        if conn.send(out.as_bytes()).is_err() {
            return;
        }
    }
}

fn count(stats: &ServerStats, malformed: bool, cut: bool) {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    if malformed {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
    }
    if cut {
        stats.truncated.fetch_add(1, Ordering::Relaxed);
    }
}

fn stream_client(mut s: UnixStream, ctx: Ctx) {
    if s.set_nonblocking(false).is_err() || s.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let hello = json!({
        "version": version(),
        "pid": std::process::id(),
        "max_output_len": STREAM_MAX_OUTPUT_LEN,
    });
    if writeln!(s, "{hello}").is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    // Set while the rest of an over-long line is being skipped.
    let mut skipping = false;
    let mut buf = [0u8; 4096];
    while wait_readable(s.as_fd(), &ctx) {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let line = &line[..line.len() - 1];
            let (out, malformed, cut) = if skipping {
                skipping = false;
                (
                    render("none", &Value::Null, STREAM_MAX_OUTPUT_LEN).0,
                    true,
                    false,
                )
            } else {
                answer_line(&ctx.registry, line)
            };
            count(&ctx.stats, malformed, cut);
            if writeln!(s, "{out}").is_err() {
                return;
            }
        }
        if pending.len() > STREAM_MAX_REQUEST_LEN {
            pending.clear();
            skipping = true;
        }
    }
}

fn answer_line(registry: &Registry, line: &[u8]) -> (String, bool, bool) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(s) if !s.contains('\0') => {
            let (cmd, params) = split_request(s);
            let (out, cut) = render(cmd, &registry.respond(cmd, params), STREAM_MAX_OUTPUT_LEN);
            (out, false, cut)
        }
        _ => {
            let text = String::from_utf8_lossy(line);
            let (cmd, _) = split_request(&text);
            (
                render(cmd, &Value::Null, STREAM_MAX_OUTPUT_LEN).0,
                true,
                false,
            )
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let clients = std::mem::take(&mut *self.clients.lock().unwrap_or_else(|e| e.into_inner()));
        for c in clients {
            let _ = c.join();
        }
        if let Some(link) = &self.dpdk_link {
            if std::fs::read_link(link).is_ok_and(|t| Some(t) == self.dpdk_path) {
                let _ = std::fs::remove_file(link);
            }
            // The group's directory under DPDK's run dir, if nothing else is left in it.
            if let Some(dir) = link.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for path in [&self.dpdk_path, &self.stream_path].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connection to a group's telemetry stream socket (`<runtime dir>/telemetry`).
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    pending: Vec<u8>,
    greeting: Value,
}

impl Client {
    /// Connects to the telemetry socket of the group `prefix` and reads the greeting.
    ///
    /// # Errors
    /// No socket (no primary serving telemetry), or a broken connection.
    pub fn connect(prefix: &str) -> std::io::Result<Client> {
        let path = crate::eal::runtime_dir(prefix).join("telemetry");
        let stream = UnixStream::connect(&path)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut c = Client {
            stream,
            pending: Vec::new(),
            greeting: Value::Null,
        };
        c.greeting = c.read_json()?;
        Ok(c)
    }

    /// What the server sent on connect (`version`, `pid`, `max_output_len`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Sends one request (`<command>[,<params>]`) and returns the answer object.
    ///
    /// # Errors
    /// A broken connection or an answer that is not JSON.
    pub fn query(&mut self, cmd: &str) -> std::io::Result<Value> {
        let cmd = cmd.trim_end_matches(['\n', '\r']);
        if cmd.contains('\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a telemetry request is one line",
            ));
        }
        writeln!(self.stream, "{cmd}")?;
        self.read_json()
    }

    fn read_json(&mut self) -> std::io::Result<Value> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                return serde_json::from_slice(&line)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// Connects to a group's telemetry socket, sends `cmd`, returns the answer.
///
/// # Errors
/// As [`Client::connect`] and [`Client::query`].
pub fn query(prefix: &str, cmd: &str) -> std::io::Result<Value> {
    Client::connect(prefix)?.query(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_checked_as_dpdk_checks_them() {
        let r = Registry::new();
        assert!(r.register("/a/b_c/D9", "fine", |_| json!(1)).is_ok());
        assert_eq!(
            r.register("a/b", "", |_| json!(1)),
            Err(RegisterError::NoLeadingSlash("a/b".into()))
        );
        assert!(matches!(
            r.register("/a-b", "", |_| json!(1)),
            Err(RegisterError::BadChar { ch: '-', .. })
        ));
        assert!(matches!(
            r.register("/a,b", "", |_| json!(1)),
            Err(RegisterError::BadChar { ch: ',', .. })
        ));
        assert!(matches!(
            r.register("/é", "", |_| json!(1)),
            Err(RegisterError::BadChar { ch: 'é', .. })
        ));
        let longest = format!("/{}", "x".repeat(MAX_CMD_LEN - 2));
        assert!(r.register(&longest, "", |_| json!(1)).is_ok());
        let too_long = format!("/{}", "x".repeat(MAX_CMD_LEN - 1));
        assert_eq!(
            r.register(&too_long, "", |_| json!(1)),
            Err(RegisterError::TooLong {
                cmd: too_long.clone(),
                len: MAX_CMD_LEN
            })
        );
        assert!(matches!(
            r.register("/h", &"h".repeat(MAX_HELP_LEN), |_| json!(1)),
            Err(RegisterError::HelpTooLong { .. })
        ));
        assert_eq!(
            r.register("/help", "", |_| json!(1)),
            Err(RegisterError::BuiltIn("/help".into()))
        );
        assert_eq!(r.commands(), ["/", "/a/b_c/D9", "/help", "/info", &longest]);
    }

    #[test]
    fn requests_are_split_and_answered_as_dpdk_does() {
        let r = Registry::new();
        r.register("/echo", "echoes its parameters", |p| json!(p))
            .unwrap();
        r.register("/fails", "never answers", |_| Value::Null)
            .unwrap();
        assert_eq!(split_request("/a,b,c"), ("/a", Some("b,c")));
        assert_eq!(split_request(",,/a"), ("/a", None));
        assert_eq!(split_request("/a,"), ("/a", None));
        assert_eq!(r.answer("/echo,x,y\n"), json!({"/echo": "x,y"}));
        assert_eq!(r.answer("/fails"), json!({"/fails": null}));
        assert_eq!(r.answer("/nope"), json!({"/nope": null}));
        assert_eq!(
            r.answer("/help,/echo"),
            json!({"/help": {"/echo": "echoes its parameters"}})
        );
        assert_eq!(r.answer("/help,/nope"), json!({"/help": null}));
        assert_eq!(
            r.answer("/help"),
            json!({"/help": "Returns help text for a command. Parameters: string command"})
        );
        assert_eq!(
            r.answer("/"),
            json!({"/": ["/", "/echo", "/fails", "/help", "/info"]})
        );
        assert_eq!(r.answer("/info")["/info"]["max_output_len"], 16384);
        let long = format!("/{}", "x".repeat(100));
        let (out, malformed, _) = answer_datagram(&r, long.as_bytes(), false);
        assert!(!malformed);
        assert_eq!(out, format!("{{\"{}\":null}}", &long[..MAX_CMD_LEN]));
        let (out, malformed, _) = answer_datagram(&r, b"/echo,\xff", false);
        assert!(malformed);
        assert_eq!(out, r#"{"/echo":null}"#);
        let (out, malformed, _) = answer_datagram(&r, b"/echo,a", true);
        assert!(malformed);
        assert_eq!(out, r#"{"/echo":null}"#);
        let (out, _, _) = answer_datagram(&r, b",,,", false);
        assert_eq!(out, r#"{"none":null}"#);
    }

    #[test]
    fn long_answers_lose_the_members_that_do_not_fit() {
        let small = json!({"a": 1});
        assert_eq!(
            render("/x", &small, 100),
            (r#"{"/x":{"a":1}}"#.into(), false)
        );
        let arr: Vec<u32> = (0..10_000).collect();
        let (out, cut) = render("/x", &json!(arr), MAX_OUTPUT_LEN);
        assert!(cut);
        assert!(out.len() < MAX_OUTPUT_LEN);
        let v: Value = serde_json::from_str(&out).unwrap();
        let got = v["/x"].as_array().unwrap();
        assert!(got.len() > 1000 && got.len() < 10_000);
        assert!(got.iter().enumerate().all(|(i, x)| x == i));
        // A member too big to fit is left out; smaller ones after it still go in.
        let obj = json!({"a": "x".repeat(20_000), "b": 2});
        let (out, cut) = render("/y", &obj, MAX_OUTPUT_LEN);
        assert!(cut);
        assert_eq!(out, r#"{"/y":{"b":2}}"#);
        let (out, cut) = render("/z", &json!("s".repeat(20_000)), MAX_OUTPUT_LEN);
        assert!(cut);
        assert_eq!(out, r#"{"/z":null}"#);
    }
}
