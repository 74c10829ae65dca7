//! The kv scene of `dz demo`: three servers under client load lose their
//! master to a crash, then have the new master cut off by a partition,
//! and the clients' history is checked for linearizability.

use std::time::Duration;

use super::sim_check::{SeedResult, SimCheckOptions, build, newest_master as master, outcome};
use crate::error::Result;
use crate::node::{MachineId, NodeId};
use crate::sim::Simulation;
use crate::systems::kv::{KvNode, Persistence};

pub struct Showcase {
    /// What ran, in one line.
    pub title: String,
    /// What happened, one readable line per step.
    pub story: Vec<String>,
    pub result: SeedResult,
    /// Keys and values every server holds at the end, if they all agree.
    pub agreed_keys: Option<usize>,
}

fn describe_master(sim: &Simulation<KvNode>, servers: usize) -> String {
    match master(sim, servers) {
        Some((s, view)) => format!("s{s} is master of view {view}"),
        None => "no master yet".into(),
    }
}

/// Runs the scene with `seed`: crash at 2 s, restart at 4 s, partition of
/// the new master from 6 s to 8 s, load until 10 s, then 4 s to settle.
pub fn run(seed: u64) -> Result<Showcase> {
    let mut opts = SimCheckOptions {
        servers: 3,
        ..Default::default()
    };
    opts.config.delegate = true;
    let mut sim = build(seed, &opts)?;
    let mut story = Vec::new();
    let at = |s: u64| Duration::from_secs(s);

    sim.run_until(at(2));
    let (first, _) = master(&sim, 3).unwrap_or((0, 0));
    story.push(format!(
        "t=2s   {}; crashing its machine",
        describe_master(&sim, 3)
    ));
    sim.crash(MachineId(first));

    sim.run_until(at(4));
    story.push(format!(
        "t=4s   {}; restarting s{first} from its synced log",
        describe_master(&sim, 3)
    ));
    sim.restart(MachineId(first));

    sim.run_until(at(6));
    let (second, _) = master(&sim, 3).unwrap_or((1, 0));
    story.push(format!(
        "t=6s   {}; partitioning it from the others",
        describe_master(&sim, 3)
    ));
    sim.isolate(MachineId(second), true);

    sim.run_until(at(8));
    story.push(format!(
        "t=8s   {} on the majority side; healing the partition",
        describe_master(&sim, 3)
    ));
    sim.isolate(MachineId(second), false);

    sim.run_until(opts.load + opts.settle);
    story.push(format!("t=14s  {}; load over", describe_master(&sim, 3)));
    let result = outcome(seed, &sim, &opts);
    let stores: Vec<_> = (0..3)
        .filter_map(|s| sim.node(NodeId(s))?.as_server().map(|v| v.store().clone()))
        .collect();
    let agreed_keys =
        (stores.len() == 3 && stores.windows(2).all(|w| w[0] == w[1])).then(|| stores[0].len());
    let durability = match opts.config.persistence {
        Persistence::Fsync => "fsync",
        Persistence::None => "no fsync",
    };
    let title = format!(
        "Replicated kv service: {} simulated servers (delegated Multi-Paxos, {durability}), {} clients \
         reading and writing {} keys for {} s (seed {seed}).",
        opts.servers,
        opts.workload.clients,
        opts.workload.keys,
        opts.load.as_secs()
    );
    Ok(Showcase {
        title,
        story,
        result,
        agreed_keys,
    })
}
