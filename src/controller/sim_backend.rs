//! The simulated backend: every machine lives in one [`Simulation`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use super::backend::{
    ClusterStats, ControlPlane, Deployment, LinkStats, MachineBackend, MachineInfo, MachineSpec,
    MachineState, NodeStats,
};
use crate::error::{Error, Result};
use crate::net::{Counts, DropReason, LinkSpec, MessageFaults};
use crate::node::{MachineId, Message, Mode, Node, NodeId, Record, StorageFaults};
use crate::node::{NodeSpec, Roster, System};
use crate::sim::{SimConfig, Simulation};

pub struct SimBackend<S: System> {
    sim: Simulation<S::Node>,
    machines: Vec<MachineInfo>,
}

impl<S: System> SimBackend<S> {
    pub fn new(cfg: SimConfig) -> Self {
        SimBackend {
            sim: Simulation::new(cfg),
            machines: Vec::new(),
        }
    }

    pub fn sim(&self) -> &Simulation<S::Node> {
        &self.sim
    }

    pub fn sim_mut(&mut self) -> &mut Simulation<S::Node> {
        &mut self.sim
    }

    fn check(&self, m: MachineId) -> Result<()> {
        if (m.0 as usize) < self.machines.len() {
            Ok(())
        } else {
            Err(Error::input(format!("no machine {m}")))
        }
    }

    fn set_state(&mut self, m: MachineId, state: MachineState) {
        self.machines[m.0 as usize].state = state;
    }
}

#[async_trait(?Send)]
impl<S: System> MachineBackend for SimBackend<S> {
    fn mode(&self) -> Mode {
        Mode::Simulated
    }

    async fn create(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>> {
        // In simulation a full disk is a storage fault with a capacity.
        super::refuse_disk_limits(specs, "simulated")?;
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            let id = self.sim.add_machine(spec.skew);
            let info = MachineInfo {
                id,
                name: spec.name.clone(),
                address: None,
                state: MachineState::Running,
            };
            self.machines.push(info.clone());
            out.push(info);
        }
        Ok(out)
    }

    async fn terminate(&mut self, machine: MachineId) -> Result<()> {
        self.check(machine)?;
        self.sim.crash(machine);
        self.set_state(machine, MachineState::Terminated);
        Ok(())
    }

    async fn crash(&mut self, machine: MachineId) -> Result<()> {
        self.check(machine)?;
        self.sim.crash(machine);
        self.set_state(machine, MachineState::Crashed);
        Ok(())
    }

    async fn restart(&mut self, machine: MachineId) -> Result<()> {
        self.check(machine)?;
        if self.machines[machine.0 as usize].state == MachineState::Terminated {
            return Err(Error::input(format!("machine {machine} was terminated")));
        }
        self.sim.restart(machine);
        self.set_state(machine, MachineState::Running);
        Ok(())
    }

    async fn isolate(&mut self, machine: MachineId, on: bool) -> Result<()> {
        self.check(machine)?;
        self.sim.isolate(machine, on);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<MachineInfo>> {
        Ok(self.machines.clone())
    }

    async fn cleanup(&mut self) -> Result<()> {
        Ok(())
    }

    fn plane(&mut self) -> &mut dyn ControlPlane {
        self
    }
}

#[async_trait(?Send)]
impl<S: System> ControlPlane for SimBackend<S> {
    async fn spawn_node(&mut self, node: NodeId, deployment: &Deployment) -> Result<()> {
        let spec = deployment
            .roster
            .nodes
            .get(node.0 as usize)
            .ok_or_else(|| Error::input(format!("no node {node} in the deployment")))?;
        if spec.system != S::NAME {
            return Err(Error::input(format!(
                "node {:?} is of system {:?}, but this simulation runs {:?}",
                spec.name,
                spec.system,
                S::NAME
            )));
        }
        let machine = deployment
            .machine_of(node)
            .ok_or_else(|| Error::input(format!("node {node} is not placed")))?;
        self.check(machine)?;
        if self.sim.node_count() != node.0 as usize {
            return Err(Error::runtime(format!(
                "nodes must be spawned in id order; got {node}"
            )));
        }
        let roster = deployment.roster.clone();
        self.sim.add_node(
            machine,
            factory::<S>(SpecIn::Roster(node.0 as usize), roster.clone())?,
        );
        // Nodes may spawn nodes of the same system; they see the same roster.
        self.sim.set_spawner(Box::new(move |id, role, config| {
            let spec = NodeSpec {
                id,
                name: format!("{role}-{}", id.0),
                system: S::NAME.to_string(),
                role: role.to_string(),
                config: config.clone(),
            };
            Ok(Box::new(factory::<S>(SpecIn::Own(spec), roster.clone())?))
        }));
        Ok(())
    }

    async fn kill_node(&mut self, node: NodeId) -> Result<()> {
        if node.0 as usize >= self.sim.node_count() {
            return Err(Error::input(format!("no node {node}")));
        }
        self.sim.kill_node(node);
        Ok(())
    }

    async fn drop_message(&mut self, from: NodeId, to: NodeId, kind: &str, nth: u64) -> Result<()> {
        self.sim.apply(&crate::net::Fault::DropMessage {
            from,
            to,
            kind: kind.to_string(),
            nth,
        })
    }

    async fn set_message_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &MessageFaults,
    ) -> Result<()> {
        if let Some(m) = machine {
            self.check(m)?;
        }
        self.sim.set_faults(machine, faults)
    }

    async fn set_link(&mut self, from: MachineId, to: MachineId, up: bool) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.sim.set_link_up(from, to, up);
        Ok(())
    }

    async fn set_storage_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &StorageFaults,
    ) -> Result<()> {
        self.sim.apply(&crate::net::Fault::Storage {
            machine,
            faults: faults.clone(),
        })
    }

    async fn set_link_spec(
        &mut self,
        from: MachineId,
        to: MachineId,
        spec: &LinkSpec,
    ) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.sim.set_link(from, to, spec)
    }

    async fn records(&mut self) -> Result<Vec<Record>> {
        Ok(self.sim.records().to_vec())
    }

    async fn heal_all(&mut self) -> Result<()> {
        self.sim.heal();
        Ok(())
    }

    async fn query(&mut self, node: NodeId, query: &str) -> Result<serde_json::Value> {
        if node.0 as usize >= self.sim.node_count() {
            return Err(Error::input(format!("no node {node}")));
        }
        if self.sim.node(node).is_none() {
            return Err(Error::runtime(format!("node {node} is not running")));
        }
        self.sim
            .query(node, query)
            .ok_or_else(|| Error::input(format!("node {node} does not answer {query:?}")))
    }

    async fn stats(&mut self) -> Result<ClusterStats> {
        Ok(cluster_stats(&self.sim))
    }

    async fn run_for(&mut self, d: Duration) -> Result<()> {
        self.sim.run_for(d);
        match self.sim.halted() {
            Some(why) => Err(Error::runtime(why.to_string())),
            None => Ok(()),
        }
    }

    fn elapsed(&self) -> Duration {
        self.sim.now()
    }
}

/// Where a factory finds its node's spec: deployed nodes read theirs in
/// the roster (a config can hold a replica's whole workload; no copy),
/// spawned ones own theirs.
pub enum SpecIn {
    Roster(usize),
    Own(NodeSpec),
}

impl SpecIn {
    fn get<'a>(&'a self, roster: &'a Roster) -> &'a NodeSpec {
        match self {
            SpecIn::Roster(i) => &roster.nodes[*i],
            SpecIn::Own(spec) => spec,
        }
    }
}

/// A node's factory: built once now, so a bad config fails here and not at
/// a restart.
pub fn factory<S: System>(
    spec: SpecIn,
    roster: std::sync::Arc<Roster>,
) -> Result<impl FnMut() -> S::Node + 'static> {
    let mut first = Some(S::build(spec.get(&roster), &roster)?);
    Ok(move || {
        first.take().unwrap_or_else(|| {
            S::build(spec.get(&roster), &roster).expect("config was validated at spawn")
        })
    })
}

fn by_kind<M: Message>(counts: &[Counts]) -> BTreeMap<String, Counts> {
    M::kinds()
        .iter()
        .zip(counts)
        .filter(|(_, c)| **c != Counts::default())
        .map(|(k, c)| ((*k).to_string(), *c))
        .collect()
}

/// The simulation's counters in the controller's backend-neutral form.
pub fn cluster_stats<N: Node>(sim: &Simulation<N>) -> ClusterStats {
    let stats = sim.stats();
    let nodes = (0..sim.node_count() as u32)
        .map(|i| NodeStats {
            id: NodeId(i),
            machine: sim.machine_of(NodeId(i)),
            kinds: by_kind::<N::Msg>(stats.node(i)),
            counters: sim.metrics(NodeId(i)).to_json(),
            failed: sim
                .failures()
                .iter()
                .rev()
                .find(|f| f.node == NodeId(i))
                .filter(|_| sim.node(NodeId(i)).is_none())
                .map(|f| f.why.clone()),
        })
        .collect();
    let links = stats
        .links()
        .into_iter()
        .map(|((from, to), counts)| LinkStats {
            from: MachineId(from),
            to: MachineId(to),
            kinds: by_kind::<N::Msg>(counts),
        })
        .collect();
    let drops = DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), stats.dropped(*r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    ClusterStats {
        nodes,
        links,
        drops,
    }
}
