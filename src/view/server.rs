//! The HTTP side of `dz view`: the page's static files and a JSON API that
//! answers one moment or one window of a run at a time, never the whole
//! trace. A bad request gets 400 or 404 with its reason as JSON.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::fork::{self, ForkRequest};
use super::logs::{Filter, level_number};
use super::run::Run;

pub struct App {
    pub runs: RwLock<Vec<Arc<Run>>>,
    /// Where branches are simulated.
    pub work: std::path::PathBuf,
}

pub type Shared = Arc<App>;

/// Most messages in flight a frame lists.
const FLIGHT_LIMIT: usize = 400;
/// Most events or log lines one window holds.
const WINDOW_LIMIT: usize = 5000;

pub fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route(
            "/draw.js",
            get(|| async { asset("text/javascript", DRAW_JS) }),
        )
        .route(
            "/pictures.js",
            get(|| async { asset("text/javascript", PICTURES_JS) }),
        )
        .route("/style.css", get(|| async { asset("text/css", STYLE) }))
        .route("/api/runs", get(runs))
        .route("/api/meta", get(meta))
        .route("/api/frame", get(frame))
        .route("/api/events", get(events))
        .route("/api/next", get(next))
        .route("/api/node", get(node))
        .route("/api/message", get(message))
        .route("/api/logs", get(logs))
        .route("/api/fork", post(fork_run))
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "no such page or API (see /api/meta)") })
        .with_state(app)
}

const INDEX: &str = include_str!("static/index.html");
const APP_JS: &str = include_str!("static/app.js");
const DRAW_JS: &str = include_str!("static/draw.js");
const PICTURES_JS: &str = include_str!("static/pictures.js");
const STYLE: &str = include_str!("static/style.css");

fn asset(mime: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime)], body).into_response()
}

fn bad(code: StatusCode, why: impl Into<String>) -> Response {
    (code, axum::Json(json!({"error": why.into()}))).into_response()
}

/// A refusal on its way to becoming a response (small, unlike `Response`).
struct Refusal(StatusCode, String);

fn refuse(code: StatusCode, why: impl Into<String>) -> Refusal {
    Refusal(code, why.into())
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        bad(r.0, r.1)
    }
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// The query, or a 400 naming what is wrong with it.
fn query<T>(q: Q<T>) -> Result<T, Refusal> {
    q.map(|Query(t)| t)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.body_text()))
}

fn pick(app: &App, run: Option<usize>) -> Result<(usize, Arc<Run>), Refusal> {
    let id = run.unwrap_or(0);
    let runs = app
        .runs
        .read()
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"))?;
    runs.get(id).cloned().map(|r| (id, r)).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            format!("no run {id} (there are {})", runs.len()),
        )
    })
}

fn finite(name: &str, v: Option<f64>, default: f64) -> Result<f64, Refusal> {
    match v {
        None => Ok(default),
        Some(x) if x.is_finite() => Ok(x),
        Some(x) => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("{name}={x}: not a finite number"),
        )),
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return Response::from(r),
        }
    };
}

#[derive(Deserialize)]
struct RunQ {
    run: Option<usize>,
}

async fn runs(State(app): State<Shared>) -> Response {
    let runs = app.runs.read().map(|r| r.clone()).unwrap_or_default();
    ok(Value::Array(
        runs.iter()
            .enumerate()
            .map(|(i, r)| {
                let m = r.meta(i);
                json!({"id": i, "label": m["label"], "parent": m["parent"], "fault": m["fault"],
                       "verdict": m["verdict"], "trace_hash": m["trace_hash"]})
            })
            .collect(),
    ))
}

async fn meta(State(app): State<Shared>, q: Q<RunQ>) -> Response {
    let q = tri!(query(q));
    let (id, run) = tri!(pick(&app, q.run));
    ok(run.meta(id))
}

#[derive(Deserialize)]
struct AtQ {
    run: Option<usize>,
    t: Option<f64>,
}

/// Everything the page draws at one moment.
async fn frame(State(app): State<Shared>, q: Q<AtQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    let t = tri!(finite("t", q.t, 0.0));
    let node_machine = run.node_machine();
    let states: Vec<Value> = match run.states.read().ok().as_deref() {
        Some(Some(s)) => (0..s.nodes()).map(|n| s.at(n, t)).collect(),
        _ => Vec::new(),
    };
    let Some(tr) = &run.trace else {
        return ok(json!({"t": t, "index": 0, "inflight": [], "states": states,
            "machines": {"up": vec![true; run.machines.len()], "isolated": [], "cut": [], "stopped": []}}));
    };
    let inflight: Vec<Value> = tr
        .in_flight(t, FLIGHT_LIMIT)
        .into_iter()
        .map(|i| tr.describe(i as usize))
        .collect();
    ok(json!({
        "t": t,
        "index": tr.after(t),
        "inflight": inflight,
        "machines": tr.machines_at(t, run.machines.len(), &node_machine),
        "states": states,
    }))
}

#[derive(Deserialize)]
struct WindowQ {
    run: Option<usize>,
    from: Option<f64>,
    to: Option<f64>,
    /// Or by index: events `start..start+limit`.
    start: Option<usize>,
    limit: Option<usize>,
}

async fn events(State(app): State<Shared>, q: Q<WindowQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    let Some(tr) = &run.trace else {
        return bad(StatusCode::NOT_FOUND, "this run has no trace");
    };
    let limit = q.limit.unwrap_or(500).min(WINDOW_LIMIT);
    let from = tri!(finite("from", q.from, 0.0));
    let to = tri!(finite("to", q.to, f64::MAX));
    let start = q.start.unwrap_or_else(|| tr.at(from)).min(tr.events.len());
    let stop = (start + limit).min(tr.after(to)).max(start);
    let evs: Vec<Value> = (start..stop).map(|i| tr.describe(i)).collect();
    ok(json!({"start": start, "total": tr.events.len(), "events": evs}))
}

/// The time of the first event after `t` (to step through the run).
async fn next(State(app): State<Shared>, q: Q<AtQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    let t = tri!(finite("t", q.t, 0.0));
    let Some(tr) = &run.trace else {
        return bad(StatusCode::NOT_FOUND, "this run has no trace");
    };
    let i = tr.after(t);
    ok(
        json!({"t": tr.events.get(i).map(|e| e.t), "event": tr.events.get(i).map(|_| tr.describe(i))}),
    )
}

#[derive(Deserialize)]
struct NodeQ {
    run: Option<usize>,
    node: usize,
    t: Option<f64>,
}

/// A node's panel: its state, counters, recent events and log lines.
async fn node(State(app): State<Shared>, q: Q<NodeQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    let t = tri!(finite("t", q.t, 0.0));
    let nm = run.node_machine();
    let Some(&m) = nm.get(q.node) else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("no node {} (there are {})", q.node, nm.len()),
        );
    };
    let machine = run
        .machines
        .get(m as usize)
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let state = match run.states.read().ok().as_deref() {
        Some(Some(s)) => s.at(q.node, t),
        _ => Value::Null,
    };
    let (counters, recent) = match &run.trace {
        Some(tr) => {
            let end = tr.after(t);
            let floor = end.saturating_sub(200_000);
            let recent: Vec<Value> = (floor..end)
                .rev()
                .filter(|&i| tr.involves(i, q.node as u32))
                .take(15)
                .map(|i| tr.describe(i))
                .collect();
            (tr.counters(q.node as u32, t), recent)
        }
        None => (Value::Null, Vec::new()),
    };
    let f = Filter {
        machine: Some(&machine),
        node: None,
        min_level: 0,
        text: None,
        from: f64::MIN,
        to: t,
    };
    let (total, _) = run.logs.query(&f, 0, 0);
    let (_, lines) = run.logs.query(&f, total.saturating_sub(15), 15);
    let up = match &run.trace {
        Some(tr) => tr.machines_at(t, run.machines.len(), &nm)["up"][m as usize]
            .as_bool()
            .unwrap_or(true),
        None => true,
    };
    ok(
        json!({"node": q.node, "machine": machine, "up": up, "t": t, "state": state,
              "counters": counters, "recent": recent, "logs": lines}),
    )
}

#[derive(Deserialize)]
struct MsgQ {
    run: Option<usize>,
    i: usize,
}

async fn message(State(app): State<Shared>, q: Q<MsgQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    match &run.trace {
        Some(tr) if q.i < tr.events.len() => ok(run.message(q.i).unwrap_or(Value::Null)),
        Some(tr) => bad(
            StatusCode::NOT_FOUND,
            format!("no event {} (there are {})", q.i, tr.events.len()),
        ),
        None => bad(StatusCode::NOT_FOUND, "this run has no trace"),
    }
}

#[derive(Deserialize)]
struct LogsQ {
    run: Option<usize>,
    machine: Option<String>,
    node: Option<String>,
    level: Option<String>,
    q: Option<String>,
    from: Option<f64>,
    to: Option<f64>,
    offset: Option<usize>,
    limit: Option<usize>,
    /// The last `limit` matching lines instead of the first.
    tail: Option<u8>,
}

async fn logs(State(app): State<Shared>, q: Q<LogsQ>) -> Response {
    let q = tri!(query(q));
    let (_, run) = tri!(pick(&app, q.run));
    let min_level = match q.level.as_deref().filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => match level_number(l) {
            Some(n) => n,
            None => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("level={l}: expected trace, debug, info, warn or error"),
                );
            }
        },
    };
    fn nonempty(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|s| !s.is_empty())
    }
    let f = Filter {
        machine: nonempty(&q.machine),
        node: nonempty(&q.node),
        min_level,
        text: nonempty(&q.q),
        from: tri!(finite("from", q.from, f64::MIN)),
        to: tri!(finite("to", q.to, f64::MAX)),
    };
    let limit = q.limit.unwrap_or(200).min(WINDOW_LIMIT);
    let offset = if q.tail.unwrap_or(0) > 0 {
        run.logs.query(&f, 0, 0).0.saturating_sub(limit)
    } else {
        q.offset.unwrap_or(0)
    };
    let (total, lines) = run.logs.query(&f, offset, limit);
    ok(json!({"total": total, "lines": lines}))
}

async fn fork_run(
    State(app): State<Shared>,
    body: Result<axum::Json<ForkRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let req = match body {
        Ok(axum::Json(r)) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (base_id, base) = tri!(pick(&app, Some(req.run)));
    let work = app.work.clone();
    // Each branch its own directory, even when two are asked at once.
    static BRANCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = BRANCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let made = tokio::task::spawn_blocking(move || {
        fork::branch(&base, base_id, &req, &work.join(format!("branch{n}")))
    })
    .await;
    match made {
        Ok(Ok(run)) => {
            let mut runs = match app.runs.write() {
                Ok(r) => r,
                Err(_) => return bad(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned"),
            };
            runs.push(Arc::new(run));
            let id = runs.len() - 1;
            ok(runs[id].meta(id))
        }
        Ok(Err(e)) if e.is_input() => bad(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e)) => bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the branch's run failed: {e}"),
        ),
    }
}
