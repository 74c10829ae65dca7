//! Operations and blocks: appending a new operation, merging two blocks
//! that diverged, and choosing what a site runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::matrix::{ResolutionType, ResourceConfig};

/// One operation on a resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// A free tag the resolution matrix is keyed by.
    pub kind: String,
    pub request_id: String,
    pub command: String,
    /// Attached files, by name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// When the site that took it accepted it, in ns of its clock.
    pub time_ns: u64,
}

fn pair(config: &ResourceConfig, before: &Operation, after: &Operation) -> Option<ResolutionType> {
    config.lookup(&before.kind, &after.kind)
}

/// The block after `new` arrives: compared with the last operation,
/// any/keep order (or no entry) append it; take-one and reverse order
/// start a new block holding it alone.
pub fn append(block: &[Operation], new: Operation, config: &ResourceConfig) -> Vec<Operation> {
    match block.last().map(|last| pair(config, last, &new)) {
        None => vec![new],
        Some(Some(ResolutionType::TakeOne | ResolutionType::ReverseOrder)) => vec![new],
        Some(_) => {
            let mut out = block.to_vec();
            out.push(new);
            out
        }
    }
}

/// Merges two blocks that diverged; `main` is the deterministic winner.
/// Their first operations are compared: the same request is kept once;
/// take-one keeps main's; any/keep order (or no entry) put the other's
/// second; reverse order puts it first. Then the rest of `other` is
/// appended where absent.
///
/// Departures from the original, which are defects there: an empty side
/// gives the other (the original panics on index 0); an operation is never
/// inserted twice (the original does with no matrix entry and equal first
/// requests, or with two matching entries).
pub fn merge(main: &[Operation], other: &[Operation], config: &ResourceConfig) -> Vec<Operation> {
    let (Some(m0), Some(o0)) = (main.first(), other.first()) else {
        return if main.is_empty() { other } else { main }.to_vec();
    };
    let mut ops = main.to_vec();
    let has = |ops: &[Operation], op: &Operation| ops.iter().any(|o| o.request_id == op.request_id);
    if !has(&ops, o0) {
        match pair(config, m0, o0) {
            Some(ResolutionType::TakeOne) => {}
            Some(ResolutionType::ReverseOrder) => ops.insert(0, o0.clone()),
            _ => ops.insert(1, o0.clone()),
        }
    }
    for op in &other[1..] {
        if !has(&ops, op) {
            ops.push(op.clone());
        }
    }
    ops
}

/// What a site runs to bring its state to the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPlan {
    /// Restore the state saved when the block began here before running
    /// (the block is re-run from its start).
    pub restore_base: bool,
    /// The block is a new one here: save the current state as its base.
    pub new_base: bool,
    /// Indexes into the block, in order.
    pub run: Vec<usize>,
}

/// What to run, given the requests whose effects the state holds since
/// the block began here (`applied`, in the order they ran).
///
/// The original decides from the replies a site ever wrote: the new tail
/// only when nothing is missing before a ran operation, else everything
/// when the first two operations are keep-order, else what is missing.
/// This keeps those rules but decides from what the state holds, so an
/// operation that ran and was later dropped (a superseded `take-one`)
/// forces a fresh run instead of leaving its effect behind: the original
/// would run only the new tail on top of it and diverge.
pub fn plan_run(block: &[Operation], applied: &[String], config: &ResourceConfig) -> RunPlan {
    let in_block = |id: &String| block.iter().any(|o| &o.request_id == id);
    let all = || (0..block.len()).collect::<Vec<_>>();
    if !applied.iter().all(in_block) {
        // Something the state holds was dropped: a new block, on top of
        // the current state, as the original runs a new block.
        return RunPlan {
            restore_base: false,
            new_base: true,
            run: all(),
        };
    }
    let is_prefix = applied.len() <= block.len()
        && applied.iter().zip(block).all(|(a, op)| *a == op.request_id);
    let missing: Vec<usize> = (0..block.len())
        .filter(|&i| !applied.contains(&block[i].request_id))
        .collect();
    if is_prefix {
        return RunPlan {
            restore_base: false,
            new_base: applied.is_empty(),
            run: missing,
        };
    }
    let keep_order =
        block.len() > 1 && pair(config, &block[0], &block[1]) == Some(ResolutionType::KeepOrder);
    if keep_order {
        RunPlan {
            restore_base: true,
            new_base: false,
            run: all(),
        }
    } else {
        RunPlan {
            restore_base: false,
            new_base: false,
            run: missing,
        }
    }
}

#[cfg(test)]
pub(crate) fn op(kind: &str, id: &str) -> Operation {
    Operation {
        kind: kind.into(),
        request_id: id.into(),
        command: String::new(),
        files: BTreeMap::new(),
        time_ns: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::matrix::{Resolution, counter_config};
    use super::*;

    fn ids(ops: &[Operation]) -> Vec<&str> {
        ops.iter().map(|o| o.request_id.as_str()).collect()
    }

    // TestDecideOperations.
    #[test]
    fn append_follows_the_matrix() {
        let c = counter_config();
        assert_eq!(
            ids(&append(&[op("set", "set-init")], op("set", "set-new"), &c)),
            ["set-new"]
        );
        assert_eq!(
            ids(&append(&[op("set", "set")], op("inc", "inc"), &c)),
            ["set", "inc"]
        );
        assert_eq!(
            ids(&append(&[op("dec", "dec")], op("set", "set"), &c)),
            ["set"]
        );
        assert_eq!(
            ids(&append(&[op("dec", "dec")], op("inc", "inc"), &c)),
            ["dec", "inc"]
        );
        assert_eq!(ids(&append(&[], op("inc", "inc"), &c)), ["inc"]);
    }

    // TestMerge, vectors 1 to 7.
    #[test]
    fn merge_reproduces_the_original_vectors() {
        let c = counter_config();
        let none = ResourceConfig::default();
        let m = |a: &[Operation], b: &[Operation], c: &ResourceConfig| {
            ids(&merge(a, b, c))
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            m(&[op("inc", "inc")], &[op("dec", "dec")], &none),
            ["inc", "dec"]
        );
        assert_eq!(
            m(&[op("set", "set")], &[op("dec", "dec")], &c),
            ["set", "dec"]
        );
        assert_eq!(
            m(&[op("dec", "dec")], &[op("set", "set")], &c),
            ["set", "dec"]
        );
        assert_eq!(
            m(&[op("set", "set-main")], &[op("set", "set-conflict")], &c),
            ["set-main"]
        );
        assert_eq!(
            m(
                &[op("set", "set"), op("inc", "inc1"), op("inc", "inc-main")],
                &[
                    op("set", "set"),
                    op("inc", "inc1"),
                    op("inc", "inc-conflict")
                ],
                &c
            ),
            ["set", "inc1", "inc-main", "inc-conflict"]
        );
        // Vectors 6 and 7 merge with the conflict's config (counterConfig),
        // which wins over the main side's empty one.
        assert_eq!(
            m(
                &[op("set", "set-0"), op("inc", "inc1")],
                &[op("set", "set-1"), op("inc", "inc2")],
                &c
            ),
            ["set-0", "inc1", "inc2"]
        );
        assert_eq!(
            m(
                &[op("inc", "inc-0"), op("inc", "inc-1")],
                &[op("set", "set-1"), op("inc", "inc-2")],
                &c
            ),
            ["set-1", "inc-0", "inc-1", "inc-2"]
        );
    }

    #[test]
    fn merge_fixes_the_original_defects() {
        let none = ResourceConfig::default();
        // Same first request and no entry: the original inserts it twice.
        let a = [op("inc", "x"), op("inc", "y")];
        let b = [op("inc", "x"), op("inc", "z")];
        assert_eq!(ids(&merge(&a, &b, &none)), ["x", "y", "z"]);
        // An empty side: the original panics.
        assert_eq!(ids(&merge(&[], &b, &none)), ["x", "z"]);
        assert_eq!(ids(&merge(&a, &[], &none)), ["x", "y"]);
        // Two matching entries: the original inserts twice.
        let mut two = ResourceConfig::default();
        for _ in 0..2 {
            two.resolution_matrix.push(Resolution {
                before: "inc".into(),
                after: "dec".into(),
                result: ResolutionType::AnyOrder,
            });
        }
        assert_eq!(
            ids(&merge(&[op("inc", "i")], &[op("dec", "d")], &two)),
            ["i", "d"]
        );
    }

    // TestFindOperations (applied = the replies, in block order).
    #[test]
    fn plan_reproduces_the_original_vectors() {
        let mut c = counter_config();
        c.resolution_matrix.push(Resolution {
            before: "inc".into(),
            after: "inc".into(),
            result: ResolutionType::AnyOrder,
        });
        let b = |v: &[(&str, &str)]| v.iter().map(|(k, i)| op(k, i)).collect::<Vec<_>>();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let three = b(&[("set", "set"), ("inc", "inc1"), ("inc", "inc2")]);
        assert_eq!(plan_run(&b(&[("set", "set")]), &[], &c).run, [0]);
        assert!(
            plan_run(&three[..2], &s(&["set", "inc1"]), &c)
                .run
                .is_empty()
        );
        let p = plan_run(&three, &s(&["set", "inc2"]), &c);
        assert_eq!((p.run, p.restore_base), (vec![0, 1, 2], true));
        assert_eq!(plan_run(&three, &[], &c).run, [0, 1, 2]);
        assert_eq!(plan_run(&three, &s(&["set", "inc1"]), &c).run, [2]);
        let incs = b(&[("inc", "inc"), ("inc", "inc1"), ("inc", "inc2")]);
        let p = plan_run(&incs, &s(&["inc1", "inc2"]), &c);
        assert_eq!((p.run, p.restore_base), (vec![0], false));
    }

    #[test]
    fn a_dropped_operation_forces_a_fresh_run() {
        let c = counter_config();
        // The state holds set-t, which the block no longer has.
        let block = [op("set", "s"), op("inc", "i")];
        let p = plan_run(&block, &["t".to_string()], &c);
        assert_eq!(
            (p.run, p.new_base, p.restore_base),
            (vec![0, 1], true, false)
        );
    }
}
