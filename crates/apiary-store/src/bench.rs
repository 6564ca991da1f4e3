//! Helpers for `apiary bench`: bulk seeding and query plans. Not used by the product itself.

use crate::db::{new_id, Backend, Store};
use crate::error::StoreResult;

/// Statuses the seeded active tasks cycle through (all waiting or working, none timed out).
const ACTIVE: [&str; 5] = [
    "queued",
    "spec_ready",
    "pr_ready",
    "implementing",
    "speccing",
];

impl Store {
    /// Inserts `total` tasks into `project_id`, `active` of them agent-managed and not terminal
    /// (those with a live box), the rest finished (`merged`) or never handed over.
    pub async fn seed_bench_tasks(
        &self,
        project_id: &str,
        total: usize,
        active: usize,
    ) -> StoreResult<()> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let mut i = 0;
        while i < total {
            let n = (total - i).min(400);
            let mut sql = String::from(
                "INSERT INTO tasks (id, project_id, title, agent_status, box_id, box_torn_down, status_changed_at, created_at, updated_at) VALUES ",
            );
            for k in 0..n {
                let b = k * 6;
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, $1000, $1000, $1000)",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            let sql = sql.replace("$1000", &now.to_string());
            let mut q = sqlx::query(&sql);
            for k in 0..n {
                let idx = i + k;
                let (status, live) = if idx < active {
                    (
                        ACTIVE[idx % ACTIVE.len()],
                        ACTIVE[idx % ACTIVE.len()] != "queued",
                    )
                } else if idx % 2 == 0 {
                    ("merged", false)
                } else {
                    ("none", false)
                };
                q = q
                    .bind(new_id())
                    .bind(project_id)
                    .bind(format!("bench task {idx}"))
                    .bind(status)
                    .bind(live.then(|| format!("bench-box-{idx}")))
                    .bind(if live { 0i64 } else { 1i64 });
            }
            q.execute(&mut *tx).await?;
            i += n;
        }
        tx.commit().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE tasks").execute(&self.pool).await?;
        } else {
            sqlx::query("ANALYZE").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The database's plan for the watchdog's two task queries.
    pub async fn watchdog_query_plans(&self) -> StoreResult<Vec<String>> {
        let queries = [
            "SELECT id, agent_status, box_id, box_torn_down, status_changed_at FROM tasks WHERE agent_status NOT IN ('none', 'merged', 'cancelled')",
            "SELECT id, agent_status, box_id, box_torn_down, status_changed_at FROM tasks WHERE box_torn_down = 0 AND agent_status IN ('none', 'merged', 'cancelled')",
            "SELECT id, box_id FROM tasks WHERE box_torn_down = 0 AND box_id IS NOT NULL",
        ];
        let mut out = Vec::new();
        for q in queries {
            let lines: Vec<String> = match self.backend {
                Backend::Sqlite => {
                    let rows: Vec<(i64, i64, i64, String)> =
                        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {q}"))
                            .fetch_all(&self.pool)
                            .await?;
                    rows.into_iter().map(|r| r.3).collect()
                }
                Backend::Postgres => {
                    let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {q}"))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.into_iter().map(|r| r.0).collect()
                }
            };
            out.push(format!("{q}\n    {}", lines.join("\n    ")));
        }
        Ok(out)
    }
}
