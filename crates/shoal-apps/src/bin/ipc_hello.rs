//! ipc_hello: lesson 8's IPC hello pair, on shoal's `rte_mp` counterpart.
//!
//! The primary registers `hello_request` (answered by sync requests) and `hello_async_req`
//! (answered by async requests) and counts the requests in a shared memzone. A secondary sends a
//! sync request every 3 s and an async one every 5 s and prints the replies. Several
//! secondaries may run at once.

use std::time::{Duration, Instant};

use shoal::eal::{Eal, ProcType};
use shoal::memzone::Memzone;
use shoal::mp::{Message, Mp};
use shoal_apps::args::Opts;
use shoal_apps::{bump, get, Lines};

/// The sync request's name (lesson 8's `MSG_HELLO_REQUEST`).
const MSG_HELLO_REQUEST: &str = "hello_request";
/// The async request's name (`MSG_HELLO_ASYNC_REQUEST`).
const MSG_HELLO_ASYNC_REQUEST: &str = "hello_async_req";
/// The shared counters (lesson 8's `struct shared_info`).
const MZ_SHARED_INFO: &str = "ipc_shared_info";
/// Counter indices in the shared line.
const REQUEST_COUNT: usize = 0;
const ASYNC_REQUEST_COUNT: usize = 1;

const USAGE: &str = "\
ipc_hello options (primary = server, secondary = client):
  --sync-interval SECS    client: seconds between sync requests (default 3)
  --async-interval SECS   client: seconds between async requests (default 5)
  --count N               client: stop after N of each (default: run until SIGINT)
  --timeout MS            client: request timeout (default 5000)
  --stats-interval SECS   server: seconds between statistics lines (default 3)";

struct Config {
    sync_every: Duration,
    async_every: Duration,
    count: Option<u64>,
    timeout: Duration,
    stats_every: Duration,
}

fn parse(args: &[String]) -> Result<Config, String> {
    let mut c = Config {
        sync_every: Duration::from_secs(3),
        async_every: Duration::from_secs(5),
        count: None,
        timeout: Duration::from_secs(5),
        stats_every: Duration::from_secs(3),
    };
    let mut o = Opts::new(args);
    while let Some(opt) = o.next_opt()? {
        match opt.as_str() {
            "--sync-interval" => c.sync_every = o.secs("--sync-interval")?,
            "--async-interval" => c.async_every = o.secs("--async-interval")?,
            "--count" => c.count = Some(o.num("--count")?),
            "--timeout" => c.timeout = Duration::from_millis(o.num("--timeout")?),
            "--stats-interval" => c.stats_every = o.secs("--stats-interval")?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(c)
}

fn main() {
    let (eal, cfg) = shoal_apps::args::init(std::env::args().collect(), USAGE, parse);
    let r = match eal.proc_type() {
        ProcType::Primary => server(&eal, &cfg),
        ProcType::Secondary => client(&eal, &cfg),
    };
    if let Err(e) = r {
        eprintln!("ipc_hello: {e}");
        std::process::exit(1);
    }
}

fn mp(eal: &Eal) -> Result<&Mp, String> {
    eal.mp().ok_or_else(|| "no IPC channel".to_string())
}

/// A message's text (up to a NUL, as the lesson's C strings), escaped for the terminal: the
/// bytes come from another process.
fn text(m: &Message) -> String {
    let p = m.param();
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    shoal_apps::printable(&p[..end])
}

fn server(eal: &Eal, cfg: &Config) -> Result<(), String> {
    let mz = Memzone::reserve_aligned(eal, MZ_SHARED_INFO, Lines::bytes(1), Lines::ALIGN)
        .map_err(|e| e.to_string())?;
    let counters = Lines::new(mz).map_err(|e| e.to_string())?;
    let mp = mp(eal)?;
    for (name, tag, idx) in [
        (MSG_HELLO_REQUEST, "SYNC", REQUEST_COUNT),
        (MSG_HELLO_ASYNC_REQUEST, "ASYNC", ASYNC_REQUEST_COUNT),
    ] {
        let counters = counters.clone();
        mp.action_register(name, move |msg, peer| {
            let got = text(&msg);
            println!("[{tag}] Received: {got}");
            // One writer: the IPC thread runs actions one at a time.
            bump(&counters.line(0)[idx], 1);
            let answer = format!("Server {tag} reply: Got '{got}'");
            match Message::new(msg.name(), answer.as_bytes()) {
                Ok(reply) => {
                    if let Err(e) = peer.reply(&reply) {
                        eprintln!("[{tag}] reply failed: {e}");
                    }
                }
                Err(e) => eprintln!("[{tag}] cannot build the reply: {e}"),
            }
        })
        .map_err(|e| format!("cannot register {name}: {e}"))?;
    }
    println!("server ready: actions {MSG_HELLO_REQUEST}, {MSG_HELLO_ASYNC_REQUEST}");
    let mut last = Instant::now();
    while !eal.should_quit() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= cfg.stats_every {
            last = Instant::now();
            println!(
                "[Server] handled sync requests: {}, async requests: {}",
                get(&counters.line(0)[REQUEST_COUNT]),
                get(&counters.line(0)[ASYNC_REQUEST_COUNT])
            );
        }
    }
    println!(
        "[Server] final: sync requests {}, async requests {}",
        get(&counters.line(0)[REQUEST_COUNT]),
        get(&counters.line(0)[ASYNC_REQUEST_COUNT])
    );
    mp.action_unregister(MSG_HELLO_REQUEST);
    mp.action_unregister(MSG_HELLO_ASYNC_REQUEST);
    Ok(())
}

fn client(eal: &Eal, cfg: &Config) -> Result<(), String> {
    // The lesson looks the shared memzone up; so do we, to fail clearly against a wrong primary.
    Memzone::lookup(eal, MZ_SHARED_INFO).map_err(|_| {
        "the primary is not an ipc_hello server (no shared info memzone)".to_string()
    })?;
    let mp = mp(eal)?.clone();
    let me = std::process::id();
    let (mut n_sync, mut n_async) = (0u64, 0u64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut next_sync = Instant::now();
    let mut next_async = Instant::now() + Duration::from_millis(200);
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut failures = 0u64;
    while !eal.should_quit() && (n_sync < limit || n_async < limit) {
        let now = Instant::now();
        if n_sync < limit && now >= next_sync {
            n_sync += 1;
            next_sync = now + cfg.sync_every;
            let req = Message::new(
                MSG_HELLO_REQUEST,
                format!("SYNC Hello {n_sync} from Client {me}").as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            match mp.request_sync(&req, cfg.timeout) {
                Ok(reply) if reply.nb_received > 0 => {
                    println!("[SYNC] Reply: {}", text(&reply.msgs[0]))
                }
                Ok(reply) => {
                    failures += 1;
                    println!("[SYNC] no reply ({} sent)", reply.nb_sent);
                }
                Err(e) => {
                    failures += 1;
                    println!("[SYNC] request failed: {e}");
                }
            }
        }
        if n_async < limit && now >= next_async {
            n_async += 1;
            next_async = now + cfg.async_every;
            let req = Message::new(
                MSG_HELLO_ASYNC_REQUEST,
                format!("ASYNC Hello {n_async} from Client {me}").as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            let done = done_tx.clone();
            let sent = mp.request_async(&req, cfg.timeout, move |r| {
                println!("[ASYNC] Callback called");
                match r {
                    Ok(reply) => {
                        for m in &reply.msgs {
                            println!("[ASYNC] Reply: {}", text(m));
                        }
                    }
                    Err(e) => println!("[ASYNC] request failed: {e}"),
                }
                let _ = done.send(());
            });
            match sent {
                Ok(()) => println!("[ASYNC] Request sent"),
                Err(e) => {
                    failures += 1;
                    println!("[ASYNC] could not send: {e}");
                    let _ = done_tx.send(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every async callback runs exactly once: wait for the outstanding ones (bounded).
    let deadline = Instant::now() + cfg.timeout + Duration::from_secs(1);
    for _ in 0..n_async {
        if done_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }
    println!("[Client] sent {n_sync} sync and {n_async} async requests, {failures} failed");
    Ok(())
}
