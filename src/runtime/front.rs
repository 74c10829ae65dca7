//! Fronts: services a machine runs next to one of its nodes, such as a
//! system's HTTP API. The agent starts one when the node is placed and
//! stops it when the node is killed. A front is I/O, so it lives in a
//! driver (systems stay sans-IO) and reaches its node the way any outside
//! client does, through the machine's data plane; the binary hands the
//! agent the list of fronts it knows.

use crate::error::Result;
use crate::systems::NodeSpec;
use crate::wire::convert::PlacedNode;

/// What a front learns about its node and the cluster.
pub struct FrontEnv<'a> {
    pub spec: &'a NodeSpec,
    /// Every node of the cluster, with its machine and data address.
    pub roster: &'a [PlacedNode],
    /// This machine's data plane, as a client on this machine dials it.
    pub data: &'a str,
    pub secret: &'a str,
    /// The cluster's start (Unix ms); nodes' clocks count from it.
    pub epoch_ms: u64,
}

/// Starts a front for the node if it has one (`Ok(None)`: not its kind).
/// Runs on the agent's runtime; an error fails the node's placement.
pub type FrontStarter = fn(&FrontEnv<'_>) -> Result<Option<tokio::task::JoinHandle<()>>>;

/// A dialable form of a listen address (`0.0.0.0:p` → `127.0.0.1:p`).
pub fn dialable(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_string(),
    }
}
