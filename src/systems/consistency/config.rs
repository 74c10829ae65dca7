//! A replica's configuration: CloudScope's per-node keys (its protocol, its
//! location and the protocol settings), the run-wide settings the driver
//! adds, and this replica's share of the workload.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a replica keeps its copies consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Eventual,
    Stentor,
    Raft,
    Tag,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Eventual => "eventual",
            Protocol::Stentor => "stentor",
            Protocol::Raft => "raft",
            Protocol::Tag => "tag",
        }
    }

    /// Eventual and stentor replicas gossip with each other.
    pub fn is_eventual(self) -> bool {
        matches!(self, Protocol::Eventual | Protocol::Stentor)
    }

    /// CloudScope's `consistency` names, case-insensitive; retired and
    /// unimplemented names are refused with what to write instead.
    pub fn parse(name: &str) -> Result<Protocol, String> {
        match name.to_ascii_lowercase().as_str() {
            "strong" | "raft" => Ok(Protocol::Raft),
            "eventual" => Ok(Protocol::Eventual),
            "stentor" => Ok(Protocol::Stentor),
            "tag" => Ok(Protocol::Tag),
            "low" => Err(format!(
                "{name:?} is a retired CloudScope name; write \"eventual\""
            )),
            "medium" => Err(format!(
                "{name:?} is a retired CloudScope name (it meant causal, which has no protocol); \
                 write \"eventual\" or \"stentor\""
            )),
            "high" => Err(format!(
                "{name:?} is a retired CloudScope name; write \"strong\" (Raft)"
            )),
            "causal" => Err(format!(
                "{name:?} has no protocol (CloudScope names it but no replica implements it); \
                 write \"eventual\" or \"stentor\""
            )),
            "federated" | "floated" => Err(format!(
                "{name:?} is an integration, not a replica's consistency: give the nodes \
                 \"strong\" or \"eventual\" and run with --integration {}",
                name.to_ascii_lowercase()
            )),
            _ => Err(format!(
                "unknown consistency {name:?} (expected strong, raft, eventual, stentor or tag)"
            )),
        }
    }
}

/// How replicas of different protocols work together (CloudScope's
/// `integration` setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Integration {
    /// Each protocol among its own kind.
    #[default]
    Default,
    /// Eventual replicas sync with strong ones; strong ones refuse forks.
    Federated,
    /// One Raft group per location; leaders gossip commits between them.
    Floated,
}

impl TryFrom<String> for Integration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Integration::parse(&s)
    }
}

impl Integration {
    pub fn parse(name: &str) -> Result<Integration, String> {
        match name.to_ascii_lowercase().as_str() {
            "default" | "tiered" => Ok(Integration::Default),
            "federated" => Ok(Integration::Federated),
            "floated" => Ok(Integration::Floated),
            _ => Err(format!(
                "unknown integration {name:?} (expected default, federated or floated)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Integration::Default => "default",
            Integration::Federated => "federated",
            Integration::Floated => "floated",
        }
    }
}

/// Which acknowledgements commit a Raft entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitQuorum {
    /// Textbook Raft: a majority of the group, the leader included.
    #[default]
    Majority,
    /// CloudScope's: a majority of the followers, the leader not counted
    /// (3 of 4 followers in a 5-node group instead of 2 + the leader).
    Followers,
}

/// What a Raft replica reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadPolicy {
    /// The newest version in its log or written by itself.
    #[default]
    Latest,
    /// The newest committed version.
    Commit,
}

/// One access of the workload: at `at_ms` after the start, a read or a
/// write of object `object`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub at_ms: f64,
    pub object: u32,
    pub write: bool,
}

/// Everything one replica is told. Field names are CloudScope's; other
/// keys (its `type`, `label`, `files`) are labels and ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaConfig {
    pub consistency: String,
    pub location: Option<String>,
    pub integration: Integration,
    pub anti_entropy_delay: f64,
    pub num_neighbors: usize,
    pub do_gossip: bool,
    pub election_timeout: [f64; 2],
    pub heartbeat_interval: f64,
    pub read_policy: ReadPolicy,
    pub aggregate_writes: bool,
    pub session_timeout: f64,
    pub sync_prob: f64,
    pub local_prob: f64,
    pub commit_quorum: CommitQuorum,
    /// Federated: a Raft leader raises the forte of what it commits /
    /// appends (CloudScope's settings, both off by default).
    pub forte_on_commit: bool,
    pub forte_on_append: bool,
    /// Record every message sent and received (CloudScope's `sent` and
    /// `recv` series).
    pub trace_messages: bool,
    /// How many objects the workload names (ids 0..objects).
    pub objects: u32,
    /// This replica's accesses, in time order.
    pub accesses: Vec<Access>,
    /// Indexes of the nodes this one is linked to; `None`: every other node.
    pub neighbors: Option<Vec<u32>>,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            consistency: "strong".into(),
            location: None,
            integration: Integration::Default,
            anti_entropy_delay: 600.0,
            num_neighbors: 1,
            do_gossip: true,
            election_timeout: [150.0, 300.0],
            heartbeat_interval: 75.0,
            read_policy: ReadPolicy::Latest,
            aggregate_writes: false,
            session_timeout: 4096.0,
            sync_prob: 0.3,
            local_prob: 0.6,
            commit_quorum: CommitQuorum::Majority,
            forte_on_commit: false,
            forte_on_append: false,
            trace_messages: false,
            objects: 0,
            accesses: Vec::new(),
            neighbors: None,
        }
    }
}

impl ReplicaConfig {
    pub fn protocol(&self) -> Result<Protocol, String> {
        Protocol::parse(&self.consistency)
    }

    /// The checks a config must pass: `Err((field, why))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.protocol().map_err(|e| ("consistency", e))?;
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err((name, format!("must be a positive number of ms, got {v}")))
            }
        };
        positive("anti_entropy_delay", self.anti_entropy_delay)?;
        positive("heartbeat_interval", self.heartbeat_interval)?;
        positive("session_timeout", self.session_timeout)?;
        let [lo, hi] = self.election_timeout;
        positive("election_timeout", lo)?;
        if !(hi.is_finite() && hi >= lo) {
            return Err((
                "election_timeout",
                format!("expected [lo, hi] with lo <= hi, got [{lo}, {hi}]"),
            ));
        }
        for (name, p) in [
            ("sync_prob", self.sync_prob),
            ("local_prob", self.local_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err((name, format!("must be between 0 and 1, got {p}")));
            }
        }
        if self.num_neighbors == 0 {
            return Err(("num_neighbors", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Checks the keys a topology gives one node (a JSON object): the field
/// at fault and why.
pub fn check_node_keys(config: &Value) -> Result<(), (String, String)> {
    let cfg: ReplicaConfig = serde_path_to_error::deserialize(config.clone()).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().to_string())
    })?;
    cfg.check().map_err(|(f, e)| (f.to_string(), e))
}
