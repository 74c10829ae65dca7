//! How a manager grows and shrinks the tree under it (DistZero's
//! monitor), checked every `monitor_ms` on nodes of height 2 and up once
//! every kid has reported and no change is under way:
//! - spare leaf capacity under the node at or below the trigger: split the
//!   kid with the most kids; at the root with a full set of kids, add a
//!   level instead (a proxy takes the root's kids, then is split);
//! - two adjacent kids with few kids for `merge_ms`: merge them;
//! - a root above height 2 with one kid for `absorb_ms`: absorb it.

use std::time::Duration;

use super::data::{DataConfig, DataNode, Op, TIMER_MONITOR, new_kid, spawn_data};
use super::interval::Interval;
use super::msg::{Body, DsMsg};
use crate::node::{Ctx, NodeId};

impl DataNode {
    pub(super) fn arm_monitor(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if self.height >= 2 && !self.monitor_armed && self.successor.is_none() {
            self.monitor_armed = true;
            ctx.set_timer(Duration::from_millis(self.limits.monitor_ms), TIMER_MONITOR);
        }
    }

    /// Spare leaf capacity under this node's kids.
    fn spare(&self) -> u64 {
        let cap = self.limits.kid_capacity(self.height);
        self.kids
            .values()
            // A kid that sent a leaf back counts as full until it reports.
            .map(|k| cap.saturating_sub(k.summary.size.saturating_add(k.extra)))
            .sum()
    }

    pub(super) fn monitor(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if self.height < 2
            || self.interval.is_none()
            || self.op.is_some()
            || self.kids.values().any(|k| !k.reported)
        {
            return;
        }
        let now = ctx.now();
        if self.spare() <= self.limits.trigger {
            if self.kids.len() < self.limits.kids_limit as usize {
                if self.split_fullest_kid(ctx) {
                    return;
                }
            } else if self.is_root() {
                self.bump_height(ctx);
                return;
            }
        }
        if self.is_root() && self.height > 2 && self.kids.len() == 1 {
            let since = *self.one_kid_since.get_or_insert(now);
            if now.saturating_sub(since) >= Duration::from_millis(self.limits.absorb_ms) {
                let proxy = *self.kids.keys().next().expect("one kid");
                self.link
                    .send(ctx, proxy, Body::GiveKidsTo { to: ctx.me() });
                self.op = Some(Op::Consume { proxy });
                self.one_kid_since = None;
                ctx.count("proxies_absorbed", 1);
            }
            return;
        }
        self.one_kid_since = None;
        self.check_merges(ctx, now);
    }

    /// Kids in key order.
    pub fn kids_in_key_order(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.kids.keys().copied().collect();
        ids.sort_by_key(|id| {
            let iv = self.kids[id].summary.interval;
            (iv.start, iv.stop)
        });
        ids
    }

    /// Splits the kid with the most kids (ties: the widest); false if
    /// no kid has two.
    fn split_fullest_kid(&mut self, ctx: &mut Ctx<'_, DsMsg>) -> bool {
        let Some(old) = self
            .kids_in_key_order()
            .into_iter()
            .filter(|id| self.kids[id].summary.n_kids > 1)
            // Ties go to the widest interval: always splitting the same end
            // would halve its keys away.
            .max_by_key(|id| {
                let s = &self.kids[id].summary;
                (s.n_kids, s.interval.stop - s.interval.start)
            })
        else {
            return false;
        };
        let cfg = DataConfig {
            height: self.height - 1,
            parent: Some(ctx.me()),
            interval: None,
            outputs: Vec::new(),
            limits: self.limits,
            link: self.link_config(),
            volatile: !self.saved.on,
        };
        let Some(new) = spawn_data(ctx, &cfg) else {
            return false;
        };
        let stop = self.kids[&old].summary.interval.stop;
        self.kids
            .insert(new, new_kid(self.height - 1, Interval::new(stop, stop)));
        self.link.send(ctx, old, Body::SplitTo { new });
        self.op = Some(Op::Split { old, new });
        self.mergeable = None;
        ctx.count("splits", 1);
        true
    }

    /// The root is full: a proxy of the root's height takes all its kids
    /// and the root grows a level above it.
    fn bump_height(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let iv = self.interval.expect("a root has its interval");
        let cfg = DataConfig {
            height: self.height,
            parent: Some(ctx.me()),
            interval: None,
            outputs: Vec::new(),
            limits: self.limits,
            link: self.link_config(),
            volatile: !self.saved.on,
        };
        let Some(proxy) = spawn_data(ctx, &cfg) else {
            return;
        };
        let (total, size) = (self.total() - self.retired, self.size());
        let n_kids = self.kids.len() as u32;
        self.hand_kids(ctx, proxy, iv, self.kids_in_key_order(), 0);
        let mut kid = new_kid(self.height, iv);
        // The proxy holds what the kids held until it reports.
        kid.summary.total = total;
        kid.summary.size = size;
        kid.summary.n_kids = n_kids;
        self.kids.insert(proxy, kid);
        self.height += 1;
        self.op = Some(Op::Bump { proxy });
        self.mergeable = None;
        ctx.count("height_bumps", 1);
        self.assert_valid();
    }

    /// Watches the adjacent pair of under-used kids with the fewest kids;
    /// once it stayed so for `merge_ms`, the left one merges into the right.
    fn check_merges(&mut self, ctx: &mut Ctx<'_, DsMsg>, now: Duration) {
        let most = self.limits.mergeable_kids();
        let order = self.kids_in_key_order();
        let cap = self.limits.kid_capacity(self.height);
        // A merge must not bring the node down to its growth trigger.
        if self.spare() < self.limits.trigger + cap + 1 {
            self.mergeable = None;
            return;
        }
        let best = order
            .windows(2)
            .filter(|w| {
                let (ka, kb) = (&self.kids[&w[0]], &self.kids[&w[1]]);
                let (a, b) = (&ka.summary, &kb.summary);
                // No leaf on its way to either: they hold what they said.
                ka.extra == 0
                    && kb.extra == 0
                    && a.n_kids <= most
                    && b.n_kids <= most
                    && a.n_kids + b.n_kids <= self.limits.kids_limit
            })
            .min_by_key(|w| self.kids[&w[0]].summary.n_kids + self.kids[&w[1]].summary.n_kids)
            .map(|w| (w[0], w[1]));
        let Some(pair) = best.filter(|_| self.adds.is_empty()) else {
            self.mergeable = None;
            return;
        };
        match self.mergeable {
            Some((p, since)) if p == pair => {
                if now.saturating_sub(since) >= Duration::from_millis(self.limits.merge_ms) {
                    self.merge(ctx, pair.0, pair.1);
                }
            }
            _ => self.mergeable = Some((pair, now)),
        }
    }

    fn merge(&mut self, ctx: &mut Ctx<'_, DsMsg>, left: NodeId, right: NodeId) {
        let gone = self.kids.remove(&left).expect("a kid");
        let start = gone.summary.interval.start;
        let r = self.kids.get_mut(&right).expect("a kid");
        r.summary.interval.start = start;
        // The right kid holds what the left held until it reports.
        r.summary.total += gone.summary.total;
        r.summary.size += gone.summary.size;
        self.link.send(ctx, left, Body::MergeInto { into: right });
        self.op = Some(Op::Merge { into: right, start });
        self.mergeable = None;
        ctx.count("merges", 1);
        self.assert_valid();
    }

    /// A kid reported: the change under way may be complete.
    pub(super) fn settle_op(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, reported: Interval) {
        let Some(op) = self.op else { return };
        let done = match op {
            Op::Split { old, new } if new == from => {
                if reported.is_empty() {
                    // The old kid had nothing to hand over: fold the new one back.
                    if let Some(start) = self.kids.get(&old).map(|o| o.summary.interval.start) {
                        self.kids.remove(&new);
                        self.link.send(ctx, new, Body::MergeInto { into: old });
                        self.op = Some(Op::Merge { into: old, start });
                        ctx.count("empty_splits", 1);
                        return;
                    }
                } else if let Some(o) = self.kids.get_mut(&old) {
                    o.summary.interval.stop = reported.start;
                }
                true
            }
            Op::Bump { proxy } => proxy == from,
            Op::Merge { into, start } => into == from && reported.start == start,
            _ => false,
        };
        if done {
            self.op = None;
            self.assert_valid();
            self.run_deferred(ctx);
        }
    }
}
