//! What a handler asks the runtime to do, as data. The simulator and the
//! agent carry these out after the handler returns, so a handler never
//! blocks and never does I/O itself; and since sends leave only then, a
//! node that syncs its storage in a handler has persisted before anything
//! it sent from that handler can be seen.

use std::any::Any;
use std::time::Duration;

use super::{MachineId, NodeId, TimerId};

/// A timer change requested by a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerCmd {
    Set {
        id: TimerId,
        after: Duration,
        tag: u64,
    },
    Cancel(TimerId),
}

/// Where a spawned node should run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// On the same machine as the node asking.
    Here,
    /// On this machine.
    On(MachineId),
    /// On the running machine with the fewest nodes, as the runtime sees it.
    LeastLoaded,
}

/// A node a handler asked for: a node of the same system, with a role and
/// a config, and the id it was given at once.
#[derive(Clone, Debug, PartialEq)]
pub struct SpawnRequest {
    pub id: NodeId,
    pub role: String,
    pub config: serde_json::Value,
    pub placement: Placement,
}

/// Why a node stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It is done (a dataset node that was merged away): what it sent in
    /// the same handler still goes out; it never starts again.
    Exit,
    /// Fail-stop: a durable write or sync failed, or its durable state
    /// cannot be read. Nothing it sent in that handler goes out; it starts
    /// again only when its machine is restarted.
    Failed(String),
}

/// Slow work a handler hands to the runtime (a command to run, a file to
/// process). The agent runs it on a worker thread; the simulator runs it
/// at once (it must then be deterministic) and delivers the result after
/// [`Work::simulated_duration`]. Either way the node gets
/// [`crate::node::Node::on_work_done`] later, and never blocks.
pub trait Work: Send + 'static {
    /// A short name, for logs and traces.
    fn name(&self) -> &'static str;
    fn run(self: Box<Self>) -> Box<dyn Any + Send>;
    /// How long the simulator lets the work take.
    fn simulated_duration(&self) -> Duration {
        Duration::from_millis(1)
    }
}

/// A handle for work in progress, unique per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkId(pub u64);

/// Something a node reports for the analysis (a write made version v, a
/// replica now holds v): typed by the system, encoded with postcard, and
/// collected the same way from simulated and real runs, so oracles that
/// need global knowledge live in the analysis, never in node code.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The node's clock when it was made, in ns.
    pub at_ns: u64,
    pub node: NodeId,
    pub bytes: Vec<u8>,
}

impl Record {
    pub fn decode<R: serde::de::DeserializeOwned>(&self) -> Result<R, postcard::Error> {
        postcard::from_bytes(&self.bytes)
    }
}

/// What a handler asked for, in order. Reused between calls to avoid
/// allocating on every event.
pub struct Effects<M> {
    pub sends: Vec<(NodeId, M)>,
    pub timers: Vec<TimerCmd>,
    pub spawns: Vec<SpawnRequest>,
    pub work: Vec<(WorkId, Box<dyn Work>)>,
    pub records: Vec<Record>,
    pub stop: Option<Stop>,
}

impl<M> Default for Effects<M> {
    fn default() -> Self {
        Effects {
            sends: Vec::new(),
            timers: Vec::new(),
            spawns: Vec::new(),
            work: Vec::new(),
            records: Vec::new(),
            stop: None,
        }
    }
}

impl<M> Effects<M> {
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.timers.is_empty()
            && self.spawns.is_empty()
            && self.work.is_empty()
            && self.records.is_empty()
            && self.stop.is_none()
    }

    /// Whether anything beyond sends and timers was asked for (the rare
    /// path, checked once per handler).
    #[inline(always)]
    pub fn has_rare(&self) -> bool {
        !self.spawns.is_empty()
            || !self.work.is_empty()
            || !self.records.is_empty()
            || self.stop.is_some()
    }

    /// Applies fail-stop: a node whose storage failed says nothing more.
    pub fn discard_if_failed(&mut self) {
        if matches!(self.stop, Some(Stop::Failed(_))) {
            self.sends.clear();
            self.timers.clear();
            self.spawns.clear();
            self.work.clear();
        }
    }
}

impl<M: std::fmt::Debug> std::fmt::Debug for Effects<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("sends", &self.sends)
            .field("timers", &self.timers)
            .field("spawns", &self.spawns)
            .field(
                "work",
                &self
                    .work
                    .iter()
                    .map(|(id, w)| (id, w.name()))
                    .collect::<Vec<_>>(),
            )
            .field("records", &self.records.len())
            .field("stop", &self.stop)
            .finish()
    }
}
