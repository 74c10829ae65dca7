//! The kv service's REST gateway (`dz kv rest`): `GET/PUT/DELETE /kv/{key}`
//! and `GET /kv`, JSON bodies; 404 for a missing key, 400 for bad input, 503
//! when no quorum answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Mutex;

use crate::drivers::kv::remote::{KvRemote, ServerAddr};
use crate::error::{Error, Result};
use crate::systems::kv::msg::{Op, Response};

/// Several clients, so concurrent HTTP requests need not queue behind one.
pub struct KvPool {
    clients: Vec<Mutex<KvRemote>>,
    next: AtomicUsize,
}

impl KvPool {
    /// `deadline`: how long a request may try before the answer is 503.
    pub fn new(
        servers: Vec<ServerAddr>,
        secret: String,
        size: usize,
        deadline: std::time::Duration,
    ) -> Self {
        let clients = (0..size.max(1))
            .map(|_| {
                let mut c = KvRemote::new(servers.clone(), secret.clone());
                c.deadline = deadline;
                Mutex::new(c)
            })
            .collect();
        KvPool {
            clients,
            next: AtomicUsize::new(0),
        }
    }

    pub async fn call(&self, op: Op) -> Result<Response> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut client = self.clients[i].lock().await;
        client.call(op).await.map(|(r, _)| r)
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    (status, Json(body)).into_response()
}

fn failed(e: Error) -> HttpResponse {
    let status = if e.is_input() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply(status, json!({ "error": e.to_string() }))
}

async fn run(pool: &KvPool, op: Op) -> std::result::Result<Response, HttpResponse> {
    if let Err(why) = op.validate() {
        return Err(reply(StatusCode::BAD_REQUEST, json!({ "error": why })));
    }
    match pool.call(op).await {
        Ok(Response::Refused(why)) => Err(reply(StatusCode::BAD_REQUEST, json!({ "error": why }))),
        Ok(r) => Ok(r),
        Err(e) => Err(failed(e)),
    }
}

async fn get_key(State(pool): State<Arc<KvPool>>, Path(key): Path<String>) -> HttpResponse {
    match run(&pool, Op::Get(key.clone())).await {
        Ok(Response::Value(v)) => reply(StatusCode::OK, json!({ "key": key, "value": v })),
        Ok(Response::NotFound) => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": "key not found", "key": key }),
        ),
        Ok(other) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": format!("unexpected answer {other:?}") }),
        ),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
}

async fn put_key(
    State(pool): State<Arc<KvPool>>,
    Path(key): Path<String>,
    body: std::result::Result<Json<PutBody>, axum::extract::rejection::JsonRejection>,
) -> HttpResponse {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("expected {{\"value\": \"...\"}}: {e}") }),
            );
        }
    };
    match run(&pool, Op::Update(key.clone(), body.value)).await {
        Ok(_) => reply(StatusCode::OK, json!({ "key": key, "ok": true })),
        Err(r) => r,
    }
}

async fn delete_key(State(pool): State<Arc<KvPool>>, Path(key): Path<String>) -> HttpResponse {
    match run(&pool, Op::Delete(key.clone())).await {
        Ok(Response::NotFound) => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": "key not found", "key": key }),
        ),
        Ok(_) => reply(StatusCode::OK, json!({ "key": key, "deleted": true })),
        Err(r) => r,
    }
}

async fn list(State(pool): State<Arc<KvPool>>) -> HttpResponse {
    match run(&pool, Op::Print).await {
        Ok(Response::Pairs(p)) => {
            let map: serde_json::Map<String, serde_json::Value> =
                p.into_iter().map(|(k, v)| (k, v.into())).collect();
            reply(StatusCode::OK, json!({ "count": map.len(), "pairs": map }))
        }
        Ok(other) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": format!("unexpected answer {other:?}") }),
        ),
        Err(r) => r,
    }
}

pub fn router(pool: Arc<KvPool>) -> Router {
    Router::new()
        .route("/kv", get(list))
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .with_state(pool)
}
