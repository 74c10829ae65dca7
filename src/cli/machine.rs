//! `dz machine`: the agent every real machine runs.

use std::path::PathBuf;

use crate::logging::{self, LogConfig};
use crate::node::Mode;
use crate::runtime::agent::{AgentConfig, log_path, run as run_agent};
use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// This machine's name in the cluster (m0, m1, ...) [default: learnt
    /// from the controller when it places the first node].
    #[arg(long, default_value = "unnamed")]
    name: String,
    /// Control-plane address (Cap'n Proto RPC for the controller).
    #[arg(long, default_value = "0.0.0.0:7700")]
    control: String,
    /// Data-plane address (node messages from other machines).
    #[arg(long, default_value = "0.0.0.0:7701")]
    data: String,
    /// Directory for node storage and the agent's log.
    #[arg(long, default_value = "dz-machine")]
    dir: PathBuf,
    /// The mode this machine runs in (recorded in every log line).
    #[arg(long, value_enum, default_value = "local")]
    mode: Mode,
    /// Write the bound addresses here (JSON) once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// The cluster's name, on every log line (to find them in Kibana).
    #[arg(long, default_value = "-")]
    cluster: String,
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let secret = settings.cluster_secret.clone().ok_or_else(|| {
        crate::Error::input(
            "DZ_CLUSTER_SECRET is not set; an agent does not run without the cluster secret",
        )
    })?;
    if a.mode == Mode::Simulated {
        return Err(crate::Error::input(
            "--mode simulated: a machine agent runs in local, virtual or cloud mode",
        )
        .into());
    }
    crate::runtime::tls::install_credentials(&secret, settings.tls_credentials.as_deref())?;
    crate::runtime::set_identity(&a.name);
    let mut log = LogConfig::new(log_path(&a.dir), a.mode, settings);
    log.append = true;
    log.fields.push(("cluster".into(), a.cluster.clone()));
    let _log = logging::init(&log)?;
    run_agent(AgentConfig {
        name: a.name,
        control: a.control,
        data: a.data,
        dir: a.dir,
        mode: a.mode,
        secret,
        ready_file: a.ready_file,
        fronts: crate::drivers::fronts(),
    })?;
    Ok(())
}
