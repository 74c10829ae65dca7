//! `dz simulate TOPOLOGY.json`.

use std::path::PathBuf;
use std::time::Duration;

use super::progress::Progress;
use super::{default_out, duration_arg};
use crate::drivers::simulate::{SimulateOptions, simulate};
use crate::logging::{self, LogConfig};
use crate::node::Mode;
use crate::settings::Settings;
use crate::topology::Topology;

#[derive(clap::Args)]
pub struct Args {
    /// Topology file (CloudScope JSON shape: meta, nodes, links).
    topology: PathBuf,
    /// Seed of the run [default: meta.seed, else 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated time to run, e.g. 60s, 500ms, 2m [default: meta.duration, else 60s].
    #[arg(long, value_parser = duration_arg)]
    duration: Option<Duration>,
    /// Output directory [default: .tmp/simulate/<topology>-seed<N>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Round-trip every message through its codec and the wire envelope.
    #[arg(long)]
    check_wire: bool,
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let topology = Topology::load(&a.topology)?;
    let seed = a.seed.or(topology.seed).unwrap_or(1);
    let stem = a
        .topology
        .file_stem()
        .map_or("topology".into(), |s| s.to_string_lossy().into_owned());
    let out = a
        .out
        .unwrap_or_else(|| default_out(settings, &["simulate", &format!("{stem}-seed{seed}")]));
    let log = logging::init(&LogConfig::new(
        out.join("dz.json.log"),
        Mode::Simulated,
        settings,
    ))?;
    let opts = SimulateOptions {
        seed,
        duration: a
            .duration
            .or(topology.duration)
            .unwrap_or(Duration::from_secs(60)),
        out: out.clone(),
        check_wire: a.check_wire,
        log_messages: settings.log_messages,
        source: a.topology.display().to_string(),
    };
    // The inputs travel with the outputs, so `dz view` can re-run the seed.
    let copy = out.join("topology.json");
    if std::fs::canonicalize(&a.topology).ok() != std::fs::canonicalize(&copy).ok() {
        std::fs::copy(&a.topology, &copy).map_err(|e| crate::error::Error::io(&copy, e))?;
    }
    let mut progress = Progress::new(format!("simulating {}", topology.system));
    let r = simulate(&topology, &opts, &mut |f| progress.update(f))?;
    progress.finish();
    println!(
        "{}: {} nodes, {:.3}s simulated in {:.3}s wall, {} events, {} delivered, {} dropped",
        topology.title.as_deref().unwrap_or(&stem),
        topology.nodes.len(),
        r.sim_time.as_secs_f64(),
        r.wall_time.as_secs_f64(),
        r.events,
        r.deliveries,
        r.dropped
    );
    println!("trace hash {:016x} (seed {seed})", r.trace_hash);
    println!("results: {}", r.results.display());
    println!("trace:   {}", r.trace.display());
    println!("view:    {}", crate::view::command_for(&out));
    if r.wire_errors > 0 {
        anyhow::bail!(
            "{} messages failed the wire check; see results.json",
            r.wire_errors
        );
    }
    if let Some(line) = log.logstash_report() {
        println!("{line}");
    }
    Ok(())
}
