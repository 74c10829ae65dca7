//! What the controller set on real machines' networks: link shapes, links
//! down, isolation and message faults. Kept (and recorded with the
//! cluster) so a restarted machine, whose agent starts blank, gets it back,
//! as a simulated machine keeps its links through a crash.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::net::{LinkSpec, MessageFaults};
use crate::node::MachineId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetState {
    /// Latency and faults per directed link.
    #[serde(default)]
    pub links: Vec<(MachineId, MachineId, LinkSpec)>,
    /// Directed links that are down.
    #[serde(default)]
    pub down: BTreeSet<(MachineId, MachineId)>,
    #[serde(default)]
    pub isolated: BTreeSet<MachineId>,
    /// Faults on what each machine sends.
    #[serde(default)]
    pub faults: Vec<(MachineId, MessageFaults)>,
}

impl NetState {
    pub fn heal(&mut self) {
        self.down.clear();
        self.isolated.clear();
    }

    pub fn is_clear(&self, m: MachineId) -> bool {
        !self.links.iter().any(|(f, _, _)| *f == m)
            && !self.down.iter().any(|(f, t)| *f == m || *t == m)
            && !self.isolated.contains(&m)
            && self.faults_of(m).is_none()
    }

    pub fn set_link(&mut self, from: MachineId, to: MachineId, spec: LinkSpec) {
        self.links.retain(|(f, t, _)| (*f, *t) != (from, to));
        self.links.push((from, to, spec));
    }

    pub fn faults_of(&self, m: MachineId) -> Option<&MessageFaults> {
        self.faults.iter().find(|(x, _)| *x == m).map(|(_, f)| f)
    }

    pub fn set_faults(&mut self, m: MachineId, faults: &MessageFaults) {
        self.faults.retain(|(x, _)| *x != m);
        if !faults.is_none() {
            self.faults.push((m, faults.clone()));
        }
    }
}
