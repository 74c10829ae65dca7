//! `dz kv sim-check`: many seeded simulations of a kv cluster under faults,
//! each history checked for linearizability, in parallel over the cores.

use std::path::PathBuf;
use std::time::Duration;

use super::default_out;
use super::seed_args::{Pooled, SeedArgs};
use crate::drivers::kv::history_file;
use crate::drivers::kv::sim_check::{Faults, SimCheckOptions, World, describe, run_many_with};
use crate::error::Error;
use crate::settings::Settings;
use crate::systems::kv::{KvConfig, Persistence};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pool: SeedArgs,
    /// swarm: each seed draws servers (3-7), quorums, delegation,
    /// persistence, window, batch, fault rates and disk faults; fixed: the
    /// flags below.
    #[arg(long, default_value = "swarm", value_parser = World::parse)]
    world: World,
    /// Faults to inject, comma-separated: crash, partition, drop, duplicate, reorder, disk, none.
    #[arg(long, default_value = Faults::ALL, value_parser = Faults::parse)]
    faults: Faults,
    /// Servers (fixed world) [default: 5].
    #[arg(long)]
    servers: Option<usize>,
    /// Seconds of load under faults per seed.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Persistence of the servers (fixed world): fsync or none [default: fsync].
    #[arg(long, value_parser = persistence)]
    persistence: Option<Persistence>,
    /// Replicate through rotating coordinators (fixed world).
    #[arg(long)]
    delegate: bool,
    /// Check the deliberately broken variant that acknowledges before a quorum.
    #[arg(long)]
    broken: bool,
    /// Check the broken variant that carries on after a failed write, as if
    /// it had happened (the simulator's fail-stop switched off).
    #[arg(long)]
    no_fail_stop: bool,
    /// Where failing sub-histories (and, with --histories, every seed's
    /// history) go [default: .tmp/kv-sim-check].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every seed's whole history, as seed-N.history.jsonl under
    /// --out (`dz kv check` reads them).
    #[arg(long)]
    histories: bool,
    /// With --seed: also write the seed's trace and results under DIR, for
    /// `dz view DIR`.
    #[arg(long, value_name = "DIR", requires = "seed")]
    trace: Option<PathBuf>,
}

fn persistence(s: &str) -> Result<Persistence, String> {
    match s {
        "fsync" => Ok(Persistence::Fsync),
        "none" => Ok(Persistence::None),
        other => Err(format!("{other:?}: persistence is fsync or none")),
    }
}

/// The flags that replay a seed of this run.
fn replay_flags(a: &Args) -> String {
    let mut flags = format!("--faults {} --seconds {}", a.faults.names(), a.seconds);
    if a.world == World::Fixed {
        flags.push_str(" --world fixed");
        if let Some(n) = a.servers {
            flags.push_str(&format!(" --servers {n}"));
        }
        if a.persistence == Some(Persistence::None) {
            flags.push_str(" --persistence none");
        }
        if a.delegate {
            flags.push_str(" --delegate");
        }
    }
    if a.broken {
        flags.push_str(" --broken");
    }
    if a.no_fail_stop {
        flags.push_str(" --no-fail-stop");
    }
    flags
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    if a.servers == Some(0) || a.seconds == 0 {
        return Err(Error::input("--servers and --seconds must be at least 1").into());
    }
    if a.world == World::Swarm && (a.servers.is_some() || a.persistence.is_some() || a.delegate) {
        return Err(Error::input(
            "--servers, --persistence and --delegate set a fixed world: add --world fixed",
        )
        .into());
    }
    let persistence = a.persistence.unwrap_or(Persistence::Fsync);
    let opts = SimCheckOptions {
        servers: a.servers.unwrap_or(5),
        // Without fsync a crashed server must catch up before it may vote
        // again; crashes that come faster than that can stall the cluster.
        gap: Duration::from_millis(if persistence == Persistence::None {
            3000
        } else {
            100
        }),
        load: Duration::from_secs(a.seconds),
        faults: a.faults,
        config: KvConfig {
            persistence,
            delegate: a.delegate,
            unsafe_ack_before_quorum: a.broken,
            ..Default::default()
        },
        fail_stop: !a.no_fail_stop,
        trace: a.trace.as_ref().map(|d| d.join("trace.jsonl")),
        ..Default::default()
    };
    if let Some(d) = &a.trace {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| default_out(settings, &["kv-sim-check"]));
    if a.histories {
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    }
    let write_history = |r: &crate::drivers::kv::sim_check::SeedResult| {
        if !a.histories {
            return Ok(());
        }
        let path = out.join(format!("seed-{}.history.jsonl", r.seed));
        history_file::write(&path, &r.history)
    };
    let Pooled {
        results,
        wall_s: wall,
        threads,
    } = a.pool.run(|seeds, threads, progress| {
        run_many_with(seeds, threads, a.world, &opts, &write_history, progress)
    })?;
    let failed: Vec<_> = results.iter().filter(|r| r.failed()).collect();
    let stuck: Vec<_> = results
        .iter()
        .filter(|r| !r.failed() && r.unanswered > 0)
        .collect();
    let ops: usize = results.iter().map(|r| r.completed).sum();
    let view_changes: u64 = results.iter().map(|r| r.view_changes).sum();
    let fail_stops: u64 = results.iter().map(|r| r.fail_stops).sum();
    let per_minute_core = results.len() as f64 / wall * 60.0 / threads as f64;
    let world = match a.world {
        World::Swarm => "worlds drawn per seed".to_string(),
        World::Fixed => format!("{} servers", opts.servers),
    };
    println!(
        "{} seeds, {world}, faults {}: {} operations checked, {} view changes, {} fail-stops; \
         {} failed, {} with unanswered requests",
        results.len(),
        a.faults.names(),
        ops,
        view_changes,
        fail_stops,
        failed.len(),
        stuck.len()
    );
    println!(
        "{wall:.1} s on {threads} threads: {per_minute_core:.0} checked seeds per minute per core"
    );
    if let Some(r) = results.first().filter(|_| results.len() == 1) {
        println!(
            "seed {}: trace hash {}, {} operations; world: {}",
            r.seed,
            r.trace_hash,
            r.completed,
            describe(&a.world.options(r.seed, &opts))
        );
    }
    let flags = replay_flags(&a);
    if let (Some(d), Some(r)) = (&a.trace, results.first()) {
        write_view_results(d, r, &a.world.options(r.seed, &opts))?;
        println!("view: {}", crate::view::command_for(d));
    }
    if a.histories {
        println!(
            "wrote each seed's history to {}/seed-N.history.jsonl",
            out.display()
        );
    }
    for r in failed.iter().take(20) {
        let why = match (&r.problem, &r.verdict.violation) {
            (Some(p), _) => p.clone(),
            (None, None) => "not linearizable".into(),
            (None, Some((_, core))) => {
                std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
                let path = out.join(format!("seed-{}.violation.jsonl", r.seed));
                history_file::write(&path, core)?;
                format!(
                    "not linearizable; smallest failing history in {}",
                    path.display()
                )
            }
        };
        println!("FAILED seed {}: {why}", r.seed);
        println!("  world: {}", describe(&a.world.options(r.seed, &opts)));
        println!("  replay: dz kv sim-check --seed {} {flags}", r.seed);
        let dir = out.join(format!("seed-{}", r.seed));
        println!(
            "  view:   dz kv sim-check --seed {} {flags} --trace {} ; {}",
            r.seed,
            dir.display(),
            crate::view::command_for(&dir)
        );
    }
    for r in stuck.iter().take(10) {
        println!(
            "seed {}: {} requests never answered; replay: dz kv sim-check --seed {} {flags}",
            r.seed, r.unanswered, r.seed
        );
    }
    if !failed.is_empty() || !stuck.is_empty() {
        anyhow::bail!(
            "{} of {} seeds failed",
            failed.len() + stuck.len(),
            results.len()
        );
    }
    Ok(())
}

/// What `dz view` reads beside the trace: the machines' names, the seed
/// and the verdict, and the seed's options, to run it again for node
/// states and "what if".
fn write_view_results(
    dir: &std::path::Path,
    r: &crate::drivers::kv::sim_check::SeedResult,
    o: &SimCheckOptions,
) -> anyhow::Result<()> {
    use crate::drivers::kv::sim_check::view_results;
    crate::drivers::simulate::write_json(&dir.join("results.json"), &view_results(r, o))?;
    // What it takes to run the seed again: node states and "what if".
    let again = SimCheckOptions {
        trace: None,
        ..o.clone()
    };
    let inputs = serde_json::json!({"seed": r.seed, "options": again});
    crate::drivers::simulate::write_json(&dir.join("sim-check.json"), &inputs)?;
    Ok(())
}
