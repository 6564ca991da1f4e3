//! Projects, tasks, comments, the audit trail, and the rules on what a body may contain.

use apiary_testkit::TestApp;
use serde_json::json;

#[tokio::test]
async fn login_create_project_create_task_and_list_tasks() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, project) = admin
        .post(
            "/api/v1/projects",
            json!({ "name": "Website", "description": "the site" }),
        )
        .await;
    assert_eq!(status, 201, "{project}");
    let pid = project["id"].as_str().unwrap();
    assert_eq!(project["agent"]["base_branch"], "main");
    assert_eq!(project["agent"]["enabled"], false);
    let (status, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Fix the footer", "description": "It overlaps." }),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["agent"]["status"], "none");
    let (status, tasks) = admin.get(&format!("/api/v1/projects/{pid}/tasks")).await;
    assert_eq!(status, 200);
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["title"], "Fix the footer");

    let (status, patched) = admin
        .patch(&format!("/api/v1/projects/{pid}"), json!({ "agent": { "enabled": true, "repo_url": "https://git.example.test/repo.git", "prompts": { "spec": "Spec {{ task.title }}" } } }))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["agent"]["enabled"], true);
    assert_eq!(patched["agent"]["prompts"]["spec"], "Spec {{ task.title }}");
    assert_eq!(patched["agent"]["prompts"]["implement"], "");
}

#[tokio::test]
async fn agent_status_cannot_be_written_through_task_patch() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap();
    for body in [
        json!({ "agent_status": "merged" }),
        json!({ "agent": { "status": "merged" } }),
        json!({ "title": "renamed", "agent_status": "pr_ready" }),
    ] {
        let (status, err) = admin
            .patch(&format!("/api/v1/tasks/{tid}"), body.clone())
            .await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "bad_request");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown field"),
            "{err}"
        );
    }
    let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
    assert_eq!(t["agent"]["status"], "none");
    assert_eq!(t["title"], "T", "a refused patch changed nothing");
    assert!(app.store.list_task_events(tid).await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_or_oversized_bodies_answer_400_or_413_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, err) = admin
        .send_raw(reqwest::Method::POST, "/api/v1/projects", "{\"name\": ")
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "bad_request");
    let (status, err) = admin.post("/api/v1/projects", json!({ "name": 5 })).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "name", "{err}");
    let (status, err) = admin
        .post("/api/v1/projects", json!({ "title": "x" }))
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = admin.post("/api/v1/projects", json!({ "name": "" })).await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("name")),
        "{err}"
    );
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, err) = admin
        .send_raw(reqwest::Method::POST, "/api/v1/projects", big)
        .await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(err["error"]["code"], "too_large");
    let (_, projects) = admin.get("/api/v1/projects").await;
    assert!(projects.as_array().unwrap().is_empty());

    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    let (status, err) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "preset": "hal9000" } }),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("preset")),
        "{err}"
    );
    let (status, err) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T", "status": "someday" }),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T", "assignee_id": "nobody" }),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("assignee_id")),
        "{err}"
    );
    assert!(admin
        .get(&format!("/api/v1/projects/{pid}/tasks"))
        .await
        .1
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(admin.get("/api/v1/nope").await.0, 404);
}

#[tokio::test]
async fn assigning_to_the_agent_hands_over_live_and_in_the_audit_trail() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut live = app.orch.bus.subscribe();
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    crate::agent_loop::agent_on(&admin, pid).await;
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap();
    let agent = app.store.agent_user().await.unwrap();
    let (status, t) = admin
        .patch(
            &format!("/api/v1/tasks/{tid}"),
            json!({ "assignee_id": agent.id }),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["agent"]["status"], "queued");
    assert_eq!(t["agent"]["queue_position"], 1);
    let ev = live.try_recv().expect("a live event after commit");
    assert_eq!(
        (ev.task_id.as_str(), ev.agent_status.map(|s| s.as_str())),
        (tid, Some("queued"))
    );
    let (_, events) = admin.get(&format!("/api/v1/tasks/{tid}/events")).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_kind"], "human");
    assert_eq!(events[0]["to_status"], "queued");
    assert_eq!(events[0]["id"], ev.id);
    // Handing over again is refused with the current status and what is allowed.
    let (status, err) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200, "a repeated hand-off is a no-op: {err}");
    assert_eq!(err["changed"], false);
    app.store
        .transition(apiary_store::TransitionRequest::new(
            tid,
            apiary_core::AgentStatus::Provisioning,
            apiary_store::Actor::System,
        ))
        .await
        .unwrap();
    let (status, err) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["current"], "provisioning");
    assert_eq!(err["error"]["allowed"], json!(["cancelled"]));
}

#[tokio::test]
async fn comments_logs_health_metrics_and_openapi() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap();
    let (status, c) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/comments"),
            json!({ "body": "Looks good" }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let (status, err) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/comments"),
            json!({ "body": " " }),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("body"))
    );
    let (_, comments) = admin.get(&format!("/api/v1/tasks/{tid}/comments")).await;
    assert_eq!(comments.as_array().unwrap().len(), 1);
    assert_eq!(comments[0]["body"], "Looks good");

    app.store
        .append_logs(tid, vec!["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    let (_, page) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?after=1&limit=1"))
        .await;
    assert_eq!(page["lines"][0]["line"], "b");
    assert_eq!(page["next_after"], 2);
    assert_eq!(
        admin
            .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=0"))
            .await
            .0,
        400
    );

    let (status, health) = app.anonymous().get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, metrics) = app.anonymous().get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics
        .as_str()
        .unwrap()
        .contains("apiary_http_requests_total{method=\"POST\",status=\"201\"}"));
    let (status, doc) = app.anonymous().get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/auth/login",
        "/api/v1/projects/{id}",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/agent/handoff",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"].get("TaskOut").is_some());
}

#[tokio::test]
async fn settings_are_admin_only_secrets_write_only_and_bad_values_name_their_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (member, _) = app.member("m@example.test").await;
    assert_eq!(member.get("/api/v1/settings").await.0, 403);
    assert_eq!(
        member
            .patch("/api/v1/settings", json!({ "chatty_events": true }))
            .await
            .0,
        403
    );
    let (status, s) = admin.get("/api/v1/settings").await;
    assert_eq!(status, 200);
    assert_eq!(s["agent_orchestration_enabled"], false);
    assert_eq!(s["max_concurrent_boxes"], 5);
    assert_eq!(s["box_host_key"], json!({ "set": false }));

    let secret = "host-key-0123456789abcdef";
    let (status, s) = admin
        .patch("/api/v1/settings", json!({ "box_host_key": secret, "telegram": { "bot_token": "123:abc", "chat_id": "42" }, "max_concurrent_boxes": 2 }))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["box_host_key"], json!({ "set": true }));
    assert_eq!(s["telegram"]["bot_token"], json!({ "set": true }));
    assert_eq!(s["max_concurrent_boxes"], 2);
    assert!(!s.to_string().contains(secret), "a secret never comes back");
    assert_eq!(
        app.store
            .setting_secret("box_host_key")
            .await
            .unwrap()
            .as_deref(),
        Some(secret)
    );
    // "" keeps, null clears.
    let (_, s) = admin
        .patch("/api/v1/settings", json!({ "box_host_key": "" }))
        .await;
    assert_eq!(s["box_host_key"], json!({ "set": true }));
    let (_, s) = admin
        .patch(
            "/api/v1/settings",
            json!({ "telegram": { "bot_token": null } }),
        )
        .await;
    assert_eq!(s["telegram"]["bot_token"], json!({ "set": false }));
    assert_eq!(s["telegram"]["chat_id"], "42");

    for (body, field) in [
        (json!({ "timeouts": { "idle_s": 0 } }), "timeouts.idle_s"),
        (json!({ "max_concurrent_boxes": 0 }), "max_concurrent_boxes"),
        (json!({ "box_provider": "cloud" }), "box_provider"),
        (json!({ "egress_allow": ["not a host!"] }), "egress_allow"),
        (
            json!({ "callback_base_url": "ftp://x" }),
            "callback_base_url",
        ),
    ] {
        let (status, err) = admin.patch("/api/v1/settings", body.clone()).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (400, Some(field)),
            "{body} -> {err}"
        );
    }
    let (_, s) = admin.get("/api/v1/settings").await;
    assert_eq!(
        s["timeouts"]["idle_s"], 3600,
        "refused writes changed nothing"
    );
    assert_eq!(s["max_concurrent_boxes"], 2);
}

#[tokio::test]
async fn a_stream_resuming_far_behind_gets_every_missed_event_once_in_order_then_live_ones() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Chatty" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    // 1,200 log events (one a batch, posted one after another): more than two catch-up pages.
    for i in 0..1200 {
        app.store
            .append_logs(&tid, vec![format!("line {i}")])
            .await
            .unwrap();
    }
    let mut resp = admin
        .http
        .get(format!("{}/api/v1/events?task={tid}", app.base))
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut buf = String::new();
    let mut seqs = Vec::new();
    let mut ids = Vec::new();
    let mut sent_live = false;
    let read = async {
        while seqs.last() != Some(&1201) {
            let chunk = resp.chunk().await.unwrap().expect("stream open");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id: ")) else {
                    continue;
                };
                ids.push(id.parse::<i64>().unwrap());
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                seqs.push(v["seq"].as_i64().unwrap());
            }
            if !sent_live && seqs.last() == Some(&1200) {
                // Caught up: one more batch must now arrive live.
                sent_live = true;
                app.store
                    .append_logs(&tid, vec!["live".into()])
                    .await
                    .map(|done| {
                        app.orch
                            .publish_log(&tid, pid, done.event_id, done.last_seq)
                    })
                    .unwrap();
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("stream stalled after {} events", seqs.len()));
    assert_eq!(seqs, (1..=1201).collect::<Vec<i64>>());
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids in order, none twice"
    );
}
