//! The value grammar of topology files: latencies in CloudScope's shapes,
//! times and durations, machine references and fault entries.

use std::time::Duration;

use serde_json::Value;

use super::{RawFault, RawTime, TopoNode};
use crate::net::{Fault, Latency, MessageFaults};
use crate::node::{MachineId, NodeId};

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

pub(super) fn parse_time(t: &RawTime) -> std::result::Result<Duration, String> {
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

pub(super) fn machine_ref(
    nodes: &[TopoNode],
    v: &Value,
    field: &str,
) -> std::result::Result<usize, String> {
    let found = match v {
        Value::String(s) => nodes.iter().position(|n| &n.name == s),
        Value::Number(n) => n.as_u64().map(|i| i as usize).filter(|&i| i < nodes.len()),
        _ => None,
    };
    found.ok_or_else(|| format!("{field}: no machine {v}"))
}

pub(super) fn check_faults(f: &MessageFaults) -> std::result::Result<(), String> {
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

pub(super) fn fault_of(
    nodes: &[TopoNode],
    f: &RawFault,
) -> std::result::Result<Vec<Fault>, String> {
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
        "drop_message" => {
            let end = |v: &Option<Value>, f: &str| -> std::result::Result<NodeId, String> {
                let v = v.as_ref().ok_or(format!("{f}: missing"))?;
                // A number may name a node spawned during the run; the
                // simulator checks it when the fault comes.
                match v.as_u64() {
                    Some(n) if n < u64::from(u32::MAX) => Ok(NodeId(n as u32)),
                    _ => Ok(NodeId(machine_ref(nodes, v, f)? as u32)),
                }
            };
            vec![Fault::DropMessage {
                from: end(&f.source, "source")?,
                to: end(&f.target, "target")?,
                kind: f
                    .message
                    .clone()
                    .ok_or("message: missing (the message kind)")?,
                nth: f.nth.unwrap_or(0),
            }]
        }
        other => {
            return Err(format!(
                "kind: unknown fault {other:?} (expected crash, restart, isolate, heal, link_down, link_up, \
                 partition, message_faults, kill_node or drop_message)"
            ));
        }
    })
}
