//! The worker's handler registry and the rule that live events follow commits.

mod lifecycle;

use std::sync::{Arc, Mutex};

use apiary_core::AgentStatus;
use apiary_orchestrator::{JobHandler, Metrics, Orchestrator, WorkerBuilder};
use apiary_store::{Actor, Job, JobFailure, NewJob, TransitionRequest};
use apiary_testkit::test_store;
use async_trait::async_trait;
use serde_json::json;

struct Record(Arc<Mutex<Vec<(String, i64)>>>, bool);

#[async_trait]
impl JobHandler for Record {
    async fn run(&self, _orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        self.0.lock().unwrap().push((job.kind.clone(), job.attempt));
        if self.1 && job.attempt < 2 {
            return Err(JobFailure::Retryable("first try fails".into()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_worker_runs_registered_kinds_and_leaves_the_rest_queued() {
    let db = test_store().await;
    let orch = Orchestrator::new(db.store.clone(), Arc::new(Metrics::default()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let worker = WorkerBuilder::new(orch.clone())
        .handler("a", Record(seen.clone(), false))
        .build();
    let a = db
        .store
        .enqueue(NewJob::new("a", json!({})))
        .await
        .unwrap()
        .unwrap();
    let b = db
        .store
        .enqueue(NewJob::new("b", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worker.drain().await.unwrap(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![("a".to_string(), 1)]);
    assert_eq!(db.store.get_job(a).await.unwrap().unwrap().state, "done");
    assert_eq!(db.store.get_job(b).await.unwrap().unwrap().state, "pending");
    assert!(orch
        .metrics
        .render()
        .contains("apiary_jobs_total{kind=\"a\",outcome=\"done\"} 1"));
}

#[tokio::test]
async fn a_retryable_failure_is_retried_by_the_worker() {
    let db = test_store().await;
    let orch = Orchestrator::new(db.store.clone(), Arc::new(Metrics::default()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let worker = WorkerBuilder::new(orch.clone())
        .handler("a", Record(seen.clone(), true))
        .build();
    let id = db
        .store
        .enqueue(NewJob::new("a", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worker.drain().await.unwrap(), 1);
    let job = db.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.state.as_str(), job.last_error.as_deref()),
        ("pending", Some("first try fails"))
    );
    assert!(job.run_at > db.store.now());
    assert_eq!(worker.drain().await.unwrap(), 0, "not before its backoff");
}

#[tokio::test]
async fn live_events_follow_commits_only() {
    let db = test_store().await;
    let store = &db.store;
    let (admin, _, t) = apiary_testkit::seed_task(store).await;
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()));
    let mut rx = orch.bus.subscribe();
    let human = Actor::Human(admin.id.clone());
    // Refused: nothing published.
    assert!(orch
        .transition(TransitionRequest::new(
            &t.id,
            AgentStatus::PrReady,
            human.clone()
        ))
        .await
        .is_err());
    assert!(rx.try_recv().is_err());
    // Committed: published once, and the change is visible to whoever reacts to it.
    orch.transition(TransitionRequest::new(
        &t.id,
        AgentStatus::Queued,
        human.clone(),
    ))
    .await
    .unwrap();
    let ev = rx.try_recv().unwrap();
    assert_eq!(ev.agent_status, Some(AgentStatus::Queued));
    assert_eq!(
        store.get_task(&t.id).await.unwrap().agent_status,
        AgentStatus::Queued
    );
    // Repeated: a no-op publishes nothing.
    orch.transition(TransitionRequest::new(&t.id, AgentStatus::Queued, human))
        .await
        .unwrap();
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn events_reach_the_other_replicas_over_postgres_and_are_not_echoed() {
    use apiary_store::{Backend, SecretKey, Store, StoreOptions};
    let db = test_store().await;
    let store = &db.store;
    // A second connection to the same database: another replica.
    let other = Store::connect(StoreOptions {
        url: db.url.clone(),
        secret_key: SecretKey::generate(),
        clock: Arc::new(apiary_core::SystemClock),
        max_connections: 2,
    })
    .await
    .unwrap();
    if store.backend() == Backend::Sqlite {
        // One process serves a SQLite database: there is nobody to tell.
        assert!(other.listen_replicas().await.unwrap().is_none());
        return;
    }
    let (admin, _, t) = apiary_testkit::seed_task(store).await;
    let a = Orchestrator::new(store.clone(), Arc::new(Metrics::default()));
    let b = Orchestrator::new(other, Arc::new(Metrics::default()));
    let mut rx_a = a.bus.subscribe();
    let mut rx_b = b.bus.subscribe();
    tokio::spawn(a.clone().run_replica_listener());
    tokio::spawn(b.clone().run_replica_listener());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    a.transition(TransitionRequest::new(
        &t.id,
        AgentStatus::Queued,
        Actor::Human(admin.id.clone()),
    ))
    .await
    .unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), rx_b.recv())
        .await
        .expect("the other replica hears of it")
        .unwrap();
    assert_eq!(
        (seen.task_id.as_str(), seen.agent_status),
        (t.id.as_str(), Some(AgentStatus::Queued))
    );
    assert_eq!(rx_a.recv().await.unwrap(), seen, "the origin sees it once");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        rx_a.try_recv().is_err(),
        "its own NOTIFY is not echoed back"
    );
    assert!(rx_b.try_recv().is_err());
}
