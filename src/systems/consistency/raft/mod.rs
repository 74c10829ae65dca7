//! Raft replicas: followers forward writes to the leader they learnt of
//! from its messages; reads are local (`latest` or `commit` policy). Also
//! the strong side of the federated integration (refuses versions that
//! fork its line) and the floated one (a group per location whose leaders
//! gossip commits).

use rand::RngExt;

use super::config::{CommitQuorum, Integration, ReadPolicy};
use super::peers::Peers;
use super::{Body, Common, ELECTION, Entry, HEARTBEAT, Msg, Rec, VKey, Version, ms, now_ns};
use crate::node::Ctx;

mod append;
mod gossip;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Follower,
    Candidate,
    Leader,
}

pub(crate) struct Raft {
    term: u64,
    voted_for: Option<u32>,
    role: Role,
    leader: Option<u32>,
    /// Entry i (1-based) is `log[i - 1]`.
    log: Vec<Entry>,
    commit: u64,
    /// The last version of each object in the log, and the last committed.
    log_latest: Vec<Option<Version>>,
    committed_latest: Vec<Option<Version>>,
    votes: usize,
    /// Per member of the group (as in `Peers::quorum`).
    next: Vec<u64>,
    matched: Vec<u64>,
    /// Election: no word from a leader by this time starts one.
    deadline_ns: u64,
    election_armed: bool,
    heartbeat_armed: bool,
    /// Writes sent to the leader: key and start.
    pending: Vec<(VKey, u64)>,
    /// Floated: the commit index whose versions were gossiped.
    gossiped: u64,
    /// Federated: versions this replica refused (recorded once each).
    refused: rustc_hash::FxHashSet<VKey>,
}

fn slot(v: &mut Vec<Option<Version>>, object: u32) -> &mut Option<Version> {
    let i = object as usize;
    if i >= v.len() {
        v.resize(i + 1, None);
    }
    &mut v[i]
}

impl Raft {
    pub fn new(peers: &Peers, objects: usize) -> Raft {
        let n = peers.quorum.len();
        Raft {
            term: 0,
            voted_for: None,
            role: Role::Follower,
            leader: None,
            log: Vec::new(),
            commit: 0,
            log_latest: vec![None; objects],
            committed_latest: vec![None; objects],
            votes: 0,
            next: vec![1; n],
            matched: vec![0; n],
            deadline_ns: 0,
            election_armed: false,
            heartbeat_armed: false,
            pending: Vec::new(),
            gossiped: 0,
            refused: Default::default(),
        }
    }

    pub fn leader(&self) -> Option<u32> {
        self.leader
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "term": self.term,
            "role": format!("{:?}", self.role).to_lowercase(),
            "leader": self.leader,
            "log": self.log.len(),
            "commit": self.commit,
        })
    }

    /// How many objects the log has versions of (room, at least).
    pub(super) fn objects(&self) -> usize {
        self.log_latest.len()
    }

    fn len(&self) -> u64 {
        self.log.len() as u64
    }

    fn last_term(&self) -> u64 {
        self.log.last().map_or(0, |e| e.term)
    }

    fn term_at(&self, index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            self.log[index as usize - 1].term
        }
    }

    pub fn start(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>) {
        self.reset_election(c, ctx);
    }

    /// Moves the election deadline to a fresh random timeout from now; the
    /// one pending timer checks it when it fires (no timer churn per
    /// heartbeat).
    fn reset_election(&mut self, c: &Common, ctx: &mut Ctx<'_, Msg>) {
        let [lo, hi] = c.cfg.election_timeout;
        let timeout = if hi > lo {
            ctx.rng().random_range(lo..=hi)
        } else {
            lo
        };
        self.deadline_ns = now_ns(ctx) + (timeout * 1e6) as u64;
        if !self.election_armed {
            self.election_armed = true;
            ctx.set_timer(ms(timeout), ELECTION);
        }
    }

    pub fn on_timer(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, election: bool) {
        if election {
            self.election_armed = false;
            if self.role == Role::Leader {
                return;
            }
            let now = now_ns(ctx);
            if now < self.deadline_ns {
                self.election_armed = true;
                ctx.set_timer(
                    std::time::Duration::from_nanos(self.deadline_ns - now),
                    ELECTION,
                );
            } else {
                self.start_election(c, ctx);
            }
        } else {
            self.heartbeat_armed = false;
            if self.role == Role::Leader {
                self.broadcast(c, ctx);
                self.arm_heartbeat(c, ctx);
            }
        }
    }

    fn arm_heartbeat(&mut self, c: &Common, ctx: &mut Ctx<'_, Msg>) {
        if !self.heartbeat_armed {
            self.heartbeat_armed = true;
            ctx.set_timer(ms(c.cfg.heartbeat_interval), HEARTBEAT);
        }
    }

    fn majority(&self, c: &Common) -> usize {
        c.peers.quorum.len().div_ceil(2) + 1
    }

    fn start_election(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>) {
        self.term += 1;
        self.role = Role::Candidate;
        self.voted_for = Some(c.me);
        self.votes = 1;
        self.leader = None;
        self.reset_election(c, ctx);
        let (last_index, last_term) = (self.len(), self.last_term());
        for &p in &c.peers.quorum {
            c.send(
                ctx,
                p,
                Body::RequestVote {
                    term: self.term,
                    last_index,
                    last_term,
                },
            );
        }
        if self.votes >= self.majority(c) {
            self.become_leader(c, ctx);
        }
    }

    fn become_leader(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>) {
        self.role = Role::Leader;
        self.leader = Some(c.me);
        let next = self.len() + 1;
        self.next.iter_mut().for_each(|n| *n = next);
        self.matched.iter_mut().for_each(|m| *m = 0);
        self.broadcast(c, ctx);
        self.arm_heartbeat(c, ctx);
        self.advance_commit(c, ctx);
    }

    fn step_down(&mut self, c: &Common, ctx: &mut Ctx<'_, Msg>, term: u64) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if self.role != Role::Follower {
            self.role = Role::Follower;
            self.reset_election(c, ctx);
        }
    }

    fn broadcast(&mut self, c: &Common, ctx: &mut Ctx<'_, Msg>) {
        for i in 0..c.peers.quorum.len() {
            self.send_append(c, ctx, i);
        }
    }

    fn send_append(&self, c: &Common, ctx: &mut Ctx<'_, Msg>, i: usize) {
        let next = self.next[i].clamp(1, self.len() + 1);
        let prev_index = next - 1;
        let prev_term = self.term_at(prev_index);
        let body = if next > self.len() {
            Body::Heartbeat {
                term: self.term,
                prev_index,
                prev_term,
                commit: self.commit,
            }
        } else {
            Body::AppendEntries {
                term: self.term,
                prev_index,
                prev_term,
                entries: self.log[prev_index as usize..].to_vec(),
                commit: self.commit,
            }
        };
        c.send(ctx, c.peers.quorum[i], body);
    }

    fn push(&mut self, e: Entry) {
        *slot(&mut self.log_latest, e.version.key.object) = Some(e.version);
        self.log.push(e);
    }

    /// The version a read returns, and a write builds on.
    pub(super) fn current(&self, c: &Common, object: u32, policy: ReadPolicy) -> Option<Version> {
        match policy {
            ReadPolicy::Commit => self
                .committed_latest
                .get(object as usize)
                .copied()
                .flatten(),
            ReadPolicy::Latest => Common::newest(
                self.log_latest.get(object as usize).copied().flatten(),
                c.latest(object),
            ),
        }
    }

    pub fn read(&self, c: &Common, ctx: &mut Ctx<'_, Msg>, object: u32) {
        let version = self.current(c, object, c.cfg.read_policy).map(|v| v.key);
        ctx.record(&Rec::Read { object, version });
    }

    pub fn write(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, object: u32) {
        let parent = self.current(c, object, ReadPolicy::Latest);
        let mut v = Version::next(object, parent.as_ref(), c.me);
        if self.role == Role::Leader && c.cfg.forte_on_append {
            c.forte.raise(&mut v);
        }
        c.forte.hold(&v);
        ctx.record(&Rec::Write(v));
        ctx.record(&Rec::Holds(v.key));
        let started_ns = now_ns(ctx);
        if self.role == Role::Leader {
            self.push(Entry {
                term: self.term,
                version: v,
            });
            ctx.record(&Rec::WriteDone {
                key: v.key,
                started_ns,
            });
            self.replicate(c, ctx);
            return;
        }
        c.set_store(v);
        match self.leader {
            Some(l) => {
                self.pending.push((v.key, started_ns));
                c.send(ctx, l, Body::RemoteWrite(v));
            }
            None => ctx.record(&Rec::WriteDropped {
                object,
                key: Some(v.key),
                started_ns,
            }),
        }
    }

    /// After an append: send it now, or with the next heartbeat.
    fn replicate(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>) {
        if !c.cfg.aggregate_writes {
            self.broadcast(c, ctx);
        }
        self.advance_commit(c, ctx);
    }

    /// Federated: the leader appends a version only if it extends its
    /// line of the object; `Err` names the refusal.
    fn admits(&self, c: &Common, v: &Version) -> Result<(), Rec> {
        if c.cfg.integration != Integration::Federated {
            return Ok(());
        }
        match self
            .log_latest
            .get(v.key.object as usize)
            .copied()
            .flatten()
        {
            Some(cur) if !v.newer_than(&cur) => Err(Rec::Unordered(v.key)),
            Some(cur) if v.parent != Some(cur.key) => Err(Rec::Unforked(v.key)),
            _ => Ok(()),
        }
    }

    /// A version that came from elsewhere (a follower, a gossip): the
    /// leader appends it if admitted, a follower forwards it.
    fn offer(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, mut v: Version) -> bool {
        if self.role == Role::Leader {
            let known = self
                .log_latest
                .get(v.key.object as usize)
                .copied()
                .flatten();
            if known.is_some_and(|k| k.key == v.key) {
                return true;
            }
            if let Err(refusal) = self.admits(c, &v) {
                if self.refused.insert(v.key) {
                    ctx.record(&refusal);
                }
                return false;
            }
            if v.key.writer != c.me {
                ctx.record(&Rec::Holds(v.key));
            }
            if c.cfg.forte_on_append {
                c.forte.raise(&mut v);
            }
            self.push(Entry {
                term: self.term,
                version: v,
            });
            self.replicate(c, ctx);
            true
        } else {
            if let Some(l) = self.leader {
                c.send(ctx, l, Body::RemoteWrite(v));
            }
            false
        }
    }

    fn advance_commit(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>) {
        if self.role != Role::Leader {
            return;
        }
        let group = c.peers.quorum.len();
        for n in (self.commit + 1..=self.len()).rev() {
            if self.term_at(n) != self.term {
                break;
            }
            let acks = self.matched.iter().filter(|&&m| m >= n).count();
            let ok = match c.cfg.commit_quorum {
                CommitQuorum::Majority => acks + 1 >= self.majority(c),
                CommitQuorum::Followers => group == 0 || acks > group / 2,
            };
            if ok {
                let from = self.commit;
                self.commit_to(ctx, n, true);
                if c.cfg.forte_on_commit {
                    self.raise_committed(c, from, n);
                }
                break;
            }
        }
    }

    fn commit_to(&mut self, ctx: &mut Ctx<'_, Msg>, n: u64, leader: bool) {
        for i in self.commit + 1..=n {
            let v = self.log[i as usize - 1].version;
            *slot(&mut self.committed_latest, v.key.object) = Some(v);
            if leader {
                ctx.record(&Rec::Committed(v.key));
            }
        }
        self.commit = n;
    }

    pub fn on_message(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, from: u32, body: Body) {
        match body {
            Body::AppendEntries {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.on_append(c, ctx, from, term, prev_index, prev_term, &entries, commit),
            Body::Heartbeat {
                term,
                prev_index,
                prev_term,
                commit,
            } => self.on_append(c, ctx, from, term, prev_index, prev_term, &[], commit),
            Body::AeResponse {
                term,
                success,
                index,
            } => self.on_append_response(c, ctx, from, term, success, index),
            Body::RequestVote {
                term,
                last_index,
                last_term,
            } => {
                if term > self.term {
                    self.step_down(c, ctx, term);
                }
                let up_to_date = (last_term, last_index) >= (self.last_term(), self.len());
                let granted =
                    term == self.term && self.voted_for.is_none_or(|v| v == from) && up_to_date;
                if granted {
                    self.voted_for = Some(from);
                    self.reset_election(c, ctx);
                }
                let term = self.term;
                c.send(ctx, from, Body::VoteResponse { term, granted });
            }
            Body::VoteResponse { term, granted } => {
                if term > self.term {
                    self.step_down(c, ctx, term);
                } else if self.role == Role::Candidate && term == self.term && granted {
                    self.votes += 1;
                    if self.votes >= self.majority(c) {
                        self.become_leader(c, ctx);
                    }
                }
            }
            Body::RemoteWrite(v) => {
                let ok = self.role == Role::Leader && self.offer(c, ctx, v);
                c.send(ctx, from, Body::WriteResponse { key: v.key, ok });
            }
            Body::WriteResponse { key, ok } => {
                if let Some(i) = self.pending.iter().position(|(k, _)| *k == key) {
                    let (key, started_ns) = self.pending.swap_remove(i);
                    ctx.record(&if ok {
                        Rec::WriteDone { key, started_ns }
                    } else {
                        Rec::WriteDropped {
                            object: key.object,
                            key: Some(key),
                            started_ns,
                        }
                    });
                }
            }
            Body::Gossip(entries) => self.on_gossip(c, ctx, from, entries, true),
            Body::GossipResponse(entries) => self.on_gossip(c, ctx, from, entries, false),
            _ => {}
        }
    }
}
