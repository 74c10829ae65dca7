//! Sweeps: one parameter varied across protocols (and tick models and
//! user counts), every point a generated topology and workload, run in
//! parallel; then the table and the plots researchers publish, one line
//! per protocol.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::batch::{Job, Shard};
use super::experiment::Experiment;
use super::settings::{RunSettings, TickModel};
use super::topogen::{Family, TopologySpec};
use crate::analysis::plot::{Chart, Series, line_chart, line_chart_svg};
use crate::error::{Error, Result};
use crate::topology::Topology;

/// What a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Param {
    /// Mean wide-area latency, ms.
    WideLatency,
    Users,
    /// conflict_prob.
    Conflict,
    /// outage_prob.
    Outage,
    Nodes,
}

impl Param {
    pub fn as_str(self) -> &'static str {
        match self {
            Param::WideLatency => "wide_latency_ms",
            Param::Users => "users",
            Param::Conflict => "conflict_prob",
            Param::Outage => "outage_prob",
            Param::Nodes => "nodes",
        }
    }
}

pub struct SweepPlan {
    pub param: Param,
    pub values: Vec<f64>,
    pub protocols: Vec<Family>,
    pub tick_models: Vec<TickModel>,
    pub users: Vec<usize>,
    pub nodes: usize,
    pub locations: usize,
    pub local: (f64, f64),
    pub wide: (f64, f64),
    pub settings: RunSettings,
    pub seed: u64,
}

/// Every run of the plan (those of `shard`), each with its labels.
pub fn jobs(plan: &SweepPlan, shard: Shard) -> Result<Vec<Job>> {
    let mut out = Vec::new();
    let mut run = 0usize;
    for &users in &plan.users {
        for &tick in &plan.tick_models {
            for &value in &plan.values {
                for &family in &plan.protocols {
                    let i = run;
                    run += 1;
                    if !shard.keeps(i) {
                        continue;
                    }
                    let mut spec = TopologySpec {
                        nodes: plan.nodes,
                        locations: plan.locations,
                        family,
                        local: plan.local,
                        wide: plan.wide,
                        tick_model: tick,
                    };
                    let mut s = plan.settings.clone();
                    s.users = users;
                    match plan.param {
                        Param::WideLatency => spec.wide.0 = value,
                        Param::Users => s.users = value as usize,
                        Param::Conflict => s.conflict_prob = value,
                        Param::Outage => s.outage_prob = value,
                        Param::Nodes => spec.nodes = value as usize,
                    }
                    s.integration =
                        crate::systems::consistency::Integration::parse(family.integration())
                            .map_err(Error::input)?;
                    s.check().map_err(|e| {
                        Error::input(format!("{} {value}: {e}", plan.param.as_str()))
                    })?;
                    spec.check().map_err(|e| {
                        Error::input(format!("{} {value}: {e}", plan.param.as_str()))
                    })?;
                    let text = spec.build().to_string();
                    let topology = Topology::parse(&text).map_err(Error::input)?;
                    let trace = super::trace::generate(&topology, &s, plan.seed);
                    let outages = if s.outage_prob > 0.0 {
                        super::outages::generate(&topology, &s, plan.seed)
                    } else {
                        Vec::new()
                    };
                    let mut labels = Map::new();
                    labels.insert("run".into(), json!(i));
                    labels.insert("param".into(), json!(plan.param.as_str()));
                    labels.insert("value".into(), json!(value));
                    labels.insert("protocol".into(), json!(family.as_str()));
                    labels.insert("tick_model".into(), json!(tick.as_str()));
                    out.push(Job {
                        experiment: Experiment {
                            source: format!("generated:{}", family.as_str()),
                            topology,
                            settings: s,
                            given: Map::new(),
                            seed: plan.seed,
                            trace,
                            trace_source: None,
                            outages,
                            outages_source: None,
                        },
                        labels,
                        out: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The metrics a sweep plots: (summary key, title, axis label).
pub const PLOTS: &[(&str, &str, &str)] = &[
    ("percent_stale_reads", "Stale reads", "% of reads"),
    ("percent_forked_writes", "Forked writes", "% of writes"),
    (
        "percent_visible_writes",
        "Fully visible writes",
        "% of writes",
    ),
    ("mean_visibility_latency_ms", "Visibility latency", "ms"),
    ("mean_commit_latency_ms", "Commit latency", "ms"),
    ("mean_write_latency_ms", "Write latency", "ms"),
    ("messages_sent", "Messages sent", "messages"),
    ("dropped_writes", "Dropped writes", "writes"),
];

/// Names a line: the protocol, and the tick model and users when a
/// sweep has more than one of them.
fn line_name(l: &Value, ticks: bool, users: bool) -> String {
    let mut name = l["protocol"].as_str().unwrap_or("?").to_string();
    if ticks {
        name += &format!(" {}", l["tick_model"].as_str().unwrap_or("?"));
    }
    if users {
        name += &format!(" {} users", l["users"]);
    }
    name
}

/// Writes `sweep.csv` and one PNG and one SVG per metric under `dir`.
pub fn report(dir: &Path, lines: &[Value], param: &str) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let distinct = |key: &str| {
        let mut v: Vec<String> = lines.iter().map(|l| l[key].to_string()).collect();
        v.sort();
        v.dedup();
        v.len() > 1
    };
    let (ticks, users) = (distinct("tick_model"), distinct("users"));
    let mut csv = format!("{param},protocol,tick_model,users");
    for (k, _, _) in PLOTS {
        csv += &format!(",{k}");
    }
    csv += ",error\n";
    for l in lines {
        csv += &format!(
            "{},{},{},{}",
            l["value"],
            l["protocol"].as_str().unwrap_or(""),
            l["tick_model"].as_str().unwrap_or(""),
            l["users"]
        );
        for (k, _, _) in PLOTS {
            csv += &format!(",{}", l.get(*k).map_or(String::new(), |v| v.to_string()));
        }
        csv += &format!(
            ",{}\n",
            l.get("error").and_then(Value::as_str).unwrap_or("")
        );
    }
    let table = dir.join("sweep.csv");
    std::fs::write(&table, csv).map_err(|e| Error::io(&table, e))?;
    let mut written = vec![table];
    for (key, title, unit) in PLOTS {
        let mut series: Vec<Series> = Vec::new();
        for l in lines.iter().filter(|l| l.get("error").is_none()) {
            let name = line_name(l, ticks, users);
            let (Some(x), Some(y)) = (l["value"].as_f64(), l.get(*key).and_then(Value::as_f64))
            else {
                continue;
            };
            match series.iter_mut().find(|s| s.name == name) {
                Some(s) => s.points.push((x, y)),
                None => series.push(Series {
                    name,
                    points: vec![(x, y)],
                }),
            }
        }
        for s in &mut series {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let chart = Chart {
            title,
            x_label: param,
            y_label: unit,
            series: &series,
        };
        let png = dir.join(format!("{key}.png"));
        let svg = dir.join(format!("{key}.svg"));
        line_chart(&png, &chart)?;
        line_chart_svg(&svg, &chart)?;
        written.push(png);
        written.push(svg);
    }
    Ok(written)
}
