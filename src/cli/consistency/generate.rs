//! `dz consistency traces|outages|topology`: the generated inputs of an
//! experiment, written to a file or printed.

use std::path::{Path, PathBuf};

use super::{Knobs, pair};
use crate::drivers::consistency::settings::TickModel;
use crate::drivers::consistency::topogen::{Family, TopologySpec};
use crate::drivers::consistency::{outages, trace};
use crate::error::Error;
use crate::topology::Topology;

#[derive(clap::Args)]
pub struct TracesArgs {
    pub(super) topology: PathBuf,
    /// Output file (.gz compresses) [default: stdout].
    #[arg(long, short = 'w')]
    pub(super) out: Option<PathBuf>,
    #[command(flatten)]
    pub(super) knobs: Knobs,
}

#[derive(clap::Args)]
pub struct OutagesArgs {
    pub(super) topology: PathBuf,
    #[arg(long, short = 'w')]
    pub(super) out: Option<PathBuf>,
    #[arg(long)]
    pub(super) outage_mean: Option<f64>,
    #[arg(long)]
    pub(super) outage_stddev: Option<f64>,
    #[arg(long)]
    pub(super) online_mean: Option<f64>,
    #[arg(long)]
    pub(super) online_stddev: Option<f64>,
    #[command(flatten)]
    pub(super) knobs: Knobs,
}

#[derive(clap::Args)]
pub struct TopologyArgs {
    #[arg(long, short = 'n', default_value_t = 20)]
    pub(super) nodes: usize,
    #[arg(long, short = 'l', default_value_t = 5)]
    pub(super) locations: usize,
    /// eventual, stentor, raft, tag, federated or floated.
    #[arg(long = "type", short = 't', default_value = "eventual")]
    pub(super) family: String,
    /// Local latency MEAN,STDDEV (ms).
    #[arg(long, default_value = "30,5")]
    pub(super) local: String,
    /// Wide latency MEAN,STDDEV (ms).
    #[arg(long, default_value = "300,50")]
    pub(super) wide: String,
    #[arg(long, value_enum, default_value = "bailis")]
    pub(super) tick_model: TickModel,
    #[arg(long, short = 'o')]
    pub(super) out: Option<PathBuf>,
}

pub(super) fn traces_cmd(a: TracesArgs) -> anyhow::Result<()> {
    let topology = Topology::load(&a.topology)?;
    let (s, _) = a.knobs.resolve(&topology)?;
    let rows = trace::generate(&topology, &s, s.random_seed);
    let text = trace::to_text(&rows, &topology);
    emit(a.out.as_deref(), &text, || {
        format!("{} accesses", rows.len())
    })
}

pub(super) fn outages_cmd(a: OutagesArgs) -> anyhow::Result<()> {
    let topology = Topology::load(&a.topology)?;
    let (mut s, _) = a.knobs.resolve(&topology)?;
    for (v, field) in [
        (a.outage_mean, &mut s.outage_mean),
        (a.outage_stddev, &mut s.outage_stddev),
        (a.online_mean, &mut s.online_mean),
        (a.online_stddev, &mut s.online_stddev),
    ] {
        if let Some(v) = v {
            *field = v;
        }
    }
    s.check()
        .map_err(|e| Error::input(format!("settings: {e}")))?;
    let rows = outages::generate(&topology, &s, s.random_seed);
    let text = outages::to_text(&rows, &topology);
    emit(a.out.as_deref(), &text, || {
        format!("{} link changes", rows.len())
    })
}

pub(super) fn topology_cmd(a: TopologyArgs) -> anyhow::Result<()> {
    let spec = TopologySpec {
        nodes: a.nodes,
        locations: a.locations,
        family: Family::parse(&a.family).map_err(|e| Error::input(format!("--type: {e}")))?,
        local: pair(&a.local, "local")?,
        wide: pair(&a.wide, "wide")?,
        tick_model: a.tick_model,
    };
    spec.check().map_err(|e| Error::input(format!("--{e}")))?;
    let text = serde_json::to_string_pretty(&spec.build())? + "\n";
    emit(a.out.as_deref(), &text, || {
        format!("{} nodes over {} sites", a.nodes, a.locations)
    })
}

/// Writes `text` to `out` and says what it holds, or prints it.
fn emit(out: Option<&Path>, text: &str, what: impl Fn() -> String) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            trace::write_text(p, text)?;
            println!("{}: {}", what(), p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
