//! The teardown sink (DESIGN §5), one idempotent path: destroy the box, then revoke its
//! callback token, delete its control secret and set `box_torn_down`. A failed destroy keeps
//! them so the job (and later the watchdog) retries; a box that is already gone is fine.

use apiary_core::AgentStatus;
use apiary_store::{Job, JobFailure};
use async_trait::async_trait;

use crate::worker::JobHandler;
use crate::Orchestrator;

/// Tears a task's box down: at once (`teardown`) or after the failed grace period.
pub struct TearDown {
    pub after_grace: bool,
}

#[async_trait]
impl JobHandler for TearDown {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let store = &orch.store;
        let task_id = job
            .task_id
            .clone()
            .ok_or_else(|| JobFailure::Fatal("no task".into()))?;
        let task = store
            .get_task(&task_id)
            .await
            .map_err(|e| JobFailure::Retryable(e.to_string()))?;
        if task.box_torn_down {
            return Ok(());
        }
        if self.after_grace && task.agent_status != AgentStatus::Failed {
            // Retried meanwhile: provisioning replaces the box.
            return Ok(());
        }
        if let Some(box_id) = &task.box_id {
            let provider = orch.provider().await.map_err(JobFailure::Retryable)?;
            provider
                .destroy(box_id)
                .await
                .map_err(|e| JobFailure::Retryable(format!("destroying {box_id}: {e}")))?;
        }
        // A box taken away while it waits on a human is parked: the human's next action brings it back.
        let parked = matches!(
            task.agent_status,
            AgentStatus::SpecReady | AgentStatus::PrReady
        );
        store
            .detach_box(&task_id, parked)
            .await
            .map_err(|e| JobFailure::Retryable(e.to_string()))?;
        tracing::info!(task = %task_id, box_id = ?task.box_id, parked, "box torn down");
        orch.request_drain()
            .await
            .map_err(|e| JobFailure::Retryable(e.to_string()))?;
        Ok(())
    }
}
