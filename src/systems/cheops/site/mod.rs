//! A Cheops site: takes operations for the resources it is a site of,
//! keeps them durable, replicates them to the other sites of each resource
//! and runs them on its backend.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::block::Operation;
use super::doc::{Backend, Order, Reply, ResourceDoc, order_of};
use super::kv_backend::Keyspace;
use super::matrix::ResourceConfig;
use super::msg::{CheopsMsg, DigestItem, ExecRequest};
use crate::node::{Ctx, Mode, NodeId, WorkId};

mod api;
mod run;

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

const ANTI_ENTROPY: u64 = 1;

pub struct Site {
    me: String,
    /// Site name to node, for every site of the cluster.
    sites: BTreeMap<String, NodeId>,
    anti_entropy: Duration,
    resources: BTreeMap<String, Local>,
    running: BTreeMap<WorkId, run::Job>,
    busy: BTreeSet<String>,
    /// Shell commands may run here (`dz cluster up --allow-shell`).
    allow_shell: bool,
    /// Where shell commands run, a directory per resource.
    shell_dir: String,
    /// Outside clients watching a resource, until their lease ends.
    watchers: BTreeMap<(NodeId, String), Duration>,
    /// Show requests relayed to peers: our ask to (asker, its ask, when).
    relays: BTreeMap<u64, (NodeId, u64, Duration)>,
    next_ask: u64,
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
            allow_shell: false,
            shell_dir: String::new(),
            watchers: BTreeMap::new(),
            relays: BTreeMap::new(),
            next_ask: 0,
        }
    }

    /// Lets shell commands run, in `dir` (empty: the system's temporary
    /// directory).
    pub fn with_shell(mut self, allow: bool, dir: String) -> Site {
        self.allow_shell = allow;
        self.shell_dir = dir;
        self
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
        self.watchers.clear();
        self.relays.clear();
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
        self.notify(ctx, id);
    }

    fn peers_of(&self, doc: &ResourceDoc) -> Vec<NodeId> {
        doc.sites
            .iter()
            .filter(|s| **s != self.me)
            .filter_map(|s| self.sites.get(s).copied())
            .collect()
    }

    /// Why this site cannot run shell commands, if it cannot.
    fn shell_refused(&self, mode: Mode) -> Option<String> {
        if mode == Mode::Simulated {
            Some("the shell backend runs on real machines only, not in simulation".into())
        } else if !self.allow_shell {
            Some(
                "the shell backend is off on this cluster; start it with \
                 `dz cluster up --system cheops --allow-shell`"
                    .into(),
            )
        } else {
            None
        }
    }

    /// The backend a request asks for (empty: shell where allowed, as the
    /// original, else kv).
    fn backend_of(&self, req: &ExecRequest, mode: Mode) -> Result<Backend, String> {
        let backend = match req.backend.trim() {
            "" if self.allow_shell && mode != Mode::Simulated => Backend::Shell,
            "" => Backend::Kv,
            b => Backend::parse(b)?,
        };
        match (backend, self.shell_refused(mode)) {
            (Backend::Shell, Some(why)) => Err(why),
            _ => Ok(backend),
        }
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
        let checked = self
            .check(&req)
            .and_then(|c| Ok((c, self.backend_of(&req, ctx.mode())?)));
        let (config, backend) = match checked {
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
            let mut doc = ResourceDoc::new(&req.resource, sites, ResourceConfig::default());
            doc.backend = backend;
            doc
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
        // Not written here: what a peer sent is durable at the peer, and
        // anti-entropy sends it again if a crash loses it. It reaches the
        // disk with this site's next run or operation (one file per
        // resource), which halves the syncs per operation.
        for id in &changed {
            self.notify(ctx, id);
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

    pub fn on_message(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, msg: CheopsMsg) {
        match msg {
            CheopsMsg::Exec(req) => self.exec(ctx, from, req),
            CheopsMsg::Digest(items) => self.on_digest(ctx, from, items),
            CheopsMsg::Docs { docs, replies } => self.receive(ctx, docs, replies),
            CheopsMsg::Watch { resource } => self.watch(ctx, from, resource),
            CheopsMsg::Show {
                ask,
                resource,
                command,
                sites,
            } => self.show(ctx, from, ask, resource, command, sites),
            CheopsMsg::ShowReply {
                ask,
                site,
                ok,
                output,
            } => self.relay_back(ctx, ask, site, ok, output),
            CheopsMsg::ExecAck { .. } | CheopsMsg::Update(_) => {}
        }
    }

    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, tag: u64) {
        if tag != ANTI_ENTROPY {
            return;
        }
        self.expire(ctx.now());
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
                        "backend": l.doc.as_ref().map(|d| d.backend.as_str()),
                    }),
                )
            })
            .collect();
        serde_json::json!({ "site": self.me, "resources": resources })
    }
}

#[cfg(test)]
mod tests;
