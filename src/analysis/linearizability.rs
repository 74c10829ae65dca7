//! A linearizability checker in the manner of Wing & Gong with Lowe's
//! just-in-time linearization and memoization (as Porcupine does): it
//! searches for an order of the operations that respects real time and the
//! sequential model; the cache of (linearized set, state) keeps the search
//! from exploring the same configuration twice.
//!
//! An operation without a return (it timed out) may take effect at any time
//! after its call, or never; its output is unknown.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;

    fn init(&self) -> Self::State;

    /// The state after `input` if `output` (None: unknown) is possible from
    /// `state`, or None if it is not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of a history; times in any consistent unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation<I, O> {
    pub call: u64,
    /// `None`: no answer came.
    pub ret: Option<u64>,
    pub input: I,
    pub output: Option<O>,
}

const NIL: usize = usize::MAX;

struct Event {
    op: usize,
    call: bool,
    /// The other event of the same operation.
    partner: usize,
    prev: usize,
    next: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Whether the history is linearizable with respect to the model.
pub fn check<M: Model>(model: &M, ops: &[Operation<M::Input, M::Output>]) -> bool {
    let n = ops.len();
    if n == 0 {
        return true;
    }
    // Events in time order; at equal times calls come first (the most
    // permissive reading: such operations overlap).
    let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i));
        order.push((op.ret.unwrap_or(u64::MAX), 1, i));
    }
    order.sort_unstable();
    // Slot 0 is the head sentinel; events follow.
    let mut ev: Vec<Event> = Vec::with_capacity(2 * n + 1);
    ev.push(Event {
        op: NIL,
        call: false,
        partner: NIL,
        prev: NIL,
        next: 1,
    });
    let mut call_slot = vec![0usize; n];
    for (k, &(_, kind, op)) in order.iter().enumerate() {
        let slot = k + 1;
        ev.push(Event {
            op,
            call: kind == 0,
            partner: NIL,
            prev: slot - 1,
            next: if k + 1 < order.len() { slot + 1 } else { NIL },
        });
        if kind == 0 {
            call_slot[op] = slot;
        } else {
            let c = call_slot[op];
            ev[slot].partner = c;
            ev[c].partner = slot;
        }
    }

    fn unlink(ev: &mut [Event], s: usize) {
        let (p, nx) = (ev[s].prev, ev[s].next);
        ev[p].next = nx;
        if nx != NIL {
            ev[nx].prev = p;
        }
    }
    fn relink(ev: &mut [Event], s: usize) {
        let (p, nx) = (ev[s].prev, ev[s].next);
        ev[p].next = s;
        if nx != NIL {
            ev[nx].prev = s;
        }
    }

    let mut state = model.init();
    let mut linearized = Bits::new(n);
    let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut entry = ev[0].next;
    while ev[0].next != NIL {
        if entry == NIL {
            // Past the end without linearizing everything: back up.
            let Some((call, prev_state)) = stack.pop() else {
                return false;
            };
            state = prev_state;
            linearized.clear(ev[call].op);
            let ret = ev[call].partner;
            relink(&mut ev, ret);
            relink(&mut ev, call);
            entry = ev[call].next;
            continue;
        }
        if ev[entry].call {
            let op = &ops[ev[entry].op];
            if let Some(next) = model.step(&state, &op.input, op.output.as_ref()) {
                let mut lin = linearized.clone();
                lin.set(ev[entry].op);
                if cache.insert((lin.clone(), next.clone())) {
                    stack.push((entry, state));
                    state = next;
                    linearized = lin;
                    let ret = ev[entry].partner;
                    unlink(&mut ev, entry);
                    unlink(&mut ev, ret);
                    entry = ev[0].next;
                    continue;
                }
            }
            entry = ev[entry].next;
        } else {
            // A return whose operation is not linearized yet: back up.
            let Some((call, prev_state)) = stack.pop() else {
                return false;
            };
            state = prev_state;
            linearized.clear(ev[call].op);
            let ret = ev[call].partner;
            relink(&mut ev, ret);
            relink(&mut ev, call);
            entry = ev[call].next;
        }
    }
    true
}

/// A smaller history that is still not linearizable: operations are
/// dropped, in chunks and then one by one, while the rest still fails.
/// `sound` vets a candidate (e.g. keeps the write a kept read observed, so
/// the result shows the real conflict, not a read of a value from nowhere).
pub fn minimize<M: Model>(
    model: &M,
    ops: &[Operation<M::Input, M::Output>],
    sound: impl Fn(&[usize]) -> bool,
) -> Vec<usize>
where
    M::Input: Clone,
    M::Output: Clone,
{
    let mut keep: Vec<usize> = (0..ops.len()).collect();
    let fails = |keep: &[usize]| {
        if !sound(keep) {
            return false;
        }
        let sub: Vec<_> = keep.iter().map(|&i| ops[i].clone()).collect();
        !check(model, &sub)
    };
    debug_assert!(fails(&keep));
    let mut chunk = keep.len() / 2;
    while chunk >= 1 {
        let mut start = 0;
        while start < keep.len() {
            let end = (start + chunk).min(keep.len());
            let candidate: Vec<usize> = keep[..start].iter().chain(&keep[end..]).copied().collect();
            if !candidate.is_empty() && fails(&candidate) {
                keep = candidate;
            } else {
                start = end;
            }
        }
        chunk /= 2;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register: write(v) or read() -> v.
    struct Register;

    #[derive(Clone, Debug)]
    enum Io {
        Write(u32),
        Read,
    }

    impl Model for Register {
        type State = u32;
        type Input = Io;
        type Output = u32;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, s: &u32, i: &Io, o: Option<&u32>) -> Option<u32> {
            match i {
                Io::Write(v) => Some(*v),
                Io::Read => (o.is_none() || o == Some(s)).then_some(*s),
            }
        }
    }

    fn op(call: u64, ret: Option<u64>, input: Io, output: Option<u32>) -> Operation<Io, u32> {
        Operation {
            call,
            ret,
            input,
            output,
        }
    }

    #[test]
    fn simulated_checker_accepts_linearizable_histories() {
        // Overlapping write and read: the read may see either value.
        let h = vec![
            op(0, Some(10), Io::Write(1), Some(0)),
            op(5, Some(15), Io::Read, Some(1)),
        ];
        assert!(check(&Register, &h));
        let h = vec![
            op(0, Some(10), Io::Write(1), Some(0)),
            op(5, Some(15), Io::Read, Some(0)),
        ];
        assert!(check(&Register, &h));
        // A write that never returned may have happened.
        let h = vec![
            op(0, None, Io::Write(7), None),
            op(20, Some(30), Io::Read, Some(7)),
        ];
        assert!(check(&Register, &h));
        // ...or not.
        let h = vec![
            op(0, None, Io::Write(7), None),
            op(20, Some(30), Io::Read, Some(0)),
        ];
        assert!(check(&Register, &h));
    }

    #[test]
    fn simulated_checker_rejects_non_linearizable_histories() {
        // A read after a completed write sees the old value.
        let h = vec![
            op(0, Some(10), Io::Write(1), Some(0)),
            op(20, Some(30), Io::Read, Some(0)),
        ];
        assert!(!check(&Register, &h));
        // Two sequential reads see a value go back.
        let h = vec![
            op(0, Some(5), Io::Write(1), None),
            op(6, Some(8), Io::Write(2), None),
            op(10, Some(12), Io::Read, Some(2)),
            op(14, Some(16), Io::Read, Some(1)),
        ];
        assert!(!check(&Register, &h));
        // A value nobody wrote.
        let h = vec![op(0, Some(5), Io::Read, Some(9))];
        assert!(!check(&Register, &h));
    }

    #[test]
    fn simulated_minimize_keeps_a_failing_core() {
        let mut h: Vec<Operation<Io, u32>> = (0..20u64)
            .map(|t| op(t * 10, Some(t * 10 + 5), Io::Write(t as u32 + 100), None))
            .collect();
        h.push(op(300, Some(305), Io::Write(1), None));
        h.push(op(310, Some(315), Io::Read, Some(119)));
        assert!(!check(&Register, &h));
        let core = minimize(&Register, &h, |_| true);
        assert!(core.len() <= 3, "{core:?}");
        let sub: Vec<_> = core.iter().map(|&i| h[i].clone()).collect();
        assert!(!check(&Register, &sub));
    }
}
