//! The authorization matrix: every principal against every agent endpoint.

use apiary_core::ProjectAccess;
use apiary_testkit::{Client, TestApp};
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

const HUMAN_ACTIONS: [&str; 8] = [
    "handoff",
    "approve-spec",
    "revise-spec",
    "request-changes",
    "mark-merged",
    "retry",
    "cancel",
    "teardown",
];

fn action_body(action: &str) -> serde_json::Value {
    match action {
        "revise-spec" => json!({ "feedback": "shorter" }),
        "request-changes" => json!({ "comments": [{ "body": "x" }] }),
        _ => json!({}),
    }
}

/// What a principal may get: `allowed` means the request passed authorization (its answer is
/// then decided by the state machine: 200, 202 or 409).
fn passed(status: u16) -> bool {
    matches!(status, 200 | 202 | 409)
}

#[tokio::test]
async fn every_principal_against_every_agent_endpoint() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (pid, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let (_, other_tid, other_tokens) = provisioned_task(&app, &admin, &url).await;
    let (_, revoked_tid, revoked_tokens) = provisioned_task(&app, &admin, &url).await;
    app.store.detach_box(&revoked_tid, false).await.unwrap();

    let anonymous = app.anonymous();
    let (outsider, _) = app.member("outsider@example.test").await;
    let (reader, reader_user) = app.member("reader@example.test").await;
    app.store
        .set_project_member(&pid, &reader_user.id, ProjectAccess::Read)
        .await
        .unwrap();
    let (member, member_user) = app.member("writer@example.test").await;
    app.store
        .set_project_member(&pid, &member_user.id, ProjectAccess::Write)
        .await
        .unwrap();
    // The Agent user cannot sign in; give it a session directly to show it is refused anyway.
    let agent = app.store.agent_user().await.unwrap();
    let (agent_cookie, agent_csrf) = app.store.create_session(&agent.id, 60_000).await.unwrap();
    let agent_session = Client {
        http: reqwest::Client::builder()
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                h.insert(
                    "cookie",
                    format!("apiary_session={agent_cookie}").parse().unwrap(),
                );
                h
            })
            .build()
            .unwrap(),
        base: app.base.clone(),
        csrf: Some(agent_csrf),
        bearer: None,
    };
    let own_box = Client::with_bearer(&app.base, &tokens.callback_token);
    let other_box = Client::with_bearer(&app.base, &other_tokens.callback_token);
    let revoked_box = Client::with_bearer(&app.base, &revoked_tokens.callback_token);

    // Human endpoints: (principal, expected) where expected is a status or "passed".
    let principals: Vec<(&str, &Client, Option<u16>)> = vec![
        ("anonymous", &anonymous, Some(401)),
        ("member without access", &outsider, Some(404)),
        ("read-only member", &reader, Some(403)),
        ("agent user session", &agent_session, Some(403)),
        ("box token of the task", &own_box, Some(401)),
        ("box token of another task", &other_box, Some(401)),
        ("revoked box token", &revoked_box, Some(401)),
        ("member", &member, None),
        ("admin", &admin, None),
    ];
    for action in HUMAN_ACTIONS {
        for (who, client, expected) in &principals {
            let before = app.store.get_task(&tid).await.unwrap().agent_status;
            let (status, body) = client
                .post(
                    &format!("/api/v1/tasks/{tid}/agent/{action}"),
                    action_body(action),
                )
                .await;
            match expected {
                Some(code) => {
                    assert_eq!(status, *code, "{who} on {action}: {body}");
                    assert_eq!(
                        app.store.get_task(&tid).await.unwrap().agent_status,
                        before,
                        "{who} on {action} changed the task"
                    );
                }
                None => assert!(
                    passed(status),
                    "{who} on {action} should pass authorization, got {status}: {body}"
                ),
            }
        }
    }

    // Callback endpoints: only the task's own live box token passes.
    let (_, _, fresh) = provisioned_task(&app, &admin, &url).await;
    let _ = fresh;
    let callbacks: [(&str, serde_json::Value); 5] = [
        ("status", json!({ "status": "speccing" })),
        ("spec", json!({ "spec_markdown": "s" })),
        (
            "pr",
            json!({ "pr_url": "http://x.test/1", "branch": "apiary/x" }),
        ),
        ("logs", json!({ "lines": ["hello"] })),
        ("error", json!({ "error": "boom" })),
    ];
    let (_, other_view) = other_box
        .get(&format!("/api/v1/agent/tasks/{other_tid}"))
        .await;
    assert_eq!(other_view["task"]["id"], other_tid.as_str());
    let box_principals: Vec<(&str, &Client, u16)> = vec![
        ("anonymous", &anonymous, 401),
        ("admin session", &admin, 401),
        ("member session", &member, 401),
        ("agent user session", &agent_session, 401),
        ("box token of another task", &other_box, 403),
        ("revoked box token", &revoked_box, 401),
    ];
    for (who, client, code) in &box_principals {
        let (status, _) = client.get(&format!("/api/v1/agent/tasks/{tid}")).await;
        assert_eq!(status, *code, "{who} reading the task");
        for (path, body) in &callbacks {
            let before = app.store.get_task(&tid).await.unwrap();
            let (status, resp) = client
                .post(&format!("/api/v1/agent/tasks/{tid}/{path}"), body.clone())
                .await;
            assert_eq!(status, *code, "{who} on {path}: {resp}");
            let after = app.store.get_task(&tid).await.unwrap();
            assert_eq!(
                (after.agent_status, after.spec, after.pr_url),
                (before.agent_status, before.spec, before.pr_url)
            );
        }
    }
    assert!(
        app.store.list_logs(&tid, 0, 10).await.unwrap().is_empty(),
        "no refused log batch was stored"
    );
    // The task's own box passes (the state machine decides the rest).
    let (status, _) = own_box.get(&format!("/api/v1/agent/tasks/{tid}")).await;
    assert_eq!(status, 200);
    let (status, body) = own_box
        .post(
            &format!("/api/v1/agent/tasks/{tid}/logs"),
            json!({ "lines": ["hello"] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn log_batches_past_the_limits_answer_413_and_a_box_cannot_take_human_rows() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let (status, body) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/logs"),
            json!({ "lines": many }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
    let (status, body) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/logs"),
            json!({ "lines": ["x".repeat(17 * 1024)] }),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("line 0"));
    for to in ["cancelled", "spec_approved", "merged", "queued"] {
        let (status, body) = bx
            .post(
                &format!("/api/v1/agent/tasks/{tid}/status"),
                json!({ "status": to }),
            )
            .await;
        assert_eq!(status, 409, "box moving to {to}: {body}");
        assert_eq!(body["error"]["current"], "provisioning");
    }
    let (status, _) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/status"),
            json!({ "status": "bogus" }),
        )
        .await;
    assert_eq!(status, 400);
    // Tokens die with the box.
    app.store.detach_box(&tid, false).await.unwrap();
    let (status, _) = bx.get(&format!("/api/v1/agent/tasks/{tid}")).await;
    assert_eq!(status, 401);
    assert_eq!(app.store.control_token(&tid).await.unwrap(), None);
}
