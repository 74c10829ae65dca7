//! "What if": the run again from the same seed and inputs with one more
//! fault at a chosen moment. Up to that moment the branch is the same run
//! (the simulator is deterministic); after it, the two can be compared.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::rerun::rerun;
use super::run::Run;
use crate::error::{Error, Result};

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
    let at = format!("{}us", (req.at * 1e6).round() as u64);
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
                "kind={other}: expected crash, restart, isolate, heal, link_down or link_up"
            )));
        }
    })
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
    if req.at > inputs.duration.as_secs_f64() {
        return Err(Error::input(format!(
            "at={}: after the end of the run ({} s)",
            req.at,
            inputs.duration.as_secs_f64()
        )));
    }
    let fault = fault_json(req, base.machines.len())?;
    let topology = with_fault(&inputs.topology, &fault)?;
    rerun(&topology, inputs.seed, inputs.duration, out)?;
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
        }
    }

    #[test]
    fn faults_are_written_as_a_topology_would() {
        let f = fault_json(&req("crash"), 3).unwrap();
        assert_eq!(f, json!({"at": "1500000us", "kind": "crash", "machine": 1}));
        let f = fault_json(&req("link_down"), 3).unwrap();
        assert_eq!(f["source"], 0);
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
}
