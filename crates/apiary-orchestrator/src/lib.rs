//! Apiary's engine: the transition entry point that publishes live events only after commit,
//! the in-process event bus, the job worker with its handler registry, and the metrics.
//!
//! Invariants: no SQL here (the store owns it); no HTTP serving (the server owns it). Every
//! caller that changes `agent_status` goes through [`Orchestrator::transition`] or hands the
//! store's outcome to [`Orchestrator::publish`] after its own commit.

pub mod bus;
pub mod chat;
pub mod dispatch;
pub mod fix;
pub mod forge;
pub mod github;
pub mod metrics;
pub mod notify;
pub mod provision;
pub mod teardown;
pub mod watchdog;
pub mod worker;

use std::sync::{Arc, RwLock};

use apiary_boxes::BoxProvider;
use apiary_store::{NewJob, Store, StoreResult, TransitionOutcome, TransitionRequest};

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
    local_boxes: Option<Arc<dyn BoxProvider>>,
    apiary_url: Arc<RwLock<String>>,
    /// This process's id among replicas (its own events come back over NOTIFY and are dropped).
    replica: Arc<String>,
}

impl Orchestrator {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Orchestrator {
            store,
            bus: EventBus::new(4096),
            metrics,
            wake: Arc::new(tokio::sync::Notify::new()),
            local_boxes: None,
            apiary_url: Arc::new(RwLock::new(String::new())),
            replica: Arc::new(apiary_store::new_token("")[..16].to_string()),
        }
    }

    /// Sends a committed event to this process's listeners and to the other replicas.
    fn announce(&self, ev: LiveEvent) {
        if self.store.backend() != apiary_store::Backend::Postgres {
            self.bus.send(ev);
            return;
        }
        let payload = serde_json::json!({ "origin": *self.replica, "event": ev }).to_string();
        self.bus.send(ev);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.broadcast_event(&payload).await {
                tracing::warn!(error = %e, "could not tell the other replicas about an event");
            }
        });
    }

    /// Forwards the other replicas' events to this process's listeners (PostgreSQL), until the
    /// process ends; reconnects after a lost connection.
    pub async fn run_replica_listener(self) {
        loop {
            let mut listener = match self.store.listen_replicas().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to the other replicas; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
            };
            loop {
                match listener.recv().await {
                    Ok(payload) => {
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) else {
                            continue;
                        };
                        if v["origin"].as_str() == Some(self.replica.as_str()) {
                            continue;
                        }
                        if let Ok(ev) = serde_json::from_value::<LiveEvent>(v["event"].clone()) {
                            self.bus.send(ev);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the replica listener; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    /// The provider used when the settings say `local`.
    pub fn with_local_boxes(mut self, provider: Arc<dyn BoxProvider>) -> Self {
        self.local_boxes = Some(provider);
        self
    }

    /// Where boxes reach Apiary when `callback_base_url` is not set (the bound address).
    pub fn set_apiary_url(&self, url: &str) {
        *self.apiary_url.write().expect("url lock") = url.trim_end_matches('/').to_string();
    }

    /// The URL boxes call back to: the setting, else the bound address.
    pub async fn callback_url(&self) -> StoreResult<String> {
        let s = self.store.settings().await?;
        if !s.callback_base_url.trim().is_empty() {
            return Ok(s.callback_base_url.trim_end_matches('/').to_string());
        }
        Ok(self.apiary_url.read().expect("url lock").clone())
    }

    /// The base of links people click (notifications): `public_url`, else the callback URL.
    pub async fn public_url(&self) -> StoreResult<String> {
        let s = self.store.settings().await?;
        if !s.public_url.trim().is_empty() {
            return Ok(s.public_url.trim().trim_end_matches('/').to_string());
        }
        self.callback_url().await
    }

    /// The box provider the settings choose: the local one, or a Box Host API client.
    pub async fn provider(&self) -> Result<Arc<dyn BoxProvider>, String> {
        let s = self.store.settings().await.map_err(|e| e.to_string())?;
        if s.box_provider == "remote" {
            if s.box_host_url.trim().is_empty() {
                return Err("box_provider is remote but box_host_url is not set".into());
            }
            let key = self
                .store
                .setting_secret("box_host_key")
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            return Ok(Arc::new(apiary_boxes::remote::RemoteProvider::new(
                &s.box_host_url,
                &key,
            )));
        }
        self.local_boxes
            .clone()
            .ok_or_else(|| "this process has no local box provider".to_string())
    }

    /// Asks for a queue drain (a box went away or a task was queued).
    pub async fn request_drain(&self) -> StoreResult<()> {
        self.store
            .enqueue(NewJob::new("drain_queue", serde_json::json!({})).dedupe("drain_queue"))
            .await?;
        self.wake.notify_one();
        Ok(())
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
            self.publish_update(&outcome.task_id, &outcome.project_id, id, outcome.to);
        }
        if !outcome.effects.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The worker with every handler of the agent loop registered.
    pub fn worker(&self) -> WorkerBuilder {
        let mut b = WorkerBuilder::new(self.clone())
            .handler("drain_queue", provision::DrainQueue)
            .handler("provision_box", provision::ProvisionBox)
            .handler("teardown", teardown::TearDown { after_grace: false })
            .handler(
                "teardown_after_grace",
                teardown::TearDown { after_grace: true },
            )
            .handler("deliver", notify::Deliver::default())
            .handler("forge_event", github::ForgeEvent)
            .handler("forge_status", github::ForgeStatus);
        for (kind, d) in Dispatch::KINDS {
            b = b.handler(kind, DispatchHandler::new(d));
        }
        b
    }

    /// Publishes a committed log batch as a live `agent_log` event (none for a batch whose
    /// lines were all dropped past the task's cap: event id 0).
    /// Announces a committed change of a task (its audit event `event_id`): a transition, or
    /// a person moving its card.
    pub fn publish_update(
        &self,
        task_id: &str,
        project_id: &str,
        event_id: i64,
        agent_status: apiary_core::AgentStatus,
    ) {
        self.announce(LiveEvent {
            id: event_id,
            kind: LiveEventKind::AgentUpdate,
            task_id: task_id.to_string(),
            project_id: project_id.to_string(),
            agent_status: Some(agent_status),
            seq: None,
        });
    }

    pub fn publish_log(&self, task_id: &str, project_id: &str, event_id: i64, seq: i64) {
        if event_id == 0 {
            return;
        }
        self.announce(LiveEvent {
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
