//! A node of any system behind one object-safe face ([`Hosted`]) that
//! speaks in encoded messages, so the agent can host whatever system a
//! spec names. Its handlers' effects come out as a [`HandlerOut`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;

use super::disk::DiskStorage;
use crate::error::Result;
use crate::node::{
    Ctx, Effects, IdBlock, MachineId, Message, Metrics, Mode, Node, NodeId, NodeParts, NodeSpec,
    Record, Roster, SpawnRequest, Stop, System, TimerCmd, TimerId, Work, WorkId,
};
use crate::rng::DetRng;
use crate::systems::SystemVisitor;
use crate::wire::{WireError, decode_message};

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
    pub spawns: Vec<SpawnRequest>,
    pub work: Vec<(WorkId, Box<dyn Work>)>,
    pub records: Vec<Record>,
    pub stop: Option<Stop>,
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
    fn work_done(
        &mut self,
        now: Duration,
        id: WorkId,
        output: Box<dyn Any + Send>,
        out: &mut HandlerOut,
    );
    fn query(&self, query: &str) -> Option<serde_json::Value>;
    fn metrics(&self) -> &Metrics;
    /// Where this node's spawns take their ids from.
    fn set_spawn_ids(&mut self, ids: IdBlock);
    fn spawn_ids(&self) -> IdBlock;
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
    next_handle: u64,
    spawn_ids: IdBlock,
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
                next_handle: &mut self.next_handle,
                spawn_ids: &mut self.spawn_ids,
            },
        );
        f(&mut self.node, &mut ctx);
        ctx.finish(true);
        let e = &mut self.effects;
        out.timers.append(&mut e.timers);
        out.spawns.append(&mut e.spawns);
        out.work.append(&mut e.work);
        out.records.append(&mut e.records);
        if let Some(stop) = e.stop.take() {
            out.stop = Some(stop);
        }
        for (to, msg) in e.sends.drain(..) {
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

    fn work_done(
        &mut self,
        now: Duration,
        id: WorkId,
        output: Box<dyn Any + Send>,
        out: &mut HandlerOut,
    ) {
        self.run(now, out, |n, ctx| n.on_work_done(ctx, id, output));
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        self.node.query(query)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn set_spawn_ids(&mut self, ids: IdBlock) {
        self.spawn_ids = ids;
    }

    fn spawn_ids(&self) -> IdBlock {
        self.spawn_ids
    }
}

/// Builds a hosted node of the system a spec names.
pub struct Build<'a> {
    pub spec: &'a NodeSpec,
    pub roster: &'a Arc<Roster>,
    pub machine: MachineId,
    pub mode: Mode,
    pub storage: DiskStorage,
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
            next_handle: 0,
            spawn_ids: IdBlock::default(),
        }))
    }
}
