//! Kills at random: mp_server forwards generated traffic to three clients while a random client
//! is SIGKILLed at a random moment (during its start-up too) and started again with the same
//! id, over and over. After every kill the server must keep forwarding; at the end every buffer
//! is back in the pool and every counter conserves.
//!
//! `SHOAL_CHAOS_KILLS=N` sets the number of kills (default 120, what CI runs); the longer run
//! the README gives is `SHOAL_CHAOS_KILLS=1000 cargo test --release -p shoal-apps --test chaos
//! -- --nocapture`.

use std::time::{Duration, Instant};

use shoal_testkit::{Group, Proc};

const T: Duration = Duration::from_secs(30);
const SERVER: &str = env!("CARGO_BIN_EXE_mp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_mp_client");
const CLIENTS: usize = 3;

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn client(g: &Group, id: usize) -> Proc {
    let lcore = (id + 1).to_string();
    let ids = id.to_string();
    g.spawn(
        CLIENT,
        &["-l", &lcore, "--proc-type=secondary", "--", "-n", &ids],
    )
}

/// mp_server on two generator ports at a modest rate, with `app` options after the common ones.
fn server(g: &Group, app: &[&str]) -> Proc {
    let mut args = vec![
        "-l",
        "0",
        "--no-huge",
        "-m",
        "64",
        "--vdev",
        "net_gen0,flows=64,rate=200000",
        "--vdev",
        "net_gen1,flows=64,rate=200000",
        "--",
        "--stats-interval",
        "100",
        "--mbufs",
        "8191",
        "--ring-size",
        "512",
    ];
    args.extend_from_slice(app);
    g.spawn(SERVER, &args)
}

fn final_line(out: &str) -> Vec<u64> {
    let l = out
        .lines()
        .find(|l| l.starts_with("Final:"))
        .unwrap_or_else(|| panic!("no Final line:\n{out}"));
    let words: Vec<&str> = l.split_whitespace().collect();
    [
        "received",
        "copies",
        "delivered",
        "dropped",
        "clients",
        "use",
    ]
    .iter()
    .map(|k| {
        let i = words.iter().position(|w| w == k).unwrap();
        words[i + 1].trim_end_matches([';', ',']).parse().unwrap()
    })
    .collect()
}

#[test]
fn random_kills_of_clients_lose_no_buffer_and_never_wedge_the_server() {
    let kills: usize = std::env::var("SHOAL_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed:#x}, {kills} kills");
    let mut rng = Rng(seed);
    let g = Group::new("chaos");
    let n = CLIENTS.to_string();
    let mut s = server(&g, &["-n", &n, "--dist", "flow", "--client-timeout", "300"]);
    s.wait_for("server ready", T);
    let mut clients: Vec<Proc> = (0..CLIENTS).map(|c| client(&g, c)).collect();
    s.wait_for(&format!("Client process {} connected", CLIENTS - 1), T);
    let mut recoveries = Vec::with_capacity(kills);
    for k in 0..kills {
        let c = rng.below(CLIENTS as u64) as usize;
        // Anywhere from mid start-up to well into forwarding.
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        clients[c].kill9();
        let t0 = Instant::now();
        // The server keeps forwarding: two more statistics lines (each a full round of the
        // main loop) show up, or the watchdog fails the test.
        let lines = s
            .output()
            .lines()
            .filter(|l| l.starts_with("Total:"))
            .count();
        s.wait_for_nth("Total:", lines + 2, T);
        recoveries.push(t0.elapsed());
        if rng.below(4) != 0 {
            // Most of the time straight back; sometimes after the server noticed.
            std::thread::sleep(Duration::from_millis(rng.below(50)));
        }
        clients[c] = client(&g, c);
        if k % 20 == 19 {
            println!("{} kills", k + 1);
        }
    }
    // Let the last restarts connect, then stop the group cleanly.
    for c in clients.iter_mut() {
        c.wait_for("handling packets", T);
    }
    let (code, sout) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "server:\n{sout}");
    for c in clients.iter_mut() {
        let code = c.wait_exit(T);
        assert_eq!(code, Some(0), "client:\n{}", c.output());
    }
    let v = final_line(&sout);
    let (rx, copies, delivered, dropped, flushed, in_use) = (v[0], v[1], v[2], v[3], v[4], v[5]);
    assert!(rx > 0);
    assert_eq!(
        rx + copies,
        delivered + dropped,
        "counters conserve:\n{sout}"
    );
    assert_eq!(
        in_use, 0,
        "every buffer came back after {kills} kills:\n{sout}"
    );
    assert!(!sout.contains("no mbuf in flight"), "{sout}");
    recoveries.sort();
    println!(
        "{kills} kills: 0 hangs, 0 buffers lost, {flushed} packets taken back from dead clients' rings; server forwarding again after p50 {:?}, p99 {:?}, max {:?}",
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() * 99 / 100],
        recoveries[recoveries.len() - 1]
    );
}

/// Clients SIGKILLed 1 to 80 ms after they start (while they join the group, claim their ring
/// and fill their caches), fifteen times: the server ends with every buffer back.
#[test]
fn clients_killed_during_start_up_lose_no_buffer() {
    let g = Group::new("chaos-start");
    let mut s = server(&g, &["-n", "1"]);
    s.wait_for("server ready", T);
    for k in 0..15u64 {
        let mut c = client(&g, 0);
        std::thread::sleep(Duration::from_millis(1 + (k * 37) % 80));
        c.kill9();
    }
    let mut c = client(&g, 0);
    c.wait_for("handling packets", T);
    let (code, sout) = s.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "server:\n{sout}");
    assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
    let v = final_line(&sout);
    assert_eq!(v[0] + v[1], v[2] + v[3], "counters conserve:\n{sout}");
    assert_eq!(v[5], 0, "buffers lost at start-up:\n{sout}");
}
