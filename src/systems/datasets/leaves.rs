//! Adding leaves: a request goes down from the root to the kid with the
//! most room, to a height-1 node that spawns the leaf and tells the user.
//! A node that is full and cannot grow sends it back up; one that will
//! grow keeps it until it has.

use super::data::{DataConfig, DataNode, Op, new_kid, spawn_data};
use super::interval::Interval;
use super::msg::{AddLeaf, Body, DsMsg};
use crate::node::{Ctx, NodeId};

impl DataNode {
    /// Places queued adds: a height-1 node spawns leaves while it has
    /// room; a higher one routes each to the kid with the most room, keeps
    /// it while it can still grow, and sends it up otherwise.
    pub(super) fn route_adds(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if let Some(next) = self.successor {
            for add in std::mem::take(&mut self.adds) {
                self.link.send(ctx, next, Body::AddLeaf(add));
            }
            return;
        }
        let Some(iv) = self.interval else { return };
        if self.height == 0 {
            return;
        }
        while let Some(add) = self.adds.pop_front() {
            if self.height == 1 {
                if self.kids.len() < self.limits.kids_limit as usize && !iv.is_empty() {
                    match self.spawn_leaf(ctx, iv, add) {
                        None => continue,
                        Some(add) => self.adds.push_front(add),
                    }
                    // No free key or id here: the add goes back up.
                    let add = self.adds.pop_front().expect("just pushed");
                    match self.parent {
                        Some(p) => self.link.send(ctx, p, Body::AddLeaf(add)),
                        None => self.adds.push_front(add),
                    }
                    return;
                }
            } else if let Some(kid) = self.roomiest_kid() {
                self.kids.get_mut(&kid).expect("a kid").extra += 1;
                self.link.send(ctx, kid, Body::AddLeaf(add));
                continue;
            } else if self.can_grow() {
                self.adds.push_front(add);
                return;
            }
            match self.parent {
                Some(p) => self.link.send(ctx, p, Body::AddLeaf(add)),
                None => {
                    self.adds.push_front(add);
                    return;
                }
            }
        }
    }

    fn roomiest_kid(&self) -> Option<NodeId> {
        let cap = self.limits.kid_capacity(self.height);
        self.kids
            .iter()
            // A kid taking a merged sibling's kids gets no leaves meanwhile.
            .filter(|(id, _)| !matches!(self.op, Some(Op::Merge { into, .. }) if into == **id))
            .filter(|(_, k)| k.reported && !k.summary.interval.is_empty())
            .map(|(id, k)| {
                (
                    cap.saturating_sub(k.summary.size.saturating_add(k.extra)),
                    *id,
                )
            })
            .filter(|(room, _)| *room > 0)
            .max_by_key(|(room, id)| (*room, std::cmp::Reverse(*id)))
            .map(|(_, id)| id)
    }

    /// Whether this node will make room itself (split a kid, or add a
    /// level at the root).
    fn can_grow(&self) -> bool {
        self.is_root()
            || (self.kids.len() < self.limits.kids_limit as usize
                && self.kids.values().any(|k| k.summary.n_kids > 1))
    }

    /// Spawns a leaf for `add`; gives it back when no key is free.
    fn spawn_leaf(
        &mut self,
        ctx: &mut Ctx<'_, DsMsg>,
        iv: Interval,
        add: AddLeaf,
    ) -> Option<AddLeaf> {
        // Keys are re-drawn on collision (DistZero), a bounded number of times.
        let free = (0..64).map(|_| distzero_key(ctx, iv)).find(|k| {
            !self
                .kids
                .values()
                .any(|kid| kid.summary.interval.start == *k)
        });
        let Some(key) = free else {
            ctx.count("no_free_key", 1);
            return Some(add);
        };
        let cfg = DataConfig {
            height: 0,
            parent: Some(ctx.me()),
            interval: Some(Interval::key(key)),
            outputs: Vec::new(),
            limits: self.limits,
            link: self.link_config(),
            volatile: !self.saved.on,
        };
        let Some(leaf) = spawn_data(ctx, &cfg) else {
            ctx.count("spawn_ids_exhausted", 1);
            return Some(add);
        };
        self.kids.insert(leaf, new_kid(0, Interval::key(key)));
        ctx.count("leaves_added", 1);
        self.link.send(
            ctx,
            add.user,
            Body::LeafAdded {
                name: add.name,
                leaf,
            },
        );
        self.mark_dirty(ctx);
        self.assert_valid();
        None
    }
}

/// A key drawn uniformly in `iv` (DistZero: re-drawn on collision).
fn distzero_key(ctx: &mut Ctx<'_, DsMsg>, iv: Interval) -> u64 {
    use rand::RngExt;
    ctx.rng().random_range(iv.start..iv.stop.max(iv.start + 1))
}
