//! The box agent end to end on loopback: a fake Apiary, a real bare git repository, and a shell
//! script as the coding agent (`APIARY_AGENT_COMMAND`).

mod fake_apiary;

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use apiary_box_agent::BoxAgentConfig;
use fake_apiary::{Call, FakeApiary};
use serde_json::{json, Value};

const CALLBACK_TOKEN: &str = "callback-token-0123456789";
const CONTROL_TOKEN: &str = "control-token-0123456789";
const BRANCH: &str = "apiary/t1-add-a-greeting";
const WAIT: Duration = Duration::from_secs(30);

/// Git without the machine's own config, and the box's tokens in the process environment as a
/// real box has them (so the test shows the agent does not inherit them). Set once, before any
/// thread of the test starts a process.
fn hermetic_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
        std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
        std::env::set_var("APIARY_CALLBACK_TOKEN", CALLBACK_TOKEN);
        std::env::set_var("APIARY_CONTROL_TOKEN", CONTROL_TOKEN);
    });
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    hermetic_env();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.test"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare repository with one commit on `main`.
fn bare_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo.git");
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", repo.to_str().unwrap()],
    );
    let seed = root.join("seed");
    git(
        root,
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            seed.to_str().unwrap(),
        ],
    );
    std::fs::write(seed.join("README.md"), "# Greeter\n").unwrap();
    git(&seed, &["checkout", "-q", "-b", "main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "initial"]);
    git(&seed, &["push", "-q", "origin", "main"]);
    repo
}

fn script(root: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("agent.sh");
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn view() -> Value {
    json!({
        "task": {"id": "t1", "title": "Add a greeting", "description": "Say hello.",
                 "agent": {"status": "provisioning", "round": 0, "branch": BRANCH}},
        "project": {"name": "greeter", "agent": {"base_branch": "main"}},
        // A project override for the spec; the other kinds use the built-in defaults.
        "prompts": {"spec": "Write the spec for {{ task.title }} on {{ branch }}."},
        "spec": null, "feedback": null, "note": null, "review_comments": [], "round": 0
    })
}

fn config(apiary: &FakeApiary, root: &Path, repo: &Path, command: String) -> BoxAgentConfig {
    BoxAgentConfig {
        apiary_url: apiary.url.clone(),
        task_id: "t1".into(),
        callback_token: CALLBACK_TOKEN.into(),
        control_token: CONTROL_TOKEN.into(),
        repo_url: repo.display().to_string(),
        base_branch: "main".into(),
        branch: BRANCH.into(),
        agent: "script".into(),
        agent_command: command,
        forge: "local".into(),
        spec_timeout_s: 30,
        impl_timeout_s: 30,
        box_dir: root.join("box"),
        control_bind: "127.0.0.1:0".into(),
        github_api: String::new(),
        github_token: String::new(),
        sandbox: apiary_box_agent::AgentSandbox::Bwrap,
        bwrap: "bwrap".into(),
        orphan_s: 1800,
        egress: None,
        egress_upstream: None,
        gateway_token: String::new(),
        model: String::new(),
        agent_env: Default::default(),
    }
}

/// A running box agent and a client for its control plane.
struct RunningBox {
    control: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningBox {
    async fn start(cfg: BoxAgentConfig) -> Self {
        let control_file = cfg.box_dir.join("control.json");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(apiary_box_agent::run_until(cfg, async {
            let _ = stopped.await;
        }));
        let started = Instant::now();
        let control: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&control_file) {
                break serde_json::from_str(&text).unwrap();
            }
            assert!(started.elapsed() < WAIT, "no control.json");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(control["pid"], std::process::id());
        RunningBox {
            control: format!("http://127.0.0.1:{}", control["port"]),
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    async fn call(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.control);
        let mut req = match body {
            Some(b) => self.http.post(url).json(&b),
            None => self.http.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn wait_idle(&self) {
        let started = Instant::now();
        while self.call("/health", Some(CONTROL_TOKEN), None).await.1["busy"] != false {
            assert!(started.elapsed() < WAIT, "still busy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn position(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(pred).expect("a matching callback")
}

const AGENT: &str = r##"mkdir -p .apiary
env > ".apiary/env-$APIARY_PHASE.txt"
case "$APIARY_PHASE" in
  spec)
    { echo "# Spec"; echo; cat "$APIARY_PROMPT_FILE"; echo; } > .apiary/SPEC.md
    echo "spec written" ;;
  implement)
    echo "hello from the agent" > hello.txt
    i=0; while [ $i -lt 300 ]; do echo "progress $i"; i=$((i+1)); done
    git status --short >&2
    echo "implemented" ;;
  changes)
    grep '^- ' "$APIARY_PROMPT_FILE" | head -n 1 >> hello.txt
    echo "changes applied" ;;
  *) echo "unexpected phase $APIARY_PHASE" >&2; exit 1 ;;
esac
"##;

/// Writes the spec slowly; run again with the follow-up prompt, it adds what it was told.
const FOLLOW_UP_AGENT: &str = r###"mkdir -p .apiary
case "$APIARY_PROMPT_FILE" in
  *follow-up*)
    { echo; echo "## Follow-up"; cat "$APIARY_PROMPT_FILE"; } >> .apiary/SPEC.md
    echo "followed up" ;;
  *)
    echo "# Spec" > .apiary/SPEC.md
    echo "writing the spec slowly"
    sleep 3
    echo "spec written" ;;
esac
"###;

#[test]
fn a_follow_up_sent_during_a_run_reaches_the_agent_at_its_next_turn() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view()).await;
        let cfg = config(
            &apiary,
            root.path(),
            &repo,
            script(root.path(), FOLLOW_UP_AGENT),
        );
        let boxed = RunningBox::start(cfg).await;
        let started = Instant::now();
        while !apiary
            .log_lines()
            .iter()
            .any(|l| l.contains("writing the spec slowly"))
        {
            assert!(started.elapsed() < WAIT, "the spec run did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let message = json!({ "author": "Ann", "text": "Use tabs." });
        assert_eq!(
            boxed.call("/message", None, Some(message.clone())).await.0,
            401,
            "the control token guards it"
        );
        let (status, body) = boxed
            .call("/message", Some(CONTROL_TOKEN), Some(message))
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(
            (body["waiting"].as_i64(), body["running"].as_bool()),
            (Some(1), Some(true))
        );
        let calls = apiary.wait_for("spec", 1, WAIT).await;
        let spec = calls[position(&calls, |c| c.what == "spec")].body["spec_markdown"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(spec.starts_with("# Spec"), "{spec}");
        let lines = apiary.log_lines();
        assert!(
            spec.contains("- Ann: Use tabs."),
            "the agent got the message: {spec} {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l == "message from Ann: Use tabs."),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("running the agent again with 1 message(s)")),
            "{lines:#?}"
        );
        boxed.wait_idle().await;
        boxed.stop().await;
    })
}

#[test]
fn a_box_specs_implements_and_applies_review_changes() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view()).await;
        let cfg = config(&apiary, root.path(), &repo, script(root.path(), AGENT));
        let workspace = cfg.box_dir.join("workspace");
        let boxed = RunningBox::start(cfg).await;

        // Spec: speccing first, then the SPEC.md the agent wrote (rendered from the override).
        let calls = apiary.wait_for("spec", 1, WAIT).await;
        let speccing = position(&calls, |c| c.what == "status");
        assert_eq!(calls[speccing].body["status"], "speccing");
        let spec = position(&calls, |c| c.what == "spec");
        assert!(speccing < spec);
        assert_eq!(
            calls[spec].body["spec_markdown"],
            format!("# Spec\n\nWrite the spec for Add a greeting on {BRANCH}.\n")
        );
        let lines = apiary.log_lines();
        for want in [
            "cloning",
            "working on the new branch",
            "agent started (spec phase",
            "spec written",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "no {want:?} in {lines:#?}"
            );
        }
        assert!(
            position(&calls, |c| c.what == "logs") < spec,
            "logs go out before the spec"
        );

        // The control plane wants its own token.
        let (status, body) = boxed.call("/health", None, None).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(
            boxed.call("/health", Some(CALLBACK_TOKEN), None).await.0,
            401
        );
        let wrong = boxed
            .call(
                "/implement/start",
                Some("control-token-0123456780"),
                Some(json!({})),
            )
            .await;
        assert_eq!(wrong.0, 401);
        boxed.wait_idle().await;
        let (status, health) = boxed.call("/health", Some(CONTROL_TOKEN), None).await;
        assert_eq!(
            (status, health),
            (200, json!({"status": "ok", "busy": false}))
        );
        assert_eq!(apiary.calls().iter().filter(|c| c.what == "pr").count(), 0);

        // Implement: 202 at once, one run at a time, then the PR.
        let note = json!({"note": "mind the tests"});
        let (status, _) = boxed
            .call("/implement/start", Some(CONTROL_TOKEN), Some(note))
            .await;
        assert_eq!(status, 202);
        let (status, busy) = boxed
            .call(
                "/changes/apply",
                Some(CONTROL_TOKEN),
                Some(json!({"comments": []})),
            )
            .await;
        assert_eq!(status, 409);
        assert_eq!(busy["error"]["code"], "busy");
        let calls = apiary.wait_for("pr", 1, WAIT).await;
        let pr = position(&calls, |c| c.what == "pr");
        let head = git(&repo, &["rev-parse", BRANCH]).trim().to_string();
        assert_eq!(
            calls[pr].body,
            json!({"pr_url": format!("{}/tasks/t1/review", apiary.url), "branch": BRANCH, "head_sha": head})
        );
        assert_eq!(
            git(&repo, &["show", &format!("{BRANCH}:hello.txt")]),
            "hello from the agent\n"
        );
        assert_eq!(
            git(&repo, &["log", "-1", "--format=%s%n%an <%ae>", BRANCH]),
            "apiary: Add a greeting (task t1)\nApiary Agent <agent@apiary.local>\n"
        );
        let files = git(&repo, &["ls-tree", "-r", "--name-only", BRANCH]);
        assert!(
            !files.contains(".apiary"),
            "the spec is never committed: {files}"
        );
        let prompt = std::fs::read_to_string(root.path().join("box/prompt-implement.md")).unwrap();
        assert!(
            prompt.contains("Write the spec for Add a greeting")
                && prompt.contains("mind the tests")
        );

        // Every line went out, in batches, before the PR callback.
        let lines = apiary.log_lines();
        let progress = lines.iter().filter(|l| l.starts_with("progress ")).count();
        assert_eq!(progress, 300);
        let requests = calls.iter().filter(|c| c.what == "logs").count();
        assert!(
            requests < 30,
            "{requests} log requests for {} lines",
            lines.len()
        );
        let last_log = calls.iter().rposition(|c| c.what == "logs").unwrap();
        assert!(last_log < pr);
        assert!(calls[last_log].body["lines"]
            .to_string()
            .contains("pull request: "));

        // The agent never saw the box's tokens.
        let env = std::fs::read_to_string(workspace.join(".apiary/env-implement.txt")).unwrap();
        assert!(env.contains("APIARY_PHASE=implement") && env.contains("APIARY_PROMPT_FILE="));
        for secret in [
            "APIARY_CALLBACK_TOKEN",
            "APIARY_CONTROL_TOKEN",
            CALLBACK_TOKEN,
            CONTROL_TOKEN,
        ] {
            assert!(!env.contains(secret), "the agent saw {secret}");
        }

        // Changes: the comment reaches the prompt, a second commit, the PR again.
        boxed.wait_idle().await;
        let comments = json!({"comments": [
            {"author": "Ann", "body": "Also greet the moon", "path": "hello.txt", "line": 1}
        ]});
        let (status, _) = boxed
            .call("/changes/apply", Some(CONTROL_TOKEN), Some(comments))
            .await;
        assert_eq!(status, 202);
        let calls = apiary.wait_for("pr", 2, WAIT).await;
        let second = calls.iter().filter(|c| c.what == "pr").nth(1).unwrap();
        let head2 = git(&repo, &["rev-parse", BRANCH]).trim().to_string();
        assert_eq!(second.body["head_sha"], head2);
        assert_ne!(head, head2);
        assert_eq!(
            git(&repo, &["rev-list", "--count", &format!("main..{BRANCH}")]).trim(),
            "2"
        );
        let hello = git(&repo, &["show", &format!("{BRANCH}:hello.txt")]);
        assert!(hello.contains("Also greet the moon (Ann)"), "{hello}");
        assert!(!calls.iter().any(|c| c.what == "error"), "{calls:#?}");

        boxed.wait_idle().await;
        boxed.stop().await;
    });
}

/// Processes still alive (not zombies) in process group `pgid`.
fn live_members(pgid: i32) -> Vec<String> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            live.push(stat);
        }
    }
    live
}

#[test]
fn a_run_past_its_timeout_is_killed_with_its_group_and_reported() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view()).await;
        let agent = r##"case "$APIARY_PHASE" in
  spec) echo "# A spec on stdout" ;;
  *) (sleep 30; echo late > late.txt) & sleep 30 ;;
esac
"##;
        let mut cfg = config(&apiary, root.path(), &repo, script(root.path(), agent));
        cfg.impl_timeout_s = 1;
        let workspace = cfg.box_dir.join("workspace");
        let boxed = RunningBox::start(cfg).await;
        let calls = apiary.wait_for("spec", 1, WAIT).await;
        let spec = calls.iter().find(|c| c.what == "spec").unwrap();
        assert_eq!(spec.body["spec_markdown"], "# A spec on stdout\n");
        boxed.wait_idle().await;

        let started = Instant::now();
        let (status, _) = boxed
            .call("/implement/start", Some(CONTROL_TOKEN), Some(json!({})))
            .await;
        assert_eq!(status, 202);
        let calls = apiary.wait_for("error", 1, WAIT).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        let error = calls.iter().find(|c| c.what == "error").unwrap();
        let error = error.body["error"].as_str().unwrap();
        assert_eq!(error, "agent run timed out after 1 s");
        assert!(!calls.iter().any(|c| c.what == "pr"));

        // The whole group is gone, the background child included.
        let pgid: i32 = apiary
            .log_lines()
            .iter()
            .find_map(|l| {
                l.strip_prefix("agent started (implement phase, process group ")?
                    .strip_suffix(')')
                    .map(|n| n.parse().unwrap())
            })
            .expect("the run names its process group");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(pgid).is_empty() {
            assert!(Instant::now() < deadline, "alive: {:?}", live_members(pgid));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!workspace.join("late.txt").exists());
        boxed.wait_idle().await;
        boxed.stop().await;
    });
}

#[test]
fn a_resumed_box_continues_the_pushed_branch_without_a_new_spec() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        // An earlier box pushed the branch; the task waits on a review.
        let earlier = root.path().join("earlier");
        git(
            root.path(),
            &[
                "clone",
                "-q",
                repo.to_str().unwrap(),
                earlier.to_str().unwrap(),
            ],
        );
        git(&earlier, &["checkout", "-q", "-b", BRANCH]);
        std::fs::write(earlier.join("hello.txt"), "hello from the first box\n").unwrap();
        git(&earlier, &["add", "-A"]);
        git(&earlier, &["commit", "-q", "-m", "first round"]);
        git(&earlier, &["push", "-q", "origin", BRANCH]);
        let mut view = view();
        view["task"]["agent"]["status"] = json!("changes_requested");
        view["spec"] = json!("# The approved spec");
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view).await;
        let cfg = config(&apiary, root.path(), &repo, script(root.path(), AGENT));
        let boxed = RunningBox::start(cfg).await;

        let started = Instant::now();
        while !apiary
            .log_lines()
            .iter()
            .any(|l| l.starts_with("resuming from the pushed branch"))
        {
            assert!(started.elapsed() < WAIT, "{:#?}", apiary.log_lines());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let comments = json!({"comments": [{"author": "Ann", "body": "Greet the sun too"}]});
        let (status, _) = boxed
            .call("/changes/apply", Some(CONTROL_TOKEN), Some(comments))
            .await;
        assert_eq!(status, 202);
        let calls = apiary.wait_for("pr", 1, WAIT).await;
        assert!(
            !calls.iter().any(|c| c.what == "status" || c.what == "spec"),
            "a resumed box specs nothing: {calls:#?}"
        );
        assert_eq!(
            git(&repo, &["rev-list", "--count", &format!("main..{BRANCH}")]).trim(),
            "2"
        );
        assert_eq!(
            git(&repo, &["show", &format!("{BRANCH}:hello.txt")]),
            "hello from the first box\n- Greet the sun too (Ann)\n"
        );
        boxed.wait_idle().await;
        boxed.stop().await;
    });
}

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

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn a_box_whose_token_is_revoked_stops_its_agent_empties_its_folder_and_exits() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view()).await;
        let pids = root.path().join("pids");
        let agent = format!(
            r##"case "$APIARY_PHASE" in
  spec) echo "# A spec" ;;
  *) sleep 600 & echo $! >> {pids}; echo $$ >> {pids}; wait ;;
esac
"##,
            pids = pids.display()
        );
        let mut cfg = config(&apiary, root.path(), &repo, script(root.path(), &agent));
        // The agent's own sandbox hides its pids behind a namespace: this test reads them.
        cfg.sandbox = apiary_box_agent::AgentSandbox::None;
        cfg.orphan_s = 6;
        let box_dir = cfg.box_dir.clone();
        let boxed = RunningBox::start(cfg).await;
        apiary.wait_for("spec", 1, WAIT).await;
        boxed.wait_idle().await;
        let (status, _) = boxed
            .call("/implement/start", Some(CONTROL_TOKEN), Some(json!({})))
            .await;
        assert_eq!(status, 202);
        let started = Instant::now();
        let running: Vec<i32> = loop {
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let found: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if found.len() == 2 {
                break found;
            }
            assert!(started.elapsed() < WAIT, "the agent never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(running.iter().all(|p| alive(*p)));

        // Teardown revoked the token (the box was not reached): the box notices by itself.
        apiary.revoke();
        let revoked = Instant::now();
        let RunningBox {
            task, stop: _stop, ..
        } = boxed;
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the box exits on its own")
            .unwrap()
            .unwrap();
        assert!(revoked.elapsed() < Duration::from_secs(10));
        for pid in running {
            let gone = Instant::now();
            while alive(pid) && gone.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(!alive(pid), "agent process {pid} outlived its box");
        }
        assert!(is_empty(&box_dir), "the box's folder is emptied");
    });
}

#[test]
fn a_box_that_cannot_reach_apiary_gives_up_after_its_window() {
    block_on(async {
        let root = tempfile::tempdir().unwrap();
        let repo = bare_repo(root.path());
        let apiary = FakeApiary::start(CALLBACK_TOKEN, view()).await;
        let mut cfg = config(&apiary, root.path(), &repo, script(root.path(), AGENT));
        // An Apiary that is gone: nothing listens there.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        cfg.apiary_url = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        cfg.orphan_s = 3;
        let box_dir = cfg.box_dir.clone();
        let started = Instant::now();
        let boxed = RunningBox::start(cfg).await;
        let RunningBox {
            task, stop: _stop, ..
        } = boxed;
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the box gives up")
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(3),
            "not before its window: {took:?}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(is_empty(&box_dir), "the box's folder is emptied");
    });
}
