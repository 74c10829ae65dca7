//! A link node: one node of a link between two datasets (see `plan.rs` for
//! the graph's shape and `linkmgr.rs` for who builds it). It keeps the
//! newest cumulative total of each sender (input leaves or link nodes one
//! layer down), and sends their sum to its receivers (link nodes one layer
//! up, or the output dataset's leaves) over reliable links. Totals are
//! cumulative and versioned, so drops, duplicates and reordering cost only
//! time, and a sender that stops leaves its last total in the sum. When
//! the link grows a level, a node is rewired: it tells its old receivers
//! to drop its total (`Unlink`) and sends its whole total to the new ones,
//! so the outputs are exact again once both arrived.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::data::DataNode;
use super::link::{Link, LinkConfig};
use super::msg::{Body, DsMsg};
use crate::node::{Ctx, NodeId};

pub const TIMER_FLUSH: u64 = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkNodeConfig {
    pub receivers: Vec<NodeId>,
    /// The receivers are output leaves (sent `OutputAction`s).
    pub to_outputs: bool,
    /// Totals go out at most this often (DistZero's sum nodes: 30 ms).
    pub flush_ms: u64,
    pub link: LinkConfig,
}

impl Default for LinkNodeConfig {
    fn default() -> Self {
        LinkNodeConfig {
            receivers: Vec::new(),
            to_outputs: false,
            flush_ms: 30,
            link: LinkConfig::default(),
        }
    }
}

pub struct LinkNode {
    cfg: LinkNodeConfig,
    link: Link,
    /// Each sender's newest (version, total).
    senders: BTreeMap<NodeId, (u64, i64)>,
    version: u64,
    last_sent: Option<i64>,
    flush_armed: bool,
}

impl LinkNode {
    pub fn new(cfg: LinkNodeConfig) -> Self {
        LinkNode {
            link: Link::new(cfg.link),
            cfg,
            senders: BTreeMap::new(),
            version: 0,
            last_sent: None,
            flush_armed: false,
        }
    }

    pub fn total(&self) -> i64 {
        self.senders.values().map(|(_, t)| t).sum()
    }
    pub fn senders(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.senders.keys().copied()
    }
    pub fn receivers(&self) -> &[NodeId] {
        &self.cfg.receivers
    }
    pub fn to_outputs(&self) -> bool {
        self.cfg.to_outputs
    }
    pub fn link_stats(&self) -> super::link::LinkStats {
        self.link.stats
    }

    /// Tells the receivers at once that this node is there (a total of 0),
    /// so the graph can be read from the nodes before any input.
    pub fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        self.flush(ctx);
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        for body in self.link.accept(ctx, from, msg) {
            match body {
                Body::LinkTotal { version, total } => {
                    let newer = self.senders.get(&from).is_none_or(|(v, _)| *v < version);
                    if newer {
                        self.senders.insert(from, (version, total));
                        self.arm_flush(ctx);
                    }
                }
                Body::Unlink => {
                    if self.senders.remove(&from).is_some() {
                        self.arm_flush(ctx);
                    }
                }
                Body::Rewire { receivers } => {
                    let old = std::mem::replace(&mut self.cfg.receivers, receivers);
                    for r in old.into_iter().filter(|r| !self.cfg.receivers.contains(r)) {
                        self.link.send(ctx, r, Body::Unlink);
                    }
                    // The new receivers hear the whole total at once.
                    self.last_sent = None;
                    self.flush(ctx);
                }
                Body::Cancelled => {}
                other => {
                    ctx.count("unexpected_messages", 1);
                    tracing::debug!(node = %ctx.me(), "unexpected {other:?} from {from}");
                }
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) {
        if !self.link.on_timer(ctx, tag) && tag == TIMER_FLUSH {
            self.flush_armed = false;
            self.flush(ctx);
        }
    }

    fn arm_flush(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if !self.flush_armed {
            self.flush_armed = true;
            ctx.set_timer(Duration::from_millis(self.cfg.flush_ms), TIMER_FLUSH);
        }
    }

    fn flush(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let total = self.total();
        if self.last_sent == Some(total) {
            return;
        }
        self.last_sent = Some(total);
        self.version += 1;
        let body = if self.cfg.to_outputs {
            Body::OutputAction { total }
        } else {
            Body::LinkTotal {
                version: self.version,
                total,
            }
        };
        for &r in &self.cfg.receivers {
            self.link.send(ctx, r, body.clone());
        }
    }
}

impl DataNode {
    /// The link node this input leaf feeds, once a link was built over it.
    pub fn link_to(&self) -> Option<NodeId> {
        self.link_to
    }

    /// An input leaf sends its whole total to its link node on every input
    /// (inputs arrive at a user's pace; cumulative totals make resends safe).
    pub(super) fn push_link_total(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if let Some(node) = self.link_to {
            self.link_version += 1;
            let body = Body::LinkTotal {
                version: self.link_version,
                total: self.inputs,
            };
            self.link.send(ctx, node, body);
        }
    }
}
