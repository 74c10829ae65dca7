//! Log replication on the follower side (AppendEntries) and its answer
//! on the leader.

use super::{Raft, Role, slot};
use crate::node::Ctx;
use crate::systems::consistency::{Body, Common, Entry, Msg, Rec};

impl Raft {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        c: &mut Common,
        ctx: &mut Ctx<'_, Msg>,
        from: u32,
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: &[Entry],
        commit: u64,
    ) {
        if term < self.term {
            self.answer_append(c, ctx, from, false, 0);
            return;
        }
        if term > self.term || self.role != Role::Follower {
            self.step_down(c, ctx, term);
            self.role = Role::Follower;
        }
        self.leader = Some(from);
        self.reset_election(c, ctx);
        // Unlike CloudScope, a follower always answers, so a leader whose
        // guess was wrong backs up instead of stalling.
        if prev_index > self.len() || self.term_at(prev_index) != prev_term {
            let index = prev_index.min(self.len() + 1).max(1);
            self.answer_append(c, ctx, from, false, index);
            return;
        }
        let mut truncated = false;
        for (k, e) in entries.iter().enumerate() {
            let index = prev_index + 1 + k as u64;
            if index <= self.len() {
                if self.term_at(index) == e.term {
                    continue;
                }
                self.log.truncate(index as usize - 1);
                truncated = true;
            }
            if e.version.key.writer != c.me {
                ctx.record(&Rec::Holds(e.version.key));
            }
            self.push(*e);
        }
        if truncated {
            self.log_latest.iter_mut().for_each(|v| *v = None);
            for e in &self.log {
                *slot(&mut self.log_latest, e.version.key.object) = Some(e.version);
            }
        }
        let last = prev_index + entries.len() as u64;
        let commit = commit.min(last);
        if commit > self.commit {
            self.commit_to(ctx, commit, false);
        }
        self.answer_append(c, ctx, from, true, last);
    }

    pub(super) fn on_append_response(
        &mut self,
        c: &mut Common,
        ctx: &mut Ctx<'_, Msg>,
        from: u32,
        term: u64,
        success: bool,
        index: u64,
    ) {
        if term > self.term {
            self.step_down(c, ctx, term);
            return;
        }
        if self.role != Role::Leader || term != self.term {
            return;
        }
        let Some(i) = c.peers.quorum_place(from) else {
            return;
        };
        if success {
            self.matched[i] = self.matched[i].max(index);
            self.next[i] = self.matched[i] + 1;
            self.advance_commit(c, ctx);
        } else {
            self.next[i] = index.min(self.next[i].saturating_sub(1)).max(1);
            self.send_append(c, ctx, i);
        }
    }

    /// The follower's answer to an AppendEntries, in its current term.
    fn answer_append(
        &self,
        c: &Common,
        ctx: &mut Ctx<'_, Msg>,
        to: u32,
        success: bool,
        index: u64,
    ) {
        let term = self.term;
        c.send(
            ctx,
            to,
            Body::AeResponse {
                term,
                success,
                index,
            },
        );
    }
}
