//! One consistency experiment: a topology, settings, a workload trace and
//! outages, turned into replica configs; run in the simulator or on real
//! machines; its records analysed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::outages::OutageRow;
use super::settings::RunSettings;
use super::trace::TraceRow;
use crate::analysis::consistency::{Metrics, Series, analyze};
use crate::controller::{ClusterStats, Controller, MachineBackend, Placement, SimBackend};
use crate::error::{Error, Result};
use crate::net::ScheduledFault;
use crate::node::{MachineId, NodeId, NodeSpec, Record};
use crate::sim::SimConfig;
use crate::systems::consistency::{Access, Consistency, ReplicaConfig};
use crate::topology::Topology;

pub struct Experiment {
    pub topology: Topology,
    /// The topology's file (a label in the results).
    pub source: String,
    pub settings: RunSettings,
    /// The settings keys a file or flags gave, as given.
    pub given: Map<String, Value>,
    pub seed: u64,
    pub trace: Vec<TraceRow>,
    pub trace_source: Option<String>,
    pub outages: Vec<OutageRow>,
    pub outages_source: Option<String>,
}

impl Experiment {
    pub fn sim_time(&self) -> Duration {
        Duration::from_nanos((self.settings.max_sim_time * 1e6) as u64)
    }

    /// Object names in order of first use; a trace row's object id is its
    /// index here.
    pub fn objects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.trace {
            if !out.contains(&r.object) {
                out.push(r.object.clone());
            }
        }
        out
    }

    /// Every replica with its config: the settings, overridden by the
    /// node's own keys, plus its accesses and its links.
    pub fn placement(&self) -> Result<Placement> {
        let t = &self.topology;
        let objects = self.objects();
        let index: rustc_hash::FxHashMap<&str, u32> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.as_str(), i as u32))
            .collect();
        let mut accesses: Vec<Vec<Access>> = vec![Vec::new(); t.nodes.len()];
        for r in &self.trace {
            accesses[r.replica].push(Access {
                at_ms: r.at_ms,
                object: index[r.object.as_str()],
                write: r.write,
            });
        }
        let defaults = self.settings.replica_defaults();
        let mut out = Vec::with_capacity(t.nodes.len());
        for (i, n) in t.nodes.iter().enumerate() {
            let mut config = defaults.clone();
            if let Value::Object(keys) = &n.config {
                for (k, v) in keys {
                    config.insert(k.clone(), v.clone());
                }
            }
            let neighbors: Option<Vec<u32>> = (!t.links.is_empty()).then(|| {
                let mut v: Vec<u32> = t
                    .links
                    .iter()
                    .filter(|l| l.from == i)
                    .map(|l| l.to as u32)
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            });
            config.insert("objects".into(), Value::from(objects.len()));
            config.insert(
                "neighbors".into(),
                serde_json::to_value(neighbors).expect("ids"),
            );
            config.insert(
                "accesses".into(),
                serde_json::to_value(&accesses[i]).expect("plain data"),
            );
            let spec = NodeSpec {
                id: NodeId(i as u32),
                name: n.name.clone(),
                system: "consistency".into(),
                role: "replica".into(),
                config: Value::Object(config),
            };
            out.push((spec, MachineId(i as u32)));
        }
        // Every replica must build (a bad per-node setting is exit 2).
        let roster = Arc::new(crate::node::Roster {
            nodes: out.iter().map(|(s, _)| s.clone()).collect(),
        });
        for (spec, _) in &out {
            use crate::node::System;
            Consistency::build(spec, &roster)?;
        }
        Ok(out)
    }

    /// The topology's faults and the outages, in time order.
    pub fn faults(&self) -> Vec<ScheduledFault> {
        let mut f = self.topology.faults.clone();
        f.extend(self.outages.iter().map(OutageRow::fault));
        f.sort_by_key(|x| x.at);
        f
    }

    /// The protocols of the replicas, e.g. `raft` or `eventual+raft`.
    pub fn protocols(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for n in &self.topology.nodes {
            let c: ReplicaConfig = serde_json::from_value(n.config.clone()).unwrap_or_default();
            let p = c.protocol().map(|p| p.as_str()).unwrap_or("?");
            if !names.contains(&p) {
                names.push(p);
            }
        }
        names.sort_unstable();
        names.join("+")
    }
}

/// What a run gives the analysis.
pub struct RunOutput {
    pub records: Vec<Record>,
    pub stats: ClusterStats,
    /// Per replica (receiver): sender index → kind → [n, total, squares].
    pub latencies: Vec<Value>,
    pub elapsed: Duration,
    /// Wall time of the run itself (setting up and analysis apart).
    pub wall: Duration,
    pub events: u64,
}

/// Runs the experiment in the simulator.
pub fn simulate(exp: &Experiment, progress: &mut dyn FnMut(f64)) -> Result<RunOutput> {
    let t = &exp.topology;
    let cfg = SimConfig {
        local_latency: t.local_latency.clone(),
        default_latency: t.default_latency.clone(),
        ..SimConfig::new(exp.seed)
    };
    let placement = exp.placement()?;
    let faults = exp.faults();
    futures::executor::block_on(async {
        let mut ctl = Controller::new(Box::new(SimBackend::<Consistency>::new(cfg)));
        ctl.create_machines(&t.machines()).await?;
        for l in &t.links {
            let sim = ctl.backend_mut().sim_mut();
            sim.set_link(MachineId(l.from as u32), MachineId(l.to as u32), &l.spec)?;
        }
        ctl.deploy(placement).await?;
        let wall = Instant::now();
        ctl.run(exp.sim_time(), &faults, &mut *progress).await?;
        let wall = wall.elapsed();
        let events = ctl.backend().sim().stats().events;
        collect(&mut ctl, t.nodes.len(), wall, events).await
    })
}

/// Records, counters and the replicas' latency tables, from any backend.
pub async fn collect<B: MachineBackend + ?Sized>(
    ctl: &mut Controller<B>,
    nodes: usize,
    wall: Duration,
    events: u64,
) -> Result<RunOutput> {
    let mut records = ctl.records().await?;
    // Real machines hand their records over one machine after another.
    records.sort_by_key(|r| r.at_ns);
    let stats = ctl.stats().await?;
    let mut latencies = Vec::with_capacity(nodes);
    for i in 0..nodes {
        latencies.push(
            ctl.query(NodeId(i as u32), "latencies")
                .await
                .unwrap_or(Value::Null),
        );
    }
    Ok(RunOutput {
        records,
        stats,
        latencies,
        elapsed: ctl.elapsed(),
        wall,
        events,
    })
}

/// The analysis of a run.
pub fn metrics(exp: &Experiment, run: &RunOutput) -> Result<(Series, Metrics)> {
    analyze(&run.records, exp.topology.nodes.len()).map_err(Error::runtime)
}

/// Reads an optional trace / outages file or generates them.
pub fn load_inputs(
    topology: Topology,
    source: String,
    settings: RunSettings,
    given: Map<String, Value>,
    seed: u64,
    trace: Option<&Path>,
    outages: Option<&Path>,
) -> Result<Experiment> {
    let trace_rows = match trace {
        Some(p) => super::trace::load(p, &topology)?,
        None => super::trace::generate(&topology, &settings, seed),
    };
    let outage_rows = match outages {
        Some(p) => super::outages::load(p, &topology)?,
        None if settings.outage_prob > 0.0 => super::outages::generate(&topology, &settings, seed),
        None => Vec::new(),
    };
    Ok(Experiment {
        topology,
        source,
        settings,
        given,
        seed,
        trace: trace_rows,
        trace_source: trace.map(|p| p.display().to_string()),
        outages: outage_rows,
        outages_source: outages.map(|p| p.display().to_string()),
    })
}
