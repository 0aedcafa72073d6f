//! Kills at every multi-thread ring fault site (built with `--features fault-injection`): for
//! each site, the victim (a producer or a consumer of an MP, RTS or HTS ring shared by four
//! processes) dies there at its 100th pass, and the survivors must go on with nothing stuck,
//! nothing delivered twice and no hole delivered (see `ring_kill/mod.rs`). Then the same for
//! rings of mbufs, where the reaper must also get back every mbuf of the cut operation.

#![cfg(feature = "fault-injection")]

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::mbuf::{MbufBatch, MbufPool, MbufRing, DEFAULT_BUF_SIZE};
use shoal::ring::{RingConfig, SyncMode};
use shoal_testkit::{child_prefix, role, Group};

mod ring_kill;

#[test]
fn a_kill_at_every_multi_thread_ring_site_leaves_the_survivors_running() {
    if let Some(r) = role() {
        ring_kill::child(&r);
        return;
    }
    let mut n = 0;
    for &(site, what) in shoal::fault::SITES {
        // The `written` sites are passed by rings of mbufs only (below).
        if !shoal::fault::is_multi_thread_ring_site(site) || site.ends_with(".written") {
            continue;
        }
        let mode = if site.contains("_rts") {
            SyncMode::MpRts
        } else if site.contains("_hts") {
            SyncMode::MpHts
        } else {
            SyncMode::Mp
        };
        let victim = if site.starts_with("ring.mp") {
            ring_kill::Victim::Producer
        } else {
            ring_kill::Victim::Consumer
        };
        println!("{site}: {what}");
        ring_kill::run(
            "a_kill_at_every_multi_thread_ring_site_leaves_the_survivors_running",
            &format!("rf{n}"),
            mode,
            victim,
            ring_kill::Kill::Fault(site, 100),
        );
        n += 1;
    }
    assert_eq!(n, 12);
}

fn init(prefix: &str, extra: &[&str]) -> Eal {
    let mut args = vec![
        "test".to_string(),
        "--file-prefix".into(),
        prefix.into(),
        "-m".into(),
        "64".into(),
        "--no-huge".into(),
        "--log-level".into(),
        "error".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Eal::init(args).expect("eal").0
}

/// The mbuf victim: sends bursts of new mbufs on an MP ring, takes them back from an MC ring,
/// frees them, until it dies.
fn mbuf_victim() {
    let eal = init(&child_prefix(), &["--proc-type=secondary", "-l", "1"]);
    let pool = MbufPool::lookup(&eal, "mtpool").unwrap();
    let tx = MbufRing::lookup(&eal, "mt_up").unwrap();
    let rx = MbufRing::lookup(&eal, "mt_down").unwrap();
    let mut round = 0u64;
    while !eal.should_quit() {
        let mut b = MbufBatch::new();
        if pool.alloc_bulk(&mut b, 8) {
            tx.enqueue_burst(&mut b);
        }
        drop(b);
        let mut got = MbufBatch::new();
        rx.dequeue_burst(&mut got, 16);
        drop(got);
        round += 1;
        if round == 3 {
            println!("looping");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_kill_inside_a_multi_thread_ring_of_mbufs_loses_no_mbuf() {
    if let Some(r) = role() {
        assert_eq!(r, "mbuf_victim");
        mbuf_victim();
        return;
    }
    let test = "a_kill_inside_a_multi_thread_ring_of_mbufs_loses_no_mbuf";
    let g = Group::new("mtmbuf");
    let eal = init(g.prefix(), &["-l", "0"]);
    let pool = MbufPool::create(&eal, "mtpool", 2047, 0, 0, DEFAULT_BUF_SIZE).unwrap();
    let mt = RingConfig::new(512);
    let up = MbufRing::create(&eal, "mt_up", mt).unwrap();
    let down = MbufRing::create(&eal, "mt_down", mt).unwrap();
    let forward = || {
        let mut b = MbufBatch::new();
        up.dequeue_burst(&mut b, 32);
        down.enqueue_burst(&mut b);
    };
    let sites = [
        "ring.mp.reserved",
        "ring.mp.written",
        "ring.mp.ready",
        "ring.mc.reserved",
        "ring.mc.written",
        "ring.mc.ready",
    ];
    for site in sites {
        let fault = format!("{site}:7");
        let mut v = g.spawn_self(test, "mbuf_victim", &[("SHOAL_FAULT", &fault)]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = v.exited() {
                break st;
            }
            assert!(Instant::now() < deadline, "{site}: {}", v.output());
            forward();
            std::thread::sleep(Duration::from_micros(100));
        };
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{site}: {}",
            v.output()
        );
        eal.reap_dead();
        // Whatever is left in the rings goes back to the pool.
        let mut b = MbufBatch::new();
        while up.dequeue_burst(&mut b, 32) + down.dequeue_burst(&mut b, 32) > 0 {
            b.clear();
        }
        let audit = pool.audit();
        assert_eq!(
            pool.in_use_count(),
            0,
            "{site}: {:?}\n{audit:?}",
            pool.usage()
        );
        assert!(audit.is_ok(), "{site}: {audit:?}");
        assert!(up.ring().is_empty() && down.ring().is_empty(), "{site}");
        println!("{site}: killed there, repaired, no mbuf lost");
    }
    // A victim without a fault uses the same rings and leaves cleanly.
    let mut v = g.spawn_self(test, "mbuf_victim", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !v.output().contains("looping") {
        assert!(Instant::now() < deadline, "{}", v.output());
        forward();
        std::thread::sleep(Duration::from_micros(100));
    }
    v.signal(libc::SIGINT);
    while v.exited().is_none() {
        assert!(Instant::now() < deadline, "{}", v.output());
        forward();
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut b = MbufBatch::new();
    while up.dequeue_burst(&mut b, 32) + down.dequeue_burst(&mut b, 32) > 0 {
        b.clear();
    }
    assert_eq!(pool.in_use_count(), 0, "{:?}", pool.usage());
}
