//! `dz datasets sim-check`: many seeded datasets under random leaf churn,
//! message loss, duplication, reordering, partitions and crashes of
//! machines (which restart from what their nodes saved), then healed; each
//! must end with a valid tree and the exact total at the root and every
//! output, and no node invariant may break on the way.

use std::ops::Range;
use std::time::Duration;

use rand::RngExt;
use serde::Serialize;

use super::script::Script;
use super::{Setup, check_running, check_settled, view};
use crate::drivers::kv::sim_check::Faults;
use crate::drivers::seeds::{catch_panic, run_seeds};
use crate::error::{Error, Result};
use crate::net::{Fault, MessageFaults};
use crate::node::MachineId;
use crate::rng::stream;
use crate::sim::SimConfig;
use crate::systems::datasets::data::Limits;
use crate::systems::datasets::user::{Action, Step};

/// The faults a dataset sim-check injects by default: every node saves its
/// state before what it sends leaves, so crashes are survived.
pub const DEFAULT_FAULTS: &str = "crash,partition,drop,duplicate,reorder";

#[derive(Clone, Debug)]
pub struct SimCheckOptions {
    pub faults: Faults,
    /// Leaf churn and inputs under faults.
    pub load: Duration,
    /// Healed, to settle (merges, absorbs and retransmissions take seconds).
    pub settle: Duration,
    pub machines: usize,
    /// Most leaves at once.
    pub max_leaves: usize,
    /// Also write the seed's trace here (one seed at a time: `dz view`).
    pub trace: Option<std::path::PathBuf>,
}

impl Default for SimCheckOptions {
    fn default() -> Self {
        SimCheckOptions {
            faults: Faults::parse(DEFAULT_FAULTS).expect("the default faults parse"),
            load: Duration::from_secs(15),
            settle: Duration::from_secs(60),
            machines: 3,
            max_leaves: 30,
            trace: None,
        }
    }
}

impl SimCheckOptions {
    pub fn validate(&self) -> Result<()> {
        if self.faults.disk {
            return Err(Error::input(
                "datasets sim-check injects crash, partition, drop, duplicate and reorder, not disk \
                 faults: a node whose disk fails stops for good (fail-stop)",
            ));
        }
        if self.machines == 0 || self.max_leaves == 0 || self.load.is_zero() {
            return Err(Error::input("need machines, leaves and load time above 0"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub failure: Option<String>,
    /// When the failure was seen (simulated seconds).
    pub failed_at_s: Option<f64>,
    pub kids_limit: u32,
    pub leaves_added: usize,
    pub inputs: usize,
    pub peak_height: u32,
    pub retransmissions: u64,
    /// Nodes that restarted from their saved state after a crash.
    pub restored: u64,
    pub trace_hash: String,
}

/// The seed's leaf churn: leaves come and go, each sending numbers.
pub fn churn(seed: u64, opts: &SimCheckOptions) -> Vec<Step> {
    let mut rng = stream(seed, "datasets-churn", 0);
    let mut live: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    let (mut t, end) = (0u64, opts.load.as_millis() as u64);
    let mut n = 0;
    while t < end {
        let r: f64 = rng.random();
        let action = if live.is_empty() || (r < 0.4 && live.len() < opts.max_leaves) {
            n += 1;
            live.push(format!("l{n}"));
            Action::AddLeaf {
                name: format!("l{n}"),
            }
        } else if r < 0.55 {
            let name = live.swap_remove(rng.random_range(0..live.len()));
            Action::RemoveLeaf { name }
        } else {
            Action::Input {
                name: live[rng.random_range(0..live.len())].clone(),
                amount: rng.random_range(-5..=20),
            }
        };
        steps.push(Step { at_ms: t, action });
        t += rng.random_range(10..300);
    }
    steps
}

/// Message faults from the start, and partitions of one data machine
/// (0.3 to 2 s each) during the load; everything healed at its end.
fn schedule(seed: u64, opts: &SimCheckOptions) -> Vec<(Duration, Fault)> {
    let mut rng = stream(seed, "datasets-faults", 0);
    let f = opts.faults;
    let mut out = vec![(
        Duration::ZERO,
        Fault::Messages {
            machine: None,
            faults: MessageFaults {
                loss: if f.drop {
                    rng.random_range(0.0..0.25)
                } else {
                    0.0
                },
                duplicate: if f.duplicate {
                    rng.random_range(0.0..0.25)
                } else {
                    0.0
                },
                reorder: if f.reorder {
                    rng.random_range(0.0..0.3)
                } else {
                    0.0
                },
                reorder_ms: Some(rng.random_range(20.0..600.0)),
                ..Default::default()
            },
        },
    )];
    let end = opts.load.as_secs_f64();
    let mut t = rng.random_range(0.2..2.0);
    while f.partition && t < end {
        let m = MachineId(rng.random_range(0..opts.machines as u32));
        let back = (t + rng.random_range(0.3..2.0)).min(end);
        out.push((Duration::from_secs_f64(t), Fault::Isolate { machine: m }));
        out.push((
            Duration::from_secs_f64(back),
            Fault::Heal { machine: Some(m) },
        ));
        t = back + rng.random_range(0.5..3.0);
    }
    // Crashes of any machine (data, user or outputs), back after 0.2 to 3 s.
    let all = opts.machines as u32 + 2;
    let mut t = rng.random_range(0.5..3.0);
    while f.crash && t < end {
        let m = MachineId(rng.random_range(0..all));
        let back = (t + rng.random_range(0.2..3.0)).min(end);
        out.push((Duration::from_secs_f64(t), Fault::Crash { machine: m }));
        out.push((Duration::from_secs_f64(back), Fault::Restart { machine: m }));
        t = back + rng.random_range(0.5..4.0);
    }
    out.push((opts.load, Fault::Heal { machine: None }));
    out.push((
        opts.load,
        Fault::Messages {
            machine: None,
            faults: MessageFaults::default(),
        },
    ));
    out.sort_by_key(|(t, _)| *t);
    out
}

fn run_checked(seed: u64, opts: &SimCheckOptions) -> Result<SeedResult> {
    let mut rng = stream(seed, "datasets-shape", 0);
    let kids_limit = rng.random_range(3..=5);
    let steps = churn(seed, opts);
    let script = Script {
        steps: steps.clone(),
        faults: schedule(seed, opts),
        end: opts.load + opts.settle,
    };
    let setup = Setup {
        limits: Limits {
            kids_limit,
            trigger: 0,
            ..Limits::default()
        },
        machines: opts.machines,
        steps,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(seed))?;
    if let Some(p) = &opts.trace {
        sim.trace_to(p)?;
    }
    let mut failure = None;
    let mut failed_at = script.end;
    let mut peak_height = 0;
    // Node invariants are checked every half second of the run.
    let mut faults = script.faults.iter().peekable();
    let mut t = Duration::ZERO;
    while t < script.end {
        t = (t + Duration::from_millis(500)).min(script.end);
        while let Some((at, f)) = faults.next_if(|f| f.0 <= t) {
            sim.run_until(*at);
            sim.apply(f)?;
        }
        sim.run_until(t);
        let v = view(&sim, &layout, false);
        peak_height = peak_height.max(v.height);
        if failure.is_none() {
            failure = check_running(&v)
                .err()
                .map(|e| format!("at {:.1} s: {e}", t.as_secs_f64()));
            if failure.is_some() {
                failed_at = t;
            }
        }
    }
    if let Some(why) = sim.halted()
        && failure.is_none()
    {
        failure = Some(why.to_string());
        failed_at = sim.now();
    }
    if let Some(p) = &opts.trace {
        sim.finish_trace().map_err(|e| Error::io(p, e))?;
    }
    let (expected, leaves) = script.outcome();
    let end = view(&sim, &layout, true);
    if failure.is_none() {
        failure = check_settled(&end, expected, leaves).err();
    }
    let (mut retransmissions, mut restored) = (0, 0);
    for i in 0..sim.node_count() as u32 {
        let id = crate::node::NodeId(i);
        if let Some(d) = sim.node(id).and_then(|n| n.as_data()) {
            retransmissions += d.link_stats().n_retransmissions;
        }
        restored += sim.metrics(id).counter("restored");
    }
    let count = |f: fn(&Action) -> bool| script.steps.iter().filter(|s| f(&s.action)).count();
    Ok(SeedResult {
        seed,
        failed_at_s: failure.is_some().then_some(failed_at.as_secs_f64()),
        failure,
        kids_limit,
        leaves_added: count(|a| matches!(a, Action::AddLeaf { .. })),
        inputs: count(|a| matches!(a, Action::Input { .. })),
        peak_height,
        retransmissions,
        restored,
        trace_hash: format!("{:016x}", sim.trace_hash()),
    })
}

/// The machines of a seed's cluster, in order: the data machines, then the
/// user's and the outputs' (as `Setup::build` adds them).
pub fn machine_names(opts: &SimCheckOptions) -> Vec<String> {
    let mut names: Vec<String> = (0..opts.machines).map(|i| format!("m{i}")).collect();
    names.push("user".into());
    names.push("outputs".into());
    names
}

/// The machine of each node of the roster (root, outputs, user), by id.
pub fn roster_machines(opts: &SimCheckOptions) -> Vec<u32> {
    let setup = Setup {
        machines: opts.machines,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut m = vec![0; layout.user.0 as usize + 1];
    for o in &layout.outputs {
        m[o.0 as usize] = layout.output_machine.0;
    }
    m[layout.user.0 as usize] = layout.user_machine.0;
    m
}

/// One seed; a panic is that seed's failure, not the end of the check.
pub fn run_seed(seed: u64, opts: &SimCheckOptions) -> Result<SeedResult> {
    match catch_panic(|| run_checked(seed, opts)) {
        Ok(r) => r,
        Err(why) => Ok(SeedResult {
            seed,
            failure: Some(format!("panicked: {why}")),
            failed_at_s: None,
            kids_limit: 0,
            leaves_added: 0,
            inputs: 0,
            peak_height: 0,
            retransmissions: 0,
            restored: 0,
            trace_hash: String::new(),
        }),
    }
}

pub fn run_many(
    seeds: Range<u64>,
    threads: usize,
    opts: &SimCheckOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<SeedResult>> {
    run_seeds(seeds, threads, &|seed| run_seed(seed, opts), progress)
}
