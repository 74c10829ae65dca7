//! What a system is to the framework: how its nodes are named, configured
//! and built from a [`NodeSpec`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Node, NodeId};
use crate::error::{Error, Result};

/// What a machine should run: one node of a system, by role and config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub id: NodeId,
    pub name: String,
    pub system: String,
    pub role: String,
    #[serde(default)]
    pub config: serde_json::Value,
}

/// Every node of a cluster, in id order, so nodes can find their peers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Roster {
    pub nodes: Vec<NodeSpec>,
}

impl Roster {
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn ids_with_role(&self, role: &str) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.id)
            .collect()
    }
}

/// A distributed system: its node type and how to build a node from a spec.
pub trait System: 'static {
    const NAME: &'static str;
    const ROLES: &'static [&'static str];
    type Node: Node;

    /// Builds a node; a bad role or config is an [`Error::Input`].
    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<Self::Node>;
}

/// Reads a system's config object into its typed form, naming the node on
/// error.
pub fn parse_config<T: serde::de::DeserializeOwned + Default>(spec: &NodeSpec) -> Result<T> {
    if spec.config.is_null() {
        return Ok(T::default());
    }
    // Read in place: a config can carry a replica's whole workload.
    T::deserialize(&spec.config).map_err(|e| {
        Error::input(format!(
            "node {:?}: bad {} config: {e}",
            spec.name, spec.system
        ))
    })
}

/// Refuses a role the system does not have.
pub fn check_role<S: System>(spec: &NodeSpec) -> Result<()> {
    if S::ROLES.contains(&spec.role.as_str()) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "node {:?}: {} has no role {:?} (roles: {})",
            spec.name,
            S::NAME,
            spec.role,
            S::ROLES.join(", ")
        )))
    }
}
