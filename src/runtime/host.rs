//! Hosting nodes on a real machine: the same `Ctx` semantics as the
//! simulator, with wall-clock time, tokio-driven timers, disk storage and
//! the transport for messages to other machines.
//!
//! Nodes of any system are held behind [`Hosted`], which speaks in encoded
//! messages; everything runs on one thread, one event at a time, except
//! work handed to the runtime, which runs on worker threads and comes back
//! as a completion event.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::disk::DiskStorage;
use super::hosted::{Build, HandlerOut, Hosted};
use super::transport::{SendError, Transport};
use crate::error::{Error, Result};
use crate::net::Counts;
use crate::node::{
    MachineId, Metrics, Mode, NodeId, NodeSpec, Record, Roster, Stop, TimerCmd, TimerId, WorkId,
};
use crate::systems::with_system;
use crate::wire::Envelope;

mod spawning;
use spawning::SpawnIds;
pub use spawning::{AgentMsg, SPAWN_BASE, SpawnCounters, is_spawned};

/// Work finished on a worker thread: (node, its incarnation, id, output).
pub type WorkDone = (u32, u64, WorkId, Box<dyn Any + Send>);

/// The file, in the agent's directory, where nodes' records go: each a
/// little-endian u32 length and a postcard [`Record`].
pub const RECORDS_FILE: &str = "records.bin";

/// Where a node of the cluster lives.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerAddr {
    pub machine: String,
    pub machine_id: MachineId,
    pub address: String,
}

struct Slot {
    hosted: Box<dyn Hosted>,
    pending: HashSet<u64>,
    /// Which start of this node it is (work of an older one is dropped).
    incarnation: u64,
}

/// (due, order set, node, timer id, tag): earliest first, ties in order set.
type PendingTimer = (Instant, u64, u32, u64, u64);

/// Message counters of one node, by kind name.
pub type NodeCounts = BTreeMap<&'static str, Counts>;

pub struct Host {
    machine: String,
    mode: Mode,
    dir: PathBuf,
    epoch: SystemTime,
    nodes: BTreeMap<u32, Slot>,
    /// Counters survive a node's kill, for stats.
    counts: BTreeMap<u32, NodeCounts>,
    placement: HashMap<u32, PeerAddr>,
    timers: BinaryHeap<Reverse<PendingTimer>>,
    timer_seq: u64,
    local: VecDeque<Envelope>,
    transport: Rc<Transport>,
    out: HandlerOut,
    started: Instant,
    incarnations: u64,
    work_done: mpsc::UnboundedSender<WorkDone>,
    records: Option<File>,
    /// Nodes that fail-stopped, and why (until they are spawned again).
    failed: BTreeMap<u32, String>,
    /// This machine's index, once the controller placed a node here.
    machine_id: Option<MachineId>,
    /// Every machine of the cluster, by index (from the placement).
    machines: BTreeMap<u32, PeerAddr>,
    /// The cluster's system and roster, for nodes spawned here.
    system: Option<String>,
    roster: Arc<Roster>,
    ids: SpawnIds,
    spawn_counters: SpawnCounters,
    /// Roles of nodes that ran here, and the ones that exited for good.
    roles: BTreeMap<u32, String>,
    exited: BTreeSet<u32>,
    /// Spawns asked of this machine before it knew its place.
    early_starts: Vec<Envelope>,
    /// Whether the nodes spawned here before a restart were started again.
    restored: bool,
}

impl Host {
    /// `work_done` receives finished work, for [`Host::work_done`].
    pub fn new(
        machine: String,
        mode: Mode,
        dir: PathBuf,
        transport: Rc<Transport>,
        work_done: mpsc::UnboundedSender<WorkDone>,
    ) -> Self {
        Host {
            machine,
            mode,
            ids: SpawnIds::new(&dir),
            dir,
            epoch: SystemTime::now(),
            nodes: BTreeMap::new(),
            counts: BTreeMap::new(),
            placement: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            local: VecDeque::new(),
            transport,
            out: HandlerOut::default(),
            started: Instant::now(),
            incarnations: 0,
            work_done,
            records: None,
            failed: BTreeMap::new(),
            machine_id: None,
            machines: BTreeMap::new(),
            system: None,
            roster: Arc::default(),
            spawn_counters: SpawnCounters::default(),
            roles: BTreeMap::new(),
            exited: BTreeSet::new(),
            early_starts: Vec::new(),
            restored: false,
        }
    }

    pub fn machine(&self) -> &str {
        &self.machine
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.epoch)
            .unwrap_or_default()
    }

    /// Starts a node the controller placed; `placement` places every node
    /// of the cluster.
    pub fn spawn(
        &mut self,
        spec: &NodeSpec,
        roster: &Arc<Roster>,
        placement: Vec<(NodeId, PeerAddr)>,
        machine: MachineId,
        epoch_ms: u64,
    ) -> Result<()> {
        if self.nodes.contains_key(&spec.id.0) {
            return Err(Error::input(format!(
                "node {} already runs on {}",
                spec.id, self.machine
            )));
        }
        self.epoch = UNIX_EPOCH + Duration::from_millis(epoch_ms);
        // Merged, not replaced: spawned nodes this agent learnt of stay.
        for (id, p) in placement {
            self.machines.insert(p.machine_id.0, p.clone());
            self.placement.insert(id.0, p);
        }
        self.machine_id = Some(machine);
        self.system = Some(spec.system.clone());
        self.roster = Arc::clone(roster);
        // An agent started without a name learns it from its place in the cluster.
        if let Some(me) = self.placement.values().find(|p| p.machine_id == machine)
            && me.machine != self.machine
        {
            self.machine = me.machine.clone();
            self.transport.set_name(&self.machine);
            super::set_identity(&self.machine);
        }
        let started = self.start_node(spec, roster, machine);
        self.restore_spawned();
        self.local.extend(self.early_starts.drain(..));
        started
    }

    /// Builds and starts a node here (placed by the controller or spawned).
    fn start_node(
        &mut self,
        spec: &NodeSpec,
        roster: &Arc<Roster>,
        machine: MachineId,
    ) -> Result<()> {
        if self.nodes.contains_key(&spec.id.0) {
            return Err(Error::input(format!(
                "node {} already runs on {}",
                spec.id, self.machine
            )));
        }
        let dir = self.dir.join("nodes").join(spec.id.0.to_string());
        let storage = DiskStorage::open(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut hosted = with_system(
            &spec.system,
            Build {
                spec,
                roster,
                machine,
                mode: self.mode,
                storage,
            },
        )??;
        self.transport.set_kinds(hosted.kinds()).map_err(|e| {
            Error::input(format!("the fault plan does not fit {}: {e}", spec.system))
        })?;
        hosted.set_spawn_ids(self.ids.lend(machine));
        self.incarnations += 1;
        self.roles.insert(spec.id.0, spec.role.clone());
        self.exited.remove(&spec.id.0);
        self.nodes.insert(
            spec.id.0,
            Slot {
                hosted,
                pending: HashSet::new(),
                incarnation: self.incarnations,
            },
        );
        self.failed.remove(&spec.id.0);
        self.counts.entry(spec.id.0).or_default();
        crate::agent_log!(info, node_id = spec.id.0, role = %spec.role, "node spawned");
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        if let Some(slot) = self.nodes.get_mut(&spec.id.0) {
            slot.hosted.start(now, &mut out);
        }
        self.apply(spec.id.0, &mut out);
        self.out = out;
        // A node that cannot start (its durable state unreadable) says why.
        match self.failed.get(&spec.id.0) {
            Some(why) => Err(Error::runtime(format!(
                "node {} on {} refused to start: {why}",
                spec.id, self.machine
            ))),
            None => Ok(()),
        }
    }

    pub fn kill(&mut self, id: NodeId) -> Result<()> {
        self.nodes
            .remove(&id.0)
            .map(|_| ())
            .ok_or_else(|| Error::input(format!("no node {id} on {}", self.machine)))
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().map(|&i| NodeId(i)).collect()
    }

    pub fn query(&self, id: NodeId, query: &str) -> Result<serde_json::Value> {
        let slot = self
            .nodes
            .get(&id.0)
            .ok_or_else(|| Error::input(format!("no node {id} on {}", self.machine)))?;
        slot.hosted
            .query(query)
            .ok_or_else(|| Error::input(format!("node {id} does not answer {query:?}")))
    }

    pub fn counts(&self) -> &BTreeMap<u32, NodeCounts> {
        &self.counts
    }

    /// The role node `id` ran with here, if it ran here.
    pub fn role(&self, id: u32) -> Option<&str> {
        self.roles.get(&id).map(String::as_str)
    }

    /// Whether node `id` exited for good here.
    pub fn has_exited(&self, id: u32) -> bool {
        self.exited.contains(&id)
    }

    pub fn spawn_counters(&self) -> &SpawnCounters {
        &self.spawn_counters
    }

    pub fn metrics(&self, id: u32) -> Option<&Metrics> {
        self.nodes.get(&id).map(|s| s.hosted.metrics())
    }

    /// Nodes that fail-stopped here, and why.
    pub fn failed(&self) -> &BTreeMap<u32, String> {
        &self.failed
    }

    /// Work of node `node` finished on a worker thread.
    pub fn work_done(&mut self, done: WorkDone) {
        let (node, incarnation, id, output) = done;
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        if let Some(slot) = self.nodes.get_mut(&node)
            && slot.incarnation == incarnation
        {
            slot.hosted.work_done(now, id, output, &mut out);
        }
        self.apply(node, &mut out);
        self.out = out;
    }

    fn count(&mut self, node: u32, kind: &'static str, f: impl FnOnce(&mut Counts)) {
        f(self
            .counts
            .entry(node)
            .or_default()
            .entry(kind)
            .or_default());
    }

    /// A message for a node of this machine (from the network or a local peer).
    pub fn deliver(&mut self, env: Envelope) {
        if env.to == super::transport::AGENT {
            self.agent_message(&env);
            return;
        }
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        let Some(slot) = self.nodes.get_mut(&env.to) else {
            crate::agent_log!(debug, to = env.to, "message for a node not running here");
            self.spawn_counters.no_such_node += 1;
            self.out = out;
            return;
        };
        let kind_name = slot
            .hosted
            .kinds()
            .get(usize::from(env.kind))
            .copied()
            .unwrap_or("?");
        match slot
            .hosted
            .message(now, NodeId(env.from), env.kind, &env.payload, &mut out)
        {
            Ok(()) => self.count(env.to, kind_name, |c| c.delivered += 1),
            Err(e) => {
                crate::agent_log!(warn, from = env.from, to = env.to, error = %e, "undecodable message dropped");
                self.count(env.to, kind_name, |c| c.dropped += 1);
            }
        }
        self.apply(env.to, &mut out);
        self.out = out;
    }

    /// Runs local deliveries until none are left.
    pub fn drain_local(&mut self) {
        while let Some(env) = self.local.pop_front() {
            self.deliver(env);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(t)| t.0)
    }

    /// Fires every timer that is due.
    pub fn fire_due(&mut self) {
        let now_i = Instant::now();
        while let Some(Reverse((at, _, node, id, tag))) = self.timers.peek().copied() {
            if at > now_i {
                break;
            }
            self.timers.pop();
            let now = self.now();
            let mut out = std::mem::take(&mut self.out);
            if let Some(slot) = self.nodes.get_mut(&node)
                && slot.pending.remove(&id)
            {
                slot.hosted.timer(now, TimerId(id), tag, &mut out);
            }
            self.apply(node, &mut out);
            self.out = out;
        }
    }

    fn apply(&mut self, node: u32, out: &mut HandlerOut) {
        if !out.records.is_empty() {
            self.write_records(&out.records);
            out.records.clear();
        }
        for (id, work) in out.work.drain(..) {
            let Some(slot) = self.nodes.get(&node) else {
                continue;
            };
            let (tx, incarnation) = (self.work_done.clone(), slot.incarnation);
            tokio::task::spawn_blocking(move || {
                let output = work.run();
                let _ = tx.send((node, incarnation, id, output));
            });
        }
        for req in out.spawns.drain(..) {
            self.request_spawn(node, req);
        }
        for cmd in out.timers.drain(..) {
            let Some(slot) = self.nodes.get_mut(&node) else {
                continue;
            };
            match cmd {
                TimerCmd::Set { id, after, tag } => {
                    slot.pending.insert(id.0);
                    self.timer_seq += 1;
                    self.timers.push(Reverse((
                        Instant::now() + after,
                        self.timer_seq,
                        node,
                        id.0,
                        tag,
                    )));
                }
                TimerCmd::Cancel(id) => {
                    slot.pending.remove(&id.0);
                }
            }
        }
        for m in out.sends.drain(..) {
            self.count(node, m.kind_name, |c| c.sent += 1);
            let env = Envelope {
                from: node,
                to: m.to.0,
                kind: m.kind,
                payload: m.payload,
            };
            if m.to.0 >= super::transport::EXTERNAL {
                if self.transport.reply_external(env).is_err() {
                    self.count(node, m.kind_name, |c| c.dropped += 1);
                }
                continue;
            }
            let Some(peer) = self.placement.get(&m.to.0) else {
                self.count(node, m.kind_name, |c| c.dropped += 1);
                self.spawn_counters.no_such_node += 1;
                continue;
            };
            if peer.machine == self.machine {
                self.local.push_back(env);
                continue;
            }
            match self.transport.send(&peer.machine, &peer.address, env) {
                Ok(copies) if copies > 1 => {
                    self.count(node, m.kind_name, |c| c.duplicated += u64::from(copies - 1))
                }
                Ok(_) => {}
                Err(SendError::Dropped) => self.count(node, m.kind_name, |c| c.dropped += 1),
            }
        }
        match out.stop.take() {
            None => self.refill_ids(node),
            Some(Stop::Exit) => {
                self.nodes.remove(&node);
                self.node_exited(node);
                crate::agent_log!(info, node_id = node, "node exited");
            }
            Some(Stop::Failed(why)) => {
                self.nodes.remove(&node);
                crate::agent_log!(error, node_id = node, reason = %why, "node stopped (fail-stop)");
                self.failed.insert(node, why);
            }
        }
    }

    /// Appends records to the agent's records file (analysis data: written
    /// through, not synced; a node's acknowledged state lives in its own
    /// storage).
    fn write_records(&mut self, records: &[Record]) {
        if self.records.is_none() {
            let path = self.dir.join(RECORDS_FILE);
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => self.records = Some(f),
                Err(e) => {
                    crate::agent_log!(error, path = %path.display(), error = %e, "cannot open the records file; records lost");
                    return;
                }
            }
        }
        let mut buf = Vec::new();
        for r in records {
            let bytes = postcard::to_allocvec(r).expect("encoding a record into a Vec");
            buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            buf.extend_from_slice(&bytes);
        }
        if let Some(f) = self.records.as_mut()
            && let Err(e) = f.write_all(&buf)
        {
            crate::agent_log!(error, error = %e, "cannot write records; records lost");
        }
    }
}

/// Decodes a records file (as [`RECORDS_FILE`] holds them); a torn last
/// record is ignored.
pub fn read_records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let Some(body) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        match postcard::from_bytes(body) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        at += 4 + len;
    }
    out
}
