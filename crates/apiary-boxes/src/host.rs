//! The Box Host API server (`apiary boxd`): the HTTP face of a provider, guarded by a host key.
//!
//! Every box has a lease that its owner renews by creating, getting or listing it (Apiary's
//! watchdog does so in every pass); [`reap_unowned`] destroys the boxes whose lease ran out,
//! so a box never outlives its Apiary for good. A box the host has not seen yet (after a
//! restart of `boxd`) gets a full lease from the moment it is first seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::{BoxError, BoxProvider, CreateBox};

#[derive(Clone)]
struct Host {
    provider: Arc<dyn BoxProvider>,
    key: Arc<String>,
    leases: Arc<Leases>,
}

/// When each box's owner last touched it.
#[derive(Default)]
pub struct Leases(Mutex<HashMap<String, Instant>>);

impl Leases {
    fn touch<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut seen = self.0.lock().expect("not poisoned");
        let now = Instant::now();
        for id in ids {
            seen.insert(id.to_string(), now);
        }
    }

    fn forget(&self, id: &str) {
        self.0.lock().expect("not poisoned").remove(id);
    }
}

/// One pass: destroys every box whose owner has not touched it within `lease`; returns the
/// ids destroyed.
pub async fn reap_once(
    provider: &dyn BoxProvider,
    leases: &Leases,
    lease: Duration,
) -> Vec<String> {
    let Ok(boxes) = provider.list(None).await else {
        return Vec::new();
    };
    let expired: Vec<String> = {
        let mut seen = leases.0.lock().expect("not poisoned");
        let now = Instant::now();
        seen.retain(|id, _| boxes.iter().any(|b| &b.id == id));
        boxes
            .iter()
            .filter(|b| now.duration_since(*seen.entry(b.id.clone()).or_insert(now)) > lease)
            .map(|b| b.id.clone())
            .collect()
    };
    let mut reaped = Vec::new();
    for id in expired {
        match provider.destroy(&id).await {
            Ok(()) => {
                tracing::warn!(box_id = %id, lease_s = lease.as_secs(), "reaped a box its owner no longer touches");
                leases.forget(&id);
                reaped.push(id);
            }
            Err(e) => tracing::error!(box_id = %id, error = %e, "could not reap a box"),
        }
    }
    reaped
}

/// Reaps unowned boxes for ever, checking every `lease / 6` (1 to 60 s).
pub async fn reap_unowned(provider: Arc<dyn BoxProvider>, leases: Arc<Leases>, lease: Duration) {
    let every = (lease / 6).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        reap_once(provider.as_ref(), &leases, lease).await;
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

fn from_box_error(e: BoxError) -> Response {
    match e {
        BoxError::Invalid(m) => error(StatusCode::BAD_REQUEST, "bad_request", m),
        other => error(StatusCode::BAD_GATEWAY, "box_error", other.to_string()),
    }
}

/// Every route needs the host key (compared in constant time).
async fn require_key(State(host): State<Host>, req: Request, next: Next) -> Response {
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = sent.len() == host.key.len()
        && sent
            .bytes()
            .zip(host.key.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong or missing host key",
        );
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct ListQuery {
    label: Option<String>,
}

async fn create_box(
    State(host): State<Host>,
    body: Result<Json<CreateBox>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be {template, env, labels}",
        );
    };
    match host.provider.create(req).await {
        Ok(info) => {
            host.leases.touch([info.id.as_str()]);
            (StatusCode::CREATED, Json(info)).into_response()
        }
        Err(e) => from_box_error(e),
    }
}

async fn get_box(State(host): State<Host>, Path(id): Path<String>) -> Response {
    match host.provider.get(&id).await {
        Ok(Some(info)) => {
            host.leases.touch([info.id.as_str()]);
            Json(info).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "box not found"),
        Err(e) => from_box_error(e),
    }
}

async fn list_boxes(State(host): State<Host>, Query(q): Query<ListQuery>) -> Response {
    let label = match q.label.as_deref().map(|l| l.split_once('=')) {
        None => None,
        Some(Some(kv)) => Some(kv),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "label must be key=value",
            )
        }
    };
    match host.provider.list(label).await {
        Ok(list) => {
            host.leases.touch(list.iter().map(|b| b.id.as_str()));
            Json(list).into_response()
        }
        Err(e) => from_box_error(e),
    }
}

async fn destroy_box(State(host): State<Host>, Path(id): Path<String>) -> Response {
    match host.provider.destroy(&id).await {
        Ok(()) => {
            host.leases.forget(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => from_box_error(e),
    }
}

async fn list_templates(State(host): State<Host>) -> Response {
    match host.provider.templates().await {
        Ok(t) => Json(t).into_response(),
        Err(e) => from_box_error(e),
    }
}

/// The Box Host API over `provider`, answering only requests that carry `key`; the requests
/// renew the boxes' `leases` (see [`reap_unowned`]).
pub fn router(provider: Arc<dyn BoxProvider>, key: String, leases: Arc<Leases>) -> Router {
    let host = Host {
        provider,
        key: Arc::new(key),
        leases,
    };
    Router::new()
        .route("/v1/boxes", get(list_boxes).post(create_box))
        .route("/v1/boxes/{id}", get(get_box).delete(destroy_box))
        .route("/v1/templates", get(list_templates))
        .layer(middleware::from_fn_with_state(host.clone(), require_key))
        .with_state(host)
}
