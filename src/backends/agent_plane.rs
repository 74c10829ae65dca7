//! The control plane of every real backend: one authenticated RPC client per
//! machine's `dz machine` agent. Backends differ only in how machines are
//! created, stopped and restarted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::backends::state::MachineRecord;
use crate::controller::{ClusterStats, ControlPlane, Deployment, LinkStats, NodeStats};
use crate::error::{Error, Result};
use crate::node::{MachineId, NodeId};
use crate::runtime::client::AgentClient;
use crate::sim::{Counts, MessageFaults};
use crate::wire::convert::{MachineReport, PlacedNode};

/// How long to wait for an agent to answer after starting it.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One machine's addresses and its client, once connected.
pub struct AgentMachine {
    pub name: String,
    pub control: String,
    pub data: String,
    pub client: Option<AgentClient>,
}

pub struct AgentPlane {
    secret: String,
    pub machines: Vec<AgentMachine>,
    deployment: Deployment,
    /// The cluster's start, from which nodes' clocks count (Unix ms).
    epoch_ms: u64,
    started: Instant,
}

impl AgentPlane {
    pub fn new(secret: String, epoch_ms: u64) -> Self {
        AgentPlane {
            secret,
            machines: Vec::new(),
            deployment: Deployment::default(),
            epoch_ms,
            started: Instant::now(),
        }
    }

    /// Machines of a recorded cluster, not yet connected.
    pub fn add_recorded(&mut self, records: &[MachineRecord]) {
        for r in records {
            self.machines.push(AgentMachine {
                name: r.name.clone(),
                control: r.control.clone(),
                data: r.data.clone(),
                client: None,
            });
        }
    }

    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    pub fn set_deployment(&mut self, deployment: Deployment) {
        self.deployment = deployment;
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    fn machine(&self, m: MachineId) -> Result<&AgentMachine> {
        self.machines
            .get(m.0 as usize)
            .ok_or_else(|| Error::input(format!("no machine {m}")))
    }

    fn client(&self, m: MachineId) -> Result<&AgentClient> {
        let machine = self.machine(m)?;
        machine
            .client
            .as_ref()
            .ok_or_else(|| Error::runtime(format!("machine {} is not reachable", machine.name)))
    }

    /// (Re)connects to machine `m`'s agent, waiting for it to answer.
    pub async fn connect(&mut self, m: MachineId, within: Duration) -> Result<()> {
        let (control, secret) = (self.machine(m)?.control.clone(), self.secret.clone());
        let client = AgentClient::connect_retrying(&control, &secret, within).await?;
        self.machines[m.0 as usize].client = Some(client);
        Ok(())
    }

    /// Connects to every machine concurrently.
    pub async fn connect_all(&mut self, within: Duration) -> Result<()> {
        let secret = self.secret.clone();
        let pending = self.machines.iter().map(|m| {
            let (control, secret) = (m.control.clone(), secret.clone());
            async move { AgentClient::connect_retrying(&control, &secret, within).await }
        });
        let clients = futures::future::join_all(pending).await;
        for (m, c) in self.machines.iter_mut().zip(clients) {
            m.client = Some(c.map_err(|e| Error::runtime(format!("machine {}: {e}", m.name)))?);
        }
        Ok(())
    }

    pub fn disconnect(&mut self, m: MachineId) {
        if let Some(machine) = self.machines.get_mut(m.0 as usize) {
            machine.client = None;
        }
    }

    fn roster(&self) -> Vec<PlacedNode> {
        self.deployment
            .roster
            .nodes
            .iter()
            .zip(&self.deployment.placement)
            .map(|(spec, m)| {
                let machine = &self.machines[m.0 as usize];
                PlacedNode {
                    spec: spec.clone(),
                    machine: machine.name.clone(),
                    machine_id: m.0,
                    address: machine.data.clone(),
                }
            })
            .collect()
    }

    /// Starts again every node placed on `m` (after its machine restarted).
    pub async fn respawn(&mut self, m: MachineId) -> Result<()> {
        let deployment = self.deployment.clone();
        for (i, placed) in deployment.placement.iter().enumerate() {
            if *placed == m {
                self.spawn_node(NodeId(i as u32), &deployment).await?;
            }
        }
        Ok(())
    }

    /// Copies each machine's log to `dir/<machine>.json.log`.
    pub async fn fetch_logs(&self, dir: &Path) -> Result<Vec<String>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut missing = Vec::new();
        for m in &self.machines {
            let Some(client) = &m.client else {
                missing.push(m.name.clone());
                continue;
            };
            let path = dir.join(format!("{}.json.log", m.name));
            let mut data = Vec::new();
            let mut offset = 0;
            loop {
                match client.fetch_logs(offset, 1 << 20).await {
                    Ok((chunk, next)) if !chunk.is_empty() => {
                        data.extend_from_slice(&chunk);
                        offset = next;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        missing.push(m.name.clone());
                        break;
                    }
                }
            }
            std::fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
        }
        Ok(missing)
    }

    /// Every machine's report; unreachable machines are `Err`.
    pub async fn reports(&self) -> Vec<(String, Result<MachineReport>)> {
        let mut out = Vec::new();
        for m in &self.machines {
            let r = match &m.client {
                Some(c) => c.stats().await,
                None => Err(Error::runtime("not reachable")),
            };
            out.push((m.name.clone(), r));
        }
        out
    }

    /// Asks every reachable agent to stop.
    pub async fn shutdown_all(&mut self) {
        for m in &mut self.machines {
            if let Some(c) = m.client.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.shutdown()).await;
            }
        }
    }

    pub async fn isolate(&self, m: MachineId, on: bool) -> Result<()> {
        self.client(m)?.isolate(on).await
    }
}

#[async_trait(?Send)]
impl ControlPlane for AgentPlane {
    async fn spawn_node(&mut self, node: NodeId, deployment: &Deployment) -> Result<()> {
        self.deployment = deployment.clone();
        let m = deployment
            .machine_of(node)
            .ok_or_else(|| Error::input(format!("node {node} is not placed")))?;
        let spec = &deployment.roster.nodes[node.0 as usize];
        let roster = self.roster();
        self.client(m)?
            .spawn_node(spec, &roster, m.0, self.epoch_ms)
            .await
    }

    async fn kill_node(&mut self, node: NodeId) -> Result<()> {
        let m = self
            .deployment
            .machine_of(node)
            .ok_or_else(|| Error::input(format!("no node {node}")))?;
        self.client(m)?.kill_node(node).await
    }

    async fn set_message_faults(
        &mut self,
        machine: Option<MachineId>,
        faults: &MessageFaults,
    ) -> Result<()> {
        let targets: Vec<MachineId> = match machine {
            Some(m) => vec![m],
            None => (0..self.machines.len() as u32).map(MachineId).collect(),
        };
        for m in targets {
            self.client(m)?.set_faults(faults).await?;
        }
        Ok(())
    }

    async fn set_link(&mut self, _from: MachineId, _to: MachineId, _up: bool) -> Result<()> {
        Err(Error::input(
            "taking single links down is simulated only; on real machines use isolate or message faults",
        ))
    }

    async fn heal_all(&mut self) -> Result<()> {
        for i in 0..self.machines.len() as u32 {
            if self.machines[i as usize].client.is_some() {
                self.client(MachineId(i))?.isolate(false).await?;
            }
        }
        Ok(())
    }

    async fn query(&mut self, node: NodeId, query: &str) -> Result<serde_json::Value> {
        let m = self
            .deployment
            .machine_of(node)
            .ok_or_else(|| Error::input(format!("no node {node}")))?;
        self.client(m)?.query(node, query).await
    }

    async fn stats(&mut self) -> Result<ClusterStats> {
        let mut nodes = Vec::new();
        let mut drops = BTreeMap::new();
        for (i, (name, report)) in self.reports().await.into_iter().enumerate() {
            let report = report.map_err(|e| Error::runtime(format!("machine {name}: {e}")))?;
            for n in report.nodes {
                nodes.push(NodeStats {
                    id: n.id,
                    machine: MachineId(i as u32),
                    kinds: n.kinds,
                    counters: serde_json::to_value(n.counters).unwrap_or_default(),
                });
            }
            for (k, v) in report.transport {
                if v > 0
                    && matches!(
                        k.as_str(),
                        "lost" | "queue_full" | "isolated_out" | "isolated_in"
                    )
                {
                    *drops.entry(k).or_insert(0) += v;
                }
            }
        }
        nodes.sort_by_key(|n| n.id);
        Ok(ClusterStats {
            nodes,
            links: Vec::<LinkStats>::new(),
            drops,
        })
    }

    async fn run_for(&mut self, d: Duration) -> Result<()> {
        tokio::time::sleep(d).await;
        Ok(())
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Totals of a kind's counts over nodes, for status lines.
pub fn total(kinds: &BTreeMap<String, Counts>) -> Counts {
    kinds.values().fold(Counts::default(), |mut acc, c| {
        acc.sent += c.sent;
        acc.delivered += c.delivered;
        acc.dropped += c.dropped;
        acc.duplicated += c.duplicated;
        acc
    })
}
