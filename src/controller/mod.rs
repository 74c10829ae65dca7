//! The controller: creates machines through a backend, places nodes on them,
//! runs the cluster with a fault schedule, queries nodes and collects
//! results, the same way in every mode.

mod backend;
mod sim_backend;

pub use crate::net::{Fault, ScheduledFault};
pub use backend::{
    ClusterStats, ControlPlane, Deployment, LinkStats, MachineBackend, MachineInfo, MachineSpec,
    MachineState, NodeStats, refuse_disk_limits,
};
pub use sim_backend::{SimBackend, cluster_stats};

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::LinkSpec;
use crate::node::{MachineId, Mode, NodeId};
use crate::node::{NodeSpec, Roster};

/// Nodes (in id order) with the machine each runs on.
pub type Placement = Vec<(NodeSpec, MachineId)>;

/// One directed link of a network shape: its latency and faults, or `None`
/// when the two machines cannot talk.
pub type DirectedLink = (MachineId, MachineId, Option<LinkSpec>);

/// Machines `m0..m{n-1}`, each running one node `n{i}` of `system` in
/// `role` with `config`: the shape of `dz cluster up`.
pub fn one_node_per_machine(
    n: u32,
    system: &str,
    role: &str,
    config: &serde_json::Value,
) -> (Vec<MachineSpec>, Placement) {
    let machines = (0..n)
        .map(|i| MachineSpec::named(format!("m{i}")))
        .collect();
    let placement = (0..n)
        .map(|i| {
            let spec = NodeSpec {
                id: NodeId(i),
                name: format!("n{i}"),
                system: system.to_string(),
                role: role.to_string(),
                config: config.clone(),
            };
            (spec, MachineId(i))
        })
        .collect();
    (machines, placement)
}

pub struct Controller<B: MachineBackend + ?Sized> {
    backend: Box<B>,
    machines: Vec<MachineInfo>,
    deployment: Deployment,
}

impl<B: MachineBackend + ?Sized> Controller<B> {
    pub fn new(backend: Box<B>) -> Self {
        Controller {
            backend,
            machines: Vec::new(),
            deployment: Deployment::default(),
        }
    }

    /// A controller for machines and nodes that already run (started by an
    /// earlier command).
    pub fn attach(backend: Box<B>, machines: Vec<MachineInfo>, deployment: Deployment) -> Self {
        Controller {
            backend,
            machines,
            deployment,
        }
    }

    pub fn mode(&self) -> Mode {
        self.backend.mode()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn machines(&self) -> &[MachineInfo] {
        &self.machines
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn machine_named(&self, name: &str) -> Result<MachineId> {
        self.machines
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.id)
            .ok_or_else(|| Error::input(format!("no machine named {name:?}")))
    }

    pub async fn create_machines(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>> {
        let created = self.backend.create(specs).await?;
        self.machines.extend(created.iter().cloned());
        Ok(created)
    }

    /// Places every node (given in id order, ids 0..n) and starts them.
    pub async fn deploy(&mut self, nodes: Placement) -> Result<()> {
        for (i, (spec, m)) in nodes.iter().enumerate() {
            if spec.id != NodeId(i as u32) {
                return Err(Error::input(format!(
                    "node {:?} has id {} but is number {i}",
                    spec.name, spec.id
                )));
            }
            if !self.machines.iter().any(|info| info.id == *m) {
                return Err(Error::input(format!(
                    "node {:?} is placed on unknown machine {m}",
                    spec.name
                )));
            }
        }
        let (specs, placement): (Vec<_>, Vec<_>) = nodes.into_iter().unzip();
        self.deployment = Deployment {
            roster: Arc::new(Roster { nodes: specs }),
            placement,
        };
        for i in 0..self.deployment.placement.len() {
            self.backend
                .plane()
                .spawn_node(NodeId(i as u32), &self.deployment)
                .await?;
        }
        // Lets the simulator start every node now that all exist; a no-op
        // for real machines.
        self.run_for(Duration::ZERO).await
    }

    /// Shapes the network between machines (a topology's links), the same
    /// way in every mode.
    pub async fn set_network(&mut self, links: &[DirectedLink]) -> Result<()> {
        let plane = self.backend.plane();
        for (from, to, spec) in links {
            match spec {
                Some(spec) => plane.set_link_spec(*from, *to, spec).await?,
                None => plane.set_link(*from, *to, false).await?,
            }
        }
        Ok(())
    }

    /// Every record the nodes made (see [`crate::node::Record`]), from the
    /// simulation or fetched from every machine.
    pub async fn records(&mut self) -> Result<Vec<crate::node::Record>> {
        self.backend.plane().records().await
    }

    pub async fn inject(&mut self, fault: &Fault) -> Result<()> {
        let at = self.backend.plane().elapsed();
        crate::ctl_log!(info, at, fault = ?fault, "injecting fault");
        let b = &mut self.backend;
        match fault {
            Fault::Crash { machine } => b.crash(*machine).await,
            Fault::Restart { machine } => b.restart(*machine).await,
            Fault::Isolate { machine } => b.isolate(*machine, true).await,
            Fault::Heal { machine: Some(m) } => b.isolate(*m, false).await,
            Fault::Heal { machine: None } => b.plane().heal_all().await,
            Fault::LinkDown { from, to } => b.plane().set_link(*from, *to, false).await,
            Fault::LinkUp { from, to } => b.plane().set_link(*from, *to, true).await,
            Fault::Messages { machine, faults } => {
                b.plane().set_message_faults(*machine, faults).await
            }
            Fault::Pause { machine } => b.pause(*machine, true).await,
            Fault::Resume { machine } => b.pause(*machine, false).await,
            Fault::KillNode { node } => b.plane().kill_node(*node).await,
            Fault::DropMessage {
                from,
                to,
                kind,
                nth,
            } => b.plane().drop_message(*from, *to, kind, *nth).await,
            Fault::Storage { machine, faults } => {
                b.plane().set_storage_faults(*machine, faults).await
            }
        }?;
        if let Some(state) = match fault {
            Fault::Crash { machine } => Some((*machine, MachineState::Crashed)),
            Fault::Restart { machine } | Fault::Resume { machine } => {
                Some((*machine, MachineState::Running))
            }
            Fault::Pause { machine } => Some((*machine, MachineState::Paused)),
            _ => None,
        } && let Some(info) = self.machines.iter_mut().find(|m| m.id == state.0)
        {
            info.state = state.1;
        }
        Ok(())
    }

    pub async fn run_for(&mut self, d: Duration) -> Result<()> {
        self.backend.plane().run_for(d).await
    }

    /// Runs for `duration` from now, injecting each scheduled fault at its
    /// time (relative to the start of this call) and reporting progress as
    /// the fraction of `duration` done, about a hundred times.
    pub async fn run(
        &mut self,
        duration: Duration,
        schedule: &[ScheduledFault],
        mut progress: impl FnMut(f64),
    ) -> Result<()> {
        let mut schedule: Vec<&ScheduledFault> =
            schedule.iter().filter(|f| f.at <= duration).collect();
        schedule.sort_by_key(|f| f.at);
        let step = (duration / 100).max(Duration::from_millis(1));
        let mut done = Duration::ZERO;
        let mut next_fault = schedule.into_iter().peekable();
        loop {
            while let Some(f) = next_fault.next_if(|f| f.at <= done) {
                self.inject(&f.fault).await?;
            }
            if done >= duration {
                break;
            }
            let mut until = (done + step).min(duration);
            if let Some(f) = next_fault.peek() {
                until = until.min(f.at);
            }
            self.run_for(until - done).await?;
            done = until;
            progress(done.as_secs_f64() / duration.as_secs_f64().max(f64::MIN_POSITIVE));
        }
        Ok(())
    }

    pub async fn query(&mut self, node: NodeId, query: &str) -> Result<serde_json::Value> {
        self.backend.plane().query(node, query).await
    }

    pub async fn stats(&mut self) -> Result<ClusterStats> {
        self.backend.plane().stats().await
    }

    pub fn elapsed(&mut self) -> Duration {
        self.backend.plane().elapsed()
    }

    /// Removes every machine and resource the backend created.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.backend.cleanup().await
    }
}
