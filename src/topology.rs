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

fn infer_area(a: &TopoNode, b: &TopoNode) -> Area {
    match (&a.location, &b.location) {
        (Some(x), Some(y)) if x != y => Area::Wide,
        _ => Area::Local,
    }
}

fn number(v: &Value) -> std::result::Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("expected a number, got {v}"))
}

fn pair(v: &Value, what: &str) -> std::result::Result<(f64, f64), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => Ok((number(a)?, number(b)?)),
        _ => Err(format!("expected {what}, got {v}")),
    }
}

/// CloudScope latency specs: `constant` takes a number, `variable` (uniform)
/// `[lo, hi]`, `normal` `[mean, stddev]`; without `connection` the shape
/// decides.
pub fn parse_latency(connection: Option<&str>, v: &Value) -> std::result::Result<Latency, String> {
    let latency = match connection {
        Some("constant") => Latency::Constant { ms: number(v)? },
        Some("variable") | Some("uniform") => {
            let (lo, hi) = pair(v, "[lo, hi]")?;
            Latency::Uniform { lo, hi }
        }
        Some("normal") => {
            let (mean, sd) = pair(v, "[mean, stddev]")?;
            Latency::Normal { mean, sd }
        }
        Some(other) => {
            return Err(format!(
                "unknown connection {other:?} (expected constant, variable or normal)"
            ));
        }
        None if v.is_number() => Latency::Constant { ms: number(v)? },
        None => {
            let (lo, hi) = pair(v, "a number or [lo, hi]")?;
            Latency::Uniform { lo, hi }
        }
    };
    latency.validate()?;
    Ok(latency)
}

fn parse_time(t: &RawTime) -> std::result::Result<Duration, String> {
    match t {
        RawTime::Ms(ms) if ms.is_finite() && *ms >= 0.0 => Ok(Duration::from_secs_f64(ms / 1e3)),
        RawTime::Ms(ms) => Err(format!("negative time {ms}")),
        RawTime::Text(s) => parse_duration(s),
    }
}

/// `60s`, `500ms`, `2m`, `1h 30m`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 60s, 500ms or 2m ({e})"))
}

fn machine_ref(nodes: &[TopoNode], v: &Value, field: &str) -> std::result::Result<usize, String> {
    let found = match v {
        Value::String(s) => nodes.iter().position(|n| &n.name == s),
        Value::Number(n) => n.as_u64().map(|i| i as usize).filter(|&i| i < nodes.len()),
        _ => None,
    };
    found.ok_or_else(|| format!("{field}: no machine {v}"))
}

fn check_faults(f: &MessageFaults) -> std::result::Result<(), String> {
    for (name, p) in [
        ("loss", f.loss),
        ("duplicate", f.duplicate),
        ("reorder", f.reorder),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("{name}: rate {p} is not between 0 and 1"));
        }
    }
    if f.delay_ms < 0.0 || f.reorder_ms.is_some_and(|r| r < 0.0) {
        return Err("negative delay".into());
    }
    Ok(())
}

fn fault_of(nodes: &[TopoNode], f: &RawFault) -> std::result::Result<Vec<Fault>, String> {
    let machine = |field: &str| -> std::result::Result<MachineId, String> {
        let v = match field {
            "machine" => f.machine.as_ref(),
            "source" => f.source.as_ref(),
            _ => f.target.as_ref(),
        }
        .ok_or_else(|| format!("{field}: missing"))?;
        machine_ref(nodes, v, field).map(|i| MachineId(i as u32))
    };
    let both = |from: MachineId, to: MachineId, make: fn(MachineId, MachineId) -> Fault| {
        if f.oneway {
            vec![make(from, to)]
        } else {
            vec![make(from, to), make(to, from)]
        }
    };
    Ok(match f.kind.as_str() {
        "crash" => vec![Fault::Crash {
            machine: machine("machine")?,
        }],
        "restart" => vec![Fault::Restart {
            machine: machine("machine")?,
        }],
        "isolate" => vec![Fault::Isolate {
            machine: machine("machine")?,
        }],
        "heal" => vec![Fault::Heal {
            machine: f.machine.as_ref().map(|_| machine("machine")).transpose()?,
        }],
        "link_down" => both(machine("source")?, machine("target")?, |from, to| {
            Fault::LinkDown { from, to }
        }),
        "link_up" => both(machine("source")?, machine("target")?, |from, to| {
            Fault::LinkUp { from, to }
        }),
        "partition" => {
            let groups = f
                .groups
                .as_ref()
                .ok_or("groups: missing (e.g. [[\"a\",\"b\"],[\"c\"]])")?;
            let mut ids = Vec::new();
            for (g, group) in groups.iter().enumerate() {
                for (k, v) in group.iter().enumerate() {
                    ids.push((g, machine_ref(nodes, v, &format!("groups[{g}][{k}]"))?));
                }
            }
            let mut out = Vec::new();
            for &(ga, a) in &ids {
                for &(gb, b) in &ids {
                    if ga != gb {
                        out.push(Fault::LinkDown {
                            from: MachineId(a as u32),
                            to: MachineId(b as u32),
                        });
                    }
                }
            }
            out
        }
        "message_faults" => {
            let faults = f.faults.to_faults();
            check_faults(&faults)?;
            vec![Fault::Messages {
                machine: f.machine.as_ref().map(|_| machine("machine")).transpose()?,
                faults,
            }]
        }
        "kill_node" => {
            let v = f.node.as_ref().ok_or("node: missing")?;
            vec![Fault::KillNode {
                node: NodeId(machine_ref(nodes, v, "node")? as u32),
            }]
        }
        other => {
            return Err(format!(
                "kind: unknown fault {other:?} (expected crash, restart, isolate, heal, link_down, link_up, \
                 partition, message_faults or kill_node)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "meta": {"seed": 7, "title": "three sites", "system": "pingpong", "duration": "2s",
                 "faults": [{"at": 500, "kind": "crash", "machine": "b"},
                            {"at": "1s", "kind": "restart", "machine": 1},
                            {"at": 0, "kind": "partition", "groups": [["a"], ["b", "c"]]}]},
        "nodes": [{"id": "a", "location": "paris"}, {"id": "b", "location": "paris"}, {"id": "c", "location": "tokyo"}],
        "links": [{"source": 0, "target": 1, "connection": "constant", "latency": 2},
                  {"source": 1, "target": 2, "connection": "normal", "latency": [120, 10]},
                  {"source": 0, "target": 2, "latency": [100, 140], "oneway": true}]
    }"#;

    #[test]
    fn simulated_topology_parses_cloudscope_shape() {
        let t = Topology::parse(GOOD).unwrap();
        assert_eq!(t.system, "pingpong");
        assert_eq!(t.seed, Some(7));
        assert_eq!(t.duration, Some(Duration::from_secs(2)));
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(
            t.links.len(),
            5,
            "two directed links per link, one for the oneway"
        );
        assert_eq!(
            t.links[2].spec.latency,
            Latency::Normal {
                mean: 120.0,
                sd: 10.0
            }
        );
        assert_eq!(t.links[2].spec.area, Area::Wide, "inferred from locations");
        assert_eq!(t.links[0].spec.area, Area::Local);
        assert_eq!(
            t.links[4].spec.latency,
            Latency::Uniform {
                lo: 100.0,
                hi: 140.0
            }
        );
        assert_eq!(
            t.faults[0].fault,
            Fault::Crash {
                machine: MachineId(1)
            }
        );
        assert_eq!(t.faults[1].at, Duration::from_secs(1));
        // a | b c: four directed links down.
        assert_eq!(t.faults.len(), 2 + 4);
    }

    fn err(text: &str) -> String {
        Topology::parse(text).unwrap_err()
    }

    #[test]
    fn simulated_topology_errors_name_the_field() {
        assert!(err("{nope").starts_with("not valid JSON"));
        let e = err(r#"{"nodes": [{"id": "a", "system": "nosuch"}]}"#);
        assert!(
            e.contains("nodes[0].system") && e.contains("unknown system \"nosuch\""),
            "{e}"
        );
        let e = err(
            r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}], "links": [{"source": 0, "target": 3, "latency": 1}]}"#,
        );
        assert!(e.contains("links[0].target: no node 3"), "{e}");
        let e = err(
            r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "latency": -3}]}"#,
        );
        assert!(e.contains("links[0].latency: negative latency"), "{e}");
        let e = err(
            r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "connection": "normal", "latency": 5}]}"#,
        );
        assert!(
            e.contains("links[0].latency: expected [mean, stddev]"),
            "{e}"
        );
        let e = err(
            r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "connection": "warp", "latency": 5}]}"#,
        );
        assert!(e.contains("unknown connection \"warp\""), "{e}");
        let e = err(
            r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}], "links": [{"source": "x", "target": 1, "latency": 1}]}"#,
        );
        assert!(e.contains("links[0].source"), "{e}");
        let e =
            err(r#"{"meta": {"system": "pingpong", "duration": "soon"}, "nodes": [{"id": "a"}]}"#);
        assert!(e.contains("meta.duration"), "{e}");
        let e = err(
            r#"{"meta": {"system": "pingpong", "faults": [{"at": 1, "kind": "crash", "machine": "zz"}]}, "nodes": [{"id": "a"}]}"#,
        );
        assert!(
            e.contains("meta.faults[0]: machine: no machine \"zz\""),
            "{e}"
        );
        let e = err(r#"{"meta": {"system": "clocks"}, "nodes": [{"id": "a", "role": "boss"}]}"#);
        assert!(e.contains("nodes[0].role"), "{e}");
    }
}
