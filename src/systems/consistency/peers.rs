//! Who a replica talks to, from the roster (every node's protocol and
//! location are in its config) and the replica's own links.

use rand::RngExt;

use super::config::{Integration, Protocol, ReplicaConfig};
use crate::node::Roster;
use crate::rng::DetRng;

#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Linked replicas of my kind (eventual and stentor count as one kind).
    pub same: Vec<u32>,
    /// Of those, in my location and elsewhere (stentor).
    pub same_local: Vec<u32>,
    pub same_wide: Vec<u32>,
    /// Every linked replica.
    pub all: Vec<u32>,
    /// Linked strong (Raft) replicas, in my location and anywhere.
    pub strong_local: Vec<u32>,
    pub strong: Vec<u32>,
    /// Linked eventual or stentor replicas in my location, and the
    /// non-strong replicas elsewhere (federated).
    pub eventual_local: Vec<u32>,
    pub other_wide: Vec<u32>,
    /// My Raft group, me excluded: strong replicas I am linked to (in my
    /// location only when floated).
    pub quorum: Vec<u32>,
    /// By node id: the place in `quorum` (`u32::MAX`: not a member). A
    /// leader looks up every answer's sender; a scan of 19 cost more.
    quorum_place: Vec<u32>,
    /// Strong replicas of each other location (floated).
    pub remote_groups: Vec<Vec<u32>>,
}

fn protocol_of(config: &serde_json::Value) -> Option<Protocol> {
    let name = config
        .get("consistency")
        .and_then(|v| v.as_str())
        .unwrap_or("strong");
    Protocol::parse(name).ok()
}

fn location_of(config: &serde_json::Value) -> Option<&str> {
    config.get("location").and_then(|v| v.as_str())
}

impl Peers {
    pub fn new(me: u32, cfg: &ReplicaConfig, roster: &Roster) -> Peers {
        let mine = cfg.protocol().ok();
        let my_loc = cfg.location.as_deref();
        let linked: Vec<u32> = match &cfg.neighbors {
            Some(n) => n.iter().copied().filter(|&i| i != me).collect(),
            None => roster
                .nodes
                .iter()
                .map(|s| s.id.0)
                .filter(|&i| i != me)
                .collect(),
        };
        let mut p = Peers::default();
        let mut remote: Vec<(String, Vec<u32>)> = Vec::new();
        for &id in &linked {
            let Some(spec) = roster.nodes.get(id as usize) else {
                continue;
            };
            let Some(proto) = protocol_of(&spec.config) else {
                continue;
            };
            let loc = location_of(&spec.config);
            let local = loc == my_loc;
            p.all.push(id);
            let same = match mine {
                Some(m) if m.is_eventual() => proto.is_eventual(),
                Some(m) => proto == m,
                None => false,
            };
            if same {
                p.same.push(id);
                if local {
                    p.same_local.push(id);
                } else {
                    p.same_wide.push(id);
                }
            }
            if proto == Protocol::Raft {
                p.strong.push(id);
                if local {
                    p.strong_local.push(id);
                } else {
                    let name = loc.unwrap_or("").to_string();
                    match remote.iter_mut().find(|(l, _)| *l == name) {
                        Some((_, ids)) => ids.push(id),
                        None => remote.push((name, vec![id])),
                    }
                }
            } else if local {
                if proto.is_eventual() {
                    p.eventual_local.push(id);
                }
            } else {
                p.other_wide.push(id);
            }
        }
        if mine == Some(Protocol::Raft) {
            p.quorum = if cfg.integration == Integration::Floated {
                p.strong_local.clone()
            } else {
                p.strong.clone()
            };
            for (i, &id) in p.quorum.iter().enumerate() {
                let id = id as usize;
                if id >= p.quorum_place.len() {
                    p.quorum_place.resize(id + 1, u32::MAX);
                }
                // A repeated id keeps its first place, as a scan found it.
                if p.quorum_place[id] == u32::MAX {
                    p.quorum_place[id] = i as u32;
                }
            }
        }
        p.remote_groups = remote.into_iter().map(|(_, ids)| ids).collect();
        p
    }

    /// Where `id` is in `quorum`, if it is a member.
    #[inline]
    pub fn quorum_place(&self, id: u32) -> Option<usize> {
        let place = match self.quorum_place.get(id as usize) {
            Some(&i) if i != u32::MAX => Some(i as usize),
            _ => None,
        };
        debug_assert_eq!(place, self.quorum.iter().position(|&p| p == id));
        place
    }
}

/// One of `from` at random, if any.
#[inline]
pub(crate) fn pick(rng: &mut DetRng, from: &[u32]) -> Option<u32> {
    match from.len() {
        0 => None,
        1 => Some(from[0]),
        n => Some(from[rng.random_range(0..n)]),
    }
}
