//! Blast, the transport benchmark workload: a sender keeps `window`
//! messages of `size` bytes in flight to a receiver, which acknowledges every
//! `ack_every`; the receiver measures one-way latency from the timestamp in
//! each message (sender and receiver share the cluster's epoch).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::metrics::record;
use crate::node::{
    CodecError, Ctx, Message, Node, NodeId, TimerId, decode_postcard, encode_postcard,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BlastMsg {
    /// Sender's clock at send, in ns, and padding to the requested size.
    Data {
        seq: u64,
        sent_ns: u64,
        pad: Vec<u8>,
    },
    /// Everything up to `seq` arrived.
    Ack { seq: u64 },
}

impl Message for BlastMsg {
    fn kinds() -> &'static [&'static str] {
        &["Data", "Ack"]
    }
    fn kind(&self) -> usize {
        match self {
            BlastMsg::Data { .. } => 0,
            BlastMsg::Ack { .. } => 1,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("blast", bytes)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlastConfig {
    /// Payload bytes per message (about; the header adds a few).
    pub size: usize,
    /// Messages in flight.
    pub window: u64,
    /// Messages to send in all.
    pub count: u64,
    pub ack_every: u64,
}

impl Default for BlastConfig {
    fn default() -> Self {
        BlastConfig {
            size: 100,
            window: 1000,
            count: 100_000,
            ack_every: 64,
        }
    }
}

pub enum BlastNode {
    Sender {
        cfg: BlastConfig,
        to: NodeId,
        sent: u64,
        acked: u64,
    },
    Receiver {
        cfg: BlastConfig,
        from: Option<NodeId>,
        got: u64,
        first_ns: u64,
        last_ns: u64,
        latencies: hdrhistogram::Histogram<u64>,
    },
}

impl BlastNode {
    fn send_more(
        ctx: &mut Ctx<'_, BlastMsg>,
        cfg: &BlastConfig,
        to: NodeId,
        sent: &mut u64,
        acked: u64,
    ) {
        while *sent < cfg.count && *sent - acked < cfg.window {
            *sent += 1;
            let sent_ns = ctx.now().as_nanos() as u64;
            ctx.send(
                to,
                BlastMsg::Data {
                    seq: *sent,
                    sent_ns,
                    pad: vec![0; cfg.size.saturating_sub(12)],
                },
            );
        }
    }
}

impl Node for BlastNode {
    type Msg = BlastMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, BlastMsg>) {
        if let BlastNode::Sender { .. } = self {
            // Give the receiver a moment to start on its machine.
            ctx.set_timer(Duration::from_millis(200), 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, BlastMsg>, _: TimerId, _: u64) {
        if let BlastNode::Sender {
            cfg,
            to,
            sent,
            acked,
        } = self
        {
            Self::send_more(ctx, cfg, *to, sent, *acked);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, BlastMsg>, from: NodeId, msg: BlastMsg) {
        match (self, msg) {
            (
                BlastNode::Sender {
                    cfg,
                    to,
                    sent,
                    acked,
                },
                BlastMsg::Ack { seq },
            ) => {
                *acked = (*acked).max(seq);
                Self::send_more(ctx, cfg, *to, sent, *acked);
            }
            (
                BlastNode::Receiver {
                    cfg,
                    from: peer,
                    got,
                    first_ns,
                    last_ns,
                    latencies,
                },
                BlastMsg::Data { seq, sent_ns, .. },
            ) => {
                let now = ctx.now().as_nanos() as u64;
                *peer = Some(from);
                *got += 1;
                if *got == 1 {
                    *first_ns = now;
                }
                *last_ns = now;
                record(latencies, now.saturating_sub(sent_ns));
                if seq % cfg.ack_every == 0 || seq == cfg.count {
                    ctx.send(from, BlastMsg::Ack { seq });
                }
            }
            _ => {}
        }
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        if query != "status" {
            return None;
        }
        Some(match self {
            BlastNode::Sender { sent, acked, .. } => {
                serde_json::json!({ "sent": sent, "acked": acked })
            }
            BlastNode::Receiver {
                got,
                first_ns,
                last_ns,
                latencies,
                cfg,
                ..
            } => {
                let secs = (*last_ns - *first_ns) as f64 / 1e9;
                serde_json::json!({
                    "received": got,
                    "done": *got >= cfg.count,
                    "seconds": secs,
                    "per_second": if secs > 0.0 { *got as f64 / secs } else { 0.0 },
                    "p50_us": latencies.value_at_quantile(0.5) as f64 / 1e3,
                    "p99_us": latencies.value_at_quantile(0.99) as f64 / 1e3,
                    "max_us": latencies.max() as f64 / 1e3,
                })
            }
        })
    }
}

pub struct Blast;

impl System for Blast {
    const NAME: &'static str = "blast";
    const ROLES: &'static [&'static str] = &["sender", "receiver"];
    type Node = BlastNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<BlastNode> {
        check_role::<Self>(spec)?;
        let cfg: BlastConfig = parse_config(spec)?;
        if cfg.window == 0 || cfg.ack_every == 0 || cfg.ack_every > cfg.window {
            return Err(Error::input(format!(
                "node {:?}: blast needs 0 < ack_every <= window",
                spec.name
            )));
        }
        Ok(match spec.role.as_str() {
            "sender" => {
                let to = roster
                    .ids_with_role("receiver")
                    .first()
                    .copied()
                    .ok_or_else(|| Error::input("blast needs a receiver node"))?;
                BlastNode::Sender {
                    cfg,
                    to,
                    sent: 0,
                    acked: 0,
                }
            }
            _ => BlastNode::Receiver {
                cfg,
                from: None,
                got: 0,
                first_ns: 0,
                last_ns: 0,
                latencies: hdrhistogram::Histogram::new(3).expect("3 significant digits"),
            },
        })
    }
}
