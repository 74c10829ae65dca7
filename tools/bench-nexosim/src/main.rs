//! The pingpong workload of `dz bench pingpong` in NeXosim: N nodes; every
//! 10 ms each sends Ping to a uniformly random other node, which answers
//! Pong; one-way latency uniform in [1, 5] ms (integer ns, as DistZero).
//!
//! Models: one `Node` per node and a `Network` that draws each message's
//! latency, holds it as a scheduled event and hands it to the receiver
//! through that node's output (NeXosim routes by connection, not by id).
//! One executor thread, like the other two simulators.
//!
//!   bench-nexosim [--nodes N] [--sim-ms MS] [--seed S] [--threads T]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nexosim::model::{Context, Model, schedulable};
use nexosim::ports::Output;
use nexosim::simulation::{Mailbox, SimInit};
use nexosim::time::MonotonicTime;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

const INTERVAL_NS: u64 = 10_000_000;
const LATENCY_LO_NS: u64 = 1_000_000;
const LATENCY_HI_NS: u64 = 5_000_000;

/// Messages delivered (models are owned by the simulation; one counter).
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Uniform in `0..n` by multiply-shift, as DistZero's latency sampler.
fn below(rng: &mut Xoshiro256PlusPlus, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Packet {
    from: u32,
    to: u32,
    ping: bool,
}

#[derive(Serialize, Deserialize)]
pub struct Node {
    id: u32,
    nodes: u32,
    rng: Xoshiro256PlusPlus,
    pings: u64,
    pongs: u64,
    /// To the network.
    pub out: Output<Packet>,
}

#[Model]
impl Node {
    #[nexosim(init)]
    async fn init(&mut self, cx: &Context<Self>) {
        // A random phase (strictly in the future, as NeXosim requires).
        let phase = 1 + below(&mut self.rng, INTERVAL_NS - 1);
        cx.schedule_periodic_event(
            Duration::from_nanos(phase),
            Duration::from_nanos(INTERVAL_NS),
            schedulable!(Self::tick),
            (),
        )
        .unwrap();
    }

    #[nexosim(schedulable)]
    async fn tick(&mut self) {
        let mut to = below(&mut self.rng, u64::from(self.nodes - 1)) as u32;
        if to >= self.id {
            to += 1;
        }
        self.pings += 1;
        let from = self.id;
        self.out
            .send(Packet {
                from,
                to,
                ping: true,
            })
            .await;
    }

    pub async fn deliver(&mut self, p: Packet) {
        if p.ping {
            let (from, to) = (self.id, p.from);
            self.out
                .send(Packet {
                    from,
                    to,
                    ping: false,
                })
                .await;
        } else {
            self.pongs += 1;
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Network {
    rng: Xoshiro256PlusPlus,
    /// One output per node, connected to its `deliver`.
    pub links: Vec<Output<Packet>>,
}

#[Model]
impl Network {
    pub fn send(&mut self, p: Packet, cx: &Context<Self>) {
        let delay = LATENCY_LO_NS + below(&mut self.rng, LATENCY_HI_NS - LATENCY_LO_NS + 1);
        cx.schedule_event(Duration::from_nanos(delay), schedulable!(Self::arrive), p)
            .unwrap();
    }

    #[nexosim(schedulable)]
    async fn arrive(&mut self, p: Packet) {
        DELIVERIES.fetch_add(1, Ordering::Relaxed);
        self.links[p.to as usize].send(p).await;
    }
}

struct Args {
    nodes: u32,
    sim_ms: u64,
    seed: u64,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nodes: 1000,
        sim_ms: 10_000,
        seed: 1,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: not a number: {value}");
        match flag.as_str() {
            "--nodes" => a.nodes = value.parse().map_err(|_| bad())?,
            "--sim-ms" => a.sim_ms = value.parse::<f64>().map_err(|_| bad())? as u64,
            "--seed" => a.seed = value.parse().map_err(|_| bad())?,
            "--threads" => a.threads = value.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.nodes < 2 || a.threads < 1 {
        return Err("--nodes must be at least 2 and --threads at least 1".into());
    }
    Ok(a)
}

fn main() {
    let a = parse_args().unwrap_or_else(|e| {
        eprintln!("bench-nexosim: {e}");
        std::process::exit(2);
    });
    let rng = |i: u64| Xoshiro256PlusPlus::seed_from_u64(a.seed.wrapping_mul(1 << 32) ^ i);
    let net_mbox = Mailbox::with_capacity(1 << 16);
    let mut net = Network {
        rng: rng(u64::MAX),
        links: Vec::new(),
    };
    let mut bench = SimInit::with_num_threads(a.threads);
    let mut nodes = Vec::new();
    for id in 0..a.nodes {
        let mut node = Node {
            id,
            nodes: a.nodes,
            rng: rng(id.into()),
            pings: 0,
            pongs: 0,
            out: Output::new(),
        };
        node.out.connect(Network::send, &net_mbox);
        let mbox = Mailbox::with_capacity(64);
        let mut link = Output::new();
        link.connect(Node::deliver, &mbox);
        net.links.push(link);
        nodes.push((node, mbox));
    }
    for (id, (node, mbox)) in nodes.into_iter().enumerate() {
        bench = bench.add_model(node, mbox, &format!("node{id}"));
    }
    let mut simu = bench
        .add_model(net, net_mbox, "network")
        .init(MonotonicTime::EPOCH)
        .expect("the bench assembles");
    let start = Instant::now();
    simu.step_until(Duration::from_millis(a.sim_ms))
        .expect("the run completes");
    let wall = start.elapsed().as_secs_f64();
    let deliveries = DELIVERIES.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "peer": "NeXosim 1.0.0", "nodes": a.nodes, "sim_ms": a.sim_ms, "threads": a.threads,
            "deliveries": deliveries, "wall_s": wall, "deliveries_per_s": deliveries as f64 / wall,
        })
    );
}
