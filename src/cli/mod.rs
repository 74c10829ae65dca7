//! The `dz` command line. Each subcommand lives in its own module; this one
//! parses arguments, sets up logging and turns errors into one line and an
//! exit code (2 for the user's mistakes, 1 for everything else).

mod bench;
pub use bench::pingpong_sim;
mod cheops;
mod cheops_api;
mod clean;
mod clocks;
pub(crate) mod cluster;
mod consistency;
mod datasets;
mod demo;
#[cfg(feature = "virtual")]
mod image;
mod kv;
mod kv_bench;
mod kv_check;
mod kv_failover;
mod kv_sim_check;
mod machine;
mod progress;
pub(crate) mod runtime;
mod seed_args;
mod simulate;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::error::Error;
use crate::settings::Settings;

#[derive(Parser)]
#[command(
    name = "dz",
    version,
    about = "DistZero: write a distributed system once; run it simulated, as local processes, in Docker or on EC2.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the built-in showcase in simulation and explains what happened.
    Demo(demo::Args),
    /// Runs a system on a topology file in the deterministic simulator.
    ///
    /// Writes results.json (message counts per node, link and kind; events;
    /// simulated and wall time), trace.jsonl (every send, delivery, drop,
    /// timer and crash) and dz.json.log, and prints the trace hash: the same
    /// seed gives the same hash on any machine.
    Simulate(simulate::Args),
    /// Runs the Lamport logical-clocks experiment.
    ///
    /// Each machine ticks --rates times per second; on a tick it takes one
    /// queued message (clock = max(clock, msg) + 1) or, with an empty queue,
    /// has an internal event with probability --internal-prob or else sends
    /// its clock to the next machine, the one after, or all others. Writes a
    /// CSV log per machine, summary.json, clock.png and queue.png.
    Clocks(clocks::Args),
    /// CloudScope's consistency lab: replicas with eventual, stentor, Raft,
    /// tag, federated or floated consistency; stale reads, forks, visibility.
    #[command(subcommand)]
    Consistency(Box<consistency::Command>),
    /// Measures the simulator on a workload.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Clusters of real machines: up, status, fault, logs, down.
    #[command(subcommand)]
    Cluster(cluster::Command),
    /// The replicated key-value service: client (interactive, or one
    /// command such as `dz kv --cluster NAME get K`), REST gateway, checks.
    Kv(kv::Args),
    /// Load on a kv service (DistZero's, or etcd) with latency figures and
    /// an optional linearizability check.
    KvBench(kv_bench::Args),
    /// Cheops on DistZero: operations replicated to the sites of each
    /// resource, merged by its resolution matrix.
    #[command(subcommand)]
    Cheops(cheops::Command),
    /// DistZero's self-scaling datasets: trees of nodes that spawn, split,
    /// merge and aggregate inputs exactly; run a script or many seeds.
    #[command(subcommand)]
    Datasets(datasets::Command),
    /// The agent every real machine runs (started by `dz cluster up`).
    Machine(machine::Args),
    /// Removes leftovers of any run: processes, containers, networks.
    Clean(clean::Args),
    /// Watches a run in the browser: its machines, messages, states and
    /// logs over time, and "what if" branches re-run in the simulator.
    View(view::Args),
    /// The machine image for virtual mode.
    #[cfg(feature = "virtual")]
    #[command(subcommand)]
    Image(image::Command),
}

/// Parses `60s`, `500ms`, `2m` for clap.
pub(crate) fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    crate::topology::parse_duration(s)
}

/// Where a command writes when no `--out` is given.
pub(crate) fn default_out(settings: &Settings, parts: &[&str]) -> PathBuf {
    parts
        .iter()
        .fold(settings.tmp_dir.clone(), |p, s| p.join(s))
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {text}");
            let input = e
                .chain()
                .any(|c| c.downcast_ref::<Error>().is_some_and(Error::is_input));
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

/// Commands that print for a reader die quietly when the reader goes away
/// (`dz cluster status x | head`), like other Unix tools. The agent keeps
/// Rust's default (ignored SIGPIPE): a closed peer is an error it handles.
fn quiet_on_broken_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restoring the default disposition before any thread starts.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if !matches!(cli.command, Command::Machine(_)) {
        quiet_on_broken_pipe();
    }
    let settings = Settings::load()?;
    match cli.command {
        Command::Demo(a) => demo::run(&settings, a),
        Command::Simulate(a) => simulate::run(&settings, a),
        Command::Clocks(a) => clocks::run(&settings, a),
        Command::Consistency(c) => consistency::run(&settings, *c),
        Command::Bench(c) => bench::run(&settings, c),
        Command::Cluster(c) => cluster::run(&settings, c),
        Command::Machine(a) => machine::run(&settings, a),
        Command::Kv(a) => kv::run(&settings, a),
        Command::KvBench(a) => kv_bench::run_cmd(&settings, a),
        Command::Cheops(c) => cheops::run(&settings, c),
        Command::Datasets(c) => datasets::run(&settings, c),
        Command::Clean(a) => clean::run(&settings, a),
        Command::View(a) => view::run(&settings, a),
        #[cfg(feature = "virtual")]
        Command::Image(c) => image::run(&settings, c),
    }
}
