//! A Cheops site: takes operations for the resources it is a site of,
//! keeps them durable, replicates them to the other sites of each resource
//! and runs them on its backend.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::block::{Operation, RunPlan, plan_run};
use super::doc::{Order, Reply, ResourceDoc, Status, order_of};
use super::kv_backend::{CommandResult, Keyspace, execute};
use super::matrix::ResourceConfig;
use super::msg::{CheopsMsg, DigestItem, ExecRequest};
use crate::node::{Ctx, NodeId, Work, WorkId};

/// Everything a site keeps for one resource, in one durable file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Local {
    pub doc: Option<ResourceDoc>,
    /// The latest reply of each (request, site).
    pub replies: BTreeMap<(String, String), Reply>,
    /// Requests whose effects `state` holds since the block began here.
    pub applied: Vec<String>,
    /// The backend state of this resource.
    pub state: Keyspace,
    /// The state when the block began here (a re-run starts from it).
    pub base: Keyspace,
}

impl Local {
    fn replies_digest(&self) -> [u8; 32] {
        let keys: Vec<(&(String, String), u32)> =
            self.replies.iter().map(|(k, r)| (k, r.runs)).collect();
        Sha256::digest(postcard::to_stdvec(&keys).expect("encodes")).into()
    }
}

/// Commands of one run, executed off the handler.
struct KvRun {
    keys: Keyspace,
    commands: Vec<String>,
}

struct KvRunDone {
    keys: Keyspace,
    results: Vec<CommandResult>,
}

impl Work for KvRun {
    fn name(&self) -> &'static str {
        "cheops-kv-run"
    }

    fn run(mut self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        let results = self
            .commands
            .iter()
            .map(|c| execute(&mut self.keys, c))
            .collect();
        Box::new(KvRunDone {
            keys: self.keys,
            results,
        })
    }

    fn simulated_duration(&self) -> Duration {
        Duration::from_millis(2 + self.commands.len() as u64)
    }
}

struct Running {
    resource: String,
    plan: RunPlan,
    ops: Vec<Operation>,
}

const ANTI_ENTROPY: u64 = 1;

pub struct Site {
    me: String,
    /// Site name to node, for every site of the cluster.
    sites: BTreeMap<String, NodeId>,
    anti_entropy: Duration,
    resources: BTreeMap<String, Local>,
    running: BTreeMap<WorkId, Running>,
    busy: BTreeSet<String>,
}

fn file_of(resource: &str) -> String {
    format!("res-{}", hex::encode(resource))
}

impl Site {
    pub fn new(me: String, sites: BTreeMap<String, NodeId>, anti_entropy: Duration) -> Site {
        Site {
            me,
            sites,
            anti_entropy,
            resources: BTreeMap::new(),
            running: BTreeMap::new(),
            busy: BTreeSet::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    pub fn resources(&self) -> &BTreeMap<String, Local> {
        &self.resources
    }

    pub fn start(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        self.resources.clear();
        self.running.clear();
        self.busy.clear();
        let files = ctx.storage().files();
        for f in files.iter().filter(|f| f.starts_with("res-")) {
            let bytes = ctx.storage().read(f).unwrap_or_default().to_vec();
            match postcard::from_bytes::<Local>(&bytes) {
                Ok(local) => {
                    let id = local.doc.as_ref().map(|d| d.id.clone()).unwrap_or_default();
                    self.resources.insert(id, local);
                }
                Err(e) => {
                    ctx.fail(format!("cheops: unreadable {f}: {e}"));
                    return;
                }
            }
        }
        let ids: Vec<String> = self.resources.keys().cloned().collect();
        for id in ids {
            self.maybe_run(ctx, &id);
        }
        ctx.set_timer(self.anti_entropy, ANTI_ENTROPY);
    }

    /// Writes and syncs a resource's file; a storage error stops the node
    /// (fail-stop) before anything sent in this handler leaves.
    fn persist(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, id: &str) {
        let Some(local) = self.resources.get(id) else {
            return;
        };
        let bytes = postcard::to_stdvec(local).expect("a resource encodes");
        let f = file_of(id);
        let _ = ctx.storage().write(&f, &bytes);
        let _ = ctx.storage().sync(&f);
    }

    fn peers_of(&self, doc: &ResourceDoc) -> Vec<NodeId> {
        doc.sites
            .iter()
            .filter(|s| **s != self.me)
            .filter_map(|s| self.sites.get(s).copied())
            .collect()
    }

    fn check(&self, req: &ExecRequest) -> Result<ResourceConfig, String> {
        if req.resource.is_empty() {
            return Err("empty resource id".into());
        }
        if req.kind.trim().is_empty() {
            return Err("missing type".into());
        }
        if req.command.trim().is_empty() {
            return Err("missing command".into());
        }
        if req.sites.is_empty() {
            return Err("empty site list".into());
        }
        if let Some(bad) = req.sites.iter().find(|s| !self.sites.contains_key(*s)) {
            return Err(format!("unknown site {bad:?}"));
        }
        if !req.sites.contains(&self.me) {
            return Err("Site is not in locations".into());
        }
        ResourceConfig::parse(&req.config)
    }

    fn exec(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, req: ExecRequest) {
        let config = match self.check(&req) {
            Ok(c) => c,
            Err(e) => {
                ctx.send(
                    from,
                    CheopsMsg::ExecAck {
                        request_id: req.request_id,
                        result: Err(e),
                    },
                );
                return;
            }
        };
        let local = self.resources.entry(req.resource.clone()).or_default();
        let doc = local.doc.get_or_insert_with(|| {
            let mut sites = req.sites.clone();
            sites.dedup();
            ResourceDoc::new(&req.resource, sites, ResourceConfig::default())
        });
        if !doc.sites.contains(&self.me) {
            ctx.send(
                from,
                CheopsMsg::ExecAck {
                    request_id: req.request_id,
                    result: Err("Site is not in locations".into()),
                },
            );
            return;
        }
        let op = Operation {
            kind: req.kind.trim().to_string(),
            request_id: req.request_id.clone(),
            command: req.command.trim().to_string(),
            files: req.files.into_iter().collect(),
            time_ns: ctx.now().as_nanos() as u64,
        };
        let taken = doc.take(&self.me, op, Some(config));
        if taken {
            ctx.count("ops_taken", 1);
            self.persist(ctx, &req.resource);
            self.push(ctx, &req.resource, false);
            self.maybe_run(ctx, &req.resource);
        }
        ctx.send(
            from,
            CheopsMsg::ExecAck {
                request_id: req.request_id,
                result: Ok(()),
            },
        );
    }

    /// Sends a resource's copy (and, with `replies`, its replies) to its
    /// other sites at once; anti-entropy repairs what gets lost.
    fn push(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, id: &str, replies: bool) {
        let Some(local) = self.resources.get(id) else {
            return;
        };
        let Some(doc) = &local.doc else { return };
        let msg = CheopsMsg::Docs {
            docs: vec![doc.clone()],
            replies: if replies {
                local.replies.values().cloned().collect()
            } else {
                Vec::new()
            },
        };
        for p in self.peers_of(doc) {
            ctx.send(p, msg.clone());
        }
    }

    fn receive(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        docs: Vec<ResourceDoc>,
        replies: Vec<Reply>,
    ) {
        let mut changed = BTreeSet::new();
        for doc in docs {
            // Only the sites of a resource hold it.
            if !doc.sites.contains(&self.me) {
                continue;
            }
            let local = self.resources.entry(doc.id.clone()).or_default();
            let new = match &local.doc {
                None => doc,
                Some(mine) => {
                    let r = mine.reconcile(&doc);
                    if mine.order(&doc) == Order::Diverged {
                        ctx.count("merges", 1);
                    }
                    r
                }
            };
            if local.doc.as_ref() != Some(&new) {
                local.doc = Some(new);
                changed.insert(local.doc.as_ref().expect("set").id.clone());
            }
        }
        for r in replies {
            let id = r.resource.clone();
            if !self
                .resources
                .get(&id)
                .and_then(|l| l.doc.as_ref())
                .is_some_and(|d| d.known.contains(&r.request_id))
            {
                continue;
            }
            let local = self.resources.get_mut(&id).expect("found");
            let key = (r.request_id.clone(), r.site.clone());
            if local.replies.get(&key).is_none_or(|old| r.newer(old)) {
                local.replies.insert(key, r);
                changed.insert(id);
            }
        }
        for id in &changed {
            self.persist(ctx, id);
        }
        for id in &changed {
            self.maybe_run(ctx, id);
        }
    }

    fn digest_for(&self, peer: &str) -> Vec<DigestItem> {
        self.resources
            .iter()
            .filter_map(|(id, l)| {
                let d = l.doc.as_ref()?;
                d.sites.iter().any(|s| s == peer).then(|| DigestItem {
                    resource: id.clone(),
                    seen: d.seen.clone(),
                    doc_digest: d.digest(),
                    replies_digest: l.replies_digest(),
                })
            })
            .collect()
    }

    /// Answers a peer's digest with what it lacks.
    fn on_digest(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, items: Vec<DigestItem>) {
        let Some(peer) = self
            .sites
            .iter()
            .find(|(_, n)| **n == from)
            .map(|(s, _)| s.clone())
        else {
            return;
        };
        let theirs: BTreeMap<&String, &DigestItem> =
            items.iter().map(|i| (&i.resource, i)).collect();
        let (mut docs, mut replies) = (Vec::new(), Vec::new());
        for (id, l) in &self.resources {
            let Some(d) = &l.doc else { continue };
            if !d.sites.contains(&peer) {
                continue;
            }
            match theirs.get(id) {
                None => {
                    docs.push(d.clone());
                    replies.extend(l.replies.values().cloned());
                }
                Some(t) => {
                    let o = order_of(&d.seen, d.digest(), &t.seen, t.doc_digest);
                    if matches!(o, Order::Newer | Order::Diverged) {
                        docs.push(d.clone());
                    }
                    if l.replies_digest() != t.replies_digest {
                        replies.extend(l.replies.values().cloned());
                    }
                }
            }
        }
        if !docs.is_empty() || !replies.is_empty() {
            ctx.send(from, CheopsMsg::Docs { docs, replies });
        }
    }

    /// Starts a run of what the block needs here, one run per resource
    /// at a time.
    fn maybe_run(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, id: &str) {
        if self.busy.contains(id) {
            return;
        }
        let Some(local) = self.resources.get(id) else {
            return;
        };
        let Some(doc) = &local.doc else { return };
        let plan = plan_run(&doc.ops, &local.applied, &doc.config);
        if plan.run.is_empty() {
            return;
        }
        let ops: Vec<Operation> = plan.run.iter().map(|&i| doc.ops[i].clone()).collect();
        let keys = if plan.restore_base {
            local.base.clone()
        } else {
            local.state.clone()
        };
        let work = KvRun {
            keys,
            commands: ops.iter().map(|o| o.command.clone()).collect(),
        };
        let w = ctx.start_work(work);
        self.busy.insert(id.to_string());
        self.running.insert(
            w,
            Running {
                resource: id.to_string(),
                plan,
                ops,
            },
        );
    }

    pub fn work_done(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        work: WorkId,
        output: Box<dyn std::any::Any + Send>,
    ) {
        let Some(run) = self.running.remove(&work) else {
            return;
        };
        self.busy.remove(&run.resource);
        let Ok(done) = output.downcast::<KvRunDone>() else {
            return;
        };
        let now = ctx.now().as_nanos() as u64;
        let id = run.resource.clone();
        let local = self
            .resources
            .get_mut(&run.resource)
            .expect("a running resource");
        if run.plan.new_base {
            local.base = local.state.clone();
        }
        if run.plan.new_base || run.plan.restore_base {
            local.applied.clear();
        }
        local.state = done.keys;
        for (op, res) in run.ops.iter().zip(done.results) {
            local.applied.push(op.request_id.clone());
            let key = (op.request_id.clone(), self.me.clone());
            let runs = local.replies.get(&key).map_or(0, |r| r.runs) + 1;
            ctx.count(if res.ok { "runs_ok" } else { "runs_ko" }, 1);
            local.replies.insert(
                key,
                Reply {
                    resource: id.clone(),
                    site: self.me.clone(),
                    request_id: op.request_id.clone(),
                    status: if res.ok { Status::Ok } else { Status::Ko },
                    input: op.command.clone(),
                    output: res.output,
                    time_ns: now,
                    runs,
                },
            );
        }
        self.persist(ctx, &id);
        self.push(ctx, &id, true);
        self.maybe_run(ctx, &id);
    }

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, msg: CheopsMsg) {
        match msg {
            CheopsMsg::Exec(req) => self.exec(ctx, from, req),
            CheopsMsg::Digest(items) => self.on_digest(ctx, from, items),
            CheopsMsg::Docs { docs, replies } => self.receive(ctx, docs, replies),
            CheopsMsg::ExecAck { .. } => {}
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, tag: u64) {
        if tag != ANTI_ENTROPY {
            return;
        }
        let peers: Vec<(String, NodeId)> = self
            .sites
            .iter()
            .filter(|(s, _)| **s != self.me)
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        for (name, node) in peers {
            let items = self.digest_for(&name);
            if !items.is_empty() {
                ctx.send(node, CheopsMsg::Digest(items));
            }
        }
        ctx.set_timer(self.anti_entropy, ANTI_ENTROPY);
    }

    pub fn status(&self) -> serde_json::Value {
        let resources: serde_json::Map<String, serde_json::Value> = self
            .resources
            .iter()
            .map(|(id, l)| {
                let ops: Vec<&str> = l
                    .doc
                    .iter()
                    .flat_map(|d| d.ops.iter().map(|o| o.request_id.as_str()))
                    .collect();
                (
                    id.clone(),
                    serde_json::json!({
                        "block": ops,
                        "state": l.state,
                        "replies": l.replies.len(),
                    }),
                )
            })
            .collect();
        serde_json::json!({ "site": self.me, "resources": resources })
    }
}

#[cfg(test)]
mod tests;
