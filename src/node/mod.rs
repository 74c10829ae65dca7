//! The node API: the only thing a distributed system implements.
//!
//! A node is a plain struct whose handlers are synchronous and sans-IO: they
//! read the clock, send, set timers, draw randomness and touch storage only
//! through [`Ctx`]. That is what lets one node run unchanged in the simulator
//! and in the `dz machine` agent.

mod ctx;
mod effects;
mod message;
pub mod metrics;
mod spec;
mod storage;
pub mod testing;

pub use ctx::{Ctx, IdBlock, NodeParts};
pub use effects::{Effects, Placement, Record, SpawnRequest, Stop, TimerCmd, Work, WorkId};
pub use message::{CodecError, Message, check_codec, decode_postcard, encode_postcard};
pub use metrics::Metrics;
pub use spec::{NodeSpec, Roster, System, check_role, parse_config};
pub use storage::{MemStorage, Storage, StorageFaults};

use std::fmt;

/// A node's address, unique in a cluster.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u32);

/// A machine (simulated, process, container or instance) hosting nodes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct MachineId(pub u32);

/// A timer handle, unique per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// How the cluster is being run; every log line carries it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Simulated,
    Local,
    Virtual,
    Cloud,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Simulated => "simulated",
            Mode::Local => "local",
            Mode::Virtual => "virtual",
            Mode::Cloud => "cloud",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node of a distributed system.
pub trait Node: 'static {
    type Msg: Message;

    /// Called once when the node starts, and again after its machine restarts
    /// (volatile state is then fresh; synced storage is kept).
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg>);

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, from: NodeId, msg: Self::Msg);

    fn on_timer(&mut self, _ctx: &mut Ctx<'_, Self::Msg>, _timer: TimerId, _tag: u64) {}

    /// Work started with [`Ctx::start_work`] finished with `output` (the
    /// value its `run` returned).
    fn on_work_done(
        &mut self,
        _ctx: &mut Ctx<'_, Self::Msg>,
        _work: WorkId,
        _output: Box<dyn std::any::Any + Send>,
    ) {
    }

    /// Answers the controller's questions (`dz cluster status`, experiment
    /// reports). `None` means the node does not know that query.
    fn query(&self, _query: &str) -> Option<serde_json::Value> {
        None
    }
}

/// Logs through `tracing` with the node's machine, node id and time (the
/// mode is on every line already): `node_log!(info, ctx, "elected")`.
#[macro_export]
macro_rules! node_log {
    ($level:ident, $ctx:expr, $($arg:tt)+) => {
        ::tracing::$level!(
            machine = %$ctx.machine(),
            node = %$ctx.me(),
            vtime_ms = $ctx.now().as_secs_f64() * 1e3,
            $($arg)+
        )
    };
}
