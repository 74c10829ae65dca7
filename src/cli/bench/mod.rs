//! `dz bench`: measurements for docs/performance.md, each with its peer.

#[cfg(feature = "cloud")]
mod cloud;
#[cfg(feature = "virtual")]
mod cluster;
mod pingpong;
mod transport;

pub use pingpong::pingpong_sim;

use crate::settings::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// The simulator: N nodes; every 10 ms each pings a random other node,
    /// which answers; one-way latency uniform in [1, 5] ms. Prints
    /// deliveries per wall second and peak memory (peer: scripts/bench-simpy).
    Pingpong(pingpong::PingpongArgs),
    /// The real transport: two local agents, a sender keeping a window of
    /// messages in flight to a receiver; messages per second and one-way
    /// latency, next to the simulator on the same workload.
    Transport(transport::Args),
    /// Starting and stopping a virtual (Docker) cluster, against starting
    /// the same containers one by one with `docker run`.
    #[cfg(feature = "virtual")]
    Cluster(cluster::Args),
    /// Launching instances up to all running: one batched call against one
    /// call per instance (use with AWS_ENDPOINT_URL pointing at an emulator).
    #[cfg(feature = "cloud")]
    CloudLaunch(cloud::Args),
}

pub fn run(settings: &Settings, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Pingpong(a) => pingpong::run(a),
        Command::Transport(a) => transport::run(settings, a),
        #[cfg(feature = "virtual")]
        Command::Cluster(a) => cluster::run(settings, a),
        #[cfg(feature = "cloud")]
        Command::CloudLaunch(a) => cloud::run(settings, a),
    }
}
