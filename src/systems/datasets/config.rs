//! What a dataset is configured with: its limits and timings (DistZero's
//! defaults) and a data node's config, which spawned nodes inherit.

use serde::{Deserialize, Serialize};

use super::interval::Interval;
use super::link::LinkConfig;
use crate::node::NodeId;

/// Limits and timings of a dataset, DistZero's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most kids a node has (`DATA_NODE_KIDS_LIMIT`).
    pub kids_limit: u32,
    /// A node grows when the spare leaf capacity under it falls to this
    /// (`TOTAL_KID_CAPACITY_TRIGGER`).
    pub trigger: u64,
    /// Adjacent under-used kids merge after staying so this long.
    pub merge_ms: u64,
    /// A root with one kid this long absorbs it.
    pub absorb_ms: u64,
    /// Summaries to the parent are sent at most this often
    /// (`KID_SUMMARY_INTERVAL`).
    pub summary_ms: u64,
    /// How often managers check their limits (`ELAPSE_TIME_MS`).
    pub monitor_ms: u64,
    /// A node that is done keeps acknowledging this long before it stops,
    /// so its last acknowledgements can be sent again.
    pub linger_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            kids_limit: 200,
            trigger: 5,
            merge_ms: 2000,
            absorb_ms: 4000,
            summary_ms: 200,
            monitor_ms: 220,
            linger_ms: 6000,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        if self.kids_limit < 2 {
            return Err("kids_limit must be at least 2".into());
        }
        if self.summary_ms == 0 || self.monitor_ms == 0 {
            return Err("summary_ms and monitor_ms must be > 0".into());
        }
        Ok(())
    }

    /// Most leaves under one kid of a node of `height`: B^(height-1).
    pub fn kid_capacity(&self, height: u32) -> u64 {
        (self.kids_limit as u64).saturating_pow(height.saturating_sub(1))
    }

    /// Kids with at most this many kids may merge (DistZero's rule).
    pub fn mergeable_kids(&self) -> u32 {
        if self.kids_limit <= 3 {
            1
        } else {
            self.kids_limit / 3
        }
    }
}

/// The config of a `data` node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    pub height: u32,
    /// `None` for the root.
    pub parent: Option<NodeId>,
    /// `None` for a node spawned to take kids from another (it waits for
    /// them); the root's is every key.
    pub interval: Option<Interval>,
    /// Where the root reports its total.
    pub outputs: Vec<NodeId>,
    pub limits: Limits,
    pub link: LinkConfig,
    /// Keep the state in memory only, as DistZero did: a crash of the
    /// machine then loses it. By default a node saves its state before
    /// anything it sends leaves (`durable.rs`).
    pub volatile: bool,
}
