//! The real runtime: the `dz machine` agent that hosts nodes on a process,
//! container or instance, its data plane (node messages over TCP) and its
//! control plane (Cap'n Proto RPC), and the controller's client for it.

pub mod agent;
pub mod auth;
pub mod client;
pub mod control;
pub mod disk;
pub mod framing;
pub mod front;
pub mod host;
pub mod hosted;
pub mod tls;
pub mod transport;

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static STARTED: OnceLock<Instant> = OnceLock::new();
static NAME: Mutex<Option<String>> = Mutex::new(None);

/// Names this process's machine for its log lines. An agent started
/// without a name (cloud instances share one user-data) is named again once
/// the controller tells it who it is.
pub fn set_identity(machine: &str) {
    STARTED.get_or_init(Instant::now);
    *NAME.lock().unwrap_or_else(|p| p.into_inner()) = Some(machine.to_string());
}

/// The machine name and milliseconds since the agent started, for logs.
pub fn identity() -> (String, f64) {
    let name = NAME.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match (name, STARTED.get()) {
        (Some(name), Some(start)) => (name, start.elapsed().as_secs_f64() * 1e3),
        _ => ("controller".into(), 0.0),
    }
}

/// Logs an agent line with the fields every line carries.
#[macro_export]
macro_rules! agent_log {
    ($level:ident, $($arg:tt)+) => {{
        let (machine, vtime_ms) = $crate::runtime::identity();
        ::tracing::$level!(machine = %machine, node = "-", vtime_ms, $($arg)+)
    }};
}
