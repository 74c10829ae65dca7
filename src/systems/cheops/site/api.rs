//! What a site answers to an outside client (the machine's HTTP API):
//! watches of a resource and read-only `show` commands, fanned out to the
//! resource's other sites through the site protocol.

use std::time::Duration;

use super::super::msg::{CheopsMsg, View};
use super::Site;
use crate::node::{Ctx, NodeId};

/// How long a watch lasts unless renewed.
pub const WATCH_LEASE: Duration = Duration::from_secs(10);
/// A relayed `show` nobody answered is forgotten after this.
const RELAY_LIFETIME: Duration = Duration::from_secs(60);

impl Site {
    fn view(&self, resource: &str) -> View {
        let local = self.resources.get(resource);
        View {
            resource: resource.to_string(),
            doc: local.and_then(|l| l.doc.clone()),
            replies: local
                .map(|l| l.replies.values().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Registers (or renews) a watch and answers with the resource now.
    pub(super) fn watch(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, resource: String) {
        let view = self.view(&resource);
        self.watchers
            .insert((from, resource), ctx.now() + WATCH_LEASE);
        ctx.send(from, CheopsMsg::Update(view));
    }

    /// Tells the watchers of a resource that it changed.
    pub(super) fn notify(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, resource: &str) {
        let now = ctx.now();
        let to: Vec<NodeId> = self
            .watchers
            .iter()
            .filter(|((_, r), until)| r == resource && **until > now)
            .map(|((n, _), _)| *n)
            .collect();
        if to.is_empty() {
            return;
        }
        let view = self.view(resource);
        for n in to {
            ctx.send(n, CheopsMsg::Update(view.clone()));
        }
    }

    /// A read-only command at `sites`, or here alone when empty; one
    /// `ShowReply` per site goes back to `from`.
    pub(super) fn show(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        from: NodeId,
        ask: u64,
        resource: String,
        command: String,
        sites: Vec<String>,
    ) {
        if sites.is_empty() {
            self.show_here(ctx, from, ask, &resource, &command);
            return;
        }
        for site in sites {
            if site == self.me {
                self.show_here(ctx, from, ask, &resource, &command);
                continue;
            }
            let Some(&node) = self.sites.get(&site) else {
                let output = format!("unknown site {site:?}");
                ctx.send(
                    from,
                    CheopsMsg::ShowReply {
                        ask,
                        site,
                        ok: false,
                        output,
                    },
                );
                continue;
            };
            self.next_ask += 1;
            self.relays
                .insert(self.next_ask, (from, ask, ctx.now() + RELAY_LIFETIME));
            let relayed = CheopsMsg::Show {
                ask: self.next_ask,
                resource: resource.clone(),
                command: command.clone(),
                sites: Vec::new(),
            };
            ctx.send(node, relayed);
        }
    }

    /// A peer's answer to a relayed `show`, passed on to who asked.
    pub(super) fn relay_back(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        ask: u64,
        site: String,
        ok: bool,
        output: String,
    ) {
        if let Some((to, their_ask, _)) = self.relays.remove(&ask) {
            let reply = CheopsMsg::ShowReply {
                ask: their_ask,
                site,
                ok,
                output,
            };
            ctx.send(to, reply);
        }
    }

    /// Forgets ended watches and unanswered relays.
    pub(super) fn expire(&mut self, now: Duration) {
        self.watchers.retain(|_, until| *until > now);
        self.relays.retain(|_, (_, _, until)| *until > now);
    }
}
