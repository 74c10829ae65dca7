//! `dz bench pingpong`: the simulator's speed and memory on the pingpong
//! workload (compare with `scripts/bench-simpy`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::{ClockSkew, Latency};
use crate::node::NodeId;
use crate::sim::{SimConfig, Simulation};
use crate::systems::pingpong::PingPongNode;
use crate::systems::{NodeSpec, Roster};

#[derive(clap::Args)]
pub struct PingpongArgs {
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// Simulated milliseconds to run.
    #[arg(long, default_value_t = 10_000)]
    sim_ms: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Resident memory now and at its peak, from /proc (Linux).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The pingpong workload in the simulator, as measured by the benchmarks.
pub fn pingpong_sim(nodes: u32, seed: u64) -> Simulation<PingPongNode> {
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Uniform { lo: 1.0, hi: 5.0 });
    let mut sim = Simulation::new(cfg);
    let roster = Arc::new(Roster {
        nodes: (0..nodes)
            .map(|i| NodeSpec {
                id: NodeId(i),
                name: String::new(),
                system: String::new(),
                role: String::new(),
                config: serde_json::Value::Null,
            })
            .collect(),
    });
    for _ in 0..nodes {
        let m = sim.add_machine(ClockSkew::default());
        let r = roster.clone();
        sim.add_node(m, move || {
            PingPongNode::new(r.clone(), Duration::from_millis(10))
        });
    }
    sim
}

pub fn run(a: PingpongArgs) -> anyhow::Result<()> {
    if a.nodes < 2 {
        return Err(crate::Error::input("--nodes must be at least 2").into());
    }
    let (rss_before, _) = rss_kib();
    let build = Instant::now();
    let mut sim = pingpong_sim(a.nodes, a.seed);
    let build_s = build.elapsed().as_secs_f64();
    let start = Instant::now();
    sim.run_until(Duration::from_millis(a.sim_ms));
    let wall = start.elapsed().as_secs_f64();
    let (_, peak) = rss_kib();
    let stats = sim.stats();
    let per_node = (peak.saturating_sub(rss_before) * 1024) as f64 / f64::from(a.nodes);
    let rate = stats.deliveries as f64 / wall;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "nodes": a.nodes, "sim_ms": a.sim_ms, "seed": a.seed,
                "deliveries": stats.deliveries, "events": stats.events, "wall_s": wall, "build_s": build_s,
                "deliveries_per_s": rate, "peak_rss_kib": peak, "bytes_per_node": per_node,
                "trace_hash": format!("{:016x}", sim.trace_hash()),
            })
        );
    } else {
        println!(
            "pingpong: {} nodes, {} ms simulated, seed {}",
            a.nodes, a.sim_ms, a.seed
        );
        println!(
            "deliveries {}  events {}  wall {:.3} s",
            stats.deliveries, stats.events, wall
        );
        println!("deliveries per wall second {:.0}", rate);
        println!(
            "peak RSS {} KiB ({:.0} bytes per node above the empty process; build {:.3} s)",
            peak, per_node, build_s
        );
        println!("trace hash {:016x}", sim.trace_hash());
    }
    Ok(())
}
