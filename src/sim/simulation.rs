//! A simulated cluster: nodes on machines, driven by the event loop.

use std::path::Path;
use std::time::Duration;

use super::core::{Core, PendingTimers};
use super::network::{LinkSpec, MessageFaults, Network};
use super::queue::EventKind;
use super::stats::SimStats;
use super::trace::TraceEvent;
use super::{ClockSkew, SimConfig};
use crate::error::Result;
use crate::node::{
    Ctx, Effects, MachineId, MemStorage, Message, Metrics, Mode, Node, NodeId, NodeParts, TimerId,
};
use crate::rng::{DetRng, stream};

// Like machines, nodes have a hot half (touched on every event) and a cold one.
struct NodeSlot<N> {
    node: Option<N>,
    next_timer: u64,
    pending_timers: PendingTimers,
    rng: DetRng,
}

struct NodeCold<N> {
    killed: bool,
    incarnation: u32,
    factory: Box<dyn FnMut() -> N>,
    storage: MemStorage,
    metrics: Metrics,
}

/// A simulated cluster of nodes of type `N` (use an enum of node kinds for
/// systems with several roles).
pub struct Simulation<N: Node> {
    core: Core<N::Msg>,
    nodes: Vec<NodeSlot<N>>,
    nodes_cold: Vec<NodeCold<N>>,
    effects: Effects<N::Msg>,
}

impl<N: Node> Simulation<N> {
    pub fn new(cfg: SimConfig) -> Self {
        Simulation {
            core: Core::new(cfg),
            nodes: Vec::new(),
            nodes_cold: Vec::new(),
            effects: Effects::default(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.core.cfg.seed
    }

    pub fn add_machine(&mut self, skew: ClockSkew) -> MachineId {
        MachineId(self.core.add_machine(skew))
    }

    /// Places a node; it starts (`on_start`) at the current time. The
    /// factory builds it again after its machine restarts.
    pub fn add_node(&mut self, machine: MachineId, factory: impl FnMut() -> N + 'static) -> NodeId {
        let id = self.nodes.len() as u32;
        self.nodes.push(NodeSlot {
            node: None,
            next_timer: 0,
            pending_timers: PendingTimers::new(),
            rng: stream(self.core.cfg.seed, "node", id.into()),
        });
        self.nodes_cold.push(NodeCold {
            killed: false,
            incarnation: 0,
            factory: Box::new(factory),
            storage: MemStorage::default(),
            metrics: Metrics::default(),
        });
        let core = &mut self.core;
        core.node_machine.push(machine.0);
        core.machines_cold[machine.0 as usize].nodes.push(id);
        core.stats.add_node();
        if core.machine_up[machine.0 as usize] {
            core.queue.push(
                core.now,
                EventKind::Start {
                    node: id,
                    incarnation: 0,
                },
            );
        }
        NodeId(id)
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

    /// The live node, or `None` while its machine is down or it was killed.
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

    pub fn trace_hash(&self) -> u64 {
        self.core.trace.hash()
    }

    /// Writes every trace event to `path` as JSON lines from now on.
    pub fn trace_to(&mut self, path: &Path) -> Result<()> {
        self.core.trace.write_to(path)
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

    // ----- faults -----

    pub fn set_link(&mut self, from: MachineId, to: MachineId, spec: &LinkSpec) -> Result<()> {
        self.core.net.set_link(from.0, to.0, spec)
    }

    /// Takes the directed link `from → to` down or up.
    pub fn set_link_up(&mut self, from: MachineId, to: MachineId, up: bool) {
        self.core.net.set_link_up(from.0, to.0, up);
        self.record(TraceEvent::Link {
            from: from.0,
            to: to.0,
            up,
        });
    }

    pub fn isolate(&mut self, m: MachineId, on: bool) {
        self.core.net.set_isolated(m.0, on);
        self.record(TraceEvent::Isolate { machine: m.0, on });
    }

    /// Ends every partition and isolation.
    pub fn heal(&mut self) {
        self.core.net.heal_all();
        self.record(TraceEvent::Heal);
    }

    /// Message faults on what `machine` sends (`None`: every machine).
    pub fn set_faults(&mut self, machine: Option<MachineId>, faults: &MessageFaults) -> Result<()> {
        self.core.net.set_faults(machine.map(|m| m.0), faults)?;
        self.record(TraceEvent::Faults {
            machine: machine.map(|m| m.0),
        });
        Ok(())
    }

    /// Crashes a machine: its nodes lose volatile state and timers, storage
    /// keeps what was synced, and messages to it are dropped until restart.
    pub fn crash(&mut self, m: MachineId) {
        let core = &mut self.core;
        if !core.machine_up[m.0 as usize] {
            return;
        }
        core.machine_up[m.0 as usize] = false;
        let cold = &mut core.machines_cold[m.0 as usize];
        for &n in &cold.nodes {
            let slot = &mut self.nodes[n as usize];
            slot.node = None;
            slot.pending_timers.clear();
            let slot = &mut self.nodes_cold[n as usize];
            slot.incarnation += 1;
            slot.storage.crash(&mut cold.crash_rng);
        }
        self.record(TraceEvent::Crash { machine: m.0 });
    }

    /// Starts a crashed machine again; its nodes are rebuilt and started.
    pub fn restart(&mut self, m: MachineId) {
        let core = &mut self.core;
        if core.machine_up[m.0 as usize] {
            return;
        }
        core.machine_up[m.0 as usize] = true;
        for &n in &core.machines_cold[m.0 as usize].nodes {
            let slot = &self.nodes_cold[n as usize];
            if !slot.killed {
                let incarnation = slot.incarnation;
                core.queue.push(
                    core.now,
                    EventKind::Start {
                        node: n,
                        incarnation,
                    },
                );
            }
        }
        self.record(TraceEvent::Restart { machine: m.0 });
    }

    /// Stops one node for good (its machine keeps running).
    pub fn kill_node(&mut self, id: NodeId) {
        let slot = &mut self.nodes[id.0 as usize];
        slot.node = None;
        slot.pending_timers.clear();
        let slot = &mut self.nodes_cold[id.0 as usize];
        slot.killed = true;
        slot.incarnation += 1;
        self.record(TraceEvent::KillNode { node: id.0 });
    }

    fn record(&mut self, ev: TraceEvent) {
        self.core.trace.record(self.core.now, ev);
    }

    // ----- running -----

    /// Runs every event up to and including virtual time `until`.
    pub fn run_until(&mut self, until: Duration) {
        let until = Network::duration_ns(until);
        while let Some(ev) = self.core.queue.pop_until(until) {
            self.core.now = ev.time;
            self.core.stats.events += 1;
            match ev.kind {
                EventKind::Deliver { from, to, msg } => {
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
            }
        }
        self.core.now = self.core.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    fn start_node(&mut self, id: u32, incarnation: u32) {
        let cold = &mut self.nodes_cold[id as usize];
        let machine = self.core.node_machine[id as usize];
        if cold.incarnation != incarnation || cold.killed || !self.core.machine_up[machine as usize]
        {
            return;
        }
        self.nodes[id as usize].node = Some((cold.factory)());
        self.record(TraceEvent::Start { node: id });
        self.dispatch(id, |node, ctx| node.on_start(ctx));
    }

    #[cold]
    fn log_delivery(&self, from: u32, to: u32, kind: usize) {
        let (machine, node, from) = (self.machine_of(NodeId(to)), NodeId(to), NodeId(from));
        let vtime_ms = self.core.now as f64 / 1e6;
        tracing::trace!(%machine, %node, vtime_ms, %from, kind = N::Msg::kinds()[kind], "deliver");
    }

    /// Runs one handler of a live node, then carries out its sends and
    /// timer changes.
    #[inline(always)]
    fn dispatch(&mut self, id: u32, f: impl FnOnce(&mut N, &mut Ctx<'_, N::Msg>)) {
        let slot = &mut self.nodes[id as usize];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let cold = &mut self.nodes_cold[id as usize];
        let machine = self.core.node_machine[id as usize];
        let now = Duration::from_nanos(self.core.local_now(machine));
        let mut ctx = Ctx::new(
            NodeId(id),
            MachineId(machine),
            Mode::Simulated,
            now,
            NodeParts {
                rng: &mut slot.rng,
                storage: &mut cold.storage,
                metrics: &mut cold.metrics,
                effects: &mut self.effects,
                next_timer: &mut slot.next_timer,
            },
        );
        f(node, &mut ctx);
        for cmd in self.effects.timers.drain(..) {
            self.core.timer(&mut slot.pending_timers, id, cmd);
        }
        for (to, msg) in self.effects.sends.drain(..) {
            self.core.send(id, to.0, msg);
        }
    }
}
