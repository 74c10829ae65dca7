//! Many seeded simulations of a kv cluster under faults, each checked for
//! linearizability: `dz kv sim-check`.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use serde::Serialize;

use super::check::{Verdict, check_history};
use crate::error::{Error, Result};
use crate::net::{ClockSkew, Latency, MessageFaults};
use crate::node::{MachineId, NodeId};
use crate::rng::stream;
use crate::sim::{SimConfig, Simulation};
use crate::systems::kv::workload::Workload;
use crate::systems::kv::{Kv, KvConfig, KvNode, Persistence};
use crate::systems::{NodeSpec, Roster, System};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    pub crash: bool,
    pub partition: bool,
    pub drop: bool,
    pub duplicate: bool,
    pub reorder: bool,
}

impl Faults {
    pub const ALL: &'static str = "crash,partition,drop,duplicate,reorder";

    pub fn parse(s: &str) -> std::result::Result<Faults, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "crash" => f.crash = true,
                "partition" => f.partition = true,
                "drop" => f.drop = true,
                "duplicate" => f.duplicate = true,
                "reorder" => f.reorder = true,
                "none" => {}
                other => return Err(format!("unknown fault {other:?} (faults: {})", Self::ALL)),
            }
        }
        Ok(f)
    }

    pub fn names(&self) -> String {
        let all = [
            ("crash", self.crash),
            ("partition", self.partition),
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ];
        let on: Vec<&str> = all.iter().filter(|(_, b)| *b).map(|(n, _)| *n).collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimCheckOptions {
    pub servers: usize,
    pub load: Duration,
    /// Time after the load, with every fault healed, for answers to arrive.
    pub settle: Duration,
    pub faults: Faults,
    /// Least time between one fault's end and the next one's start.
    pub gap: Duration,
    pub config: KvConfig,
    pub workload: Workload,
}

impl Default for SimCheckOptions {
    fn default() -> Self {
        SimCheckOptions {
            servers: 5,
            load: Duration::from_secs(10),
            settle: Duration::from_secs(4),
            faults: Faults::parse(Faults::ALL).expect("all faults parse"),
            gap: Duration::from_millis(100),
            config: KvConfig {
                persistence: Persistence::Fsync,
                ..Default::default()
            },
            workload: Workload {
                clients: 3,
                requests: u64::MAX,
                interval_ms: 20.0,
                keys: 5,
                reads: 50,
                outstanding: 1,
                retry_ms: 150.0,
                final_reads: true,
                ..Default::default()
            },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub verdict: Verdict,
    pub completed: usize,
    pub unanswered: usize,
    pub trace_hash: String,
    pub view_changes: u64,
    pub log_tails_cut: u64,
    pub coordinator_takeovers: u64,
}

#[derive(Clone, Debug)]
enum Action {
    Crash(u32),
    Restart(u32),
    Isolate(u32, bool),
    Split(Vec<u32>, bool),
}

/// The fault schedule of a seed: crashes and partitions of at most a
/// minority at a time, each lasting 0.3 to 2 s.
fn schedule(seed: u64, opts: &SimCheckOptions) -> Vec<(Duration, Action)> {
    let mut rng = stream(seed, "kv-faults", 0);
    let n = opts.servers as u32;
    let minority = (n - 1) / 2;
    let mut out = Vec::new();
    let mut t = 0.5;
    let end = opts.load.as_secs_f64();
    let kinds: Vec<u8> = [(0, opts.faults.crash), (1, opts.faults.partition)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    if kinds.is_empty() || minority == 0 {
        return out;
    }
    while t < end {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let lasts = rng.random_range(0.3..2.0);
        let until = (t + lasts).min(end);
        let at = Duration::from_secs_f64(t);
        let back = Duration::from_secs_f64(until);
        let mut servers: Vec<u32> = (0..n).collect();
        // Pick a random minority.
        for i in (1..servers.len()).rev() {
            servers.swap(i, rng.random_range(0..=i));
        }
        let count = rng.random_range(1..=minority) as usize;
        let group: Vec<u32> = servers[..count].to_vec();
        match kind {
            0 => {
                for &s in &group {
                    out.push((at, Action::Crash(s)));
                    out.push((back, Action::Restart(s)));
                }
            }
            _ if rng.random_bool(0.5) => {
                let s = group[0];
                out.push((at, Action::Isolate(s, true)));
                out.push((back, Action::Isolate(s, false)));
            }
            _ => {
                out.push((at, Action::Split(group.clone(), true)));
                out.push((back, Action::Split(group, false)));
            }
        }
        t = until + opts.gap.as_secs_f64() + rng.random_range(0.0..0.9);
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

fn apply(sim: &mut Simulation<KvNode>, n: u32, action: &Action) {
    match action {
        Action::Crash(s) => sim.crash(MachineId(*s)),
        Action::Restart(s) => sim.restart(MachineId(*s)),
        Action::Isolate(s, on) => sim.isolate(MachineId(*s), *on),
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

/// Builds the cluster: servers on machines 0..n, then the clients.
pub fn build(seed: u64, opts: &SimCheckOptions) -> Result<Simulation<KvNode>> {
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Uniform { lo: 0.5, hi: 3.0 });
    let mut sim = Simulation::new(cfg);
    let mut workload = opts.workload.clone();
    workload.duration_ms = opts.load.as_secs_f64() * 1e3;
    let config = serde_json::to_value(&opts.config).map_err(|e| Error::runtime(e.to_string()))?;
    let wl = serde_json::to_value(&workload).map_err(|e| Error::runtime(e.to_string()))?;
    let mut nodes = Vec::new();
    for i in 0..opts.servers + workload.clients as usize {
        let server = i < opts.servers;
        nodes.push(NodeSpec {
            id: NodeId(i as u32),
            name: if server {
                format!("s{i}")
            } else {
                format!("c{i}")
            },
            system: Kv::NAME.into(),
            role: if server { "server" } else { "client" }.into(),
            config: if server { config.clone() } else { wl.clone() },
        });
    }
    let roster = Arc::new(Roster { nodes });
    for spec in &roster.nodes {
        let m = sim.add_machine(ClockSkew::default());
        let node = Kv::build(spec, &roster)?;
        let mut first = Some(node);
        let (spec, roster) = (spec.clone(), roster.clone());
        sim.add_node(m, move || {
            first
                .take()
                .unwrap_or_else(|| Kv::build(&spec, &roster).expect("built once"))
        });
    }
    Ok(sim)
}

/// One seed: load under faults, heal, settle, check.
pub fn run_seed(seed: u64, opts: &SimCheckOptions) -> Result<SeedResult> {
    run_seed_sim(seed, opts).map(|(r, _)| r)
}

/// [`run_seed`], keeping the simulation for a closer look.
pub fn run_seed_sim(seed: u64, opts: &SimCheckOptions) -> Result<(SeedResult, Simulation<KvNode>)> {
    let mut sim = build(seed, opts)?;
    let n = opts.servers as u32;
    let f = opts.faults;
    let message_faults = MessageFaults {
        loss: if f.drop { 0.05 } else { 0.0 },
        duplicate: if f.duplicate { 0.05 } else { 0.0 },
        reorder: if f.reorder { 0.1 } else { 0.0 },
        reorder_ms: Some(20.0),
        ..Default::default()
    };
    sim.set_faults(None, &message_faults)?;
    for (at, action) in schedule(seed, opts) {
        sim.run_until(at);
        apply(&mut sim, n, &action);
    }
    sim.run_until(opts.load);
    // Heal everything and let the clients finish.
    sim.heal();
    sim.set_faults(None, &MessageFaults::default())?;
    for m in 0..n {
        sim.restart(MachineId(m));
    }
    sim.run_until(opts.load + opts.settle);
    let result = outcome(seed, &sim, opts);
    Ok((result, sim))
}

/// Collects the clients' histories and checks them.
pub fn outcome(seed: u64, sim: &Simulation<KvNode>, opts: &SimCheckOptions) -> SeedResult {
    let n = opts.servers as u32;
    let mut history = Vec::new();
    for i in opts.servers..sim.node_count() {
        let id = NodeId(i as u32);
        if let Some(c) = sim.node(id).and_then(KvNode::as_client) {
            history.extend(c.full_history(id));
        }
    }
    let unanswered = history.iter().filter(|h| h.ret_ns.is_none()).count();
    let counter = |name: &str| (0..n).map(|s| sim.metrics(NodeId(s)).counter(name)).sum();
    SeedResult {
        seed,
        completed: history.len() - unanswered,
        unanswered,
        verdict: check_history(&history),
        trace_hash: format!("{:016x}", sim.trace_hash()),
        view_changes: counter("view_changes"),
        log_tails_cut: counter("log_tail_cut"),
        coordinator_takeovers: counter("coordinator_takeovers"),
    }
}

/// Runs `seeds` on `threads` threads; `progress(done)` after each seed.
pub fn run_many(
    seeds: Range<u64>,
    threads: usize,
    opts: &SimCheckOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SeedResult>> {
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    match run_seed(seed, opts) {
                        Ok(r) => results.lock().expect("results lock").push(r),
                        Err(e) => {
                            error.lock().expect("error lock").get_or_insert(e);
                            return;
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|r| r.seed);
    Ok(results)
}

/// Distinct values of `f` over results, for summaries.
pub fn distinct<T: Ord>(results: &[SeedResult], f: impl Fn(&SeedResult) -> T) -> BTreeSet<T> {
    results.iter().map(f).collect()
}
