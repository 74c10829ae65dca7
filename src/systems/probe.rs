//! Probe, a network meter: a sender sends numbered, timestamped messages
//! at a steady rate to a receiver, which counts what arrives once, what
//! arrives twice, and the one-way latency. It shows a network's shape and
//! faults as a node sees them, the same way in every mode (sender and
//! receiver share the cluster's epoch).

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
pub enum ProbeMsg {
    /// The sender's clock at send, in ns.
    Data { seq: u64, sent_ns: u64 },
}

impl Message for ProbeMsg {
    fn kinds() -> &'static [&'static str] {
        &["Data"]
    }
    fn kind(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("probe", bytes)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Messages to send.
    pub count: u64,
    /// Time between two messages.
    pub interval_ms: f64,
    /// Wait this long before the first, so the receiver is up.
    pub start_after_ms: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            count: 1000,
            interval_ms: 2.0,
            start_after_ms: 200.0,
        }
    }
}

pub enum ProbeNode {
    Sender {
        cfg: ProbeConfig,
        to: NodeId,
        sent: u64,
    },
    Receiver {
        /// One bit per sequence number seen.
        seen: Vec<u64>,
        unique: u64,
        duplicates: u64,
        latency_ns: hdrhistogram::Histogram<u64>,
        latency_sum_ns: u128,
    },
}

impl Node for ProbeNode {
    type Msg = ProbeMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, ProbeMsg>) {
        if let ProbeNode::Sender { cfg, .. } = self {
            ctx.set_timer(Duration::from_secs_f64(cfg.start_after_ms / 1e3), 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ProbeMsg>, _: TimerId, _: u64) {
        if let ProbeNode::Sender { cfg, to, sent } = self
            && *sent < cfg.count
        {
            *sent += 1;
            let sent_ns = ctx.now().as_nanos() as u64;
            ctx.send(
                *to,
                ProbeMsg::Data {
                    seq: *sent,
                    sent_ns,
                },
            );
            ctx.set_timer(Duration::from_secs_f64(cfg.interval_ms / 1e3), 0);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ProbeMsg>, _: NodeId, msg: ProbeMsg) {
        let ProbeNode::Receiver {
            seen,
            unique,
            duplicates,
            latency_ns,
            latency_sum_ns,
        } = self
        else {
            return;
        };
        let ProbeMsg::Data { seq, sent_ns } = msg;
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= seen.len() {
            seen.resize(word + 1, 0);
        }
        if seen[word] & (1 << bit) != 0 {
            *duplicates += 1;
            return;
        }
        seen[word] |= 1 << bit;
        *unique += 1;
        let latency = (ctx.now().as_nanos() as u64).saturating_sub(sent_ns);
        record(latency_ns, latency);
        *latency_sum_ns += u128::from(latency);
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        if query != "status" {
            return None;
        }
        Some(match self {
            ProbeNode::Sender { sent, .. } => serde_json::json!({ "sent": sent }),
            ProbeNode::Receiver {
                unique,
                duplicates,
                latency_ns,
                latency_sum_ns,
                ..
            } => serde_json::json!({
                "received": unique,
                "duplicates": duplicates,
                "mean_ms": if *unique > 0 { *latency_sum_ns as f64 / *unique as f64 / 1e6 } else { 0.0 },
                "p50_ms": latency_ns.value_at_quantile(0.5) as f64 / 1e6,
                "p99_ms": latency_ns.value_at_quantile(0.99) as f64 / 1e6,
            }),
        })
    }
}

pub struct Probe;

impl System for Probe {
    const NAME: &'static str = "probe";
    const ROLES: &'static [&'static str] = &["receiver", "sender"];
    type Node = ProbeNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<ProbeNode> {
        check_role::<Self>(spec)?;
        let cfg: ProbeConfig = parse_config(spec)?;
        if !(cfg.interval_ms > 0.0 && cfg.start_after_ms >= 0.0) {
            return Err(Error::input(format!(
                "node {:?}: probe needs interval_ms > 0 and start_after_ms >= 0",
                spec.name
            )));
        }
        Ok(match spec.role.as_str() {
            "sender" => {
                let to = roster
                    .ids_with_role("receiver")
                    .first()
                    .copied()
                    .ok_or_else(|| Error::input("probe needs a receiver node"))?;
                ProbeNode::Sender { cfg, to, sent: 0 }
            }
            _ => ProbeNode::Receiver {
                seen: Vec::new(),
                unique: 0,
                duplicates: 0,
                latency_ns: hdrhistogram::Histogram::new(3).expect("3 significant digits"),
                latency_sum_ns: 0,
            },
        })
    }
}
