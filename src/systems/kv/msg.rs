//! The kv service's operations, replies and protocol messages.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::node::{CodecError, Message, NodeId, decode_postcard, encode_postcard};

/// Longest key and value the service accepts.
pub const MAX_KEY: usize = 1024;
pub const MAX_VALUE: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Get(String),
    Exists(String),
    Update(String, String),
    Delete(String),
    Count,
    Print,
}

impl Op {
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get(k) | Op::Exists(k) | Op::Update(k, _) | Op::Delete(k) => Some(k),
            Op::Count | Op::Print => None,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get(_) | Op::Exists(_) | Op::Count | Op::Print)
    }

    /// Checks sizes; the text says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(k) = self.key() {
            if k.is_empty() {
                return Err("the key is empty".into());
            }
            if k.len() > MAX_KEY {
                return Err(format!("the key has {} bytes; at most {MAX_KEY}", k.len()));
            }
        }
        if let Op::Update(_, v) = self
            && v.len() > MAX_VALUE
        {
            return Err(format!(
                "the value has {} bytes; at most {MAX_VALUE}",
                v.len()
            ));
        }
        Ok(())
    }

    /// Parses the command language: `get K`, `exists K`, `update K V`,
    /// `delete K`, `count`, `print` (values may contain spaces).
    pub fn parse(line: &str) -> Result<Op, String> {
        let line = line.trim();
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let key_only = |what: &str| {
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                Err(format!("usage: {what} KEY"))
            } else {
                Ok(rest.to_string())
            }
        };
        let op = match cmd {
            "get" => Op::Get(key_only("get")?),
            "exists" => Op::Exists(key_only("exists")?),
            "delete" => Op::Delete(key_only("delete")?),
            "update" | "put" | "set" => {
                let (k, v) = rest
                    .split_once(char::is_whitespace)
                    .ok_or("usage: update KEY VALUE")?;
                Op::Update(k.to_string(), v.trim_start().to_string())
            }
            "count" if rest.is_empty() => Op::Count,
            "print" if rest.is_empty() => Op::Print,
            "count" | "print" => return Err(format!("usage: {cmd}")),
            "" => return Err("empty command".into()),
            other => {
                return Err(format!(
                    "unknown command {other:?} (commands: get, exists, update, delete, count, print)"
                ));
            }
        };
        op.validate()?;
        Ok(op)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Response {
    Ok,
    Value(String),
    NotFound,
    Bool(bool),
    Count(u64),
    Pairs(Vec<(String, String)>),
    Refused(String),
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Ok => f.write_str("OK"),
            Response::Value(v) => f.write_str(v),
            Response::NotFound => f.write_str("key not found"),
            Response::Bool(b) => write!(f, "{b}"),
            Response::Count(n) => write!(f, "{n}"),
            Response::Pairs(p) => {
                for (i, (k, v)) in p.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                Ok(())
            }
            Response::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// A client's request. `min_outstanding` is the lowest request id the
/// client still waits for: replies below it may be forgotten.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    pub client: NodeId,
    pub id: u64,
    pub op: Op,
    pub min_outstanding: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done(Response),
    /// Not the master; try this server (if known).
    Redirect(Option<NodeId>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Noop,
    Batch(Vec<Request>),
}

/// A log slot's content and the view it was accepted in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub view: u64,
    pub entry: Entry,
}

/// Applied state at some index, for recovery and lagging replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    pub store: super::state::KvStore,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KvMsg {
    Request(Request),
    Reply {
        id: u64,
        outcome: Outcome,
    },
    Prepare {
        view: u64,
        index: u64,
        entry: Arc<LogEntry>,
        commit: u64,
    },
    PrepareOk {
        view: u64,
        index: u64,
    },
    /// The master's commit index; also its heartbeat.
    Commit {
        view: u64,
        commit: u64,
    },
    /// The sender is in a higher view.
    Nack {
        view: u64,
    },
    Fetch {
        view: u64,
        index: u64,
    },
    /// Committed slots from `index` on, in order.
    Committed {
        view: u64,
        index: u64,
        entries: Vec<Arc<LogEntry>>,
    },
    Install {
        view: u64,
        snapshot: Arc<Snapshot>,
    },
    StartView {
        view: u64,
        from: u64,
    },
    ViewState {
        view: u64,
        commit: u64,
        last: u64,
        entries: Vec<(u64, LogEntry)>,
        snapshot: Option<Arc<Snapshot>>,
    },
    /// Master to a coordinator: replicate this slot for me.
    Delegate {
        view: u64,
        index: u64,
        entry: Arc<LogEntry>,
    },
    /// Coordinator to master: this slot reached a replication quorum.
    Replicated {
        view: u64,
        index: u64,
    },
    /// Before a view change (Raft's pre-vote): does anyone still hear a
    /// master in `view`? Changes nothing at the receiver.
    PreVote {
        view: u64,
    },
    /// No master heard for an election timeout: go ahead.
    PreVoteOk {
        view: u64,
    },
}

impl Message for KvMsg {
    fn kinds() -> &'static [&'static str] {
        &[
            "Request",
            "Reply",
            "Prepare",
            "PrepareOk",
            "Commit",
            "Nack",
            "Fetch",
            "Committed",
            "Install",
            "StartView",
            "ViewState",
            "Delegate",
            "Replicated",
            "PreVote",
            "PreVoteOk",
        ]
    }

    fn kind(&self) -> usize {
        match self {
            KvMsg::Request(_) => 0,
            KvMsg::Reply { .. } => 1,
            KvMsg::Prepare { .. } => 2,
            KvMsg::PrepareOk { .. } => 3,
            KvMsg::Commit { .. } => 4,
            KvMsg::Nack { .. } => 5,
            KvMsg::Fetch { .. } => 6,
            KvMsg::Committed { .. } => 7,
            KvMsg::Install { .. } => 8,
            KvMsg::StartView { .. } => 9,
            KvMsg::ViewState { .. } => 10,
            KvMsg::Delegate { .. } => 11,
            KvMsg::Replicated { .. } => 12,
            KvMsg::PreVote { .. } => 13,
            KvMsg::PreVoteOk { .. } => 14,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("kv", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_kv_commands_parse() {
        assert_eq!(Op::parse("get a"), Ok(Op::Get("a".into())));
        assert_eq!(
            Op::parse("update a hello world"),
            Ok(Op::Update("a".into(), "hello world".into()))
        );
        assert_eq!(Op::parse(" count "), Ok(Op::Count));
        assert!(
            Op::parse("frob a")
                .unwrap_err()
                .contains("unknown command \"frob\"")
        );
        assert!(Op::parse("get").unwrap_err().contains("usage: get KEY"));
        assert!(
            Op::parse("update a")
                .unwrap_err()
                .contains("usage: update KEY VALUE")
        );
        let big = format!("update a {}", "x".repeat(MAX_VALUE + 1));
        assert!(Op::parse(&big).unwrap_err().contains("at most"));
    }
}
