//! Notification deliveries: one job per enabled channel, enqueued in the transition's own
//! transaction; failures recorded for admins.

use apiary_core::{AgentStatus, NotifyEvent, Settings};
use serde_json::json;

use crate::db::{Store, Tx};
use crate::error::StoreResult;
use crate::jobs::NewJob;

/// A recorded delivery failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationError {
    pub id: i64,
    pub channel: String,
    pub event: String,
    pub task_id: Option<String>,
    pub status_code: Option<i64>,
    pub body: Option<String>,
    pub error: String,
    pub created_at: i64,
}
from_row!(NotificationError {
    id,
    channel,
    event,
    task_id,
    status_code,
    body,
    error,
    created_at
});

/// The channels a notification goes to under these settings (`webhook:<id>` per webhook).
pub fn enabled_channels(s: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    if s.log_notifications {
        out.push("log".to_string());
    }
    if s.telegram.enabled {
        out.push("telegram".to_string());
    }
    if s.slack.enabled {
        out.push("slack".to_string());
    }
    if s.email.enabled {
        out.push("email".to_string());
    }
    for w in s.webhooks.iter().filter(|w| w.enabled) {
        out.push(format!("webhook:{}", w.id));
    }
    out
}

/// The chatty (or otherwise table-less) event a transition into `to` announces, if any.
pub fn extra_event(to: AgentStatus, chatty: bool) -> Option<NotifyEvent> {
    match to {
        AgentStatus::Merged => Some(NotifyEvent::Merged),
        AgentStatus::Queued if chatty => Some(NotifyEvent::Queued),
        AgentStatus::Provisioning if chatty => Some(NotifyEvent::Provisioning),
        _ => None,
    }
}

impl Store {
    /// Enqueues one `deliver` job per enabled channel for `event` (nothing when notifications
    /// are off), deduplicated per (transition, channel).
    pub(crate) async fn enqueue_deliveries(
        &self,
        tx: &mut Tx,
        settings: &Settings,
        task_id: &str,
        event_id: i64,
        event: NotifyEvent,
    ) -> StoreResult<()> {
        // A task made from a GitHub issue, or with a PR on GitHub, reports there (the issue's
        // comments, the head's `Apiary` status): its own channel, on even when notifications
        // to people are off.
        let (issue, pr, forge): (Option<i64>, Option<String>, String) = sqlx::query_as(
            "SELECT t.github_issue, t.pr_url, p.forge FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = $1",
        )
        .bind(task_id)
        .fetch_one(&mut **tx)
        .await?;
        let mut channels = Vec::new();
        if forge == "github" && (issue.is_some() || pr.is_some()) && !event.is_chatty() {
            channels.push("github".to_string());
        }
        if settings.notifications_enabled {
            channels.extend(enabled_channels(settings));
        }
        for channel in channels {
            let job = NewJob::new("deliver", json!({ "task_id": task_id, "event_id": event_id, "event": event, "channel": channel }))
                .for_task(task_id)
                .dedupe(&format!("deliver:{event_id}:{channel}"))
                .max_attempts(6);
            self.enqueue_in(tx, job).await?;
        }
        Ok(())
    }

    /// Records a failed delivery.
    pub async fn record_notification_error(
        &self,
        channel: &str,
        event: &str,
        task_id: Option<&str>,
        status_code: Option<i64>,
        body: Option<&str>,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_errors (channel, event, task_id, status_code, body, error, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(channel)
        .bind(event)
        .bind(task_id)
        .bind(status_code)
        .bind(body.map(|b| b.chars().take(4000).collect::<String>()))
        .bind(error)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest delivery failures first.
    pub async fn notification_errors(&self, limit: i64) -> StoreResult<Vec<NotificationError>> {
        Ok(sqlx::query_as::<_, NotificationError>(
            "SELECT id, channel, event, task_id, status_code, body, error, created_at FROM notification_errors ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
