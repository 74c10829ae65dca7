//! A link between two datasets in the simulator (`dz datasets link`): an
//! input dataset whose user adds `inputs` leaves and sends them numbers,
//! `outputs` output leaves, and a link manager that builds the link over
//! the leaves present at `create_at` (more join later with
//! `late_inputs`). The link is then read from the running nodes and
//! checked as DistZero's test_link_trees.py did.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::erased::Json;
use super::{ROOT, simulate};
use crate::error::{Error, Result};
use crate::net::MessageFaults;
use crate::node::{MachineId, NodeId};
use crate::sim::{SimConfig, Simulation};
use crate::systems::datasets::data::{DataConfig, Limits};
use crate::systems::datasets::interval::Interval;
use crate::systems::datasets::link::LinkConfig;
use crate::systems::datasets::linkmgr::LinkManagerConfig;
use crate::systems::datasets::user::{Action, Step, UserConfig};
use crate::systems::datasets::{DatasetNode, Datasets, OutputConfig};
use crate::systems::{NodeSpec, Roster, System};

/// Leaves join this far apart (DistZero's link tests: 400 ms).
const EVERY_MS: u64 = 400;

#[derive(Clone, Debug)]
pub struct LinkSetup {
    /// Input leaves present when the link is built.
    pub inputs: usize,
    /// Input leaves that join after it is built.
    pub late_inputs: usize,
    pub outputs: usize,
    pub max_senders: u32,
    pub max_receivers: u32,
    /// The input dataset's kids limit (DistZero's link tests: 4).
    pub kids_limit: u32,
    /// Machines the data and link nodes spread over.
    pub machines: usize,
    /// On every message from the start, if any.
    pub faults: Option<MessageFaults>,
}

impl Default for LinkSetup {
    fn default() -> Self {
        LinkSetup {
            inputs: 3,
            late_inputs: 0,
            outputs: 3,
            max_senders: 200,
            max_receivers: 200,
            kids_limit: 4,
            machines: 3,
            faults: None,
        }
    }
}

/// A link node as read from the running node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkNodeView {
    pub id: NodeId,
    pub layer: u32,
    pub senders: Vec<NodeId>,
    pub receivers: Vec<NodeId>,
    pub total: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinkResult {
    pub seed: u64,
    pub inputs: usize,
    pub late_inputs: usize,
    pub outputs: usize,
    pub max_senders: u32,
    pub max_receivers: u32,
    /// Link nodes by layer, first layer first.
    pub layers: Vec<Vec<LinkNodeView>>,
    /// Each of the user's input leaves and the link node it feeds (`None`
    /// also when the leaf is not in the input dataset's tree).
    pub leaves: Vec<(NodeId, Option<NodeId>)>,
    /// Leaves in the tree that the user does not know (see `read`).
    pub stray_leaves: usize,
    pub output_ids: Vec<NodeId>,
    pub output_totals: Vec<i64>,
    /// What the user sent, all leaves together.
    pub sent_total: i64,
    /// Why the link is wrong, if it is.
    pub failure: Option<String>,
    pub trace_hash: String,
    pub events: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
}

impl LinkSetup {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.inputs == 0 || self.outputs == 0 {
            return Err("--inputs and --outputs must be at least 1".into());
        }
        if self.max_senders < 2 || self.max_receivers < 2 {
            return Err("--max-senders and --max-receivers must be at least 2".into());
        }
        if self.machines == 0 {
            return Err("--machines must be at least 1".into());
        }
        if let Some(f) = &self.faults {
            f.validate()?;
            // Every message lost (or every one duplicated or held back) is
            // no link to check.
            for (name, p) in [
                ("loss", f.loss),
                ("duplicate", f.duplicate),
                ("reorder", f.reorder),
            ] {
                if p >= 1.0 {
                    return Err(format!("fault rate {name}={p} must be below 1"));
                }
            }
        }
        Limits {
            kids_limit: self.kids_limit,
            ..Limits::default()
        }
        .validate()
    }

    fn output_ids(&self) -> Vec<NodeId> {
        (1..=self.outputs as u32).map(NodeId).collect()
    }
    fn user(&self) -> NodeId {
        NodeId(self.outputs as u32 + 1)
    }
    fn manager(&self) -> NodeId {
        NodeId(self.outputs as u32 + 2)
    }
    fn create_at_ms(&self) -> u64 {
        self.inputs as u64 * EVERY_MS + 1500
    }

    /// Leaves join every 400 ms and each sends a number; after the link
    /// is built, late leaves join, then every leaf sends another number.
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let step = |at_ms, action| Step { at_ms, action };
        let name = |i: usize| format!("in{i}");
        let mut t = 0;
        let add = |steps: &mut Vec<Step>, i: usize, t: u64| {
            steps.push(step(t, Action::AddLeaf { name: name(i) }));
            steps.push(step(
                t + 300,
                Action::Input {
                    name: name(i),
                    amount: (i % 7) as i64 + 1,
                },
            ));
        };
        for i in 0..self.inputs {
            add(&mut steps, i, t);
            t += EVERY_MS;
        }
        t = t.max(self.create_at_ms() + 1000);
        for i in self.inputs..self.inputs + self.late_inputs {
            add(&mut steps, i, t);
            t += EVERY_MS;
        }
        t += 1000;
        for i in 0..self.inputs + self.late_inputs {
            steps.push(step(
                t,
                Action::Input {
                    name: name(i),
                    amount: 10 * i as i64 - 3,
                },
            ));
            t += 20;
        }
        steps.sort_by_key(|s| s.at_ms);
        steps
    }

    pub fn roster(&self) -> Result<Roster> {
        let link = LinkConfig::default();
        let spec = |id, name: String, role: &str, config| NodeSpec {
            id,
            name,
            system: Datasets::NAME.into(),
            role: role.into(),
            config,
        };
        let limits = Limits {
            kids_limit: self.kids_limit,
            trigger: 0,
            ..Limits::default()
        };
        let mut nodes = vec![spec(
            ROOT,
            "root".into(),
            "data",
            DataConfig {
                height: 2,
                parent: None,
                interval: Some(Interval::ALL),
                outputs: Vec::new(),
                limits,
                link,
                volatile: false,
            }
            .json()?,
        )];
        for o in self.output_ids() {
            let cfg = OutputConfig {
                link,
                volatile: false,
            }
            .json()?;
            nodes.push(spec(o, format!("output{}", o.0), "output", cfg));
        }
        let user = UserConfig {
            root: ROOT,
            steps: self.steps(),
            link,
            link_manager: Some(self.manager()),
            volatile: false,
        };
        nodes.push(spec(self.user(), "user".into(), "user", user.json()?));
        let manager = LinkManagerConfig {
            outputs: self.output_ids(),
            max_senders: self.max_senders,
            max_receivers: self.max_receivers,
            create_at_ms: self.create_at_ms(),
            ..LinkManagerConfig::default()
        };
        nodes.push(spec(self.manager(), "link".into(), "link", manager.json()?));
        Ok(Roster { nodes })
    }

    /// Builds the link, lets it run until every number arrived (faults
    /// cost retransmissions), and checks it.
    pub fn run(&self, seed: u64) -> Result<(LinkResult, Simulation<DatasetNode>)> {
        self.validate().map_err(Error::input)?;
        let wall = Instant::now();
        let (user, outputs) = (self.user(), self.output_ids());
        let m = self.machines as u32;
        let place = |spec: &NodeSpec| match spec.role.as_str() {
            "output" => MachineId(m + 1),
            "user" => MachineId(m),
            _ => MachineId(0),
        };
        let mut sim = simulate(
            self.roster()?,
            self.machines + 2,
            &place,
            SimConfig::new(seed),
        )?;
        if let Some(f) = &self.faults {
            sim.set_faults(None, f)?;
        }
        let last = self.steps().last().map_or(0, |s| s.at_ms);
        // Under heavy faults a few messages take minutes of retransmissions
        // (seen: 30 % loss, 20 % duplication and reordering); simulated
        // time is cheap.
        let settle = if self.faults.is_some() {
            300_000
        } else {
            15_000
        };
        sim.run_until(Duration::from_millis(last + settle));
        if let Some(why) = sim.halted() {
            return Err(Error::runtime(why.to_string()));
        }
        let mut r = self.read(&sim, seed, user, &outputs);
        r.failure = check(&r, self.inputs + self.late_inputs).err();
        r.trace_hash = format!("{:016x}", sim.trace_hash());
        r.events = sim.stats().events;
        r.simulated_s = sim.now().as_secs_f64();
        r.wall_s = wall.elapsed().as_secs_f64();
        Ok((r, sim))
    }

    /// The link as the running nodes hold it.
    fn read(
        &self,
        sim: &Simulation<DatasetNode>,
        seed: u64,
        user: NodeId,
        outputs: &[NodeId],
    ) -> LinkResult {
        let mgr = sim
            .node(self.manager())
            .and_then(DatasetNode::as_link_manager);
        let mut nodes: BTreeMap<NodeId, LinkNodeView> = BTreeMap::new();
        for &id in mgr.map_or(&[][..], |m| m.node_ids()) {
            let Some(n) = sim.node(id).and_then(DatasetNode::as_link_node) else {
                continue;
            };
            let view = LinkNodeView {
                id,
                layer: 0,
                senders: n.senders().collect(),
                receivers: n.receivers().to_vec(),
                total: n.total(),
            };
            nodes.insert(id, view);
        }
        // A node's layer: one more than its highest sender's (0 when only
        // input leaves send to it), read from the nodes, not the plan.
        let mut layer_of = BTreeMap::new();
        for &id in nodes.keys() {
            layer(id, &nodes, &mut layer_of);
        }
        let mut layers: Vec<Vec<LinkNodeView>> = Vec::new();
        for (id, mut view) in nodes {
            let l = layer_of[&id];
            view.layer = l;
            if layers.len() <= l as usize {
                layers.resize(l as usize + 1, Vec::new());
            }
            layers[l as usize].push(view);
        }
        // The user's leaves: under heavy faults the tree may hold an extra
        // leaf for a request it received twice, which gets no inputs.
        let in_tree = input_leaves(sim);
        let mut users: Vec<NodeId> = sim
            .node(user)
            .and_then(DatasetNode::as_user)
            .map_or(Vec::new(), |u| u.leaf_ids().collect());
        users.sort();
        let stray_leaves = in_tree.iter().filter(|l| !users.contains(l)).count();
        let leaves = users
            .into_iter()
            .map(|l| {
                let to = sim
                    .node(l)
                    .and_then(DatasetNode::as_data)
                    .filter(|_| in_tree.contains(&l))
                    .and_then(|d| d.link_to());
                (l, to)
            })
            .collect();
        LinkResult {
            seed,
            inputs: self.inputs,
            late_inputs: self.late_inputs,
            outputs: self.outputs,
            max_senders: self.max_senders,
            max_receivers: self.max_receivers,
            layers,
            leaves,
            stray_leaves,
            output_ids: outputs.to_vec(),
            output_totals: outputs
                .iter()
                .map(|&o| {
                    sim.node(o)
                        .and_then(DatasetNode::as_output)
                        .map_or(0, |o| o.total())
                })
                .collect(),
            sent_total: sim
                .node(user)
                .and_then(DatasetNode::as_user)
                .map_or(0, |u| u.sent_total()),
            failure: None,
            trace_hash: String::new(),
            events: 0,
            simulated_s: 0.0,
            wall_s: 0.0,
        }
    }
}

fn layer(
    id: NodeId,
    nodes: &BTreeMap<NodeId, LinkNodeView>,
    memo: &mut BTreeMap<NodeId, u32>,
) -> u32 {
    if let Some(&l) = memo.get(&id) {
        return l;
    }
    // Guards against a cycle, which the checks then report as a bad layer.
    memo.insert(id, 0);
    let l = nodes[&id]
        .senders
        .iter()
        .filter(|s| nodes.contains_key(s))
        .map(|&s| layer(s, nodes, memo) + 1)
        .max()
        .unwrap_or(0);
    memo.insert(id, l);
    l
}

/// The leaves of the input dataset, walked down from its root.
fn input_leaves(sim: &Simulation<DatasetNode>) -> Vec<NodeId> {
    let mut leaves = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        let Some(d) = sim.node(id).and_then(DatasetNode::as_data) else {
            continue;
        };
        if d.is_leaf() {
            leaves.push(id);
        }
        stack.extend(d.kids().map(|(k, _)| k));
    }
    leaves.sort();
    leaves
}

/// DistZero's link invariants, on the link as read from the nodes: every
/// input leaf feeds exactly one first-layer link node, from which exactly
/// one path leads to each output leaf; every link node keeps to the fan-in
/// and fan-out limits and sends one layer up; every output leaf has one
/// sender and holds the exact total of every input.
pub fn check(r: &LinkResult, expected_leaves: usize) -> std::result::Result<(), String> {
    let nodes: BTreeMap<NodeId, &LinkNodeView> =
        r.layers.iter().flatten().map(|n| (n.id, n)).collect();
    let outputs: BTreeSet<NodeId> = r.output_ids.iter().copied().collect();
    if r.leaves.len() != expected_leaves {
        return Err(format!(
            "{} input leaves, expected {expected_leaves}",
            r.leaves.len()
        ));
    }
    for n in nodes.values() {
        if n.senders.len() > r.max_senders as usize || n.receivers.len() > r.max_receivers as usize
        {
            return Err(format!(
                "link node {} has {} senders and {} receivers (limits {} and {})",
                n.id,
                n.senders.len(),
                n.receivers.len(),
                r.max_senders,
                r.max_receivers
            ));
        }
        for rc in &n.receivers {
            let ok = match nodes.get(rc) {
                Some(m) => m.layer == n.layer + 1 && m.senders.contains(&n.id),
                None => outputs.contains(rc),
            };
            if !ok {
                return Err(format!(
                    "link node {} sends to {rc}, not a node one layer up that heard from it, nor an output",
                    n.id
                ));
            }
        }
    }
    for o in &outputs {
        let senders = nodes.values().filter(|n| n.receivers.contains(o)).count();
        if senders != 1 {
            return Err(format!("output {o} has {senders} senders, not 1"));
        }
    }
    let mut memo = BTreeMap::new();
    for &(leaf, to) in &r.leaves {
        let Some(first) = to else {
            return Err(format!(
                "input leaf {leaf} is not linked (or not in the tree)"
            ));
        };
        let feeds: Vec<_> = nodes
            .values()
            .filter(|n| n.senders.contains(&leaf))
            .map(|n| n.id)
            .collect();
        if feeds != [first] || nodes[&first].layer != 0 {
            return Err(format!(
                "input leaf {leaf} feeds {feeds:?}, not only its first-layer node {first}"
            ));
        }
        let paths = paths(first, &nodes, &outputs, &mut memo);
        if paths.len() != outputs.len() || paths.values().any(|&c| c != 1) {
            return Err(format!(
                "from input leaf {leaf}, paths to the outputs: {paths:?}"
            ));
        }
    }
    for (o, t) in r.output_ids.iter().zip(&r.output_totals) {
        if *t != r.sent_total {
            return Err(format!("output {o} holds {t}, expected {}", r.sent_total));
        }
    }
    Ok(())
}

/// How many paths lead from link node `n` to each output.
fn paths(
    n: NodeId,
    nodes: &BTreeMap<NodeId, &LinkNodeView>,
    outputs: &BTreeSet<NodeId>,
    memo: &mut BTreeMap<NodeId, BTreeMap<NodeId, u64>>,
) -> BTreeMap<NodeId, u64> {
    if let Some(p) = memo.get(&n) {
        return p.clone();
    }
    let mut v = BTreeMap::new();
    for r in nodes.get(&n).map_or(&[][..], |x| &x.receivers[..]) {
        if outputs.contains(r) {
            *v.entry(*r).or_insert(0) += 1;
        } else {
            for (o, c) in paths(*r, nodes, outputs, memo) {
                *v.entry(o).or_insert(0) += c;
            }
        }
    }
    memo.insert(n, v.clone());
    v
}

/// results.json and link.svg in `out`.
pub fn write_link_outputs(out: &std::path::Path, r: &LinkResult) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let path = out.join("results.json");
    let json = serde_json::to_string_pretty(r).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    let title = format!(
        "a link of {} inputs to {} outputs: {} layers, fan-in <= {}, fan-out <= {}",
        r.leaves.len(),
        r.outputs,
        r.layers.len(),
        r.max_senders,
        r.max_receivers
    );
    super::links_svg::write(&out.join("link.svg"), r, &title)
}
