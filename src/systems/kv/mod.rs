//! `kv`: a replicated key-value service on a consensus protocol (see
//! `server.rs`), the agreement service people put under locks,
//! configuration and leader election. Every acknowledged write survives any
//! minority of crashes, and every history it produces is linearizable.
//!
//! Roles: `server` (the replicas) and `client` (a simulated workload that
//! records its history for the linearizability checker).

pub mod client;
pub mod log;
pub mod msg;
pub mod quorum;
pub mod server;
pub mod state;
pub mod workload;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::{Ctx, Node, NodeId, TimerId};
use msg::KvMsg;
use quorum::Quorum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// Log records are written but not synced before acknowledging.
    None,
    /// Each accepted slot is synced before it is acknowledged.
    Fsync,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    pub replication_quorum: Quorum,
    pub recovery_quorum: Quorum,
    /// Requests per slot.
    pub max_batch: usize,
    /// How long the master waits for a batch to fill.
    pub batch_interval_ms: f64,
    /// Slots in flight (prepared, not yet committed).
    pub window: u64,
    /// Let rotating coordinators replicate slots instead of the master.
    pub delegate: bool,
    pub persistence: Persistence,
    pub heartbeat_ms: f64,
    /// A follower suspects the master after a random time in [T, 2T).
    pub election_timeout_ms: f64,
    /// Applied slots between snapshots (which truncate the log).
    pub snapshot_every: u64,
    /// A deliberately broken variant that acknowledges a write once the
    /// master has it, before any quorum: for showing the checker can fail.
    pub unsafe_ack_before_quorum: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            replication_quorum: Quorum::StrictMajority,
            recovery_quorum: Quorum::StrictMajority,
            max_batch: 64,
            batch_interval_ms: 1.0,
            window: 32,
            delegate: false,
            persistence: Persistence::Fsync,
            heartbeat_ms: 50.0,
            election_timeout_ms: 300.0,
            snapshot_every: 1000,
            unsafe_ack_before_quorum: false,
        }
    }
}

impl KvConfig {
    pub fn validate(&self, servers: usize) -> std::result::Result<(), String> {
        if !self.unsafe_ack_before_quorum {
            quorum::check(self.recovery_quorum, self.replication_quorum, servers)?;
        }
        if self.max_batch == 0 || self.window == 0 || self.snapshot_every == 0 {
            return Err("max_batch, window and snapshot_every must be at least 1".into());
        }
        if !(self.heartbeat_ms > 0.0
            && self.election_timeout_ms > self.heartbeat_ms
            && self.batch_interval_ms >= 0.0)
        {
            return Err(
                "need 0 < heartbeat_ms < election_timeout_ms and batch_interval_ms >= 0".into(),
            );
        }
        Ok(())
    }
}

pub enum KvNode {
    Server(Box<server::Server>),
    Client(Box<client::Client>),
}

impl KvNode {
    pub fn as_server(&self) -> Option<&server::Server> {
        match self {
            KvNode::Server(s) => Some(s),
            KvNode::Client(_) => None,
        }
    }

    pub fn as_client(&self) -> Option<&client::Client> {
        match self {
            KvNode::Client(c) => Some(c),
            KvNode::Server(_) => None,
        }
    }
}

impl Node for KvNode {
    type Msg = KvMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        match self {
            KvNode::Server(s) => s.start(ctx),
            KvNode::Client(c) => c.start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, msg: KvMsg) {
        match self {
            KvNode::Server(s) => s.on_message(ctx, from, msg),
            KvNode::Client(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, KvMsg>, _timer: TimerId, tag: u64) {
        match self {
            KvNode::Server(s) => s.on_timer(ctx, tag),
            KvNode::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        match (self, query) {
            (KvNode::Server(s), "status") => Some(s.status()),
            (KvNode::Client(c), "status") => Some(c.status()),
            _ => None,
        }
    }
}

pub struct Kv;

impl System for Kv {
    const NAME: &'static str = "kv";
    const ROLES: &'static [&'static str] = &["server", "client"];
    type Node = KvNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<KvNode> {
        check_role::<Self>(spec)?;
        let servers = roster.ids_with_role("server");
        if servers.is_empty() {
            return Err(Error::input("a kv cluster needs at least one server"));
        }
        let bad = |e: String| Error::input(format!("node {:?}: {e}", spec.name));
        match spec.role.as_str() {
            "server" => {
                let cfg: KvConfig = parse_config(spec)?;
                cfg.validate(servers.len()).map_err(bad)?;
                let me = servers
                    .iter()
                    .position(|&s| s == spec.id)
                    .expect("a server is in the roster");
                Ok(KvNode::Server(Box::new(server::Server::new(
                    cfg, me, servers,
                ))))
            }
            _ => {
                let w: workload::Workload = parse_config(spec)?;
                w.validate().map_err(bad)?;
                Ok(KvNode::Client(Box::new(client::Client::new(w, servers))))
            }
        }
    }
}
