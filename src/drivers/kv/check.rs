//! Checking kv histories: per key (operations on different keys commute),
//! with the key's value as the model's state. `count` and `print` read the
//! whole map and are left out of the check (and counted as skipped).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::linearizability::{Model, Operation, check, minimize};
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::msg::{Op, Response};

/// One key's value, as a sequential specification.
pub struct KeyModel;

impl Model for KeyModel {
    type State = Option<String>;
    type Input = Op;
    type Output = Response;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(&self, s: &Option<String>, op: &Op, out: Option<&Response>) -> Option<Option<String>> {
        // A refused request changed nothing.
        if let Some(Response::Refused(_)) = out {
            return Some(s.clone());
        }
        match (op, out) {
            (Op::Get(_), None) => Some(s.clone()),
            (Op::Get(_), Some(Response::Value(v))) => (s.as_ref() == Some(v)).then(|| s.clone()),
            (Op::Get(_), Some(Response::NotFound)) => s.is_none().then_some(None),
            (Op::Exists(_), None) => Some(s.clone()),
            (Op::Exists(_), Some(Response::Bool(b))) => (s.is_some() == *b).then(|| s.clone()),
            (Op::Update(_, v), None | Some(Response::Ok)) => Some(Some(v.clone())),
            (Op::Delete(_), None) => Some(None),
            (Op::Delete(_), Some(Response::Ok)) => s.is_some().then_some(None),
            (Op::Delete(_), Some(Response::NotFound)) => s.is_none().then_some(None),
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
        if !check(&KeyModel, &seq) {
            let core = minimize(&KeyModel, &seq, |keep| writers_kept(&seq, keep));
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

/// Every value a kept read returned was written by a kept update.
fn writers_kept(ops: &[Operation<Op, Response>], keep: &[usize]) -> bool {
    keep.iter().all(|&i| match &ops[i].output {
        Some(Response::Value(v)) => keep
            .iter()
            .any(|&j| matches!(&ops[j].input, Op::Update(_, w) if w == v)),
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
