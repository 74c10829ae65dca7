//! Outages: CloudScope's scripts (`timestep online|offline source target`,
//! one directed link a line) and its generator, which takes groups of
//! links down and up together (`partition_across` wide, local, both, node
//! or global) after bounded-normal online and offline spells.

use std::path::Path;
use std::time::Duration;

use rand::RngExt;

use super::settings::RunSettings;
use super::trace::{bounded_normal, locations, read_text, timestep};
use crate::error::{Error, Result};
use crate::net::{Fault, ScheduledFault};
use crate::node::MachineId;
use crate::rng::stream;
use crate::topology::Topology;

/// One line of an outage script.
#[derive(Clone, Debug, PartialEq)]
pub struct OutageRow {
    pub at_ms: f64,
    pub online: bool,
    pub source: usize,
    pub target: usize,
}

impl OutageRow {
    pub fn fault(&self) -> ScheduledFault {
        let (from, to) = (MachineId(self.source as u32), MachineId(self.target as u32));
        ScheduledFault {
            at: Duration::from_nanos((self.at_ms * 1e6) as u64),
            fault: if self.online {
                Fault::LinkUp { from, to }
            } else {
                Fault::LinkDown { from, to }
            },
        }
    }
}

pub fn load(path: &Path, topology: &Topology) -> Result<Vec<OutageRow>> {
    let text = read_text(path)?;
    parse(&text, topology).map_err(|e| Error::input(format!("{}:{e}", path.display())))
}

pub fn parse(text: &str, topology: &Topology) -> std::result::Result<Vec<OutageRow>, String> {
    let node = |n: usize, field: &str, name: &str| {
        topology
            .nodes
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| format!("{n}: {field}: no node {name:?} in the topology"))
    };
    let mut rows = Vec::new();
    let mut last = 0.0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let [at, state, source, target] = fields.as_slice() else {
            return Err(format!(
                "{n}: expected `timestep online|offline source target`, got {} fields",
                fields.len()
            ));
        };
        let at_ms = timestep(at).map_err(|e| format!("{n}: {e}"))?;
        if at_ms < last {
            return Err(format!(
                "{n}: timestep: {at_ms} comes before {last} (a script is in time order)"
            ));
        }
        last = at_ms;
        let online = match *state {
            "online" => true,
            "offline" => false,
            other => {
                return Err(format!(
                    "{n}: state: expected online or offline, got {other:?}"
                ));
            }
        };
        let (source, target) = (node(n, "source", source)?, node(n, "target", target)?);
        if source == target {
            return Err(format!(
                "{n}: target: a link from {:?} to itself",
                fields[2]
            ));
        }
        rows.push(OutageRow {
            at_ms,
            online,
            source,
            target,
        });
    }
    Ok(rows)
}

pub fn to_text(rows: &[OutageRow], topology: &Topology) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            r.at_ms as u64,
            if r.online { "online" } else { "offline" },
            topology.nodes[r.source].name,
            topology.nodes[r.target].name
        ));
    }
    out
}

/// The groups of directed links that go down together.
fn groups(topology: &Topology, across: &str) -> Vec<Vec<(usize, usize)>> {
    let links = |keep: &dyn Fn(&crate::topology::TopoLink) -> bool| -> Vec<(usize, usize)> {
        topology
            .links
            .iter()
            .filter(|l| keep(l))
            .map(|l| (l.from, l.to))
            .collect()
    };
    let locs = locations(topology);
    let at = |i: usize, set: &[usize]| set.contains(&i);
    match across {
        "global" => vec![links(&|l| l.area == "wide")],
        "node" => (0..topology.nodes.len())
            .map(|n| links(&|l| l.from == n))
            .collect(),
        area => locs
            .iter()
            .map(|(_, nodes)| {
                links(&|l| {
                    at(l.from, nodes)
                        && match area {
                            "local" => l.area == "local",
                            "both" => l.area == "local" || l.area == "wide",
                            _ => l.area == "wide",
                        }
                })
            })
            .collect(),
    }
    .into_iter()
    .filter(|g| !g.is_empty())
    .collect()
}

/// CloudScope's outage generator over `s.max_sim_time` ms.
pub fn generate(topology: &Topology, s: &RunSettings, seed: u64) -> Vec<OutageRow> {
    let mut rows = Vec::new();
    for (g, links) in groups(topology, &s.partition_across).iter().enumerate() {
        let mut rng = stream(seed, "outages", g as u64);
        let (mut online, mut t) = (true, 0.0);
        loop {
            let (mean, sd) = if online {
                (s.online_mean, s.online_stddev)
            } else {
                (s.outage_mean, s.outage_stddev)
            };
            t += bounded_normal(&mut rng, mean, sd, 10.0);
            let at_ms = t.trunc();
            if at_ms > s.max_sim_time {
                break;
            }
            let next = rng.random::<f64>() >= s.outage_prob;
            if next != online {
                online = next;
                rows.extend(links.iter().map(|&(source, target)| OutageRow {
                    at_ms,
                    online,
                    source,
                    target,
                }));
            }
        }
    }
    rows.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    rows
}
