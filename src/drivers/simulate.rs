//! `dz simulate`: runs a topology in the simulator and writes
//! `results.json`, `trace.jsonl` and the log under one output directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::controller::{Controller, SimBackend};
use crate::ctl_log;
use crate::error::{Error, Result};
use crate::node::MachineId;
use crate::sim::SimConfig;
use crate::systems::{System, SystemVisitor, with_system};
use crate::topology::Topology;

pub struct SimulateOptions {
    pub seed: u64,
    pub duration: Duration,
    pub out: PathBuf,
    pub check_wire: bool,
    pub log_messages: bool,
    /// Label of the topology in results (usually its file name).
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct SimulateReport {
    pub trace_hash: u64,
    pub events: u64,
    pub deliveries: u64,
    pub dropped: u64,
    pub sim_time: Duration,
    pub wall_time: Duration,
    pub wire_errors: usize,
    pub results: PathBuf,
    pub trace: PathBuf,
}

/// Runs the topology; `progress` gets the fraction of simulated time done.
pub fn simulate(
    topology: &Topology,
    opts: &SimulateOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<SimulateReport> {
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    with_system(
        &topology.system,
        Run {
            topology,
            opts,
            progress,
        },
    )?
}

struct Run<'a> {
    topology: &'a Topology,
    opts: &'a SimulateOptions,
    progress: &'a mut dyn FnMut(f64),
}

impl SystemVisitor for Run<'_> {
    type Out = Result<SimulateReport>;
    fn visit<S: System>(self) -> Result<SimulateReport> {
        futures::executor::block_on(run::<S>(self.topology, self.opts, self.progress))
    }
}

async fn run<S: System>(
    t: &Topology,
    opts: &SimulateOptions,
    progress: &mut dyn FnMut(f64),
) -> Result<SimulateReport> {
    let cfg = SimConfig {
        seed: opts.seed,
        check_wire: opts.check_wire,
        link_stats: true,
        log_messages: opts.log_messages,
        local_latency: t.local_latency.clone(),
        default_latency: t.default_latency.clone(),
        ..SimConfig::new(opts.seed)
    };
    let mut ctl = Controller::new(Box::new(SimBackend::<S>::new(cfg)));
    ctl.create_machines(&t.machines()).await?;
    for l in &t.links {
        let sim = ctl.backend_mut().sim_mut();
        sim.set_link(MachineId(l.from as u32), MachineId(l.to as u32), &l.spec)?;
    }
    let trace_path = opts.out.join("trace.jsonl");
    ctl.backend_mut().sim_mut().trace_to(&trace_path)?;
    ctl.deploy(t.placement()?).await?;

    ctl_log!(
        info,
        Duration::ZERO,
        seed = opts.seed,
        system = S::NAME,
        nodes = t.nodes.len(),
        "simulation started"
    );
    let wall = Instant::now();
    ctl.run(opts.duration, &t.faults, progress).await?;
    let wall_time = wall.elapsed();
    let sim = ctl.backend_mut().sim_mut();
    sim.finish_trace().map_err(|e| Error::io(&trace_path, e))?;
    let report = SimulateReport {
        trace_hash: sim.trace_hash(),
        events: sim.stats().events,
        deliveries: sim.stats().deliveries,
        dropped: sim.stats().drops.iter().sum(),
        sim_time: sim.now(),
        wall_time,
        wire_errors: sim.wire_errors().len(),
        results: opts.out.join("results.json"),
        trace: trace_path,
    };
    ctl_log!(info, report.sim_time, events = report.events, trace_hash = %format!("{:016x}", report.trace_hash), "simulation finished");
    for e in sim.wire_errors().iter().take(10) {
        ctl_log!(error, report.sim_time, error = %e, "wire check failed");
    }
    let stats = ctl.stats().await?;
    write_results::<S>(t, opts, &report, &stats, ctl.backend().sim().wire_errors())?;
    Ok(report)
}

fn write_results<S: System>(
    t: &Topology,
    opts: &SimulateOptions,
    r: &SimulateReport,
    stats: &crate::controller::ClusterStats,
    wire_errors: &[String],
) -> Result<()> {
    let name = |m: MachineId| t.nodes[m.0 as usize].name.clone();
    let nodes: Vec<_> = stats
        .nodes
        .iter()
        .map(|n| {
            let topo = &t.nodes[n.id.0 as usize];
            json!({
                "id": n.id.0, "name": topo.name, "label": topo.label, "location": topo.location,
                "machine": name(n.machine), "messages": n.kinds, "counters": n.counters,
            })
        })
        .collect();
    let links: Vec<_> = stats
        .links
        .iter()
        .map(|l| json!({ "source": name(l.from), "target": name(l.to), "messages": l.kinds }))
        .collect();
    let results = json!({
        "settings": {
            "topology": opts.source, "title": t.title, "system": S::NAME,
            "duration_s": opts.duration.as_secs_f64(), "check_wire": opts.check_wire,
            "nodes": t.nodes.len(), "links": t.links.len(), "faults": t.faults,
        },
        "seed": opts.seed,
        "trace_hash": format!("{:016x}", r.trace_hash),
        "events": r.events,
        "deliveries": r.deliveries,
        "dropped": r.dropped,
        "drops_by_reason": stats.drops,
        "sim_time_s": r.sim_time.as_secs_f64(),
        "wall_time_s": r.wall_time.as_secs_f64(),
        "wire_errors": wire_errors,
        "nodes": nodes,
        "links": links,
    });
    write_json(&r.results, &results)
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}
