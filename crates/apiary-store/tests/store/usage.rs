//! Metered model requests: group commits keep each task's running spending in step with its
//! rows, and one record that cannot be written does not lose the others.

use apiary_core::gateway::{Provider, Usage};
use apiary_store::{GatewayTask, UsageRecord};
use apiary_testkit::{seed_task, test_store};

fn record(task: &GatewayTask, cost: u64, hash: &str) -> UsageRecord {
    UsageRecord {
        task: task.clone(),
        provider: Provider::Anthropic,
        model: "claude-sonnet-4-5".into(),
        status: 200,
        usage: Usage {
            input: 10,
            output: 2,
            cache_read: 0,
            cache_write: 0,
        },
        cost_micros: cost,
        request_hash: hash.into(),
    }
}

#[tokio::test]
async fn concurrent_records_add_up_and_a_bad_one_loses_no_other() {
    let db = test_store().await;
    let store = &db.store;
    let (_, _, task) = seed_task(store).await;
    let tokens = store
        .attach_box(&task.id, &apiary_store::BoxAddress::default())
        .await
        .unwrap();
    let gw = store
        .gateway_token_task(&tokens.gateway_token)
        .await
        .unwrap()
        .expect("the token names its task");
    assert_eq!(gw.task_id, task.id);
    let mut ghost = gw.clone();
    ghost.task_id = "no-such-task".into();
    // Written together where they arrive together; the ghost's row cannot be.
    let mut calls = Vec::new();
    for i in 0..20u64 {
        let r = if i == 7 {
            record(&ghost, 1, "h")
        } else {
            record(&gw, 100, &format!("h{i}"))
        };
        let store = store.clone();
        calls.push(tokio::spawn(async move { store.record_usage(r).await }));
    }
    let mut failed = 0;
    for c in calls {
        if c.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 1, "only the ghost's record fails");
    let now = store
        .gateway_token_task(&tokens.gateway_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.spent_micros, 19 * 100);
    let sums = store.task_usage(&task.id).await.unwrap();
    assert_eq!(sums.iter().map(|s| s.requests).sum::<i64>(), 19);
    assert_eq!(sums.iter().map(|s| s.cost_micros).sum::<i64>(), 1900);
    // The stall guard's state: the same answered request twice in a row counts 2; an
    // unanswered one (a provider's 5xx) changes nothing.
    store.record_usage(record(&gw, 0, "same")).await.unwrap();
    store.record_usage(record(&gw, 0, "same")).await.unwrap();
    let mut failed_answer = record(&gw, 0, "same");
    failed_answer.status = 529;
    store.record_usage(failed_answer).await.unwrap();
    let now = store
        .gateway_token_task(&tokens.gateway_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.last_hash.as_deref(), now.repeats), (Some("same"), 2));
}
