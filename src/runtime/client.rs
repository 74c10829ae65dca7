//! The controller's side of an agent's control plane. Must run inside a
//! tokio `LocalSet` (capnp-rpc is not `Send`).

use std::time::{Duration, Instant};

use capnp_rpc::rpc_twoparty_capnp;
use tokio::net::TcpStream;

use super::auth::{self, Role};
use super::control::rpc_system;
use super::tls::{self, TlsContext};
use crate::error::{Error, Result};
use crate::net::{LinkSpec, MessageFaults};
use crate::node::NodeId;
use crate::systems::NodeSpec;
use crate::wire::convert::{
    MachineReport, PlacedNode, read_report, write_faults, write_placement, write_spec,
};
use crate::wire::distzero_capnp::{agent, session};

pub struct AgentClient {
    address: String,
    session: session::Client,
    rpc: tokio::task::JoinHandle<()>,
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        self.rpc.abort();
    }
}

fn remote(address: &str, e: capnp::Error) -> Error {
    let text = e.to_string();
    let text = text.strip_prefix("remote exception: ").unwrap_or(&text);
    Error::runtime(format!("agent at {address}: {text}"))
}

/// Fetches chunks from offset 0 until an empty one.
async fn whole<F, Fut>(mut fetch: F) -> Result<Vec<u8>>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<u8>, u64)>>,
{
    let (mut data, mut offset) = (Vec::new(), 0);
    loop {
        let (chunk, next) = fetch(offset).await?;
        if chunk.is_empty() {
            return Ok(data);
        }
        data.extend_from_slice(&chunk);
        offset = next;
    }
}

/// One chunk of an agent's file through `fetchLogs` or `fetchRecords`
/// (same parameters and results, different generated types).
macro_rules! fetch_chunk {
    ($client:ident, $request:ident, $offset:expr, $max:expr) => {{
        let mut req = $client.session.$request();
        req.get().set_offset($offset);
        req.get().set_max($max);
        let reply = req
            .send()
            .promise
            .await
            .map_err(|e| remote(&$client.address, e))?;
        let r = reply.get().map_err(|e| remote(&$client.address, e))?;
        let data = r.get_data().map_err(|e| remote(&$client.address, e))?;
        Ok((data.to_vec(), r.get_next()))
    }};
}

impl AgentClient {
    /// Connects (over TLS when the cluster with `secret` has it on) and
    /// authenticates once.
    pub async fn connect(address: &str, secret: &str) -> Result<AgentClient> {
        Self::connect_with(address, secret, tls::for_secret(secret).as_deref()).await
    }

    /// [`AgentClient::connect`] with an explicit TLS context (`None`: plain TCP).
    pub async fn connect_with(
        address: &str,
        secret: &str,
        tls: Option<&TlsContext>,
    ) -> Result<AgentClient> {
        let stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(address))
            .await
            .map_err(|_| Error::runtime(format!("agent at {address}: connect timed out")))?
            .map_err(|e| Error::runtime(format!("agent at {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let stream = tokio::time::timeout(Duration::from_secs(5), tls::connect(tls, stream))
            .await
            .map_err(|_| Error::runtime(format!("agent at {address}: TLS handshake timed out")))?
            .map_err(|e| {
                Error::runtime(format!("agent at {address}: TLS handshake failed: {e}"))
            })?;
        let mut rpc = rpc_system(stream, rpc_twoparty_capnp::Side::Client, None);
        let agent: agent::Client = rpc.bootstrap(rpc_twoparty_capnp::Side::Server);
        let rpc = tokio::task::spawn_local(async move {
            let _ = rpc.await;
        });
        let call = async {
            let nonce = agent.challenge_request().send().promise.await?;
            let nonce = nonce.get()?.get_nonce()?.to_vec();
            let mut req = agent.authenticate_request();
            req.get()
                .set_proof(&auth::prove(secret, Role::Client, &nonce));
            let reply = req.send().promise.await?;
            reply.get()?.get_session()
        };
        let session = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .map_err(|_| Error::runtime(format!("agent at {address}: no answer")))?
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("authentication failed") {
                    remote(address, e)
                } else {
                    Error::runtime(format!(
                        "{address} does not answer as a DistZero agent ({text})"
                    ))
                }
            })?;
        Ok(AgentClient {
            address: address.to_string(),
            session,
            rpc,
        })
    }

    /// Connects, retrying until the agent answers or `within` passes.
    pub async fn connect_retrying(
        address: &str,
        secret: &str,
        within: Duration,
    ) -> Result<AgentClient> {
        let deadline = Instant::now() + within;
        let mut pause = Duration::from_millis(20);
        loop {
            match Self::connect(address, secret).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() + pause >= deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub async fn spawn_node(
        &self,
        spec: &NodeSpec,
        roster: &[PlacedNode],
        machine: u32,
        epoch_ms: u64,
    ) -> Result<()> {
        let mut req = self.session.spawn_node_request();
        let mut p = req.get();
        write_spec(p.reborrow().init_spec(), spec);
        p.set_machine(machine);
        p.set_epoch_ms(epoch_ms);
        let mut list = p.init_roster(roster.len() as u32);
        for (i, placed) in roster.iter().enumerate() {
            write_placement(list.reborrow().get(i as u32), placed);
        }
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn kill_node(&self, id: NodeId) -> Result<()> {
        let mut req = self.session.kill_node_request();
        req.get().set_id(id.0);
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn set_faults(&self, faults: &MessageFaults) -> Result<()> {
        let mut req = self.session.set_faults_request();
        write_faults(req.get().init_faults(), faults);
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn isolate(&self, on: bool) -> Result<()> {
        let mut req = self.session.isolate_request();
        req.get().set_on(on);
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn stats(&self) -> Result<MachineReport> {
        let reply = self
            .session
            .stats_request()
            .send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        reply
            .get()
            .and_then(|r| read_report(r.get_stats()?))
            .map_err(|e| remote(&self.address, e))
    }

    pub async fn query(&self, id: NodeId, query: &str) -> Result<serde_json::Value> {
        let mut req = self.session.query_node_request();
        req.get().set_id(id.0);
        req.get().set_query(query);
        let reply = req
            .send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        let json = reply
            .get()
            .and_then(|r| {
                r.get_json()?
                    .to_string()
                    .map_err(|e| capnp::Error::failed(e.to_string()))
            })
            .map_err(|e| remote(&self.address, e))?;
        serde_json::from_str(&json)
            .map_err(|e| Error::runtime(format!("agent at {}: bad answer: {e}", self.address)))
    }

    /// Bytes of the agent's log from `offset`; returns them and the next
    /// offset.
    pub async fn fetch_logs(&self, offset: u64, max: u32) -> Result<(Vec<u8>, u64)> {
        fetch_chunk!(self, fetch_logs_request, offset, max)
    }

    /// Bytes of the nodes' records (see `host::RECORDS_FILE`) from
    /// `offset`; returns them and the next offset.
    pub async fn fetch_records(&self, offset: u64, max: u32) -> Result<(Vec<u8>, u64)> {
        fetch_chunk!(self, fetch_records_request, offset, max)
    }

    /// The agent's whole log.
    pub async fn logs(&self) -> Result<Vec<u8>> {
        whole(|offset| self.fetch_logs(offset, 1 << 20)).await
    }

    /// The nodes' records, whole (see `host::read_records`).
    pub async fn records(&self) -> Result<Vec<u8>> {
        whole(|offset| self.fetch_records(offset, 1 << 20)).await
    }

    /// This machine's link to `peer`: latency and faults (`None`: none).
    pub async fn set_link(&self, peer: &str, spec: Option<&LinkSpec>) -> Result<()> {
        let json = match spec {
            Some(s) => serde_json::to_string(s).map_err(|e| Error::runtime(e.to_string()))?,
            None => String::new(),
        };
        let mut req = self.session.set_link_request();
        req.get().set_peer(peer);
        req.get().set_spec_json(json.as_str());
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn set_link_up(&self, peer: &str, outgoing: bool, up: bool) -> Result<()> {
        let mut req = self.session.set_link_up_request();
        req.get().set_peer(peer);
        req.get().set_outgoing(outgoing);
        req.get().set_up(up);
        req.send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn heal(&self) -> Result<()> {
        self.session
            .heal_request()
            .send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }

    pub async fn shutdown(&self) -> Result<()> {
        self.session
            .shutdown_request()
            .send()
            .promise
            .await
            .map_err(|e| remote(&self.address, e))?;
        Ok(())
    }
}
