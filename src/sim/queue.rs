//! The event queue: events come out ordered by (virtual time, order of
//! scheduling), so ties never depend on hashing, addresses or contents.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// Width of a bucket: 2^15 ns ≈ 33 µs. Measured against 8 and 66 µs on
/// pingpong (dense) and CloudScope's 20-replica runs (sparse): narrower
/// buckets cost a window move per event and a larger table of bucket
/// headers, wider ones a longer sort per bucket.
const BUCKET_SHIFT: u32 = 15;
/// Buckets ahead of the current one: a horizon of about 537 ms, so the
/// timers of consensus protocols (heartbeats, election timeouts of a few
/// hundred ms) land in buckets, not in the overflow heap.
const BUCKETS: u64 = 1 << 14;
const WORDS: usize = (BUCKETS / 64) as usize;
const SUMMARY: usize = WORDS / 64;

/// "No slot": the end of a bucket's list or of the free list.
const NIL: u32 = u32::MAX;
/// The time within a bucket.
const IN_BUCKET: u64 = (1 << BUCKET_SHIFT) - 1;

/// A place in the slab: an event (`None` when free) and the next slot of
/// its bucket's list, or of the free list.
struct Slot<M> {
    ev: Option<Event<M>>,
    next: u32,
}

/// A calendar queue. Events within the horizon wait in one slab, linked
/// into per-bucket lists in scheduling order; later ones in an overflow
/// heap. A bitmap of non-empty buckets lets the window skip empty ones a
/// word at a time. The current bucket is ordered once by 8-byte keys (time
/// within the bucket above the slot; a stable sort on the time keeps list
/// order for ties) and consumed in order;
/// events scheduled into it meanwhile go to a small heap. Pops come out
/// exactly as from one big (time, seq) heap, at a fraction of the cost
/// when thousands of events are pending.
///
/// Why one slab and not a vector per bucket: sparse runs (20 replicas, ms
/// apart) put nearly every event in a bucket of its own, and a vector per
/// bucket meant two cache misses per event (its header in a 390 KB table,
/// then its buffer). Slots are reused last-freed first, so they stay hot.
/// The price is paid by very large dense runs (100,000 nodes, ~1,000
/// events a bucket in a slab of megabytes): a bucket's list is walked
/// through scattered slots, one serial cache miss per event, where a
/// vector was read in order (docs/performance.md).
///
/// Why list order suffices for ties: a bucket's list receives events in
/// scheduling order. Overflow events enter a bucket when it comes into the
/// horizon, before anything can be placed there directly, and the
/// overflow heap yields equal times in scheduling order.
pub(crate) struct EventQueue<M> {
    seq: u64,
    /// Pending events of the buckets (not of `current` or `overflow`).
    slots: Vec<Slot<M>>,
    free: u32,
    /// The current bucket's keys (the event's time within the bucket above
    /// its slot) in (time, scheduling) order; `run[taken..]` are pending.
    run: Vec<u64>,
    taken: usize,
    /// The current bucket's first ns.
    run_start: u64,
    /// Events scheduled into the current bucket after it was ordered (all
    /// later in scheduling order than the run's).
    current: BinaryHeap<Numbered<M>>,
    window: u64,
    /// Bucket `b` (window < b < window + BUCKETS) has its list's first and
    /// last slot at `b % BUCKETS` ([`NIL`, `NIL`] when empty).
    ends: Box<[[u32; 2]]>,
    /// Bit `i` set: bucket slot `i` holds events.
    occupied: Box<[u64; WORDS]>,
    /// Bit `w` set: word `w` of `occupied` is not zero. Sparse runs (a few
    /// replicas, ms apart) would otherwise scan many empty words per event.
    summary: [u64; SUMMARY],
    in_buckets: usize,
    overflow: BinaryHeap<Numbered<M>>,
    /// The bucket of the overflow's earliest event (`u64::MAX` when empty),
    /// so advancing checks one integer instead of calling into the heap.
    overflow_next: u64,
}

impl<M> EventQueue<M> {
    pub fn new() -> Self {
        EventQueue {
            seq: 0,
            slots: Vec::new(),
            free: NIL,
            run: Vec::new(),
            taken: 0,
            run_start: 0,
            current: BinaryHeap::new(),
            window: 0,
            ends: vec![[NIL; 2]; BUCKETS as usize].into_boxed_slice(),
            occupied: Box::new([0; WORDS]),
            summary: [0; SUMMARY],
            in_buckets: 0,
            overflow: BinaryHeap::new(),
            overflow_next: u64::MAX,
        }
    }

    // Inlined into the caller: passing the event through memory to an
    // out-of-line call stalls on store forwarding.
    #[inline(always)]
    pub fn push(&mut self, time: u64, kind: EventKind<M>) {
        let b = time >> BUCKET_SHIFT;
        if b > self.window && b < self.window + BUCKETS {
            self.put(b, Event { time, kind });
        } else {
            self.place_outside(Numbered {
                seq: 0,
                ev: Event { time, kind },
            });
        }
    }

    /// Appends the event to bucket `b`'s list.
    #[inline(always)]
    fn put(&mut self, b: u64, ev: Event<M>) {
        let s = self.free;
        let s = if s != NIL {
            let slot = &mut self.slots[s as usize];
            self.free = slot.next;
            *slot = Slot {
                ev: Some(ev),
                next: NIL,
            };
            s
        } else {
            self.grow(ev)
        };
        let i = (b % BUCKETS) as usize;
        let ends = &mut self.ends[i];
        if ends[0] == NIL {
            ends[0] = s;
            self.occupied[i / 64] |= 1 << (i % 64);
            self.summary[i / 4096] |= 1 << ((i / 64) % 64);
        } else {
            self.slots[ends[1] as usize].next = s;
        }
        ends[1] = s;
        self.in_buckets += 1;
    }

    /// A new slot, when none is free.
    #[cold]
    fn grow(&mut self, ev: Event<M>) -> u32 {
        let s = u32::try_from(self.slots.len())
            .ok()
            .filter(|&s| s != NIL)
            .expect("more than 4 billion pending events");
        self.slots.push(Slot {
            ev: Some(ev),
            next: NIL,
        });
        s
    }

    #[cold]
    fn place_outside(&mut self, mut n: Numbered<M>) {
        // Only the heaps need numbers, and only among themselves: bucket
        // lists keep scheduling order by position.
        self.seq += 1;
        n.seq = self.seq;
        if n.ev.time >> BUCKET_SHIFT <= self.window {
            self.current.push(n);
        } else {
            self.overflow_next = self.overflow_next.min(n.ev.time >> BUCKET_SHIFT);
            self.overflow.push(n);
        }
    }

    /// The next event if it is due at or before `until`.
    #[inline(always)]
    pub fn pop_until(&mut self, until: u64) -> Option<Event<M>> {
        loop {
            let run_time = self
                .run
                .get(self.taken)
                .map(|&k| self.run_start | (k >> 32));
            // On equal times the run goes first: it was scheduled earlier.
            let from_run = match (run_time, self.current.peek()) {
                (Some(_), None) => true,
                (Some(r), Some(c)) => r <= c.ev.time,
                (None, Some(_)) => false,
                (None, None) => {
                    if !self.advance(until) {
                        return None;
                    }
                    continue;
                }
            };
            return if from_run {
                if run_time? > until {
                    return None;
                }
                let s = self.run[self.taken] as u32;
                self.taken += 1;
                let slot = &mut self.slots[s as usize];
                slot.next = self.free;
                self.free = s;
                Some(slot.ev.take().expect("a run's slot holds an event"))
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
        let b = self.next_occupied();
        if b > last {
            return false;
        }
        // Overflow holds only buckets past the old horizon, so none is
        // earlier than `b`; those now within the horizon come in before
        // anything can be placed directly into their buckets.
        self.window = b;
        if self.overflow_next < self.window + BUCKETS {
            self.pull_overflow();
        }
        let i = (b % BUCKETS) as usize;
        self.occupied[i / 64] &= !(1 << (i % 64));
        if self.occupied[i / 64] == 0 {
            self.summary[i / 4096] &= !(1 << ((i / 64) % 64));
        }
        let mut s = std::mem::replace(&mut self.ends[i], [NIL; 2])[0];
        self.run.clear();
        self.taken = 0;
        self.run_start = b << BUCKET_SHIFT;
        while s != NIL {
            let slot = &self.slots[s as usize];
            let time = slot.ev.as_ref().expect("a listed slot holds an event").time;
            self.run.push(((time & IN_BUCKET) << 32) | u64::from(s));
            s = slot.next;
        }
        self.in_buckets -= self.run.len();
        // Stable: equal times stay in list (scheduling) order.
        if self.run.len() > 1 {
            self.run.sort_by_key(|k| k >> 32);
        }
        true
    }

    /// The first non-empty bucket after the window (some bucket holds events).
    #[inline(always)]
    fn next_occupied(&self) -> u64 {
        let start = ((self.window + 1) % BUCKETS) as usize;
        // Slots below `start` are buckets past the wrap-around.
        let slot = self
            .first_occupied_from(start)
            .or_else(|| self.first_occupied_from(0))
            .expect("in_buckets > 0 but no bucket is marked") as u64;
        let ahead = (slot + BUCKETS - start as u64) % BUCKETS;
        self.window + 1 + ahead
    }

    /// The first occupied slot at or after `from`, without wrapping.
    #[inline(always)]
    fn first_occupied_from(&self, from: usize) -> Option<usize> {
        let w = from / 64;
        let bits = self.occupied[w] & (!0u64 << (from % 64));
        if bits != 0 {
            return Some(w * 64 + bits.trailing_zeros() as usize);
        }
        let next = w + 1;
        if next == WORDS {
            return None;
        }
        let mut s = next / 64;
        let mut words = self.summary[s] & (!0u64 << (next % 64));
        loop {
            if words != 0 {
                let w = s * 64 + words.trailing_zeros() as usize;
                return Some(w * 64 + self.occupied[w].trailing_zeros() as usize);
            }
            s += 1;
            if s == SUMMARY {
                return None;
            }
            words = self.summary[s];
        }
    }

    /// Brings overflow events that are now within the horizon into place.
    fn pull_overflow(&mut self) {
        while let Some(top) = self.overflow.peek()
            && (top.ev.time >> BUCKET_SHIFT) < self.window + BUCKETS
        {
            let n = self.overflow.pop().expect("peeked");
            let b = n.ev.time >> BUCKET_SHIFT;
            if b > self.window {
                self.put(b, n.ev);
            } else {
                self.current.push(n);
            }
        }
        self.overflow_next = self
            .overflow
            .peek()
            .map_or(u64::MAX, |top| top.ev.time >> BUCKET_SHIFT);
    }

    pub fn len(&self) -> usize {
        self.run.len() - self.taken + self.current.len() + self.in_buckets + self.overflow.len()
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

    /// Buckets of thousands of events, many at equal times, come out in
    /// (time, scheduling) order too (long lists, sorted with many ties).
    #[test]
    fn simulated_queue_orders_dense_buckets() {
        let mut rng = crate::rng::DetRng::seed_from_u64(9);
        let mut q: EventQueue<u32> = EventQueue::new();
        let mut want = Vec::new();
        for id in 0..20_000u64 {
            // About 3 buckets; a tenth of the times are repeated exactly.
            let t = if id % 10 == 0 {
                1_000_000
            } else {
                1_000_000 + rng.random_range(0..100_000u64)
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
}
