//! Handing kids from one node to another while data flows: the giver sends
//! the taker an adoption (its kids as it last knew them, and the totals of
//! leaves that left), then tells each kid its new parent. Kids report
//! their cumulative totals to the new parent; the versions of their
//! summaries keep the newest whichever way they arrive.

use super::data::{DataNode, Kid, Op};
use super::interval::Interval;
use super::msg::{Adoption, Body, DsMsg, KidSnapshot};
use crate::node::{Ctx, NodeId};

impl DataNode {
    /// Runs the parent's commands that waited for this node's own change.
    pub(super) fn run_deferred(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        while self.op.is_none() && self.successor.is_none() {
            let Some(cmd) = self.deferred.pop_front() else {
                return;
            };
            match cmd {
                Body::SplitTo { new } => self.split_to(ctx, new),
                Body::MergeInto { into: to } | Body::GiveKidsTo { to } => self.give_all(ctx, to),
                _ => {}
            }
        }
    }

    /// Hands the right half of this node's kids (by key) to `new`.
    fn split_to(&mut self, ctx: &mut Ctx<'_, DsMsg>, new: NodeId) {
        let iv = self.interval.unwrap_or_default();
        let mut order: Vec<NodeId> = self.kids.keys().copied().collect();
        order.sort_by_key(|id| self.kids[id].summary.interval.start);
        let (mid, right) = if order.len() >= 2 {
            let right = order.split_off(order.len() / 2);
            (self.kids[&right[0]].summary.interval.start, right)
        } else if self.height == 1 && iv.stop - iv.start >= 2 {
            // Too few leaves to halve (some left meanwhile): halve the keys.
            let mid = iv.start + (iv.stop - iv.start) / 2;
            order.retain(|id| self.kids[id].summary.interval.start >= mid);
            (mid, order)
        } else {
            // Nothing to hand over: the new node reports an empty interval
            // and its parent merges it back at once.
            (iv.stop, Vec::new())
        };
        self.hand_kids(ctx, new, Interval::new(mid, iv.stop), right, 0);
        self.interval = Some(Interval::new(iv.start, mid));
        self.mergeable = None;
        ctx.count("split_halves_given", 1);
        self.send_summary(ctx);
        self.assert_valid();
    }

    /// Hands every kid to `to` and leaves the tree (a merge, or a proxy
    /// absorbed by the root).
    fn give_all(&mut self, ctx: &mut Ctx<'_, DsMsg>, to: NodeId) {
        let iv = self.interval.unwrap_or_default();
        let all: Vec<NodeId> = self.kids.keys().copied().collect();
        let retired = std::mem::take(&mut self.retired);
        self.hand_kids(ctx, to, iv, all, retired);
        self.successor = Some(to);
        self.done = true;
        self.route_adds(ctx);
        self.maybe_stop(ctx);
    }

    /// Sends `to` an adoption of `ids` (and `retired`) over `interval`,
    /// then tells each kid.
    pub(super) fn hand_kids(
        &mut self,
        ctx: &mut Ctx<'_, DsMsg>,
        to: NodeId,
        interval: Interval,
        ids: Vec<NodeId>,
        retired: i64,
    ) {
        let mut kids = Vec::with_capacity(ids.len());
        for id in &ids {
            let k = self.kids.remove(id).expect("handing over a kid");
            let mut summary = k.summary;
            summary.moves += 1;
            kids.push(KidSnapshot {
                id: *id,
                summary,
                reported: k.reported,
            });
        }
        let moves: Vec<(NodeId, u32)> = kids.iter().map(|k| (k.id, k.summary.moves)).collect();
        self.link.send(
            ctx,
            to,
            Body::Adopt(Adoption {
                interval,
                height: self.height,
                kids,
                retired,
            }),
        );
        for (id, moves) in moves {
            self.link
                .send(ctx, id, Body::NewParent { parent: to, moves });
        }
    }

    /// Takes kids handed over by `from`: a sibling's half (split), a
    /// merged sibling's all, the root's all (new level), or this root's
    /// only kid's all (the proxy absorbed).
    pub(super) fn on_adopt(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, a: Adoption) {
        if self.kids.remove(&from).is_some() {
            if self.op == Some(Op::Consume { proxy: from }) {
                self.op = None;
            }
            ctx.count("kids_absorbed", 1);
        }
        if let Some(next) = self.successor {
            // Merged away meanwhile: pass them on whole.
            self.link.send(ctx, next, Body::Adopt(a));
            return;
        }
        self.interval = Some(match self.interval {
            Some(iv) => iv.join(&a.interval),
            None => a.interval,
        });
        self.height = a.height;
        self.started = true;
        self.retired += a.retired;
        for snap in a.kids {
            let mut kid = Kid {
                summary: snap.summary,
                reported: snap.reported,
                extra: 0,
            };
            if let Some((early, gone)) = self.early.remove(&snap.id)
                && early.version > kid.summary.version
            {
                if gone {
                    self.retired += early.total;
                    self.link.send(ctx, snap.id, Body::Released);
                    continue;
                }
                let iv = kid.summary.interval;
                kid.summary = early;
                kid.summary.interval = iv;
                kid.reported = true;
            }
            self.kids.insert(snap.id, kid);
        }
        self.send_summary(ctx);
        self.arm_monitor(ctx);
        self.route_adds(ctx);
        self.run_deferred(ctx);
        self.assert_valid();
    }
}
