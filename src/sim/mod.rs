//! The deterministic discrete-event simulator: one thread, one event queue,
//! one seed, a modelled network, machine crashes and clock skew.

mod core;
mod network;
mod queue;
mod simulation;
mod stats;
mod trace;

pub use network::{
    Area, CompiledFaults, DropReason, Latency, LinkSpec, MessageFaults, Network, Route,
};
pub use simulation::Simulation;
pub use stats::{Counts, SimStats};
pub use trace::{Trace, TraceEvent};

/// Settings of one simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Round-trip every message through its codec and the wire envelope.
    pub check_wire: bool,
    /// Count messages per directed machine pair (costs a hash per message).
    pub link_stats: bool,
    /// Log every delivery at TRACE level (slow; off by default).
    pub log_messages: bool,
    /// Latency between nodes on the same machine.
    pub local_latency: Latency,
    /// Latency between machines without an explicit link; `None`: they
    /// cannot talk.
    pub default_latency: Option<Latency>,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            check_wire: false,
            link_stats: false,
            log_messages: false,
            local_latency: Latency::Constant { ms: 0.0 },
            default_latency: Some(Latency::Normal {
                mean: 10.0,
                sd: 3.0,
            }),
        }
    }
}

/// A machine's clock relative to true (virtual) time.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockSkew {
    /// Constant offset, in milliseconds.
    #[serde(default)]
    pub offset_ms: f64,
    /// Rate error in parts per million (100 → 0.01% fast).
    #[serde(default)]
    pub drift_ppm: f64,
}

impl ClockSkew {
    pub fn is_zero(&self) -> bool {
        self.offset_ms == 0.0 && self.drift_ppm == 0.0
    }

    /// This clock's reading at true time `true_ns`.
    pub fn local(&self, true_ns: u64) -> u64 {
        let t = true_ns as f64 * (1.0 + self.drift_ppm * 1e-6) + self.offset_ms * 1e6;
        t.max(0.0) as u64
    }

    /// True time for `local_ns` to pass on this clock.
    pub fn true_delay(&self, local_ns: u64) -> u64 {
        (local_ns as f64 / (1.0 + self.drift_ppm * 1e-6)) as u64
    }
}
