//! The files of a run: `results.json` with CloudScope's keys (so its
//! notebooks read it) and `summary.json`, the numbers researchers plot.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::experiment::{Experiment, RunOutput};
use crate::analysis::consistency::{Cast, Metrics, Series};
use crate::error::{Error, Result};
use crate::node::Mode;
use crate::systems::consistency::KINDS;

/// Names of replicas, their locations and the objects.
pub struct Names {
    pub nodes: Vec<String>,
    pub locations: Vec<String>,
    pub objects: Vec<String>,
}

impl Names {
    pub fn of(exp: &Experiment) -> Names {
        let t = &exp.topology;
        Names {
            nodes: t.nodes.iter().map(|n| n.name.clone()).collect(),
            locations: t
                .nodes
                .iter()
                .map(|n| n.location.clone().unwrap_or_else(|| "unknown".into()))
                .collect(),
            objects: exp.objects(),
        }
    }

    pub fn cast(&self) -> Cast<'_> {
        Cast {
            names: &self.nodes,
            locations: &self.locations,
            objects: &self.objects,
        }
    }
}

/// Message counts: totals by kind (sent, received, dropped), and per
/// replica.
pub struct Messages {
    pub sent: BTreeMap<String, u64>,
    pub recv: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
    pub by_sender: Map<String, Value>,
    pub by_receiver: Map<String, Value>,
    /// Mean one-way delay over every message received, ms.
    pub mean_latency_ms: f64,
}

impl Messages {
    pub fn of(run: &RunOutput, names: &Names) -> Messages {
        let mut m = Messages {
            sent: BTreeMap::new(),
            recv: BTreeMap::new(),
            dropped: BTreeMap::new(),
            by_sender: Map::new(),
            by_receiver: Map::new(),
            mean_latency_ms: 0.0,
        };
        for n in &run.stats.nodes {
            let name = names
                .nodes
                .get(n.id.0 as usize)
                .cloned()
                .unwrap_or_default();
            let (mut s, mut r) = (Map::new(), Map::new());
            for (kind, c) in &n.kinds {
                *m.sent.entry(kind.clone()).or_default() += c.sent;
                *m.recv.entry(kind.clone()).or_default() += c.delivered;
                *m.dropped.entry(kind.clone()).or_default() += c.dropped;
                if c.sent > 0 {
                    s.insert(kind.clone(), c.sent.into());
                }
                if c.delivered > 0 {
                    r.insert(kind.clone(), c.delivered.into());
                }
            }
            m.by_sender.insert(name.clone(), Value::Object(s));
            m.by_receiver.insert(name, Value::Object(r));
        }
        m.sent.retain(|_, v| *v > 0);
        m.recv.retain(|_, v| *v > 0);
        m.dropped.retain(|_, v| *v > 0);
        let (mut n, mut total) = (0.0, 0.0);
        for table in &run.latencies {
            for kinds in table.as_object().into_iter().flat_map(|o| o.values()) {
                for s in kinds.as_object().into_iter().flat_map(|o| o.values()) {
                    n += s[0].as_f64().unwrap_or(0.0);
                    total += s[1].as_f64().unwrap_or(0.0);
                }
            }
        }
        m.mean_latency_ms = if n > 0.0 { total / n } else { 0.0 };
        m
    }

    pub fn total(map: &BTreeMap<String, u64>) -> u64 {
        map.values().sum()
    }
}

/// CloudScope's `latencies`: sender → receiver → kind → statistics.
fn latencies(run: &RunOutput, names: &Names) -> Value {
    let mut out: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
    for (dst, table) in run.latencies.iter().enumerate() {
        let Some(srcs) = table.as_object() else {
            continue;
        };
        for (src, kinds) in srcs {
            let src = src
                .parse::<usize>()
                .ok()
                .and_then(|i| names.nodes.get(i))
                .cloned()
                .unwrap_or_else(|| src.clone());
            for kind in KINDS {
                let Some(s) = kinds.get(*kind) else { continue };
                let (n, total, squares) = (
                    s[0].as_f64().unwrap_or(0.0),
                    s[1].as_f64().unwrap_or(0.0),
                    s[2].as_f64().unwrap_or(0.0),
                );
                let mean = if n > 0.0 { total / n } else { 0.0 };
                let variance = if n > 1.0 {
                    ((squares - total * total / n) / (n - 1.0)).max(0.0)
                } else {
                    0.0
                };
                out.entry(src.clone())
                    .or_default()
                    .entry(names.nodes[dst].clone())
                    .or_default()
                    .insert(
                        (*kind).to_string(),
                        json!({"samples": n, "total": total, "squares": squares, "mean": mean,
                               "variance": variance, "standard_deviation": variance.sqrt()}),
                    );
            }
        }
    }
    serde_json::to_value(out).expect("plain data")
}

fn topology_json(exp: &Experiment) -> Value {
    let t = &exp.topology;
    let nodes: Vec<Value> = t
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.name, "type": n.kind, "label": n.label, "location": n.location,
                "consistency": n.config.get("consistency").cloned().unwrap_or_else(|| "strong".into()),
            })
        })
        .collect();
    let links: Vec<Value> = t
        .links
        .iter()
        .map(|l| {
            json!({"source": l.from, "target": l.to, "latency": l.spec.latency,
                   "area": l.area, "online": true})
        })
        .collect();
    json!({"nodes": nodes, "links": links, "meta": t.meta})
}

/// The applied settings, then the run's labels (the topology's meta keys
/// that are not settings, as CloudScope copies them).
fn settings_json(exp: &Experiment, mode: Mode) -> Value {
    let mut s = match serde_json::to_value(&exp.settings) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in exp.given.iter().chain(exp.topology.meta.iter()) {
        s.entry(k.clone()).or_insert_with(|| v.clone());
    }
    s.insert("random_seed".into(), exp.seed.into());
    s.insert("topology".into(), exp.source.clone().into());
    s.insert("trace".into(), exp.trace_source.clone().into());
    s.insert("outages".into(), exp.outages_source.clone().into());
    s.insert("mode".into(), mode.as_str().into());
    s.insert("protocols".into(), exp.protocols().into());
    Value::Object(s)
}

pub struct Files {
    pub results: Value,
    pub summary: Value,
}

pub fn build(
    exp: &Experiment,
    run: &RunOutput,
    series: &Series,
    metrics: &Metrics,
    mode: Mode,
) -> Files {
    let names = Names::of(exp);
    let messages = Messages::of(run, &names);
    let elapsed = run.elapsed.as_secs_f64();
    let results = json!({
        "simulation": exp.topology.title.clone().unwrap_or_else(|| exp.source.clone()),
        "version": env!("CARGO_PKG_VERSION"),
        "randseed": exp.seed,
        "timesteps": exp.settings.max_sim_time,
        "settings": settings_json(exp, mode),
        // Simulated time, so that one seed gives one file.
        "timer": {"started": 0.0, "finished": elapsed,
                  "elapsed": format!("{elapsed:.3} seconds ({mode} time)")},
        "results": serde_json::to_value(series.view(&names.cast())).expect("plain data"),
        "messages": {
            "messages": {"sent": messages.sent, "recv": messages.recv, "dropped": messages.dropped},
            "replicas": messages.by_sender,
            "received": messages.by_receiver,
        },
        "latencies": latencies(run, &names),
        "consistency": Value::Null,
        "topology": topology_json(exp),
    });
    let summary = summary_json(exp, metrics, &messages, mode);
    Files { results, summary }
}

pub fn summary_json(exp: &Experiment, m: &Metrics, messages: &Messages, mode: Mode) -> Value {
    let mut s = match serde_json::to_value(m) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let head = json!({
        "simulation": exp.topology.title.clone().unwrap_or_else(|| exp.source.clone()),
        "topology": exp.source, "mode": mode.as_str(), "protocols": exp.protocols(),
        "integration": exp.settings.integration.as_str(),
        "commit_quorum": exp.settings.commit_quorum, "nodes": exp.topology.nodes.len(),
        "seed": exp.seed, "sim_time_s": exp.settings.max_sim_time / 1e3,
        "users": exp.settings.users,
    });
    let mut out = head.as_object().cloned().unwrap_or_default();
    out.append(&mut s);
    out.insert(
        "messages_sent".into(),
        Messages::total(&messages.sent).into(),
    );
    out.insert(
        "messages_received".into(),
        Messages::total(&messages.recv).into(),
    );
    out.insert(
        "messages_dropped".into(),
        Messages::total(&messages.dropped).into(),
    );
    out.insert(
        "mean_message_latency_ms".into(),
        messages.mean_latency_ms.into(),
    );
    out.insert("messages_by_type".into(), json!(messages.sent));
    Value::Object(out)
}

/// Writes both files under `out`.
pub fn write(out: &Path, files: &Files) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let write = |name: &str, v: &Value| {
        let path = out.join(name);
        let text = serde_json::to_string(v).map_err(|e| Error::runtime(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
    };
    write("results.json", &files.results)?;
    let path = out.join("summary.json");
    let text =
        serde_json::to_string_pretty(&files.summary).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
}

/// The summary as a two-column table.
pub fn table(summary: &Value) -> String {
    let mut out = String::new();
    let Some(map) = summary.as_object() else {
        return out;
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in map {
        let shown = match v {
            Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{k:<width$}  {shown}\n"));
    }
    out
}
