//! The telemetry socket: `<runtime dir>/telemetry`, a Unix stream socket served by the primary.
//!
//! On connect the server sends one line, `{"version":"shoal-<v>","pid":P,"max_output_len":N}`.
//! Then each line the client sends is a command (`/`, `/help`, `/info`, `/shoal/snapshot`, or one
//! an application registered, optionally followed by `,params`), and each answer is one line of
//! JSON: `{"<command>": <value>}` — DPDK's telemetry v2 protocol, over a stream with newlines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::eal::Eal;

/// Longest answer sent, in bytes (DPDK's limit is 16 KiB; ours is larger for snapshots).
pub const MAX_OUTPUT_LEN: usize = 1 << 20;

type Handler = Box<dyn Fn(&str) -> Value + Send + Sync>;
/// Command name -> (help text, handler).
type Commands = BTreeMap<String, (String, Arc<Handler>)>;

/// Commands a process answers on its telemetry socket.
#[derive(Clone, Default)]
pub struct Registry {
    cmds: Arc<Mutex<Commands>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Registers (or replaces) a command. `cmd` starts with `/`; `handler` gets the parameters
    /// after the first comma.
    pub fn register(
        &self,
        cmd: &str,
        help: &str,
        handler: impl Fn(&str) -> Value + Send + Sync + 'static,
    ) {
        let mut cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
        cmds.insert(
            cmd.to_owned(),
            (help.to_owned(), Arc::new(Box::new(handler))),
        );
    }

    /// Runs one command line and returns the answer object.
    pub fn answer(&self, line: &str) -> Value {
        let line = line.trim();
        let (cmd, params) = line.split_once(',').unwrap_or((line, ""));
        let entry = {
            let cmds = self.cmds.lock().unwrap_or_else(|e| e.into_inner());
            if cmd == "/" {
                return json!({ "/": cmds.keys().cloned().collect::<Vec<_>>() });
            }
            if cmd == "/help" {
                let topic = params.trim();
                let text = cmds
                    .get(topic)
                    .map(|(h, _)| h.clone())
                    .unwrap_or_else(|| format!("no command {topic:?}"));
                return json!({ "/help": { topic: text } });
            }
            cmds.get(cmd).map(|(_, h)| h.clone())
        };
        match entry {
            Some(h) => json!({ cmd: h(params) }),
            None => json!({ cmd: Value::Null, "error": format!("unknown command {cmd:?}; try /") }),
        }
    }
}

/// A running telemetry server; stops (and removes its socket) on drop.
#[derive(Debug)]
pub struct Server {
    /// None with `--no-telemetry`.
    path: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    registry: Registry,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts serving `<runtime dir>/telemetry` with the built-in commands. With
    /// `--no-telemetry` there is no socket and nothing is served; the registry still takes
    /// commands, so applications need not tell the two cases apart.
    pub fn start(eal: &Eal) -> std::io::Result<Server> {
        let registry = Registry::default();
        if eal.args().no_telemetry {
            tracing::debug!(target: "shoal::telemetry", "--no-telemetry: no telemetry socket");
            return Ok(Server {
                path: None,
                stop: Arc::new(AtomicBool::new(false)),
                registry,
                thread: None,
            });
        }
        let path = eal.runtime_dir().join("telemetry");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let e = eal.clone();
        registry.register(
            "/shoal/snapshot",
            "the whole group: memory, memzones, rings, mempools, processes",
            move |_| serde_json::to_value(super::snapshot(&e)).unwrap_or(Value::Null),
        );
        let e = eal.clone();
        registry.register("/info", "group name, primary pid, memory", move |_| {
            json!({ "file_prefix": e.file_prefix(), "primary_pid": e.primary_pid(), "memory_bytes": e.memory_len(), "backing": e.backing() })
        });
        let e = eal.clone();
        registry.register("/eal/processes", "the process table", move |_| {
            serde_json::to_value(e.processes()).unwrap_or(Value::Null)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s, r) = (stop.clone(), registry.clone());
        let thread = std::thread::Builder::new()
            .name("shoal-telemetry".into())
            .spawn(move || serve(listener, s, r))?;
        Ok(Server {
            path: Some(path),
            stop,
            registry,
            thread: Some(thread),
        })
    }

    /// The command registry, to add application commands.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

fn serve(listener: UnixListener, stop: Arc<AtomicBool>, registry: Registry) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let r = registry.clone();
                let s = stop.clone();
                let _ = std::thread::Builder::new()
                    .name("shoal-telemetry-client".into())
                    .spawn(move || client(stream, r, s));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn client(stream: UnixStream, registry: Registry, stop: Arc<AtomicBool>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let hello = json!({ "version": concat!("shoal-", env!("CARGO_PKG_VERSION")), "pid": std::process::id(), "max_output_len": MAX_OUTPUT_LEN });
    if writeln!(out, "{hello}").is_err() {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {
                let mut text = registry.answer(&line).to_string();
                if text.len() > MAX_OUTPUT_LEN {
                    text = json!({ "error": "answer longer than max_output_len" }).to_string();
                }
                if writeln!(out, "{text}").is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Connects to a group's telemetry socket, sends `cmd`, returns the answer.
pub fn query(prefix: &str, cmd: &str) -> std::io::Result<Value> {
    let path = crate::eal::runtime_dir(prefix).join("telemetry");
    let stream = UnixStream::connect(&path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut hello = String::new();
    reader.read_line(&mut hello)?;
    writeln!(out, "{cmd}")?;
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    serde_json::from_str(&answer)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
