//! The job queue (outbox). Jobs are enqueued in the transaction of the change that asks for
//! them, so a rolled-back change leaves no job. A claim marks one ready job `running` under a
//! lease in a single statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer);
//! a claim whose lease ran out (a crashed worker) is claimed again. Completion is fenced on the
//! attempt, so a stale worker changes nothing.

use rand::Rng;
use serde_json::Value;

use crate::db::{Store, Tx};
use crate::error::StoreResult;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub task_id: Option<String>,
    pub payload: Value,
    /// When it may run first; `None` for now.
    pub run_at: Option<i64>,
    pub max_attempts: i64,
    /// At most one pending or running job per key; a second enqueue is dropped.
    pub dedupe_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: &str, payload: Value) -> Self {
        NewJob {
            kind: kind.to_string(),
            task_id: None,
            payload,
            run_at: None,
            max_attempts: 8,
            dedupe_key: None,
        }
    }
    pub fn for_task(mut self, task_id: &str) -> Self {
        self.task_id = Some(task_id.to_string());
        self
    }
    pub fn run_at(mut self, at_ms: i64) -> Self {
        self.run_at = Some(at_ms);
        self
    }
    pub fn dedupe(mut self, key: &str) -> Self {
        self.dedupe_key = Some(key.to_string());
        self
    }
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// A claimed (or inspected) job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub task_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub attempt: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
}
from_row!(Job {
    id,
    kind,
    task_id,
    payload,
    state,
    attempt,
    max_attempts,
    run_at,
    lease_until,
    last_error
});

impl Job {
    /// The payload as JSON.
    pub fn payload_json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }
}

/// How a job run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Try again later, with backoff, until `max_attempts`.
    Retryable(String),
    /// Do not try again: the job goes dead now.
    Fatal(String),
}

const JOB_COLS: &str =
    "id, kind, task_id, payload, state, attempt, max_attempts, run_at, lease_until, last_error";

/// Delay before attempt `attempt + 1`: 1 s doubling to at most 10 minutes, with up to 25 % jitter.
pub fn backoff_ms(attempt: i64) -> i64 {
    let base = 1000i64
        .saturating_mul(1i64 << attempt.clamp(0, 20))
        .min(600_000);
    base + rand::thread_rng().gen_range(0..=base / 4)
}

impl Store {
    /// Enqueues inside the caller's transaction; returns the id, or `None` when a job with the
    /// same dedupe key is already waiting.
    pub async fn enqueue_in(&self, tx: &mut Tx, job: NewJob) -> StoreResult<Option<i64>> {
        let now = self.now();
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO jobs (kind, task_id, payload, state, attempt, max_attempts, run_at, dedupe_key, \
             created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6, $7, $7) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&job.kind)
        .bind(&job.task_id)
        .bind(job.payload.to_string())
        .bind(job.max_attempts)
        .bind(job.run_at.unwrap_or(now))
        .bind(&job.dedupe_key)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Enqueues in a transaction of its own.
    pub async fn enqueue(&self, job: NewJob) -> StoreResult<Option<i64>> {
        let mut tx = self.begin().await?;
        let id = self.enqueue_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Claims the oldest ready job of one of `kinds` (pending and due, or running with an
    /// expired lease) for `lease_ms`. A job whose attempts are used up by expired leases goes
    /// dead instead of running again.
    pub async fn claim_job(&self, kinds: &[&str], lease_ms: i64) -> StoreResult<Option<Job>> {
        if kinds.is_empty() {
            return Ok(None);
        }
        loop {
            let now = self.now();
            let placeholders: Vec<String> =
                (0..kinds.len()).map(|i| format!("${}", i + 3)).collect();
            let skip_locked = match self.backend {
                crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                crate::Backend::Sqlite => "",
            };
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_until = $1, updated_at = $2 \
                 WHERE id = (SELECT id FROM jobs WHERE kind IN ({}) AND \
                 ((state = 'pending' AND run_at <= $2) OR (state = 'running' AND lease_until < $2)) \
                 ORDER BY run_at, id LIMIT 1{skip_locked}) RETURNING {JOB_COLS}",
                placeholders.join(", ")
            );
            let mut q = sqlx::query_as::<_, Job>(&sql)
                .bind(now + lease_ms)
                .bind(now);
            for k in kinds {
                q = q.bind(*k);
            }
            let job = match self.backend {
                crate::Backend::Sqlite => {
                    // One statement, under the writer lock like every write transaction.
                    let mut tx = self.begin().await?;
                    let job = q.fetch_optional(&mut *tx).await?;
                    tx.commit().await?;
                    job
                }
                crate::Backend::Postgres => q.fetch_optional(&self.pool).await?,
            };
            match job {
                Some(job) if job.attempt > job.max_attempts => {
                    self.finish(&job, "dead", Some("lease expired on every attempt"), None)
                        .await?;
                }
                other => return Ok(other),
            }
        }
    }

    /// Marks a claimed job done; `false` when the claim was lost (lease expired and re-claimed).
    pub async fn complete_job(&self, job: &Job) -> StoreResult<bool> {
        self.finish(job, "done", None, None).await
    }

    /// Records a failed run: back to `pending` after a backoff, or `dead` (with the error kept)
    /// when fatal or out of attempts. `false` when the claim was lost.
    pub async fn fail_job(&self, job: &Job, failure: JobFailure) -> StoreResult<bool> {
        match failure {
            JobFailure::Fatal(e) => self.finish(job, "dead", Some(&e), None).await,
            JobFailure::Retryable(e) if job.attempt >= job.max_attempts => {
                self.finish(job, "dead", Some(&e), None).await
            }
            JobFailure::Retryable(e) => {
                let at = self.now() + backoff_ms(job.attempt);
                self.finish(job, "pending", Some(&e), Some(at)).await
            }
        }
    }

    async fn finish(
        &self,
        job: &Job,
        state: &str,
        error: Option<&str>,
        run_at: Option<i64>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, last_error = COALESCE($2, last_error), run_at = COALESCE($3, run_at), \
             lease_until = NULL, updated_at = $4 WHERE id = $5 AND attempt = $6 AND state = 'running'",
        )
        .bind(state)
        .bind(error)
        .bind(run_at)
        .bind(self.now())
        .bind(job.id)
        .bind(job.attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One job by id (tests and the admin view).
    pub async fn get_job(&self, id: i64) -> StoreResult<Option<Job>> {
        Ok(
            sqlx::query_as::<_, Job>(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The jobs of a task, oldest first.
    pub async fn list_task_jobs(&self, task_id: &str) -> StoreResult<Vec<Job>> {
        Ok(sqlx::query_as::<_, Job>(&format!(
            "SELECT {JOB_COLS} FROM jobs WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Jobs by kind and state (tests, metrics and the admin view).
    pub async fn count_jobs(&self, kind: &str, state: &str) -> StoreResult<i64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE kind = $1 AND state = $2")
                .bind(kind)
                .bind(state)
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }
}
