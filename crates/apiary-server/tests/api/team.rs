//! What a team sees around the loop (issue 17): the board follows the agent, the fleet view,
//! and follow-up messages to a running agent.

use apiary_testkit::{Client, TestApp};
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

async fn column(admin: &Client, tid: &str) -> String {
    let (_, task) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
    task["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_board_follows_the_agent_unless_the_project_says_not_and_peoples_moves_hold() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let (_, project) = admin.get(&format!("/api/v1/projects/{pid}")).await;
    assert_eq!(project["board_follows_agent"], true, "on by default");
    assert_eq!(
        column(&admin, &tid).await,
        "in_progress",
        "a hand-off is work in progress"
    );

    // A person's own move holds until the agent's next step that moves cards.
    admin
        .patch(&format!("/api/v1/tasks/{tid}"), json!({ "status": "todo" }))
        .await;
    let (_, events) = admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    let moved = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "board")
        .expect("the move is in the audit trail (and went out live)");
    assert_eq!(
        (moved["from_status"].as_str(), moved["to_status"].as_str()),
        (Some("in_progress"), Some("todo"))
    );
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let cb = |p: &str| format!("/api/v1/agent/tasks/{tid}/{p}");
    bx.post(&cb("status"), json!({ "status": "speccing" }))
        .await;
    bx.post(&cb("spec"), json!({ "spec_markdown": "# Spec" }))
        .await;
    assert_eq!(column(&admin, &tid).await, "todo");
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    app.worker.drain().await.unwrap();
    let (status, body) = bx
        .post(&cb("pr"), json!({ "pr_url": "http://example.test/pr/1", "branch": format!("apiary/{tid}-add-a-footer") }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(column(&admin, &tid).await, "done", "merged is done");

    // Cancelled goes back to do; off leaves the card alone.
    let (_, t2) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Second" }),
        )
        .await;
    let t2 = t2["id"].as_str().unwrap().to_string();
    admin
        .post(&format!("/api/v1/tasks/{t2}/agent/handoff"), json!({}))
        .await;
    assert_eq!(column(&admin, &t2).await, "in_progress");
    admin
        .post(&format!("/api/v1/tasks/{t2}/agent/cancel"), json!({}))
        .await;
    assert_eq!(column(&admin, &t2).await, "todo");
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "board_follows_agent": false }),
        )
        .await;
    assert_eq!(
        (status, body["board_follows_agent"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    admin
        .post(&format!("/api/v1/tasks/{t2}/agent/handoff"), json!({}))
        .await;
    assert_eq!(
        column(&admin, &t2).await,
        "todo",
        "off: the card stays where people put it"
    );
}

#[tokio::test]
async fn the_fleet_shows_running_and_queued_boxes_to_admins_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, _) = provisioned_task(&app, &admin, &url).await;
    let (_, queued) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Waits" }),
        )
        .await;
    let qid = queued["id"].as_str().unwrap().to_string();
    admin
        .post(&format!("/api/v1/tasks/{qid}/agent/handoff"), json!({}))
        .await;

    let (status, fleet) = admin.get("/api/v1/fleet").await;
    assert_eq!(status, 200, "{fleet}");
    assert_eq!(fleet["cap"], 5);
    assert_eq!(fleet["provider"], "local");
    assert_eq!(fleet["running"].as_array().unwrap().len(), 1, "{fleet}");
    assert_eq!(fleet["running"][0]["task_id"], tid.as_str());
    assert_eq!(fleet["running"][0]["status"], "provisioning");
    assert_eq!(fleet["running"][0]["project_name"], "P");
    assert_eq!(fleet["queued"][0]["task_id"], qid.as_str());
    assert_eq!(fleet["queued"][0]["queue_position"], 1);

    let (member, _) = app.member("m@example.test").await;
    assert_eq!(member.get("/api/v1/fleet").await.0, 403);
}

#[tokio::test]
async fn a_follow_up_reaches_the_running_agents_box_and_the_audit_trail() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    bx.post(
        &format!("/api/v1/agent/tasks/{tid}/status"),
        json!({ "status": "speccing" }),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/message"),
            json!({ "text": "Keep the footer under 40 px." }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    {
        let seen = cp.seen.lock().unwrap();
        let (path, auth, sent) = seen.last().expect("the box got it");
        assert_eq!(path, "/message");
        assert_eq!(auth, &format!("Bearer {}", tokens.control_token));
        assert_eq!(sent["text"], "Keep the footer under 40 px.");
        assert_eq!(sent["author"], "Admin");
    }
    let (_, events) = admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message" && e["message"] == "Keep the footer under 40 px."),
        "{events}"
    );
    // Empty, or while nothing runs: refused, and nothing goes to the box.
    let n = cp.seen.lock().unwrap().len();
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/message"),
            json!({ "text": " " }),
        )
        .await;
    assert_eq!(status, 400);
    bx.post(
        &format!("/api/v1/agent/tasks/{tid}/spec"),
        json!({ "spec_markdown": "# Spec" }),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/message"),
            json!({ "text": "Hi" }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_working")),
        "{body}"
    );
    assert_eq!(cp.seen.lock().unwrap().len(), n);
}
