//! Faults injected into a simulation: the controller's [`Fault`]
//! vocabulary, applied to simulated machines, links and disks.

use super::queue::EventKind;
use super::simulation::Simulation;
use super::trace::TraceEvent;
use crate::error::{Error, Result};
use crate::net::{Fault, LinkSpec, MessageFaults};
use crate::node::{MachineId, Node, NodeId, StorageFaults};
use crate::rng::stream;

impl<N: Node> Simulation<N> {
    /// Injects one fault of the common vocabulary.
    pub fn apply(&mut self, fault: &Fault) -> Result<()> {
        let machine = |m: MachineId| -> Result<MachineId> {
            if (m.0 as usize) < self.machine_count() {
                Ok(m)
            } else {
                Err(Error::input(format!("no machine {m}")))
            }
        };
        match fault {
            Fault::Crash { machine: m } => self.crash(machine(*m)?),
            Fault::Restart { machine: m } => self.restart(machine(*m)?),
            Fault::Isolate { machine: m } => self.isolate(machine(*m)?, true),
            Fault::Heal { machine: Some(m) } => self.isolate(machine(*m)?, false),
            Fault::Heal { machine: None } => self.heal(),
            Fault::LinkDown { from, to } => self.set_link_up(machine(*from)?, machine(*to)?, false),
            Fault::LinkUp { from, to } => self.set_link_up(machine(*from)?, machine(*to)?, true),
            Fault::Messages { machine: m, faults } => {
                let m = m.map(machine).transpose()?;
                self.set_faults(m, faults)?;
            }
            Fault::Storage { machine: m, faults } => {
                let m = m.map(machine).transpose()?;
                self.set_storage_faults(m, faults)?;
            }
            Fault::KillNode { node } => {
                if node.0 as usize >= self.node_count() {
                    return Err(Error::input(format!("no node {node}")));
                }
                self.kill_node(*node);
            }
            Fault::DropMessage {
                from,
                to,
                kind,
                nth,
            } => {
                for n in [from, to] {
                    if n.0 as usize >= self.node_count() {
                        return Err(Error::input(format!("no node {n}")));
                    }
                }
                self.core.net.drop_one(from.0, to.0, kind, *nth)?;
            }
            Fault::Pause { .. } | Fault::Resume { .. } => {
                return Err(Error::input("simulated machines cannot be paused"));
            }
        }
        Ok(())
    }

    pub fn set_link(&mut self, from: MachineId, to: MachineId, spec: &LinkSpec) -> Result<()> {
        self.core.net.set_link(from.0, to.0, spec)
    }

    /// Takes the directed link `from → to` down or up.
    pub fn set_link_up(&mut self, from: MachineId, to: MachineId, up: bool) {
        self.core.net.set_link_up(from.0, to.0, up);
        self.record(TraceEvent::Link {
            from: from.0,
            to: to.0,
            up,
        });
    }

    pub fn isolate(&mut self, m: MachineId, on: bool) {
        self.core.net.set_isolated(m.0, on);
        self.record(TraceEvent::Isolate { machine: m.0, on });
    }

    /// Ends every partition and isolation.
    pub fn heal(&mut self) {
        self.core.net.heal_all();
        self.record(TraceEvent::Heal);
    }

    /// Message faults on what `machine` sends (`None`: every machine).
    pub fn set_faults(&mut self, machine: Option<MachineId>, faults: &MessageFaults) -> Result<()> {
        self.core.net.set_faults(machine.map(|m| m.0), faults)?;
        self.record(TraceEvent::Faults {
            machine: machine.map(|m| m.0),
        });
        Ok(())
    }

    /// Disk faults for the nodes of `machine` (`None`: every machine), each
    /// node's drawn from its own stream.
    pub fn set_storage_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &StorageFaults,
    ) -> Result<()> {
        faults.validate().map_err(Error::input)?;
        let seed = self.core.cfg.seed;
        for (i, cold) in self.nodes_cold.iter_mut().enumerate() {
            let on = self.core.node_machine[i];
            if machine.is_none_or(|m| m.0 == on) {
                let rng = stream(seed, "disk", ((on as u64) << 32) | i as u64);
                cold.storage.set_faults(faults, rng);
            }
        }
        self.record(TraceEvent::StorageFaults {
            machine: machine.map(|m| m.0),
        });
        Ok(())
    }

    /// Crashes a machine: its nodes lose volatile state and timers, storage
    /// keeps what was synced, and messages to it are dropped until restart.
    pub fn crash(&mut self, m: MachineId) {
        let core = &mut self.core;
        if !core.machine_up[m.0 as usize] {
            return;
        }
        core.machine_up[m.0 as usize] = false;
        let cold = &mut core.machines_cold[m.0 as usize];
        for &n in &cold.nodes {
            let slot = &mut self.nodes[n as usize];
            slot.node = None;
            slot.pending_timers.clear();
            let slot = &mut self.nodes_cold[n as usize];
            slot.incarnation += 1;
            slot.storage.crash(&mut cold.crash_rng);
        }
        self.record(TraceEvent::Crash { machine: m.0 });
    }

    /// Starts a crashed machine again, and with it every node of it that is
    /// not running (nodes that fail-stopped on a running machine too): they
    /// are rebuilt and started from their storage.
    pub fn restart(&mut self, m: MachineId) {
        let core = &mut self.core;
        let was_down = !core.machine_up[m.0 as usize];
        core.machine_up[m.0 as usize] = true;
        for &n in &core.machines_cold[m.0 as usize].nodes {
            let slot = &self.nodes_cold[n as usize];
            let stopped = was_down || slot.failed.is_some();
            if !slot.killed && stopped && self.nodes[n as usize].node.is_none() {
                core.queue.push(
                    core.now,
                    EventKind::Start {
                        node: n,
                        incarnation: slot.incarnation,
                    },
                );
            }
        }
        if was_down {
            self.record(TraceEvent::Restart { machine: m.0 });
        }
    }

    /// Stops one node for good (its machine keeps running).
    pub fn kill_node(&mut self, id: NodeId) {
        self.stop_for_good(id.0);
        self.record(TraceEvent::KillNode { node: id.0 });
    }

    pub(super) fn stop_for_good(&mut self, id: u32) {
        let slot = &mut self.nodes[id as usize];
        slot.node = None;
        slot.pending_timers.clear();
        let cold = &mut self.nodes_cold[id as usize];
        if !cold.killed {
            let m = self.core.node_machine[id as usize] as usize;
            self.machine_load[m] -= 1;
        }
        cold.killed = true;
        cold.incarnation += 1;
    }
}
