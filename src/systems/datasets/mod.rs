//! `datasets`: DistZero's self-scaling datasets. A dataset is a tree of
//! data nodes: leaves (height 0, one per input) under managers that own
//! key intervals. It grows by splitting kids and adding levels as leaves
//! arrive, shrinks by merging kids and absorbing a lone one as they leave,
//! and aggregates the leaves' input actions exactly up to the outputs over
//! reliable links, whatever the network drops, duplicates or reorders.
//!
//! Roles: `data` (the root is the roster's; every other data node is
//! spawned by the tree), `user` (plays a script of leaves and inputs) and
//! `output` (holds the root's running total); a link between datasets is
//! `link` (its manager) and `linknode` (spawned by the manager). See
//! `docs/datasets.md`.

pub mod config;
pub mod data;
pub mod durable;
pub mod growth;
pub mod handover;
pub mod interval;
pub mod leaves;
pub mod link;
pub mod linkmgr;
pub mod linknode;
pub mod msg;
pub mod plan;
pub mod user;

use std::sync::Arc;

use super::{NodeSpec, Roster, System, check_role};
use crate::error::{Error, Result};
use crate::node::{Ctx, Node, NodeId, TimerId};
use data::{DataConfig, DataNode};
use durable::Loaded;
use linkmgr::{LinkManager, LinkManagerConfig};
use linknode::{LinkNode, LinkNodeConfig};
use msg::DsMsg;
use user::{Output, User, UserConfig};

pub enum DatasetNode {
    Data(Box<DataNode>),
    User(Box<User>),
    Output(Output),
    /// A link's manager (role `link`).
    LinkManager(Box<LinkManager>),
    /// A node of a link (role `linknode`, spawned by its manager).
    LinkNode(Box<LinkNode>),
}

impl DatasetNode {
    pub fn as_data(&self) -> Option<&DataNode> {
        match self {
            DatasetNode::Data(d) => Some(d),
            _ => None,
        }
    }
    pub fn as_user(&self) -> Option<&User> {
        match self {
            DatasetNode::User(u) => Some(u),
            _ => None,
        }
    }
    pub fn as_output(&self) -> Option<&Output> {
        match self {
            DatasetNode::Output(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_link_manager(&self) -> Option<&LinkManager> {
        match self {
            DatasetNode::LinkManager(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_link_node(&self) -> Option<&LinkNode> {
        match self {
            DatasetNode::LinkNode(n) => Some(n),
            _ => None,
        }
    }

    /// Builds a node from its role and config (also what spawns use).
    pub fn from_role(name: &str, role: &str, config: &serde_json::Value) -> Result<Self> {
        let bad = |e: String| Error::input(format!("node {name:?}: {e}"));
        match role {
            "data" => {
                let cfg: DataConfig = from_value(name, config)?;
                cfg.limits.validate().map_err(bad)?;
                if cfg.parent.is_none() && cfg.height < 2 {
                    return Err(bad("a dataset's root has height 2 or more".into()));
                }
                Ok(DatasetNode::Data(Box::new(DataNode::new(cfg))))
            }
            "user" => {
                let cfg: UserConfig = from_value(name, config)?;
                cfg.validate().map_err(bad)?;
                Ok(DatasetNode::User(Box::new(User::new(cfg))))
            }
            "output" => {
                let cfg: OutputConfig = from_value(name, config)?;
                Ok(DatasetNode::Output(Output::new(cfg.link, cfg.volatile)))
            }
            "link" => {
                let cfg: LinkManagerConfig = from_value(name, config)?;
                cfg.validate().map_err(bad)?;
                Ok(DatasetNode::LinkManager(Box::new(LinkManager::new(cfg))))
            }
            "linknode" => {
                let cfg: LinkNodeConfig = from_value(name, config)?;
                if cfg.flush_ms == 0 {
                    return Err(bad("flush_ms must be > 0".into()));
                }
                Ok(DatasetNode::LinkNode(Box::new(LinkNode::new(cfg))))
            }
            other => Err(bad(format!("datasets has no role {other:?}"))),
        }
    }
}

impl DatasetNode {
    fn saves(&self) -> bool {
        match self {
            DatasetNode::Data(d) => d.saved.on,
            DatasetNode::User(u) => u.saved.on,
            DatasetNode::Output(o) => o.saved.on,
            // Links keep their state in memory (docs/datasets.md).
            DatasetNode::LinkManager(_) | DatasetNode::LinkNode(_) => false,
        }
    }

    /// Saves the node's state if it changed (`durable.rs`).
    fn save(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        match self {
            DatasetNode::Data(d) => d.saved = durable::save(ctx, &**d, d.saved),
            DatasetNode::User(u) => u.saved = durable::save(ctx, &**u, u.saved),
            DatasetNode::Output(o) => o.saved = durable::save(ctx, &*o, o.saved),
            DatasetNode::LinkManager(_) | DatasetNode::LinkNode(_) => {}
        }
    }

    /// Picks up the state saved before a restart, if any.
    fn restore(&mut self, ctx: &mut Ctx<'_, DsMsg>) -> Loaded<()> {
        fn took<T>(l: Loaded<T>, resume: impl FnOnce(T)) -> Loaded<()> {
            match l {
                Loaded::Fresh => Loaded::Fresh,
                Loaded::Unreadable => Loaded::Unreadable,
                Loaded::Restored(state) => {
                    resume(state);
                    Loaded::Restored(())
                }
            }
        }
        match self {
            DatasetNode::Data(d) => took(durable::load(ctx), |s| d.resume(ctx, s)),
            DatasetNode::User(u) => took(durable::load(ctx), |s| u.resume(ctx, s)),
            DatasetNode::Output(o) => took(durable::load(ctx), |s| o.resume(ctx, s)),
            DatasetNode::LinkManager(_) | DatasetNode::LinkNode(_) => Loaded::Fresh,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    pub link: link::LinkConfig,
    /// Keep the state in memory only (see `DataConfig::volatile`).
    pub volatile: bool,
}

fn from_value<T: serde::de::DeserializeOwned + Default>(
    name: &str,
    v: &serde_json::Value,
) -> Result<T> {
    if v.is_null() {
        return Ok(T::default());
    }
    T::deserialize(v).map_err(|e| Error::input(format!("node {name:?}: bad datasets config: {e}")))
}

impl Node for DatasetNode {
    type Msg = DsMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        if self.saves() {
            match self.restore(ctx) {
                Loaded::Fresh => {}
                Loaded::Restored(()) => {
                    ctx.count("restored", 1);
                    self.save(ctx);
                    return;
                }
                Loaded::Unreadable => return,
            }
        }
        match self {
            DatasetNode::Data(d) => d.on_start(ctx),
            DatasetNode::User(u) => u.on_start(ctx),
            DatasetNode::Output(_) => {}
            DatasetNode::LinkManager(m) => m.on_start(ctx),
            DatasetNode::LinkNode(n) => n.on_start(ctx),
        }
        self.save(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
        // An acknowledgement only shrinks what is resent: if a crash loses
        // that, the receiver drops the resent copies as duplicates.
        let worth_saving = !matches!(msg, DsMsg::Ack { .. });
        match self {
            DatasetNode::Data(d) => d.on_message(ctx, from, msg),
            DatasetNode::User(u) => u.on_message(ctx, from, msg),
            DatasetNode::Output(o) => o.on_message(ctx, from, msg),
            DatasetNode::LinkManager(m) => m.on_message(ctx, from, msg),
            DatasetNode::LinkNode(n) => n.on_message(ctx, from, msg),
        }
        if worth_saving {
            self.save(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, _timer: TimerId, tag: u64) {
        match self {
            DatasetNode::Data(d) => d.on_timer(ctx, tag),
            DatasetNode::User(u) => u.on_timer(ctx, tag),
            DatasetNode::Output(o) => o.on_timer(ctx, tag),
            DatasetNode::LinkManager(m) => m.on_timer(ctx, tag),
            DatasetNode::LinkNode(n) => n.on_timer(ctx, tag),
        }
        // Sending acknowledgements or resending changes nothing that must
        // survive a crash (both are repeated safely); anything that sends
        // something new, with a new sequence number, is saved.
        if !matches!(tag, link::TIMER_ACK | link::TIMER_RETRANSMIT) {
            self.save(ctx);
        }
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        if query != "status" {
            return None;
        }
        Some(match self {
            DatasetNode::Data(d) => serde_json::json!({
                "height": d.height(),
                "parent": d.parent(),
                "interval": d.interval(),
                "total": d.total(),
                "size": d.size(),
                "kids": d.kids_in_key_order(),
                // What a driver needs to check the tree from outside.
                "done": d.is_done(),
                "changing": d.op().is_some(),
                "problem": d.check().err(),
                "link": d.link_stats(),
                "link_to": d.link_to(),
            }),
            DatasetNode::User(u) => serde_json::json!({
                "sent_total": u.sent_total(),
                "known_leaves": u.known_leaves(),
                "finished": u.finished(),
                "link": u.link_stats(),
            }),
            DatasetNode::Output(o) => serde_json::json!({
                "total": o.total(),
                "updates": o.updates(),
            }),
            DatasetNode::LinkManager(m) => serde_json::json!({
                "nodes": m.node_ids(),
                "linked": m.linked().len(),
                "unlinked": m.unlinked(),
                "plan_layers": m.plan().map(|p| p.layers().len()),
            }),
            DatasetNode::LinkNode(n) => serde_json::json!({
                "senders": n.senders().collect::<Vec<_>>(),
                "receivers": n.receivers(),
                "total": n.total(),
                "link": n.link_stats(),
            }),
        })
    }
}

pub struct Datasets;

impl System for Datasets {
    const NAME: &'static str = "datasets";
    const ROLES: &'static [&'static str] = &["data", "user", "output", "link", "linknode"];
    type Node = DatasetNode;

    fn build(spec: &NodeSpec, _roster: &Arc<Roster>) -> Result<DatasetNode> {
        check_role::<Self>(spec)?;
        DatasetNode::from_role(&spec.name, &spec.role, &spec.config)
    }
}
