//! A new primary adopts the live group of a dead one (`--adopt`), and a secondary with a
//! `--primary-grace` carries on meanwhile and follows it. The members are this test binary
//! re-executed in roles. Built with `--features fault-injection`, adopters are also killed at
//! each adoption fault site first, and the next adopter recovers the group. An af_packet port
//! whose sockets no secondary holds is probed again by the adopter from the port table.

use std::time::Duration;

use shoal::eal::Eal;
use shoal::mbuf::{MbufBatch, MbufPool, MbufRing, DEFAULT_BUF_SIZE};
use shoal::mp::Message;
use shoal::ring::{RingConfig, SyncMode};
use shoal_testkit::{child_or, child_prefix, Group};

const T: Duration = Duration::from_secs(30);
/// Buffers the primary holds in hand when it is killed.
const PRIMARY_HOLDS: usize = 10;
/// Buffers the primary leaves in the ring.
const IN_RING: usize = 5;
/// Buffers the secondary holds throughout.
const SECONDARY_HOLDS: usize = 7;

fn join(extra: &[&str]) -> Result<Eal, shoal::eal::Error> {
    let mut args = vec!["--no-huge", "--log-level", "warning"];
    args.extend_from_slice(extra);
    shoal_testkit::init(&child_prefix(), &args)
}

fn alloc(pool: &MbufPool, n: usize) -> MbufBatch {
    let mut b = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut b, n), "alloc {n}");
    b
}

fn roles(role: &str) {
    shoal::eal::setup_process(&[]);
    match role {
        "primary" => {
            // With SHOAL_TEST_VDEV, the primary also makes that port (the secondary never
            // attaches to it: only the primary holds its sockets).
            let vdev = std::env::var("SHOAL_TEST_VDEV").ok();
            let mut args = vec!["-l", "0"];
            if let Some(v) = &vdev {
                args.extend(["--vdev", v.as_str()]);
            }
            let eal = join(&args).expect("primary");
            let _ports = shoal::ethdev::ports(&eal).unwrap();
            let pool = MbufPool::create(&eal, "apool", 1023, 32, 0, DEFAULT_BUF_SIZE).unwrap();
            let rc = RingConfig {
                prod: SyncMode::Sp,
                cons: SyncMode::Sp,
                ..RingConfig::new(64)
            };
            let ring = MbufRing::create(&eal, "aring", rc).unwrap();
            let mut sent = alloc(&pool, IN_RING);
            assert_eq!(ring.enqueue_burst(&mut sent), IN_RING);
            let _held = alloc(&pool, PRIMARY_HOLDS);
            println!("primary ready");
            while !eal.should_quit() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        "secondary" => {
            let eal = join(&[
                "-l",
                "1",
                "--proc-type=secondary",
                "--primary-grace",
                "60000",
            ])
            .unwrap();
            let pool = MbufPool::lookup(&eal, "apool").unwrap();
            let held = alloc(&pool, SECONDARY_HOLDS);
            println!("secondary holds {}", held.len());
            let mp = eal.mp().expect("member");
            let mut saw_absent = false;
            while !eal.should_quit() {
                if eal.primary_absent() && !saw_absent {
                    saw_absent = true;
                    println!("primary absent");
                    let req = Message::new("nobody_serves_this", b"").unwrap();
                    match mp.request_sync(&req, T) {
                        Err(shoal::mp::Error::PrimaryGone { .. }) => {
                            println!("ipc: primary gone")
                        }
                        other => println!("ipc: unexpected {other:?}"),
                    }
                }
                if saw_absent && !eal.primary_absent() {
                    saw_absent = false;
                    println!("followed new primary {}", eal.primary_pid());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            println!("secondary leaving (primary died: {})", eal.primary_died());
        }
        "plain" => match join(&["-l", "0"]) {
            Ok(_) => println!("plain primary started"),
            Err(e) => println!("refused: {e}"),
        },
        "adopter" => {
            let eal = join(&["-l", "0", "--adopt"]).expect("adopter");
            let pool = MbufPool::lookup(&eal, "apool").unwrap();
            let ring = MbufRing::lookup(&eal, "aring").unwrap();
            println!(
                "adopted {} in_use {} ring {} audit_ok {}",
                eal.adopted(),
                pool.in_use_count(),
                ring.count(),
                pool.audit().is_ok()
            );
            while !eal.should_quit() {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Empty the ring into the pool, then the secondary's are all that is in use.
            let mut b = MbufBatch::new();
            while ring.dequeue_burst(&mut b, 64) > 0 {
                b.clear();
            }
            println!("adopter leaving, in_use {}", pool.in_use_count());
        }
        "port-adopter" => {
            let eal = join(&["-l", "0", "--adopt"]).expect("adopter");
            let ports = shoal::ethdev::ports(&eal).unwrap();
            let want: usize = std::env::var("SHOAL_TEST_WANT").unwrap().parse().unwrap();
            println!("adopter has {} port(s)", ports.len());
            let (mut b, mut got) = (MbufBatch::new(), 0);
            while !eal.should_quit() {
                got += ports[0].rx_burst(shoal::ethdev::QueueId(0), &mut b, 32);
                b.clear();
                if got >= want {
                    println!("adopter received {got}");
                    break;
                }
                std::thread::yield_now();
            }
            while !eal.should_quit() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn a_new_primary_adopts_a_live_group_and_the_secondary_follows_it() {
    child_or!(roles);
    let g = Group::new("adopt");
    let name = "a_new_primary_adopts_a_live_group_and_the_secondary_follows_it";
    let mut primary = g.spawn_self(name, "primary", &[]);
    primary.wait_for("primary ready", T);
    let mut sec = g.spawn_self(name, "secondary", &[]);
    sec.wait_for("secondary holds 7", T);
    let (old_pid, sec_pid) = (primary.pid(), sec.pid());
    primary.kill9();
    sec.wait_for("primary absent", T);
    sec.wait_for("ipc: primary gone", T);

    // Without --adopt, a new primary is refused while the secondary lives, naming it.
    let mut plain = g.spawn_self(name, "plain", &[]);
    assert_eq!(plain.wait_exit(T), Some(0), "{}", plain.output());
    let out = plain.output();
    assert!(
        out.contains(&format!(
            "refused: the dead primary (pid {old_pid}) of file prefix"
        )) && out.contains(&format!("left live secondaries (pids {sec_pid})"))
            && out.contains("--adopt"),
        "{out}"
    );

    // Adopters killed in the middle of adopting: the next one recovers the group.
    for site in shoal::fault::SITES
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| cfg!(feature = "fault-injection") && shoal::fault::is_adoption_site(s))
    {
        let fault = format!("{site}:1");
        let mut a = g.spawn_self(name, "adopter", &[("SHOAL_FAULT", &fault)]);
        assert_eq!(a.wait_exit(T), None, "{site}: {}", a.output());
        assert!(sec.try_exit().is_none(), "{site}: {}", sec.output());
    }

    let mut adopter = g.spawn_self(name, "adopter", &[]);
    let line = adopter.wait_for("adopted true", T);
    // The dead primaries' buffers are back; the secondary's and the ring's are not.
    let want = format!(
        "adopted true in_use {} ring {IN_RING} audit_ok true",
        SECONDARY_HOLDS + IN_RING
    );
    assert!(line.ends_with(&want), "{want:?}:\n{}", adopter.output());
    sec.wait_for(&format!("followed new primary {}", adopter.pid()), T);
    assert!(sec.try_exit().is_none(), "{}", sec.output());
    let (code, out) = sec.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("secondary leaving (primary died: false)"),
        "{out}"
    );
    let (code, out) = adopter.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("adopter leaving, in_use 0"), "{out}");
}

#[test]
fn a_secondary_gives_up_when_no_primary_adopts_within_its_grace() {
    child_or!(|role: &str| {
        shoal::eal::setup_process(&[]);
        match role {
            "primary" => {
                let eal = join(&["-l", "0"]).unwrap();
                println!("primary ready");
                while !eal.should_quit() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            _ => {
                let eal =
                    join(&["-l", "1", "--proc-type=secondary", "--primary-grace", "200"]).unwrap();
                println!("secondary attached");
                while !eal.should_quit() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                println!(
                    "stopped: absent {} died {}",
                    eal.primary_absent(),
                    eal.primary_died()
                );
            }
        }
    });
    let g = Group::new("grace");
    let name = "a_secondary_gives_up_when_no_primary_adopts_within_its_grace";
    let mut primary = g.spawn_self(name, "primary", &[]);
    primary.wait_for("primary ready", T);
    let mut sec = g.spawn_self(name, "secondary", &[]);
    sec.wait_for("secondary attached", T);
    primary.kill9();
    assert_eq!(sec.wait_exit(T), Some(0), "{}", sec.output());
    let out = sec.output();
    assert!(out.contains("carrying on for up to 200 ms"), "{out}");
    assert!(
        out.contains("no new primary adopted group") && out.contains("within 200 ms"),
        "{out}"
    );
    assert!(out.contains("stopped: absent true died true"), "{out}");
}

/// A capture of `n` distinct 60-byte frames of a local experimental EtherType.
fn frames(path: &std::path::Path, n: u32) {
    use shoal::ethdev::pcap::{file_header, push_record};
    let mut out = file_header(2048).to_vec();
    for i in 0..n {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f[14..18].copy_from_slice(&i.to_be_bytes());
        push_record(&mut out, u64::from(i) * 1000, &f, 2048);
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn an_adopter_probes_again_an_af_packet_port_whose_sockets_died_with_the_primary() {
    child_or!(roles);
    let Some(ns) = shoal_testkit::netns::NetNs::new("adopt-afp") else {
        return;
    };
    if !shoal_testkit::require_tool("tcpreplay") {
        return;
    }
    ns.veth("va", "vb").unwrap();
    // The children start in the namespace.
    ns.enter().unwrap();
    let dir = shoal_testkit::TempDir::new("adopt-afp");
    let file = dir.join("in.pcap");
    frames(&file, 200);
    let g = Group::new("adopt-afp");
    let name = "an_adopter_probes_again_an_af_packet_port_whose_sockets_died_with_the_primary";
    let vdev = [("SHOAL_TEST_VDEV", "net_af_packet0,iface=va")];
    let mut primary = g.spawn_self(name, "primary", &vdev);
    primary.wait_for("primary ready", T);
    let mut sec = g.spawn_self(name, "secondary", &[]);
    sec.wait_for("secondary holds 7", T);
    primary.kill9();
    sec.wait_for("primary absent", T);

    let mut adopter = g.spawn_self(name, "port-adopter", &[("SHOAL_TEST_WANT", "200")]);
    adopter.wait_for(
        "adopting port net_af_packet0: no secondary holds its sockets; probing it again",
        T,
    );
    adopter.wait_for("adopter has 1 port(s)", T);
    ns.tcpreplay("vb", &file).unwrap();
    adopter.wait_for("adopter received 200", T);
    sec.wait_for(&format!("followed new primary {}", adopter.pid()), T);
    let (code, out) = sec.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = adopter.stop(libc::SIGINT, T);
    assert_eq!(code, Some(0), "{out}");
}
