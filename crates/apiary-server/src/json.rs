//! A JSON body extractor whose rejections use the API's error shape: 400 for a malformed
//! body, an unknown field or a wrong type (naming it), 413 past the body limit, 415 without
//! a JSON content type.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `axum::Json`, with API-shaped errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(map_rejection(rejection)),
        }
    }
}

fn map_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "too_large", "request body is too large");
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return ApiError::new(
            status,
            "unsupported_media_type",
            "send Content-Type: application/json",
        );
    }
    let text = r.body_text();
    // serde's message names the offending field ("unknown field `agent_status`", "missing field `title`").
    let detail = text
        .split_once(": ")
        .map(|(_, d)| d.to_string())
        .unwrap_or(text);
    let field = apiary_core::callback::field_of(&detail);
    let mut e = ApiError::bad_request(&field, format!("invalid request body: {detail}"));
    e.code = "bad_request";
    e
}
