//! The queue against a reference heap, and its dense-bucket sort paths.

use super::*;
use rand::{RngExt, SeedableRng};

/// The calendar queue pops in the same order as one (time, seq) heap,
/// and a delivery's message comes out with its event, whichever way
/// the event went (bucket, current heap, overflow).
#[test]
fn simulated_queue_matches_a_heap() {
    let mut rng = crate::rng::DetRng::seed_from_u64(5);
    let mut q: EventQueue<u64> = EventQueue::new();
    let mut reference = BinaryHeap::new();
    let mut now = 0u64;
    let mut seq = 0u64;
    for round in 0..20_000u32 {
        for _ in 0..rng.random_range(0..3) {
            let spread = [1u64, 1 << 10, 1 << 20, 1 << 31, 1 << 36][rng.random_range(0..5)];
            let t = now + rng.random_range(0..spread);
            seq += 1;
            let ev = if rng.random_bool(0.5) {
                q.push_msg(t, round, 7, seq * 3);
                Event {
                    time: t,
                    kind: EventKind::Deliver { from: round, to: 7 },
                    msg: Some(seq * 3),
                }
            } else {
                let kind = EventKind::Timer {
                    node: round,
                    id: seq,
                    tag: 0,
                };
                q.push(t, kind);
                Event {
                    time: t,
                    kind,
                    msg: None,
                }
            };
            reference.push(Numbered { seq, ev });
        }
        let until = now + rng.random_range(0..1u64 << 22);
        while let Some(ev) = q.pop_until(until) {
            let want = reference.pop().unwrap().ev;
            assert_eq!((ev.time, ev.kind, ev.msg), (want.time, want.kind, want.msg));
            now = ev.time;
        }
        assert!(reference.peek().is_none_or(|e| e.ev.time > until));
        now = now.max(until);
    }
    assert_eq!(q.len(), reference.len());
}

/// A queue that runs dry jumps to the overflow's earliest bucket: the
/// events of that bucket go to the current heap, later ones into
/// buckets, and each delivery keeps its message on both ways.
#[test]
fn simulated_queue_jump_keeps_messages() {
    let mut q: EventQueue<u64> = EventQueue::new();
    let far = 3 << 29; // past the horizon: into the overflow heap
    q.push_msg(far, 1, 2, 11);
    let timer = EventKind::Timer {
        node: 1,
        id: 5,
        tag: 0,
    };
    q.push(far + 1, timer);
    q.push_msg(far + (1 << 20), 2, 1, 22);
    let mut got = Vec::new();
    while let Some(ev) = q.pop_until(u64::MAX) {
        got.push((ev.time, ev.kind, ev.msg));
    }
    let deliver = |from, to| EventKind::Deliver { from, to };
    assert_eq!(
        got,
        vec![
            (far, deliver(1, 2), Some(11)),
            (far + 1, timer, None),
            (far + (1 << 20), deliver(2, 1), Some(22)),
        ]
    );
}

/// Pushes `n` timers at random multiples of `grain` in `[start, start +
/// spread)`, a tenth of them at exactly `start` (the first ns of a
/// bucket, so they are ordered in a run), and checks they pop in (time,
/// scheduling) order. The slots were freed before in random order, so
/// a slot's number says nothing of when its event was scheduled.
fn pops_in_order(n: u64, start: u64, spread: u64, grain: u64) {
    assert_eq!(start & IN_BUCKET, 0);
    let mut rng = crate::rng::DetRng::seed_from_u64(9);
    let mut q: EventQueue<u32> = EventQueue::new();
    for id in 0..n {
        let t = rng.random_range(0..start);
        q.push(
            t,
            EventKind::Timer {
                node: 0,
                id,
                tag: 0,
            },
        );
    }
    while q.pop_until(start - 1).is_some() {}
    let mut want = Vec::new();
    for id in 0..n {
        let t = if id % 10 == 0 {
            start
        } else {
            start + rng.random_range(0..spread / grain) * grain
        };
        let timer = EventKind::Timer {
            node: 0,
            id,
            tag: 0,
        };
        q.push(t, timer);
        want.push((t, id));
    }
    want.sort(); // ids rise with scheduling, so this is (time, seq)
    let mut got = Vec::new();
    while let Some(ev) = q.pop_until(u64::MAX) {
        let EventKind::Timer { id, .. } = ev.kind else {
            unreachable!()
        };
        got.push((ev.time, id));
    }
    assert_eq!(got, want);
    assert_eq!(q.len(), 0);
}

/// Every way a bucket is ordered: a few events each, many at equal
/// times (rank sort), about 6,000 (unstable sort of unique keys), and
/// more than the keys have places for (stable sort on the time).
#[test]
fn simulated_queue_orders_dense_buckets() {
    let start = 31 << BUCKET_SHIFT;
    pops_in_order(5_000, start, 20_000_000, 10_000);
    pops_in_order(20_000, start, 100_000, 1);
    pops_in_order(PLACE_MAX + 9_000, start, 1 << BUCKET_SHIFT, 1);
}
