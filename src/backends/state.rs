//! A running cluster's record, so that `dz cluster status / fault / down`,
//! run later from another shell, find its machines: `.tmp/<name>/cluster.json`.
//! Machine logs land next to it as `<machine>.json.log`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::net_state::NetState;
use crate::controller::{Deployment, MachineInfo, MachineState, Placement};
use crate::error::{Error, Result};
use crate::node::{MachineId, Mode};
use crate::runtime::tls::ClusterCa;
use crate::systems::{NodeSpec, Roster};

/// Names under `.tmp/` that other commands use.
const RESERVED: &[&str] = &["demo", "simulate", "clocks", "bench", "images"];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MachineRecord {
    pub name: String,
    /// Control-plane address the controller dials.
    pub control: String,
    /// Data-plane address other machines dial.
    pub data: String,
    pub state: MachineState,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
}

impl MachineRecord {
    pub fn info(&self, id: MachineId) -> MachineInfo {
        MachineInfo {
            id,
            name: self.name.clone(),
            address: Some(self.control.clone()),
            state: self.state,
        }
    }
}

/// Machine `i` of the records is `MachineId(i)`.
pub fn infos(records: &[MachineRecord]) -> Vec<MachineInfo> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| r.info(MachineId(i as u32)))
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlacedSpec {
    pub spec: NodeSpec,
    pub machine: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterState {
    pub name: String,
    pub mode: Mode,
    pub secret: String,
    /// The cluster's start (Unix ms); nodes' clocks count from it.
    pub epoch_ms: u64,
    pub system: String,
    pub machines: Vec<MachineRecord>,
    pub nodes: Vec<PlacedSpec>,
    /// Backend-specific resources (Docker network, image, EC2 security group...).
    #[serde(default)]
    pub resources: Vec<String>,
    /// The network as the controller set it (shape, links down, faults).
    #[serde(default)]
    pub network: NetState,
    /// The cluster's certificate authority when its traffic is TLS.
    #[serde(default)]
    pub tls: Option<ClusterCa>,
}

/// Cluster names: lower-case letters, digits and dashes, not a reserved
/// directory name.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        return Err(Error::input(format!(
            "cluster name {name:?}: use lower-case letters, digits and dashes (at most 40)"
        )));
    }
    if RESERVED.contains(&name) {
        return Err(Error::input(format!("cluster name {name:?} is reserved")));
    }
    Ok(())
}

pub fn cluster_dir(tmp: &Path, name: &str) -> PathBuf {
    tmp.join(name)
}

fn state_path(tmp: &Path, name: &str) -> PathBuf {
    cluster_dir(tmp, name).join("cluster.json")
}

impl ClusterState {
    pub fn load(tmp: &Path, name: &str) -> Result<ClusterState> {
        check_name(name)?;
        let path = state_path(tmp, name);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            Error::input(format!("no cluster named {name:?} (no {})", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    pub fn save(&self, tmp: &Path) -> Result<()> {
        let path = state_path(tmp, &self.name);
        let dir = cluster_dir(tmp, &self.name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::runtime(e.to_string()))?;
        let tmp_path = path.with_extension("tmp");
        // Owner-only: the record holds the cluster secret and CA key.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp_path)
            .map_err(|e| Error::io(&tmp_path, e))?;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(&tmp_path, e))?;
        drop(file);
        std::fs::rename(&tmp_path, &path).map_err(|e| Error::io(&path, e))
    }

    /// Forgets the cluster (its logs stay).
    pub fn forget(&self, tmp: &Path) -> Result<()> {
        let path = state_path(tmp, &self.name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Every cluster recorded under `tmp`.
    pub fn all(tmp: &Path) -> Vec<ClusterState> {
        let Ok(entries) = std::fs::read_dir(tmp) else {
            return Vec::new();
        };
        let mut out: Vec<ClusterState> = entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("cluster.json")).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn deployment(&self) -> Deployment {
        Deployment {
            roster: std::sync::Arc::new(Roster {
                nodes: self.nodes.iter().map(|p| p.spec.clone()).collect(),
            }),
            placement: self.nodes.iter().map(|p| MachineId(p.machine)).collect(),
        }
    }

    pub fn set_placement(&mut self, placement: &Placement) {
        self.nodes = placement
            .iter()
            .map(|(spec, m)| PlacedSpec {
                spec: spec.clone(),
                machine: m.0,
            })
            .collect();
    }

    pub fn machine_infos(&self) -> Vec<MachineInfo> {
        infos(&self.machines)
    }
}
