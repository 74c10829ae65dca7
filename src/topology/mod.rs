//! Topology files: which machines exist, how they are linked, what runs on
//! them and which faults happen when. The format is CloudScope's JSON shape
//! (`meta`, `nodes`, `links` with `source`/`target` indexes) plus a
//! `system`/`role`/`config` per node and a fault schedule in `meta`.
//! Every topology node is one machine running one node; times are in ms.
//!
//! CloudScope's own files load unchanged: a file that names no system runs
//! `consistency`, each node's `consistency` key (and its other keys) become
//! the node's config, `area` may be any string (only `local` and `wide`
//! matter), `meta.local_latency` may be CloudScope's `[mean, stddev]` label,
//! and every meta key is kept as a label for the results.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::controller::{DirectedLink, MachineSpec, Placement};
use crate::error::{Error, Result};
use crate::net::{Area, ClockSkew, Latency, LinkSpec, MessageFaults};
use crate::net::{Fault, ScheduledFault};
use crate::node::{MachineId, NodeId, NodeSpec};

mod parse;
use parse::{check_faults, fault_of, machine_ref, parse_time};
pub use parse::{parse_duration, parse_latency};

/// DistZero's default between machines: normal, mean 10 ms, sd 3 ms.
pub const DEFAULT_LATENCY: Latency = Latency::Normal {
    mean: 10.0,
    sd: 3.0,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub title: Option<String>,
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    pub system: String,
    pub nodes: Vec<TopoNode>,
    /// Directed links; each link of the file gives two unless `oneway`.
    pub links: Vec<TopoLink>,
    /// Latency between machines with no link; `None` when `meta.mesh` is
    /// false and such machines cannot talk.
    pub default_latency: Option<Latency>,
    pub local_latency: Latency,
    pub faults: Vec<ScheduledFault>,
    /// The file's `meta` object as written (labels included).
    pub meta: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopoNode {
    pub name: String,
    /// CloudScope's device type (`storage`, `desktop`, `laptop`...).
    pub kind: Option<String>,
    pub label: Option<String>,
    pub location: Option<String>,
    pub role: Option<String>,
    pub config: Value,
    pub skew: ClockSkew,
    /// Size of the machine's data disk in KiB (virtual mode).
    pub disk_kb: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopoLink {
    pub from: usize,
    pub to: usize,
    pub spec: LinkSpec,
    /// The file's `area` (any string; `inner` in CloudScope's hierarchy),
    /// or `local`/`wide` inferred from the nodes' locations.
    pub area: String,
}

#[derive(Deserialize)]
struct RawTopology {
    #[serde(default)]
    meta: Option<Value>,
    nodes: Vec<RawNode>,
    #[serde(default)]
    links: Vec<RawLink>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    seed: Option<u64>,
    title: Option<String>,
    system: Option<String>,
    role: Option<String>,
    duration: Option<RawTime>,
    connection: Option<String>,
    latency: Option<Value>,
    mesh: Option<bool>,
    /// A number: latency between nodes on one machine. CloudScope writes
    /// `[mean, stddev]` here as a label of its local-area links.
    local_latency: Option<Value>,
    config: Option<Value>,
    faults: Vec<RawFault>,
}

#[derive(Deserialize)]
struct RawNode {
    /// CloudScope names nodes `r<n>` when a file leaves `id` out.
    #[serde(default)]
    id: Value,
    label: Option<String>,
    location: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    system: Option<String>,
    role: Option<String>,
    #[serde(default)]
    config: Value,
    clock: Option<ClockSkew>,
    disk_kb: Option<u64>,
    /// CloudScope's `consistency` and per-node settings (and labels such
    /// as `files`).
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct RawLink {
    source: i64,
    target: i64,
    connection: Option<String>,
    latency: Option<Value>,
    area: Option<String>,
    /// CloudScope: a link that starts offline.
    online: Option<bool>,
    #[serde(default)]
    oneway: bool,
    #[serde(flatten)]
    faults: RawMessageFaults,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMessageFaults {
    loss: f64,
    duplicate: f64,
    reorder: f64,
    reorder_ms: Option<f64>,
    delay_ms: f64,
    kinds: Vec<String>,
}

impl RawMessageFaults {
    fn to_faults(&self) -> MessageFaults {
        MessageFaults {
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_ms: self.reorder_ms,
            delay_ms: self.delay_ms,
            kinds: self.kinds.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTime {
    Ms(f64),
    Text(String),
}

#[derive(Deserialize)]
struct RawFault {
    at: RawTime,
    kind: String,
    machine: Option<Value>,
    source: Option<Value>,
    target: Option<Value>,
    #[serde(default)]
    oneway: bool,
    groups: Option<Vec<Vec<Value>>>,
    node: Option<Value>,
    /// drop_message: the message's kind and which one from the fault on.
    message: Option<String>,
    nth: Option<u64>,
    #[serde(flatten)]
    faults: RawMessageFaults,
}

impl Topology {
    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    /// Parses and checks a topology; errors name the field at fault.
    pub fn parse(text: &str) -> std::result::Result<Topology, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let raw: RawTopology = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            }
        })?;
        let meta_map = match &raw.meta {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(format!("meta: expected an object, got {other}")),
        };
        let meta: RawMeta = serde_path_to_error::deserialize(Value::Object(meta_map.clone()))
            .map_err(|e| {
                let path = e.path().to_string();
                format!("meta.{path}: {}", e.into_inner())
            })?;
        build(raw, meta, meta_map)
    }

    pub fn machine_index(&self, r: &Value, field: &str) -> std::result::Result<usize, String> {
        machine_ref(&self.nodes, r, field)
    }

    /// One machine per topology node, named after it.
    pub fn machines(&self) -> Vec<MachineSpec> {
        self.nodes
            .iter()
            .map(|n| MachineSpec {
                name: n.name.clone(),
                skew: n.skew,
                disk_kb: n.disk_kb,
            })
            .collect()
    }

    /// Node i on machine i, with its role (the system's first by default)
    /// and config.
    pub fn placement(&self) -> Result<Placement> {
        let roles = crate::systems::with_system(&self.system, RoleCheck)?.map_err(Error::input)?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let spec = NodeSpec {
                    id: NodeId(i as u32),
                    name: n.name.clone(),
                    system: self.system.clone(),
                    role: n.role.clone().unwrap_or_else(|| roles[0].to_string()),
                    config: n.config.clone(),
                };
                (spec, MachineId(i as u32))
            })
            .collect())
    }

    /// The network shape for real machines, where nothing is shaped unless
    /// told: every explicit link, and for every other pair the default
    /// latency (or, without a mesh, no connection at all). The simulator
    /// takes the explicit links and the default instead, at no cost per pair.
    pub fn network(&self) -> Vec<DirectedLink> {
        let mut out: Vec<DirectedLink> = self
            .links
            .iter()
            .map(|l| {
                let (from, to) = (MachineId(l.from as u32), MachineId(l.to as u32));
                (from, to, Some(l.spec.clone()))
            })
            .collect();
        let n = self.nodes.len();
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                if self.links.iter().any(|l| l.from == a && l.to == b) {
                    continue;
                }
                let spec = self.default_latency.clone().map(LinkSpec::new);
                out.push((MachineId(a as u32), MachineId(b as u32), spec));
            }
        }
        out
    }
}

fn build(
    raw: RawTopology,
    meta: RawMeta,
    meta_map: serde_json::Map<String, Value>,
) -> std::result::Result<Topology, String> {
    if raw.nodes.is_empty() {
        return Err("nodes: a topology needs at least one node".into());
    }
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    let mut system: Option<String> = meta.system.clone();
    for (i, n) in raw.nodes.iter().enumerate() {
        let name = match &n.id {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(num) => num.to_string(),
            Value::Null => format!("r{i}"),
            _ => {
                return Err(format!(
                    "nodes[{i}].id: expected a non-empty string or a number"
                ));
            }
        };
        if nodes.iter().any(|o: &TopoNode| o.name == name) {
            return Err(format!("nodes[{i}].id: duplicate id {name:?}"));
        }
        match (&system, &n.system) {
            (None, Some(s)) => system = Some(s.clone()),
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "nodes[{i}].system: {b:?} differs from {a:?}; one topology runs one system"
                ));
            }
            _ => {}
        }
        let mut config = meta.config.clone().unwrap_or(Value::Null);
        merge(&mut config, &n.config);
        nodes.push(TopoNode {
            name,
            kind: n.kind.clone(),
            label: n.label.clone(),
            location: n.location.clone(),
            role: n.role.clone().or_else(|| meta.role.clone()),
            config,
            skew: n.clock.unwrap_or_default(),
            disk_kb: n.disk_kb,
        });
    }
    // CloudScope's files name no system: their nodes are consistency
    // replicas, configured by their own keys.
    let system = system.unwrap_or_else(|| CONSISTENCY.to_string());
    if system == CONSISTENCY {
        for (i, (node, raw_node)) in nodes.iter_mut().zip(&raw.nodes).enumerate() {
            let mut keys = serde_json::Map::new();
            for (k, v) in &raw_node.rest {
                keys.insert(k.clone(), v.clone());
            }
            if let Some(loc) = &raw_node.location {
                keys.insert("location".into(), Value::String(loc.clone()));
            }
            merge(&mut node.config, &Value::Object(keys));
            crate::systems::consistency::check_node_keys(&node.config)
                .map_err(|(field, e)| format!("nodes[{i}].{field}: {e}"))?;
        }
    }
    crate::systems::with_system(&system, RoleCheck)
        .map_err(|e| format!("nodes[0].system: {e}"))?
        .and_then(|roles| {
            nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.role.as_ref().map(|r| (i, r)))
                .find(|(_, r)| !roles.contains(&r.as_str()))
                .map_or(Ok(()), |(i, r)| {
                    Err(format!(
                        "nodes[{i}].role: {system} has no role {r:?} (roles: {})",
                        roles.join(", ")
                    ))
                })
        })?;

    let default_latency = match &meta.latency {
        Some(v) => parse_latency(meta.connection.as_deref(), v)
            .map_err(|e| format!("meta.latency: {e}"))?,
        None => DEFAULT_LATENCY,
    };
    let local_latency = match &meta.local_latency {
        Some(v) if v.is_number() => {
            parse_latency(Some("constant"), v).map_err(|e| format!("meta.local_latency: {e}"))?
        }
        // CloudScope's label of its local-area links, `[mean, stddev]`:
        // checked, kept in `meta`, not applied (the links carry latency).
        Some(v @ Value::Array(_)) => {
            parse_latency(Some("normal"), v).map_err(|e| format!("meta.local_latency: {e}"))?;
            Latency::Constant { ms: 0.0 }
        }
        Some(Value::Null) | None => Latency::Constant { ms: 0.0 },
        Some(v) => {
            return Err(format!(
                "meta.local_latency: expected a number (ms) or [mean, stddev], got {v}"
            ));
        }
    };

    let mut links = Vec::new();
    let mut initial_faults = Vec::new();
    for (i, l) in raw.links.iter().enumerate() {
        let end = |v: i64, field: &str| -> std::result::Result<usize, String> {
            usize::try_from(v)
                .ok()
                .filter(|&x| x < nodes.len())
                .ok_or_else(|| {
                    format!(
                        "links[{i}].{field}: no node {v} (there are {} nodes)",
                        nodes.len()
                    )
                })
        };
        let (from, to) = (end(l.source, "source")?, end(l.target, "target")?);
        if from == to {
            return Err(format!("links[{i}]: a link from node {from} to itself"));
        }
        let latency = match &l.latency {
            Some(v) => parse_latency(l.connection.as_deref(), v)
                .map_err(|e| format!("links[{i}].latency: {e}"))?,
            // CloudScope's default_latency.
            None => parse_latency(l.connection.as_deref(), &Value::from(CLOUDSCOPE_LATENCY_MS))
                .map_err(|e| format!("links[{i}].latency: missing, and {e}"))?,
        };
        let area = match l.area.as_deref() {
            Some("") => return Err(format!("links[{i}].area: empty")),
            Some(a) => a.to_string(),
            None => match infer_area(&nodes[from], &nodes[to]) {
                Area::Wide => "wide".to_string(),
                Area::Local => "local".to_string(),
            },
        };
        let spec = LinkSpec {
            latency,
            area: if area == "wide" {
                Area::Wide
            } else {
                Area::Local
            },
            faults: l.faults.to_faults(),
        };
        check_faults(&spec.faults).map_err(|e| format!("links[{i}]: {e}"))?;
        let mut directions = vec![(from, to)];
        if !l.oneway {
            directions.push((to, from));
        }
        for (a, b) in directions {
            // A later entry for the same pair replaces an earlier one, as
            // in CloudScope.
            links.retain(|x: &TopoLink| !(x.from == a && x.to == b));
            links.push(TopoLink {
                from: a,
                to: b,
                spec: spec.clone(),
                area: area.clone(),
            });
            if l.online == Some(false) {
                initial_faults.push(ScheduledFault {
                    at: Duration::ZERO,
                    fault: Fault::LinkDown {
                        from: MachineId(a as u32),
                        to: MachineId(b as u32),
                    },
                });
            }
        }
    }

    let mut faults = initial_faults;
    for (i, f) in meta.faults.iter().enumerate() {
        let at = parse_time(&f.at).map_err(|e| format!("meta.faults[{i}].at: {e}"))?;
        for fault in fault_of(&nodes, f).map_err(|e| format!("meta.faults[{i}]: {e}"))? {
            faults.push(ScheduledFault { at, fault });
        }
    }

    let duration = meta
        .duration
        .as_ref()
        .map(parse_time)
        .transpose()
        .map_err(|e| format!("meta.duration: {e}"))?;
    Ok(Topology {
        title: meta.title,
        seed: meta.seed,
        duration,
        system,
        nodes,
        links,
        default_latency: meta.mesh.unwrap_or(true).then_some(default_latency),
        local_latency,
        faults,
        meta: meta_map,
    })
}

/// The system CloudScope's files run.
const CONSISTENCY: &str = "consistency";
/// CloudScope's latency of a link that gives none.
const CLOUDSCOPE_LATENCY_MS: f64 = 800.0;

struct RoleCheck;

impl crate::systems::SystemVisitor for RoleCheck {
    type Out = std::result::Result<&'static [&'static str], String>;
    fn visit<S: crate::systems::System>(self) -> Self::Out {
        Ok(S::ROLES)
    }
}

/// Node config overrides meta config key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                b.insert(k.clone(), v.clone());
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

/// CloudScope names a node without a location `unknown`, so it is wide
/// from every node that has one.
fn infer_area(a: &TopoNode, b: &TopoNode) -> Area {
    let loc = |n: &TopoNode| n.location.as_deref().unwrap_or("unknown").to_string();
    if loc(a) == loc(b) {
        Area::Local
    } else {
        Area::Wide
    }
}

#[cfg(test)]
mod tests;
