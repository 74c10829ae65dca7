//! A simulated kv client: it runs a workload against the service and
//! records the history a linearizability checker reads (call time, return
//! time, operation, output).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::msg::{KvMsg, Op, Outcome, Request, Response};
use super::workload::Workload;
use crate::node::{Ctx, NodeId};

const ISSUE: u64 = 1;
const RETRY: u64 = 2;

/// One operation as the client saw it. `ret_ns`/`output` are `None` for an
/// operation that never got an answer (it may or may not have happened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryOp {
    pub client: u32,
    pub id: u64,
    pub op: Op,
    pub call_ns: u64,
    pub ret_ns: Option<u64>,
    pub output: Option<Response>,
    pub tries: u32,
    /// A read of the state the run started from (on a cluster that may
    /// already hold data): its key starts unknown to the checker, not
    /// absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initial: bool,
}

struct Pending {
    op: Op,
    call_ns: u64,
    sent_ns: u64,
    tries: u32,
    /// The server the latest send went to, until a redirect from it is
    /// followed. Only that one redirect is: a duplicated or late reply
    /// must not fork the request into copies that bounce between servers
    /// and multiply while no master is known.
    sent_to: Option<NodeId>,
}

pub struct Client {
    workload: Workload,
    servers: Vec<NodeId>,
    target: usize,
    next_id: u64,
    issued: u64,
    pending: BTreeMap<u64, Pending>,
    history: Vec<HistoryOp>,
    /// Ops to issue after the workload (final reads of every key).
    tail: Vec<Op>,
}

impl Client {
    pub fn new(workload: Workload, servers: Vec<NodeId>) -> Self {
        let tail = if workload.final_reads {
            (0..workload.keys)
                .map(|k| Op::Get(workload.key(k)))
                .collect()
        } else {
            Vec::new()
        };
        Client {
            workload,
            servers,
            target: 0,
            next_id: 1,
            issued: 0,
            pending: BTreeMap::new(),
            history: Vec::new(),
            tail,
        }
    }

    pub fn history(&self) -> &[HistoryOp] {
        &self.history
    }

    /// Completed and unanswered operations alike.
    pub fn full_history(&self, me: NodeId) -> Vec<HistoryOp> {
        let mut h = self.history.clone();
        for (&id, p) in &self.pending {
            h.push(HistoryOp {
                client: me.0,
                id,
                op: p.op.clone(),
                call_ns: p.call_ns,
                ret_ns: None,
                output: None,
                tries: p.tries,
                initial: false,
            });
        }
        h
    }

    pub fn done(&self) -> bool {
        self.issued >= self.workload.requests && self.tail.is_empty() && self.pending.is_empty()
    }

    pub fn start(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        self.target = ctx.rng().random_range(0..self.servers.len());
        let first =
            ms(self.workload.start_ms + ctx.rng().random_range(0.0..=self.workload.interval_ms));
        ctx.set_timer(first, ISSUE);
        ctx.set_timer(ms(self.workload.retry_ms / 2.0), RETRY);
    }

    fn next_op(&mut self, ctx: &mut Ctx<'_, KvMsg>) -> Option<Op> {
        let d = self.workload.duration_ms;
        if d > 0.0 && ctx.now() > ms(d) {
            self.workload.requests = self.issued;
        }
        if self.issued < self.workload.requests {
            self.issued += 1;
            return Some(self.workload.op(ctx.rng()));
        }
        if self.issued == self.workload.requests && self.pending.is_empty() && !self.tail.is_empty()
        {
            return Some(self.tail.remove(0));
        }
        None
    }

    fn issue(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        if self.pending.len() >= self.workload.outstanding {
            return;
        }
        let Some(op) = self.next_op(ctx) else { return };
        let id = self.next_id;
        self.next_id += 1;
        let now = ctx.now().as_nanos() as u64;
        self.pending.insert(
            id,
            Pending {
                op,
                call_ns: now,
                sent_ns: now,
                tries: 1,
                sent_to: None,
            },
        );
        self.send(ctx, id);
    }

    fn send(&mut self, ctx: &mut Ctx<'_, KvMsg>, id: u64) {
        let min_outstanding = self.pending.keys().next().copied().unwrap_or(self.next_id);
        let to = self.servers[self.target];
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.sent_to = Some(to);
        let req = Request {
            client: ctx.me(),
            id,
            op: p.op.clone(),
            min_outstanding,
        };
        ctx.send(to, KvMsg::Request(req));
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, KvMsg>, from: NodeId, msg: KvMsg) {
        let KvMsg::Reply { id, outcome } = msg else {
            return;
        };
        match outcome {
            Outcome::Done(output) => {
                let Some(p) = self.pending.remove(&id) else {
                    return;
                };
                self.history.push(HistoryOp {
                    client: ctx.me().0,
                    id,
                    op: p.op,
                    call_ns: p.call_ns,
                    ret_ns: Some(ctx.now().as_nanos() as u64),
                    output: Some(output),
                    tries: p.tries,
                    initial: false,
                });
                if let Some(i) = self.servers.iter().position(|&s| s == from) {
                    self.target = i;
                }
                // Keep the load up: the next request need not wait for a timer.
                let pause = ctx.rng().random_range(0.0..=self.workload.interval_ms);
                ctx.set_timer(ms(pause), ISSUE);
            }
            Outcome::Redirect(hint) => {
                let Some(p) = self.pending.get_mut(&id) else {
                    return;
                };
                if p.sent_to != Some(from) {
                    return; // not the answer to the latest send
                }
                p.tries += 1;
                p.sent_ns = ctx.now().as_nanos() as u64;
                // The hinted master, else the server after this one; never
                // this one again, so each send is answered by a new server.
                let n = self.servers.len();
                let here = self.servers.iter().position(|&s| s == from).unwrap_or(0);
                self.target = hint
                    .filter(|&h| h != from)
                    .and_then(|h| self.servers.iter().position(|&s| s == h))
                    .unwrap_or((here + 1) % n);
                self.send(ctx, id);
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, KvMsg>, tag: u64) {
        match tag {
            ISSUE => {
                self.issue(ctx);
                if self.issued < self.workload.requests
                    && self.pending.len() < self.workload.outstanding
                {
                    let pause = ctx.rng().random_range(0.0..=self.workload.interval_ms);
                    ctx.set_timer(ms(pause), ISSUE);
                }
            }
            RETRY => {
                let now = ctx.now().as_nanos() as u64;
                let late_ns = (self.workload.retry_ms * 1e6) as u64;
                let late: Vec<u64> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| now > p.sent_ns + late_ns)
                    .map(|(id, _)| *id)
                    .collect();
                if !late.is_empty() {
                    self.target = (self.target + 1) % self.servers.len();
                }
                for id in late {
                    if let Some(p) = self.pending.get_mut(&id) {
                        p.tries += 1;
                        p.sent_ns = now;
                    }
                    self.send(ctx, id);
                }
                if !self.done() {
                    ctx.set_timer(ms(self.workload.retry_ms / 2.0), RETRY);
                }
            }
            _ => {}
        }
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "issued": self.issued,
            "completed": self.history.len(),
            "pending": self.pending.len(),
        })
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0) / 1e3)
}
