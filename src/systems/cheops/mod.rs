//! `cheops`: Cheops (Go + CouchDB) on DistZero. Every operation on a
//! resource is recorded, replicated to the sites that resource lives on
//! and run at each of them; blocks that diverged under partitions merge by
//! the resource's resolution matrix, so all its sites converge.
//!
//! Roles: `site` (one per site; its node name is the site's name) and
//! `client` (a simulated workload or scripted scenario).

pub mod block;
pub mod client;
pub mod doc;
pub mod kv_backend;
pub mod matrix;
pub mod msg;
pub mod shell;
pub mod site;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::{Ctx, Node, NodeId, TimerId, WorkId};
use msg::CheopsMsg;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// How often a site sends each peer a digest of what they share.
    pub anti_entropy_ms: f64,
    /// Shell commands may run (`dz cluster up --allow-shell`); real
    /// machines only.
    pub allow_shell: bool,
    /// Where they run, a directory per resource [default: under the
    /// system's temporary directory].
    pub shell_dir: String,
    /// Where the machine serves this site's HTTP API ("" for nowhere).
    /// Read by the machine's front (`drivers/cheops/api`), not the site.
    pub api: String,
    /// How long the API waits for the next site's reply before it
    /// reports the missing sites as TIMEOUT (the original: 20 s).
    pub reply_timeout_ms: f64,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            anti_entropy_ms: 100.0,
            allow_shell: false,
            shell_dir: String::new(),
            api: String::new(),
            reply_timeout_ms: 20_000.0,
        }
    }
}

pub enum CheopsNode {
    Site(Box<site::Site>),
    Client(Box<client::Client>),
}

impl CheopsNode {
    pub fn as_site(&self) -> Option<&site::Site> {
        match self {
            CheopsNode::Site(s) => Some(s),
            CheopsNode::Client(_) => None,
        }
    }

    pub fn as_client(&self) -> Option<&client::Client> {
        match self {
            CheopsNode::Client(c) => Some(c),
            CheopsNode::Site(_) => None,
        }
    }
}

impl Node for CheopsNode {
    type Msg = CheopsMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        match self {
            CheopsNode::Site(s) => s.start(ctx),
            CheopsNode::Client(c) => c.start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, msg: CheopsMsg) {
        match self {
            CheopsNode::Site(s) => s.on_message(ctx, from, msg),
            CheopsNode::Client(c) => c.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, _timer: TimerId, tag: u64) {
        match self {
            CheopsNode::Site(s) => s.on_timer(ctx, tag),
            CheopsNode::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_work_done(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        work: WorkId,
        output: Box<dyn std::any::Any + Send>,
    ) {
        if let CheopsNode::Site(s) = self {
            s.work_done(ctx, work, output);
        }
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        match (self, query) {
            (CheopsNode::Site(s), "status") => Some(s.status()),
            (CheopsNode::Client(c), "status") => Some(c.status()),
            _ => None,
        }
    }
}

pub struct Cheops;

impl System for Cheops {
    const NAME: &'static str = "cheops";
    const ROLES: &'static [&'static str] = &["site", "client"];
    type Node = CheopsNode;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<CheopsNode> {
        check_role::<Self>(spec)?;
        let sites: BTreeMap<String, NodeId> = roster
            .nodes
            .iter()
            .filter(|n| n.role == "site")
            .map(|n| (n.name.clone(), n.id))
            .collect();
        if sites.is_empty() {
            return Err(Error::input("a cheops cluster needs at least one site"));
        }
        let bad = |e: String| Error::input(format!("node {:?}: {e}", spec.name));
        match spec.role.as_str() {
            "site" => {
                let cfg: SiteConfig = parse_config(spec)?;
                if cfg.anti_entropy_ms.is_nan() || cfg.anti_entropy_ms <= 0.0 {
                    return Err(bad("anti_entropy_ms must be > 0".into()));
                }
                if cfg.reply_timeout_ms.is_nan() || cfg.reply_timeout_ms <= 0.0 {
                    return Err(bad("reply_timeout_ms must be > 0".into()));
                }
                let site = site::Site::new(
                    spec.name.clone(),
                    sites,
                    Duration::from_secs_f64(cfg.anti_entropy_ms / 1e3),
                );
                Ok(CheopsNode::Site(Box::new(
                    site.with_shell(cfg.allow_shell, cfg.shell_dir),
                )))
            }
            _ => {
                let w: client::Workload = parse_config(spec)?;
                w.validate().map_err(bad)?;
                if let Some(s) = w
                    .resources
                    .iter()
                    .flat_map(|r| &r.sites)
                    .chain(w.script.iter().map(|s| &s.site))
                    .find(|s| !sites.contains_key(*s))
                {
                    return Err(bad(format!("unknown site {s:?}")));
                }
                Ok(CheopsNode::Client(Box::new(client::Client::new(
                    spec.id.0, w, sites,
                ))))
            }
        }
    }
}
