//! The model gateway (DESIGN §9): `/gateway/<provider>/<path>` as a box's agent reaches it.
//! The agent presents its box's gateway token where the CLI puts an API key (`x-api-key`,
//! `Authorization: Bearer`, `x-goog-api-key` or `?key=`); the gateway checks the task's phase,
//! budgets and the stall guard, swaps in the provider key (the project's, else the global
//! one), forwards to the provider's base URL and streams the answer back chunk by chunk while
//! metering the usage the provider reports. A refusal is in the provider's own error shape, so
//! the CLI shows its message.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apiary_core::gateway::{
    budget_error, dollars, price_of, usd_to_micros, ProjectGateway, Provider, SseLines, UsageMeter,
};
use apiary_core::{AgentStatus, GatewaySettings};
use apiary_orchestrator::metrics::ModelLabels;
use apiary_store::{
    month_start_ms, Actor, GatewayTask, StoreResult, TransitionRequest, UsageRecord,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::AppState;

/// Largest request body the gateway takes (a long conversation with images is several MB).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Most of a JSON answer kept for metering (the answer itself is forwarded whole).
const MAX_METERED_BODY: usize = 16 * 1024 * 1024;
/// Longest stream event read for metering.
const MAX_SSE_LINE: usize = 4 * 1024 * 1024;

/// One HTTP client for every upstream call (connections are pooled per provider host).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            // The answer streams for as long as the model writes; only silence is cut off.
            .read_timeout(std::time::Duration::from_secs(600))
            .build()
            .expect("the gateway's HTTP client builds")
    })
}

/// A refusal in the provider's error shape.
fn refuse(provider: Option<Provider>, status: StatusCode, message: &str) -> Response {
    let body = match provider {
        Some(Provider::Anthropic) => json!({"type": "error", "error": {
            "type": if status == StatusCode::UNAUTHORIZED { "authentication_error" } else { "permission_error" },
            "message": message}}),
        Some(Provider::Gemini) => json!({"error": {"code": status.as_u16(), "message": message,
            "status": if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "PERMISSION_DENIED" }}}),
        Some(Provider::OpenAi) | None => {
            json!({"error": {"message": message, "type": "apiary_gateway",
            "code": status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_")}})
        }
    };
    (status, axum::Json(body)).into_response()
}

/// The gateway token, wherever the CLI put its "API key".
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-api-key")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .or_else(|| header("x-goog-api-key"))
        .map(str::to_string)
        .or_else(|| {
            query?
                .split('&')
                .find_map(|kv| kv.strip_prefix("key="))
                .map(str::to_string)
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Headers never forwarded upstream: the caller's credentials, hop-by-hop ones, and
/// `accept-encoding` (the answer is metered as it passes, so it must come uncompressed).
const DROPPED: [&str; 15] = [
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
];

/// Answer headers passed back to the CLI.
const KEPT: [&str; 6] = [
    "content-type",
    "retry-after",
    "request-id",
    "x-request-id",
    "anthropic-ratelimit-requests-remaining",
    "openai-processing-ms",
];

/// Phases in which a box's agent may be running (a dispatch moves the status just after the
/// box starts its run, so the statuses right before a run count too).
fn agent_may_run(phase: &str) -> bool {
    matches!(
        phase.parse::<AgentStatus>().ok(),
        Some(
            AgentStatus::Provisioning
                | AgentStatus::Speccing
                | AgentStatus::SpecApproved
                | AgentStatus::Implementing
                | AgentStatus::ChangesRequested
        )
    )
}

/// Fails the task (the box is kept for the grace period, as for any failure).
async fn fail_task(state: &AppState, task_id: &str, error: &str) {
    let req = TransitionRequest::new(task_id, AgentStatus::Failed, Actor::System).with_error(error);
    if let Err(e) = state.orch.transition(req).await {
        tracing::info!(task = task_id, error = %e, "gateway: the task could not be failed");
    }
}

/// What the gateway needs of a project besides the task's own row: the global gateway
/// settings, the project's own, and the provider keys. Read at most once a second per
/// process (and at once after a change made here), so a model request costs one read.
struct ProjectView {
    gateway: GatewaySettings,
    own: ProjectGateway,
    keys: [Option<String>; 3],
}

impl ProjectView {
    fn key(&self, p: Provider) -> Option<&str> {
        let i = Provider::ALL.iter().position(|x| *x == p).unwrap_or(0);
        self.keys[i].as_deref()
    }

    fn task_budget(&self) -> f64 {
        self.own
            .task_budget_usd
            .unwrap_or(self.gateway.task_budget_usd)
    }

    fn month_budget(&self) -> f64 {
        self.own
            .month_budget_usd
            .unwrap_or(self.gateway.project_month_budget_usd)
    }
}

/// Most model requests one task may have in flight (a CLI's subagents run a few at once);
/// past it the gateway answers 429, which the CLIs retry after a pause.
pub const MAX_IN_FLIGHT: usize = 16;

type InFlight = Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>;

/// A slot for one more request of `task`, held until its answer is done.
fn in_flight_slot(task: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
    static IN_FLIGHT: OnceLock<InFlight> = OnceLock::new();
    let mut map = IN_FLIGHT
        .get_or_init(Default::default)
        .lock()
        .expect("in-flight lock");
    if map.len() > 10_000 {
        // Forget tasks with nothing in flight.
        map.retain(|_, s| Arc::strong_count(s) > 1);
    }
    let slots = map
        .entry(task.to_string())
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)))
        .clone();
    slots.try_acquire_owned().ok()
}

/// How long a read project view is used.
const VIEW_TTL: Duration = Duration::from_secs(1);

type ViewCache = Mutex<HashMap<String, (Instant, Arc<ProjectView>)>>;

fn views() -> &'static ViewCache {
    static VIEWS: OnceLock<ViewCache> = OnceLock::new();
    VIEWS.get_or_init(Default::default)
}

/// Forgets every cached project view (settings, a project's gateway or a key changed).
pub fn forget_cached() {
    views().lock().expect("gateway cache lock").clear();
}

async fn project_view(state: &AppState, project_id: &str) -> StoreResult<Arc<ProjectView>> {
    if let Some((at, v)) = views().lock().expect("gateway cache lock").get(project_id) {
        if at.elapsed() < VIEW_TTL {
            return Ok(v.clone());
        }
    }
    let store = &state.store;
    let gateway = store.settings().await?.gateway;
    let own = store.project_gateway(project_id).await?;
    let mut keys: [Option<String>; 3] = Default::default();
    for (i, p) in Provider::ALL.into_iter().enumerate() {
        keys[i] = store.provider_key(project_id, p).await?;
    }
    let view = Arc::new(ProjectView { gateway, own, keys });
    let mut cache = views().lock().expect("gateway cache lock");
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(project_id.to_string(), (Instant::now(), view.clone()));
    Ok(view)
}

/// The budget reached with `spent` (the task's, all attempts), if any: the task's own
/// budget, then its project's month.
async fn budget_reached(
    state: &AppState,
    task: &GatewayTask,
    spent: u64,
    view: &ProjectView,
) -> StoreResult<Option<String>> {
    if let Some(e) = budget_error("budget", view.task_budget(), spent) {
        return Ok(Some(e));
    }
    let month = view.month_budget();
    if usd_to_micros(month) > 0 {
        let since = month_start_ms(state.store.now());
        let spent = state
            .store
            .project_spent_micros(&task.project_id, since)
            .await?;
        return Ok(budget_error("the project's monthly budget", month, spent));
    }
    Ok(None)
}

/// The model APIs a box's agent may call, by provider: `(method, path)` with `{model}` for a
/// model name. Anything else (files, batches, fine-tuning, …) would spend or read outside the
/// task's metering, so it is refused.
const ALLOWED: [(Provider, &str, &str); 14] = [
    (Provider::Anthropic, "POST", "v1/messages"),
    (Provider::Anthropic, "POST", "v1/messages/count_tokens"),
    (Provider::Anthropic, "GET", "v1/models"),
    (Provider::Anthropic, "GET", "v1/models/{model}"),
    (Provider::OpenAi, "POST", "v1/responses"),
    (Provider::OpenAi, "POST", "v1/chat/completions"),
    (Provider::OpenAi, "GET", "v1/models"),
    (Provider::OpenAi, "GET", "v1/models/{model}"),
    (
        Provider::Gemini,
        "POST",
        "v1beta/models/{model}:generateContent",
    ),
    (
        Provider::Gemini,
        "POST",
        "v1beta/models/{model}:streamGenerateContent",
    ),
    (
        Provider::Gemini,
        "POST",
        "v1beta/models/{model}:countTokens",
    ),
    (
        Provider::Gemini,
        "POST",
        "v1/models/{model}:generateContent",
    ),
    (
        Provider::Gemini,
        "POST",
        "v1/models/{model}:streamGenerateContent",
    ),
    (Provider::Gemini, "GET", "v1beta/models"),
];

/// A model name as it may stand in a path.
fn model_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The raw path after `/gateway/<provider>/` if the agent may call it (an encoded `:` is
/// read as one; any other escape, `..` or a backslash is refused).
fn allowed_path(provider: Provider, method: &Method, raw: &str) -> Option<String> {
    let path = raw.replace("%3A", ":").replace("%3a", ":");
    if path.contains(['%', '\\', '?', '#']) || path.split('/').any(|seg| seg == "..") {
        return None;
    }
    let fits = |pattern: &str| match pattern.split_once("{model}") {
        None => path == pattern,
        Some((before, after)) => path
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(model_name),
    };
    ALLOWED
        .iter()
        .any(|(p, m, pattern)| *p == provider && method.as_str() == *m && fits(pattern))
        .then_some(path)
}

/// `ANY /gateway/{provider}/{*path}`.
pub async fn forward(
    State(state): State<AppState>,
    Path((provider, _)): Path<(String, String)>,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(provider) = Provider::from_name(&provider) else {
        return refuse(
            None,
            StatusCode::NOT_FOUND,
            "no such provider (anthropic, openai, gemini)",
        );
    };
    let raw = uri
        .path()
        .strip_prefix(&format!("/gateway/{}/", provider.name()))
        .unwrap_or("");
    let Some(path) = allowed_path(provider, &method, raw) else {
        return refuse(
            Some(provider),
            StatusCode::FORBIDDEN,
            &format!("Apiary's gateway forwards only model requests; {method} /{raw} is not one"),
        );
    };
    let Some(token) = presented_token(&headers, query.as_deref()) else {
        return refuse(
            Some(provider),
            StatusCode::UNAUTHORIZED,
            "send the box's gateway token as the API key",
        );
    };
    let task = match state.store.gateway_token_task(&token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return refuse(
                Some(provider),
                StatusCode::UNAUTHORIZED,
                "unknown or revoked gateway token (the box was torn down?)",
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "gateway: token lookup failed");
            return refuse(
                Some(provider),
                StatusCode::SERVICE_UNAVAILABLE,
                "Apiary is unavailable",
            );
        }
    };
    let Some(slot) = in_flight_slot(&task.task_id) else {
        return refuse(
            Some(provider),
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Apiary: more than {MAX_IN_FLIGHT} model requests of this task at once"),
        );
    };
    if !agent_may_run(&task.phase) {
        return refuse(
            Some(provider),
            StatusCode::FORBIDDEN,
            &format!(
                "Apiary: the task is {}; its agent may not call models now",
                task.phase
            ),
        );
    }
    let view = match project_view(&state, &task.project_id).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "gateway: reading the project's settings failed");
            return refuse(
                Some(provider),
                StatusCode::SERVICE_UNAVAILABLE,
                "Apiary is unavailable",
            );
        }
    };
    // The body is read only for a caller that may send one.
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                Some(provider),
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "Apiary's gateway takes requests of at most {} MB",
                    MAX_REQUEST_BYTES >> 20
                ),
            )
        }
    };
    // The stall guard: the same request again and again is a loop, not work.
    let request_hash = hex::encode(Sha256::digest(&body));
    let repeats = view.gateway.stall_repeats;
    if repeats > 1
        && task.last_hash.as_deref() == Some(request_hash.as_str())
        && task.repeats + 1 >= repeats
    {
        let error = format!("agent stalled: the same model request {repeats} times in a row");
        fail_task(&state, &task.task_id, &error).await;
        return refuse(
            Some(provider),
            StatusCode::FORBIDDEN,
            &format!("Apiary: {error}"),
        );
    }
    match budget_reached(&state, &task, task.spent_micros, &view).await {
        Ok(Some(error)) => {
            fail_task(&state, &task.task_id, &error).await;
            return refuse(
                Some(provider),
                StatusCode::FORBIDDEN,
                &format!("Apiary: {error}"),
            );
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "gateway: reading spending failed");
            return refuse(
                Some(provider),
                StatusCode::SERVICE_UNAVAILABLE,
                "Apiary could not read the task's spending",
            );
        }
    }
    let key = view.key(provider).map(str::to_string);
    let mut json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let asked_model = json_body
        .as_ref()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            // Gemini names the model in the path: `v1beta/models/<model>:streamGenerateContent`.
            let m = path.split("models/").nth(1)?;
            Some(m.split(':').next()?.to_string())
        })
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect::<String>();
    // A streamed Chat Completions answer reports usage only when asked to.
    let mut body = body;
    if provider == Provider::OpenAi && path == "v1/chat/completions" {
        if let Some(v) = json_body
            .as_mut()
            .and_then(Value::as_object_mut)
            .filter(|v| v.get("stream") == Some(&json!(true)))
        {
            let options = v.entry("stream_options").or_insert_with(|| json!({}));
            if !options.is_object() {
                *options = json!({});
            }
            options["include_usage"] = json!(true);
            body = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
        }
    }
    // Only the parameters the model APIs take (Gemini's `alt=sse`); never the caller's `key`.
    let query: Vec<&str> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| matches!(*kv, "alt=sse" | "alt=json" | "beta=true"))
        .collect();
    let mut url = format!("{}/{}", view.gateway.base_url(provider), path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    let mut upstream = client().request(method, &url);
    for (name, value) in &headers {
        if !DROPPED.contains(&name.as_str()) && !name.as_str().starts_with("x-apiary") {
            upstream = upstream.header(name, value);
        }
    }
    if let Some(key) = &key {
        upstream = match provider {
            Provider::Anthropic => upstream.header("x-api-key", key),
            Provider::OpenAi => upstream.bearer_auth(key),
            Provider::Gemini => upstream.header("x-goog-api-key", key),
        };
    }
    let mut tap = Tap::new(&state, &view, task, provider, asked_model, request_hash);
    let answer = match upstream.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%url, error = %e, "gateway: the provider did not answer");
            tap.finish();
            return refuse(
                Some(provider),
                StatusCode::BAD_GATEWAY,
                &format!("Apiary could not reach {}: {e}", provider.label()),
            );
        }
    };
    let status = answer.status();
    let mut out = Response::builder().status(status.as_u16());
    let mut is_sse = false;
    for name in KEPT {
        if let Some(v) = answer.headers().get(name) {
            if name == "content-type" {
                is_sse = v.to_str().is_ok_and(|t| t.starts_with("text/event-stream"));
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name),
                HeaderValue::from_bytes(v.as_bytes()),
            ) {
                out = out.header(n, v);
            }
        }
    }
    // Streams go out as they come: no proxy in between may hold them back.
    out = out
        .header("x-accel-buffering", "no")
        .header("cache-control", "no-cache");
    tap.answered(status.as_u16(), is_sse);
    let stream = Metered {
        inner: Box::pin(answer.bytes_stream()),
        tap: Some(tap),
        _slot: slot,
    };
    out.body(Body::from_stream(stream))
        .unwrap_or_else(|_| refuse(Some(provider), StatusCode::BAD_GATEWAY, "bad answer"))
}

/// Reads usage off an answer as it passes, and records it once the answer ends (or the CLI
/// hangs up).
struct Tap {
    state: AppState,
    view: Arc<ProjectView>,
    task: GatewayTask,
    provider: Provider,
    asked_model: String,
    request_hash: String,
    status: u16,
    meter: UsageMeter,
    sse: Option<SseLines>,
    body: Vec<u8>,
}

impl Tap {
    /// A tap for a request about to be sent; [`Tap::answered`] fills in what came back.
    fn new(
        state: &AppState,
        view: &Arc<ProjectView>,
        task: GatewayTask,
        provider: Provider,
        asked_model: String,
        request_hash: String,
    ) -> Self {
        Tap {
            state: state.clone(),
            view: view.clone(),
            task,
            provider,
            asked_model,
            request_hash,
            status: StatusCode::BAD_GATEWAY.as_u16(),
            meter: UsageMeter::new(provider),
            sse: None,
            body: Vec::new(),
        }
    }

    /// The provider's status, and whether its answer is a stream of events.
    fn answered(&mut self, status: u16, is_sse: bool) {
        self.status = status;
        self.sse = is_sse.then(|| SseLines::new(MAX_SSE_LINE));
    }

    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.sse {
            Some(lines) => {
                let meter = &mut self.meter;
                lines.push(chunk, |data| {
                    if let Ok(v) = serde_json::from_str::<Value>(data) {
                        meter.feed(&v);
                    }
                });
            }
            None if self.body.len() + chunk.len() <= MAX_METERED_BODY => {
                self.body.extend_from_slice(chunk)
            }
            None => {}
        }
    }

    /// Records the request (in the background: the answer is already on its way).
    fn finish(mut self) {
        if self.sse.is_none() {
            if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
                self.meter.feed(&v);
            }
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let state = self.state;
            let usage = self.meter.usage();
            let model: String = self
                .meter
                .model
                .clone()
                .unwrap_or(self.asked_model)
                .chars()
                .take(200)
                .collect();
            let price = price_of(&self.view.gateway.prices, &model);
            let cost = usage.cost_micros(price);
            // Metrics are labelled by the price entry (a bounded set), never by what a box
            // sent as a model name.
            let label = price.map_or("unpriced", |p| p.model.as_str()).to_string();
            let record = UsageRecord {
                task: self.task.clone(),
                provider: self.provider,
                model: model.clone(),
                status: self.status,
                usage,
                cost_micros: cost,
                request_hash: self.request_hash,
            };
            let spent = match state.store.record_usage(record).await {
                Ok(spent) => spent,
                Err(e) => {
                    tracing::warn!(error = %e, task = %self.task.task_id, "gateway: usage not recorded");
                    return;
                }
            };
            let m = &state.orch.metrics;
            for (kind, n) in [
                ("input", usage.input),
                ("output", usage.output),
                ("cache_read", usage.cache_read),
                ("cache_write", usage.cache_write),
            ] {
                m.model_tokens
                    .get_or_create(&ModelLabels {
                        project: self.task.project_id.clone(),
                        model: label.clone(),
                        kind: kind.into(),
                    })
                    .inc_by(n);
            }
            m.model_cost_micros
                .get_or_create(&ModelLabels {
                    project: self.task.project_id.clone(),
                    model: label,
                    kind: "usd_micros".into(),
                })
                .inc_by(cost);
            // The request that crossed a budget was already answered; a task whose agent may
            // still be working stops now (one waiting on a person stops at its next request).
            if let Ok(Some(error)) = budget_reached(&state, &self.task, spent, &self.view).await {
                let working = state
                    .store
                    .get_task(&self.task.task_id)
                    .await
                    .is_ok_and(|t| agent_may_run(t.agent_status.as_str()));
                tracing::info!(task = %self.task.task_id, %error, spent = %dollars(cost), working, "gateway: budget reached");
                if working {
                    fail_task(&state, &self.task.task_id, &error).await;
                }
            }
        });
    }
}

/// The answer's body on its way to the CLI, through the [`Tap`].
struct Metered {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    tap: Option<Tap>,
    /// The task's in-flight slot, given back when the answer is done.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Stream for Metered {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(tap) = self.tap.as_mut() {
                    tap.feed(chunk);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(tap) = self.tap.take() {
                    tap.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // The CLI hung up mid-answer: what was metered so far still counts.
        if let Some(tap) = self.tap.take() {
            tap.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_from_wherever_the_cli_puts_its_key() {
        let mut h = HeaderMap::new();
        assert_eq!(
            presented_token(&h, Some("alt=sse&key=gw1")).as_deref(),
            Some("gw1")
        );
        h.insert("x-goog-api-key", HeaderValue::from_static("gw2"));
        assert_eq!(presented_token(&h, None).as_deref(), Some("gw2"));
        h.insert("authorization", HeaderValue::from_static("Bearer gw3"));
        assert_eq!(presented_token(&h, None).as_deref(), Some("gw3"));
        h.insert("x-api-key", HeaderValue::from_static("gw4"));
        assert_eq!(presented_token(&h, None).as_deref(), Some("gw4"));
        assert_eq!(presented_token(&HeaderMap::new(), Some("alt=sse")), None);
    }

    #[tokio::test]
    async fn refusals_are_in_each_providers_error_shape() {
        for (provider, pointer, want) in [
            (Some(Provider::Anthropic), "/error/type", "permission_error"),
            (Some(Provider::OpenAi), "/error/type", "apiary_gateway"),
            (Some(Provider::Gemini), "/error/status", "PERMISSION_DENIED"),
        ] {
            let r = refuse(provider, StatusCode::FORBIDDEN, "no");
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            let body = axum::body::to_bytes(r.into_body(), 10_000).await.unwrap();
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v.pointer(pointer), Some(&json!(want)), "{v}");
        }
        assert!(
            agent_may_run("implementing") && !agent_may_run("failed") && !agent_may_run("pr_ready")
        );
    }

    #[test]
    fn only_model_requests_pass_and_no_escape_does() {
        let post = Method::POST;
        for (p, path) in [
            (Provider::Anthropic, "v1/messages"),
            (Provider::OpenAi, "v1/chat/completions"),
            (Provider::OpenAi, "v1/responses"),
            (
                Provider::Gemini,
                "v1beta/models/gemini-2.5-pro:streamGenerateContent",
            ),
            (
                Provider::Gemini,
                "v1beta/models/gemini-2.5-pro%3AgenerateContent",
            ),
        ] {
            assert!(allowed_path(p, &post, path).is_some(), "{path}");
        }
        for (p, m, path) in [
            (Provider::OpenAi, Method::GET, "v1/files/file-1/content"),
            (Provider::OpenAi, Method::POST, "v1/batches"),
            (Provider::OpenAi, Method::POST, "v1/chat/completions%3Fx=1"),
            (Provider::OpenAi, Method::POST, "v1/../v1/files"),
            (Provider::OpenAi, Method::DELETE, "v1/responses"),
            (Provider::Anthropic, Method::POST, "v1/messages/batches"),
            (
                Provider::Gemini,
                Method::POST,
                "v1beta/models/../cachedContents:x",
            ),
            (
                Provider::Gemini,
                Method::POST,
                "v1beta/tunedModels/x:generateContent",
            ),
            (
                Provider::Gemini,
                Method::POST,
                "v1beta/models/a%2Fb:generateContent",
            ),
        ] {
            assert!(allowed_path(p, &m, path).is_none(), "{m} {path}");
        }
    }
}
