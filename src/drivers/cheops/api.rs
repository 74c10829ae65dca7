//! The original Cheops HTTP API, served by each site's machine (a front,
//! see `runtime/front.rs`): `POST /exec/{id}`, `POST /show/{id}`,
//! `POST /show_local/{id}`, and `GET /resource/{id}`, `GET /changes/{id}`.
//! It reaches its site through the data plane ([`SiteLink`]); replies of
//! other sites arrive through the site as they replicate, as in the
//! original where they arrive through CouchDB.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::link::{ExecError, SiteLink};
use crate::error::{Error, Result};
use crate::runtime::front::FrontEnv;
use crate::systems::cheops::SiteConfig;
use crate::systems::cheops::doc::{Reply, Status};
use crate::systems::cheops::matrix::ResourceConfig;
use crate::systems::cheops::msg::{ExecRequest, View};

/// How long `/show` waits for every site, as the original.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the site has to take an operation.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Api {
    me: String,
    /// Every site of the cluster.
    sites: BTreeSet<String>,
    link: Arc<SiteLink>,
    epoch_ms: u64,
    reply_timeout: Duration,
}

/// Starts the API of a site whose config names an address (the agent
/// calls this for every node it places).
pub fn start(env: &FrontEnv<'_>) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if env.spec.system != "cheops" || env.spec.role != "site" {
        return Ok(None);
    }
    let cfg: SiteConfig = serde_json::from_value(env.spec.config.clone()).unwrap_or_default();
    if cfg.api.is_empty() {
        return Ok(None);
    }
    let listener = std::net::TcpListener::bind(&cfg.api)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| {
            Error::input(format!(
                "cannot listen on {} for the cheops API of site {}: {e}",
                cfg.api, env.spec.name
            ))
        })?;
    let api = Api {
        me: env.spec.name.clone(),
        sites: env
            .roster
            .iter()
            .filter(|p| p.spec.system == "cheops" && p.spec.role == "site")
            .map(|p| p.spec.name.clone())
            .collect(),
        link: SiteLink::new(env.data.to_string(), env.secret.to_string(), env.spec.id),
        epoch_ms: env.epoch_ms,
        reply_timeout: Duration::from_secs_f64(cfg.reply_timeout_ms / 1e3),
    };
    crate::agent_log!(info, site = %api.me, address = %cfg.api, "cheops API listening");
    let app = router(Arc::new(api));
    Ok(Some(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })))
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/exec/{id}", post(exec))
        .route("/show/{id}", post(show))
        .route("/show_local/{id}", post(show_local))
        .route("/resource/{id}", get(resource))
        .route("/changes/{id}", get(changes))
        .with_state(api)
}

/// A one-line plain-text error, as the original's `http.Error`.
fn error(status: StatusCode, why: impl std::fmt::Display) -> Response {
    let line = why.to_string().replace('\n', " ");
    (status, format!("{line}\n")).into_response()
}

fn bad(why: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, why)
}

fn unavailable(why: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// The fields of a request's multipart form.
#[derive(Default)]
struct Form {
    command: Vec<String>,
    sites: Vec<String>,
    kind: Option<String>,
    config: Option<String>,
    backend: Option<String>,
    files: BTreeMap<String, Vec<u8>>,
}

async fn read_form(mut multipart: Multipart) -> std::result::Result<Form, String> {
    let mut form = Form::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(form),
            Err(e) => return Err(format!("bad multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| format!("bad multipart body: {e}"))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "command" => form.command.push(text()),
            // Several `sites` fields concatenate, as in the original.
            "sites" => form.sites.extend(
                text()
                    .split('&')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            "type" => form.kind = Some(text()),
            // A value or a file (`-F config=@matrix.json`); the last wins.
            "config" => form.config = Some(text()),
            "backend" => form.backend = Some(text()),
            _ if is_file && !name.is_empty() => {
                form.files.insert(name, bytes.to_vec());
            }
            _ => return Err(format!("unknown field {name:?}")),
        }
    }
}

type MultipartBody = std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>;

async fn form_of(multipart: MultipartBody) -> std::result::Result<Form, String> {
    match multipart {
        Ok(m) => read_form(m).await,
        Err(e) => Err(format!("expected a multipart/form-data body: {e}")),
    }
}

impl Form {
    fn command(&self) -> std::result::Result<String, String> {
        match &self.command[..] {
            [c] if !c.is_empty() => Ok(c.clone()),
            [] | [_] => Err("missing command".into()),
            _ => Err("more than one command".into()),
        }
    }
}

impl Api {
    fn check_id(&self, id: &str) -> std::result::Result<(), String> {
        if id.trim().is_empty() || id.contains('/') {
            return Err(format!("bad resource id {id:?}"));
        }
        Ok(())
    }

    fn check_sites(&self, sites: &[String]) -> std::result::Result<(), String> {
        if sites.is_empty() {
            return Err("empty site list".into());
        }
        if let Some(s) = sites.iter().find(|s| !self.sites.contains(*s)) {
            let known: Vec<&str> = self.sites.iter().map(String::as_str).collect();
            return Err(format!("unknown site {s:?} (sites: {})", known.join(", ")));
        }
        Ok(())
    }

    fn exec_request(&self, id: &str, form: Form) -> std::result::Result<ExecRequest, String> {
        self.check_id(id)?;
        let command = form.command()?;
        let kind = form
            .kind
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or("missing type")?;
        self.check_sites(&form.sites)?;
        if !form.sites.contains(&self.me) {
            return Err("Site is not in locations".into());
        }
        let config = form.config.clone().unwrap_or_default();
        ResourceConfig::parse(&config)?;
        let mut bytes = [0u8; 20];
        rand::rng().fill(&mut bytes);
        Ok(ExecRequest {
            resource: id.to_string(),
            sites: form.sites,
            kind,
            command,
            config,
            files: form.files.into_iter().collect(),
            request_id: hex::encode(bytes),
            backend: form.backend.unwrap_or_default(),
        })
    }

    fn time(&self, ns: u64) -> String {
        let t = UNIX_EPOCH + Duration::from_millis(self.epoch_ms) + Duration::from_nanos(ns);
        humantime::format_rfc3339_millis(t).to_string()
    }

    /// A reply in the original's JSON (`ReplyDocument`, `Input` and
    /// `Output` at the top level as Go encodes its embedded struct).
    fn reply_json(&self, r: &Reply, sites: &[String]) -> Value {
        json!({
            "Locations": sites,
            "Site": r.site,
            "RequestId": r.request_id,
            "ResourceId": r.resource,
            "Status": match r.status { Status::Ok => "OK", Status::Ko => "KO" },
            "Input": r.input,
            "Output": r.output,
            "ExecutionTime": self.time(r.time_ns),
            "Runs": r.runs,
            "Type": "REPLY",
        })
    }

    fn timeout_json(&self, req: &ExecRequest, site: &str) -> Value {
        json!({
            "Locations": req.sites,
            "Site": site,
            "RequestId": req.request_id,
            "ResourceId": req.resource,
            "Status": "TIMEOUT",
            "Input": req.command,
            "Output": "",
            "ExecutionTime": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "Type": "REPLY",
        })
    }

    /// The resource document and its replies, by site.
    fn view_json(&self, view: &View) -> Value {
        let Some(doc) = &view.doc else {
            return json!({ "Id": view.resource, "Exists": false });
        };
        let ops: Vec<Value> = doc
            .ops
            .iter()
            .map(|o| {
                json!({
                    "Type": o.kind,
                    "RequestId": o.request_id,
                    "Command": { "Command": o.command, "Files": o.files.keys().collect::<Vec<_>>() },
                    "Time": self.time(o.time_ns),
                })
            })
            .collect();
        let mut replies: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for r in &view.replies {
            replies
                .entry(r.site.as_str())
                .or_default()
                .push(self.reply_json(r, &doc.sites));
        }
        json!({
            "Id": doc.id,
            "Site": self.me,
            "Locations": doc.sites,
            "Backend": doc.backend.as_str(),
            "Config": doc.config,
            "Operations": ops,
            "Replies": replies,
            "Type": "RESOURCE",
        })
    }

    /// The resource now, or 404 when this site does not hold it.
    async fn current(
        &self,
        id: &str,
    ) -> std::result::Result<(Arc<View>, broadcast::Receiver<Arc<View>>), Response> {
        self.check_id(id).map_err(bad)?;
        let mut rx = self.link.watch(id).await.map_err(unavailable)?;
        let view = tokio::time::timeout(ACK_TIMEOUT, recv(&mut rx))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| unavailable("the site did not answer"))?;
        if view.doc.is_none() {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("no resource {id:?} at site {}", self.me),
            ));
        }
        Ok((view, rx))
    }
}

/// The next view, skipping over a lag (a later view follows).
async fn recv(rx: &mut broadcast::Receiver<Arc<View>>) -> Option<Arc<View>> {
    loop {
        match rx.recv().await {
            Ok(v) => return Some(v),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A streamed `application/json` body, one JSON document per line.
fn ndjson(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn exec(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    multipart: MultipartBody,
) -> Response {
    let form = form_of(multipart).await;
    let req = match form.and_then(|f| api.exec_request(&id, f)) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    // Watch before handing the operation over, so no reply is missed.
    let mut updates = match api.link.watch(&id).await {
        Ok(rx) => rx,
        Err(why) => return unavailable(why),
    };
    match api.link.exec(req.clone(), ACK_TIMEOUT).await {
        Ok(()) => {}
        Err(ExecError::Refused(why)) => return bad(why),
        Err(ExecError::Unavailable(why)) => return unavailable(why),
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut answered = BTreeSet::new();
        // The original's window: how long to wait for the next reply.
        while answered.len() < req.sites.len() {
            let Ok(Some(view)) = tokio::time::timeout(api.reply_timeout, recv(&mut updates)).await
            else {
                break;
            };
            for r in &view.replies {
                if r.request_id == req.request_id
                    && req.sites.contains(&r.site)
                    && answered.insert(r.site.clone())
                    && tx.send(line(&api.reply_json(r, &req.sites))).await.is_err()
                {
                    return;
                }
            }
        }
        for s in req.sites.iter().filter(|s| !answered.contains(*s)) {
            if tx.send(line(&api.timeout_json(&req, s))).await.is_err() {
                return;
            }
        }
    });
    ndjson(rx)
}

/// Waits for one answer per site, TIMEOUT for the rest.
async fn collect_shows(
    api: &Api,
    id: &str,
    command: &str,
    sites: Vec<String>,
    expect: &[String],
) -> std::result::Result<BTreeMap<String, Value>, Response> {
    let mut answers = api
        .link
        .show(id, command, sites)
        .await
        .map_err(unavailable)?;
    let mut got = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + SHOW_TIMEOUT;
    while got.len() < expect.len() {
        match tokio::time::timeout_at(deadline, answers.rx.recv()).await {
            Ok(Some(a)) => {
                let status = if a.ok { "OK" } else { "KO" };
                got.insert(a.site, json!({ "Status": status, "Output": a.output }));
            }
            _ => break,
        }
    }
    for s in expect {
        got.entry(s.clone())
            .or_insert_with(|| json!({ "Status": "TIMEOUT", "Output": "" }));
    }
    Ok(got)
}

async fn show(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    multipart: MultipartBody,
) -> Response {
    let form = form_of(multipart).await;
    let checked = form.and_then(|f| {
        api.check_id(&id)?;
        let command = f.command()?;
        api.check_sites(&f.sites)?;
        Ok((command, f.sites))
    });
    let (command, mut sites) = match checked {
        Ok(c) => c,
        Err(why) => return bad(why),
    };
    sites.dedup();
    match collect_shows(&api, &id, &command, sites.clone(), &sites).await {
        Ok(map) => axum::Json(map).into_response(),
        Err(r) => r,
    }
}

async fn show_local(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    multipart: MultipartBody,
) -> Response {
    let form = form_of(multipart).await;
    let command = match form.and_then(|f| {
        api.check_id(&id)?;
        f.command()
    }) {
        Ok(c) => c,
        Err(why) => return bad(why),
    };
    let me = vec![api.me.clone()];
    match collect_shows(&api, &id, &command, Vec::new(), &me).await {
        Ok(mut map) => axum::Json(map.remove(&api.me).unwrap_or(Value::Null)).into_response(),
        Err(r) => r,
    }
}

async fn resource(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    match api.current(&id).await {
        Ok((view, _)) => axum::Json(api.view_json(&view)).into_response(),
        Err(r) => r,
    }
}

/// A live feed: the resource now, then again after every change, one JSON
/// document per line, until the client goes away.
async fn changes(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    let (first, mut updates) = match api.current(&id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut last = api.view_json(&first);
        if tx.send(line(&last)).await.is_err() {
            return;
        }
        loop {
            // A client that went away ends the feed (and so the watch).
            let view = tokio::select! {
                _ = tx.closed() => return,
                v = recv(&mut updates) => match v {
                    Some(v) => v,
                    None => return,
                },
            };
            let now = api.view_json(&view);
            if now != last {
                if tx.send(line(&now)).await.is_err() {
                    return;
                }
                last = now;
            }
        }
    });
    ndjson(rx)
}
