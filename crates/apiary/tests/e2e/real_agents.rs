//! Each preset with its real CLI (installed by `make agent-clis` from its registry, in the
//! version the preset was proven with), in a real sandboxed local box, through Apiary's model
//! gateway to a stand-in provider: hand-off → spec → approve → the CLI writes a file with its
//! own tool and runs a shell command → PR → merged. The file is in the diff, the command's
//! output in the task's log, the usage recorded is what the stand-in reported, and no
//! provider key reaches the box.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiary_testkit::model_standin::{request_text, Api, ModelStandin, Reported, Step};
use apiary_testkit::{bare_repo, boxes_dir, BoxReaper, Client, TestApp};
use serde_json::{json, Value};

use crate::{exe, wait_for};

const ANTHROPIC_KEY: &str = "sk-ant-provider-key-never-in-a-box-7f3a";
const OPENAI_KEY: &str = "sk-openai-provider-key-never-in-a-box-9c1d";
const GEMINI_KEY: &str = "gemini-provider-key-never-in-a-box-4b2e";
const SPEC: &str = "# Spec\n\nWrite hello.txt and run the tests.";
const SPEC_MARK: &str = "APIARY-E2E-SPEC-PHASE";
const IMPLEMENT_MARK: &str = "APIARY-E2E-IMPLEMENT-PHASE";
/// The "project's test command" the stand-in asks each CLI to run.
/// Its output (`…-42`) differs from its text, so the log shows it ran.
const TEST_COMMAND: &str = "printf 'tests-ran-in-the-box-%s\\n' 42 && cat hello.txt";
const TEST_OUTPUT: &str = "tests-ran-in-the-box-42";
const FAILING_COMMAND: &str = "ls /no-such-folder-in-the-box";

/// Where `make agent-clis` installs the CLIs.
fn clis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/agent-clis")
}

/// The CLIs on this process's PATH (the local provider hands its PATH to boxes). Fails, rather
/// than skipping, when they are not installed.
fn path_with_clis() {
    let root = clis();
    let bin = root.join("node_modules/.bin");
    let aider = root.join("aider/bin");
    assert!(
        bin.join("claude").exists() && aider.join("aider").exists(),
        "the agent CLIs are not installed in {}: run `make agent-clis`",
        root.display()
    );
    let path = std::env::var("PATH").unwrap_or_default();
    if !path.contains(&bin.display().to_string()) {
        std::env::set_var(
            "PATH",
            format!("{}:{}:{path}", bin.display(), aider.display()),
        );
    }
}

/// What the model asks of each CLI in the implement phase, in its own tools: write a file,
/// then run the test command. Aider has no tools: it edits from a reply's file block and
/// runs its `--test-cmd` (from the project's agent environment) after the edit.
fn implement_steps(preset: &str, ws_file: &str, tools: &[&str]) -> Vec<Step> {
    let tool = |name: &str, args: Value| Step::Tool {
        name: name.into(),
        args,
    };
    let content = format!("hello from {preset}\n");
    match preset {
        "claude-code" => vec![
            tool("Write", json!({"file_path": ws_file, "content": content})),
            tool(
                "Bash",
                json!({"command": TEST_COMMAND, "description": "run the tests"}),
            ),
        ],
        "codex" => vec![
            tool(
                "exec_command",
                json!({"cmd": format!("printf 'hello from codex\\n' > hello.txt")}),
            ),
            tool("exec_command", json!({"cmd": TEST_COMMAND})),
        ],
        // For OpenAI's models opencode edits with apply_patch instead of write.
        "opencode" if !tools.contains(&"write") => vec![
            tool(
                "apply_patch",
                json!({"patchText": format!("*** Begin Patch\n*** Add File: hello.txt\n+{}\n*** End Patch", content.trim_end())}),
            ),
            tool(
                "bash",
                json!({"command": TEST_COMMAND, "description": "run the tests"}),
            ),
        ],
        "opencode" => vec![
            tool("write", json!({"filePath": "hello.txt", "content": content})),
            tool(
                "bash",
                json!({"command": TEST_COMMAND, "description": "run the tests"}),
            ),
        ],
        "gemini" => vec![
            tool(
                "write_file",
                json!({"file_path": "hello.txt", "content": content}),
            ),
            tool(
                "run_shell_command",
                json!({"command": TEST_COMMAND, "description": "run the tests"}),
            ),
        ],
        // Its edit format for the OpenAI models: search/replace blocks (an empty search
        // creates the file).
        "aider" => vec![Step::Text(format!(
            "I will create the file.\n\nhello.txt\n```\n<<<<<<< SEARCH\n=======\n{content}>>>>>>> REPLACE\n```\n"
        ))],
        other => panic!("no script for {other}"),
    }
}

/// A tool call that fails (or that the CLI refuses), after which the model ends its turn as
/// if all went well: the CLIs exit 0 then.
fn failing_steps(preset: &str) -> Vec<Step> {
    let shell = |name: &str, key: &str, cmd: &str| Step::Tool {
        name: name.into(),
        args: json!({ key: cmd, "description": "run the tests" }),
    };
    match preset {
        "claude-code" => vec![shell("Bash", "command", FAILING_COMMAND)],
        "codex" => vec![shell("exec_command", "cmd", FAILING_COMMAND)],
        "opencode" => vec![shell("bash", "command", FAILING_COMMAND)],
        // Its shell tool refuses command substitution.
        "gemini" => vec![shell("run_shell_command", "command", "echo $(whoami)")],
        // Its test command fails whatever the model edits.
        "aider" => implement_steps("aider", "hello.txt", &[]),
        other => panic!("no script for {other}"),
    }
}

/// The stand-in's script for one preset: side requests (titles) get a short text; the spec
/// phase ends with the spec; the implement phase plays the steps, then ends the turn.
fn script(preset: &'static str, failing: bool) -> apiary_testkit::model_standin::Script {
    Arc::new(move |api: Api, body: &Value, done: usize| {
        let text = request_text(body);
        let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
        if text.contains(IMPLEMENT_MARK) {
            // The workspace's absolute path, for a CLI whose write tool wants one.
            let ws = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Primary working directory: "))
                .map(|d| format!("{}/hello.txt", d.trim()))
                .unwrap_or_else(|| "hello.txt".into());
            let tools: Vec<&str> = body["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| {
                            t.pointer("/function/name")
                                .or(t.get("name"))
                                .and_then(Value::as_str)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let steps = if failing {
                failing_steps(preset)
            } else {
                implement_steps(preset, &ws, &tools)
            };
            let step = if preset == "aider" {
                // Aider's prompt holds example answers, never tool results; its test command
                // passes, so it asks once.
                steps[0].clone()
            } else {
                steps
                    .get(done)
                    .cloned()
                    .unwrap_or_else(|| Step::Text("Done: wrote hello.txt, the tests pass.".into()))
            };
            let _ = api;
            return step;
        }
        if text.contains(SPEC_MARK) && (has_tools || preset == "aider") {
            if preset == "aider" {
                return Step::Text(format!(
                    ".apiary/SPEC.md\n```\n<<<<<<< SEARCH\n=======\n{SPEC}\n>>>>>>> REPLACE\n```\n"
                ));
            }
            return Step::Text(SPEC.into());
        }
        Step::Text("Apiary task".into())
    })
}

/// The app with a gateway pointed at a fresh stand-in playing `preset`'s script, and a
/// project on that preset: (app, its folder, stand-in, signed-in admin, project id).
async fn setup(
    preset: &'static str,
    failing: bool,
    per_answer: Reported,
) -> (TestApp, tempfile::TempDir, ModelStandin, Client, String) {
    path_with_clis();
    let standin = ModelStandin::start(script(preset, failing), per_answer).await;
    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let admin = app.admin().await;
    let (status, body) = admin
        .patch(
            "/api/v1/settings",
            json!({
                "agent_orchestration_enabled": true,
                "gateway": {
                    "base_urls": {"anthropic": standin.base, "openai": standin.base, "gemini": standin.base},
                    "keys": {"anthropic": ANTHROPIC_KEY, "openai": OPENAI_KEY, "gemini": GEMINI_KEY},
                },
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let repo = bare_repo(dir.path());
    let pid = project(&admin, &repo, preset, failing).await;
    (app, dir, standin, admin, pid)
}

/// A new task of the project, handed to the agent.
async fn hand_over(admin: &Client, pid: &str) -> String {
    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "Say hello" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    tid
}

/// A run whose tool call failed or was refused is not reported as a success, whatever the
/// CLI's exit code.
async fn run_failing(preset: &'static str) {
    let (app, dir, _standin, admin, pid) = setup(preset, true, Reported::default()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let tid = hand_over(&admin, &pid).await;
    wait_for(&admin, &tid, "spec_ready", Duration::from_secs(120)).await;
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(180)).await;
    let error = t["agent"]["last_error"].as_str().unwrap();
    let want = match preset {
        "gemini" => "refused",
        "aider" => "aider gave up",
        _ => "the agent stopped after a failed tool call",
    };
    assert!(error.contains(want), "{preset}: {error}");
    drop(app);
}

async fn run_preset(preset: &'static str) {
    let (_app, dir, standin, admin, pid) = setup(
        preset,
        false,
        Reported {
            input: 120,
            output: 30,
            cache_read: 0,
            cache_write: 0,
        },
    )
    .await;
    let boxes = boxes_dir(dir.path());
    let _reaper = BoxReaper(boxes.clone());
    let tid = hand_over(&admin, &pid).await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(120)).await;
    assert!(
        t["agent"]["spec"]
            .as_str()
            .unwrap()
            .contains("Write hello.txt"),
        "{preset}: {t}"
    );
    let box_id = t["agent"]["box_id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(&admin, &tid, "pr_ready", Duration::from_secs(180)).await;
    // Shown when the test fails (nextest keeps a passing test's output to itself).
    let logs = all_logs(&admin, &tid).await;
    eprintln!("task log ({preset}):\n{logs}");
    let (status, diff) = admin.get(&format!("/api/v1/tasks/{tid}/agent/diff")).await;
    assert_eq!(status, 200, "{diff}");
    let diff = diff["diff"].as_str().unwrap().to_string();
    assert!(
        diff.contains(&format!("+hello from {preset}")),
        "{preset}: the file the model asked for is in the PR: {diff}"
    );
    assert!(
        !diff.contains(".aider") && !diff.contains(".gitignore"),
        "{preset}: nothing of the CLI's own is committed: {diff}"
    );
    assert!(
        logs.contains(TEST_OUTPUT),
        "{preset}: the test command's output reached the log:\n{logs}"
    );

    // Every token the stand-in reported was metered, once.
    let want = standin.reported();
    let mut usage = Value::Null;
    for _ in 0..100 {
        usage = admin
            .get(&format!("/api/v1/tasks/{tid}/agent/usage"))
            .await
            .1;
        if usage["total"]["output_tokens"] == want.output {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        usage["total"]["input_tokens"], want.input,
        "{preset}: {usage}"
    );
    assert_eq!(
        usage["total"]["output_tokens"], want.output,
        "{preset}: {usage}"
    );
    let phases: Vec<&str> = usage["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"speccing") && phases.contains(&"implementing"),
        "{preset}: {usage}"
    );

    // No provider key in the box: not in its files, its processes' environment, nor its log.
    let keys = [ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY];
    assert_no_key_in(&boxes.join(&box_id), &keys);
    for pid in box_processes(&boxes.join(&box_id)) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env);
        for k in keys {
            assert!(
                !env.contains(k),
                "{preset}: a provider key in process {pid}"
            );
        }
    }
    for k in keys {
        assert!(!logs.contains(k), "{preset}: a provider key in the log");
    }
    // The stand-in got the real key, never the box's token.
    let seen = standin.requests();
    assert!(!seen.is_empty());
    for r in &seen {
        let headers = format!("{:?}", r.headers);
        assert!(
            keys.iter().any(|k| headers.contains(k)),
            "{preset}: the provider got its key: {headers}"
        );
        assert!(!headers.contains("apiary_gw_"), "{preset}: {headers}");
    }

    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn project(admin: &Client, repo: &Path, preset: &str, failing: bool) -> String {
    let (_, p) = admin
        .post("/api/v1/projects", json!({ "name": preset }))
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": {
                "enabled": true, "repo_url": repo.display().to_string(), "preset": preset,
                "prompts": {
                    "spec": format!("{SPEC_MARK}\nWrite the spec for: {{{{ task.title }}}}. Write it to .apiary/SPEC.md or answer with it."),
                    "implement": format!("{IMPLEMENT_MARK}\n{{{{ spec }}}}\nRun the tests with: {TEST_COMMAND}"),
                }
            } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    if preset == "aider" {
        // Aider runs no command of its own choosing: the project's test command is its test-cmd.
        let (status, body) = admin
            .patch(
                &format!("/api/v1/projects/{pid}/gateway"),
                json!({"agent_env": {
                    "AIDER_TEST_CMD": if failing { FAILING_COMMAND } else { TEST_COMMAND },
                    "AIDER_AUTO_TEST": "true",
                }}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    pid
}

async fn all_logs(admin: &Client, tid: &str) -> String {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = admin
            .get(&format!(
                "/api/v1/tasks/{tid}/agent/logs?after={after}&limit=1000"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let lines = page["lines"].as_array().unwrap();
        if lines.is_empty() {
            return out.join("\n");
        }
        out.extend(
            lines
                .iter()
                .filter_map(|l| l["line"].as_str().map(String::from)),
        );
        after = page["next_after"].as_i64().unwrap();
    }
}

fn assert_no_key_in(dir: &Path, keys: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            assert_no_key_in(&path, keys);
        } else if meta.is_file() && meta.len() < 50 << 20 {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for k in keys {
                assert!(!text.contains(k), "a provider key in {}", path.display());
            }
        }
    }
}

/// Processes whose working directory is inside the box's folder.
fn box_processes(box_dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            if cwd.starts_with(box_dir) {
                out.push(pid);
            }
        }
    }
    out
}

#[tokio::test]
async fn claude_code_works_a_task_through_the_gateway() {
    run_preset("claude-code").await;
}

#[tokio::test]
async fn codex_works_a_task_through_the_gateway() {
    run_preset("codex").await;
}

#[tokio::test]
async fn opencode_works_a_task_through_the_gateway() {
    run_preset("opencode").await;
}

#[tokio::test]
async fn gemini_works_a_task_through_the_gateway() {
    run_preset("gemini").await;
}

#[tokio::test]
async fn aider_works_a_task_through_the_gateway() {
    run_preset("aider").await;
}

#[tokio::test]
async fn claude_code_failing_tool_calls_fail_the_run() {
    run_failing("claude-code").await;
}

#[tokio::test]
async fn codex_failing_tool_calls_fail_the_run() {
    run_failing("codex").await;
}

#[tokio::test]
async fn opencode_failing_tool_calls_fail_the_run() {
    run_failing("opencode").await;
}

#[tokio::test]
async fn gemini_refused_tool_calls_fail_the_run() {
    run_failing("gemini").await;
}

#[tokio::test]
async fn aider_failing_tests_fail_the_run() {
    run_failing("aider").await;
}

/// A per-task budget stops a real agent: the answer that crossed it is the last one the
/// provider gives; raising the budget and retrying finishes the task.
#[tokio::test]
async fn a_budget_stops_a_real_agent_and_a_raised_one_lets_the_retry_finish() {
    // 10,000 input tokens an answer at $3 per million: $0.03, over a budget of $0.01.
    let per = Reported {
        input: 10_000,
        output: 10,
        ..Reported::default()
    };
    let (_app, dir, standin, admin, pid) = setup("claude-code", false, per).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let budget = |usd: f64| json!({ "gateway": { "task_budget_usd": usd } });
    assert_eq!(admin.patch("/api/v1/settings", budget(0.01)).await.0, 200);
    let tid = hand_over(&admin, &pid).await;
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(120)).await;
    let error = t["agent"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("budget of $0.01 reached ($0.03"),
        "{error}"
    );
    assert_eq!(
        standin.answers(),
        1,
        "nothing past the budget was forwarded"
    );

    assert_eq!(admin.patch("/api/v1/settings", budget(1.0)).await.0, 200);
    let (status, body) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&admin, &tid, "spec_ready", Duration::from_secs(120)).await;
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for(&admin, &tid, "pr_ready", Duration::from_secs(120)).await;
    let (_, diff) = admin.get(&format!("/api/v1/tasks/{tid}/agent/diff")).await;
    assert!(diff["diff"]
        .as_str()
        .unwrap()
        .contains("+hello from claude-code"));
    let (_, usage) = admin.get(&format!("/api/v1/tasks/{tid}/agent/usage")).await;
    assert!(
        usage["total"]["cost_usd"].as_f64().unwrap() > 0.03,
        "{usage}"
    );
}
