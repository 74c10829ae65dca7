//! One outside client's connection to a Cheops site, through its
//! machine's data plane (as `dz kv` reaches kv servers): it sends the
//! site's own messages and routes the answers to whoever waits for them.
//! The machine's HTTP API holds one per site.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::node::{Message, NodeId};
use crate::runtime::framing::{read_frame, write_frame};
use crate::runtime::transport::{EXTERNAL, Writer, dial};
use crate::systems::cheops::msg::{CheopsMsg, ExecRequest, View};
use crate::wire::{Envelope, Frame, decode_message};

/// A watch is renewed this often (the site's lease is 10 s).
const RENEW: Duration = Duration::from_secs(3);

/// One site's answer to a `show`.
#[derive(Clone, Debug, PartialEq)]
pub struct Shown {
    pub site: String,
    pub ok: bool,
    pub output: String,
}

struct Conn {
    wr: Writer,
    seq: u64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Default)]
struct Waiting {
    acks: HashMap<String, oneshot::Sender<Result<(), String>>>,
    shows: HashMap<u64, mpsc::UnboundedSender<Shown>>,
    views: HashMap<String, broadcast::Sender<Arc<View>>>,
}

pub struct SiteLink {
    address: String,
    secret: String,
    site: NodeId,
    id: u32,
    conn: tokio::sync::Mutex<Option<Conn>>,
    waiting: Mutex<Waiting>,
    next_ask: AtomicU64,
    me: Weak<SiteLink>,
}

impl SiteLink {
    /// A link to node `site` on the machine whose data plane is `address`.
    pub fn new(address: String, secret: String, site: NodeId) -> Arc<SiteLink> {
        let id = EXTERNAL | rand::rng().random_range(0..EXTERNAL);
        Arc::new_cyclic(|me| SiteLink {
            address,
            secret,
            site,
            id,
            conn: tokio::sync::Mutex::new(None),
            waiting: Mutex::new(Waiting::default()),
            next_ask: AtomicU64::new(1),
            me: me.clone(),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dispatch(&self, msg: CheopsMsg) {
        let mut w = self.waiting();
        match msg {
            CheopsMsg::ExecAck { request_id, result } => {
                if let Some(tx) = w.acks.remove(&request_id) {
                    let _ = tx.send(result);
                }
            }
            CheopsMsg::ShowReply {
                ask,
                site,
                ok,
                output,
            } => {
                if let Some(tx) = w.shows.get(&ask) {
                    let _ = tx.send(Shown { site, ok, output });
                }
            }
            CheopsMsg::Update(view) => {
                if let Some(tx) = w.views.get(&view.resource) {
                    let _ = tx.send(Arc::new(view));
                }
            }
            _ => {}
        }
    }

    /// Sends one message to the site, connecting (again) when needed.
    pub async fn send(&self, msg: &CheopsMsg) -> Result<(), String> {
        let mut payload = Vec::new();
        msg.encode(&mut payload);
        let envelope = Envelope {
            from: self.id,
            to: self.site.0,
            kind: msg.kind() as u16,
            payload,
        };
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_some_and(|c| c.reader.is_finished()) {
            *conn = None;
        }
        if conn.is_none() {
            *conn = Some(self.connect().await?);
        }
        let c = conn.as_mut().expect("connected");
        c.seq += 1;
        let frame = Frame::Message {
            seq: c.seq,
            envelope,
        };
        if let Err(e) = write_frame(&mut c.wr, &frame).await {
            *conn = None;
            return Err(format!("site connection: {e}"));
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Conn, String> {
        let me = format!("client:{}", self.id);
        let session = rand::rng().random();
        let (mut rd, wr, _) = dial(&self.address, &self.secret, &me, session)
            .await
            .map_err(|e| format!("{}: {e}", self.address))?;
        let link = self.me.clone();
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(frame) = read_frame(&mut rd, &mut buf).await {
                let Some(link) = link.upgrade() else { return };
                if let Frame::Message { envelope, .. } = frame
                    && let Ok(msg) = decode_message::<CheopsMsg>(envelope.kind, &envelope.payload)
                {
                    link.dispatch(msg);
                }
            }
        });
        Ok(Conn { wr, seq: 0, reader })
    }

    /// Hands an operation to the site; `Ok` once it is durable there,
    /// `Err(reason)` if the site refused it. Resent until answered.
    pub async fn exec(&self, req: ExecRequest, within: Duration) -> Result<(), ExecError> {
        let (tx, mut rx) = oneshot::channel();
        self.waiting().acks.insert(req.request_id.clone(), tx);
        let id = req.request_id.clone();
        let msg = CheopsMsg::Exec(req);
        let deadline = tokio::time::Instant::now() + within;
        let answer = loop {
            let sent = self.send(&msg).await;
            let wait = tokio::time::sleep(Duration::from_millis(500));
            tokio::select! {
                got = &mut rx => break got.map_err(|_| ExecError::Unavailable("link closed".into())),
                _ = wait => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let why = sent
                    .err()
                    .unwrap_or_else(|| "the site did not answer".into());
                break Err(ExecError::Unavailable(why));
            }
        };
        self.waiting().acks.remove(&id);
        answer?.map_err(ExecError::Refused)
    }

    /// The resource as the site holds it now, then after each change, for
    /// as long as the receiver lives.
    pub async fn watch(&self, resource: &str) -> Result<broadcast::Receiver<Arc<View>>, String> {
        let (rx, fresh) = {
            let mut w = self.waiting();
            match w.views.get(resource) {
                Some(tx) => (tx.subscribe(), false),
                None => {
                    let (tx, rx) = broadcast::channel(256);
                    w.views.insert(resource.to_string(), tx);
                    (rx, true)
                }
            }
        };
        let watch = CheopsMsg::Watch {
            resource: resource.to_string(),
        };
        // Asking again makes the site send the resource now, to this new
        // receiver too.
        self.send(&watch).await?;
        if fresh {
            let link = self.me.clone();
            let resource = resource.to_string();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW).await;
                    let Some(link) = link.upgrade() else { return };
                    let live = {
                        let mut w = link.waiting();
                        let live = w
                            .views
                            .get(&resource)
                            .is_some_and(|t| t.receiver_count() > 0);
                        if !live {
                            w.views.remove(&resource);
                        }
                        live
                    };
                    if !live {
                        return;
                    }
                    let _ = link.send(&watch).await;
                }
            });
        }
        Ok(rx)
    }

    /// Runs a read-only command at `sites` (here alone when empty); the
    /// answers arrive on the receiver as they come.
    pub async fn show(
        &self,
        resource: &str,
        command: &str,
        sites: Vec<String>,
    ) -> Result<ShowAnswers<'_>, String> {
        let ask = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting().shows.insert(ask, tx);
        let answers = ShowAnswers {
            link: self,
            ask,
            rx,
        };
        self.send(&CheopsMsg::Show {
            ask,
            resource: resource.to_string(),
            command: command.to_string(),
            sites,
        })
        .await?;
        Ok(answers)
    }
}

/// Answers to one `show`; dropping it stops listening.
pub struct ShowAnswers<'a> {
    link: &'a SiteLink,
    ask: u64,
    pub rx: mpsc::UnboundedReceiver<Shown>,
}

impl Drop for ShowAnswers<'_> {
    fn drop(&mut self) {
        self.link.waiting().shows.remove(&self.ask);
    }
}

#[derive(Debug)]
pub enum ExecError {
    /// The site said no, with a reason (bad input).
    Refused(String),
    /// The site could not be reached or did not answer.
    Unavailable(String),
}
