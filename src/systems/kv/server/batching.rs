//! Client requests into log slots: the master answers what it already
//! applied, batches the rest, and opens slots while the window has room.

use std::sync::Arc;

use super::{BATCH, Server, ms};
use crate::node::Ctx;
use crate::systems::kv::msg::{Entry, KvMsg, LogEntry, Outcome, Request, Response};
use crate::systems::kv::state::Applied;

impl Server {
    pub(super) fn reply(&self, ctx: &mut Ctx<'_, KvMsg>, req: &Request, outcome: Outcome) {
        ctx.send(
            req.client,
            KvMsg::Reply {
                id: req.id,
                outcome,
            },
        );
    }

    pub(super) fn on_request(&mut self, ctx: &mut Ctx<'_, KvMsg>, req: Request) {
        if let Err(why) = req.op.validate() {
            return self.reply(ctx, &req, Outcome::Done(Response::Refused(why)));
        }
        if !self.is_master() {
            let hint = matches!(self.status, super::Status::Normal)
                .then(|| self.servers[self.master_of(self.view)]);
            return self.reply(ctx, &req, Outcome::Redirect(hint));
        }
        match self.store.cached(req.client, req.id) {
            Some(Applied::Reply(r)) => return self.reply(ctx, &req, Outcome::Done(r)),
            Some(Applied::Forgotten) => return,
            None => {}
        }
        if !self.queued.insert((req.client, req.id)) {
            return; // already in a batch or a slot
        }
        self.pending.push_back(req);
        if self.pending.len() >= self.cfg.max_batch {
            self.flush(ctx);
        } else if !self.batch_timer {
            self.batch_timer = true;
            ctx.set_timer(ms(self.cfg.batch_interval_ms), BATCH);
        }
    }

    /// Turns pending requests into slots, while the window has room.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_, KvMsg>) {
        while !self.pending.is_empty()
            && self.last - self.commit < self.cfg.window
            && self.is_master()
        {
            let n = self.pending.len().min(self.cfg.max_batch);
            let batch: Vec<Request> = self.pending.drain(..n).collect();
            let index = self.last + 1;
            let entry = Arc::new(LogEntry {
                view: self.view,
                entry: Entry::Batch(batch),
            });
            self.accept(ctx, index, entry.clone());
            self.replicate(ctx, index, entry);
        }
    }
}
