//! `dz kv`: the kv service's client (interactive or one command), its REST
//! gateway, the check of a history file and the simulated checks.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::runtime::block_local;
use crate::backends::state::ClusterState;
use crate::drivers::kv::gateway::{KvPool, router};
use crate::drivers::kv::remote::{KvRemote, ServerAddr};
use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::settings::Settings;
use crate::systems::kv::msg::Op;

#[derive(clap::Args)]
pub struct Args {
    /// The kv cluster (started by `dz cluster up --system kv`).
    #[arg(long, conflicts_with = "servers")]
    cluster: Option<String>,
    /// Or the servers' data addresses, in node order (needs DZ_CLUSTER_SECRET).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Prints a key's value (or "key not found").
    Get {
        key: String,
    },
    /// Prints true or false.
    Exists {
        key: String,
    },
    /// Sets a key (the value may have spaces).
    Update {
        key: String,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        value: Vec<String>,
    },
    Delete {
        key: String,
    },
    /// Prints the number of keys.
    Count,
    /// Prints every key and value.
    Print,
    /// Serves GET/PUT/DELETE /kv/{key} and GET /kv over HTTP.
    Rest(RestArgs),
    /// Many seeded simulations under faults, each checked for linearizability.
    SimCheck(super::kv_sim_check::Args),
    /// Checks a history file (history.jsonl, as kv-bench writes) for
    /// linearizability and shows its longest gaps between answers.
    ///
    /// Exits 0 if it is linearizable, 1 if not (printing the smallest
    /// failing sub-history found), 2 if the file is malformed.
    Check(super::kv_check::Args),
    /// How long a simulated cluster stops answering when its master's
    /// machine is killed and when it restarts (or a follower is cut off
    /// and healed), over many seeds.
    Failover(super::kv_failover::Args),
}

#[derive(clap::Args)]
struct RestArgs {
    #[arg(long, default_value_t = 12345)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// How long a request may try before it is answered 503.
    #[arg(long, default_value = "10s", value_parser = super::duration_arg)]
    timeout: std::time::Duration,
}

/// The servers and secret of a kv cluster, from its record or the flags;
/// installs the cluster's TLS context (from the record, or with `--servers`
/// from `DZ_TLS_CREDENTIALS`).
pub(super) fn servers(
    settings: &Settings,
    cluster: &Option<String>,
    servers: &[String],
) -> Result<(Vec<ServerAddr>, String)> {
    if let Some(name) = cluster {
        let state = ClusterState::load(&settings.tmp_dir, name)?;
        if state.system != "kv" {
            return Err(Error::input(format!(
                "cluster {name} runs {}, not kv",
                state.system
            )));
        }
        let addrs = state
            .nodes
            .iter()
            .filter(|p| p.spec.role == "server")
            .map(|p| ServerAddr {
                node: p.spec.id,
                address: state.machines[p.machine as usize].data.clone(),
            })
            .collect();
        crate::runtime::tls::install_for_cluster(&state.secret, state.tls.as_ref())?;
        return Ok((addrs, state.secret));
    }
    if servers.is_empty() {
        return Err(Error::input(
            "name the cluster (--cluster NAME) or its servers (--servers ADDR,...)",
        ));
    }
    let secret = settings
        .cluster_secret
        .clone()
        .ok_or_else(|| Error::input("--servers needs the cluster secret in DZ_CLUSTER_SECRET"))?;
    crate::runtime::tls::install_credentials(&secret, settings.tls_credentials.as_deref())?;
    let addrs = servers
        .iter()
        .enumerate()
        .map(|(i, a)| ServerAddr {
            node: NodeId(i as u32),
            address: a.clone(),
        })
        .collect();
    Ok((addrs, secret))
}

pub fn run(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let op = match a.command {
        Some(Command::SimCheck(c)) => return super::kv_sim_check::run(settings, c),
        Some(Command::Check(c)) => return super::kv_check::run(c),
        Some(Command::Failover(c)) => return super::kv_failover::run(c),
        Some(Command::Rest(r)) => return rest(settings, &a.cluster, &a.servers, r),
        Some(Command::Get { key }) => Op::Get(key),
        Some(Command::Exists { key }) => Op::Exists(key),
        Some(Command::Update { key, value }) => Op::Update(key, value.join(" ")),
        Some(Command::Delete { key }) => Op::Delete(key),
        Some(Command::Count) => Op::Count,
        Some(Command::Print) => Op::Print,
        None => return interactive(settings, &a.cluster, &a.servers),
    };
    op.validate().map_err(Error::input)?;
    let (addrs, secret) = servers(settings, &a.cluster, &a.servers)?;
    let (r, _) = block_local(async { KvRemote::new(addrs, secret).call(op).await })?;
    println!("{r}");
    Ok(())
}

fn interactive(
    settings: &Settings,
    cluster: &Option<String>,
    servers_: &[String],
) -> anyhow::Result<()> {
    let (addrs, secret) = servers(settings, cluster, servers_)?;
    let tty = std::io::stdin().is_terminal();
    if tty {
        println!("commands: get K, exists K, update K V, delete K, count, print, quit");
    }
    block_local(async {
        let mut client = KvRemote::new(addrs, secret);
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        loop {
            if tty {
                print!("kv> ");
                let _ = std::io::stdout().flush();
            }
            let Some(Ok(line)) = lines.next() else { break };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line == "quit" || line == "exit" {
                break;
            }
            match Op::parse(line) {
                Ok(op) => match client.call(op).await {
                    Ok((r, _)) => println!("{r}"),
                    Err(e) => println!("error: {e}"),
                },
                Err(e) => println!("error: {e}"),
            }
        }
        Ok(())
    })
}

fn rest(
    settings: &Settings,
    cluster: &Option<String>,
    servers_: &[String],
    r: RestArgs,
) -> anyhow::Result<()> {
    let (addrs, secret) = servers(settings, cluster, servers_)?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| Error::runtime(e.to_string()))?;
    rt.block_on(async {
        let addr = format!("{}:{}", r.bind, r.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::input(format!("cannot listen on {addr}: {e}")))?;
        let pool = Arc::new(KvPool::new(addrs, secret, 16, r.timeout));
        println!("kv REST gateway on http://{addr}/kv (Ctrl-C to stop)");
        axum::serve(listener, router(pool))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::runtime(e.to_string()))?;
        Ok::<_, Error>(())
    })?;
    Ok(())
}
