//! A client of a kv cluster on real machines (what `dz kv`, the REST
//! gateway and `dz kv-bench` use). It connects to servers' data ports as an
//! external client (over TLS when the cluster has it on), proving
//! the cluster secret; it keeps one stable id, so a
//! request retried on another connection or server is still applied once.

use std::time::{Duration, Instant};

use rand::RngExt;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::node::{Message, NodeId};
use crate::runtime::framing::{read_frame, write_frame};
use crate::runtime::transport::{EXTERNAL, Writer, dial};
use crate::systems::kv::msg::{KvMsg, Op, Outcome, Request, Response};
use crate::wire::{Envelope, Frame, decode_message};

/// A server: its node id and its machine's data address.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerAddr {
    pub node: NodeId,
    pub address: String,
}

struct Conn {
    wr: Writer,
    seq: u64,
    replies: mpsc::UnboundedReceiver<(u64, Outcome)>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct KvRemote {
    servers: Vec<ServerAddr>,
    secret: String,
    id: u32,
    conns: Vec<Option<Conn>>,
    target: usize,
    next_id: u64,
    /// Wait this long for an answer before trying the next server.
    pub retry: Duration,
    /// Give up on a request after this long.
    pub deadline: Duration,
    /// Sends the last call made, answered or not.
    pub last_tries: u32,
}

impl KvRemote {
    pub fn new(servers: Vec<ServerAddr>, secret: String) -> Self {
        let id = EXTERNAL | rand::rng().random_range(0..EXTERNAL);
        let conns = servers.iter().map(|_| None).collect();
        KvRemote {
            servers,
            secret,
            id,
            conns,
            target: 0,
            next_id: 1,
            retry: Duration::from_millis(500),
            deadline: Duration::from_secs(10),
            last_tries: 0,
        }
    }

    async fn conn(&mut self, i: usize) -> Result<&mut Conn> {
        if self.conns[i]
            .as_ref()
            .is_some_and(|c| c.reader.is_finished())
        {
            self.conns[i] = None;
        }
        if self.conns[i].is_none() {
            let address = &self.servers[i].address;
            let me = format!("client:{}", self.id);
            let session = rand::rng().random();
            let (mut rd, wr, _) = dial(address, &self.secret, &me, session)
                .await
                .map_err(|e| Error::runtime(format!("{address}: {e}")))?;
            let (tx, rx) = mpsc::unbounded_channel();
            let reader = tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Ok(frame) = read_frame(&mut rd, &mut buf).await {
                    if let Frame::Message { envelope, .. } = frame
                        && let Ok(KvMsg::Reply { id, outcome }) =
                            decode_message::<KvMsg>(envelope.kind, &envelope.payload)
                        && tx.send((id, outcome)).is_err()
                    {
                        return;
                    }
                }
            });
            self.conns[i] = Some(Conn {
                wr,
                seq: 0,
                replies: rx,
                reader,
            });
        }
        Ok(self.conns[i].as_mut().expect("just connected"))
    }

    async fn send(&mut self, i: usize, req: &Request) -> Result<()> {
        let to = self.servers[i].node.0;
        let msg = KvMsg::Request(req.clone());
        let mut payload = Vec::new();
        msg.encode(&mut payload);
        let envelope = Envelope {
            from: self.id,
            to,
            kind: msg.kind() as u16,
            payload,
        };
        let conn = self.conn(i).await?;
        conn.seq += 1;
        let frame = Frame::Message {
            seq: conn.seq,
            envelope,
        };
        if let Err(e) = write_frame(&mut conn.wr, &frame).await {
            self.conns[i] = None;
            return Err(Error::runtime(e.to_string()));
        }
        Ok(())
    }

    /// Runs one operation; returns its answer and how many sends it took.
    /// Redirects are followed, silent servers skipped, and the request is
    /// applied at most once however often it is sent.
    pub async fn call(&mut self, op: Op) -> Result<(Response, u32)> {
        self.last_tries = 0;
        op.validate().map_err(Error::input)?;
        let id = self.next_id;
        self.next_id += 1;
        let req = Request {
            client: NodeId(self.id),
            id,
            op,
            min_outstanding: id,
        };
        let started = Instant::now();
        let mut tries = 0;
        let mut last_error = String::from("no answer");
        while started.elapsed() < self.deadline {
            tries += 1;
            self.last_tries = tries;
            let i = self.target;
            if let Err(e) = self.send(i, &req).await {
                last_error = e.to_string();
                self.target = (i + 1) % self.servers.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let wait = tokio::time::sleep(self.retry);
            tokio::pin!(wait);
            loop {
                let conn = self.conns[i].as_mut().expect("sent on it");
                tokio::select! {
                    got = conn.replies.recv() => match got {
                        Some((rid, _)) if rid != id => continue, // a late answer to an old request
                        Some((_, Outcome::Done(r))) => return Ok((r, tries)),
                        Some((_, Outcome::Redirect(hint))) => {
                            self.target = hint
                                .and_then(|h| self.servers.iter().position(|s| s.node == h))
                                .unwrap_or((i + 1) % self.servers.len());
                            if hint.is_none() {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            break;
                        }
                        None => {
                            self.conns[i] = None;
                            last_error = "connection closed".into();
                            self.target = (i + 1) % self.servers.len();
                            break;
                        }
                    },
                    _ = &mut wait => {
                        last_error = "no answer".into();
                        self.target = (i + 1) % self.servers.len();
                        break;
                    }
                }
            }
        }
        Err(Error::runtime(format!(
            "no kv server answered within {:?} ({last_error}); is a majority of the cluster up?",
            self.deadline
        )))
    }
}
