//! Process groups with real processes: the test binary re-executes itself as the other members.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use shoal::eal::{Eal, Error, ProcType};
use shoal::memory::Backing;
use shoal::memzone::{self, Memzone};
use shoal_testkit::{child_or, child_prefix, eventually, init, skip_or_fail, Group};

const T: Duration = Duration::from_secs(20);

/// Child bodies shared by several tests.
fn run_child(role: &str) {
    let prefix = child_prefix();
    let extra: Vec<String> = std::env::var("SHOAL_TEST_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let extra: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
    match role {
        "primary" => {
            let eal = init(&prefix, &extra).expect("child primary");
            println!(
                "ready pid={} backing={:?}",
                std::process::id(),
                eal.backing()
            );
            std::thread::sleep(T);
        }
        "secondary" => match init(&prefix, &[&["--proc-type=secondary"], &extra[..]].concat()) {
            Ok(eal) => {
                eal.exit_when_primary_dies();
                println!("attached slot={:?} lcores={:?}", eal.slot(), eal.lcores());
                std::thread::sleep(T);
            }
            Err(e) => {
                println!("error: {e}");
                std::process::exit(1);
            }
        },
        "quiet_secondary" => {
            let eal = init(&prefix, &["--proc-type=secondary", "-l", "1"]).expect("attach");
            eal.on_primary_death(|| println!("hook ran"));
            println!("attached");
            while !eal.should_quit() {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("loop ended, primary_died={}", eal.primary_died());
        }
        "lockholder" => {
            let eal = init(&prefix, &["--proc-type=secondary"]).expect("attach");
            let _held = eal.hold_metadata_lock();
            println!("holding as {}", eal.member().raw());
            std::thread::sleep(T);
        }
        "zones" => {
            let eal = init(&prefix, &["--proc-type=secondary"]).expect("attach");
            let a = Memzone::lookup(&eal, "mz_a").expect("lookup mz_a");
            let base = a.region().as_ptr();
            let bytes: Vec<u8> = (0..a.len()).map(|i| read_byte(&a, i)).collect();
            assert!(
                bytes.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
                "pattern"
            );
            let b = Memzone::reserve(&eal, "mz_b", 4096).expect("reserve mz_b");
            for i in 0..b.len() {
                write_byte(&b, i, (i % 13) as u8);
            }
            println!("zones ok base={base:p}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn read_byte(z: &Memzone, i: usize) -> u8 {
    let b: &AtomicU8 = &z.as_slice::<AtomicU8>().expect("a zone of bytes")[i];
    b.load(Ordering::Relaxed)
}

fn write_byte(z: &Memzone, i: usize, v: u8) {
    let b: &AtomicU8 = &z.as_slice::<AtomicU8>().expect("a zone of bytes")[i];
    b.store(v, Ordering::Relaxed)
}

#[test]
fn two_primaries_conflict_naming_the_live_one() {
    child_or!(run_child);
    let g = Group::new("2p");
    let prefix = g.prefix().to_string();
    let mut p = g.spawn_self("two_primaries_conflict_naming_the_live_one", "primary", &[]);
    p.wait_for("ready", T);
    match init::<&str>(&prefix, &[]) {
        Err(Error::PrimaryExists { pid, .. }) => assert_eq!(pid, p.pid()),
        other => panic!("expected PrimaryExists, got {other:?}"),
    }
}

#[test]
fn secondary_without_primary_fails_clearly() {
    child_or!(run_child);
    let g = Group::new("nop");
    let prefix = g.prefix().to_string();
    let t0 = Instant::now();
    let err = init(&prefix, &["--proc-type=secondary"]).unwrap_err();
    println!("failed after {:?}: {err}", t0.elapsed());
    assert!(matches!(err, Error::NoPrimary { .. }), "{err:?}");
    assert!(err.to_string().contains(&prefix), "{err}");
}

#[test]
fn auto_becomes_primary_then_secondary() {
    child_or!(run_child);
    let g = Group::new("auto");
    let prefix = g.prefix().to_string();
    let first = init(&prefix, &["--proc-type=auto", "-l", "0"]).unwrap();
    assert_eq!(first.proc_type(), ProcType::Primary);
    let mut second = g.spawn_self(
        "auto_becomes_primary_then_secondary",
        "secondary",
        &[("SHOAL_TEST_ARGS", "--proc-type=auto -l 1")],
    );
    second.wait_for("attached", T);
    let procs = first.processes();
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert!(procs
        .iter()
        .any(|p| p.pid == second.pid() && p.proc_type == "secondary" && p.lcores == vec![1]));
}

#[test]
fn secondary_exits_when_primary_is_killed() {
    child_or!(run_child);
    let g = Group::new("kill");
    let mut p = g.spawn_self(
        "secondary_exits_when_primary_is_killed",
        "primary",
        &[("SHOAL_TEST_ARGS", "-l 0")],
    );
    p.wait_for("ready", T);
    let mut s = g.spawn_self(
        "secondary_exits_when_primary_is_killed",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 1")],
    );
    s.wait_for("attached", T);
    let t0 = Instant::now();
    p.kill9();
    let code = s.wait_exit(T);
    println!("secondary exited {:?} after {:?}", code, t0.elapsed());
    assert_eq!(code, Some(shoal::eal::EXIT_PRIMARY_DIED));
    assert!(s.output().contains("has exited"), "{}", s.output());
}

#[test]
fn metadata_lock_survives_a_killed_holder() {
    child_or!(run_child);
    let g = Group::new("lock");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]).unwrap();
    let mut h = g.spawn_self("metadata_lock_survives_a_killed_holder", "lockholder", &[]);
    let line = h.wait_for("holding as", T);
    let id: u64 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert_eq!(eal.metadata_lock_state().0.raw(), id);
    assert!(eal
        .processes()
        .iter()
        .any(|p| p.member.raw() == id && p.pid == h.pid()));
    h.kill9();
    // Needs the lock: must take it over from the dead holder.
    Memzone::reserve(&eal, "after_kill", 128).unwrap();
    let (holder, recoveries) = eal.metadata_lock_state();
    assert!(holder.is_none());
    assert!(recoveries >= 1);
}

#[test]
fn groups_side_by_side_are_isolated() {
    child_or!(run_child);
    let (ga, gb) = (Group::new("iso-a"), Group::new("iso-b"));
    let (pa, pb) = (ga.prefix().to_string(), gb.prefix().to_string());
    let a = init(&pa, &["-l", "0"]).unwrap();
    let b = init(&pb, &["-l", "0"]).unwrap();
    Memzone::reserve(&a, "same_name", 64).unwrap();
    Memzone::reserve(&b, "same_name", 128).unwrap();
    Memzone::reserve(&a, "only_a", 64).unwrap();
    assert_eq!(
        Memzone::lookup(&b, "only_a").unwrap_err(),
        memzone::Error::NotFound("only_a".into())
    );
    assert_eq!(Memzone::lookup(&a, "same_name").unwrap().len(), 64);
    assert_eq!(Memzone::lookup(&b, "same_name").unwrap().len(), 128);
    assert_ne!(a.segment_path(), b.segment_path());
}

#[test]
fn memzones_are_shared_between_processes() {
    child_or!(run_child);
    let g = Group::new("mz");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]).unwrap();
    let a = Memzone::reserve_aligned(&eal, "mz_a", 10_000, 4096).unwrap();
    assert_eq!(a.offset() % 4096, 0);
    for i in 0..a.len() {
        write_byte(&a, i, (i % 251) as u8);
    }
    let mut c = g.spawn_self("memzones_are_shared_between_processes", "zones", &[]);
    let line = c.wait_for("zones ok", T);
    assert_eq!(c.wait_exit(T), Some(0), "{}", c.output());
    println!("primary base={:p}, secondary: {line}", a.region().as_ptr());
    let b = Memzone::lookup(&eal, "mz_b").unwrap();
    assert!((0..b.len()).all(|i| read_byte(&b, i) == (i % 13) as u8));
    let names: Vec<String> = Memzone::list(&eal).into_iter().map(|m| m.name).collect();
    assert_eq!(names, vec!["mz_a", "mz_b"]);
}

#[test]
fn memzone_errors_are_clear() {
    child_or!(run_child);
    let g = Group::new("mzerr");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0", "-m", "8"]).unwrap();
    Memzone::reserve(&eal, "x", 64).unwrap();
    assert_eq!(
        Memzone::reserve(&eal, "x", 64).unwrap_err(),
        memzone::Error::Exists("x".into())
    );
    assert_eq!(
        Memzone::lookup(&eal, "nope").unwrap_err(),
        memzone::Error::NotFound("nope".into())
    );
    let long = "n".repeat(32);
    assert!(matches!(
        Memzone::reserve(&eal, &long, 64),
        Err(memzone::Error::BadName(_))
    ));
    assert!(Memzone::reserve(&eal, &"n".repeat(31), 64).is_ok());
    assert!(matches!(
        Memzone::reserve(&eal, "big", 64 << 20),
        Err(memzone::Error::NoSpace { .. })
    ));
    assert!(matches!(
        Memzone::reserve_aligned(&eal, "odd", 64, 3),
        Err(memzone::Error::BadAlign(3))
    ));
    assert_eq!(
        Memzone::reserve(&eal, "zero", 0).unwrap_err(),
        memzone::Error::ZeroLength
    );
    // Free makes the name and the space reusable.
    let (used0, _) = memzone::usage(&eal);
    let big = Memzone::reserve(&eal, "fill", 4 << 20).unwrap();
    assert!(memzone::usage(&eal).0 >= used0 + big.len());
    drop(big);
    Memzone::free(&eal, "fill").unwrap();
    assert_eq!(
        Memzone::free(&eal, "fill").unwrap_err(),
        memzone::Error::NotFound("fill".into())
    );
    Memzone::reserve(&eal, "fill", 4 << 20).unwrap();
}

#[test]
fn two_live_processes_cannot_share_an_lcore() {
    child_or!(run_child);
    let g = Group::new("lc");
    let prefix = g.prefix().to_string();
    let _eal = init(&prefix, &["-l", "0-1"]).unwrap();
    let mut c = g.spawn_self(
        "two_live_processes_cannot_share_an_lcore",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 1")],
    );
    assert_eq!(c.wait_exit(T), Some(1));
    let out = c.output();
    assert!(
        out.contains("lcore 1 is already used by live process"),
        "{out}"
    );
    assert!(out.contains(&std::process::id().to_string()), "{out}");
    let mut ok = g.spawn_self(
        "two_live_processes_cannot_share_an_lcore",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 2")],
    );
    ok.wait_for("attached", T);
}

#[test]
fn a_dead_process_slot_is_found_and_freed() {
    child_or!(run_child);
    let g = Group::new("reap");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]).unwrap();
    let mut c = g.spawn_self(
        "a_dead_process_slot_is_found_and_freed",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 5")],
    );
    c.wait_for("attached", T);
    let pid = c.pid();
    assert!(eal.processes().iter().any(|p| p.pid == pid && p.alive));
    c.kill9();
    // The primary's service thread reaps it by itself.
    eventually(&format!("the slot of {pid} to be freed"), T, || {
        eal.processes().iter().all(|p| p.pid != pid)
    });
    let mut again = g.spawn_self(
        "a_dead_process_slot_is_found_and_freed",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 5")],
    );
    again.wait_for("attached", T);
}

/// A dead process's lcores pass to a new process only after the reaper has emptied their
/// caches and freed its slot: a new holder attached before that would share the caches with the
/// reaper (and lose what it cached when the reaper empties them).
#[test]
fn a_dead_process_lcore_is_given_out_only_after_it_is_reaped() {
    child_or!(run_child);
    let g = Group::new("reap-lc");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]).unwrap();
    for _ in 0..3 {
        let mut c = g.spawn_self(
            "a_dead_process_lcore_is_given_out_only_after_it_is_reaped",
            "secondary",
            &[("SHOAL_TEST_ARGS", "-l 5")],
        );
        c.wait_for("attached", T);
        let pid = c.pid();
        c.kill9();
        c.wait_exit(T);
        let mut next = g.spawn_self(
            "a_dead_process_lcore_is_given_out_only_after_it_is_reaped",
            "secondary",
            &[("SHOAL_TEST_ARGS", "-l 5")],
        );
        next.wait_for("attached", T);
        assert!(
            eal.processes().iter().all(|p| p.pid != pid),
            "lcore 5 was given to pid {} while dead pid {pid} still held it: {:?}",
            next.pid(),
            eal.processes()
        );
        next.kill9();
        next.wait_exit(T);
    }
}

#[test]
fn a_different_layout_is_refused_naming_both_versions() {
    child_or!(run_child);
    let g = Group::new("layout");
    let prefix = g.prefix().to_string();
    let mut p = g.spawn_self(
        "a_different_layout_is_refused_naming_both_versions",
        "primary",
        &[],
    );
    p.wait_for("ready", T);
    // Play a primary built from another layout: rewrite the version it published.
    let dir = shoal::eal::runtime_dir(&prefix);
    let config = std::fs::read_to_string(dir.join("config")).unwrap();
    let theirs: u64 = 0x1234_5678_9abc_def0;
    let patched: String = config
        .lines()
        .map(|l| {
            if l.starts_with("version=") {
                format!("version={theirs:#018x}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("config"), patched + "\n").unwrap();
    let err = init(&prefix, &["--proc-type=secondary"]).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { theirs: t, .. } if t == theirs),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("0x123456789abcdef0"), "{msg}");
    assert!(
        msg.contains(&format!("{:#018x}", shoal::memory::LAYOUT_VERSION)),
        "{msg}"
    );
}

#[test]
fn no_huge_uses_shm_and_hugepages_are_used_when_free() {
    child_or!(run_child);
    let g = Group::new("nohuge");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["--no-huge", "-l", "0"]).unwrap();
    assert_eq!(eal.backing(), Backing::Shm);
    assert!(eal.segment_path().starts_with("/dev/shm"));
    let mut s = g.spawn_self(
        "no_huge_uses_shm_and_hugepages_are_used_when_free",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 1")],
    );
    s.wait_for("attached", T);
    drop(s);

    let free = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .contains("hugetlbfs");
    if !mounted || free < 16 {
        skip_or_fail(&format!(
            "the hugepage half: hugetlbfs mounted={mounted}, free 2 MiB pages={free} (need 16; ci/setup.sh reserves them)"
        ));
        return;
    }
    let gh = Group::new("huge");
    let hp = gh.prefix().to_string();
    let eal = init(&hp, &["-l", "0", "-m", "32"]).unwrap();
    assert_eq!(eal.backing(), Backing::Hugetlbfs);
    let mut s = gh.spawn_self(
        "no_huge_uses_shm_and_hugepages_are_used_when_free",
        "secondary",
        &[("SHOAL_TEST_ARGS", "-l 1")],
    );
    s.wait_for("attached", T);
}

#[test]
fn works_with_aslr_on() {
    child_or!(run_child);
    let aslr = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").unwrap_or_default();
    println!("randomize_va_space = {}", aslr.trim());
    // The memzone test above maps the segment in two processes and compares bytes at offsets;
    // here we also check that the two mappings really are at different addresses.
    let g = Group::new("aslr");
    let prefix = g.prefix().to_string();
    let eal = init(&prefix, &["-l", "0"]).unwrap();
    let a = Memzone::reserve(&eal, "mz_a", 4096).unwrap();
    for i in 0..a.len() {
        write_byte(&a, i, (i % 251) as u8);
    }
    let mut c = g.spawn_self("memzones_are_shared_between_processes", "zones", &[]);
    let line = c.wait_for("zones ok", T);
    let theirs = line.split("base=").nth(1).unwrap().trim().to_string();
    let ours = format!("{:p}", a.region().as_ptr());
    println!("primary maps mz_a at {ours}, secondary at {theirs}");
    if aslr.trim() == "2" {
        assert_ne!(ours, theirs, "with ASLR on, mappings should differ");
    }
}

/// Takes an open-file-description write lock on the whole of `file`, as a primary does on
/// `config`.
#[allow(unsafe_code)]
fn ofd_lock(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: libc::flock is plain data; all-zero is valid (whole file, l_pid 0).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid fd and flock struct for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// A primary is SIGKILLed; a new one has taken the config lock but not yet rewritten `config`,
/// which still names the dead primary's segment, still there and marked ready. A secondary must
/// not attach to that memory: the segment's creator holds no liveness lock on it.
#[test]
fn a_secondary_never_attaches_to_a_dead_primarys_segment() {
    child_or!(run_child);
    let g = Group::new("stale");
    let prefix = g.prefix().to_string();
    let mut p = g.spawn_self(
        "a_secondary_never_attaches_to_a_dead_primarys_segment",
        "primary",
        &[("SHOAL_TEST_ARGS", "-l 0 --no-huge")],
    );
    p.wait_for("ready", T);
    p.kill9();
    p.wait_exit(T);
    let dir = shoal_testkit::runtime_dir(&prefix);
    let config = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("config"))
        .unwrap();
    assert!(std::fs::read_to_string(dir.join("config"))
        .unwrap()
        .contains("segment="));
    // The "new primary", between taking the lock and rewriting the file.
    ofd_lock(&config);
    match Eal::inspect(&prefix) {
        Err(Error::PrimaryNotReady { .. }) => {}
        other => panic!("attached to a dead primary's segment: {other:?}"),
    }
    drop(config);
    // A real new primary takes over the prefix; secondaries attach to its segment.
    let mut p2 = g.spawn_self(
        "a_secondary_never_attaches_to_a_dead_primarys_segment",
        "primary",
        &[("SHOAL_TEST_ARGS", "-l 0 --no-huge")],
    );
    p2.wait_for("ready", T);
    let eal = Eal::inspect(&prefix).expect("attach to the new primary");
    assert_eq!(eal.primary_pid(), p2.pid());
}

/// The library leaves the process alone when the primary dies: no exit, an event instead
/// (a hook on the service thread, and `should_quit`/`primary_died` for the loops).
#[test]
fn a_library_secondary_is_told_of_its_primarys_death_and_is_not_exited() {
    child_or!(run_child);
    let g = Group::new("quiet");
    let mut p = g.spawn_self(
        "a_library_secondary_is_told_of_its_primarys_death_and_is_not_exited",
        "primary",
        &[("SHOAL_TEST_ARGS", "-l 0")],
    );
    p.wait_for("ready", T);
    let mut s = g.spawn_self(
        "a_library_secondary_is_told_of_its_primarys_death_and_is_not_exited",
        "quiet_secondary",
        &[],
    );
    s.wait_for("attached", T);
    p.kill9();
    s.wait_for("hook ran", T);
    s.wait_for("loop ended, primary_died=true", T);
    assert_eq!(s.wait_exit(T), Some(0), "{}", s.output());
}
