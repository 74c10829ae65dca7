//! Around the kv service: the remote client, the REST gateway, the load
//! generator (also against etcd), the linearizability check of histories
//! and their file format, outage measures, the simulated check over many
//! seeds and the demo's scene.

pub mod bench;
pub mod check;
pub mod gateway;
pub mod history_file;
pub mod outage;
pub mod remote;
pub mod showcase;
pub mod sim_check;
