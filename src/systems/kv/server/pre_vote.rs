//! Pre-vote, as in Raft: before a view change, a server whose master went
//! silent, or that has just restarted and does not know the current view,
//! asks the others whether they still hear a master. It starts a view
//! change only once a recovery quorum, itself included, has heard none for
//! an election timeout. A server that hears its master refuses, and one in
//! a newer view answers with that view (Nack): a rejoining server learns
//! the current view and never unseats a healthy master.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Server, Status, ms};
use crate::node::{Ctx, NodeId};
use crate::systems::kv::msg::KvMsg;

impl Server {
    /// Starts a round: asks everyone, and counts itself.
    pub(super) fn start_pre_vote(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        self.status = Status::PreVote {
            grants: BTreeSet::from([self.me]),
            started: ctx.now(),
        };
        ctx.count("pre_votes", 1);
        self.broadcast(ctx, KvMsg::PreVote { view: self.view });
        self.check_grants(ctx);
    }

    /// On a tick: asks again those that have not agreed. A round without a
    /// quorum after an election timeout starts over, since agreements go
    /// stale (the one who gave it may hear a master by now).
    pub(super) fn retry_pre_vote(&mut self, ctx: &mut Ctx<'_, KvMsg>, now: Duration) {
        let Status::PreVote { grants, started } = &self.status else {
            return;
        };
        if now > *started + self.election_timeout {
            return self.start_pre_vote(ctx);
        }
        let msg = KvMsg::PreVote { view: self.view };
        for (i, s) in self.servers.iter().enumerate() {
            if !grants.contains(&i) {
                ctx.send(*s, msg.clone());
            }
        }
    }

    pub(super) fn on_pre_vote(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, view: u64) {
        if view < self.view {
            // Behind: this is how a rejoining server learns the view.
            ctx.send(from, KvMsg::Nack { view: self.view });
            return;
        }
        let Some(i) = self.index_of(from) else {
            return;
        };
        let silent = ctx.now() >= self.last_heard + ms(self.cfg.election_timeout_ms);
        // The master of our view asking means it restarted and lost its
        // master's state: there is no master to keep.
        let master_asks = view == self.view && i == self.master_of(self.view);
        // A recovering server does not vote, so it does not agree either.
        let may_vote = !self.is_master() && !matches!(self.status, Status::Recovering { .. });
        if may_vote && (silent || master_asks) {
            ctx.send(from, KvMsg::PreVoteOk { view });
        }
    }

    pub(super) fn on_pre_vote_ok(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: usize, view: u64) {
        if view != self.view {
            return;
        }
        if let Status::PreVote { grants, .. } = &mut self.status {
            grants.insert(from);
            self.check_grants(ctx);
        }
    }

    fn check_grants(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let quorum = self.cfg.recovery_quorum.size(self.n());
        if matches!(&self.status, Status::PreVote { grants, .. } if grants.len() >= quorum) {
            self.start_view_change(ctx);
        }
    }

    /// A message from the master of our view: it is alive, so any round of
    /// asking ends.
    pub(super) fn heard_master(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        self.last_heard = ctx.now();
        if matches!(self.status, Status::PreVote { .. }) && self.master_of(self.view) != self.me {
            self.status = Status::Normal;
        }
    }
}
