//! "Tear down now" while the box works is refused: the task would otherwise wait out its
//! phase budget with no box.

use apiary_core::AgentStatus;
use apiary_store::{Actor, TransitionRequest};
use apiary_testkit::TestApp;
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

#[tokio::test]
async fn tear_down_now_is_refused_while_the_box_works_and_taken_while_it_waits() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, _) = provisioned_task(&app, &admin, &url).await;
    let teardown = format!("/api/v1/tasks/{tid}/agent/teardown");
    let box_ = Actor::Box("box".into());
    let human = Actor::Human("someone".into());
    let system = Actor::System;
    for (to, actor) in [
        (None, None),
        (Some(AgentStatus::Speccing), Some(&box_)),
        (Some(AgentStatus::SpecReady), Some(&box_)),
        (Some(AgentStatus::SpecApproved), Some(&human)),
        (Some(AgentStatus::Implementing), Some(&system)),
        (Some(AgentStatus::PrReady), Some(&box_)),
        (Some(AgentStatus::ChangesRequested), Some(&human)),
    ] {
        if let (Some(to), Some(actor)) = (to, actor) {
            app.orch
                .transition(TransitionRequest::new(&tid, to, actor.clone()))
                .await
                .unwrap();
        }
        let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
        let status = t["agent"]["status"].as_str().unwrap().to_string();
        let (code, body) = admin.post(&teardown, json!({})).await;
        if ["spec_ready", "pr_ready"].contains(&status.as_str()) {
            assert_eq!(code, 202, "{status}: {body}");
        } else {
            assert_eq!(code, 409, "{status}: {body}");
            assert_eq!(body["error"]["code"], "box_working");
            assert_eq!(body["error"]["current"], status.as_str());
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("status {status}")),
                "{body}"
            );
        }
    }
    // The refusals enqueued nothing: one teardown job per accepted request.
    let jobs = app.store.list_task_jobs(&tid).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.kind == "teardown").count(), 2);
}
