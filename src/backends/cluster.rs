//! Clusters on real machines: bring one up with a backend, find it again
//! from its record, take it down. Used by `dz cluster` and by experiments
//! run on real machines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::ClusterBackend;
use super::agent_plane::AgentPlane;
use super::local::LocalBackend;
use super::state::{ClusterState, check_name, cluster_dir};
use crate::controller::{Controller, DirectedLink, MachineSpec, Placement};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode};
use crate::runtime::auth;
use crate::runtime::tls::{self, ClusterCa};
use crate::settings::Settings;
use crate::systems::{Roster, check_buildable};

pub type ClusterController = Controller<dyn ClusterBackend>;

/// What every real backend needs to start.
pub struct BackendSetup<'a> {
    pub settings: &'a Settings,
    pub name: &'a str,
    pub dir: PathBuf,
    /// The `dz` executable agents run (local mode) or ship in the image.
    pub binary: PathBuf,
    pub secret: String,
    pub epoch_ms: u64,
}

fn new_backend(mode: Mode, setup: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    match mode {
        Mode::Local => Ok(Box::new(LocalBackend::new(
            setup.dir,
            setup.binary,
            setup.secret,
            setup.epoch_ms,
        ))),
        Mode::Virtual => virtual_backend(setup),
        Mode::Cloud => cloud_backend(setup),
        Mode::Simulated => Err(Error::input(
            "simulated clusters run with `dz simulate`, not `dz cluster`",
        )),
    }
}

#[cfg(feature = "cloud")]
fn cloud_backend(setup: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Ok(Box::new(super::ec2::Ec2Backend::new(setup)?))
}

#[cfg(not(feature = "cloud"))]
fn cloud_backend(_: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Err(Error::input(
        "this dz was built without the `cloud` feature (EC2)",
    ))
}

#[cfg(feature = "virtual")]
fn virtual_backend(setup: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Ok(Box::new(super::docker::DockerBackend::new(setup)?))
}

#[cfg(not(feature = "virtual"))]
fn virtual_backend(_: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Err(Error::input(
        "this dz was built without the `virtual` feature (Docker)",
    ))
}

fn attach_backend(
    state: &ClusterState,
    setup: BackendSetup<'_>,
) -> Result<Box<dyn ClusterBackend>> {
    match state.mode {
        Mode::Local => Ok(Box::new(LocalBackend::attach(
            setup.dir,
            setup.binary,
            setup.secret,
            setup.epoch_ms,
            state.machines.clone(),
        ))),
        Mode::Virtual => attach_virtual(state, setup),
        Mode::Cloud => attach_cloud(state, setup),
        Mode::Simulated => Err(Error::input("a simulated run has no machines to attach to")),
    }
}

#[cfg(feature = "virtual")]
fn attach_virtual(
    state: &ClusterState,
    setup: BackendSetup<'_>,
) -> Result<Box<dyn ClusterBackend>> {
    Ok(Box::new(super::docker::DockerBackend::attach(
        state, setup,
    )?))
}

#[cfg(not(feature = "virtual"))]
fn attach_virtual(_: &ClusterState, _: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Err(Error::input(
        "this dz was built without the `virtual` feature (Docker)",
    ))
}

#[cfg(feature = "cloud")]
fn attach_cloud(state: &ClusterState, setup: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Ok(Box::new(super::ec2::Ec2Backend::attach(state, setup)?))
}

#[cfg(not(feature = "cloud"))]
fn attach_cloud(_: &ClusterState, _: BackendSetup<'_>) -> Result<Box<dyn ClusterBackend>> {
    Err(Error::input(
        "this dz was built without the `cloud` feature (EC2)",
    ))
}

/// A fresh cluster name.
pub fn new_name() -> String {
    format!("c-{}", &auth::new_secret()[..6])
}

/// Starts machines, places nodes and records the cluster. On failure,
/// whatever was started is removed again.
pub async fn up(
    settings: &Settings,
    name: &str,
    mode: Mode,
    machines: &[MachineSpec],
    placement: Placement,
    binary: &Path,
) -> Result<(ClusterController, ClusterState)> {
    up_shaped(settings, name, mode, machines, &[], placement, binary).await
}

/// [`up`] with a network shape (a topology's links) applied by the agents
/// before any node starts.
pub async fn up_shaped(
    settings: &Settings,
    name: &str,
    mode: Mode,
    machines: &[MachineSpec],
    network: &[DirectedLink],
    placement: Placement,
    binary: &Path,
) -> Result<(ClusterController, ClusterState)> {
    check_name(name)?;
    let tmp = &settings.tmp_dir;
    if ClusterState::load(tmp, name).is_ok() {
        return Err(Error::input(format!(
            "cluster {name:?} exists; `dz cluster down {name}` first"
        )));
    }
    let specs = placement.iter().map(|(spec, _)| spec.clone()).collect();
    check_buildable(&Arc::new(Roster { nodes: specs }))?;
    let secret = settings
        .cluster_secret
        .clone()
        .unwrap_or_else(auth::new_secret);
    // Before the backend starts agents: they get certificates from this CA.
    let tls = if settings.tls.unwrap_or(mode == Mode::Cloud) {
        Some(ClusterCa::new(name)?)
    } else {
        None
    };
    tls::install_for_cluster(&secret, tls.as_ref())?;
    let epoch_ms = AgentPlane::now_ms();
    let system = placement
        .first()
        .map(|(s, _)| s.system.clone())
        .unwrap_or_default();
    let setup = BackendSetup {
        settings,
        name,
        dir: cluster_dir(tmp, name),
        binary: binary.to_path_buf(),
        secret: secret.clone(),
        epoch_ms,
    };
    let mut ctl: ClusterController = Controller::new(new_backend(mode, setup)?);
    let mut state = ClusterState {
        name: name.to_string(),
        mode,
        secret,
        epoch_ms,
        system,
        machines: Vec::new(),
        nodes: Vec::new(),
        resources: Vec::new(),
        network: Default::default(),
        tls,
    };
    let started = async {
        ctl.create_machines(machines).await?;
        record(&mut ctl, &mut state, tmp)?;
        ctl.set_network(network).await?;
        state.epoch_ms = ctl.backend_mut().agents().start_clock();
        state.set_placement(&placement);
        ctl.deploy(placement).await?;
        record(&mut ctl, &mut state, tmp)
    }
    .await;
    if let Err(e) = started {
        let _ = ctl.shutdown().await;
        let _ = state.forget(tmp);
        return Err(e);
    }
    Ok((ctl, state))
}

/// Saves what the backend knows now (pids, states after faults).
pub fn record(ctl: &mut ClusterController, state: &mut ClusterState, tmp: &Path) -> Result<()> {
    state.machines = ctl.backend().records();
    state.resources = ctl.backend().resources();
    state.network = ctl.backend_mut().agents().net.clone();
    state.save(tmp)
}

/// Finds a recorded cluster and connects to every machine that answers;
/// returns the names of those that do not.
pub async fn attach(
    settings: &Settings,
    name: &str,
    binary: &Path,
) -> Result<(ClusterController, ClusterState, Vec<String>)> {
    let state = ClusterState::load(&settings.tmp_dir, name)?;
    tls::install_for_cluster(&state.secret, state.tls.as_ref())?;
    let setup = BackendSetup {
        settings,
        name,
        dir: cluster_dir(&settings.tmp_dir, name),
        binary: binary.to_path_buf(),
        secret: state.secret.clone(),
        epoch_ms: state.epoch_ms,
    };
    let mut backend = attach_backend(&state, setup)?;
    let deployment = state.deployment();
    let plane = backend.agents();
    plane.set_deployment(deployment.clone());
    plane.net = state.network.clone();
    let mut unreachable = Vec::new();
    for (i, m) in state.machines.iter().enumerate() {
        let reachable = m.state == crate::controller::MachineState::Running
            && plane
                .connect(MachineId(i as u32), Duration::from_secs(3))
                .await
                .is_ok();
        if !reachable {
            unreachable.push(m.name.clone());
        }
    }
    let ctl = Controller::attach(backend, state.machine_infos(), deployment);
    Ok((ctl, state, unreachable))
}

/// Copies machine logs home, stops everything and forgets the cluster.
/// Returns where the logs are.
pub async fn down(
    ctl: &mut ClusterController,
    state: &ClusterState,
    tmp: &Path,
) -> Result<PathBuf> {
    let dir = cluster_dir(tmp, &state.name);
    let _ = ctl.backend_mut().agents().fetch_logs(&dir).await;
    ctl.shutdown().await?;
    state.forget(tmp)?;
    Ok(dir)
}
