//! Spawner, a small test of nodes that create nodes: each parent spawns
//! children (the first on the next machine, the rest on the least loaded
//! one); a child greets its parent, which pings it; the child answers, and
//! every `exit_every`-th one exits after its first answer. A second round
//! of pings, `round_ms` after the spawns, reaches only the children still
//! running; the rest are dropped and counted by the runtime. Generic on purpose: it exercises
//! placement, ids, addressing and exit the same way in every mode.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::{
    CodecError, Ctx, MachineId, Message, Node, NodeId, Placement, TimerId, decode_postcard,
    encode_postcard,
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SpawnerMsg {
    /// A child started.
    Hello {
        index: u32,
    },
    Ping {
        round: u32,
    },
    Pong {
        round: u32,
        index: u32,
    },
}

impl Message for SpawnerMsg {
    fn kinds() -> &'static [&'static str] {
        &["Hello", "Ping", "Pong"]
    }
    fn kind(&self) -> usize {
        match self {
            SpawnerMsg::Hello { .. } => 0,
            SpawnerMsg::Ping { .. } => 1,
            SpawnerMsg::Pong { .. } => 2,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("spawner", bytes)
    }
}

/// A parent's config (`dz cluster up --system spawner --config '{…}'`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParentConfig {
    pub children: u32,
    /// Every n-th child (n-1, 2n-1, …) exits after its first pong; 0: none.
    pub exit_every: u32,
    /// Wait this long before spawning, so every machine is up.
    pub start_after_ms: u64,
    /// Time between the two rounds of pings.
    pub round_ms: u64,
}

impl Default for ParentConfig {
    fn default() -> Self {
        ParentConfig {
            children: 3,
            exit_every: 2,
            start_after_ms: 300,
            round_ms: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildConfig {
    pub parent: u32,
    pub index: u32,
    pub exit: bool,
}

pub enum SpawnerNode {
    Parent {
        cfg: ParentConfig,
        /// Parents in the cluster (one per machine as `cluster up` places them).
        machines: u32,
        children: Vec<NodeId>,
        refused: u32,
        hellos: u32,
        pongs: [u32; 2],
        round: u32,
    },
    Child {
        cfg: ChildConfig,
        pings: u32,
    },
}

impl Node for SpawnerNode {
    type Msg = SpawnerMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, SpawnerMsg>) {
        match self {
            SpawnerNode::Parent { cfg, .. } => {
                ctx.set_timer(Duration::from_millis(cfg.start_after_ms), 0);
            }
            SpawnerNode::Child { cfg, .. } => {
                ctx.send(NodeId(cfg.parent), SpawnerMsg::Hello { index: cfg.index });
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, SpawnerMsg>, _: TimerId, _: u64) {
        let SpawnerNode::Parent {
            cfg,
            machines,
            children,
            refused,
            round,
            ..
        } = self
        else {
            return;
        };
        if *round == 0 {
            for index in 0..cfg.children {
                let placement = if index == 0 {
                    Placement::On(MachineId((ctx.machine().0 + 1) % *machines))
                } else {
                    Placement::LeastLoaded
                };
                let exit = cfg.exit_every > 0 && index % cfg.exit_every == cfg.exit_every - 1;
                let config =
                    serde_json::json!({ "parent": ctx.me().0, "index": index, "exit": exit });
                match ctx.spawn("child", config, placement) {
                    Some(id) => children.push(id),
                    None => *refused += 1,
                }
            }
        }
        *round += 1;
        if *round == 1 {
            // Round 1 pings each child as it says hello (a message sent
            // before a child starts may be dropped).
            ctx.set_timer(Duration::from_millis(cfg.round_ms), 0);
            return;
        }
        for &c in children.iter() {
            ctx.send(c, SpawnerMsg::Ping { round: 2 });
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, SpawnerMsg>, from: NodeId, msg: SpawnerMsg) {
        match (self, msg) {
            (SpawnerNode::Parent { hellos, .. }, SpawnerMsg::Hello { .. }) => {
                *hellos += 1;
                ctx.send(from, SpawnerMsg::Ping { round: 1 });
            }
            (SpawnerNode::Parent { pongs, .. }, SpawnerMsg::Pong { round, .. }) => {
                // Rounds are 1 and 2; anything else is ignored.
                if let Some(p) = (round as usize)
                    .checked_sub(1)
                    .and_then(|r| pongs.get_mut(r))
                {
                    *p += 1;
                }
            }
            (SpawnerNode::Child { cfg, pings }, SpawnerMsg::Ping { round }) => {
                *pings += 1;
                ctx.send(
                    from,
                    SpawnerMsg::Pong {
                        round,
                        index: cfg.index,
                    },
                );
                if cfg.exit {
                    ctx.exit();
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
            SpawnerNode::Parent {
                children,
                refused,
                hellos,
                pongs,
                ..
            } => serde_json::json!({
                "children": children.iter().map(|c| c.0).collect::<Vec<_>>(),
                "refused": refused,
                "hellos": hellos,
                "pongs": pongs,
            }),
            SpawnerNode::Child { cfg, pings } => {
                serde_json::json!({ "parent": cfg.parent, "index": cfg.index, "pings": pings })
            }
        })
    }
}

pub struct Spawner;

impl System for Spawner {
    const NAME: &'static str = "spawner";
    const ROLES: &'static [&'static str] = &["parent", "child"];
    type Node = SpawnerNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<SpawnerNode> {
        check_role::<Self>(spec)?;
        if spec.role == "child" {
            let cfg: ChildConfig = serde_json::from_value(spec.config.clone()).map_err(|e| {
                Error::input(format!("node {:?}: bad child config: {e}", spec.name))
            })?;
            return Ok(SpawnerNode::Child { cfg, pings: 0 });
        }
        let cfg: ParentConfig = parse_config(spec)?;
        let machines = roster.ids_with_role("parent").len().max(1) as u32;
        Ok(SpawnerNode::Parent {
            cfg,
            machines,
            children: Vec::new(),
            refused: 0,
            hellos: 0,
            pongs: [0; 2],
            round: 0,
        })
    }
}
