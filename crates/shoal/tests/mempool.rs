//! Mempools in one process: DPDK's test_mempool behaviours (creation errors, basic get/put,
//! bulk at the edges, exhausting a pool, cache fill and flush), lcore threads, ownership
//! hand-over and the audit.

use shoal::eal::{Eal, LcoreId};
use shoal::mempool::{
    flags, Error, Mempool, MempoolConfig, ObjIdx, PoolObj, PoolObjs, CACHE_MAX_SIZE,
};
use shoal_testkit::solo_eal;

#[test]
fn creation_errors_follow_dpdk() {
    let eal = solo_eal("mpcreate", &["-l", "0"]);
    let too_big_cache = MempoolConfig::new(2047, 64).cache_size(CACHE_MAX_SIZE + 32);
    assert!(matches!(
        Mempool::create(&eal, "big_cache", too_big_cache),
        Err(Error::CacheTooBig { .. })
    ));
    // flush threshold (1.5 x cache) above the pool size
    assert!(matches!(
        Mempool::create(
            &eal,
            "cache_vs_n",
            MempoolConfig::new(100, 64).cache_size(68)
        ),
        Err(Error::CacheTooBig { .. })
    ));
    Mempool::create(
        &eal,
        "cache_edge",
        MempoolConfig::new(99, 64).cache_size(66),
    )
    .unwrap();
    assert_eq!(
        Mempool::create(&eal, "zero", MempoolConfig::new(0, 64)).unwrap_err(),
        Error::ZeroSize
    );
    assert_eq!(
        Mempool::create(
            &eal,
            "flags",
            MempoolConfig::new(10, 64).flags(!flags::VALID)
        )
        .unwrap_err(),
        Error::InvalidFlags(!flags::VALID)
    );
    let long = "p".repeat(29);
    assert_eq!(
        Mempool::create(&eal, &long, MempoolConfig::new(10, 64)).unwrap_err(),
        Error::BadName(long.clone())
    );
    Mempool::create(&eal, "twice", MempoolConfig::new(10, 64)).unwrap();
    assert_eq!(
        Mempool::create(&eal, "twice", MempoolConfig::new(10, 64)).unwrap_err(),
        Error::Exists("twice".into())
    );
    assert_eq!(
        Mempool::lookup(&eal, "nope").unwrap_err(),
        Error::NotFound("nope".into())
    );
    assert!(matches!(
        Mempool::create(&eal, "huge", MempoolConfig::new(1 << 20, 4096)),
        Err(Error::Memzone { .. })
    ));
}

/// DPDK's test_mempool_basic, with and without cache.
fn basic(pool: &Mempool) {
    let n = pool.size();
    assert_eq!(pool.avail_count(), n);
    let o = pool.get().unwrap();
    assert_eq!(
        pool.avail_count(),
        n - 1,
        "cached objects count as available"
    );
    assert_eq!(pool.in_use_count(), 1);
    drop(o);
    assert_eq!(pool.avail_count(), n);
    let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
    assert_ne!(a.index(), b.index());
    drop((a, b));
    // Every object is reachable from one lcore (its cache and the store).
    let mut all = Vec::new();
    while let Some(o) = pool.get() {
        all.push(o);
    }
    assert_eq!(all.len() as u32, n);
    assert!(pool.is_empty());
    let mut seen = vec![false; n as usize];
    for o in &all {
        let num = u32::from_le_bytes(o.data()[..4].try_into().unwrap());
        assert_eq!(num, o.index(), "object initialiser's mark");
        assert!(o.data()[4..].iter().all(|&b| b == 0), "object modified");
        assert!(!seen[num as usize], "object handed out twice");
        seen[num as usize] = true;
    }
    drop(all);
    assert!(pool.is_full());
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
}

fn mark(obj: &mut [u8], i: u32) {
    obj.fill(0);
    obj[..4].copy_from_slice(&i.to_le_bytes());
}

#[test]
fn basic_get_put_with_and_without_cache() {
    let eal = solo_eal("mpbasic", &["-l", "0"]);
    let mut calls = 0;
    let nocache = Mempool::create_with(&eal, "nocache", MempoolConfig::new(1023, 128), |o, i| {
        calls += 1;
        mark(o, i)
    })
    .unwrap();
    assert_eq!(calls, 1023, "the initialiser runs once per object");
    basic(&nocache);
    let cache = Mempool::create_with(
        &eal,
        "cache",
        MempoolConfig::new(1023, 128).cache_size(32),
        mark,
    )
    .unwrap();
    basic(&cache);
    assert_eq!(Mempool::lookup(&eal, "cache").unwrap(), cache);
}

#[test]
fn cache_fills_and_flushes_by_dpdk_rules() {
    let eal = solo_eal("mpcache", &["-l", "0"]);
    let n = 1023;
    let pool = Mempool::create(&eal, "rules", MempoolConfig::new(n, 64).cache_size(32)).unwrap();
    let me = eal.main_lcore();
    let stats = |p: &Mempool| p.cache_stats(me);
    // An empty cache is filled with cache_size + the missing objects.
    let first = pool.get().unwrap();
    assert_eq!(pool.common_count(), n - 33);
    assert_eq!((stats(&pool).len, stats(&pool).fills), (32, 1));
    // Served from the cache while it holds enough.
    let mut held = Vec::new();
    assert!(pool.get_bulk(32, &mut held));
    assert_eq!(stats(&pool).len, 0);
    assert_eq!(pool.common_count(), n - 33);
    // Partly from the cache: its 0 objects, the rest from a new fill.
    assert!(pool.get_bulk(5, &mut held));
    assert_eq!((stats(&pool).len, stats(&pool).fills), (32, 2));
    assert_eq!(pool.common_count(), n - 33 - 37);
    // Puts go to the cache up to the flush threshold (48)...
    pool.put_iter(held.drain(..16));
    assert_eq!(stats(&pool).len, 48);
    assert_eq!(stats(&pool).flushes, 0);
    // ...one more flushes the whole cache first, then the cache holds the one.
    drop(first);
    assert_eq!((stats(&pool).len, stats(&pool).flushes), (1, 1));
    assert_eq!(pool.common_count(), n - 70 + 48);
    // A put larger than the threshold goes to the store directly.
    let mut big = Vec::new();
    assert!(pool.get_bulk(49, &mut big));
    let before = stats(&pool);
    let common = pool.common_count();
    pool.put_bulk(&mut big);
    assert_eq!(stats(&pool).len, before.len);
    assert_eq!(pool.common_count(), common + 49);
    // A get larger than CACHE_MAX_SIZE bypasses the fill.
    drop(held);
    let mut huge = Vec::new();
    let fills = stats(&pool).fills;
    assert!(pool.get_bulk(600, &mut huge));
    assert_eq!(stats(&pool).fills, fills);
    assert_eq!(stats(&pool).len, 0, "cached objects are served first");
    drop(huge);
    assert_eq!(pool.avail_count(), n);
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
}

#[test]
fn bulk_is_all_or_nothing_at_the_edge() {
    let eal = solo_eal("mpbulk", &["-l", "0"]);
    for cache in [0, 8] {
        let name = format!("edge{cache}");
        let pool =
            Mempool::create(&eal, &name, MempoolConfig::new(15, 64).cache_size(cache)).unwrap();
        let mut v = Vec::new();
        assert!(!pool.get_bulk(16, &mut v), "more than the pool");
        assert!(v.is_empty());
        assert_eq!(pool.avail_count(), 15);
        assert!(pool.get_bulk(10, &mut v));
        assert!(!pool.get_bulk(6, &mut v), "one more than what is left");
        assert_eq!(v.len(), 10);
        assert_eq!(pool.avail_count(), 5);
        assert!(pool.get_bulk(5, &mut v), "exactly what is left");
        assert!(pool.is_empty());
        assert!(pool.get().is_none());
        assert!(!pool.get_bulk(1, &mut v));
        assert!(pool.get_bulk(0, &mut v), "zero objects always succeed");
        assert_eq!(pool.in_use_count(), 15);
        pool.put_bulk(&mut v);
        assert!(pool.is_full());
        assert!(pool.audit().is_ok());
    }
}

#[test]
fn exhausting_a_pool_then_refilling_it() {
    let eal = solo_eal("mpexh", &["-l", "0"]);
    let pool = Mempool::create(&eal, "exh", MempoolConfig::new(255, 32).cache_size(16)).unwrap();
    let mut v = Vec::new();
    while pool.get_bulk(7, &mut v) {}
    while let Some(o) = pool.get() {
        v.push(o);
    }
    assert_eq!(v.len(), 255);
    assert_eq!(pool.avail_count(), 0);
    assert_eq!(pool.usage().by_slot[0].in_hand, 255);
    assert_eq!(pool.in_use_by_slot(), vec![(eal.slot().unwrap(), 255)]);
    for o in v.drain(..) {
        drop(o);
    }
    assert!(pool.is_full());
    assert_eq!(pool.in_use_by_slot(), vec![(eal.slot().unwrap(), 0)]);
}

#[test]
fn non_lcore_threads_bypass_the_cache() {
    let eal = solo_eal("mpnolc", &["-l", "0-1"]);
    let pool = Mempool::create(&eal, "bypass", MempoolConfig::new(511, 64).cache_size(32)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(shoal::eal::lcore_id(), None);
            let o = pool.get().unwrap();
            assert_eq!(pool.common_count(), 510, "one object, no fill");
            drop(o);
            assert_eq!(pool.common_count(), 511);
            for l in 0..2 {
                assert_eq!(pool.cache_stats(LcoreId(l)).len, 0);
            }
        });
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(
                eal.register_thread(LcoreId(0)).unwrap_err(),
                shoal::eal::LcoreError::Taken(0)
            );
            assert_eq!(
                eal.register_thread(LcoreId(5)).unwrap_err(),
                shoal::eal::LcoreError::NotOurs(5)
            );
            eal.register_thread(LcoreId(1)).unwrap();
            assert_eq!(shoal::eal::lcore_id(), Some(LcoreId(1)));
            let o = pool.get().unwrap();
            assert_eq!(pool.cache_stats(LcoreId(1)).len, 32);
            drop(o);
            assert_eq!(pool.cache_stats(LcoreId(1)).len, 33);
            eal.unregister_thread();
            assert_eq!(shoal::eal::lcore_id(), None);
        });
    });
    // The thread ended: lcore 1 can be registered again.
    std::thread::scope(|s| {
        s.spawn(|| eal.register_thread(LcoreId(1)).unwrap());
    });
    assert_eq!(pool.avail_count(), 511);
}

#[test]
fn two_lcore_threads_share_a_pool() {
    let eal = solo_eal("mpthr", &["-l", "0-1"]);
    for cache in [64, 0] {
        let cfg = MempoolConfig::new(2047, 64).cache_size(cache);
        let pool = Mempool::create(&eal, &format!("shared{cache}"), cfg).unwrap();
        share_between_two_lcores(&eal, pool);
    }
}

fn share_between_two_lcores(eal: &Eal, pool: Mempool) {
    let iters = 20_000;
    let work = |id: u32| {
        let mut v: Vec<PoolObj> = Vec::new();
        for k in 0..iters {
            let n = 1 + (k % 32) as usize;
            if pool.get_bulk(n, &mut v) {
                for o in &mut v {
                    o.data_mut()[0] = id as u8;
                }
                for o in &v {
                    assert_eq!(o.data()[0], id as u8, "an object was shared");
                }
                pool.put_bulk(&mut v);
            }
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            eal.register_thread(LcoreId(1)).unwrap();
            work(1)
        });
        work(0);
    });
    assert_eq!(pool.avail_count(), 2047);
    let audit = pool.audit();
    assert!(audit.is_ok(), "{audit:?}");
    assert_eq!(audit.free, audit.in_store);
}

#[test]
fn ownership_moves_by_raw_index_and_is_checked() {
    let eal = solo_eal("mpraw", &["-l", "0"]);
    let pool = Mempool::create(&eal, "raw", MempoolConfig::new(63, 64).cache_size(8)).unwrap();
    let other = Mempool::create(&eal, "other", MempoolConfig::new(63, 64)).unwrap();
    let mut o = pool.get().unwrap();
    o.data_mut()[..3].copy_from_slice(b"abc");
    let raw = o.into_raw();
    assert_eq!(pool.usage().in_flight, 1);
    assert_eq!(pool.in_use_count(), 1);
    assert!(other.from_raw(raw).is_none(), "another pool's index");
    let back = pool.from_raw(raw).unwrap();
    assert_eq!(&back.data()[..3], b"abc");
    assert!(pool.from_raw(raw).is_none(), "claimed twice");
    assert!(pool.from_raw(ObjIdx(raw.0 + 1)).is_none(), "never sent");
    assert!(
        pool.from_raw(ObjIdx(raw.0 | 0x7f_ffff)).is_none(),
        "out of range"
    );
    drop(back);
    assert!(pool.is_full());
    assert!(pool.audit().is_ok());
}

#[test]
fn free_refuses_a_pool_in_use() {
    let eal = solo_eal("mpfree", &["-l", "0"]);
    let pool = Mempool::create(&eal, "f", MempoolConfig::new(31, 64).cache_size(4)).unwrap();
    let o = pool.get().unwrap();
    assert!(matches!(
        pool.free(&eal),
        Err(Error::InUse { in_use: 1, .. })
    ));
    // The object still names its pool.
    let pool = o.pool();
    drop(o);
    pool.free(&eal).unwrap();
    assert_eq!(
        Mempool::lookup(&eal, "f").unwrap_err(),
        Error::NotFound("f".into())
    );
    // The name can be used again.
    let again = Mempool::create(&eal, "f", MempoolConfig::new(7, 64)).unwrap();
    assert_eq!(again.avail_count(), 7);
}

#[test]
fn single_producer_single_consumer_pool() {
    let eal = solo_eal("mpspsc", &["-l", "0"]);
    let pool = Mempool::create(
        &eal,
        "spsc",
        MempoolConfig::new(127, 64).flags(flags::SP_PUT | flags::SC_GET),
    )
    .unwrap();
    let mut v = Vec::new();
    for _ in 0..100 {
        assert!(pool.get_bulk(127, &mut v));
        pool.put_bulk(&mut v);
    }
    assert!(pool.is_full());
}

#[test]
fn untracked_pool_counts_without_tags() {
    let eal = solo_eal("mpuntr", &["-l", "0"]);
    let pool = Mempool::create(
        &eal,
        "untracked",
        MempoolConfig::new(127, 64)
            .cache_size(16)
            .flags(flags::NO_OWNER_TAGS),
    )
    .unwrap();
    let mut v = Vec::new();
    assert!(pool.get_bulk(100, &mut v));
    assert_eq!(pool.in_use_count(), 100);
    let audit = pool.audit();
    assert!(!audit.tracked && audit.is_ok(), "{audit:?}");
    drop(v);
    assert!(pool.is_full());
}

#[test]
fn every_bulk_size_keeps_every_object_exactly_once() {
    use shoal::mempool::PoolObjs;
    let eal = solo_eal("mpsizes", &["-l", "0"]);
    let pool = Mempool::create(&eal, "sizes", MempoolConfig::new(1023, 16).cache_size(64)).unwrap();
    let mut batch = PoolObjs::new(&pool);
    let mut vec = Vec::new();
    for n in 1..=130 {
        assert!(batch.get_bulk(n));
        assert!(pool.get_bulk(n, &mut vec));
        let mut all: Vec<u32> = batch.indices().to_vec();
        all.extend(vec.iter().map(|o| o.index()));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2 * n, "n = {n}: an object was handed out twice");
        batch.put_bulk(n / 2 + 1);
        pool.put_tail(&mut vec, n / 2 + 1);
        batch.clear();
        pool.put_bulk(&mut vec);
        assert_eq!(pool.avail_count(), 1023, "n = {n}");
    }
    let mut everything = PoolObjs::new(&pool);
    assert!(everything.get_bulk(1023));
    let mut idx = everything.indices().to_vec();
    idx.sort_unstable();
    assert_eq!(idx, (0..1023).collect::<Vec<_>>());
    drop(everything);
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
}

#[test]
fn two_lcores_bulk_32_without_cache() {
    use shoal::mempool::PoolObjs;
    let eal = solo_eal("mpb32", &["-l", "0-1"]);
    let pool = Mempool::create(&eal, "b32", MempoolConfig::new(2047, 2048)).unwrap();
    let barrier = std::sync::Barrier::new(2);
    let work = || {
        barrier.wait();
        let mut objs = PoolObjs::with_capacity(&pool, 512);
        for _ in 0..20_000 {
            assert!(objs.get_bulk(32), "{:?}", pool.usage());
            objs.put_bulk(32);
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            eal.register_thread(LcoreId(1)).unwrap();
            work()
        });
        work();
    });
    assert_eq!(pool.avail_count(), 2047);
}

#[test]
fn no_handle_of_this_process_outlives_a_freed_pool() {
    let eal = solo_eal("mphandles", &["-l", "0"]);
    let pool = Mempool::create(&eal, "h", MempoolConfig::new(15, 64)).unwrap();
    // A clone, or an object table (even empty), is a handle: the free is refused while it
    // lives, so it can never be used on memory a later zone took over.
    let clone = pool.clone();
    let other = pool.clone();
    let refused = other.free(&eal);
    assert!(
        matches!(refused, Err(Error::HandlesAlive { others: 2, .. })),
        "{refused:?}"
    );
    let table = PoolObjs::new(&clone);
    drop(clone);
    let pool2 = table.pool();
    drop(pool);
    let refused = pool2.free(&eal);
    assert!(
        matches!(refused, Err(Error::HandlesAlive { others: 1, .. })),
        "{refused:?}"
    );
    let last = table.pool();
    drop(table);
    last.free(&eal).expect("the last handle frees the pool");
    assert_eq!(
        Mempool::lookup(&eal, "h").unwrap_err(),
        Error::NotFound("h".into())
    );
}
