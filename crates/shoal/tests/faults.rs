//! Kills at every named fault site (built with `--features fault-injection`): a secondary
//! allocates mbufs, sends them to the primary over a single-producer ring, receives them back
//! over a single-consumer ring, frees them, and reserves and frees memzones, in a loop, until
//! it dies at the chosen pass of the chosen site (`SHOAL_FAULT=<site>:<n>`). The primary must
//! then get every buffer back, find the pool's audit clean, and take a new secondary that uses
//! the same rings.

#![cfg(feature = "fault-injection")]

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::mbuf::{MbufBatch, MbufPool, MbufRing, DEFAULT_BUF_SIZE};
use shoal::memzone::Memzone;
use shoal::ring::{RingConfig, SyncMode};
use shoal_testkit::{child_prefix, role, Group, Proc};

const T: Duration = Duration::from_secs(30);

/// Joins `prefix` on /dev/shm, logging errors only.
fn init(prefix: &str, extra: &[&str]) -> Eal {
    let mut args = vec!["--no-huge", "--log-level", "error"];
    args.extend_from_slice(extra);
    shoal_testkit::init(prefix, &args).expect("eal")
}

/// The victim's loop: every structure with a fault site, over and over.
fn victim() {
    let prefix = child_prefix();
    shoal::eal::setup_process(&[]);
    let eal = init(&prefix, &["--proc-type=secondary", "-l", "1"]);
    let pool = MbufPool::lookup(&eal, "fpool").unwrap();
    let tx = MbufRing::lookup(&eal, "to_primary").unwrap();
    let rx = MbufRing::lookup(&eal, "to_victim").unwrap();
    let mut round = 0u64;
    while !eal.should_quit() {
        // Allocate in small bulks (cache fills), send them all.
        let mut b = MbufBatch::new();
        for _ in 0..4 {
            let mut part = MbufBatch::new();
            if pool.alloc_bulk(&mut part, 16) {
                for m in part.drain(..) {
                    let _ = b.push(m);
                }
            }
        }
        tx.enqueue_burst(&mut b);
        drop(b);
        // Receive what came back and free it one by one (cache flushes).
        let mut got = MbufBatch::new();
        rx.dequeue_burst(&mut got, 64);
        for m in got.drain(..) {
            drop(m);
        }
        let name = format!("victim_mz_{}", round % 4);
        if Memzone::reserve(&eal, &name, 256).is_ok() {
            let _ = Memzone::free(&eal, &name);
        }
        round += 1;
        if round == 3 {
            println!("looping");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    println!("victim left cleanly after {round} rounds");
}

/// Forwards everything the victim sends back to it until `until` says stop.
fn forward(tx: &MbufRing, rx: &MbufRing, mut until: impl FnMut() -> bool) {
    let mut b = MbufBatch::new();
    while !until() {
        rx.dequeue_burst(&mut b, 64);
        tx.enqueue_burst(&mut b);
        b.clear();
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Waits (bounded) for a process to end, forwarding meanwhile.
fn run_until_exit(p: &mut Proc, tx: &MbufRing, rx: &MbufRing) -> std::process::ExitStatus {
    let deadline = Instant::now() + T;
    let mut status = None;
    forward(tx, rx, || {
        assert!(
            Instant::now() < deadline,
            "victim did not end:\n{}",
            p.output()
        );
        status = p.exited();
        status.is_some()
    });
    status.unwrap()
}

/// Empties both rings into the pool: `from_victim` through our own consumer handle,
/// `to_victim` through a handle of its own that takes the (reaped) victim's consumer side and
/// gives it back when dropped.
fn drain(from_victim: &MbufRing, to_victim: &MbufRing) {
    for r in [from_victim, &to_victim.clone()] {
        let mut b = MbufBatch::new();
        while r.dequeue_burst(&mut b, 64) > 0 {
            b.clear();
        }
    }
}

#[test]
fn a_kill_at_every_fault_site_is_repaired_and_loses_nothing() {
    if let Some(r) = role() {
        assert_eq!(r, "victim");
        victim();
        return;
    }
    let g = Group::new("faults");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]);
    let pool = MbufPool::create(&eal, "fpool", 4095, 32, 0, DEFAULT_BUF_SIZE).unwrap();
    let sp = RingConfig {
        prod: SyncMode::Sp,
        cons: SyncMode::Sp,
        ..RingConfig::new(1024)
    };
    // The primary receives on to_primary and sends on to_victim; the victim the other way.
    let from_victim = MbufRing::create(&eal, "to_primary", sp).unwrap();
    let to_victim = MbufRing::create(&eal, "to_victim", sp).unwrap();
    assert_eq!(pool.in_use_count(), 0);
    let mut hit = Vec::new();
    let sites = shoal::fault::SITES.iter().filter(|(s, _)| {
        !shoal::fault::is_multi_thread_ring_site(s) && !shoal::fault::is_port_site(s)
    });
    for &(site, what) in sites.clone() {
        let pass = if site == "proctable.claiming" { 1 } else { 7 };
        let fault = format!("{site}:{pass}");
        let mut v = g.spawn_self(
            "a_kill_at_every_fault_site_is_repaired_and_loses_nothing",
            "victim",
            &[("SHOAL_FAULT", &fault)],
        );
        let status = run_until_exit(&mut v, &to_victim, &from_victim);
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{site} ({what}) was never reached: {status:?}\n{}",
            v.output()
        );
        hit.push(site);
        // The reaper repairs and returns; then whatever is left in the rings goes back too.
        eal.reap_dead();
        assert!(eal.processes().len() == 1, "{site}: {:?}", eal.processes());
        drain(&from_victim, &to_victim);
        let audit = pool.audit();
        assert_eq!(
            pool.in_use_count(),
            0,
            "{site} ({what}): {:?}\n{audit:?}",
            pool.usage()
        );
        assert!(audit.is_ok(), "{site} ({what}): {audit:?}");
        let (holder, _) = eal.metadata_lock_state();
        assert!(
            holder.is_none() || holder == eal.member(),
            "{site}: {holder}"
        );
        println!("{site}: killed there, repaired, nothing lost");
    }
    // A victim without a fault uses the same rings, pool and lock, and leaves cleanly.
    let mut v = g.spawn_self(
        "a_kill_at_every_fault_site_is_repaired_and_loses_nothing",
        "victim",
        &[],
    );
    let deadline = Instant::now() + T;
    forward(&to_victim, &from_victim, || {
        assert!(Instant::now() < deadline, "{}", v.output());
        v.output().contains("looping")
    });
    v.signal(libc::SIGINT);
    let status = run_until_exit(&mut v, &to_victim, &from_victim);
    assert!(status.success(), "{status:?}\n{}", v.output());
    drain(&from_victim, &to_victim);
    assert_eq!(pool.in_use_count(), 0, "{:?}", pool.usage());
    assert_eq!(hit.len(), sites.count());
    println!(
        "every one of {} fault sites: killed, repaired, 0 lost",
        hit.len()
    );
}
