//! What a box sends is not trusted: a PR link must be http(s), and the branch the task's own.

use apiary_testkit::{Client, TestApp};
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

#[tokio::test]
async fn a_box_cannot_store_a_script_link_or_another_tasks_branch() {
    let app = TestApp::spawn().await;
    let worker = app.orch.worker().build();
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let cp_url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(&app, &admin, &cp_url).await;
    let (_, other, _) = provisioned_task(&app, &admin, &cp_url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let cb = |p: &str| format!("/api/v1/agent/tasks/{tid}/{p}");
    assert_eq!(
        bx.post(&cb("status"), json!({ "status": "speccing" }))
            .await
            .0,
        200
    );
    assert_eq!(
        bx.post(&cb("spec"), json!({ "spec_markdown": "# S" }))
            .await
            .0,
        200
    );
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    worker.drain().await.unwrap();
    // The branch was fixed when the box was made: renaming the task does not move it.
    let own = format!("apiary/{tid}-add-a-footer");
    assert_eq!(
        app.store.get_task(&tid).await.unwrap().branch.as_deref(),
        Some(own.as_str())
    );
    let (status, _) = admin
        .patch(
            &format!("/api/v1/tasks/{tid}"),
            json!({ "title": "Something else" }),
        )
        .await;
    assert_eq!(status, 200);

    for url in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>1</script>",
        "//evil.test/x",
        "http://",
    ] {
        let (status, body) = bx
            .post(&cb("pr"), json!({ "pr_url": url, "branch": own }))
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("pr_url")),
            "{url}: {body}"
        );
    }
    let theirs = format!("apiary/{other}-add-a-footer");
    for branch in [theirs.as_str(), "apiary/", "apiary/x"] {
        let (status, body) = bx
            .post(
                &cb("pr"),
                json!({ "pr_url": "http://example.test/pr/1", "branch": branch }),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("branch")),
            "{branch}: {body}"
        );
    }
    let task = app.store.get_task(&tid).await.unwrap();
    assert_eq!(
        (task.pr_url, task.agent_status.as_str()),
        (None, "implementing")
    );

    // The local forge's link (the review page) and the task's own branch pass.
    let review = format!("{}/tasks/{tid}/review", app.base);
    let (status, body) = bx
        .post(&cb("pr"), json!({ "pr_url": review, "branch": own }))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pr_ready")),
        "{body}"
    );
    assert_eq!(
        app.store.get_task(&tid).await.unwrap().pr_url.as_deref(),
        Some(review.as_str())
    );
}
