//! The FIFO queue of hand-offs and the cap on boxes that exist.

use apiary_core::AgentStatus;

use crate::db::{Backend, Store, Tx};
use crate::error::StoreResult;
use crate::transition::{Actor, TransitionOutcome, TransitionRequest};

/// Boxes that exist or are being made.
const LIVE_BOXES: &str =
    "SELECT COUNT(*) FROM tasks WHERE box_torn_down = 0 OR agent_status = 'provisioning'";

impl Store {
    /// Boxes that exist or are being made: they count against `max_concurrent_boxes`.
    pub async fn live_box_count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(LIVE_BOXES).fetch_one(&self.pool).await?;
        Ok(n)
    }

    /// Takes the lock every move against the cap takes (SQLite's write lock is held already;
    /// an advisory lock on PostgreSQL), then counts the boxes that exist or are being made.
    async fn lock_and_count_boxes(&self, tx: &mut Tx) -> StoreResult<i64> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                .execute(&mut **tx)
                .await?;
        }
        let (live,): (i64,) = sqlx::query_as(LIVE_BOXES).fetch_one(&mut **tx).await?;
        Ok(live)
    }

    /// Takes one of the `cap` box slots for a parked task about to get a fresh box, under the
    /// lock the queue drain takes, so a resume and a drain together never pass the cap; `false`
    /// when every slot is taken. The slot is held as `box_torn_down = 0` without a box until
    /// the box attaches (or `detach_box` gives it back).
    pub async fn reserve_box_slot(&self, task_id: &str, cap: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let live = self.lock_and_count_boxes(&mut tx).await?;
        if live >= cap {
            tx.rollback().await?;
            return Ok(false);
        }
        // `parked` stays set until the box attaches, so a re-run of the resume knows it.
        let done = sqlx::query(
            "UPDATE tasks SET box_torn_down = 0, box_id = NULL, control_url = NULL, parked = 1, \
             updated_at = $1 WHERE id = $2 AND box_torn_down = 1",
        )
        .bind(self.now())
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves the oldest queued tasks (of projects whose agent is enabled) to `provisioning`
    /// while fewer than `cap` boxes exist. Count and moves happen in one transaction under a
    /// lock every drainer takes (SQLite's write lock; an advisory lock on PostgreSQL), so the
    /// cap holds with any number of workers.
    pub async fn drain_queue(&self, cap: i64) -> StoreResult<Vec<TransitionOutcome>> {
        let mut tx = self.begin_events().await?;
        let live = self.lock_and_count_boxes(&mut tx).await?;
        let room = cap - live;
        let mut out = Vec::new();
        if room > 0 {
            let next: Vec<(String,)> = sqlx::query_as(
                "SELECT t.id FROM tasks t JOIN projects p ON p.id = t.project_id \
                 WHERE t.agent_status = 'queued' AND p.agent_enabled = 1 \
                 ORDER BY t.queued_at, t.id LIMIT $1",
            )
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            for (id,) in next {
                out.push(
                    self.transition_in(
                        &mut tx,
                        TransitionRequest::new(&id, AgentStatus::Provisioning, Actor::System)
                            .with_message("a box is free"),
                    )
                    .await?,
                );
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}
