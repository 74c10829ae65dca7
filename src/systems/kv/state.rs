//! The replicated state machine: the key-value map and, per client, the
//! replies it may still ask for again, so a retried request is applied
//! exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::msg::{Op, Request, Response};
use crate::node::NodeId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct ClientTable {
    /// Replies to requests the client may still be waiting for.
    replies: BTreeMap<u64, Response>,
    /// Requests below this were answered and forgotten.
    floor: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    clients: BTreeMap<NodeId, ClientTable>,
}

/// What applying a request gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// Executed now, or executed before and its reply kept.
    Reply(Response),
    /// Answered long ago; the client said it no longer waits for it.
    Forgotten,
}

impl KvStore {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A digest of the data (not the client tables), for checkers that
    /// compare replicas.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.data.hash(&mut h);
        h.finish()
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    /// The reply to a request already applied, if still kept.
    pub fn cached(&self, client: NodeId, id: u64) -> Option<Applied> {
        let t = self.clients.get(&client)?;
        if id < t.floor {
            return Some(Applied::Forgotten);
        }
        t.replies.get(&id).cloned().map(Applied::Reply)
    }

    pub fn apply(&mut self, req: &Request) -> Applied {
        let t = self.clients.entry(req.client).or_default();
        if req.min_outstanding > t.floor {
            t.floor = req.min_outstanding;
            t.replies = t.replies.split_off(&req.min_outstanding);
        }
        if req.id < t.floor {
            return Applied::Forgotten;
        }
        if let Some(r) = t.replies.get(&req.id) {
            return Applied::Reply(r.clone());
        }
        let r = execute(&mut self.data, &req.op);
        t.replies.insert(req.id, r.clone());
        Applied::Reply(r)
    }
}

fn execute(data: &mut BTreeMap<String, String>, op: &Op) -> Response {
    if let Err(why) = op.validate() {
        return Response::Refused(why);
    }
    match op {
        Op::Get(k) => data
            .get(k)
            .map_or(Response::NotFound, |v| Response::Value(v.clone())),
        Op::Exists(k) => Response::Bool(data.contains_key(k)),
        Op::Update(k, v) => {
            data.insert(k.clone(), v.clone());
            Response::Ok
        }
        Op::Delete(k) => match data.remove(k) {
            Some(_) => Response::Ok,
            None => Response::NotFound,
        },
        Op::Count => Response::Count(data.len() as u64),
        Op::Print => Response::Pairs(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u64, op: Op, min: u64) -> Request {
        Request {
            client: NodeId(9),
            id,
            op,
            min_outstanding: min,
        }
    }

    #[test]
    fn simulated_retried_request_applies_once() {
        let mut s = KvStore::default();
        let put = req(1, Op::Update("a".into(), "1".into()), 1);
        assert_eq!(s.apply(&put), Applied::Reply(Response::Ok));
        s.apply(&req(2, Op::Delete("a".into()), 1));
        // The retry of 1 must not put "a" back.
        assert_eq!(s.apply(&put), Applied::Reply(Response::Ok));
        assert_eq!(s.get("a"), None);
        // Once the client moved on, old replies are forgotten.
        s.apply(&req(3, Op::Count, 3));
        assert_eq!(s.apply(&put), Applied::Forgotten);
        assert_eq!(
            s.cached(NodeId(9), 3),
            Some(Applied::Reply(Response::Count(0)))
        );
    }
}
