//! Mbuf operations on pools in a heap block standing in for a group's segment: no files, no
//! mappings, no other process, so Miri can check them (`.ci/miri`).
#![allow(unsafe_code)] // initialises the segment header of that heap block

use super::*;
use crate::memory::header::SegmentHeader;
use crate::memory::{Mapping, Region};

/// A group in a fresh heap block, with an mbuf pool (`room` bytes of data room) and a pool for
/// clones.
fn pools(room: u16) -> (MbufPool, MbufPool) {
    let len = 1 << 20;
    let whole = Region::new(Mapping::heap(len), 0, len).expect("heap segment");
    // SAFETY: the heap block was just allocated; nothing else has seen it.
    unsafe { SegmentHeader::init(&whole, 0, 4096, crate::sys::getpid(), 0) };
    let group = crate::group::Group::new(crate::group::Parts {
        whole,
        proc_type: crate::group::ProcType::Primary,
        slot: None,
        segment_path: Default::default(),
        vdevs: Vec::new(),
        mp: None,
    });
    register(&group);
    let group = mempool::views(&group);
    let direct = MbufPool::create_in(group, "direct", 15, 0, 8, room, 0).expect("pool");
    let clones = MbufPool::create_in(group, "clones", 15, 0, 0, 0, 0).expect("clone pool");
    (direct, clones)
}

#[test]
fn append_prepend_adj_trim_move_the_data_window() {
    let (pool, _) = pools(512);
    let mut m = pool.alloc().unwrap();
    m.append(10).unwrap().fill(0xaa);
    m.prepend(4).unwrap().copy_from_slice(b"head");
    assert_eq!(m.data_len(), 14);
    assert_eq!(&m.data()[..4], b"head");
    assert!(m.adj(4) && m.trim(2));
    assert_eq!(m.data(), &[0xaa; 8]);
    m.data_mut().unwrap()[0] = 1;
    m.priv_area_mut().fill(7);
    assert_eq!((m.data()[0], m.priv_area()), (1, &[7u8; 8][..]));
    assert!(m.append(m.tailroom() + 1).is_none());
    drop(m);
    assert_eq!(pool.avail_count(), 15);
}

#[test]
fn chains_read_copy_and_linearize() {
    let (pool, _) = pools(512);
    let mut head = pool.alloc().unwrap();
    head.append(100).unwrap().fill(1);
    let mut tail = pool.alloc().unwrap();
    tail.append(50).unwrap().fill(2);
    head.chain(tail).unwrap();
    assert_eq!((head.nb_segs(), head.pkt_len()), (2, 150));
    let mut buf = [0u8; 20];
    let across = head.read(90, 20, &mut buf).unwrap();
    assert_eq!(across, &[[1u8; 10], [2u8; 10]].concat()[..]);
    let copy = head.copy(&pool, 0, u32::MAX).unwrap();
    assert_eq!(copy.pkt_len(), 150);
    // A copy into small mbufs (64 bytes of room after the headroom) is a chain.
    let (small, _) = pools(192);
    let chained = head.copy(&small, 10, 130).unwrap();
    assert_eq!((chained.nb_segs(), chained.pkt_len()), (3, 130));
    let flat: Vec<u8> = chained.segments().flatten().copied().collect();
    assert_eq!(flat, [[1u8; 90].as_slice(), &[2u8; 40]].concat());
    drop(chained);
    assert!(head.linearize());
    assert_eq!((head.nb_segs(), head.data_len()), (1, 150));
    assert_eq!(
        copy.segments().flatten().copied().collect::<Vec<_>>(),
        head.data()
    );
    drop((head, copy));
    assert_eq!(pool.avail_count(), 15);
}

#[test]
fn clones_share_a_buffer_that_nobody_may_write() {
    let (pool, clones) = pools(256);
    let mut m = pool.alloc().unwrap();
    m.append(32).unwrap().fill(3);
    let mut c = m.clone_in(&clones).unwrap();
    let cc = c.clone_in(&clones).unwrap();
    assert_eq!(m.refcnt(), 3);
    assert!(m.data_mut().is_none() && c.data_mut().is_none());
    assert!(m.append(1).is_none() && c.prepend(1).is_none());
    // Reads of the shared bytes through every handle at once.
    let (a, b, d) = (m.data(), c.data(), cc.data());
    assert!(a == b && b == d);
    drop(m);
    assert_eq!(c.data(), &[3; 32]);
    drop(cc);
    assert!(c.data_mut().is_none(), "a clone stays read-only");
    drop(c);
    assert_eq!((pool.avail_count(), clones.avail_count()), (15, 15));
    let mut again = pool.alloc().unwrap();
    assert!(
        again.data_mut().is_some(),
        "the buffer is free of clones again"
    );
}

#[test]
fn into_raw_and_from_raw_hand_a_chain_over() {
    let (pool, _) = pools(256);
    let mut m = pool.alloc().unwrap();
    m.append(8).unwrap().copy_from_slice(b"in fligh");
    let mut t = pool.alloc().unwrap();
    t.append(1).unwrap()[0] = b't';
    m.chain(t).unwrap();
    let raw = m.into_raw();
    let back = pool.from_raw(raw).expect("in flight");
    assert!(pool.from_raw(raw).is_none(), "claimed once");
    assert_eq!(
        back.segments().flatten().copied().collect::<Vec<_>>(),
        b"in flight"
    );
}
