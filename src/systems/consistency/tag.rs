//! Tag replicas: per-object ownership. An owner reads and writes locally
//! and pushes its writes to every replica; an object owned by another is
//! refused (a missed read, a dropped write); an unowned one is asked for
//! with a higher epoch, and a majority's grants make the asker its owner.
//! A session that sees no access for `session_timeout` releases its tags.

use std::time::Duration;

use super::{Body, Common, Msg, Rec, SESSION, TAG_RETRY, Version, eventual, ms, now_ns};
use crate::node::Ctx;

/// Retry timers carry the object: tag `RETRY_BASE + object`.
const RETRY_BASE: u64 = TAG_RETRY + 11;

struct Request {
    object: u32,
    epoch: u32,
    grants: usize,
}

pub(crate) struct Tag {
    owner: Vec<Option<u32>>,
    epoch: Vec<u32>,
    mine: Vec<u32>,
    requests: Vec<Request>,
    /// Accesses waiting for a tag: object, write, start.
    waiting: Vec<(u32, bool, u64)>,
    last_access_ns: u64,
    session_start_ns: u64,
    session_armed: bool,
}

impl Tag {
    pub fn new(objects: usize) -> Tag {
        Tag {
            owner: vec![None; objects],
            epoch: vec![0; objects],
            mine: Vec::new(),
            requests: Vec::new(),
            waiting: Vec::new(),
            last_access_ns: 0,
            session_start_ns: 0,
            session_armed: false,
        }
    }

    fn grow(&mut self, object: u32) -> usize {
        let i = object as usize;
        if i >= self.owner.len() {
            self.owner.resize(i + 1, None);
            self.epoch.resize(i + 1, 0);
        }
        i
    }

    pub fn start(&mut self, _c: &mut Common, _ctx: &mut Ctx<'_, Msg>) {}

    fn majority(c: &Common) -> usize {
        c.peers.same.len().div_ceil(2) + 1
    }

    pub fn access(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, object: u32, write: bool) {
        let i = self.grow(object);
        let now = now_ns(ctx);
        self.last_access_ns = now;
        match self.owner[i] {
            Some(o) if o == c.me => self.local(c, ctx, object, write),
            Some(_) => refuse(ctx, object, write, now),
            None => {
                self.waiting.push((object, write, now));
                if self.requests.iter().any(|r| r.object == object) {
                    return;
                }
                let epoch = self.epoch[i] + 1;
                self.requests.push(Request {
                    object,
                    epoch,
                    grants: 1,
                });
                for &p in &c.peers.same {
                    c.send(ctx, p, Body::RequestTag { object, epoch });
                }
                if Self::majority(c) <= 1 {
                    self.acquire(c, ctx, object, epoch);
                } else {
                    ctx.set_timer(ms(c.cfg.heartbeat_interval), RETRY_BASE + u64::from(object));
                }
            }
        }
    }

    fn local(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, object: u32, write: bool) {
        if !write {
            eventual::read(c, ctx, object);
            return;
        }
        eventual::write(c, ctx, object);
        let v = c.latest(object).expect("just written");
        for &p in &c.peers.same {
            c.send(ctx, p, Body::TagAppend(v));
        }
    }

    fn acquire(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, object: u32, epoch: u32) {
        self.requests.retain(|r| r.object != object);
        let i = self.grow(object);
        self.owner[i] = Some(c.me);
        self.epoch[i] = epoch;
        self.mine.push(object);
        ctx.record(&Rec::TagAcquired { object, epoch });
        if !self.session_armed {
            self.session_armed = true;
            self.session_start_ns = now_ns(ctx);
            ctx.set_timer(ms(c.cfg.session_timeout), SESSION);
        }
        let (ready, rest): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|w| w.0 == object);
        self.waiting = rest;
        for (o, write, _) in ready {
            self.local(c, ctx, o, write);
        }
    }

    pub fn on_timer(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag == SESSION {
            self.session_armed = false;
            let now = now_ns(ctx);
            let end = self.last_access_ns + (c.cfg.session_timeout * 1e6) as u64;
            if now < end {
                self.session_armed = true;
                ctx.set_timer(Duration::from_nanos(end - now), SESSION);
                return;
            }
            let released: Vec<(u32, u32)> = self
                .mine
                .drain(..)
                .map(|o| (o, self.epoch[o as usize]))
                .collect();
            for &(o, _) in &released {
                self.owner[o as usize] = None;
            }
            ctx.record(&Rec::SessionEnded {
                length_ns: now - self.session_start_ns,
                tags: released.len() as u32,
            });
            for &p in &c.peers.same {
                c.send(ctx, p, Body::ReleaseTag(released.clone()));
            }
        } else if tag >= RETRY_BASE {
            let object = (tag - RETRY_BASE) as u32;
            if let Some(i) = self.requests.iter().position(|r| r.object == object) {
                // No majority in time: the accesses waiting for it fail.
                self.requests.swap_remove(i);
                let (failed, rest): (Vec<_>, Vec<_>) =
                    self.waiting.drain(..).partition(|w| w.0 == object);
                self.waiting = rest;
                for (o, write, started) in failed {
                    refuse(ctx, o, write, started);
                }
            }
        }
    }

    pub fn on_message(&mut self, c: &mut Common, ctx: &mut Ctx<'_, Msg>, from: u32, body: Body) {
        match body {
            Body::RequestTag { object, epoch } => {
                let i = self.grow(object);
                let granted = epoch > self.epoch[i] && self.owner[i] != Some(c.me);
                if granted {
                    self.epoch[i] = epoch;
                    self.owner[i] = Some(from);
                    self.requests.retain(|r| r.object != object);
                }
                c.send(
                    ctx,
                    from,
                    Body::TagResponse {
                        object,
                        epoch,
                        granted,
                    },
                );
            }
            Body::TagResponse {
                object,
                epoch,
                granted,
            } => {
                let Some(r) = self
                    .requests
                    .iter_mut()
                    .find(|r| r.object == object && r.epoch == epoch)
                else {
                    return;
                };
                if granted {
                    r.grants += 1;
                    if r.grants >= Self::majority(c) {
                        self.acquire(c, ctx, object, epoch);
                    }
                }
            }
            Body::ReleaseTag(list) => {
                for (o, _) in list {
                    let i = self.grow(o);
                    if self.owner[i] == Some(from) {
                        self.owner[i] = None;
                    }
                }
            }
            Body::TagAppend(v) => eventual::apply(c, ctx, std::slice::from_ref::<Version>(&v)),
            _ => {}
        }
    }
}

fn refuse(ctx: &mut Ctx<'_, Msg>, object: u32, write: bool, started_ns: u64) {
    ctx.record(&if write {
        Rec::WriteDropped {
            object,
            key: None,
            started_ns,
        }
    } else {
        Rec::MissedRead { object }
    });
}
