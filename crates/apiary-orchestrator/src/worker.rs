//! The job worker: claims ready jobs of the kinds it has handlers for, runs them, and records
//! success, a retry with backoff, or death. Any number of workers may run against one database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apiary_store::{Job, JobFailure, StoreResult};
use async_trait::async_trait;

use crate::metrics::JobLabels;
use crate::Orchestrator;

/// Runs one kind of job. Return `JobFailure::Retryable` for passing trouble, `Fatal` for a job
/// that can never succeed.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure>;
}

/// Collects handlers by job kind.
pub struct WorkerBuilder {
    orch: Orchestrator,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    lease_ms: i64,
}

impl WorkerBuilder {
    pub fn new(orch: Orchestrator) -> Self {
        WorkerBuilder {
            orch,
            handlers: HashMap::new(),
            lease_ms: 5 * 60 * 1000,
        }
    }

    /// Registers the handler of `kind`; jobs of kinds without a handler stay queued.
    pub fn handler(mut self, kind: &str, handler: impl JobHandler) -> Self {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// How long a claim holds before another worker may take the job over.
    pub fn lease_ms(mut self, ms: i64) -> Self {
        self.lease_ms = ms;
        self
    }

    pub fn build(self) -> Worker {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        Worker {
            orch: self.orch,
            handlers: Arc::new(self.handlers),
            kinds: Arc::new(kinds),
            lease_ms: self.lease_ms,
        }
    }
}

/// A job worker. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    orch: Orchestrator,
    handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
    kinds: Arc<Vec<String>>,
    lease_ms: i64,
}

impl Worker {
    /// Claims and runs one ready job; `false` when none was ready.
    pub async fn run_one(&self) -> StoreResult<bool> {
        let kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
        let Some(job) = self.orch.store.claim_job(&kinds, self.lease_ms).await? else {
            return Ok(false);
        };
        let Some(handler) = self.handlers.get(&job.kind) else {
            // Unreachable by the claim's filter; fail loudly rather than loop.
            self.orch
                .store
                .fail_job(
                    &job,
                    JobFailure::Fatal(format!("no handler for {}", job.kind)),
                )
                .await?;
            return Ok(true);
        };
        let result = handler.run(&self.orch, &job).await;
        let outcome = match &result {
            Ok(()) => "done",
            Err(JobFailure::Retryable(_)) if job.attempt < job.max_attempts => "retry",
            Err(_) => "dead",
        };
        self.orch
            .metrics
            .jobs
            .get_or_create(&JobLabels {
                kind: job.kind.clone(),
                outcome: outcome.into(),
            })
            .inc();
        let kept = match result {
            Ok(()) => self.orch.store.complete_job(&job).await?,
            Err(failure) => {
                tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempt, ?failure, "job failed");
                self.orch.store.fail_job(&job, failure).await?
            }
        };
        if !kept {
            tracing::warn!(job = job.id, kind = %job.kind, "job claim was lost to another worker (lease expired)");
        }
        Ok(true)
    }

    /// Runs ready jobs until none is left; returns how many ran. Tests use this instead of sleeping.
    pub async fn drain(&self) -> StoreResult<usize> {
        let mut n = 0;
        while self.run_one().await? {
            n += 1;
        }
        Ok(n)
    }

    /// Runs until `shutdown` resolves: drains, then waits for a wake-up or the poll interval.
    pub async fn run(self, poll: Duration, shutdown: impl std::future::Future<Output = ()>) {
        let wake = self.orch.wake_handle();
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.drain().await {
                tracing::error!(error = %e, "job worker pass failed");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}
