//! The event queue: events come out ordered by (virtual time, order of
//! scheduling), so ties never depend on hashing, addresses or contents.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

pub(crate) enum EventKind<M> {
    Deliver {
        from: u32,
        to: u32,
        msg: M,
    },
    Timer {
        node: u32,
        id: u64,
        tag: u64,
    },
    Start {
        node: u32,
        incarnation: u32,
    },
    /// Work of `node` finished; its output waits in the simulation's slab.
    WorkDone {
        node: u32,
        slot: u32,
    },
}

pub(crate) struct Event<M> {
    pub time: u64,
    pub kind: EventKind<M>,
}

/// An event with its scheduling number, for the heaps.
struct Numbered<M> {
    seq: u64,
    ev: Event<M>,
}

impl<M> Numbered<M> {
    fn key(&self) -> (u64, u64) {
        (self.ev.time, self.seq)
    }
}

impl<M> PartialEq for Numbered<M> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<M> Eq for Numbered<M> {}

impl<M> PartialOrd for Numbered<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Numbered<M> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Width of a bucket: 2^15 ns ≈ 33 µs.
const BUCKET_SHIFT: u32 = 15;
/// Buckets ahead of the current one: a horizon of about 270 ms.
const BUCKETS: u64 = 1 << 13;

/// A calendar queue. Events within the horizon wait in per-bucket vectors,
/// later ones in an overflow heap. The current bucket is sorted once by
/// time and consumed in order; events scheduled into it meanwhile go to a
/// small heap. Pops come out exactly as from one big (time, seq) heap, at a
/// fraction of the cost when thousands of events are pending.
///
/// Why a stable sort by time alone suffices: a bucket's vector receives
/// events in scheduling order. Overflow events enter a bucket when it comes
/// into the horizon, before anything can be placed there directly, and the
/// overflow heap yields equal times in scheduling order.
pub(crate) struct EventQueue<M> {
    seq: u64,
    /// The current bucket, sorted by time.
    run: VecDeque<Event<M>>,
    /// Events scheduled into the current bucket after it was sorted (all
    /// later in scheduling order than the run's).
    current: BinaryHeap<Numbered<M>>,
    window: u64,
    /// Bucket `b` (window < b < window + BUCKETS) lives at `b % BUCKETS`.
    buckets: Vec<Vec<Event<M>>>,
    in_buckets: usize,
    overflow: BinaryHeap<Numbered<M>>,
    /// Empty vectors with capacity, so buckets need not allocate; only as
    /// many as buckets in use, so memory follows the pending events.
    pool: Vec<Vec<Event<M>>>,
}

impl<M> EventQueue<M> {
    pub fn new() -> Self {
        EventQueue {
            seq: 0,
            run: VecDeque::new(),
            current: BinaryHeap::new(),
            window: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_buckets: 0,
            overflow: BinaryHeap::new(),
            pool: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, time: u64, kind: EventKind<M>) {
        self.seq += 1;
        self.place(Numbered {
            seq: self.seq,
            ev: Event { time, kind },
        });
    }

    // Inlined into the caller: passing the event through memory to an
    // out-of-line call stalls on store forwarding.
    #[inline(always)]
    fn place(&mut self, n: Numbered<M>) {
        let b = n.ev.time >> BUCKET_SHIFT;
        if b > self.window && b < self.window + BUCKETS {
            let bucket = &mut self.buckets[(b % BUCKETS) as usize];
            if bucket.capacity() == 0 {
                self.refill(b);
            }
            self.buckets[(b % BUCKETS) as usize].push(n.ev);
            self.in_buckets += 1;
        } else {
            self.place_outside(n);
        }
    }

    /// Gives an empty bucket a spare allocation.
    #[cold]
    fn refill(&mut self, b: u64) {
        if let Some(spare) = self.pool.pop() {
            self.buckets[(b % BUCKETS) as usize] = spare;
        }
    }

    #[cold]
    fn place_outside(&mut self, n: Numbered<M>) {
        if n.ev.time >> BUCKET_SHIFT <= self.window {
            self.current.push(n);
        } else {
            self.overflow.push(n);
        }
    }

    /// The next event if it is due at or before `until`.
    #[inline]
    pub fn pop_until(&mut self, until: u64) -> Option<Event<M>> {
        loop {
            // On equal times the run goes first: it was scheduled earlier.
            let from_run = match (self.run.front(), self.current.peek()) {
                (Some(r), Some(c)) => r.time <= c.ev.time,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => {
                    if !self.advance(until) {
                        return None;
                    }
                    continue;
                }
            };
            return if from_run {
                if self.run.front()?.time > until {
                    return None;
                }
                self.run.pop_front()
            } else {
                if self.current.peek()?.ev.time > until {
                    return None;
                }
                self.current.pop().map(|n| n.ev)
            };
        }
    }

    /// Moves the window to the next non-empty bucket, not past `until`;
    /// false when no event is due by then. The run and current are empty.
    fn advance(&mut self, until: u64) -> bool {
        let last = until >> BUCKET_SHIFT;
        if self.in_buckets == 0 {
            let Some(top) = self.overflow.peek() else {
                return false;
            };
            let b = top.ev.time >> BUCKET_SHIFT;
            if b > last {
                return false;
            }
            // Jump: everything up to the new horizon comes out of overflow,
            // bucket `b` itself into `current`.
            self.window = b;
            self.pull_overflow();
            return true;
        }
        while self.window < last {
            self.window += 1;
            self.pull_overflow();
            debug_assert!(
                self.current.is_empty(),
                "overflow never reaches the current bucket here"
            );
            let i = (self.window % BUCKETS) as usize;
            if !self.buckets[i].is_empty() {
                let mut bucket = std::mem::take(&mut self.buckets[i]);
                self.in_buckets -= bucket.len();
                bucket.sort_by_key(|e| e.time);
                // The spent run's allocation will serve another bucket.
                let spare = Vec::from(std::mem::replace(&mut self.run, VecDeque::from(bucket)));
                if spare.capacity() > 0 {
                    self.pool.push(spare);
                }
                return true;
            }
        }
        false
    }

    /// Brings overflow events that are now within the horizon into place.
    fn pull_overflow(&mut self) {
        while let Some(top) = self.overflow.peek()
            && (top.ev.time >> BUCKET_SHIFT) < self.window + BUCKETS
        {
            let n = self.overflow.pop().expect("peeked");
            self.place(n);
        }
    }

    pub fn len(&self) -> usize {
        self.run.len() + self.current.len() + self.in_buckets + self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// The calendar queue pops in the same order as one (time, seq) heap.
    #[test]
    fn simulated_queue_matches_a_heap() {
        let mut rng = crate::rng::DetRng::seed_from_u64(5);
        let mut q: EventQueue<u32> = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut now = 0u64;
        let mut seq = 0u64;
        for round in 0..20_000u32 {
            for _ in 0..rng.random_range(0..3) {
                let spread = [1u64, 1 << 10, 1 << 20, 1 << 31, 1 << 36][rng.random_range(0..5)];
                let t = now + rng.random_range(0..spread);
                seq += 1;
                q.push(
                    t,
                    EventKind::Timer {
                        node: round,
                        id: seq,
                        tag: 0,
                    },
                );
                let ev = Event {
                    time: t,
                    kind: EventKind::Timer {
                        node: round,
                        id: seq,
                        tag: 0,
                    },
                };
                reference.push(Numbered { seq, ev });
            }
            let until = now + rng.random_range(0..1u64 << 22);
            while let Some(ev) = q.pop_until(until) {
                let want: Numbered<u32> = reference.pop().unwrap();
                let (EventKind::Timer { id, .. }, EventKind::Timer { id: want_id, .. }) =
                    (&ev.kind, &want.ev.kind)
                else {
                    unreachable!()
                };
                assert_eq!((ev.time, id), (want.ev.time, want_id));
                now = ev.time;
            }
            assert!(reference.peek().is_none_or(|e| e.ev.time > until));
            now = now.max(until);
        }
        assert_eq!(q.len(), reference.len());
    }
}
