//! `dz cheops`: Cheops on DistZero. `sim-check` runs many seeded
//! simulations under faults and checks every site converged; `scenario`
//! runs the original's three-site scenario in simulation.

use std::time::Duration;

use super::seed_args::{Pooled, SeedArgs};
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
    /// Takes an operation at a running cluster's site and prints each
    /// site's reply as it arrives: `[i/n] STATUS request site output`.
    Exec(super::cheops_api::ExecArgs),
    /// Runs a read-only command at every site (or --sites) of a cluster.
    Show(super::cheops_api::ShowArgs),
    /// A cluster's sites and API addresses, or one resource at every site.
    Status(super::cheops_api::StatusArgs),
    /// Operations per second one site accepts, and the time until every
    /// site replied, through the HTTP API of a running cluster.
    Bench(super::cheops_api::BenchArgs),
}

#[derive(clap::Args)]
pub struct SimCheckArgs {
    #[command(flatten)]
    pool: SeedArgs,
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
    /// With --seed: also write the seed's trace and results under DIR, for
    /// `dz view DIR`.
    #[arg(long, value_name = "DIR", requires = "seed")]
    trace: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
pub struct ScenarioArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The failure variant: one of the concurrent commands fails.
    #[arg(long)]
    failure: bool,
}

pub fn run(settings: &Settings, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Exec(a) => super::cheops_api::exec(settings, a),
        Command::Show(a) => super::cheops_api::show(settings, a),
        Command::Status(a) => super::cheops_api::status(settings, a),
        Command::Bench(a) => super::cheops_api::bench(settings, a),
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
        trace: a.trace.as_ref().map(|d| d.join("trace.jsonl")),
        ..Default::default()
    };
    if let Some(d) = &a.trace {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let Pooled {
        results,
        wall_s: wall,
        threads,
    } = a
        .pool
        .run(|seeds, threads, progress| run_many(seeds, threads, &opts, progress))?;
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
        println!(
            "  view:   dz cheops sim-check --seed {} {flags} --trace .tmp/cheops-seed-{} ; dz view .tmp/cheops-seed-{}",
            r.seed, r.seed, r.seed
        );
    }
    if let (Some(d), Some(r)) = (&a.trace, results.first()) {
        let sites = crate::drivers::cheops::sim_check::site_names(a.sites);
        let v = crate::drivers::seeds::view_results("cheops", r.seed, &r.trace_hash, &sites);
        crate::drivers::simulate::write_json(&d.join("results.json"), &v)?;
        println!("view: {}", crate::view::command_for(d));
    }
    if !failed.is_empty() {
        anyhow::bail!("{} of {} seeds failed", failed.len(), results.len());
    }
    Ok(())
}
