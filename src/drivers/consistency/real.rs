//! The same experiment on real machines (local processes or Docker
//! containers): the topology's link latencies applied by the agents, the
//! replicas replaying their accesses on the cluster's clock, outages
//! injected on time, then the records fetched from every machine.

use std::path::Path;
use std::time::Instant;

use super::experiment::{Experiment, RunOutput, collect};
use crate::backends::cluster::{down, up_shaped};
use crate::error::{Error, Result};
use crate::node::Mode;
use crate::settings::Settings;

/// How long after the cluster's clock starts the workload begins: real
/// machines take a moment to start, and an access due before its replica
/// runs would be late.
pub const START_AFTER_MS: u64 = 1000;

/// Brings a cluster up, runs the experiment for its simulated time on the
/// wall clock, collects, and takes the cluster down (also on failure).
pub async fn run(
    settings: &Settings,
    exp: &Experiment,
    mode: Mode,
    name: &str,
    binary: &Path,
    progress: &mut dyn FnMut(f64),
) -> Result<RunOutput> {
    if mode == Mode::Simulated {
        return Err(Error::input(
            "use `dz consistency simulate` for simulated runs",
        ));
    }
    let t = &exp.topology;
    // The workload and the outages start once every replica is up.
    let offset = std::time::Duration::from_millis(START_AFTER_MS);
    let mut placement = exp.placement()?;
    for (spec, _) in &mut placement {
        if let Some(serde_json::Value::Array(accesses)) = spec.config.get_mut("accesses") {
            for a in accesses {
                if let Some(at) = a.get("at_ms").and_then(serde_json::Value::as_f64) {
                    a["at_ms"] = (at + START_AFTER_MS as f64).into();
                }
            }
        }
    }
    let faults: Vec<_> = exp
        .faults()
        .into_iter()
        .map(|f| crate::net::ScheduledFault {
            at: f.at + offset,
            fault: f.fault,
        })
        .collect();
    let (mut ctl, state) = up_shaped(
        settings,
        name,
        mode,
        &t.machines(),
        &t.network(),
        placement,
        binary,
    )
    .await?;
    let wall = Instant::now();
    let ran = async {
        // Faults are timed from the cluster's start, like the accesses.
        let already = ctl.elapsed();
        let rest: Vec<_> = faults
            .iter()
            .filter(|f| f.at >= already)
            .map(|f| crate::net::ScheduledFault {
                at: f.at - already,
                fault: f.fault.clone(),
            })
            .collect();
        let left = (exp.sim_time() + offset).saturating_sub(already);
        ctl.run(left, &rest, &mut *progress).await?;
        // Let the last messages land before reading the records.
        ctl.run_for(std::time::Duration::from_millis(300)).await?;
        collect(&mut ctl, t.nodes.len(), wall.elapsed(), 0).await
    }
    .await;
    let stopped = down(&mut ctl, &state, &settings.tmp_dir).await;
    let out = ran?;
    stopped?;
    Ok(out)
}
