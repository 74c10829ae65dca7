//! Applying committed slots to the store, and compacting the log behind
//! a snapshot of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Server;
use crate::node::Ctx;
use crate::systems::kv::log;
use crate::systems::kv::msg::{Entry, KvMsg, LogEntry, Outcome, Snapshot};
use crate::systems::kv::state::Applied;

impl Server {
    /// Applies committed slots in order; the master answers their clients.
    pub(super) fn apply(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        while self.applied < self.commit {
            let i = self.applied + 1;
            let Some(entry) = self.log.get(&i).cloned() else {
                break;
            };
            if let Entry::Batch(reqs) = &entry.entry {
                for req in reqs {
                    let result = self.store.apply(req);
                    self.queued.remove(&(req.client, req.id));
                    if self.is_master()
                        && let Applied::Reply(r) = result
                    {
                        self.reply(ctx, req, Outcome::Done(r));
                    }
                }
            }
            self.applied = i;
            self.fetching.remove(&i);
            self.confirmed.remove(&i);
        }
        if self.applied - self.snapshot.as_ref().map_or(0, |s| s.index) >= self.cfg.snapshot_every {
            self.compact(ctx);
        }
    }

    /// Snapshots the applied state and truncates the log behind it.
    pub(super) fn compact(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let snapshot = Snapshot {
            index: self.applied,
            store: self.store.clone(),
        };
        let rest = self.log.split_off(&(self.applied + 1));
        self.log = rest;
        let plain: BTreeMap<u64, LogEntry> =
            self.log.iter().map(|(i, e)| (*i, (**e).clone())).collect();
        // A failed write stops the server (fail-stop).
        let _ = log::compact(ctx.storage(), &snapshot, &plain);
        ctx.count("snapshots", 1);
        self.snapshot = Some(Arc::new(snapshot));
    }
}
