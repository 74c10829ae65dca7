//! Replication: the master (or a slot's coordinator) prepares a slot on
//! the others, collects acknowledgements from durable copies, and commits
//! in order once a replication quorum holds each slot.

use std::sync::Arc;
use std::time::Duration;

use super::{Server, Slot, Status, ms};
use crate::node::{Ctx, NodeId};
use crate::node_log;
use crate::systems::kv::log;
use crate::systems::kv::msg::{KvMsg, LogEntry};

impl Server {
    /// Starts replicating one slot from the master: directly, or through
    pub(super) fn replicate(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64, entry: Arc<LogEntry>) {
        let now = ctx.now();
        let coordinator = if self.cfg.delegate {
            ((self.view + index) % self.n() as u64) as usize
        } else {
            self.me
        };
        let delegated = coordinator != self.me;
        self.slots.insert(
            index,
            Slot {
                acks: vec![self.me],
                sent_at: now,
                delegated,
            },
        );
        if delegated {
            let view = self.view;
            ctx.send(
                self.servers[coordinator],
                KvMsg::Delegate { view, index, entry },
            );
        } else {
            let msg = KvMsg::Prepare {
                view: self.view,
                index,
                entry,
                commit: self.commit,
            };
            self.broadcast(ctx, msg);
        }
        self.check_slot(ctx, index);
    }

    /// Stores a slot durably (synced when persistence is fsync).
    pub(super) fn accept(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64, entry: Arc<LogEntry>) {
        if index <= self.applied {
            return;
        }
        // A view has one entry per slot: a repeated prepare is already stored.
        if self
            .log
            .get(&index)
            .is_some_and(|e| e.view == entry.view && **e == *entry)
        {
            return;
        }
        // A slot at or below commit may come again in a later view, but
        // always with the command that committed.
        if index <= self.commit
            && let Some(old) = self.log.get(&index)
        {
            assert!(
                old.entry == entry.entry,
                "server {}: committed slot {index} replaced",
                self.me
            );
        }
        // A failed append stops the server (fail-stop): the node API drops
        // what this handler sent, so no PrepareOk leaves for it.
        let _ = log::append(ctx.storage(), index, &entry, self.sync());
        self.log.insert(index, entry);
        self.last = self.last.max(index);
    }

    pub(super) fn on_prepare(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        from: NodeId,
        index: u64,
        entry: Arc<LogEntry>,
        commit: u64,
    ) {
        if from == self.servers[self.master_of(self.view)] {
            self.heard_master(ctx);
        }
        self.accept(ctx, index, entry);
        ctx.send(
            from,
            KvMsg::PrepareOk {
                view: self.view,
                index,
            },
        );
        self.learn_commit(ctx, commit);
    }

    pub(super) fn on_prepare_ok(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: usize, index: u64) {
        if let Some(slot) = self.slots.get_mut(&index)
            && !slot.acks.contains(&from)
        {
            slot.acks.push(from);
        }
        self.check_slot(ctx, index);
    }

    pub(super) fn check_slot(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64) {
        let Some(slot) = self.slots.get(&index) else {
            return;
        };
        if slot.acks.len() < self.replication_size() {
            return;
        }
        self.slots.remove(&index);
        if self.master_of(self.view) == self.me {
            self.reached.insert(index);
            self.advance_commit(ctx);
        } else {
            let master = self.servers[self.master_of(self.view)];
            ctx.send(
                master,
                KvMsg::Replicated {
                    view: self.view,
                    index,
                },
            );
        }
    }

    pub(super) fn advance_commit(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let before = self.commit;
        while self.reached.remove(&(self.commit + 1)) {
            self.commit += 1;
        }
        if self.commit > before {
            self.apply(ctx);
            let msg = KvMsg::Commit {
                view: self.view,
                commit: self.commit,
            };
            self.broadcast(ctx, msg);
            self.flush(ctx);
        }
    }

    /// A follower learns the master's commit index and applies what it can:
    /// slots it holds from the current view, or confirmed by a fetch.
    pub(super) fn learn_commit(&mut self, ctx: &mut Ctx<'_, KvMsg>, commit: u64) {
        self.target = self.target.max(commit);
        while self.commit < self.target {
            let i = self.commit + 1;
            let current = self.log.get(&i).is_some_and(|e| e.view == self.view)
                || self.confirmed.contains(&i);
            if !current {
                // Ours may be from an older view than the committed one.
                self.fetch(ctx, i);
                break;
            }
            self.commit = i;
        }
        self.apply(ctx);
        if let Status::Recovering { to: Some(t) } = self.status
            && self.commit >= t
        {
            self.status = Status::Normal;
            node_log!(
                info,
                ctx,
                view = self.view,
                commit = self.commit,
                "recovered"
            );
        }
    }

    /// A coordinator replicates a slot the master handed it.
    pub(super) fn on_delegate(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        view: u64,
        index: u64,
        entry: Arc<LogEntry>,
    ) {
        self.heard_master(ctx);
        self.accept(ctx, index, entry.clone());
        let master = self.master_of(view);
        let now = ctx.now();
        self.slots.insert(
            index,
            Slot {
                acks: vec![self.me, master],
                sent_at: now,
                delegated: false,
            },
        );
        let msg = KvMsg::Prepare {
            view,
            index,
            entry,
            commit: self.commit,
        };
        for (i, s) in self.servers.clone().into_iter().enumerate() {
            if i != self.me && i != master {
                ctx.send(s, msg.clone());
            }
        }
        self.check_slot(ctx, index);
    }

    /// Sends again what has not been acknowledged; takes slots back from
    /// coordinators that went quiet.
    pub(super) fn retry_slots(&mut self, ctx: &mut Ctx<'_, KvMsg>, now: Duration) {
        let patience = ms(self.cfg.heartbeat_ms * 2.0);
        let late: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| now > s.sent_at + patience)
            .map(|(i, _)| *i)
            .collect();
        for index in late {
            let Some(entry) = self.log.get(&index).cloned() else {
                continue;
            };
            let slot = self.slots.get_mut(&index).expect("listed above");
            if slot.delegated {
                ctx.count("coordinator_takeovers", 1);
            }
            slot.delegated = false;
            slot.sent_at = now;
            let acked = slot.acks.clone();
            let msg = KvMsg::Prepare {
                view: self.view,
                index,
                entry,
                commit: self.commit,
            };
            for (i, s) in self.servers.clone().into_iter().enumerate() {
                if !acked.contains(&i) {
                    ctx.send(s, msg.clone());
                }
            }
        }
    }
}
