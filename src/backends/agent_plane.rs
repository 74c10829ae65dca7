//! The control plane of every real backend: one authenticated RPC client per
//! machine's `dz machine` agent. Backends differ only in how machines are
//! created, stopped and restarted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::backends::net_state::NetState;
use crate::backends::state::MachineRecord;
use crate::controller::{ClusterStats, ControlPlane, Deployment, LinkStats, NodeStats};
use crate::error::{Error, Result};
use crate::net::{Counts, LinkSpec, MessageFaults};
use crate::node::Record;
use crate::node::{MachineId, NodeId};
use crate::runtime::client::AgentClient;
use crate::runtime::host::read_records;
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
    /// The network as the controller set it, for restarted machines.
    pub net: NetState,
    started: Instant,
}

impl AgentPlane {
    pub fn new(secret: String, epoch_ms: u64) -> Self {
        AgentPlane {
            secret,
            machines: Vec::new(),
            deployment: Deployment::default(),
            epoch_ms,
            net: NetState::default(),
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

    /// Starts the cluster's clock now: machines take seconds to boot (a
    /// container, an instance), and nodes' clocks should count from when
    /// they are placed, not from when the first machine was asked for.
    pub fn start_clock(&mut self) -> u64 {
        self.epoch_ms = Self::now_ms();
        self.started = Instant::now();
        self.epoch_ms
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

    /// Gives a restarted machine its network back, then starts again every
    /// node placed on it.
    pub async fn respawn(&mut self, m: MachineId) -> Result<()> {
        self.restore_network(m).await?;
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
            match client.logs().await {
                Ok(data) => std::fs::write(&path, data).map_err(|e| Error::io(&path, e))?,
                // An earlier copy, if any, stays.
                Err(_) => missing.push(m.name.clone()),
            }
        }
        Ok(missing)
    }

    /// Queries node `node` on machine `m` (a spawned node is in no
    /// deployment; its machine's report names it).
    pub async fn query_on(
        &self,
        m: MachineId,
        node: NodeId,
        query: &str,
    ) -> Result<serde_json::Value> {
        self.client(m)?.query(node, query).await
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

    pub async fn isolate(&mut self, m: MachineId, on: bool) -> Result<()> {
        self.client(m)?.isolate(on).await?;
        if on {
            self.net.isolated.insert(m);
        } else {
            self.net.isolated.remove(&m);
        }
        Ok(())
    }

    /// Sets again on machine `m` what the controller had set on it.
    async fn restore_network(&mut self, m: MachineId) -> Result<()> {
        if self.net.is_clear(m) {
            return Ok(());
        }
        let net = self.net.clone();
        let name = |i: MachineId| -> Result<String> { Ok(self.machine(i)?.name.clone()) };
        let client = self.client(m)?;
        for (from, to, spec) in &net.links {
            if *from == m {
                client.set_link(&name(*to)?, Some(spec)).await?;
            }
        }
        for (from, to) in &net.down {
            if *from == m {
                client.set_link_up(&name(*to)?, true, false).await?;
            } else if *to == m {
                client.set_link_up(&name(*from)?, false, false).await?;
            }
        }
        if net.isolated.contains(&m) {
            client.isolate(true).await?;
        }
        if let Some(f) = net.faults_of(m) {
            client.set_faults(f).await?;
        }
        Ok(())
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
            self.net.set_faults(m, faults);
        }
        Ok(())
    }

    async fn set_link(&mut self, from: MachineId, to: MachineId, up: bool) -> Result<()> {
        let (a, b) = (
            self.machine(from)?.name.clone(),
            self.machine(to)?.name.clone(),
        );
        // Both ends know, so a message already on its way is dropped too.
        self.client(from)?.set_link_up(&b, true, up).await?;
        self.client(to)?.set_link_up(&a, false, up).await?;
        if up {
            self.net.down.remove(&(from, to));
        } else {
            self.net.down.insert((from, to));
        }
        Ok(())
    }

    async fn set_link_spec(
        &mut self,
        from: MachineId,
        to: MachineId,
        spec: &LinkSpec,
    ) -> Result<()> {
        spec.validate().map_err(Error::input)?;
        let peer = self.machine(to)?.name.clone();
        self.client(from)?.set_link(&peer, Some(spec)).await?;
        self.net.set_link(from, to, spec.clone());
        Ok(())
    }

    async fn records(&mut self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for m in &self.machines {
            let client = m
                .client
                .as_ref()
                .ok_or_else(|| Error::runtime(format!("machine {} is not reachable", m.name)))?;
            out.extend(read_records(&client.records().await?));
        }
        out.sort_by_key(|r| (r.at_ns, r.node));
        Ok(out)
    }

    async fn heal_all(&mut self) -> Result<()> {
        for i in 0..self.machines.len() as u32 {
            if self.machines[i as usize].client.is_some() {
                self.client(MachineId(i))?.heal().await?;
            }
        }
        self.net.heal();
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
                    failed: n.failed,
                });
            }
            for (k, v) in report.transport {
                if v > 0
                    && matches!(
                        k.as_str(),
                        "lost"
                            | "link_down"
                            | "queue_full"
                            | "isolated_out"
                            | "isolated_in"
                            | "no_such_node"
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
