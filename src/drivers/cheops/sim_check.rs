//! Many seeded simulations of a cheops cluster: random operations at
//! random sites under partitions, crashes, drops and duplicates, then
//! heal and check convergence: `dz cheops sim-check`.

use std::ops::Range;
use std::time::Duration;

use rand::RngExt;
use serde::Serialize;

use super::check::{build, check};
use crate::drivers::kv::sim_check::Faults;
use crate::drivers::seeds::{catch_panic, run_seeds};
use crate::error::Result;
use crate::net::{Latency, MessageFaults};
use crate::node::MachineId;
use crate::rng::stream;
use crate::sim::{SimConfig, Simulation};
use crate::systems::cheops::CheopsNode;
use crate::systems::cheops::client::{ResourceSpec, Workload};

/// The original's test_redis matrix: set/set take-one, set then inc in
/// order, inc then set reversed; inc/inc has no entry (commutative).
pub const REDIS_MATRIX: &str = r#"{"ResolutionMatrix":[
 {"Before":"set","After":"set","Result":"take-one"},
 {"Before":"set","After":"inc","Result":"take-both-keep-order"},
 {"Before":"inc","After":"set","Result":"take-both-reverse-order"}]}"#;

#[derive(Clone, Debug)]
pub struct SimCheckOptions {
    pub sites: usize,
    pub resources: usize,
    pub load: Duration,
    /// Time after the load, everything healed, to converge.
    pub settle: Duration,
    pub faults: Faults,
    /// Mean time between operations.
    pub interval_ms: f64,
    /// Also write the seed's trace here (one seed at a time: `dz view`).
    pub trace: Option<std::path::PathBuf>,
}

impl Default for SimCheckOptions {
    fn default() -> Self {
        SimCheckOptions {
            sites: 4,
            resources: 3,
            load: Duration::from_secs(5),
            settle: Duration::from_secs(5),
            faults: Faults::parse(Faults::ALL).expect("all faults parse"),
            interval_ms: 40.0,
            trace: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    /// The first problem found (a panic included), if any.
    pub failure: Option<String>,
    pub operations: usize,
    pub merges: u64,
    pub trace_hash: String,
}

pub fn site_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i}")).collect()
}

/// The seed's resources: each on a random set of at least two sites.
fn resources(seed: u64, opts: &SimCheckOptions) -> Vec<ResourceSpec> {
    let mut rng = stream(seed, "cheops-resources", 0);
    let names = site_names(opts.sites);
    (0..opts.resources)
        .map(|i| {
            let mut sites: Vec<String> = names
                .iter()
                .filter(|_| rng.random_bool(0.6))
                .cloned()
                .collect();
            while sites.len() < 2.min(names.len()) {
                let s = names[rng.random_range(0..names.len())].clone();
                if !sites.contains(&s) {
                    sites.push(s);
                }
            }
            sites.sort();
            ResourceSpec {
                id: format!("r{i}"),
                sites,
            }
        })
        .collect()
}

pub fn workload(seed: u64, opts: &SimCheckOptions) -> Workload {
    Workload {
        resources: resources(seed, opts),
        config: REDIS_MATRIX.into(),
        interval_ms: opts.interval_ms,
        duration_ms: opts.load.as_secs_f64() * 1e3,
        ..Default::default()
    }
}

#[derive(Clone, Debug)]
enum Action {
    Crash(u32),
    Restart(u32),
    Split(Vec<u32>, bool),
}

/// Crashes of any sites and splits of the sites into two sides, each
/// lasting 0.3 to 2 s; the client's machine is never touched.
fn schedule(seed: u64, opts: &SimCheckOptions) -> Vec<(Duration, Action)> {
    let mut rng = stream(seed, "cheops-faults", 0);
    let n = opts.sites as u32;
    let mut kinds = Vec::new();
    if opts.faults.crash {
        kinds.push(0);
    }
    if opts.faults.partition {
        kinds.push(1);
    }
    let mut out = Vec::new();
    if kinds.is_empty() || n < 2 {
        return out;
    }
    let end = opts.load.as_secs_f64();
    let mut t = 0.2;
    while t < end {
        let until = (t + rng.random_range(0.3..2.0)).min(end);
        let (at, back) = (Duration::from_secs_f64(t), Duration::from_secs_f64(until));
        let group: Vec<u32> = (0..n).filter(|_| rng.random_bool(0.5)).collect();
        match kinds[rng.random_range(0..kinds.len())] {
            0 if !group.is_empty() => {
                for &s in &group {
                    out.push((at, Action::Crash(s)));
                    out.push((back, Action::Restart(s)));
                }
            }
            1 if !group.is_empty() && group.len() < n as usize => {
                out.push((at, Action::Split(group.clone(), true)));
                out.push((back, Action::Split(group, false)));
            }
            _ => {}
        }
        t = until + rng.random_range(0.05..0.8);
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn apply(sim: &mut Simulation<CheopsNode>, n: u32, action: &Action) {
    match action {
        Action::Crash(s) => sim.crash(MachineId(*s)),
        Action::Restart(s) => sim.restart(MachineId(*s)),
        Action::Split(group, down) => {
            for &a in group {
                for b in (0..n).filter(|b| !group.contains(b)) {
                    sim.set_link_up(MachineId(a), MachineId(b), !down);
                    sim.set_link_up(MachineId(b), MachineId(a), !down);
                }
            }
        }
    }
}

fn run_checked(seed: u64, opts: &SimCheckOptions) -> Result<SeedResult> {
    let names = site_names(opts.sites);
    let wl = workload(seed, opts);
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Uniform { lo: 0.5, hi: 5.0 });
    let mut sim = build(cfg, &names, &wl)?;
    if let Some(p) = &opts.trace {
        sim.trace_to(p)?;
    }
    let f = opts.faults;
    sim.set_faults(
        None,
        &MessageFaults {
            loss: if f.drop { 0.05 } else { 0.0 },
            duplicate: if f.duplicate { 0.05 } else { 0.0 },
            reorder: if f.reorder { 0.1 } else { 0.0 },
            reorder_ms: Some(20.0),
            ..Default::default()
        },
    )?;
    let n = opts.sites as u32;
    for (at, action) in schedule(seed, opts) {
        sim.run_until(at);
        apply(&mut sim, n, &action);
    }
    sim.run_until(opts.load);
    sim.heal();
    sim.set_faults(None, &MessageFaults::default())?;
    for m in 0..n {
        sim.restart(MachineId(m));
    }
    sim.run_until(opts.load + opts.settle);
    if let Some(p) = &opts.trace {
        sim.finish_trace()
            .map_err(|e| crate::error::Error::io(p, e))?;
    }
    let failure = check(&sim, &names, &wl).err();
    let operations = sim
        .node(crate::node::NodeId(n))
        .and_then(CheopsNode::as_client)
        .map_or(0, |c| c.sent().len());
    let merges = (0..n)
        .map(|i| sim.metrics(crate::node::NodeId(i)).counter("merges"))
        .sum();
    Ok(SeedResult {
        seed,
        failure,
        operations,
        merges,
        trace_hash: format!("{:016x}", sim.trace_hash()),
    })
}

/// One seed; a panic is that seed's failure, not the end of the check.
pub fn run_seed(seed: u64, opts: &SimCheckOptions) -> Result<SeedResult> {
    match catch_panic(|| run_checked(seed, opts)) {
        Ok(r) => r,
        Err(why) => Ok(SeedResult {
            seed,
            failure: Some(format!("panicked: {why}")),
            operations: 0,
            merges: 0,
            trace_hash: String::new(),
        }),
    }
}

/// Runs `seeds` on `threads` threads; `progress(done)` after each seed.
pub fn run_many(
    seeds: Range<u64>,
    threads: usize,
    opts: &SimCheckOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SeedResult>> {
    run_seeds(seeds, threads, &|seed| run_seed(seed, opts), progress)
}
