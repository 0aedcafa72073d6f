//! `shoal demo`: the main job. Starts a server and N clients (the same code as the `mp_server`
//! and `mp_client` binaries, run as `shoal mp_server` / `shoal mp_client` child processes) on
//! generator ports, shows live statistics, and after `--duration` (or Ctrl-C) stops them
//! gracefully and prints a summary. `--kill-client` kills a client with SIGKILL halfway and
//! starts it again with the same id: the summary shows that no buffer was lost.
//! `--kill-server[=N]` kills the server with SIGKILL N times (default 1), evenly spread over
//! the run, and starts `mp_server --adopt` each time: the clients (started with
//! `--primary-grace`) keep running, and the summary gives the pause from each kill to the new
//! server's first forwarded burst (p50, p99, max).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal::dispatch::{self, PipelineStats};
use shoal::eal::Eal;
use shoal::mbuf::MbufPool;
use shoal_apps::cs;

/// `shoal demo`'s options.
#[derive(clap::Parser, Debug)]
#[command(
    args_override_self = true,
    about = "The main job: mp_server and N mp_client processes forwarding generated traffic",
    long_about = "Starts mp_server and N mp_client processes forwarding generated traffic (two net_gen \
ports unless --vdev is given), prints live statistics every second, and after --duration \
seconds or Ctrl-C stops them and prints a summary. --kill-server kills the server with SIGKILL \
(N times, spread over the run) and starts mp_server --adopt, which takes the live group over: the \
clients carry on."
)]
struct Opts {
    /// Number of clients
    #[arg(short = 'n', long, value_name = "N", default_value_t = 2, value_parser = shoal_apps::args::num::<usize>)]
    clients: usize,
    /// How long to run
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = shoal_apps::args::secs, allow_negative_numbers = true)]
    duration: Duration,
    /// How the server spreads packets: rr, flow or prio:DSCP=CLIENT,...
    #[arg(long, value_name = "DIST", default_value = "rr")]
    dist: String,
    /// Kill one client with SIGKILL halfway through and restart it
    #[arg(long)]
    kill_client: bool,
    /// Kill the server with SIGKILL N times (default 1), spread over the run, and adopt the
    /// group with a new mp_server --adopt each time
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_value_t = 0, default_missing_value = "1", value_parser = shoal_apps::args::num::<usize>)]
    kill_server: usize,
    /// A port for the server instead of the generators (repeatable)
    #[arg(long = "vdev", value_name = "SPEC")]
    vdevs: Vec<String>,
    /// Shared memory in /dev/shm rather than huge pages
    #[arg(long)]
    no_huge: bool,
    /// The group's file prefix (default: shoal-demo-PID)
    #[arg(long = "file-prefix", value_name = "P")]
    prefix: Option<String>,
    /// Print only the summary
    #[arg(long)]
    quiet: bool,
    /// Let the server drop at a full client ring, as DPDK's client_server_mp does, instead of
    /// receiving only what the clients sustain
    #[arg(long)]
    drop_when_full: bool,
}

impl Opts {
    fn prefix(&self) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("shoal-demo-{}", std::process::id()))
    }
}

fn check(o: &Opts) -> Result<(), String> {
    if o.kill_server > 10_000 {
        return Err(format!(
            "invalid --kill-server={} (1 to 10000)",
            o.kill_server
        ));
    }
    if o.clients == 0 || o.clients > cs::MAX_CLIENTS {
        return Err(format!("--clients must be 1 to {}", cs::MAX_CLIENTS));
    }
    // What the server would refuse is refused here, before anything starts.
    shoal::eal::parse_args(&server_args(o)).map_err(|e| e.to_string())?;
    dispatch::from_spec(&o.dist, o.clients).map_err(|e| format!("--dist: {e}"))?;
    Ok(())
}

struct Procs {
    server: Child,
    clients: Vec<Child>,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self
            .clients
            .iter_mut()
            .chain(std::iter::once(&mut self.server))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "shoal".into())
}

fn eal_args(o: &Opts, lcore: usize, secondary: bool) -> Vec<String> {
    let mut v = vec![
        "-l".to_string(),
        lcore.to_string(),
        "--file-prefix".into(),
        o.prefix(),
        "--log-level".into(),
        "warning".into(),
    ];
    if secondary {
        v.push("--proc-type=secondary".into());
        if o.kill_server > 0 {
            // The clients wait for the adopting server instead of exiting.
            v.extend(["--primary-grace".into(), "30000".into()]);
        }
    } else {
        if o.no_huge {
            v.push("--no-huge".into());
        }
        for d in &o.vdevs {
            v.push("--vdev".into());
            v.push(d.clone());
        }
    }
    v
}

/// The server's command line (program name first).
fn server_args(o: &Opts) -> Vec<String> {
    let mut sargs = vec!["mp_server".to_string()];
    sargs.extend(eal_args(o, 0, false));
    sargs.extend([
        "--".into(),
        "-n".into(),
        o.clients.to_string(),
        "--dist".into(),
        o.dist.clone(),
        "--stats-interval".into(),
        "0".into(),
    ]);
    if !o.drop_when_full {
        sargs.push("--backpressure".into());
    }
    sargs
}

fn spawn_server(args: &[String]) -> std::io::Result<Child> {
    Command::new(exe())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
}

/// The server's command line with `--adopt` among its EAL options.
fn adopting(sargs: &[String]) -> Vec<String> {
    let mut v = sargs.to_vec();
    let at = v.iter().position(|a| a == "--").unwrap_or(v.len());
    v.insert(at, "--adopt".into());
    v
}

fn spawn_client(o: &Opts, id: usize) -> std::io::Result<Child> {
    let mut args = vec!["mp_client".to_string()];
    args.extend(eal_args(o, id + 1, true));
    args.extend([
        "--".into(),
        "-n".into(),
        id.to_string(),
        "--top".into(),
        "0".into(),
    ]);
    Command::new(exe())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
}

pub(crate) fn run(args: &[String]) -> i32 {
    let mut o: Opts = match crate::parse_cmd("demo", args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    o.prefix = Some(o.prefix());
    if let Err(e) = check(&o) {
        eprintln!("error: {e}\n\n{}", crate::usage_of::<Opts>("demo"));
        return 2;
    }
    match demo(&o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal demo: {e}");
            1
        }
    }
}

fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} did not happen within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn demo(o: &Opts) -> Result<(), String> {
    // Ctrl-C reaches the children too (same terminal); we notice it and summarise.
    shoal::eal::quit_requested();
    let sargs = server_args(o);
    let server = spawn_server(&sargs).map_err(|e| format!("cannot start the server: {e}"))?;
    let mut procs = Procs {
        server,
        clients: Vec::new(),
    };
    println!(
        "shoal demo: file prefix {:?}, server pid {}",
        o.prefix(),
        procs.server.id()
    );
    let eal = wait_until("the server start", Duration::from_secs(10), || {
        if let Ok(Some(st)) = procs.server.try_wait() {
            return Some(Err(format!("the server exited at start ({st})")));
        }
        let eal = Eal::inspect(&o.prefix()).ok()?;
        pipeline(&eal).map(|_| Ok(eal))
    })??;
    // The server's counters (shoal::dispatch), as `shoal info` reads them.
    let info = || pipeline(&eal).unwrap_or_default();
    let live = |c: usize| info().workers.get(c).is_some_and(|w| w.live);
    let pool = MbufPool::lookup(&eal, cs::MBUF_POOL_NAME).map_err(|e| e.to_string())?;
    let baseline = pool.in_use_count();
    for id in 0..o.clients {
        procs
            .clients
            .push(spawn_client(o, id).map_err(|e| format!("cannot start client {id}: {e}"))?);
    }
    wait_until("all clients connecting", Duration::from_secs(10), || {
        (0..o.clients).all(live).then_some(())
    })?;
    println!(
        "{} clients connected; forwarding for {:.0} s (Ctrl-C to stop early)",
        o.clients,
        o.duration.as_secs_f64()
    );
    let pids = |p: &Procs| {
        std::iter::once(p.server.id())
            .chain(p.clients.iter().map(Child::id))
            .collect::<Vec<u32>>()
    };
    let mut cpu = CpuMeter::default();
    cpu.sample(&pids(&procs));
    let start = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut killed = false;
    let mut restarted_at: Option<Instant> = None;
    let victim = if o.clients > 1 { 1 } else { 0 };
    let client_pids: Vec<u32> = procs.clients.iter().map(Child::id).collect();
    let mut server_kills = 0usize;
    let mut pauses: Vec<u64> = Vec::new();
    while start.elapsed() < o.duration && !shoal::eal::quit_requested() {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(st)) = procs.server.try_wait() {
            return Err(format!("the server exited early ({st})"));
        }
        if o.kill_client && !killed && start.elapsed() >= o.duration / 2 {
            killed = true;
            let c = &mut procs.clients[victim];
            println!(">>> killing client {victim} (pid {}) with SIGKILL", c.id());
            let _ = c.kill();
            let _ = c.wait();
            wait_until(
                "the server noticing the dead client",
                Duration::from_secs(5),
                || (!live(victim)).then_some(()),
            )?;
            println!(">>> the server took client {victim} out of the rotation; restarting it");
            procs.clients[victim] = spawn_client(o, victim).map_err(|e| e.to_string())?;
            restarted_at = Some(Instant::now());
        }
        if server_kills < o.kill_server
            && start.elapsed()
                >= o.duration * (server_kills as u32 + 1) / (o.kill_server as u32 + 1)
        {
            server_kills += 1;
            let adoptions = info().adoptions;
            let old = procs.server.id();
            let kill_ns = shoal::eal::monotonic_ns();
            let _ = procs.server.kill();
            let _ = procs.server.wait();
            procs.server = spawn_server(&adopting(&sargs))
                .map_err(|e| format!("cannot start the adopting server: {e}"))?;
            let first = wait_until(
                "the adopting server forwarding",
                Duration::from_secs(15),
                || {
                    if let Ok(Some(st)) = procs.server.try_wait() {
                        return Some(Err(format!("the adopting server exited ({st})")));
                    }
                    let p = info();
                    let t = p.adopted_first_burst_ns;
                    (p.adoptions > adoptions && t > kill_ns).then_some(Ok(t))
                },
            )??;
            let pause = first - kill_ns;
            pauses.push(pause);
            if !o.quiet || o.kill_server <= 10 {
                println!(
                    ">>> server {old} killed with SIGKILL; pid {} adopted the group; forwarding paused {:.1} ms (kill to first forwarded burst)",
                    procs.server.id(),
                    pause as f64 / 1e6
                );
            }
        }
        if let Some(t) = restarted_at {
            if live(victim) {
                println!(
                    ">>> client {victim} is back ({:.0} ms after restart)",
                    t.elapsed().as_secs_f64() * 1e3
                );
                restarted_at = None;
            }
        }
        if last.0.elapsed() >= Duration::from_secs(1) {
            let p = info();
            let (rx, tx) = totals(&p);
            let dt = last.0.elapsed().as_secs_f64();
            let cpus = cpu.sample(&pids(&procs)) as f64 / crate::top::USER_HZ / dt;
            if !o.quiet {
                let per: Vec<String> = p
                    .workers
                    .iter()
                    .map(|w| {
                        format!(
                            "c{} {}{}",
                            w.id,
                            human(w.tx),
                            if w.live { "" } else { " (down)" }
                        )
                    })
                    .collect();
                let out = (tx - last.2) as f64 / dt / 1e6;
                println!(
                    "[{:>4.0}s] in {:>7.3} Mpps  out {:>7.3} Mpps  on {:.2} CPUs ({:.2} Mpps per CPU)  dropped {:>9}  pool in use {:>6}  | {}",
                    start.elapsed().as_secs_f64(),
                    (rx - last.1) as f64 / dt / 1e6,
                    out,
                    cpus,
                    if cpus > 0.0 { out / cpus } else { 0.0 },
                    dropped(&p),
                    pool.in_use_count(),
                    per.join("  ")
                );
            }
            last = (Instant::now(), rx, tx);
        }
    }
    let elapsed = start.elapsed();
    cpu.sample(&pids(&procs));
    let same_clients = procs
        .clients
        .iter_mut()
        .zip(&client_pids)
        .all(|(c, pid)| c.id() == *pid && matches!(c.try_wait(), Ok(None)));
    println!("stopping: SIGINT to the server; clients drain their rings and leave");
    let _ = shoal::eal::send_signal(procs.server.id(), libc::SIGINT);
    let code = wait_child(&mut procs.server, Duration::from_secs(15))?;
    for (id, c) in procs.clients.iter_mut().enumerate() {
        let cc = wait_child(c, Duration::from_secs(10))?;
        if cc != Some(0) {
            println!("client {id} exited with {cc:?}");
        }
    }
    let p = info();
    let (rx, tx) = totals(&p);
    let in_use = pool.in_use_count();
    println!("\n==== shoal demo summary ====");
    println!(
        "duration        {:.1} s, {} clients, dist {}",
        elapsed.as_secs_f64(),
        o.clients,
        o.dist
    );
    println!(
        "received        {rx} packets ({:.3} Mpps)",
        rx as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "forwarded       {tx} packets ({:.3} Mpps)",
        tx as f64 / elapsed.as_secs_f64() / 1e6
    );
    let cpu_secs = cpu.total as f64 / crate::top::USER_HZ;
    if cpu_secs > 0.0 {
        println!(
            "cpu             {:.2} CPUs busy on average ({} processes); {:.3} Mpps forwarded per CPU",
            cpu_secs / elapsed.as_secs_f64(),
            1 + o.clients,
            tx as f64 / cpu_secs / 1e6
        );
    }
    println!(
        "receive         {}",
        if o.drop_when_full {
            "as fast as the ports deliver; a full client ring drops (--drop-when-full)"
        } else {
            "while every client's ring has room (backpressure): the rate is what the clients sustain"
        }
    );
    let copies = p.neighbour_copies;
    let drops = dropped(&p);
    let flushed: u64 = p.workers.iter().map(|w| w.taken_back).sum();
    println!(
        "broadcast       {} ARP/ND frames copied to every client ({copies} extra copies)",
        p.neighbour_frames
    );
    println!(
        "dropped         {drops} (client ring full {}, no live client {}, copy failed {}, port refused {})",
        p.workers.iter().map(|w| w.drop_ring_full).sum::<u64>(),
        p.drop_no_worker,
        p.copy_fail,
        p.workers.iter().map(|w| w.tx_drop).sum::<u64>()
    );
    println!(
        "taken back      {flushed} (left in the rings of departed clients, returned to the pool)"
    );
    // Copies that failed were never made: they are in `drops` but not in `copies`.
    let failed = p.copy_fail;
    let crashed = (rx + copies).saturating_sub(tx + drops.saturating_sub(failed) + flushed);
    println!(
        "in killed hands {crashed} (held by killed processes; returned to the pool by the reaper)"
    );
    for w in &p.workers {
        println!(
            "client {:<2}       rx {:>12}  tx {:>12}  tx_drop {:>6}  starts {}",
            w.id, w.rx, w.tx, w.tx_drop, w.starts
        );
    }
    if !pauses.is_empty() {
        let mut p = pauses.clone();
        p.sort_unstable();
        let q = |f: f64| p[((p.len() - 1) as f64 * f).round() as usize] as f64 / 1e6;
        println!(
            "server kills    {}: forwarding paused p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (kill to the adopting server's first forwarded burst); clients {}",
            p.len(),
            q(0.5),
            q(0.99),
            q(1.0),
            if same_clients {
                "never restarted (same pids)"
            } else {
                "RESTARTED"
            }
        );
    }
    println!(
        "mbuf pool       {} in use at the end (baseline {baseline}){}",
        in_use,
        if in_use <= baseline {
            " — no buffer lost"
        } else {
            " — BUFFERS MISSING"
        }
    );
    if code != Some(0) {
        return Err(format!("the server exited with {code:?}"));
    }
    if !pauses.is_empty() && !same_clients {
        return Err("a client restarted while the server was killed and adopted".into());
    }
    if in_use > baseline {
        return Err(format!(
            "{} buffers were not returned to the pool",
            in_use - baseline
        ));
    }
    Ok(())
}

/// CPU time of the group's processes, from `/proc/<pid>/stat`: what forwarding costs, so that
/// the rate per CPU shows what a user can expect (the processes of a 2-CPU machine share it).
#[derive(Default)]
struct CpuMeter {
    /// Last reading per pid (processes restarted under a new pid start from 0).
    last: std::collections::HashMap<u32, u64>,
    /// Ticks counted since the first reading.
    total: u64,
}

impl CpuMeter {
    /// Ticks the processes `pids` used since the last reading.
    fn sample(&mut self, pids: &[u32]) -> u64 {
        let mut d = 0;
        for &pid in pids {
            if let Some(t) = crate::top::cpu_ticks(pid) {
                let prev = self.last.insert(pid, t);
                d += t.saturating_sub(prev.unwrap_or(t));
            }
        }
        self.total += d;
        d
    }
}

/// The server's pipeline (`None` until the server has published it).
fn pipeline(eal: &Eal) -> Option<PipelineStats> {
    dispatch::list(eal)
        .into_iter()
        .find(|p| p.name == cs::PIPELINE)
}

/// Packets received from the ports, and forwarded by the clients.
fn totals(p: &PipelineStats) -> (u64, u64) {
    (p.rx, p.workers.iter().map(|w| w.tx).sum())
}

/// Every drop: the server's (copies that failed among them) and the ports' refusals.
fn dropped(p: &PipelineStats) -> u64 {
    p.dropped() + p.copy_fail + p.workers.iter().map(|w| w.tx_drop).sum::<u64>()
}

fn human(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

fn wait_child(c: &mut Child, timeout: Duration) -> Result<Option<i32>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match c.try_wait() {
            Ok(Some(st)) => return Ok(st.code()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = c.kill();
                return Err(format!(
                    "process {} did not exit within {timeout:?}; killed",
                    c.id()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
