//! The one function that changes a task's `agent_status`: it checks the table of
//! `apiary_core::state`, writes the task, the audit event and the follow-up jobs in one
//! transaction, and returns what happened so the caller can publish after commit.

use apiary_core::{decide, ActorKind, AgentStatus, Decision, SideEffect, TransitionError};
use serde_json::json;

use crate::db::{Store, Tx};
use crate::error::{StoreError, StoreResult};
use crate::jobs::NewJob;
use crate::settings::read_settings;

/// Who asks for a transition, with their identity for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, by id.
    Human(String),
    /// Apiary itself.
    System,
    /// A box, by box id (or the task id when the box has no id yet).
    Box(String),
}

impl Actor {
    /// The kind the transition table knows.
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::Human(_) => ActorKind::Human,
            Actor::System => ActorKind::System,
            Actor::Box(_) => ActorKind::Box,
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Actor::Human(id) | Actor::Box(id) => Some(id),
            Actor::System => None,
        }
    }
}

/// A requested change of `agent_status`.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    pub task_id: String,
    pub to: AgentStatus,
    pub actor: Actor,
    /// Shown in the audit trail (a note, feedback, a reason).
    pub message: Option<String>,
    /// For `failed`: the error kept in `last_error`.
    pub error: Option<String>,
    /// Data that arrives with the transition, written only when it applies.
    pub writes: TaskWrites,
    /// The chat a human acted from, for the audit trail.
    pub via: Option<apiary_core::chat::Via>,
    /// Applies only while the task has not changed status since this audit event (the one a
    /// chat button was made for), checked under the task's lock: two presses on one message
    /// cannot both act.
    pub after_event: Option<i64>,
}

/// A review comment for the box's next round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReviewComment {
    /// The Apiary user who wrote it; `None` for someone outside Apiary (a GitHub reviewer,
    /// CI), who is named by `author_name` instead.
    pub author_id: Option<String>,
    pub author_name: Option<String>,
    pub body: String,
    pub path: Option<String>,
    pub line: Option<i64>,
}

/// What a transition carries in: a spec, a PR, feedback, a note, review comments.
#[derive(Debug, Clone, Default)]
pub struct TaskWrites {
    /// A submitted spec: stored as the next numbered revision.
    pub spec: Option<String>,
    pub pr_url: Option<String>,
    pub branch: Option<String>,
    /// Spec revision feedback for the box.
    pub feedback: Option<String>,
    /// The approver's note for the implementation.
    pub note: Option<String>,
    /// Review comments for the next round.
    pub review_comments: Vec<NewReviewComment>,
    /// This round is an automatic fix round (failed checks): counts toward `ci_fix_rounds`.
    pub fix_round: bool,
    /// The check result (JSON), shown on the review page. A submitted PR replaces the last
    /// one (none: cleared); a fix round keeps it when `None`.
    pub checks: Option<String>,
    /// No notification for this transition: a PR whose checks failed goes straight on to a
    /// fix round or to `CHECKS_FAILING`, so "ready for review" would be untrue.
    pub quiet: bool,
}

impl TransitionRequest {
    pub fn new(task_id: &str, to: AgentStatus, actor: Actor) -> Self {
        TransitionRequest {
            task_id: task_id.to_string(),
            to,
            actor,
            message: None,
            error: None,
            writes: TaskWrites::default(),
            via: None,
            after_event: None,
        }
    }

    pub fn with_writes(mut self, writes: TaskWrites) -> Self {
        self.writes = writes;
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// What a transition did. Publish it only after the transaction that made it has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionOutcome {
    pub task_id: String,
    pub project_id: String,
    pub from: AgentStatus,
    pub to: AgentStatus,
    /// False for a no-op (the task already had that status): nothing was written.
    pub changed: bool,
    /// The audit event written, which is also the live event's id.
    pub event_id: Option<i64>,
    /// The side effects enqueued as jobs.
    pub effects: Vec<SideEffect>,
}

impl Store {
    async fn apply_writes(
        &self,
        tx: &mut Tx,
        task_id: &str,
        w: &TaskWrites,
        now: i64,
    ) -> StoreResult<()> {
        if let Some(spec) = &w.spec {
            sqlx::query(
                "INSERT INTO spec_revisions (task_id, revision, spec, feedback, created_at) \
                 SELECT id, spec_revision + 1, $1, spec_feedback, $2 FROM tasks WHERE id = $3",
            )
            .bind(spec)
            .bind(now)
            .bind(task_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query("UPDATE tasks SET spec = $1, spec_revision = spec_revision + 1, spec_feedback = NULL WHERE id = $2")
                .bind(spec)
                .bind(task_id)
                .execute(&mut **tx)
                .await?;
        }
        if w.pr_url.is_some() || w.branch.is_some() {
            sqlx::query("UPDATE tasks SET pr_url = COALESCE($1, pr_url), branch = COALESCE($2, branch) WHERE id = $3")
                .bind(&w.pr_url)
                .bind(&w.branch)
                .bind(task_id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(feedback) = &w.feedback {
            sqlx::query("UPDATE tasks SET spec_feedback = $1 WHERE id = $2")
                .bind(feedback)
                .bind(task_id)
                .execute(&mut **tx)
                .await?;
        }
        if w.note.is_some() {
            sqlx::query("UPDATE tasks SET approve_note = $1 WHERE id = $2")
                .bind(&w.note)
                .bind(task_id)
                .execute(&mut **tx)
                .await?;
        }
        for c in &w.review_comments {
            sqlx::query(
                "INSERT INTO review_comments (id, task_id, round, attempt, author_id, author_name, body, path, line, created_at) \
                 SELECT $1, id, round, attempt, $2, $8, $3, $4, $5, $6 FROM tasks WHERE id = $7",
            )
            .bind(crate::db::new_id())
            .bind(&c.author_id)
            .bind(&c.body)
            .bind(&c.path)
            .bind(c.line)
            .bind(now)
            .bind(task_id)
            .bind(&c.author_name)
            .execute(&mut **tx)
            .await?;
        }
        if w.fix_round || w.checks.is_some() || w.pr_url.is_some() {
            sqlx::query(
                "UPDATE tasks SET fix_rounds = fix_rounds + $1, \
                 checks_json = CASE WHEN $4 = 1 THEN $2 ELSE COALESCE($2, checks_json) END WHERE id = $3",
            )
            .bind(i64::from(w.fix_round))
            .bind(&w.checks)
            .bind(task_id)
            .bind(i64::from(w.pr_url.is_some()))
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Runs one transition whose commit waits for `hold`: for tests that need a transaction
    /// held open at a chosen moment (concurrent commits, live-event ordering).
    #[doc(hidden)]
    pub async fn transition_held(
        &self,
        req: TransitionRequest,
        hold: impl std::future::Future<Output = ()>,
    ) -> StoreResult<TransitionOutcome> {
        let mut tx = self.begin_events().await?;
        let outcome = self.transition_in(&mut tx, req).await?;
        hold.await;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Runs one transition in its own transaction.
    pub async fn transition(&self, req: TransitionRequest) -> StoreResult<TransitionOutcome> {
        let mut tx = self.begin_events().await?;
        let outcome = self.transition_in(&mut tx, req).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Runs one transition inside the caller's transaction (so an edit and the transition it
    /// implies commit or roll back together); that transaction must come from
    /// `begin_events`, since a transition adds to the audit trail.
    pub(crate) async fn transition_in(
        &self,
        tx: &mut Tx,
        req: TransitionRequest,
    ) -> StoreResult<TransitionOutcome> {
        let task = self.lock_task(tx, &req.task_id).await?;
        let from = task.agent_status;
        if let Some(event) = req.after_event {
            let (later,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM task_events WHERE task_id = $1 AND kind = 'transition' AND id > $2",
            )
            .bind(&task.id)
            .bind(event)
            .fetch_one(&mut **tx)
            .await?;
            if later > 0 {
                return Err(StoreError::InvalidTransition {
                    from,
                    to: req.to,
                    actor: req.actor.kind(),
                    allowed: apiary_core::allowed_targets(from, req.actor.kind()),
                });
            }
        }
        let effects = match decide(from, req.to, req.actor.kind()) {
            Ok(Decision::NoOp) => {
                return Ok(TransitionOutcome {
                    task_id: task.id,
                    project_id: task.project_id,
                    from,
                    to: from,
                    changed: false,
                    event_id: None,
                    effects: vec![],
                })
            }
            Ok(Decision::Apply(effects)) => effects,
            Err(TransitionError::Invalid {
                from,
                to,
                actor,
                allowed,
            }) => {
                return Err(StoreError::InvalidTransition {
                    from,
                    to,
                    actor,
                    allowed,
                })
            }
        };
        let now = self.now();
        let to = req.to;
        // Field changes that belong to entering a status.
        let requeue = to == AgentStatus::Queued;
        // A new attempt starts clean: no feedback or approval note of the last one; and each
        // approval carries its own note (or none), never an earlier one.
        let approving = to == AgentStatus::SpecApproved;
        let new_round = matches!(
            (from, to),
            (AgentStatus::SpecReady, AgentStatus::SpecApproved)
                | (AgentStatus::PrReady, AgentStatus::ChangesRequested)
        );
        // A person's round after the automatic fix rounds starts them afresh.
        let human_round = to == AgentStatus::ChangesRequested
            && from == AgentStatus::PrReady
            && req.actor.kind() == ActorKind::Human;
        let last_error = match to {
            AgentStatus::Failed => Some(req.error.clone().unwrap_or_else(|| "failed".into())),
            AgentStatus::Queued => None,
            _ if human_round => None,
            _ => task.last_error.clone(),
        };
        sqlx::query(
            "UPDATE tasks SET agent_status = $1, status_changed_at = $2, updated_at = $2, \
             last_error = $3, \
             queued_at = CASE WHEN $4 = 1 THEN $2 ELSE queued_at END, \
             attempt = CASE WHEN $4 = 1 AND agent_status <> 'none' THEN attempt + 1 ELSE attempt END, \
             log_bytes = CASE WHEN $4 = 1 THEN 0 ELSE log_bytes END, \
             round = CASE WHEN $4 = 1 THEN 0 WHEN $5 = 1 THEN round + 1 ELSE round END, \
             fix_rounds = CASE WHEN $4 = 1 OR $8 = 1 THEN 0 ELSE fix_rounds END, \
             fix_notified = CASE WHEN $4 = 1 OR $5 = 1 THEN 0 ELSE fix_notified END, \
             checks_json = CASE WHEN $4 = 1 THEN NULL ELSE checks_json END, \
             parked = CASE WHEN $4 = 1 THEN 0 ELSE parked END, \
             spec_feedback = CASE WHEN $4 = 1 THEN NULL ELSE spec_feedback END, \
             approve_note = CASE WHEN $4 = 1 OR $7 = 1 THEN NULL ELSE approve_note END \
             WHERE id = $6",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(last_error)
        .bind(i64::from(requeue))
        .bind(i64::from(new_round))
        .bind(&task.id)
        .bind(i64::from(approving))
        .bind(i64::from(human_round))
        .execute(&mut **tx)
        .await?;
        // The board follows the agent where the project says so.
        if let Some(column) = apiary_core::BoardStatus::following(to) {
            sqlx::query(
                "UPDATE tasks SET status = $1 WHERE id = $2 AND status <> $1 AND EXISTS \
                 (SELECT 1 FROM projects WHERE id = $3 AND board_follows_agent = 1)",
            )
            .bind(column.as_str())
            .bind(&task.id)
            .bind(&task.project_id)
            .execute(&mut **tx)
            .await?;
        }
        // Back in the queue (a retry or a new hand-off: a new attempt, with its own review
        // rounds and log budget): the last attempt's box — or the slot it held while one was
        // being made — is let go at once; its tokens die and it no longer counts toward the
        // cap; the box exits at its next callback and the orphan sweep removes what is left.
        if requeue && !task.box_torn_down {
            self.detach_in(tx, &task, false).await?;
        }
        let (event_id,): (i64,) = sqlx::query_as(
            "INSERT INTO task_events (task_id, project_id, kind, from_status, to_status, actor_kind, \
             actor_id, message, created_at, via) VALUES ($1, $2, 'transition', $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&task.id)
        .bind(&task.project_id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(req.actor.kind().as_str())
        .bind(req.actor.id())
        .bind(req.message.clone().or(req.error.clone()))
        .bind(now)
        .bind(req.via.map(|v| v.as_str()))
        .fetch_one(&mut **tx)
        .await?;
        self.apply_writes(tx, &task.id, &req.writes, now).await?;
        let settings = read_settings(tx).await?;
        let grace_ms = settings.timeouts.failed_grace_s as i64 * 1000;
        for effect in &effects {
            let mut job = NewJob::new(
                effect.job_kind(),
                json!({ "task_id": task.id, "event_id": event_id }),
            )
            .for_task(&task.id);
            match effect {
                SideEffect::DrainQueue => job = job.dedupe("drain_queue"),
                // One teardown waiting per task, whoever asks (a transition or the watchdog).
                SideEffect::TearDown => job = job.dedupe(&format!("teardown:{}", task.id)),
                SideEffect::TearDownAfterGrace => job = job.run_at(now + grace_ms),
                SideEffect::Notify(_) if req.writes.quiet => continue,
                SideEffect::Notify(ev) => {
                    // Notification: one delivery job per enabled channel, not a job of its own.
                    self.enqueue_deliveries(tx, &settings, &task.id, event_id, *ev)
                        .await?;
                    continue;
                }
                _ => {}
            }
            self.enqueue_in(tx, job).await?;
        }
        if let Some(ev) = crate::notifications::extra_event(to, settings.chatty_events) {
            self.enqueue_deliveries(tx, &settings, &task.id, event_id, ev)
                .await?;
        }
        Ok(TransitionOutcome {
            task_id: task.id,
            project_id: task.project_id,
            from,
            to,
            changed: true,
            event_id: Some(event_id),
            effects,
        })
    }
}
