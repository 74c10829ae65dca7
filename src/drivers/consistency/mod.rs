//! The consistency lab's drivers: CloudScope's experiments on DistZero.
//! Settings, traces, outages and topologies (read and generated), one run
//! in the simulator or on real machines, its results files, and batches
//! of runs (multisim, sweeps).

pub mod batch;
pub mod experiment;
pub mod outages;
pub mod real;
pub mod results;
pub mod settings;
pub mod sweep;
pub mod topogen;
pub mod trace;
