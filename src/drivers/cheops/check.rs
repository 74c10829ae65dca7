//! What a healed cheops cluster must show: every site of each resource
//! holds the same block and backend state, the state the block gives, a
//! reply from every site for every operation of the block, and every
//! acknowledged operation.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::net::ClockSkew;
use crate::node::NodeId;
use crate::sim::{SimConfig, Simulation};
use crate::systems::cheops::client::Workload;
use crate::systems::cheops::doc::Status;
use crate::systems::cheops::kv_backend::{Keyspace, execute};
use crate::systems::cheops::{Cheops, CheopsNode};
use crate::systems::{NodeSpec, Roster, System};

/// Builds `sites` site nodes (named by `names`, machines 0..n) and one
/// client running `workload` on the last machine.
pub fn build(
    cfg: SimConfig,
    names: &[String],
    workload: &Workload,
) -> Result<Simulation<CheopsNode>> {
    let mut sim = Simulation::new(cfg);
    let wl = serde_json::to_value(workload).map_err(|e| Error::runtime(e.to_string()))?;
    let mut nodes: Vec<NodeSpec> = names
        .iter()
        .enumerate()
        .map(|(i, n)| NodeSpec {
            id: NodeId(i as u32),
            name: n.clone(),
            system: Cheops::NAME.into(),
            role: "site".into(),
            config: serde_json::Value::Null,
        })
        .collect();
    nodes.push(NodeSpec {
        id: NodeId(names.len() as u32),
        name: "client".into(),
        system: Cheops::NAME.into(),
        role: "client".into(),
        config: wl,
    });
    let roster = Arc::new(Roster { nodes });
    for spec in &roster.nodes {
        let m = sim.add_machine(ClockSkew::default());
        let mut first = Some(Cheops::build(spec, &roster)?);
        let (spec, roster) = (spec.clone(), roster.clone());
        sim.add_node(m, move || {
            first
                .take()
                .unwrap_or_else(|| Cheops::build(&spec, &roster).expect("built once"))
        });
    }
    Ok(sim)
}

/// A resource's converged outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ResourceOutcome {
    pub block: Vec<String>,
    pub state: Keyspace,
    pub ko_replies: usize,
}

/// Checks a finished run; the first problem found, or each resource's
/// outcome.
pub fn check(
    sim: &Simulation<CheopsNode>,
    names: &[String],
    workload: &Workload,
) -> std::result::Result<BTreeMap<String, ResourceOutcome>, String> {
    if let Some(f) = sim.failures().first() {
        return Err(format!("node {} stopped at {:?}: {}", f.node, f.at, f.why));
    }
    let site = |i: usize| sim.node(NodeId(i as u32)).and_then(CheopsNode::as_site);
    let client = sim
        .node(NodeId(names.len() as u32))
        .and_then(CheopsNode::as_client)
        .ok_or("the client is not running")?;
    let mut out = BTreeMap::new();
    for r in &workload.resources {
        let mut first: Option<(String, &crate::systems::cheops::site::Local)> = None;
        for (i, name) in names.iter().enumerate() {
            let s = site(i).ok_or_else(|| format!("site {name} is not running"))?;
            let local = s.resources().get(&r.id);
            if !r.sites.contains(name) {
                if local.is_some() {
                    return Err(format!("{name} holds {} but is not one of its sites", r.id));
                }
                continue;
            }
            let Some(local) = local else {
                // Nothing was ever taken for it.
                if client.sent().values().any(|x| x.request.resource == r.id) {
                    return Err(format!("{name} never got {}", r.id));
                }
                continue;
            };
            let doc = local.doc.as_ref().ok_or("a resource without a document")?;
            match &first {
                None => first = Some((name.clone(), local)),
                Some((n0, l0)) => {
                    if l0.doc != local.doc {
                        return Err(format!(
                            "{}: {n0} and {name} hold different documents",
                            r.id
                        ));
                    }
                    if l0.state != local.state {
                        return Err(format!(
                            "{}: backend state {:?} at {n0} but {:?} at {name}",
                            r.id, l0.state, local.state
                        ));
                    }
                }
            }
            let mut expected = Keyspace::new();
            for op in &doc.ops {
                execute(&mut expected, &op.command);
            }
            if expected != local.state {
                return Err(format!(
                    "{}: {name} holds {:?}, the block gives {:?}",
                    r.id, local.state, expected
                ));
            }
            for op in &doc.ops {
                for s in &r.sites {
                    if !local
                        .replies
                        .contains_key(&(op.request_id.clone(), s.clone()))
                    {
                        return Err(format!(
                            "{}: {name} has no reply of {s} for {}",
                            r.id, op.request_id
                        ));
                    }
                }
            }
            for sent in client
                .sent()
                .values()
                .filter(|x| x.request.resource == r.id)
            {
                match &sent.acked {
                    None => return Err(format!("{} never acknowledged", sent.request.request_id)),
                    Some(Ok(())) if !doc.known.contains(&sent.request.request_id) => {
                        return Err(format!(
                            "{name} lost acknowledged {}",
                            sent.request.request_id
                        ));
                    }
                    _ => {}
                }
            }
        }
        if let Some((_, l)) = first {
            let doc = l.doc.as_ref().expect("checked");
            out.insert(
                r.id.clone(),
                ResourceOutcome {
                    block: doc.ops.iter().map(|o| o.command.clone()).collect(),
                    state: l.state.clone(),
                    ko_replies: l
                        .replies
                        .values()
                        .filter(|x| x.status == Status::Ko)
                        .count(),
                },
            );
        }
    }
    Ok(out)
}
