//! The control plane (Apiary → box, DESIGN §3): `/health`, `/implement/start`,
//! `/changes/apply`, `/spec/revise`, each behind the control token; work starts in the
//! background and the request answers 202 at once (409 while another run goes on).
//! `/message` hands the agent a reviewer's follow-up at its next turn; `/code/tree` and
//! `/code/file` show the workspace read-only (the code view); `/site/…` forwards to the site
//! preview and `/preview` says what it is doing.

use std::sync::Arc;

use apiary_core::prompts::CommentCtx;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::phases::{Agent, FollowUp, Phase};
use crate::prompts::Input;

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

async fn require_token(State(agent): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let want = agent.cfg.control_token.as_bytes();
    // Constant time over the token's length.
    let ok =
        sent.len() == want.len() && sent.bytes().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
    if !ok {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong or missing control token",
        );
    }
    next.run(req).await
}

async fn health(State(agent): State<Arc<Agent>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "busy": agent.busy() }))
}

fn start(agent: Arc<Agent>, phase: Phase, input: Input) -> Response {
    if !agent.try_begin() {
        return error(
            StatusCode::CONFLICT,
            "busy",
            "the box is already running the agent",
        );
    }
    tokio::spawn(async move { agent.run(phase, input).await });
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

#[derive(Deserialize, Default)]
struct ImplementIn {
    note: Option<String>,
    github_token: Option<String>,
}

#[derive(Deserialize)]
struct CommentIn {
    #[serde(default)]
    author: String,
    body: String,
    path: Option<String>,
    line: Option<i64>,
}

#[derive(Deserialize)]
struct ChangesIn {
    #[serde(default)]
    comments: Vec<CommentIn>,
    github_token: Option<String>,
}

#[derive(Deserialize)]
struct ReviseIn {
    feedback: String,
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

async fn implement(State(agent): State<Arc<Agent>>, body: Body<ImplementIn>) -> Response {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    start(
        agent,
        Phase::Implement,
        Input {
            note: b.note,
            github_token: b.github_token,
            ..Default::default()
        },
    )
}

async fn changes(State(agent): State<Arc<Agent>>, body: Body<ChangesIn>) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be {comments: [{author, body, path?, line?}]}",
        );
    };
    let comments = b
        .comments
        .into_iter()
        .map(|c| CommentCtx {
            author: c.author,
            body: c.body,
            path: c.path,
            line: c.line,
        })
        .collect();
    start(
        agent,
        Phase::Changes,
        Input {
            comments,
            github_token: b.github_token,
            ..Default::default()
        },
    )
}

async fn revise(State(agent): State<Arc<Agent>>, body: Body<ReviseIn>) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be {feedback}",
        );
    };
    start(
        agent,
        Phase::Revise,
        Input {
            feedback: Some(b.feedback),
            ..Default::default()
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    author: String,
    text: String,
}

/// A reviewer's message for the agent's next turn (accepted while a run goes on, too).
async fn message(State(agent): State<Arc<Agent>>, body: Body<MessageIn>) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be {author, text}",
        );
    };
    if b.text.trim().is_empty() || b.text.len() > 20_000 || b.author.len() > 200 {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "text must be 1 to 20000 bytes, author at most 200",
        );
    }
    let waiting = agent.follow_up(FollowUp {
        author: b.author,
        text: b.text,
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({ "waiting": waiting, "running": agent.busy() })),
    )
        .into_response()
}

/// The workspace's files, marked with how they differ from the base.
async fn code_tree(State(agent): State<Arc<Agent>>) -> Response {
    let (files, truncated) = crate::code::tree(&agent.cfg, &agent.workspace()).await;
    Json(json!({ "files": files, "truncated": truncated })).into_response()
}

#[derive(Deserialize)]
struct FileQuery {
    path: String,
}

/// One file of the workspace (read-only; no link followed).
async fn code_file(
    State(agent): State<Arc<Agent>>,
    axum::extract::Query(q): axum::extract::Query<FileQuery>,
) -> Response {
    match crate::code::file(&agent.cfg, &agent.workspace(), &q.path).await {
        Ok((text, size, truncated, change)) => Json(json!({
            "path": q.path, "text": text, "size": size, "truncated": truncated, "change": change,
        }))
        .into_response(),
        Err((status, why)) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "bad_path",
            &why,
        ),
    }
}

/// A viewer's request for the site preview (Apiary forwards it here, control token and all;
/// the preview gets it without the token).
async fn site(State(agent): State<Arc<Agent>>, req: Request) -> Response {
    let rest = req
        .uri()
        .path()
        .strip_prefix("/site")
        .unwrap_or("")
        .to_string();
    agent.preview.forward(req, &rest).await
}

/// What the preview is doing: `off`, `starting`, `ready` or `down` (with why).
async fn preview_state(State(agent): State<Arc<Agent>>) -> Json<serde_json::Value> {
    use crate::preview::State as S;
    let (state, detail) = match agent.preview.state() {
        S::Off => ("off", String::new()),
        S::Starting => ("starting", String::new()),
        S::Ready => ("ready", String::new()),
        S::Down(why) => ("down", why),
    };
    Json(json!({ "state": state, "detail": detail }))
}

/// The control plane over one agent.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/implement/start", post(implement))
        .route("/changes/apply", post(changes))
        .route("/spec/revise", post(revise))
        .route("/message", post(message))
        .route("/code/tree", get(code_tree))
        .route("/code/file", get(code_file))
        .route("/preview", get(preview_state))
        .route("/site", any(site))
        .route("/site/", any(site))
        .route("/site/{*rest}", any(site))
        .layer(middleware::from_fn_with_state(agent.clone(), require_token))
        .with_state(agent)
}
