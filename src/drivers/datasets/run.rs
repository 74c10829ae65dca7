//! `dz datasets run`: a dataset playing a script in the simulator,
//! sampled over time (height, leaves, nodes, totals), checked at the end
//! (a valid tree, the exact total at the root and every output), written
//! as results.json and SVG plots.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::script::Script;
use super::{Layout, Setup, TreeView, check_running, check_settled, view};
use crate::analysis::plot::{Chart, Series, line_chart_svg};
use crate::error::{Error, Result};
use crate::sim::{SimConfig, Simulation};
use crate::systems::datasets::DatasetNode;

/// One look at the dataset.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub height: u32,
    pub leaves: u64,
    pub nodes: u64,
    /// What the user has sent so far.
    pub sent_total: i64,
    pub root_total: i64,
    pub outputs: Vec<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub seed: u64,
    pub kids_limit: u32,
    pub expected_total: i64,
    pub expected_leaves: u64,
    pub samples: Vec<Sample>,
    #[serde(rename = "final")]
    pub end: TreeView,
    /// Why the run is wrong, if it is (`None`: exact totals, valid tree).
    pub failure: Option<String>,
    pub trace_hash: String,
    pub events: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
    /// Most data nodes seen at a sample.
    pub peak_nodes: u64,
    pub peak_height: u32,
}

fn sample(sim: &Simulation<DatasetNode>, layout: &Layout, v: &TreeView) -> Sample {
    Sample {
        t_s: sim.now().as_secs_f64(),
        height: v.height,
        leaves: v.leaves,
        nodes: v.nodes,
        sent_total: sim
            .node(layout.user)
            .and_then(DatasetNode::as_user)
            .map_or(0, |u| u.sent_total()),
        root_total: v.root_total,
        outputs: v.outputs.clone(),
    }
}

/// Plays `script` on `setup`, sampling every `every`; `on_sample` sees each
/// sample as it is taken. Returns the result and the simulation at its end.
pub fn run(
    seed: u64,
    setup: &Setup,
    script: &Script,
    every: Duration,
    on_sample: &mut dyn FnMut(&Sample),
) -> Result<(RunResult, Simulation<DatasetNode>)> {
    let wall = Instant::now();
    let mut setup = setup.clone();
    setup.steps = script.steps.clone();
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(seed))?;
    let (expected_total, expected_leaves) = script.outcome();
    let mut faults = script.faults.iter().peekable();
    let mut samples = Vec::new();
    let mut failure = None;
    let mut next_sample = Duration::ZERO;
    loop {
        let next_fault = faults.peek().map(|f| f.0);
        let at = next_fault
            .map_or(next_sample, |f| f.min(next_sample))
            .min(script.end);
        sim.run_until(at);
        while let Some((_, f)) = faults.next_if(|f| f.0 <= at) {
            sim.apply(f)?;
        }
        if at >= next_sample || at >= script.end {
            let v = view(&sim, &layout, false);
            if failure.is_none() {
                failure = check_running(&v).err();
            }
            let s = sample(&sim, &layout, &v);
            on_sample(&s);
            samples.push(s);
            next_sample += every;
        }
        if let Some(why) = sim.halted() {
            return Err(Error::runtime(why.to_string()));
        }
        if at >= script.end {
            break;
        }
    }
    let end = view(&sim, &layout, true);
    if failure.is_none() {
        failure = check_settled(&end, expected_total, expected_leaves).err();
    }
    let result = RunResult {
        seed,
        kids_limit: setup.limits.kids_limit,
        expected_total,
        expected_leaves,
        peak_nodes: samples.iter().map(|s| s.nodes).max().unwrap_or(0),
        peak_height: samples.iter().map(|s| s.height).max().unwrap_or(0),
        samples,
        end,
        failure,
        trace_hash: format!("{:016x}", sim.trace_hash()),
        events: sim.stats().events,
        simulated_s: sim.now().as_secs_f64(),
        wall_s: wall.elapsed().as_secs_f64(),
    };
    Ok((result, sim))
}

/// results.json, height.svg, nodes.svg, leaves.svg, totals.svg and
/// tree.svg in `out`.
pub fn write_outputs(out: &Path, r: &RunResult, sim: &Simulation<DatasetNode>) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let path = out.join("results.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    write_charts(out, &r.samples, r.kids_limit, "simulated time (s)")?;
    let facts = |id| {
        sim.node(id)
            .and_then(DatasetNode::as_data)
            .map(super::NodeFacts::of)
    };
    super::tree_svg::write(
        &out.join("tree.svg"),
        &facts,
        &format!(
            "the tree at {:.1} s: height {}, {} leaves, total {}",
            r.simulated_s, r.end.height, r.end.leaves, r.end.root_total
        ),
    )
}

/// height.svg, nodes.svg, leaves.svg and totals.svg over time.
pub fn write_charts(out: &Path, samples: &[Sample], kids_limit: u32, x_label: &str) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&Sample) -> f64| Series {
        name: name.into(),
        points: samples.iter().map(|s| (s.t_s, f(s))).collect(),
    };
    let charts: [(&str, &str, Vec<Series>); 4] = [
        (
            "height",
            "height",
            vec![series("height", &|s| s.height as f64)],
        ),
        (
            "nodes",
            "data nodes",
            vec![series("nodes", &|s| s.nodes as f64)],
        ),
        (
            "leaves",
            "leaves",
            vec![series("leaves", &|s| s.leaves as f64)],
        ),
        (
            "totals",
            "total",
            vec![
                series("sent by users", &|s| s.sent_total as f64),
                series("root", &|s| s.root_total as f64),
                series("first output", &|s| {
                    s.outputs.first().copied().unwrap_or_default() as f64
                }),
            ],
        ),
    ];
    for (name, y, series) in &charts {
        let title = format!("dataset {name} over time (kids limit {})", kids_limit);
        line_chart_svg(
            &out.join(format!("{name}.svg")),
            &Chart {
                title: &title,
                x_label,
                y_label: y,
                series,
            },
        )?;
    }
    Ok(())
}
