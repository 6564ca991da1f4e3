//! Tasks: the board's fields, which people edit freely, and the agent fields, which only
//! [`Store::transition`](crate::Store::transition) and the box bookkeeping write.

use apiary_core::{AgentStatus, BoardStatus, Role};

use crate::db::{flag, new_id, Store, Tx};
use crate::error::{StoreError, StoreResult};
use crate::transition::{Actor, TransitionOutcome, TransitionRequest};
use crate::users::User;

/// A task with its agent state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    pub status: BoardStatus,
    pub assignee_id: Option<String>,
    pub agent_status: AgentStatus,
    pub box_id: Option<String>,
    pub control_url: Option<String>,
    pub code_url: Option<String>,
    pub site_url: Option<String>,
    /// Id of the encrypted control token in `secrets` (never leaves the server).
    pub control_secret_id: Option<String>,
    pub pr_url: Option<String>,
    pub branch: Option<String>,
    pub spec: Option<String>,
    pub spec_revision: i64,
    pub last_error: Option<String>,
    /// Spec revision feedback waiting for the box.
    pub spec_feedback: Option<String>,
    /// The approver's note for the implementation round.
    pub approve_note: Option<String>,
    pub box_torn_down: bool,
    pub parked: bool,
    pub status_changed_at: i64,
    pub queued_at: Option<i64>,
    pub round: i64,
    pub attempt: i64,
    /// 1-based place in the FIFO queue while `queued`.
    pub queue_position: Option<i64>,
    /// The GitHub issue the task came from (a labelled issue), if any.
    pub github_issue: Option<i64>,
    /// Automatic fix rounds (failed checks) spent in this attempt.
    pub fix_rounds: i64,
    /// The last check result (JSON: source, passed, checks, log tail), if any.
    pub checks_json: Option<String>,
    /// What this attempt spent through the model gateway, in millionths of a dollar.
    pub spent_micros: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) struct TaskRow {
    id: String,
    project_id: String,
    title: String,
    description: String,
    status: String,
    assignee_id: Option<String>,
    agent_status: String,
    box_id: Option<String>,
    control_url: Option<String>,
    code_url: Option<String>,
    site_url: Option<String>,
    control_secret_id: Option<String>,
    pr_url: Option<String>,
    branch: Option<String>,
    spec: Option<String>,
    spec_revision: i64,
    last_error: Option<String>,
    spec_feedback: Option<String>,
    approve_note: Option<String>,
    box_torn_down: i64,
    parked: i64,
    status_changed_at: i64,
    queued_at: Option<i64>,
    round: i64,
    attempt: i64,
    github_issue: Option<i64>,
    fix_rounds: i64,
    checks_json: Option<String>,
    gateway_spent_micros: i64,
    created_at: i64,
    updated_at: i64,
}
from_row!(TaskRow {
    id,
    project_id,
    title,
    description,
    status,
    assignee_id,
    agent_status,
    box_id,
    control_url,
    code_url,
    site_url,
    control_secret_id,
    pr_url,
    branch,
    spec,
    spec_revision,
    last_error,
    spec_feedback,
    approve_note,
    box_torn_down,
    parked,
    status_changed_at,
    queued_at,
    round,
    attempt,
    github_issue,
    fix_rounds,
    checks_json,
    gateway_spent_micros,
    created_at,
    updated_at
});

pub(crate) const TASK_COLS: &str = "id, project_id, title, description, status, assignee_id, \
    agent_status, box_id, control_url, code_url, site_url, control_secret_id, pr_url, branch, spec, \
    spec_revision, last_error, spec_feedback, approve_note, box_torn_down, parked, status_changed_at, queued_at, round, attempt, \
    github_issue, fix_rounds, checks_json, gateway_spent_micros, created_at, updated_at";

impl TaskRow {
    pub(crate) fn into_task(self) -> Task {
        Task {
            id: self.id,
            project_id: self.project_id,
            title: self.title,
            description: self.description,
            status: self.status.parse().unwrap_or(BoardStatus::Todo),
            assignee_id: self.assignee_id,
            agent_status: self.agent_status.parse().unwrap_or(AgentStatus::None),
            box_id: self.box_id,
            control_url: self.control_url,
            code_url: self.code_url,
            site_url: self.site_url,
            control_secret_id: self.control_secret_id,
            pr_url: self.pr_url,
            branch: self.branch,
            spec: self.spec,
            spec_revision: self.spec_revision,
            last_error: self.last_error,
            spec_feedback: self.spec_feedback,
            approve_note: self.approve_note,
            box_torn_down: flag(self.box_torn_down),
            parked: flag(self.parked),
            status_changed_at: self.status_changed_at,
            queued_at: self.queued_at,
            round: self.round,
            attempt: self.attempt,
            queue_position: None,
            github_issue: self.github_issue,
            fix_rounds: self.fix_rounds,
            checks_json: self.checks_json,
            spent_micros: self.gateway_spent_micros,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A new task's fields.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: String,
    pub description: String,
    pub status: Option<BoardStatus>,
    pub assignee_id: Option<String>,
}

/// A partial update of the board fields; `assignee_id: Some(None)` unassigns.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<BoardStatus>,
    pub assignee_id: Option<Option<String>>,
}

fn validate_title(title: &str) -> StoreResult<()> {
    let n = title.trim().chars().count();
    if n == 0 || title.len() > 500 {
        return Err(StoreError::invalid("title", "must be 1 to 500 characters"));
    }
    Ok(())
}

fn validate_description(d: &str) -> StoreResult<()> {
    if d.len() > 100_000 {
        return Err(StoreError::invalid(
            "description",
            "must be at most 100000 bytes",
        ));
    }
    Ok(())
}

impl Store {
    /// Reads a task inside a transaction, locking its row on PostgreSQL.
    pub(crate) async fn lock_task(&self, tx: &mut Tx, id: &str) -> StoreResult<Task> {
        sqlx::query_as::<_, TaskRow>(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(TaskRow::into_task)
        .ok_or(StoreError::NotFound("task"))
    }

    async fn check_assignee(&self, tx: &mut Tx, assignee: &str) -> StoreResult<Role> {
        let row: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = $1")
            .bind(assignee)
            .fetch_optional(&mut **tx)
            .await?;
        row.and_then(|(r,)| r.parse().ok())
            .ok_or_else(|| StoreError::invalid("assignee_id", "no such user"))
    }

    /// Creates a task. Assigning it to the Agent user at creation hands it over, as a later
    /// assignment would. Returns the task and the hand-off, if one happened.
    pub async fn create_task(
        &self,
        project_id: &str,
        new: NewTask,
        by: &User,
    ) -> StoreResult<(Task, Option<TransitionOutcome>)> {
        validate_title(&new.title)?;
        validate_description(&new.description)?;
        let id = new_id();
        let now = self.now();
        let mut tx = self.begin_events().await?;
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("project"));
        }
        let mut to_agent = false;
        if let Some(a) = &new.assignee_id {
            to_agent = self.check_assignee(&mut tx, a).await? == Role::Agent;
        }
        sqlx::query(
            "INSERT INTO tasks (id, project_id, title, description, status, assignee_id, \
             status_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
        )
        .bind(&id)
        .bind(project_id)
        .bind(new.title.trim())
        .bind(&new.description)
        .bind(new.status.unwrap_or(BoardStatus::Todo).as_str())
        .bind(if to_agent { None } else { new.assignee_id.clone() })
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let outcome = if to_agent {
            Some(
                self.hand_off_in(&mut tx, &id, Actor::Human(by.id.clone()))
                    .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok((self.get_task(&id).await?, outcome))
    }

    /// One task by id, with its queue position.
    pub async fn get_task(&self, id: &str) -> StoreResult<Task> {
        let mut task =
            sqlx::query_as::<_, TaskRow>(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .map(TaskRow::into_task)
                .ok_or(StoreError::NotFound("task"))?;
        if task.agent_status == AgentStatus::Queued {
            let (ahead,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM tasks WHERE agent_status = 'queued' \
                 AND (queued_at < $1 OR (queued_at = $1 AND id < $2))",
            )
            .bind(task.queued_at.unwrap_or(0))
            .bind(&task.id)
            .fetch_one(&self.pool)
            .await?;
            task.queue_position = Some(ahead + 1);
        }
        Ok(task)
    }

    /// The tasks of a project, oldest first, with queue positions.
    pub async fn list_tasks(&self, project_id: &str) -> StoreResult<Vec<Task>> {
        let mut tasks: Vec<Task> = sqlx::query_as::<_, TaskRow>(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE project_id = $1 ORDER BY created_at, id"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TaskRow::into_task)
        .collect();
        if tasks.iter().any(|t| t.agent_status == AgentStatus::Queued) {
            let queue: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM tasks WHERE agent_status = 'queued' ORDER BY queued_at, id",
            )
            .fetch_all(&self.pool)
            .await?;
            for t in tasks
                .iter_mut()
                .filter(|t| t.agent_status == AgentStatus::Queued)
            {
                t.queue_position = queue
                    .iter()
                    .position(|(id,)| *id == t.id)
                    .map(|p| p as i64 + 1);
            }
        }
        Ok(tasks)
    }

    /// Updates the board fields. Assigning the task to the Agent user hands it over and
    /// unassigning it from the Agent cancels the agent's work: both in the same transaction
    /// as the edit, through the transition function.
    pub async fn update_task(
        &self,
        id: &str,
        patch: TaskPatch,
        by: &User,
    ) -> StoreResult<(Task, Option<TransitionOutcome>)> {
        if let Some(t) = &patch.title {
            validate_title(t)?;
        }
        if let Some(d) = &patch.description {
            validate_description(d)?;
        }
        let mut tx = self.begin_events().await?;
        let current = self.lock_task(&mut tx, id).await?;
        let agent_id = self.agent_id_in(&mut tx).await?;
        let was_agent = current.assignee_id.as_deref() == Some(agent_id.as_str());
        let mut outcome = None;
        let mut assignee = current.assignee_id.clone();
        if let Some(new_assignee) = &patch.assignee_id {
            if let Some(a) = new_assignee {
                self.check_assignee(&mut tx, a).await?;
            }
            let to_agent = new_assignee.as_deref() == Some(agent_id.as_str());
            if to_agent && !was_agent {
                outcome = Some(
                    self.hand_off_in(&mut tx, id, Actor::Human(by.id.clone()))
                        .await?,
                );
                assignee = Some(agent_id.clone());
            } else if !to_agent {
                if was_agent && current.agent_status.is_active() {
                    outcome = Some(
                        self.transition_in(
                            &mut tx,
                            TransitionRequest::new(
                                id,
                                AgentStatus::Cancelled,
                                Actor::Human(by.id.clone()),
                            )
                            .with_message("unassigned from the Agent"),
                        )
                        .await?,
                    );
                }
                assignee = new_assignee.clone();
            }
        }
        sqlx::query(
            // The column as the hand-off above may have moved it, unless the patch sets one.
            "UPDATE tasks SET title = $1, description = $2, status = COALESCE($3, status), assignee_id = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(patch.title.as_deref().map(str::trim).unwrap_or(&current.title))
        .bind(patch.description.as_deref().unwrap_or(&current.description))
        .bind(patch.status.map(|s| s.as_str()))
        .bind(assignee)
        .bind(self.now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((self.get_task(id).await?, outcome))
    }

    /// Hands a task to the agent: assigns it to the Agent user and moves it to `queued`.
    /// The one code path behind the hand-off action and assignment to the Agent.
    pub async fn hand_off(&self, id: &str, by: &User) -> StoreResult<TransitionOutcome> {
        let mut tx = self.begin_events().await?;
        let outcome = self
            .hand_off_in(&mut tx, id, Actor::Human(by.id.clone()))
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub(crate) async fn hand_off_in(
        &self,
        tx: &mut Tx,
        id: &str,
        actor: Actor,
    ) -> StoreResult<TransitionOutcome> {
        let agent_id = self.agent_id_in(tx).await?;
        let outcome = self
            .transition_in(
                tx,
                TransitionRequest::new(id, AgentStatus::Queued, actor)
                    .with_message("handed to the agent"),
            )
            .await?;
        sqlx::query("UPDATE tasks SET assignee_id = $1 WHERE id = $2")
            .bind(agent_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(outcome)
    }

    async fn agent_id_in(&self, tx: &mut Tx) -> StoreResult<String> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM users WHERE role = 'agent' ORDER BY created_at LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
        row.map(|r| r.0).ok_or(StoreError::NotFound("agent user"))
    }
}
