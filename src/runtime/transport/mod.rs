//! The data plane: node messages between machines over TCP.
//!
//! Each machine keeps one outgoing connection per peer machine. Messages
//! carry a sequence number; the receiver acknowledges, the sender keeps what
//! is unacknowledged and sends it again after a reconnect, and the receiver
//! drops what it has already seen. So a channel is reliable and ordered while
//! both machines live. Queues are bounded: when a peer stays unreachable its
//! queue fills and further messages to it are dropped and counted, never
//! buffered without limit.
//!
//! With TLS on (see [`super::tls`]) every connection is mutual TLS first:
//! a peer without a certificate from the cluster's CA is refused in the
//! handshake. Inside it (or on plain TCP) every connection starts with hellos
//! proving the cluster secret (both ways); an unauthenticated peer, a
//! garbage or oversized frame closes that connection with a log line and
//! nothing else.
//!
//! The network shape and faults are applied here, so they behave the same
//! on processes, containers and instances and as in the simulator: each
//! message's fate on a link that is up is [`crate::net::decide`]'s call
//! (link latency from a topology, loss, duplication, reordering, delay);
//! links can go down one way, and a machine can be isolated.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

use super::auth::{self, Role};
use super::framing::{FramingError, frame_bytes, read_frame, write_frame};
use super::tls;
use crate::net::{LinkSpec, MessageFaults, Sampler, Verdict, decide};
use crate::rng::DetRng;
use crate::wire::{Envelope, Frame, Hello};

mod acks;
mod dial;
mod fault_plan;
use acks::{read_acks, write_back};
pub use dial::{Reader, Writer, dial, dial_with};
use fault_plan::FaultPlan;

/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE: usize = 8192;
/// Node ids from here up are external clients (a `dz kv` client, the REST
/// gateway, kv-bench): they connect to an agent's data port, prove the
/// secret like any peer, and get replies on their own connection.
pub const EXTERNAL: u32 = 0x8000_0000;
/// Envelopes to this id are for the receiving agent itself (spawning
/// nodes, learning where they run), not for a node: they ride the same
/// reliable, ordered channel as node messages, free of message faults and
/// isolation, which are for nodes' traffic.
pub const AGENT: u32 = EXTERNAL - 1;
/// Replies waiting for one external client.
const CLIENT_QUEUE: usize = 1024;
/// Messages sent but not yet acknowledged, per peer.
const WINDOW: usize = 8192;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const ACK_EVERY: u64 = 64;
const ACK_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes read from a peer's socket at a time.
const READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Dropped,
}

/// Counters of the transport, for stats.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TransportCounters {
    pub sent_frames: u64,
    pub received_frames: u64,
    pub duplicates_ignored: u64,
    pub lost: u64,
    pub link_down: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub queue_full: u64,
    pub isolated_out: u64,
    pub isolated_in: u64,
    pub reconnects: u64,
    pub refused_connections: u64,
    pub bad_frames: u64,
}

pub struct Transport {
    me: RefCell<String>,
    secret: String,
    session: u64,
    inbound: mpsc::Sender<Envelope>,
    peers: RefCell<HashMap<String, mpsc::Sender<Envelope>>>,
    plan: RefCell<FaultPlan>,
    isolated: Cell<bool>,
    rng: RefCell<DetRng>,
    /// Per sending machine: its session and the last sequence delivered.
    seen: RefCell<HashMap<String, (u64, u64)>>,
    /// How many message kinds the hosted system has, once a node runs.
    kinds: Cell<Option<u16>>,
    /// External clients by node id: the connection number and its replies.
    clients: RefCell<HashMap<u32, (u64, mpsc::Sender<Envelope>)>>,
    connections: Cell<u64>,
    counters: RefCell<TransportCounters>,
}

impl Transport {
    /// `inbound` receives every message for this machine's nodes; it is
    /// bounded, so a slow machine slows its senders down (TCP flow control).
    pub fn new(me: String, secret: String, inbound: mpsc::Sender<Envelope>) -> Rc<Transport> {
        let mut rng = DetRng::from_rng(&mut rand::rng());
        Rc::new(Transport {
            me: RefCell::new(me),
            secret,
            session: rng.random(),
            inbound,
            peers: RefCell::new(HashMap::new()),
            plan: RefCell::new(FaultPlan::default()),
            isolated: Cell::new(false),
            rng: RefCell::new(rng),
            seen: RefCell::new(HashMap::new()),
            kinds: Cell::new(None),
            clients: RefCell::new(HashMap::new()),
            connections: Cell::new(0),
            counters: RefCell::new(TransportCounters::default()),
        })
    }

    pub fn counters(&self) -> TransportCounters {
        self.counters.borrow().clone()
    }

    fn bump(&self, f: impl FnOnce(&mut TransportCounters)) {
        f(&mut self.counters.borrow_mut());
    }

    /// Faults on everything this machine sends. An unknown message kind or
    /// a bad rate is refused, as in the simulator.
    pub fn set_faults(&self, faults: MessageFaults) -> Result<(), String> {
        self.plan.borrow_mut().set_machine(faults)
    }

    /// Latency and faults of this machine's link to `peer` (`None`: none).
    pub fn set_link(&self, peer: &str, spec: Option<LinkSpec>) -> Result<(), String> {
        self.plan.borrow_mut().set_link(peer, spec)
    }

    /// Takes the link to (`outgoing`) or from `peer` down or up.
    pub fn set_link_up(&self, peer: &str, outgoing: bool, up: bool) {
        let mut plan = self.plan.borrow_mut();
        let link = plan.links.entry(peer.to_string()).or_default();
        if outgoing {
            link.out_down = !up;
        } else {
            link.in_down = !up;
        }
    }

    /// Ends isolation and brings every link up.
    pub fn heal(&self) {
        self.isolated.set(false);
        for link in self.plan.borrow_mut().links.values_mut() {
            (link.out_down, link.in_down) = (false, false);
        }
    }

    /// Message kinds of the system this machine runs; frames with any other
    /// kind close their connection, and fault filters are resolved against
    /// them.
    pub fn set_kinds(&self, kinds: &'static [&'static str]) -> Result<(), String> {
        self.kinds
            .set(Some(kinds.len().min(usize::from(u16::MAX)) as u16));
        self.plan.borrow_mut().set_kinds(kinds)
    }

    /// The machine's name in hellos (learnt late by unnamed agents).
    pub fn set_name(&self, name: &str) {
        *self.me.borrow_mut() = name.to_string();
    }

    pub fn set_isolated(&self, on: bool) {
        self.isolated.set(on);
    }

    /// Sends a message to a node on `machine`; returns how many copies went
    /// out (two when duplicated), or that it was dropped.
    pub fn send(
        self: &Rc<Self>,
        machine: &str,
        address: &str,
        env: Envelope,
    ) -> Result<u32, SendError> {
        if self.isolated.get() {
            self.bump(|c| c.isolated_out += 1);
            return Err(SendError::Dropped);
        }
        let verdict = {
            let plan = self.plan.borrow();
            let link = plan.links.get(machine);
            if link.is_some_and(|l| l.out_down) {
                drop(plan);
                self.bump(|c| c.link_down += 1);
                return Err(SendError::Dropped);
            }
            let link_faults = link.and_then(|l| l.faults.as_ref());
            let latency = link.and_then(|l| l.latency.as_ref());
            if link_faults.is_none() && latency.is_none() && plan.machine.is_none() {
                None
            } else {
                let latency = latency.unwrap_or(&Sampler::Constant(0));
                let faults = [link_faults, plan.machine.as_ref(), None];
                Some(decide(
                    latency,
                    faults,
                    usize::from(env.kind),
                    &mut self.rng.borrow_mut(),
                ))
            }
        };
        match verdict {
            None => self.enqueue(machine, address, env).map(|()| 1),
            Some(Verdict::Drop(_)) => {
                self.bump(|c| c.lost += 1);
                Err(SendError::Dropped)
            }
            Some(Verdict::Deliver { delay, duplicate }) => {
                if let Some(d) = duplicate {
                    self.bump(|c| c.duplicated += 1);
                    self.deliver_after(d, machine, address, env.clone())?;
                }
                self.deliver_after(delay, machine, address, env)?;
                Ok(if duplicate.is_some() { 2 } else { 1 })
            }
        }
    }

    /// Hands a message to the peer's channel after `ns` nanoseconds; one
    /// still held when the link goes down or the machine is isolated is
    /// dropped then, as one in flight in the simulator.
    fn deliver_after(
        self: &Rc<Self>,
        ns: u64,
        machine: &str,
        address: &str,
        env: Envelope,
    ) -> Result<(), SendError> {
        if ns == 0 {
            return self.enqueue(machine, address, env);
        }
        self.bump(|c| c.delayed += 1);
        let (me, machine, address) = (self.clone(), machine.to_string(), address.to_string());
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_nanos(ns)).await;
            let down = me
                .plan
                .borrow()
                .links
                .get(&machine)
                .is_some_and(|l| l.out_down);
            if me.isolated.get() || down {
                me.bump(|c| c.link_down += 1);
                return;
            }
            let _ = me.enqueue(&machine, &address, env);
        });
        Ok(())
    }

    /// An agent-to-agent envelope (to [`AGENT`]): queued as is, never
    /// dropped by message faults or isolation.
    pub fn send_control(
        self: &Rc<Self>,
        machine: &str,
        address: &str,
        env: Envelope,
    ) -> Result<(), SendError> {
        self.enqueue(machine, address, env)
    }

    /// A message for an external client, on the connection it came in on.
    pub fn reply_external(&self, env: Envelope) -> Result<(), SendError> {
        let clients = self.clients.borrow();
        let Some((_, tx)) = clients.get(&env.to) else {
            return Err(SendError::Dropped);
        };
        tx.try_send(env).map_err(|_| {
            self.bump(|c| c.queue_full += 1);
            SendError::Dropped
        })
    }

    fn enqueue(
        self: &Rc<Self>,
        machine: &str,
        address: &str,
        env: Envelope,
    ) -> Result<(), SendError> {
        let mut peers = self.peers.borrow_mut();
        let tx = peers.entry(machine.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::task::spawn_local(self.clone().peer_task(
                machine.to_string(),
                address.to_string(),
                rx,
            ));
            tx
        });
        tx.try_send(env).map_err(|_| {
            self.bump(|c| c.queue_full += 1);
            SendError::Dropped
        })
    }

    /// Keeps one peer's outgoing channel: connect, prove the secret, send
    /// what is unacknowledged and then what is new; on any failure start
    /// over after a backoff.
    async fn peer_task(
        self: Rc<Self>,
        machine: String,
        address: String,
        mut rx: mpsc::Receiver<Envelope>,
    ) {
        let mut unacked: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut next_seq = 1u64;
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                self.bump(|c| c.reconnects += 1);
            }
            first = false;
            let (rd, wr) = match self.connect(&machine, &address).await {
                Ok(halves) => halves,
                Err(e) => {
                    crate::agent_log!(debug, peer = %machine, %address, error = %e, "cannot reach peer");
                    if rx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            let acked = Rc::new(Cell::new(0u64));
            let acks = Rc::new(Notify::new());
            let reader = tokio::task::spawn_local(read_acks(rd, acked.clone(), acks.clone()));
            let mut wr = BufWriter::new(wr);
            let mut ok = true;
            for (_, bytes) in &unacked {
                ok = wr.write_all(bytes).await.is_ok();
                if !ok {
                    break;
                }
            }
            ok = ok && wr.flush().await.is_ok();
            while ok && !reader.is_finished() {
                while unacked.front().is_some_and(|(s, _)| *s <= acked.get()) {
                    unacked.pop_front();
                }
                tokio::select! {
                    env = rx.recv(), if unacked.len() < WINDOW => {
                        let Some(env) = env else { reader.abort(); return };
                        let mut batch = vec![env];
                        while batch.len() < 256 && unacked.len() + batch.len() < WINDOW {
                            match rx.try_recv() {
                                Ok(e) => batch.push(e),
                                Err(_) => break,
                            }
                        }
                        for envelope in batch {
                            let bytes = frame_bytes(&Frame::Message { seq: next_seq, envelope });
                            ok = ok && wr.write_all(&bytes).await.is_ok();
                            unacked.push_back((next_seq, bytes));
                            next_seq += 1;
                            self.bump(|c| c.sent_frames += 1);
                        }
                        ok = ok && wr.flush().await.is_ok();
                    }
                    _ = acks.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            reader.abort();
            crate::agent_log!(debug, peer = %machine, unacked = unacked.len(), "connection to peer lost; reconnecting");
        }
    }

    async fn connect(&self, machine: &str, address: &str) -> Result<(Reader, Writer), String> {
        let me = self.me.borrow().clone();
        let tls = tls::for_secret(&self.secret);
        let (rd, wr, theirs) =
            dial_with(address, &self.secret, &me, self.session, tls.as_deref()).await?;
        if theirs != machine {
            return Err(format!("expected machine {machine}, reached {theirs}"));
        }
        Ok((rd, wr))
    }

    /// Accepts peers' connections until the listener fails.
    pub async fn serve(self: Rc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(self.clone().incoming(stream, addr.to_string()));
                }
                Err(e) => {
                    crate::agent_log!(warn, error = %e, "data plane accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn incoming(self: Rc<Self>, stream: TcpStream, addr: String) {
        let tls = tls::for_secret(&self.secret);
        let stream = match timeout(HANDSHAKE_TIMEOUT, tls::accept(tls.as_deref(), stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.refuse(&addr, &format!("TLS handshake failed: {e}")),
            Err(_) => return self.refuse(&addr, "TLS handshake timed out"),
        };
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (peer, session) =
            match timeout(HANDSHAKE_TIMEOUT, self.accept_hello(&mut rd, &mut wr)).await {
                Ok(Ok(p)) => p,
                Ok(Err(reason)) => return self.refuse(&addr, &reason),
                Err(_) => return self.refuse(&addr, "handshake timed out"),
            };
        let last = {
            let mut seen = self.seen.borrow_mut();
            let entry = seen.entry(peer.clone()).or_insert((session, 0));
            if entry.0 != session {
                *entry = (session, 0);
            }
            entry.1
        };
        let last = Rc::new(Cell::new(last));
        let wake = Rc::new(Notify::new());
        // An external client: its id is in its name; replies go back here.
        let connection = self.connections.get() + 1;
        self.connections.set(connection);
        let client = match peer.strip_prefix("client:").map(str::parse::<u32>) {
            None => None,
            Some(Ok(id)) if id >= EXTERNAL => Some(id),
            Some(_) => return self.refuse(&addr, "a client id must be at least 2^31"),
        };
        let replies = client.map(|id| {
            let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
            self.clients.borrow_mut().insert(id, (connection, tx));
            rx
        });
        // What the peer already has acknowledged is read now, not when the
        // acker first runs: by then the loop below may have taken a frame,
        // and that frame would never be acknowledged.
        let acker = tokio::task::spawn_local(write_back(
            wr,
            last.clone(),
            last.get(),
            wake.clone(),
            replies,
        ));
        // Buffered: a frame is two reads (length, body), and unbuffered each
        // is a syscall; TLS buffers by itself, a plain socket does not.
        let mut rd = tokio::io::BufReader::with_capacity(READ_BUFFER, rd);
        let mut buf = Vec::new();
        loop {
            match read_frame(&mut rd, &mut buf).await {
                Ok(Frame::Message { seq, mut envelope }) => {
                    if let Some(id) = client {
                        envelope.from = id;
                    }
                    self.bump(|c| c.received_frames += 1);
                    let control = envelope.to == AGENT;
                    if control && client.is_some() {
                        crate::agent_log!(warn, peer = %peer, "a client sent an agent message; closing");
                        self.bump(|c| c.bad_frames += 1);
                        break;
                    }
                    if !control && self.kinds.get().is_some_and(|n| envelope.kind >= n) {
                        crate::agent_log!(warn, peer = %peer, kind = envelope.kind, "unknown message kind; closing");
                        self.bump(|c| c.bad_frames += 1);
                        break;
                    }
                    if seq <= last.get() {
                        self.bump(|c| c.duplicates_ignored += 1);
                        continue;
                    }
                    last.set(seq);
                    if let Some(e) = self.seen.borrow_mut().get_mut(&peer) {
                        e.1 = seq;
                    }
                    if seq % ACK_EVERY == 0 {
                        wake.notify_one();
                    }
                    if self.isolated.get() && !control {
                        self.bump(|c| c.isolated_in += 1);
                        continue;
                    }
                    if !control
                        && self
                            .plan
                            .borrow()
                            .links
                            .get(&peer)
                            .is_some_and(|l| l.in_down)
                    {
                        self.bump(|c| c.link_down += 1);
                        continue;
                    }
                    if self.inbound.send(envelope).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {
                    crate::agent_log!(warn, peer = %peer, "unexpected frame after the handshake; closing");
                    self.bump(|c| c.bad_frames += 1);
                    break;
                }
                Err(FramingError::Closed) => break,
                Err(e) => {
                    crate::agent_log!(warn, peer = %peer, error = %e, "bad frame; closing the connection");
                    self.bump(|c| c.bad_frames += 1);
                    break;
                }
            }
        }
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(5)).await;
        acker.abort();
        if let Some(id) = client {
            let mut clients = self.clients.borrow_mut();
            if clients.get(&id).is_some_and(|(c, _)| *c == connection) {
                clients.remove(&id);
            }
        }
    }

    fn refuse(&self, addr: &str, reason: &str) {
        crate::agent_log!(warn, %addr, reason, "refused a data connection");
        self.bump(|c| c.refused_connections += 1);
    }

    async fn accept_hello(
        &self,
        rd: &mut Reader,
        wr: &mut Writer,
    ) -> Result<(String, u64), String> {
        let mut buf = Vec::new();
        let first = read_frame(rd, &mut buf).await.map_err(|e| e.to_string())?;
        let Frame::Hello(theirs) = first else {
            return Err("first frame is not a hello".into());
        };
        let nonce = auth::nonce();
        let proof = auth::prove(&self.secret, Role::Server, &theirs.nonce);
        let mine = Hello {
            machine: self.me.borrow().clone(),
            session: self.session,
            nonce: nonce.clone(),
            proof,
        };
        write_frame(wr, &Frame::Hello(mine))
            .await
            .map_err(|e| e.to_string())?;
        let Frame::Hello(answer) = read_frame(rd, &mut buf).await.map_err(|e| e.to_string())?
        else {
            return Err("second frame is not a hello".into());
        };
        if !auth::verify(&self.secret, Role::Client, &nonce, &answer.proof) {
            return Err(format!(
                "{:?} failed to prove the cluster secret",
                theirs.machine
            ));
        }
        Ok((theirs.machine, theirs.session))
    }
}
