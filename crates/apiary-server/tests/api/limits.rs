//! Abuse limits: sign-in lockout, the callback rate per box, live streams per user.

use apiary_testkit::{Client, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::json;

use crate::agent_loop::{provisioned_task, ControlPlane};

#[tokio::test]
async fn five_failed_sign_ins_lock_the_account_with_a_429_and_others_are_unaffected() {
    let app = TestApp::spawn().await;
    let (_, _) = app.member("other@example.test").await;
    for _ in 0..5 {
        let (status, _) = app
            .anonymous()
            .post(
                "/api/v1/auth/login",
                json!({ "email": ADMIN_EMAIL, "password": "guess" }),
            )
            .await;
        assert_eq!(status, 401);
    }
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "locked, even with the right password");
    assert!(resp.headers().get("retry-after").is_some());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("locked"));
    let (status, _) = app
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({ "email": "other@example.test", "password": "member password" }),
        )
        .await;
    assert_eq!(status, 200, "another account signs in");
}

#[tokio::test]
async fn a_box_past_its_request_rate_gets_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cp = ControlPlane::default();
    let url = cp.start().await;
    let (_, tid, tokens) = provisioned_task(&app, &admin, &url).await;
    let http = reqwest::Client::new();
    let path = format!("{}/api/v1/agent/tasks/{tid}", app.base);
    let mut calls = Vec::new();
    for _ in 0..400 {
        calls.push(http.get(&path).bearer_auth(&tokens.callback_token).send());
    }
    let results = futures_util::future::join_all(calls).await;
    let limited: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|r| r.status() == 429)
        .collect();
    assert!(
        !limited.is_empty(),
        "400 requests at once went past 200 a second"
    );
    assert!(limited[0].headers().get("retry-after").is_some());
    // Another box is not slowed down by this one.
    let (_, other_tid, other) = provisioned_task(&app, &admin, &url).await;
    let (status, _) = Client::with_bearer(&app.base, &other.callback_token)
        .get(&format!("/api/v1/agent/tasks/{other_tid}"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_user_has_at_most_twenty_live_streams_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut open = Vec::new();
    for _ in 0..20 {
        let resp = admin
            .http
            .get(format!("{}/api/v1/events", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        open.push(resp);
    }
    let refused = admin
        .http
        .get(format!("{}/api/v1/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    drop(open.pop());
    // The server notices the closed stream when it next writes; give it a moment.
    let mut ok = false;
    for _ in 0..50 {
        let resp = admin
            .http
            .get(format!("{}/api/v1/events", app.base))
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a closed stream gives its place back");
}
