//! How simulated nodes come and go: starts (and restarts), nodes spawned
//! by handlers, work handed to the runtime, records, and stops (exit or
//! fail-stop).

use std::time::Duration;

use super::queue::EventKind;
use super::simulation::{Failure, Simulation, WorkSlot};
use super::trace::TraceEvent;
use crate::node::{MachineId, Node, NodeId, Placement, SpawnRequest, Stop, WorkId};

impl<N: Node> Simulation<N> {
    /// Starts node `id` at `at`, if its machine is up (else its machine's
    /// restart will).
    pub(super) fn schedule_start(&mut self, id: u32, at: u64) {
        let machine = self.core.node_machine[id as usize];
        if self.core.machine_up[machine as usize] {
            let incarnation = self.nodes_cold[id as usize].incarnation;
            self.core.queue.push(
                at,
                EventKind::Start {
                    node: id,
                    incarnation,
                },
            );
        }
    }

    pub(super) fn start_node(&mut self, id: u32, incarnation: u32) {
        let cold = &mut self.nodes_cold[id as usize];
        let machine = self.core.node_machine[id as usize];
        if cold.incarnation != incarnation
            || cold.killed
            || !self.core.machine_up[machine as usize]
            || self.nodes[id as usize].node.is_some()
        {
            return;
        }
        let Some(factory) = cold.factory.as_mut() else {
            return;
        };
        cold.failed = None;
        self.nodes[id as usize].node = Some(factory());
        self.record(TraceEvent::Start { node: id });
        self.dispatch(id, |node, ctx| node.on_start(ctx));
    }

    /// Spawns, work, records and stops a handler asked for.
    #[cold]
    pub(super) fn rare_effects(&mut self, id: u32) {
        if !self.effects.records.is_empty() {
            self.records.append(&mut self.effects.records);
        }
        let work = std::mem::take(&mut self.effects.work);
        for (work_id, w) in work {
            self.start_work(id, work_id, w);
        }
        let spawns = std::mem::take(&mut self.effects.spawns);
        for req in spawns {
            self.spawn(id, req);
        }
        match self.effects.stop.take() {
            None => {}
            Some(Stop::Exit) => {
                self.stop_for_good(id);
                self.record(TraceEvent::Exit { node: id });
            }
            Some(Stop::Failed(why)) => self.fail_stop(id, why),
        }
    }

    fn start_work(&mut self, node: u32, id: WorkId, work: Box<dyn crate::node::Work>) {
        let delay = crate::net::duration_ns(work.simulated_duration());
        let output = work.run();
        let entry = WorkSlot {
            incarnation: self.nodes_cold[node as usize].incarnation,
            id,
            output,
        };
        let slot = match self.free_work.pop() {
            Some(s) => {
                self.work[s as usize] = Some(entry);
                s
            }
            None => {
                self.work.push(Some(entry));
                (self.work.len() - 1) as u32
            }
        };
        self.core
            .queue
            .push(self.core.now + delay, EventKind::WorkDone { node, slot });
    }

    pub(super) fn work_done(&mut self, node: u32, slot: u32) {
        let entry = self.work[slot as usize]
            .take()
            .expect("a work slot is filled until its completion");
        self.free_work.push(slot);
        // Work of an earlier incarnation finished for nobody.
        if entry.incarnation != self.nodes_cold[node as usize].incarnation {
            return;
        }
        self.record(TraceEvent::WorkDone { node });
        let (id, output) = (entry.id, entry.output);
        self.dispatch(node, |n, ctx| n.on_work_done(ctx, id, output));
    }

    fn place(&self, asker: u32, placement: Placement) -> Option<MachineId> {
        match placement {
            Placement::Here => Some(MachineId(self.core.node_machine[asker as usize])),
            Placement::On(m) => ((m.0 as usize) < self.machine_count()).then_some(m),
            Placement::LeastLoaded => (0..self.machine_count() as u32)
                .filter(|&m| self.core.machine_up[m as usize])
                .min_by_key(|&m| (self.machine_load[m as usize], m))
                .map(MachineId),
        }
    }

    fn spawn(&mut self, asker: u32, req: SpawnRequest) {
        debug_assert_eq!(req.id.0 as usize, self.nodes.len(), "spawn ids are dense");
        let machine = self.place(asker, req.placement);
        let built = match (&mut self.spawner, machine) {
            (Some(spawner), Some(_)) => {
                spawner(req.id, &req.role, &req.config).map_err(|e| e.to_string())
            }
            (None, _) => Err("this simulation has no spawner".to_string()),
            (_, None) => Err(format!("no machine for placement {:?}", req.placement)),
        };
        let machine = machine.unwrap_or(MachineId(self.core.node_machine[asker as usize]));
        match built {
            Ok(factory) => {
                let id = self.push_node(machine, Some(factory));
                let delay = self.core.spawn_delay();
                self.schedule_start(id, self.core.now + delay);
                self.record(TraceEvent::Spawn {
                    node: asker,
                    new: id,
                    machine: machine.0,
                });
            }
            Err(why) => {
                // The id stays taken, by a node that never runs.
                self.push_node(machine, None);
                self.nodes_cold[asker as usize]
                    .metrics
                    .count("spawn_refused", 1);
                tracing::warn!(node = asker, new = req.id.0, "spawn refused: {why}");
            }
        }
    }

    /// Fail-stop: the node stops, loses what it had not synced (its process
    /// died) and stays down until its machine restarts.
    fn fail_stop(&mut self, id: u32, why: String) {
        let slot = &mut self.nodes[id as usize];
        slot.node = None;
        slot.pending_timers.clear();
        let machine = self.core.node_machine[id as usize];
        let cold = &mut self.nodes_cold[id as usize];
        cold.incarnation += 1;
        cold.storage
            .crash(&mut self.core.machines_cold[machine as usize].crash_rng);
        cold.failed = Some(why.clone());
        cold.metrics.count("fail_stops", 1);
        tracing::error!(
            machine = %MachineId(machine),
            node = %NodeId(id),
            vtime_ms = self.core.now as f64 / 1e6,
            reason = %why,
            "node stopped (fail-stop)"
        );
        self.failures.push(Failure {
            at: Duration::from_nanos(self.core.now),
            node: NodeId(id),
            why,
        });
        self.record(TraceEvent::FailStop { node: id });
    }
}
