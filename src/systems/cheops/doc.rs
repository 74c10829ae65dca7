//! A resource's replicated document and replies, and how a site
//! reconciles its copy with a peer's.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::block::{Operation, append, merge};
use super::matrix::{ResourceConfig, config_winner};

/// What the original stores in CouchDB per resource, plus what CouchDB's
/// revision tree did: `seen` counts the operations each site took, so a
/// copy that has seen everything another has is newer, and two copies
/// that each saw something the other did not diverged and must merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDoc {
    pub id: String,
    /// Fixed at creation.
    pub sites: Vec<String>,
    /// What runs the commands; fixed at creation.
    pub backend: Backend,
    /// The current block.
    pub ops: Vec<Operation>,
    pub config: ResourceConfig,
    /// Operations taken per site (a version vector).
    pub seen: BTreeMap<String, u64>,
    /// Every request ever taken, dropped ones included, so a retried
    /// request is never taken twice.
    pub known: BTreeSet<String>,
}

/// What runs a resource's commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The deterministic Redis-like keyspace (every mode).
    #[default]
    Kv,
    /// `sh` on the site's machine (real modes, when the cluster allows it).
    Shell,
}

impl Backend {
    pub fn parse(s: &str) -> Result<Backend, String> {
        match s.trim() {
            "kv" => Ok(Backend::Kv),
            "shell" => Ok(Backend::Shell),
            other => Err(format!("unknown backend {other:?} (kv or shell)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Kv => "kv",
            Backend::Shell => "shell",
        }
    }
}

/// Reply status, as the original's API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "KO")]
    Ko,
}

/// One site's latest run of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub resource: String,
    pub site: String,
    pub request_id: String,
    pub status: Status,
    pub input: String,
    pub output: String,
    /// When the run finished, in ns of the site's clock.
    pub time_ns: u64,
    /// How many times this site ran it (re-runs of a block count).
    pub runs: u32,
}

impl Reply {
    /// Which of two replies for the same (request, site) to keep.
    pub fn newer(&self, other: &Reply) -> bool {
        (self.runs, self.time_ns) > (other.runs, other.time_ns)
    }
}

/// How two copies relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Same,
    Older,
    Newer,
    Diverged,
}

/// How a copy (what it saw, its digest) relates to another, without the
/// copies themselves: what anti-entropy digests compare.
pub fn order_of(
    a: &BTreeMap<String, u64>,
    a_digest: [u8; 32],
    b: &BTreeMap<String, u64>,
    b_digest: [u8; 32],
) -> Order {
    let sites: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let (mut less, mut more) = (false, false);
    for s in sites {
        let (x, y) = (
            a.get(s).copied().unwrap_or(0),
            b.get(s).copied().unwrap_or(0),
        );
        less |= x < y;
        more |= x > y;
    }
    match (less, more) {
        (true, true) => Order::Diverged,
        (true, false) => Order::Older,
        (false, true) => Order::Newer,
        _ if a_digest == b_digest => Order::Same,
        _ if a_digest < b_digest => Order::Older,
        _ => Order::Newer,
    }
}

/// Merges two diverged copies' blocks, leaving out what one side already
/// superseded. When each side superseded something the other holds, no
/// side is plainly later, and the blocks merge whole, as the original's.
fn merge_live(
    main: &ResourceDoc,
    conflict: &ResourceDoc,
    config: &ResourceConfig,
) -> Vec<Operation> {
    let (m, c) = (main.live(conflict), conflict.live(main));
    if m.len() < main.ops.len() && c.len() < conflict.ops.len() {
        merge(&main.ops, &conflict.ops, config)
    } else {
        merge(&m, &c, config)
    }
}

impl ResourceDoc {
    pub fn new(id: &str, sites: Vec<String>, config: ResourceConfig) -> ResourceDoc {
        ResourceDoc {
            id: id.into(),
            sites,
            backend: Backend::Kv,
            ops: Vec::new(),
            config,
            seen: BTreeMap::new(),
            known: BTreeSet::new(),
        }
    }

    /// Takes a new operation at `site`; false if it was taken before.
    pub fn take(&mut self, site: &str, op: Operation, config: Option<ResourceConfig>) -> bool {
        if self.known.contains(&op.request_id) {
            return false;
        }
        // A non-empty config replaces the resource's; an empty one never does.
        if let Some(c) = config.filter(|c| !c.is_empty()) {
            self.config = c;
        }
        self.known.insert(op.request_id.clone());
        *self.seen.entry(site.to_string()).or_default() += 1;
        self.ops = append(&self.ops, op, &self.config);
        true
    }

    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(postcard::to_stdvec(self).expect("a doc encodes")).into()
    }

    /// How `self` relates to `other`, by what each has seen; copies that
    /// saw the same but differ are ordered by digest, so every site picks
    /// the same one.
    pub fn order(&self, other: &ResourceDoc) -> Order {
        if self == other {
            return Order::Same;
        }
        order_of(&self.seen, self.digest(), &other.seen, other.digest())
    }

    /// The operations of this copy that `other` has not dropped: one it
    /// knows but no longer holds was superseded there (a take-one or a
    /// new block). The original merges whole blocks, so a stale side that
    /// wins CouchDB's draw brings a superseded operation back and loses
    /// the later write; here it stays dropped.
    fn live(&self, other: &ResourceDoc) -> Vec<Operation> {
        self.ops
            .iter()
            .filter(|o| {
                !other.known.contains(&o.request_id)
                    || other.ops.iter().any(|p| p.request_id == o.request_id)
            })
            .cloned()
            .collect()
    }

    /// The copy both sides end with. Diverged copies merge with the copy
    /// of larger digest as main (CouchDB's deterministic winner) under
    /// the winning config.
    pub fn reconcile(&self, other: &ResourceDoc) -> ResourceDoc {
        match self.order(other) {
            Order::Same | Order::Newer => self.clone(),
            Order::Older => other.clone(),
            Order::Diverged => {
                let (main, conflict) = if self.digest() > other.digest() {
                    (self, other)
                } else {
                    (other, self)
                };
                let config = config_winner(&main.config, &conflict.config).clone();
                let mut seen = main.seen.clone();
                for (s, &n) in &conflict.seen {
                    let e = seen.entry(s.clone()).or_default();
                    *e = (*e).max(n);
                }
                ResourceDoc {
                    id: main.id.clone(),
                    sites: main.sites.clone(),
                    backend: main.backend,
                    ops: merge_live(main, conflict, &config),
                    config,
                    seen,
                    known: main.known.union(&conflict.known).cloned().collect(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::block::op;
    use super::super::matrix::counter_config;
    use super::*;

    fn doc() -> ResourceDoc {
        ResourceDoc::new(
            "r",
            vec!["a".into(), "b".into(), "c".into()],
            counter_config(),
        )
    }

    #[test]
    fn reconcile_converges_whatever_the_order() {
        let mut base = doc();
        base.take("a", op("set", "s23"), None);
        let (mut a, mut b, mut c) = (base.clone(), base.clone(), base.clone());
        a.take("a", op("set", "s29"), None);
        b.take("b", op("inc", "i13"), None);
        c.take("c", op("inc", "i-12"), None);
        let ab_c = a.reconcile(&b).reconcile(&c);
        let c_ba = c.reconcile(&b.reconcile(&a));
        let bc_a = b.reconcile(&c).reconcile(&a);
        // Pairwise merges may differ in order, but once each has seen all
        // they reconcile to one copy.
        let all = ab_c.reconcile(&c_ba).reconcile(&bc_a);
        assert_eq!(all, bc_a.reconcile(&ab_c).reconcile(&c_ba));
        assert_eq!(all.known.len(), 4);
        // set 29 superseded set 23 at a: it stays superseded whichever
        // side wins the draw, and both increments follow it.
        for d in [&ab_c, &c_ba, &bc_a, &all] {
            let ids: Vec<&str> = d.ops.iter().map(|o| o.request_id.as_str()).collect();
            assert_eq!(ids[0], "s29", "{ids:?}");
            assert_eq!(ids.len(), 3, "{ids:?}");
        }
        assert_eq!(a.reconcile(&base), a);
        assert_eq!(base.reconcile(&a), a);
        // A retried request is not taken again.
        assert!(!a.take("a", op("set", "s29"), None));
    }
}
