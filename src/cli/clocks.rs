//! `dz clocks`: the logical-clocks experiment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::progress::Progress;
use super::{default_out, duration_arg};
use crate::drivers::clocks::experiment::{
    ClocksParams, parse_rates, run_on_cluster, run_simulated,
};
use crate::drivers::clocks::report::{
    MachineSummary, Outputs, check_invariants, summarize, write_outputs,
};
use crate::logging::{self, LogConfig};
use crate::node::Mode;
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Ticks per second of each machine, comma-separated (one per machine).
    #[arg(long, default_value = "6,1,1", value_parser = rates_arg)]
    rates: Rates,
    /// Probability that a tick with an empty queue is an internal event.
    #[arg(long, default_value_t = 0.7, value_parser = internal_prob)]
    internal_prob: f64,
    /// Time to run, e.g. 60s or 2m.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    duration: Duration,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory [default: .tmp/clocks/<mode>-seed<N>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// simulated, or on real machines: local (processes), virtual (Docker).
    #[arg(long, value_enum, default_value = "simulated")]
    mode: Mode,
}

/// A whole `--rates` list as one value (clap would split a bare `Vec`).
#[derive(Clone, Debug)]
struct Rates(Vec<f64>);

fn rates_arg(s: &str) -> Result<Rates, String> {
    parse_rates(s).map(Rates)
}

fn internal_prob(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not in [0, 1)"))
    }
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let out = a.out.unwrap_or_else(|| {
        default_out(settings, &["clocks", &format!("{}-seed{}", a.mode, a.seed)])
    });
    let log = logging::init(&LogConfig::new(out.join("dz.json.log"), a.mode, settings))?;
    let mut params = ClocksParams::new(a.rates.0);
    params.internal_prob = a.internal_prob;
    params.duration = a.duration;
    params.seed = a.seed;
    let (summaries, outputs) = run_and_write(settings, &params, a.mode, &out)?;
    for s in &summaries {
        println!("{}", describe(s));
    }
    println!("invariants hold on every machine's log");
    print_outputs(&outputs);
    if let Some(line) = log.logstash_report() {
        println!("{line}");
    }
    Ok(())
}

/// Runs the experiment, checks the Lamport invariants and writes outputs.
pub(super) fn run_and_write(
    settings: &Settings,
    params: &ClocksParams,
    mode: Mode,
    out: &Path,
) -> anyhow::Result<(Vec<MachineSummary>, Outputs)> {
    let mut progress = Progress::new(format!("clocks ({mode})"));
    let run = if mode == Mode::Simulated {
        run_simulated(params, &mut |f| progress.update(f))?
    } else {
        let binary = super::cluster::binary()?;
        let (run, cluster) = super::runtime::block_local(run_on_cluster(
            settings,
            params,
            mode,
            &binary,
            &mut |f| progress.update(f),
        ))?;
        println!(
            "ran on cluster {cluster}; machine logs in {}",
            settings.tmp_dir.join(&cluster).display()
        );
        run
    };
    progress.finish();
    let violations: Vec<String> = run
        .machines
        .iter()
        .flat_map(|m| check_invariants(&m.name, &m.rows))
        .collect();
    let summaries = summarize(&run);
    let outputs = write_outputs(&run, &summaries, out)?;
    if let Some(first) = violations.first() {
        anyhow::bail!(
            "{} Lamport invariant violations, first: {first}",
            violations.len()
        );
    }
    Ok((summaries, outputs))
}

pub(super) fn describe(s: &MachineSummary) -> String {
    format!(
        "  {} at {} ticks/s: clock {}, max jump {}, queue max {} (mean {:.1}, final {}), drift {}",
        s.name,
        s.rate,
        s.final_clock,
        s.max_jump,
        s.max_queue,
        s.mean_queue,
        s.final_queue,
        s.drift
    )
}

pub(super) fn print_outputs(o: &Outputs) {
    println!(
        "logs: {}/<machine>.csv   summary: {}",
        o.dir.display(),
        o.summary.display()
    );
    println!(
        "plots: {}  {}",
        o.clock_plot.display(),
        o.queue_plot.display()
    );
}
