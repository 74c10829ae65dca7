//! Around the cheops system: building simulated clusters, the convergence
//! check of a finished run, `dz cheops sim-check` and the original's
//! three-site scenarios.

pub mod check;
pub mod scenario;
pub mod sim_check;
