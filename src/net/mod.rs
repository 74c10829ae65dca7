//! The network and fault model every mode shares: link latency, message
//! faults and the one pure decision on a message ([`decide`]), the fault
//! vocabulary of the controller, clock skew, and message counters.
//!
//! The simulator and the agents' transport both call [`decide`], so a fault
//! plan means the same thing on simulated machines, processes, containers
//! and instances.

mod counts;
mod fault;
mod latency;
mod rule;
mod skew;

pub use counts::{Counts, DropReason};
pub use fault::{Fault, ScheduledFault};
pub use latency::{Area, Latency, LinkSpec, Sampler, duration_ns};
pub use rule::{CompiledFaults, DEFAULT_REORDER_MS, MessageFaults, OneShotDrop, Verdict, decide};
pub use skew::ClockSkew;
