//! `dz datasets`: DistZero's self-scaling datasets. `run` plays a script
//! (or grows a tree to `--leaves` and back) in the simulator or on a fresh
//! cluster (local processes, Docker containers) and writes results.json
//! and SVG plots; `sim-check` runs many seeds under faults.

use std::path::PathBuf;
use std::time::Duration;

use super::seed_args::{Pooled, SeedArgs};
use crate::drivers::datasets::links::{LinkSetup, write_link_outputs};
use crate::drivers::datasets::real;
use crate::drivers::datasets::run::{Sample, run as run_script, write_outputs};
use crate::drivers::datasets::script::{Script, grow_and_shrink};
use crate::drivers::datasets::sim_check::{DEFAULT_FAULTS, SimCheckOptions, run_many};
use crate::drivers::datasets::{Setup, input_err};
use crate::drivers::kv::sim_check::Faults;
use crate::error::Error;
use crate::net::MessageFaults;
use crate::node::Mode;
use crate::settings::Settings;
use crate::systems::datasets::data::Limits;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Plays a script (leaves added and removed, input actions, faults)
    /// or grows a tree to --leaves and back, printing height, leaves,
    /// nodes and totals over time; writes results.json and SVG plots.
    Run(RunArgs),
    /// Many seeded datasets under leaf churn and faults, each checked for
    /// exact totals and a valid tree.
    SimCheck(SimCheckArgs),
    /// Links an input dataset to output leaves in the simulator under
    /// fan-in and fan-out limits; prints the layers, each link node's
    /// fan-in and fan-out, the totals and the checks' verdict; writes
    /// results.json and link.svg.
    Link(LinkArgs),
}

#[derive(clap::Args)]
pub struct LinkArgs {
    /// Input leaves present when the link is built.
    #[arg(long)]
    inputs: usize,
    /// Output leaves.
    #[arg(long)]
    outputs: usize,
    /// Input leaves that join after the link is built.
    #[arg(long, default_value_t = 0)]
    late_inputs: usize,
    /// Most senders of a link node [DistZero's default: 200].
    #[arg(long, default_value_t = 200)]
    max_senders: u32,
    /// Most receivers of a link node [DistZero's default: 200].
    #[arg(long, default_value_t = 200)]
    max_receivers: u32,
    /// The input dataset's kids limit.
    #[arg(long, default_value_t = 4)]
    kids_limit: u32,
    /// Probability that a message is lost (every kind).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability that a message is duplicated.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Probability that a message is postponed by up to 1.2 s.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where results.json and link.svg go [default: <tmp>/datasets/link].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value_t = Mode::Simulated)]
    mode: Mode,
    /// Most kids a node has [DistZero's default: 200].
    #[arg(long, default_value_t = Limits::default().kids_limit)]
    kids_limit: u32,
    /// Spare leaf capacity at which a node grows [default: 0 with a
    /// script or --leaves under 1000, as DistZero's tests had it; else 5].
    #[arg(long)]
    trigger: Option<u64>,
    /// The script to play (see docs/datasets.md).
    #[arg(long, conflicts_with = "leaves", required_unless_present = "leaves")]
    script: Option<PathBuf>,
    /// Instead of a script: add this many leaves, send one number from
    /// each, remove them all.
    #[arg(long)]
    leaves: Option<usize>,
    /// Time between leaves added or removed with --leaves.
    #[arg(long, value_parser = super::duration_arg, default_value = "1s")]
    every: Duration,
    /// With --leaves: time between the last leaf added and the inputs, and
    /// between the inputs and the first leaf removed.
    #[arg(long, value_parser = super::duration_arg, default_value = "30s")]
    settle: Duration,
    /// Machines the data nodes spread over.
    #[arg(long, default_value_t = 3)]
    machines: usize,
    #[arg(long, default_value_t = 2)]
    outputs: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time between the printed samples [default: a fortieth of the run].
    #[arg(long, value_parser = super::duration_arg)]
    sample: Option<Duration>,
    /// Where results.json and the plots go [default: <tmp>/datasets/run].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Local and virtual modes: the cluster's name [default: a fresh one].
    #[arg(long)]
    name: Option<String>,
    /// Nodes keep their state in memory only, as DistZero's did: no crash
    /// durability, but no snapshot per handler either (see docs/datasets.md).
    #[arg(long)]
    volatile: bool,
}

#[derive(clap::Args)]
pub struct SimCheckArgs {
    #[command(flatten)]
    pool: SeedArgs,
    /// Faults to inject, comma-separated: crash, partition, drop, duplicate, reorder, none.
    #[arg(long, default_value = DEFAULT_FAULTS, value_parser = Faults::parse)]
    faults: Faults,
    /// Seconds of leaf churn and inputs under faults per seed.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Most leaves at once.
    #[arg(long, default_value_t = 30)]
    max_leaves: usize,
    /// With --seed: also write the seed's trace and results under DIR, for
    /// `dz view DIR`.
    #[arg(long, value_name = "DIR", requires = "seed")]
    trace: Option<std::path::PathBuf>,
}

pub fn run(settings: &Settings, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Run(a) => run_cmd(settings, a),
        Command::SimCheck(a) => sim_check(a),
        Command::Link(a) => link_cmd(settings, a),
    }
}

fn run_cmd(settings: &Settings, a: RunArgs) -> anyhow::Result<()> {
    if a.mode == Mode::Cloud {
        return Err(Error::input(
            "datasets run --mode cloud is not available; use local or virtual",
        )
        .into());
    }
    if a.machines == 0 {
        return Err(Error::input("--machines must be at least 1").into());
    }
    // Real modes: the cluster's name, checked before anything runs.
    let name = match (a.mode, &a.name) {
        (Mode::Simulated, _) => None,
        (_, Some(n)) => Some(n.clone()),
        (_, None) => Some(format!(
            "datasets-{}",
            &crate::backends::cluster::new_name()[2..]
        )),
    };
    if let Some(n) = &name {
        crate::backends::state::check_name(n)?;
    }
    let script = match (&a.script, a.leaves) {
        (Some(path), _) => Script::read(path, a.machines)?,
        (None, Some(0)) | (None, None) => {
            return Err(Error::input("--leaves must be at least 1").into());
        }
        (None, Some(n)) => grow_and_shrink(n, a.every, a.settle),
    };
    let limits = Limits {
        kids_limit: a.kids_limit,
        trigger: a
            .trigger
            .unwrap_or(if a.leaves.unwrap_or(0) < 1000 { 0 } else { 5 }),
        ..Limits::default()
    };
    limits.validate().map_err(input_err)?;
    let setup = Setup {
        limits,
        machines: a.machines,
        outputs: a.outputs,
        volatile: a.volatile,
        ..Setup::default()
    };
    let every = a
        .sample
        .unwrap_or_else(|| (script.end / 40).max(Duration::from_millis(100)));
    let out = a
        .out
        .unwrap_or_else(|| super::default_out(settings, &["datasets", "run"]));
    println!(
        "{:>9} {:>6} {:>8} {:>8} {:>12} {:>12}  outputs",
        "time", "height", "leaves", "nodes", "sent", "root"
    );
    if let Some(name) = name {
        return run_real(settings, &setup, &script, a.mode, &name, every, &out);
    }
    let (r, sim) = run_script(a.seed, &setup, &script, every, &mut print_sample)?;
    write_outputs(&out, &r, &sim)?;
    println!(
        "peak height {}, peak nodes {}; expected total {} with {} leaves left; trace hash {}; {:.1} s simulated in {:.2} s",
        r.peak_height,
        r.peak_nodes,
        r.expected_total,
        r.expected_leaves,
        r.trace_hash,
        r.simulated_s,
        r.wall_s
    );
    println!("wrote {}", out.display());
    match &r.failure {
        None => {
            println!("ok: a valid tree, and the exact total at the root and every output");
            Ok(())
        }
        Some(why) => anyhow::bail!("seed {}: {why}", a.seed),
    }
}

/// One progress line.
fn print_sample(s: &Sample) {
    let outs: Vec<String> = s.outputs.iter().map(|t| t.to_string()).collect();
    println!(
        "{:>8.1}s {:>6} {:>8} {:>8} {:>12} {:>12}  {}",
        s.t_s,
        s.height,
        s.leaves,
        s.nodes,
        s.sent_total,
        s.root_total,
        outs.join(",")
    );
}

/// `run --mode local|virtual`: a fresh cluster, taken down at the end.
fn run_real(
    settings: &Settings,
    setup: &Setup,
    script: &Script,
    mode: Mode,
    name: &str,
    every: Duration,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let binary = super::cluster::binary()?;
    let r = super::runtime::block_local(real::run(
        settings,
        setup,
        script,
        mode,
        name,
        &binary,
        every,
        &mut print_sample,
    ))?;
    real::write_outputs(out, &r)?;
    let spread: Vec<String> = r
        .machines
        .iter()
        .map(|m| format!("{} {}", m.machine, m.data_nodes))
        .collect();
    println!(
        "peak height {}, peak nodes {}; expected total {} with {} leaves left; data nodes per machine: {}; {:.1} s",
        r.peak_height,
        r.peak_nodes,
        r.expected_total,
        r.expected_leaves,
        spread.join(", "),
        r.wall_s
    );
    println!("cluster {name} ({mode}) is down");
    println!("wrote {}", out.display());
    match &r.failure {
        None => {
            println!("ok: a valid tree, and the exact total at the root and every output");
            Ok(())
        }
        Some(why) => anyhow::bail!("{mode} run: {why}"),
    }
}

fn sim_check(a: SimCheckArgs) -> anyhow::Result<()> {
    let opts = SimCheckOptions {
        faults: a.faults,
        load: Duration::from_secs(a.seconds),
        max_leaves: a.max_leaves,
        trace: a.trace.as_ref().map(|d| d.join("trace.jsonl")),
        ..Default::default()
    };
    opts.validate()?;
    if let Some(d) = &a.trace {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let Pooled {
        results,
        wall_s,
        threads,
    } = a
        .pool
        .run(|seeds, threads, progress| run_many(seeds, threads, &opts, progress))?;
    let failed: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
    let leaves: usize = results.iter().map(|r| r.leaves_added).sum();
    let inputs: usize = results.iter().map(|r| r.inputs).sum();
    let retrans: u64 = results.iter().map(|r| r.retransmissions).sum();
    let restored: u64 = results.iter().map(|r| r.restored).sum();
    let tallest = results.iter().map(|r| r.peak_height).max().unwrap_or(0);
    println!(
        "{} seeds, faults {}: {leaves} leaves added, {inputs} input actions, {retrans} retransmissions, {restored} nodes restored after crashes, trees up to height {tallest}; {} seeds failed",
        results.len(),
        a.faults.names(),
        failed.len()
    );
    println!("{wall_s:.1} s on {threads} threads");
    if let Some(r) = results.first().filter(|_| results.len() == 1) {
        println!(
            "seed {}: kids limit {}, trace hash {}",
            r.seed, r.kids_limit, r.trace_hash
        );
    }
    let flags = format!(
        "--faults {} --seconds {} --max-leaves {}",
        a.faults.names(),
        a.seconds,
        a.max_leaves
    );
    for r in &failed {
        println!(
            "FAILED seed {}: {}",
            r.seed,
            r.failure.as_deref().unwrap_or_default()
        );
        println!("  replay: dz datasets sim-check --seed {} {flags}", r.seed);
        let at = r
            .failed_at_s
            .map(|t| format!(" --at {t:.1}"))
            .unwrap_or_default();
        println!(
            "  view:   dz datasets sim-check --seed {} {flags} --trace .tmp/datasets-seed-{} ; dz view .tmp/datasets-seed-{}{at}",
            r.seed, r.seed, r.seed
        );
    }
    if let (Some(d), Some(r)) = (&a.trace, results.first()) {
        use crate::drivers::datasets::sim_check::{machine_names, roster_machines};
        let machines = machine_names(&opts);
        let mut v =
            crate::drivers::seeds::view_results("datasets", r.seed, &r.trace_hash, &machines);
        v["node_machines"] = serde_json::json!(roster_machines(&opts));
        crate::drivers::simulate::write_json(&d.join("results.json"), &v)?;
        println!("view: {}", crate::view::command_for(d));
    }
    if !failed.is_empty() {
        anyhow::bail!("{} of {} seeds failed", failed.len(), results.len());
    }
    Ok(())
}

fn link_cmd(settings: &Settings, a: LinkArgs) -> anyhow::Result<()> {
    let faulty = a.loss != 0.0 || a.duplicate != 0.0 || a.reorder != 0.0;
    let setup = LinkSetup {
        inputs: a.inputs,
        late_inputs: a.late_inputs,
        outputs: a.outputs,
        max_senders: a.max_senders,
        max_receivers: a.max_receivers,
        kids_limit: a.kids_limit,
        faults: faulty.then(|| MessageFaults {
            loss: a.loss,
            duplicate: a.duplicate,
            reorder: a.reorder,
            reorder_ms: Some(1200.0),
            ..Default::default()
        }),
        ..LinkSetup::default()
    };
    setup.validate().map_err(input_err)?;
    let (r, _sim) = setup.run(a.seed)?;
    for (i, layer) in r.layers.iter().enumerate() {
        let fans: Vec<String> = layer
            .iter()
            .map(|n| format!("{} {}>{}", n.id, n.senders.len(), n.receivers.len()))
            .collect();
        println!(
            "layer {i}: {} nodes (id fan-in>fan-out): {}",
            layer.len(),
            fans.join(", ")
        );
    }
    let totals: Vec<String> = r.output_totals.iter().map(|t| t.to_string()).collect();
    println!(
        "{} input leaves, {} outputs; sent {}; outputs hold {}; trace hash {}; {:.1} s simulated in {:.2} s",
        r.leaves.len(),
        r.outputs,
        r.sent_total,
        totals.join(","),
        r.trace_hash,
        r.simulated_s,
        r.wall_s
    );
    let out = a
        .out
        .unwrap_or_else(|| super::default_out(settings, &["datasets", "link"]));
    write_link_outputs(&out, &r)?;
    println!("wrote {}", out.display());
    match &r.failure {
        None => {
            println!(
                "ok: every input leaf feeds one first-layer node with one path to each output, fan-in <= {} and fan-out <= {}, exact totals",
                r.max_senders, r.max_receivers
            );
            Ok(())
        }
        Some(why) => anyhow::bail!("seed {}: {why}", a.seed),
    }
}
