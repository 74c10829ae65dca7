//! What the controller needs from a way of running machines. A backend
//! manages machine lifecycles ([`MachineBackend`]); its control plane
//! ([`ControlPlane`]) places nodes, applies message faults, queries nodes and
//! collects counters. The simulator is one backend; local processes, Docker
//! containers and EC2 instances are others, whose control plane is the
//! `dz machine` agent's RPC interface.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::net::{ClockSkew, Counts, LinkSpec, MessageFaults};
use crate::node::Roster;
use crate::node::{MachineId, Mode, NodeId, Record, StorageFaults};

/// A machine to create.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSpec {
    pub name: String,
    /// Clock skew (simulated machines only; real clocks are what they are).
    #[serde(default)]
    pub skew: ClockSkew,
    /// Size of the nodes' data file system in KiB (virtual mode: a tmpfs),
    /// for trying what a full disk does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_kb: Option<u64>,
}

impl MachineSpec {
    pub fn named(name: impl Into<String>) -> Self {
        MachineSpec {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// Refuses machines with a disk size on backends that cannot limit it.
pub fn refuse_disk_limits(specs: &[MachineSpec], mode: &str) -> Result<()> {
    match specs.iter().find(|s| s.disk_kb.is_some()) {
        Some(s) => Err(Error::input(format!(
            "machine {}: disk_kb (a size-limited disk) needs virtual mode, not {mode}",
            s.name
        ))),
        None => Ok(()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MachineState {
    Running,
    Crashed,
    Paused,
    Terminated,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub id: MachineId,
    pub name: String,
    /// Where its agent listens (real modes).
    pub address: Option<String>,
    pub state: MachineState,
}

/// Which node runs on which machine.
#[derive(Clone, Debug, Default)]
pub struct Deployment {
    pub roster: Arc<Roster>,
    /// Indexed by node id.
    pub placement: Vec<MachineId>,
}

impl Deployment {
    pub fn machine_of(&self, node: NodeId) -> Option<MachineId> {
        self.placement.get(node.0 as usize).copied()
    }
}

/// One node's message counts by kind, and its own counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub id: NodeId,
    pub machine: MachineId,
    pub kinds: BTreeMap<String, Counts>,
    pub counters: serde_json::Value,
    /// Why the node fail-stopped, if it is down for that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Message counts of one directed machine pair, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkStats {
    pub from: MachineId,
    pub to: MachineId,
    pub kinds: BTreeMap<String, Counts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    pub nodes: Vec<NodeStats>,
    pub links: Vec<LinkStats>,
    pub drops: BTreeMap<String, u64>,
}

#[async_trait(?Send)]
pub trait MachineBackend {
    fn mode(&self) -> Mode;

    /// Creates machines and returns once each one answers.
    async fn create(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>>;

    /// Stops a machine for good and removes what it used.
    async fn terminate(&mut self, machine: MachineId) -> Result<()>;

    /// Stops a machine abruptly (kill -9, power off).
    async fn crash(&mut self, machine: MachineId) -> Result<()>;

    /// Starts a crashed machine again; its nodes restart.
    async fn restart(&mut self, machine: MachineId) -> Result<()>;

    async fn isolate(&mut self, machine: MachineId, on: bool) -> Result<()>;

    async fn pause(&mut self, machine: MachineId, paused: bool) -> Result<()> {
        let _ = (machine, paused);
        Err(Error::input(format!(
            "{} machines cannot be paused",
            self.mode()
        )))
    }

    async fn list(&self) -> Result<Vec<MachineInfo>>;

    /// Removes everything this backend created.
    async fn cleanup(&mut self) -> Result<()>;

    fn plane(&mut self) -> &mut dyn ControlPlane;
}

#[async_trait(?Send)]
pub trait ControlPlane {
    /// Starts node `node` of the deployment on its machine.
    async fn spawn_node(&mut self, node: NodeId, deployment: &Deployment) -> Result<()>;

    async fn kill_node(&mut self, node: NodeId) -> Result<()>;

    /// Faults on what `machine` sends (`None`: every machine).
    async fn set_message_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &MessageFaults,
    ) -> Result<()>;

    async fn set_link(&mut self, from: MachineId, to: MachineId, up: bool) -> Result<()>;

    /// The latency and faults of the directed link `from → to` (a
    /// topology's network shape), in every mode.
    async fn set_link_spec(
        &mut self,
        from: MachineId,
        to: MachineId,
        spec: &LinkSpec,
    ) -> Result<()>;

    /// Every record the nodes made so far (see [`crate::node::Record`]).
    async fn records(&mut self) -> Result<Vec<Record>>;

    /// Drops the `nth` message of `kind` from `from` to `to` from now on.
    async fn drop_message(&mut self, from: NodeId, to: NodeId, kind: &str, nth: u64) -> Result<()> {
        let _ = (from, to, kind, nth);
        Err(Error::input(
            "dropping one chosen message is a simulation fault (use message_faults elsewhere)",
        ))
    }

    /// Disk faults on the nodes of `machine` (`None`: every machine).
    async fn set_storage_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &StorageFaults,
    ) -> Result<()> {
        let _ = (machine, faults);
        Err(Error::input(
            "disk faults are injected in simulation; real disks fail for real",
        ))
    }

    /// Brings every link up and ends every isolation.
    async fn heal_all(&mut self) -> Result<()>;

    async fn query(&mut self, node: NodeId, query: &str) -> Result<serde_json::Value>;

    async fn stats(&mut self) -> Result<ClusterStats>;

    /// Lets the cluster run: virtual time in the simulator, wall time else.
    async fn run_for(&mut self, d: Duration) -> Result<()>;

    /// Time since the cluster started.
    fn elapsed(&self) -> Duration;
}
