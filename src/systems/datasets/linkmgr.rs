//! A link's manager (role `link`): it learns the input dataset's leaves
//! from the user (`LinkSource`), builds the link at `create_at_ms` over
//! the leaves known then (a [`Plan`], its link nodes spawned on the least
//! loaded machines, receivers before senders), tells each leaf which link
//! node to feed (`LinkTo`), and connects leaves that join afterwards to a
//! first-layer node with room, spawning nodes where the graph has room and
//! growing a level when it has none (`Rewire` to the old tops).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::link::{Link, LinkConfig};
use super::linknode::LinkNodeConfig;
use super::msg::{Body, DsMsg};
use super::plan::{Plan, To};
use crate::node::{Ctx, NodeId, Placement};

pub const TIMER_CREATE: u64 = 21;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkManagerConfig {
    /// The output dataset's leaves.
    pub outputs: Vec<NodeId>,
    /// Most senders of a link node (DistZero's `LINK_NODE_MAX_SENDERS`).
    pub max_senders: u32,
    /// Most receivers of a link node (`LINK_NODE_MAX_RECEIVERS`).
    pub max_receivers: u32,
    pub create_at_ms: u64,
    pub flush_ms: u64,
    pub link: LinkConfig,
}

impl Default for LinkManagerConfig {
    fn default() -> Self {
        LinkManagerConfig {
            outputs: Vec::new(),
            max_senders: 200,
            max_receivers: 200,
            create_at_ms: 0,
            flush_ms: 30,
            link: LinkConfig::default(),
        }
    }
}

impl LinkManagerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_senders < 2 || self.max_receivers < 2 {
            return Err("max_senders and max_receivers must be at least 2".into());
        }
        if self.flush_ms == 0 {
            return Err("flush_ms must be > 0".into());
        }
        Ok(())
    }
}

pub struct LinkManager {
    cfg: LinkManagerConfig,
    link: Link,
    plan: Option<Plan>,
    /// Plan node index to the spawned node.
    ids: Vec<NodeId>,
    /// Leaves known before the link was built.
    waiting: Vec<NodeId>,
    /// Each linked leaf and the link node it feeds.
    linked: BTreeMap<NodeId, NodeId>,
    /// Leaves that could not be connected (no ids left to spawn with).
    unlinked: Vec<NodeId>,
}

impl LinkManager {
    pub fn new(cfg: LinkManagerConfig) -> Self {
        LinkManager {
            link: Link::new(cfg.link),
            cfg,
            plan: None,
            ids: Vec::new(),
            waiting: Vec::new(),
            linked: BTreeMap::new(),
            unlinked: Vec::new(),
        }
    }

    /// The nodes plan node `i` sends to: link nodes as spawned, or outputs.
    fn receivers_of(&self, i: usize) -> Vec<NodeId> {
        let plan = self.plan.as_ref().expect("a plan");
        plan.nodes[i]
            .receivers
            .iter()
            .map(|r| match *r {
                To::Node(m) => self.ids[m],
                To::Target(t) => self.cfg.outputs[t],
            })
            .collect()
    }

    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }
    /// The link nodes spawned, by plan index.
    pub fn node_ids(&self) -> &[NodeId] {
        &self.ids
    }
    pub fn linked(&self) -> &BTreeMap<NodeId, NodeId> {
        &self.linked
    }
    pub fn unlinked(&self) -> &[NodeId] {
        &self.unlinked
    }
    pub fn max_senders(&self) -> u32 {
        self.cfg.max_senders
    }
    pub fn max_receivers(&self) -> u32 {
        self.cfg.max_receivers
    }
    pub fn outputs(&self) -> &[NodeId] {
        &self.cfg.outputs
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        ctx.set_timer(Duration::from_millis(self.cfg.create_at_ms), TIMER_CREATE);
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        for body in self.link.accept(ctx, from, msg) {
            match body {
                Body::LinkSource { leaf } => self.on_source(ctx, leaf),
                Body::Cancelled => {}
                other => {
                    ctx.count("unexpected_messages", 1);
                    tracing::debug!(node = %ctx.me(), "unexpected {other:?} from {from}");
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) {
        if !self.link.on_timer(ctx, tag) && tag == TIMER_CREATE && self.plan.is_none() {
            self.create(ctx);
        }
    }

    fn on_source(&mut self, ctx: &mut Ctx<'_, DsMsg>, leaf: NodeId) {
        if self.linked.contains_key(&leaf) || self.waiting.contains(&leaf) {
            return;
        }
        let Some(plan) = &mut self.plan else {
            self.waiting.push(leaf);
            return;
        };
        let added = plan.add_source();
        if !self.spawn(ctx, &added.new_nodes) {
            self.unlinked.push(leaf);
            return;
        }
        for &i in &added.rewired {
            let receivers = self.receivers_of(i);
            self.link.send(ctx, self.ids[i], Body::Rewire { receivers });
        }
        let node = self.ids[added.node];
        self.connect(ctx, leaf, node);
    }

    fn create(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let plan = match Plan::new(
            self.waiting.len(),
            self.cfg.outputs.len(),
            self.cfg.max_senders as usize,
            self.cfg.max_receivers as usize,
        ) {
            Ok(p) => p,
            Err(why) => {
                // The config was validated: this is a bug, not an input.
                tracing::error!(node = %ctx.me(), "no link: {why}");
                return;
            }
        };
        // Receivers first: the highest layer is spawned first.
        let mut order: Vec<usize> = (0..plan.nodes.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(plan.nodes[i].layer));
        self.plan = Some(plan);
        if !self.spawn(ctx, &order) {
            self.unlinked.append(&mut self.waiting);
            return;
        }
        let plan = self.plan.as_ref().expect("just set");
        let pairs: Vec<_> = std::mem::take(&mut self.waiting)
            .into_iter()
            .zip(plan.sources.iter().map(|&n| self.ids[n]))
            .collect();
        for (leaf, node) in pairs {
            self.connect(ctx, leaf, node);
        }
    }

    /// Spawns plan nodes `order` (each after its receivers); false when
    /// this node's ids ran out.
    fn spawn(&mut self, ctx: &mut Ctx<'_, DsMsg>, order: &[usize]) -> bool {
        let plan = self.plan.as_ref().expect("a plan");
        self.ids.resize(plan.nodes.len(), NodeId(u32::MAX));
        for &i in order {
            let n = &plan.nodes[i];
            let receivers = self.receivers_of(i);
            let cfg = LinkNodeConfig {
                receivers,
                to_outputs: n.receivers.iter().any(|r| matches!(r, To::Target(_))),
                flush_ms: self.cfg.flush_ms,
                link: self.cfg.link,
            };
            let config = serde_json::to_value(&cfg).expect("a link node config is plain data");
            match ctx.spawn("linknode", config, Placement::LeastLoaded) {
                Some(id) => self.ids[i] = id,
                None => {
                    ctx.count("spawn_failed", 1);
                    return false;
                }
            }
        }
        true
    }

    fn connect(&mut self, ctx: &mut Ctx<'_, DsMsg>, leaf: NodeId, node: NodeId) {
        self.linked.insert(leaf, node);
        self.link.send(ctx, leaf, Body::LinkTo { node });
    }
}
