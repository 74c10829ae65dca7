//! `dz view`: a run in the browser. The server opens a run's output (or a
//! trace, or a cluster's collected logs), indexes it once, and answers the
//! page one moment or window at a time; "what if" branches are re-run in
//! the simulator. It sits above the drivers; nothing below imports it.

pub mod fork;
pub mod logs;
pub mod rerun;
pub mod run;
pub mod server;
pub mod states;
pub mod trace_index;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::error::{Error, Result};
use run::Run;
use server::App;

pub struct ViewOptions {
    pub path: PathBuf,
    pub port: u16,
    pub open: bool,
    /// Scratch space for re-runs and branches.
    pub work: PathBuf,
}

/// Opens the run, prints the URL and serves until killed.
pub fn serve(opts: &ViewOptions) -> Result<()> {
    let started = Instant::now();
    let run = Run::open(&opts.path)?;
    let opened = started.elapsed();
    let summary = format!(
        "{} machines, {} events, {} log lines; opened in {} ms",
        run.machines.len(),
        run.trace.as_ref().map_or(0, |t| t.events.len()),
        run.logs.lines.len(),
        opened.as_millis()
    );
    let run = Arc::new(run);
    let app = Arc::new(App {
        runs: RwLock::new(vec![run.clone()]),
        work: opts.work.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("starting the server: {e}")))?;
    rt.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::input(format!("port {}: {e}", opts.port)))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::runtime(e.to_string()))?;
        let url = format!("http://{local}/");
        println!("dz view: {url}  ({summary})");
        let _ = std::io::stdout().flush();
        if opts.open {
            let _ = std::process::Command::new("xdg-open").arg(&url).spawn();
        }
        sample_states(run, opts.work.join("run0"));
        axum::serve(listener, server::router(app))
            .await
            .map_err(|e| Error::runtime(format!("server: {e}")))
    })
}

/// Re-runs the simulation in the background to sample node states the
/// trace does not carry; the page shows them once they are ready.
fn sample_states(run: Arc<Run>, out: PathBuf) {
    if run.states.read().map(|s| s.is_some()).unwrap_or(true) {
        return;
    }
    let Some(inputs) = run.inputs.clone() else {
        return;
    };
    let note = |s: String| {
        if let Ok(mut n) = run.states_note.write() {
            *n = s;
        }
    };
    note("sampling node states (re-running the simulation)...".into());
    std::thread::spawn(move || {
        let note = |s: String| {
            if let Ok(mut n) = run.states_note.write() {
                *n = s;
            }
        };
        match rerun::rerun(&inputs.topology, inputs.seed, inputs.duration, &out)
            .and_then(|r| Ok((r, states::States::open(&out.join("states.jsonl"))?)))
        {
            Ok((r, s)) => {
                // Only the states and the hash are wanted: the run's own
                // trace is already open.
                let _ = std::fs::remove_file(out.join("trace.jsonl"));
                let hash = format!("{:016x}", r.trace_hash);
                let same = run.trace_hash.as_deref().is_none_or(|h| h == hash);
                note(if same {
                    format!("states sampled by a re-run with the same trace hash {hash}")
                } else {
                    format!(
                        "re-run's trace hash {hash} differs from the run's: states may not match"
                    )
                });
                if run.verdict.read().map(|v| v.is_none()).unwrap_or(false)
                    && let Ok(mut v) = run.verdict.write()
                {
                    *v = r.verdict;
                }
                if let Ok(mut st) = run.states.write() {
                    *st = Some(s);
                }
            }
            Err(e) => note(format!("states unavailable: {e}")),
        }
    });
}

/// For the `FAILED seed` lines of the sim-checks: the command that opens a
/// seed's run in the viewer.
pub fn command_for(dir: &Path) -> String {
    format!("dz view {}", dir.display())
}
