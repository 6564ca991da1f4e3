//! The model gateway's records: which task a gateway token belongs to, the metered usage of
//! every model request, what a task and a project have spent, and a project's own gateway
//! settings. Provider keys are settings secrets (see [`provider_key_secret`]).

use std::sync::{Arc, Mutex};

use apiary_core::gateway::{ProjectGateway, Provider, Usage};
use tokio::sync::{oneshot, Notify};

use crate::auth::hash_token;
use crate::db::{new_id, Store};
use crate::error::{StoreError, StoreResult};

/// The settings-secret name of a provider key: the global one, or a project's own.
pub fn provider_key_secret(project_id: Option<&str>, provider: Provider) -> String {
    match project_id {
        Some(p) => format!("project.{p}.provider.{}.api_key", provider.name()),
        None => format!("provider.{}.api_key", provider.name()),
    }
}

/// A record waiting for the usage writer, and where its answer goes.
type Pending = (UsageRecord, oneshot::Sender<StoreResult<u64>>);

/// Most records one group commit writes.
const USAGE_GROUP_MAX: usize = 500;

/// Records waiting for the next group commit: (a writer runs, the records).
#[derive(Default)]
pub(crate) struct UsageQueue {
    inner: Mutex<(bool, Vec<Pending>)>,
    wake: Notify,
}

/// Lets a writer that stopped (its runtime ended, or it panicked) hand over: the waiting
/// records are answered with an error and the next record starts a new writer.
struct UsageWriterGuard(Arc<UsageQueue>);

impl Drop for UsageWriterGuard {
    fn drop(&mut self) {
        let mut q = self.0.inner.lock().unwrap_or_else(|e| e.into_inner());
        q.0 = false;
        q.1.clear();
    }
}

/// The task behind a gateway token, with what the gateway needs to meter a request.
#[derive(Debug, Clone)]
pub struct GatewayTask {
    pub task_id: String,
    pub project_id: String,
    pub attempt: i64,
    /// The agent status when the request came (the phase it is metered under).
    pub phase: String,
    pub round: i64,
    /// What the task spent so far, over all its attempts (µ$).
    pub spent_micros: u64,
    /// The hash of its last metered request, and how many times in a row it came.
    pub last_hash: Option<String>,
    pub repeats: u32,
}

/// One metered model request.
#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub task: GatewayTask,
    pub provider: Provider,
    pub model: String,
    /// The provider's HTTP status.
    pub status: u16,
    pub usage: Usage,
    pub cost_micros: u64,
    /// A hash of the request body (the task's row keeps the last one for the stall guard).
    pub request_hash: String,
}

/// Usage summed over a group (a phase and round of a task, or a model of a project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSum {
    pub phase: String,
    pub round: i64,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_micros: i64,
}
from_row!(UsageSum {
    phase,
    round,
    model,
    requests,
    input_tokens,
    output_tokens,
    cache_read_tokens,
    cache_write_tokens,
    cost_micros
});

const SUMS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens, \
    CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
    CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros";

impl Store {
    /// The task a gateway token belongs to, while its box lives (`None`: unknown or revoked),
    /// with its spending and the stall guard's state: the one read a model request costs.
    pub async fn gateway_token_task(&self, token: &str) -> StoreResult<Option<GatewayTask>> {
        type Row = (String, String, i64, String, i64, i64, Option<String>, i64);
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, project_id, attempt, agent_status, round, gateway_spent_micros, gateway_last_hash, \
             gateway_repeats FROM tasks WHERE gateway_token_hash = $1",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(task_id, project_id, attempt, phase, round, spent, last_hash, repeats)| GatewayTask {
                task_id,
                project_id,
                attempt,
                phase,
                round,
                spent_micros: spent.max(0) as u64,
                last_hash,
                repeats: repeats.clamp(0, i64::from(u32::MAX)) as u32,
            },
        ))
    }

    /// Stores one metered request; returns what the task has spent now (µ$). Requests that
    /// finish together are written in one transaction (a group commit), so metering keeps up
    /// with many streams on SQLite's single writer.
    pub async fn record_usage(&self, r: UsageRecord) -> StoreResult<u64> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.usage.inner.lock().expect("usage queue lock");
            q.1.push((r, reply));
            !std::mem::replace(&mut q.0, true)
        };
        if start {
            tokio::spawn(self.clone().run_usage_writer());
        }
        self.usage.wake.notify_one();
        answer
            .await
            .map_err(|_| StoreError::Group("the usage writer stopped".into()))?
    }

    /// Writes groups while records wait, then sleeps until the next one comes.
    async fn run_usage_writer(self) {
        let _guard = UsageWriterGuard(self.usage.clone());
        loop {
            let group: Vec<Pending> = {
                let mut q = self.usage.inner.lock().expect("usage queue lock");
                let take = q.1.len().min(USAGE_GROUP_MAX);
                q.1.drain(..take).collect()
            };
            if group.is_empty() {
                self.usage.wake.notified().await;
                continue;
            }
            match self.write_usage_group(&group).await {
                Ok(spent) => {
                    for ((_, reply), s) in group.into_iter().zip(spent) {
                        let _ = reply.send(Ok(s));
                    }
                }
                // One bad record (a task deleted meanwhile) or a passing fault must not lose
                // the others' spending: each is written on its own.
                Err(e) => {
                    tracing::warn!(error = %e, records = group.len(), "usage group commit failed; writing one by one");
                    for (record, reply) in group {
                        let one = [(record, oneshot::channel().0)];
                        let result = self
                            .write_usage_group(&one)
                            .await
                            .map(|spent| spent.first().copied().unwrap_or(0));
                        if let Err(e) = &result {
                            tracing::error!(error = %e, task = %one[0].0.task.task_id, "usage not recorded");
                        }
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    async fn write_usage_group(&self, group: &[Pending]) -> StoreResult<Vec<u64>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(group.len());
        for (r, _) in group {
            sqlx::query(
                "INSERT INTO model_usage (id, task_id, project_id, attempt, phase, round, provider, model, status, \
                 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micros, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(new_id())
            .bind(&r.task.task_id)
            .bind(&r.task.project_id)
            .bind(r.task.attempt)
            .bind(&r.task.phase)
            .bind(r.task.round)
            .bind(r.provider.name())
            .bind(&r.model)
            .bind(i64::from(r.status))
            .bind(r.usage.input as i64)
            .bind(r.usage.output as i64)
            .bind(r.usage.cache_read as i64)
            .bind(r.usage.cache_write as i64)
            .bind(r.cost_micros as i64)
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
            // The stall guard counts answered requests only: a CLI retries the same body on a
            // provider's 429 or 5xx, which is no loop of its own.
            let answered = (200..300).contains(&r.status);
            let (spent,): (i64,) = sqlx::query_as(
                "UPDATE tasks SET gateway_spent_micros = gateway_spent_micros + $1, \
                 gateway_repeats = CASE WHEN $4 = 0 THEN gateway_repeats \
                   WHEN gateway_last_hash = $2 THEN gateway_repeats + 1 ELSE 1 END, \
                 gateway_last_hash = CASE WHEN $4 = 0 THEN gateway_last_hash ELSE $2 END \
                 WHERE id = $3 RETURNING gateway_spent_micros",
            )
            .bind(r.cost_micros as i64)
            .bind(&r.request_hash)
            .bind(&r.task.task_id)
            .bind(i64::from(answered))
            .fetch_one(&mut *tx)
            .await?;
            out.push(spent.max(0) as u64);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// What a project has spent since `since_ms`.
    pub async fn project_spent_micros(&self, project_id: &str, since_ms: i64) -> StoreResult<u64> {
        let (spent,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM model_usage \
             WHERE project_id = $1 AND created_at >= $2",
        )
        .bind(project_id)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(spent.max(0) as u64)
    }

    /// When the task's agent last asked a model anything (ms), if ever.
    pub async fn last_model_request_at(&self, task_id: &str) -> StoreResult<Option<i64>> {
        let (at,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(created_at) FROM model_usage WHERE task_id = $1")
                .bind(task_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(at)
    }

    /// When the task's agent last did anything visible (ms): its last log line or model
    /// request, whichever is later.
    pub async fn last_agent_activity(&self, task_id: &str) -> StoreResult<Option<i64>> {
        // The last line by the primary key (task, seq): no scan of a long log.
        let log: Option<(i64,)> = sqlx::query_as(
            "SELECT created_at FROM agent_logs WHERE task_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        let log = log.map(|(at,)| at);
        let model = self.last_model_request_at(task_id).await?;
        Ok(log.max(model))
    }

    /// A task's usage by attempt-independent phase, round and model, in the order it was spent.
    pub async fn task_usage(&self, task_id: &str) -> StoreResult<Vec<UsageSum>> {
        Ok(sqlx::query_as::<_, UsageSum>(&format!(
            "SELECT phase, round, model, {SUMS} FROM model_usage WHERE task_id = $1 \
             GROUP BY phase, round, model ORDER BY MIN(created_at)"
        ))
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A project's usage by model since `since_ms` (phase and round blank).
    pub async fn project_usage(
        &self,
        project_id: &str,
        since_ms: i64,
    ) -> StoreResult<Vec<UsageSum>> {
        Ok(sqlx::query_as::<_, UsageSum>(&format!(
            "SELECT '' AS phase, CAST(0 AS BIGINT) AS round, model, {SUMS} FROM model_usage \
             WHERE project_id = $1 AND created_at >= $2 GROUP BY model ORDER BY model"
        ))
        .bind(project_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A project's own gateway settings (defaults when never saved).
    pub async fn project_gateway(&self, project_id: &str) -> StoreResult<ProjectGateway> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT gateway_json FROM projects WHERE id = $1")
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await?;
        let (json,) = row.ok_or(StoreError::NotFound("project"))?;
        serde_json::from_str(&json).map_err(|e| {
            StoreError::invalid("agent.gateway", format!("stored value unreadable: {e}"))
        })
    }

    /// Replaces a project's own gateway settings.
    pub async fn set_project_gateway(
        &self,
        project_id: &str,
        g: &ProjectGateway,
    ) -> StoreResult<()> {
        let json = serde_json::to_string(g)
            .map_err(|e| StoreError::invalid("agent.gateway", e.to_string()))?;
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE projects SET gateway_json = $1, updated_at = $2 WHERE id = $3")
                .bind(json)
                .bind(self.now())
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("project"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The key the gateway uses for a provider: the project's own, else the global one.
    pub async fn provider_key(
        &self,
        project_id: &str,
        provider: Provider,
    ) -> StoreResult<Option<String>> {
        if let Some(k) = self
            .setting_secret(&provider_key_secret(Some(project_id), provider))
            .await?
        {
            return Ok(Some(k));
        }
        self.setting_secret(&provider_key_secret(None, provider))
            .await
    }
}

/// The start of the calendar month (UTC) that holds `now_ms`, in ms.
pub fn month_start_ms(now_ms: i64) -> i64 {
    let days = now_ms.div_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5; // 0-based day of the month
    (days - day) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::month_start_ms;

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        // 2026-12-02T05:33:46Z → 2026-12-01T00:00:00Z
        assert_eq!(month_start_ms(1_796_189_626_000), 1_796_083_200_000);
        // 2024-03-01T00:00:00Z is its own month start; a leap February before it.
        assert_eq!(month_start_ms(1_709_251_200_000), 1_709_251_200_000);
        assert_eq!(month_start_ms(1_709_251_199_999), 1_706_745_600_000);
    }
}
