//! `dz cluster`: clusters of real machines (processes, containers,
//! instances) running a system, with faults on demand.

use std::path::PathBuf;

use clap::Subcommand;

use super::runtime::block_local;
use crate::backends::agent_plane::total;
use crate::backends::cluster::{attach, down, new_name, record, up_shaped};
use crate::backends::state::ClusterState;
use crate::controller::{Fault, one_node_per_machine};
use crate::error::Error;
use crate::net::MessageFaults;
use crate::node::{MachineId, Mode, NodeId};
use crate::runtime::host::is_spawned;
use crate::settings::Settings;
use crate::systems::{System, SystemVisitor, with_system};
use crate::topology::Topology;

#[derive(Subcommand)]
pub enum Command {
    /// Starts machines, places one node of the system on each and returns
    /// once every agent answers.
    Up(UpArgs),
    /// Shows each machine and node with message counters, and copies logs.
    Status { name: String },
    /// Injects a fault into a running cluster.
    Fault {
        name: String,
        #[command(subcommand)]
        fault: FaultArgs,
    },
    /// Copies every machine's log to .tmp/<name>/<machine>.json.log.
    Logs { name: String },
    /// Stops everything the cluster runs and removes what it created; logs stay.
    Down { name: String },
    /// Lists the clusters recorded under .tmp/.
    List,
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where machines run: local (processes), virtual (Docker) or cloud (EC2).
    #[arg(long, value_enum, default_value = "local")]
    mode: Mode,
    #[arg(long, default_value_t = 3)]
    machines: u32,
    /// The system whose nodes run, one per machine.
    #[arg(long, default_value = "clocks")]
    system: String,
    /// Cluster name [default: generated].
    #[arg(long)]
    name: Option<String>,
    /// JSON config given to every node, e.g. '{"rate": 2}'.
    #[arg(long)]
    config: Option<String>,
    /// Or a topology file: its nodes become the machines (one node each,
    /// with their roles and configs) and the agents apply its links'
    /// latencies, as the simulator does.
    #[arg(long, conflicts_with_all = ["machines", "system", "config"])]
    topology: Option<PathBuf>,
    /// Cheops only: let sites run shell commands (the `shell` backend).
    /// Anyone who reaches a site's API can then run any command as the
    /// agent's user on its machine.
    #[arg(long)]
    allow_shell: bool,
}

#[derive(Subcommand)]
pub enum FaultArgs {
    /// The machine can neither send nor receive node messages.
    Isolate {
        machine: String,
    },
    /// Ends one machine's isolation, or every machine's.
    Heal {
        machine: Option<String>,
    },
    /// Stops the machine abruptly (SIGKILL, docker kill).
    Kill {
        machine: String,
    },
    /// Starts a killed machine again; its nodes restart from their storage.
    Restart {
        machine: String,
    },
    /// Freezes the machine (SIGSTOP, docker pause).
    Pause {
        machine: String,
    },
    Resume {
        machine: String,
    },
    /// Message faults on what the machine (or every machine) sends.
    Messages {
        machine: Option<String>,
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        #[arg(long, default_value_t = 0.0)]
        duplicate: f64,
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// The reorder window [default: 50 ms].
        #[arg(long)]
        reorder_ms: Option<f64>,
        /// Message kinds to affect, comma-separated [default: all].
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// Stops one node for good.
    KillNode {
        node: u32,
    },
    /// Takes the link between two machines down (both ways unless --oneway).
    LinkDown {
        from: String,
        to: String,
        #[arg(long)]
        oneway: bool,
    },
    /// Brings a link back up (both ways unless --oneway).
    LinkUp {
        from: String,
        to: String,
        #[arg(long)]
        oneway: bool,
    },
}

pub(super) fn binary() -> anyhow::Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::runtime(format!("cannot find the dz binary: {e}")).into())
}

pub fn run(settings: &Settings, c: Command) -> anyhow::Result<()> {
    match c {
        Command::Up(a) => cmd_up(settings, a),
        Command::Status { name } => cmd_status(settings, &name),
        Command::Fault { name, fault } => cmd_fault(settings, &name, fault),
        Command::Logs { name } => cmd_logs(settings, &name),
        Command::Down { name } => cmd_down(settings, &name),
        Command::List => {
            for s in ClusterState::all(&settings.tmp_dir) {
                println!(
                    "{}  {}  {} machines  {}",
                    s.name,
                    s.mode,
                    s.machines.len(),
                    s.system
                );
            }
            Ok(())
        }
    }
}

struct Roles;

impl SystemVisitor for Roles {
    type Out = (&'static str, &'static str);
    fn visit<S: System>(self) -> Self::Out {
        (S::NAME, S::ROLES[0])
    }
}

fn cmd_up(settings: &Settings, a: UpArgs) -> anyhow::Result<()> {
    let (system, machines, network, mut placement) = match &a.topology {
        Some(path) => {
            let t = Topology::load(path)?;
            (t.system.clone(), t.machines(), t.network(), t.placement()?)
        }
        None => {
            let (system, role) = with_system(&a.system, Roles)?;
            if a.machines == 0 {
                return Err(Error::input("--machines must be at least 1").into());
            }
            let config = match &a.config {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| Error::input(format!("--config is not JSON: {e}")))?,
                None => serde_json::Value::Null,
            };
            let (machines, placement) = one_node_per_machine(a.machines, system, role, &config);
            (system.to_string(), machines, Vec::new(), placement)
        }
    };
    let name = a.name.unwrap_or_else(new_name);
    if a.allow_shell && system != "cheops" {
        return Err(Error::input("--allow-shell is for --system cheops").into());
    }
    let dir = crate::backends::state::cluster_dir(&settings.tmp_dir, &name);
    crate::drivers::cheops::cluster::prepare(&mut placement, a.mode, a.allow_shell, &dir)?;
    let binary = binary()?;
    let state = block_local(async {
        let (_ctl, state) = up_shaped(
            settings, &name, a.mode, &machines, &network, placement, &binary,
        )
        .await?;
        Ok::<_, Error>(state)
    })?;
    println!(
        "cluster {} ({}): {} machines running {}",
        state.name,
        state.mode,
        state.machines.len(),
        system
    );
    for m in &state.machines {
        let pid = m.pid.map(|p| format!("  pid {p}")).unwrap_or_default();
        let container = m
            .container
            .as_deref()
            .map(|c| format!("  container {c}"))
            .unwrap_or_default();
        println!(
            "  {}  control {}  data {}{pid}{container}",
            m.name, m.control, m.data
        );
    }
    for (site, url) in crate::drivers::cheops::cluster::api_urls(&state) {
        println!("  cheops site {site}: API {url}");
    }
    println!(
        "next: dz cluster status {0}   dz cluster fault {0} isolate m1   dz cluster down {0}",
        state.name
    );
    Ok(())
}

fn cmd_status(settings: &Settings, name: &str) -> anyhow::Result<()> {
    block_local(async {
        let (mut ctl, state, unreachable) = attach(settings, name, &binary()?).await?;
        println!("cluster {} ({}, {})", state.name, state.mode, state.system);
        let reports = ctl.backend_mut().agents().reports().await;
        for (i, (machine, report)) in reports.into_iter().enumerate() {
            let rec = &state.machines[i];
            match report {
                Ok(r) => {
                    println!(
                        "  {machine}  {:?}  {}  up {:.1} s",
                        rec.state,
                        rec.control,
                        r.uptime_ms as f64 / 1e3
                    );
                    for n in &r.nodes {
                        let t = total(&n.kinds);
                        let status = if n.exited {
                            "exited".to_string()
                        } else {
                            ctl.backend_mut()
                                .agents()
                                .query_on(MachineId(i as u32), n.id, "status")
                                .await
                                .map(|v| v.to_string())
                                .unwrap_or_else(|e| e.to_string())
                        };
                        let spawned = if is_spawned(n.id.0) { "  spawned" } else { "" };
                        println!(
                            "    {}  {}{spawned}  sent {}  delivered {}  dropped {}  {}",
                            n.id, n.role, t.sent, t.delivered, t.dropped, status
                        );
                        let counters: Vec<String> = n
                            .counters
                            .iter()
                            .filter(|(_, v)| **v > 0)
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect();
                        if !counters.is_empty() {
                            println!("      counters: {}", counters.join(", "));
                        }
                        if let Some(why) = &n.failed {
                            println!("      stopped (fail-stop): {why}");
                        }
                    }
                    let interesting: Vec<String> = r
                        .transport
                        .iter()
                        .filter(|(_, v)| **v > 0)
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    if !interesting.is_empty() {
                        println!("    transport: {}", interesting.join(", "));
                    }
                }
                Err(_) if unreachable.contains(&machine) => {
                    println!(
                        "  {machine}  {:?}  {}  not answering",
                        rec.state, rec.control
                    )
                }
                Err(e) => println!("  {machine}  {:?}  {}  error: {e}", rec.state, rec.control),
            }
        }
        for (site, url) in crate::drivers::cheops::cluster::api_urls(&state) {
            println!("  cheops site {site}: API {url}");
        }
        let dir = crate::backends::state::cluster_dir(&settings.tmp_dir, name);
        ctl.backend_mut().agents().fetch_logs(&dir).await?;
        println!("logs: {}/<machine>.json.log", dir.display());
        Ok::<_, anyhow::Error>(())
    })
}

fn machine_id(state: &ClusterState, name: &str) -> anyhow::Result<MachineId> {
    state
        .machines
        .iter()
        .position(|m| m.name == name)
        .map(|i| MachineId(i as u32))
        .ok_or_else(|| {
            let known: Vec<&str> = state.machines.iter().map(|m| m.name.as_str()).collect();
            Error::input(format!(
                "cluster {} has no machine {name:?} (machines: {})",
                state.name,
                known.join(", ")
            ))
            .into()
        })
}

fn cmd_fault(settings: &Settings, name: &str, f: FaultArgs) -> anyhow::Result<()> {
    block_local(async {
        let (mut ctl, mut state, _) = attach(settings, name, &binary()?).await?;
        let m = |n: &str| machine_id(&state, n);
        let fault = match &f {
            FaultArgs::Isolate { machine } => Fault::Isolate {
                machine: m(machine)?,
            },
            FaultArgs::Heal { machine } => Fault::Heal {
                machine: machine.as_deref().map(m).transpose()?,
            },
            FaultArgs::Kill { machine } => Fault::Crash {
                machine: m(machine)?,
            },
            FaultArgs::Restart { machine } => Fault::Restart {
                machine: m(machine)?,
            },
            FaultArgs::Pause { machine } => Fault::Pause {
                machine: m(machine)?,
            },
            FaultArgs::Resume { machine } => Fault::Resume {
                machine: m(machine)?,
            },
            FaultArgs::Messages {
                machine,
                loss,
                duplicate,
                reorder,
                delay_ms,
                reorder_ms,
                kinds,
            } => {
                let faults = MessageFaults {
                    loss: *loss,
                    duplicate: *duplicate,
                    reorder: *reorder,
                    reorder_ms: *reorder_ms,
                    delay_ms: *delay_ms,
                    kinds: kinds.clone(),
                };
                faults.validate().map_err(Error::input)?;
                Fault::Messages {
                    machine: machine.as_deref().map(m).transpose()?,
                    faults,
                }
            }
            FaultArgs::KillNode { node } => Fault::KillNode {
                node: NodeId(*node),
            },
            FaultArgs::LinkDown { from, to, .. } => Fault::LinkDown {
                from: m(from)?,
                to: m(to)?,
            },
            FaultArgs::LinkUp { from, to, .. } => Fault::LinkUp {
                from: m(from)?,
                to: m(to)?,
            },
        };
        let mut faults = vec![fault.clone()];
        match (&f, &fault) {
            (FaultArgs::LinkDown { oneway: false, .. }, Fault::LinkDown { from, to }) => faults
                .push(Fault::LinkDown {
                    from: *to,
                    to: *from,
                }),
            (FaultArgs::LinkUp { oneway: false, .. }, Fault::LinkUp { from, to }) => {
                faults.push(Fault::LinkUp {
                    from: *to,
                    to: *from,
                })
            }
            _ => {}
        }
        let mut result = Ok(());
        for fault in &faults {
            result = ctl.inject(fault).await;
            if result.is_err() {
                break;
            }
        }
        record(&mut ctl, &mut state, &settings.tmp_dir)?;
        result?;
        for fault in &faults {
            println!("{}: {}", state.name, describe(fault, &state));
        }
        Ok(())
    })
}

fn describe(f: &Fault, state: &ClusterState) -> String {
    let n = |m: &MachineId| state.machines[m.0 as usize].name.clone();
    match f {
        Fault::Isolate { machine } => format!("{} isolated", n(machine)),
        Fault::Heal { machine: Some(m) } => format!("{} healed", n(m)),
        Fault::Heal { machine: None } => "every machine healed".into(),
        Fault::Crash { machine } => format!("{} killed", n(machine)),
        Fault::Restart { machine } => format!("{} restarted; its nodes are back", n(machine)),
        Fault::Pause { machine } => format!("{} paused", n(machine)),
        Fault::Resume { machine } => format!("{} resumed", n(machine)),
        Fault::Messages { machine, faults } => format!(
            "message faults on {}: {faults:?}",
            machine.as_ref().map_or("every machine".to_string(), n)
        ),
        Fault::KillNode { node } => format!("node {node} killed"),
        Fault::LinkDown { from, to } => format!("link {} → {} down", n(from), n(to)),
        Fault::LinkUp { from, to } => format!("link {} → {} up", n(from), n(to)),
        Fault::Storage { .. } => "disk faults set".into(),
        Fault::DropMessage {
            from,
            to,
            kind,
            nth,
        } => format!("message {nth} of kind {kind} from node {from} to node {to} to be dropped"),
    }
}

fn cmd_logs(settings: &Settings, name: &str) -> anyhow::Result<()> {
    block_local(async {
        let (mut ctl, _, unreachable) = attach(settings, name, &binary()?).await?;
        let dir = crate::backends::state::cluster_dir(&settings.tmp_dir, name);
        ctl.backend_mut().agents().fetch_logs(&dir).await?;
        println!("logs: {}/<machine>.json.log", dir.display());
        if !unreachable.is_empty() {
            println!(
                "not answering (their logs were not copied): {}",
                unreachable.join(", ")
            );
        }
        Ok(())
    })
}

fn cmd_down(settings: &Settings, name: &str) -> anyhow::Result<()> {
    block_local(async {
        let (mut ctl, state, _) = attach(settings, name, &binary()?).await?;
        let dir = down(&mut ctl, &state, &settings.tmp_dir).await?;
        println!("cluster {name} is down; logs in {}", dir.display());
        Ok(())
    })
}
