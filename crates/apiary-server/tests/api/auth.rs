//! Credentials, CSRF and the error shape.

use apiary_testkit::{Client, TestApp, ADMIN_EMAIL};
use serde_json::json;

#[tokio::test]
async fn requests_without_credentials_answer_401_with_the_error_shape() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    for path in ["/api/v1/me", "/api/v1/projects", "/api/v1/users"] {
        let (status, body) = anon.get(path).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (status, _) = anon.post("/api/v1/projects", json!({ "name": "x" })).await;
    assert_eq!(status, 401);
    let (status, _) = Client::with_bearer(&app.base, "apiary_pat_bogus")
        .get("/api/v1/me")
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_a_wrong_password_is_refused() {
    let app = TestApp::spawn().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&json!({ "email": ADMIN_EMAIL, "password": apiary_testkit::ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "email": ADMIN_EMAIL, "password": apiary_testkit::ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Secure"));

    let (status, body) = app
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": "not the password" }),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    // The Agent user has no password and can never sign in.
    let (status, _) = app
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({ "email": apiary_store::AGENT_EMAIL, "password": "" }),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_bearer_tokens_do_not() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, body) = admin
        .without_csrf()
        .post("/api/v1/projects", json!({ "name": "P" }))
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, me) = admin.get("/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["csrf_token"].as_str(), admin.csrf.as_deref());
    let (status, projects) = admin.get("/api/v1/projects").await;
    assert_eq!(
        (status, projects.as_array().unwrap().len()),
        (200, 0),
        "refused write created nothing"
    );

    let admin_id = me["user"]["id"].as_str().unwrap();
    let (_, token) = app.store.create_api_token(admin_id, "ci").await.unwrap();
    let bot = Client::with_bearer(&app.base, &token);
    let (status, _) = bot.post("/api/v1/projects", json!({ "name": "P" })).await;
    assert_eq!(status, 201);

    let (status, _) = admin.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(status, 204);
    let (status, _) = admin.get("/api/v1/me").await;
    assert_eq!(status, 401, "the session is gone after logout");
}

#[tokio::test]
async fn members_see_only_their_projects_and_read_only_members_cannot_write() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, project) = admin
        .post("/api/v1/projects", json!({ "name": "Secret" }))
        .await;
    let pid = project["id"].as_str().unwrap();
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "T" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap();

    let (outsider, _) = app.member("outsider@example.test").await;
    assert_eq!(
        outsider.get(&format!("/api/v1/projects/{pid}")).await.0,
        404
    );
    assert_eq!(outsider.get(&format!("/api/v1/tasks/{tid}")).await.0, 404);
    assert_eq!(
        outsider
            .get("/api/v1/projects")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let (reader, reader_user) = app.member("reader@example.test").await;
    let (status, _) = admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", reader_user.id),
            json!({ "access": "read" }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, p) = reader.get(&format!("/api/v1/projects/{pid}")).await;
    assert_eq!((status, p["access"].as_str()), (200, Some("read")));
    for (status, what) in [
        (
            reader
                .patch(&format!("/api/v1/tasks/{tid}"), json!({ "title": "x" }))
                .await
                .0,
            "task patch",
        ),
        (
            reader
                .post(
                    &format!("/api/v1/projects/{pid}/tasks"),
                    json!({ "title": "x" }),
                )
                .await
                .0,
            "task create",
        ),
        (
            reader
                .patch(&format!("/api/v1/projects/{pid}"), json!({ "name": "x" }))
                .await
                .0,
            "project patch",
        ),
        (
            reader
                .post(
                    &format!("/api/v1/tasks/{tid}/comments"),
                    json!({ "body": "x" }),
                )
                .await
                .0,
            "comment",
        ),
        (
            reader
                .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
                .await
                .0,
            "handoff",
        ),
    ] {
        assert_eq!(status, 403, "{what}");
    }
    let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
    assert_eq!(
        (t["title"].as_str(), t["agent"]["status"].as_str()),
        (Some("T"), Some("none"))
    );
}
