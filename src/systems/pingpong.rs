//! Pingpong, the benchmark workload: every `interval` each node sends `Ping`
//! to a uniformly random other node, which answers `Pong`.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::Result;
use crate::node::{
    CodecError, Ctx, Message, Node, NodeId, TimerId, decode_postcard, encode_postcard,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PingPongMsg {
    Ping(u64),
    Pong(u64),
}

impl Message for PingPongMsg {
    fn kinds() -> &'static [&'static str] {
        &["Ping", "Pong"]
    }

    fn kind(&self) -> usize {
        match self {
            PingPongMsg::Ping(_) => 0,
            PingPongMsg::Pong(_) => 1,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("pingpong", bytes)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PingPongConfig {
    pub interval_ms: f64,
}

impl Default for PingPongConfig {
    fn default() -> Self {
        PingPongConfig { interval_ms: 10.0 }
    }
}

pub struct PingPongNode {
    /// Shared by every node: per-node peer lists would not fit 100,000 nodes.
    roster: Arc<Roster>,
    interval: Duration,
    pings: u64,
    pongs: u64,
}

impl PingPongNode {
    pub fn new(roster: Arc<Roster>, interval: Duration) -> Self {
        PingPongNode {
            roster,
            interval,
            pings: 0,
            pongs: 0,
        }
    }

    pub fn pongs_received(&self) -> u64 {
        self.pongs
    }
}

impl Node for PingPongNode {
    type Msg = PingPongMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, PingPongMsg>) {
        crate::node_log!(
            debug,
            ctx,
            interval_ms = self.interval.as_secs_f64() * 1e3,
            "pingpong node started"
        );
        // A random phase, so nodes do not all ping at the same instant.
        let phase = ctx
            .rng()
            .random_range(0..self.interval.as_nanos().max(1) as u64);
        ctx.set_timer(Duration::from_nanos(phase), 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, PingPongMsg>, from: NodeId, msg: PingPongMsg) {
        match msg {
            PingPongMsg::Ping(seq) => ctx.send(from, PingPongMsg::Pong(seq)),
            PingPongMsg::Pong(_) => self.pongs += 1,
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, PingPongMsg>, _timer: TimerId, _tag: u64) {
        let peers = &self.roster.nodes;
        let n = peers.len();
        if n > 1 {
            let me = ctx.me();
            let mut i = ctx.rng().random_range(0..n - 1);
            if peers[i].id == me {
                i = n - 1;
            }
            self.pings += 1;
            ctx.send(peers[i].id, PingPongMsg::Ping(self.pings));
        }
        ctx.set_timer(self.interval, 0);
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        (query == "status")
            .then(|| serde_json::json!({ "pings_sent": self.pings, "pongs_received": self.pongs }))
    }
}

pub struct PingPong;

impl System for PingPong {
    const NAME: &'static str = "pingpong";
    const ROLES: &'static [&'static str] = &["node"];
    type Node = PingPongNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<PingPongNode> {
        check_role::<Self>(spec)?;
        let cfg: PingPongConfig = parse_config(spec)?;
        if !(cfg.interval_ms.is_finite() && cfg.interval_ms > 0.0) {
            return Err(crate::Error::input(format!(
                "node {:?}: pingpong interval_ms must be positive",
                spec.name
            )));
        }
        Ok(PingPongNode::new(
            roster.clone(),
            Duration::from_secs_f64(cfg.interval_ms / 1e3),
        ))
    }
}
