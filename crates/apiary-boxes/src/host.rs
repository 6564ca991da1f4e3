//! The Box Host API server (`apiary boxd`): the HTTP face of a provider, guarded by a host key.

use std::sync::Arc;

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
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => from_box_error(e),
    }
}

async fn get_box(State(host): State<Host>, Path(id): Path<String>) -> Response {
    match host.provider.get(&id).await {
        Ok(Some(info)) => Json(info).into_response(),
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
        Ok(list) => Json(list).into_response(),
        Err(e) => from_box_error(e),
    }
}

async fn destroy_box(State(host): State<Host>, Path(id): Path<String>) -> Response {
    match host.provider.destroy(&id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_box_error(e),
    }
}

async fn list_templates(State(host): State<Host>) -> Response {
    match host.provider.templates().await {
        Ok(t) => Json(t).into_response(),
        Err(e) => from_box_error(e),
    }
}

/// The Box Host API over `provider`, answering only requests that carry `key`.
pub fn router(provider: Arc<dyn BoxProvider>, key: String) -> Router {
    let host = Host {
        provider,
        key: Arc::new(key),
    };
    Router::new()
        .route("/v1/boxes", get(list_boxes).post(create_box))
        .route("/v1/boxes/{id}", get(get_box).delete(destroy_box))
        .route("/v1/templates", get(list_templates))
        .layer(middleware::from_fn_with_state(host.clone(), require_key))
        .with_state(host)
}
