//! The event queue: events come out ordered by (virtual time, order of
//! scheduling), so ties never depend on hashing, addresses or contents.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What an event does. A delivery's message travels beside it, in
/// [`Event::msg`] and the slab's [`Slot`], not inside it, so the small
/// kind and the message are copied apart. With the message inside, the
/// event was copied as one blob and the message read back in pieces that
/// straddled the blob's, and store forwarding failed on Raft's 64-byte
/// messages at every push and pop (docs/performance.md, seventh round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// Its message is the event's `msg`.
    Deliver {
        from: u32,
        to: u32,
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
    pub kind: EventKind,
    /// A delivery's message; `None` for every other kind.
    pub msg: Option<M>,
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
/// A run key: the time within the bucket (from this bit up), then the
/// place in the bucket's list (scheduling order), then the slot (the low
/// 32 bits). Keys are unique (a slot is in one list at most), so an
/// unstable sort gives (time, scheduling) order; only in a run longer than
/// the places can count is a stable sort on the time needed.
const TIME_AT: u32 = 64 - BUCKET_SHIFT;
/// Bits for the place in the list, between the time and the slot.
const PLACE_BITS: u32 = TIME_AT - 32;
/// The last place a key can hold; later places are capped to it.
const PLACE_MAX: u64 = (1 << PLACE_BITS) - 1;

/// A slot's link: the next slot of its bucket's list (or of the free
/// list) in the low half, the event's time within its bucket in the high
/// half. Links live apart from the events in a dense array, so a bucket's
/// list is walked and its keys built without touching the events. The
/// walk is still a chain of dependent loads, but through 8-byte links (12
/// KB for pingpong's 1,000 nodes, in L1) instead of through the slots
/// themselves, where it missed the cache once per event, one after another.
#[derive(Clone, Copy)]
struct Link(u64);

impl Link {
    /// A free slot's link (the time is not read).
    fn free(next: u32) -> Link {
        Link(u64::from(next))
    }

    fn new(next: u32, time: u64) -> Link {
        Link(((time & IN_BUCKET) << 32) | u64::from(next))
    }

    fn next(self) -> u32 {
        self.0 as u32
    }

    fn time_in_bucket(self) -> u64 {
        self.0 >> 32
    }

    fn with_next(self, next: u32) -> Link {
        Link((self.0 & !u64::from(NIL)) | u64::from(next))
    }
}

/// An event waiting in the slab (`kind` and `msg` are `None` when the slot
/// is free); its time is in its [`Link`] and its run key.
struct Slot<M> {
    kind: Option<EventKind>,
    msg: Option<M>,
}

/// A calendar queue. Events within the horizon wait in one slab, linked
/// into per-bucket lists in scheduling order; later ones in an overflow
/// heap. A bitmap of non-empty buckets lets the window skip empty ones a
/// word at a time. The current bucket is ordered once by unique 8-byte
/// keys (time within the bucket, place in the list, slot) and consumed in
/// order; events scheduled into it meanwhile go to a small heap. Pops come
/// out exactly as from one big (time, seq) heap, at a fraction of the cost
/// when thousands of events are pending.
///
/// Why one slab and not a vector per bucket: sparse runs (20 replicas, ms
/// apart) put nearly every event in a bucket of its own, and a vector per
/// bucket meant two cache misses per event (its header in a 390 KB table,
/// then its buffer). Slots are reused last-freed first, so they stay hot.
/// The lists run through the dense [`Link`] array, not the events, so
/// walking a bucket of a large dense run (100,000 nodes, ~1,000 events a
/// bucket) stays off the events' megabytes; the run's events are then
/// read once, all together, so their cache misses overlap
/// (docs/performance.md).
///
/// Why list order suffices for ties: a bucket's list receives events in
/// scheduling order. Overflow events enter a bucket when it comes into the
/// horizon, before anything can be placed there directly, and the
/// overflow heap yields equal times in scheduling order.
pub(crate) struct EventQueue<M> {
    seq: u64,
    /// Pending events of the buckets (not of `current` or `overflow`).
    slots: Vec<Slot<M>>,
    /// One per slot: the lists through the slab.
    links: Vec<Link>,
    free: u32,
    /// The current bucket's keys (see [`TIME_AT`]) in (time, scheduling)
    /// order; `run[taken..]` are pending.
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
            links: Vec::new(),
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
    /// Schedules an event that carries no message.
    #[inline(always)]
    pub fn push(&mut self, time: u64, kind: EventKind) {
        debug_assert!(
            !matches!(kind, EventKind::Deliver { .. }),
            "a delivery carries its message: push_msg"
        );
        self.push_event(time, kind, None);
    }

    /// Schedules the delivery of `msg`.
    #[inline(always)]
    pub fn push_msg(&mut self, time: u64, from: u32, to: u32, msg: M) {
        self.push_event(time, EventKind::Deliver { from, to }, Some(msg));
    }

    #[inline(always)]
    fn push_event(&mut self, time: u64, kind: EventKind, msg: Option<M>) {
        let b = time >> BUCKET_SHIFT;
        if b > self.window && b < self.window + BUCKETS {
            self.put(b, time, kind, msg);
        } else {
            self.place_outside(Numbered {
                seq: 0,
                ev: Event { time, kind, msg },
            });
        }
    }

    /// Appends the event to bucket `b`'s list.
    #[inline(always)]
    fn put(&mut self, b: u64, time: u64, kind: EventKind, msg: Option<M>) {
        let mut s = self.free;
        if s == NIL {
            // A new slot is the whole free list: its link ends it.
            s = self.grow();
        }
        // Kind and message are written apart (see `EventKind`).
        let slot = &mut self.slots[s as usize];
        slot.kind = Some(kind);
        slot.msg = msg;
        let link = &mut self.links[s as usize];
        self.free = link.next();
        *link = Link::new(NIL, time);
        let i = (b % BUCKETS) as usize;
        let ends = &mut self.ends[i];
        if ends[0] == NIL {
            ends[0] = s;
            self.occupied[i / 64] |= 1 << (i % 64);
            self.summary[i / 4096] |= 1 << ((i / 64) % 64);
        } else {
            let tail = &mut self.links[ends[1] as usize];
            *tail = tail.with_next(s);
        }
        ends[1] = s;
        self.in_buckets += 1;
    }

    /// A new free slot, when none is free.
    #[cold]
    fn grow(&mut self) -> u32 {
        let s = u32::try_from(self.slots.len())
            .ok()
            .filter(|&s| s != NIL)
            .expect("more than 4 billion pending events");
        self.slots.push(Slot {
            kind: None,
            msg: None,
        });
        self.links.push(Link::free(NIL));
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
                .map(|&k| self.run_start | (k >> TIME_AT));
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
                self.links[s as usize] = Link::free(self.free);
                self.free = s;
                let slot = &mut self.slots[s as usize];
                let kind = slot.kind.take().expect("a run's slot holds an event");
                Some(Event {
                    time: run_time?,
                    kind,
                    msg: slot.msg.take(),
                })
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
            let link = self.links[s as usize];
            let time = link.time_in_bucket() << TIME_AT;
            let place = (self.run.len() as u64).min(PLACE_MAX);
            self.run.push(time | (place << 32) | u64::from(s));
            s = link.next();
        }
        self.in_buckets -= self.run.len();
        let places = self.run.len() as u64;
        // An invariant worth its cost: a dense run's events are read here
        // all at once (their cache misses overlap), not one per pop.
        if places > 1 {
            let held = self
                .run
                .iter()
                .filter(|&&k| self.slots[k as u32 as usize].kind.is_some())
                .count();
            assert_eq!(held, self.run.len(), "a listed slot holds no event");
        }
        if places > PLACE_MAX {
            // Places were capped: keep list order for ties by a stable sort.
            self.run.sort_by_key(|k| k >> TIME_AT);
        } else if places > RANKED {
            self.run.sort_unstable();
        } else if places > 1 {
            rank_sort(&mut self.run);
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
                self.put(b, n.ev.time, n.ev.kind, n.ev.msg);
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

/// Runs up to this long are sorted by [`rank_sort`].
const RANKED: u64 = 32;

/// Sorts a few unique keys without a branch on their values: each key's
/// place is the number of keys below it. The std sort's insertion sort
/// mispredicted about once per event on pingpong's ~10-event buckets.
fn rank_sort(keys: &mut [u64]) {
    const N: usize = RANKED as usize;
    debug_assert!(keys.len() <= N);
    let mut sorted = [0u64; N];
    for &k in keys.iter() {
        let below = keys.iter().filter(|&&other| other < k).count();
        // `below < keys.len() <= N`; the `%` only spares a bounds check.
        sorted[below % N] = k;
    }
    keys.copy_from_slice(&sorted[..keys.len()]);
}

#[cfg(test)]
mod tests;
