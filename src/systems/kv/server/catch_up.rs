//! Catching up: a follower missing committed slots fetches them from the
//! master, or gets a snapshot when far behind.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{FETCH_BATCH, Server, ms};
use crate::node::{Ctx, NodeId};
use crate::systems::kv::log;
use crate::systems::kv::msg::{KvMsg, LogEntry, Snapshot};

impl Server {
    pub(super) fn fetch(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64) {
        let now = ctx.now();
        let retry = ms(self.cfg.heartbeat_ms * 2.0);
        if self.fetching.get(&index).is_some_and(|&t| now < t + retry) {
            return;
        }
        self.fetching.insert(index, now);
        let master = self.servers[self.master_of(self.view)];
        ctx.send(
            master,
            KvMsg::Fetch {
                view: self.view,
                index,
            },
        );
    }

    /// Takes a snapshot of the applied state in place of older slots.
    pub(super) fn install(&mut self, ctx: &mut Ctx<'_, KvMsg>, snapshot: Arc<Snapshot>) {
        if snapshot.index <= self.applied {
            return;
        }
        self.store = snapshot.store.clone();
        self.applied = snapshot.index;
        self.commit = self.commit.max(snapshot.index);
        self.last = self.last.max(snapshot.index);
        self.log = self.log.split_off(&(snapshot.index + 1));
        let plain: BTreeMap<u64, LogEntry> =
            self.log.iter().map(|(i, e)| (*i, (**e).clone())).collect();
        // A failed write stops the server (fail-stop).
        let _ = log::compact(ctx.storage(), &snapshot, &plain);
        self.snapshot = Some(snapshot);
    }

    /// A follower misses committed slots from `index`: it gets up to 64 of
    /// them, or, when far behind, a snapshot of the applied state.
    pub(super) fn on_fetch(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, index: u64) {
        if !self.is_master() || index > self.commit {
            return;
        }
        let view = self.view;
        let far_behind = self.commit - index >= FETCH_BATCH * 4;
        if far_behind || !self.log.contains_key(&index) {
            let fresh = Snapshot {
                index: self.applied,
                store: self.store.clone(),
            };
            ctx.count("snapshots_sent", 1);
            ctx.send(
                from,
                KvMsg::Install {
                    view,
                    snapshot: Arc::new(fresh),
                },
            );
            return;
        }
        let entries: Vec<Arc<LogEntry>> = self
            .log
            .range(index..=self.commit.min(index + FETCH_BATCH - 1))
            .map(|(_, e)| e.clone())
            .collect();
        ctx.send(
            from,
            KvMsg::Committed {
                view,
                index,
                entries,
            },
        );
    }

    /// Committed slots from the master, confirmed with their entries.
    pub(super) fn on_committed(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        index: u64,
        entries: Vec<Arc<LogEntry>>,
    ) {
        let top = index + entries.len() as u64 - 1;
        for (i, entry) in (index..).zip(entries) {
            if i > self.applied {
                self.log.insert(i, entry);
                self.confirmed.insert(i);
                self.fetching.remove(&i);
            }
        }
        self.last = self.last.max(top);
        self.learn_commit(ctx, top);
    }
}
