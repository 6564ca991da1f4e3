//! The forge loop's storage: GitHub webhook deliveries (accepted once per delivery id, their
//! work queued in the same transaction), tasks found by branch or issue, tasks made from
//! labelled issues, and the end of the automatic fix rounds.

use apiary_core::{AgentStatus, NotifyEvent};
use serde_json::{json, Value};

use crate::db::{new_id, Store};
use crate::error::StoreResult;
use crate::jobs::NewJob;
use crate::projects::Project;
use crate::settings::read_settings;
use crate::tasks::{Task, TaskRow, TASK_COLS};
use crate::transition::{Actor, TransitionOutcome};

/// How long a delivery id is remembered (GitHub redelivers within days, not months).
const DELIVERY_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

impl Store {
    /// Records a webhook delivery and queues its `forge_event` job, in one transaction.
    /// `false` when the delivery id was seen before: nothing is queued again.
    /// `projects` are those the delivery may act on (its signature's reach).
    pub async fn accept_forge_delivery(
        &self,
        delivery: &str,
        event: &str,
        payload: Value,
        projects: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !self.take_delivery_in(&mut tx, delivery, event).await? {
            return Ok(false);
        }
        self.enqueue_in(
            &mut tx,
            NewJob::new(
                "forge_event",
                json!({ "delivery": delivery, "event": event, "payload": payload, "projects": projects }),
            )
            .max_attempts(8),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes an incoming delivery id once (a webhook's, a chat update's); `false` for a repeat.
    /// Ids are remembered for [`DELIVERY_KEEP_MS`].
    async fn take_delivery_in(
        &self,
        tx: &mut crate::db::Tx,
        delivery: &str,
        event: &str,
    ) -> StoreResult<bool> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO forge_deliveries (id, event, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(delivery)
        .bind(event)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM forge_deliveries WHERE received_at < $1")
            .bind(now - DELIVERY_KEEP_MS)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }

    /// Takes a chat update (Telegram's `update_id`) once: a redelivered update does nothing.
    pub async fn accept_chat_update(&self, via: &str, update_id: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let fresh = self
            .take_delivery_in(&mut tx, &format!("{via}:{update_id}"), via)
            .await?;
        tx.commit().await?;
        Ok(fresh)
    }

    /// Forgets a delivery whose work cannot be done as things stand (no token, say), so that
    /// GitHub's "Redeliver" runs it again once the settings are fixed.
    pub async fn forget_forge_delivery(&self, delivery: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM forge_deliveries WHERE id = $1")
            .bind(delivery)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The task whose box works on `branch` (Apiary's branches are one per task).
    pub async fn task_by_branch(&self, branch: &str) -> StoreResult<Option<Task>> {
        Ok(sqlx::query_as::<_, TaskRow>(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE branch = $1 ORDER BY updated_at DESC LIMIT 1"
        ))
        .bind(branch)
        .fetch_optional(&self.pool)
        .await?
        .map(TaskRow::into_task))
    }

    /// The projects on the `github` forge.
    pub async fn github_projects(&self) -> StoreResult<Vec<Project>> {
        let mut out = Vec::new();
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM projects WHERE forge = 'github' ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        for (id,) in ids {
            out.push(self.get_project(&id).await?);
        }
        Ok(out)
    }

    /// Makes a task of GitHub issue `issue` and hands it to the agent, in one transaction;
    /// `None` when the project has a task of that issue already (a label added twice).
    pub async fn create_issue_task(
        &self,
        project_id: &str,
        issue: i64,
        title: &str,
        description: &str,
        actor: Actor,
    ) -> StoreResult<Option<(Task, TransitionOutcome)>> {
        let title: String = title.trim().chars().take(500).collect();
        let title = if title.is_empty() {
            format!("Issue #{issue}")
        } else {
            title
        };
        let description: String = crate::forge::cut(description, 100_000);
        let id = new_id();
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let done = sqlx::query(
            "INSERT INTO tasks (id, project_id, title, description, status, github_issue, \
             status_changed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'todo', $5, $6, $6, $6) ON CONFLICT (project_id, github_issue) DO NOTHING",
        )
        .bind(&id)
        .bind(project_id)
        .bind(&title)
        .bind(&description)
        .bind(issue)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let outcome = self.hand_off_in(&mut tx, &id, actor).await?;
        tx.commit().await?;
        Ok(Some((self.get_task(&id).await?, outcome)))
    }

    /// Ends the automatic fix rounds of a task at `pr_ready`: keeps `error` as its last error
    /// (with the check report) and tells people (`CHECKS_FAILING`), once until a human asks
    /// for another round. Returns the audit event (an `agent_update` for live streams), or
    /// `None` when the task is not at `pr_ready` or people were told already.
    pub async fn checks_gave_up(
        &self,
        task_id: &str,
        error: &str,
        checks: &str,
    ) -> StoreResult<Option<TransitionOutcome>> {
        let mut tx = self.begin_events().await?;
        let task = self.lock_task(&mut tx, task_id).await?;
        let (told,): (i64,) = sqlx::query_as("SELECT fix_notified FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await?;
        if task.agent_status != AgentStatus::PrReady || told != 0 {
            return Ok(None);
        }
        let now = self.now();
        sqlx::query(
            "UPDATE tasks SET fix_notified = 1, last_error = $1, checks_json = $2, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(error)
        .bind(checks)
        .bind(now)
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        let (event_id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, from_status, to_status, actor_kind, \
             message, created_at) VALUES ($1, $2, 'checks', 'pr_ready', 'pr_ready', 'system', $3, $4) RETURNING id",
        )
        .bind(task_id)
        .bind(&task.project_id)
        .bind(error)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let settings = read_settings(&mut tx).await?;
        self.enqueue_deliveries(
            &mut tx,
            &settings,
            task_id,
            event_id,
            NotifyEvent::ChecksFailing,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(TransitionOutcome {
            task_id: task.id,
            project_id: task.project_id,
            from: AgentStatus::PrReady,
            to: AgentStatus::PrReady,
            changed: true,
            event_id: Some(event_id),
            effects: vec![apiary_core::SideEffect::Notify(NotifyEvent::ChecksFailing)],
        }))
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
