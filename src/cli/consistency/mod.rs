//! `dz consistency`: CloudScope's experiments on DistZero.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::progress::Progress;
use crate::drivers::consistency::batch::{self, Job, Shard};
use crate::drivers::consistency::experiment::{Experiment, load_inputs, metrics, simulate};
use crate::drivers::consistency::settings::TickModel;
use crate::drivers::consistency::sweep::{self, Param, SweepPlan};
use crate::drivers::consistency::topogen::Family;
use crate::drivers::consistency::{results, trace};
use crate::error::Error;
use crate::node::Mode;
use crate::settings::Settings;
use crate::topology::Topology;

mod generate;
mod knobs;
pub use generate::{OutagesArgs, TopologyArgs, TracesArgs};
use generate::{outages_cmd, topology_cmd, traces_cmd};
pub use knobs::Knobs;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Runs one topology in the simulator: results.json (CloudScope's
    /// keys) and summary.json, the summary printed as a table.
    Simulate(SimulateArgs),
    /// Runs many topologies in parallel (one JSON line each), or one shard
    /// of them (--shard K/N) for a batch system.
    Multisim(MultisimArgs),
    /// Joins the JSON-lines files of multisim or sweep shards.
    Merge(MergeArgs),
    /// Varies one parameter across protocols; writes the table and the
    /// plots (PNG and SVG), one line per protocol.
    Sweep(SweepArgs),
    /// Generates a workload trace (`timestep replica object read|write`).
    Traces(TracesArgs),
    /// Generates an outage script (`timestep online|offline source target`).
    Outages(OutagesArgs),
    /// Generates a topology: N replicas over L sites, timing by a tick model.
    Topology(TopologyArgs),
    /// Runs one topology on real machines (local processes or Docker).
    Run(RunArgs),
}

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Topology file (CloudScope's JSON, unchanged).
    topology: PathBuf,
    /// Workload trace [default: meta.trace, else generated].
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Outage script [default: meta.outages, else generated when outage_prob > 0].
    #[arg(long)]
    outages: Option<PathBuf>,
    /// Output directory [default: .tmp/consistency/<topology>-seed<N>].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, value_parser = ["local", "virtual"])]
    mode: String,
    /// Cluster name [default: consistency-<random>].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    sim: SimulateArgs,
}

#[derive(clap::Args)]
pub struct MultisimArgs {
    /// Topology files, one run each.
    #[arg(required = true)]
    topologies: Vec<PathBuf>,
    #[arg(long)]
    trace: Option<PathBuf>,
    #[arg(long)]
    outages: Option<PathBuf>,
    #[command(flatten)]
    batch: BatchArgs,
    /// JSON-lines output [default: .tmp/consistency/multisim.jsonl].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write each run's results.json and summary.json under DIR/<n>/.
    #[arg(long)]
    results_dir: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
}

/// How a batch of runs is spread: over threads here, over machines by shard.
#[derive(clap::Args)]
pub struct BatchArgs {
    /// Threads [default: every core].
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only the runs i with i mod N = K (K from 0).
    #[arg(long, default_value = "0/1")]
    shard: Shard,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// For sweep shards: also write the table and plots under DIR.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// What to vary.
    #[arg(long, value_enum, default_value = "wide-latency")]
    param: Param,
    /// Its values [default for wide-latency: 30 to 480 ms in 12 steps].
    #[arg(long, value_delimiter = ',')]
    values: Vec<f64>,
    /// Protocols: eventual, stentor, raft, tag, federated, floated.
    #[arg(long, value_delimiter = ',', default_value = "eventual,raft,federated")]
    protocols: Vec<String>,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "conservative"
    )]
    tick_model: Vec<TickModel>,
    /// User counts (one series each when several).
    #[arg(long = "user-counts", value_delimiter = ',', default_value = "1")]
    user_counts: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    #[arg(long, default_value_t = 5)]
    locations: usize,
    /// Local latency MEAN,STDDEV (ms).
    #[arg(long, default_value = "30,5")]
    local: String,
    /// Wide latency MEAN,STDDEV (ms; the mean is the swept value for wide-latency).
    #[arg(long, default_value = "300,50")]
    wide: String,
    #[command(flatten)]
    batch: BatchArgs,
    /// Output directory [default: .tmp/consistency/sweep-<param>].
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    knobs: Knobs,
}

pub fn run(settings: &Settings, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Simulate(a) => simulate_cmd(settings, a),
        Command::Run(a) => run_cmd(settings, a),
        Command::Multisim(a) => multisim_cmd(settings, a),
        Command::Merge(a) => merge_cmd(a),
        Command::Sweep(a) => sweep_cmd(settings, a),
        Command::Traces(a) => traces_cmd(a),
        Command::Outages(a) => outages_cmd(a),
        Command::Topology(a) => topology_cmd(a),
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map_or("topology".into(), |s| s.to_string_lossy().into_owned())
}

/// A path that meta names, relative to the topology's folder.
fn meta_path(topology: &Topology, file: &Path, key: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(v) = topology.meta.get(key) else {
        return Ok(None);
    };
    let Some(s) = v.as_str() else {
        return if v.is_null() {
            Ok(None)
        } else {
            Err(Error::input(format!("{}: meta.{key}: expected a path", file.display())).into())
        };
    };
    let p = file.parent().unwrap_or(Path::new(".")).join(s);
    if !p.exists() {
        return Err(Error::input(format!(
            "{}: meta.{key}: no file {} (give --{key} instead)",
            file.display(),
            p.display()
        ))
        .into());
    }
    Ok(Some(p))
}

fn experiment(a: &SimulateArgs) -> anyhow::Result<Experiment> {
    let topology = Topology::load(&a.topology)?;
    if topology.system != "consistency" {
        return Err(Error::input(format!(
            "{}: nodes: this topology runs {:?}; a consistency topology names no system",
            a.topology.display(),
            topology.system
        ))
        .into());
    }
    let (s, given) = a
        .knobs
        .resolve(&topology)
        .map_err(|e| Error::input(format!("{}: {e}", a.topology.display())))?;
    let trace = match &a.trace {
        Some(p) => Some(p.clone()),
        None => meta_path(&topology, &a.topology, "trace")?,
    };
    if let Some(t) = &trace
        && a.knobs.mobile()
    {
        return Err(Error::input(format!(
            "--mobile shapes a generated workload, but the trace {} replays as it is; drop one",
            t.display()
        ))
        .into());
    }
    let outages = match &a.outages {
        Some(p) => Some(p.clone()),
        None => meta_path(&topology, &a.topology, "outages")?,
    };
    let seed = s.random_seed;
    let exp = load_inputs(
        topology,
        a.topology.display().to_string(),
        s,
        given,
        seed,
        trace.as_deref(),
        outages.as_deref(),
    )?;
    // Refuse a bad per-node setting before anything runs.
    exp.placement()
        .map_err(|e| Error::input(format!("{}: {e}", a.topology.display())))?;
    Ok(exp)
}

fn simulate_cmd(settings: &Settings, a: SimulateArgs) -> anyhow::Result<()> {
    let exp = experiment(&a)?;
    let out = a.out.clone().unwrap_or_else(|| {
        super::default_out(
            settings,
            &[
                "consistency",
                &format!("{}-seed{}", stem(&a.topology), exp.seed),
            ],
        )
    });
    let mut progress = Progress::new(format!("simulating {}", exp.protocols()));
    let run = simulate(&exp, &mut |f| progress.update(f))?;
    progress.finish();
    let (series, m) = metrics(&exp, &run)?;
    let files = results::build(&exp, &run, &series, &m, Mode::Simulated);
    results::write(&out, &files)?;
    print!("{}", results::table(&files.summary));
    println!(
        "{} events, {:.1} ms wall; results: {}",
        run.events,
        run.wall.as_secs_f64() * 1e3,
        out.join("results.json").display()
    );
    Ok(())
}

fn run_cmd(settings: &Settings, a: RunArgs) -> anyhow::Result<()> {
    let mode = if a.mode == "local" {
        Mode::Local
    } else {
        Mode::Virtual
    };
    let exp = experiment(&a.sim)?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("consistency-{}", &crate::backends::cluster::new_name()[2..]));
    let out = a.sim.out.clone().unwrap_or_else(|| {
        super::default_out(
            settings,
            &[
                "consistency",
                &format!("{}-{}", stem(&a.sim.topology), name),
            ],
        )
    });
    let binary = super::cluster::binary()?;
    let mut progress = Progress::new(format!("running {} ({mode})", exp.protocols()));
    let run = super::runtime::block_local(crate::drivers::consistency::real::run(
        settings,
        &exp,
        mode,
        &name,
        &binary,
        &mut |f| progress.update(f),
    ))?;
    progress.finish();
    let (series, m) = metrics(&exp, &run)?;
    let files = results::build(&exp, &run, &series, &m, mode);
    results::write(&out, &files)?;
    print!("{}", results::table(&files.summary));
    println!("results: {}", out.join("results.json").display());
    Ok(())
}

fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn run_batch(jobs: Vec<Job>, threads: usize, label: &str) -> anyhow::Result<Vec<Value>> {
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} ({elapsed}, ~{eta} left)",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let lines = batch::run(jobs, threads, &|done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(lines)
}

fn write_lines(path: &Path, lines: &[Value]) -> anyhow::Result<()> {
    trace::write_text(path, &batch::to_jsonl(lines))?;
    Ok(())
}

fn multisim_cmd(settings: &Settings, a: MultisimArgs) -> anyhow::Result<()> {
    let mut jobs = Vec::new();
    for (i, path) in a.topologies.iter().enumerate() {
        if !a.batch.shard.keeps(i) {
            continue;
        }
        let sim = SimulateArgs {
            topology: path.clone(),
            trace: a.trace.clone(),
            outages: a.outages.clone(),
            out: None,
            knobs: a.knobs.clone(),
        };
        let exp = experiment(&sim)?;
        let mut labels = Map::new();
        labels.insert("run".into(), i.into());
        labels.insert("file".into(), path.display().to_string().into());
        jobs.push(Job {
            experiment: exp,
            labels,
            out: a.results_dir.as_ref().map(|d| d.join(i.to_string())),
        });
    }
    let out = a
        .out
        .unwrap_or_else(|| super::default_out(settings, &["consistency", "multisim.jsonl"]));
    let n = jobs.len();
    let lines = run_batch(jobs, threads(a.batch.jobs), "multisim")?;
    write_lines(&out, &lines)?;
    let failed = lines.iter().filter(|l| l.get("error").is_some()).count();
    println!("{n} runs ({failed} failed): {}", out.display());
    Ok(())
}

fn merge_cmd(a: MergeArgs) -> anyhow::Result<()> {
    let inputs: Vec<&Path> = a.inputs.iter().map(PathBuf::as_path).collect();
    let lines = batch::merge(&inputs)?;
    write_lines(&a.out, &lines)?;
    println!("{} runs: {}", lines.len(), a.out.display());
    if let Some(dir) = a.report {
        let param = lines
            .first()
            .and_then(|l| l["param"].as_str())
            .unwrap_or("value")
            .to_string();
        for p in sweep::report(&dir, &lines, &param)? {
            println!("  {}", p.display());
        }
    }
    Ok(())
}

fn pair(s: &str, flag: &str) -> anyhow::Result<(f64, f64)> {
    let parts: Vec<&str> = s.split(',').collect();
    match parts.as_slice() {
        [m, sd] => match (m.trim().parse(), sd.trim().parse()) {
            (Ok(m), Ok(sd)) => Ok((m, sd)),
            _ => {
                Err(Error::input(format!("--{flag}: expected MEAN,STDDEV in ms, got {s:?}")).into())
            }
        },
        _ => Err(Error::input(format!("--{flag}: expected MEAN,STDDEV in ms, got {s:?}")).into()),
    }
}

fn sweep_cmd(settings: &Settings, a: SweepArgs) -> anyhow::Result<()> {
    let protocols = a
        .protocols
        .iter()
        .map(|p| Family::parse(p).map_err(|e| Error::input(format!("--protocols: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let values = if a.values.is_empty() {
        match a.param {
            Param::WideLatency => (1..=12)
                .map(|i| 30.0 + (i - 1) as f64 * 450.0 / 11.0)
                .collect(),
            Param::Users => vec![1.0, 2.0, 3.0, 5.0, 8.0],
            Param::Conflict | Param::Outage => (0..=10).map(|i| i as f64 / 10.0).collect(),
            Param::Nodes => vec![5.0, 10.0, 20.0, 40.0],
        }
    } else {
        a.values.clone()
    };
    let dummy = Topology::parse(r#"{"nodes": [{"id": "r0", "consistency": "eventual"}]}"#)
        .map_err(Error::input)?;
    let (s, _) = a.knobs.resolve(&dummy)?;
    let plan = SweepPlan {
        param: a.param,
        values,
        protocols,
        tick_models: a.tick_model.clone(),
        users: if a.knobs.users.is_some() {
            vec![s.users]
        } else {
            a.user_counts.clone()
        },
        nodes: a.nodes,
        locations: a.locations,
        local: pair(&a.local, "local")?,
        wide: pair(&a.wide, "wide")?,
        seed: s.random_seed,
        settings: s,
    };
    let jobs = sweep::jobs(&plan, a.batch.shard)?;
    let out = a.out.unwrap_or_else(|| {
        super::default_out(
            settings,
            &["consistency", &format!("sweep-{}", a.param.as_str())],
        )
    });
    let start = std::time::Instant::now();
    let n = jobs.len();
    let lines = run_batch(jobs, threads(a.batch.jobs), "sweep")?;
    let wall = start.elapsed();
    let name = if a.batch.shard == Shard::ALL {
        "sweep.jsonl".to_string()
    } else {
        format!(
            "sweep-{}-of-{}.jsonl",
            a.batch.shard.index, a.batch.shard.count
        )
    };
    write_lines(&out.join(&name), &lines)?;
    println!(
        "{n} runs in {:.1} s on {} threads: {}",
        wall.as_secs_f64(),
        threads(a.batch.jobs),
        out.join(&name).display()
    );
    if a.batch.shard == Shard::ALL {
        for p in sweep::report(&out, &lines, plan.param.as_str())? {
            println!("  {}", p.display());
        }
    } else {
        println!(
            "merge the shards: dz consistency merge {}/sweep-*-of-{}.jsonl --out all.jsonl --report DIR",
            out.display(),
            a.batch.shard.count
        );
    }
    let failed = lines.iter().filter(|l| l.get("error").is_some()).count();
    if failed > 0 {
        println!("{failed} runs failed; see the error column of sweep.csv");
    }
    Ok(())
}
