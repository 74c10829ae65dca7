//! One run the page can show: what `dz view PATH` opened (a run's output
//! directory, a trace file, or a directory of collected logs), or a branch
//! a "what if" made from it.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use serde_json::{Value, json};

use super::logs::{self, LogIndex};
use super::states::States;
use super::trace_index::{Contents, TraceIndex};
use crate::drivers::kv::sim_check::SimCheckOptions;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Machine {
    pub name: String,
    pub label: Option<String>,
    pub location: Option<String>,
    /// A skewed clock (from the topology), drawn on the machine.
    pub clock: Option<crate::net::ClockSkew>,
}

/// What it takes to run the simulation again.
#[derive(Clone)]
pub enum Inputs {
    /// `dz simulate`'s output: the topology, seed and duration.
    Topology {
        topology: String,
        seed: u64,
        duration: Duration,
    },
    /// A `dz kv sim-check --seed N --trace DIR` seed (`sim-check.json`).
    KvSimCheck {
        seed: u64,
        options: Box<SimCheckOptions>,
    },
}

impl Inputs {
    pub fn duration(&self) -> Duration {
        match self {
            Inputs::Topology { duration, .. } => *duration,
            Inputs::KvSimCheck { options, .. } => options.load + options.settle,
        }
    }
}

/// `sim-check.json`: a seed and the options it ran with.
#[derive(serde::Deserialize)]
struct SimCheckInputs {
    seed: u64,
    options: SimCheckOptions,
}

pub struct Run {
    pub label: String,
    pub dir: Option<PathBuf>,
    pub system: Option<String>,
    pub seed: Option<u64>,
    pub trace_hash: Option<String>,
    pub machines: Vec<Machine>,
    /// Where the nodes that were not spawned run, when results.json says
    /// (`node_machines`); else node i runs on machine i.
    pub roster_machines: Vec<u32>,
    pub trace: Option<TraceIndex>,
    pub logs: LogIndex,
    /// Filled once the viewer's re-run has sampled the node states.
    pub states: RwLock<Option<States>>,
    /// Why the states are missing, when they are.
    pub states_note: RwLock<String>,
    pub inputs: Option<Inputs>,
    /// For a branch: the run it came from and the fault it added.
    pub parent: Option<usize>,
    pub fault: Option<Value>,
    pub verdict: RwLock<Option<Value>>,
    /// Message contents: from the trace itself when it has them, else from
    /// the viewer's re-run (same hash, so the same events).
    pub contents: RwLock<Option<Contents>>,
}

impl Run {
    /// Opens PATH; errors are input errors naming it, in one line.
    pub fn open(path: &Path) -> Result<Run> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        if meta.is_file() {
            if path.file_name().is_some_and(|n| n == "trace.jsonl")
                && let Some(dir) = path.parent().filter(|d| d.join("results.json").is_file())
            {
                return Self::open_dir(dir);
            }
            let trace = TraceIndex::open(path)?;
            let machines = unnamed(trace.machines as usize);
            return Ok(Self::new(
                path.display().to_string(),
                None,
                machines,
                Some(trace),
                LogIndex::default(),
            ));
        }
        if path.join("trace.jsonl").is_file() {
            return Self::open_dir(path);
        }
        let files = logs::files_in(path)?;
        if files.is_empty() {
            return Err(Error::input(format!(
                "{}: no trace.jsonl and no *.log files: not a run's output, a trace or a logs directory",
                path.display()
            )));
        }
        let logs = LogIndex::open(&files)?;
        if logs.lines.is_empty() {
            return Err(Error::input(format!(
                "{}: no JSON log lines in its *.log files",
                path.display()
            )));
        }
        let machines = logs
            .machines()
            .into_iter()
            .filter(|m| m != "controller")
            .map(|name| Machine {
                name,
                label: None,
                location: None,
                clock: None,
            })
            .collect();
        let mut run = Self::new(
            path.display().to_string(),
            Some(path.into()),
            machines,
            None,
            logs,
        );
        *run.states_note.get_mut().expect("not shared yet") =
            "a cluster's logs: no trace, no states".into();
        Ok(run)
    }

    fn new(
        label: String,
        dir: Option<PathBuf>,
        machines: Vec<Machine>,
        trace: Option<TraceIndex>,
        logs: LogIndex,
    ) -> Run {
        Run {
            label,
            dir,
            system: None,
            seed: None,
            trace_hash: None,
            machines,
            roster_machines: Vec::new(),
            trace,
            logs,
            states: RwLock::new(None),
            states_note: RwLock::new(
                "no topology.json beside the trace: states cannot be sampled".into(),
            ),
            inputs: None,
            parent: None,
            fault: None,
            verdict: RwLock::new(None),
            contents: RwLock::new(None),
        }
    }

    /// A run's output directory: `trace.jsonl`, and when present
    /// `results.json`, `topology.json`, `states.jsonl` and `*.json.log`.
    pub fn open_dir(dir: &Path) -> Result<Run> {
        let mut trace = TraceIndex::open(&dir.join("trace.jsonl"))?;
        let contents = (!trace.msg_lines.is_empty()).then(|| Contents {
            path: dir.join("trace.jsonl"),
            lines: std::mem::take(&mut trace.msg_lines),
        });
        let results = read_json(&dir.join("results.json"))?;
        let mut machines: Vec<Machine> = Vec::new();
        if let Some(nodes) = results.as_ref().and_then(|r| r["nodes"].as_array()) {
            for n in nodes {
                let s = |k: &str| n[k].as_str().map(str::to_string);
                machines.push(Machine {
                    name: s("name").unwrap_or_else(|| format!("m{}", machines.len())),
                    label: s("label"),
                    location: s("location"),
                    clock: None,
                });
            }
        }
        if machines.len() < trace.machines as usize {
            let have = machines.len();
            machines.extend(unnamed(trace.machines as usize).into_iter().skip(have));
        }
        let log_files: Vec<PathBuf> = logs::files_in(dir)?;
        let mut logs = LogIndex::open(&log_files)?;
        name_machines(&mut logs, &machines);
        let mut run = Self::new(
            dir.display().to_string(),
            Some(dir.into()),
            machines,
            Some(trace),
            logs,
        );
        if let Some(r) = &results {
            run.system = r["settings"]["system"].as_str().map(str::to_string);
            if let Some(m) = r["node_machines"].as_array() {
                run.roster_machines = m
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .map(|v| v as u32)
                    .collect();
            }
            run.seed = r["seed"].as_u64();
            run.trace_hash = r["trace_hash"].as_str().map(str::to_string);
            *run.verdict.get_mut().expect("not shared") =
                r.get("verdict").cloned().filter(|v| !v.is_null());
            let duration = r["settings"]["duration_s"]
                .as_f64()
                .map(Duration::from_secs_f64);
            let topology = std::fs::read_to_string(dir.join("topology.json")).ok();
            // Machine i is the topology's node i (`dz simulate` places them so).
            if let Some(t) = topology
                .as_deref()
                .and_then(|t| crate::topology::Topology::parse(t).ok())
            {
                for (m, n) in run.machines.iter_mut().zip(&t.nodes) {
                    m.clock = (!n.skew.is_zero()).then_some(n.skew);
                }
            }
            if let (Some(topology), Some(seed), Some(duration)) = (topology, run.seed, duration) {
                run.inputs = Some(Inputs::Topology {
                    topology,
                    seed,
                    duration,
                });
            }
        }
        *run.contents.get_mut().expect("not shared") = contents;
        let again = dir.join("sim-check.json");
        if run.inputs.is_none() && again.is_file() {
            let text = std::fs::read_to_string(&again).map_err(|e| Error::io(&again, e))?;
            let i: SimCheckInputs = serde_json::from_str(&text)
                .map_err(|e| Error::input(format!("{}: {e}", again.display())))?;
            run.inputs = Some(Inputs::KvSimCheck {
                seed: i.seed,
                options: Box::new(i.options),
            });
        }
        if dir.join("states.jsonl").is_file() {
            *run.states.get_mut().expect("not shared") =
                Some(States::open(&dir.join("states.jsonl"))?);
        }
        Ok(run)
    }

    /// The machine each node runs on: as results.json places the roster's
    /// nodes (else node i on machine i), spawned nodes where they spawned.
    pub fn node_machine(&self) -> Vec<u32> {
        let n = self
            .trace
            .as_ref()
            .map_or(0, |t| t.nodes as usize)
            .max(self.machines.len());
        let mut m: Vec<u32> = (0..n as u32).collect();
        for (slot, &machine) in m.iter_mut().zip(&self.roster_machines) {
            *slot = machine;
        }
        if let Some(t) = &self.trace {
            for e in t
                .events
                .iter()
                .filter(|e| e.ev == super::trace_index::Ev::Spawn)
            {
                if let Some(slot) = m.get_mut(e.b as usize) {
                    *slot = e.x as u32;
                }
            }
        }
        m
    }

    /// Trace event `i` as the page sees it, with its message's contents
    /// (a delivery or drop shows its send's).
    pub fn message(&self, i: usize) -> Option<Value> {
        let tr = self.trace.as_ref()?;
        let e = tr.events.get(i)?;
        let mut v = tr.describe(i);
        let send = match e.ev {
            super::trace_index::Ev::Send | super::trace_index::Ev::Duplicate => i as u32,
            _ => e.pair,
        };
        if let Ok(c) = self.contents.read()
            && let Some(text) = c.as_ref().and_then(|c| c.get(send))
        {
            v["contents"] = text.into();
        }
        Some(v)
    }

    pub fn end(&self) -> f64 {
        self.trace
            .as_ref()
            .map_or(0.0, TraceIndex::end)
            .max(self.logs.end())
    }

    pub fn meta(&self, id: usize) -> Value {
        let t = self.trace.as_ref();
        let machines: Vec<Value> = self
            .machines
            .iter()
            .map(|m| json!({"name": m.name, "label": m.label, "location": m.location, "clock": m.clock}))
            .collect();
        json!({
            "id": id,
            "label": self.label,
            "system": self.system,
            "seed": self.seed,
            "trace_hash": self.trace_hash,
            "machines": machines,
            "node_machine": self.node_machine(),
            "end": self.end(),
            "events": t.map_or(0, |t| t.events.len()),
            "kinds": t.map_or(Vec::new(), |t| t.strings.clone()),
            "log_lines": self.logs.lines.len(),
            "has_trace": t.is_some(),
            "states_ready": self.states.read().map(|s| s.is_some()).unwrap_or(false),
            "has_contents": self.contents.read().map(|c| c.is_some()).unwrap_or(false),
            "states_note": self.states_note.read().map(|s| s.clone()).unwrap_or_default(),
            "can_fork": self.inputs.is_some(),
            "parent": self.parent,
            "fault": self.fault,
            "verdict": self.verdict.read().ok().and_then(|v| v.clone()),
        })
    }
}

/// Simulated log lines name machines by number (`m0`); the page uses the
/// topology's names.
fn name_machines(logs: &mut LogIndex, machines: &[Machine]) {
    for l in &mut logs.lines {
        if machines.iter().any(|m| m.name == l.machine) {
            continue;
        }
        let idx = l
            .machine
            .strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(m) = idx.and_then(|i| machines.get(i)) {
            l.machine = m.name.clone();
        }
    }
}

fn unnamed(n: usize) -> Vec<Machine> {
    (0..n)
        .map(|i| Machine {
            name: format!("m{i}"),
            label: None,
            location: None,
            clock: None,
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::input(format!("{}: not valid JSON ({e})", path.display()))),
        Err(_) => Ok(None),
    }
}
