//! The loop with boxes in containers, through the Docker Engine API of a real engine (Podman
//! from Debian, started by `make test`; `APIARY_TEST_BOX_ENGINE` names its socket): this very
//! binary as the box agent, a real git repository, a shell-script agent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apiary_boxes::container::ContainerProvider;
use apiary_boxes::{BoxProvider, INSTALLATION_LABEL, TASK_LABEL};
use apiary_testkit::{bare_repo, box_engine, git, Client, ContainerReaper, TestApp};
use serde_json::{json, Value};

use crate::{
    approve_to_pr, changes_and_merge, configure, egress_report, egress_services, exe,
    project_with_agent, wait_for, write_script, AGENT,
};

/// A test's app with container boxes: its folder's `scripts/` is mounted read-only into the
/// boxes; the data folder beside it never is.
async fn app() -> (
    TestApp,
    tempfile::TempDir,
    std::sync::Arc<ContainerProvider>,
    PathBuf,
    ContainerReaper,
) {
    app_on(&box_engine(), None).await
}

async fn app_on(
    engine: &str,
    runtime: Option<&str>,
) -> (
    TestApp,
    tempfile::TempDir,
    std::sync::Arc<ContainerProvider>,
    PathBuf,
    ContainerReaper,
) {
    let (app, dir, provider) = TestApp::spawn_with_container_boxes(&exe(), engine, runtime).await;
    let installation = app.store.installation_id().await.unwrap();
    let reaper = ContainerReaper(installation, Some(engine.to_string()));
    let scripts = std::fs::canonicalize(dir.path().join("scripts")).unwrap();
    (app, dir, provider, scripts, reaper)
}

/// A bare repository the box user (uid 1000 in the container) may push to.
fn shared_repo(dir: &Path) -> PathBuf {
    let repo = bare_repo(dir);
    git(&repo, &["config", "core.sharedRepository", "world"]);
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success());
    repo
}

async fn hand_over(admin: &Client, repo: &Path, command: &str, title: &str) -> String {
    hand_over_with(admin, repo, command, title, json!({})).await
}

/// As [`hand_over`], the project's agent settings patched with `agent` first.
async fn hand_over_with(
    admin: &Client,
    repo: &Path,
    command: &str,
    title: &str,
    agent: Value,
) -> String {
    let pid = project_with_agent(admin, repo, command).await;
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": agent }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
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
    tid
}

/// The engine's own view: the containers and volumes carrying the task's label.
async fn engine_left(provider: &ContainerProvider, tid: &str) -> (usize, bool) {
    let containers = provider.list(Some((TASK_LABEL, tid))).await.unwrap().len();
    let volumes = provider
        .engine()
        .volumes(&[format!("{TASK_LABEL}={tid}")])
        .await
        .unwrap();
    (containers, !volumes.is_empty())
}

#[tokio::test]
async fn the_loop_in_containers_leaves_no_container_or_volume() {
    let (app, dir, provider, scripts, _reaper) = app().await;
    container_loop(&app, dir.path(), &provider, &scripts, 256, "runc").await;
}

/// Whether gVisor runs here: `None`, or why not (said once by the test that needs it).
fn gvisor_unavailable() -> Option<String> {
    match std::process::Command::new("runsc")
        .args(["--network=none", "do", "/bin/true"])
        .output()
    {
        Err(e) => Some(format!(
            "runsc cannot be run ({e}); Debian: apt install runsc"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "runsc does not run on this machine: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

#[tokio::test]
async fn the_loop_in_containers_under_gvisor() {
    if let Some(why) = gvisor_unavailable() {
        eprintln!("gVisor: the loop under runsc is not run here: {why}");
        return;
    }
    // Podman takes the runtime per service: `make test` starts one under runsc.
    let engine = std::env::var("APIARY_TEST_GVISOR_ENGINE").expect(
        "runsc runs here but APIARY_TEST_GVISOR_ENGINE is not set (make gvisor-up starts \
         Podman's service under runsc)",
    );
    let (app, dir, provider, scripts, _reaper) = app_on(&engine, Some("runsc")).await;
    // gVisor's sandbox needs room for its own threads: at least 1024 processes.
    container_loop(&app, dir.path(), &provider, &scripts, 1024, "runsc").await;
}

/// Hand over → spec → approve → PR → changes → PR round 2 → merged → neither container nor
/// volume left; `pids` is the process limit the box must have got (asked: 256), `runtime`
/// the OCI runtime it must run under.
async fn container_loop(
    app: &TestApp,
    dir: &Path,
    provider: &ContainerProvider,
    scripts: &Path,
    pids: u64,
    runtime: &str,
) {
    let admin = app.admin().await;
    let repo = shared_repo(dir);
    let command = write_script(scripts, "agent.sh", AGENT);
    configure(
        &admin,
        json!({ "box_limits": { "memory_mb": 512, "cpu_millis": 1000, "pids": 256 } }),
    )
    .await;
    // The site preview: the README's static-folder recipe, serving the workspace.
    let tid = hand_over_with(
        &admin,
        &repo,
        &command,
        "Say hello",
        json!({ "preview_command": crate::site::STATIC_PREVIEW }),
    )
    .await;

    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(90)).await;
    assert_eq!(t["agent"]["spec"], "# Spec\n\nWrite hello.txt.\n");
    let box_id = t["agent"]["box_id"].as_str().unwrap().to_string();
    // A container of the engine, with the settings' limits, as the box user.
    let c = provider
        .engine()
        .inspect(&box_id)
        .await
        .unwrap()
        .expect("the box's container");
    assert_eq!(
        c["HostConfig"]["Memory"],
        512 * 1024 * 1024,
        "{}",
        c["HostConfig"]
    );
    assert_eq!(c["HostConfig"]["NanoCpus"], 1_000_000_000_u64);
    assert_eq!(c["HostConfig"]["PidsLimit"], pids);
    assert_eq!(
        provider
            .engine()
            .oci_runtime(&box_id)
            .await
            .unwrap()
            .as_deref(),
        Some(runtime)
    );
    assert_eq!(c["Config"]["User"], "1000:1000");
    assert_eq!(c["Config"]["Labels"][TASK_LABEL], tid);
    assert_eq!(
        c["Config"]["Labels"][INSTALLATION_LABEL],
        app.store.installation_id().await.unwrap()
    );
    assert_eq!(engine_left(provider, &tid).await, (1, true));

    approve_to_pr(&admin, &tid).await;
    // The preview in the container answers through Apiary's site origin.
    crate::site::site_shows(app, &tid, "hello.txt", "hello from the agent").await;
    changes_and_merge(&admin, &tid, &repo).await;

    // Torn down: neither the container nor its volume is left on the engine, and the task
    // knows (the flag is set once the provider reports the box destroyed).
    let start = Instant::now();
    while (engine_left(provider, &tid).await != (0, false)
        || !app.store.get_task(&tid).await.unwrap().box_torn_down)
        && start.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        engine_left(provider, &tid).await,
        (0, false),
        "container, volume"
    );
    assert!(app.store.get_task(&tid).await.unwrap().box_torn_down);
}

#[tokio::test]
async fn a_container_killed_from_outside_ends_failed_box_vanished() {
    let (app, dir, provider, scripts, _reaper) = app().await;
    let admin = app.admin().await;
    let repo = shared_repo(dir.path());
    let command = write_script(&scripts, "agent.sh", AGENT);
    configure(&admin, json!({})).await;
    let tid = hand_over(&admin, &repo, &command, "Doomed").await;
    let t = wait_for(&admin, &tid, "spec_ready", Duration::from_secs(90)).await;
    let box_id = t["agent"]["box_id"].as_str().unwrap().to_string();
    // As an operator (or the kernel's OOM killer) would: the engine kills the container.
    provider.engine().kill(&box_id).await.unwrap();
    let start = Instant::now();
    while provider.engine().inspect(&box_id).await.unwrap().unwrap()["State"]["Running"]
        == Value::Bool(true)
        && start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sum = app.orch.watchdog_pass("test").await.unwrap();
    assert_eq!(sum.vanished, 1, "{sum:?}");
    let t = wait_for(&admin, &tid, "failed", Duration::from_secs(10)).await;
    assert_eq!(t["agent"]["last_error"], "box vanished");
}

/// The agent's probe: direct, proxied to a forbidden and an allowed address, and the model
/// gateway (Apiary answers: no such provider).
const NETWORK_PROBE: &str = r#"#!/bin/sh
mkdir -p .apiary; out=.apiary/SPEC.md; : > "$out"
r() { echo "$1" >> "$out"; }
if curl -s --noproxy '*' --max-time 3 http://HOSTIP:FORBIDDEN/ >/dev/null 2>&1; then r "direct: REACHED"; else r "direct: refused"; fi
r "proxied forbidden: $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://HOSTIP:FORBIDDEN/)"
r "allowed: $(curl -s --max-time 5 http://127.0.0.1:ALLOWED/hello)"
r "tunnel: $(curl -s --max-time 5 --proxytunnel http://127.0.0.1:ALLOWED/hello)"
r "gateway: $(curl -s --max-time 5 "$APIARY_GATEWAY_URL/nope/v1/models" | grep -o 'no such provider')"
"#;

/// This host's address on its default route (not loopback): a "local address" the box must
/// not reach even though it is on the machine.
fn host_address() -> String {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .unwrap_or("127.0.0.1")
        .to_string()
}

#[tokio::test]
async fn a_container_box_reaches_only_allowed_hosts_and_refusals_are_logged() {
    // The forbidden service listens on every address: the box tries this host's own.
    let (forbidden_port, touched, allowed_port) = egress_services("0.0.0.0").await;
    let (app, dir, _provider, scripts, _reaper) = app().await;
    let admin = app.admin().await;
    let repo = shared_repo(dir.path());
    let host = host_address();
    let script = NETWORK_PROBE
        .replace("HOSTIP", &host)
        .replace("FORBIDDEN", &forbidden_port.to_string())
        .replace("ALLOWED", &allowed_port.to_string());
    let command = write_script(&scripts, "probe.sh", &script);
    configure(
        &admin,
        json!({ "egress_allow": [format!("127.0.0.1:{allowed_port}")] }),
    )
    .await;
    let tid = hand_over(&admin, &repo, &command, "Egress").await;
    egress_report(
        &admin,
        &tid,
        &touched,
        &["gateway: no such provider"],
        &format!("egress refused: {host}:{forbidden_port}"),
    )
    .await;
}
