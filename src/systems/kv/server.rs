//! A kv server: view-based, delegated Multi-Paxos in the manner of Ios.
//!
//! The master of view `v` is server `v mod N`. It batches client requests
//! into log slots, keeps up to `window` slots in flight, and a slot commits
//! once a replication quorum has it durably (synced before each
//! acknowledgement with `persistence = "fsync"`). A server that stops
//! hearing from its master starts the next view it owns: it asks a recovery
//! quorum for their logs, keeps per slot the committed entry, else the one of
//! the highest view, else a no-op, and prepares them again in its view.
//! With `delegate`, slots are replicated by rotating coordinators; a slot
//! whose coordinator goes quiet is taken over by the master.
//!
//! Every message may be lost, duplicated or reordered: uncommitted slots,
//! view-change requests and fetches are retried on a tick.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;

use super::KvConfig;
use super::log::{self, Loaded};
use super::msg::{Entry, KvMsg, LogEntry, Outcome, Request, Response, Snapshot};
use super::state::{Applied, KvStore};
use crate::node::{Ctx, NodeId};
use crate::node_log;

const TICK: u64 = 1;
const BATCH: u64 = 2;
/// Committed slots sent per fetch.
const FETCH_BATCH: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    /// This server is collecting votes to become master of its view.
    ViewChange,
    /// Restarted without fsync, it may have lost slots it acknowledged: it
    /// follows, but does not vote in view changes until it has caught up
    /// with a master's commit (as in Viewstamped Replication's recovery).
    Recovering,
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

pub struct Server {
    cfg: KvConfig,
    me: usize,
    servers: Vec<NodeId>,
    view: u64,
    mode: Mode,
    log: BTreeMap<u64, Arc<LogEntry>>,
    last: u64,
    /// Highest slot known committed with this server's entry for it.
    commit: u64,
    /// Highest commit index heard from the master.
    target: u64,
    /// While recovering: the first commit index heard from a master, which
    /// must be reached before voting again.
    recover_to: Option<u64>,
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
    // View change.
    votes: BTreeMap<usize, Vote>,
    change_started: Duration,
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
            mode: Mode::Normal,
            log: BTreeMap::new(),
            last: 0,
            commit: 0,
            target: 0,
            recover_to: None,
            applied: 0,
            store: KvStore::default(),
            snapshot: None,
            confirmed: BTreeSet::new(),
            slots: BTreeMap::new(),
            reached: BTreeSet::new(),
            pending: VecDeque::new(),
            queued: HashSet::new(),
            batch_timer: false,
            votes: BTreeMap::new(),
            change_started: Duration::ZERO,
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
        self.master_of(self.view) == self.me && self.mode == Mode::Normal
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
        match log::load(ctx.storage()) {
            Ok(Loaded {
                view,
                snapshot,
                entries,
                cut,
            }) => {
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
            }
            Err(e) => {
                node_log!(error, ctx, error = %e, "cannot read durable state; starting empty")
            }
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
            if let Err(e) = log::save_view(ctx.storage(), 0) {
                node_log!(error, ctx, error = %e, "cannot save the view");
            }
        } else if !self.sync() {
            self.mode = Mode::Recovering;
        } else if self.master_of(self.view) == self.me {
            // A master that restarted lost its volatile state (commit index,
            // votes, pending slots): it takes over again only through a
            // view change.
            self.start_view_change(ctx);
        }
    }

    // ----- client requests -----

    fn reply(&self, ctx: &mut Ctx<'_, KvMsg>, req: &Request, outcome: Outcome) {
        ctx.send(
            req.client,
            KvMsg::Reply {
                id: req.id,
                outcome,
            },
        );
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_, KvMsg>, req: Request) {
        if let Err(why) = req.op.validate() {
            return self.reply(ctx, &req, Outcome::Done(Response::Refused(why)));
        }
        if !self.is_master() {
            let hint = (self.mode == Mode::Normal).then(|| self.servers[self.master_of(self.view)]);
            return self.reply(ctx, &req, Outcome::Redirect(hint));
        }
        match self.store.cached(req.client, req.id) {
            Some(Applied::Reply(r)) => return self.reply(ctx, &req, Outcome::Done(r)),
            Some(Applied::Forgotten) => return,
            None => {}
        }
        if !self.queued.insert((req.client, req.id)) {
            return; // already in a batch or a slot
        }
        self.pending.push_back(req);
        if self.pending.len() >= self.cfg.max_batch {
            self.flush(ctx);
        } else if !self.batch_timer {
            self.batch_timer = true;
            ctx.set_timer(ms(self.cfg.batch_interval_ms), BATCH);
        }
    }

    /// Turns pending requests into slots, while the window has room.
    fn flush(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        while !self.pending.is_empty()
            && self.last - self.commit < self.cfg.window
            && self.is_master()
        {
            let n = self.pending.len().min(self.cfg.max_batch);
            let batch: Vec<Request> = self.pending.drain(..n).collect();
            let index = self.last + 1;
            let entry = Arc::new(LogEntry {
                view: self.view,
                entry: Entry::Batch(batch),
            });
            self.accept(ctx, index, entry.clone());
            self.replicate(ctx, index, entry);
        }
    }

    /// Starts replicating one slot from the master: directly, or through
    /// the slot's coordinator.
    fn replicate(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64, entry: Arc<LogEntry>) {
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
    fn accept(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64, entry: Arc<LogEntry>) {
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
        if let Err(e) = log::append(ctx.storage(), index, &entry, self.sync()) {
            node_log!(error, ctx, error = %e, index, "cannot write the log");
        }
        self.log.insert(index, entry);
        self.last = self.last.max(index);
    }

    // ----- replication -----

    /// Handles a message's view: false if it is stale (and says so to its
    /// sender); a newer view is adopted.
    fn check_view(&mut self, ctx: &mut Ctx<'_, KvMsg>, view: u64, from: NodeId) -> bool {
        if view < self.view {
            ctx.send(from, KvMsg::Nack { view: self.view });
            return false;
        }
        if view > self.view {
            self.adopt_view(ctx, view);
        }
        true
    }

    fn adopt_view(&mut self, ctx: &mut Ctx<'_, KvMsg>, view: u64) {
        self.view = view;
        if let Err(e) = log::save_view(ctx.storage(), view) {
            node_log!(error, ctx, error = %e, "cannot save the view");
        }
        if self.mode != Mode::Recovering {
            self.mode = Mode::Normal;
        }
        self.votes.clear();
        self.slots.clear();
        self.reached.clear();
        self.pending.clear();
        self.queued.clear();
        self.confirmed.clear();
        self.last_heard = ctx.now();
    }

    fn on_prepare(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        from: NodeId,
        index: u64,
        entry: Arc<LogEntry>,
        commit: u64,
    ) {
        if from == self.servers[self.master_of(self.view)] {
            self.last_heard = ctx.now();
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

    fn on_prepare_ok(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: usize, index: u64) {
        if let Some(slot) = self.slots.get_mut(&index)
            && !slot.acks.contains(&from)
        {
            slot.acks.push(from);
        }
        self.check_slot(ctx, index);
    }

    fn check_slot(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64) {
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

    fn advance_commit(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
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
    fn learn_commit(&mut self, ctx: &mut Ctx<'_, KvMsg>, commit: u64) {
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
        if self.mode == Mode::Recovering && self.recover_to.is_some_and(|t| self.commit >= t) {
            self.mode = Mode::Normal;
            node_log!(
                info,
                ctx,
                view = self.view,
                commit = self.commit,
                "recovered"
            );
        }
    }

    fn fetch(&mut self, ctx: &mut Ctx<'_, KvMsg>, index: u64) {
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

    fn apply(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
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
    fn compact(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let snapshot = Snapshot {
            index: self.applied,
            store: self.store.clone(),
        };
        let rest = self.log.split_off(&(self.applied + 1));
        self.log = rest;
        let plain: BTreeMap<u64, LogEntry> =
            self.log.iter().map(|(i, e)| (*i, (**e).clone())).collect();
        if let Err(e) = log::compact(ctx.storage(), &snapshot, &plain) {
            node_log!(error, ctx, error = %e, "cannot write a snapshot");
        }
        ctx.count("snapshots", 1);
        self.snapshot = Some(Arc::new(snapshot));
    }

    fn install(&mut self, ctx: &mut Ctx<'_, KvMsg>, snapshot: Arc<Snapshot>) {
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
        if let Err(e) = log::compact(ctx.storage(), &snapshot, &plain) {
            node_log!(error, ctx, error = %e, "cannot write a snapshot");
        }
        self.snapshot = Some(snapshot);
    }

    /// A follower misses committed slots from `index`: it gets up to 64 of
    /// them, or, when far behind, a snapshot of the applied state.
    fn on_fetch(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, index: u64) {
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

    // ----- view change -----

    fn start_view_change(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let n = self.n() as u64;
        let mut v = self.view + 1;
        while (v % n) as usize != self.me {
            v += 1;
        }
        self.adopt_view(ctx, v);
        self.mode = Mode::ViewChange;
        self.change_started = ctx.now();
        let own = self.vote_from(self.applied);
        self.votes.insert(self.me, own);
        node_log!(info, ctx, view = v, "starting a view change");
        ctx.count("view_changes", 1);
        let msg = KvMsg::StartView {
            view: v,
            from: self.applied,
        };
        self.broadcast(ctx, msg);
        self.check_votes(ctx);
    }

    fn vote_from(&self, from: u64) -> Vote {
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

    fn on_start_view(
        &mut self,
        ctx: &mut Ctx<'_, KvMsg>,
        from: NodeId,
        view: u64,
        from_index: u64,
    ) {
        if self.mode == Mode::Recovering && view >= self.view {
            return; // no vote until caught up
        }
        if !self.check_view(ctx, view, from) || self.master_of(view) == self.me {
            return;
        }
        self.last_heard = ctx.now();
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

    fn check_votes(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        if self.mode != Mode::ViewChange
            || self.votes.len() < self.cfg.recovery_quorum.size(self.n())
        {
            return;
        }
        let votes = std::mem::take(&mut self.votes);
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
        self.mode = Mode::Normal;
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

    // ----- time -----

    fn tick(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        let now = ctx.now();
        ctx.set_timer(ms(self.cfg.heartbeat_ms / 2.0), TICK);
        match self.mode {
            Mode::ViewChange => {
                if now > self.change_started + self.election_timeout {
                    self.start_view_change(ctx);
                } else {
                    let msg = KvMsg::StartView {
                        view: self.view,
                        from: self.applied,
                    };
                    for (i, s) in self.servers.clone().into_iter().enumerate() {
                        if i != self.me && !self.votes.contains_key(&i) {
                            ctx.send(s, msg.clone());
                        }
                    }
                }
            }
            Mode::Normal if self.is_master() => {
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
            Mode::Recovering => {}
            Mode::Normal => {
                if now > self.last_heard + self.election_timeout {
                    node_log!(info, ctx, view = self.view, "master silent; taking over");
                    self.start_view_change(ctx);
                }
            }
        }
    }

    /// Sends again what has not been acknowledged; takes slots back from
    /// coordinators that went quiet.
    fn retry_slots(&mut self, ctx: &mut Ctx<'_, KvMsg>, now: Duration) {
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

    // ----- dispatch -----

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, msg: KvMsg) {
        match msg {
            KvMsg::Request(req) => self.on_request(ctx, req),
            KvMsg::Reply { .. } => {}
            KvMsg::Prepare {
                view,
                index,
                entry,
                commit,
            } => {
                if self.check_view(ctx, view, from) && self.mode != Mode::ViewChange {
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
                if self.check_view(ctx, view, from)
                    && self.mode != Mode::ViewChange
                    && !self.is_master()
                {
                    self.last_heard = ctx.now();
                    if self.mode == Mode::Recovering && self.recover_to.is_none() {
                        self.recover_to = Some(commit);
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
                    && self.mode == Mode::ViewChange
                    && let Some(i) = self.index_of(from)
                {
                    self.votes.insert(
                        i,
                        Vote {
                            commit,
                            last,
                            entries,
                            snapshot,
                        },
                    );
                    self.check_votes(ctx);
                }
            }
            KvMsg::Delegate { view, index, entry } => {
                if self.check_view(ctx, view, from) && self.mode == Mode::Normal {
                    self.last_heard = ctx.now();
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
            }
            KvMsg::Replicated { view, index } => {
                if view == self.view && self.is_master() {
                    self.slots.remove(&index);
                    self.reached.insert(index);
                    self.advance_commit(ctx);
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, KvMsg>, tag: u64) {
        match tag {
            TICK => self.tick(ctx),
            BATCH => {
                self.batch_timer = false;
                self.flush(ctx);
            }
            _ => {}
        }
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "view": self.view,
            "master": self.is_master(),
            "mode": format!("{:?}", self.mode),
            "commit": self.commit,
            "applied": self.applied,
            "last": self.last,
            "keys": self.store.len(),
        })
    }
}
