//! Between groups: the federated push to eventual replicas and the floated
//! leaders' gossip of committed versions.

use super::{Raft, Role, slot};
use crate::node::Ctx;
use crate::systems::consistency::config::{Integration, ReadPolicy};
use crate::systems::consistency::peers::pick;
use crate::systems::consistency::{Body, Common, Msg, Rec, Version};

impl Raft {
    /// Every anti-entropy tick. Federated: push my latest versions to local
    /// eventual replicas. Floated: the leader sends newly committed
    /// versions to one strong replica of every other location.
    pub fn anti_entropy(&mut self, c: &Common, ctx: &mut Ctx<'_, Msg>) {
        match c.cfg.integration {
            Integration::Federated => {
                let objects = self.log_latest.len().max(c.store.len()) as u32;
                let entries: Vec<Version> = (0..objects)
                    .filter_map(|o| self.current(c, o, c.cfg.read_policy))
                    .collect();
                for _ in 0..c.cfg.num_neighbors {
                    if let Some(to) = pick(ctx.rng(), &c.peers.eventual_local) {
                        c.send(ctx, to, Body::Gossip(entries.clone()));
                    }
                }
            }
            Integration::Floated if self.role == Role::Leader => {
                if self.commit == self.gossiped {
                    return;
                }
                let mut fresh: Vec<Version> = Vec::new();
                for e in &self.log[self.gossiped as usize..self.commit as usize] {
                    match fresh
                        .iter_mut()
                        .find(|v| v.key.object == e.version.key.object)
                    {
                        Some(v) => *v = e.version,
                        None => fresh.push(e.version),
                    }
                }
                self.gossiped = self.commit;
                for group in &c.peers.remote_groups {
                    if let Some(to) = pick(ctx.rng(), group) {
                        c.send(ctx, to, Body::Gossip(fresh.clone()));
                    }
                }
            }
            _ => {}
        }
    }

    /// Versions from another replica. Floated: newer ones enter my group.
    /// Federated: newer ones that extend my line enter it, ones that would
    /// fork it are refused, and I answer with what I have that is newer.
    pub(super) fn on_gossip(
        &mut self,
        c: &mut Common,
        ctx: &mut Ctx<'_, Msg>,
        from: u32,
        entries: Vec<Version>,
        reply: bool,
    ) {
        let mut newer = Vec::new();
        for e in entries {
            let latest = self.current(c, e.key.object, ReadPolicy::Latest);
            let cur = c.forte.reconcile(latest, &e);
            if cur != latest {
                // CloudScope puts the raised version into the cache.
                c.set_store(cur.expect("reconcile keeps a version"));
            }
            match cur {
                Some(mine) if mine.key == e.key => {}
                Some(mine) if mine.newer_than(&e) => newer.push(mine),
                Some(mine)
                    if c.cfg.integration == Integration::Federated
                        && e.parent != Some(mine.key) =>
                {
                    if self.refused.insert(e.key) {
                        ctx.record(&Rec::Unforked(e.key));
                    }
                    newer.push(mine);
                }
                _ => {
                    c.forte.hold(&e);
                    self.offer(c, ctx, e);
                }
            }
        }
        if reply && c.cfg.integration == Integration::Federated {
            c.send(ctx, from, Body::GossipResponse(newer));
        }
    }

    /// Federated with `forte_on_commit`: the leader raises the forte of
    /// the versions it just committed (entries `from + 1 ..= to`).
    pub(super) fn raise_committed(&mut self, c: &mut Common, from: u64, to: u64) {
        for i in from..to {
            let v = &mut self.log[i as usize].version;
            c.forte.raise(v);
            let v = *v;
            for s in [
                slot(&mut self.log_latest, v.key.object),
                slot(&mut self.committed_latest, v.key.object),
            ] {
                if s.is_some_and(|x| x.key == v.key) {
                    *s = Some(v);
                }
            }
        }
    }
}
