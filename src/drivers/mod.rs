//! Experiment drivers and clients: what sets up clusters (simulated or
//! real) through the controller, loads them, checks and reports. They sit
//! above the controller and the runtime; systems never import them.

pub mod cheops;
pub mod clocks;
pub mod consistency;
pub mod datasets;
pub mod kv;
pub mod seeds;
pub mod simulate;

/// The fronts a machine agent can run next to its nodes (HTTP APIs of
/// systems that have one).
pub fn fronts() -> Vec<crate::runtime::front::FrontStarter> {
    vec![cheops::api::start]
}
