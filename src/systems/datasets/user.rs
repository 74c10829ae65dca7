//! The edges of a dataset. A `user` plays a script of leaf arrivals,
//! departures and input actions (DistZero's RecordedUser): it asks the
//! root for leaves, learns which node each one is, and sends it its
//! numbers. An `output` holds the running total the root reports.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::durable::Saved;
use super::link::{Link, LinkConfig};
use super::msg::{AddLeaf, Body, DsMsg};
use crate::node::{Ctx, NodeId};

const TIMER_STEP: u64 = 10;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    AddLeaf { name: String },
    Input { name: String, amount: i64 },
    RemoveLeaf { name: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    pub root: NodeId,
    /// In time order.
    pub steps: Vec<Step>,
    pub link: LinkConfig,
    /// Keep the state in memory only (see `DataConfig::volatile`).
    pub volatile: bool,
    /// A link's manager to tell of every leaf added (see `linkmgr.rs`).
    pub link_manager: Option<NodeId>,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            root: NodeId(0),
            steps: Vec::new(),
            link: LinkConfig::default(),
            volatile: false,
            link_manager: None,
        }
    }
}

impl UserConfig {
    /// Steps in time order, every input and removal after its leaf's add.
    pub fn validate(&self) -> Result<(), String> {
        let mut live = std::collections::BTreeSet::new();
        let mut last = 0;
        for (i, s) in self.steps.iter().enumerate() {
            if s.at_ms < last {
                return Err(format!(
                    "step {} at {} ms is before the one before it",
                    i + 1,
                    s.at_ms
                ));
            }
            last = s.at_ms;
            match &s.action {
                Action::AddLeaf { name } if !live.insert(name.clone()) => {
                    return Err(format!("step {}: leaf {name:?} is added twice", i + 1));
                }
                Action::Input { name, .. } if !live.contains(name) => {
                    return Err(format!(
                        "step {}: input to leaf {name:?}, which is not there",
                        i + 1
                    ));
                }
                Action::RemoveLeaf { name } if !live.remove(name) => {
                    return Err(format!(
                        "step {}: removes leaf {name:?}, which is not there",
                        i + 1
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[derive(Default, Serialize, Deserialize)]
struct LeafState {
    id: Option<NodeId>,
    waiting: Vec<Body>,
}

/// Saved but for its script (its config) and the timer flags.
#[derive(Serialize, Deserialize)]
pub struct User {
    #[serde(skip)]
    cfg: UserConfig,
    link: Link,
    next: usize,
    leaves: BTreeMap<String, LeafState>,
    sent_total: i64,
    #[serde(skip)]
    pub(super) saved: Saved,
}

impl User {
    pub fn new(cfg: UserConfig) -> Self {
        User {
            link: Link::new(cfg.link),
            saved: Saved::new(!cfg.volatile),
            cfg,
            next: 0,
            leaves: BTreeMap::new(),
            sent_total: 0,
        }
    }

    /// Takes over the state saved before a restart: the script goes on
    /// from the step it had reached.
    pub fn resume(&mut self, ctx: &mut Ctx<'_, DsMsg>, saved: User) {
        let cfg = std::mem::take(&mut self.cfg);
        let keep = self.saved;
        *self = saved;
        (self.cfg, self.saved) = (cfg, keep);
        self.link.resume(ctx);
        self.play(ctx);
    }

    /// The sum of the inputs the script has issued so far.
    pub fn sent_total(&self) -> i64 {
        self.sent_total
    }

    /// Leaves the user knows the node of.
    pub fn known_leaves(&self) -> usize {
        self.leaves.values().filter(|l| l.id.is_some()).count()
    }

    /// The nodes of the leaves the user knows.
    pub fn leaf_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.leaves.values().filter_map(|l| l.id)
    }

    pub fn finished(&self) -> bool {
        self.next >= self.cfg.steps.len()
    }

    pub fn link_stats(&self) -> super::link::LinkStats {
        self.link.stats
    }

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        self.play(ctx);
    }

    fn play(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let now = ctx.now();
        while let Some(step) = self.cfg.steps.get(self.next) {
            let at = Duration::from_millis(step.at_ms);
            if at > now {
                ctx.set_timer(at - now, TIMER_STEP);
                return;
            }
            let action = step.action.clone();
            self.next += 1;
            self.act(ctx, action);
        }
    }

    fn act(&mut self, ctx: &mut Ctx<'_, DsMsg>, action: Action) {
        match action {
            Action::AddLeaf { name } => {
                self.leaves.insert(name.clone(), LeafState::default());
                let add = AddLeaf {
                    name,
                    user: ctx.me(),
                };
                self.link.send(ctx, self.cfg.root, Body::AddLeaf(add));
            }
            Action::Input { name, amount } => {
                self.sent_total += amount;
                self.send_to_leaf(ctx, &name, Body::InputAction { amount });
            }
            Action::RemoveLeaf { name } => self.send_to_leaf(ctx, &name, Body::Leave),
        }
    }

    /// Sends to a leaf, or keeps it until the leaf's node is known.
    fn send_to_leaf(&mut self, ctx: &mut Ctx<'_, DsMsg>, name: &str, body: Body) {
        let leaf = self.leaves.entry(name.to_string()).or_default();
        match leaf.id {
            Some(id) => self.link.send(ctx, id, body),
            None => leaf.waiting.push(body),
        }
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        for body in self.link.accept(ctx, from, msg) {
            if let Body::LeafAdded { name, leaf } = body {
                let state = self.leaves.entry(name).or_default();
                if state.id.is_some_and(|id| id != leaf) {
                    // The request was carried twice: this leaf is extra.
                    ctx.count("extra_leaves", 1);
                    self.link.send(ctx, leaf, Body::Leave);
                    continue;
                }
                if state.id.is_none()
                    && let Some(m) = self.cfg.link_manager
                {
                    self.link.send(ctx, m, Body::LinkSource { leaf });
                }
                state.id = Some(leaf);
                for b in std::mem::take(&mut state.waiting) {
                    self.link.send(ctx, leaf, b);
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) {
        if !self.link.on_timer(ctx, tag) && tag == TIMER_STEP {
            self.play(ctx);
        }
    }
}

/// Holds the root's running total.
#[derive(Serialize, Deserialize)]
pub struct Output {
    link: Link,
    total: i64,
    updates: u64,
    #[serde(skip)]
    pub(super) saved: Saved,
}

impl Output {
    pub fn new(link: LinkConfig, volatile: bool) -> Self {
        Output {
            link: Link::new(link),
            total: 0,
            updates: 0,
            saved: Saved::new(!volatile),
        }
    }

    pub fn resume(&mut self, ctx: &mut Ctx<'_, DsMsg>, saved: Output) {
        let keep = self.saved;
        *self = saved;
        self.saved = keep;
        self.link.resume(ctx);
    }

    pub fn total(&self) -> i64 {
        self.total
    }

    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        match msg {
            DsMsg::Ack { next } => self.link.on_ack(from, next),
            DsMsg::Data { seq, body } => {
                for b in self.link.receive(ctx, from, seq, body) {
                    if let Body::OutputAction { total } = b {
                        self.total = total;
                        self.updates += 1;
                    }
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) {
        self.link.on_timer(ctx, tag);
    }
}
