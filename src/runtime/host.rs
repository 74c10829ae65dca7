//! Hosting nodes on a real machine: the same `Ctx` semantics as the
//! simulator, with wall-clock time, tokio-driven timers, disk storage and
//! the transport for messages to other machines.
//!
//! Nodes of any system are held behind [`Hosted`], which speaks in encoded
//! messages; everything runs on one thread, one event at a time.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;

use super::disk::DiskStorage;
use super::transport::{SendError, Transport};
use crate::error::{Error, Result};
use crate::node::{
    Ctx, Effects, MachineId, Message, Metrics, Mode, Node, NodeId, NodeParts, TimerCmd, TimerId,
};
use crate::rng::DetRng;
use crate::sim::Counts;
use crate::systems::{NodeSpec, Roster, System, SystemVisitor, with_system};
use crate::wire::{Envelope, WireError, decode_message};

/// A message a handler sent, encoded.
pub struct Outgoing {
    pub to: NodeId,
    pub kind: u16,
    pub kind_name: &'static str,
    pub payload: Vec<u8>,
}

/// What one handler call asked for.
#[derive(Default)]
pub struct HandlerOut {
    pub sends: Vec<Outgoing>,
    pub timers: Vec<TimerCmd>,
}

/// A node of some system, driven with encoded messages.
pub trait Hosted {
    fn kinds(&self) -> &'static [&'static str];
    fn start(&mut self, now: Duration, out: &mut HandlerOut);
    fn message(
        &mut self,
        now: Duration,
        from: NodeId,
        kind: u16,
        payload: &[u8],
        out: &mut HandlerOut,
    ) -> Result<(), WireError>;
    fn timer(&mut self, now: Duration, id: TimerId, tag: u64, out: &mut HandlerOut);
    fn query(&self, query: &str) -> Option<serde_json::Value>;
    fn metrics(&self) -> &Metrics;
}

struct HostedNode<N: Node> {
    id: NodeId,
    machine: MachineId,
    mode: Mode,
    node: N,
    rng: DetRng,
    storage: DiskStorage,
    metrics: Metrics,
    effects: Effects<N::Msg>,
    next_timer: u64,
}

impl<N: Node> HostedNode<N> {
    fn run(
        &mut self,
        now: Duration,
        out: &mut HandlerOut,
        f: impl FnOnce(&mut N, &mut Ctx<'_, N::Msg>),
    ) {
        let mut ctx = Ctx::new(
            self.id,
            self.machine,
            self.mode,
            now,
            NodeParts {
                rng: &mut self.rng,
                storage: &mut self.storage,
                metrics: &mut self.metrics,
                effects: &mut self.effects,
                next_timer: &mut self.next_timer,
            },
        );
        f(&mut self.node, &mut ctx);
        out.timers.append(&mut self.effects.timers);
        for (to, msg) in self.effects.sends.drain(..) {
            let mut payload = Vec::new();
            msg.encode(&mut payload);
            out.sends.push(Outgoing {
                to,
                kind: msg.kind() as u16,
                kind_name: msg.kind_name(),
                payload,
            });
        }
    }
}

impl<N: Node> Hosted for HostedNode<N> {
    fn kinds(&self) -> &'static [&'static str] {
        N::Msg::kinds()
    }

    fn start(&mut self, now: Duration, out: &mut HandlerOut) {
        self.run(now, out, |n, ctx| n.on_start(ctx));
    }

    fn message(
        &mut self,
        now: Duration,
        from: NodeId,
        kind: u16,
        payload: &[u8],
        out: &mut HandlerOut,
    ) -> Result<(), WireError> {
        let msg: N::Msg = decode_message(kind, payload)?;
        self.run(now, out, |n, ctx| n.on_message(ctx, from, msg));
        Ok(())
    }

    fn timer(&mut self, now: Duration, id: TimerId, tag: u64, out: &mut HandlerOut) {
        self.run(now, out, |n, ctx| n.on_timer(ctx, id, tag));
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        self.node.query(query)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

struct Build<'a> {
    spec: &'a NodeSpec,
    roster: &'a Arc<Roster>,
    machine: MachineId,
    mode: Mode,
    storage: DiskStorage,
}

impl SystemVisitor for Build<'_> {
    type Out = Result<Box<dyn Hosted>>;
    fn visit<S: System>(self) -> Self::Out {
        let node = S::build(self.spec, self.roster)?;
        Ok(Box::new(HostedNode {
            id: self.spec.id,
            machine: self.machine,
            mode: self.mode,
            node,
            rng: DetRng::from_rng(&mut rand::rng()),
            storage: self.storage,
            metrics: Metrics::default(),
            effects: Effects::default(),
            next_timer: 0,
        }))
    }
}

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
}

impl Host {
    pub fn new(machine: String, mode: Mode, dir: PathBuf, transport: Rc<Transport>) -> Self {
        Host {
            machine,
            mode,
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

    /// Starts a node; `roster` places every node of the cluster.
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
        self.placement = placement.into_iter().map(|(id, p)| (id.0, p)).collect();
        // An agent started without a name learns it from its place in the cluster.
        if let Some(me) = self.placement.values().find(|p| p.machine_id == machine)
            && me.machine != self.machine
        {
            self.machine = me.machine.clone();
            self.transport.set_name(&self.machine);
            super::set_identity(&self.machine);
        }
        let dir = self.dir.join("nodes").join(spec.id.0.to_string());
        let storage = DiskStorage::open(&dir).map_err(|e| Error::io(&dir, e))?;
        let hosted = with_system(
            &spec.system,
            Build {
                spec,
                roster,
                machine,
                mode: self.mode,
                storage,
            },
        )??;
        self.transport.set_kinds(hosted.kinds().len());
        self.nodes.insert(
            spec.id.0,
            Slot {
                hosted,
                pending: HashSet::new(),
            },
        );
        self.counts.entry(spec.id.0).or_default();
        crate::agent_log!(info, node_id = spec.id.0, role = %spec.role, "node spawned");
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        if let Some(slot) = self.nodes.get_mut(&spec.id.0) {
            slot.hosted.start(now, &mut out);
        }
        self.apply(spec.id.0, &mut out);
        self.out = out;
        Ok(())
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

    pub fn metrics(&self, id: u32) -> Option<&Metrics> {
        self.nodes.get(&id).map(|s| s.hosted.metrics())
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
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        let Some(slot) = self.nodes.get_mut(&env.to) else {
            crate::agent_log!(debug, to = env.to, "message for a node not running here");
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
                continue;
            };
            if peer.machine == self.machine {
                self.local.push_back(env);
                continue;
            }
            match self
                .transport
                .send(&peer.machine, &peer.address, env, m.kind_name)
            {
                Ok(copies) if copies > 1 => {
                    self.count(node, m.kind_name, |c| c.duplicated += u64::from(copies - 1))
                }
                Ok(_) => {}
                Err(SendError::Dropped) => self.count(node, m.kind_name, |c| c.dropped += 1),
            }
        }
    }
}
