//! The simulator's shared machinery: virtual clock, event queue, machines,
//! network, counters and trace. Nodes live apart (in `Simulation`), so a
//! node's sends and timers are carried out while the node is still borrowed,
//! without moving effect buffers around.

use smallvec::SmallVec;

use super::SimConfig;
use super::network::Network;
use super::queue::{EventKind, EventQueue};
use super::stats::{SimStats, Tally};
use super::trace::{Trace, TraceEvent};
use crate::net::{ClockSkew, DropReason, Verdict, duration_ns};
use crate::node::{Message, TimerCmd, check_codec};
use crate::rng::{DetRng, stream};

/// Timers a node has set and not yet seen fire or cancelled.
pub(super) type PendingTimers = SmallVec<[u64; 2]>;

/// What the event loop rarely touches about a machine.
pub(super) struct MachineCold {
    pub crash_rng: DetRng,
    pub nodes: Vec<u32>,
}

pub(super) struct Core<M> {
    pub cfg: SimConfig,
    pub now: u64,
    pub queue: EventQueue<M>,
    // Machines as parallel vectors: the loop checks `up` for every message,
    // and a dense vector of flags stays in cache.
    pub machine_up: Vec<bool>,
    /// `None` for a perfect clock.
    pub machine_skew: Vec<Option<ClockSkew>>,
    /// Whether any machine's clock is skewed; if not, no lookup is needed.
    pub any_skew: bool,
    pub net_rng: Vec<DetRng>,
    pub machines_cold: Vec<MachineCold>,
    /// The machine of each node.
    pub node_machine: Vec<u32>,
    pub net: Network,
    pub stats: SimStats,
    pub trace: Trace,
    pub wire_errors: Vec<String>,
    spawn_delay: crate::net::Sampler,
    spawn_rng: DetRng,
}

impl<M: Message> Core<M> {
    pub fn new(cfg: SimConfig) -> Self {
        let (spawn_delay, seed) = (cfg.spawn_delay.clone(), cfg.seed);
        let kinds = M::kinds();
        Core {
            net: Network::new(
                kinds,
                cfg.seed,
                cfg.local_latency.clone(),
                cfg.default_latency.clone(),
            ),
            stats: SimStats::new(kinds.len(), cfg.link_stats),
            trace: Trace::new(kinds),
            cfg,
            now: 0,
            queue: EventQueue::new(),
            machine_up: Vec::new(),
            machine_skew: Vec::new(),
            any_skew: false,
            net_rng: Vec::new(),
            machines_cold: Vec::new(),
            node_machine: Vec::new(),
            wire_errors: Vec::new(),
            spawn_delay: spawn_delay.sampler(),
            spawn_rng: stream(seed, "spawn", 0),
        }
    }

    pub fn add_machine(&mut self, skew: ClockSkew) -> u32 {
        let id = self.machine_up.len() as u32;
        self.machine_up.push(true);
        self.machine_skew.push((!skew.is_zero()).then_some(skew));
        self.any_skew |= !skew.is_zero();
        self.net_rng.push(stream(self.cfg.seed, "net", id.into()));
        self.machines_cold.push(MachineCold {
            crash_rng: stream(self.cfg.seed, "crash", id.into()),
            nodes: Vec::new(),
        });
        self.net.add_machine();
        id
    }

    /// How long the next spawned node takes to start, in ns.
    pub fn spawn_delay(&mut self) -> u64 {
        self.spawn_delay.sample(&mut self.spawn_rng)
    }

    /// The machine's clock reading now.
    #[inline(always)]
    pub fn local_now(&self, machine: u32) -> u64 {
        if !self.any_skew {
            return self.now;
        }
        match &self.machine_skew[machine as usize] {
            None => self.now,
            Some(s) => s.local(self.now),
        }
    }

    #[inline(always)]
    pub fn timer(&mut self, pending: &mut PendingTimers, node: u32, cmd: TimerCmd) {
        match cmd {
            TimerCmd::Set { id, after, tag } => {
                let local = duration_ns(after);
                let delay = match self.any_skew {
                    false => local,
                    true => match &self.machine_skew[self.node_machine[node as usize] as usize] {
                        None => local,
                        Some(s) => s.true_delay(local),
                    },
                };
                pending.push(id.0);
                self.queue.push(
                    self.now + delay,
                    EventKind::Timer {
                        node,
                        id: id.0,
                        tag,
                    },
                );
            }
            TimerCmd::Cancel(id) => {
                if let Some(i) = pending.iter().position(|&t| t == id.0) {
                    pending.swap_remove(i);
                }
            }
        }
    }

    /// Whether a message arriving now reaches its node; counts and traces
    /// the delivery or the drop.
    #[inline(always)]
    pub fn admit(&mut self, from: u32, to: u32, kind: usize, node_alive: bool) -> bool {
        let link = (
            self.node_machine[from as usize],
            self.node_machine[to as usize],
        );
        let reason = if !self.machine_up[link.1 as usize] {
            Some(DropReason::MachineDown)
        } else if !node_alive {
            Some(DropReason::NoSuchNode)
        } else {
            self.net.can_arrive(link.0, link.1)
        };
        if let Some(reason) = reason {
            self.drop_msg(from, to, Some(link), kind, reason);
            return false;
        }
        self.stats.deliveries += 1;
        self.stats.tally(to, Some(link), kind, Tally::Delivered);
        self.trace.record(
            self.now,
            TraceEvent::Deliver {
                from,
                to,
                kind: kind as u16,
            },
        );
        true
    }

    #[inline(always)]
    pub fn send(&mut self, from: u32, to: u32, msg: M) {
        let kind = msg.kind();
        // The send is traced once its fate is known, so that a written
        // trace can say when it arrives (what pairs it with its delivery);
        // nothing is traced in between, so the hash is the same.
        let from_machine = self.node_machine[from as usize];
        let Some(&to_machine) = self.node_machine.get(to as usize) else {
            self.stats.tally(from, None, kind, Tally::Sent);
            self.drop_at_send(&msg, from, to, None, kind, DropReason::NoSuchNode);
            return;
        };
        let link = (from_machine, to_machine);
        self.stats.tally(from, Some(link), kind, Tally::Sent);
        let rng = &mut self.net_rng[from_machine as usize];
        match self
            .net
            .route(from_machine, to_machine, (from, to), kind, rng)
        {
            Verdict::Drop(reason) => self.drop_at_send(&msg, from, to, Some(link), kind, reason),
            Verdict::Deliver { delay, duplicate } => {
                let msg = if self.cfg.check_wire {
                    match check_codec(&msg) {
                        Ok(m) => m,
                        Err(e) => {
                            self.wire_errors.push(e);
                            let codec = DropReason::Codec;
                            self.drop_at_send(&msg, from, to, Some(link), kind, codec);
                            return;
                        }
                    }
                } else {
                    msg
                };
                let sent = TraceEvent::Send {
                    from,
                    to,
                    kind: kind as u16,
                };
                self.trace
                    .record_msg(self.now, sent, Some(self.now + delay), &msg);
                if let Some(d) = duplicate {
                    self.stats.tally(from, Some(link), kind, Tally::Duplicated);
                    self.trace.record_msg(
                        self.now,
                        TraceEvent::Duplicate {
                            from,
                            to,
                            kind: kind as u16,
                        },
                        Some(self.now + d),
                        &msg,
                    );
                    self.queue.push_msg(self.now + d, from, to, msg.clone());
                }
                self.queue.push_msg(self.now + delay, from, to, msg);
            }
        }
    }

    /// A message dropped as it is sent: its send is traced, then its drop.
    #[cold]
    fn drop_at_send(
        &mut self,
        msg: &M,
        from: u32,
        to: u32,
        link: Option<(u32, u32)>,
        kind: usize,
        reason: DropReason,
    ) {
        let sent = TraceEvent::Send {
            from,
            to,
            kind: kind as u16,
        };
        self.trace.record_msg(self.now, sent, None, msg);
        self.drop_msg(from, to, link, kind, reason);
    }

    #[cold]
    fn drop_msg(
        &mut self,
        from: u32,
        to: u32,
        link: Option<(u32, u32)>,
        kind: usize,
        reason: DropReason,
    ) {
        self.stats.drops[reason as usize] += 1;
        self.stats.tally(from, link, kind, Tally::Dropped);
        self.trace.record(
            self.now,
            TraceEvent::Drop {
                from,
                to,
                kind: kind as u16,
                reason,
            },
        );
    }
}
