//! Around the cheops system: building simulated clusters, the convergence
//! check of a finished run, `dz cheops sim-check` and the original's
//! three-site scenarios; on real machines, the HTTP API each site's machine
//! serves, the link it reaches its site by, and a small HTTP client for
//! `dz cheops exec / show / status`.

pub mod api;
pub mod bench;
pub mod check;
pub mod cluster;
pub mod http;
pub mod link;
pub mod scenario;
pub mod sim_check;
