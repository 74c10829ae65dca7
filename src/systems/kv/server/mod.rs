//! A kv server: view-based, delegated Multi-Paxos in the manner of Ios.
//!
//! The master of view `v` is server `v mod N`. It batches client requests
//! into log slots, keeps up to `window` slots in flight, and a slot commits
//! once a replication quorum has it durably (synced before each
//! acknowledgement with `persistence = "fsync"`). A server that stops
//! hearing from its master first asks the others whether they still hear
//! one (pre-vote); only if a recovery quorum hears none does it start the
//! next view it owns: it asks a recovery quorum for their logs, keeps per slot the committed entry, else the one of
//! the highest view, else a no-op, and prepares them again in its view.
//! With `delegate`, slots are replicated by rotating coordinators; a slot
//! whose coordinator goes quiet is taken over by the master.
//!
//! Every message may be lost, duplicated or reordered: uncommitted slots,
//! view-change requests and fetches are retried on a tick.
//!
//! Storage is fail-stop: a failed append, sync or snapshot write stops the
//! server before anything it sent in that handler leaves (the node API
//! discards the handler's effects), so nothing is acknowledged that is not
//! durable; durable state that cannot be read refuses the start.
//!
//! One concept per file: `batching` (client requests into slots),
//! `replication` (prepare, acknowledge, commit), `catch_up` (fetch and
//! install), `snapshot` (apply and compact), `pre_vote`, `view_change`.

mod batching;
mod catch_up;
mod pre_vote;
mod replication;
mod snapshot;
mod view_change;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;

use super::KvConfig;
use super::log::{self, Loaded};
use super::msg::{KvMsg, LogEntry, Request, Snapshot};
use super::state::KvStore;
use crate::node::{Ctx, NodeId};
use crate::node_log;

const TICK: u64 = 1;
const BATCH: u64 = 2;
/// Committed slots sent per fetch.
const FETCH_BATCH: u64 = 64;

/// Where a server stands in its view; what only one status needs lives in
/// its variant.
enum Status {
    Normal,
    /// Its master is silent, or it has just restarted and does not know
    /// the current view: it asks whether anyone hears a master before it
    /// starts a view change (see `pre_vote`). It follows meanwhile.
    PreVote {
        grants: BTreeSet<usize>,
        started: Duration,
    },
    /// Collecting votes to become master of its view.
    ViewChange {
        votes: BTreeMap<usize, Vote>,
        started: Duration,
    },
    /// Restarted without fsync, it may have lost slots it acknowledged: it
    /// follows, but does not vote in view changes until it has caught up
    /// with a master's commit (as in Viewstamped Replication's recovery).
    Recovering {
        /// The first commit index heard from a master, to reach before
        /// voting again.
        to: Option<u64>,
    },
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Normal => "Normal",
            Status::PreVote { .. } => "PreVote",
            Status::ViewChange { .. } => "ViewChange",
            Status::Recovering { .. } => "Recovering",
        }
    }
}

/// A server's answer to a view change.
struct Vote {
    commit: u64,
    last: u64,
    entries: Vec<(u64, LogEntry)>,
    snapshot: Option<Arc<Snapshot>>,
}

/// A slot this server is getting replicated (as master or coordinator).
struct Slot {
    acks: Vec<usize>,
    sent_at: Duration,
    /// Replicated for us by another coordinator.
    delegated: bool,
}

/// The invariants below are asserted after every handler
/// ([`Server::check_invariants`]); in simulation a violation fails the
/// seed with its replay command.
pub struct Server {
    cfg: KvConfig,
    me: usize,
    servers: Vec<NodeId>,
    /// Never decreases (durable, saved before it is acted on).
    view: u64,
    status: Status,
    /// Slots above the snapshot. An entry at or below `commit` is never
    /// replaced by a different command.
    log: BTreeMap<u64, Arc<LogEntry>>,
    /// Highest slot held: `commit <= last`.
    last: u64,
    /// Highest slot known committed with this server's entry for it; never
    /// decreases while the server runs. `applied <= commit`.
    commit: u64,
    /// Highest commit index heard from the master.
    target: u64,
    applied: u64,
    store: KvStore,
    snapshot: Option<Arc<Snapshot>>,
    /// Slots the master confirmed committed with their entry (fetched).
    confirmed: BTreeSet<u64>,
    // Master and coordinator state.
    slots: BTreeMap<u64, Slot>,
    reached: BTreeSet<u64>,
    pending: VecDeque<Request>,
    queued: HashSet<(NodeId, u64)>,
    batch_timer: bool,
    // Failure detection.
    last_heard: Duration,
    last_heartbeat: Duration,
    election_timeout: Duration,
    fetching: BTreeMap<u64, Duration>,
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

impl Server {
    pub fn new(cfg: KvConfig, me: usize, servers: Vec<NodeId>) -> Self {
        Server {
            cfg,
            me,
            servers,
            view: 0,
            status: Status::Normal,
            log: BTreeMap::new(),
            last: 0,
            commit: 0,
            target: 0,
            applied: 0,
            store: KvStore::default(),
            snapshot: None,
            confirmed: BTreeSet::new(),
            slots: BTreeMap::new(),
            reached: BTreeSet::new(),
            pending: VecDeque::new(),
            queued: HashSet::new(),
            batch_timer: false,
            last_heard: Duration::ZERO,
            last_heartbeat: Duration::ZERO,
            election_timeout: Duration::ZERO,
            fetching: BTreeMap::new(),
        }
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn store(&self) -> &KvStore {
        &self.store
    }

    fn n(&self) -> usize {
        self.servers.len()
    }

    fn master_of(&self, view: u64) -> usize {
        (view % self.n() as u64) as usize
    }

    pub fn is_master(&self) -> bool {
        self.master_of(self.view) == self.me && matches!(self.status, Status::Normal)
    }

    fn in_view_change(&self) -> bool {
        matches!(self.status, Status::ViewChange { .. })
    }

    fn replication_size(&self) -> usize {
        if self.cfg.unsafe_ack_before_quorum {
            1
        } else {
            self.cfg.replication_quorum.size(self.n())
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.servers.iter().position(|&s| s == id)
    }

    fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.me)
            .map(|(_, &s)| s)
    }

    fn broadcast(&self, ctx: &mut Ctx<'_, KvMsg>, msg: KvMsg) {
        for s in self.others() {
            ctx.send(s, msg.clone());
        }
    }

    fn sync(&self) -> bool {
        self.cfg.persistence == super::Persistence::Fsync
    }

    // ----- start -----

    pub fn start(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        // Fresh means no durable state at all; anything else is a restart.
        let fresh = ctx.storage().files().is_empty();
        let Loaded {
            view,
            snapshot,
            entries,
            cut,
        } = match log::load(ctx.storage()) {
            Ok(loaded) => loaded,
            Err(e) => {
                // Starting empty would vote without the slots it acknowledged.
                return ctx.fail(format!("cannot read durable state: {e}"));
            }
        };
        self.view = view;
        if let Some(s) = snapshot {
            self.applied = s.index;
            self.commit = s.index;
            self.store = s.store.clone();
            self.snapshot = Some(Arc::new(s));
        }
        self.last = entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.applied)
            .max(self.applied);
        self.log = entries.into_iter().map(|(i, e)| (i, Arc::new(e))).collect();
        if let Some((kept, dropped, why)) = cut {
            ctx.count("log_tail_cut", 1);
            ctx.count("log_tail_cut_bytes", dropped as u64);
            node_log!(warn, ctx, kept, dropped, why = %why, "cut a damaged log tail on restart");
        }
        let t = self.cfg.election_timeout_ms;
        self.election_timeout = ms(t + ctx.rng().random_range(0.0..t));
        self.last_heard = ctx.now();
        ctx.set_timer(ms(self.cfg.heartbeat_ms / 2.0), TICK);
        node_log!(
            info,
            ctx,
            view = self.view,
            applied = self.applied,
            last = self.last,
            "kv server started"
        );
        if fresh {
            // A failed write stops the server (fail-stop), effects and all.
            let _ = log::save_view(ctx.storage(), 0);
        } else if !self.sync() {
            self.status = Status::Recovering { to: None };
        } else {
            // A restarted server does not know the current view, and a
            // restarted master lost its volatile state (commit index,
            // votes, pending slots): it asks before it acts, so it learns
            // the view from a healthy master instead of unseating it, and
            // takes over again only through a view change.
            self.start_pre_vote(ctx);
        }
        self.check_invariants();
    }

    // ----- time -----

    fn tick(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let now = ctx.now();
        ctx.set_timer(ms(self.cfg.heartbeat_ms / 2.0), TICK);
        match &self.status {
            Status::ViewChange { votes, started } => {
                if now > *started + self.election_timeout {
                    // No quorum came: ask again before the next view, so a
                    // server cut off does not come back in a view of its own.
                    self.start_pre_vote(ctx);
                } else {
                    let msg = KvMsg::StartView {
                        view: self.view,
                        from: self.applied,
                    };
                    for (i, s) in self.servers.iter().enumerate() {
                        if i != self.me && !votes.contains_key(&i) {
                            ctx.send(*s, msg.clone());
                        }
                    }
                }
            }
            Status::Normal if self.is_master() => {
                if now >= self.last_heartbeat + ms(self.cfg.heartbeat_ms) {
                    self.last_heartbeat = now;
                    let msg = KvMsg::Commit {
                        view: self.view,
                        commit: self.commit,
                    };
                    self.broadcast(ctx, msg);
                }
                self.retry_slots(ctx, now);
            }
            Status::PreVote { .. } => self.retry_pre_vote(ctx, now),
            Status::Recovering { .. } => {}
            Status::Normal => {
                if now > self.last_heard + self.election_timeout {
                    node_log!(
                        info,
                        ctx,
                        view = self.view,
                        "master silent; asking the others"
                    );
                    self.start_pre_vote(ctx);
                }
            }
        }
    }

    // ----- dispatch -----

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, msg: KvMsg) {
        let before = (self.view, self.commit);
        match msg {
            KvMsg::Request(req) => self.on_request(ctx, req),
            KvMsg::Reply { .. } => {}
            KvMsg::Prepare {
                view,
                index,
                entry,
                commit,
            } => {
                if self.check_view(ctx, view, from) && !self.in_view_change() {
                    self.on_prepare(ctx, from, index, entry, commit);
                }
            }
            KvMsg::PrepareOk { view, index } => {
                if view == self.view
                    && let Some(i) = self.index_of(from)
                {
                    self.on_prepare_ok(ctx, i, index);
                }
            }
            KvMsg::Commit { view, commit } => {
                if self.check_view(ctx, view, from) && !self.in_view_change() && !self.is_master() {
                    self.heard_master(ctx);
                    if let Status::Recovering { to: to @ None } = &mut self.status {
                        *to = Some(commit);
                    }
                    self.learn_commit(ctx, commit);
                }
            }
            KvMsg::Nack { view } => {
                if view > self.view {
                    self.adopt_view(ctx, view);
                }
            }
            KvMsg::Fetch { view, index } => {
                if view == self.view {
                    self.on_fetch(ctx, from, index);
                }
            }
            KvMsg::Committed {
                view,
                index,
                entries,
            } => {
                if view == self.view {
                    self.on_committed(ctx, index, entries);
                }
            }
            KvMsg::Install { view, snapshot } => {
                if view == self.view {
                    self.install(ctx, snapshot);
                }
            }
            KvMsg::StartView {
                view,
                from: from_index,
            } => self.on_start_view(ctx, from, view, from_index),
            KvMsg::ViewState {
                view,
                commit,
                last,
                entries,
                snapshot,
            } => {
                if view == self.view
                    && let Some(i) = self.index_of(from)
                {
                    let vote = Vote {
                        commit,
                        last,
                        entries,
                        snapshot,
                    };
                    self.on_view_state(ctx, i, vote);
                }
            }
            KvMsg::Delegate { view, index, entry } => {
                if self.check_view(ctx, view, from)
                    && matches!(self.status, Status::Normal | Status::PreVote { .. })
                {
                    self.on_delegate(ctx, view, index, entry);
                }
            }
            KvMsg::Replicated { view, index } => {
                if view == self.view && self.is_master() {
                    self.slots.remove(&index);
                    self.reached.insert(index);
                    self.advance_commit(ctx);
                }
            }
            KvMsg::PreVote { view } => self.on_pre_vote(ctx, from, view),
            KvMsg::PreVoteOk { view } => {
                if let Some(i) = self.index_of(from) {
                    self.on_pre_vote_ok(ctx, i, view);
                }
            }
        }
        self.check_progress(before);
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, KvMsg>, tag: u64) {
        let before = (self.view, self.commit);
        match tag {
            TICK => self.tick(ctx),
            BATCH => {
                self.batch_timer = false;
                self.flush(ctx);
            }
            _ => {}
        }
        self.check_progress(before);
    }

    // ----- invariants -----

    /// What holds between any two events (TigerBeetle style: checked, not
    /// hoped for).
    fn check_invariants(&self) {
        assert!(
            self.applied <= self.commit && self.commit <= self.last,
            "server {}: applied {} <= commit {} <= last {} broken",
            self.me,
            self.applied,
            self.commit,
            self.last
        );
        let snap = self.snapshot.as_ref().map_or(0, |s| s.index);
        assert!(
            snap <= self.applied,
            "server {}: snapshot {snap} ahead of applied {}",
            self.me,
            self.applied
        );
    }

    /// After a handler: the invariants, and view and commit never went back.
    fn check_progress(&self, (view, commit): (u64, u64)) {
        assert!(
            self.view >= view,
            "server {}: view went back from {view} to {}",
            self.me,
            self.view
        );
        assert!(
            self.commit >= commit,
            "server {}: commit went back from {commit} to {}",
            self.me,
            self.commit
        );
        self.check_invariants();
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "view": self.view,
            "master": self.is_master(),
            "status": self.status.name(),
            "commit": self.commit,
            "applied": self.applied,
            "last": self.last,
            "keys": self.store.len(),
        })
    }
}
