//! Live events as Server-Sent Events. One cursor orders everything: the audit trail's id
//! (log batches are recorded there too), so a client that reconnects with `Last-Event-ID`
//! gets exactly what it missed from the database, then the live stream, nothing twice.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use apiary_core::Role;
use apiary_orchestrator::{LiveEvent, LiveEventKind};
use apiary_store::{Store, TaskEvent};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::IntoParams;

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

/// One event as it goes on the wire.
struct Wire {
    id: i64,
    name: &'static str,
    data: serde_json::Value,
}

fn from_live(e: &LiveEvent) -> Wire {
    match e.kind {
        LiveEventKind::AgentUpdate => Wire {
            id: e.id,
            name: "agent_update",
            data: json!({ "task": e.task_id, "project": e.project_id, "agent_status": e.agent_status }),
        },
        LiveEventKind::AgentLog => Wire {
            id: e.id,
            name: "agent_log",
            data: json!({ "task": e.task_id, "project": e.project_id, "seq": e.seq }),
        },
    }
}

fn from_stored(e: &TaskEvent) -> Option<Wire> {
    match e.kind.as_str() {
        "transition" => Some(Wire {
            id: e.id,
            name: "agent_update",
            data: json!({ "task": e.task_id, "project": e.project_id, "agent_status": e.to_status }),
        }),
        "log" => Some(Wire {
            id: e.id,
            name: "agent_log",
            data: json!({ "task": e.task_id, "project": e.project_id, "seq": e.message.as_deref().and_then(|m| m.parse::<i64>().ok()) }),
        }),
        _ => None,
    }
}

struct Feed {
    /// This stream's place in the per-user limit, given back when the client goes away.
    _slot: crate::limits::StreamSlot,
    store: Store,
    rx: broadcast::Receiver<LiveEvent>,
    scope: Scope,
    cursor: i64,
    pending: VecDeque<Wire>,
}

impl Feed {
    /// Loads what the database holds after the cursor (catch-up, and recovery after lagging).
    async fn catch_up(&mut self) {
        loop {
            let batch = match self.store.events_after(self.cursor, 500).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "event catch-up failed");
                    return;
                }
            };
            let n = batch.len();
            for e in &batch {
                self.cursor = self.cursor.max(e.id);
                if self.scope.admits(&e.task_id, &e.project_id) {
                    if let Some(w) = from_stored(e) {
                        self.pending.push_back(w);
                    }
                }
            }
            if n < 500 {
                return;
            }
        }
    }

    async fn next(&mut self) -> Option<Wire> {
        loop {
            if let Some(w) = self.pending.pop_front() {
                return Some(w);
            }
            match self.rx.recv().await {
                Ok(e) if e.id > self.cursor => {
                    self.cursor = e.id;
                    if self.scope.admits(&e.task_id, &e.project_id) {
                        return Some(from_live(&e));
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.catch_up().await,
                Err(RecvError::Closed) => return None,
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
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let scope = if let Some(task) = &q.task {
        readable_task(&state, &caller, task).await?;
        Scope::Task(task.clone())
    } else if let Some(project) = &q.project {
        caller.readable_project(&state, project).await?;
        Scope::Projects(HashSet::from([project.clone()]))
    } else if caller.user.role == Role::Admin {
        Scope::All
    } else {
        Scope::Projects(
            state
                .store
                .list_projects_for(&caller.user)
                .await?
                .into_iter()
                .map(|p| p.id)
                .collect(),
        )
    };
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
    let rx = state.orch.bus.subscribe();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let cursor = match last {
        Some(id) => id,
        // A new client starts from now; it reads current state over REST.
        None => latest_event_id(&state.store).await,
    };
    let mut feed = Feed {
        _slot: slot,
        store: state.store.clone(),
        rx,
        scope,
        cursor,
        pending: VecDeque::new(),
    };
    if last.is_some() {
        feed.catch_up().await;
    }
    let s = stream::unfold(feed, |mut feed| async move {
        let w = feed.next().await?;
        let ev = Event::default()
            .id(w.id.to_string())
            .event(w.name)
            .data(w.data.to_string());
        Some((Ok(ev), feed))
    });
    Ok(Sse::new(s).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

async fn latest_event_id(store: &Store) -> i64 {
    store.latest_event_id().await.unwrap_or(0)
}
