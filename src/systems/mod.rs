//! The distributed systems that ship with DistZero, and how a system is
//! named, configured and instantiated from a [`NodeSpec`].

pub mod blast;
pub mod clocks;
pub mod kv;
pub mod pingpong;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::node::{Node, NodeId};

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

/// Code that works for any system; see [`with_system`].
pub trait SystemVisitor {
    type Out;
    fn visit<S: System>(self) -> Self::Out;
}

/// The names of the systems `dz` knows.
pub const SYSTEMS: &[&str] = &[
    pingpong::PingPong::NAME,
    clocks::Clocks::NAME,
    blast::Blast::NAME,
    kv::Kv::NAME,
];

/// Runs `visitor` with the system called `name`.
pub fn with_system<V: SystemVisitor>(name: &str, visitor: V) -> Result<V::Out> {
    match name {
        pingpong::PingPong::NAME => Ok(visitor.visit::<pingpong::PingPong>()),
        clocks::Clocks::NAME => Ok(visitor.visit::<clocks::Clocks>()),
        blast::Blast::NAME => Ok(visitor.visit::<blast::Blast>()),
        kv::Kv::NAME => Ok(visitor.visit::<kv::Kv>()),
        _ => Err(Error::input(format!(
            "unknown system {name:?} (known: {})",
            SYSTEMS.join(", ")
        ))),
    }
}

/// Builds every node of `roster` once and drops it, so that a spec its
/// system refuses (a bad config) is an input error before anything starts.
pub fn check_buildable(roster: &Arc<Roster>) -> Result<()> {
    struct Build<'a>(&'a NodeSpec, &'a Arc<Roster>);
    impl SystemVisitor for Build<'_> {
        type Out = Result<()>;
        fn visit<S: System>(self) -> Result<()> {
            S::build(self.0, self.1).map(drop)
        }
    }
    for spec in &roster.nodes {
        with_system(&spec.system, Build(spec, roster))?.map_err(|e| Error::input(e.to_string()))?;
    }
    Ok(())
}

/// Reads a system's config object into its typed form, naming the node on
/// error.
pub fn parse_config<T: serde::de::DeserializeOwned + Default>(spec: &NodeSpec) -> Result<T> {
    if spec.config.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(spec.config.clone()).map_err(|e| {
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
