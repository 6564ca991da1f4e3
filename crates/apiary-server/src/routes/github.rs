//! GitHub webhooks: `X-Hub-Signature-256` is checked against the webhook secret (write-only,
//! encrypted in the settings) before anything is read; a delivery id is accepted once; the work
//! goes through the job queue, so GitHub gets its answer at once.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::wire::ErrorBody;
use crate::AppState;

/// The settings secret that signs GitHub's deliveries.
pub const WEBHOOK_SECRET: &str = "github.webhook_secret";
/// Largest delivery taken, in bytes (GitHub caps payloads at 25 MB; what Apiary reads is small).
pub const MAX_DELIVERY_BYTES: usize = 5 * 1024 * 1024;
/// The events Apiary acts on; others are answered and dropped.
const HANDLED: [&str; 7] = [
    "pull_request",
    "pull_request_review",
    "issue_comment",
    "check_run",
    "check_suite",
    "issues",
    "ping",
];

/// What Apiary did with a delivery.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    pub delivery: String,
    /// Queued for work (`false` for an event Apiary does not act on, or a repeat).
    pub queued: bool,
    /// This delivery id was accepted before; nothing was done again.
    pub duplicate: bool,
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Takes one GitHub webhook delivery.
#[utoipa::path(post, path = "/api/v1/github/webhook", tag = "github",
    request_body(content = String, description = "GitHub's event payload (JSON), signed in X-Hub-Signature-256"),
    responses((status = 202, body = DeliveryOut), (status = 200, body = DeliveryOut, description = "a repeat or an event Apiary does not act on"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<DeliveryOut>)> {
    // The signature first: the global secret, and the secrets of the projects on the
    // payload's repository that have one of their own (the global one does not reach those).
    let signature = header(&headers, "x-hub-signature-256").unwrap_or_default();
    let global = state.store.setting_secret(WEBHOOK_SECRET).await?;
    let global_ok = global
        .as_deref()
        .is_some_and(|s| signature_ok(s.as_bytes(), &body, signature));
    let refused = |why: &str| ApiError::unauthorized(why.to_string());
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) if global_ok => {
            return Err(ApiError::bad_request(
                "body",
                format!("body: not JSON: {e}"),
            ))
        }
        Err(_) => {
            return Err(refused(
                "X-Hub-Signature-256 does not match the webhook secret",
            ))
        }
    };
    let repository = payload["repository"]["full_name"]
        .as_str()
        .unwrap_or_default();
    let mut scope = Vec::new();
    let mut any_secret = global.is_some();
    for p in apiary_orchestrator::github::projects_on(&state.orch, repository).await? {
        if p.agent.webhook_secret_set {
            any_secret = true;
            let own = state
                .store
                .project_secret(&p.id, apiary_store::ProjectSecret::WebhookSecret)
                .await?;
            if own.is_some_and(|s| signature_ok(s.as_bytes(), &body, signature)) {
                scope.push(p.id);
            }
        } else if global_ok {
            scope.push(p.id);
        }
    }
    if !any_secret {
        return Err(refused(
            "no GitHub webhook secret is set in Apiary (github_webhook_secret, in the settings or the project's); deliveries cannot be verified",
        ));
    }
    if !global_ok && scope.is_empty() {
        return Err(refused(
            "X-Hub-Signature-256 does not match the webhook secret",
        ));
    }
    let event = header(&headers, "x-github-event").unwrap_or_default();
    if event.is_empty()
        || event.len() > 64
        || !event.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        return Err(ApiError::bad_request(
            "X-GitHub-Event",
            "X-GitHub-Event must name an event",
        ));
    }
    let delivery = header(&headers, "x-github-delivery").unwrap_or_default();
    if delivery.is_empty() || delivery.len() > 100 {
        return Err(ApiError::bad_request(
            "X-GitHub-Delivery",
            "X-GitHub-Delivery must be 1 to 100 bytes",
        ));
    }
    let out = |queued, duplicate| DeliveryOut {
        delivery: delivery.to_string(),
        queued,
        duplicate,
    };
    if !HANDLED.contains(&event) {
        return Ok((StatusCode::OK, Json(out(false, false))));
    }
    if !state
        .store
        .accept_forge_delivery(delivery, event, payload, &scope)
        .await?
    {
        return Ok((StatusCode::OK, Json(out(false, true))));
    }
    state.orch.wake_handle().notify_one();
    Ok((StatusCode::ACCEPTED, Json(out(true, false))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_signature_of_these_bytes_passes() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload
        // "Hello, World!".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            sig
        ));
        assert!(!signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World",
            sig
        ));
        assert!(!signature_ok(b"another secret", b"Hello, World!", sig));
        assert!(!signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &sig[7..]
        ));
        assert!(!signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            "sha256=zz"
        ));
    }
}
