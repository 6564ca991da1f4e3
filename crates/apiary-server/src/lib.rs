//! Apiary's HTTP surfaces (DESIGN §3): the user API with its auth, health, metrics and the
//! OpenAPI document.
//!
//! Invariants: this crate has no SQL (it calls the store) and never spawns processes; every
//! handler that acts for someone takes the [`auth::Caller`] extractor, and every change of
//! `agent_status` goes through the store's transition function and is published after commit.

pub mod auth;
pub mod chat;
pub mod error;
pub mod fanout;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod repos;
pub mod routes;
pub mod ui;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use apiary_orchestrator::metrics::HttpLabels;
use apiary_orchestrator::Orchestrator;
use apiary_store::Store;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post, put};
use axum::Router;

use crate::error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Mark cookies `Secure` (served over https; also inferred per request from `X-Forwarded-Proto`).
    pub secure_cookies: bool,
    /// Session lifetime.
    pub session_ttl_ms: i64,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Take the client address for sign-in limits from `X-Forwarded-For` (behind a reverse
    /// proxy that sets it); otherwise the socket's peer.
    pub trust_forwarded_for: bool,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Apiary's data folder: its `repos/` is an allowed root for local repositories, and no
    /// project may point at the folder itself or anything else inside it.
    pub data_dir: Option<std::path::PathBuf>,
    /// Where viewers reach site previews (`--site-url`, or the site listener's address): an
    /// origin other than Apiary's, so a preview's scripts never act as the viewer. Unset:
    /// previews are off.
    pub site_origin: std::sync::OnceLock<String>,
    /// How often an open WebSocket to a site preview checks that its viewer may still read
    /// the project (signed in, token not revoked, still a member); it is cut when not.
    pub site_recheck: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            secure_cookies: false,
            session_ttl_ms: 7 * 24 * 3600 * 1000,
            body_limit: 1024 * 1024,
            trust_forwarded_for: false,
            metrics_token: None,
            data_dir: None,
            site_origin: Default::default(),
            site_recheck: std::time::Duration::from_secs(60),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub orch: Orchestrator,
    pub config: Arc<ServerConfig>,
    pub limits: Arc<limits::Limits>,
    /// Live events, framed once for every SSE stream.
    pub hub: fanout::Hub,
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let mut resp = next.run(req).await;
    // No page may frame Apiary (a site preview on a sibling origin least of all): clicks on
    // Approve or Merge are the viewer's own.
    let h = resp.headers_mut();
    h.entry(axum::http::header::X_FRAME_OPTIONS)
        .or_insert(axum::http::HeaderValue::from_static("DENY"));
    state
        .orch
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    use routes::{agent, auth, callback, events, ops, projects, prompts, settings, tasks, usage};
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::get_me))
        .route("/users", get(auth::list_users))
        .route("/me/chat-links", get(routes::chat_links::list_chat_links))
        .route(
            "/me/chat-links/code",
            post(routes::chat_links::create_chat_link_code),
        )
        .route(
            "/me/chat-links/{via}",
            delete(routes::chat_links::delete_chat_link),
        )
        .route("/telegram/webhook", post(routes::telegram::webhook))
        .route("/slack/interactions", post(routes::slack::interactions))
        .route("/slack/commands", post(routes::slack::commands))
        .route(
            "/projects",
            get(projects::list_projects).post(projects::create_project),
        )
        .route(
            "/projects/{id}",
            get(projects::get_project).patch(projects::update_project),
        )
        .route(
            "/projects/{id}/members/{user_id}",
            put(projects::put_project_member).delete(projects::delete_project_member),
        )
        .route(
            "/projects/{id}/tasks",
            get(tasks::list_tasks).post(tasks::create_task),
        )
        .route(
            "/tasks/{id}",
            get(tasks::get_task).patch(tasks::update_task),
        )
        .route(
            "/tasks/{id}/comments",
            get(tasks::list_comments).post(tasks::create_comment),
        )
        .route("/tasks/{id}/events", get(tasks::list_task_events))
        .route("/tasks/{id}/agent/handoff", post(agent::handoff))
        .route("/tasks/{id}/agent/approve-spec", post(agent::approve_spec))
        .route("/tasks/{id}/agent/revise-spec", post(agent::revise_spec))
        .route(
            "/tasks/{id}/agent/request-changes",
            post(agent::request_changes),
        )
        .route("/tasks/{id}/agent/mark-merged", post(agent::mark_merged))
        .route("/tasks/{id}/agent/retry", post(agent::retry))
        .route("/tasks/{id}/agent/cancel", post(agent::cancel))
        .route("/tasks/{id}/agent/teardown", post(agent::teardown))
        .route("/tasks/{id}/agent/message", post(agent::send_message))
        .route(
            "/tasks/{id}/agent/spec-revisions",
            get(agent::list_spec_revisions),
        )
        .route("/tasks/{id}/agent/diff", get(agent::get_diff))
        .route("/tasks/{id}/agent/code/tree", get(agent::code_tree))
        .route("/tasks/{id}/agent/code/file", get(agent::code_file))
        .route("/tasks/{id}/agent/preview", get(agent::get_preview))
        .route("/tasks/{id}/agent/prompts", get(prompts::list_prompts))
        .route("/tasks/{id}/agent/usage", get(usage::get_task_usage))
        .route("/projects/{id}/usage", get(usage::get_project_usage))
        .route(
            "/projects/{id}/gateway",
            get(usage::get_project_gateway).patch(usage::update_project_gateway),
        )
        .route(
            "/notifications/errors",
            get(prompts::list_notification_errors),
        )
        .route("/agent/tasks/{id}", get(callback::get_box_task))
        .route("/agent/tasks/{id}/status", post(callback::post_status))
        .route("/agent/tasks/{id}/spec", post(callback::post_spec))
        .route("/agent/tasks/{id}/pr", post(callback::post_pr))
        .route("/agent/tasks/{id}/error", post(callback::post_error))
        .route("/agent/tasks/{id}/logs", post(callback::post_logs))
        .route("/events", get(events::stream_events))
        .route("/fleet", get(routes::fleet::get_fleet))
        .route(
            "/settings",
            get(settings::get_settings).patch(settings::update_settings),
        )
        .route("/tasks/{id}/agent/logs", get(agent::list_logs))
        .route("/openapi.json", get(ops::openapi))
        .route(
            "/github/webhook",
            post(routes::github::webhook)
                .layer(DefaultBodyLimit::max(routes::github::MAX_DELIVERY_BYTES)),
        )
        .fallback(not_found);
    // The model gateway takes bodies larger than the API's limit (long conversations).
    let gateway = Router::new()
        .route("/gateway/{provider}/{*path}", any(routes::gateway::forward))
        .layer(DefaultBodyLimit::max(routes::gateway::MAX_REQUEST_BYTES));
    Router::new()
        .nest("/api/v1", api)
        .merge(gateway)
        .route("/tasks/{id}/site", get(routes::site::enter))
        .route("/tasks/{id}/site/", get(routes::site::enter))
        .route("/tasks/{id}/site/{*rest}", get(routes::site::enter))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(ui::serve_ui)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The site origin's routes: only task sites (no API, no UI, no cookie of Apiary's).
fn site_router(state: AppState) -> Router {
    Router::new()
        .route("/tasks/{id}/site", any(routes::site::serve))
        .route("/tasks/{id}/site/", any(routes::site::serve))
        .route("/tasks/{id}/site/{*rest}", any(routes::site::serve))
        .fallback(not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            routes::site::MAX_BODY,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A bound, not yet serving, HTTP server; `addr()` tells the port when bound to port 0.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    /// The site origin's listener (site previews), when bound.
    site: Option<tokio::net::TcpListener>,
    app: Router,
    state: AppState,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(HttpServer {
            listener,
            site: None,
            app: router(state.clone()),
            state,
        })
    }

    /// Also listens on `addr` for site previews; their origin is `public` when given (the
    /// address viewers reach, behind a proxy), else this listener's own address.
    pub async fn bind_site(
        &mut self,
        addr: SocketAddr,
        public: Option<&str>,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let origin = match public.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                // An origin, no path: the site origin serves `/tasks/{id}/site/…` at its root.
                let bare = p.trim_end_matches('/');
                let after_scheme = bare.split_once("://").map(|(_, rest)| rest);
                if !(bare.starts_with("http://") || bare.starts_with("https://"))
                    || after_scheme.is_some_and(|rest| rest.contains('/'))
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("--site-url must be an origin (http(s)://host[:port]) without a path, not {p:?}"),
                    ));
                }
                bare.to_string()
            }
            None => format!("http://{bound}"),
        };
        let _ = self.state.config.site_origin.set(origin);
        self.site = Some(listener);
        Ok(bound)
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // One routing table for every connection: serving the `Router` itself would rebuild
        // it per connection (~75 KB each, which a thousand live streams feel).
        // Small writes (a streamed model answer's events, live events) go out at once rather
        // than waiting on the peer's delayed acknowledgement.
        use axum::serve::ListenerExt;
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // Telegram's updates by long polling, while the settings ask for it.
        let poller = tokio::spawn(routes::telegram::poll(self.state.clone()));
        let (stop_site, site_stopped) = tokio::sync::watch::channel(false);
        let site = self.site.map(|l| {
            let app = site_router(self.state.clone());
            tokio::spawn(async move {
                let mut stopped = site_stopped;
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            })
        });
        let served = axum::serve(
            listener,
            self.app
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        poller.abort();
        stop_site.send_replace(true);
        if let Some(site) = site {
            let _ = site.await;
        }
        served
    }
}
