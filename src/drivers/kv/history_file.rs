//! `history.jsonl`: a kv history as one JSON object per operation, so that
//! anyone can keep the evidence of a run and check it again, with
//! `dz kv check` or another checker (Porcupine, Knossos, Elle):
//!
//! ```json
//! {"client":0,"id":1,"op":"get","key":"k1","call_ns":1200,"return_ns":9100,"outcome":"not_found","tries":1,"initial":true}
//! {"client":2,"id":7,"op":"update","key":"k3","value":"abc","call_ns":5000,"return_ns":8000,"outcome":"ok","tries":1}
//! {"client":1,"id":4,"op":"get","key":"k3","call_ns":6000,"return_ns":9000,"outcome":"value","read":"abc","tries":2}
//! {"client":3,"id":9,"op":"delete","key":"k3","call_ns":7000,"outcome":"unknown","tries":3}
//! ```
//!
//! `return_ns` is absent, and `outcome` is `unknown`, for an operation that
//! got no answer (it may or may not have taken effect). `initial` marks
//! reads of the state a run started from. The fields are documented in
//! docs/kv.md.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::msg::{Op, Response};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpName {
    Get,
    Exists,
    Update,
    Delete,
    Count,
    Print,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeName {
    Ok,
    Value,
    NotFound,
    True,
    False,
    Count,
    Pairs,
    Refused,
    /// No answer came.
    Unknown,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    client: u32,
    id: u64,
    op: OpName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The value an update writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    call_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    return_ns: Option<u64>,
    outcome: OutcomeName,
    /// The value a get read (outcome `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pairs: Option<Vec<(String, String)>>,
    /// Why a request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default = "one")]
    tries: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    initial: bool,
}

fn one() -> u32 {
    1
}

fn line_of(h: &HistoryOp) -> Line {
    let (op, key, value) = match &h.op {
        Op::Get(k) => (OpName::Get, Some(k.clone()), None),
        Op::Exists(k) => (OpName::Exists, Some(k.clone()), None),
        Op::Update(k, v) => (OpName::Update, Some(k.clone()), Some(v.clone())),
        Op::Delete(k) => (OpName::Delete, Some(k.clone()), None),
        Op::Count => (OpName::Count, None, None),
        Op::Print => (OpName::Print, None, None),
    };
    let mut line = Line {
        client: h.client,
        id: h.id,
        op,
        key,
        value,
        call_ns: h.call_ns,
        return_ns: h.ret_ns,
        outcome: OutcomeName::Unknown,
        read: None,
        count: None,
        pairs: None,
        reason: None,
        tries: h.tries,
        initial: h.initial,
    };
    line.outcome = match &h.output {
        None => OutcomeName::Unknown,
        Some(Response::Ok) => OutcomeName::Ok,
        Some(Response::Value(v)) => {
            line.read = Some(v.clone());
            OutcomeName::Value
        }
        Some(Response::NotFound) => OutcomeName::NotFound,
        Some(Response::Bool(true)) => OutcomeName::True,
        Some(Response::Bool(false)) => OutcomeName::False,
        Some(Response::Count(n)) => {
            line.count = Some(*n);
            OutcomeName::Count
        }
        Some(Response::Pairs(p)) => {
            line.pairs = Some(p.clone());
            OutcomeName::Pairs
        }
        Some(Response::Refused(why)) => {
            line.reason = Some(why.clone());
            OutcomeName::Refused
        }
    };
    line
}

/// Which outcomes each operation can have, besides `refused` and `unknown`.
fn outcomes_of(op: OpName) -> &'static [OutcomeName] {
    use OutcomeName as O;
    match op {
        OpName::Get => &[O::Value, O::NotFound],
        OpName::Exists => &[O::True, O::False],
        OpName::Update => &[O::Ok],
        OpName::Delete => &[O::Ok, O::NotFound],
        OpName::Count => &[O::Count],
        OpName::Print => &[O::Pairs],
    }
}

fn name<T: Serialize>(t: T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The operation a line describes, or what is wrong with it.
fn op_of(l: Line) -> std::result::Result<HistoryOp, String> {
    let needs_key = !matches!(l.op, OpName::Count | OpName::Print);
    let key = match (needs_key, l.key) {
        (true, Some(k)) => k,
        (true, None) => return Err(format!("a {} needs a \"key\"", name(l.op))),
        (false, Some(_)) => return Err(format!("a {} has no \"key\"", name(l.op))),
        (false, None) => String::new(),
    };
    let op = match (l.op, l.value) {
        (OpName::Update, Some(v)) => Op::Update(key, v),
        (OpName::Update, None) => return Err("an update needs the \"value\" it writes".into()),
        (other, Some(_)) => {
            return Err(format!(
                "only an update has a \"value\" (the value read is \"read\"), not a {}",
                name(other)
            ));
        }
        (OpName::Get, None) => Op::Get(key),
        (OpName::Exists, None) => Op::Exists(key),
        (OpName::Delete, None) => Op::Delete(key),
        (OpName::Count, None) => Op::Count,
        (OpName::Print, None) => Op::Print,
    };
    match (l.outcome, l.return_ns) {
        (OutcomeName::Unknown, Some(_)) => {
            return Err("outcome \"unknown\" means no answer: drop \"return_ns\"".into());
        }
        (o, None) if o != OutcomeName::Unknown => {
            return Err(format!(
                "outcome \"{}\" needs \"return_ns\" (without an answer the outcome is \"unknown\")",
                name(o)
            ));
        }
        (_, Some(r)) if r < l.call_ns => {
            return Err(format!("return_ns {r} is before call_ns {}", l.call_ns));
        }
        _ => {}
    }
    let fits = matches!(l.outcome, OutcomeName::Refused | OutcomeName::Unknown)
        || outcomes_of(l.op).contains(&l.outcome);
    if !fits {
        return Err(format!(
            "a {} cannot have outcome \"{}\"",
            name(l.op),
            name(l.outcome)
        ));
    }
    let missing = |field: &str| Err(format!("outcome \"{}\" needs \"{field}\"", name(l.outcome)));
    let output = match l.outcome {
        OutcomeName::Unknown => None,
        OutcomeName::Ok => Some(Response::Ok),
        OutcomeName::NotFound => Some(Response::NotFound),
        OutcomeName::True => Some(Response::Bool(true)),
        OutcomeName::False => Some(Response::Bool(false)),
        OutcomeName::Refused => Some(Response::Refused(l.reason.unwrap_or_default())),
        OutcomeName::Value => match l.read {
            Some(v) => Some(Response::Value(v)),
            None => return missing("read"),
        },
        OutcomeName::Count => match l.count {
            Some(n) => Some(Response::Count(n)),
            None => return missing("count"),
        },
        OutcomeName::Pairs => match l.pairs {
            Some(p) => Some(Response::Pairs(p)),
            None => return missing("pairs"),
        },
    };
    Ok(HistoryOp {
        client: l.client,
        id: l.id,
        op,
        call_ns: l.call_ns,
        ret_ns: l.return_ns,
        output,
        tries: l.tries,
        initial: l.initial,
    })
}

/// The history as JSON lines, in call order.
pub fn to_jsonl(history: &[HistoryOp]) -> String {
    let mut ops: Vec<&HistoryOp> = history.iter().collect();
    ops.sort_by_key(|h| (h.call_ns, h.client, h.id));
    let mut out = String::new();
    for h in ops {
        let text = serde_json::to_string(&line_of(h)).expect("a line serializes");
        out.push_str(&text);
        out.push('\n');
    }
    out
}

pub fn write(path: &Path, history: &[HistoryOp]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(to_jsonl(history).as_bytes())
        .map_err(|e| Error::io(path, e))
}

/// serde_json says where in the line; the line number is ours.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &text[..i], e.column()),
        None => text,
    }
}

/// Parses a history; `source` names it in errors, which give the line.
pub fn parse(text: &str, source: &str) -> Result<Vec<HistoryOp>> {
    let mut ops = Vec::new();
    let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Error::input(format!("{source}: line {n}: {why}"));
        let line: Line = serde_json::from_str(raw).map_err(|e| bad(without_position(&e)))?;
        let key = (line.client, line.id);
        if let Some(first) = seen.insert(key, n) {
            return Err(bad(format!(
                "client {} request {} is already on line {first}",
                key.0, key.1
            )));
        }
        ops.push(op_of(line).map_err(bad)?);
    }
    if ops.is_empty() {
        return Err(Error::input(format!("{source}: no operations in it")));
    }
    Ok(ops)
}

pub fn read(path: &Path) -> Result<Vec<HistoryOp>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, op: Op, ret: Option<u64>, output: Option<Response>) -> HistoryOp {
        HistoryOp {
            client: 1,
            id,
            op,
            call_ns: id * 10,
            ret_ns: ret,
            output,
            tries: 1,
            initial: false,
        }
    }

    #[test]
    fn simulated_history_file_round_trips_every_kind() {
        let k = || "k".to_string();
        let mut history = vec![
            op(1, Op::Get(k()), Some(15), Some(Response::NotFound)),
            op(
                2,
                Op::Update(k(), "a b,\"c\"".into()),
                Some(25),
                Some(Response::Ok),
            ),
            op(3, Op::Get(k()), Some(35), Some(Response::Value("x".into()))),
            op(4, Op::Exists(k()), Some(45), Some(Response::Bool(true))),
            op(5, Op::Exists(k()), Some(55), Some(Response::Bool(false))),
            op(6, Op::Delete(k()), None, None),
            op(7, Op::Count, Some(75), Some(Response::Count(3))),
            op(
                8,
                Op::Print,
                Some(85),
                Some(Response::Pairs(vec![("a".into(), "1".into())])),
            ),
            op(
                9,
                Op::Update(k(), "y".into()),
                Some(95),
                Some(Response::Refused("too big".into())),
            ),
        ];
        history[0].initial = true;
        history[5].tries = 4;
        let text = to_jsonl(&history);
        assert_eq!(text.lines().count(), history.len());
        assert!(
            text.lines()
                .next()
                .unwrap()
                .ends_with(r#""tries":1,"initial":true}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""op":"delete","key":"k","call_ns":60,"outcome":"unknown","tries":4"#),
            "{text}"
        );
        assert_eq!(parse(&text, "h").unwrap(), history);
    }

    #[test]
    fn simulated_history_file_errors_name_the_line() {
        let good = r#"{"client":1,"id":1,"op":"get","key":"a","call_ns":1,"return_ns":2,"outcome":"not_found"}"#;
        let cases = [
            ("not json", "line 2: expected"),
            (
                r#"{"client":1,"id":2,"op":"gett","key":"a","call_ns":1,"outcome":"unknown"}"#,
                "unknown variant `gett`",
            ),
            (
                r#"{"client":1,"id":2,"op":"get","call_ns":1,"outcome":"unknown"}"#,
                "a get needs a \"key\"",
            ),
            (
                r#"{"client":1,"id":2,"op":"update","key":"a","call_ns":1,"outcome":"unknown"}"#,
                "needs the \"value\"",
            ),
            (
                r#"{"client":1,"id":2,"op":"get","key":"a","call_ns":1,"outcome":"value"}"#,
                "needs \"return_ns\"",
            ),
            (
                r#"{"client":1,"id":2,"op":"get","key":"a","call_ns":5,"return_ns":3,"outcome":"value","read":"x"}"#,
                "before call_ns",
            ),
            (
                r#"{"client":1,"id":2,"op":"get","key":"a","call_ns":1,"return_ns":3,"outcome":"value"}"#,
                "needs \"read\"",
            ),
            (
                r#"{"client":1,"id":2,"op":"update","key":"a","value":"v","call_ns":1,"return_ns":3,"outcome":"not_found"}"#,
                "cannot have outcome \"not_found\"",
            ),
            (
                r#"{"client":1,"id":2,"op":"get","key":"a","call_ns":1,"outcome":"unknown","colour":1}"#,
                "unknown field `colour`",
            ),
            (good, "client 1 request 1 is already on line 1"),
        ];
        for (line, says) in cases {
            let text = format!("{good}\n{line}\n");
            let err = parse(&text, "h.jsonl").unwrap_err().to_string();
            assert!(
                err.contains("h.jsonl: line 2: ") && err.contains(says),
                "{line}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(
            parse("\n\n", "e.jsonl")
                .unwrap_err()
                .to_string()
                .contains("no operations")
        );
    }
}
