//! DistZero: write a distributed system once as sans-IO nodes, then run it in
//! a deterministic simulation, as local processes, as Docker containers or on
//! EC2 instances, under one controller.

pub mod analysis;
pub mod backends;
pub mod cli;
pub mod controller;
pub mod drivers;
pub mod error;
pub mod logging;
pub mod net;
pub mod node;
pub mod rng;
pub mod runtime;
pub mod settings;
pub mod sim;
pub mod systems;
pub mod topology;
pub mod view;
pub mod wire;

pub use error::{Error, Result};
pub use rand;

// The backends' SDKs, for the tests that play EC2 and drive Docker: one
// copy each, only when the feature is on (no heavy dev-dependency).
#[cfg(feature = "cloud")]
#[doc(hidden)]
pub use aws_sdk_ec2;
#[cfg(feature = "virtual")]
#[doc(hidden)]
pub use bollard;
