//! `dz datasets run --mode local|virtual`: the same dataset on real
//! machines. A cluster is brought up with the root, the outputs and the
//! user; the tree spawns its data nodes on the machines itself. The driver
//! sees the tree only as the controller does: every machine's report and
//! each node's status JSON, walked as in simulation. The run ends once
//! the script is played and the tree stayed settled for a while (or a
//! grace period after the script's end), then the cluster is taken down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::run::{Sample, write_charts};
use super::script::Script;
use super::{NodeFacts, Setup, TreeView, check_running, check_settled, walk};
use crate::backends::cluster::{ClusterController, down, up};
use crate::controller::{MachineSpec, Placement};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode, NodeId};
use crate::settings::Settings;

/// Data nodes one machine ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MachineUse {
    pub machine: String,
    /// Local mode: the agent's process, to check it is gone after `down`.
    pub pid: Option<u32>,
    /// Distinct data nodes seen running there.
    pub data_nodes: u64,
    /// Most data nodes at once.
    pub peak: u64,
    /// Nodes its agent started for other nodes (its `spawned` counter).
    pub spawned: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RealRunResult {
    pub mode: Mode,
    pub cluster: String,
    pub kids_limit: u32,
    pub expected_total: i64,
    pub expected_leaves: u64,
    pub samples: Vec<Sample>,
    #[serde(rename = "final")]
    pub end: TreeView,
    /// Why the run is wrong, if it is (`None`: exact totals, valid tree).
    pub failure: Option<String>,
    pub machines: Vec<MachineUse>,
    pub peak_nodes: u64,
    pub peak_height: u32,
    /// Cluster time at which the tree was found settled for good.
    pub settled_s: Option<f64>,
    pub wall_s: f64,
    /// The data nodes' statuses at the last look, for tree.svg.
    #[serde(skip)]
    pub last_look: BTreeMap<NodeId, NodeFacts>,
}

/// What one look at the cluster saw.
#[derive(Default)]
struct Observation {
    data: BTreeMap<NodeId, NodeFacts>,
    /// Running data nodes per machine.
    per_machine: Vec<(String, BTreeSet<NodeId>, u64)>,
    outputs: BTreeMap<NodeId, i64>,
    sent_total: i64,
    user_finished: bool,
    /// Nodes that fail-stopped (a panic, a broken invariant).
    failed: Vec<String>,
}

/// Every machine's report, then each running node's status.
async fn observe(ctl: &mut ClusterController) -> Observation {
    let mut o = Observation::default();
    let plane = ctl.backend_mut().agents();
    for (i, (machine, report)) in plane.reports().await.into_iter().enumerate() {
        let mut here = BTreeSet::new();
        let mut spawned = 0;
        if let Ok(r) = report {
            spawned = r.transport.get("spawned").copied().unwrap_or(0);
            for n in r.nodes.iter().filter(|n| !n.exited) {
                if let Some(why) = &n.failed {
                    o.failed.push(format!("node {} on {machine}: {why}", n.id));
                }
                // A node may exit between the report and the query.
                let Ok(s) = plane.query_on(MachineId(i as u32), n.id, "status").await else {
                    continue;
                };
                match n.role.as_str() {
                    "data" => {
                        if let Ok(f) = serde_json::from_value::<NodeFacts>(s) {
                            here.insert(n.id);
                            o.data.insert(n.id, f);
                        }
                    }
                    "output" => {
                        o.outputs.insert(n.id, s["total"].as_i64().unwrap_or(0));
                    }
                    "user" => {
                        o.sent_total = s["sent_total"].as_i64().unwrap_or(0);
                        o.user_finished = s["finished"].as_bool().unwrap_or(false);
                    }
                    _ => {}
                }
            }
        }
        o.per_machine.push((machine, here, spawned));
    }
    o
}

impl Observation {
    fn view(&self, setup: &Setup, strict: bool) -> TreeView {
        let outputs = setup
            .layout()
            .outputs
            .iter()
            .map(|id| self.outputs.get(id).copied().unwrap_or(0))
            .collect();
        walk(&|id| self.data.get(&id).cloned(), outputs, strict)
    }
}

/// The root on m0, the outputs on m1 and the user on m2 (wrapping around
/// with fewer machines); every other data node is spawned by the tree.
fn placement(setup: &Setup) -> Result<(Vec<MachineSpec>, Placement)> {
    let n = setup.machines as u32;
    let machines = (0..n)
        .map(|i| MachineSpec::named(format!("m{i}")))
        .collect();
    let placement = setup
        .roster()?
        .nodes
        .into_iter()
        .map(|spec| {
            let m = match spec.role.as_str() {
                "output" => 1 % n,
                "user" => 2 % n,
                _ => 0,
            };
            (spec, MachineId(m))
        })
        .collect();
    Ok((machines, placement))
}

/// Real machines may be slower than the simulator: a run that has not
/// settled by the script's end gets this much longer before it is checked.
pub const GRACE: Duration = Duration::from_secs(60);

/// How long the tree must stay the same, valid and exact, once the script
/// is played, before the run ends early: no merge or absorb is pending.
fn settle_window(setup: &Setup) -> Duration {
    let l = &setup.limits;
    Duration::from_millis(l.merge_ms.max(l.absorb_ms) * 2 + l.monitor_ms * 2)
}

/// Plays `script` on a fresh cluster `name` of `setup.machines` machines
/// in `mode`, sampling every `every`; the cluster is taken down at the end,
/// also on failure.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    settings: &Settings,
    setup: &Setup,
    script: &Script,
    mode: Mode,
    name: &str,
    binary: &Path,
    every: Duration,
    on_sample: &mut dyn FnMut(&Sample),
) -> Result<RealRunResult> {
    if mode == Mode::Simulated {
        return Err(Error::input("simulated runs do not bring a cluster up"));
    }
    let wall = Instant::now();
    let mut setup = setup.clone();
    setup.steps = script.steps.clone();
    let (machines, placement) = placement(&setup)?;
    let (mut ctl, state) = up(settings, name, mode, &machines, placement, binary).await?;
    let mut result = RealRunResult {
        mode,
        cluster: name.to_string(),
        kids_limit: setup.limits.kids_limit,
        expected_total: script.outcome().0,
        expected_leaves: script.outcome().1,
        samples: Vec::new(),
        end: TreeView::default(),
        failure: None,
        machines: state
            .machines
            .iter()
            .map(|m| MachineUse {
                machine: m.name.clone(),
                pid: m.pid,
                ..Default::default()
            })
            .collect(),
        peak_nodes: 0,
        peak_height: 0,
        settled_s: None,
        wall_s: 0.0,
        last_look: BTreeMap::new(),
    };
    let ran = play(&mut ctl, &setup, script, every, &mut result, on_sample).await;
    let stopped = down(&mut ctl, &state, &settings.tmp_dir).await;
    ran?;
    stopped?;
    result.peak_nodes = result.samples.iter().map(|s| s.nodes).max().unwrap_or(0);
    result.peak_height = result.samples.iter().map(|s| s.height).max().unwrap_or(0);
    result.wall_s = wall.elapsed().as_secs_f64();
    Ok(result)
}

async fn play(
    ctl: &mut ClusterController,
    setup: &Setup,
    script: &Script,
    every: Duration,
    r: &mut RealRunResult,
    on_sample: &mut dyn FnMut(&Sample),
) -> Result<()> {
    let last_step = script
        .steps
        .last()
        .map_or(Duration::ZERO, |s| Duration::from_millis(s.at_ms));
    let last_fault = script.faults.last().map_or(Duration::ZERO, |f| f.0);
    let window = settle_window(setup);
    let deadline = script.end + GRACE;
    let mut faults = script.faults.iter().peekable();
    let mut seen: Vec<BTreeSet<NodeId>> = vec![BTreeSet::new(); r.machines.len()];
    let mut next_sample = Duration::ZERO;
    // Since when the tree is settled, and as what (height, nodes).
    let mut settled: Option<(Duration, (u32, u64))> = None;
    loop {
        let now = ctl.elapsed();
        while let Some((_, f)) = faults.next_if(|f| f.0 <= now) {
            ctl.inject(f).await?;
        }
        if now >= next_sample || now >= deadline {
            let o = observe(ctl).await;
            if r.failure.is_none() {
                r.failure = o.failed.first().cloned();
            }
            for (i, (_, here, spawned)) in o.per_machine.iter().enumerate() {
                let m = &mut r.machines[i];
                seen[i].extend(here);
                m.data_nodes = seen[i].len() as u64;
                m.peak = m.peak.max(here.len() as u64);
                m.spawned = m.spawned.max(*spawned);
            }
            let v = o.view(setup, false);
            if r.failure.is_none() {
                r.failure = check_running(&v).err();
            }
            let s = Sample {
                t_s: now.as_secs_f64(),
                height: v.height,
                leaves: v.leaves,
                nodes: v.nodes,
                sent_total: o.sent_total,
                root_total: v.root_total,
                outputs: v.outputs.clone(),
            };
            on_sample(&s);
            r.samples.push(s);
            next_sample = now + every;
            let end = o.view(setup, true);
            let done = o.user_finished && now >= last_step.max(last_fault);
            let ok = done && check_settled(&end, r.expected_total, r.expected_leaves).is_ok();
            let shape = (end.height, end.nodes);
            settled = match settled {
                Some((since, was)) if ok && was == shape => Some((since, was)),
                _ if ok => Some((now, shape)),
                _ => None,
            };
            let stayed = settled.is_some_and(|(since, _)| now >= since + window);
            if stayed || now >= deadline {
                if r.failure.is_none() {
                    r.failure = check_settled(&end, r.expected_total, r.expected_leaves).err();
                }
                r.settled_s = settled.map(|(since, _)| since.as_secs_f64());
                r.end = end;
                r.last_look = o.data;
                return Ok(());
            }
        }
        let mut until = next_sample.min(deadline);
        if let Some(f) = faults.peek() {
            until = until.min(f.0);
        }
        let now = ctl.elapsed();
        ctl.run_for(until.saturating_sub(now)).await?;
    }
}

/// results.json, the plots over time and tree.svg, the tree as its nodes'
/// statuses showed it at the last look.
pub fn write_outputs(out: &Path, r: &RealRunResult) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let path = out.join("results.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    write_charts(out, &r.samples, r.kids_limit, "time on the cluster (s)")?;
    let last = r.samples.last().map_or(0.0, |s| s.t_s);
    super::tree_svg::write(
        &out.join("tree.svg"),
        &|id| r.last_look.get(&id).cloned(),
        &format!(
            "the tree at {last:.1} s on the cluster ({}): height {}, {} leaves, total {}",
            r.mode, r.end.height, r.end.leaves, r.end.root_total
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Node;
    use crate::systems::datasets::DatasetNode;
    use crate::systems::datasets::data::{DataConfig, DataNode};
    use crate::systems::datasets::interval::Interval;

    #[test]
    fn a_data_nodes_status_carries_what_the_walk_needs() {
        let node = DatasetNode::Data(Box::new(DataNode::new(DataConfig {
            height: 2,
            interval: Some(Interval::ALL),
            ..Default::default()
        })));
        let status = node.query("status").expect("a status");
        let facts: NodeFacts = serde_json::from_value(status).expect("facts");
        assert_eq!(facts, NodeFacts::of(node.as_data().unwrap()));
        assert_eq!((facts.height, facts.parent, facts.problem), (2, None, None));
    }

    #[test]
    fn a_kid_missing_from_the_statuses_is_a_problem_once_settled() {
        let mut o = Observation::default();
        let root = NodeFacts {
            height: 2,
            kids: vec![NodeId(7)],
            total: 5,
            ..Default::default()
        };
        o.data.insert(NodeId(0), root);
        let setup = Setup::default();
        let loose = o.view(&setup, false);
        assert_eq!((loose.nodes, loose.root_total, loose.problem), (1, 5, None));
        assert_eq!(loose.outputs, vec![0, 0]);
        let strict = o.view(&setup, true);
        assert!(strict.problem.unwrap().contains("not running"));
        o.data.insert(
            NodeId(7),
            NodeFacts {
                height: 1,
                parent: Some(NodeId(0)),
                ..Default::default()
            },
        );
        assert_eq!(o.view(&setup, true).problem, None);
    }

    #[test]
    fn the_root_outputs_and_user_spread_over_the_machines() {
        let on = |machines| {
            let setup = Setup {
                machines,
                ..Setup::default()
            };
            let (specs, placed) = placement(&setup).unwrap();
            assert_eq!(specs.len(), machines);
            placed
                .iter()
                .map(|(s, m)| (s.role.clone(), m.0))
                .collect::<Vec<_>>()
        };
        let three = on(3);
        assert_eq!(three[0], ("data".to_string(), 0));
        assert!(three.contains(&("output".to_string(), 1)));
        assert!(three.contains(&("user".to_string(), 2)));
        assert!(on(1).iter().all(|(_, m)| *m == 0));
    }
}
