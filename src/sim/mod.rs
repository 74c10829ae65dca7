//! The deterministic discrete-event simulator: one thread, one event queue,
//! one seed, a modelled network, machine crashes and clock skew.

mod core;
mod faults;
mod lifecycle;
mod network;
mod queue;
mod simulation;
mod stats;
mod trace;

pub use network::Network;
pub use simulation::{Failure, SPAWN_LIMIT, Simulation, Spawner};
pub use stats::SimStats;
pub use trace::{Trace, TraceEvent};

use crate::net::Latency;

/// Settings of one simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Round-trip every message through its codec ([`crate::node::check_codec`]).
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
    /// How long a node spawned by a handler takes to start.
    pub spawn_delay: Latency,
    /// Events at one instant after which the run halts as spinning.
    pub max_events_per_instant: u64,
    /// Stop a node whose storage call failed (always, but to show what
    /// goes wrong without it).
    pub fail_stop: bool,
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
            spawn_delay: Latency::Constant { ms: 10.0 },
            max_events_per_instant: 5_000_000,
            fail_stop: true,
        }
    }
}
