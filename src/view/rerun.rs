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

use crate::controller::{Controller, SimBackend};
use crate::drivers::kv::check::check_history;
use crate::error::{Error, Result};
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
