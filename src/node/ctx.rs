//! The context a handler gets. Sends, timers, spawns, work and records are
//! collected as effects ([`Effects`]); the runtime (simulator or agent)
//! carries them out after the handler returns.

use std::io;
use std::time::Duration;

use serde::Serialize;

use super::effects::{Placement, Record, SpawnRequest, Stop, TimerCmd, Work, WorkId};
use super::{Effects, MachineId, Metrics, Mode, NodeId, Storage, TimerId};
use crate::rng::DetRng;

/// Node ids a runtime lets a node hand out to nodes it spawns: `next` up
/// to (not including) `end`. The simulator hands out dense indexes; an
/// agent a block of its own, so ids never collide and no central allocator
/// is asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdBlock {
    pub next: u32,
    pub end: u32,
}

/// The per-node state a runtime lends to a [`Ctx`].
pub struct NodeParts<'a, M> {
    pub rng: &'a mut DetRng,
    pub storage: &'a mut dyn Storage,
    pub metrics: &'a mut Metrics,
    pub effects: &'a mut Effects<M>,
    /// Next timer or work id of this node.
    pub next_handle: &'a mut u64,
    pub spawn_ids: &'a mut IdBlock,
}

/// Storage as handlers see it: every call goes to the node's storage, and
/// the first error stops the node (fail-stop), whatever the handler does
/// with the error afterwards.
struct FailStop<'a> {
    inner: &'a mut dyn Storage,
    failure: Option<String>,
}

impl FailStop<'_> {
    fn check<T>(&mut self, what: &str, file: &str, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r
            && self.failure.is_none()
        {
            self.failure = Some(format!("storage {what} of {file:?} failed: {e}"));
        }
        r
    }
}

impl Storage for FailStop<'_> {
    fn read(&self, file: &str) -> Option<&[u8]> {
        self.inner.read(file)
    }
    fn write(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        let r = self.inner.write(file, data);
        self.check("write", file, r)
    }
    fn append(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        let r = self.inner.append(file, data);
        self.check("append", file, r)
    }
    fn truncate(&mut self, file: &str, len: usize) -> io::Result<()> {
        let r = self.inner.truncate(file, len);
        self.check("truncate", file, r)
    }
    fn remove(&mut self, file: &str) -> io::Result<()> {
        let r = self.inner.remove(file);
        self.check("remove", file, r)
    }
    fn sync(&mut self, file: &str) -> io::Result<()> {
        let r = self.inner.sync(file);
        self.check("sync", file, r)
    }
    fn files(&self) -> Vec<String> {
        self.inner.files()
    }
}

/// Everything a node may touch while handling an event.
pub struct Ctx<'a, M> {
    me: NodeId,
    machine: MachineId,
    mode: Mode,
    /// In ns: the simulator has it so, and `Duration::from_nanos` divides.
    now_ns: u64,
    rng: &'a mut DetRng,
    storage: FailStop<'a>,
    metrics: &'a mut Metrics,
    effects: &'a mut Effects<M>,
    next_handle: &'a mut u64,
    spawn_ids: &'a mut IdBlock,
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
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        Self::at_ns(me, machine, mode, now_ns, parts)
    }

    /// [`Ctx::new`] with the clock reading in ns.
    #[inline(always)]
    pub fn at_ns(
        me: NodeId,
        machine: MachineId,
        mode: Mode,
        now_ns: u64,
        parts: NodeParts<'a, M>,
    ) -> Self {
        Ctx {
            me,
            machine,
            mode,
            now_ns,
            rng: parts.rng,
            storage: FailStop {
                inner: parts.storage,
                failure: None,
            },
            metrics: parts.metrics,
            effects: parts.effects,
            next_handle: parts.next_handle,
            spawn_ids: parts.spawn_ids,
        }
    }

    /// Used by runtimes once the handler returned: settles fail-stop (a
    /// failed storage call stops the node and discards what it asked for).
    /// `fail_stop = false` is for showing what goes wrong without it: the
    /// node then carries on after a failed write, as if it had succeeded.
    #[inline(always)]
    pub fn finish(self, fail_stop: bool) {
        if self.storage.failure.is_some() || self.effects.stop.is_some() {
            self.settle_stop(fail_stop);
        }
    }

    #[cold]
    fn settle_stop(self, fail_stop: bool) {
        if let Some(why) = self.storage.failure
            && fail_stop
        {
            self.effects.stop = Some(Stop::Failed(why));
        }
        if self.effects.stop.is_some() {
            self.effects.discard_if_failed();
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
        Duration::from_nanos(self.now_ns)
    }

    /// [`Ctx::now`] in ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    pub fn send(&mut self, to: NodeId, msg: M) {
        self.effects.sends.push((to, msg));
    }

    fn handle(&mut self) -> u64 {
        let id = *self.next_handle;
        *self.next_handle += 1;
        id
    }

    /// Fires `on_timer(id, tag)` after `after` on this machine's clock.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let id = TimerId(self.handle());
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

    /// Durable bytes. Writes survive a crash only once synced. A call that
    /// fails stops the node (fail-stop): nothing it sends from this handler
    /// leaves, whatever it does with the error.
    pub fn storage(&mut self) -> &mut dyn Storage {
        &mut self.storage
    }

    pub fn count(&mut self, name: &'static str, by: u64) {
        self.metrics.count(name, by);
    }

    pub fn observe(&mut self, name: &'static str, value: u64) {
        self.metrics.observe(name, value);
    }

    /// Asks for a new node of this system, with `role` and `config`, placed
    /// by `placement`; its id is known at once, the node starts a little
    /// later (messages to it before then are dropped). `None` when this
    /// node's block of ids is used up.
    pub fn spawn(
        &mut self,
        role: &str,
        config: serde_json::Value,
        placement: Placement,
    ) -> Option<NodeId> {
        let ids = &mut *self.spawn_ids;
        if ids.next >= ids.end {
            return None;
        }
        let id = NodeId(ids.next);
        ids.next += 1;
        self.effects.spawns.push(SpawnRequest {
            id,
            role: role.to_string(),
            config,
            placement,
        });
        Some(id)
    }

    /// Hands slow work to the runtime; `on_work_done(id, output)` follows.
    pub fn start_work(&mut self, work: impl Work) -> WorkId {
        let id = WorkId(self.handle());
        self.effects.work.push((id, Box::new(work)));
        id
    }

    /// Reports a record for the analysis (see [`Record`]).
    pub fn record<R: Serialize>(&mut self, record: &R) {
        let bytes = postcard::to_allocvec(record).expect("encoding a record into a Vec");
        self.effects.records.push(Record {
            at_ns: self.now_ns,
            node: self.me,
            bytes,
        });
    }

    /// The node is done: it stops after this handler (what it sent goes
    /// out) and never starts again.
    pub fn exit(&mut self) {
        if self.effects.stop.is_none() {
            self.effects.stop = Some(Stop::Exit);
        }
    }

    /// Fail-stop: the node cannot go on safely (its durable state cannot be
    /// read, say). It stops now, nothing it sent from this handler leaves,
    /// and it starts again only when its machine restarts.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.effects.stop = Some(Stop::Failed(why.into()));
    }
}
