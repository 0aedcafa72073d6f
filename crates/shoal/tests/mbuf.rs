//! Mbufs in one process: DPDK's test_mbuf behaviours (one mbuf's head and tail room, pool
//! exhaustion, clones and reference counts, copies, chains, linearize, bulk alloc, read).

use shoal::eal::LcoreId;
use shoal::mbuf::{
    ol_flags, Error, Mbuf, MbufBatch, MbufPool, DEFAULT_BUF_SIZE, HEADROOM, MAX_BURST, PORT_INVALID,
};
use shoal_testkit::solo_eal;

const ROOM: u16 = DEFAULT_BUF_SIZE;

fn fill(m: &mut Mbuf, n: u16, byte: u8) {
    m.append(n).unwrap().fill(byte);
}

#[test]
fn pool_creation_rules() {
    let eal = solo_eal("mbcreate", &["-l", "0"]);
    assert_eq!(
        MbufPool::create(&eal, "unaligned", 63, 0, 12, ROOM).unwrap_err(),
        Error::PrivSizeUnaligned(12)
    );
    let p = MbufPool::create(&eal, "mbuf_pool", 255, 32, 16, ROOM).unwrap();
    assert_eq!((p.data_room(), p.priv_size(), p.size()), (ROOM, 16, 255));
    assert_eq!(MbufPool::lookup(&eal, "mbuf_pool").unwrap(), p);
    assert!(matches!(
        shoal::mempool::Mempool::lookup(&eal, "mbuf_pool"),
        Err(shoal::mempool::Error::WrongKind { .. })
    ));
    shoal::mempool::Mempool::create(&eal, "plain", shoal::mempool::MempoolConfig::new(7, 8))
        .unwrap();
    assert!(matches!(
        MbufPool::lookup(&eal, "plain"),
        Err(Error::Mempool(shoal::mempool::Error::WrongKind { .. }))
    ));
    let infos = shoal::mempool::Mempool::list(&eal);
    assert!(infos
        .iter()
        .any(|i| i.name == "mbuf_pool" && i.kind == "mbuf"));
}

/// DPDK's test_one_pktmbuf.
#[test]
fn one_mbuf_head_and_tail_room() {
    let eal = solo_eal("mbone", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "one", 63, 0, 8, ROOM).unwrap();
    let mut m = pool.alloc().unwrap();
    assert_eq!((m.data_len(), m.pkt_len(), m.nb_segs()), (0, 0, 1));
    assert_eq!(m.headroom(), HEADROOM);
    assert_eq!(m.tailroom(), ROOM - HEADROOM);
    assert_eq!(m.port(), PORT_INVALID);
    assert_eq!((m.refcnt(), m.is_indirect()), (1, false));
    assert_eq!(m.priv_area().len(), 8);
    assert!(m.is_contiguous());
    // append
    m.append(1464).unwrap().fill(0x5a);
    assert_eq!((m.data_len(), m.pkt_len()), (1464, 1464));
    m.append(50).unwrap().fill(0x5b);
    assert_eq!(m.pkt_len(), 1514);
    assert!(m.data()[..1464].iter().all(|&b| b == 0x5a));
    assert!(m.data()[1464..].iter().all(|&b| b == 0x5b));
    let tail = m.tailroom();
    assert!(
        m.append(tail + 1).is_none(),
        "cannot append past the tailroom"
    );
    assert_eq!(m.pkt_len(), 1514, "a failed append changes nothing");
    // prepend
    m.prepend(20).unwrap().fill(0x11);
    m.prepend(30).unwrap().fill(0x22);
    assert_eq!((m.data_len(), m.headroom()), (1564, HEADROOM - 50));
    assert_eq!(&m.data()[..2], &[0x22, 0x22]);
    assert_eq!(m.data()[30], 0x11);
    assert!(m.prepend(m.headroom() + 1).is_none());
    // adj and trim
    assert!(m.adj(50));
    assert_eq!((m.data_len(), m.headroom()), (1514, HEADROOM));
    assert!(m.trim(50));
    assert_eq!(m.pkt_len(), 1464);
    assert!(!m.adj(1465));
    assert!(!m.trim(1465));
    assert!(m.trim(1464));
    assert_eq!((m.data_len(), m.pkt_len()), (0, 0));
    // edges: exactly the room there is
    let room = m.tailroom();
    assert!(m.append(room).is_some());
    assert_eq!(m.tailroom(), 0);
    assert!(m.append(1).is_none());
    let head = m.headroom();
    assert!(m.prepend(head).is_some());
    assert_eq!((m.headroom(), m.data_len()), (0, ROOM));
    // fields
    m.set_port(3);
    m.set_rss_hash(0xdead_beef);
    m.set_packet_type(0x11);
    m.set_ol_flags(ol_flags::RX_RSS_HASH);
    m.priv_area_mut().fill(7);
    assert_eq!(
        (m.port(), m.rss_hash(), m.packet_type(), m.ol_flags()),
        (3, 0xdead_beef, 0x11, ol_flags::RX_RSS_HASH)
    );
    drop(m);
    // A freed and reallocated mbuf is reset.
    let m = pool.alloc().unwrap();
    assert_eq!(
        (m.port(), m.ol_flags(), m.packet_type()),
        (PORT_INVALID, 0, 0)
    );
    assert_eq!((m.data_len(), m.headroom()), (0, HEADROOM));
}

#[test]
fn small_data_room_has_no_headroom_beyond_it() {
    let eal = solo_eal("mbsmall", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "small", 7, 0, 0, 64).unwrap();
    let mut m = pool.alloc().unwrap();
    assert_eq!((m.headroom(), m.tailroom()), (64, 0));
    assert!(m.append(1).is_none());
    assert_eq!(m.prepend(64).unwrap().len(), 64);
}

#[test]
fn exhausting_an_mbuf_pool() {
    let eal = solo_eal("mbexh", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "exh", 127, 16, 0, ROOM).unwrap();
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), 127);
    assert_eq!(pool.avail_count(), 0);
    all.clear();
    assert_eq!(pool.avail_count(), 127);
}

#[test]
fn bulk_alloc_is_all_or_nothing() {
    let eal = solo_eal("mbbulk", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "bulk", 100, 0, 0, ROOM).unwrap();
    let mut a = MbufBatch::new();
    let mut b = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut a, 60));
    assert!(!pool.alloc_bulk(&mut a, 5), "batch room is 4");
    assert!(!pool.alloc_bulk(&mut b, 41), "pool has 40");
    assert_eq!((b.len(), pool.avail_count()), (0, 40));
    assert!(pool.alloc_bulk(&mut b, 40));
    assert!(b.iter().all(|m| m.data_len() == 0 && m.refcnt() == 1));
    assert_eq!(pool.avail_count(), 0);
    let drained = a.drain(10..20);
    assert_eq!((drained.len(), a.len()), (10, 50));
    drop(drained);
    assert_eq!(pool.avail_count(), 10);
    let first = a.pop().unwrap();
    assert_eq!(a.len(), 49);
    a.clear();
    b.clear();
    drop(first);
    assert_eq!(pool.avail_count(), 100);
    assert!(pool.audit().is_ok());
    let mut c = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut c, MAX_BURST));
    assert!(c.is_full());
    assert!(c.push(pool.alloc().unwrap()).is_err());
    assert_eq!(c.into_iter().count(), MAX_BURST);
    assert_eq!(pool.avail_count(), 100);
}

/// A buffer that clones share is never handed out writable, to the original or to a clone;
/// once the clones are gone the original is writable again.
#[test]
fn a_shared_buffer_is_not_writable_until_the_clones_are_gone() {
    let eal = solo_eal("mbshared", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "direct", 31, 0, 0, ROOM).unwrap();
    let clones = MbufPool::create(&eal, "indirect", 31, 0, 0, 0).unwrap();
    let mut m = pool.alloc().unwrap();
    fill(&mut m, 100, 0x5a);
    assert!(m.is_writable());
    let mut c = m.clone_in(&clones).unwrap();
    assert!(!m.is_writable() && !c.is_writable());
    assert!(m.data_mut().is_none(), "the original while a clone exists");
    assert!(c.data_mut().is_none(), "a clone");
    assert!(m.append(4).is_none() && m.prepend(4).is_none());
    assert!(c.append(4).is_none() && c.prepend(4).is_none());
    assert_eq!((m.data_len(), c.data_len()), (100, 100), "nothing changed");
    // Reading and the private area stay available; a copy is writable.
    assert_eq!(c.data(), m.data());
    let mut private = c.copy(&pool, 0, u32::MAX).unwrap();
    private.data_mut().unwrap()[0] = 1;
    assert_eq!((m.data()[0], private.data()[0]), (0x5a, 1));
    // Linearising writes the first segment: refused when a clone heads the chain, fine when
    // clones only follow it.
    let mut extra = pool.alloc().unwrap();
    fill(&mut extra, 10, 1);
    let mut shared_head = m.clone_in(&clones).unwrap();
    shared_head.chain(extra).unwrap();
    assert!(!shared_head.linearize());
    let twin = m.clone_in(&clones).unwrap();
    let mut chained = pool.alloc().unwrap();
    fill(&mut chained, 10, 1);
    chained.chain(twin).unwrap();
    assert!(chained.linearize(), "its first segment is its own");
    assert_eq!(chained.data_len(), 110);
    assert_eq!(&chained.data()[10..], m.data());
    drop((chained, shared_head));
    drop(c);
    assert!(m.is_writable());
    m.data_mut().unwrap()[0] = 0x11;
    assert_eq!(m.append(4).map(|b| b.len()), Some(4));
    assert_eq!(m.prepend(4).map(|b| b.len()), Some(4));
    assert_eq!(m.data()[4], 0x11);
    drop((m, private));
    assert_eq!((pool.avail_count(), clones.avail_count()), (31, 31));
}

/// DPDK's testclone_testupdate_testdetach.
#[test]
fn clones_share_the_buffer_and_count_references() {
    let eal = solo_eal("mbclone", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "direct", 31, 0, 0, ROOM).unwrap();
    let clones = MbufPool::create(&eal, "indirect", 31, 0, 0, 0).unwrap();
    let mut m = pool.alloc().unwrap();
    fill(&mut m, 100, 0x5a);
    m.set_port(2);
    m.data_mut().unwrap()[0] = 0xee;
    let c = m.clone_in(&clones).unwrap();
    assert!(c.is_indirect());
    assert_eq!(c.ol_flags() & ol_flags::INDIRECT, ol_flags::INDIRECT);
    assert_eq!((c.data_len(), c.pkt_len(), c.port()), (100, 100, 2));
    assert_eq!(c.data(), m.data());
    assert_eq!((m.refcnt(), c.refcnt()), (2, 2));
    // Same bytes, not a copy.
    assert_eq!(c.data().as_ptr(), m.data().as_ptr());
    assert_eq!(c.data()[0], 0xee);
    // A clone of a clone attaches to the direct mbuf.
    let cc = c.clone_in(&clones).unwrap();
    assert_eq!(m.refcnt(), 3);
    assert_eq!(cc.data(), m.data());
    drop(m);
    assert_eq!(
        pool.avail_count(),
        30,
        "the buffer lives while clones use it"
    );
    assert_eq!(pool.usage().shared, 1);
    assert_eq!(c.refcnt(), 2);
    assert_eq!(c.data()[0], 0xee);
    drop(c);
    assert_eq!(pool.avail_count(), 30);
    assert_eq!(clones.avail_count(), 30);
    drop(cc);
    assert_eq!(
        pool.avail_count(),
        31,
        "the last clone freed the direct mbuf"
    );
    assert_eq!(clones.avail_count(), 31);
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
    assert!(clones.audit().is_ok());
    // The recycled clone is a direct mbuf again.
    let fresh = clones.alloc().unwrap();
    assert!(!fresh.is_indirect());
    assert_eq!((fresh.headroom(), fresh.tailroom()), (0, 0));
}

#[test]
fn cloning_a_chain_and_running_out_midway() {
    let eal = solo_eal("mbclch", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "d", 31, 0, 0, ROOM).unwrap();
    let clones = MbufPool::create(&eal, "i", 2, 0, 0, 0).unwrap();
    let mut m = pool.alloc().unwrap();
    fill(&mut m, 10, 1);
    for b in 2..=3 {
        let mut t = pool.alloc().unwrap();
        fill(&mut t, 10, b);
        m.chain(t).unwrap();
    }
    assert_eq!((m.nb_segs(), m.pkt_len()), (3, 30));
    assert!(m.clone_in(&clones).is_none(), "3 segments, 2 clones");
    assert_eq!(clones.avail_count(), 2, "a failed clone frees what it took");
    assert_eq!(m.refcnt(), 1);
    let two = MbufPool::create(&eal, "i3", 3, 0, 0, 0).unwrap();
    let c = m.clone_in(&two).unwrap();
    assert_eq!((c.nb_segs(), c.pkt_len()), (3, 30));
    let segs: Vec<Vec<u8>> = c.segments().map(|s| s.to_vec()).collect();
    assert_eq!(segs, vec![vec![1; 10], vec![2; 10], vec![3; 10]]);
    drop(m);
    assert_eq!(pool.avail_count(), 28);
    drop(c);
    assert_eq!((pool.avail_count(), two.avail_count()), (31, 3));
}

/// DPDK's test_pktmbuf_copy.
#[test]
fn deep_copies_with_offsets_and_chains() {
    let eal = solo_eal("mbcopy", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "c", 63, 0, 0, ROOM).unwrap();
    let small = MbufPool::create(&eal, "s", 63, 0, 0, HEADROOM + 100).unwrap();
    let mut m = pool.alloc().unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    m.append(1000).unwrap().copy_from_slice(&data);
    m.set_port(9);
    let c = m.copy(&pool, 0, u32::MAX).unwrap();
    assert_eq!((c.data(), c.port(), c.is_indirect()), (&data[..], 9, false));
    let part = m.copy(&pool, 100, 50).unwrap();
    assert_eq!(part.data(), &data[100..150]);
    let tail = m.copy(&pool, 990, 100).unwrap();
    assert_eq!(tail.data(), &data[990..], "length truncated to the data");
    let empty = m
        .copy(&pool, 1000, 1)
        .expect("a copy from the end is empty, not None");
    assert_eq!(
        (empty.pkt_len(), empty.data_len(), empty.nb_segs()),
        (0, 0, 1)
    );
    assert_eq!(empty.port(), 9);
    assert!(m.copy(&pool, 1001, 1).is_none(), "offset past the end");
    // Into small mbufs: a chain of 100-byte segments.
    let chained = m.copy(&small, 0, u32::MAX).unwrap();
    assert_eq!((chained.nb_segs(), chained.pkt_len()), (10, 1000));
    let mut buf = vec![0u8; 1000];
    assert_eq!(chained.read(0, 1000, &mut buf).unwrap(), &data[..]);
    // A copy of a chain, from an offset inside its second segment.
    let back = chained.copy(&pool, 150, 700).unwrap();
    assert_eq!((back.nb_segs(), back.data()), (1, &data[150..850]));
    drop((m, c, part, tail, empty, chained, back));
    assert_eq!((pool.avail_count(), small.avail_count()), (63, 63));
}

#[test]
fn chains_read_and_linearize() {
    let eal = solo_eal("mblin", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "l", 63, 0, 0, ROOM).unwrap();
    let mut head = pool.alloc().unwrap();
    fill(&mut head, 100, 0);
    for b in 1..5u8 {
        let mut t = pool.alloc().unwrap();
        fill(&mut t, 100, b);
        head.chain(t).unwrap();
    }
    assert_eq!(
        (head.nb_segs(), head.pkt_len(), head.data_len()),
        (5, 500, 100)
    );
    // read across segments
    let mut buf = [0u8; 300];
    let r = head.read(150, 100, &mut buf).unwrap();
    assert!(r[..50].iter().all(|&b| b == 1) && r[50..].iter().all(|&b| b == 2));
    assert_eq!(
        head.read(10, 20, &mut buf).unwrap(),
        &[0; 20],
        "inside one segment"
    );
    assert!(head.read(450, 51, &mut buf).is_none(), "past the end");
    // trim works on the last segment, append too
    assert!(head.trim(10));
    assert_eq!(head.pkt_len(), 490);
    fill(&mut head, 10, 4);
    assert_eq!(head.pkt_len(), 500);
    assert_eq!(pool.avail_count(), 58);
    assert!(head.linearize());
    assert_eq!(
        (head.nb_segs(), head.data_len(), head.pkt_len()),
        (1, 500, 500)
    );
    for (i, &b) in head.data().iter().enumerate() {
        assert_eq!(b, (i / 100) as u8);
    }
    assert_eq!(pool.avail_count(), 62, "linearize frees the other segments");
    // Not enough tailroom in the first segment: nothing changes.
    let mut big = pool.alloc().unwrap();
    fill(&mut big, 1500, 7);
    let mut t = pool.alloc().unwrap();
    fill(&mut t, 1000, 8);
    big.chain(t).unwrap();
    assert!(!big.linearize());
    assert_eq!((big.nb_segs(), big.pkt_len()), (2, 2500));
    drop((head, big));
    assert_eq!(pool.avail_count(), 63);
    // Freed chain segments come back as single fresh mbufs (test_nb_segs_and_next_reset).
    let mut b = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut b, 63));
    assert!(b.iter().all(|m| m.nb_segs() == 1 && m.pkt_len() == 0));
}

#[test]
fn clone_from_another_pool_and_linearize_a_clone_chain() {
    let eal = solo_eal("mbattach", &["-l", "0"]);
    let a = MbufPool::create(&eal, "a", 15, 0, 0, ROOM).unwrap();
    let b = MbufPool::create(&eal, "b", 15, 0, 8, ROOM).unwrap();
    let mut m = a.alloc().unwrap();
    fill(&mut m, 64, 0x42);
    let c = m.clone_in(&b).unwrap();
    assert_eq!(c.pool(), b);
    assert_eq!(c.data(), &[0x42; 64]);
    let raw = c.into_raw();
    assert_eq!(raw.pool_id(), b.id());
    let c = a
        .from_raw(raw)
        .expect("resolved through any pool of the group");
    assert_eq!(c.data(), &[0x42; 64]);
    drop(m);
    drop(c);
    assert_eq!((a.avail_count(), b.avail_count()), (15, 15));
}

#[test]
fn raw_indices_are_checked() {
    let eal = solo_eal("mbraw", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "r", 15, 4, 0, ROOM).unwrap();
    let mut m = pool.alloc().unwrap();
    fill(&mut m, 10, 1);
    let mut t = pool.alloc().unwrap();
    fill(&mut t, 10, 2);
    m.chain(t).unwrap();
    let raw = m.into_raw();
    assert_eq!(pool.usage().in_flight, 2, "every segment is in flight");
    let m = pool.from_raw(raw).unwrap();
    assert_eq!((m.nb_segs(), m.pkt_len()), (2, 20));
    assert!(pool.from_raw(raw).is_none(), "claimed twice");
    assert!(pool
        .from_raw(shoal::mbuf::MbufIdx(raw.0 ^ 0x40_0000))
        .is_none());
    assert!(pool.from_raw(shoal::mbuf::MbufIdx(u32::MAX)).is_none());
    drop(m);
    assert_eq!(pool.avail_count(), 15);
}

/// DPDK's test_refcnt_mbuf: clones freed by several lcores at once.
#[test]
fn clones_freed_concurrently_free_the_direct_mbuf_once() {
    let eal = solo_eal("mbrefcnt", &["-l", "0-1"]);
    let pool = MbufPool::create(&eal, "rc", 255, 32, 0, ROOM).unwrap();
    let clones = MbufPool::create(&eal, "rci", 1023, 32, 0, 0).unwrap();
    for _ in 0..200 {
        let mut m = pool.alloc().unwrap();
        fill(&mut m, 60, 9);
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for k in 0..8 {
            let c = m.clone_in(&clones).unwrap();
            if k % 2 == 0 {
                mine.push(c)
            } else {
                theirs.push(c.into_raw())
            }
        }
        drop(m);
        std::thread::scope(|s| {
            s.spawn(|| {
                eal.register_thread(LcoreId(1)).unwrap();
                for raw in theirs {
                    let c = clones.from_raw(raw).unwrap();
                    assert_eq!(c.data(), &[9; 60]);
                }
            });
            mine.clear();
        });
    }
    assert_eq!(pool.avail_count(), 255);
    assert_eq!(clones.avail_count(), 1023);
    assert!(pool.audit().is_ok(), "{:?}", pool.audit());
    assert!(clones.audit().is_ok(), "{:?}", clones.audit());
}

#[test]
fn rings_move_mbufs_and_hand_back_what_did_not_fit() {
    use shoal::mbuf::MbufRing;
    use shoal::ring::{RingConfig, SyncMode};
    let eal = solo_eal("mbring", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "rp", 255, 16, 0, ROOM).unwrap();
    let sp = RingConfig {
        prod: SyncMode::Sp,
        cons: SyncMode::Sp,
        ..RingConfig::new(16)
    };
    let ring = MbufRing::create(&eal, "r", sp).unwrap();
    assert!(matches!(
        MbufRing::create(&eal, "r", sp),
        Err(Error::Ring(shoal::ring::Error::Memzone(_)))
    ));
    let mut batch = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut batch, 20));
    for (k, m) in batch.iter_mut().enumerate() {
        m.set_rss_hash(k as u32);
    }
    assert_eq!(ring.enqueue_burst(&mut batch), 15, "capacity 15");
    assert_eq!(batch.len(), 5, "the rest stays with the caller");
    assert_eq!(
        batch.get(0).unwrap().rss_hash(),
        15,
        "in order, from the front"
    );
    assert_eq!(pool.usage().in_flight, 15);
    assert!(!ring.enqueue_bulk(&mut batch), "bulk: all or nothing");
    assert_eq!(batch.len(), 5);
    let spare = batch.pop().unwrap();
    let spare = ring.enqueue(spare).unwrap_err();
    drop(spare);
    assert_eq!(pool.in_use_count(), 15 + 4);
    // The single-producer side is this handle's; another handle cannot enqueue.
    let other = MbufRing::lookup(&eal, "r").unwrap();
    let mut out = MbufBatch::new();
    assert_eq!(other.dequeue_burst(&mut out, 10), 10);
    let m = out.pop().unwrap();
    assert!(other.enqueue(m).is_err());
    drop(ring);
    let m = out.pop().unwrap();
    assert!(
        other.enqueue(m).is_ok(),
        "claimed once the first handle is gone"
    );
    assert_eq!(other.dequeue_burst(&mut out, 64), 6);
    let keys: Vec<u32> = out.iter().map(|m| m.rss_hash()).collect();
    assert_eq!(keys, vec![0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 8]);
    drop((out, batch));
    assert_eq!(pool.in_use_count(), 0);
    assert!(pool.audit().is_ok());
}

#[test]
fn indices_that_are_not_in_flight_are_refused() {
    use shoal::mbuf::{MbufIdx, MbufRing};
    use shoal::ring::{Ring, RingConfig};
    let eal = solo_eal("mbrefuse", &["-l", "0"]);
    let pool = MbufPool::create(&eal, "rf", 63, 0, 0, ROOM).unwrap();
    let ring = MbufRing::create(&eal, "raw", RingConfig::new(16)).unwrap();
    let held = pool.alloc().unwrap();
    // Values that bypass Mbuf::into_raw: one held by us, one free, one of no pool.
    let raw_ring: &Ring<MbufIdx> = ring.ring();
    let mut p = raw_ring.producer().unwrap();
    let free_one = MbufIdx(held.raw().0 + 1);
    p.enqueue_burst(&[held.raw(), free_one, MbufIdx(0x1234_5678)]);
    let mut out = MbufBatch::new();
    assert_eq!(ring.dequeue_burst(&mut out, 16), 0);
    assert_eq!(ring.refused(), 3);
    drop(held);
    assert_eq!(pool.in_use_count(), 0, "nothing was taken or freed twice");
    assert!(pool.audit().is_ok());
}
