//! The whole loop on one machine: real local boxes running this very binary's `box-agent`,
//! a real git repository, and a shell-script agent. Runs on SQLite, and on PostgreSQL when
//! APIARY_TEST_DATABASE_URL is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod containers;
mod crash;
mod github;
mod orphan;
mod real_agents;
mod site;

use apiary_testkit::{bare_repo, boxes_dir, git, BoxReaper, Client, TestApp};
use serde_json::{json, Value};

pub(crate) const AGENT: &str = r#"#!/bin/sh
set -eu
prompt="$(cat "$APIARY_PROMPT_FILE")"
echo "test agent: $APIARY_PHASE"
case "$APIARY_PHASE" in
  spec|revise) mkdir -p .apiary; printf '# Spec\n\nWrite hello.txt.\n' > .apiary/SPEC.md ;;
  implement) echo "hello from the agent" > hello.txt ;;
  changes) printf '%s\n' "$prompt" | sed -n 's/^- //p' >> hello.txt ;;
  *) echo "unknown phase" >&2; exit 2 ;;
esac
"#;

const SLOW_AGENT: &str = "#!/bin/sh\necho 'thinking forever'\nsleep 60\n";

pub(crate) fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_apiary"))
}

pub(crate) fn write_script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    format!("sh {}", path.display())
}

/// Orchestration on, short budgets for the timeout test.
pub(crate) async fn configure(admin: &Client, extra: Value) {
    let mut body = json!({ "agent_orchestration_enabled": true });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, s) = admin.patch("/api/v1/settings", body).await;
    assert_eq!(status, 200, "{s}");
}

pub(crate) async fn project_with_agent(admin: &Client, repo: &Path, command: &str) -> String {
    let (_, p) = admin
        .post("/api/v1/projects", json!({ "name": "E2E" }))
        .await;
    let pid = p["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{p}"))
        .to_string();
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": {
                "enabled": true, "repo_url": repo.display().to_string(), "preset": "script", "command": command,
                "prompts": {
                    "spec": "Title: {{ task.title }}",
                    "implement": "Title: {{ task.title }}\n{{ spec }}",
                    "changes": "Review:\n{% for c in comments %}- {{ c.body }}\n{% endfor %}",
                    "revise": "Feedback: {{ feedback }}"
                }
            } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    pid
}

/// Orchestration on (plus `settings`), a project on a fresh repository in `dir` whose agent
/// is `script`, and a task of it handed to the agent: (signed-in admin, repository, task id).
async fn handed_over(
    app: &TestApp,
    dir: &Path,
    script: &str,
    title: &str,
    settings: Value,
) -> (Client, PathBuf, String) {
    let admin = app.admin().await;
    let repo = bare_repo(dir);
    let command = write_script(dir, "agent-under-test.sh", script);
    configure(&admin, settings).await;
    let pid = project_with_agent(&admin, &repo, &command).await;
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": title }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    (admin, repo, tid)
}

/// The webhooks a receiver on loopback got, in order.
pub(crate) type Hooks = Arc<std::sync::Mutex<Vec<Value>>>;

/// A webhook receiver on loopback: its URL and what it got.
pub(crate) async fn webhook_receiver() -> (String, Hooks) {
    let hooks = Hooks::default();
    let got = hooks.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let got = got.clone();
            async move {
                got.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (url, hooks)
}

/// The first webhook of `event` (waited for, 10 s at most).
pub(crate) async fn webhook_of(hooks: &Hooks, event: &str) -> Value {
    let start = Instant::now();
    loop {
        let found = hooks
            .lock()
            .unwrap()
            .iter()
            .find(|h| h["event"] == event)
            .cloned();
        if let Some(h) = found {
            return h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {event} webhook"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_for(admin: &Client, tid: &str, want: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
        if t["agent"]["status"] == want {
            return t;
        }
        if start.elapsed() > limit {
            let (_, logs) = admin
                .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=50"))
                .await;
            panic!("task did not reach {want} in {limit:?}: {t}\nlogs: {logs}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn box_pid(boxes: &Path, box_id: &str) -> i32 {
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(boxes.join(box_id).join("state.json")).unwrap(),
    )
    .unwrap();
    state["pid"].as_i64().unwrap() as i32
}

/// The callback token, read from the box agent's environment (as only the box has it).
fn callback_token_of(pid: i32) -> String {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("APIARY_CALLBACK_TOKEN="))
        .expect("the box agent has its callback token")
        .to_string()
}

/// From `spec_ready` with [`AGENT`]: approve → PR (its diff) → a review comment → round 2 acting
/// on it → merged into the repository's main.
/// Approve the spec; the PR arrives with the agent's line in its diff.
pub(crate) async fn approve_to_pr(admin: &Client, tid: &str) {
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let t = wait_for(admin, tid, "pr_ready", Duration::from_secs(90)).await;
    assert!(t["agent"]["pr_url"].as_str().unwrap().contains(tid));
    let (status, diff) = admin.get(&format!("/api/v1/tasks/{tid}/agent/diff")).await;
    assert_eq!(status, 200, "{diff}");
    assert!(
        diff["diff"]
            .as_str()
            .unwrap()
            .contains("+hello from the agent"),
        "{diff}"
    );
}

/// Request changes on the PR; round 2's PR acts on them; mark merged.
pub(crate) async fn changes_and_merge(admin: &Client, tid: &str, repo: &Path) {
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/request-changes"),
            json!({ "comments": [{ "body": "also say goodbye", "path": "hello.txt", "line": 1 }] }),
        )
        .await;
    assert_eq!(status, 200);
    // request-changes moved it to changes_requested at once: the next pr_ready is round 2's.
    let t = wait_for(admin, tid, "pr_ready", Duration::from_secs(90)).await;
    assert_eq!(t["agent"]["round"], 2);
    let (_, diff) = admin.get(&format!("/api/v1/tasks/{tid}/agent/diff")).await;
    assert!(
        diff["diff"].as_str().unwrap().contains("+also say goodbye"),
        "the script acted on the comment: {diff}"
    );

    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let log = git(repo, &["log", "--format=%s", "main"]);
    assert!(log.contains("Merge apiary/"), "{log}");
    let hello = git(repo, &["show", "main:hello.txt"]);
    assert_eq!(hello, "hello from the agent\nalso say goodbye\n");
}

/// Hand over → spec → approve → PR (diff) → changes → PR round 2 → merged → box gone.
async fn the_loop(app: &TestApp, boxes: &Path, work: &Path) {
    let admin = app.admin().await;
    let repo = bare_repo(work);
    let command = write_script(work, "agent.sh", AGENT);
    configure(&admin, json!({})).await;
    let pid = project_with_agent(&admin, &repo, &command).await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "preview_command": site::STATIC_PREVIEW } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Say hello" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200);

    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    assert_eq!(t["agent"]["spec"], "# Spec\n\nWrite hello.txt.\n");
    let box_id = t["agent"]["box_id"].as_str().unwrap().to_string();
    let agent_pid = box_pid(boxes, &box_id);
    let token = callback_token_of(agent_pid);

    approve_to_pr(&admin, &tid).await;
    // The site preview answers through Apiary, from a local box or a box host's alike.
    site::site_shows(app, &tid, "hello.txt", "hello from the agent").await;
    changes_and_merge(&admin, &tid, &repo).await;

    // Within seconds: the box process is gone, its folder removed, its token dead (the
    // token is revoked right after the provider reports the box destroyed).
    let boxed = Client::with_bearer(&app.base, &token);
    let token_status = || async { boxed.get(&format!("/api/v1/agent/tasks/{tid}")).await.0 };
    let start = Instant::now();
    while (unsafe { libc::kill(agent_pid, 0) } == 0
        || boxes.join(&box_id).exists()
        || token_status().await != 401)
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        unsafe { libc::kill(agent_pid, 0) } != 0,
        "the box process is gone"
    );
    assert!(!boxes.join(&box_id).exists(), "the box folder is removed");
    assert_eq!(token_status().await, 401, "the old callback token is dead");
    let t = app.store.get_task(&tid).await.unwrap();
    assert!(t.box_torn_down);
    assert_eq!(app.store.control_token(&tid).await.unwrap(), None);
}

#[tokio::test]
async fn the_loop_with_local_boxes() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    the_loop(&app, &boxes, dir.path()).await;
}

#[tokio::test]
async fn the_loop_through_boxd_and_the_remote_provider() {
    let dir = tempfile::tempdir().unwrap();
    // The host's data folder is hidden from its boxes; the test's scripts sit beside it.
    let boxes = dir.path().join("host").join("boxes");
    let _reaper = BoxReaper(boxes.clone());
    let provider = apiary_boxes::local::LocalProvider::new(
        boxes.clone(),
        exe(),
        apiary_boxes::local::Sandbox::Auto,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            apiary_boxes::host::router(Arc::new(provider), "the-host-key".into(), Arc::default()),
        )
        .await
        .unwrap();
    });
    let app = TestApp::spawn().await;
    app.start_worker();
    let admin = app.admin().await;
    configure(&admin, json!({ "box_provider": "remote", "box_host_url": host_url, "box_host_key": "the-host-key" })).await;
    the_loop(&app, &boxes, dir.path()).await;
}

#[tokio::test]
async fn an_agent_past_its_timeout_ends_failed_naming_the_timeout() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    // A 2 s speccing budget gives the agent a 1 s run timeout.
    let (admin, _, tid) = handed_over(
        &app,
        dir.path(),
        SLOW_AGENT,
        "Think",
        json!({ "timeouts": { "speccing_s": 2 } }),
    )
    .await;
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(60)).await;
    let error = t["agent"]["last_error"].as_str().unwrap();
    assert!(error.contains("timed out"), "{error}");
}

#[tokio::test]
async fn a_box_killed_from_outside_ends_failed_within_one_watchdog_pass() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let (admin, _, tid) = handed_over(&app, dir.path(), AGENT, "Doomed", json!({})).await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    let agent_pid = box_pid(&boxes, t["agent"]["box_id"].as_str().unwrap());
    unsafe { libc::kill(-agent_pid, libc::SIGKILL) };
    let start = Instant::now();
    while unsafe { libc::kill(agent_pid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sum = app.orch.watchdog_pass("test").await.unwrap();
    assert_eq!(sum.vanished, 1, "{sum:?}");
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(5)).await;
    assert_eq!(t["agent"]["last_error"], "box vanished");
}

#[tokio::test]
async fn a_parked_pr_takes_a_request_for_changes_and_reaches_round_two_on_a_fresh_box() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let (admin, _, tid) = handed_over(&app, dir.path(), AGENT, "Park me", json!({})).await;
    wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    let first_box = t["agent"]["box_id"].as_str().unwrap().to_string();

    // Tear down now: the box goes, the task stays pr_ready and is marked parked.
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/teardown"), json!({}))
        .await;
    assert_eq!(status, 202);
    let start = Instant::now();
    loop {
        let (_, t) = admin.get(&format!("/api/v1/tasks/{tid}")).await;
        if t["agent"]["parked"] == true {
            assert_eq!(t["agent"]["status"], "pr_ready");
            assert_eq!(t["agent"]["box_torn_down"], true);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "not parked: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!boxes.join(&first_box).exists());

    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/request-changes"),
            json!({ "comments": [{ "body": "resume and add this" }] }),
        )
        .await;
    assert_eq!(status, 200);
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    assert_eq!(t["agent"]["round"], 2);
    assert_ne!(
        t["agent"]["box_id"].as_str().unwrap(),
        first_box,
        "a fresh box"
    );
    let (_, diff) = admin.get(&format!("/api/v1/tasks/{tid}/agent/diff")).await;
    let diff = diff["diff"].as_str().unwrap();
    assert!(
        diff.contains("+hello from the agent") && diff.contains("+resume and add this"),
        "{diff}"
    );
    let (_, logs) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=1000"))
        .await;
    assert!(
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["line"].as_str().unwrap().starts_with("resuming")),
        "{logs}"
    );
}

#[tokio::test]
async fn the_github_forge_opens_the_pr_through_the_api_with_the_projects_token() {
    use std::sync::Mutex;
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    // A GitHub REST API stand-in that records the pull request it is asked to open.
    let seen: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let recorder = seen.clone();
    let github = axum::Router::new().route(
        "/repos/{owner}/{repo}/pulls",
        axum::routing::post(move |axum::extract::Path((owner, repo)): axum::extract::Path<(String, String)>, headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let recorder = recorder.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                recorder.lock().unwrap().push((format!("{owner}/{repo}"), auth, body));
                (axum::http::StatusCode::CREATED, axum::Json(json!({ "html_url": "https://github.example/acme/widgets/pull/7", "number": 7 })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, github).await.unwrap() });

    let admin = app.admin().await;
    let owner_dir = dir.path().join("acme");
    std::fs::create_dir_all(&owner_dir).unwrap();
    let repo = bare_repo(&owner_dir);
    let widgets = owner_dir.join("widgets.git");
    std::fs::rename(&repo, &widgets).unwrap();
    let script = "#!/bin/sh\ncase \"$APIARY_PHASE\" in spec) mkdir -p .apiary; echo \"secrets seen: $(env | grep -cE 'ghp_project_token|APIARY_CALLBACK_TOKEN|APIARY_CONTROL_TOKEN|APIARY_GITHUB_TOKEN')\" > .apiary/SPEC.md ;; *) echo change > change.txt ;; esac\n";
    let command = write_script(dir.path(), "gh-agent.sh", script);
    configure(&admin, json!({ "github_api_base": api })).await;
    let pid = project_with_agent(&admin, &widgets, &command).await;
    let (status, p) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "forge": "github", "github_token": "ghp_project_token" } }),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["agent"]["github_token"], json!({ "set": true }));
    assert!(!p.to_string().contains("ghp_project_token"));
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Widgets" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    // The agent itself never saw the box's or the project's secrets.
    assert_eq!(t["agent"]["spec"], "secrets seen: 0\n");
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    assert_eq!(
        t["agent"]["pr_url"],
        "https://github.example/acme/widgets/pull/7"
    );
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "acme/widgets");
    assert_eq!(calls[0].1, "Bearer ghp_project_token");
    assert_eq!(calls[0].2["base"], "main");
    assert!(calls[0].2["head"].as_str().unwrap().starts_with("apiary/"));
}

/// An agent that tries to get at the box's secrets and to push where it may not.
const HOSTILE_AGENT: &str = r#"#!/bin/sh
mkdir -p .apiary
: > .apiary/SPEC.md
ws="$(pwd)"
report() { echo "$1" >> "$ws/.apiary/SPEC.md"; }
report "env: $(env | grep -cE 'APIARY_(CALLBACK|CONTROL|GITHUB)_TOKEN')"
report "proc: $(cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep -cE 'APIARY_(CALLBACK|CONTROL)_TOKEN')"
report "pids: $(ls -d /proc/[0-9]* | wc -l)"
echo evil > evil.txt
if git add evil.txt 2>/dev/null; then report "stage in the box's git: ALLOWED"; else report "stage in the box's git: refused"; fi
repo="$(git remote get-url origin)"
# A clone of its own, to commit in and push from.
git clone -q "$repo" "$HOME/mine" && cd "$HOME/mine" && echo evil > evil.txt && git add evil.txt \
  && git -c user.name=evil -c user.email=evil@example.test commit -qm evil
if git push -q origin HEAD:refs/heads/main 2>/dev/null; then report "push main: ALLOWED"; else report "push main: refused"; fi
if git push -q origin "HEAD:refs/heads/$APIARY_BRANCH" 2>/dev/null; then report "push own: ALLOWED"; else report "push own: refused"; fi
cd - >/dev/null
if touch "$repo/hacked" 2>/dev/null; then report "write repo: ALLOWED"; else report "write repo: refused"; fi
if ls ../control.json >/dev/null 2>&1; then report "box files: visible"; else report "box files: hidden"; fi
"#;

#[tokio::test]
async fn a_hostile_agent_can_neither_read_the_tokens_nor_push_where_it_may_not() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let (admin, repo, tid) =
        handed_over(&app, dir.path(), HOSTILE_AGENT, "Escape", json!({})).await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    let report = t["agent"]["spec"].as_str().unwrap().to_string();
    for line in [
        "env: 0",
        "proc: 0",
        "stage in the box's git: refused",
        "push main: refused",
        "push own: refused",
        "write repo: refused",
        "box files: hidden",
    ] {
        assert!(
            report.lines().any(|l| l == line),
            "expected {line:?} in the agent's report:\n{report}"
        );
    }
    let pids: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("pids: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids < 10, "the agent has its own PID namespace: {report}");
    assert_eq!(
        git(
            &repo,
            &["branch", "--list", "main", "--format=%(objectname)"]
        )
        .trim()
        .len(),
        40
    );
    assert!(!repo.join("hacked").exists());

    // Where the repository is, a push from a box may only update the box's branch.
    let clone = dir.path().join("outside");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    std::fs::write(clone.join("x.txt"), "x").unwrap();
    git(&clone, &["add", "-A"]);
    git(&clone, &["commit", "-q", "-m", "x"]);
    let as_box = std::process::Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["push", "-q", "origin", "HEAD:refs/heads/main"])
        .env("APIARY_BRANCH", "apiary/someone")
        .output()
        .unwrap();
    assert!(!as_box.status.success(), "a box's push to main is refused");
    assert!(String::from_utf8_lossy(&as_box.stderr).contains("a box may only push"));
    git(&clone, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
}

/// An agent that links the spec to the box agent's own environment.
const SPEC_THIEF: &str = r#"#!/bin/sh
mkdir -p .apiary
ln -sf /proc/self/environ .apiary/SPEC.md
echo "a harmless-looking spec on stdout"
"#;

#[tokio::test]
async fn a_spec_linked_to_the_box_agents_environment_is_refused_not_submitted() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let (admin, _repo, tid) = handed_over(&app, dir.path(), SPEC_THIEF, "Steal", json!({})).await;
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(60)).await;
    let error = t["agent"]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("symbolic link"), "{t}");
    let token = callback_token_of(box_pid(&boxes, t["agent"]["box_id"].as_str().unwrap()));
    assert!(
        !t.to_string().contains(&token),
        "the token reached the task: {t}"
    );
    let (_, logs) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=500"))
        .await;
    assert!(
        !logs.to_string().contains(&token),
        "the token reached the log"
    );
    assert!(!logs.to_string().contains("APIARY_CALLBACK_TOKEN"));
}

/// An agent that plants every way it can think of to make the box's own git (which runs
/// outside the agent's sandbox, with the push credentials) run a command of its choosing.
const GIT_PLANTER: &str = r#"#!/bin/sh
set -u
ws="$(pwd)"
case "$APIARY_PHASE" in
  spec|revise) mkdir -p .apiary; printf '# Spec\n\nWrite hello.txt.\n' > .apiary/SPEC.md; exit 0 ;;
esac
echo "hello from the agent" > hello.txt
evil() { printf "sh -c 'touch %s/PWNED-%s; cat'" "$ws" "$1"; }
real="$(sed -n 's/^gitdir: //p' .git)"
# 1. The box's git directory itself: config, hooks, commondir (all read-only to the agent).
git config filter.evil.clean "$(evil config-filter)" 2>/dev/null && echo "config: WRITTEN" || echo "config: refused"
echo "$ws/planted.git" > "$real/commondir" 2>/dev/null && echo "commondir: WRITTEN" || echo "commondir: refused"
printf '#!/bin/sh\ntouch %s/PWNED-hook\n' "$ws" > "$real/hooks/pre-commit" 2>/dev/null && echo "hook: WRITTEN" || echo "hook: refused"
# 2. A .gitattributes naming filter and diff drivers.
printf '* filter=evil diff=evil\n' > .gitattributes
# 3. A git directory of its own, with every program-running setting, that .git now names.
git init -q --bare planted.git
cat > planted.git/config <<CFG
[core]
	fsmonitor = $(evil fsmonitor)
	hooksPath = $ws/planted-hooks
	sshCommand = $(evil ssh)
[filter "evil"]
	clean = $(evil planted-filter)
	smudge = $(evil planted-smudge)
	process = $(evil planted-process)
[diff "evil"]
	textconv = $(evil textconv)
[diff]
	external = $(evil external)
[remote "origin"]
	receivepack = $(evil receivepack)
	uploadpack = $(evil uploadpack)
CFG
mkdir -p planted-hooks
printf '#!/bin/sh\ntouch %s/PWNED-planted-hook\n' "$ws" > planted-hooks/pre-commit
chmod +x planted-hooks/pre-commit
mv .git .git-moved
echo "gitdir: $ws/planted.git" > .git
# 4. A nested repository with its own filter, which a submodule check would read.
git init -q nested && printf '[filter "evil"]\n\tclean = %s\n' "$(evil nested-filter)" >> nested/.git/config
printf '* filter=evil\n' > nested/.gitattributes; echo x > nested/file
# 5. Its home's git config (the box agent's home is not the agent's).
git config --global filter.evil.clean "$(evil global)" 2>/dev/null || true
"#;

#[tokio::test]
async fn a_hostile_agent_cannot_make_the_boxs_git_run_its_commands() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let (admin, repo, tid) = handed_over(&app, dir.path(), GIT_PLANTER, "Plant", json!({})).await;
    wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    let (_, logs) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=500"))
        .await;
    let lines: Vec<String> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in ["config: refused", "commondir: refused", "hook: refused"] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in {lines:#?}");
    }
    // Nothing ran: no marker in the workspace, none in what was pushed.
    let box_id = t["agent"]["box_id"].as_str().unwrap();
    let workspace = boxes.join(box_id).join("box").join("workspace");
    let planted: Vec<String> = std::fs::read_dir(&workspace)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("PWNED"))
        .collect();
    assert!(
        planted.is_empty(),
        "the box's git ran the agent's commands: {planted:?}"
    );
    let branch = t["agent"]["branch"].as_str().unwrap();
    let tree = git(&repo, &["ls-tree", "-r", "--name-only", branch]);
    assert!(tree.lines().any(|l| l == "hello.txt"), "{tree}");
    assert!(
        tree.lines().any(|l| l == "nested/file"),
        "nested files are plain files: {tree}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("removed nested/.git before committing")),
        "{lines:#?}"
    );
    assert!(!tree.contains("PWNED"), "{tree}");
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:hello.txt")]),
        "hello from the agent\n"
    );
}

/// Cap 1, a box killed from outside, the watchdog's verdict, then a retry: the retried task
/// gets a new box (the dead one holds no slot) and no later pass fails it again.
#[tokio::test]
async fn a_retry_after_a_vanished_box_gets_a_new_box_within_the_cap() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let (admin, _, tid) = handed_over(
        &app,
        dir.path(),
        AGENT,
        "Again",
        json!({ "max_concurrent_boxes": 1 }),
    )
    .await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    let dead_box = t["agent"]["box_id"].as_str().unwrap().to_string();
    let agent_pid = box_pid(&boxes, &dead_box);
    unsafe { libc::kill(-agent_pid, libc::SIGKILL) };
    let start = Instant::now();
    while unsafe { libc::kill(agent_pid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sum = app.orch.watchdog_pass("test").await.unwrap();
    assert_eq!(sum.vanished, 1, "{sum:?}");
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(5)).await;
    assert_eq!(
        t["agent"]["box_torn_down"], true,
        "a vanished box is let go at once: {t}"
    );

    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // Passes while it waits or starts never take the dead box for the new attempt's.
    for _ in 0..3 {
        let sum = app.orch.watchdog_pass("test").await.unwrap();
        assert_eq!(sum.vanished, 0, "{sum:?}");
    }
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    assert_ne!(t["agent"]["box_id"], dead_box.as_str(), "a new box: {t}");
    // The dead box's leftovers went with the orphan sweep.
    let start = Instant::now();
    while boxes.join(&dead_box).exists() && start.elapsed() < Duration::from_secs(10) {
        app.orch.watchdog_pass("test").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !boxes.join(&dead_box).exists(),
        "the dead box's folder is swept"
    );
}

/// An agent that fails until the test lets it pass (a file the agent can only read).
const FAILS_ONCE: &str = r#"#!/bin/sh
if [ ! -f "$APIARY_TEST_MARKER" ]; then echo "this attempt fails" >&2; exit 3; fi
mkdir -p .apiary; printf '# Spec\n\nSecond time lucky.\n' > .apiary/SPEC.md
"#;

/// A retry within the failed grace period, cap 1: the failed attempt's box (still up for the
/// grace period) is let go, so the retry starts at once instead of waiting behind it.
#[tokio::test]
async fn a_retry_within_the_grace_period_does_not_wait_behind_its_own_failed_box() {
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let marker = dir.path().join("let-it-pass");
    let script = FAILS_ONCE.replace("$APIARY_TEST_MARKER", &marker.display().to_string());
    let (admin, _, tid) = handed_over(
        &app,
        dir.path(),
        &script,
        "Flaky",
        json!({ "max_concurrent_boxes": 1, "timeouts": { "failed_grace_s": 3600 } }),
    )
    .await;
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(60)).await;
    assert_eq!(
        t["agent"]["box_torn_down"], false,
        "kept for the grace period: {t}"
    );
    let first_box = t["agent"]["box_id"].as_str().unwrap().to_string();
    std::fs::write(&marker, "").unwrap();
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(30)).await;
    assert_ne!(t["agent"]["box_id"], first_box.as_str());
    assert!(t["agent"]["spec"]
        .as_str()
        .unwrap()
        .contains("Second time lucky"));
}

/// An agent that tries the host's loopback directly and through the proxy, then an allowed host.
const NETWORK_PROBE: &str = r#"#!/bin/sh
mkdir -p .apiary; out=.apiary/SPEC.md; : > "$out"
r() { echo "$1" >> "$out"; }
if curl -s --noproxy '*' --max-time 3 http://127.0.0.1:FORBIDDEN/ >/dev/null 2>&1; then r "direct: REACHED"; else r "direct: refused"; fi
r "proxied forbidden: $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:FORBIDDEN/)"
r "allowed: $(curl -s --max-time 5 http://127.0.0.1:ALLOWED/hello)"
r "tunnel: $(curl -s --max-time 5 --proxytunnel http://127.0.0.1:ALLOWED/hello)"
"#;

/// A service the agent must not reach (listening on `forbidden_bind`; the counter says whether
/// anything connected) and one it may (on loopback, answering `/hello`): their ports.
pub(crate) async fn egress_services(
    forbidden_bind: &str,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>, u16) {
    let forbidden = tokio::net::TcpListener::bind((forbidden_bind, 0))
        .await
        .unwrap();
    let forbidden_port = forbidden.local_addr().unwrap().port();
    let touched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = touched.clone();
    tokio::spawn(async move {
        while forbidden.accept().await.is_ok() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_port = allowed.local_addr().unwrap().port();
    let hello = axum::Router::new().route(
        "/hello",
        axum::routing::get(|| async { "hello-from-allowed" }),
    );
    tokio::spawn(async move { axum::serve(allowed, hello).await });
    (forbidden_port, touched, allowed_port)
}

/// The network probe's report (its spec) holds the four standard lines and `more`; the
/// forbidden service saw nothing; the task's log holds `refused`. The log, for more checks.
pub(crate) async fn egress_report(
    admin: &Client,
    tid: &str,
    touched: &std::sync::atomic::AtomicUsize,
    more: &[&str],
    refused: &str,
) -> String {
    let t = wait_for(admin, tid, "spec_ready", Duration::from_secs(90)).await;
    let report = t["agent"]["spec"].as_str().unwrap().to_string();
    let standard = [
        "direct: refused",
        "proxied forbidden: 403",
        "allowed: hello-from-allowed",
        "tunnel: hello-from-allowed",
    ];
    for want in standard.iter().chain(more) {
        assert!(
            report.lines().any(|l| l == *want),
            "expected {want:?} in:\n{report}"
        );
    }
    assert_eq!(
        touched.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the forbidden port saw no connection"
    );
    let (_, logs) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=500"))
        .await;
    let logs = logs.to_string();
    assert!(logs.contains(refused), "{logs}");
    logs
}

#[tokio::test]
async fn the_agent_reaches_only_allowed_hosts_and_refusals_are_logged() {
    // A service on the host's loopback the agent must not reach, and one it may.
    let (forbidden_port, touched, allowed_port) = egress_services("127.0.0.1").await;

    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let script = NETWORK_PROBE
        .replace("FORBIDDEN", &forbidden_port.to_string())
        .replace("ALLOWED", &allowed_port.to_string());
    let (admin, _, tid) = handed_over(
        &app,
        dir.path(),
        &script,
        "Egress",
        json!({ "egress_allow": [format!("127.0.0.1:{allowed_port}")] }),
    )
    .await;
    let logs = egress_report(
        &admin,
        &tid,
        &touched,
        &[],
        &format!("egress refused: 127.0.0.1:{forbidden_port}"),
    )
    .await;
    assert!(
        logs.contains("only through Apiary's egress proxy"),
        "{logs}"
    );
}

#[tokio::test]
async fn the_code_view_lists_the_workspace_and_shows_what_the_agent_changed() {
    // A webhook receiver: the notifications carry the code view's link.
    let (hook_url, hooks) = webhook_receiver().await;

    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let (admin, _, tid) = handed_over(
        &app,
        dir.path(),
        AGENT,
        "Say hello",
        json!({ "webhooks": [{ "url": hook_url, "secret": "s" }] }),
    )
    .await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    // The link is Apiary's code view of this task, in the panel and in the notification.
    let code_url = t["agent"]["code_url"].as_str().unwrap().to_string();
    assert!(
        code_url.ends_with(&format!("/tasks/{tid}/code")),
        "{code_url}"
    );
    let spec_ready = webhook_of(&hooks, "SPEC_READY").await;
    assert_eq!(spec_ready["links"]["code"], code_url, "{spec_ready}");
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;

    let (status, tree) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/code/tree"))
        .await;
    assert_eq!(status, 200, "{tree}");
    let files = tree["files"].as_array().unwrap();
    let entry = |p: &str| files.iter().find(|f| f["path"] == p).cloned();
    let hello = entry("hello.txt").expect("the agent's file is listed");
    assert_eq!(hello["change"], "branch", "{hello}");
    assert_eq!(
        entry("README.md").expect("the repository's file")["change"],
        Value::Null
    );
    assert!(
        entry(".apiary/SPEC.md").is_none(),
        "the box's own files are not shown"
    );

    let (status, file) = admin
        .get(&format!(
            "/api/v1/tasks/{tid}/agent/code/file?path=hello.txt"
        ))
        .await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["text"], "hello from the agent\n");
    assert_eq!(file["change"], "branch");

    // Nothing outside the workspace, nor through a link.
    for bad in ["../../../etc/passwd", "/etc/passwd", "a/../../x"] {
        let (status, body) = admin
            .get(&format!(
                "/api/v1/tasks/{tid}/agent/code/file?path={}",
                bad.replace('/', "%2F")
            ))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // A member who cannot read the project sees no task at all.
    let (outsider, _) = app.member("outsider@example.test").await;
    let (status, _) = outsider
        .get(&format!("/api/v1/tasks/{tid}/agent/code/tree"))
        .await;
    assert_eq!(status, 404);

    // Once merged, the box is gone and the view says so.
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200);
    let start = Instant::now();
    loop {
        let (status, body) = admin
            .get(&format!("/api/v1/tasks/{tid}/agent/code/tree"))
            .await;
        if status == 409 {
            assert_eq!(body["error"]["code"], "no_box", "{body}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
