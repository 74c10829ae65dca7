//! Lamport logical clocks on machines of different speeds.
//!
//! Each machine ticks `rate` times per second. On a tick it takes one
//! message from its unbounded queue if there is one (`clock = max(clock,
//! msg) + 1`, event `receive`); otherwise with probability `internal_prob`
//! it has an internal event, else it sends its clock to the next machine,
//! the one after, or all others (equally likely; event `send`). Internal and
//! send events add one to the clock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::{
    CodecError, Ctx, Message, Node, NodeId, TimerId, decode_postcard, encode_postcard,
};

/// How many log rows a machine keeps; past that only the summary grows.
pub const MAX_LOG_ROWS: usize = 1_000_000;
/// Rows returned per `log:<from>` query.
pub const LOG_PAGE: usize = 10_000;
const CLOCK_FILE: &str = "clock";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClockMsg {
    /// A logical timestamp.
    Stamp(u64),
}

impl Message for ClockMsg {
    fn kinds() -> &'static [&'static str] {
        &["Stamp"]
    }

    fn kind(&self) -> usize {
        0
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("clocks", bytes)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// Ticks per second of (virtual) time.
    pub rate: f64,
    /// Probability that a tick with an empty queue is an internal event.
    pub internal_prob: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            rate: 1.0,
            internal_prob: 0.7,
        }
    }
}

impl ClockConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!("rate {} must be a positive number", self.rate));
        }
        if !(0.0..1.0).contains(&self.internal_prob) {
            return Err(format!(
                "internal_prob {} must be in [0, 1)",
                self.internal_prob
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockEvent {
    Receive,
    Send,
    Internal,
}

/// One line of a machine's log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    pub index: u64,
    pub event: ClockEvent,
    /// The machine's system time, in seconds.
    pub time_s: f64,
    /// Messages still queued after this event.
    pub queue_len: usize,
    pub clock_before: u64,
    pub clock_after: u64,
    pub jump: u64,
    /// The timestamp taken from the queue (receive events).
    pub received: Option<u64>,
    /// Node ids sent to (send events).
    pub sent_to: Vec<u32>,
}

/// Running figures, complete even when the log is capped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockSummary {
    pub rate: f64,
    pub clock: u64,
    pub ticks: u64,
    pub receives: u64,
    pub sends: u64,
    pub internals: u64,
    pub max_jump: u64,
    pub max_queue: usize,
    pub queue_sum: u64,
    pub queue_now: usize,
    pub rows_dropped: u64,
}

impl ClockSummary {
    pub fn mean_queue(&self) -> f64 {
        if self.ticks == 0 {
            0.0
        } else {
            self.queue_sum as f64 / self.ticks as f64
        }
    }
}

pub struct ClockNode {
    cfg: ClockConfig,
    ring: Vec<NodeId>,
    clock: u64,
    queue: VecDeque<u64>,
    log: Vec<LogRow>,
    summary: ClockSummary,
}

impl ClockNode {
    pub fn new(cfg: ClockConfig, ring: Vec<NodeId>) -> Self {
        let summary = ClockSummary {
            rate: cfg.rate,
            ..Default::default()
        };
        ClockNode {
            cfg,
            ring,
            clock: 0,
            queue: VecDeque::new(),
            log: Vec::new(),
            summary,
        }
    }

    pub fn clock(&self) -> u64 {
        self.clock
    }

    pub fn log(&self) -> &[LogRow] {
        &self.log
    }

    pub fn summary(&self) -> &ClockSummary {
        &self.summary
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cfg.rate)
    }

    /// Targets of send action 0 (next), 1 (the one after) or 2 (all others).
    fn targets(&self, me: NodeId, action: u32) -> Vec<NodeId> {
        let n = self.ring.len();
        let Some(pos) = self.ring.iter().position(|&id| id == me) else {
            return Vec::new();
        };
        if n < 2 {
            return Vec::new();
        }
        match action {
            0 => vec![self.ring[(pos + 1) % n]],
            // With two machines "the one after" is the other one again.
            1 => vec![self.ring[(pos + 2.min(n - 1)) % n]],
            _ => (1..n).map(|k| self.ring[(pos + k) % n]).collect(),
        }
    }

    fn tick(&mut self, ctx: &mut Ctx<'_, ClockMsg>) {
        let before = self.clock;
        let (event, received, sent_to) = if let Some(ts) = self.queue.pop_front() {
            self.clock = self.clock.max(ts) + 1;
            (ClockEvent::Receive, Some(ts), Vec::new())
        } else if ctx.rng().random_bool(self.cfg.internal_prob) {
            self.clock += 1;
            (ClockEvent::Internal, None, Vec::new())
        } else {
            self.clock += 1;
            let action = ctx.rng().random_range(0..3u32);
            let targets = self.targets(ctx.me(), action);
            for &to in &targets {
                ctx.send(to, ClockMsg::Stamp(self.clock));
            }
            (
                ClockEvent::Send,
                None,
                targets.into_iter().map(|id| id.0).collect(),
            )
        };
        // Lamport clocks must never run backwards, not even across a crash.
        let _ = ctx.storage().write(CLOCK_FILE, &self.clock.to_le_bytes());
        let _ = ctx.storage().sync(CLOCK_FILE);
        let s = &mut self.summary;
        s.clock = self.clock;
        s.ticks += 1;
        s.max_jump = s.max_jump.max(self.clock - before);
        s.max_queue = s.max_queue.max(self.queue.len());
        s.queue_sum += self.queue.len() as u64;
        s.queue_now = self.queue.len();
        match event {
            ClockEvent::Receive => s.receives += 1,
            ClockEvent::Send => s.sends += 1,
            ClockEvent::Internal => s.internals += 1,
        }
        if self.log.len() < MAX_LOG_ROWS {
            self.log.push(LogRow {
                index: s.ticks - 1,
                event,
                time_s: ctx.now().as_secs_f64(),
                queue_len: self.queue.len(),
                clock_before: before,
                clock_after: self.clock,
                jump: self.clock - before,
                received,
                sent_to,
            });
        } else {
            s.rows_dropped += 1;
        }
    }
}

impl Node for ClockNode {
    type Msg = ClockMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, ClockMsg>) {
        if let Some(bytes) = ctx.storage().read(CLOCK_FILE)
            && let Ok(b) = <[u8; 8]>::try_from(bytes)
        {
            self.clock = u64::from_le_bytes(b);
            self.summary.clock = self.clock;
        }
        crate::node_log!(
            info,
            ctx,
            rate = self.cfg.rate,
            clock = self.clock,
            "clock machine started"
        );
        let period = self.period().as_nanos() as u64;
        let phase = ctx.rng().random_range(0..period.max(1));
        ctx.set_timer(Duration::from_nanos(phase), 0);
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, ClockMsg>, _from: NodeId, msg: ClockMsg) {
        let ClockMsg::Stamp(ts) = msg;
        self.queue.push_back(ts);
        self.summary.max_queue = self.summary.max_queue.max(self.queue.len());
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ClockMsg>, _timer: TimerId, _tag: u64) {
        self.tick(ctx);
        ctx.set_timer(self.period(), 0);
    }

    /// `summary`, or `log:<from>` for up to [`LOG_PAGE`] rows from index
    /// `<from>` of the kept log.
    fn query(&self, query: &str) -> Option<serde_json::Value> {
        if query == "summary" || query == "status" {
            return serde_json::to_value(&self.summary).ok();
        }
        let from: usize = query.strip_prefix("log:")?.parse().ok()?;
        let rows = self.log.get(from.min(self.log.len())..)?;
        serde_json::to_value(&rows[..rows.len().min(LOG_PAGE)]).ok()
    }
}

pub struct Clocks;

impl System for Clocks {
    const NAME: &'static str = "clocks";
    const ROLES: &'static [&'static str] = &["machine"];
    type Node = ClockNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<ClockNode> {
        check_role::<Self>(spec)?;
        let cfg: ClockConfig = parse_config(spec)?;
        cfg.validate()
            .map_err(|e| Error::input(format!("node {:?}: {e}", spec.name)))?;
        Ok(ClockNode::new(cfg, roster.ids_with_role("machine")))
    }
}
