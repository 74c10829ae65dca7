//! Between the control plane's Cap'n Proto structs and the library's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distzero_capnp::{machine_stats, message_faults, node_spec, placement};
use crate::net::{Counts, MessageFaults};
use crate::node::NodeId;
use crate::node::NodeSpec;

/// Where one node of the cluster runs, as an agent is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacedNode {
    pub spec: NodeSpec,
    pub machine: String,
    pub machine_id: u32,
    /// host:port of that machine's data plane.
    pub address: String,
}

/// One node's counters as an agent reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: NodeId,
    pub kinds: BTreeMap<String, Counts>,
    pub counters: BTreeMap<String, u64>,
    /// Why the node fail-stopped, if it did.
    #[serde(default)]
    pub failed: Option<String>,
    #[serde(default)]
    pub role: String,
    /// It stopped for good (`ctx.exit()`); its counters stay.
    #[serde(default)]
    pub exited: bool,
}

/// What `stats` returns for one machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineReport {
    pub machine: String,
    pub uptime_ms: u64,
    pub nodes: Vec<NodeReport>,
    pub transport: BTreeMap<String, u64>,
}

fn text(r: capnp::Result<capnp::text::Reader<'_>>) -> capnp::Result<String> {
    r?.to_string()
        .map_err(|e| capnp::Error::failed(format!("not UTF-8: {e}")))
}

pub fn write_spec(mut b: node_spec::Builder<'_>, spec: &NodeSpec) {
    b.set_id(spec.id.0);
    b.set_name(spec.name.as_str());
    b.set_system(spec.system.as_str());
    b.set_role(spec.role.as_str());
    b.set_config_json(spec.config.to_string().as_str());
}

pub fn read_spec(r: node_spec::Reader<'_>) -> capnp::Result<NodeSpec> {
    let config = text(r.get_config_json())?;
    Ok(NodeSpec {
        id: NodeId(r.get_id()),
        name: text(r.get_name())?,
        system: text(r.get_system())?,
        role: text(r.get_role())?,
        config: if config.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&config)
                .map_err(|e| capnp::Error::failed(format!("bad node config: {e}")))?
        },
    })
}

pub fn write_placement(mut b: placement::Builder<'_>, p: &PlacedNode) {
    write_spec(b.reborrow().init_node(), &p.spec);
    b.set_machine(p.machine.as_str());
    b.set_address(p.address.as_str());
    b.set_machine_id(p.machine_id);
}

pub fn read_placement(r: placement::Reader<'_>) -> capnp::Result<PlacedNode> {
    Ok(PlacedNode {
        spec: read_spec(r.get_node()?)?,
        machine: text(r.get_machine())?,
        machine_id: r.get_machine_id(),
        address: text(r.get_address())?,
    })
}

pub fn write_faults(mut b: message_faults::Builder<'_>, f: &MessageFaults) {
    b.set_loss(f.loss);
    b.set_duplicate(f.duplicate);
    b.set_reorder(f.reorder);
    b.set_delay_ms(f.delay_ms);
    b.set_reorder_ms(f.reorder_ms.unwrap_or(-1.0));
    let mut kinds = b.init_kinds(f.kinds.len() as u32);
    for (i, k) in f.kinds.iter().enumerate() {
        kinds.set(i as u32, k.as_str());
    }
}

pub fn read_faults(r: message_faults::Reader<'_>) -> capnp::Result<MessageFaults> {
    let mut kinds = Vec::new();
    for k in r.get_kinds()?.iter() {
        kinds.push(text(k)?);
    }
    Ok(MessageFaults {
        loss: r.get_loss(),
        duplicate: r.get_duplicate(),
        reorder: r.get_reorder(),
        reorder_ms: Some(r.get_reorder_ms()).filter(|ms| *ms >= 0.0),
        delay_ms: r.get_delay_ms(),
        kinds,
    })
}

pub fn write_report(mut b: machine_stats::Builder<'_>, report: &MachineReport) {
    b.set_machine(report.machine.as_str());
    b.set_uptime_ms(report.uptime_ms);
    let mut nodes = b.reborrow().init_nodes(report.nodes.len() as u32);
    for (i, n) in report.nodes.iter().enumerate() {
        let mut nb = nodes.reborrow().get(i as u32);
        nb.set_id(n.id.0);
        nb.set_failed(n.failed.as_deref().unwrap_or(""));
        nb.set_role(n.role.as_str());
        nb.set_exited(n.exited);
        let mut kinds = nb.reborrow().init_kinds(n.kinds.len() as u32);
        for (j, (kind, c)) in n.kinds.iter().enumerate() {
            let mut kb = kinds.reborrow().get(j as u32);
            kb.set_kind(kind.as_str());
            kb.set_sent(c.sent);
            kb.set_delivered(c.delivered);
            kb.set_dropped(c.dropped);
        }
        let mut counters = nb.init_counters(n.counters.len() as u32);
        for (j, (name, v)) in n.counters.iter().enumerate() {
            let mut cb = counters.reborrow().get(j as u32);
            cb.set_name(name.as_str());
            cb.set_value(*v);
        }
    }
    let mut transport = b.init_transport(report.transport.len() as u32);
    for (j, (name, v)) in report.transport.iter().enumerate() {
        let mut cb = transport.reborrow().get(j as u32);
        cb.set_name(name.as_str());
        cb.set_value(*v);
    }
}

pub fn read_report(r: machine_stats::Reader<'_>) -> capnp::Result<MachineReport> {
    let mut nodes = Vec::new();
    for n in r.get_nodes()?.iter() {
        let mut kinds = BTreeMap::new();
        for k in n.get_kinds()?.iter() {
            let c = Counts {
                sent: k.get_sent(),
                delivered: k.get_delivered(),
                dropped: k.get_dropped(),
                duplicated: 0,
            };
            kinds.insert(text(k.get_kind())?, c);
        }
        let mut counters = BTreeMap::new();
        for c in n.get_counters()?.iter() {
            counters.insert(text(c.get_name())?, c.get_value());
        }
        let failed = text(n.get_failed())?;
        nodes.push(NodeReport {
            id: NodeId(n.get_id()),
            kinds,
            counters,
            failed: (!failed.is_empty()).then_some(failed),
            role: text(n.get_role())?,
            exited: n.get_exited(),
        });
    }
    let mut transport = BTreeMap::new();
    for c in r.get_transport()?.iter() {
        transport.insert(text(c.get_name())?, c.get_value());
    }
    Ok(MachineReport {
        machine: text(r.get_machine())?,
        uptime_ms: r.get_uptime_ms(),
        nodes,
        transport,
    })
}
