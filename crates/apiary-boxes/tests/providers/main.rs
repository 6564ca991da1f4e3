//! One provider suite, run against the local provider and against the remote provider
//! talking to a real Box Host API server (boxd's router) on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiary_boxes::local::{LocalProvider, Sandbox};
use apiary_boxes::remote::RemoteProvider;
use apiary_boxes::{BoxError, BoxInfo, BoxProvider, BoxState, CreateBox, TASK_LABEL};

mod kube_standin;

/// A stand-in box agent: announces a port like the real one, then idles (with a child, to
/// show the whole process group goes).
const FAKE_AGENT: &str = r#"#!/bin/sh
if [ "$APIARY_FAIL_AT_START" = "1" ]; then echo "cannot start: boom" >&2; exit 3; fi
sleep 600 &
echo "{\"port\": 4242, \"pid\": $$}" > "$APIARY_BOX_DIR/control.json.tmp"
mv "$APIARY_BOX_DIR/control.json.tmp" "$APIARY_BOX_DIR/control.json"
wait
"#;

fn fake_agent(dir: &Path) -> PathBuf {
    let path = dir.join("fake-agent.sh");
    std::fs::write(&path, FAKE_AGENT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn alive(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn pid_of(root: &Path, id: &str) -> i32 {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(id).join("state.json")).unwrap())
            .unwrap();
    state["pid"].as_i64().unwrap() as i32
}

fn request(task: &str, fail: bool) -> CreateBox {
    CreateBox {
        template: "default".into(),
        env: BTreeMap::from([(
            "APIARY_FAIL_AT_START".to_string(),
            if fail { "1" } else { "0" }.to_string(),
        )]),
        labels: BTreeMap::from([(TASK_LABEL.to_string(), task.to_string())]),
        limits: None,
    }
}

/// What a test does to boxes from outside their provider: notes a box it was given, kills
/// one (as an operator or the kernel would), and tells whether anything of one is left.
struct Outside<'a> {
    seen: &'a (dyn Fn(&BoxInfo) + Sync),
    kill: &'a (dyn Fn(&str) + Sync),
    left: &'a (dyn Fn(&str) -> bool + Sync),
}

/// The suite every provider passes: create, get, list by label, a box killed from outside
/// reported gone, destroy ending everything (twice is fine), a box that dies at start an error
/// carrying its output.
async fn provider_suite(p: &dyn BoxProvider, outside: Outside<'_>) {
    let a = p.create(request("task-a", false)).await.expect("create");
    assert_eq!(a.state, BoxState::Running);
    assert!(a.control_url.starts_with("http://"), "{a:?}");
    (outside.seen)(&a);
    let b = p.create(request("task-b", false)).await.expect("create b");
    (outside.seen)(&b);
    assert_eq!(
        p.get(&a.id).await.unwrap().unwrap().state,
        BoxState::Running
    );
    let found = p.list(Some((TASK_LABEL, "task-a"))).await.unwrap();
    assert_eq!(
        found.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
        vec![a.id.clone()]
    );
    assert_eq!(p.list(None).await.unwrap().len(), 2);
    assert!(p
        .list(Some((TASK_LABEL, "nobody")))
        .await
        .unwrap()
        .is_empty());

    // Killed from outside: the provider tells it is gone.
    (outside.kill)(&b.id);
    let mut state = BoxState::Running;
    for _ in 0..200 {
        state = p.get(&b.id).await.unwrap().unwrap().state;
        if state == BoxState::Exited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state, BoxState::Exited);

    // Destroy ends the box and removes everything of it; again is fine.
    p.destroy(&a.id).await.unwrap();
    for _ in 0..300 {
        if !(outside.left)(&a.id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !(outside.left)(&a.id),
        "nothing of the destroyed box is left"
    );
    p.destroy(&a.id).await.unwrap();
    assert_eq!(p.get(&a.id).await.unwrap(), None);
    p.destroy(&b.id).await.unwrap();
    assert!(!(outside.left)(&b.id));
    assert!(p.list(None).await.unwrap().is_empty());

    // A box that dies at start is an error with its output, not a hang, and leaves nothing.
    match p.create(request("task-c", true)).await {
        Err(e) => assert!(e.to_string().contains("boom"), "{e}"),
        Ok(info) => panic!("a failing box was reported as created: {info:?}"),
    }
    assert!(p.list(None).await.unwrap().is_empty());
    assert_eq!(p.templates().await.unwrap(), vec!["default".to_string()]);
}

/// The outside view of local boxes under `root`: their folders and process groups.
async fn local_suite(p: &dyn BoxProvider, root: &Path) {
    let pids = std::sync::Mutex::new(std::collections::HashMap::new());
    let seen = |b: &BoxInfo| {
        pids.lock()
            .unwrap()
            .insert(b.id.clone(), pid_of(root, &b.id));
    };
    let kill = |id: &str| unsafe {
        libc::kill(-pid_of(root, id), libc::SIGKILL);
    };
    let left = |id: &str| {
        root.join(id).exists() || pids.lock().unwrap().get(id).is_some_and(|pid| alive(-*pid))
    };
    provider_suite(
        p,
        Outside {
            seen: &seen,
            kill: &kill,
            left: &left,
        },
    )
    .await;
}

#[tokio::test]
async fn the_local_provider() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("boxes");
    let p = LocalProvider::new(root.clone(), fake_agent(dir.path()), Sandbox::None).unwrap();
    local_suite(&p, &root).await;
}

#[tokio::test]
async fn a_new_provider_on_the_same_folder_finds_running_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("boxes");
    let agent = fake_agent(dir.path());
    let first = LocalProvider::new(root.clone(), agent.clone(), Sandbox::None).unwrap();
    let made = first.create(request("t", false)).await.unwrap();
    drop(first);
    let again = LocalProvider::new(root.clone(), agent, Sandbox::None).unwrap();
    assert_eq!(
        again.get(&made.id).await.unwrap().unwrap().state,
        BoxState::Running
    );
    again.destroy(&made.id).await.unwrap();
}

async fn start_host(root: PathBuf, agent: PathBuf, key: &str) -> String {
    let provider = Arc::new(LocalProvider::new(root, agent, Sandbox::None).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = apiary_boxes::host::router(provider, key.to_string(), Arc::default());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_remote_provider_through_a_box_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("boxes");
    let url = start_host(root.clone(), fake_agent(dir.path()), "host-key-1").await;
    let p = RemoteProvider::new(&url, "host-key-1");
    local_suite(&p, &root).await;
}

/// A stand-in box agent for Pods: fails at start when asked, else listens where the Pod's
/// address says (as the box agent's control plane does).
const POD_AGENT: &str = r#"#!/bin/sh
if [ "$APIARY_FAIL_AT_START" = "1" ]; then echo "cannot start: boom" >&2; exit 3; fi
exec python3 -c '
import http.server, os
host, port = os.environ["APIARY_CONTROL_BIND"].rsplit(":", 1)
http.server.HTTPServer((host, int(port)), http.server.BaseHTTPRequestHandler).serve_forever()
'
"#;

#[tokio::test]
async fn the_kubernetes_provider_against_a_schema_checked_api_standin() {
    use apiary_boxes::kubernetes::{KubernetesConfig, KubernetesProvider};
    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("pod-agent.sh");
    std::fs::write(&agent, POD_AGENT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (standin, url) = kube_standin::KubeStandin::start(agent, dir.path().to_path_buf()).await;
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let mut cfg = KubernetesConfig::new("registry.example/apiary-box:1");
    cfg.gate = Some("apiary-gate.apiary.svc:3128".into());
    cfg.start_timeout = Duration::from_secs(20);
    let p = KubernetesProvider::new(client, cfg);
    let seen = |_: &BoxInfo| {};
    let kill = |id: &str| standin.kill(id);
    let left = |id: &str| standin.holds(id);
    provider_suite(
        &p,
        Outside {
            seen: &seen,
            kill: &kill,
            left: &left,
        },
    )
    .await;
    standin.stop_all();

    // The Pod asked for: the box's limits, no privileges, its env only from its Secret.
    let exchanges = standin.exchanges.lock().unwrap().clone();
    let pod = exchanges
        .iter()
        .find(|x| x.method == "POST" && x.path.ends_with("/pods"))
        .and_then(|x| x.request.clone())
        .expect("a Pod was created");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(c["resources"]["limits"]["memory"], "4096Mi");
    assert!(c.get("env").is_none(), "no variable in the Pod itself: {c}");
    let secret = exchanges
        .iter()
        .find(|x| x.method == "POST" && x.path.ends_with("/secrets"))
        .and_then(|x| x.request.clone())
        .expect("a Secret was created");
    assert_eq!(
        secret["stringData"]["HTTPS_PROXY"],
        "http://apiary-gate.apiary.svc:3128"
    );

    // Every request and answer against the Kubernetes OpenAPI types.
    let record = dir.path().join("kubernetes-exchanges.jsonl");
    let lines: Vec<String> = exchanges
        .iter()
        .map(|x| serde_json::to_string(x).unwrap())
        .collect();
    std::fs::write(&record, lines.join("\n")).unwrap();
    let checker =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_kubernetes_requests.py");
    let out = std::process::Command::new("python3")
        .arg(&checker)
        .arg(&record)
        .output()
        .expect("python3 runs the checker");
    assert!(
        out.status.success(),
        "the Kubernetes checker refused:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The checker is no rubber stamp: a field the API does not know, a wrong type, an
    // operation it does not have, each fail it.
    let mut bad_pod = pod.clone();
    bad_pod["spec"]["containers"][0]["bogusField"] = serde_json::json!(1);
    let mut bad_secret = secret.clone();
    bad_secret["stringData"] = serde_json::json!({ "A": 1 });
    let bad = [
        serde_json::json!({ "method": "POST", "path": "/api/v1/namespaces/apiary/pods", "query": "",
                            "request": bad_pod, "status": 201, "response": pod }),
        serde_json::json!({ "method": "POST", "path": "/api/v1/namespaces/apiary/secrets", "query": "",
                            "request": bad_secret, "status": 201, "response": secret }),
        serde_json::json!({ "method": "PATCH", "path": "/api/v1/namespaces/apiary/pods/x", "query": "",
                            "request": null, "status": 200, "response": {} }),
    ];
    let bad_record = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad_record,
        bad.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = std::process::Command::new("python3")
        .arg(&checker)
        .arg(&bad_record)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{said}");
    for want in [
        "bogusField",
        "createNamespacedSecret request",
        "PATCH /api/v1/namespaces/apiary/pods/x",
    ] {
        assert!(
            said.contains(want),
            "the checker should name {want:?}:\n{said}"
        );
    }
}

#[tokio::test]
async fn a_box_host_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = start_host(dir.path().join("boxes"), fake_agent(dir.path()), "right").await;
    let p = RemoteProvider::new(&url, "wrong");
    match p.list(None).await {
        Err(BoxError::Host(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(p.create(request("t", false)).await.is_err());
    assert!(
        !dir.path().join("boxes").read_dir().unwrap().any(|_| true),
        "nothing was created"
    );
}

/// A box agent that acts as an attacker who got code running in the box (past the agent's own
/// sandbox): it reports what it can see and tries to steer teardown at another process.
const PROBE_AGENT: &str = r#"#!/bin/sh
r="$APIARY_BOX_DIR/report"
{
  echo "pids: $(ls -d /proc/[0-9]* | wc -l)"
  if cat "/proc/$PROBE_HOST_PID/environ" >/dev/null 2>&1; then echo "host environ: READ"; else echo "host environ: hidden"; fi
  if ls "/proc/$PROBE_HOST_PID/root/" >/dev/null 2>&1; then echo "host root: READ"; else echo "host root: hidden"; fi
  for f in secret.key apiary.db host.key notes.txt; do
    if [ -e "$PROBE_DATA/$f" ]; then echo "$f: VISIBLE"; else echo "$f: hidden"; fi
  done
  echo "boxes seen: $(ls "$PROBE_DATA/boxes" | wc -l)"
  if [ -n "$APIARY_REPO_URL" ] && touch "$APIARY_REPO_URL/pushed" 2>/dev/null; then echo "repo: writable"; else echo "repo: refused"; fi
  # Point the provider's record at a process that is not the box's.
  state="{\"id\":\"x\",\"template\":\"default\",\"labels\":{},\"pid\":$PROBE_VICTIM,\"started\":0,\"port\":4242}"
  echo "$state" > "$APIARY_BOX_DIR/../state.json" 2>/dev/null
  echo "$state" > "$APIARY_BOX_DIR/state.json"
} > "$r" 2>&1
sleep 600 &
echo "{\"port\": 4242}" > "$APIARY_BOX_DIR/control.json.tmp"
mv "$APIARY_BOX_DIR/control.json.tmp" "$APIARY_BOX_DIR/control.json"
wait
"#;

#[tokio::test]
async fn a_sandboxed_box_sees_neither_the_host_nor_the_data_folder_and_cannot_steer_teardown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let root = data.join("boxes");
    std::fs::create_dir_all(&root).unwrap();
    for f in ["secret.key", "apiary.db", "host.key", "notes.txt"] {
        std::fs::write(data.join(f), "secret").unwrap();
    }
    let repo = data.join("repos").join("site.git");
    std::fs::create_dir_all(&repo).unwrap();
    let probe = dir.path().join("probe.sh");
    std::fs::write(&probe, PROBE_AGENT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The real sandbox: this test fails where bubblewrap does not run (make test installs it).
    let p = LocalProvider::new(root.clone(), probe, Sandbox::Bwrap).expect("bubblewrap runs");
    // A process the box must not be able to have killed.
    let mut victim = std::process::Command::new("sleep");
    victim.arg("600");
    std::os::unix::process::CommandExt::process_group(&mut victim, 0);
    let mut victim = victim.spawn().unwrap();
    let victim_pid = victim.id() as i32;

    let other = p.create(request("task-other", false)).await.unwrap();
    let mut req = request("task-probe", false);
    req.env.extend([
        ("PROBE_HOST_PID".to_string(), std::process::id().to_string()),
        ("PROBE_DATA".to_string(), data.display().to_string()),
        ("PROBE_VICTIM".to_string(), victim_pid.to_string()),
        ("APIARY_REPO_URL".to_string(), repo.display().to_string()),
    ]);
    let probe_box = p.create(req).await.unwrap();
    let report = std::fs::read_to_string(root.join(&probe_box.id).join("box/report")).unwrap();
    for want in [
        "host environ: hidden",
        "host root: hidden",
        "secret.key: hidden",
        "apiary.db: hidden",
        "host.key: hidden",
        "notes.txt: hidden",
        "boxes seen: 1",
        "repo: writable",
    ] {
        assert!(
            report.lines().any(|l| l == want),
            "expected {want:?} in the box's report:\n{report}"
        );
    }
    let pids: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("pids: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids < 10, "the box has its own PID namespace:\n{report}");
    assert!(repo.join("pushed").exists());

    // What the box wrote where its record is reached no record; teardown ends the box, not
    // the process the box named.
    let box_pid = pid_of(&root, &probe_box.id);
    assert_ne!(
        box_pid, victim_pid,
        "the provider's record is out of the box's reach"
    );
    p.destroy(&probe_box.id).await.unwrap();
    for _ in 0..300 {
        if !alive(-box_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(-box_pid), "the box's process group is gone");
    assert!(alive(victim_pid), "the victim the box named survived");
    p.destroy(&other.id).await.unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[tokio::test]
async fn a_repository_that_holds_the_data_folder_is_never_mounted_into_a_box() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("checkout").join("apiary-data");
    let root = data.join("boxes");
    let p = LocalProvider::new(root.clone(), fake_agent(dir.path()), Sandbox::Bwrap)
        .expect("bubblewrap runs");
    for repo in [dir.path().join("checkout"), data.clone(), root.clone()] {
        let mut req = request("t", false);
        req.env
            .insert("APIARY_REPO_URL".to_string(), repo.display().to_string());
        match p.create(req).await {
            Err(e) => assert!(
                e.to_string().contains("holds Apiary's data folder"),
                "{}: {e}",
                repo.display()
            ),
            Ok(info) => panic!("{} was mounted into {info:?}", repo.display()),
        }
    }
    assert!(
        p.list(None).await.unwrap().is_empty(),
        "nothing was left behind"
    );
}

#[test]
fn a_stale_or_forged_record_is_never_signalled() {
    // The provider's record names the pid and its start time; one that does not match (a pid
    // reused since, or pid 1) is taken for gone and never signalled.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data").join("boxes");
        let p = LocalProvider::new(root.clone(), fake_agent(dir.path()), Sandbox::None).unwrap();
        let made = p.create(request("t", false)).await.unwrap();
        let real = pid_of(&root, &made.id);
        let mut victim = std::process::Command::new("sleep");
        victim.arg("600");
        std::os::unix::process::CommandExt::process_group(&mut victim, 0);
        let mut victim = victim.spawn().unwrap();
        for (pid, started) in [(victim.id() as i64, 0_i64), (1, 0)] {
            let state_file = root.join(&made.id).join("state.json");
            let mut state: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
            state["pid"] = pid.into();
            state["started"] = started.into();
            std::fs::write(&state_file, state.to_string()).unwrap();
            assert_eq!(
                p.get(&made.id).await.unwrap().unwrap().state,
                BoxState::Exited
            );
        }
        p.destroy(&made.id).await.unwrap();
        assert!(alive(victim.id() as i32), "a forged pid is not signalled");
        unsafe { libc::kill(-real, libc::SIGKILL) };
        victim.kill().unwrap();
        victim.wait().unwrap();
    });
}

#[tokio::test]
async fn a_box_host_reaps_the_boxes_their_owner_stopped_touching() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("boxes");
    let provider: Arc<dyn BoxProvider> =
        Arc::new(LocalProvider::new(root.clone(), fake_agent(dir.path()), Sandbox::None).unwrap());
    let leases = Arc::new(apiary_boxes::host::Leases::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = apiary_boxes::host::router(provider.clone(), "k".into(), leases.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let owner = RemoteProvider::new(&url, "k");
    let kept = owner.create(request("kept", false)).await.unwrap();
    let dropped = owner.create(request("dropped", false)).await.unwrap();
    let dropped_pid = pid_of(&root, &dropped.id);
    let lease = Duration::from_secs(2);
    // The owner keeps touching one box (as its watchdog does every pass), not the other.
    let started = std::time::Instant::now();
    let mut reaped = Vec::new();
    while started.elapsed() < lease * 2 {
        owner
            .get(&kept.id)
            .await
            .unwrap()
            .expect("kept box is there");
        reaped.extend(apiary_boxes::host::reap_once(provider.as_ref(), &leases, lease).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reaped, vec![dropped.id.clone()]);
    assert!(!root.join(&dropped.id).exists());
    assert!(!alive(-dropped_pid), "the reaped box's processes are gone");
    assert_eq!(owner.get(&dropped.id).await.unwrap(), None);
    // A host that restarts gives every box it finds a full lease.
    let fresh = apiary_boxes::host::Leases::default();
    assert!(
        apiary_boxes::host::reap_once(provider.as_ref(), &fresh, lease)
            .await
            .is_empty()
    );
    owner.destroy(&kept.id).await.unwrap();
}

#[tokio::test]
async fn a_box_made_before_start_times_were_recorded_is_still_found_and_ended() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data").join("boxes");
    let p = LocalProvider::new(root.clone(), fake_agent(dir.path()), Sandbox::None).unwrap();
    let root = std::fs::canonicalize(&root).unwrap();
    // The old layout: the box's own folder, its state without a start time.
    let legacy = root.join("box-legacy1");
    std::fs::create_dir_all(&legacy).unwrap();
    let mut old_box = std::process::Command::new("sleep");
    old_box.arg("600").env("APIARY_BOX_DIR", &legacy);
    std::os::unix::process::CommandExt::process_group(&mut old_box, 0);
    let mut old_box = old_box.spawn().unwrap();
    let mut stranger = std::process::Command::new("sleep");
    stranger.arg("600");
    std::os::unix::process::CommandExt::process_group(&mut stranger, 0);
    let mut stranger = stranger.spawn().unwrap();
    let record = |pid: u32| {
        serde_json::json!({ "id": "box-legacy1", "template": "default", "labels": {}, "pid": pid, "port": 4242 })
            .to_string()
    };
    // A record naming a process that is not this box's: gone, and never signalled.
    std::fs::write(legacy.join("state.json"), record(stranger.id())).unwrap();
    assert_eq!(
        p.get("box-legacy1").await.unwrap().unwrap().state,
        BoxState::Exited
    );
    // The box's own process: running, and ended by destroy.
    std::fs::write(legacy.join("state.json"), record(old_box.id())).unwrap();
    assert_eq!(
        p.get("box-legacy1").await.unwrap().unwrap().state,
        BoxState::Running
    );
    p.destroy("box-legacy1").await.unwrap();
    let status = old_box.wait().unwrap();
    assert!(!status.success(), "the old box was ended: {status:?}");
    assert!(alive(stranger.id() as i32), "the stranger lives on");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}
