//! How long a kv cluster stops answering around a fault: the longest gap
//! between answered operations. [`measure`] runs one of two scenes in
//! simulation and measures the gap when the fault hits and when the server
//! comes back: the master's machine killed then restarted, or a follower
//! cut off then healed. A server that comes back should cost nothing: the
//! master stays and no gap opens beyond the clients' own pauses.

use std::time::Duration;

use serde::Serialize;

use super::sim_check::{
    Faults, SeedResult, SimCheckOptions, build, history, newest_master, outcome,
};
use crate::error::Result;
use crate::node::MachineId;
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::msg::Response;

/// A stretch of time in which no operation was answered, in ns from the
/// start of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Gap {
    pub fn len(&self) -> Duration {
        Duration::from_nanos(self.to_ns - self.from_ns)
    }
}

/// When operations were answered (refusals and the initial reads of the
/// starting state aside), in order.
fn answers(history: &[HistoryOp]) -> Vec<u64> {
    let mut at: Vec<u64> = history
        .iter()
        .filter(|h| !h.initial && !matches!(h.output, Some(Response::Refused(_))))
        .filter_map(|h| h.ret_ns)
        .collect();
    at.sort_unstable();
    at
}

/// The longest gap between consecutive answers that overlaps
/// `[from_ns, to_ns]`; with no answer after `from_ns`, the gap runs to
/// `to_ns`.
pub fn longest_gap(history: &[HistoryOp], from_ns: u64, to_ns: u64) -> Gap {
    let at = answers(history);
    let first_after = at.partition_point(|&t| t <= from_ns);
    let start = at[..first_after].last().copied().unwrap_or(from_ns);
    let mut edges = vec![start];
    edges.extend(at[first_after..].iter().take_while(|&&t| t <= to_ns));
    if let Some(&next) = at[first_after..].iter().find(|&&t| t > to_ns) {
        edges.push(next);
    } else {
        edges.push(to_ns.max(start));
    }
    edges
        .windows(2)
        .map(|w| Gap {
            from_ns: w[0],
            to_ns: w[1],
        })
        .max_by_key(|g| g.to_ns - g.from_ns)
        .expect("at least two edges")
}

/// The `count` longest gaps between answers, longest first.
pub fn longest_gaps(history: &[HistoryOp], count: usize) -> Vec<Gap> {
    let at = answers(history);
    let mut gaps: Vec<Gap> = at
        .windows(2)
        .map(|w| Gap {
            from_ns: w[0],
            to_ns: w[1],
        })
        .collect();
    gaps.sort_by_key(|g| std::cmp::Reverse(g.to_ns - g.from_ns));
    gaps.truncate(count);
    gaps
}

/// The cluster and load the scenes run: `servers` servers on a clean
/// network, and clients like kv-bench's on examples/workloads/failover.toml
/// (four, pausing up to 2 ms, trying the next server after 500 ms without
/// an answer), loaded for `load`.
pub fn scene_options(servers: usize, load: Duration) -> SimCheckOptions {
    let mut o = SimCheckOptions {
        servers,
        faults: Faults::parse("none").expect("none parses"),
        load,
        settle: Duration::from_secs(2),
        ..Default::default()
    };
    o.workload.clients = 4;
    o.workload.interval_ms = 2.0;
    o.workload.retry_ms = 500.0;
    o
}

/// What happens to one server, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    /// The master's machine is killed, then restarted.
    KillMaster,
    /// A follower is cut off from everyone, then healed.
    IsolateFollower,
}

/// The gaps of one seed of a scene.
#[derive(Clone, Debug, Serialize)]
pub struct Outage {
    pub seed: u64,
    /// Well before the fault (from a quarter to three quarters of the way
    /// to it): what the clients' own pauses give.
    pub quiet: Gap,
    /// From the fault until the server comes back.
    pub fault: Gap,
    /// From the server's return until the end of the load.
    pub back: Gap,
    /// The master (server, view) just before the return and at the end.
    pub master_before: Option<(u32, u64)>,
    pub master_after: Option<(u32, u64)>,
    pub result: SeedResult,
}

impl Outage {
    /// The one who came back left the master alone.
    pub fn master_kept(&self) -> bool {
        self.master_before.is_some() && self.master_before == self.master_after
    }
}

/// Runs `scene` with `seed`: the fault at `at`, the return `down` later,
/// load until `opts.load`, then `opts.settle` to finish.
pub fn measure(
    seed: u64,
    opts: &SimCheckOptions,
    scene: Scene,
    at: Duration,
    down: Duration,
) -> Result<Outage> {
    let n = opts.servers;
    let mut sim = build(seed, opts)?;
    sim.run_until(at);
    let (master, _) = newest_master(&sim, n).unwrap_or((0, 0));
    let victim = match scene {
        Scene::KillMaster => master,
        Scene::IsolateFollower => (master + 1) % n as u32,
    };
    let m = MachineId(victim);
    match scene {
        Scene::KillMaster => sim.crash(m),
        Scene::IsolateFollower => sim.isolate(m, true),
    }
    let back = at + down;
    sim.run_until(back);
    let master_before = newest_master(&sim, n);
    match scene {
        Scene::KillMaster => sim.restart(m),
        Scene::IsolateFollower => sim.isolate(m, false),
    }
    sim.run_until(opts.load);
    let master_after = newest_master(&sim, n);
    sim.run_until(opts.load + opts.settle);
    let h = history(&sim, opts);
    let ns = |d: Duration| d.as_nanos() as u64;
    Ok(Outage {
        seed,
        quiet: longest_gap(&h, ns(at / 4), ns(at * 3 / 4)),
        fault: longest_gap(&h, ns(at), ns(back)),
        back: longest_gap(&h, ns(back), ns(opts.load)),
        master_before,
        master_after,
        result: outcome(seed, &sim, opts),
    })
}
