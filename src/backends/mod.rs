//! The real backends: machines as local processes, Docker containers or EC2
//! instances, each running the `dz machine` agent, and the record a running
//! cluster leaves so later commands can find it.

pub mod agent_plane;
pub mod cluster;
#[cfg(feature = "virtual")]
pub mod docker;
#[cfg(feature = "cloud")]
pub mod ec2;
#[cfg(feature = "virtual")]
pub mod image;
pub mod local;
pub mod net_state;
pub mod state;

use crate::controller::MachineBackend;
use agent_plane::AgentPlane;
use state::MachineRecord;

/// A backend whose machines run the agent.
pub trait ClusterBackend: MachineBackend {
    /// What to remember about each machine in the cluster's record.
    fn records(&self) -> Vec<MachineRecord>;

    fn agents(&mut self) -> &mut AgentPlane;

    /// Backend resources to remember besides machines (a Docker network...).
    fn resources(&self) -> Vec<String> {
        Vec::new()
    }
}
