//! The context a handler gets. Sends and timer changes are collected as
//! effects; the runtime (simulator or agent) carries them out after the
//! handler returns, so handlers never block and never do I/O themselves.

use std::time::Duration;

use super::{MachineId, Metrics, Mode, NodeId, Storage, TimerId};
use crate::rng::DetRng;

/// A timer change requested by a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerCmd {
    Set {
        id: TimerId,
        after: Duration,
        tag: u64,
    },
    Cancel(TimerId),
}

/// What a handler asked for, in order. Reused between calls to avoid
/// allocating on every event.
#[derive(Debug)]
pub struct Effects<M> {
    pub sends: Vec<(NodeId, M)>,
    pub timers: Vec<TimerCmd>,
}

impl<M> Default for Effects<M> {
    fn default() -> Self {
        Effects {
            sends: Vec::new(),
            timers: Vec::new(),
        }
    }
}

impl<M> Effects<M> {
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.timers.is_empty()
    }
}

/// Everything a node may touch while handling an event.
pub struct Ctx<'a, M> {
    me: NodeId,
    machine: MachineId,
    mode: Mode,
    now: Duration,
    rng: &'a mut DetRng,
    storage: &'a mut dyn Storage,
    metrics: &'a mut Metrics,
    effects: &'a mut Effects<M>,
    next_timer: &'a mut u64,
}

/// The per-node state a runtime lends to a [`Ctx`].
pub struct NodeParts<'a, M> {
    pub rng: &'a mut DetRng,
    pub storage: &'a mut dyn Storage,
    pub metrics: &'a mut Metrics,
    pub effects: &'a mut Effects<M>,
    pub next_timer: &'a mut u64,
}

impl<'a, M> Ctx<'a, M> {
    /// Used by runtimes; nodes only receive a `Ctx`.
    pub fn new(
        me: NodeId,
        machine: MachineId,
        mode: Mode,
        now: Duration,
        parts: NodeParts<'a, M>,
    ) -> Self {
        Ctx {
            me,
            machine,
            mode,
            now,
            rng: parts.rng,
            storage: parts.storage,
            metrics: parts.metrics,
            effects: parts.effects,
            next_timer: parts.next_timer,
        }
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn machine(&self) -> MachineId {
        self.machine
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Time on this machine's clock since the cluster started (virtual in
    /// the simulator, skewed where the machine's clock is skewed).
    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn send(&mut self, to: NodeId, msg: M) {
        self.effects.sends.push((to, msg));
    }

    /// Fires `on_timer(id, tag)` after `after` on this machine's clock.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let id = TimerId(*self.next_timer);
        *self.next_timer += 1;
        self.effects.timers.push(TimerCmd::Set { id, after, tag });
        id
    }

    /// Cancelling a timer that already fired or was cancelled does nothing.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.effects.timers.push(TimerCmd::Cancel(id));
    }

    /// This node's own seeded random stream.
    pub fn rng(&mut self) -> &mut DetRng {
        self.rng
    }

    /// Durable bytes. Writes survive a crash only once synced.
    pub fn storage(&mut self) -> &mut dyn Storage {
        self.storage
    }

    pub fn count(&mut self, name: &'static str, by: u64) {
        self.metrics.count(name, by);
    }

    pub fn observe(&mut self, name: &'static str, value: u64) {
        self.metrics.observe(name, value);
    }
}
