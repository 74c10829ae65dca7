//! Many seeded simulations of a kv cluster under faults, each checked for
//! linearizability, by an online agreement checker, and by the servers'
//! own invariants: `dz kv sim-check`.
//!
//! A seed fails when its history is not linearizable, when replicas
//! disagree on an applied prefix, when a server's invariant assertion
//! fires (the panic is caught per seed), when the simulation spins, or when
//! requests are left unanswered after every fault healed.

mod agreement;
mod world;

pub use world::{DiskFaults, Rates, World, describe, draw};

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::check::{Verdict, check_history};
use crate::drivers::seeds::{catch_panic, run_seeds};
use crate::error::{Error, Result};
use crate::net::{ClockSkew, Fault, Latency, MessageFaults};
use crate::node::{MachineId, NodeId, StorageFaults};
use crate::rng::stream;
use crate::sim::{SimConfig, Simulation};
use crate::systems::kv::client::HistoryOp;
use crate::systems::kv::workload::Workload;
use crate::systems::kv::{Kv, KvConfig, KvNode, Persistence};
use crate::systems::{NodeSpec, Roster, System};
use agreement::Agreement;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    pub crash: bool,
    pub partition: bool,
    pub drop: bool,
    pub duplicate: bool,
    pub reorder: bool,
    /// Failed appends and syncs, full disks.
    pub disk: bool,
}

impl Faults {
    pub const ALL: &'static str = "crash,partition,drop,duplicate,reorder,disk";

    pub fn parse(s: &str) -> std::result::Result<Faults, String> {
        let mut f = Faults::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "crash" => f.crash = true,
                "partition" => f.partition = true,
                "drop" => f.drop = true,
                "duplicate" => f.duplicate = true,
                "reorder" => f.reorder = true,
                "disk" => f.disk = true,
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
            ("disk", self.disk),
        ];
        let on: Vec<&str> = all.iter().filter(|(_, b)| *b).map(|(n, _)| *n).collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

/// Serializable so that `dz view` can run a seed again (`sim-check.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimCheckOptions {
    pub servers: usize,
    pub load: Duration,
    /// Time after the load, with every fault healed, for answers to arrive.
    pub settle: Duration,
    pub faults: Faults,
    pub rates: Rates,
    pub disk: DiskFaults,
    /// Least time between one fault's end and the next one's start.
    pub gap: Duration,
    pub config: KvConfig,
    pub workload: Workload,
    /// Stop a server whose write failed (false: the broken variant that
    /// carries on and acknowledges as if the write had happened).
    pub fail_stop: bool,
    /// Check agreement of applied prefixes after every event.
    pub online_check: bool,
    /// Also write the seed's trace here (one seed at a time: `dz view`).
    pub trace: Option<std::path::PathBuf>,
}

impl Default for SimCheckOptions {
    fn default() -> Self {
        SimCheckOptions {
            servers: 5,
            load: Duration::from_secs(10),
            settle: Duration::from_secs(4),
            faults: Faults::parse(Faults::ALL).expect("all faults parse"),
            rates: Rates::default(),
            disk: DiskFaults::default(),
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
            fail_stop: true,
            online_check: true,
            trace: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub verdict: Verdict,
    /// Why the seed failed besides its history: a broken invariant, a
    /// disagreement, a spinning simulation.
    pub problem: Option<String>,
    pub completed: usize,
    pub unanswered: usize,
    pub trace_hash: String,
    pub view_changes: u64,
    pub log_tails_cut: u64,
    pub coordinator_takeovers: u64,
    /// Servers stopped by a failed write (fail-stop).
    pub fail_stops: u64,
    /// The clients' whole history ([`run_many`] drops it once the seed is
    /// checked; [`run_many_with`] shows it first).
    #[serde(skip)]
    pub history: Vec<HistoryOp>,
}

impl SeedResult {
    pub fn failed(&self) -> bool {
        !self.verdict.linearizable || self.problem.is_some()
    }
}

/// The fault schedule of a seed: crashes, partitions and disk faults of at
/// most as many servers as the quorums tolerate, each lasting 0.3 to 2 s.
fn schedule(seed: u64, opts: &SimCheckOptions) -> Vec<(Duration, Fault)> {
    let mut rng = stream(seed, "kv-faults", 0);
    let n = opts.servers as u32;
    let c = &opts.config;
    let quorum = c
        .replication_quorum
        .size(opts.servers)
        .max(c.recovery_quorum.size(opts.servers));
    let tolerated = n.saturating_sub(quorum as u32);
    let mut out = Vec::new();
    let mut t = 0.5;
    let end = opts.load.as_secs_f64();
    let f = opts.faults;
    let kinds: Vec<u8> = [(0, f.crash), (1, f.partition), (2, f.disk)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(k, _)| *k)
        .collect();
    if kinds.is_empty() || tolerated == 0 {
        return out;
    }
    let m = MachineId;
    while t < end {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let lasts = rng.random_range(0.3..2.0);
        let until = (t + lasts).min(end);
        let at = Duration::from_secs_f64(t);
        let back = Duration::from_secs_f64(until);
        let mut servers: Vec<u32> = (0..n).collect();
        for i in (1..servers.len()).rev() {
            servers.swap(i, rng.random_range(0..=i));
        }
        let count = rng.random_range(1..=tolerated) as usize;
        let group: Vec<u32> = servers[..count].to_vec();
        match kind {
            0 => {
                for &s in &group {
                    out.push((at, Fault::Crash { machine: m(s) }));
                    out.push((back, Fault::Restart { machine: m(s) }));
                }
            }
            2 => {
                // Failing writes, or a disk that fills: the server stops
                // (fail-stop) and comes back once the disk is replaced.
                let full = rng.random_bool(0.5);
                for &s in &group {
                    let faults = StorageFaults {
                        write_error: if full { 0.0 } else { opts.disk.error_rate },
                        sync_error: if full { 0.0 } else { opts.disk.error_rate },
                        capacity: full.then_some(opts.disk.full_after),
                    };
                    out.push((
                        at,
                        Fault::Storage {
                            machine: Some(m(s)),
                            faults,
                        },
                    ));
                    // The disk is replaced and the machine rebooted: the
                    // server comes back with what it had made durable.
                    out.push((
                        back,
                        Fault::Storage {
                            machine: Some(m(s)),
                            faults: StorageFaults::default(),
                        },
                    ));
                    out.push((back, Fault::Crash { machine: m(s) }));
                    out.push((back, Fault::Restart { machine: m(s) }));
                }
            }
            _ if rng.random_bool(0.5) => {
                let s = group[0];
                out.push((at, Fault::Isolate { machine: m(s) }));
                out.push((
                    back,
                    Fault::Heal {
                        machine: Some(m(s)),
                    },
                ));
            }
            _ => {
                for &a in &group {
                    for b in (0..n).filter(|b| !group.contains(b)) {
                        for (from, to) in [(a, b), (b, a)] {
                            out.push((
                                at,
                                Fault::LinkDown {
                                    from: m(from),
                                    to: m(to),
                                },
                            ));
                            out.push((
                                back,
                                Fault::LinkUp {
                                    from: m(from),
                                    to: m(to),
                                },
                            ));
                        }
                    }
                }
            }
        }
        t = until + opts.gap.as_secs_f64() + rng.random_range(0.0..0.9);
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Builds the cluster: servers on machines 0..n, then the clients.
pub fn build(seed: u64, opts: &SimCheckOptions) -> Result<Simulation<KvNode>> {
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Uniform { lo: 0.5, hi: 3.0 });
    cfg.fail_stop = opts.fail_stop;
    let mut sim = Simulation::new(cfg);
    if let Some(p) = &opts.trace {
        sim.trace_to(p)?;
    }
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

/// Runs the simulation to `until`, checking agreement after every event.
fn run_to(
    sim: &mut Simulation<KvNode>,
    until: Duration,
    agreement: &mut Option<Agreement>,
) -> std::result::Result<(), String> {
    match agreement {
        Some(a) => {
            while sim.step(until) {
                a.observe(sim)?;
            }
            sim.run_until(until);
        }
        None => sim.run_until(until),
    }
    match sim.halted() {
        Some(why) => Err(why.to_string()),
        None => Ok(()),
    }
}

/// [`run_seed`], keeping the simulation for a closer look.
pub fn run_seed_sim(seed: u64, opts: &SimCheckOptions) -> Result<(SeedResult, Simulation<KvNode>)> {
    run_seed_observed(seed, opts, &[], None)
}

/// Looks at a seed's simulation every `every` of simulated time (`dz view`
/// samples the nodes' states so).
pub type Observer<'a> = (Duration, &'a mut dyn FnMut(&Simulation<KvNode>, Duration));

/// Runs to `until`, stopping at each observation due by then.
fn advance(
    sim: &mut Simulation<KvNode>,
    until: Duration,
    agreement: &mut Option<Agreement>,
    observer: &mut Option<(Observer<'_>, Duration)>,
) -> std::result::Result<(), String> {
    if let Some(((every, look), next)) = observer {
        while *next <= until {
            run_to(sim, *next, agreement)?;
            look(sim, *next);
            *next += *every;
        }
    }
    run_to(sim, until, agreement)
}

/// [`run_seed_sim`] with `extra` faults added to the seed's schedule (a
/// "what if" of `dz view`) and an observer; splitting the run at the
/// observations changes nothing in it.
pub fn run_seed_observed(
    seed: u64,
    opts: &SimCheckOptions,
    extra: &[(Duration, Fault)],
    observer: Option<Observer<'_>>,
) -> Result<(SeedResult, Simulation<KvNode>)> {
    let mut observer = observer.map(|o| (o, Duration::ZERO));
    let mut sim = build(seed, opts)?;
    if observer.is_some() {
        sim.trace_contents(true);
    }
    let n = opts.servers as u32;
    let f = opts.faults;
    let message_faults = MessageFaults {
        loss: if f.drop { opts.rates.loss } else { 0.0 },
        duplicate: if f.duplicate {
            opts.rates.duplicate
        } else {
            0.0
        },
        reorder: if f.reorder { opts.rates.reorder } else { 0.0 },
        reorder_ms: Some(20.0),
        ..Default::default()
    };
    sim.set_faults(None, &message_faults)?;
    let mut agreement = opts.online_check.then(|| Agreement::new(opts.servers));
    let mut faults = schedule(seed, opts);
    // Stable: at one instant the seed's own faults come first.
    faults.extend(extra.iter().cloned());
    faults.sort_by_key(|(t, _)| *t);
    let ran = (|| {
        for (at, fault) in faults {
            advance(&mut sim, at, &mut agreement, &mut observer)?;
            sim.apply(&fault).map_err(|e| e.to_string())?;
        }
        advance(&mut sim, opts.load, &mut agreement, &mut observer)?;
        // Heal everything and let the clients finish.
        sim.heal();
        sim.set_faults(None, &MessageFaults::default())
            .map_err(|e| e.to_string())?;
        if f.disk {
            sim.set_storage_faults(None, &StorageFaults::default())
                .map_err(|e| e.to_string())?;
        }
        for m in 0..n {
            sim.restart(MachineId(m));
        }
        advance(
            &mut sim,
            opts.load + opts.settle,
            &mut agreement,
            &mut observer,
        )
    })();
    if let Some(p) = &opts.trace {
        sim.finish_trace().map_err(|e| Error::io(p, e))?;
    }
    let mut result = outcome(seed, &sim, opts);
    result.problem = ran.err();
    Ok((result, sim))
}

/// The clients' histories, answered and unanswered operations alike.
pub fn history(sim: &Simulation<KvNode>, opts: &SimCheckOptions) -> Vec<HistoryOp> {
    let mut history = Vec::new();
    for i in opts.servers..sim.node_count() {
        let id = NodeId(i as u32);
        if let Some(c) = sim.node(id).and_then(KvNode::as_client) {
            history.extend(c.full_history(id));
        }
    }
    history
}

/// The master of the newest view, with that view (a cut-off master may
/// still think it leads an older one).
pub fn newest_master(sim: &Simulation<KvNode>, servers: usize) -> Option<(u32, u64)> {
    (0..servers as u32)
        .filter_map(|s| {
            let server = sim.node(NodeId(s))?.as_server()?;
            server.is_master().then(|| (s, server.view()))
        })
        .max_by_key(|&(_, view)| view)
}

/// Collects the clients' histories and checks them.
pub fn outcome(seed: u64, sim: &Simulation<KvNode>, opts: &SimCheckOptions) -> SeedResult {
    let n = opts.servers as u32;
    let history = history(sim, opts);
    let unanswered = history.iter().filter(|h| h.ret_ns.is_none()).count();
    let counter = |name: &str| (0..n).map(|s| sim.metrics(NodeId(s)).counter(name)).sum();
    SeedResult {
        seed,
        completed: history.len() - unanswered,
        unanswered,
        verdict: check_history(&history),
        history,
        problem: None,
        trace_hash: format!("{:016x}", sim.trace_hash()),
        view_changes: counter("view_changes"),
        log_tails_cut: counter("log_tail_cut"),
        coordinator_takeovers: counter("coordinator_takeovers"),
        fail_stops: counter("fail_stops"),
    }
}

/// What `dz view` reads beside a seed's trace (`results.json`): the
/// machines' names, the seed and its verdict.
pub fn view_results(r: &SeedResult, o: &SimCheckOptions) -> serde_json::Value {
    let machines: Vec<String> = (0..o.servers + o.workload.clients as usize)
        .map(|i| {
            if i < o.servers {
                format!("s{i}")
            } else {
                format!("c{i}")
            }
        })
        .collect();
    let mut v = crate::drivers::seeds::view_results("kv", r.seed, &r.trace_hash, &machines);
    v["settings"]["duration_s"] = serde_json::json!((o.load + o.settle).as_secs_f64());
    v["verdict"] = view_verdict(r);
    v
}

/// A seed's verdict as the viewer shows it.
pub fn view_verdict(r: &SeedResult) -> serde_json::Value {
    serde_json::json!({"linearizable": r.verdict.linearizable,
        "operations": r.verdict.operations,
        "violation_key": r.verdict.violation.as_ref().map(|v| v.0.clone()), "problem": r.problem})
}

/// A seed whose run panicked (a broken invariant): no history to check.
fn panicked(seed: u64, why: String) -> SeedResult {
    SeedResult {
        seed,
        verdict: Verdict {
            linearizable: true,
            operations: 0,
            keys: 0,
            skipped: 0,
            violation: None,
        },
        problem: Some(format!("invariant broken: {why}")),
        completed: 0,
        unanswered: 0,
        trace_hash: String::new(),
        view_changes: 0,
        log_tails_cut: 0,
        coordinator_takeovers: 0,
        fail_stops: 0,
        history: Vec::new(),
    }
}

/// One seed in `world`, with a panic caught and reported as its failure.
pub fn check_seed(seed: u64, world: World, base: &SimCheckOptions) -> Result<SeedResult> {
    let opts = world.options(seed, base);
    match catch_panic(|| run_seed(seed, &opts)) {
        Ok(r) => r,
        Err(why) => Ok(panicked(seed, why)),
    }
}

/// Runs `seeds` on `threads` threads; `progress(done)` after each seed.
pub fn run_many(
    seeds: Range<u64>,
    threads: usize,
    world: World,
    opts: &SimCheckOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SeedResult>> {
    run_many_with(seeds, threads, world, opts, &|_| Ok(()), progress)
}

/// [`run_many`], handing each seed's result with its whole history to
/// `each` (to write it out, say) before the history is dropped.
pub fn run_many_with(
    seeds: Range<u64>,
    threads: usize,
    world: World,
    opts: &SimCheckOptions,
    each: &(dyn Fn(&SeedResult) -> Result<()> + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SeedResult>> {
    run_seeds(
        seeds,
        threads,
        &|seed| {
            let mut r = check_seed(seed, world, opts)?;
            each(&r)?;
            r.history = Vec::new();
            Ok(r)
        },
        progress,
    )
}

/// Distinct values of `f` over results, for summaries.
pub fn distinct<T: Ord>(results: &[SeedResult], f: impl Fn(&SeedResult) -> T) -> BTreeSet<T> {
    results.iter().map(f).collect()
}
