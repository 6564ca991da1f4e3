//! One error type for every handler: a kind, a status and `{"error": {"code", "message"}}`.
//! Server errors hide their details from the client and log the cause chain.

use apiary_store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields merged into the error object (e.g. `current`, `allowed`, `field`).
    pub extra: Value,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Value::Null,
            retry_after: None,
        }
    }

    /// 429: too many requests; try again after `retry_after`.
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(retry_after.as_secs().max(1));
        e
    }
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
        e.extra = json!({ "field": field });
        e
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 403 for one field the caller may not set.
    pub fn forbidden_field(field: &str, message: impl Into<String>) -> Self {
        let mut e = ApiError::forbidden(message);
        e.extra = json!({ "field": field });
        e
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<apiary_core::callback::BodyError> for ApiError {
    fn from(e: apiary_core::callback::BodyError) -> Self {
        if e.too_large {
            let mut err = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.message);
            err.extra = json!({ "field": e.field });
            err
        } else {
            ApiError::bad_request(e.field, e.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Invalid { field, message } => {
                ApiError::bad_request(field, format!("{field}: {message}"))
            }
            StoreError::Conflict { field, message } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                err.extra = json!({ "field": field });
                err
            }
            StoreError::InvalidTransition {
                from,
                to,
                actor,
                allowed,
            } => {
                let mut err = ApiError::new(
                    StatusCode::CONFLICT,
                    "invalid_transition",
                    format!("cannot move the task from {from} to {to} as {actor}"),
                );
                err.extra = json!({ "current": from, "requested": to, "allowed": allowed });
                err
            }
            other => {
                let mut chain = other.to_string();
                let mut src = std::error::Error::source(&other);
                while let Some(s) = src {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    src = s.source();
                }
                tracing::error!(error = %chain, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Value::Object(map), Value::Object(extra)) = (&mut body, self.extra) {
            map.extend(extra);
        }
        let mut resp = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
