//! The logical-clocks experiment: N machines with given tick rates run for a
//! while; then every machine's log and summary are collected through the
//! controller, the same way in every mode.

use std::time::Duration;

use crate::controller::{Controller, MachineBackend, MachineSpec, Placement, SimBackend};
use crate::error::{Error, Result};
use crate::net::Latency;
use crate::node::{MachineId, Mode, NodeId};
use crate::sim::SimConfig;
use crate::systems::clocks::{ClockConfig, ClockSummary, Clocks, LOG_PAGE, LogRow};
use crate::systems::{NodeSpec, System};

#[derive(Clone, Debug)]
pub struct ClocksParams {
    /// Ticks per second, one entry per machine.
    pub rates: Vec<f64>,
    pub internal_prob: f64,
    pub duration: Duration,
    pub seed: u64,
    /// Network latency between simulated machines.
    pub latency: Latency,
}

impl ClocksParams {
    pub fn new(rates: Vec<f64>) -> Self {
        ClocksParams {
            rates,
            internal_prob: 0.7,
            duration: Duration::from_secs(60),
            seed: 1,
            latency: Latency::Constant { ms: 1.0 },
        }
    }
}

/// One machine's outcome.
#[derive(Clone, Debug)]
pub struct MachineLog {
    pub name: String,
    pub rate: f64,
    pub rows: Vec<LogRow>,
    pub summary: ClockSummary,
}

#[derive(Clone, Debug)]
pub struct ClocksRun {
    pub mode: Mode,
    pub params: ClocksParams,
    pub machines: Vec<MachineLog>,
}

/// `6,1,1` → `[6.0, 1.0, 1.0]`; every rate must be a positive number.
pub fn parse_rates(s: &str) -> std::result::Result<Vec<f64>, String> {
    let rates = s
        .split(',')
        .enumerate()
        .map(|(i, part)| {
            let part = part.trim();
            let r: f64 = part
                .parse()
                .map_err(|_| format!("rate {:?} of machine {i} is not a number", part))?;
            if r.is_finite() && r > 0.0 {
                Ok(r)
            } else {
                Err(format!(
                    "rate {part} of machine {i} must be a positive number"
                ))
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if rates.is_empty() {
        return Err("give at least one rate".into());
    }
    Ok(rates)
}

pub fn machine_name(i: usize) -> String {
    format!("m{i}")
}

/// Machine `m<i>` runs clocks node `i` with rate `rates[i]`.
pub fn deployment(params: &ClocksParams) -> Result<(Vec<MachineSpec>, Placement)> {
    let mut machines = Vec::new();
    let mut nodes = Vec::new();
    for (i, &rate) in params.rates.iter().enumerate() {
        let cfg = ClockConfig {
            rate,
            internal_prob: params.internal_prob,
        };
        cfg.validate().map_err(Error::input)?;
        machines.push(MachineSpec::named(machine_name(i)));
        let spec = NodeSpec {
            id: NodeId(i as u32),
            name: machine_name(i),
            system: Clocks::NAME.into(),
            role: "machine".into(),
            config: serde_json::to_value(&cfg).map_err(|e| Error::runtime(e.to_string()))?,
        };
        nodes.push((spec, MachineId(i as u32)));
    }
    Ok((machines, nodes))
}

/// Collects every machine's summary and full log through the control plane.
pub async fn collect<B: MachineBackend + ?Sized>(
    ctl: &mut Controller<B>,
    params: &ClocksParams,
) -> Result<Vec<MachineLog>> {
    let mut out = Vec::new();
    for (i, &rate) in params.rates.iter().enumerate() {
        let node = NodeId(i as u32);
        let summary: ClockSummary = serde_json::from_value(ctl.query(node, "summary").await?)
            .map_err(|e| Error::runtime(format!("{node}: bad summary: {e}")))?;
        let mut rows: Vec<LogRow> = Vec::new();
        loop {
            let page: Vec<LogRow> =
                serde_json::from_value(ctl.query(node, &format!("log:{}", rows.len())).await?)
                    .map_err(|e| Error::runtime(format!("{node}: bad log page: {e}")))?;
            let full = page.len() == LOG_PAGE;
            rows.extend(page);
            if !full {
                break;
            }
        }
        out.push(MachineLog {
            name: machine_name(i),
            rate,
            rows,
            summary,
        });
    }
    Ok(out)
}

/// Runs the experiment on a fresh cluster of real machines (`mode` local,
/// virtual or cloud), then takes the cluster down; machine logs stay under
/// `.tmp/<cluster>/`. Returns the run and the cluster's name.
pub async fn run_on_cluster(
    settings: &crate::settings::Settings,
    params: &ClocksParams,
    mode: Mode,
    binary: &std::path::Path,
    progress: &mut dyn FnMut(f64),
) -> Result<(ClocksRun, String)> {
    use crate::backends::cluster::{down, new_name, up};
    let name = format!("clocks-{}", new_name());
    let (machines, nodes) = deployment(params)?;
    let (mut ctl, state) = up(settings, &name, mode, &machines, nodes, binary).await?;
    let result = async {
        ctl.run(params.duration, &[], progress).await?;
        collect(&mut ctl, params).await
    }
    .await;
    let stopped = down(&mut ctl, &state, &settings.tmp_dir).await;
    let machines = result?;
    stopped?;
    Ok((
        ClocksRun {
            mode,
            params: params.clone(),
            machines,
        },
        name,
    ))
}

/// Runs the experiment in the simulator.
pub fn run_simulated(params: &ClocksParams, progress: &mut dyn FnMut(f64)) -> Result<ClocksRun> {
    futures::executor::block_on(async {
        let mut cfg = SimConfig::new(params.seed);
        cfg.default_latency = Some(params.latency.clone());
        let mut ctl = Controller::new(Box::new(SimBackend::<Clocks>::new(cfg)));
        let (machines, nodes) = deployment(params)?;
        ctl.create_machines(&machines).await?;
        ctl.deploy(nodes).await?;
        ctl.run(params.duration, &[], progress).await?;
        Ok(ClocksRun {
            mode: Mode::Simulated,
            params: params.clone(),
            machines: collect(&mut ctl, params).await?,
        })
    })
}
