//! Health, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use utoipa::OpenApi;

use crate::AppState;

/// Liveness plus a database round trip.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.settings().await {
        Ok(_) => (axum::http::StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unavailable" })),
            )
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.orch.metrics.render(),
    )
}

/// This API, described.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::ApiDoc::openapi())
}
