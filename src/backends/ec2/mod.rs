//! The cloud backend: every machine is an EC2 instance booting the agent
//! from user-data (see `machine-image/cloud/`). Instances launch in batches
//! of one RunInstances call each; everything is tagged with the cluster's
//! name, so `dz clean --mode cloud` finds leftovers whatever happened.

pub mod api;
pub mod user_data;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_ec2::Client;

use super::ClusterBackend;
use super::agent_plane::{AgentMachine, AgentPlane};
use super::cluster::BackendSetup;
use super::state::{ClusterState, MachineRecord, infos};
use crate::controller::{ControlPlane, MachineBackend, MachineInfo, MachineSpec, MachineState};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode};
use crate::settings::CloudSettings;

pub struct Ec2Backend {
    ec2: Option<Client>,
    cfg: CloudSettings,
    cluster: String,
    secret: String,
    plane: AgentPlane,
    records: Vec<MachineRecord>,
    group: Option<String>,
    group_created: bool,
}

/// This machine's address as seen on the way to `endpoint`, as a /32.
fn local_cidr(endpoint: Option<&str>) -> Option<String> {
    let host = endpoint
        .and_then(|e| e.split("://").nth(1))
        .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
        .unwrap_or_else(|| "ec2.amazonaws.com:443".into());
    let target = if host.contains(':') {
        host
    } else {
        format!("{host}:443")
    };
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect(target).ok()?;
    Some(format!("{}/32", sock.local_addr().ok()?.ip()))
}

impl Ec2Backend {
    pub fn new(setup: BackendSetup<'_>) -> Result<Self> {
        Ok(Ec2Backend {
            ec2: None,
            cfg: setup.settings.cloud.clone(),
            cluster: setup.name.to_string(),
            plane: AgentPlane::new(setup.secret.clone(), setup.epoch_ms),
            secret: setup.secret,
            records: Vec::new(),
            group: None,
            group_created: false,
        })
    }

    pub fn attach(state: &ClusterState, setup: BackendSetup<'_>) -> Result<Self> {
        let mut b = Self::new(setup)?;
        b.plane.add_recorded(&state.machines);
        b.records = state.machines.clone();
        for res in &state.resources {
            if let Some(g) = res.strip_prefix("group:") {
                b.group = Some(g.to_string());
            } else if res == "group-created" {
                b.group_created = true;
            }
        }
        Ok(b)
    }

    async fn ec2(&mut self) -> Client {
        if self.ec2.is_none() {
            self.ec2 = Some(api::client(&self.cfg).await);
        }
        self.ec2.clone().expect("just made")
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.ready_timeout_s)
    }

    fn instance(&self, m: MachineId) -> Result<String> {
        self.records
            .get(m.0 as usize)
            .and_then(|r| r.instance.clone())
            .ok_or_else(|| Error::input(format!("no machine {m}")))
    }

    async fn security_group(&mut self, ec2: &Client) -> Result<String> {
        if let Some(g) = &self.group {
            return Ok(g.clone());
        }
        let controller = match &self.cfg.controller_cidr {
            Some(c) => c.clone(),
            None => local_cidr(self.cfg.endpoint.as_deref()).ok_or_else(|| {
                Error::input("cannot tell this machine's address: set DZ_EC2_CONTROLLER_CIDR")
            })?,
        };
        let group = match &self.cfg.security_group {
            Some(g) => {
                api::check_group(ec2, g, &controller).await?;
                g.clone()
            }
            None => {
                let g = api::create_group(ec2, &self.cfg, &self.cluster, &controller).await?;
                self.group_created = true;
                g
            }
        };
        self.group = Some(group.clone());
        Ok(group)
    }

    /// Launches `count` instances in batches, concurrently; returns their
    /// ids in launch order. What did launch is recorded even on failure.
    async fn launch(&mut self, ec2: &Client, count: usize) -> Result<Vec<String>> {
        let ami = self
            .cfg
            .ami
            .clone()
            .ok_or_else(|| Error::input("cloud mode needs an AMI: set DZ_EC2_AMI"))?;
        let agent = match (self.cfg.agent_url.clone(), self.cfg.agent_sha256.clone()) {
            (Some(u), Some(s)) => Some((u, s)),
            (None, None) => None,
            _ => {
                return Err(Error::input(
                    "set both DZ_AGENT_URL and DZ_AGENT_SHA256, or neither",
                ));
            }
        };
        api::ami_exists(ec2, &ami).await?;
        let group = self.security_group(ec2).await?;
        let agent = agent.as_ref().map(|(u, s)| (u.as_str(), s.as_str()));
        // Instances share one user data, so one certificate for them all
        // (the CA is what peers check; see runtime::tls).
        let tls = crate::runtime::tls::agent_env(&self.secret, "agent")?
            .into_iter()
            .map(|(_, v)| v)
            .next()
            .unwrap_or_default();
        let script = user_data::render(&self.cluster, &self.secret, &tls, agent)?;
        let b64 = user_data::base64(&script);
        let batches: Vec<usize> = (0..count)
            .step_by(api::BATCH)
            .map(|s| api::BATCH.min(count - s))
            .collect();
        let calls = batches.iter().map(|&n| {
            let request = api::LaunchRequest {
                cfg: &self.cfg,
                ami: &ami,
                cluster: &self.cluster,
                count: n,
                security_group: &group,
                user_data_b64: &b64,
            };
            async move { api::run_batch(ec2, &request).await }
        });
        let mut ids = Vec::new();
        let mut failure = None;
        for result in futures::future::join_all(calls).await {
            match result {
                Ok(instances) => ids.extend(
                    instances
                        .iter()
                        .filter_map(|i| i.instance_id().map(String::from)),
                ),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        for id in &ids {
            let name = format!("m{}", self.records.len());
            self.records.push(MachineRecord {
                name: name.clone(),
                control: String::new(),
                data: String::new(),
                state: MachineState::Crashed,
                pid: None,
                container: None,
                instance: Some(id.clone()),
            });
            self.plane.machines.push(AgentMachine {
                name,
                control: String::new(),
                data: String::new(),
                client: None,
            });
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }

    fn set_address(&mut self, index: usize, instance: &aws_sdk_ec2::types::Instance) -> Result<()> {
        let ip = api::address(instance, self.cfg.public_ip).ok_or_else(|| {
            Error::runtime(format!(
                "instance {} has no {} address",
                instance.instance_id().unwrap_or("?"),
                if self.cfg.public_ip {
                    "public"
                } else {
                    "private"
                }
            ))
        })?;
        let (control, data) = (
            format!("{ip}:{}", api::AGENT_PORTS.0),
            format!("{ip}:{}", api::AGENT_PORTS.1),
        );
        let r = &mut self.records[index];
        r.control = control.clone();
        r.data = data.clone();
        r.state = MachineState::Running;
        let m = &mut self.plane.machines[index];
        m.control = control;
        m.data = data;
        Ok(())
    }
}

#[async_trait(?Send)]
impl MachineBackend for Ec2Backend {
    fn mode(&self) -> Mode {
        Mode::Cloud
    }

    async fn create(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>> {
        crate::controller::refuse_disk_limits(specs, "cloud")?;
        let started = Instant::now();
        let ec2 = self.ec2().await;
        let first = self.records.len();
        let ids = self.launch(&ec2, specs.len()).await?;
        let running = api::wait_running(&ec2, &ids, self.timeout()).await?;
        for (k, instance) in running.iter().enumerate() {
            self.set_address(first + k, instance)?;
        }
        let left = self
            .timeout()
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(5));
        for i in first..self.records.len() {
            self.plane.connect(MachineId(i as u32), left).await?;
        }
        Ok(infos(&self.records)[first..].to_vec())
    }

    async fn terminate(&mut self, m: MachineId) -> Result<()> {
        let id = self.instance(m)?;
        let ec2 = self.ec2().await;
        api::terminate(&ec2, &[id]).await?;
        self.plane.disconnect(m);
        self.records[m.0 as usize].state = MachineState::Terminated;
        Ok(())
    }

    async fn crash(&mut self, m: MachineId) -> Result<()> {
        let id = self.instance(m)?;
        let ec2 = self.ec2().await;
        api::force_stop(&ec2, &id).await?;
        self.plane.disconnect(m);
        self.records[m.0 as usize].state = MachineState::Crashed;
        Ok(())
    }

    async fn restart(&mut self, m: MachineId) -> Result<()> {
        let id = self.instance(m)?;
        let ec2 = self.ec2().await;
        api::start(&ec2, &id).await?;
        let running = api::wait_running(&ec2, std::slice::from_ref(&id), self.timeout()).await?;
        self.set_address(m.0 as usize, &running[0])?;
        self.plane.connect(m, self.timeout()).await?;
        self.plane.respawn(m).await
    }

    async fn isolate(&mut self, m: MachineId, on: bool) -> Result<()> {
        self.plane.isolate(m, on).await
    }

    async fn list(&self) -> Result<Vec<MachineInfo>> {
        Ok(infos(&self.records))
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.plane.shutdown_all().await;
        let ec2 = self.ec2().await;
        let mut ids: Vec<String> = api::find(&ec2, Some(&self.cluster))
            .await?
            .iter()
            .filter_map(|i| i.instance_id().map(String::from))
            .collect();
        for r in &self.records {
            if let Some(id) = &r.instance
                && !ids.contains(id)
                && r.state != MachineState::Terminated
            {
                ids.push(id.clone());
            }
        }
        api::terminate(&ec2, &ids).await?;
        for r in &mut self.records {
            r.state = MachineState::Terminated;
        }
        if self.group_created
            && let Some(g) = self.group.take()
        {
            api::delete_group(&ec2, &g).await?;
        }
        Ok(())
    }

    fn plane(&mut self) -> &mut dyn ControlPlane {
        &mut self.plane
    }
}

impl ClusterBackend for Ec2Backend {
    fn records(&self) -> Vec<MachineRecord> {
        self.records.clone()
    }

    fn agents(&mut self) -> &mut AgentPlane {
        &mut self.plane
    }

    fn resources(&self) -> Vec<String> {
        let mut out: Vec<String> = self.group.iter().map(|g| format!("group:{g}")).collect();
        if self.group_created {
            out.push("group-created".into());
        }
        out
    }
}

/// Terminates every instance tagged `distzero` and deletes the project's
/// security groups; returns what it terminated.
pub async fn reap(cfg: &CloudSettings) -> Result<(Vec<String>, Vec<String>)> {
    let ec2 = api::client(cfg).await;
    let ids: Vec<String> = api::find(&ec2, None)
        .await?
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    api::terminate(&ec2, &ids).await?;
    let groups = api::groups(&ec2, None).await?;
    for g in &groups {
        api::delete_group(&ec2, g).await?;
    }
    Ok((ids, groups))
}
