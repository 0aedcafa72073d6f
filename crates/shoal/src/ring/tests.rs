//! DPDK `ring_autotest` behaviours, for every pair of sync modes, element sizes 4, 8, 16 and 20
//! bytes, and the bulk, burst, peek and zero-copy APIs, on process-local regions.

use std::fmt::Debug;

use bytemuck::{Pod, Zeroable};

use super::*;
use crate::memory::{Fresh, Mapping, Region};

const MODES: [SyncMode; 4] = [SyncMode::Sp, SyncMode::Mp, SyncMode::MpRts, SyncMode::MpHts];
/// Slots of the rings most tests use (fewer under Miri, which is a thousand times slower).
const RING_SIZE: u32 = if cfg!(miri) { 128 } else { 1024 };
const MAX_BULK: usize = 32;

/// 20-byte element (DPDK's odd element size).
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct E20([u32; 5]);

/// 16-byte element.
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct E16([u64; 2]);

trait Elem: Pod + PartialEq + Debug {
    fn make(i: u32) -> Self;
}
impl Elem for u32 {
    fn make(i: u32) -> Self {
        i.wrapping_mul(2654435761) ^ 0x5a5a
    }
}
impl Elem for u64 {
    fn make(i: u32) -> Self {
        (u64::from(i) << 32) | u64::from(!i)
    }
}
impl Elem for E16 {
    fn make(i: u32) -> Self {
        E16([u64::from(i), u64::from(i) * 3 + 1])
    }
}
impl Elem for E20 {
    fn make(i: u32) -> Self {
        E20([i, i + 1, i ^ 7, !i, i.rotate_left(5)])
    }
}

/// Which enqueue/dequeue functions a scenario uses.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    Bulk,
    Burst,
    /// `*_start` + `finish_with` / copying dequeue start + `finish`.
    PeekBulk,
    PeekBurst,
    /// zero-copy starts, slices, `finish`.
    ZcBulk,
    ZcBurst,
}
const APIS: [Api; 6] = [
    Api::Bulk,
    Api::Burst,
    Api::PeekBulk,
    Api::PeekBurst,
    Api::ZcBulk,
    Api::ZcBurst,
];

impl Api {
    fn is_bulk(self) -> bool {
        matches!(self, Api::Bulk | Api::PeekBulk | Api::ZcBulk)
    }
    fn is_peek(self) -> bool {
        !matches!(self, Api::Bulk | Api::Burst)
    }
}

fn cfg(count: u32, prod: SyncMode, cons: SyncMode) -> RingConfig {
    RingConfig {
        count,
        prod,
        cons,
        ..RingConfig::new(count)
    }
}

fn make<T: Pod>(name: &str, c: &RingConfig) -> Ring<T> {
    let region = Fresh::heap(Ring::<T>::memsize(c).expect("memsize"));
    Ring::init(region, name, c).expect("init")
}

fn src<T: Elem>(n: usize) -> Vec<T> {
    (0..n as u32).map(T::make).collect()
}

/// Enqueues `v` with `api`; returns how many went in.
fn enq<T: Pod>(p: &mut Producer<T>, api: Api, v: &[T]) -> usize {
    match api {
        Api::Bulk => p.enqueue_bulk(v).map_or(0, |_| v.len()),
        Api::Burst => p.enqueue_burst(v),
        Api::PeekBulk | Api::PeekBurst => {
            let r = if api.is_bulk() {
                p.enqueue_bulk_start(v.len())
            } else {
                p.enqueue_burst_start(v.len())
            };
            r.expect("peek mode").finish_with(v)
        }
        Api::ZcBulk | Api::ZcBurst => {
            let mut r = if api.is_bulk() {
                p.enqueue_bulk_start(v.len())
            } else {
                p.enqueue_burst_start(v.len())
            };
            let r0 = r.as_mut().expect("peek mode");
            let n = r0.len();
            let (a, b) = r0.slices_mut();
            assert_eq!(a.len() + b.len(), n);
            a.copy_from_slice(&v[..a.len()]);
            b.copy_from_slice(&v[a.len()..n]);
            r.unwrap().finish(n)
        }
    }
}

/// Dequeues into `out` with `api`; returns how many came out.
fn deq<T: Pod>(c: &mut Consumer<T>, api: Api, out: &mut [T]) -> usize {
    match api {
        Api::Bulk => c.dequeue_bulk(out).map_or(0, |_| out.len()),
        Api::Burst => c.dequeue_burst(out),
        Api::PeekBulk | Api::PeekBurst => {
            let r = if api.is_bulk() {
                c.dequeue_bulk_start(out)
            } else {
                c.dequeue_burst_start(out)
            };
            let r = r.expect("peek mode");
            let n = r.len();
            r.finish(n)
        }
        Api::ZcBulk | Api::ZcBurst => {
            let n = out.len();
            let r = if api.is_bulk() {
                c.dequeue_zc_bulk_start(n)
            } else {
                c.dequeue_zc_burst_start(n)
            };
            let r = r.expect("peek mode");
            let (a, b) = r.slices();
            out[..a.len()].copy_from_slice(a);
            out[a.len()..a.len() + b.len()].copy_from_slice(b);
            let got = r.len();
            r.finish(got)
        }
    }
}

/// Runs `f` for every producer mode, consumer mode and API that the pair supports.
fn for_all(mut f: impl FnMut(SyncMode, SyncMode, Api)) {
    for prod in MODES {
        for cons in MODES {
            for api in APIS {
                if api.is_peek() && !(prod.supports_peek() && cons.supports_peek()) {
                    continue;
                }
                f(prod, cons, api);
            }
        }
    }
}

/// DPDK `test_ring_burst_bulk_tests1`: random shifts, fill to capacity, empty, compare.
fn full_empty<T: Elem>() {
    let mut rng = 0x1234_5678u32;
    for_all(|prod, cons, api| {
        let ctx = format!("{prod:?}/{cons:?} {api:?} {}B", std::mem::size_of::<T>());
        let ring = make::<T>("full_empty", &cfg(RING_SIZE, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let rsz = (RING_SIZE - 1) as usize;
        let s = src::<T>(rsz);
        let mut d = vec![T::zeroed(); rsz];
        for _ in 0..3 {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let shift = ((rng >> 8) as usize % rsz).max(1);
            assert_eq!(enq(&mut p, api, &s[..shift]), shift, "{ctx}");
            assert_eq!(deq(&mut c, api, &mut d[..shift]), shift, "{ctx}");
            assert_eq!(&d[..shift], &s[..shift], "{ctx}");
            assert_eq!(enq(&mut p, api, &s), rsz, "{ctx}");
            assert_eq!(ring.free_count(), 0, "{ctx}");
            assert_eq!(ring.count() as usize, rsz, "{ctx}");
            assert!(ring.is_full() && !ring.is_empty(), "{ctx}");
            assert_eq!(deq(&mut c, api, &mut d), rsz, "{ctx}");
            assert_eq!(ring.free_count() as usize, rsz, "{ctx}");
            assert_eq!(ring.count(), 0, "{ctx}");
            assert!(!ring.is_full() && ring.is_empty(), "{ctx}");
            assert_eq!(d, s, "{ctx}");
        }
    });
}

/// DPDK `test_ring_burst_bulk_tests2`: 1, 2 and MAX_BULK in, the same out, in order.
fn small_sequences<T: Elem>() {
    for_all(|prod, cons, api| {
        let ctx = format!("{prod:?}/{cons:?} {api:?} {}B", std::mem::size_of::<T>());
        let ring = make::<T>("small_sequences", &cfg(RING_SIZE, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let s = src::<T>(3 + MAX_BULK);
        let mut d = vec![T::zeroed(); 3 + MAX_BULK];
        assert_eq!(enq(&mut p, api, &s[..1]), 1, "{ctx}");
        assert_eq!(enq(&mut p, api, &s[1..3]), 2, "{ctx}");
        assert_eq!(enq(&mut p, api, &s[3..]), MAX_BULK, "{ctx}");
        assert_eq!(deq(&mut c, api, &mut d[..1]), 1, "{ctx}");
        assert_eq!(deq(&mut c, api, &mut d[1..3]), 2, "{ctx}");
        assert_eq!(deq(&mut c, api, &mut d[3..]), MAX_BULK, "{ctx}");
        assert_eq!(d, s, "{ctx}");
    });
}

/// DPDK `test_ring_burst_bulk_tests3`: MAX_BULK in and out over the whole ring, twice round.
fn wrap_around<T: Elem>() {
    for_all(|prod, cons, api| {
        let ctx = format!("{prod:?}/{cons:?} {api:?} {}B", std::mem::size_of::<T>());
        // 3 * MAX_BULK does not divide the size, so bursts straddle the end of the slots.
        let ring = make::<T>("wrap_around", &cfg(64, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let total = 2 * 64 * 3;
        let s = src::<T>(total);
        let mut d = vec![T::zeroed(); total];
        for (sc, dc) in s.chunks(24).zip(d.chunks_mut(24)) {
            assert_eq!(enq(&mut p, api, sc), sc.len(), "{ctx}");
            assert_eq!(deq(&mut c, api, dc), dc.len(), "{ctx}");
        }
        assert_eq!(d, s, "{ctx}");
    });
}

/// DPDK `test_ring_burst_bulk_tests4`: bulk and burst at the edge of full and empty.
fn edges<T: Elem>() {
    for_all(|prod, cons, api| {
        let ctx = format!("{prod:?}/{cons:?} {api:?} {}B", std::mem::size_of::<T>());
        let ring = make::<T>("edges", &cfg(RING_SIZE, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let s = src::<T>(RING_SIZE as usize + MAX_BULK);
        let mut d = vec![T::zeroed(); RING_SIZE as usize + MAX_BULK];
        let mut si = 0;
        for _ in 0..(RING_SIZE as usize / MAX_BULK - 1) {
            assert_eq!(enq(&mut p, api, &s[si..si + MAX_BULK]), MAX_BULK, "{ctx}");
            si += MAX_BULK;
        }
        assert_eq!(enq(&mut p, api, &s[si..si + 2]), 2, "{ctx}");
        si += 2;
        // One slot always stays free: MAX_BULK - 3 fit.
        if api.is_bulk() {
            assert_eq!(
                enq(&mut p, api, &s[si..si + MAX_BULK]),
                0,
                "bulk is all or nothing: {ctx}"
            );
            assert_eq!(
                enq(&mut p, api, &s[si..si + MAX_BULK - 3]),
                MAX_BULK - 3,
                "{ctx}"
            );
        } else {
            assert_eq!(
                enq(&mut p, api, &s[si..si + MAX_BULK]),
                MAX_BULK - 3,
                "{ctx}"
            );
        }
        si += MAX_BULK - 3;
        assert!(ring.is_full(), "{ctx}");
        assert_eq!(enq(&mut p, api, &s[si..si + MAX_BULK]), 0, "{ctx}");
        assert_eq!(enq(&mut p, api, &s[si..si + 1]), 0, "{ctx}");

        let mut di = 0;
        for _ in 0..(RING_SIZE as usize / MAX_BULK - 1) {
            assert_eq!(
                deq(&mut c, api, &mut d[di..di + MAX_BULK]),
                MAX_BULK,
                "{ctx}"
            );
            di += MAX_BULK;
        }
        assert_eq!(deq(&mut c, api, &mut d[di..di + 2]), 2, "{ctx}");
        di += 2;
        if api.is_bulk() {
            assert_eq!(
                deq(&mut c, api, &mut d[di..di + MAX_BULK]),
                0,
                "bulk is all or nothing: {ctx}"
            );
            assert_eq!(
                deq(&mut c, api, &mut d[di..di + MAX_BULK - 3]),
                MAX_BULK - 3,
                "{ctx}"
            );
        } else {
            assert_eq!(
                deq(&mut c, api, &mut d[di..di + MAX_BULK]),
                MAX_BULK - 3,
                "{ctx}"
            );
        }
        di += MAX_BULK - 3;
        assert!(ring.is_empty(), "{ctx}");
        assert_eq!(deq(&mut c, api, &mut d[di..di + 1]), 0, "{ctx}");
        assert_eq!(&d[..di], &s[..si], "{ctx}");
    });
}

/// DPDK `test_ring_basic_ex`: single values to full and back, then small burst and bulk.
fn singles<T: Elem>() {
    for prod in MODES {
        for cons in MODES {
            let ctx = format!("{prod:?}/{cons:?} {}B", std::mem::size_of::<T>());
            let ring = make::<T>("singles", &cfg(RING_SIZE, prod, cons));
            let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
            assert!(ring.is_empty(), "{ctx}");
            let s = src::<T>(RING_SIZE as usize);
            for v in &s[..RING_SIZE as usize - 1] {
                assert_eq!(p.enqueue(*v), Ok(()), "{ctx}");
            }
            assert!(ring.is_full(), "{ctx}");
            assert_eq!(p.enqueue(s[0]), Err(Full { free: 0 }), "{ctx}");
            for v in &s[..RING_SIZE as usize - 1] {
                assert_eq!(c.dequeue().as_ref(), Some(v), "{ctx}");
            }
            assert!(ring.is_empty(), "{ctx}");
            assert_eq!(c.dequeue(), None, "{ctx}");
            let mut d = [T::zeroed(); 2];
            assert_eq!(p.enqueue_burst(&s[..2]), 2, "{ctx}");
            assert_eq!(c.dequeue_burst(&mut d), 2, "{ctx}");
            assert_eq!(&d, &s[..2], "{ctx}");
            assert_eq!(p.enqueue_bulk(&s[2..4]), Ok(RING_SIZE - 3), "{ctx}");
            assert_eq!(c.dequeue_bulk(&mut d), Ok(0), "{ctx}");
            assert_eq!(&d, &s[2..4], "{ctx}");
        }
    }
}

/// DPDK `test_ring_with_exact_size`: an exact ring of 16 holds 16, a plain one 15.
fn exact_size<T: Elem>() {
    for prod in MODES {
        for cons in MODES {
            let ctx = format!("{prod:?}/{cons:?} {}B", std::mem::size_of::<T>());
            let std_r = make::<T>("std", &cfg(16, prod, cons));
            let exact = make::<T>(
                "exact sz",
                &RingConfig {
                    exact_size: true,
                    ..cfg(16, prod, cons)
                },
            );
            assert!(std_r.size() <= exact.size(), "{ctx}");
            assert_eq!(exact.size(), 32, "{ctx}");
            assert_eq!(exact.capacity(), 16, "{ctx}");
            assert_eq!(std_r.capacity(), 15, "{ctx}");
            let (mut sp, mut ep) = (std_r.producer().unwrap(), exact.producer().unwrap());
            let s = src::<T>(17);
            for v in &s[..15] {
                assert!(sp.enqueue(*v).is_ok(), "{ctx}");
                assert!(ep.enqueue(*v).is_ok(), "{ctx}");
            }
            assert!(sp.enqueue(s[15]).is_err(), "{ctx}");
            assert!(ep.enqueue(s[15]).is_ok(), "{ctx}");
            assert!(ep.enqueue(s[16]).is_err(), "{ctx}");
            assert!(exact.is_full(), "{ctx}");
            assert_eq!(exact.count(), 16, "{ctx}");
            let mut d = vec![T::zeroed(); 17];
            let mut ec = exact.consumer().unwrap();
            assert_eq!(ec.dequeue_burst(&mut d), 16, "{ctx}");
            assert_eq!(&d[..16], &s[..16], "{ctx}");
        }
    }
}

macro_rules! per_size {
    ($($name:ident => $f:ident;)*) => {$(
        mod $name {
            use super::*;
            #[test]
            fn elements_of_4_bytes() { $f::<u32>() }
            #[test]
            fn elements_of_8_bytes() { $f::<u64>() }
            #[test]
            fn elements_of_16_bytes() { $f::<E16>() }
            #[test]
            fn elements_of_20_bytes() { $f::<E20>() }
        }
    )*};
}

per_size! {
    fill_to_capacity_and_empty_keeps_order => full_empty;
    sequences_of_one_two_and_max_bulk_keep_order => small_sequences;
    bursts_straddling_the_end_wrap_around_in_order => wrap_around;
    bulk_is_all_or_nothing_and_burst_takes_what_fits => edges;
    single_values_fill_and_drain_the_ring => singles;
    exact_size_ring_holds_exactly_count => exact_size;
}

#[test]
fn bad_counts_are_rejected() {
    for count in [0, 4097, 1000, RING_SZ_MASK, RING_SZ_MASK + 1, u32::MAX] {
        let e = Ring::<u64>::memsize(&RingConfig::new(count)).unwrap_err();
        assert_eq!(e, Error::InvalidCount { count });
    }
    let exact = |count| RingConfig {
        exact_size: true,
        ..RingConfig::new(count)
    };
    assert!(Ring::<u64>::memsize(&exact(0)).is_err());
    assert!(Ring::<u64>::memsize(&exact(RING_SZ_MASK / 2 + 1)).is_err());
    assert!(Ring::<u64>::memsize(&exact(1000)).is_ok());
    // The largest ring is accepted by memsize (the region is another matter).
    assert!(Ring::<u32>::memsize(&RingConfig::new(1 << 30)).is_ok());
}

#[test]
fn names_longer_than_28_bytes_are_rejected() {
    let c = RingConfig::new(16);
    let ok = "a".repeat(RING_NAMESIZE - 1);
    let long = "a".repeat(RING_NAMESIZE);
    let r = make::<u32>(&ok, &c);
    assert_eq!(r.name(), ok);
    let region = || Fresh::heap(Ring::<u32>::memsize(&c).unwrap());
    assert_eq!(
        Ring::<u32>::init(region(), &long, &c).unwrap_err(),
        Error::NameTooLong(long)
    );
    assert!(matches!(
        Ring::<u32>::init(region(), "a\0b", &c),
        Err(Error::InvalidName(_))
    ));
}

#[test]
#[allow(unsafe_code)] // a misaligned Fresh region, carved out of a heap block by hand
fn unfit_regions_and_element_types_are_rejected() {
    let c = RingConfig::new(64);
    let need = Ring::<u64>::memsize(&c).unwrap();
    let small = Fresh::heap(need - 1);
    assert_eq!(
        Ring::<u64>::init(small, "r", &c).unwrap_err(),
        Error::RegionTooSmall {
            need,
            have: need - 1
        }
    );
    let map = Mapping::heap(need + 64);
    // SAFETY: the heap block is new; this is the only region over it.
    let odd = unsafe { Fresh::new_unchecked(Region::new(map, 64, need).unwrap()) };
    assert!(matches!(
        Ring::<u64>::init(odd, "r", &c),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        Ring::<()>::memsize(&c),
        Err(Error::ElementType { size: 0, .. })
    ));
    let htd = RingConfig {
        htd_max: Some(4),
        ..c
    };
    assert_eq!(
        Ring::<u64>::init(Fresh::heap(need), "r", &htd).unwrap_err(),
        Error::HtdMaxWithoutRts
    );
}

#[test]
fn attach_validates_the_header() {
    let c = RingConfig {
        count: 64,
        prod: SyncMode::MpRts,
        cons: SyncMode::MpHts,
        exact_size: false,
        htd_max: Some(5),
    };
    let zeroed = Region::heap(Ring::<u64>::memsize(&c).unwrap());
    assert!(matches!(
        Ring::<u64>::attach(zeroed),
        Err(Error::NotARing { found: 0 })
    ));
    let ring = Ring::<u64>::init(
        Fresh::heap(Ring::<u64>::memsize(&c).unwrap()),
        "attached",
        &c,
    )
    .unwrap();
    let region = ring.region().clone();
    let other = Ring::<u64>::attach(region.clone()).unwrap();
    assert_eq!(other.name(), "attached");
    assert_eq!(
        (other.prod_mode(), other.cons_mode()),
        (SyncMode::MpRts, SyncMode::MpHts)
    );
    assert_eq!(other.capacity(), 63);
    assert_eq!(other.prod_htd_max(), Ok(5));
    assert_eq!(other.flags(), flags::MP_RTS_ENQ | flags::MC_HTS_DEQ);
    ring.producer().unwrap().enqueue(42).unwrap();
    assert_eq!(other.consumer().unwrap().dequeue(), Some(42));
    // Same size, other type: fine. Other size: refused.
    assert!(Ring::<[u32; 2]>::attach(region.clone()).is_ok());
    let e = Ring::<u32>::attach(region.clone()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ElementSizeMismatch {
                ours: 4,
                theirs: 8,
                ..
            }
        ),
        "{e}"
    );
    // A smaller view of the same bytes is refused.
    let short = Region::new(region.mapping().clone(), 0, 512).unwrap();
    assert!(matches!(
        Ring::<u64>::attach(short),
        Err(Error::RegionTooSmall { .. })
    ));
}

#[test]
fn single_sides_hand_out_one_handle_at_a_time() {
    let ring = make::<u32>("claims", &cfg(16, SyncMode::Sp, SyncMode::Sp));
    let p = ring.producer().expect("first");
    assert!(ring.producer().is_none());
    assert!(ring.clone().producer().is_none());
    let c = ring.consumer().expect("first");
    assert!(ring.consumer().is_none());
    assert_eq!(ring.info().prod.owner, Some(crate::sync::LOCAL_ME));
    drop(p);
    drop(c);
    assert!(ring.producer().is_some());
    assert!(ring.consumer().is_some());

    let multi = make::<u32>("multi", &cfg(16, SyncMode::Mp, SyncMode::MpRts));
    let handles: Vec<_> = (0..4).map(|_| multi.producer().unwrap()).collect();
    assert_eq!(handles.len(), 4);
    assert!(multi.consumer().is_some() && multi.consumer().is_some());
}

#[test]
fn dead_owner_claim_is_taken_over() {
    let ring = make::<u32>("dead", &cfg(16, SyncMode::Sp, SyncMode::Sp));
    // A member id that no live process of this (process-local) ring holds.
    ring.mem.hdr().prod.own.owner.store(
        crate::sync::MemberId::member(3, 9).raw(),
        std::sync::atomic::Ordering::Relaxed,
    );
    assert!(ring.producer().is_some());
}

#[test]
fn free_space_and_available_are_reported() {
    for_all(|prod, cons, api| {
        if api.is_peek() {
            return;
        }
        let ring = make::<u32>("report", &cfg(16, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        assert_eq!(p.enqueue_bulk(&[1, 2, 3]), Ok(12));
        assert_eq!(p.enqueue_burst_with_free(&[0; 20]), (12, 0));
        assert_eq!(p.enqueue_bulk(&[1]), Err(Full { free: 0 }));
        let mut out = [0u32; 20];
        assert_eq!(c.dequeue_bulk(&mut out[..5]), Ok(10));
        assert_eq!(c.dequeue_bulk(&mut out[..11]), Err(Empty { available: 10 }));
        assert_eq!(c.dequeue_burst_with_available(&mut out), (10, 0));
        assert_eq!(p.enqueue_bulk(&[]), Ok(15));
        assert_eq!(c.dequeue_bulk(&mut []), Ok(0));
    });
}

#[test]
fn positions_wrap_at_two_to_the_32() {
    for_all(|prod, cons, api| {
        let ring = make::<u64>("wrap32", &cfg(16, prod, cons));
        let start = u32::MAX - 20;
        for (ht, mode) in [(&ring.mem.hdr().prod, prod), (&ring.mem.hdr().cons, cons)] {
            let p = u64::from(start);
            use crate::sync::atomic::Ordering::Relaxed;
            match mode {
                SyncMode::MpHts => ht.tail.store(p | (p << 32), Relaxed),
                _ => {
                    ht.own.head.store(p, Relaxed);
                    ht.tail.store(p, Relaxed);
                }
            }
        }
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let s = src::<u64>(100);
        let mut d = vec![0; 100];
        for (sc, dc) in s.chunks(7).zip(d.chunks_mut(7)) {
            assert_eq!(enq(&mut p, api, sc), sc.len());
            assert_eq!(ring.count() as usize, sc.len());
            assert_eq!(deq(&mut c, api, dc), dc.len());
        }
        assert_eq!(d, s, "{prod:?}/{cons:?} {api:?}");
        assert!(ring.info().prod.tail < 100);
    });
}

#[test]
fn peek_finish_publishes_a_prefix_and_returns_the_rest() {
    for prod in [SyncMode::Sp, SyncMode::MpHts] {
        for cons in [SyncMode::Sp, SyncMode::MpHts] {
            let ring = make::<u32>("peek", &cfg(16, prod, cons));
            let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
            let r = p.enqueue_burst_start(8).unwrap();
            assert_eq!((r.len(), r.free_space()), (8, 7));
            assert_eq!(ring.count(), 0, "nothing visible before finish");
            assert_eq!(r.finish_with(&[1, 2, 3]), 3);
            assert_eq!(ring.count(), 3);
            // Dropped reservation: nothing published.
            drop(p.enqueue_bulk_start(4).unwrap());
            assert_eq!(ring.count(), 3);
            assert_eq!(
                p.enqueue_bulk_start(13).unwrap().len(),
                0,
                "bulk start: all or nothing"
            );
            let mut out = [0u32; 8];
            let r = c.dequeue_burst_start(&mut out).unwrap();
            assert_eq!((r.len(), r.available()), (3, 0));
            assert_eq!(&out[..3], &[1, 2, 3]);
            assert_eq!(r.finish(1), 1);
            assert_eq!(ring.count(), 2);
            let r = c.dequeue_zc_burst_start(8).unwrap();
            assert_eq!(r.slices(), (&[2, 3][..], &[][..]));
            drop(r);
            assert_eq!(
                ring.count(),
                2,
                "a dropped dequeue reservation consumes nothing"
            );
            assert_eq!(c.dequeue_burst(&mut out), 2);
            assert_eq!(&out[..2], &[2, 3]);
        }
    }
}

#[test]
fn zero_copy_slices_split_at_the_end_of_the_slots() {
    let ring = make::<u32>("zc", &cfg(16, SyncMode::Sp, SyncMode::MpHts));
    let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(p.enqueue_burst(&[0; 12]), 12);
    assert_eq!(c.dequeue_burst(&mut [0; 12]), 12);
    let mut r = p.enqueue_bulk_start(10).unwrap();
    let (a, b) = r.slices_mut();
    assert_eq!((a.len(), b.len()), (4, 6));
    a.copy_from_slice(&[1, 2, 3, 4]);
    b.copy_from_slice(&[5, 6, 7, 8, 9, 10]);
    assert_eq!(r.finish(10), 10);
    let r = c.dequeue_zc_bulk_start(10).unwrap();
    assert_eq!(r.slices(), (&[1, 2, 3, 4][..], &[5, 6, 7, 8, 9, 10][..]));
    assert_eq!(r.finish(99), 10, "finish never consumes more than reserved");
    assert!(ring.is_empty());
}

#[test]
fn peek_is_refused_on_mp_and_rts_sides() {
    for mode in [SyncMode::Mp, SyncMode::MpRts] {
        let ring = make::<u32>("nopeek", &cfg(16, mode, mode));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let e = p.enqueue_burst_start(1).err().unwrap();
        assert_eq!(e, Error::PeekUnsupported { side: "prod", mode });
        let e = c.dequeue_zc_burst_start(1).err().unwrap();
        assert_eq!(e, Error::PeekUnsupported { side: "cons", mode });
    }
}

#[test]
fn htd_max_defaults_to_an_eighth_and_is_settable_on_rts_sides() {
    let ring = make::<u32>("htd", &cfg(1024, SyncMode::MpRts, SyncMode::Mp));
    assert_eq!(ring.prod_htd_max(), Ok(1023 / 8));
    assert_eq!(
        ring.cons_htd_max(),
        Err(Error::NotRts {
            side: "cons",
            mode: SyncMode::Mp
        })
    );
    ring.set_prod_htd_max(0).unwrap();
    assert_eq!(ring.prod_htd_max(), Ok(0));
    // htd_max 0: every operation waits for the previous one, still correct.
    let mut p = ring.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2, 3]), 3);
    assert!(ring.set_cons_htd_max(1).is_err());
}

#[test]
#[allow(unsafe_code)] // Ring::reset, whose contract a single-threaded test meets
fn reset_empties_the_ring() {
    for_all(|prod, cons, api| {
        if api != Api::Burst {
            return;
        }
        let ring = make::<u32>("reset", &cfg(16, prod, cons));
        let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
        assert_eq!(p.enqueue_burst(&[1, 2, 3, 4, 5]), 5);
        assert_eq!(c.dequeue_burst(&mut [0; 2]), 2);
        // SAFETY: this thread is the only user of the ring.
        unsafe { ring.reset() };
        assert!(ring.is_empty());
        let info = ring.info();
        assert_eq!(
            (
                info.prod.head,
                info.prod.tail,
                info.cons.head,
                info.cons.tail
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(p.enqueue_burst(&[9]), 1);
        assert_eq!(c.dequeue(), Some(9));
    });
}

#[test]
fn info_shows_positions_in_dpdk_dump_format() {
    let ring = make::<u64>("dump", &cfg(64, SyncMode::MpRts, SyncMode::MpHts));
    let (mut p, mut c) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(p.enqueue_burst(&[1, 2, 3]), 3);
    assert_eq!(p.enqueue(4), Ok(()));
    assert_eq!(c.dequeue(), Some(1));
    let info = ring.info();
    assert_eq!(
        (info.count, info.free, info.size, info.capacity),
        (3, 60, 64, 63)
    );
    assert_eq!(
        (
            info.prod.head,
            info.prod.tail,
            info.prod.head_cnt,
            info.prod.tail_cnt
        ),
        (4, 4, Some(2), Some(2))
    );
    assert_eq!((info.cons.head, info.cons.tail), (1, 1));
    let text = info.to_string();
    for line in [
        "ring <dump>",
        "  flags=48",
        "  size=64",
        "  capacity=63",
        "  used=3",
        "  avail=60",
        "  cons.sync_type=MT_HTS",
        "  cons.head=1",
        "  prod.sync_type=MT_RTS",
        "  prod.head.cnt=2",
        "  prod.htd_max=7",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["prod"]["mode"], "MpRts");
}

#[test]
fn flags_round_trip_with_dpdk_bits() {
    for prod in MODES {
        for cons in MODES {
            for exact_size in [false, true] {
                let c = RingConfig {
                    exact_size,
                    ..cfg(64, prod, cons)
                };
                assert_eq!(RingConfig::from_flags(64, c.flags()), Ok(c));
            }
        }
    }
    assert_eq!(RingConfig::from_flags(64, 0), Ok(RingConfig::new(64)));
    for bad in [
        0x80,
        flags::SP_ENQ | flags::MP_RTS_ENQ,
        flags::MC_HTS_DEQ | flags::MC_RTS_DEQ,
    ] {
        assert_eq!(
            RingConfig::from_flags(64, bad),
            Err(Error::InvalidFlags { flags: bad })
        );
    }
}

#[test]
fn a_ring_of_count_one_holds_nothing_and_an_exact_one_holds_one() {
    let r = make::<u32>("one", &RingConfig::new(1));
    assert_eq!((r.size(), r.capacity()), (1, 0));
    assert_eq!(
        Ring::<u32>::attach(r.region().clone()).unwrap().capacity(),
        0
    );
    assert_eq!(r.producer().unwrap().enqueue(1), Err(Full { free: 0 }));
    let r = make::<u32>(
        "one_exact",
        &RingConfig {
            exact_size: true,
            ..RingConfig::new(1)
        },
    );
    assert_eq!((r.size(), r.capacity()), (2, 1));
    let (mut p, mut c) = (r.producer().unwrap(), r.consumer().unwrap());
    for i in 0..5 {
        assert_eq!(p.enqueue(i), Ok(()));
        assert_eq!(p.enqueue(i), Err(Full { free: 0 }));
        assert_eq!(c.dequeue(), Some(i));
    }
}

#[test]
fn an_empty_hts_reservation_leaves_a_concurrent_one_alone() {
    let ring = make::<u32>("hts_empty", &cfg(16, SyncMode::Sp, SyncMode::MpHts));
    let mut p = ring.producer().unwrap();
    let (mut c1, mut c2) = (ring.consumer().unwrap(), ring.consumer().unwrap());
    let empty = c1.dequeue_zc_burst_start(4).unwrap();
    assert!(empty.is_empty());
    assert_eq!(p.enqueue_burst(&[1, 2, 3]), 3);
    let held = c2.dequeue_zc_burst_start(4).unwrap();
    assert_eq!(held.len(), 3);
    drop(empty);
    let info = ring.info();
    assert_eq!(
        (info.cons.head, info.cons.tail),
        (3, 0),
        "the open reservation survives"
    );
    assert_eq!(held.finish(3), 3);
    assert!(ring.is_empty());
}

/// A shared mapping of a memfd that a child process can map too (fd inherited).
#[allow(unsafe_code)] // memfd_create, ftruncate and mmap for the cross-process test
fn shared_memfd(len: usize, inherited: Option<i32>) -> (i32, std::sync::Arc<Mapping>) {
    let fd = match inherited {
        Some(fd) => fd,
        None => {
            // SAFETY: a NUL-terminated name; flags 0 leaves the fd inheritable (no CLOEXEC).
            let fd = unsafe { libc::memfd_create(c"shoal-ring-test".as_ptr(), 0) };
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            // SAFETY: fd is a memfd this process owns.
            let rc = unsafe { libc::ftruncate(fd, len as libc::off_t) };
            assert_eq!(rc, 0, "ftruncate: {}", std::io::Error::last_os_error());
            fd
        }
    };
    // SAFETY: maps `len` bytes of the memfd shared, at an address the kernel picks.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    assert_ne!(
        base,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    let base = std::ptr::NonNull::new(base.cast::<u8>()).expect("mmap never returns null");
    // SAFETY: a live shared mapping of `len` bytes, owned by the Mapping from now on.
    (
        fd,
        std::sync::Arc::new(unsafe { Mapping::from_mmap(base, len) }),
    )
}

const XP_VALUES: u64 = 100_000;

/// The child's half of `a_secondary_process_attaches_and_exchanges_values`.
fn cross_process_child(fd: i32, len: usize, rings: (usize, usize)) {
    // Occupy the parent's address so that our mapping lands elsewhere: the ring must not care.
    let parent = usize::from_str_radix(
        std::env::var("SHOAL_TEST_BASE")
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    block_address(parent, len);
    let (_, map) = shared_memfd(len, Some(fd));
    assert_ne!(map.base() as usize, parent);
    let to_child = Ring::<u64>::attach(Region::new(map.clone(), 0, rings.0).unwrap()).unwrap();
    let to_parent =
        Ring::<u64>::attach(Region::new(map.clone(), rings.0, rings.1).unwrap()).unwrap();
    assert_eq!(to_child.name(), "to_child");
    assert!(
        to_child.producer().is_none(),
        "the parent, alive, owns the SP side"
    );
    let mut rx = to_child.consumer().expect("SC side is free");
    let mut tx = to_parent.producer().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut want = 0u64;
    let mut buf = [0u64; 32];
    while want < XP_VALUES {
        assert!(
            std::time::Instant::now() < deadline,
            "child timed out at {want}"
        );
        let n = rx.dequeue_burst(&mut buf);
        for &v in &buf[..n] {
            assert_eq!(v, want, "values arrive in order");
            want += 1;
        }
        let mut sent = 0;
        while sent < n {
            sent += tx.enqueue_burst(&buf[sent..n].iter().map(|v| v * 2).collect::<Vec<_>>());
            std::thread::yield_now();
        }
        if n == 0 {
            std::thread::yield_now();
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)] // memfd_create, mmap and a child process
#[allow(unsafe_code)] // the two rings' Fresh regions over a shared mapping made here
fn a_secondary_process_attaches_and_exchanges_values() {
    let c1 = cfg(64, SyncMode::Sp, SyncMode::Sp);
    let c2 = cfg(64, SyncMode::MpRts, SyncMode::MpHts);
    let (l1, l2) = (
        Ring::<u64>::memsize(&c1).unwrap(),
        Ring::<u64>::memsize(&c2).unwrap(),
    );
    if let Ok("secondary") = std::env::var("SHOAL_TEST_ROLE").as_deref() {
        let fd = std::env::var("SHOAL_TEST_FD").unwrap().parse().unwrap();
        return cross_process_child(fd, l1 + l2, (l1, l2));
    }
    let (fd, map) = shared_memfd(l1 + l2, None);
    // SAFETY: the mapping is new and the child is started only after both rings are built;
    // the two regions do not overlap.
    let (r1, r2) = unsafe {
        (
            Fresh::new_unchecked(Region::new(map.clone(), 0, l1).unwrap()),
            Fresh::new_unchecked(Region::new(map.clone(), l1, l2).unwrap()),
        )
    };
    let to_child = Ring::<u64>::init(r1, "to_child", &c1).unwrap();
    let to_parent = Ring::<u64>::init(r2, "to_parent", &c2).unwrap();
    let mut tx = to_child.producer().unwrap();
    let mut rx = to_parent.consumer().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "ring::tests::a_secondary_process_attaches_and_exchanges_values",
            "--exact",
            "--nocapture",
        ])
        .env("SHOAL_TEST_ROLE", "secondary")
        .env("SHOAL_TEST_FD", fd.to_string())
        .env("SHOAL_TEST_BASE", format!("{:p}", map.base()))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = [0u64; 32];
    while got < XP_VALUES {
        if std::time::Instant::now() > deadline
            || child.try_wait().unwrap().is_some_and(|s| !s.success())
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child failed or timed out: sent {sent}, got {got}");
        }
        if sent < XP_VALUES {
            let batch: Vec<u64> = (sent..(sent + 16).min(XP_VALUES)).collect();
            sent += tx.enqueue_burst(&batch) as u64;
        }
        let n = rx.dequeue_burst(&mut buf);
        for &v in &buf[..n] {
            assert_eq!(v, got * 2, "echoes come back in order");
            got += 1;
        }
        if n == 0 {
            std::thread::yield_now();
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "child exited with {status}");
    drop(adopt_fd(fd));
}

#[allow(unsafe_code)] // adopts the memfd so that dropping it closes it
fn adopt_fd(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: fd is the memfd this test created and nothing else closes it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Reserves `addr .. addr + len` (inaccessible) so that later mappings go elsewhere; leaked.
#[allow(unsafe_code)] // mmap of a placeholder
fn block_address(addr: usize, len: usize) {
    // SAFETY: an anonymous PROT_NONE mapping that replaces nothing (MAP_FIXED_NOREPLACE);
    // failure only means the range is already taken, which serves as well.
    unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
    }
}

/// Overwrites `bytes` at `offset` of a region (a peer scribbling on the header).
#[allow(unsafe_code)] // raw writes into a heap region that nothing else uses
fn scribble(region: &Region, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= region.len());
    // SAFETY: in bounds (checked) of a live region that no other thread touches.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), region.as_ptr().add(offset), bytes.len())
    };
}

#[test]
fn attach_refuses_a_corrupted_header() {
    use std::mem::offset_of;
    let c = cfg(64, SyncMode::Sp, SyncMode::Mp);
    let fresh = || {
        let region = Fresh::heap(Ring::<u64>::memsize(&c).unwrap());
        Ring::<u64>::init(region, "victim", &c)
            .unwrap()
            .region()
            .clone()
    };
    let meta = offset_of!(header::RingHeader, meta);
    let cases: [(usize, Vec<u8>, &str); 5] = [
        (
            meta + offset_of!(header::Meta, size),
            1000u32.to_ne_bytes().to_vec(),
            "power of two",
        ),
        (
            meta + offset_of!(header::Meta, mask),
            7u32.to_ne_bytes().to_vec(),
            "power of two",
        ),
        (
            meta + offset_of!(header::Meta, capacity),
            64u32.to_ne_bytes().to_vec(),
            "capacity",
        ),
        (
            offset_of!(header::RingHeader, prod)
                + offset_of!(header::HeadTail, own)
                + offset_of!(header::Own, sync),
            9u32.to_ne_bytes().to_vec(),
            "sync mode",
        ),
        (meta + offset_of!(header::Meta, name), vec![b'a'; 32], "NUL"),
    ];
    for (offset, bytes, what) in cases {
        let region = fresh();
        scribble(&region, offset, &bytes);
        match Ring::<u64>::attach(region) {
            Err(Error::Corrupt(msg)) => assert!(msg.contains(what), "{msg}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let region = fresh();
    scribble(
        &region,
        meta + offset_of!(header::Meta, layout),
        &99u32.to_ne_bytes(),
    );
    assert_eq!(
        Ring::<u64>::attach(region).unwrap_err(),
        Error::LayoutMismatch {
            ours: header::RING_LAYOUT,
            theirs: 99
        }
    );
}
