//! A probe system for tests: every node sends numbered messages of two kinds
//! to every other node on a timer, and remembers what it got.
#![allow(dead_code)]

pub mod agent;
#[cfg(all(feature = "cloud", feature = "virtual"))]
pub mod cloud;
pub mod datasets;
pub mod real;
pub mod spawn;

use std::time::Duration;

use distzero::net::{ClockSkew, Latency};
use distzero::node::{
    CodecError, Ctx, Message, Node, NodeId, TimerId, decode_postcard, encode_postcard,
};
use distzero::sim::{SimConfig, Simulation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ProbeMsg {
    /// Sequence number per (sender, receiver), and the sender's clock in ns.
    A {
        seq: u64,
        sent_ns: u64,
    },
    B {
        seq: u64,
        sent_ns: u64,
    },
}

impl Message for ProbeMsg {
    fn kinds() -> &'static [&'static str] {
        &["A", "B"]
    }
    fn kind(&self) -> usize {
        match self {
            ProbeMsg::A { .. } => 0,
            ProbeMsg::B { .. } => 1,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("probe", bytes)
    }
}

/// What a node received: (from, kind, seq, sent_ns, received_ns).
pub type Receipt = (u32, usize, u64, u64, u64);

pub struct Probe {
    pub n: u32,
    pub interval: Duration,
    pub next_seq: Vec<u64>,
    pub received: Vec<Receipt>,
    pub timer_fires: Vec<u64>,
    pub started_at: Vec<u64>,
    /// What storage held when the node started.
    pub found_synced: Option<Vec<u8>>,
    pub found_unsynced: Option<Vec<u8>>,
}

impl Probe {
    pub fn new(n: u32) -> Self {
        Probe {
            n,
            interval: Duration::from_millis(10),
            next_seq: vec![0; n as usize],
            received: Vec::new(),
            timer_fires: Vec::new(),
            started_at: Vec::new(),
            found_synced: None,
            found_unsynced: None,
        }
    }

    pub fn from(&self, peer: u32) -> Vec<&Receipt> {
        self.received.iter().filter(|r| r.0 == peer).collect()
    }
}

impl Node for Probe {
    type Msg = ProbeMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, ProbeMsg>) {
        self.started_at.push(ctx.now().as_nanos() as u64);
        self.found_synced = ctx.storage().read("synced").map(<[u8]>::to_vec);
        self.found_unsynced = ctx.storage().read("unsynced").map(<[u8]>::to_vec);
        ctx.storage().write("synced", b"kept").unwrap();
        ctx.storage().sync("synced").unwrap();
        ctx.storage().write("unsynced", b"lost").unwrap();
        ctx.set_timer(self.interval, 7);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, ProbeMsg>, from: NodeId, msg: ProbeMsg) {
        let kind = msg.kind();
        let (ProbeMsg::A { seq, sent_ns } | ProbeMsg::B { seq, sent_ns }) = msg;
        self.received
            .push((from.0, kind, seq, sent_ns, ctx.now().as_nanos() as u64));
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ProbeMsg>, _timer: TimerId, tag: u64) {
        assert_eq!(tag, 7);
        let now = ctx.now().as_nanos() as u64;
        self.timer_fires.push(now);
        for to in 0..self.n {
            if to == ctx.me().0 {
                continue;
            }
            let seq = self.next_seq[to as usize];
            self.next_seq[to as usize] += 1;
            let msg = if seq.is_multiple_of(2) {
                ProbeMsg::A { seq, sent_ns: now }
            } else {
                ProbeMsg::B { seq, sent_ns: now }
            };
            ctx.send(NodeId(to), msg);
        }
        ctx.set_timer(self.interval, 7);
    }
}

/// `n` probes, one per machine, constant 5 ms latency.
pub fn probes(n: u32, seed: u64) -> Simulation<Probe> {
    probes_with(n, seed, &[])
}

pub fn probes_with(n: u32, seed: u64, skews: &[(u32, ClockSkew)]) -> Simulation<Probe> {
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Constant { ms: 5.0 });
    cfg.link_stats = true;
    let mut sim = Simulation::new(cfg);
    for i in 0..n {
        let skew = skews
            .iter()
            .find(|(m, _)| *m == i)
            .map(|(_, s)| *s)
            .unwrap_or_default();
        let m = sim.add_machine(skew);
        sim.add_node(m, move || Probe::new(n));
    }
    sim
}

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
