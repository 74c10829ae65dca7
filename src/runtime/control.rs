//! The agent's control plane: the `Agent` and `Session` interfaces of
//! `schema/distzero.capnp`, served with capnp-rpc. A caller gets a session
//! only after proving the cluster secret (inside mutual TLS when the
//! cluster has it on); a broken or hostile connection ends that connection,
//! never the agent.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use capnp::Error as CapnpError;
use capnp::capability::Rc as CapRc;
use capnp_rpc::{RpcSystem, rpc_twoparty_capnp, twoparty};
use futures::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::auth::{self, Role};
use super::front::{FrontEnv, FrontStarter};
use super::host::{Host, PeerAddr};
use super::tls::{self, BoxStream};
use super::transport::Transport;
use crate::net::LinkSpec;
use crate::node::{MachineId, NodeId};
use crate::systems::{NodeSpec, Roster};
use crate::wire::convert::{
    MachineReport, NodeReport, PlacedNode, read_faults, read_placement, read_spec, write_report,
};
use crate::wire::distzero_capnp::{agent, session};

/// What the control plane acts on.
pub struct AgentState {
    pub host: Rc<RefCell<Host>>,
    pub transport: Rc<Transport>,
    /// Wakes the host loop after timers may have changed.
    pub wake: Rc<Notify>,
    pub shutdown: Rc<Notify>,
    pub secret: String,
    pub log_path: PathBuf,
    /// The agent's directory (node storage, records).
    pub dir: PathBuf,
    /// Services to run next to nodes, and those running, by node.
    pub fronts: Vec<FrontStarter>,
    pub running_fronts: RefCell<BTreeMap<u32, tokio::task::JoinHandle<()>>>,
    /// This machine's data plane, dialable from here.
    pub data: String,
}

impl AgentState {
    /// Starts the node's fronts (after the node itself), replacing any
    /// left from an earlier incarnation.
    fn start_fronts(
        &self,
        spec: &NodeSpec,
        roster: &[PlacedNode],
        epoch_ms: u64,
    ) -> Result<(), CapnpError> {
        self.stop_front(spec.id);
        let env = FrontEnv {
            spec,
            roster,
            data: &self.data,
            secret: &self.secret,
            epoch_ms,
        };
        for start in &self.fronts {
            if let Some(task) = start(&env).map_err(failed)? {
                self.running_fronts.borrow_mut().insert(spec.id.0, task);
            }
        }
        Ok(())
    }

    fn stop_front(&self, id: NodeId) {
        if let Some(task) = self.running_fronts.borrow_mut().remove(&id.0) {
            task.abort();
        }
    }
}

/// How long a control client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The largest log chunk one `fetchLogs` returns.
const MAX_LOG_CHUNK: u32 = 4 << 20;

fn failed(e: impl std::fmt::Display) -> CapnpError {
    CapnpError::failed(e.to_string())
}

struct AgentImpl {
    state: Rc<AgentState>,
    nonce: RefCell<Option<Vec<u8>>>,
    peer: String,
}

impl agent::Server for AgentImpl {
    async fn challenge(
        self: CapRc<Self>,
        _: agent::ChallengeParams,
        mut results: agent::ChallengeResults,
    ) -> Result<(), CapnpError> {
        let nonce = auth::nonce();
        results.get().set_nonce(&nonce);
        *self.nonce.borrow_mut() = Some(nonce);
        Ok(())
    }

    async fn authenticate(
        self: CapRc<Self>,
        params: agent::AuthenticateParams,
        mut results: agent::AuthenticateResults,
    ) -> Result<(), CapnpError> {
        let proof = params.get()?.get_proof()?;
        let nonce = self
            .nonce
            .borrow_mut()
            .take()
            .ok_or_else(|| failed("ask for a challenge first"))?;
        if !auth::verify(&self.state.secret, Role::Client, &nonce, proof) {
            crate::agent_log!(warn, peer = %self.peer, "control client failed to prove the cluster secret");
            return Err(failed("authentication failed"));
        }
        results
            .get()
            .set_session(capnp_rpc::new_client(SessionImpl {
                state: self.state.clone(),
            }));
        Ok(())
    }
}

struct SessionImpl {
    state: Rc<AgentState>,
}

impl SessionImpl {
    fn report(&self) -> MachineReport {
        let host = self.state.host.borrow();
        let nodes = host
            .counts()
            .iter()
            .map(|(&id, kinds)| NodeReport {
                failed: host.failed().get(&id).cloned(),
                role: host.role(id).unwrap_or_default().to_string(),
                exited: host.has_exited(id),
                id: NodeId(id),
                kinds: kinds.iter().map(|(k, c)| ((*k).to_string(), *c)).collect(),
                counters: host
                    .metrics(id)
                    .map(|m| m.counters().map(|(n, v)| (n.to_string(), v)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let mut transport: BTreeMap<String, u64> =
            serde_json::to_value(self.state.transport.counters())
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
        // The host's spawning counters travel with the transport's.
        for (name, v) in host.spawn_counters().pairs() {
            transport.insert(name.to_string(), v);
        }
        MachineReport {
            machine: host.machine().to_string(),
            uptime_ms: host.uptime().as_millis() as u64,
            nodes,
            transport,
        }
    }
}

/// Answers `fetchLogs` / `fetchRecords`: up to `max` bytes of `path` from
/// `offset` (same parameters and results, different generated types).
macro_rules! serve_chunk {
    ($params:ident, $results:ident, $path:expr) => {{
        let p = $params.get()?;
        let (offset, max) = (p.get_offset(), p.get_max().min(MAX_LOG_CHUNK));
        let data = read_chunk($path, offset, max).map_err(failed)?;
        let mut r = $results.get();
        r.set_next(offset + data.len() as u64);
        r.set_data(&data);
        Ok(())
    }};
}

impl session::Server for SessionImpl {
    async fn spawn_node(
        self: CapRc<Self>,
        params: session::SpawnNodeParams,
        _: session::SpawnNodeResults,
    ) -> Result<(), CapnpError> {
        let p = params.get()?;
        let spec = read_spec(p.get_spec()?)?;
        let mut roster = Roster::default();
        let mut placement = Vec::new();
        let mut placed_nodes = Vec::new();
        for r in p.get_roster()?.iter() {
            let placed = read_placement(r)?;
            placed_nodes.push(placed.clone());
            placement.push((
                placed.spec.id,
                PeerAddr {
                    machine: placed.machine,
                    machine_id: MachineId(placed.machine_id),
                    address: placed.address,
                },
            ));
            roster.nodes.push(placed.spec);
        }
        let (machine, epoch) = (MachineId(p.get_machine()), p.get_epoch_ms());
        self.state
            .host
            .borrow_mut()
            .spawn(&spec, &Arc::new(roster), placement, machine, epoch)
            .map_err(failed)?;
        self.state.wake.notify_one();
        self.state.start_fronts(&spec, &placed_nodes, epoch)
    }

    async fn kill_node(
        self: CapRc<Self>,
        params: session::KillNodeParams,
        _: session::KillNodeResults,
    ) -> Result<(), CapnpError> {
        let id = NodeId(params.get()?.get_id());
        self.state.stop_front(id);
        self.state.host.borrow_mut().kill(id).map_err(failed)
    }

    async fn set_faults(
        self: CapRc<Self>,
        params: session::SetFaultsParams,
        _: session::SetFaultsResults,
    ) -> Result<(), CapnpError> {
        let faults = read_faults(params.get()?.get_faults()?)?;
        self.state
            .transport
            .set_faults(faults.clone())
            .map_err(failed)?;
        crate::agent_log!(info, ?faults, "message faults set");
        Ok(())
    }

    async fn isolate(
        self: CapRc<Self>,
        params: session::IsolateParams,
        _: session::IsolateResults,
    ) -> Result<(), CapnpError> {
        let on = params.get()?.get_on();
        crate::agent_log!(info, on, "isolation");
        self.state.transport.set_isolated(on);
        Ok(())
    }

    async fn stats(
        self: CapRc<Self>,
        _: session::StatsParams,
        mut results: session::StatsResults,
    ) -> Result<(), CapnpError> {
        write_report(results.get().init_stats(), &self.report());
        Ok(())
    }

    async fn query_node(
        self: CapRc<Self>,
        params: session::QueryNodeParams,
        mut results: session::QueryNodeResults,
    ) -> Result<(), CapnpError> {
        let p = params.get()?;
        let query = p.get_query()?.to_string().map_err(failed)?;
        let value = self
            .state
            .host
            .borrow()
            .query(NodeId(p.get_id()), &query)
            .map_err(failed)?;
        results.get().set_json(value.to_string().as_str());
        Ok(())
    }

    async fn fetch_logs(
        self: CapRc<Self>,
        params: session::FetchLogsParams,
        mut results: session::FetchLogsResults,
    ) -> Result<(), CapnpError> {
        serve_chunk!(params, results, &self.state.log_path)
    }

    async fn set_link(
        self: CapRc<Self>,
        params: session::SetLinkParams,
        _: session::SetLinkResults,
    ) -> Result<(), CapnpError> {
        let p = params.get()?;
        let peer = p.get_peer()?.to_string().map_err(failed)?;
        let json = p.get_spec_json()?.to_string().map_err(failed)?;
        let spec: Option<LinkSpec> = if json.is_empty() {
            None
        } else {
            Some(serde_json::from_str(&json).map_err(|e| failed(format!("bad link spec: {e}")))?)
        };
        crate::agent_log!(info, %peer, spec = %json, "link set");
        self.state.transport.set_link(&peer, spec).map_err(failed)
    }

    async fn set_link_up(
        self: CapRc<Self>,
        params: session::SetLinkUpParams,
        _: session::SetLinkUpResults,
    ) -> Result<(), CapnpError> {
        let p = params.get()?;
        let peer = p.get_peer()?.to_string().map_err(failed)?;
        let (outgoing, up) = (p.get_outgoing(), p.get_up());
        crate::agent_log!(info, %peer, outgoing, up, "link up/down");
        self.state.transport.set_link_up(&peer, outgoing, up);
        Ok(())
    }

    async fn heal(
        self: CapRc<Self>,
        _: session::HealParams,
        _: session::HealResults,
    ) -> Result<(), CapnpError> {
        crate::agent_log!(info, "healed");
        self.state.transport.heal();
        Ok(())
    }

    async fn fetch_records(
        self: CapRc<Self>,
        params: session::FetchRecordsParams,
        mut results: session::FetchRecordsResults,
    ) -> Result<(), CapnpError> {
        serve_chunk!(
            params,
            results,
            &self.state.dir.join(super::host::RECORDS_FILE)
        )
    }

    async fn shutdown(
        self: CapRc<Self>,
        _: session::ShutdownParams,
        _: session::ShutdownResults,
    ) -> Result<(), CapnpError> {
        crate::agent_log!(info, "shutdown requested");
        self.state.shutdown.notify_one();
        Ok(())
    }
}

fn read_chunk(path: &std::path::Path, offset: u64, max: u32) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    f.take(u64::from(max)).read_to_end(&mut data)?;
    Ok(data)
}

/// Serves the control plane: one RPC system per connection, each on its own
/// local task, so a failing connection (a refused TLS handshake among them)
/// ends alone.
pub async fn serve(listener: TcpListener, state: Rc<AgentState>) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::agent_log!(warn, error = %e, "control plane accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::task::spawn_local(async move {
            let peer = addr.to_string();
            let tls = tls::for_secret(&state.secret);
            let handshake = tls::accept(tls.as_deref(), stream);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    crate::agent_log!(warn, %peer, error = %e, "refused a control connection: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    crate::agent_log!(warn, %peer, "refused a control connection: TLS handshake timed out");
                    return;
                }
            };
            let agent: agent::Client = capnp_rpc::new_client(AgentImpl {
                state,
                nonce: RefCell::new(None),
                peer: peer.clone(),
            });
            let rpc = rpc_system(stream, rpc_twoparty_capnp::Side::Server, Some(agent.client));
            if let Err(e) = rpc.await {
                crate::agent_log!(info, %peer, error = %e, "control connection ended");
            }
        });
    }
}

/// Cap'n Proto RPC over a stream (TLS or plain TCP), either side.
pub fn rpc_system(
    stream: BoxStream,
    side: rpc_twoparty_capnp::Side,
    bootstrap: Option<capnp::capability::Client>,
) -> RpcSystem<rpc_twoparty_capnp::Side> {
    let (reader, writer) = stream.compat().split();
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        writer,
        side,
        control_reader_options(),
    );
    RpcSystem::new(Box::new(network), bootstrap)
}

/// Bounds what one control message may make the agent read.
pub fn control_reader_options() -> capnp::message::ReaderOptions {
    let mut o = capnp::message::ReaderOptions::new();
    o.traversal_limit_in_words(Some(8 << 20));
    o.nesting_limit(32);
    o
}
