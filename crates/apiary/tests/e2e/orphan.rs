//! Boxes and their Apiary, with a real `apiary serve` killed from outside: killed and started
//! again within `timeouts.orphan_s` it keeps its box (the task completes on it), killed for good
//! it leaves no box process behind once the window has passed; a box killed while serve is
//! down is found vanished after the restart, and a retry gets a new box within the cap.

use std::path::Path;
use std::time::{Duration, Instant};

use apiary_testkit::bare_repo;
use serde_json::{json, Value};

use crate::crash::{free_port, healthy, sign_in, start, suite_database, wait_until};
use crate::{box_pid, exe, write_script, AGENT};

/// Alive and not a zombie waiting for its reaper.
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists && state != Some("Z")
}

/// Serve on a fresh data folder (and the suite's database), signed in, with orchestration on,
/// `settings` applied, and a project on a fresh repository whose agent is [`AGENT`]:
/// (serve, admin, data folder, base URL, port, project id).
async fn serve_with_project(
    dir: &Path,
    database_url: Option<&str>,
    settings: Value,
) -> (
    crate::crash::Serve,
    apiary_testkit::Client,
    std::path::PathBuf,
    String,
    u16,
    String,
) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = start(&data, database_url, port, &exe());
    healthy(&base).await;
    let admin = sign_in(&base).await;
    let mut body = json!({
        "agent_orchestration_enabled": true,
        // The test's repository sits beside the data folder.
        "local_repo_roots": [std::fs::canonicalize(dir).unwrap()],
    });
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let (status, s) = admin.patch("/api/v1/settings", body).await;
    assert_eq!(status, 200, "{s}");
    let repo = bare_repo(dir);
    let command = write_script(dir, "agent.sh", AGENT);
    let (_, p) = admin
        .post("/api/v1/projects", json!({ "name": "Lifecycle" }))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "enabled": true, "repo_url": repo.display().to_string(), "preset": "script", "command": command } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (serve, admin, data, base, port, pid)
}

#[tokio::test]
async fn a_box_killed_while_serve_is_down_is_found_vanished_and_a_retry_gets_a_new_box() {
    let (_db, database_url) = suite_database().await;
    let database_url = database_url.as_deref();
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, admin, data, base, port, pid) = serve_with_project(
        dir.path(),
        database_url,
        json!({ "max_concurrent_boxes": 1, "watchdog_interval_s": 1 }),
    )
    .await;
    let boxes = data.join("boxes");
    let _reaper = apiary_testkit::BoxReaper(boxes.clone());
    let (_, t) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Again" }),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_string();
    admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    let t = wait_until(&admin, &tid, "spec_ready", |t| {
        t["agent"]["status"] == "spec_ready"
    })
    .await;
    let dead_box = t["agent"]["box_id"].as_str().unwrap().to_string();
    let agent_pid = box_pid(&boxes, &dead_box);

    // serve dies; the box is killed from outside while it is down; serve comes back.
    serve.kill9();
    unsafe { libc::kill(-agent_pid, libc::SIGKILL) };
    serve = start(&data, database_url, port, &exe());
    healthy(&base).await;
    let t = wait_until(&admin, &tid, "failed", |t| t["agent"]["status"] == "failed").await;
    assert_eq!(t["agent"]["last_error"], "box vanished");
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let t = wait_until(&admin, &tid, "spec_ready again", |t| {
        t["agent"]["status"] == "spec_ready"
    })
    .await;
    assert_ne!(t["agent"]["box_id"], dead_box.as_str(), "a new box: {t}");
    drop(serve);
}

#[tokio::test]
async fn a_box_survives_a_restart_of_serve_but_not_its_end() {
    let (_db, database_url) = suite_database().await;
    let database_url = database_url.as_deref();
    let dir = tempfile::tempdir().unwrap();
    let orphan_s = 6;
    let (mut serve, admin, data, base, port, pid) = serve_with_project(
        dir.path(),
        database_url,
        json!({ "timeouts": { "orphan_s": orphan_s } }),
    )
    .await;
    let (_, s) = admin.get("/api/v1/settings").await;
    assert_eq!(s["timeouts"]["orphan_s"], orphan_s);
    let boxes = data.join("boxes");
    let _reaper = apiary_testkit::BoxReaper(boxes.clone());
    let (_, t) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Outlive" }),
        )
        .await;
    let tid = t["id"].as_str().unwrap().to_string();
    admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    let t = wait_until(&admin, &tid, "spec_ready", |t| {
        t["agent"]["status"] == "spec_ready"
    })
    .await;
    let box_id = t["agent"]["box_id"].as_str().unwrap().to_string();
    let agent_pid = box_pid(&boxes, &box_id);

    // A restart inside the window: the same box carries the task on to its PR.
    serve.kill9();
    serve = start(&data, database_url, port, &exe());
    healthy(&base).await;
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    let t = wait_until(&admin, &tid, "pr_ready", |t| {
        t["agent"]["status"] == "pr_ready"
    })
    .await;
    assert_eq!(t["agent"]["box_id"], box_id.as_str(), "no new box was made");
    assert!(alive(agent_pid));

    // Gone for good: the box gives up once the window has passed, and leaves nothing running.
    serve.kill9();
    let killed = Instant::now();
    while alive(agent_pid) || alive(-agent_pid) {
        assert!(
            killed.elapsed() < Duration::from_secs(orphan_s + 15),
            "the box outlived its Apiary by {:?}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(orphan_s - 1),
        "the box gave up before its window: {:?}",
        killed.elapsed()
    );
    let own = boxes.join(&box_id).join("box");
    let left: Vec<_> = std::fs::read_dir(&own)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the box emptied its folder: {left:?}");
    drop(serve);
}
