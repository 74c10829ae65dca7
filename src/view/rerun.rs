//! The viewer's own run of a simulation, from the recorded inputs (the
//! topology, seed and duration, plus any fault a "what if" adds). Besides
//! the usual trace it samples every node's `status` query into
//! `states.jsonl`, which the trace does not carry; the trace itself is the
//! same as `dz simulate` writes (same seed and inputs, same hash).

use std::any::Any;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::fork::{to_faults, with_fault};
use super::run::Inputs;
use crate::controller::{Controller, SimBackend};
use crate::drivers::kv::check::check_history;
use crate::drivers::kv::sim_check::{self, SimCheckOptions};
use crate::drivers::seeds::catch_panic;
use crate::error::{Error, Result};
use crate::net::Fault;
use crate::node::{MachineId, NodeId};
use crate::sim::{SimConfig, Simulation};
use crate::systems::kv::KvNode;
use crate::systems::{System, SystemVisitor, with_system};
use crate::topology::Topology;

/// How many state samples a run gets, whatever its length.
const SAMPLES: u32 = 400;

pub struct Rerun {
    pub trace_hash: u64,
    pub events: u64,
    /// kv only: whether the clients' history is linearizable, and how many
    /// operations were checked.
    pub verdict: Option<Value>,
}

/// Runs `inputs` again, with `fault` (as a topology writes it) added,
/// writing `trace.jsonl` (with message contents), `states.jsonl` and what
/// it takes to open and branch the result under `out`.
pub fn rerun_inputs(inputs: &Inputs, fault: Option<&Value>, out: &Path) -> Result<Rerun> {
    match inputs {
        Inputs::Topology {
            topology,
            seed,
            duration,
        } => {
            let topology = match fault {
                Some(f) => with_fault(topology, f)?,
                None => topology.clone(),
            };
            rerun(&topology, *seed, *duration, out)
        }
        Inputs::KvSimCheck { seed, options } => {
            let extra = fault.map(to_faults).transpose()?.unwrap_or_default();
            rerun_kv(*seed, options, &extra, out)
        }
    }
}

/// A kv sim-check seed again, sampled as [`rerun`] samples a topology.
fn rerun_kv(
    seed: u64,
    options: &SimCheckOptions,
    extra: &[(Duration, Fault)],
    out: &Path,
) -> Result<Rerun> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let o = SimCheckOptions {
        trace: Some(out.join("trace.jsonl")),
        ..options.clone()
    };
    let states_path = out.join("states.jsonl");
    let file = std::fs::File::create(&states_path).map_err(|e| Error::io(&states_path, e))?;
    let mut states = std::io::BufWriter::new(file);
    let (mut last, mut failed) = (Vec::new(), None);
    let every = ((o.load + o.settle) / SAMPLES).max(Duration::from_millis(1));
    let mut sampler = |sim: &Simulation<KvNode>, at: Duration| {
        if let Err(e) = sample(sim, at, &mut last, &mut states) {
            failed.get_or_insert(e);
        }
    };
    let look: &mut dyn FnMut(&Simulation<KvNode>, Duration) = &mut sampler;
    let ran = catch_panic(|| sim_check::run_seed_observed(seed, &o, extra, Some((every, look))));
    let (r, sim) = ran.map_err(|why| Error::runtime(format!("seed {seed} panicked: {why}")))??;
    if let Some(e) = failed {
        return Err(Error::io(&states_path, e));
    }
    states.flush().map_err(|e| Error::io(&states_path, e))?;
    crate::drivers::simulate::write_json(
        &out.join("results.json"),
        &sim_check::view_results(&r, &o),
    )?;
    let again = json!({"seed": seed, "options": options});
    crate::drivers::simulate::write_json(&out.join("sim-check.json"), &again)?;
    Ok(Rerun {
        trace_hash: sim.trace_hash(),
        events: sim.stats().events,
        verdict: Some(sim_check::view_verdict(&r)),
    })
}

/// Runs `topology` for `duration` with `seed`, writing `trace.jsonl`,
/// `states.jsonl`, `topology.json` and `results.json` under `out`.
pub fn rerun(topology_text: &str, seed: u64, duration: Duration, out: &Path) -> Result<Rerun> {
    let topology = Topology::parse(topology_text).map_err(Error::input)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let topo_path = out.join("topology.json");
    std::fs::write(&topo_path, topology_text).map_err(|e| Error::io(&topo_path, e))?;
    let r = with_system(
        &topology.system,
        Visit {
            t: &topology,
            seed,
            duration,
            out: out.to_path_buf(),
        },
    )??;
    let nodes: Vec<Value> = topology
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"id": i, "name": n.name, "label": n.label, "location": n.location, "machine": n.name}))
        .collect();
    let results = json!({
        "settings": {"title": topology.title, "system": topology.system, "duration_s": duration.as_secs_f64()},
        "seed": seed,
        "trace_hash": format!("{:016x}", r.trace_hash),
        "events": r.events,
        "nodes": nodes,
        "verdict": r.verdict,
    });
    crate::drivers::simulate::write_json(&out.join("results.json"), &results)?;
    Ok(r)
}

struct Visit<'a> {
    t: &'a Topology,
    seed: u64,
    duration: Duration,
    out: PathBuf,
}

impl SystemVisitor for Visit<'_> {
    type Out = Result<Rerun>;
    fn visit<S: System>(self) -> Result<Rerun> {
        futures::executor::block_on(run::<S>(self.t, self.seed, self.duration, &self.out))
    }
}

async fn run<S: System>(t: &Topology, seed: u64, duration: Duration, out: &Path) -> Result<Rerun> {
    let cfg = SimConfig {
        seed,
        link_stats: true,
        local_latency: t.local_latency.clone(),
        default_latency: t.default_latency.clone(),
        ..SimConfig::new(seed)
    };
    let mut ctl = Controller::new(Box::new(SimBackend::<S>::new(cfg)));
    ctl.create_machines(&t.machines()).await?;
    for l in &t.links {
        let sim = ctl.backend_mut().sim_mut();
        sim.set_link(MachineId(l.from as u32), MachineId(l.to as u32), &l.spec)?;
    }
    let trace_path = out.join("trace.jsonl");
    ctl.backend_mut().sim_mut().trace_to(&trace_path)?;
    ctl.backend_mut().sim_mut().trace_contents(true);
    ctl.deploy(t.placement()?).await?;

    let states_path = out.join("states.jsonl");
    let file = std::fs::File::create(&states_path).map_err(|e| Error::io(&states_path, e))?;
    let mut states = std::io::BufWriter::new(file);
    let mut last: Vec<Option<Value>> = Vec::new();
    let mut faults: Vec<_> = t.faults.iter().filter(|f| f.at <= duration).collect();
    faults.sort_by_key(|f| f.at);
    let mut faults = faults.into_iter().peekable();
    let step = (duration / SAMPLES).max(Duration::from_millis(1));
    let mut done = Duration::ZERO;
    loop {
        while let Some(f) = faults.next_if(|f| f.at <= done) {
            ctl.inject(&f.fault).await?;
        }
        sample(ctl.backend().sim(), done, &mut last, &mut states)
            .map_err(|e| Error::io(&states_path, e))?;
        if done >= duration {
            break;
        }
        let mut until = (done + step).min(duration);
        if let Some(f) = faults.peek() {
            until = until.min(f.at);
        }
        ctl.run_for(until - done).await?;
        done = until;
    }
    states.flush().map_err(|e| Error::io(&states_path, e))?;
    let sim = ctl.backend_mut().sim_mut();
    sim.finish_trace().map_err(|e| Error::io(&trace_path, e))?;
    let verdict = kv_verdict(ctl.backend().sim());
    let sim = ctl.backend().sim();
    Ok(Rerun {
        trace_hash: sim.trace_hash(),
        events: sim.stats().events,
        verdict,
    })
}

/// Writes each node's status where it changed since the last sample
/// (`null` while the node is down).
fn sample<N: crate::node::Node>(
    sim: &Simulation<N>,
    at: Duration,
    last: &mut Vec<Option<Value>>,
    w: &mut impl Write,
) -> std::io::Result<()> {
    let n = sim.node_count();
    last.resize(n, None);
    for (i, prev) in last.iter_mut().enumerate() {
        let now = sim.query(NodeId(i as u32), "status").unwrap_or(Value::Null);
        if prev.as_ref() != Some(&now) {
            let line = json!({"t": at.as_secs_f64(), "node": i, "state": now});
            writeln!(w, "{line}")?;
            *prev = Some(now);
        }
    }
    Ok(())
}

/// The kv clients' history checked for linearizability; `None` for other
/// systems.
fn kv_verdict<N: crate::node::Node + 'static>(sim: &Simulation<N>) -> Option<Value> {
    let sim = (sim as &dyn Any).downcast_ref::<Simulation<KvNode>>()?;
    let mut history = Vec::new();
    for i in 0..sim.node_count() {
        let id = NodeId(i as u32);
        if let Some(c) = sim.node(id).and_then(KvNode::as_client) {
            history.extend(c.full_history(id));
        }
    }
    let v = check_history(&history);
    Some(json!({
        "linearizable": v.linearizable,
        "operations": v.operations,
        "keys": v.keys,
        "violation_key": v.violation.map(|(k, _)| k),
    }))
}
