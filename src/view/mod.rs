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
    /// The moment of the run the page opens at (seconds).
    pub at: Option<f64>,
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
        let url = match opts.at {
            Some(t) => format!("http://{local}/#t={t}"),
            None => format!("http://{local}/"),
        };
        println!("dz view: {url}  ({summary})");
        let _ = std::io::stdout().flush();
        if opts.open {
            let _ = std::process::Command::new("xdg-open").arg(&url).spawn();
        }
        sample_states(run, opts.work.join("run0"));
        axum::serve(listener, server::router(app))
            .with_graceful_shutdown(stopped())
            .await
            .map_err(|e| Error::runtime(format!("server: {e}")))
    })?;
    // Branches and sampled states are scratch: gone with the server.
    let _ = std::fs::remove_dir_all(&opts.work);
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Removes the scratch directories (`<parent>/<pid>`) of viewers that died
/// without cleaning up (killed with SIGKILL); only where `/proc` tells
/// which processes live.
pub fn remove_stale_work(parent: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
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
        match rerun::rerun_inputs(&inputs, None, &out)
            .and_then(|r| Ok((r, states::States::open(&out.join("states.jsonl"))?)))
        {
            Ok((r, s)) => {
                let hash = format!("{:016x}", r.trace_hash);
                let same = run.trace_hash.as_deref().is_none_or(|h| h == hash);
                // The re-run's trace carries message contents; with the
                // same hash its events are the run's, one for one.
                let path = out.join("trace.jsonl");
                if same
                    && run.contents.read().map(|c| c.is_none()).unwrap_or(false)
                    && let Ok(ix) = trace_index::TraceIndex::open(&path)
                    && ix.events.len() == run.trace.as_ref().map_or(0, |t| t.events.len())
                    && let Ok(mut c) = run.contents.write()
                {
                    *c = Some(trace_index::Contents {
                        path,
                        lines: ix.msg_lines,
                    });
                }
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
