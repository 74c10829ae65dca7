//! The online checker: after every event, servers that applied the same
//! prefix of the log hold the same data. A divergence is caught at the
//! event that causes it, long before a client might notice.

use std::collections::BTreeMap;

use crate::node::NodeId;
use crate::sim::Simulation;
use crate::systems::kv::KvNode;

pub struct Agreement {
    /// The data's digest once a prefix is applied, as first seen.
    at: BTreeMap<u64, (u64, usize)>,
    /// Per server, the applied index last checked.
    seen: Vec<u64>,
}

impl Agreement {
    pub fn new(servers: usize) -> Self {
        Agreement {
            at: BTreeMap::new(),
            seen: vec![u64::MAX; servers],
        }
    }

    /// Checks the servers whose applied index moved; `Err` names the two
    /// servers that disagree.
    pub fn observe(&mut self, sim: &Simulation<KvNode>) -> Result<(), String> {
        for (s, seen) in self.seen.iter_mut().enumerate() {
            let Some(server) = sim.node(NodeId(s as u32)).and_then(KvNode::as_server) else {
                continue;
            };
            let applied = server.applied();
            if applied == *seen {
                continue;
            }
            *seen = applied;
            let digest = server.store().digest();
            match self.at.get(&applied) {
                Some(&(d, first)) if d != digest => {
                    return Err(format!(
                        "replicas disagree: s{first} and s{s} applied slots 1..={applied} to different data \
                         (at {:?} simulated)",
                        sim.now()
                    ));
                }
                Some(_) => {}
                None => {
                    self.at.insert(applied, (digest, s));
                }
            }
        }
        Ok(())
    }
}
