//! Live events as Server-Sent Events. One cursor orders everything: the audit trail's id
//! (log batches are recorded there too), so a client that reconnects with `Last-Event-ID`
//! gets exactly what it missed from the database, then the live stream, nothing twice.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use apiary_core::Role;
use apiary_store::{Store, TaskEvent};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use utoipa::IntoParams;

use crate::fanout::{frame, Batch, Flush};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::tasks::readable_task;
use crate::AppState;

/// Which events a stream carries.
#[derive(Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Only this project's tasks.
    pub project: Option<String>,
    /// Only this task.
    pub task: Option<String>,
}

#[derive(Clone)]
enum Scope {
    Task(String),
    Projects(HashSet<String>),
    All,
}

impl Scope {
    fn admits(&self, task: &str, project: &str) -> bool {
        match self {
            Scope::Task(t) => t == task,
            Scope::Projects(ps) => ps.contains(project),
            Scope::All => true,
        }
    }
}

/// A stored event on the wire (catch-up), or `None` for kinds streams do not carry.
fn from_stored(e: &TaskEvent) -> Option<Bytes> {
    match e.kind.as_str() {
        // A `checks` event (fix rounds spent) keeps the status but changes what the task shows.
        "transition" | "checks" => Some(frame(
            e.id,
            "agent_update",
            &json!({ "task": e.task_id, "project": e.project_id, "agent_status": e.to_status }),
        )),
        "log" => Some(frame(
            e.id,
            "agent_log",
            &json!({ "task": e.task_id, "project": e.project_id, "seq": e.message.as_deref().and_then(|m| m.parse::<i64>().ok()) }),
        )),
        _ => None,
    }
}

/// Sent when nothing else was for this long, so proxies and clients keep the stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Feed {
    /// This stream's place in the per-user limit, given back when the client goes away.
    _slot: crate::limits::StreamSlot,
    store: Store,
    rx: broadcast::Receiver<Flush>,
    scope: Scope,
    /// The newest event id this stream has passed (where a catch-up reads from).
    cursor: i64,
    /// Events up to here came from the database (or precede the stream's start): a live copy
    /// of one of them is dropped. Live events are not compared with each other, since
    /// concurrent commits may be published out of id order.
    floor: i64,
    /// Catch-up events not yet written.
    pending: Vec<u8>,
    /// The database holds events this stream still has to send.
    catching_up: bool,
    last_write: Instant,
    /// Who listens and what they asked for, to check access again.
    caller: Caller,
    query: EventsQuery,
    /// The store's access generation when access was last checked, and when that was.
    access_gen: u64,
    checked: Instant,
}

/// Access is checked again this often even when this process changed none (another replica
/// may have).
const RECHECK: Duration = Duration::from_secs(30);

/// What `caller` may see of the stream asked for; `None` once they may see nothing of it.
async fn scope_for(store: &Store, caller: &Caller, q: &EventsQuery) -> ApiResult<Option<Scope>> {
    let user = &caller.user;
    if let Some(task) = &q.task {
        let task = store.get_task(task).await?;
        return Ok(store
            .project_access(&task.project_id, user)
            .await?
            .map(|_| Scope::Task(task.id)));
    }
    if let Some(project) = &q.project {
        return Ok(store
            .project_access(project, user)
            .await?
            .map(|_| Scope::Projects(HashSet::from([project.clone()]))));
    }
    if user.role == Role::Admin {
        return Ok(Some(Scope::All));
    }
    Ok(Some(Scope::Projects(
        store
            .list_projects_for(user)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect(),
    )))
}

impl Feed {
    /// Loads the next page of what the database holds after the cursor (catch-up, and recovery
    /// after lagging). One page at a time, so a client far behind costs one page of memory.
    async fn catch_up_page(&mut self) {
        const PAGE: i64 = 500;
        let batch = match self.store.events_after(self.cursor, PAGE).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "event catch-up failed");
                self.catching_up = false;
                return;
            }
        };
        for e in &batch {
            self.cursor = self.cursor.max(e.id);
            if self.scope.admits(&e.task_id, &e.project_id) {
                if let Some(b) = from_stored(e) {
                    self.pending.extend_from_slice(&b);
                }
            }
        }
        if (batch.len() as i64) < PAGE {
            self.catching_up = false;
            self.floor = self.cursor;
        }
    }

    /// What this stream may see of a flush, as bytes to write (shared when it is all of it).
    fn admit(&mut self, batch: &Batch) -> Option<Bytes> {
        let (first, last) = (batch.events.first()?, batch.events.last()?);
        let whole_scope = match (&self.scope, &batch.project) {
            (Scope::All, _) => true,
            (Scope::Projects(ps), Some(p)) => ps.contains(p),
            _ => false,
        };
        let out = if first.id > self.floor && whole_scope {
            Some(batch.all.clone())
        } else {
            let mut buf = Vec::new();
            for f in &batch.events {
                if f.id > self.floor && self.scope.admits(&f.task_id, &f.project_id) {
                    buf.extend_from_slice(&f.bytes);
                }
            }
            (!buf.is_empty()).then(|| Bytes::from(buf))
        };
        self.cursor = self.cursor.max(last.id);
        out
    }

    /// Checks access again when it may have changed: a member removed, a session ended, a
    /// role changed. `false` ends the stream.
    async fn recheck(&mut self) -> bool {
        let now_gen = self.store.access_generation();
        if now_gen == self.access_gen && self.checked.elapsed() < RECHECK {
            return true;
        }
        self.access_gen = now_gen;
        self.checked = Instant::now();
        let still = match &self.caller.credential {
            crate::auth::Credential::Session { token, .. } => self
                .store
                .session(token)
                .await
                .ok()
                .flatten()
                .map(|s| s.user),
            crate::auth::Credential::Bearer | crate::auth::Credential::Chat { .. } => {
                self.store.get_user(&self.caller.user.id).await.ok()
            }
        };
        let Some(user) = still else {
            return false;
        };
        self.caller.user = user;
        match scope_for(&self.store, &self.caller, &self.query).await {
            Ok(Some(scope)) => {
                self.scope = scope;
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    /// The next bytes to write: catch-up, the next flush's admitted events, or a keep-alive.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if !self.recheck().await {
                return None;
            }
            if !self.pending.is_empty() {
                self.last_write = Instant::now();
                return Some(Bytes::from(std::mem::take(&mut self.pending)));
            }
            if self.catching_up {
                self.catch_up_page().await;
                continue;
            }
            match tokio::time::timeout_at(self.last_write + KEEP_ALIVE, self.rx.recv()).await {
                Err(_) => {
                    self.last_write = Instant::now();
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                Ok(Ok(Flush::Events(flush))) => {
                    if !self.recheck().await {
                        return None;
                    }
                    if let Some(b) = self.admit(&flush) {
                        self.last_write = Instant::now();
                        return Some(b);
                    }
                }
                Ok(Ok(Flush::Gap)) | Ok(Err(RecvError::Lagged(_))) => self.catching_up = true,
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    }
}

/// `agent_update` after every committed transition and `agent_log` after every committed log
/// batch, for what the caller may see; resumes after `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream")))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    if let Some(task) = &q.task {
        readable_task(&state, &caller, task).await?;
    } else if let Some(project) = &q.project {
        caller.readable_project(&state, project).await?;
    }
    let scope = scope_for(&state.store, &caller, &q)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    let access_gen = state.store.access_generation();
    let slot = state.limits.open_stream(&caller.user.id).ok_or_else(|| {
        ApiError::rate_limited(
            format!(
                "at most {} live streams per user are open at once",
                state.limits.config.streams_per_user
            ),
            Duration::from_secs(5),
        )
    })?;
    // Subscribe before reading the backlog so nothing falls between the two.
    let rx = state.hub.subscribe();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let cursor = match last {
        Some(id) => id,
        // A new client starts from now; it reads current state over REST.
        None => latest_event_id(&state.store).await,
    };
    let feed = Feed {
        _slot: slot,
        store: state.store.clone(),
        rx,
        scope,
        cursor,
        floor: cursor,
        pending: Vec::new(),
        // A client that resumes first gets what it missed, from the database.
        catching_up: last.is_some(),
        last_write: Instant::now(),
        caller,
        query: q,
        access_gen,
        checked: Instant::now(),
    };
    let body = stream::unfold(feed, |mut feed| async move {
        let bytes = feed.next().await?;
        Some((Ok::<_, Infallible>(bytes), feed))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

async fn latest_event_id(store: &Store) -> i64 {
    store.latest_event_id().await.unwrap_or(0)
}
