//! View change: a server that owns the next view collects the logs of a
//! recovery quorum, keeps per slot the committed entry, else the highest
//! view's, else a no-op, and prepares them again as master.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Server, Status, Vote};
use crate::node::{Ctx, NodeId};
use crate::node_log;
use crate::systems::kv::log;
use crate::systems::kv::msg::{Entry, KvMsg, LogEntry};

impl Server {
    /// Handles a message's view: false if it is stale (and says so to its
    /// sender); a newer view is adopted.
    pub(super) fn check_view(&mut self, ctx: &mut Ctx<'_, KvMsg>, view: u64, from: NodeId) -> bool {
        if view < self.view {
            ctx.send(from, KvMsg::Nack { view: self.view });
            return false;
        }
        if view > self.view {
            self.adopt_view(ctx, view);
        }
        true
    }

    pub(super) fn adopt_view(&mut self, ctx: &mut Ctx<'_, KvMsg>, view: u64) {
        self.view = view;
        // A failed write stops the server (fail-stop) before it acts in
        // the new view.
        let _ = log::save_view(ctx.storage(), view);
        // Votes belong to the view change this ends; recovery goes on.
        if !matches!(self.status, Status::Recovering { .. }) {
            self.status = Status::Normal;
        }
        self.slots.clear();
        self.reached.clear();
        self.pending.clear();
        self.queued.clear();
        self.confirmed.clear();
        self.last_heard = ctx.now();
    }

    pub(super) fn start_view_change(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let n = self.n() as u64;
        let mut v = self.view + 1;
        while (v % n) as usize != self.me {
            v += 1;
        }
        self.adopt_view(ctx, v);
        let own = self.vote_from(self.applied);
        self.status = Status::ViewChange {
            votes: BTreeMap::from([(self.me, own)]),
            started: ctx.now(),
        };
        node_log!(info, ctx, view = v, "starting a view change");
        ctx.count("view_changes", 1);
        let msg = KvMsg::StartView {
            view: v,
            from: self.applied,
        };
        self.broadcast(ctx, msg);
        self.check_votes(ctx);
    }

    pub(super) fn vote_from(&self, from: u64) -> Vote {
        let start = from.max(self.snapshot.as_ref().map_or(0, |s| s.index)) + 1;
        Vote {
            commit: self.commit,
            last: self.last,
            entries: self
                .log
                .range(start..)
                .map(|(i, e)| (*i, (**e).clone()))
                .collect(),
            snapshot: self.snapshot.clone().filter(|s| s.index > from),
        }
    }

    pub(super) fn on_start_view(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        from: NodeId,
        view: u64,
        from_index: u64,
    ) {
        if matches!(self.status, Status::Recovering { .. }) && view >= self.view {
            return; // no vote until caught up
        }
        if !self.check_view(ctx, view, from) || self.master_of(view) == self.me {
            return;
        }
        self.last_heard = ctx.now();
        // Voting for this candidate ends our own round of asking.
        if matches!(self.status, Status::PreVote { .. }) {
            self.status = Status::Normal;
        }
        let v = self.vote_from(from_index);
        let msg = KvMsg::ViewState {
            view,
            commit: v.commit,
            last: v.last,
            entries: v.entries,
            snapshot: v.snapshot,
        };
        ctx.send(from, msg);
    }

    pub(super) fn check_votes(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let quorum = self.cfg.recovery_quorum.size(self.n());
        let votes = match &mut self.status {
            Status::ViewChange { votes, .. } if votes.len() >= quorum => std::mem::take(votes),
            _ => return,
        };
        if let Some(s) = votes
            .values()
            .filter_map(|v| v.snapshot.clone())
            .max_by_key(|s| s.index)
        {
            self.install(ctx, s);
        }
        let committed = votes
            .values()
            .map(|v| v.commit)
            .max()
            .unwrap_or(0)
            .max(self.commit);
        let last = votes
            .values()
            .map(|v| v.last)
            .max()
            .unwrap_or(0)
            .max(self.last);
        // Per slot: a committed entry, else the highest view's, else a no-op.
        let mut chosen: BTreeMap<u64, (bool, LogEntry)> = BTreeMap::new();
        for v in votes.values() {
            for (i, e) in &v.entries {
                let is_committed = *i <= v.commit;
                let better = match chosen.get(i) {
                    None => true,
                    Some((c, old)) => !c && (is_committed || e.view > old.view),
                };
                if better {
                    chosen.insert(*i, (is_committed, e.clone()));
                }
            }
        }
        let view = self.view;
        for i in self.applied + 1..=last {
            let entry = match chosen.remove(&i) {
                Some((_, e)) if i <= committed => e,
                Some((_, e)) => LogEntry {
                    view,
                    entry: e.entry,
                },
                None => LogEntry {
                    view,
                    entry: Entry::Noop,
                },
            };
            self.accept(ctx, i, Arc::new(entry));
        }
        self.last = last;
        self.commit = committed.max(self.applied);
        self.status = Status::Normal;
        self.last_heard = ctx.now();
        node_log!(info, ctx, view, commit = self.commit, last, "now master");
        self.apply(ctx);
        let msg = KvMsg::Commit {
            view,
            commit: self.commit,
        };
        self.broadcast(ctx, msg);
        for i in self.commit + 1..=self.last {
            if let Some(e) = self.log.get(&i).cloned() {
                self.replicate(ctx, i, e);
            }
        }
    }

    /// A server's vote for the view this one is collecting.
    pub(super) fn on_view_state(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: usize, vote: Vote) {
        if let Status::ViewChange { votes, .. } = &mut self.status {
            votes.insert(from, vote);
            self.check_votes(ctx);
        }
    }
}
