//! A data node: a leaf (height 0, one per input) or a manager above
//! leaves. Each node owns a key interval and reports a summary (total,
//! size, kids, height) to its parent; the root reports its total to the
//! outputs. Totals are cumulative and versioned, so a kid that moves to
//! another parent (splits, merges, new levels) is counted exactly once as
//! soon as both parents have heard from it, and the totals of leaves that
//! left stay in `retired`. How the tree grows and shrinks is `growth.rs`;
//! handing kids over is `handover.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::config::{DataConfig, Limits};
use super::durable::Saved;
use super::interval::{Interval, check_kids};
use super::link::{Link, LinkConfig};
use super::msg::{AddLeaf, Body, DsMsg, Summary};
use crate::node::{Ctx, NodeId, Placement};

pub const TIMER_SUMMARY: u64 = 3;
pub const TIMER_MONITOR: u64 = 4;
pub const TIMER_LINGER: u64 = 5;

/// A kid as its parent knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    pub summary: Summary,
    /// Its first summary arrived.
    pub reported: bool,
    /// Leaves routed to it since its last summary.
    pub extra: u64,
}

/// A structural change a manager waits on before the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `new` reports the half of `old`'s kids it took.
    Split { old: NodeId, new: NodeId },
    /// The new level: `proxy` reports it took the root's kids.
    Bump { proxy: NodeId },
    /// `into` reports an interval starting at `start`.
    Merge { into: NodeId, start: u64 },
    /// The proxy hands its kids back to the root.
    Consume { proxy: NodeId },
}

/// Everything but the timer flags is saved (see `durable.rs`).
#[derive(Serialize, Deserialize)]
pub struct DataNode {
    pub(super) limits: Limits,
    pub(super) link: Link,
    pub(super) height: u32,
    pub(super) parent: Option<NodeId>,
    pub(super) interval: Option<Interval>,
    pub(super) moves: u32,
    pub(super) version: u64,
    /// Spawned to take kids: nothing to report before they come.
    pub(super) started: bool,
    // A leaf's own state.
    pub(super) inputs: i64,
    pub(super) leaving: bool,
    /// The link node this input leaf feeds (see `linknode.rs`).
    pub(super) link_to: Option<NodeId>,
    pub(super) link_version: u64,
    // A manager's.
    pub(super) kids: BTreeMap<NodeId, Kid>,
    pub(super) retired: i64,
    /// Summaries and goodbyes of kids that are on their way to this node.
    pub(super) early: BTreeMap<NodeId, (Summary, bool)>,
    pub(super) adds: VecDeque<AddLeaf>,
    pub(super) op: Option<Op>,
    /// Commands of the parent that wait for this node's own op.
    pub(super) deferred: VecDeque<Body>,
    // Times since: restarted from zero after a restart (clocks may restart).
    pub(super) mergeable: Option<((NodeId, NodeId), Duration)>,
    pub(super) one_kid_since: Option<Duration>,
    pub(super) outputs: Vec<NodeId>,
    pub(super) last_output: Option<i64>,
    /// Merged away: where adds go now; the node stops once its links drain.
    pub(super) successor: Option<NodeId>,
    /// Done (released leaf, merged node): stopping once drained.
    pub(super) done: bool,
    pub(super) dirty: bool,
    // Volatile: timers do not survive a restart.
    #[serde(skip)]
    pub(super) lingering: bool,
    #[serde(skip)]
    pub(super) summary_armed: bool,
    #[serde(skip)]
    pub(super) monitor_armed: bool,
    #[serde(skip)]
    pub(super) saved: Saved,
}

impl DataNode {
    pub fn new(cfg: DataConfig) -> Self {
        DataNode {
            limits: cfg.limits,
            link: Link::new(cfg.link),
            height: cfg.height,
            parent: cfg.parent,
            interval: cfg.interval,
            moves: 0,
            version: 0,
            started: cfg.interval.is_some(),
            inputs: 0,
            leaving: false,
            link_to: None,
            link_version: 0,
            kids: BTreeMap::new(),
            retired: 0,
            early: BTreeMap::new(),
            adds: VecDeque::new(),
            op: None,
            deferred: VecDeque::new(),
            mergeable: None,
            one_kid_since: None,
            outputs: cfg.outputs,
            last_output: None,
            successor: None,
            done: false,
            lingering: false,
            dirty: false,
            summary_armed: false,
            monitor_armed: false,
            saved: Saved::new(!cfg.volatile),
        }
    }

    // ----- what the node is -----

    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn parent(&self) -> Option<NodeId> {
        self.parent
    }
    pub fn interval(&self) -> Option<Interval> {
        self.interval
    }
    pub fn kids(&self) -> impl Iterator<Item = (NodeId, &Kid)> {
        self.kids.iter().map(|(id, k)| (*id, k))
    }
    pub fn is_leaf(&self) -> bool {
        self.height == 0
    }
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }
    /// Merged away or released: no longer part of the tree.
    pub fn is_done(&self) -> bool {
        self.done
    }
    pub fn link_stats(&self) -> super::link::LinkStats {
        self.link.stats
    }
    pub fn op(&self) -> Option<Op> {
        self.op
    }
    /// Leaf requests waiting here for room.
    pub fn queued_adds(&self) -> usize {
        self.adds.len()
    }
    pub fn debug_line(&self) -> String {
        let kids: Vec<String> = self
            .kids
            .iter()
            .map(|(id, k)| {
                format!(
                    "{id}:s{}+{} k{} r{} e{}",
                    k.summary.size,
                    k.extra,
                    k.summary.n_kids,
                    k.reported as u8,
                    k.summary.interval.is_empty() as u8
                )
            })
            .collect();
        format!(
            "h{} parent {:?} adds {} op {:?} succ {:?} done {} deferred {} unacked {} kids [{}]",
            self.height,
            self.parent,
            self.adds.len(),
            self.op,
            self.successor,
            self.done,
            self.deferred.len(),
            self.link.unacked(),
            kids.join(", ")
        )
    }

    /// The exact sum of the inputs under this node as it knows it.
    pub fn total(&self) -> i64 {
        if self.is_leaf() {
            self.inputs
        } else {
            self.retired + self.kids.values().map(|k| k.summary.total).sum::<i64>()
        }
    }

    /// Leaves under this node as it knows it.
    pub fn size(&self) -> u64 {
        match self.height {
            0 => 1,
            1 => self.kids.len() as u64,
            _ => self.kids.values().map(|k| k.summary.size).sum(),
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            version: self.version,
            moves: self.moves,
            height: self.height,
            interval: self.interval.unwrap_or_default(),
            total: self.total(),
            size: self.size(),
            n_kids: self.kids.len() as u32,
        }
    }

    /// The node's own invariants: kid count, kid heights, intervals.
    pub fn check(&self) -> Result<(), String> {
        if self.is_root() && self.height < 2 && self.started {
            return Err(format!("root of height {} (never below 2)", self.height));
        }
        if self.kids.len() > self.limits.kids_limit as usize {
            return Err(format!(
                "{} kids, over the limit {}",
                self.kids.len(),
                self.limits.kids_limit
            ));
        }
        if let Some((id, k)) = self
            .kids
            .iter()
            .find(|(_, k)| k.reported && k.summary.height + 1 != self.height)
        {
            return Err(format!(
                "kid {id} has height {} under a node of height {}",
                k.summary.height, self.height
            ));
        }
        if let Some(iv) = self.interval {
            let kids: Vec<Interval> = self.kids.values().map(|k| k.summary.interval).collect();
            check_kids(&iv, self.height, &kids)?;
        }
        Ok(())
    }

    pub(super) fn assert_valid(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.check()
        {
            panic!("dataset node invariant broken: {e}");
        }
    }

    // ----- handlers -----

    pub fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if let Some(iv) = self.interval
            && self.height >= 2
            && self.kids.is_empty()
        {
            // A new dataset is a chain down to height 1 (DistZero's NewDataset).
            let cfg = DataConfig {
                height: self.height - 1,
                parent: Some(ctx.me()),
                interval: Some(iv),
                outputs: Vec::new(),
                limits: self.limits,
                link: self.link_config(),
                volatile: !self.saved.on,
            };
            if let Some(id) = spawn_data(ctx, &cfg) {
                self.kids.insert(id, new_kid(self.height - 1, iv));
            }
        }
        if self.started {
            self.send_summary(ctx);
        }
        self.arm_monitor(ctx);
    }

    /// Takes over the state saved before a restart and picks up where it
    /// left: timers again, unacknowledged messages sent again, a summary.
    pub fn resume(&mut self, ctx: &mut Ctx<'_, DsMsg>, saved: DataNode) {
        let keep = self.saved;
        *self = saved;
        self.saved = keep;
        self.mergeable = None;
        self.one_kid_since = None;
        self.link.resume(ctx);
        if self.done {
            self.maybe_stop(ctx);
        } else {
            self.mark_dirty(ctx);
            self.arm_monitor(ctx);
        }
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        match msg {
            DsMsg::Ack { next } => {
                self.link.on_ack(from, next);
                self.maybe_stop(ctx);
            }
            DsMsg::Data { seq, body } => {
                for body in self.link.receive(ctx, from, seq, body) {
                    self.handle(ctx, from, body);
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) {
        if self.link.on_timer(ctx, tag) {
            self.maybe_stop(ctx);
            return;
        }
        match tag {
            TIMER_SUMMARY => {
                self.summary_armed = false;
                if self.dirty && !self.done {
                    self.send_summary(ctx);
                }
            }
            TIMER_MONITOR => {
                self.monitor_armed = false;
                if !self.done {
                    self.monitor(ctx);
                    self.arm_monitor(ctx);
                }
            }
            TIMER_LINGER => ctx.exit(),
            _ => {}
        }
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, body: Body) {
        match body {
            Body::InputAction { amount } if self.is_leaf() => {
                self.inputs += amount;
                ctx.count("input_actions", 1);
                self.mark_dirty(ctx);
                self.push_link_total(ctx);
            }
            Body::LinkTo { node } if self.is_leaf() => {
                self.link_to = Some(node);
                self.push_link_total(ctx);
            }
            Body::KidSummary(s) => self.on_kid_summary(ctx, from, s),
            Body::AddLeaf(add) => {
                if let Some(k) = self.kids.get_mut(&from) {
                    // Bounced: that kid is full until it says otherwise.
                    k.extra = u64::MAX / 2;
                }
                self.adds.push_back(add);
                self.route_adds(ctx);
            }
            Body::Leave if self.is_leaf() && !self.leaving => {
                self.leaving = true;
                self.say_goodbye(ctx);
            }
            Body::Goodbye(s) => self.on_goodbye(ctx, from, s),
            Body::Released if Some(from) == self.parent && self.leaving => {
                self.done = true;
                self.maybe_stop(ctx);
            }
            Body::SplitTo { .. } | Body::MergeInto { .. } | Body::GiveKidsTo { .. } => {
                self.deferred.push_back(body);
                self.run_deferred(ctx);
            }
            Body::Adopt(a) => self.on_adopt(ctx, from, a),
            Body::NewParent { parent, moves } => self.on_new_parent(ctx, parent, moves),
            Body::Cancelled => {}
            other => {
                ctx.count("unexpected_messages", 1);
                tracing::debug!(node = %ctx.me(), "unexpected {other:?} from {from}");
            }
        }
    }

    fn on_kid_summary(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, s: Summary) {
        let Some(kid) = self.kids.get_mut(&from) else {
            // A kid on its way here (its adoption has not arrived yet), or
            // one that moved on; the version keeps only the newest.
            let newer = self
                .early
                .get(&from)
                .is_none_or(|(e, _)| e.version < s.version);
            if newer {
                self.early.insert(from, (s, false));
            }
            return;
        };
        if kid.reported && s.version <= kid.summary.version {
            return;
        }
        // The parent keeps the interval it gave; a new kid's is its own.
        let iv = if kid.summary.interval.is_empty() {
            s.interval
        } else {
            kid.summary.interval
        };
        let reported = s.interval;
        kid.summary = Summary { interval: iv, ..s };
        kid.reported = true;
        kid.extra = 0;
        self.settle_op(ctx, from, reported);
        self.mark_dirty(ctx);
        self.route_adds(ctx);
    }

    fn on_goodbye(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, s: Summary) {
        if let Some(kid) = self.kids.remove(&from) {
            let _ = kid;
            self.retired += s.total;
            self.link.send(ctx, from, Body::Released);
            ctx.count("leaves_removed", 1);
            self.mark_dirty(ctx);
            self.route_adds(ctx);
            self.assert_valid();
        } else if self.successor.is_none() {
            // The leaf moved here and its adoption is still on its way.
            self.early.insert(from, (s, true));
        }
        // Merged away: the leaf hears of its new parent and says it there.
    }

    fn say_goodbye(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if let Some(p) = self.parent {
            self.version += 1;
            let s = self.summary();
            self.link.send(ctx, p, Body::Goodbye(s));
        }
    }

    fn on_new_parent(&mut self, ctx: &mut Ctx<'_, DsMsg>, parent: NodeId, moves: u32) {
        if moves <= self.moves {
            return; // an older move, overtaken
        }
        let old = self.parent.replace(parent);
        self.moves = moves;
        if let Some(old) = old {
            // Summaries and goodbyes are sent afresh; a bounced add goes on.
            for body in self.link.forget(old) {
                if let Body::AddLeaf(_) = body {
                    self.link.send(ctx, parent, body);
                }
            }
        }
        if self.leaving {
            self.say_goodbye(ctx);
        } else {
            self.send_summary(ctx);
        }
    }

    // ----- reporting -----

    pub(super) fn mark_dirty(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        self.dirty = true;
        if !self.summary_armed {
            self.summary_armed = true;
            ctx.set_timer(Duration::from_millis(self.limits.summary_ms), TIMER_SUMMARY);
        }
    }

    /// Reports now: to the parent, or from the root to the outputs.
    pub(super) fn send_summary(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        self.dirty = false;
        if self.leaving || self.done || !self.started {
            return;
        }
        self.version += 1;
        match self.parent {
            Some(p) => {
                let s = self.summary();
                self.link.send(ctx, p, Body::KidSummary(s));
            }
            None => {
                let total = self.total();
                if self.last_output != Some(total) {
                    self.last_output = Some(total);
                    for o in self.outputs.clone() {
                        self.link.send(ctx, o, Body::OutputAction { total });
                    }
                }
            }
        }
    }

    pub(super) fn link_config(&self) -> LinkConfig {
        self.link.config()
    }

    /// A node that is done stops once everything it sent was acknowledged,
    /// after lingering to acknowledge what is sent again.
    pub(super) fn maybe_stop(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if self.done && !self.lingering && self.link.drained() {
            self.lingering = true;
            ctx.set_timer(Duration::from_millis(self.limits.linger_ms), TIMER_LINGER);
        }
    }
}

pub(super) fn new_kid(height: u32, interval: Interval) -> Kid {
    Kid {
        summary: Summary {
            version: 0,
            moves: 0,
            height,
            interval,
            total: 0,
            size: if height == 0 { 1 } else { 0 },
            n_kids: 0,
        },
        reported: false,
        extra: 0,
    }
}

/// Spawns a data node on the least loaded machine.
pub(super) fn spawn_data(ctx: &mut Ctx<'_, DsMsg>, cfg: &DataConfig) -> Option<NodeId> {
    let config = serde_json::to_value(cfg).expect("a data config is plain data");
    ctx.spawn("data", config, Placement::LeastLoaded)
}
