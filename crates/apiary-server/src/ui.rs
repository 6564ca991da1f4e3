//! The web UI, embedded from `web/dist`: assets by path, and `index.html` for every other GET
//! (the UI routes itself). Hashed assets are cached for a year; the page never.

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
struct Assets;

fn asset(path: &str) -> Option<Response> {
    let file = Assets::get(path)?;
    let mime = file.metadata.mimetype().to_string();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
            file.data,
        )
            .into_response(),
    )
}

/// Serves the UI for GET requests outside the API; anything else is a JSON 404.
pub async fn serve_ui(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if method != Method::GET || path.starts_with("api/") {
        return ApiError::not_found("route").into_response();
    }
    if let Some(resp) = asset(path) {
        return resp;
    }
    asset("index.html").unwrap_or_else(|| (StatusCode::NOT_FOUND, "UI not built").into_response())
}
