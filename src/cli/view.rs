//! `dz view PATH`: a run in the browser.

use std::path::PathBuf;

use super::default_out;
use crate::settings::Settings;
use crate::view::{ViewOptions, serve};

#[derive(clap::Args)]
pub struct Args {
    /// A run's output directory (`dz simulate --out`), a trace.jsonl, or a
    /// directory of collected logs (`dz cluster logs NAME`).
    path: PathBuf,
    /// Port on localhost [default: any free port].
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Also open the page in the default browser.
    #[arg(long)]
    open: bool,
    /// Open the page at this moment of the run, in seconds (a sim-check
    /// prints the moment its seed failed).
    #[arg(long, value_name = "SECONDS", value_parser = at_seconds)]
    at: Option<f64>,
}

fn at_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("{s:?} is not a number of seconds (0 or more)")),
    }
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let work = default_out(settings, &["view", &std::process::id().to_string()]);
    if let Some(parent) = work.parent() {
        crate::view::remove_stale_work(parent);
    }
    serve(&ViewOptions {
        path: a.path,
        port: a.port,
        open: a.open,
        at: a.at,
        work,
    })?;
    Ok(())
}
