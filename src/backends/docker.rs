//! The virtual backend: every machine is a Docker container, started through
//! bollard from the locally built machine image, on a private network made
//! for the cluster with fixed addresses (so a restarted container keeps its
//! address). Everything carries the `distzero` label, so `dz clean` finds
//! leftovers of any run.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use rand::RngExt;

use super::ClusterBackend;
use super::agent_plane::{AgentMachine, AgentPlane, READY_TIMEOUT};
use super::cluster::BackendSetup;
use super::image::{LABEL, connect, ensure_image};
use super::state::{ClusterState, MachineRecord, infos};
use crate::controller::{ControlPlane, MachineBackend, MachineInfo, MachineSpec, MachineState};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode};
use crate::settings::Settings;

const CONTROL_PORT: u16 = 7700;
const DATA_PORT: u16 = 7701;
const CLUSTER_LABEL: &str = "distzero.cluster";

pub struct DockerBackend {
    docker: Option<Docker>,
    cluster: String,
    binary: PathBuf,
    secret: String,
    logstash: Option<(String, u16)>,
    plane: AgentPlane,
    records: Vec<MachineRecord>,
    network: Option<String>,
    /// The first three octets of the network's /24.
    subnet: Option<String>,
    image: Option<String>,
}

fn docker_err(what: &str, e: bollard::errors::Error) -> Error {
    Error::runtime(format!("Docker: {what}: {e}"))
}

fn labels(cluster: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL.to_string(), "1".to_string()),
        (CLUSTER_LABEL.to_string(), cluster.to_string()),
    ])
}

impl DockerBackend {
    pub fn new(setup: BackendSetup<'_>) -> Result<Self> {
        Ok(DockerBackend {
            docker: None,
            cluster: setup.name.to_string(),
            binary: setup.binary,
            plane: AgentPlane::new(setup.secret.clone(), setup.epoch_ms),
            secret: setup.secret,
            logstash: logstash_for_containers(setup.settings),
            records: Vec::new(),
            network: None,
            subnet: None,
            image: None,
        })
    }

    pub fn attach(state: &ClusterState, setup: BackendSetup<'_>) -> Result<Self> {
        let mut b = Self::new(setup)?;
        b.plane.add_recorded(&state.machines);
        b.records = state.machines.clone();
        for res in &state.resources {
            if let Some(n) = res.strip_prefix("network:") {
                b.network = Some(n.to_string());
            } else if let Some(s) = res.strip_prefix("subnet:") {
                b.subnet = Some(s.to_string());
            } else if let Some(i) = res.strip_prefix("image:") {
                b.image = Some(i.to_string());
            }
        }
        Ok(b)
    }

    async fn docker(&mut self) -> Result<Docker> {
        if self.docker.is_none() {
            self.docker = Some(connect().await?);
        }
        Ok(self.docker.clone().expect("just connected"))
    }

    fn container(&self, m: MachineId) -> Result<String> {
        self.records
            .get(m.0 as usize)
            .and_then(|r| r.container.clone())
            .ok_or_else(|| Error::input(format!("no machine {m}")))
    }

    /// A private /24 for the cluster; tries free ranges until one is taken.
    async fn ensure_network(&mut self) -> Result<(String, String)> {
        if let (Some(n), Some(s)) = (&self.network, &self.subnet) {
            return Ok((n.clone(), s.clone()));
        }
        let docker = self.docker().await?;
        let name = format!("dz-{}", self.cluster);
        let mut last = String::new();
        for _ in 0..32 {
            let prefix = format!(
                "10.{}.{}",
                rand::rng().random_range(200..=250u8),
                rand::rng().random_range(0..=255u8)
            );
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("{prefix}.0/24")),
                        gateway: Some(format!("{prefix}.1")),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                labels: Some(labels(&self.cluster)),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => {
                    self.network = Some(name.clone());
                    self.subnet = Some(prefix.clone());
                    return Ok((name, prefix));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::runtime(format!(
            "Docker: cannot create network {name}: {last}"
        )))
    }

    fn machine_ip(prefix: &str, index: usize) -> String {
        format!("{prefix}.{}", 10 + index)
    }
}

/// Containers cannot reach the host's `localhost`; send them to the
/// bridge gateway instead.
fn logstash_for_containers(settings: &Settings) -> Option<(String, u16)> {
    settings.logstash.as_ref().map(|l| {
        let host = if l.host == "localhost" || l.host.starts_with("127.") {
            "host.docker.internal".to_string()
        } else {
            l.host.clone()
        };
        (host, l.port)
    })
}

#[async_trait(?Send)]
impl MachineBackend for DockerBackend {
    fn mode(&self) -> Mode {
        Mode::Virtual
    }

    async fn create(&mut self, specs: &[MachineSpec]) -> Result<Vec<MachineInfo>> {
        let docker = self.docker().await?;
        let (tag, _) = ensure_image(&docker, &self.binary, false).await?;
        self.image = Some(tag.clone());
        let (network, prefix) = self.ensure_network().await?;
        let first = self.records.len();
        if first + specs.len() > 240 {
            return Err(Error::input("a virtual cluster has at most 240 machines"));
        }
        let mut starts = Vec::new();
        for (k, spec) in specs.iter().enumerate() {
            let index = first + k;
            let ip = Self::machine_ip(&prefix, index);
            let name = format!("dz-{}-{}", self.cluster, spec.name);
            let mut env = vec![format!("DZ_CLUSTER_SECRET={}", self.secret)];
            for (k, v) in crate::runtime::tls::agent_env(&self.secret, &spec.name)? {
                env.push(format!("{k}={v}"));
            }
            if let Some((host, port)) = &self.logstash {
                env.push(format!("LOGSTASH_HOST={host}"));
                env.push(format!("LOGSTASH_PORT={port}"));
            }
            let mut container_labels = labels(&self.cluster);
            container_labels.insert("distzero.machine".into(), spec.name.clone());
            let body = ContainerCreateBody {
                image: Some(tag.clone()),
                cmd: Some(
                    [
                        "--name",
                        &spec.name,
                        "--control",
                        &format!("0.0.0.0:{CONTROL_PORT}"),
                        "--data",
                        &format!("0.0.0.0:{DATA_PORT}"),
                        "--dir",
                        "/data",
                        "--mode",
                        "virtual",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                env: Some(env),
                labels: Some(container_labels),
                host_config: Some(HostConfig {
                    // A size-limited disk for the nodes' data: a tmpfs.
                    tmpfs: spec.disk_kb.map(|kb| {
                        HashMap::from([("/data/nodes".to_string(), format!("size={kb}k"))])
                    }),
                    network_mode: Some(network.clone()),
                    extra_hosts: Some(vec!["host.docker.internal:host-gateway".into()]),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        network.clone(),
                        EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some(ip.clone()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    )])),
                }),
                ..Default::default()
            };
            let docker = docker.clone();
            starts.push(async move {
                let options = CreateContainerOptionsBuilder::default().name(&name).build();
                docker
                    .create_container(Some(options), body)
                    .await
                    .map_err(|e| docker_err(&format!("create {name}"), e))?;
                docker
                    .start_container(&name, None)
                    .await
                    .map_err(|e| docker_err(&format!("start {name}"), e))?;
                Ok::<_, Error>((name, ip))
            });
        }
        let started = futures::future::join_all(starts).await;
        let mut failure = None;
        for (spec, result) in specs.iter().zip(started) {
            match result {
                Ok((container, ip)) => {
                    let (control, data) =
                        (format!("{ip}:{CONTROL_PORT}"), format!("{ip}:{DATA_PORT}"));
                    self.records.push(MachineRecord {
                        name: spec.name.clone(),
                        control: control.clone(),
                        data: data.clone(),
                        state: MachineState::Running,
                        pid: None,
                        container: Some(container),
                        instance: None,
                    });
                    self.plane.machines.push(AgentMachine {
                        name: spec.name.clone(),
                        control,
                        data,
                        client: None,
                    });
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        self.plane.connect_all(READY_TIMEOUT).await?;
        Ok(self.records[first..]
            .iter()
            .enumerate()
            .map(|(i, r)| r.info(MachineId((first + i) as u32)))
            .collect())
    }

    async fn terminate(&mut self, m: MachineId) -> Result<()> {
        let name = self.container(m)?;
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(&name, Some(options))
            .await
            .map_err(|e| docker_err(&format!("remove {name}"), e))?;
        self.plane.disconnect(m);
        self.records[m.0 as usize].state = MachineState::Terminated;
        Ok(())
    }

    async fn crash(&mut self, m: MachineId) -> Result<()> {
        let name = self.container(m)?;
        let docker = self.docker().await?;
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        docker
            .kill_container(&name, Some(options))
            .await
            .map_err(|e| docker_err(&format!("kill {name}"), e))?;
        self.plane.disconnect(m);
        self.records[m.0 as usize].state = MachineState::Crashed;
        Ok(())
    }

    async fn restart(&mut self, m: MachineId) -> Result<()> {
        let name = self.container(m)?;
        let docker = self.docker().await?;
        docker
            .start_container(&name, None)
            .await
            .map_err(|e| docker_err(&format!("start {name}"), e))?;
        self.records[m.0 as usize].state = MachineState::Running;
        self.plane.connect(m, READY_TIMEOUT).await?;
        self.plane.respawn(m).await
    }

    async fn isolate(&mut self, m: MachineId, on: bool) -> Result<()> {
        self.plane.isolate(m, on).await
    }

    async fn pause(&mut self, m: MachineId, paused: bool) -> Result<()> {
        let name = self.container(m)?;
        let docker = self.docker().await?;
        let result = if paused {
            docker.pause_container(&name).await
        } else {
            docker.unpause_container(&name).await
        };
        result.map_err(|e| {
            docker_err(
                &format!("{} {name}", if paused { "pause" } else { "unpause" }),
                e,
            )
        })?;
        self.records[m.0 as usize].state = if paused {
            MachineState::Paused
        } else {
            MachineState::Running
        };
        Ok(())
    }

    async fn list(&self) -> Result<Vec<MachineInfo>> {
        Ok(infos(&self.records))
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.plane.shutdown_all().await;
        let docker = self.docker().await?;
        remove_labelled(&docker, Some(&self.cluster)).await?;
        for r in &mut self.records {
            r.state = MachineState::Terminated;
        }
        self.network = None;
        Ok(())
    }

    fn plane(&mut self) -> &mut dyn ControlPlane {
        &mut self.plane
    }
}

impl ClusterBackend for DockerBackend {
    fn records(&self) -> Vec<MachineRecord> {
        self.records.clone()
    }

    fn agents(&mut self) -> &mut AgentPlane {
        &mut self.plane
    }

    fn resources(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(n) = &self.network {
            out.push(format!("network:{n}"));
        }
        if let Some(s) = &self.subnet {
            out.push(format!("subnet:{s}"));
        }
        if let Some(i) = &self.image {
            out.push(format!("image:{i}"));
        }
        out
    }
}

/// What `remove_labelled` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

fn label_filter(cluster: Option<&str>) -> HashMap<String, Vec<String>> {
    let label = match cluster {
        Some(c) => format!("{CLUSTER_LABEL}={c}"),
        None => LABEL.to_string(),
    };
    HashMap::from([("label".to_string(), vec![label])])
}

/// Names of DistZero's containers and networks (of one cluster, or all).
pub async fn labelled(docker: &Docker, cluster: Option<&str>) -> Result<Removed> {
    let filters = label_filter(cluster);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list containers", e))?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list networks", e))?;
    Ok(Removed {
        containers: containers
            .into_iter()
            .filter_map(|c| {
                c.names
                    .and_then(|n| n.first().map(|n| n.trim_start_matches('/').to_string()))
            })
            .collect(),
        networks: networks.into_iter().filter_map(|n| n.name).collect(),
    })
}

/// Removes DistZero's containers and networks (of one cluster, or all),
/// whatever state they are in.
pub async fn remove_labelled(docker: &Docker, cluster: Option<&str>) -> Result<Removed> {
    let found = labelled(docker, cluster).await?;
    let force = RemoveContainerOptionsBuilder::default().force(true).build();
    for c in &found.containers {
        match docker.remove_container(c, Some(force.clone())).await {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(docker_err(&format!("remove {c}"), e)),
        }
    }
    for n in &found.networks {
        // A container just removed may hold its endpoint for a moment.
        let mut attempt = 0;
        loop {
            match docker.remove_network(n).await {
                Ok(()) => break,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => break,
                Err(_) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(docker_err(&format!("remove network {n}"), e)),
            }
        }
    }
    Ok(found)
}

/// Removes every DistZero machine image; returns how many.
pub async fn remove_images(docker: &Docker) -> Result<usize> {
    use bollard::query_parameters::{ListImagesOptionsBuilder, RemoveImageOptionsBuilder};
    let filters = label_filter(None);
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_err("list images", e))?;
    let force = RemoveImageOptionsBuilder::default().force(true).build();
    for img in &images {
        docker
            .remove_image(&img.id, Some(force.clone()), None)
            .await
            .map_err(|e| docker_err(&format!("remove image {}", img.id), e))?;
    }
    Ok(images.len())
}
