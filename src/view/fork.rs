//! "What if": the run again from the same seed and inputs with one more
//! fault at a chosen moment. Up to that moment the branch is the same run
//! (the simulator is deterministic); after it, the two can be compared.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::rerun::rerun_inputs;
use super::run::Run;
use super::trace_index::{Ev, TraceIndex};
use crate::error::{Error, Result};
use crate::net::Fault;
use crate::node::{MachineId, NodeId};

#[derive(Deserialize, Clone, Debug)]
pub struct ForkRequest {
    /// The run to branch from.
    pub run: usize,
    /// Seconds into the run.
    pub at: f64,
    /// crash, restart, isolate, heal, link_down or link_up.
    pub kind: String,
    /// Machine number (crash, restart, isolate; heal of one machine).
    pub machine: Option<usize>,
    /// Link ends (link_down, link_up).
    pub source: Option<usize>,
    pub target: Option<usize>,
    /// drop: the trace event number of the send to drop.
    pub message: Option<usize>,
}

/// The fault as a topology file writes it.
pub fn fault_json(req: &ForkRequest, machines: usize) -> Result<Value> {
    if !req.at.is_finite() || req.at < 0.0 {
        return Err(Error::input(format!(
            "at={}: not a time in the run",
            req.at
        )));
    }
    let idx = |v: Option<usize>, field: &str| -> Result<usize> {
        let i = v.ok_or_else(|| Error::input(format!("{}: needs {field}", req.kind)))?;
        if i >= machines {
            return Err(Error::input(format!(
                "{field}={i}: there are {machines} machines"
            )));
        }
        Ok(i)
    };
    let at = format!("{}ns", (req.at * 1e9).round() as u64);
    Ok(match req.kind.as_str() {
        "crash" | "restart" | "isolate" => {
            json!({"at": at, "kind": req.kind, "machine": idx(req.machine, "machine")?})
        }
        "heal" => match req.machine {
            Some(_) => json!({"at": at, "kind": "heal", "machine": idx(req.machine, "machine")?}),
            None => json!({"at": at, "kind": "heal"}),
        },
        "link_down" | "link_up" => json!({
            "at": at, "kind": req.kind,
            "source": idx(req.source, "source")?, "target": idx(req.target, "target")?,
        }),
        other => {
            return Err(Error::input(format!(
                "kind={other}: expected crash, restart, isolate, heal, link_down, link_up or drop"
            )));
        }
    })
}

/// "Drop this message": a one-shot fault armed a nanosecond before send
/// `i`, skipping the matching sends of that same instant that come first.
/// Faults are injected after every event at their time, so the `nth`
/// matching send after the fault is exactly this one, in the branch too.
pub fn drop_fault(req: &ForkRequest, tr: &TraceIndex) -> Result<Value> {
    let i = req
        .message
        .ok_or_else(|| Error::input("drop: needs message (the send's event number)"))?;
    let e = tr.events.get(i).ok_or_else(|| {
        Error::input(format!("message={i}: there are {} events", tr.events.len()))
    })?;
    if e.ev != Ev::Send {
        return Err(Error::input(format!(
            "message={i}: event {i} is a {}, not a send",
            e.ev.name()
        )));
    }
    if e.pair != super::trace_index::NONE && tr.events[e.pair as usize].ev == Ev::Drop {
        return Err(Error::input(format!(
            "message={i}: this message was dropped already"
        )));
    }
    let ns = (e.t * 1e9).round() as u64;
    if ns == 0 {
        return Err(Error::input(format!(
            "message={i}: sent at 0 s, before any fault can be armed"
        )));
    }
    let nth = tr.events[..i]
        .iter()
        .rev()
        .take_while(|o| o.t == e.t)
        .filter(|o| o.ev == Ev::Send && (o.a, o.b, o.kind) == (e.a, e.b, e.kind))
        .count();
    let kind = tr
        .strings
        .get(usize::from(e.kind))
        .cloned()
        .unwrap_or_default();
    Ok(
        json!({"at": format!("{}ns", ns - 1), "kind": "drop_message", "source": e.a,
              "target": e.b, "message": kind, "nth": nth}),
    )
}

/// A fault as [`fault_json`] or [`drop_fault`] write it, for runs that
/// are not topologies (sim-check seeds): a link goes down both ways, as a
/// topology's `link_down` without `oneway`.
pub fn to_faults(v: &Value) -> Result<Vec<(Duration, Fault)>> {
    let bad = || Error::input(format!("not a fault the viewer wrote: {v}"));
    let at = v["at"]
        .as_str()
        .and_then(|s| s.strip_suffix("ns"))
        .and_then(|n| n.parse().ok())
        .map(Duration::from_nanos)
        .ok_or_else(bad)?;
    let num = |k: &str| v[k].as_u64().map(|n| n as u32).ok_or_else(bad);
    let m = |k: &str| num(k).map(MachineId);
    let faults = match v["kind"].as_str().unwrap_or("") {
        "crash" => vec![Fault::Crash {
            machine: m("machine")?,
        }],
        "restart" => vec![Fault::Restart {
            machine: m("machine")?,
        }],
        "isolate" => vec![Fault::Isolate {
            machine: m("machine")?,
        }],
        "heal" => vec![Fault::Heal {
            machine: v.get("machine").map(|_| m("machine")).transpose()?,
        }],
        "link_down" => vec![
            Fault::LinkDown {
                from: m("source")?,
                to: m("target")?,
            },
            Fault::LinkDown {
                from: m("target")?,
                to: m("source")?,
            },
        ],
        "link_up" => vec![
            Fault::LinkUp {
                from: m("source")?,
                to: m("target")?,
            },
            Fault::LinkUp {
                from: m("target")?,
                to: m("source")?,
            },
        ],
        "drop_message" => vec![Fault::DropMessage {
            from: NodeId(num("source")?),
            to: NodeId(num("target")?),
            kind: v["message"].as_str().ok_or_else(bad)?.to_string(),
            nth: v["nth"].as_u64().unwrap_or(0),
        }],
        _ => return Err(bad()),
    };
    Ok(faults.into_iter().map(|f| (at, f)).collect())
}

/// The base run's topology with `fault` added to its schedule.
pub fn with_fault(topology: &str, fault: &Value) -> Result<String> {
    let mut v: Value =
        serde_json::from_str(topology).map_err(|e| Error::input(format!("topology.json: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::input("topology.json: not an object"))?;
    let meta = obj.entry("meta").or_insert_with(|| json!({}));
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| Error::input("topology.json: meta is not an object"))?;
    let faults = meta.entry("faults").or_insert_with(|| json!([]));
    faults
        .as_array_mut()
        .ok_or_else(|| Error::input("topology.json: meta.faults is not a list"))?
        .push(fault.clone());
    serde_json::to_string_pretty(&v).map_err(|e| Error::runtime(e.to_string()))
}

/// Simulates the branch under `out` and opens it.
pub fn branch(base: &Run, base_id: usize, req: &ForkRequest, out: &Path) -> Result<Run> {
    let inputs = base.inputs.as_ref().ok_or_else(|| {
        Error::input("this run cannot be re-run: it has no topology.json, seed and duration")
    })?;
    let duration = inputs.duration().as_secs_f64();
    if req.at > duration {
        return Err(Error::input(format!(
            "at={}: after the end of the run ({duration} s)",
            req.at
        )));
    }
    let fault = match req.kind.as_str() {
        "drop" => {
            let tr = base
                .trace
                .as_ref()
                .ok_or_else(|| Error::input("this run has no trace"))?;
            drop_fault(req, tr)?
        }
        _ => fault_json(req, base.machines.len())?,
    };
    rerun_inputs(inputs, Some(&fault), out)?;
    let mut run = Run::open_dir(out)?;
    let name = |i: &Value| {
        i.as_u64()
            .and_then(|i| base.machines.get(i as usize))
            .map_or("?".to_string(), |m| m.name.clone())
    };
    let what = match req.kind.as_str() {
        "link_down" | "link_up" => format!(
            "{} {}→{}",
            req.kind,
            name(&fault["source"]),
            name(&fault["target"])
        ),
        "drop" => format!(
            "drop {} #{} (node {}→{})",
            fault["message"].as_str().unwrap_or("?"),
            req.message.unwrap_or(0),
            fault["source"],
            fault["target"]
        ),
        "heal" if req.machine.is_none() => "heal".into(),
        k => format!("{k} {}", name(&fault["machine"])),
    };
    run.label = format!("branch of run {base_id}: {what} at {:.3} s", req.at);
    run.parent = Some(base_id);
    run.fault = Some(fault);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: &str) -> ForkRequest {
        ForkRequest {
            run: 0,
            at: 1.5,
            kind: kind.into(),
            machine: Some(1),
            source: Some(0),
            target: Some(2),
            message: None,
        }
    }

    #[test]
    fn faults_are_written_as_a_topology_would() {
        let f = fault_json(&req("crash"), 3).unwrap();
        assert_eq!(
            f,
            json!({"at": "1500000000ns", "kind": "crash", "machine": 1})
        );
        assert_eq!(
            to_faults(&f).unwrap(),
            vec![(
                Duration::from_millis(1500),
                Fault::Crash {
                    machine: MachineId(1)
                }
            )]
        );
        let f = fault_json(&req("link_down"), 3).unwrap();
        assert_eq!(f["source"], 0);
        // As in a topology, a link goes down both ways.
        assert_eq!(to_faults(&f).unwrap().len(), 2);
        assert!(fault_json(&req("explode"), 3).is_err());
        assert!(
            fault_json(
                &ForkRequest {
                    machine: Some(9),
                    ..req("crash")
                },
                3
            )
            .is_err()
        );
        assert!(
            fault_json(
                &ForkRequest {
                    at: f64::NAN,
                    ..req("crash")
                },
                3
            )
            .is_err()
        );
        let t = with_fault(r#"{"meta":{"system":"pingpong"},"nodes":[]}"#, &f).unwrap();
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["meta"]["faults"][0]["kind"], "link_down");
    }

    #[test]
    fn a_dropped_message_is_named_by_its_instant_and_rank() {
        let tr = TraceIndex::parse(
            br#"{"t":0.5,"ev":"send","from":0,"to":1,"kind":"Ping"}
{"t":0.5,"ev":"send","from":0,"to":2,"kind":"Ping"}
{"t":0.5,"ev":"send","from":0,"to":1,"kind":"Ping"}
{"t":0.6,"ev":"deliver","from":0,"to":1,"kind":"Ping"}
"#,
        )
        .unwrap();
        let drop = |i| {
            drop_fault(
                &ForkRequest {
                    message: Some(i),
                    ..req("drop")
                },
                &tr,
            )
        };
        let f = drop(2).unwrap();
        assert_eq!(f["at"], "499999999ns");
        assert_eq!(
            (f["source"].clone(), f["target"].clone()),
            (json!(0), json!(1))
        );
        assert_eq!(f["nth"], 1, "the second Ping 0→1 of that instant");
        assert_eq!(drop(1).unwrap()["nth"], 0);
        assert!(drop(3).is_err(), "a delivery is not a send");
        // Only messages that got through can be dropped.
        let lost = TraceIndex::parse(
            br#"{"t":0.5,"ev":"send","from":0,"to":1,"kind":"Ping"}
{"t":0.5,"ev":"drop","from":0,"to":1,"kind":"Ping","reason":"loss"}
"#,
        )
        .unwrap();
        let err = drop_fault(
            &ForkRequest {
                message: Some(0),
                ..req("drop")
            },
            &lost,
        );
        assert!(err.unwrap_err().to_string().contains("dropped already"));
        assert!(drop(9).is_err());
        assert!(
            drop_fault(
                &ForkRequest {
                    message: None,
                    ..req("drop")
                },
                &tr
            )
            .is_err()
        );
        // The topology reads it back as the simulator's fault.
        let t = with_fault(
            r#"{"meta":{"system":"pingpong"},"nodes":[{"id":"a"},{"id":"b"},{"id":"c"}]}"#,
            &f,
        )
        .unwrap();
        let t = crate::topology::Topology::parse(&t).unwrap();
        assert_eq!(
            t.faults[0].fault,
            crate::net::Fault::DropMessage {
                from: crate::node::NodeId(0),
                to: crate::node::NodeId(1),
                kind: "Ping".into(),
                nth: 1
            }
        );
        assert_eq!(t.faults[0].at, std::time::Duration::from_nanos(499_999_999));
    }
}
