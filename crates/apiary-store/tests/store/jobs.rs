//! The job queue: outbox semantics, exclusive claims, leases, retries and death.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apiary_store::{JobFailure, NewJob};
use apiary_testkit::{test_store, test_store_manual};
use serde_json::json;

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let db = test_store().await;
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let id = store
        .enqueue_in(&mut tx, NewJob::new("k", json!({})))
        .await
        .unwrap();
    assert!(id.is_some());
    tx.rollback().await.unwrap();
    assert_eq!(store.claim_job(&["k"], 60_000).await.unwrap(), None);
    let mut tx = store.begin().await.unwrap();
    let id = store
        .enqueue_in(&mut tx, NewJob::new("k", json!({})))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.claim_job(&["k"], 60_000).await.unwrap().map(|j| j.id),
        Some(id)
    );
}

#[tokio::test]
async fn two_workers_never_run_the_same_job() {
    let db = test_store().await;
    let store = db.store.clone();
    const N: usize = 60;
    for i in 0..N {
        store
            .enqueue(NewJob::new("k", json!({ "i": i })))
            .await
            .unwrap();
    }
    let runs: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        let runs = runs.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = 0;
            while let Some(job) = store.claim_job(&["k"], 60_000).await.unwrap() {
                *runs.lock().unwrap().entry(job.id).or_default() += 1;
                tokio::task::yield_now().await;
                assert!(store.complete_job(&job).await.unwrap());
                mine += 1;
            }
            mine
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(total, N);
    assert_eq!(runs.len(), N, "every job ran");
    assert!(runs.values().all(|&n| n == 1), "no job ran twice: {runs:?}");
    assert_eq!(store.count_jobs("k", "done").await.unwrap(), N as i64);
}

#[tokio::test]
async fn a_crashed_claim_is_reclaimed_after_its_lease_and_the_stale_worker_is_fenced_off() {
    let (db, clock) = test_store_manual().await;
    let store = &db.store;
    let id = store
        .enqueue(NewJob::new("k", json!({})))
        .await
        .unwrap()
        .unwrap();
    let first = store.claim_job(&["k"], 1_000).await.unwrap().unwrap();
    assert_eq!((first.id, first.attempt), (id, 1));
    // The worker "crashes": no completion. Nobody else may take it while the lease holds.
    assert_eq!(store.claim_job(&["k"], 1_000).await.unwrap(), None);
    clock.advance_ms(1_001);
    let second = store.claim_job(&["k"], 1_000).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempt), (id, 2));
    // The first worker comes back: its completion is refused.
    assert!(!store.complete_job(&first).await.unwrap());
    assert!(store.complete_job(&second).await.unwrap());
    assert_eq!(store.get_job(id).await.unwrap().unwrap().state, "done");
}

#[tokio::test]
async fn failures_back_off_then_go_dead_with_the_last_error_kept() {
    let (db, clock) = test_store_manual().await;
    let store = &db.store;
    let id = store
        .enqueue(NewJob::new("k", json!({})).max_attempts(3))
        .await
        .unwrap()
        .unwrap();
    for attempt in 1..=3 {
        let job = store
            .claim_job(&["k"], 60_000)
            .await
            .unwrap()
            .expect("job ready");
        assert_eq!(job.attempt, attempt);
        assert!(store
            .fail_job(&job, JobFailure::Retryable(format!("boom {attempt}")))
            .await
            .unwrap());
        let after = store.get_job(id).await.unwrap().unwrap();
        if attempt < 3 {
            assert_eq!(after.state, "pending");
            assert!(
                after.run_at > store.now(),
                "backoff puts the retry in the future"
            );
            assert_eq!(
                store.claim_job(&["k"], 60_000).await.unwrap(),
                None,
                "not before the backoff"
            );
            clock.advance_ms(after.run_at - store.now());
        } else {
            assert_eq!(after.state, "dead");
            assert_eq!(after.last_error.as_deref(), Some("boom 3"));
        }
    }
    assert_eq!(store.claim_job(&["k"], 60_000).await.unwrap(), None);
}

#[tokio::test]
async fn a_fatal_failure_is_dead_at_once_and_other_kinds_are_not_claimed() {
    let db = test_store().await;
    let store = &db.store;
    let a = store
        .enqueue(NewJob::new("a", json!({})))
        .await
        .unwrap()
        .unwrap();
    let b = store
        .enqueue(NewJob::new("b", json!({})))
        .await
        .unwrap()
        .unwrap();
    let job = store.claim_job(&["b"], 60_000).await.unwrap().unwrap();
    assert_eq!(job.id, b);
    store
        .fail_job(&job, JobFailure::Fatal("never".into()))
        .await
        .unwrap();
    assert_eq!(store.get_job(b).await.unwrap().unwrap().state, "dead");
    assert_eq!(store.get_job(a).await.unwrap().unwrap().state, "pending");
}

#[tokio::test]
async fn a_dedupe_key_keeps_one_waiting_job() {
    let db = test_store().await;
    let store = &db.store;
    let first = store
        .enqueue(NewJob::new("drain", json!({})).dedupe("drain"))
        .await
        .unwrap();
    let second = store
        .enqueue(NewJob::new("drain", json!({})).dedupe("drain"))
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(second, None);
    let job = store.claim_job(&["drain"], 60_000).await.unwrap().unwrap();
    // While it runs a new one may wait behind it? No: running also holds the key.
    assert_eq!(
        store
            .enqueue(NewJob::new("drain", json!({})).dedupe("drain"))
            .await
            .unwrap(),
        None
    );
    store.complete_job(&job).await.unwrap();
    assert!(store
        .enqueue(NewJob::new("drain", json!({})).dedupe("drain"))
        .await
        .unwrap()
        .is_some());
}
