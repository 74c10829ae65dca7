//! `dz cheops`: Cheops on DistZero. `sim-check` runs many seeded
//! simulations under faults and checks every site converged; `scenario`
//! runs the original's three-site scenario in simulation.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::progress::Progress;
use crate::drivers::cheops::scenario::run_redis;
use crate::drivers::cheops::sim_check::{SimCheckOptions, run_many};
use crate::drivers::kv::sim_check::Faults;
use crate::error::Error;
use crate::settings::Settings;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Many seeded simulations: random operations at random sites under
    /// faults, healed, each checked for convergence.
    SimCheck(SimCheckArgs),
    /// The original's three-site scenario (SET 23; cut; SET 29, INCRBY 13,
    /// INCRBY -12 at three sites; heal), in simulation.
    Scenario(ScenarioArgs),
}

#[derive(clap::Args)]
pub struct SimCheckArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed (seeds are first, first+1, ...).
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Run exactly this seed (a replay).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    seed: Option<u64>,
    /// Faults to inject, comma-separated: crash, partition, drop, duplicate, reorder, none.
    #[arg(long, default_value = Faults::ALL, value_parser = Faults::parse)]
    faults: Faults,
    #[arg(long, default_value_t = 4)]
    sites: usize,
    #[arg(long, default_value_t = 3)]
    resources: usize,
    /// Seconds of operations under faults per seed.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct ScenarioArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The failure variant: one of the concurrent commands fails.
    #[arg(long)]
    failure: bool,
}

pub fn run(_settings: &Settings, c: Command) -> anyhow::Result<()> {
    match c {
        Command::SimCheck(a) => sim_check(a),
        Command::Scenario(a) => {
            let out = run_redis(a.seed, a.failure)?;
            println!("block: {}", out.block.join(" ; "));
            println!("every site holds: {:?}", out.state);
            println!("KO replies: {}", out.ko_replies);
            Ok(())
        }
    }
}

fn sim_check(a: SimCheckArgs) -> anyhow::Result<()> {
    if a.sites < 2 || a.resources == 0 || a.seconds == 0 {
        return Err(Error::input("need --sites >= 2, --resources >= 1 and --seconds >= 1").into());
    }
    let opts = SimCheckOptions {
        sites: a.sites,
        resources: a.resources,
        load: Duration::from_secs(a.seconds),
        faults: a.faults,
        ..Default::default()
    };
    let seeds = match a.seed {
        Some(s) => s..s + 1,
        None => a.first_seed..a.first_seed + a.seeds,
    };
    let total = seeds.end - seeds.start;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = Mutex::new(Progress::new(format!("checking {total} seeds")));
    let start = Instant::now();
    let results = run_many(seeds, threads, &opts, &|done| {
        if let Ok(mut p) = progress.lock() {
            p.update(done as f64 / total as f64);
        }
    })?;
    if let Ok(p) = progress.into_inner() {
        p.finish();
    }
    let wall = start.elapsed().as_secs_f64();
    let failed: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
    let ops: usize = results.iter().map(|r| r.operations).sum();
    let merges: u64 = results.iter().map(|r| r.merges).sum();
    println!(
        "{} seeds, {} sites, {} resources, faults {}: {} operations, {} merges of diverged blocks; {} seeds did not converge",
        results.len(),
        a.sites,
        a.resources,
        a.faults.names(),
        ops,
        merges,
        failed.len()
    );
    println!("{wall:.1} s on {threads} threads");
    if let Some(r) = results.first().filter(|_| results.len() == 1) {
        println!(
            "seed {}: trace hash {}, {} operations",
            r.seed, r.trace_hash, r.operations
        );
    }
    let flags = format!(
        "--faults {} --sites {} --resources {} --seconds {}",
        a.faults.names(),
        a.sites,
        a.resources,
        a.seconds
    );
    for r in &failed {
        println!(
            "FAILED seed {}: {}",
            r.seed,
            r.failure.as_deref().unwrap_or_default()
        );
        println!("  replay: dz cheops sim-check --seed {} {flags}", r.seed);
    }
    if !failed.is_empty() {
        anyhow::bail!("{} of {} seeds failed", failed.len(), results.len());
    }
    Ok(())
}
