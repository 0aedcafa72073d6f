//! `shoal top`: a live monitor of a running group. Every interval it takes a snapshot
//! ([`shoal::telemetry::snapshot`]) and computes rates against the previous one: packets and
//! bytes per second per port and per worker of every pipeline ([`shoal::dispatch`]), drops per
//! second by cause, ring fill, pool use, and each process's liveness and CPU use.
//!
//! One function, [`frame`], turns two samples into a [`Frame`]: tables of rows, each row with
//! its cells' text and sort keys. Two renderers show it:
//!
//! - on a terminal, a full-screen view (ratatui on crossterm) redrawn in place, which reflows
//!   when the terminal is resized. Keys: `q`, Esc or Ctrl-C quit; `s` cycles the sort column of
//!   the selected table, Tab and Shift-Tab select another table; `p` pauses the display (the
//!   samples go on, so rates are current when it resumes). The terminal is restored on every
//!   way out: a key, SIGINT or SIGTERM, an error, the end of `--iterations`, the primary's
//!   exit, a panic;
//! - otherwise (stdout is not a terminal, or `--plain`), plain text frames one after another,
//!   with no escape sequences, rows sorted busiest first.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use shoal::dispatch::{PipelineStats, WorkerStats};
use shoal::eal::Eal;
use shoal::telemetry::{snapshot, Snapshot};

/// Kernel clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 on Linux).
pub(crate) const USER_HZ: f64 = 100.0;

/// `shoal top`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "A live monitor of a running group: rates per port, pipeline, worker, ring, pool and process"
)]
struct Opts {
    #[command(flatten)]
    group: crate::GroupArgs,
    /// Stop after N refreshes (default: until interrupted, or `q` on a terminal)
    #[arg(short = 'n', long, value_name = "N", value_parser = above_zero)]
    iterations: Option<u64>,
    /// Time between refreshes
    #[arg(long = "interval-ms", value_name = "MS", default_value = "1000", value_parser = shoal_apps::args::millis)]
    interval: Duration,
    /// Plain text frames one after another, even on a terminal (no full-screen view)
    #[arg(long)]
    plain: bool,
}

/// Value parser: a count of 1 or more.
fn above_zero(v: &str) -> Result<u64, String> {
    match shoal_apps::args::num::<u64>(v)? {
        0 => Err("a number above 0".into()),
        n => Ok(n),
    }
}

pub(crate) fn run(args: &[String]) -> i32 {
    let o: Opts = match crate::parse_cmd("top", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let eal = match Eal::inspect(&o.group.prefix) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if !o.plain && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return tui::run(&eal, &o);
    }
    let mut prev = Sample::take(&eal);
    let mut n = 0u64;
    loop {
        std::thread::sleep(o.interval);
        if !primary_alive(&eal) {
            eprintln!("the primary of {:?} has exited", o.group.prefix);
            return 1;
        }
        let cur = Sample::take(&eal);
        n += 1;
        crate::print_out(&format!("{}\n", frame(&prev, &cur, n).plain()));
        prev = cur;
        if o.iterations.is_some_and(|max| n >= max) {
            return 0;
        }
    }
}

/// Whether the group still has a live primary (it may have gone away meanwhile).
fn primary_alive(eal: &Eal) -> bool {
    eal.processes()
        .iter()
        .any(|p| p.alive && p.proc_type == "primary")
}

/// A snapshot and the processes' CPU time, taken at one moment.
struct Sample {
    at: Instant,
    snap: Snapshot,
    /// Clock ticks (user + system) by pid, for processes in this PID namespace.
    cpu: HashMap<u32, u64>,
}

impl Sample {
    fn take(eal: &Eal) -> Sample {
        let snap = snapshot(eal);
        let cpu = snap
            .processes
            .iter()
            .filter(|p| p.same_pid_ns && p.alive)
            .filter_map(|p| Some((p.pid, cpu_ticks(p.pid)?)))
            .collect();
        Sample {
            at: Instant::now(),
            snap,
            cpu,
        }
    }
}

/// utime + stime of a process, from `/proc/<pid>/stat` (fields 14 and 15, counted after the
/// command name's closing parenthesis, since the name may hold spaces).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ')': field 3 (state) is f[0], so field k is f[k - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn per_sec(cur: u64, prev: u64, secs: f64) -> f64 {
    cur.saturating_sub(prev) as f64 / secs
}

/// A column: its header, its width, and whether its cells are left-aligned.
#[derive(Clone, Copy, Debug)]
struct Col {
    name: &'static str,
    width: usize,
    left: bool,
}

const fn left(name: &'static str, width: usize) -> Col {
    Col {
        name,
        width,
        left: true,
    }
}

const fn right(name: &'static str, width: usize) -> Col {
    Col {
        name,
        width,
        left: false,
    }
}

/// A cell's sort key: measures sort largest first, identities and names in ascending order.
#[derive(Clone, Debug)]
enum Key {
    Measure(f64),
    Id(u64),
    Text(String),
}

/// One row: the text of its cells and their sort keys, column by column.
#[derive(Debug)]
struct Row {
    cells: Vec<String>,
    keys: Vec<Key>,
}

/// A table of a frame.
#[derive(Debug)]
struct Table {
    /// Names the table across frames (the selected table and its sort column survive a refresh).
    id: String,
    /// The line above the table in plain text, when `heading`.
    title: String,
    heading: bool,
    /// The table's title on a terminal.
    label: String,
    cols: &'static [Col],
    /// In a base order (snapshot order, or by name or slot), which sorting keeps among equals.
    rows: Vec<Row>,
    /// The column the rows are sorted by unless another is chosen.
    sort: usize,
    /// Lines below the rows.
    footer: Vec<String>,
}

impl Table {
    /// The rows sorted by column `col` (a stable sort of the base order).
    fn sorted(&self, col: usize) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by(|a, b| match (a.keys.get(col), b.keys.get(col)) {
            (Some(Key::Measure(x)), Some(Key::Measure(y))) => y.total_cmp(x),
            (Some(Key::Id(x)), Some(Key::Id(y))) => x.cmp(y),
            (Some(Key::Text(x)), Some(Key::Text(y))) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        });
        rows
    }
}

/// What one refresh shows: a title line and tables.
#[derive(Debug)]
struct Frame {
    title: String,
    tables: Vec<Table>,
}

impl Frame {
    /// Plain text: every table under its title, rows sorted by their default column.
    fn plain(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{}", self.title);
        for t in &self.tables {
            if t.heading {
                let _ = writeln!(o, "\n{}", t.title);
            }
            if t.cols.is_empty() {
                continue;
            }
            let line = |cells: &mut dyn Iterator<Item = &str>| {
                let mut l = String::from(" ");
                for (c, text) in t.cols.iter().zip(cells) {
                    if c.left {
                        let _ = write!(l, " {text:<w$}", w = c.width);
                    } else {
                        let _ = write!(l, " {text:>w$}", w = c.width);
                    }
                }
                l
            };
            let _ = writeln!(o, "{}", line(&mut t.cols.iter().map(|c| c.name)));
            for r in t.sorted(t.sort) {
                let _ = writeln!(o, "{}", line(&mut r.cells.iter().map(String::as_str)));
            }
            for f in &t.footer {
                let _ = writeln!(o, "{f}");
            }
        }
        o
    }
}

/// The frame of a refresh: rates between `prev` and `cur`.
fn frame(prev: &Sample, cur: &Sample, n: u64) -> Frame {
    let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-6);
    let s = &cur.snap;
    let mut tables = vec![ports(&s.ports, &prev.snap.ports, secs)];
    for p in &s.pipelines {
        let old = prev.snap.pipelines.iter().find(|q| q.name == p.name);
        tables.extend(pipeline(p, old, secs));
    }
    if s.pipelines.is_empty() {
        tables.push(Table {
            id: "pipelines".into(),
            title: "pipelines (0)".into(),
            heading: true,
            label: "pipelines (0)".into(),
            cols: &[],
            rows: Vec::new(),
            sort: 0,
            footer: Vec::new(),
        });
    }
    tables.push(rings(s));
    tables.push(mempools(s));
    tables.push(processes(prev, cur, secs));
    Frame {
        title: format!(
            "shoal top: group {:?}, primary pid {}, rates over {:.2} s (frame {n})",
            s.file_prefix, s.primary_pid, secs
        ),
        tables,
    }
}

fn num(v: &serde_json::Value, k: &str) -> u64 {
    v.get(k).and_then(|x| x.as_u64()).unwrap_or(0)
}

fn text(v: &serde_json::Value, k: &str) -> String {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("?").to_string()
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Every port of the group, from the port table: whoever polls it.
fn ports(cur: &[serde_json::Value], prev: &[serde_json::Value], secs: f64) -> Table {
    const COLS: &[Col] = &[
        right("PORT", 4),
        left("NAME", 16),
        left("STATE", 10),
        right("RX_PPS", 11),
        right("RX_MBPS", 9),
        right("TX_PPS", 11),
        right("TX_MBPS", 9),
        right("DROP_PS", 9),
        right("RX_TOTAL", 12),
        right("TX_TOTAL", 12),
    ];
    let drops = |v: &serde_json::Value| {
        ["imissed", "ierrors", "rx_nombuf", "oerrors"]
            .iter()
            .map(|k| num(v, k))
            .sum::<u64>()
    };
    let rows = cur
        .iter()
        .map(|p| {
            let before = prev.iter().find(|q| q.get("port") == p.get("port"));
            let rate = |k: &str| per_sec(num(p, k), before.map_or(num(p, k), |b| num(b, k)), secs);
            let rx = rate("ipackets");
            let rx_mbps = rate("ibytes") * 8.0 / 1e6;
            let tx = rate("opackets");
            let tx_mbps = rate("obytes") * 8.0 / 1e6;
            let dr = per_sec(drops(p), before.map_or(drops(p), drops), secs);
            let (name, state) = (text(p, "name"), text(p, "state"));
            Row {
                cells: vec![
                    num(p, "port").to_string(),
                    name.clone(),
                    state.clone(),
                    format!("{rx:.1}"),
                    format!("{rx_mbps:.3}"),
                    format!("{tx:.1}"),
                    format!("{tx_mbps:.3}"),
                    format!("{dr:.1}"),
                    num(p, "ipackets").to_string(),
                    num(p, "opackets").to_string(),
                ],
                keys: vec![
                    Key::Id(num(p, "port")),
                    Key::Text(name),
                    Key::Text(state),
                    Key::Measure(rx),
                    Key::Measure(rx_mbps),
                    Key::Measure(tx),
                    Key::Measure(tx_mbps),
                    Key::Measure(dr),
                    Key::Measure(num(p, "ipackets") as f64),
                    Key::Measure(num(p, "opackets") as f64),
                ],
            }
        })
        .collect();
    Table {
        id: "ports".into(),
        title: format!("ports ({}), busiest first", cur.len()),
        heading: true,
        label: format!("ports ({})", cur.len()),
        cols: COLS,
        rows,
        sort: 3,
        footer: Vec::new(),
    }
}

/// A pipeline: the rates of its ports, then of its workers, with its drops by cause.
fn pipeline(p: &PipelineStats, old: Option<&PipelineStats>, secs: f64) -> [Table; 2] {
    const PORT_COLS: &[Col] = &[
        left("PORT", 6),
        right("RX_PPS", 12),
        right("RX_MBPS", 10),
        right("RX_TOTAL", 14),
    ];
    const WORKER_COLS: &[Col] = &[
        left("WORKER", 6),
        left("STATE", 8),
        left("PID", 7),
        right("RX_PPS", 12),
        right("RX_MBPS", 10),
        right("TX_PPS", 12),
        right("DROP_PS", 10),
        right("RING", 11),
        right("RX_TOTAL", 12),
        right("STARTS", 6),
        right("HEARTBEAT", 9),
    ];
    let title = format!(
        "pipeline {:?} {}, distributor pid {} ({}), {} workers",
        p.name,
        p.state,
        p.distributor_pid,
        p.distributor_liveness,
        p.workers.len()
    );
    let mut by_port: Vec<_> = p.ports.iter().collect();
    by_port.sort_by_key(|pc| pc.port);
    let port_rows = by_port
        .into_iter()
        .map(|pc| {
            let before = old.and_then(|q| q.ports.iter().find(|x| x.port == pc.port));
            let pps = per_sec(pc.rx, before.map_or(pc.rx, |b| b.rx), secs);
            let bps = per_sec(
                pc.rx_bytes,
                before.map_or(pc.rx_bytes, |b| b.rx_bytes),
                secs,
            );
            let mbps = bps * 8.0 / 1e6;
            Row {
                cells: vec![
                    pc.port.to_string(),
                    format!("{pps:.1}"),
                    format!("{mbps:.3}"),
                    pc.rx.to_string(),
                ],
                keys: vec![
                    Key::Id(pc.port as u64),
                    Key::Measure(pps),
                    Key::Measure(mbps),
                    Key::Measure(pc.rx as f64),
                ],
            }
        })
        .collect();
    let worker_rows = p
        .workers
        .iter()
        .map(|w| {
            let b = old.and_then(|q| q.workers.get(w.id));
            let rx = per_sec(w.rx, b.map_or(w.rx, |b| b.rx), secs);
            let bytes = per_sec(w.rx_bytes, b.map_or(w.rx_bytes, |b| b.rx_bytes), secs);
            let mbps = bytes * 8.0 / 1e6;
            let tx = per_sec(w.tx, b.map_or(w.tx, |b| b.tx), secs);
            let drops = |x: &WorkerStats| x.drop_ring_full + x.tx_drop;
            let dr = per_sec(drops(w), b.map_or(drops(w), drops), secs);
            let state = if w.live {
                "live"
            } else if w.stalled {
                "stalled"
            } else if w.liveness == "dead" {
                "dead"
            } else {
                "down"
            };
            let hb = w
                .heartbeat_age_ms
                .map_or("-".to_string(), |ms| format!("{ms}ms"));
            Row {
                cells: vec![
                    w.id.to_string(),
                    state.to_string(),
                    w.pid.to_string(),
                    format!("{rx:.1}"),
                    format!("{mbps:.3}"),
                    format!("{tx:.1}"),
                    format!("{dr:.1}"),
                    w.ring_count.to_string(),
                    w.rx.to_string(),
                    w.starts.to_string(),
                    hb,
                ],
                keys: vec![
                    Key::Id(w.id as u64),
                    Key::Text(state.to_string()),
                    Key::Id(w.pid),
                    Key::Measure(rx),
                    Key::Measure(mbps),
                    Key::Measure(tx),
                    Key::Measure(dr),
                    Key::Measure(w.ring_count as f64),
                    Key::Measure(w.rx as f64),
                    Key::Measure(w.starts as f64),
                    Key::Measure(w.heartbeat_age_ms.map_or(-1.0, |ms| ms as f64)),
                ],
            }
        })
        .collect();
    let rate = |f: fn(&PipelineStats) -> u64| per_sec(f(p), old.map_or(f(p), f), secs);
    let ring_full = |q: &PipelineStats| q.workers.iter().map(|w| w.drop_ring_full).sum::<u64>();
    let footer = vec![
        format!(
            "  drops/s: no_worker {:.1}, ring_full {:.1}, by_dispatcher {:.1}, bad_verdict {:.1}, copy_fail {:.1}, answer_fail {:.1}",
            rate(|q| q.drop_no_worker),
            rate(ring_full),
            rate(|q| q.drop_by_dispatcher),
            rate(|q| q.drop_bad_verdict),
            rate(|q| q.copy_fail),
            rate(|q| q.answer_fail),
        ),
        format!(
            "  totals: rx {} + copies {} = enqueued {} + dropped {} + answered {} (+ {} in flight); taken back {}",
            p.rx,
            p.neighbour_copies,
            p.enqueued(),
            p.dropped(),
            p.answered,
            p.unaccounted(),
            p.workers.iter().map(|w| w.taken_back).sum::<u64>()
        ),
    ];
    [
        Table {
            id: format!("pipeline {:?}", p.name),
            label: title.clone(),
            title,
            heading: true,
            cols: PORT_COLS,
            rows: port_rows,
            sort: 1,
            footer: Vec::new(),
        },
        Table {
            id: format!("workers {:?}", p.name),
            title: String::new(),
            heading: false,
            label: format!("workers of pipeline {:?} ({})", p.name, p.workers.len()),
            cols: WORKER_COLS,
            rows: worker_rows,
            sort: 3,
            footer,
        },
    ]
}

/// Rows of named objects with a part of a whole in use (rings, pools), by name.
fn usage_rows(objs: &[serde_json::Value], part: &str, whole: &str) -> Vec<Row> {
    let mut v: Vec<(String, u64, u64)> = objs
        .iter()
        .map(|r| (text(r, "name"), num(r, part), num(r, whole)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter()
        .map(|(name, part, whole)| Row {
            cells: vec![
                name.clone(),
                part.to_string(),
                whole.to_string(),
                format!("{:.1}%", percent(part, whole)),
            ],
            keys: vec![
                Key::Text(name),
                Key::Measure(part as f64),
                Key::Measure(whole as f64),
                Key::Measure(percent(part, whole)),
            ],
        })
        .collect()
}

fn rings(s: &Snapshot) -> Table {
    const COLS: &[Col] = &[
        left("NAME", 32),
        right("COUNT", 9),
        right("CAPACITY", 9),
        right("FILL", 6),
    ];
    Table {
        id: "rings".into(),
        title: format!("rings ({}), fullest first", s.rings.len()),
        heading: true,
        label: format!("rings ({})", s.rings.len()),
        cols: COLS,
        rows: usage_rows(&s.rings, "count", "capacity"),
        sort: 3,
        footer: Vec::new(),
    }
}

fn mempools(s: &Snapshot) -> Table {
    const COLS: &[Col] = &[
        left("NAME", 32),
        right("IN_USE", 9),
        right("SIZE", 9),
        right("USE", 6),
    ];
    Table {
        id: "mempools".into(),
        title: format!("mempools ({}), fullest first", s.mempools.len()),
        heading: true,
        label: format!("mempools ({})", s.mempools.len()),
        cols: COLS,
        rows: usage_rows(&s.mempools, "in_use", "size"),
        sort: 3,
        footer: Vec::new(),
    }
}

/// The processes of the group, with their liveness and CPU use.
fn processes(prev: &Sample, cur: &Sample, secs: f64) -> Table {
    const COLS: &[Col] = &[
        right("SLOT", 4),
        right("PID", 10),
        left("TYPE", 10),
        left("ALIVE", 8),
        right("CPU%", 6),
        left("LCORES", 12),
        right("HEARTBEAT", 10),
    ];
    let s = &cur.snap;
    let mut procs: Vec<&shoal::eal::ProcessInfo> = s.processes.iter().collect();
    procs.sort_by_key(|p| p.slot);
    let rows = procs
        .into_iter()
        .map(|p| {
            let cpu = match (cur.cpu.get(&p.pid), prev.cpu.get(&p.pid)) {
                (Some(&c), Some(&b)) => 100.0 * c.saturating_sub(b) as f64 / USER_HZ / secs,
                _ => f64::NAN,
            };
            let alive = match p.liveness {
                shoal::sync::Liveness::Alive => "yes",
                shoal::sync::Liveness::Dead => "no",
                shoal::sync::Liveness::Unknown => "unknown",
            };
            let lcores = p
                .lcores
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let pid = if p.same_pid_ns {
                p.pid.to_string()
            } else {
                format!("{}*", p.pid)
            };
            let cpu_text = if cpu.is_nan() {
                "-".to_string()
            } else {
                format!("{cpu:.1}")
            };
            Row {
                cells: vec![
                    p.slot.to_string(),
                    pid,
                    p.proc_type.to_string(),
                    alive.to_string(),
                    cpu_text,
                    lcores.clone(),
                    format!("{}ms", p.heartbeat_age_ms),
                ],
                keys: vec![
                    Key::Id(p.slot as u64),
                    Key::Id(u64::from(p.pid)),
                    Key::Text(p.proc_type.to_string()),
                    Key::Text(alive.to_string()),
                    Key::Measure(if cpu.is_nan() { -1.0 } else { cpu }),
                    Key::Text(lcores),
                    Key::Measure(p.heartbeat_age_ms as f64),
                ],
            }
        })
        .collect();
    Table {
        id: "processes".into(),
        title: format!("processes ({}), busiest first", s.processes.len()),
        heading: true,
        label: format!("processes ({})", s.processes.len()),
        cols: COLS,
        rows,
        sort: 4,
        footer: Vec::new(),
    }
}

/// The full-screen view on a terminal.
mod tui {
    use std::collections::HashMap;
    use std::io::Stdout;
    use std::time::{Duration, Instant};

    use ratatui::backend::CrosstermBackend;
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::crossterm::terminal::{
        disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
    };
    use ratatui::crossterm::{cursor, execute};
    use ratatui::layout::{Constraint, Layout, Rect};
    use ratatui::style::{Modifier, Style};
    use ratatui::text::{Line, Text};
    use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
    use ratatui::Terminal;

    use super::{frame, primary_alive, Frame, Opts, Sample};
    use shoal::eal::Eal;

    /// The terminal in raw mode on the alternate screen; dropping it restores the terminal.
    struct Screen {
        term: Terminal<CrosstermBackend<Stdout>>,
    }

    /// Leaves raw mode and the alternate screen and shows the cursor (harmless when already done).
    fn restore() {
        let _ = disable_raw_mode();
        let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
    }

    impl Screen {
        fn enter() -> std::io::Result<Screen> {
            // A panic restores the terminal before its message is printed, so that the message
            // is readable and the shell usable.
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
            enable_raw_mode()?;
            let screen = Screen {
                term: Terminal::new(CrosstermBackend::new(std::io::stdout()))?,
            };
            execute!(std::io::stdout(), EnterAlternateScreen, cursor::Hide)?;
            Ok(screen)
        }
    }

    impl Drop for Screen {
        fn drop(&mut self) {
            restore();
        }
    }

    /// What the user chose: the selected table, sort columns by table, pause.
    #[derive(Default)]
    struct View {
        selected: usize,
        sort: HashMap<String, usize>,
        paused: bool,
    }

    impl View {
        fn sort_of(&self, t: &super::Table) -> usize {
            self.sort.get(&t.id).copied().unwrap_or(t.sort)
        }
    }

    /// How the loop ended.
    enum End {
        Quit,
        Done,
        PrimaryGone,
    }

    pub(super) fn run(eal: &Eal, o: &Opts) -> i32 {
        // From here on SIGINT and SIGTERM only raise the flag the loop looks at (installed
        // before raw mode, so that no signal finds the terminal raw with nobody to restore it).
        let _ = shoal::eal::quit_requested();
        let mut screen = match Screen::enter() {
            Ok(s) => s,
            Err(e) => {
                restore();
                eprintln!("error: cannot set up the terminal: {e}");
                return 1;
            }
        };
        let end = event_loop(&mut screen, eal, o);
        drop(screen);
        match end {
            Ok(End::Quit | End::Done) => 0,
            Ok(End::PrimaryGone) => {
                eprintln!("the primary of {:?} has exited", o.group.prefix);
                1
            }
            Err(e) => {
                eprintln!("error: terminal: {e}");
                1
            }
        }
    }

    fn event_loop(screen: &mut Screen, eal: &Eal, o: &Opts) -> std::io::Result<End> {
        let mut view = View::default();
        let mut shown: Option<Frame> = None;
        let mut prev = Sample::take(eal);
        let mut next = Instant::now() + o.interval;
        let mut n = 0u64;
        loop {
            screen
                .term
                .draw(|f| draw(f, shown.as_ref(), &view, &o.group.prefix))?;
            if o.iterations.is_some_and(|max| n >= max) {
                return Ok(End::Done);
            }
            // SIGINT or SIGTERM from elsewhere (in raw mode, Ctrl-C is a key): leave as `q`
            // does, restoring the terminal.
            if shoal::eal::quit_requested() {
                return Ok(End::Quit);
            }
            let now = Instant::now();
            if now >= next {
                if !primary_alive(eal) {
                    return Ok(End::PrimaryGone);
                }
                let cur = Sample::take(eal);
                n += 1;
                let f = frame(&prev, &cur, n);
                prev = cur;
                if !view.paused || shown.is_none() {
                    shown = Some(f);
                }
                next = (next + o.interval).max(now);
                continue;
            }
            // Bounded, so that a stop request is seen soon.
            if !event::poll((next - now).min(Duration::from_millis(100)))? {
                continue;
            }
            // A resize needs nothing more than the redraw at the top of the loop.
            let Event::Key(k) = event::read()? else {
                continue;
            };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let tables = shown.as_ref().map_or(0, |f| f.tables.len());
            match k.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(End::Quit),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(End::Quit)
                }
                KeyCode::Char('p') => view.paused = !view.paused,
                KeyCode::Tab if tables > 0 => view.selected = (view.selected + 1) % tables,
                KeyCode::BackTab if tables > 0 => {
                    view.selected = (view.selected + tables - 1) % tables
                }
                KeyCode::Char('s') => {
                    if let Some(t) = shown.as_ref().and_then(|f| f.tables.get(view.selected)) {
                        if !t.cols.is_empty() {
                            let next = (view.sort_of(t) + 1) % t.cols.len();
                            view.sort.insert(t.id.clone(), next);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn draw(f: &mut ratatui::Frame<'_>, shown: Option<&Frame>, view: &View, prefix: &str) {
        let help = format!(
            "q quit   s sort   Tab select table   p {}",
            if view.paused {
                "resume (PAUSED)"
            } else {
                "pause"
            }
        );
        let Some(fr) = shown else {
            let text = format!(
                "shoal top: group {prefix:?}: the first rates come after one interval\n{help}"
            );
            f.render_widget(Paragraph::new(text), f.area());
            return;
        };
        let mut heights = vec![Constraint::Length(2)];
        for t in &fr.tables {
            // Borders, the header, the rows, the footer lines.
            let h = 3 + t.rows.len() + t.footer.len();
            heights.push(Constraint::Length(u16::try_from(h).unwrap_or(u16::MAX)));
        }
        heights.push(Constraint::Min(0));
        let areas = Layout::vertical(heights).split(f.area());
        f.render_widget(
            Paragraph::new(Text::from(vec![
                Line::from(fr.title.as_str()).style(Style::new().add_modifier(Modifier::BOLD)),
                Line::from(help),
            ])),
            areas[0],
        );
        let selected = view.selected.min(fr.tables.len().saturating_sub(1));
        for (i, t) in fr.tables.iter().enumerate() {
            table(f, areas[i + 1], t, view.sort_of(t), i == selected);
        }
    }

    fn table(
        f: &mut ratatui::Frame<'_>,
        area: Rect,
        t: &super::Table,
        sort: usize,
        selected: bool,
    ) {
        let mut title = format!(" {} ", t.label);
        if let Some(c) = t.cols.get(sort) {
            title.push_str(&format!("· sorted by {} ", c.name));
        }
        let mut block = Block::bordered().title(title);
        if selected {
            block =
                block.border_style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED));
        }
        let [rows_area, footer_area] = {
            let inner_footer = u16::try_from(t.footer.len()).unwrap_or(0);
            let v = Layout::vertical([Constraint::Min(0), Constraint::Length(inner_footer)])
                .split(area);
            [v[0], v[1]]
        };
        let cell = |text: &str, c: &super::Col| {
            let line = Line::from(text.to_string());
            Cell::from(if c.left { line } else { line.right_aligned() })
        };
        let header = Row::new(t.cols.iter().enumerate().map(|(i, c)| {
            let style = if i == sort {
                Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            } else {
                Style::new().add_modifier(Modifier::BOLD)
            };
            cell(c.name, c).style(style)
        }));
        let rows = t
            .sorted(sort)
            .into_iter()
            .map(|r| Row::new(r.cells.iter().zip(t.cols).map(|(s, c)| cell(s, c))));
        let widths = t
            .cols
            .iter()
            .map(|c| Constraint::Length(u16::try_from(c.width.max(c.name.len())).unwrap_or(0)));
        f.render_widget(
            Table::new(rows, widths).header(header).block(block),
            rows_area,
        );
        if !t.footer.is_empty() {
            let lines: Vec<Line<'_>> = t.footer.iter().map(|l| Line::from(l.trim())).collect();
            f.render_widget(Paragraph::new(lines), footer_area);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sut() -> Table {
        const COLS: &[Col] = &[left("NAME", 6), right("ID", 3), right("RATE", 6)];
        let row = |name: &str, id: u64, rate: f64| Row {
            cells: vec![name.to_string(), id.to_string(), format!("{rate:.1}")],
            keys: vec![Key::Text(name.into()), Key::Id(id), Key::Measure(rate)],
        };
        Table {
            id: "t".into(),
            title: "t (3), busiest first".into(),
            heading: true,
            label: "t (3)".into(),
            cols: COLS,
            rows: vec![row("b", 2, 5.0), row("c", 1, 9.0), row("a", 3, 5.0)],
            sort: 2,
            footer: vec!["  end".into()],
        }
    }

    fn names(rows: Vec<&Row>) -> Vec<&str> {
        rows.iter().map(|r| r.cells[0].as_str()).collect()
    }

    #[test]
    fn measures_sort_largest_first_and_ties_keep_the_base_order() {
        assert_eq!(names(sut().sorted(2)), ["c", "b", "a"]);
    }

    #[test]
    fn ids_and_names_sort_in_ascending_order() {
        assert_eq!(names(sut().sorted(1)), ["c", "b", "a"]);
        assert_eq!(names(sut().sorted(0)), ["a", "b", "c"]);
    }

    #[test]
    fn plain_text_has_the_title_the_aligned_columns_and_the_footer() {
        let f = Frame {
            title: "shoal top: x".into(),
            tables: vec![sut()],
        };
        assert_eq!(
            f.plain(),
            "shoal top: x\n\nt (3), busiest first\n  NAME    ID   RATE\n  c        1    9.0\n  b        2    5.0\n  a        3    5.0\n  end\n"
        );
    }
}
