//! CloudScope's consistency lab as DistZero nodes: replicas that keep
//! copies of objects with eventual, stentor, Raft or tag consistency, alone
//! or integrated (federated, floated), under a workload each replica
//! replays from its config.
//!
//! Replicas know only what messages tell them. What needs global
//! knowledge (is a read stale, is a write forked, is a version visible
//! everywhere) is decided by the analysis from the records replicas make
//! ([`Rec`]), so the same metrics come from simulated and real runs.

mod config;
mod eventual;
mod forte;
mod msg;
mod peers;
mod raft;
mod tag;

pub use config::{
    Access, CommitQuorum, Integration, Protocol, ReadPolicy, ReplicaConfig, check_node_keys,
};
pub use msg::{Body, Entry, KINDS, Msg, Rec, VKey, Version};

use std::sync::Arc;
use std::time::Duration;

use super::{NodeSpec, Roster, System, check_role, parse_config};
use crate::error::{Error, Result};
use crate::node::{Ctx, Node, NodeId, TimerId};
use peers::Peers;
use raft::Raft;
use tag::Tag;

const ACCESS: u64 = 0;
const ANTI_ENTROPY: u64 = 1;
const ELECTION: u64 = 2;
const HEARTBEAT: u64 = 3;
const SESSION: u64 = 4;
/// The file that tells a restart from a first start.
const STARTED: &str = "started";
/// Tag retries carry the object above this.
const TAG_RETRY: u64 = 5;

/// What every protocol shares: who I am, my settings, my peers, my copies.
pub(crate) struct Common {
    pub me: u32,
    pub protocol: Protocol,
    pub cfg: ReplicaConfig,
    pub peers: Peers,
    /// Eventual and tag: the latest version of each object. Raft: the
    /// replica's own writes not yet in its log (CloudScope's cache).
    pub store: Vec<Option<Version>>,
    pub forte: forte::Forte,
}

#[inline]
fn now_ns<M>(ctx: &Ctx<'_, M>) -> u64 {
    ctx.now_ns()
}

#[inline]
fn ms(v: f64) -> Duration {
    Duration::from_nanos((v * 1e6) as u64)
}

impl Common {
    #[inline]
    pub fn send(&self, ctx: &mut Ctx<'_, Msg>, to: u32, body: Body) {
        let sent_ns = now_ns(ctx);
        let msg = Msg { sent_ns, body };
        if self.cfg.trace_messages {
            use crate::node::Message;
            let kind = msg.kind() as u8;
            ctx.record(&Rec::Sent { to, kind });
        }
        ctx.send(NodeId(to), msg);
    }

    #[inline]
    pub fn latest(&self, object: u32) -> Option<Version> {
        self.store.get(object as usize).copied().flatten()
    }

    pub fn set_store(&mut self, v: Version) {
        let i = v.key.object as usize;
        if i >= self.store.len() {
            self.store.resize(i + 1, None);
        }
        self.store[i] = Some(v);
    }

    /// The newer of two versions (either may be missing).
    pub fn newest(a: Option<Version>, b: Option<Version>) -> Option<Version> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.newer_than(&x) { y } else { x }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

enum Proto {
    Eventual,
    Raft(Box<Raft>),
    Tag(Box<Tag>),
}

/// One replica.
pub struct Replica {
    c: Common,
    proto: Proto,
    next_access: usize,
    /// Per (sender, kind): samples, total and sum of squares of the
    /// one-way delay in ms (CloudScope's `latencies`).
    latency: Vec<[f64; 3]>,
}

impl Replica {
    fn schedule_access(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(a) = self.c.cfg.accesses.get(self.next_access) {
            let at = ms(a.at_ms);
            ctx.set_timer(at.saturating_sub(ctx.now()), ACCESS);
        }
    }

    fn access(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now();
        while let Some(&a) = self.c.cfg.accesses.get(self.next_access) {
            if ms(a.at_ms) > now {
                break;
            }
            self.next_access += 1;
            ctx.record(&Rec::Access {
                object: a.object,
                write: a.write,
            });
            match &mut self.proto {
                Proto::Eventual if a.write => eventual::write(&mut self.c, ctx, a.object),
                Proto::Eventual => eventual::read(&self.c, ctx, a.object),
                Proto::Raft(r) if a.write => r.write(&mut self.c, ctx, a.object),
                Proto::Raft(r) => r.read(&self.c, ctx, a.object),
                Proto::Tag(t) => t.access(&mut self.c, ctx, a.object, a.write),
            }
        }
        self.schedule_access(ctx);
    }

    fn note_latency(&mut self, ctx: &Ctx<'_, Msg>, from: NodeId, msg: &Msg) {
        use crate::node::Message;
        let i = from.0 as usize * KINDS.len() + msg.kind();
        if i >= self.latency.len() {
            self.latency.resize(i + 1, [0.0; 3]);
        }
        let d = now_ns(ctx).saturating_sub(msg.sent_ns) as f64 / 1e6;
        let s = &mut self.latency[i];
        s[0] += 1.0;
        s[1] += d;
        s[2] += d * d;
    }

    fn latencies_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (i, s) in self.latency.iter().enumerate() {
            if s[0] == 0.0 {
                continue;
            }
            let (src, kind) = (i / KINDS.len(), KINDS[i % KINDS.len()]);
            let by_kind = out
                .entry(src.to_string())
                .or_insert_with(|| serde_json::json!({}));
            by_kind[kind] = serde_json::json!([s[0], s[1], s[2]]);
        }
        serde_json::Value::Object(out)
    }
}

impl Node for Replica {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        // A first start replays every access, late ones at once (real
        // machines start after the cluster's clock does); after a restart
        // the workload goes on from now.
        if ctx.storage().read(STARTED).is_some() {
            let now = ctx.now();
            self.next_access = self.c.cfg.accesses.partition_point(|a| ms(a.at_ms) < now);
        } else if ctx.storage().write(STARTED, b"1").is_err()
            || ctx.storage().sync(STARTED).is_err()
        {
            return;
        }
        self.schedule_access(ctx);
        let gossips = match &self.proto {
            Proto::Eventual => self.c.cfg.do_gossip,
            Proto::Raft(_) => self.c.cfg.integration != Integration::Default,
            Proto::Tag(_) => false,
        };
        if gossips {
            ctx.set_timer(ms(self.c.cfg.anti_entropy_delay), ANTI_ENTROPY);
        }
        match &mut self.proto {
            Proto::Raft(r) => r.start(&mut self.c, ctx),
            Proto::Tag(t) => t.start(&mut self.c, ctx),
            Proto::Eventual => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, tag: u64) {
        match tag {
            ACCESS => self.access(ctx),
            ANTI_ENTROPY => {
                match &mut self.proto {
                    Proto::Eventual => eventual::anti_entropy(&self.c, ctx),
                    Proto::Raft(r) => r.anti_entropy(&self.c, ctx),
                    Proto::Tag(_) => {}
                }
                ctx.set_timer(ms(self.c.cfg.anti_entropy_delay), ANTI_ENTROPY);
            }
            ELECTION | HEARTBEAT => {
                if let Proto::Raft(r) = &mut self.proto {
                    r.on_timer(&mut self.c, ctx, tag == ELECTION);
                }
            }
            _ => {
                if let Proto::Tag(t) = &mut self.proto {
                    t.on_timer(&mut self.c, ctx, tag);
                }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.note_latency(ctx, from, &msg);
        let from = from.0;
        if self.c.cfg.trace_messages {
            use crate::node::Message;
            let (kind, sent_ns) = (msg.kind() as u8, msg.sent_ns);
            ctx.record(&Rec::Recv {
                from,
                kind,
                sent_ns,
            });
        }
        match &mut self.proto {
            Proto::Eventual => match msg.body {
                Body::Gossip(entries) => eventual::on_gossip(&mut self.c, ctx, from, entries),
                Body::GossipResponse(entries) => eventual::apply(&mut self.c, ctx, &entries),
                _ => {}
            },
            Proto::Raft(r) => r.on_message(&mut self.c, ctx, from, msg.body),
            Proto::Tag(t) => t.on_message(&mut self.c, ctx, from, msg.body),
        }
    }

    fn query(&self, query: &str) -> Option<serde_json::Value> {
        match query {
            "latencies" => Some(self.latencies_json()),
            "status" => Some(serde_json::json!({
                "protocol": self.c.protocol.as_str(),
                "accesses_done": self.next_access,
                "accesses": self.c.cfg.accesses.len(),
                "objects_held": self.c.store.iter().filter(|v| v.is_some()).count(),
                "raft": match &self.proto { Proto::Raft(r) => r.status(), _ => serde_json::Value::Null },
                "objects": self.objects(),
            })),
            _ => None,
        }
    }
}

/// Objects a status lists at most.
const STATUS_OBJECTS: usize = 64;

impl Replica {
    /// Per object: the newest version held and the one a read returns now
    /// (`seq.writer`; they differ while a Raft write is not yet visible).
    fn objects(&self) -> serde_json::Value {
        let name = |v: Option<Version>| v.map(|v| format!("{}.{}", v.key.seq, v.key.writer));
        let n = match &self.proto {
            Proto::Raft(r) => r.objects().max(self.c.store.len()),
            _ => self.c.store.len(),
        };
        (0..n.min(STATUS_OBJECTS) as u32)
            .map(|o| {
                let (held, visible) = match &self.proto {
                    Proto::Raft(r) => (
                        r.current(&self.c, o, ReadPolicy::Latest),
                        r.current(&self.c, o, self.c.cfg.read_policy),
                    ),
                    _ => (self.c.latest(o), self.c.latest(o)),
                };
                serde_json::json!({"object": o, "held": name(held), "visible": name(visible)})
            })
            .collect()
    }

    /// The leader a Raft replica knows of (`None` for other protocols).
    pub fn proto_raft(&self) -> Option<Option<u32>> {
        match &self.proto {
            Proto::Raft(r) => Some(r.leader()),
            _ => None,
        }
    }
}

/// The `consistency` system: one role, `replica`.
pub struct Consistency;

impl System for Consistency {
    const NAME: &'static str = "consistency";
    const ROLES: &'static [&'static str] = &["replica"];
    type Node = Replica;

    fn build(spec: &NodeSpec, roster: &Arc<Roster>) -> Result<Replica> {
        check_role::<Self>(spec)?;
        let cfg: ReplicaConfig = parse_config(spec)?;
        cfg.check()
            .map_err(|(field, e)| Error::input(format!("node {:?}: {field}: {e}", spec.name)))?;
        let protocol = cfg.protocol().map_err(Error::input)?;
        let me = spec.id.0;
        let peers = Peers::new(me, &cfg, roster);
        let objects = cfg.objects as usize;
        let forte = forte::Forte::new(
            cfg.integration == Integration::Federated
                && (cfg.forte_on_commit || cfg.forte_on_append),
        );
        let proto = match protocol {
            Protocol::Eventual | Protocol::Stentor => Proto::Eventual,
            Protocol::Raft => Proto::Raft(Box::new(Raft::new(&peers, objects))),
            Protocol::Tag => Proto::Tag(Box::new(Tag::new(objects))),
        };
        Ok(Replica {
            c: Common {
                me,
                protocol,
                cfg,
                peers,
                store: vec![None; objects],
                forte,
            },
            proto,
            next_access: 0,
            latency: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::Step;

    fn replica(me: u32, kinds: &[&str]) -> Replica {
        replica_with(me, kinds, serde_json::json!({}))
    }

    fn replica_with(me: u32, kinds: &[&str], extra: serde_json::Value) -> Replica {
        let nodes = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut config = serde_json::json!({"consistency": k, "objects": 2});
                for (key, v) in extra.as_object().expect("an object") {
                    config[key] = v.clone();
                }
                NodeSpec {
                    id: NodeId(i as u32),
                    name: format!("r{i}"),
                    system: "consistency".into(),
                    role: "replica".into(),
                    config,
                }
            })
            .collect();
        let roster = Arc::new(Roster { nodes });
        Consistency::build(&roster.nodes[me as usize].clone(), &roster).unwrap()
    }

    fn version(object: u32, seq: u32, writer: u32) -> Version {
        Version {
            key: VKey {
                seq,
                writer,
                object,
            },
            parent: None,
            forte: 0,
        }
    }

    #[test]
    fn simulated_eventual_gossip_keeps_newer_and_answers_with_its_own() {
        let mut step = Step::new(NodeId(0), replica(0, &["eventual", "eventual"]));
        step.start();
        // It learns object 0 at 3 from r1.
        step.message(
            NodeId(1),
            Msg {
                sent_ns: 0,
                body: Body::Gossip(vec![version(0, 3, 1)]),
            },
        );
        // Told of an older object 0 and a new object 1, it keeps object 1
        // and answers with its newer object 0.
        let fx = step.message(
            NodeId(1),
            Msg {
                sent_ns: 0,
                body: Body::Gossip(vec![version(0, 2, 1), version(1, 1, 1)]),
            },
        );
        assert_eq!(fx.sends.len(), 1);
        assert_eq!(
            fx.sends[0].1.body,
            Body::GossipResponse(vec![version(0, 3, 1)])
        );
        assert_eq!(fx.records.len(), 1, "one Holds record, for object 1");
    }

    #[test]
    fn simulated_federated_eventual_adopts_a_higher_forte_with_a_lower_number() {
        let extra = serde_json::json!({"integration": "federated", "forte_on_commit": true});
        let kinds = ["eventual", "eventual", "strong"];
        let mut step = Step::new(NodeId(0), replica_with(0, &kinds, extra));
        step.start();
        let gossip = |v: Version| Msg {
            sent_ns: 0,
            body: Body::Gossip(vec![v]),
        };
        step.message(NodeId(1), gossip(version(0, 5, 1)));
        // The strong group raised a version with a lower number: it wins.
        let strong = Version {
            forte: 1,
            ..version(0, 2, 2)
        };
        let fx = step.message(NodeId(2), gossip(strong));
        assert_eq!(fx.sends[0].1.body, Body::GossipResponse(vec![]));
        assert_eq!(fx.records.len(), 1, "it now holds the raised version");
        // The longer eventual line is now the older one: answered with it.
        let fx = step.message(NodeId(1), gossip(version(0, 5, 1)));
        assert_eq!(fx.sends[0].1.body, Body::GossipResponse(vec![strong]));
    }

    #[test]
    fn simulated_raft_follower_answers_an_append_it_cannot_take() {
        let mut step = Step::new(NodeId(1), replica(1, &["raft", "raft", "raft"]));
        step.start();
        // The leader guesses the follower has 5 entries; it has none: the
        // follower says where to start (CloudScope's stays silent).
        let fx = step.message(
            NodeId(0),
            Msg {
                sent_ns: 0,
                body: Body::Heartbeat {
                    term: 1,
                    prev_index: 5,
                    prev_term: 1,
                    commit: 0,
                },
            },
        );
        assert_eq!(
            fx.sends[0].1.body,
            Body::AeResponse {
                term: 1,
                success: false,
                index: 1
            }
        );
        // A write now goes to the leader it learnt of.
        step.advance(Duration::from_millis(10));
        let r = step.node.proto_raft().expect("raft");
        assert_eq!(r, Some(0));
    }
}
