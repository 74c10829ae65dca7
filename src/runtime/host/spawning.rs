//! Nodes that create nodes on real machines. A handler's `SpawnRequest`
//! becomes a `Start` to the chosen machine's agent, sent over the data
//! plane to the reserved id [`AGENT`] (the same reliable, ordered channel
//! as node messages, so a parent's first message to its child never
//! overtakes the `Start`). The agent that starts the node tells every other
//! agent where it runs (`Placed`); one that exits is announced the same way
//! (`Gone`). Load is what each agent's placement table says: the number of
//! nodes it knows on each machine, with no extra round trip.
//!
//! Ids: nodes the controller places have ids below [`SPAWN_BASE`]; each
//! machine owns the range `SPAWN_BASE + m * SPAN ..` and lends its nodes
//! blocks of [`BLOCK`] from it, remembering the next free id in its
//! directory, so ids never collide, across machines or agent restarts,
//! without asking anyone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Host, PeerAddr};
use crate::node::{IdBlock, MachineId, NodeId, NodeSpec, Placement, SpawnRequest};
use crate::runtime::transport::AGENT;
use crate::wire::Envelope;

/// The first id of a spawned node; the controller's nodes are below it.
pub const SPAWN_BASE: u32 = 1 << 24;
/// Ids each machine owns for spawned nodes.
pub const SPAN: u32 = 1 << 24;
/// Machines that can spawn: their ranges stay below [`AGENT`].
pub const MAX_SPAWNING_MACHINES: u32 = 126;
/// Ids lent to a node at a time (lent again when used up).
pub const BLOCK: u32 = 256;
/// The agent's record of the next id it may lend.
const IDS_FILE: &str = "spawn_ids";
/// Specs of the nodes spawned on this machine, one file each, so that a
/// restarted machine starts them again, as a simulated one does.
const SPAWNED_DIR: &str = "spawned";

/// What agents tell each other about spawned nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AgentMsg {
    /// Start this node here (asked by `parent`'s machine).
    Start {
        id: u32,
        parent: u32,
        system: String,
        role: String,
        config_json: String,
    },
    /// Node `id` now runs on machine `machine`.
    Placed { id: u32, machine: u32 },
    /// Node `id` exited for good.
    Gone { id: u32 },
    /// Machine `machine` (re)started: tell it where your spawned nodes run.
    Sync { machine: u32 },
}

impl AgentMsg {
    fn envelope(&self, from: u32) -> Envelope {
        Envelope {
            from,
            to: AGENT,
            kind: 0,
            payload: postcard::to_allocvec(self).expect("encoding an agent message"),
        }
    }
}

/// Whether `id` was made by a node rather than placed by the controller.
pub fn is_spawned(id: u32) -> bool {
    (SPAWN_BASE..AGENT).contains(&id)
}

/// Counters of spawning on one machine, reported with the transport's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpawnCounters {
    /// Nodes started here at another node's request.
    pub spawned: u64,
    /// Spawn requests that could not be carried out (no such machine, a
    /// bad role or config, ids used up).
    pub spawn_refused: u64,
    /// Nodes of this machine that exited.
    pub exited: u64,
    /// Messages to a node that does not exist (not yet, or no more).
    pub no_such_node: u64,
}

impl SpawnCounters {
    pub fn pairs(&self) -> [(&'static str, u64); 4] {
        [
            ("spawned", self.spawned),
            ("spawn_refused", self.spawn_refused),
            ("exited", self.exited),
            ("no_such_node", self.no_such_node),
        ]
    }
}

/// This machine's range of ids for spawned nodes, lent out in blocks.
pub struct SpawnIds {
    file: PathBuf,
    next: Option<u32>,
}

impl SpawnIds {
    pub fn new(dir: &Path) -> Self {
        SpawnIds {
            file: dir.join(IDS_FILE),
            next: None,
        }
    }

    /// A fresh block for a node of machine `m`; empty (so `ctx.spawn`
    /// answers `None`) when the range is used up or cannot be recorded.
    pub fn lend(&mut self, m: MachineId) -> IdBlock {
        if m.0 >= MAX_SPAWNING_MACHINES {
            return IdBlock::default();
        }
        let (start, end) = (SPAWN_BASE + m.0 * SPAN, SPAWN_BASE + m.0 * SPAN + SPAN);
        let next = *self.next.get_or_insert_with(|| {
            std::fs::read_to_string(&self.file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .filter(|n| (start..=end).contains(n))
                .unwrap_or(start)
        });
        if next + BLOCK > end {
            return IdBlock::default();
        }
        // Recorded before it is lent: a restarted agent never lends it again.
        let tmp = self.file.with_extension("tmp");
        let saved = std::fs::write(&tmp, (next + BLOCK).to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.file));
        if let Err(e) = saved {
            crate::agent_log!(error, error = %e, "cannot record spawned node ids; no ids lent");
            return IdBlock::default();
        }
        self.next = Some(next + BLOCK);
        IdBlock {
            next,
            end: next + BLOCK,
        }
    }
}

impl Host {
    /// Where a spawn goes: the machine and its data-plane address.
    fn choose(&self, asker: u32, placement: Placement) -> Option<PeerAddr> {
        let me = self.machine_id?;
        let m = match placement {
            Placement::Here => me,
            Placement::On(m) => m,
            Placement::LeastLoaded => {
                // Fewest nodes as this agent knows them; ties to the lowest id.
                let mut load: std::collections::BTreeMap<u32, usize> =
                    self.machines.keys().map(|&m| (m, 0)).collect();
                for p in self.placement.values() {
                    *load.entry(p.machine_id.0).or_default() += 1;
                }
                let least = load.into_iter().min_by_key(|&(m, n)| (n, m))?;
                MachineId(least.0)
            }
        };
        let found = self.machines.get(&m.0).cloned();
        if found.is_none() {
            crate::agent_log!(
                warn,
                node_id = asker,
                on = m.0,
                "spawn on an unknown machine"
            );
        }
        found
    }

    /// Carries out one spawn request of node `asker`.
    pub(super) fn request_spawn(&mut self, asker: u32, req: SpawnRequest) {
        let (Some(system), Some(target)) = (self.system.clone(), self.choose(asker, req.placement))
        else {
            self.spawn_counters.spawn_refused += 1;
            return;
        };
        // Known here at once, so the asker's messages to it follow the Start.
        self.placement.insert(req.id.0, target.clone());
        let msg = AgentMsg::Start {
            id: req.id.0,
            parent: asker,
            system,
            role: req.role,
            config_json: req.config.to_string(),
        };
        crate::agent_log!(info, node_id = asker, new = req.id.0, on = %target.machine, "spawn requested");
        self.tell_agent(&target, &msg, asker);
    }

    /// A node of this machine exited: forget it everywhere.
    pub(super) fn node_exited(&mut self, id: u32) {
        self.spawn_counters.exited += 1;
        self.exited.insert(id);
        self.placement.remove(&id);
        if is_spawned(id) {
            let _ = std::fs::remove_file(self.spawned_file(id));
        }
        self.broadcast(&AgentMsg::Gone { id });
    }

    fn spawned_file(&self, id: u32) -> PathBuf {
        self.dir.join(SPAWNED_DIR).join(format!("{id}.json"))
    }

    /// Once per agent start, when the controller first places a node
    /// here: starts the spawned nodes this machine ran before a restart,
    /// and asks the others where theirs run.
    pub(super) fn restore_spawned(&mut self) {
        let Some(me) = self.machine_id.filter(|_| !self.restored) else {
            return;
        };
        self.restored = true;
        let mut specs: Vec<NodeSpec> = std::fs::read_dir(self.dir.join(SPAWNED_DIR))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        specs.sort_by_key(|s| s.id);
        let roster = Arc::clone(&self.roster);
        for spec in specs {
            match self.start_node(&spec, &roster, me) {
                Ok(()) => {
                    crate::agent_log!(info, node_id = spec.id.0, role = %spec.role, "spawned node restarted");
                    if let Some(here) = self.machines.get(&me.0).cloned() {
                        self.placement.insert(spec.id.0, here);
                    }
                    self.broadcast(&AgentMsg::Placed {
                        id: spec.id.0,
                        machine: me.0,
                    });
                }
                Err(e) => {
                    crate::agent_log!(warn, node_id = spec.id.0, error = %e, "spawned node did not restart");
                }
            }
        }
        self.broadcast(&AgentMsg::Sync { machine: me.0 });
    }

    /// An envelope to [`AGENT`], from another agent or this one.
    pub(super) fn agent_message(&mut self, env: &Envelope) {
        let msg: AgentMsg = match postcard::from_bytes(&env.payload) {
            Ok(m) => m,
            Err(e) => {
                crate::agent_log!(warn, error = %e, "undecodable agent message dropped");
                return;
            }
        };
        match msg {
            AgentMsg::Start {
                id,
                parent,
                system,
                role,
                config_json,
            } => self.start_spawned(id, parent, system, role, &config_json),
            AgentMsg::Placed { id, machine } => {
                if let Some(addr) = self.machines.get(&machine).cloned() {
                    self.placement.insert(id, addr);
                }
            }
            AgentMsg::Gone { id } => {
                self.placement.remove(&id);
            }
            AgentMsg::Sync { machine } => {
                let (Some(me), Some(peer)) =
                    (self.machine_id, self.machines.get(&machine).cloned())
                else {
                    return;
                };
                let mine: Vec<u32> = self
                    .nodes
                    .keys()
                    .copied()
                    .filter(|&id| is_spawned(id))
                    .collect();
                for id in mine {
                    self.tell_agent(&peer, &AgentMsg::Placed { id, machine: me.0 }, AGENT);
                }
            }
        }
    }

    fn start_spawned(&mut self, id: u32, parent: u32, system: String, role: String, config: &str) {
        if self.machine_id.is_none() {
            // Before the controller placed a node here this agent does not
            // know the cluster: kept until it does.
            let msg = AgentMsg::Start {
                id,
                parent,
                system,
                role,
                config_json: config.to_string(),
            };
            self.early_starts.push(msg.envelope(parent));
            return;
        }
        let (Some(me), Some(here)) = (
            self.machine_id,
            self.machine_id
                .and_then(|m| self.machines.get(&m.0).cloned()),
        ) else {
            self.spawn_counters.spawn_refused += 1;
            return;
        };
        let spec = NodeSpec {
            id: NodeId(id),
            name: format!("{role}-{id}"),
            system,
            role,
            config: serde_json::from_str(config).unwrap_or(serde_json::Value::Null),
        };
        let roster = Arc::clone(&self.roster);
        match self.start_node(&spec, &roster, me) {
            Ok(()) => {
                self.spawn_counters.spawned += 1;
                crate::agent_log!(info, node_id = id, parent, role = %spec.role, "spawned node started");
                self.remember(&spec);
                self.placement.insert(id, here);
                self.broadcast(&AgentMsg::Placed { id, machine: me.0 });
            }
            Err(e) => {
                self.spawn_counters.spawn_refused += 1;
                crate::agent_log!(warn, node_id = id, parent, error = %e, "spawned node did not start");
            }
        }
    }

    /// Records a spawned node's spec, for a restart of this machine.
    fn remember(&self, spec: &NodeSpec) {
        let path = self.spawned_file(spec.id.0);
        let text = serde_json::to_vec(spec).expect("a spec encodes as JSON");
        let saved = std::fs::create_dir_all(self.dir.join(SPAWNED_DIR))
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = saved {
            crate::agent_log!(warn, node_id = spec.id.0, error = %e, "cannot record a spawned node; it will not restart");
        }
    }

    /// Tells every other machine (the ones this agent knows).
    fn broadcast(&mut self, msg: &AgentMsg) {
        let others: Vec<PeerAddr> = self
            .machines
            .values()
            .filter(|p| Some(p.machine_id) != self.machine_id)
            .cloned()
            .collect();
        for peer in others {
            self.tell_agent(&peer, msg, AGENT);
        }
    }

    fn tell_agent(&mut self, peer: &PeerAddr, msg: &AgentMsg, from: u32) {
        let env = msg.envelope(from);
        if Some(peer.machine_id) == self.machine_id {
            // Handled from the host loop, after the current handler.
            self.local.push_back(env);
        } else if self
            .transport
            .send_control(&peer.machine, &peer.address, env)
            .is_err()
        {
            crate::agent_log!(warn, to = %peer.machine, "agent message dropped: queue full");
        }
    }

    /// Lends node `id` a fresh block of ids when it has none left.
    pub(super) fn refill_ids(&mut self, id: u32) {
        let Some(me) = self.machine_id else {
            return;
        };
        if let Some(slot) = self.nodes.get_mut(&id) {
            let ids = slot.hosted.spawn_ids();
            if ids.next >= ids.end {
                slot.hosted.set_spawn_ids(self.ids.lend(me));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_repeat_across_restarts_and_stay_in_the_machine_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = SpawnIds::new(dir.path());
        let a = ids.lend(MachineId(2));
        let b = ids.lend(MachineId(2));
        assert_eq!(a.next, SPAWN_BASE + 2 * SPAN);
        assert_eq!(b.next, a.end);
        // A restarted agent reads where it stopped.
        let c = SpawnIds::new(dir.path()).lend(MachineId(2));
        assert_eq!(c.next, b.end);
        assert!(is_spawned(c.next) && is_spawned(c.end - 1));
        let last = SpawnIds::new(dir.path()).lend(MachineId(MAX_SPAWNING_MACHINES - 1));
        assert!(last.end <= AGENT, "{last:?}");
        assert_eq!(
            SpawnIds::new(dir.path()).lend(MachineId(MAX_SPAWNING_MACHINES)),
            IdBlock::default()
        );
    }

    #[test]
    fn agent_messages_round_trip() {
        let m = AgentMsg::Start {
            id: SPAWN_BASE,
            parent: 0,
            system: "spawner".into(),
            role: "child".into(),
            config_json: "{\"a\":1}".into(),
        };
        let env = m.envelope(0);
        assert_eq!(env.to, AGENT);
        assert_eq!(postcard::from_bytes::<AgentMsg>(&env.payload).unwrap(), m);
    }
}
