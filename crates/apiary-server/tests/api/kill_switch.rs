//! The kill switch is inert: with orchestration off or the project's agent disabled nothing is
//! queued (409 saying what is off), and resuming a parked task obeys the switch and the cap.

use apiary_core::AgentStatus;
use apiary_store::{Actor, TransitionRequest};
use apiary_testkit::{Client, TestApp};
use serde_json::{json, Value};

use crate::agent_loop::{agent_on, provisioned_task, ControlPlane};

fn refused(status: u16, body: &Value, code: &str, names: &str) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(names),
        "{body}"
    );
}

async fn settings(admin: &Client, body: Value) {
    let (status, s) = admin.patch("/api/v1/settings", body).await;
    assert_eq!(status, 200, "{s}");
}

#[tokio::test]
async fn a_hand_off_is_refused_while_orchestration_or_the_projects_agent_is_off() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let agent = app.store.agent_user().await.unwrap();
    let (_, p) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (_, t) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T" }),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_string();
    let handoff = format!("/api/v1/tasks/{tid}/agent/handoff");

    // Orchestration off (the default): every way of handing over is refused.
    let (status, body) = admin.post(&handoff, json!({})).await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );
    let (status, body) = admin
        .patch(
            &format!("/api/v1/tasks/{tid}"),
            json!({ "assignee_id": agent.id }),
        )
        .await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );
    let (status, body) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "U", "assignee_id": agent.id }),
        )
        .await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );

    // Orchestration on, the project's agent still disabled.
    settings(&admin, json!({ "agent_orchestration_enabled": true })).await;
    let (status, body) = admin.post(&handoff, json!({})).await;
    refused(status, &body, "agent_disabled", "agent.enabled");
    let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
    assert_eq!(t["agent"]["status"], "none", "nothing was queued: {t}");
    let (_, tasks) = admin.get(&format!("/api/v1/projects/{pid}/tasks")).await;
    assert_eq!(tasks.as_array().unwrap().len(), 1, "no task was created");

    agent_on(&admin, &pid).await;
    let (status, body) = admin.post(&handoff, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"]["agent"]["status"], "queued");

    // A retry is a hand-off too.
    app.orch
        .transition(
            TransitionRequest::new(&tid, AgentStatus::Failed, Actor::System).with_error("boom"),
        )
        .await
        .unwrap();
    settings(&admin, json!({ "agent_orchestration_enabled": false })).await;
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );
    // ... and so is a hand-off of the failed task.
    let (status, body) = admin.post(&handoff, json!({})).await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );
    settings(&admin, json!({ "agent_orchestration_enabled": true })).await;
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A provisioned task moved to `spec_ready` by its box, then parked (its box taken away).
async fn parked_at_spec_ready(app: &TestApp, admin: &Client, url: &str) -> String {
    let (_, tid, _) = provisioned_task(app, admin, url).await;
    for to in [AgentStatus::Speccing, AgentStatus::SpecReady] {
        app.orch
            .transition(TransitionRequest::new(&tid, to, Actor::Box("box".into())))
            .await
            .unwrap();
    }
    app.store.detach_box(&tid, true).await.unwrap();
    tid
}

#[tokio::test]
async fn resuming_a_parked_task_respects_the_kill_switch_and_the_cap() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let parked = parked_at_spec_ready(&app, &admin, &url).await;
    let approve = format!("/api/v1/tasks/{parked}/agent/approve-spec");
    settings(&admin, json!({ "max_concurrent_boxes": 1 })).await;
    // Another task holds the only box.
    let (_, busy, _) = provisioned_task(&app, &admin, &url).await;
    assert_eq!(app.store.live_box_count().await.unwrap(), 1);

    let (status, body) = admin.post(&approve, json!({})).await;
    refused(status, &body, "no_free_box", "max_concurrent_boxes");
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{parked}/agent/revise-spec"),
            json!({ "feedback": "shorter" }),
        )
        .await;
    refused(status, &body, "no_free_box", "max_concurrent_boxes");

    // Past the API (an action accepted before the cap filled): the dispatch waits instead of
    // making a box over the cap.
    app.orch
        .transition(TransitionRequest::new(
            &parked,
            AgentStatus::SpecApproved,
            Actor::Human("someone".into()),
        ))
        .await
        .unwrap();
    app.worker.drain().await.unwrap();
    let t = app.store.get_task(&parked).await.unwrap();
    assert!(t.box_torn_down, "no box was made over the cap: {t:?}");
    assert!(
        t.last_error
            .as_deref()
            .unwrap_or("")
            .contains("waiting for a free box"),
        "{t:?}"
    );
    assert_eq!(app.store.live_box_count().await.unwrap(), 1);

    // The kill switch holds a resume too, even with a box free.
    let other = parked_at_spec_ready(&app, &admin, &url).await;
    app.store.detach_box(&busy, false).await.unwrap();
    settings(
        &admin,
        json!({ "max_concurrent_boxes": 5, "agent_orchestration_enabled": false }),
    )
    .await;
    let (status, body) = admin
        .post(
            &format!("/api/v1/tasks/{other}/agent/approve-spec"),
            json!({}),
        )
        .await;
    refused(
        status,
        &body,
        "orchestration_off",
        "agent_orchestration_enabled",
    );
    let (_, t) = admin.get(&format!("/api/v1/tasks/{other}")).await;
    assert_eq!(t["agent"]["status"], "spec_ready");
}
