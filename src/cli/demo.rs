//! `dz demo`: the built-in showcase, in simulation, with no set-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clocks::{describe, run_and_write};
use super::default_out;
use crate::drivers::clocks::experiment::ClocksParams;
use crate::drivers::kv::{history_file, showcase};
use crate::logging::{self, LogConfig};
use crate::node::Mode;
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Output directory [default: .tmp/demo].
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the kv scene's whole client history (kv-history.jsonl,
    /// which `dz kv check` reads).
    #[arg(long)]
    history: bool,
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let out = a.out.unwrap_or_else(|| default_out(settings, &["demo"]));
    let log = logging::init(&LogConfig::new(
        out.join("dz.json.log"),
        Mode::Simulated,
        settings,
    ))?;
    let rates = vec![6.0, 1.0, 1.0];
    println!(
        "Lamport clocks on 3 simulated machines ticking {rates:?} times a second, 60 s each (seed {}).",
        a.seed
    );
    let mut drifts = Vec::new();
    for p in [0.7, 0.25] {
        let mut params = ClocksParams::new(rates.clone());
        params.internal_prob = p;
        params.duration = Duration::from_secs(60);
        params.seed = a.seed;
        let dir = out.join(format!("clocks-p{p}"));
        let (summaries, outputs) = run_and_write(settings, &params, Mode::Simulated, &dir)?;
        println!(
            "internal-event probability {p}: invariants hold; outputs in {}",
            outputs.dir.display()
        );
        for s in &summaries {
            println!("{}", describe(s));
        }
        drifts.push(summaries.iter().map(|s| s.drift).max().unwrap_or(0));
    }
    let trend = if drifts[1] > drifts[0] {
        "grows"
    } else {
        "shrinks"
    };
    println!(
        "The slow machines cannot drain their queues, so their clocks drift behind the fast one. \
         With fewer internal events the fast machine sends more, and the largest drift {trend} \
         from {} to {}.",
        drifts[0], drifts[1]
    );
    println!("Plots: clock.png and queue.png in each directory; logs as CSV per machine.");
    println!();
    kv_scene(&out, a.seed, a.history)?;
    if let Some(line) = log.logstash_report() {
        println!("{line}");
    }
    Ok(())
}

/// The replicated kv service surviving a master crash and a partition.
fn kv_scene(out: &Path, seed: u64, history: bool) -> anyhow::Result<()> {
    let scene = showcase::run(seed)?;
    println!("{}", scene.title);
    for line in &scene.story {
        println!("  {line}");
    }
    let r = &scene.result;
    let verdict = if r.verdict.linearizable {
        "linearizable"
    } else {
        "NOT linearizable"
    };
    println!(
        "{} operations answered, {} unanswered, {} view changes; the history is {verdict} \
         (checked key by key).",
        r.completed, r.unanswered, r.view_changes
    );
    match scene.agreed_keys {
        Some(keys) => println!("All 3 servers hold the same {keys} keys."),
        None => println!("The servers' stores still differ at the end of the run."),
    }
    let path = out.join("kv-scene.json");
    std::fs::write(&path, serde_json::to_string_pretty(r)?)?;
    println!(
        "Result: {}; check 1000 random worlds and fault schedules with `dz kv sim-check`.",
        path.display()
    );
    if history {
        let path = out.join("kv-history.jsonl");
        history_file::write(&path, &r.history)?;
        println!(
            "The clients' history: {}; check it again with `dz kv check`.",
            path.display()
        );
    }
    anyhow::ensure!(
        r.verdict.linearizable,
        "the kv history of seed {seed} is not linearizable"
    );
    Ok(())
}
