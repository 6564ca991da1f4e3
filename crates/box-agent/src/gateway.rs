//! The model gateway as the sandboxed agent reaches it. The agent's network namespace holds
//! only its own loopback, and not every CLI sends its model requests through a proxy, so the
//! gateway is made local: the relay inside the sandbox listens on [`GATEWAY_ADDR`] and carries
//! each connection over a Unix socket to [`serve`], which forwards every request to Apiary's
//! `/gateway/…` (http or https) and streams the answer back as it comes. Nothing is added: the
//! agent's own gateway token is what authenticates it at Apiary.

use std::path::Path;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Where the gateway answers inside the agent's namespace: `localhost` (both loopback
/// addresses), which `NO_PROXY` exempts from the proxy.
pub const GATEWAY_ADDR: &str = "localhost:3129";

/// The gateway's URL for an agent in the sandbox.
pub fn sandboxed_url() -> String {
    format!("http://{GATEWAY_ADDR}/gateway")
}

/// The forwarder's socket in the box's folder.
pub fn socket(box_dir: &Path) -> std::path::PathBuf {
    box_dir.join("gateway.sock")
}

#[derive(Clone)]
struct Upstream {
    apiary_url: String,
    http: reqwest::Client,
}

/// Headers that belong to one hop.
const HOP: [&str; 7] = [
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
];

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if !path.starts_with("/gateway/") {
        return (StatusCode::NOT_FOUND, "only /gateway/… is served here").into_response();
    }
    let mut out = up
        .http
        .request(req.method().clone(), format!("{}{path}", up.apiary_url));
    for (name, value) in req.headers() {
        if !HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    match out.body(body).send().await {
        Ok(answer) => {
            let mut resp = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if !HOP.contains(&name.as_str()) && name != "content-length" {
                    resp = resp.header(name.as_str(), value.as_bytes());
                }
            }
            resp.body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the box could not reach Apiary's gateway: {e}"),
        )
            .into_response(),
    }
}

/// Serves the forwarder on `socket` (made anew) until the task is dropped.
pub fn serve(socket: &Path, apiary_url: &str) -> Result<tokio::task::JoinHandle<()>> {
    let (listener, dir) = crate::egress::bind_unix(socket)
        .with_context(|| format!("binding the gateway forwarder at {}", socket.display()))?;
    let up = Upstream {
        apiary_url: apiary_url.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()?,
    };
    let app = axum::Router::new().fallback(forward).with_state(up);
    Ok(tokio::spawn(async move {
        let _dir = dir;
        let _ = axum::serve(listener, app).await;
    }))
}
