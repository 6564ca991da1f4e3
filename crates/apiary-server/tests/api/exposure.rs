//! What members and strangers can read: emails only for admins, no credentials in a
//! read-only member's `repo_url`, `/metrics` behind a token when one is set.

use std::sync::Arc;

use apiary_server::limits::Limits;
use apiary_server::ServerConfig;
use apiary_testkit::TestApp;
use serde_json::json;

use crate::sign_in::spawn;

#[tokio::test]
async fn members_see_names_only_and_no_credentials_in_repo_urls() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (reader, reader_user) = app.member("reader@example.test").await;
    let (_, listed) = reader.get("/api/v1/users").await;
    for u in listed.as_array().unwrap() {
        assert!(u["id"].is_string() && u["name"].is_string(), "{u}");
        assert!(u.get("email").is_none() && u.get("role").is_none(), "{u}");
    }
    let (_, listed) = admin.get("/api/v1/users").await;
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["email"] == "reader@example.test" && u["role"] == "member"));

    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap();
    let url = "https://x-access-token:ghp_secret@github.com/o/r.git";
    let (status, _) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "repo_url": url } }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", reader_user.id),
            json!({ "access": "read" }),
        )
        .await;
    assert_eq!(status, 204);
    let (_, seen) = reader.get(&format!("/api/v1/projects/{pid}")).await;
    assert_eq!(seen["agent"]["repo_url"], "https://github.com/o/r.git");
    let (_, all) = reader.get("/api/v1/projects").await;
    assert!(!all.to_string().contains("ghp_secret"), "{all}");
    let (_, own) = admin.get(&format!("/api/v1/projects/{pid}")).await;
    assert_eq!(
        own["agent"]["repo_url"], url,
        "writers still see what they edit"
    );
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let config = ServerConfig {
        metrics_token: Some("scrape-me".into()),
        ..ServerConfig::default()
    };
    let (base, _db) = spawn(Arc::new(Limits::default()), config).await;
    let http = reqwest::Client::new();
    let get = |token: Option<&str>| {
        let mut r = http.get(format!("{base}/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some("scrape-m")).await.unwrap().status(), 401);
    assert_eq!(get(Some("scrape-me!")).await.unwrap().status(), 401);
    let ok = get(Some("scrape-me")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("# EOF"));
    // Without a token it stays open (the default).
    let app = TestApp::spawn().await;
    let open = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(open.status(), 200);
}

/// Reads the stream until `needle` shows up (`Some(true)`), the stream ends (`Some(false)`)
/// or `secs` pass (`None`).
async fn read_until(resp: &mut reqwest::Response, needle: &str, secs: u64) -> Option<bool> {
    let mut buf = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(secs), async {
        loop {
            if buf.contains(needle) {
                return true;
            }
            match resp.chunk().await {
                Ok(Some(c)) => buf.push_str(&String::from_utf8_lossy(&c)),
                _ => return false,
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn a_removed_member_stops_getting_live_events_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (member, member_user) = app.member("m@example.test").await;
    let (_, project) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = project["id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .put(
            &format!("/api/v1/projects/{pid}/members/{}", member_user.id),
            json!({ "access": "read" }),
        )
        .await;
    assert_eq!(status, 204);
    crate::agent_loop::agent_on(&admin, &pid).await;
    let mut tids = Vec::new();
    for title in ["One", "Two"] {
        let (_, t) = admin
            .post(
                &format!("/api/v1/projects/{pid}/tasks"),
                json!({ "title": title }),
            )
            .await;
        tids.push(t["id"].as_str().unwrap().to_string());
    }
    for query in [String::new(), format!("?project={pid}")] {
        let mut sse = member
            .http
            .get(format!("{}/api/v1/events{query}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(sse.status(), 200);
        let (status, body) = admin
            .post(
                &format!("/api/v1/tasks/{}/agent/handoff", tids[0]),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            read_until(&mut sse, &tids[0], 10).await,
            Some(true),
            "a member sees the project's events"
        );
        admin
            .post(
                &format!("/api/v1/tasks/{}/agent/cancel", tids[0]),
                json!({}),
            )
            .await;

        app.store
            .remove_project_member(&pid, &member_user.id)
            .await
            .unwrap();
        let (status, body) = admin
            .post(
                &format!("/api/v1/tasks/{}/agent/handoff", tids[1]),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // A stream of one project ends; the stream of "my projects" goes on without it.
        let seen = read_until(&mut sse, &tids[1], 3).await;
        if query.is_empty() {
            assert_eq!(
                seen, None,
                "nothing of the project reaches a removed member"
            );
        } else {
            assert_eq!(
                seen,
                Some(false),
                "the project's stream ends without the event"
            );
        }
        app.store
            .set_project_member(&pid, &member_user.id, apiary_core::ProjectAccess::Read)
            .await
            .unwrap();
        admin
            .post(
                &format!("/api/v1/tasks/{}/agent/cancel", tids[1]),
                json!({}),
            )
            .await;
    }
}
