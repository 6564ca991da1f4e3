//! Prompt templates are user input: ones that would allocate without bound are refused on
//! save, and one that only explodes over a task's real text fails in the preview with a
//! message while the server carries on.

use apiary_testkit::TestApp;
use serde_json::json;

#[tokio::test]
async fn templates_that_would_allocate_without_bound_are_refused_and_the_server_stays_up() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap().to_string();
    let doubling = r#"{% set ns = namespace(s="xx") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"#;
    let indent = r#"{{ "" | indent(1000000000000) }}"#;

    for (kind, template, says) in [("implement", indent, "indent"), ("revise", doubling, "~")] {
        let (status, err) = admin
            .patch("/api/v1/settings", json!({ "prompts": { kind: template } }))
            .await;
        let field = format!("prompts.{kind}");
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (400, Some(field.as_str())),
            "{err}"
        );
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{err}"
        );
        let (status, err) = admin
            .patch(
                &format!("/api/v1/projects/{pid}"),
                json!({ "agent": { "prompts": { kind: template } } }),
            )
            .await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (400, Some(field.as_str())),
            "{err}"
        );
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{err}"
        );
    }

    // Fine over the sample task, a few terabytes over this one's description.
    let multiplying = r#"{{ task.description | replace("a", task.description) | replace("a", task.description) }}"#;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "prompts": { "spec": multiplying } } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T", "description": "a".repeat(50_000) }),
        )
        .await;
    let tid = task["id"].as_str().unwrap();
    let (status, prompts) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/prompts"))
        .await;
    assert_eq!(status, 200, "{prompts}");
    let spec = prompts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "spec")
        .unwrap();
    assert_eq!(spec["rendered"], serde_json::Value::Null);
    let error = spec["error"].as_str().unwrap();
    assert!(error.contains("more than 8388608 bytes"), "{error}");
    let (status, _) = admin.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
    assert_eq!(status, 200);
}
