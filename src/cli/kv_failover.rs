//! `dz kv failover`: how long a simulated kv cluster stops answering when
//! a server goes away and when it comes back, over many seeds: the master's
//! machine killed then restarted, or a follower cut off then healed.

use std::sync::Mutex;
use std::time::Duration;

use super::progress::Progress;
use crate::drivers::kv::outage::{Gap, Outage, Scene, measure, scene_options};
use crate::drivers::seeds::run_seeds;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 50)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// kill: the master's machine is killed, then restarted; isolate: a
    /// follower is cut off, then healed.
    #[arg(long, default_value = "kill", value_parser = scene)]
    scene: Scene,
    /// How long the server is gone.
    #[arg(long, default_value = "2s", value_parser = super::duration_arg)]
    down: Duration,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

fn scene(s: &str) -> Result<Scene, String> {
    match s {
        "kill" => Ok(Scene::KillMaster),
        "isolate" => Ok(Scene::IsolateFollower),
        other => Err(format!("{other:?}: the scene is kill or isolate")),
    }
}

/// min / median / p90 / max of one gap over the seeds.
fn spread(outages: &[Outage], gap: impl Fn(&Outage) -> Gap) -> String {
    let mut ms: Vec<f64> = outages
        .iter()
        .map(|o| gap(o).len().as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.seeds == 0 || a.servers < 3 || a.down.is_zero() {
        return Err(Error::input("need --seeds >= 1, --servers >= 3 and --down > 0").into());
    }
    let at = Duration::from_secs(2);
    let opts = scene_options(a.servers, at + a.down + Duration::from_secs(3));
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let seeds = a.first_seed..a.first_seed + a.seeds;
    let progress = Mutex::new(Progress::new(format!("{} seeds", a.seeds)));
    let outages = run_seeds(
        seeds,
        threads,
        &|seed| measure(seed, &opts, a.scene, at, a.down),
        &|done| {
            if let Ok(mut p) = progress.lock() {
                p.update(done as f64 / a.seeds as f64);
            }
        },
    )?;
    if let Ok(p) = progress.into_inner() {
        p.finish();
    }
    let (fault, back) = match a.scene {
        Scene::KillMaster => ("the kill", "the restart"),
        Scene::IsolateFollower => ("the cut", "the heal"),
    };
    let c = &opts.config;
    println!(
        "{} seeds, {} servers (heartbeat {} ms, election timeout {} ms), down {:?} from t=2s; \
         longest gap between answered operations:",
        outages.len(),
        a.servers,
        c.heartbeat_ms,
        c.election_timeout_ms,
        a.down
    );
    println!("  before the fault:  {}", spread(&outages, |o| o.quiet));
    println!("  at {fault}: {}", spread(&outages, |o| o.fault));
    println!("  at {back}: {}", spread(&outages, |o| o.back));
    let kept = outages.iter().filter(|o| o.master_kept()).count();
    println!(
        "the master stayed at {back} in {kept} of {} seeds",
        outages.len()
    );
    let bad: Vec<&Outage> = outages
        .iter()
        .filter(|o| o.result.failed() || o.result.unanswered > 0)
        .collect();
    if let Some(o) = bad.first() {
        anyhow::bail!(
            "{} seeds failed their checks; first: seed {} ({:?}, linearizable {})",
            bad.len(),
            o.seed,
            o.result.problem,
            o.result.verdict.linearizable
        );
    }
    println!("every history linearizable, every request answered");
    Ok(())
}
