//! Repairs of multi-thread sides, on process-local rings: a "dead" operation is planted by hand
//! (a record whose member is not [`LOCAL_ME`], which [`crate::sync::Local`] calls dead), and a
//! live handle that waits behind it, or the reaper's entry point, must finish it.

use std::sync::{Arc, Mutex};

use super::header::Side;
use super::headtail::pack;
use super::resv::{Op, State};
use super::*;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{MemberId, LOCAL_ME};

const DEAD: MemberId = MemberId::member(3, 9);
const DEAD2: MemberId = MemberId::member(4, 2);

fn ring(prod: SyncMode, cons: SyncMode) -> Ring<u32> {
    let c = RingConfig {
        prod,
        cons,
        ..RingConfig::new(16)
    };
    Ring::init(
        crate::memory::Fresh::heap(Ring::<u32>::memsize(&c).unwrap()),
        "repair",
        &c,
    )
    .unwrap()
}

/// Values that the orphan hook received: (producer side, member, values).
type Orphans = Arc<Mutex<Vec<(bool, MemberId, Vec<u32>)>>>;

fn hooked(prod: SyncMode, cons: SyncMode) -> (Ring<u32>, Orphans) {
    let mut r = ring(prod, cons);
    let got: Orphans = Arc::default();
    let g = got.clone();
    r.set_orphan_hook(Arc::new(move |p, who, vals: &[u32]| {
        g.lock().unwrap().push((p, who, vals.to_vec()))
    }));
    (r, got)
}

fn side(r: &Ring<u32>, prod: bool) -> Side<'_> {
    r.sides(prod).0
}

/// Plants record `i` of a side: held by `who`, operation (pos, n, state).
fn plant(r: &Ring<u32>, prod: bool, i: usize, who: MemberId, pos: u32, n: u32, st: State) {
    let e = &side(r, prod).resv[i];
    e.member.store(who.raw(), Relaxed);
    e.op.store(Op::pack(pos, n, st), Relaxed);
}

/// Writes `vals` into the slots from `pos` on (as a producer that reserved them would).
#[allow(unsafe_code)] // slot writes that the planted reservation owns
fn write_slots(r: &Ring<u32>, pos: u32, vals: &[u32]) {
    // SAFETY: a test ring that no other thread uses; vals.len() <= capacity.
    unsafe { r.mem.write(pos, vals) };
}

/// Sets a side's positions: MP head / tail.
fn mp_positions(r: &Ring<u32>, prod: bool, head: u32, tail: u32) {
    let d = side(r, prod);
    d.own.head.store(u64::from(head), Relaxed);
    d.tail.store(u64::from(tail), Relaxed);
}

fn drain(c: &mut Consumer<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    let mut buf = [0u32; 16];
    loop {
        let n = c.dequeue_burst(&mut buf);
        if n == 0 && c.ring().is_empty() {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn holes(r: &Ring<u32>) -> u64 {
    side(r, true).tail.holes.load(Relaxed)
}

fn records_in_use(r: &Ring<u32>, prod: bool) -> usize {
    side(r, prod)
        .resv
        .iter()
        .filter(|e| e.member.load(Relaxed) != 0)
        .count()
}

#[test]
fn mp_producer_killed_after_reserving_leaves_a_hole_that_consumers_skip() {
    for cons in [SyncMode::Sp, SyncMode::Mp, SyncMode::MpRts, SyncMode::MpHts] {
        let (r, orphans) = hooked(SyncMode::Mp, cons);
        // A dead producer reserved [0, 3) and wrote nothing.
        mp_positions(&r, true, 3, 0);
        plant(&r, true, 63, DEAD, 0, 3, State::Trying);
        let mut p = r.producer().unwrap();
        // Waits behind the dead reservation, repairs it, publishes.
        assert_eq!(p.enqueue_burst(&[1, 2]), 2);
        assert_eq!(r.count(), 5, "the hole counts as slots until consumed");
        assert_ne!(holes(&r), 0);
        let mut c = r.consumer().unwrap();
        assert_eq!(drain(&mut c), [1, 2], "{cons:?}");
        assert_eq!(holes(&r), 0, "the hole record is freed once passed");
        assert!(orphans.lock().unwrap().is_empty());
        drop((p, c));
        assert_eq!(records_in_use(&r, true), 0);
        assert_eq!(records_in_use(&r, false), 0);
    }
}

#[test]
fn mp_producer_killed_after_its_hook_is_published_for_it() {
    let (r, orphans) = hooked(SyncMode::Mp, SyncMode::Mp);
    mp_positions(&r, true, 3, 0);
    write_slots(&r, 0, &[7, 8, 9]);
    plant(&r, true, 5, DEAD, 0, 3, State::Ready);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_bulk(&[1, 2]), Ok(10));
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [7, 8, 9, 1, 2]);
    assert_eq!(holes(&r), 0);
    assert!(orphans.lock().unwrap().is_empty());
}

#[test]
fn mp_producer_killed_inside_its_hook_leaves_a_hole_and_hands_the_values_over() {
    let (r, orphans) = hooked(SyncMode::Mp, SyncMode::Sp);
    mp_positions(&r, true, 3, 0);
    write_slots(&r, 0, &[7, 8, 9]);
    plant(&r, true, 5, DEAD, 0, 3, State::Written);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue(1), Ok(()));
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [1]);
    assert_eq!(*orphans.lock().unwrap(), [(true, DEAD, vec![7, 8, 9])]);
}

#[test]
fn mp_consumer_killed_after_reserving_is_published_for_it() {
    let (r, orphans) = hooked(SyncMode::Sp, SyncMode::Mp);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2, 3, 4]), 4);
    // A dead consumer reserved [0, 2).
    mp_positions(&r, false, 2, 0);
    plant(&r, false, 0, DEAD, 0, 2, State::Trying);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [3, 4]);
    assert_eq!(*orphans.lock().unwrap(), [(false, DEAD, vec![1, 2])]);
    assert!(r.is_empty());
}

#[test]
fn a_lone_trying_record_at_the_tail_is_the_owner_and_a_dead_loser_behind_is_freed() {
    let (r, _) = hooked(SyncMode::Mp, SyncMode::Mp);
    mp_positions(&r, true, 2, 0);
    plant(&r, true, 1, DEAD, 0, 2, State::Trying);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue(5), Ok(()));
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [5]);
    // A dead record that lost its CAS at a position already published: the reaper frees it.
    plant(&r, true, 2, DEAD2, 1, 4, State::Trying);
    let vals = r.repair_dead_reservations(DEAD2, LOCAL_ME);
    assert!(vals.is_empty());
    assert_eq!(side(&r, true).resv[2].member.load(Relaxed), 0);
}

#[test]
fn two_dead_trying_records_at_one_position_pick_the_one_the_next_reservation_follows() {
    let (r, _) = hooked(SyncMode::Mp, SyncMode::Mp);
    // Both tried [0, ..): one for 2 slots (the winner: the head is at 2), one for 4.
    mp_positions(&r, true, 2, 0);
    plant(&r, true, 1, DEAD, 0, 4, State::Trying);
    plant(&r, true, 2, DEAD2, 0, 2, State::Trying);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue(5), Ok(()));
    assert_eq!(side(&r, true).tail.load(Relaxed), 3);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [5]);
}

#[test]
fn a_repairer_killed_inside_a_repair_is_finished_by_the_next() {
    let (r, _) = hooked(SyncMode::Mp, SyncMode::Mp);
    // A repairer (DEAD2) recorded the hole of [0, 3) and died before publishing it.
    mp_positions(&r, true, 3, 0);
    plant(&r, true, 7, DEAD2, 0, 3, State::HolePending);
    side(&r, true).tail.holes.store(1 << 7, Relaxed);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [1, 2]);
    assert_eq!(holes(&r), 0);
}

#[test]
fn rts_producer_killed_after_reserving_is_repaired_by_a_waiting_producer() {
    let (r, _) = hooked(SyncMode::MpRts, SyncMode::Sp);
    r.set_prod_htd_max(2).unwrap();
    // A dead producer reserved [0, 3) (head counter 1), the tail counts nothing finished.
    let d = side(&r, true);
    d.own.head.store(pack(3, 1), Relaxed);
    plant(&r, true, 9, DEAD, 0, 3, State::Trying);
    let mut p = r.producer().unwrap();
    // head - tail = 3 > htd_max: waits, repairs, then goes.
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [1, 2]);
    assert_eq!(holes(&r), 0);
}

#[test]
fn rts_dead_operation_that_holds_publication_back_is_found_by_polling_handles() {
    let (r, orphans) = hooked(SyncMode::MpRts, SyncMode::MpRts);
    r.set_prod_htd_max(16).unwrap();
    let d = side(&r, true);
    d.own.head.store(pack(3, 1), Relaxed);
    write_slots(&r, 0, &[7, 8, 9]);
    plant(&r, true, 9, DEAD, 0, 3, State::Ready);
    let mut p = r.producer().unwrap();
    // Not blocked (the distance is under htd_max), but invisible behind the dead operation.
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    assert!(r.is_empty());
    let mut c = r.consumer().unwrap();
    let mut buf = [0u32; 8];
    let mut got = Vec::new();
    for _ in 0..2 * super::handle::SWEEP_AFTER {
        let n = c.dequeue_burst(&mut buf);
        got.extend_from_slice(&buf[..n]);
        if got.len() == 5 {
            break;
        }
    }
    assert_eq!(got, [7, 8, 9, 1, 2]);
    assert!(orphans.lock().unwrap().is_empty());
}

#[test]
fn rts_uncertain_records_are_decided_by_counting() {
    // A dead TRYING record that lost (nothing in flight): freed, nothing published.
    let (r, _) = hooked(SyncMode::MpRts, SyncMode::MpRts);
    plant(&r, true, 3, DEAD, 0, 2, State::Trying);
    assert!(r.repair_dead_reservations(DEAD, LOCAL_ME).is_empty());
    assert_eq!(records_in_use(&r, true), 0);
    assert_eq!(side(&r, true).tail.load(Relaxed), 0);
    // One that won (one operation in flight): a hole.
    side(&r, true).own.head.store(pack(2, 1), Relaxed);
    plant(&r, true, 3, DEAD, 0, 2, State::Trying);
    assert!(r.repair_dead_reservations(DEAD, LOCAL_ME).is_empty());
    assert_eq!(side(&r, true).tail.load(Relaxed), pack(2, 1));
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), Vec::<u32>::new());
    assert_eq!(holes(&r), 0);
}

#[test]
fn rts_consumer_killed_after_reserving_is_finished_by_a_sweep() {
    let (r, orphans) = hooked(SyncMode::Sp, SyncMode::MpRts);
    r.set_cons_htd_max(16).unwrap();
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2, 3, 4]), 4);
    side(&r, false).own.head.store(pack(2, 1), Relaxed);
    plant(&r, false, 0, DEAD, 0, 2, State::Trying);
    let mut c = r.consumer().unwrap();
    let mut buf = [0u32; 8];
    assert_eq!(c.dequeue_burst(&mut buf), 2);
    assert_eq!(buf[..2], [3, 4]);
    assert_eq!(r.count(), 4, "the consumer tail waits for the dead dequeue");
    for _ in 0..=super::handle::SWEEP_AFTER {
        c.dequeue_burst(&mut buf);
    }
    assert!(r.is_empty());
    assert_eq!(*orphans.lock().unwrap(), [(false, DEAD, vec![1, 2])]);
}

#[test]
fn hts_producer_killed_after_reserving_is_cancelled() {
    let (r, _) = hooked(SyncMode::MpHts, SyncMode::Sp);
    side(&r, true).tail.store(pack(0, 3), Relaxed);
    plant(&r, true, 2, DEAD, 0, 3, State::Trying);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [1, 2]);
    assert_eq!(r.info().prod.head, 2);
}

#[test]
fn hts_producer_killed_after_its_hook_is_published_for_it() {
    let (r, _) = hooked(SyncMode::MpHts, SyncMode::Sp);
    side(&r, true).tail.store(pack(0, 4), Relaxed);
    write_slots(&r, 0, &[7, 8, 9, 10]);
    plant(&r, true, 2, DEAD, 0, 4, State::Ready);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue(1), Ok(()));
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [7, 8, 9, 10, 1]);
}

#[test]
fn hts_consumer_killed_after_reserving_gives_the_values_back() {
    let (r, orphans) = hooked(SyncMode::Sp, SyncMode::MpHts);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2, 3]), 3);
    side(&r, false).tail.store(pack(0, 2), Relaxed);
    plant(&r, false, 2, DEAD, 0, 2, State::Trying);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [1, 2, 3]);
    assert!(orphans.lock().unwrap().is_empty());
    // Killed while claiming (journaled dequeue): consumed, values handed over.
    assert_eq!(p.enqueue_burst(&[4, 5]), 2);
    side(&r, false).tail.store(pack(3, 5), Relaxed);
    plant(&r, false, 2, DEAD, 3, 2, State::Written);
    assert_eq!(drain(&mut c), Vec::<u32>::new());
    assert_eq!(*orphans.lock().unwrap(), [(false, DEAD, vec![4, 5])]);
}

/// Leaves the ring with a hole at [0, 3) and `after` published behind it.
fn with_hole(cons: SyncMode, after: &[u32]) -> Ring<u32> {
    let (r, _) = hooked(SyncMode::Mp, cons);
    mp_positions(&r, true, 3, 0);
    plant(&r, true, 63, DEAD, 0, 3, State::Trying);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(after), after.len());
    r
}

#[test]
fn holes_are_skipped_by_bulk_single_and_burst_dequeues() {
    for cons in [SyncMode::Sp, SyncMode::Mp, SyncMode::MpRts, SyncMode::MpHts] {
        let r = with_hole(cons, &[1, 2, 3, 4]);
        let mut c = r.consumer().unwrap();
        let mut two = [0u32; 2];
        assert_eq!(c.dequeue_bulk(&mut [0u32; 5]), Err(Empty { available: 4 }));
        assert_eq!(c.dequeue_bulk(&mut two), Ok(2), "{cons:?}");
        assert_eq!(two, [1, 2]);
        assert_eq!(c.dequeue(), Some(3));
        assert_eq!(c.dequeue_burst_with_available(&mut two), (1, 0));
        assert_eq!(two[0], 4);
        assert!(r.is_empty());
        assert_eq!(holes(&r), 0);
        // A burst that finds only holes consumes them.
        let r = with_hole(cons, &[]);
        let mut c = r.consumer().unwrap();
        assert_eq!(c.dequeue_burst(&mut two), 0);
        assert!(r.is_empty());
        assert_eq!(holes(&r), 0);
    }
}

#[test]
fn peek_and_zero_copy_dequeues_never_see_a_hole() {
    for cons in [SyncMode::Sp, SyncMode::MpHts] {
        let r = with_hole(cons, &[1, 2]);
        let mut c = r.consumer().unwrap();
        let res = c.dequeue_zc_burst_start(8).unwrap();
        assert_eq!(res.slices(), (&[1u32, 2][..], &[][..]), "{cons:?}");
        assert_eq!(res.finish(2), 2);
        assert!(r.is_empty());
        assert_eq!(holes(&r), 0);
    }
    // A hole between values: a reservation stops before it.
    let (r, _) = hooked(SyncMode::Mp, SyncMode::MpHts);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    mp_positions(&r, true, 5, 2);
    plant(&r, true, 63, DEAD, 2, 3, State::Trying);
    assert_eq!(p.enqueue(3), Ok(()));
    let mut c = r.consumer().unwrap();
    let mut buf = [0u32; 8];
    let res = c.dequeue_burst_start(&mut buf).unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(buf[..2], [1, 2]);
    res.finish(2);
    let res = c.dequeue_burst_start(&mut buf).unwrap();
    assert_eq!((res.len(), buf[0]), (1, 3));
    res.finish(1);
    assert!(r.is_empty());
}

#[test]
fn the_reaper_finishes_a_dead_members_operations_and_returns_their_values() {
    let r = ring(SyncMode::Mp, SyncMode::Mp);
    let mut p = r.producer().unwrap();
    assert_eq!(p.enqueue_burst(&[1, 2, 3, 4]), 4);
    // DEAD reserved [0, 2) as a consumer, and [4, 7) as a producer, written, hook running.
    mp_positions(&r, false, 2, 0);
    plant(&r, false, 0, DEAD, 0, 2, State::Trying);
    mp_positions(&r, true, 7, 4);
    write_slots(&r, 4, &[7, 8, 9]);
    plant(&r, true, 1, DEAD, 4, 3, State::Written);
    // And an idle record it never gave back.
    plant(&r, true, 2, DEAD, 0, 0, State::Idle);
    let mut got = r.repair_dead_reservations(DEAD, LOCAL_ME);
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        [(false, DEAD, vec![1, 2]), (true, DEAD, vec![7, 8, 9])]
    );
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [3, 4]);
    drop((p, c));
    assert_eq!(records_in_use(&r, true), 0);
    assert_eq!(records_in_use(&r, false), 0);
}

#[test]
fn multi_thread_handles_take_records_up_to_the_limit_and_reuse_dead_ones() {
    let r = ring(SyncMode::Mp, SyncMode::MpHts);
    let ps: Vec<_> = (0..super::header::MAX_RESV)
        .map(|_| r.producer().unwrap())
        .collect();
    assert!(r.producer().is_none());
    assert!(r.consumer().is_some());
    drop(ps);
    // Every record held by a dead member without an operation: taken over.
    for i in 0..super::header::MAX_RESV {
        plant(&r, true, i, DEAD, 0, 0, State::Idle);
    }
    let p = r.producer().unwrap();
    assert_eq!(records_in_use(&r, true), super::header::MAX_RESV);
    drop(p);
    // One with an operation in flight is not taken over.
    for i in 0..super::header::MAX_RESV {
        plant(&r, true, i, DEAD, 0, 1, State::Trying);
    }
    assert!(r.producer().is_none());
}

#[test]
fn a_live_owner_is_waited_for_not_repaired() {
    let r = ring(SyncMode::Mp, SyncMode::Mp);
    mp_positions(&r, true, 3, 0);
    plant(&r, true, 63, LOCAL_ME, 0, 3, State::Trying);
    let r2 = r.clone();
    let t = std::thread::spawn(move || {
        let mut p = r2.producer().unwrap();
        p.enqueue_burst(&[1, 2])
    });
    std::thread::sleep(std::time::Duration::from_millis(30));
    assert!(
        !t.is_finished(),
        "the producer waits for the live reservation"
    );
    assert_eq!(holes(&r), 0);
    // The "live" owner publishes.
    write_slots(&r, 0, &[7, 8, 9]);
    side(&r, true).resv[63].op.store(0, Relaxed);
    side(&r, true).resv[63].member.store(0, Relaxed);
    side(&r, true)
        .tail
        .store(3, crate::sync::atomic::Ordering::Release);
    assert_eq!(t.join().unwrap(), 2);
    let mut c = r.consumer().unwrap();
    assert_eq!(drain(&mut c), [7, 8, 9, 1, 2]);
}
