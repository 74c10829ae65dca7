//! A simulated cluster: nodes on machines, driven by the event loop.
//! Faults live in `faults.rs`, node lifecycles (start, spawn, work, stop)
//! in `lifecycle.rs`.

use std::any::Any;
use std::path::Path;
use std::time::Duration;

use super::SimConfig;
use super::core::{Core, PendingTimers};
use super::queue::{Event, EventKind};
use super::stats::SimStats;
use super::trace::TraceEvent;
use crate::error::Result;
use crate::net::{ClockSkew, duration_ns};
use crate::node::{
    Ctx, Effects, IdBlock, MachineId, MemStorage, Message, Metrics, Mode, Node, NodeId, NodeParts,
    Record, TimerId, WorkId,
};
use crate::rng::{DetRng, stream};

/// Node ids from here up are not simulated nodes (external clients on real
/// machines use them); spawned nodes get ids below.
pub const SPAWN_LIMIT: u32 = 0x8000_0000;

// Like machines, nodes have a hot half (touched on every event) and a cold one.
pub(super) struct NodeSlot<N> {
    pub node: Option<N>,
    pub next_handle: u64,
    pub pending_timers: PendingTimers,
    pub rng: DetRng,
}

pub(super) struct NodeCold<N> {
    /// Stopped for good (killed, or exited by its own choice).
    pub killed: bool,
    pub incarnation: u32,
    /// `None` for a spawn whose node could not be built.
    pub factory: Option<Box<dyn FnMut() -> N>>,
    pub storage: MemStorage,
    pub metrics: Metrics,
    /// Why the node fail-stopped, until it starts again.
    pub failed: Option<String>,
}

/// Builds a spawned node of the simulated system: (id, role, config) to a
/// factory, or why not.
pub type Spawner<N> =
    Box<dyn FnMut(NodeId, &str, &serde_json::Value) -> Result<Box<dyn FnMut() -> N>>>;

/// Work outputs waiting for their completion event.
pub(super) struct WorkSlot {
    pub incarnation: u32,
    pub id: WorkId,
    pub output: Box<dyn Any + Send>,
}

/// A node that fail-stopped: when, which, why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub at: Duration,
    pub node: NodeId,
    pub why: String,
}

/// A simulated cluster of nodes of type `N` (use an enum of node kinds for
/// systems with several roles).
pub struct Simulation<N: Node> {
    pub(super) core: Core<N::Msg>,
    pub(super) nodes: Vec<NodeSlot<N>>,
    pub(super) nodes_cold: Vec<NodeCold<N>>,
    pub(super) effects: Effects<N::Msg>,
    /// Ids for nodes spawned by handlers: the next dense index.
    pub(super) spawn_ids: IdBlock,
    pub(super) spawner: Option<Spawner<N>>,
    /// Nodes placed on each machine and not stopped for good.
    pub(super) machine_load: Vec<u32>,
    pub(super) work: Vec<Option<WorkSlot>>,
    pub(super) free_work: Vec<u32>,
    pub(super) records: Vec<Record>,
    pub(super) failures: Vec<Failure>,
    /// Why the run stopped early (the simulation spun without time passing).
    pub(super) halted: Option<String>,
    /// The latest event time and how many events ran at it (spin guard).
    instant: (u64, u64),
}

impl<N: Node> Simulation<N> {
    pub fn new(cfg: SimConfig) -> Self {
        Simulation {
            core: Core::new(cfg),
            nodes: Vec::new(),
            nodes_cold: Vec::new(),
            effects: Effects::default(),
            spawn_ids: IdBlock::default(),
            spawner: None,
            machine_load: Vec::new(),
            work: Vec::new(),
            free_work: Vec::new(),
            records: Vec::new(),
            failures: Vec::new(),
            halted: None,
            instant: (u64::MAX, 0),
        }
    }

    pub fn seed(&self) -> u64 {
        self.core.cfg.seed
    }

    pub fn add_machine(&mut self, skew: ClockSkew) -> MachineId {
        self.machine_load.push(0);
        MachineId(self.core.add_machine(skew))
    }

    /// Places a node; it starts (`on_start`) at the current time. The
    /// factory builds it again after its machine restarts.
    pub fn add_node(&mut self, machine: MachineId, factory: impl FnMut() -> N + 'static) -> NodeId {
        let id = self.push_node(machine, Some(Box::new(factory)));
        self.schedule_start(id, self.core.now);
        NodeId(id)
    }

    /// Lets handlers spawn nodes (`Ctx::spawn`); without a spawner their
    /// requests are refused (counted as `spawn_refused`, logged).
    pub fn set_spawner(&mut self, spawner: Spawner<N>) {
        self.spawner = Some(spawner);
    }

    pub(super) fn push_node(
        &mut self,
        machine: MachineId,
        factory: Option<Box<dyn FnMut() -> N>>,
    ) -> u32 {
        let id = self.nodes.len() as u32;
        self.nodes.push(NodeSlot {
            node: None,
            next_handle: 0,
            pending_timers: PendingTimers::new(),
            rng: stream(self.core.cfg.seed, "node", id.into()),
        });
        self.nodes_cold.push(NodeCold {
            killed: factory.is_none(),
            incarnation: 0,
            factory,
            storage: MemStorage::default(),
            metrics: Metrics::default(),
            failed: None,
        });
        let core = &mut self.core;
        core.node_machine.push(machine.0);
        core.machines_cold[machine.0 as usize].nodes.push(id);
        core.stats.add_node();
        if self.nodes_cold[id as usize].factory.is_some() {
            self.machine_load[machine.0 as usize] += 1;
        }
        id
    }

    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.core.now)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn machine_count(&self) -> usize {
        self.core.machine_up.len()
    }

    pub fn machine_of(&self, node: NodeId) -> MachineId {
        MachineId(self.core.node_machine[node.0 as usize])
    }

    pub fn machine_up(&self, m: MachineId) -> bool {
        self.core.machine_up[m.0 as usize]
    }

    /// Nodes on `m` not stopped for good.
    pub fn machine_load(&self, m: MachineId) -> u32 {
        self.machine_load[m.0 as usize]
    }

    /// The live node, or `None` while its machine is down, it has not
    /// started yet, or it stopped.
    pub fn node(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id.0 as usize)?.node.as_ref()
    }

    pub fn query(&self, id: NodeId, query: &str) -> Option<serde_json::Value> {
        self.node(id)?.query(query)
    }

    pub fn storage(&self, id: NodeId) -> &MemStorage {
        &self.nodes_cold[id.0 as usize].storage
    }

    pub fn metrics(&self, id: NodeId) -> &Metrics {
        &self.nodes_cold[id.0 as usize].metrics
    }

    pub fn stats(&self) -> &SimStats {
        &self.core.stats
    }

    /// Every record nodes made so far, in the order they were made.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Nodes that fail-stopped (storage errors, unreadable state).
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Why the run stopped early, if it did: the simulation spun at one
    /// instant without time passing. No event runs after that.
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    pub fn trace_hash(&self) -> u64 {
        self.core.trace.hash()
    }

    /// Writes every trace event to `path` as JSON lines from now on.
    pub fn trace_to(&mut self, path: &Path) -> Result<()> {
        self.core.trace.write_to(path)
    }

    /// Written traces also carry each message's contents (for `dz view`).
    pub fn trace_contents(&mut self, on: bool) {
        self.core.trace.with_contents(on);
    }

    pub fn finish_trace(&mut self) -> std::io::Result<()> {
        self.core.trace.finish()
    }

    /// Codec failures seen with `check_wire` (each also dropped its message).
    pub fn wire_errors(&self) -> &[String] {
        &self.core.wire_errors
    }

    pub fn pending_events(&self) -> usize {
        self.core.queue.len()
    }

    #[inline(always)]
    pub(super) fn record(&mut self, ev: TraceEvent) {
        self.core.trace.record(self.core.now, ev);
    }

    // ----- running -----

    /// Runs every event up to and including virtual time `until`, unless
    /// the simulation spins (see [`Simulation::halted`]).
    pub fn run_until(&mut self, until: Duration) {
        let until = duration_ns(until);
        while self.step_ns(until) {}
        if self.halted.is_none() {
            self.core.now = self.core.now.max(until);
        }
    }

    /// Runs the next event if it is due by `until`; false when there is
    /// none (or the run halted). For checks after every event; the clock
    /// stays at the last event's time.
    pub fn step(&mut self, until: Duration) -> bool {
        self.step_ns(duration_ns(until))
    }

    #[inline(always)]
    fn step_ns(&mut self, until: u64) -> bool {
        if self.halted.is_some() {
            return false;
        }
        let Some(ev) = self.core.queue.pop_until(until) else {
            return false;
        };
        if ev.time == self.instant.0 {
            self.instant.1 += 1;
            if self.instant.1 > self.core.cfg.max_events_per_instant {
                self.halt(self.instant.1, &ev);
                return false;
            }
        } else {
            self.instant = (ev.time, 1);
        }
        self.core.now = ev.time;
        self.core.stats.events += 1;
        match ev.kind {
            EventKind::Deliver { from, to } => {
                let msg = ev.msg.expect("a delivery carries its message");
                let alive = self.nodes[to as usize].node.is_some();
                if self.core.admit(from, to, msg.kind(), alive) {
                    if self.core.cfg.log_messages {
                        self.log_delivery(from, to, msg.kind());
                    }
                    self.dispatch(to, |node, ctx| node.on_message(ctx, NodeId(from), msg));
                }
            }
            EventKind::Timer { node, id, tag } => {
                let pending = &mut self.nodes[node as usize].pending_timers;
                // Not pending: cancelled, or set before a crash.
                if let Some(i) = pending.iter().position(|&t| t == id) {
                    pending.swap_remove(i);
                    self.core.stats.timers += 1;
                    self.record(TraceEvent::Timer { node, tag });
                    self.dispatch(node, |n, ctx| n.on_timer(ctx, TimerId(id), tag));
                }
            }
            EventKind::Start { node, incarnation } => self.start_node(node, incarnation),
            EventKind::WorkDone { node, slot } => self.work_done(node, slot),
        }
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    #[cold]
    fn halt(&mut self, events: u64, last: &Event<N::Msg>) {
        let what = match last.kind {
            EventKind::Deliver { from, to } => format!(
                "a {} message from node {from} to node {to}",
                last.msg.as_ref().map_or("?", |m| m.kind_name())
            ),
            EventKind::Timer { node, tag, .. } => format!("a timer (tag {tag}) of node {node}"),
            EventKind::Start { node, .. } => format!("the start of node {node}"),
            EventKind::WorkDone { node, .. } => format!("finished work of node {node}"),
        };
        let why = format!(
            "the simulation spins: {events} events at t={:.6}s without time passing, the last {what} \
             (a node that sends or sets timers with zero delay in a loop never lets time pass)",
            self.core.now as f64 / 1e9
        );
        tracing::error!(vtime_ms = self.core.now as f64 / 1e6, "{why}");
        self.halted = Some(why);
    }

    #[cold]
    fn log_delivery(&self, from: u32, to: u32, kind: usize) {
        let (machine, node, from) = (self.machine_of(NodeId(to)), NodeId(to), NodeId(from));
        let vtime_ms = self.core.now as f64 / 1e6;
        tracing::trace!(%machine, %node, vtime_ms, %from, kind = N::Msg::kinds()[kind], "deliver");
    }

    /// Runs one handler of a live node, then carries out its sends and
    /// timer changes (and, rarely, spawns, work, records and stops).
    #[inline(always)]
    pub(super) fn dispatch(&mut self, id: u32, f: impl FnOnce(&mut N, &mut Ctx<'_, N::Msg>)) {
        self.spawn_ids = IdBlock {
            next: self.nodes.len() as u32,
            end: SPAWN_LIMIT,
        };
        let slot = &mut self.nodes[id as usize];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let cold = &mut self.nodes_cold[id as usize];
        let machine = self.core.node_machine[id as usize];
        let now = self.core.local_now(machine);
        let mut ctx = Ctx::at_ns(
            NodeId(id),
            MachineId(machine),
            Mode::Simulated,
            now,
            NodeParts {
                rng: &mut slot.rng,
                storage: &mut cold.storage,
                metrics: &mut cold.metrics,
                effects: &mut self.effects,
                next_handle: &mut slot.next_handle,
                spawn_ids: &mut self.spawn_ids,
            },
        );
        f(node, &mut ctx);
        ctx.finish(self.core.cfg.fail_stop);
        // Timer commands are Copy: reading them by index and clearing skips
        // Drain's out-of-line drop on every event.
        for i in 0..self.effects.timers.len() {
            let cmd = self.effects.timers[i];
            self.core.timer(&mut slot.pending_timers, id, cmd);
        }
        self.effects.timers.clear();
        // One send is popped (a Drain's drop is a call); more are drained
        // in order (a broadcast of 19 large messages reversed in place
        // cost more than the call).
        if self.effects.sends.len() == 1 {
            let (to, msg) = self.effects.sends.pop().expect("one send");
            self.core.send(id, to.0, msg);
        } else if !self.effects.sends.is_empty() {
            for (to, msg) in self.effects.sends.drain(..) {
                self.core.send(id, to.0, msg);
            }
        }
        if self.effects.has_rare() {
            self.rare_effects(id);
        }
    }
}
