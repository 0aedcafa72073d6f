//! simple_mp: DPDK's simplest multi-process sample (lesson 7, lab 1).
//!
//! The same binary is primary or secondary (`--proc-type`). The primary creates two rings,
//! `PRI_2_SEC` and `SEC_2_PRI`, and a message pool `MSG_POOL`; the secondary looks them up. Each
//! process reads commands from stdin (a terminal or a pipe): `send <text>` puts a message from
//! the pool on its outgoing ring, `quit` (or end of input) leaves. A receiver thread prints
//! `core <lcore>: Received '<text>'` for every message that arrives.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shoal::eal::{Eal, ProcType};
use shoal::mempool::{Mempool, MempoolConfig, ObjIdx};
use shoal::ring::{Ring, RingConfig};
use shoal::sync::Backoff;

const PRI_2_SEC: &str = "PRI_2_SEC";
const SEC_2_PRI: &str = "SEC_2_PRI";
const MSG_POOL: &str = "MSG_POOL";
/// DPDK's STR_TOKEN_SIZE: a message holds at most 127 bytes of text and a NUL.
const STR_TOKEN_SIZE: usize = 128;
const RING_SIZE: u32 = 64;
const POOL_SIZE: u32 = 1024;
const POOL_CACHE: u32 = 32;

const USAGE: &str = "\
simple_mp has no application options. Commands on stdin:
  send <text>   send a message to the other process
  quit          leave
  help          this text";

fn main() {
    let (eal, ()) =
        shoal_apps::args::init(std::env::args().collect(), USAGE, |app| match app.get(1) {
            Some(a) => Err(format!("unexpected argument {a:?}")),
            None => Ok(()),
        });
    if let Err(e) = run(&eal) {
        eprintln!("simple_mp: {e}");
        std::process::exit(1);
    }
}

fn run(eal: &Eal) -> Result<(), String> {
    let (send_name, recv_name) = match eal.proc_type() {
        ProcType::Primary => (PRI_2_SEC, SEC_2_PRI),
        ProcType::Secondary => (SEC_2_PRI, PRI_2_SEC),
    };
    let (send, recv, pool) = match eal.proc_type() {
        ProcType::Primary => {
            let cfg = RingConfig::new(RING_SIZE);
            let a = Ring::<ObjIdx>::create(eal, PRI_2_SEC, &cfg)
                .map_err(|e| format!("cannot create ring {PRI_2_SEC}: {e}"))?;
            let b = Ring::<ObjIdx>::create(eal, SEC_2_PRI, &cfg)
                .map_err(|e| format!("cannot create ring {SEC_2_PRI}: {e}"))?;
            let pool = Mempool::create(
                eal,
                MSG_POOL,
                MempoolConfig::new(POOL_SIZE, STR_TOKEN_SIZE as u32).cache_size(POOL_CACHE),
            )
            .map_err(|e| format!("cannot create pool {MSG_POOL}: {e}"))?;
            (a, b, pool)
        }
        ProcType::Secondary => {
            let a = Ring::<ObjIdx>::lookup(eal, send_name)
                .map_err(|e| format!("cannot find ring {send_name}: {e}"))?;
            let b = Ring::<ObjIdx>::lookup(eal, recv_name)
                .map_err(|e| format!("cannot find ring {recv_name}: {e}"))?;
            let pool = Mempool::lookup(eal, MSG_POOL)
                .map_err(|e| format!("cannot find pool {MSG_POOL}: {e}"))?;
            (a, b, pool)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let recv_lcore = eal.lcores().get(1).copied().unwrap_or(eal.main_lcore());
    let receiver = {
        let (stop, pool, eal) = (stop.clone(), pool.clone(), eal.clone());
        std::thread::Builder::new()
            .name("simple_mp-recv".into())
            .spawn(move || receive(&eal, &recv, &pool, recv_lcore.0, &stop))
            .map_err(|e| format!("cannot start the receiver: {e}"))?
    };
    println!("Finished Process Init.");
    let mut producer = send
        .producer()
        .ok_or("the outgoing ring already has a producer")?;
    // Lines come from a reader thread, so that SIGINT/SIGTERM are seen even while nobody types.
    let tty = std::io::stdin().is_terminal();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("simple_mp-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the stdin reader: {e}"))?;
    let mut prompt = true;
    loop {
        if tty && prompt {
            print!("simple_mp > ");
            let _ = std::io::stdout().flush();
        }
        let line = match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if eal.should_quit() {
                    break;
                }
                prompt = false;
                continue;
            }
            // End of input.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        prompt = true;
        let cmd = line.trim();
        if let Some(text) = cmd.strip_prefix("send ").or((cmd == "send").then_some("")) {
            let Some(mut msg) = pool.get() else {
                println!("Failed to get message buffer - message discarded");
                continue;
            };
            let bytes = text.as_bytes();
            let n = bytes.len().min(STR_TOKEN_SIZE - 1);
            let data = msg.data_mut();
            data[..n].copy_from_slice(&bytes[..n]);
            data[n] = 0;
            let idx = msg.into_raw();
            if producer.enqueue(idx).is_err() {
                // Still ours: take it back so that it returns to the pool.
                drop(pool.from_raw(idx));
                println!("Failed to send message - message discarded");
            }
        } else if cmd == "quit" {
            break;
        } else if cmd == "help" {
            println!("{USAGE}");
        } else if !cmd.is_empty() {
            println!("Bad arguments: {cmd:?} (try help)");
        }
        if eal.should_quit() {
            break;
        }
    }
    // Let messages already on our incoming ring be printed before leaving.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    Ok(())
}

fn receive(eal: &Eal, ring: &Ring<ObjIdx>, pool: &Mempool, lcore: u32, stop: &AtomicBool) {
    let Some(mut consumer) = ring.consumer() else {
        eprintln!("simple_mp: the incoming ring already has a consumer");
        return;
    };
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::Relaxed) && !eal.should_quit() {
        let Some(idx) = consumer.dequeue() else {
            backoff.snooze();
            continue;
        };
        backoff.reset();
        match pool.from_raw(idx) {
            Some(msg) => {
                let data = msg.data();
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                // The bytes come from another process: escaped for the terminal.
                println!(
                    "core {lcore}: Received '{}'",
                    shoal_apps::printable(&data[..end])
                );
            }
            None => {
                eprintln!("simple_mp: ignored a ring entry that is not a message of {MSG_POOL}")
            }
        }
    }
}
