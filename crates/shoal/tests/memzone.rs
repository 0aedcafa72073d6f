//! Memzone publication and attachments: a lookup never sees a ring or mempool whose header is
//! still being written, and a zone that is attached anywhere (in this process or another) is
//! not freed, so its bytes cannot be handed to a new zone under a live view.

use std::io::BufRead;
use std::time::{Duration, Instant};

use shoal::eal::Eal;
use shoal::mempool::{self, Mempool, MempoolConfig};
use shoal::memzone::{self, Memzone};
use shoal::ring::{self, Ring, RingConfig};
use shoal_testkit::{child_prefix, role, unique_prefix, Group};

const T: Duration = Duration::from_secs(60);
const OBJECTS: usize = if cfg!(debug_assertions) { 60 } else { 150 };

fn init(prefix: &str, extra: &[&str]) -> Eal {
    let mut args: Vec<String> = [
        "test",
        "--file-prefix",
        prefix,
        "--no-huge",
        "-m",
        "64",
        "--log-level",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Eal::init(args).expect("init").0
}

fn ring_cfg(i: usize) -> RingConfig {
    RingConfig::new(64 << (i % 4))
}

fn pool_cfg(i: usize) -> MempoolConfig {
    MempoolConfig::new(31 + i as u32 % 7, 64)
}

#[test]
fn lookups_never_see_a_ring_or_pool_before_it_is_complete() {
    let eal = init(&unique_prefix("mzpub"), &[]);
    std::thread::scope(|s| {
        let creator = s.spawn(|| {
            for i in 0..OBJECTS {
                Ring::<u64>::create(&eal, &format!("r{i}"), &ring_cfg(i)).expect("create ring");
                Mempool::create(&eal, &format!("p{i}"), pool_cfg(i)).expect("create pool");
            }
        });
        let deadline = Instant::now() + T;
        for i in 0..OBJECTS {
            // Spin on each name while it is being created: every answer is either "not found"
            // or the whole object.
            let ring = loop {
                assert!(Instant::now() < deadline, "ring r{i} never appeared");
                match Ring::<u64>::lookup(&eal, &format!("r{i}")) {
                    Ok(r) => break r,
                    Err(ring::Error::Memzone(memzone::Error::NotFound(_))) => {
                        // The zone itself is not visible either.
                        let zone = Memzone::lookup(&eal, &format!("RG_r{i}"));
                        if zone.is_ok() {
                            let r = Ring::<u64>::lookup(&eal, &format!("r{i}"))
                                .expect("a published ring zone holds a complete ring");
                            break r;
                        }
                    }
                    Err(e) => panic!("lookup of r{i} saw a half-built ring: {e}"),
                }
            };
            assert_eq!(ring.name(), format!("r{i}"));
            assert_eq!(ring.size(), ring_cfg(i).count);
            let pool = loop {
                assert!(Instant::now() < deadline, "pool p{i} never appeared");
                match Mempool::lookup(&eal, &format!("p{i}")) {
                    Ok(p) => break p,
                    Err(mempool::Error::NotFound(_)) => std::hint::spin_loop(),
                    Err(e) => panic!("lookup of p{i} saw a half-built pool: {e}"),
                }
            };
            assert_eq!(pool.size(), pool_cfg(i).size);
            assert_eq!(
                pool.avail_count(),
                pool.size(),
                "every object is in the store"
            );
        }
        creator.join().expect("creator");
    });
}

#[test]
fn a_zone_or_ring_in_use_is_not_freed_until_its_handles_are_gone() {
    let eal = init(&unique_prefix("mzfree"), &[]);
    let mz = Memzone::reserve(&eal, "z", 4096).unwrap();
    let seen = Memzone::lookup(&eal, "z").unwrap();
    let view = seen.region().clone();
    drop(seen);
    assert_eq!(
        Memzone::free(&eal, "z"),
        Err(memzone::Error::InUse {
            name: "z".into(),
            attached: 2
        })
    );
    drop(mz);
    assert_eq!(
        Memzone::free(&eal, "z"),
        Err(memzone::Error::InUse {
            name: "z".into(),
            attached: 1
        }),
        "a clone of a region keeps its zone"
    );
    drop(view);
    Memzone::free(&eal, "z").unwrap();
    assert_eq!(
        Memzone::lookup(&eal, "z").unwrap_err(),
        memzone::Error::NotFound("z".into())
    );

    let ring = Ring::<u32>::create(&eal, "q", &RingConfig::new(64)).unwrap();
    let other = Ring::<u32>::lookup(&eal, "q").unwrap();
    assert!(matches!(
        Ring::<u32>::free(&eal, "q"),
        Err(ring::Error::Memzone(memzone::Error::InUse {
            attached: 2,
            ..
        }))
    ));
    drop((ring, other));
    Ring::<u32>::free(&eal, "q").unwrap();
    // The space and the name are reusable now, and nothing old can see them.
    Ring::<u32>::create(&eal, "q", &RingConfig::new(64)).unwrap();
}

#[test]
fn a_zone_attached_by_another_process_is_not_freed() {
    if role().as_deref() == Some("holder") {
        let eal = init(&child_prefix(), &["--proc-type=secondary"]);
        let ring = Ring::<u64>::lookup(&eal, "held").expect("lookup");
        println!("holding {}", ring.name());
        // Hold the ring until the parent closes stdin.
        let _ = std::io::stdin().lock().lines().count();
        drop(ring);
        println!("dropped");
        return;
    }
    let g = Group::new("mzxp");
    let eal = init(g.prefix(), &[]);
    drop(Ring::<u64>::create(&eal, "held", &RingConfig::new(64)).unwrap());
    let mut child = g.spawn_self(
        "a_zone_attached_by_another_process_is_not_freed",
        "holder",
        &[],
    );
    child.wait_for("holding held", T);
    assert!(matches!(
        Ring::<u64>::free(&eal, "held"),
        Err(ring::Error::Memzone(memzone::Error::InUse {
            attached: 1,
            ..
        }))
    ));
    child.close_stdin();
    child.wait_for("dropped", T);
    assert_eq!(child.wait_exit(T), Some(0));
    Ring::<u64>::free(&eal, "held").unwrap();
}

#[test]
fn a_plain_zone_holds_one_type_for_every_view_in_every_mapping() {
    use shoal::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
    let prefix = unique_prefix("mztype");
    let eal = init(&prefix, &[]);
    let mz = Memzone::reserve(&eal, "counters", 64).expect("reserve");
    let wide = mz
        .as_slice::<AtomicU64>()
        .expect("the first view binds the zone");
    assert_eq!(wide.len(), 8);
    wide[0].store(u64::MAX, Relaxed);
    let narrow = mz.as_slice::<AtomicU32>();
    assert!(
        matches!(narrow, Err(memzone::Error::OtherType { .. })),
        "{narrow:?}"
    );
    // The binding lives in the segment: another mapping of it (an inspector's) is held to it.
    let other = Eal::inspect(&prefix).expect("inspect");
    let again = Memzone::lookup(&other, "counters").expect("lookup");
    let half = again.as_slice::<AtomicU16>();
    assert!(
        matches!(half, Err(memzone::Error::OtherType { .. })),
        "{half:?}"
    );
    let same = again.as_slice::<AtomicU64>().expect("the same type");
    assert_eq!(same[0].load(Relaxed), u64::MAX);
    // Zones that belong to a layer (a ring's) cannot be viewed at all.
    let _ring = Ring::<u64>::create(&eal, "owned", &RingConfig::new(64)).expect("ring");
    let rz = Memzone::lookup(&eal, "RG_owned").expect("the ring's zone");
    let r = rz.as_slice::<AtomicU64>();
    assert!(matches!(r, Err(memzone::Error::NotPlain(_))), "{r:?}");
}
