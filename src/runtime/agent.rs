//! `dz machine`: the agent in every non-simulated machine. One thread, one
//! `LocalSet`: the host loop, the data plane and the control plane.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use super::control::{self, AgentState};
use super::front::{FrontStarter, dialable};
use super::host::{Host, WorkDone};
use super::transport::Transport;
use crate::error::{Error, Result};
use crate::node::Mode;
use crate::wire::Envelope;

/// Messages waiting for the host before the data plane stops reading.
const INBOUND_QUEUE: usize = 4096;

pub struct AgentConfig {
    pub name: String,
    /// Control-plane listen address (port 0: any free port).
    pub control: String,
    /// Data-plane listen address.
    pub data: String,
    /// Node storage and the agent's log.
    pub dir: PathBuf,
    pub mode: Mode,
    pub secret: String,
    /// Where to write the bound addresses once listening.
    pub ready_file: Option<PathBuf>,
    /// Services to run next to nodes (see `front.rs`).
    pub fronts: Vec<FrontStarter>,
}

/// What a started agent reports in its ready file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ready {
    pub control: String,
    pub data: String,
    pub pid: u32,
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("agent.json.log")
}

/// Runs the agent until it is told to shut down or gets SIGINT / SIGTERM.
pub fn run(cfg: AgentConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve(cfg))
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::input(format!("cannot listen on {addr} for the {what}: {e}")))
}

fn write_ready(path: &Path, ready: &Ready) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(ready).map_err(|e| Error::runtime(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

async fn serve(cfg: AgentConfig) -> Result<()> {
    super::set_identity(&cfg.name);
    std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::io(&cfg.dir, e))?;
    let control_listener = bind(&cfg.control, "control plane").await?;
    let data_listener = bind(&cfg.data, "data plane").await?;
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let ready = Ready {
        control: addr(&control_listener),
        data: addr(&data_listener),
        pid: std::process::id(),
    };
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let transport = Transport::new(cfg.name.clone(), cfg.secret.clone(), tx);
    let (work_tx, work_rx) = mpsc::unbounded_channel();
    let host = Rc::new(RefCell::new(Host::new(
        cfg.name.clone(),
        cfg.mode,
        cfg.dir.clone(),
        transport.clone(),
        work_tx,
    )));
    let state = Rc::new(AgentState {
        host: host.clone(),
        transport: transport.clone(),
        wake: Rc::new(Notify::new()),
        shutdown: Rc::new(Notify::new()),
        secret: cfg.secret.clone(),
        log_path: log_path(&cfg.dir),
        dir: cfg.dir.clone(),
        fronts: cfg.fronts.clone(),
        running_fronts: Default::default(),
        data: dialable(&ready.data),
    });
    tokio::task::spawn_local(transport.serve(data_listener));
    tokio::task::spawn_local(control::serve(control_listener, state.clone()));
    if let Some(path) = &cfg.ready_file {
        write_ready(path, &ready)?;
    }
    crate::agent_log!(info, control = %ready.control, data = %ready.data, "agent listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::runtime(format!("cannot watch SIGTERM: {e}")))?;
    tokio::select! {
        _ = host_loop(host, rx, work_rx, state.wake.clone()) => {}
        _ = state.shutdown.notified() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    crate::agent_log!(info, "agent stopping");
    // Give the shutdown reply a moment to leave.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    Ok(())
}

/// Delivers messages, fires timers and hands back finished work, one at a
/// time, forever.
async fn host_loop(
    host: Rc<RefCell<Host>>,
    mut inbound: mpsc::Receiver<Envelope>,
    mut work: mpsc::UnboundedReceiver<WorkDone>,
    wake: Rc<Notify>,
) {
    loop {
        host.borrow_mut().drain_local();
        let deadline = host.borrow().next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            env = inbound.recv() => match env {
                Some(env) => host.borrow_mut().deliver(env),
                None => return,
            },
            _ = sleep => host.borrow_mut().fire_due(),
            Some(done) = work.recv() => host.borrow_mut().work_done(done),
            _ = wake.notified() => {}
        }
    }
}
