//! Unit tests for handlers: [`Step`] drives one node by hand, one handler
//! at a time, and returns what each handler asked for (its [`Effects`]),
//! with no simulator or runtime around it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use distzero::node::{NodeId, Roster, testing::Step};
//! use distzero::systems::pingpong::{PingPongMsg, PingPongNode};
//!
//! let node = PingPongNode::new(Arc::new(Roster::default()), Duration::from_millis(10));
//! let mut step = Step::new(NodeId(0), node);
//! assert_eq!(step.start().timers.len(), 1, "a pingpong node sets its timer");
//! let answer = step.message(NodeId(3), PingPongMsg::Ping(9));
//! assert_eq!(answer.sends, vec![(NodeId(3), PingPongMsg::Pong(9))]);
//! ```

use std::any::Any;
use std::time::Duration;

use super::{
    Ctx, Effects, IdBlock, MachineId, MemStorage, Metrics, Mode, Node, NodeId, NodeParts, TimerId,
    WorkId,
};
use crate::rng::{DetRng, stream};

/// One node, stepped by hand.
pub struct Step<N: Node> {
    pub node: N,
    pub me: NodeId,
    pub machine: MachineId,
    /// The node's clock; move it with [`Step::advance`].
    pub now: Duration,
    pub rng: DetRng,
    pub storage: MemStorage,
    pub metrics: Metrics,
    next_handle: u64,
    /// Ids the node's spawns get.
    pub spawn_ids: IdBlock,
}

impl<N: Node> Step<N> {
    pub fn new(me: NodeId, node: N) -> Self {
        Step {
            node,
            me,
            machine: MachineId(me.0),
            now: Duration::ZERO,
            rng: stream(0, "node", me.0.into()),
            storage: MemStorage::default(),
            metrics: Metrics::default(),
            next_handle: 0,
            spawn_ids: IdBlock {
                next: 1_000_000,
                end: 2_000_000,
            },
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn run(&mut self, f: impl FnOnce(&mut N, &mut Ctx<'_, N::Msg>)) -> Effects<N::Msg> {
        let mut effects = Effects::default();
        let mut ctx = Ctx::new(
            self.me,
            self.machine,
            Mode::Simulated,
            self.now,
            NodeParts {
                rng: &mut self.rng,
                storage: &mut self.storage,
                metrics: &mut self.metrics,
                effects: &mut effects,
                next_handle: &mut self.next_handle,
                spawn_ids: &mut self.spawn_ids,
            },
        );
        f(&mut self.node, &mut ctx);
        ctx.finish(true);
        effects
    }

    pub fn start(&mut self) -> Effects<N::Msg> {
        self.run(|n, ctx| n.on_start(ctx))
    }

    pub fn message(&mut self, from: NodeId, msg: N::Msg) -> Effects<N::Msg> {
        self.run(|n, ctx| n.on_message(ctx, from, msg))
    }

    /// Fires a timer with `tag` (the id is not checked against any set).
    pub fn timer(&mut self, id: TimerId, tag: u64) -> Effects<N::Msg> {
        self.run(|n, ctx| n.on_timer(ctx, id, tag))
    }

    pub fn work_done(&mut self, id: WorkId, output: Box<dyn Any + Send>) -> Effects<N::Msg> {
        self.run(|n, ctx| n.on_work_done(ctx, id, output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{
        CodecError, Message, Stop, Storage, StorageFaults, decode_postcard, encode_postcard,
    };

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Put(u8);

    impl Message for Put {
        fn kinds() -> &'static [&'static str] {
            &["Put"]
        }
        fn kind(&self) -> usize {
            0
        }
        fn encode(&self, out: &mut Vec<u8>) {
            encode_postcard(self, out);
        }
        fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
            decode_postcard("Put", bytes)
        }
    }

    /// Stores each value, syncs, then acknowledges, ignoring storage errors
    /// (the mistake fail-stop protects against).
    struct Careless;

    impl Node for Careless {
        type Msg = Put;
        fn on_start(&mut self, _: &mut Ctx<'_, Put>) {}
        fn on_message(&mut self, ctx: &mut Ctx<'_, Put>, from: NodeId, msg: Put) {
            let _ = ctx.storage().append("log", &[msg.0]);
            let _ = ctx.storage().sync("log");
            ctx.send(from, msg);
        }
    }

    #[test]
    fn simulated_a_failed_sync_stops_the_node_and_its_acknowledgement() {
        let mut step = Step::new(NodeId(0), Careless);
        let ok = step.message(NodeId(1), Put(7));
        assert_eq!(ok.sends, vec![(NodeId(1), Put(7))]);
        assert!(ok.stop.is_none());
        let faults = StorageFaults {
            sync_error: 1.0,
            ..Default::default()
        };
        step.storage.set_faults(&faults, stream(1, "disk", 0));
        let failed = step.message(NodeId(1), Put(8));
        assert!(failed.sends.is_empty(), "an ack after a failed sync left");
        assert!(
            matches!(&failed.stop, Some(Stop::Failed(why)) if why.contains("sync")),
            "{:?}",
            failed.stop
        );
        assert_eq!(step.storage.read("log"), Some(&[7, 8][..]));
    }
}
