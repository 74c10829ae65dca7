//! `dz bench transport`: the data plane between two local agents, and the
//! simulator on the same workload.

use std::time::{Duration, Instant};

use crate::backends::cluster::{down, new_name, up};
use crate::cli::cluster::binary;
use crate::cli::runtime::block_local;
use crate::controller::{MachineSpec, Placement};
use crate::error::Error;
use crate::net::{ClockSkew, Latency};
use crate::node::{MachineId, Mode, NodeId};
use crate::settings::Settings;
use crate::sim::{SimConfig, Simulation};
use crate::systems::blast::{Blast, BlastConfig};
use crate::systems::{NodeSpec, Roster, System};

#[derive(clap::Args)]
pub struct Args {
    /// Messages to send.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Messages in flight.
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// Also run it over mutual TLS, and print both.
    #[arg(long)]
    tls: bool,
    #[arg(long)]
    json: bool,
}

fn placement(cfg: &BlastConfig) -> Placement {
    ["sender", "receiver"]
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let spec = NodeSpec {
                id: NodeId(i as u32),
                name: (*role).into(),
                system: Blast::NAME.into(),
                role: (*role).into(),
                config: serde_json::to_value(cfg).unwrap_or_default(),
            };
            (spec, MachineId(i as u32))
        })
        .collect()
}

/// The same workload in the simulator (0.1 ms links); returns messages
/// delivered to the receiver per wall second.
fn simulated(cfg: &BlastConfig) -> anyhow::Result<f64> {
    let mut sim_cfg = SimConfig::new(1);
    sim_cfg.default_latency = Some(Latency::Constant { ms: 0.1 });
    let mut sim = Simulation::new(sim_cfg);
    let specs = placement(cfg);
    let roster = std::sync::Arc::new(Roster {
        nodes: specs.iter().map(|(s, _)| s.clone()).collect(),
    });
    for (spec, _) in &specs {
        let m = sim.add_machine(ClockSkew::default());
        let node = Blast::build(spec, &roster)?;
        let mut first = Some(node);
        let (spec, roster) = (spec.clone(), roster.clone());
        sim.add_node(m, move || {
            first
                .take()
                .unwrap_or_else(|| Blast::build(&spec, &roster).expect("built once"))
        });
    }
    let start = Instant::now();
    sim.run_until(Duration::from_secs(3600));
    let wall = start.elapsed().as_secs_f64();
    let got = sim
        .query(NodeId(1), "status")
        .and_then(|s| s["received"].as_u64())
        .unwrap_or(0);
    if got < cfg.count {
        return Err(
            Error::runtime(format!("simulated blast delivered {got} of {}", cfg.count)).into(),
        );
    }
    Ok(got as f64 / wall)
}

/// The workload on two local agents, over plain TCP or mutual TLS; returns
/// the receiver's status (rate and latencies).
fn real(settings: &Settings, cfg: &BlastConfig, tls: bool) -> anyhow::Result<serde_json::Value> {
    let binary = binary()?;
    let mut settings = settings.clone();
    settings.tls = Some(tls);
    let settings = &settings;
    let status = block_local(async {
        let name = format!("bench-{}", new_name());
        let machines = [MachineSpec::named("m0"), MachineSpec::named("m1")];
        let (mut ctl, state) = up(
            settings,
            &name,
            Mode::Local,
            &machines,
            placement(cfg),
            &binary,
        )
        .await?;
        let started = Instant::now();
        let result = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match ctl.query(NodeId(1), "status").await {
                Ok(s) if s["done"] == true => break Ok(s),
                Ok(_) if started.elapsed() > Duration::from_secs(300) => {
                    break Err(Error::runtime(
                        "the transport benchmark did not finish in 5 minutes",
                    ));
                }
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let _ = down(&mut ctl, &state, &settings.tmp_dir).await;
        result
    })?;
    Ok(status)
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let cfg = BlastConfig {
        size: a.size,
        window: a.window,
        count: a.messages,
        ack_every: 64.min(a.window),
    };
    let mut runs = vec![("tcp", real(settings, &cfg, false)?)];
    if a.tls {
        runs.push(("tls", real(settings, &cfg, true)?));
    }
    let sim_rate = simulated(&cfg)?;
    let rate = |s: &serde_json::Value| s["per_second"].as_f64().unwrap_or(0.0);
    if a.json {
        let mut out = serde_json::json!({
            "messages": a.messages, "size": a.size, "window": a.window,
            "simulator_per_s": sim_rate,
        });
        for (label, s) in &runs {
            let prefix = if *label == "tcp" { "transport" } else { "tls" };
            out[format!("{prefix}_per_s")] = rate(s).into();
            for k in ["p50_us", "p99_us", "max_us"] {
                let key = if *label == "tcp" {
                    k.to_string()
                } else {
                    format!("tls_{k}")
                };
                out[key] = s[k].clone();
            }
        }
        println!("{out}");
    } else {
        println!(
            "{} messages of {} bytes, window {}",
            a.messages, a.size, a.window
        );
        for (label, s) in &runs {
            let over = if *label == "tcp" { "TCP" } else { "mutual TLS" };
            println!(
                "two local agents over {over}: {:.0} messages/s, one-way latency p50 {} µs, p99 {} µs",
                rate(s),
                s["p50_us"],
                s["p99_us"]
            );
        }
        println!("the simulator, same workload: {sim_rate:.0} messages per wall second");
    }
    Ok(())
}
