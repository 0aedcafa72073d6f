//! The environment abstraction layer: options, process type, the group's runtime directory and
//! shared memory, lcores, the process table, and signals.
//!
//! ```no_run
//! let (eal, app_args) = shoal::eal::Eal::init(std::env::args().collect()).unwrap();
//! println!("{:?} process of group {:?}", eal.proc_type(), eal.file_prefix());
//! ```
//!
//! A primary takes a POSIX lock on `<runtime dir>/config`, creates the segment, initialises the
//! header and writes the segment's path into `config`. A secondary finds `config` locked, reads
//! it, maps the segment wherever the kernel puts it and checks the header's magic and layout
//! version. `auto` is decided by the lock itself, so two processes started at once cannot both
//! become primary.

mod args;
mod lcore;
mod proctable;
mod runtime;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::group::{lcore_id, Group, LcoreId, ProcType};
pub use args::{check_file_prefix, parse as parse_args, EalArgs, ProcTypeArg, USAGE};
pub use lcore::{cache_line_round_trip, LcoreError};
pub use proctable::ProcessInfo;
pub use runtime::runtime_dir;

use crate::memory::header::{SegmentHeader, MAGIC};
use crate::memory::{Backing, Mapping, Region, Segment, SegmentRequest, LAYOUT_VERSION};
use crate::sync::atomic::Ordering;
use crate::sync::{Liveness, MemberId, Members};
use crate::sys;
use runtime::{ConfigFile, ConfigInfo};

/// Default shared memory size (`-m`), in megabytes.
pub const DEFAULT_MEMORY_MB: usize = 256;
/// How long a secondary waits for a primary that holds the lock but has not finished starting.
const ATTACH_WAIT: Duration = Duration::from_secs(3);
/// How often the service thread beats and checks its peers.
const SERVICE_PERIOD: Duration = Duration::from_millis(100);
/// Exit status of a secondary whose primary died.
pub const EXIT_PRIMARY_DIED: i32 = 3;

/// Errors of EAL initialisation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `-h`/`--help` was given: print [`USAGE`] and exit 0.
    #[error("help requested")]
    Help,
    /// Bad or unknown option.
    #[error("{0}")]
    Usage(String),
    /// A secondary found no live primary.
    #[error("no primary process for file prefix {prefix:?} (is it running? was --file-prefix the same?)")]
    NoPrimary {
        /// The group's prefix.
        prefix: String,
    },
    /// A primary found another live primary.
    #[error("a primary process (pid {pid}) is already running for file prefix {prefix:?}; use --proc-type=secondary or auto, or another --file-prefix")]
    PrimaryExists {
        /// The group's prefix.
        prefix: String,
        /// The live primary.
        pid: u32,
    },
    /// The primary holds the lock but did not finish starting in time.
    #[error("the primary process (pid {pid}) of file prefix {prefix:?} did not finish starting within {secs} s")]
    PrimaryNotReady {
        /// The group's prefix.
        prefix: String,
        /// The primary.
        pid: u32,
        /// How long we waited.
        secs: u64,
    },
    /// The segment was made by a binary with another shared layout.
    #[error("shared layout version {theirs:#018x} of the primary (pid {pid}) differs from this binary's {ours:#018x}; rebuild both from the same source")]
    LayoutMismatch {
        /// This binary's layout version.
        ours: u64,
        /// The segment's.
        theirs: u64,
        /// The primary.
        pid: u32,
    },
    /// The segment does not start with shoal's header.
    #[error("{path} is not a shoal segment (bad magic)")]
    BadSegment {
        /// The segment file.
        path: PathBuf,
    },
    /// An lcore is held by another live process.
    #[error(
        "lcore {lcore} is already used by live process {pid} of this group; choose another with -l"
    )]
    LcoreInUse {
        /// The lcore.
        lcore: u32,
        /// The process holding it.
        pid: u32,
    },
    /// An lcore asked for is still held by a process that died and has not been reaped yet
    /// (its per-lcore caches may hold its buffers), and no live primary reaps it in time.
    #[error(
        "lcore {lcore} is still held by process {pid}, which died and was not reaped (no live primary reaps it; `shoal reclaim` can)"
    )]
    LcoreOfDeadProcess {
        /// The lcore.
        lcore: u32,
        /// The dead process that held it.
        pid: u32,
    },
    /// Every lcore id is taken.
    #[error("no free lcore id left in this group")]
    NoFreeLcore,
    /// Every process slot is taken.
    #[error("the group already has {max} live processes")]
    TooManyProcesses {
        /// The limit.
        max: usize,
    },
    /// The IPC channel could not be started.
    #[error("IPC channel: {0}")]
    Ipc(crate::mp::Error),
    /// The group's runtime directory exists but this user may not use it.
    #[error("a group with file prefix {prefix:?} exists ({path}), but this user may not access it (run as its owner, or set XDG_RUNTIME_DIR)")]
    NotAccessible {
        /// The group's prefix.
        prefix: String,
        /// The runtime directory.
        path: PathBuf,
    },
    /// A mapping that is not a group's segment was asked to hold a process.
    #[error("not a group segment")]
    NotASegment,
    /// The shared memory could not be set up.
    #[error("shared memory: {what}: {source}")]
    Memory {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The runtime directory could not be used.
    #[error("runtime directory {path}: {source}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn mem_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Memory { what, source }
}

/// What a secondary runs (on its service thread) when it sees its primary die.
type PrimaryDeathHook = Box<dyn FnOnce() + Send>;

/// An initialised environment: this process's membership of a group. Cheap to clone; the
/// process leaves the group (slot and lcores released, and for the primary, runtime files and
/// segment removed) when the last clone drops.
#[derive(Clone)]
pub struct Eal {
    inner: Arc<Inner>,
}

struct Inner {
    proc_type: ProcType,
    prefix: String,
    dir: PathBuf,
    segment_path: PathBuf,
    backing: Backing,
    map: Arc<Mapping>,
    /// The whole mapping as a region (the header is at its offset 0).
    whole: Region,
    /// Our slot in the process table; None for an inspector (`shoal info`).
    slot: Option<u32>,
    /// The group context the lower layers work in (it holds the IPC channel).
    group: Group,
    lcores: Vec<LcoreId>,
    args: EalArgs,
    config: Mutex<Option<ConfigFile>>,
    stop: Arc<AtomicBool>,
    /// Set once the process has left the group ([`Eal::leave`] or the last drop).
    left: AtomicBool,
    /// Set by the service thread once a secondary saw its primary die.
    primary_gone: Arc<AtomicBool>,
    /// What the application asked to run when that happens.
    on_primary_death: Arc<Mutex<Option<PrimaryDeathHook>>>,
    service: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("proc_type", &self.inner.proc_type)
            .field("prefix", &self.inner.prefix)
            .field("slot", &self.inner.slot)
            .field("lcores", &self.inner.lcores)
            .finish()
    }
}

/// Sets up logging at the level `--log-level` asks for (DPDK's names or numbers).
pub fn init_logging(level: Option<&str>) {
    let level = level.map(|l| l.rsplit(':').next().unwrap_or(l).to_ascii_lowercase());
    let max = match level.as_deref() {
        Some("emerg" | "alert" | "crit" | "critical" | "err" | "error" | "1" | "2" | "3" | "4") => {
            tracing::Level::ERROR
        }
        Some("warning" | "warn" | "5") => tracing::Level::WARN,
        Some("debug" | "8") => tracing::Level::DEBUG,
        Some("trace" | "9") => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Sets a process up the way shoal's binaries want it, for applications that want the same:
/// a `tracing` subscriber on stderr at the level `--log-level` in `args` asks for (DPDK's names
/// or numbers), and SIGINT/SIGTERM handlers that make [`Eal::should_quit`] true. The library
/// never does either by itself.
pub fn setup_process(args: &[String]) {
    let level = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--" {
            return Some(None);
        }
        a.strip_prefix("--log-level=")
            .map(|l| Some(l.to_owned()))
            .or_else(|| (a == "--log-level").then(|| args.get(i + 1).cloned()))
    });
    init_logging(level.flatten().as_deref());
    sys::install_quit_handlers();
}

/// Initialises from `std::env::args()`, or prints the problem (and usage, for option errors)
/// and exits: 0 for `--help`, 2 for bad options, 1 otherwise. `app_usage` is appended to the
/// usage text. The helper shoal's binaries use: it also calls [`setup_process`], and asks
/// [`Eal::exit_when_primary_dies`] of a secondary.
pub fn init_or_exit(app_usage: &str) -> (Eal, Vec<String>) {
    init_or_exit_with(std::env::args().collect(), app_usage)
}

/// As [`init_or_exit`], from a given command line (program name first).
pub fn init_or_exit_with(args: Vec<String>, app_usage: &str) -> (Eal, Vec<String>) {
    let prog = args.first().cloned().unwrap_or_default();
    setup_process(&args);
    match Eal::init(args) {
        Ok(v) => {
            v.0.exit_when_primary_dies();
            v
        }
        Err(e) => exit_with(&prog, &e, app_usage),
    }
}

/// Prints an initialisation error the way [`init_or_exit`] does, and exits.
pub fn exit_on_error(e: &Error, app_usage: &str) -> ! {
    exit_with(&std::env::args().next().unwrap_or_default(), e, app_usage)
}

/// As [`exit_on_error`], naming `prog` in the usage.
pub fn exit_with(prog: &str, e: &Error, app_usage: &str) -> ! {
    match e {
        Error::Help => {
            println!(
                "usage: {prog} [EAL options] -- [application options]\n\n{USAGE}\n\n{app_usage}"
            );
            std::process::exit(0)
        }
        Error::Usage(msg) => {
            eprintln!("error: {msg}\n\nusage: {prog} [EAL options] -- [application options]\n\n{USAGE}\n\n{app_usage}");
            std::process::exit(2)
        }
        other => {
            eprintln!("error: {other}");
            std::process::exit(1)
        }
    }
}

impl Eal {
    /// Parses EAL options from `args` (program name first) and joins or creates the group.
    /// Returns the environment and the application's arguments (program name first).
    pub fn init(args: Vec<String>) -> Result<(Eal, Vec<String>), Error> {
        let (eal_args, app) = args::parse(&args)?;
        let eal = Self::join(eal_args)?;
        Ok((eal, app))
    }

    /// Joins or creates the group; when that fails, removes what it created (directories,
    /// `config`, the segment), so that a failed start leaves nothing behind.
    fn join(args: EalArgs) -> Result<Eal, Error> {
        let prefix = args.file_prefix.clone();
        let dir = runtime_dir(&prefix);
        // A group of this name that root runs is out of this user's reach: say so, rather
        // than that there is none, or start another group beside it (unless this user runs
        // one of that name too).
        if let Some(e) = runtime::root_group_out_of_reach(&prefix) {
            let own_primary = ConfigFile::open_existing(&dir)
                .ok()
                .flatten()
                .is_some_and(|c| matches!(c.is_held(), Ok(true)));
            if !own_primary {
                return Err(e);
            }
        }
        let created =
            runtime::ensure_dir(&dir).map_err(|e| runtime::dir_error(&prefix, &dir, e))?;
        let joined = Self::join_in(args, dir);
        if joined.is_err() {
            runtime::remove_created(&created);
        }
        joined
    }

    fn join_in(args: EalArgs, dir: PathBuf) -> Result<Eal, Error> {
        let rt_err = |source| Error::RuntimeDir {
            path: dir.clone(),
            source,
        };
        match args.proc_type {
            ProcTypeArg::Primary => {
                let mut cfg = ConfigFile::open_or_create(&dir).map_err(rt_err)?;
                if !cfg.try_lock().map_err(rt_err)? {
                    let pid = cfg.read().ok().flatten().map_or(0, |i| i.pid);
                    return Err(Error::PrimaryExists {
                        prefix: args.file_prefix.clone(),
                        pid,
                    });
                }
                Self::create_primary(args, dir, cfg)
            }
            ProcTypeArg::Secondary => Self::attach_secondary(args, dir),
            ProcTypeArg::Auto => {
                let mut cfg = ConfigFile::open_or_create(&dir).map_err(rt_err)?;
                if cfg.try_lock().map_err(rt_err)? {
                    tracing::info!(target: "shoal::eal", "auto: no live primary for {:?}; running as primary", args.file_prefix);
                    Self::create_primary(args, dir, cfg)
                } else {
                    tracing::info!(target: "shoal::eal", "auto: a primary is running for {:?}; running as secondary", args.file_prefix);
                    drop(cfg);
                    Self::attach_secondary(args, dir)
                }
            }
        }
    }

    fn create_primary(args: EalArgs, dir: PathBuf, mut cfg: ConfigFile) -> Result<Eal, Error> {
        // First of all, forget the dead primary's segment: a secondary that reads `config`
        // from now on waits for ours.
        cfg.clear().map_err(mem_err("clearing the config file"))?;
        runtime::clear_stale(&dir);
        let pid = sys::getpid();
        let req = SegmentRequest {
            len: args.memory_mb.unwrap_or(DEFAULT_MEMORY_MB) << 20,
            no_huge: args.no_huge,
            huge_dir: args.huge_dir.clone(),
            stem: format!("shoal_{}", args.file_prefix),
        };
        let seg = Segment::create(&req).map_err(mem_err("creating the segment"))?;
        let seg_path = seg.path().to_owned();
        Self::primary_on(args, dir, cfg, seg, pid).inspect_err(|_| {
            // Not ours to keep: no process of the group could have attached yet.
            let _ = std::fs::remove_file(&seg_path);
        })
    }

    fn primary_on(
        args: EalArgs,
        dir: PathBuf,
        mut cfg: ConfigFile,
        seg: Segment,
        pid: u32,
    ) -> Result<Eal, Error> {
        if seg.backing() == Backing::Shm && !args.no_huge {
            tracing::info!(target: "shoal::eal", "shared memory: {} in /dev/shm (normal pages)", human(seg.mapping().len()));
        } else {
            tracing::debug!(target: "shoal::eal", "shared memory: {} on {}", human(seg.mapping().len()), seg.backing());
        }
        let whole =
            Region::new(seg.mapping().clone(), 0, seg.mapping().len()).expect("whole mapping");
        // SAFETY: `seg` was created just above and its path is written to `config` only
        // below, so no other process can have attached to it.
        #[allow(unsafe_code)]
        let _ = unsafe {
            SegmentHeader::init(
                &whole,
                seg.backing().as_u32(),
                seg.page_size as u64,
                pid,
                sys::pid_namespace(),
            )
        };
        cfg.write(&ConfigInfo {
            pid,
            layout_version: LAYOUT_VERSION,
            segment: seg.path().to_owned(),
            len: seg.mapping().len() as u64,
        })
        .map_err(mem_err("writing the config file"))?;
        let eal = Self::finish(args, ProcType::Primary, dir, &seg, Some(cfg))?;
        if let Some(c) = eal
            .inner
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            c.keep();
        }
        tracing::info!(target: "shoal::eal", "primary process {pid} ready (file prefix {:?})", eal.file_prefix());
        Ok(eal)
    }

    /// Finds the live primary and maps its segment, waiting (bounded) for it to finish starting.
    /// The segment is used only when the member that created it is alive (its liveness lock on
    /// that very file is held): a dead primary's segment, still named by a stale `config` while
    /// a new primary starts, is never attached to.
    fn open_group(prefix: &str, dir: &Path) -> Result<(Segment, ConfigFile), Error> {
        let no_primary = || Error::NoPrimary {
            prefix: prefix.to_owned(),
        };
        let mut cfg = ConfigFile::open_existing(dir)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::PermissionDenied => Error::NotAccessible {
                    prefix: prefix.to_owned(),
                    path: dir.to_owned(),
                },
                _ => Error::RuntimeDir {
                    path: dir.to_owned(),
                    source,
                },
            })?
            .ok_or_else(no_primary)?;
        let deadline = Instant::now() + ATTACH_WAIT;
        let mut pid = 0;
        loop {
            if !cfg.is_held().map_err(mem_err("testing the config lock"))? {
                return Err(no_primary());
            }
            if let Some(info) = cfg.read().map_err(mem_err("reading the config file"))? {
                pid = info.pid;
                if info.layout_version != LAYOUT_VERSION {
                    return Err(Error::LayoutMismatch {
                        ours: LAYOUT_VERSION,
                        theirs: info.layout_version,
                        pid: info.pid,
                    });
                }
                if let Ok(seg) = Segment::open(&info.segment) {
                    let whole = Region::new(seg.mapping().clone(), 0, seg.mapping().len())
                        .expect("whole mapping");
                    let hdr: &SegmentHeader = whole.get(0).ok_or_else(|| Error::BadSegment {
                        path: info.segment.clone(),
                    })?;
                    if hdr.magic.load(Ordering::Relaxed) != MAGIC {
                        return Err(Error::BadSegment {
                            path: info.segment.clone(),
                        });
                    }
                    let theirs = hdr.layout_version.load(Ordering::Relaxed);
                    if theirs != LAYOUT_VERSION {
                        return Err(Error::LayoutMismatch {
                            ours: LAYOUT_VERSION,
                            theirs,
                            pid: info.pid,
                        });
                    }
                    if hdr.is_ready() {
                        let creator = MemberId::from_raw(hdr.primary_id.load(Ordering::Acquire));
                        if seg.mapping().liveness(creator) == Liveness::Alive {
                            return Ok((seg, cfg));
                        }
                        tracing::debug!(target: "shoal::eal", "{} belongs to a primary that is gone; waiting for the new one", info.segment.display());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::PrimaryNotReady {
                    prefix: prefix.to_owned(),
                    pid,
                    secs: ATTACH_WAIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn attach_secondary(args: EalArgs, dir: PathBuf) -> Result<Eal, Error> {
        let (seg, cfg) = Self::open_group(&args.file_prefix, &dir)?;
        let eal = Self::finish(args, ProcType::Secondary, dir, &seg, Some(cfg))?;
        tracing::info!(target: "shoal::eal", "secondary process {} attached to file prefix {:?} (primary {})", sys::getpid(), eal.file_prefix(), eal.primary_pid());
        Ok(eal)
    }

    /// Attaches to a running group without joining it: no process slot, no lcores, no service
    /// thread. For tools such as `shoal info`.
    pub fn inspect(prefix: &str) -> Result<Eal, Error> {
        check_file_prefix(prefix)?;
        let dir = runtime_dir(prefix);
        let (seg, _cfg) = Self::open_group(prefix, &dir).map_err(|e| match e {
            Error::NoPrimary { .. } => runtime::root_group_out_of_reach(prefix).unwrap_or(e),
            e => e,
        })?;
        // A guest identity, so that the inspector may take the group's locks (and a dead
        // inspector's lock is taken over).
        if let Some(m) = seg.mapping().membership() {
            match m.become_guest() {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(Error::TooManyProcesses {
                        max: crate::memory::MAX_GUESTS as usize,
                    })
                }
                Err(e) => return Err(mem_err("taking a guest liveness lock")(e)),
            }
        }
        let args = EalArgs {
            file_prefix: prefix.to_owned(),
            ..Default::default()
        };
        let whole =
            Region::new(seg.mapping().clone(), 0, seg.mapping().len()).expect("whole mapping");
        let group = Self::make_group(&whole, ProcType::Secondary, None, seg.path(), &args, None);
        Ok(Eal {
            inner: Arc::new(Inner {
                proc_type: ProcType::Secondary,
                prefix: prefix.to_owned(),
                segment_path: seg.path().to_owned(),
                backing: seg.backing(),
                map: seg.mapping().clone(),
                whole,
                dir,
                slot: None,
                group,
                lcores: Vec::new(),
                args,
                config: Mutex::new(None),
                stop: Arc::new(AtomicBool::new(false)),
                left: AtomicBool::new(false),
                primary_gone: Arc::new(AtomicBool::new(false)),
                on_primary_death: Arc::new(Mutex::new(None)),
                service: Mutex::new(None),
            }),
        })
    }

    fn finish(
        args: EalArgs,
        proc_type: ProcType,
        dir: PathBuf,
        seg: &Segment,
        cfg: Option<ConfigFile>,
    ) -> Result<Eal, Error> {
        let map = seg.mapping().clone();
        let whole = Region::new(map.clone(), 0, map.len()).expect("whole mapping");
        let hdr: &SegmentHeader = whole.get(0).expect("header");
        // A guest identity lets us take the group's locks while we claim a slot (and tells
        // others if we die doing it).
        let guest = match map.membership().map(|m| m.become_guest()) {
            Some(Ok(Some(id))) => id,
            Some(Ok(None)) => {
                return Err(Error::TooManyProcesses {
                    max: crate::memory::MAX_GUESTS as usize,
                })
            }
            Some(Err(e)) => return Err(mem_err("taking a guest liveness lock")(e)),
            None => return Err(Error::NotASegment),
        };
        // Only a primary reaps here: a reaper killed in the middle of returning a dead
        // process's objects would strand those already marked as being returned, and a
        // secondary may be killed while it starts. Dead members' lcores do not block the claim.
        if proc_type == ProcType::Primary {
            // A reaper's context: no slot yet, so what it touches is attributed to nobody.
            let reaper = Self::make_group(&whole, proc_type, None, seg.path(), &args, None);
            reap(&reaper, &dir);
        }
        let claimed = proctable::claim(&map, hdr, proc_type, &args.lcores);
        if let Some(m) = map.membership() {
            m.leave_guest(guest);
        }
        let (slot, lcores) = claimed?;
        if proc_type == ProcType::Primary {
            hdr.primary_id.store(map.me().raw(), Ordering::Relaxed);
            hdr.publish();
        }
        let ncpus = sys::cpu_count();
        let main_cpu = cpu_of(&args, lcores[0]);
        for l in &lcores {
            if l.0 as usize >= ncpus && !args.lcores.iter().any(|(x, cpu)| x == l && cpu.is_some())
            {
                tracing::warn!(target: "shoal::eal", "lcore {l} is beyond this machine's {ncpus} CPUs; it runs on CPU {}", l.0 as usize % ncpus);
            }
        }
        if let Err(e) = sys::pin_current_thread(main_cpu) {
            tracing::warn!(target: "shoal::eal", "could not pin to CPU {main_cpu}: {e}");
        }
        let mp = crate::mp::Mp::start_as(
            crate::mp::MpConfig {
                dir: dir.clone(),
                role: match proc_type {
                    ProcType::Primary => crate::mp::Role::Primary,
                    ProcType::Secondary => crate::mp::Role::Secondary,
                },
            },
            Some(slot),
        );
        let mp = match mp {
            Ok(mp) => mp,
            Err(e) => {
                let g = Self::make_group(&whole, proc_type, Some(slot), seg.path(), &args, None);
                proctable::release(&g, slot);
                return Err(Error::Ipc(e));
            }
        };
        let group = Self::make_group(&whole, proc_type, Some(slot), seg.path(), &args, Some(mp));
        let eal = Eal {
            inner: Arc::new(Inner {
                proc_type,
                prefix: args.file_prefix.clone(),
                segment_path: seg.path().to_owned(),
                backing: seg.backing(),
                map,
                whole: whole.clone(),
                dir,
                slot: Some(slot),
                group,
                lcores,
                args,
                config: Mutex::new(cfg),
                stop: Arc::new(AtomicBool::new(false)),
                left: AtomicBool::new(false),
                primary_gone: Arc::new(AtomicBool::new(false)),
                on_primary_death: Arc::new(Mutex::new(None)),
                service: Mutex::new(None),
            }),
        };
        eal.start_service();
        eal.register_main_thread();
        if let Some(mp) = eal.mp() {
            mp.mark_init_complete();
        }
        Ok(eal)
    }

    /// The service thread: heartbeat; the primary reaps dead processes; a secondary watches the
    /// primary and exits when it is gone.
    fn start_service(&self) {
        let stop = self.inner.stop.clone();
        let map = self.inner.map.clone();
        let group = self.inner.group.clone();
        let slot = self.inner.slot.expect("member process");
        let proc_type = self.inner.proc_type;
        let prefix = self.inner.prefix.clone();
        let dir = self.inner.dir.clone();
        let gone = self.inner.primary_gone.clone();
        let on_gone = self.inner.on_primary_death.clone();
        let primary = match proc_type {
            ProcType::Secondary => Some(MemberId::from_raw(
                self.header().primary_id.load(Ordering::Relaxed),
            )),
            ProcType::Primary => None,
        };
        let primary_pid = self.primary_pid();
        let handle = std::thread::Builder::new()
            .name("shoal-service".into())
            .spawn(move || {
                let hdr: &SegmentHeader = group.header();
                let mut tick = 0u64;
                while !stop.load(StdOrdering::Relaxed) {
                    proctable::beat(hdr, slot);
                    if let Some(primary) = primary {
                        if !gone.load(StdOrdering::Relaxed)
                            && map.liveness(primary) == Liveness::Dead
                        {
                            tracing::error!(target: "shoal::eal", "the primary process (pid {primary_pid}) of file prefix {prefix:?} has exited");
                            gone.store(true, StdOrdering::Release);
                            let f = on_gone.lock().ok().and_then(|mut f| f.take());
                            if let Some(f) = f {
                                f();
                            }
                        }
                    }
                    if proc_type == ProcType::Primary && tick.is_multiple_of(2) {
                        reap(&group, &dir);
                    }
                    tick += 1;
                    std::thread::sleep(SERVICE_PERIOD);
                }
            })
            .expect("spawn the service thread");
        *self.inner.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    pub(crate) fn header(&self) -> &SegmentHeader {
        // The mapping holds a header: checked when it was created or attached.
        self.inner.whole.get(0).expect("segment header")
    }

    /// Primary or secondary.
    pub fn proc_type(&self) -> ProcType {
        self.inner.proc_type
    }

    /// The group's name (`--file-prefix`).
    pub fn file_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The group's runtime directory.
    pub fn runtime_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The lcores this process holds, main lcore first.
    pub fn lcores(&self) -> &[LcoreId] {
        &self.inner.lcores
    }

    /// The CPU that `lcore` runs on in this process (its `--lcores` mapping, else `id mod
    /// ncpus`); for another process's lcore, the CPU it runs on unless that process mapped it
    /// otherwise with `--lcores`.
    pub fn cpu_of(&self, lcore: LcoreId) -> usize {
        cpu_of(&self.inner.args, lcore)
    }

    /// The main lcore (the first of `-l`), or lcore 0 for an inspector.
    pub fn main_lcore(&self) -> LcoreId {
        self.inner.lcores.first().copied().unwrap_or(LcoreId(0))
    }

    /// This process's slot in the process table (None for an inspector).
    pub fn slot(&self) -> Option<u32> {
        self.inner.slot
    }

    /// The parsed EAL options.
    pub fn args(&self) -> &EalArgs {
        &self.inner.args
    }

    /// `--vdev` specs.
    pub fn vdevs(&self) -> &[String] {
        &self.inner.args.vdevs
    }

    /// Where the shared memory lives.
    pub fn backing(&self) -> Backing {
        self.inner.backing
    }

    /// The segment file.
    pub fn segment_path(&self) -> &Path {
        &self.inner.segment_path
    }

    /// Size of the shared memory in bytes.
    pub fn memory_len(&self) -> usize {
        self.inner.map.len()
    }

    /// The group's IPC channel (DPDK's `rte_mp_*`), started at init with the runtime dir and
    /// this process's role. `None` for an inspector ([`Eal::inspect`]).
    pub fn mp(&self) -> Option<&crate::mp::Mp> {
        self.inner.group.mp()
    }

    /// The group context this process's objects are created and found in. Functions of the
    /// lower layers take `&eal` for it (`Eal` is `AsRef<Group>`).
    pub fn group(&self) -> &Group {
        &self.inner.group
    }

    /// The primary's pid.
    pub fn primary_pid(&self) -> u32 {
        self.header().primary_pid.load(Ordering::Relaxed)
    }

    /// The processes of the group.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        proctable::list(&self.inner.map, self.header())
    }

    /// This process's identity in the group: its slot and the slot's generation (a guest id for
    /// an inspector).
    pub fn member(&self) -> MemberId {
        self.inner.map.me()
    }

    /// Whether the member `id` of this group is alive, by its liveness lock (no pid involved:
    /// this works across PID namespaces and cannot be fooled by pid reuse).
    pub fn liveness(&self, id: MemberId) -> Liveness {
        self.inner.map.liveness(id)
    }

    /// Finds processes that died without leaving, returns their buffers to their pools and
    /// frees their slots and lcores. The primary does this by itself a few times a second.
    pub fn reap_dead(&self) -> Vec<ProcessInfo> {
        reap(&self.inner.group, &self.inner.dir)
    }

    /// True once SIGINT or SIGTERM arrived (with handlers installed: [`setup_process`]), or
    /// [`Eal::request_quit`] was called, or this secondary's primary died.
    pub fn should_quit(&self) -> bool {
        sys::quit_signal() != 0 || self.primary_died()
    }

    /// True once this secondary saw its primary die (checked a few times a second). The library
    /// leaves the process alone: loops see [`Eal::should_quit`], and the application decides
    /// what to do ([`Eal::on_primary_death`], [`Eal::exit_when_primary_dies`]).
    pub fn primary_died(&self) -> bool {
        self.inner.primary_gone.load(StdOrdering::Acquire)
    }

    /// Runs `f` once, on the EAL's service thread, when this secondary sees its primary die.
    /// Replaces what was registered before.
    pub fn on_primary_death(&self, f: impl FnOnce() + Send + 'static) {
        if let Ok(mut slot) = self.inner.on_primary_death.lock() {
            *slot = Some(Box::new(f));
        }
    }

    /// What shoal's binaries do when their primary dies: print why on stderr and exit with
    /// [`EXIT_PRIMARY_DIED`]. An application opts in; the library never exits by itself.
    pub fn exit_when_primary_dies(&self) {
        if self.proc_type() != ProcType::Secondary {
            return;
        }
        let (pid, prefix) = (self.primary_pid(), self.file_prefix().to_owned());
        self.on_primary_death(move || {
            eprintln!("error: the primary process (pid {pid}) of file prefix {prefix:?} has exited; this secondary cannot continue");
            std::process::exit(EXIT_PRIMARY_DIED);
        });
    }

    /// The signal that asked this process to stop (SIGINT 2, SIGTERM 15), or 0.
    pub fn quit_signal(&self) -> i32 {
        sys::quit_signal()
    }

    /// Asks this process's loops to stop, as SIGINT would.
    pub fn request_quit(&self) {
        sys::request_quit(libc::SIGINT);
    }

    /// Leaves the group now, as the last drop of the `Eal` would (slot and lcores released;
    /// for the primary, runtime files and segment removed), even while other handles (ports,
    /// rings, pools) still hold clones. For an application that exits on an error after joining:
    /// `eal.leave(); std::process::exit(1)` leaves nothing behind. Shared objects must not be
    /// used afterwards (their memory stays mapped until the handles drop, so doing so is a
    /// logic error, not undefined behaviour).
    pub fn leave(&self) {
        self.inner.leave();
    }

    /// Holds the group's metadata lock until the returned guard drops. For tests of lock
    /// recovery: a process killed while holding it must not block the group.
    #[doc(hidden)]
    pub fn hold_metadata_lock(&self) -> impl Drop + '_ {
        self.header().memzones.lock(&*self.inner.map)
    }

    /// The member holding the metadata lock (`MemberId::NONE` when free) and how many dead
    /// holders' locks were taken over.
    pub fn metadata_lock_state(&self) -> (MemberId, u64) {
        let raw = self.header().memzones.raw();
        (raw.holder(), raw.recoveries())
    }
}

impl AsRef<Group> for Eal {
    fn as_ref(&self) -> &Group {
        &self.inner.group
    }
}

impl Eal {
    /// The group context for `whole`, with the object kinds of every layer registered: what a
    /// member (or a reaper) of the group returns a dead member's objects through.
    fn make_group(
        whole: &Region,
        proc_type: ProcType,
        slot: Option<u32>,
        segment: &Path,
        args: &EalArgs,
        mp: Option<crate::mp::Mp>,
    ) -> Group {
        let group = Group::new(crate::group::Parts {
            whole: whole.clone(),
            proc_type,
            slot,
            segment_path: segment.to_owned(),
            vdevs: args.vdevs.clone(),
            mp,
        });
        // Order matters: mbufs first tell the pools how to reclaim them, then the pools
        // register the reclaimer that returns every object by its owner tag.
        crate::mbuf::register(&group);
        crate::mempool::register(&group);
        group
    }
}

impl Inner {
    /// Leaves the group: IPC and the service thread stop, the slot and lcores are released,
    /// and a primary removes the runtime files and the segment. Runs once (`left`).
    fn leave(&self) {
        if self.left.swap(true, StdOrdering::AcqRel) {
            return;
        }
        if let Some(mp) = self.group.mp() {
            mp.shutdown();
        }
        self.stop.store(true, StdOrdering::Relaxed);
        if let Some(h) = self.service.lock().ok().and_then(|mut s| s.take()) {
            let _ = h.join();
        }
        let Some(slot) = self.slot else { return };
        proctable::release(&self.group, slot);
        self.group.end_lcores();
        if self.proc_type == ProcType::Primary {
            runtime::clear_stale(&self.dir);
            let _ = std::fs::remove_file(&self.segment_path);
            let _ = std::fs::remove_file(self.dir.join("config"));
            // Closing the config file drops the lock: secondaries see the primary gone.
            drop(self.config.lock().ok().and_then(|mut c| c.take()));
            let _ = std::fs::remove_dir(&self.dir);
            tracing::debug!(target: "shoal::eal", "primary left; group {:?} removed", self.prefix);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Reaps dead members (see `proctable::reap_dead`), logs each, and removes its IPC socket,
/// named by its own pid and slot.
fn reap(group: &Group, dir: &Path) -> Vec<ProcessInfo> {
    let reaped = proctable::reap_dead(group);
    for p in &reaped {
        tracing::warn!(target: "shoal::eal", "process {} ({}) died; its slot {} and lcores {:?} were freed", p.pid, p.proc_type, p.slot, p.lcores);
        let _ = std::fs::remove_file(dir.join(crate::mp::secondary_socket_name(p.pid, p.slot)));
    }
    reaped
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// The CPU an lcore of a process started with `args` runs on: its `--lcores` mapping, else
/// `id mod ncpus` (an lcore id beyond the machine's CPUs wraps around).
fn cpu_of(args: &EalArgs, lcore: LcoreId) -> usize {
    args.lcores
        .iter()
        .find(|(l, _)| *l == lcore)
        .and_then(|(_, cpu)| *cpu)
        .unwrap_or(lcore.0 as usize % sys::cpu_count())
}

/// Splits a command line (program name first) at the lone `--` into EAL options and the
/// application's arguments (program name first), without parsing either. Lets an application
/// read its own options before it joins the group.
pub fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    let prog = args.first().cloned().unwrap_or_default();
    match args.iter().skip(1).position(|a| a == "--") {
        Some(i) => {
            let mut app = vec![prog];
            app.extend_from_slice(&args[2 + i..]);
            (args[..1 + i].to_vec(), app)
        }
        None => (args.to_vec(), vec![prog]),
    }
}

/// True once SIGINT or SIGTERM arrived (usable before [`Eal::init`] succeeded).
pub fn quit_requested() -> bool {
    sys::install_quit_handlers();
    sys::quit_signal() != 0
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between the processes of a machine (heartbeats).
pub fn monotonic_ns() -> u64 {
    sys::monotonic_ns()
}

/// Sends a signal (e.g. `libc::SIGINT`) to a process: for tools that drive a group.
pub fn send_signal(pid: u32, sig: i32) -> std::io::Result<()> {
    sys::send_signal(pid, sig)
}

/// The PID namespace of this process (inode of `/proc/self/ns/pid`, 0 when unknown): pids of
/// two processes can be compared only when their namespaces are the same.
pub fn pid_namespace() -> u64 {
    sys::pid_namespace()
}
