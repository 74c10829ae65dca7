//! Checking kv histories: per key (operations on different keys commute),
//! with the key's value as the model's state. `count` and `print` read the
//! whole map and are left out of the check (and counted as skipped).
//!
//! A key starts absent, as on a fresh cluster, unless the history holds an
//! `initial` read of it (kv-bench reads every key before its load, since
//! the cluster may already hold data): then it starts unknown, and the
//! first operations on it say what it held.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::linearizability::{Model, Operation, check, minimize};
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::msg::{Op, Response};

/// What the checker knows of a key's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Not known yet: the run started on a cluster that may hold the key.
    Unknown,
    Absent,
    /// Present with a value not known yet (only `exists` looked).
    Present,
    Value(String),
}

/// One key's value, as a sequential specification, from `start`.
pub struct KeyModel {
    pub start: KeyState,
}

impl Model for KeyModel {
    type State = KeyState;
    type Input = Op;
    type Output = Response;

    fn init(&self) -> KeyState {
        self.start.clone()
    }

    fn step(&self, s: &KeyState, op: &Op, out: Option<&Response>) -> Option<KeyState> {
        use KeyState::{Absent, Present, Unknown, Value};
        // A refused request changed nothing.
        if let Some(Response::Refused(_)) = out {
            return Some(s.clone());
        }
        let may_be_absent = matches!(s, Unknown | Absent);
        match (op, out) {
            (Op::Get(_) | Op::Exists(_), None) => Some(s.clone()),
            (Op::Get(_), Some(Response::Value(v))) => match s {
                Unknown | Present => Some(Value(v.clone())),
                Value(w) if w == v => Some(s.clone()),
                _ => None,
            },
            (Op::Get(_), Some(Response::NotFound))
            | (Op::Exists(_), Some(Response::Bool(false)))
            | (Op::Delete(_), Some(Response::NotFound)) => may_be_absent.then_some(Absent),
            (Op::Exists(_), Some(Response::Bool(true))) => match s {
                Unknown => Some(Present),
                Absent => None,
                _ => Some(s.clone()),
            },
            (Op::Update(_, v), None | Some(Response::Ok)) => Some(Value(v.clone())),
            (Op::Delete(_), None) => Some(Absent),
            (Op::Delete(_), Some(Response::Ok)) => (*s != Absent).then_some(Absent),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub linearizable: bool,
    pub operations: usize,
    pub keys: usize,
    /// `count` / `print` operations, not checked.
    pub skipped: usize,
    /// The key of a violation and the smallest failing sub-history found.
    pub violation: Option<(String, Vec<HistoryOp>)>,
}

fn operation(h: &HistoryOp) -> Operation<Op, Response> {
    Operation {
        call: h.call_ns,
        ret: h.ret_ns,
        input: h.op.clone(),
        output: h.output.clone(),
    }
}

/// Checks a history key by key; on a violation, shrinks it.
pub fn check_history(history: &[HistoryOp]) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&HistoryOp>> = BTreeMap::new();
    let mut skipped = 0;
    for h in history {
        match h.op.key() {
            Some(k) => by_key.entry(k).or_default().push(h),
            None => skipped += 1,
        }
    }
    let keys = by_key.len();
    for (key, ops) in &by_key {
        let seq: Vec<_> = ops.iter().map(|h| operation(h)).collect();
        let start = if ops.iter().any(|h| h.initial) {
            KeyState::Unknown
        } else {
            KeyState::Absent
        };
        let model = KeyModel { start };
        if !check(&model, &seq) {
            // A read of a value from nowhere is a conflict of its own.
            let all: Vec<usize> = (0..ops.len()).collect();
            let sourced = sources_kept(ops, &all);
            let core = minimize(&model, &seq, |keep| !sourced || sources_kept(ops, keep));
            let sub = core.iter().map(|&i| ops[i].clone()).collect();
            return Verdict {
                linearizable: false,
                operations: history.len(),
                keys,
                skipped,
                violation: Some((key.to_string(), sub)),
            };
        }
    }
    Verdict {
        linearizable: true,
        operations: history.len(),
        keys,
        skipped,
        violation: None,
    }
}

/// Every value a kept read returned was written by a kept update, or was
/// there from the start (a kept initial read saw it), so that the failing
/// core shows the real conflict, not a read of a value from nowhere.
fn sources_kept(ops: &[&HistoryOp], keep: &[usize]) -> bool {
    keep.iter().all(|&i| match &ops[i].output {
        Some(Response::Value(v)) if !ops[i].initial => keep.iter().any(|&j| {
            matches!(&ops[j].op, Op::Update(_, w) if w == v)
                || (ops[j].initial && ops[j].output.as_ref() == Some(&Response::Value(v.clone())))
        }),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;

    fn h(client: u32, call: u64, ret: Option<u64>, op: Op, output: Option<Response>) -> HistoryOp {
        let _ = NodeId(client);
        HistoryOp {
            client,
            id: call,
            op,
            call_ns: call,
            ret_ns: ret,
            output,
            tries: 1,
            initial: false,
        }
    }

    fn up(k: &str, v: &str) -> Op {
        Op::Update(k.into(), v.into())
    }

    #[test]
    fn simulated_kv_checker_on_hand_made_histories() {
        let get = |k: &str| Op::Get(k.into());
        let ok = vec![
            h(1, 0, Some(10), up("a", "1"), Some(Response::Ok)),
            h(2, 5, Some(15), get("a"), Some(Response::NotFound)), // overlaps the write
            h(2, 20, Some(30), get("a"), Some(Response::Value("1".into()))),
            h(
                1,
                20,
                Some(25),
                Op::Delete("b".into()),
                Some(Response::NotFound),
            ),
            h(3, 40, None, up("a", "2"), None), // never answered
            h(2, 50, Some(60), get("a"), Some(Response::Value("2".into()))),
            h(1, 70, Some(80), Op::Count, Some(Response::Count(1))),
        ];
        let v = check_history(&ok);
        assert!(v.linearizable, "{v:?}");
        assert_eq!((v.keys, v.skipped), (2, 1));

        // A lost acknowledged write: the read after it sees the old value.
        let lost = vec![
            h(1, 0, Some(10), up("a", "1"), Some(Response::Ok)),
            h(1, 11, Some(20), up("a", "2"), Some(Response::Ok)),
            h(2, 30, Some(40), get("a"), Some(Response::Value("1".into()))),
            h(
                3,
                50,
                Some(60),
                Op::Exists("z".into()),
                Some(Response::Bool(false)),
            ),
        ];
        let v = check_history(&lost);
        assert!(!v.linearizable);
        let (key, core) = v.violation.unwrap();
        assert_eq!(key, "a");
        assert_eq!(core.len(), 3, "both writes and the stale read: {core:?}");

        // Deleting a key that is not there cannot answer OK.
        let bad_delete = vec![h(1, 0, Some(5), Op::Delete("q".into()), Some(Response::Ok))];
        assert!(!check_history(&bad_delete).linearizable);
    }
}

#[cfg(test)]
mod starting_state_tests {
    use super::*;

    fn op(client: u32, call: u64, ret: u64, op: Op, output: Response) -> HistoryOp {
        HistoryOp {
            client,
            id: call,
            op,
            call_ns: call,
            ret_ns: Some(ret),
            output: Some(output),
            tries: 1,
            initial: false,
        }
    }

    /// A second run on a cluster that already holds `a = old`.
    fn second_run(initial: bool) -> Vec<HistoryOp> {
        let get = || Op::Get("a".into());
        let mut first = op(9, 0, 5, get(), Response::Value("old".into()));
        first.initial = initial;
        vec![
            first,
            op(1, 10, 20, get(), Response::Value("old".into())),
            op(2, 12, 22, Op::Exists("a".into()), Response::Bool(true)),
            op(
                1,
                30,
                40,
                Op::Update("a".into(), "new".into()),
                Response::Ok,
            ),
            op(2, 50, 60, get(), Response::Value("new".into())),
        ]
    }

    #[test]
    fn simulated_kv_checker_starts_from_the_recorded_state() {
        let v = check_history(&second_run(true));
        assert!(v.linearizable, "{v:?}");
        // Without the mark, the key is taken to start absent: "old" came
        // from nowhere.
        assert!(!check_history(&second_run(false)).linearizable);
        // The recorded state binds: reading another value before any
        // write is a violation, and its core keeps the initial read.
        let mut h = second_run(true);
        h[1].output = Some(Response::Value("other".into()));
        let v = check_history(&h);
        assert!(!v.linearizable);
        let (_, core) = v.violation.unwrap();
        assert!(core.iter().any(|o| o.initial), "{core:?}");
        // A key only `exists` looked at starts present, value unknown.
        let seen = vec![
            {
                let mut o = op(9, 0, 5, Op::Exists("b".into()), Response::Bool(true));
                o.initial = true;
                o
            },
            op(1, 10, 20, Op::Get("b".into()), Response::Value("x".into())),
            op(1, 30, 40, Op::Get("b".into()), Response::NotFound),
        ];
        assert!(
            !check_history(&seen).linearizable,
            "present, then gone by itself"
        );
    }
}
