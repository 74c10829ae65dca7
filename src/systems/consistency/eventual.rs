//! Eventual and stentor replicas: local reads and writes, and push-pull
//! anti-entropy with random peers; the newest version wins.

use rand::RngExt;

use super::config::{Integration, Protocol};
use super::peers::pick;
use super::{Body, Common, Msg, Rec, Version, now_ns};
use crate::node::Ctx;

pub(super) fn read(c: &Common, ctx: &mut Ctx<'_, Msg>, object: u32) {
    let version = c.latest(object).map(|v| v.key);
    ctx.record(&Rec::Read { object, version });
}

pub(super) fn write(c: &mut Common, ctx: &mut Ctx<'_, Msg>, object: u32) {
    let v = Version::next(object, c.latest(object).as_ref(), c.me);
    c.set_store(v);
    c.forte.hold(&v);
    ctx.record(&Rec::Write(v));
    ctx.record(&Rec::Holds(v.key));
    let started_ns = now_ns(ctx);
    ctx.record(&Rec::WriteDone {
        key: v.key,
        started_ns,
    });
}

/// The peers of one anti-entropy round.
fn round_peers(c: &Common, ctx: &mut Ctx<'_, Msg>, out: &mut Vec<u32>) {
    let p = &c.peers;
    if c.cfg.integration == Integration::Federated {
        // CloudScope's federated eventual replica: a strong replica with
        // sync_prob (a local one if any), else a local eventual one with
        // local_prob, else a non-strong one elsewhere.
        for _ in 0..c.cfg.num_neighbors {
            let rng = ctx.rng();
            let draw: f64 = rng.random();
            let peer = if draw < c.cfg.sync_prob {
                pick(rng, &p.strong_local).or_else(|| pick(rng, &p.strong))
            } else if rng.random::<f64>() < c.cfg.local_prob {
                pick(rng, &p.eventual_local).or_else(|| pick(rng, &p.all))
            } else {
                pick(rng, &p.other_wide).or_else(|| pick(rng, &p.all))
            };
            out.extend(peer);
        }
    } else if c.protocol == Protocol::Stentor {
        let rng = ctx.rng();
        out.extend(pick(rng, &p.same_local));
        out.extend(pick(rng, &p.same_wide));
    } else {
        for _ in 0..c.cfg.num_neighbors {
            out.extend(pick(ctx.rng(), &p.same));
        }
    }
}

pub(super) fn anti_entropy(c: &Common, ctx: &mut Ctx<'_, Msg>) {
    let mut peers = Vec::with_capacity(2);
    round_peers(c, ctx, &mut peers);
    if peers.is_empty() {
        return;
    }
    // Sized once (collecting a flatten grows the vector step by step), and
    // the last peer takes it rather than a copy.
    let mut entries = Vec::with_capacity(c.store.len());
    entries.extend(c.store.iter().flatten().copied());
    let last = peers.pop().expect("not empty");
    for to in peers {
        c.send(ctx, to, Body::Gossip(entries.clone()));
    }
    c.send(ctx, last, Body::Gossip(entries));
}

/// Keeps what is newer; answers with what it has that is newer.
pub(super) fn on_gossip(c: &mut Common, ctx: &mut Ctx<'_, Msg>, from: u32, entries: Vec<Version>) {
    let mut newer = Vec::new();
    for e in entries {
        match reconcile(c, &e) {
            Some(mine) if mine.newer_than(&e) => newer.push(mine),
            Some(mine) if mine.key == e.key => {}
            _ => take(c, ctx, e),
        }
    }
    c.send(ctx, from, Body::GossipResponse(newer));
}

pub(super) fn apply(c: &mut Common, ctx: &mut Ctx<'_, Msg>, entries: &[Version]) {
    for &e in entries {
        if reconcile(c, &e).is_none_or(|mine| e.newer_than(&mine)) {
            take(c, ctx, e);
        }
    }
}

/// My latest version of `e`'s object once `e`'s forte is applied to it.
#[inline]
fn reconcile(c: &mut Common, e: &Version) -> Option<Version> {
    let mine = c.latest(e.key.object);
    // Checked here, inline: this runs for every version of every gossip.
    if !c.forte.is_on() {
        return mine;
    }
    let now = c.forte.reconcile(mine, e);
    if now != mine {
        c.set_store(now.expect("reconcile keeps a version"));
    }
    now
}

fn take(c: &mut Common, ctx: &mut Ctx<'_, Msg>, e: Version) {
    c.set_store(e);
    c.forte.hold(&e);
    ctx.record(&Rec::Holds(e.key));
}
