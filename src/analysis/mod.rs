//! What we compute and draw from runs, kept apart from node behaviour.

pub mod consistency;
pub mod linearizability;
pub mod plot;
