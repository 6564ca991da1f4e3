//! A looping agent cannot fill the disk: past the task's log cap one marker line is stored,
//! later lines are dropped, and the box's batches are still acknowledged.

use apiary_testkit::{Client, TestApp};
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

#[tokio::test]
async fn past_the_log_cap_one_marker_is_stored_and_the_rest_dropped() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, err) = admin
        .patch("/api/v1/settings", json!({ "task_log_bytes": 10 }))
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("task_log_bytes")),
        "{err}"
    );
    let (status, body) = admin
        .patch("/api/v1/settings", json!({ "task_log_bytes": 2048 }))
        .await;
    assert_eq!(
        (status, body["task_log_bytes"].as_u64()),
        (200, Some(2048)),
        "{body}"
    );
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let (_, other, other_tokens) = provisioned_task(&app, &admin, &url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let line = "x".repeat(99);
    let mut last = 0;
    for _ in 0..5 {
        let (status, body) = bx
            .post(
                &format!("/api/v1/agent/tasks/{tid}/logs"),
                json!({ "lines": vec![line.clone(); 15] }),
            )
            .await;
        assert_eq!(
            status, 200,
            "acknowledged, so the box does not retry: {body}"
        );
        last = body["last_seq"].as_i64().unwrap();
    }
    let stored = app.store.list_logs(&tid, 0, 1000).await.unwrap();
    // 20 lines of 99 bytes fit in 2048; the 21st is the marker.
    assert_eq!(stored.len(), 21);
    assert!(stored[..20].iter().all(|l| l.line == line));
    assert_eq!(
        stored[20].line,
        "log limit of 2 KB reached; further lines dropped"
    );
    assert_eq!(last, 21);
    let events = app.store.events_after(0, 1000).await.unwrap();
    let logs = events
        .iter()
        .filter(|e| e.kind == "log" && e.task_id == tid)
        .count();
    assert!(logs <= 2, "dropped batches add no events: {logs}");
    // Another task has its own budget.
    let other_box = Client::with_bearer(&app.base, &other_tokens.callback_token);
    let (status, _) = other_box
        .post(
            &format!("/api/v1/agent/tasks/{other}/logs"),
            json!({ "lines": ["hello"] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.store.list_logs(&other, 0, 10).await.unwrap().len(), 1);
}
