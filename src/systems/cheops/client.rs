//! A simulated client: operations of several types on random resources at
//! random sites, each retried to its site until acknowledged, or given
//! as a fixed script (the original's scenarios).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::msg::{CheopsMsg, ExecRequest};
use crate::node::{Ctx, NodeId};

/// A resource and the sites it lives on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    pub id: String,
    pub sites: Vec<String>,
}

/// One scripted operation: at `at_ms`, at `site`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptedOp {
    pub at_ms: f64,
    pub site: String,
    pub resource: String,
    pub kind: String,
    pub command: String,
    #[serde(default)]
    pub config: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    pub resources: Vec<ResourceSpec>,
    /// The matrix sent with every operation (JSON), empty for none.
    pub config: String,
    /// Mean time between random operations; 0 for none.
    pub interval_ms: f64,
    /// Random operations stop after this.
    pub duration_ms: f64,
    pub retry_ms: f64,
    /// Percent of random operations that fail at run time (typed `inc`).
    pub failing: u32,
    pub script: Vec<ScriptedOp>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            resources: Vec::new(),
            config: String::new(),
            interval_ms: 0.0,
            duration_ms: 0.0,
            retry_ms: 200.0,
            failing: 5,
            script: Vec::new(),
        }
    }
}

impl Workload {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms < 0.0 || self.retry_ms <= 0.0 || self.failing > 100 {
            return Err("need interval_ms >= 0, retry_ms > 0, failing <= 100".into());
        }
        if self.interval_ms > 0.0 && self.resources.iter().any(|r| r.sites.is_empty()) {
            return Err("every resource needs a site".into());
        }
        Ok(())
    }
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub request: ExecRequest,
    pub site: NodeId,
    pub acked: Option<Result<(), String>>,
}

const TICK: u64 = 1;
const RETRY: u64 = 2;
const SCRIPT: u64 = 3;

pub struct Client {
    me: u32,
    workload: Workload,
    sites: BTreeMap<String, NodeId>,
    seq: u64,
    sent: BTreeMap<String, Sent>,
}

impl Client {
    pub fn new(me: u32, workload: Workload, sites: BTreeMap<String, NodeId>) -> Client {
        Client {
            me,
            workload,
            sites,
            seq: 0,
            sent: BTreeMap::new(),
        }
    }

    pub fn sent(&self) -> &BTreeMap<String, Sent> {
        &self.sent
    }

    pub fn start(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        // A client has no storage: after a restart it starts over, with
        // request ids that cannot collide with its earlier ones.
        self.seq = ctx.now().as_nanos() as u64;
        self.sent.clear();
        if ctx.now() == Duration::ZERO {
            for (i, s) in self.workload.script.iter().enumerate() {
                ctx.set_timer(
                    Duration::from_secs_f64(s.at_ms / 1e3),
                    SCRIPT + 1 + i as u64,
                );
            }
        }
        if self.workload.interval_ms > 0.0 && !self.workload.resources.is_empty() {
            self.next_tick(ctx);
        }
        ctx.set_timer(self.retry(), RETRY);
    }

    fn retry(&self) -> Duration {
        Duration::from_secs_f64(self.workload.retry_ms / 1e3)
    }

    fn next_tick(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        let mean = self.workload.interval_ms;
        let ms = ctx.rng().random_range(mean * 0.5..mean * 1.5);
        ctx.set_timer(Duration::from_secs_f64(ms / 1e3), TICK);
    }

    fn send(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, site: &str, request: ExecRequest) {
        let Some(&node) = self.sites.get(site) else {
            return;
        };
        ctx.send(node, CheopsMsg::Exec(request.clone()));
        self.sent.insert(
            request.request_id.clone(),
            Sent {
                request,
                site: node,
                acked: None,
            },
        );
    }

    fn random_op(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        let n = self.workload.resources.len();
        let r = self.workload.resources[ctx.rng().random_range(0..n)].clone();
        let site = r.sites[ctx.rng().random_range(0..r.sites.len())].clone();
        let roll = ctx.rng().random_range(0..100u32);
        let v = ctx.rng().random_range(-50..50i64);
        let (kind, command) = if roll < self.workload.failing {
            ("inc", format!("SADD {} error", r.id))
        } else if roll < 30 {
            ("set", format!("SET {} {v}", r.id))
        } else if roll < 35 {
            ("set", format!("DEL {}", r.id))
        } else {
            ("inc", format!("INCRBY {} {v}", r.id))
        };
        self.seq += 1;
        let request = ExecRequest {
            resource: r.id.clone(),
            sites: r.sites.clone(),
            kind: kind.into(),
            command,
            config: self.workload.config.clone(),
            files: Vec::new(),
            request_id: format!("c{}-{}", self.me, self.seq),
            backend: String::new(),
        };
        self.send(ctx, &site, request);
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, tag: u64) {
        match tag {
            TICK if ctx.now().as_secs_f64() * 1e3 < self.workload.duration_ms => {
                self.random_op(ctx);
                self.next_tick(ctx);
            }
            RETRY => {
                let pending: Vec<(NodeId, ExecRequest)> = self
                    .sent
                    .values()
                    .filter(|s| s.acked.is_none())
                    .map(|s| (s.site, s.request.clone()))
                    .collect();
                for (node, req) in pending {
                    ctx.send(node, CheopsMsg::Exec(req));
                }
                ctx.set_timer(self.retry(), RETRY);
            }
            t if t > SCRIPT => {
                let Some(s) = self.workload.script.get((t - SCRIPT - 1) as usize).cloned() else {
                    return;
                };
                let sites = self
                    .workload
                    .resources
                    .iter()
                    .find(|r| r.id == s.resource)
                    .map(|r| r.sites.clone())
                    .unwrap_or_default();
                let request = ExecRequest {
                    resource: s.resource.clone(),
                    sites,
                    kind: s.kind.clone(),
                    command: s.command.clone(),
                    config: s.config.clone(),
                    files: Vec::new(),
                    request_id: format!("c{}-script-{}", self.me, t - SCRIPT - 1),
                    backend: String::new(),
                };
                self.send(ctx, &s.site, request);
            }
            _ => {}
        }
    }

    pub fn on_message(&mut self, _ctx: &mut Ctx<'_, CheopsMsg>, msg: CheopsMsg) {
        if let CheopsMsg::ExecAck { request_id, result } = msg
            && let Some(s) = self.sent.get_mut(&request_id)
        {
            s.acked.get_or_insert(result);
        }
    }

    pub fn status(&self) -> serde_json::Value {
        let acked = self.sent.values().filter(|s| s.acked.is_some()).count();
        serde_json::json!({ "sent": self.sent.len(), "acked": acked })
    }
}
