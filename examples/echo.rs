//! The system from docs/writing-a-system.md, runnable:
//! `cargo run --example echo`.

use std::time::Duration;

use distzero::net::ClockSkew;
use distzero::node::{
    CodecError, Ctx, Message, Node, NodeId, TimerId, decode_postcard, encode_postcard,
};
use distzero::sim::{SimConfig, Simulation};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum EchoMsg {
    Hello(u64),
    Reply(u64),
}

impl Message for EchoMsg {
    fn kinds() -> &'static [&'static str] {
        &["Hello", "Reply"]
    }
    fn kind(&self) -> usize {
        match self {
            EchoMsg::Hello(_) => 0,
            EchoMsg::Reply(_) => 1,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out)
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("echo", bytes)
    }
}

struct Echo {
    peers: Vec<NodeId>,
    heard: u64,
}

impl Node for Echo {
    type Msg = EchoMsg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, EchoMsg>) {
        // Also called after a crash and restart: volatile state is fresh,
        // synced storage is still there.
        if let Some(b) = ctx.storage().read("heard") {
            self.heard = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        }
        ctx.set_timer(Duration::from_millis(100), 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, EchoMsg>, from: NodeId, msg: EchoMsg) {
        self.heard += 1;
        ctx.count("heard", 1);
        if let EchoMsg::Hello(n) = msg {
            ctx.send(from, EchoMsg::Reply(n));
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, EchoMsg>, _t: TimerId, _tag: u64) {
        let i = distzero::rand::RngExt::random_range(ctx.rng(), 0..self.peers.len());
        ctx.send(self.peers[i], EchoMsg::Hello(self.heard));
        ctx.storage().write("heard", &self.heard.to_le_bytes()).ok();
        ctx.storage().sync("heard").ok();
        ctx.set_timer(Duration::from_millis(100), 0);
    }

    fn query(&self, q: &str) -> Option<serde_json::Value> {
        (q == "status").then(|| serde_json::json!({ "heard": self.heard }))
    }
}

fn main() {
    let mut sim = Simulation::new(SimConfig::new(42));
    for i in 0..3 {
        let m = sim.add_machine(ClockSkew::default());
        sim.add_node(m, move || Echo {
            peers: (0..3).filter(|&p| p != i).map(NodeId).collect(),
            heard: 0,
        });
    }
    sim.run_until(Duration::from_secs(10));
    for i in 0..3 {
        println!("node {i}: {}", sim.query(NodeId(i), "status").unwrap());
    }
    println!("trace hash {:016x}", sim.trace_hash());
}
