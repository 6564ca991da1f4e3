//! Apiary's engine: the transition entry point that publishes live events only after commit,
//! the in-process event bus, the job worker with its handler registry, and the metrics.
//!
//! Invariants: no SQL here (the store owns it); no HTTP serving (the server owns it). Every
//! caller that changes `agent_status` goes through [`Orchestrator::transition`] or hands the
//! store's outcome to [`Orchestrator::publish`] after its own commit.

pub mod bus;
pub mod dispatch;
pub mod metrics;
pub mod worker;

use std::sync::Arc;

use apiary_store::{Store, StoreResult, TransitionOutcome, TransitionRequest};

pub use bus::{EventBus, LiveEvent, LiveEventKind};
pub use dispatch::{Dispatch, DispatchHandler};
pub use metrics::Metrics;
pub use worker::{JobHandler, Worker, WorkerBuilder};

/// The shared engine handle: store, event bus, metrics and a way to wake the worker.
#[derive(Clone)]
pub struct Orchestrator {
    pub store: Store,
    pub bus: EventBus,
    pub metrics: Arc<Metrics>,
    wake: Arc<tokio::sync::Notify>,
}

impl Orchestrator {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Orchestrator {
            store,
            bus: EventBus::new(1024),
            metrics,
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Runs a transition in its own transaction, then publishes it (after commit).
    pub async fn transition(&self, req: TransitionRequest) -> StoreResult<TransitionOutcome> {
        let outcome = self.store.transition(req).await?;
        self.publish(&outcome);
        Ok(outcome)
    }

    /// Announces a committed transition: a live `agent_update` and a nudge to the worker for
    /// the jobs it enqueued. A no-op outcome publishes nothing.
    pub fn publish(&self, outcome: &TransitionOutcome) {
        if !outcome.changed {
            return;
        }
        self.metrics.transitions.inc();
        if let Some(id) = outcome.event_id {
            self.bus.send(LiveEvent {
                id,
                kind: LiveEventKind::AgentUpdate,
                task_id: outcome.task_id.clone(),
                project_id: outcome.project_id.clone(),
                agent_status: Some(outcome.to),
                seq: None,
            });
        }
        if !outcome.effects.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The worker with every handler of the agent loop registered.
    pub fn worker(&self) -> WorkerBuilder {
        let mut b = WorkerBuilder::new(self.clone());
        for (kind, d) in Dispatch::KINDS {
            b = b.handler(kind, DispatchHandler::new(d));
        }
        b
    }

    /// Publishes a committed log batch as a live `agent_log` event.
    pub fn publish_log(&self, task_id: &str, project_id: &str, event_id: i64, seq: i64) {
        self.bus.send(LiveEvent {
            id: event_id,
            kind: LiveEventKind::AgentLog,
            task_id: task_id.to_string(),
            project_id: project_id.to_string(),
            agent_status: None,
            seq: Some(seq),
        });
    }

    /// The handle the worker waits on between polls.
    pub fn wake_handle(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}
