//! Datasets in the simulator: a cluster with one root, its outputs and a
//! user playing a script; views of the tree as it stands; the checks (exact
//! totals, a valid tree); `run` (`dz datasets run`), `sim_check`.

pub mod links;
pub mod links_svg;
pub mod real;
pub mod run;
pub mod script;
pub mod sim_check;
pub mod tree_svg;

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::net::ClockSkew;
use crate::node::{MachineId, NodeId};
use crate::sim::{SimConfig, Simulation};
use crate::systems::datasets::data::{DataConfig, DataNode, Limits};
use crate::systems::datasets::interval::Interval;
use crate::systems::datasets::link::LinkConfig;
use crate::systems::datasets::user::{Step, UserConfig};
use crate::systems::datasets::{DatasetNode, Datasets, OutputConfig};
use crate::systems::{NodeSpec, Roster, System};

/// The root is always node 0.
pub const ROOT: NodeId = NodeId(0);

/// What a simulated dataset cluster is made of.
#[derive(Clone, Debug)]
pub struct Setup {
    pub limits: Limits,
    pub link: LinkConfig,
    /// Machines the data nodes spread over; the user and the outputs get
    /// one more machine each.
    pub machines: usize,
    pub outputs: usize,
    pub root_height: u32,
    pub steps: Vec<Step>,
    /// Nodes keep their state in memory only (no crash durability).
    pub volatile: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            limits: Limits::default(),
            link: LinkConfig::default(),
            machines: 3,
            outputs: 2,
            root_height: 2,
            steps: Vec::new(),
            volatile: false,
        }
    }
}

/// Where the nodes of a [`Setup`] are.
#[derive(Clone, Debug)]
pub struct Layout {
    pub outputs: Vec<NodeId>,
    pub user: NodeId,
    pub user_machine: MachineId,
    pub output_machine: MachineId,
}

impl Setup {
    pub fn layout(&self) -> Layout {
        let outputs = (1..=self.outputs as u32).map(NodeId).collect();
        Layout {
            outputs,
            user: NodeId(self.outputs as u32 + 1),
            user_machine: MachineId(self.machines as u32),
            output_machine: MachineId(self.machines as u32 + 1),
        }
    }

    pub fn roster(&self) -> Result<Roster> {
        let layout = self.layout();
        let json = |v: &dyn erased::Json| v.json();
        let mut nodes = vec![NodeSpec {
            id: ROOT,
            name: "root".into(),
            system: Datasets::NAME.into(),
            role: "data".into(),
            config: json(&DataConfig {
                height: self.root_height,
                parent: None,
                interval: Some(Interval::ALL),
                outputs: layout.outputs.clone(),
                limits: self.limits,
                link: self.link,
                volatile: self.volatile,
            })?,
        }];
        for &o in &layout.outputs {
            nodes.push(NodeSpec {
                id: o,
                name: format!("output{}", o.0),
                system: Datasets::NAME.into(),
                role: "output".into(),
                config: json(&OutputConfig {
                    link: self.link,
                    volatile: self.volatile,
                })?,
            });
        }
        nodes.push(NodeSpec {
            id: layout.user,
            name: "user".into(),
            system: Datasets::NAME.into(),
            role: "user".into(),
            config: json(&UserConfig {
                root: ROOT,
                steps: self.steps.clone(),
                link: self.link,
                volatile: self.volatile,
                link_manager: None,
            })?,
        });
        Ok(Roster { nodes })
    }

    /// The simulation, nodes placed, spawns enabled.
    pub fn build(&self, cfg: SimConfig) -> Result<Simulation<DatasetNode>> {
        let layout = self.layout();
        let place = |spec: &NodeSpec| match spec.role.as_str() {
            "output" => layout.output_machine,
            "user" => layout.user_machine,
            _ => MachineId(0),
        };
        simulate(self.roster()?, self.machines + 2, &place, cfg)
    }
}

/// A simulation of `roster` on `machines` machines, each node placed by
/// `place`, spawns enabled.
pub fn simulate(
    roster: Roster,
    machines: usize,
    place: &dyn Fn(&NodeSpec) -> MachineId,
    cfg: SimConfig,
) -> Result<Simulation<DatasetNode>> {
    let roster = Arc::new(roster);
    let mut sim = Simulation::new(cfg);
    for _ in 0..machines {
        sim.add_machine(ClockSkew::default());
    }
    for spec in &roster.nodes {
        let mut first = Some(Datasets::build(spec, &roster)?);
        let (spec2, roster) = (spec.clone(), roster.clone());
        sim.add_node(place(spec), move || {
            first
                .take()
                .unwrap_or_else(|| Datasets::build(&spec2, &roster).expect("built once"))
        });
    }
    sim.set_spawner(Box::new(|id, role, config| {
        let name = format!("n{}", id.0);
        let mut first = Some(DatasetNode::from_role(&name, role, config)?);
        let (role, config) = (role.to_string(), config.clone());
        Ok(Box::new(move || {
            first.take().unwrap_or_else(|| {
                DatasetNode::from_role(&name, &role, &config).expect("built once")
            })
        }))
    }));
    Ok(sim)
}

pub(crate) mod erased {
    /// Serialises configs for node specs.
    pub trait Json {
        fn json(&self) -> crate::error::Result<serde_json::Value>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> crate::error::Result<serde_json::Value> {
            serde_json::to_value(self).map_err(|e| crate::error::Error::runtime(e.to_string()))
        }
    }
}

/// The tree as it stands, walked down from the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TreeView {
    pub height: u32,
    pub leaves: u64,
    /// Data nodes in the tree, leaves included.
    pub nodes: u64,
    pub root_total: i64,
    pub outputs: Vec<i64>,
    /// The first thing wrong with the tree, if anything.
    pub problem: Option<String>,
}

/// What walking the tree needs of one data node: read from the
/// simulation, or from the node's status JSON on real machines.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct NodeFacts {
    pub height: u32,
    pub parent: Option<NodeId>,
    pub total: i64,
    /// In key order.
    pub kids: Vec<NodeId>,
    /// Merged away or released.
    pub done: bool,
    /// A structural change is under way.
    pub changing: bool,
    /// The node's own invariants, broken.
    pub problem: Option<String>,
}

impl NodeFacts {
    pub fn of(d: &DataNode) -> NodeFacts {
        NodeFacts {
            height: d.height(),
            parent: d.parent(),
            total: d.total(),
            kids: d.kids_in_key_order(),
            done: d.is_done(),
            changing: d.op().is_some(),
            problem: d.check().err(),
        }
    }
}

/// Walks the tree from the root. `strict`: every kid must be running and
/// name its parent back (true once the tree settled; mid-change a kid may
/// not have started or heard of its new parent yet). Each node's own
/// invariants are checked either way.
pub fn view(sim: &Simulation<DatasetNode>, layout: &Layout, strict: bool) -> TreeView {
    let outputs = layout
        .outputs
        .iter()
        .map(|&o| {
            sim.node(o)
                .and_then(DatasetNode::as_output)
                .map_or(0, |o| o.total())
        })
        .collect();
    let facts = |id| {
        sim.node(id)
            .and_then(DatasetNode::as_data)
            .map(NodeFacts::of)
    };
    walk(&facts, outputs, strict)
}

/// [`view`] over any source of node facts (`None`: not running).
pub fn walk(
    facts: &dyn Fn(NodeId) -> Option<NodeFacts>,
    outputs: Vec<i64>,
    strict: bool,
) -> TreeView {
    let mut v = TreeView {
        outputs,
        ..Default::default()
    };
    let Some(root) = facts(ROOT) else {
        // Mid-run the root's machine may be down (crashed, restarting).
        if strict {
            v.problem = Some("the root is not running".into());
        }
        return v;
    };
    v.height = root.height;
    v.root_total = root.total;
    let mut stack = vec![(ROOT, None::<NodeId>, root.height)];
    while let Some((id, parent, height)) = stack.pop() {
        let Some(d) = facts(id) else {
            if strict && v.problem.is_none() {
                v.problem = Some(format!("node {id} (a kid of {parent:?}) is not running"));
            }
            continue;
        };
        v.nodes += 1;
        if d.height == 0 {
            v.leaves += 1;
        }
        let mut problem = d.problem.as_ref().map(|e| format!("node {id}: {e}"));
        if strict && problem.is_none() {
            if d.parent != parent {
                problem = Some(format!(
                    "node {id} names parent {:?}, but {parent:?} holds it",
                    d.parent
                ));
            } else if d.height != height {
                problem = Some(format!("node {id} has height {}, not {height}", d.height));
            } else if d.done || d.changing {
                problem = Some(format!("node {id} is still changing"));
            }
        }
        if v.problem.is_none() {
            v.problem = problem;
        }
        for &kid in &d.kids {
            stack.push((kid, Some(id), height.saturating_sub(1)));
        }
    }
    v
}

/// The checks of a settled run: a valid tree, `leaves` leaves, and the
/// exact `expected` total at the root and every output.
pub fn check_settled(v: &TreeView, expected: i64, leaves: u64) -> std::result::Result<(), String> {
    if let Some(p) = &v.problem {
        return Err(format!("invalid tree: {p}"));
    }
    if v.height < 2 {
        return Err(format!("root height {} (never below 2)", v.height));
    }
    if v.leaves != leaves {
        return Err(format!("{} leaves, expected {leaves}", v.leaves));
    }
    if v.root_total != expected {
        return Err(format!("root total {}, expected {expected}", v.root_total));
    }
    if let Some((i, t)) = v.outputs.iter().enumerate().find(|(_, t)| **t != expected) {
        return Err(format!("output {} holds {t}, expected {expected}", i + 1));
    }
    Ok(())
}

/// The checks of a run that never settles ("total so far" kind of checks
/// are meaningless mid-change): each node's own invariants.
pub fn check_running(v: &TreeView) -> std::result::Result<(), String> {
    match &v.problem {
        Some(p) => Err(format!("invalid tree: {p}")),
        None => Ok(()),
    }
}

/// The sum of every input a script sends, and the leaves left at its end.
pub fn script_outcome(steps: &[Step]) -> (i64, u64) {
    use crate::systems::datasets::user::Action;
    let mut total = 0;
    let mut leaves: i64 = 0;
    for s in steps {
        match &s.action {
            Action::AddLeaf { .. } => leaves += 1,
            Action::RemoveLeaf { .. } => leaves -= 1,
            Action::Input { amount, .. } => total += amount,
        }
    }
    (total, leaves.max(0) as u64)
}

pub(crate) fn input_err(e: impl std::fmt::Display) -> Error {
    Error::input(e.to_string())
}
