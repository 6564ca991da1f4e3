//! Test harness shared by the store and server suites. Each test gets a fresh database: a
//! SQLite file in a temporary folder by default, or a new PostgreSQL database on the server
//! named by `APIARY_TEST_DATABASE_URL` (so one suite runs on both backends).

pub mod chat_standins;
pub mod github_standin;
pub mod model_standin;

use std::sync::Arc;

use apiary_core::{Clock, ManualClock, SystemClock};
use apiary_orchestrator::{Metrics, Orchestrator, Worker};
use apiary_server::{AppState, HttpServer, ServerConfig};
use apiary_store::{Backend, SecretKey, Store, StoreOptions};
use serde_json::Value;
use sqlx::Connection;

/// A migrated store on a fresh database, and what keeps that database alive.
pub struct TestStore {
    pub store: Store,
    /// The database's URL (for a second connection, as another replica would open).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("APIARY_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Creates a fresh database and opens a migrated store on it, with the given clock.
pub async fn test_store_with_clock(clock: Arc<dyn Clock>) -> TestStore {
    let (url, dir) = match postgres_url() {
        Some(base) => {
            sqlx::any::install_default_drivers();
            let name = format!("apiary_t_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::AnyConnection::connect(&base)
                .await
                .expect("connect to APIARY_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let (prefix, _) = base
                .rsplit_once('/')
                .expect("APIARY_TEST_DATABASE_URL ends in /DATABASE");
            (format!("{prefix}/{name}"), None)
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            (StoreOptions::sqlite_url(dir.path()), Some(dir))
        }
    };
    let store = Store::connect(StoreOptions {
        url: url.clone(),
        secret_key: SecretKey::generate(),
        clock,
        max_connections: 8,
    })
    .await
    .expect("connect test store");
    store.migrate().await.expect("migrate test store");
    TestStore {
        store,
        url,
        _dir: dir,
    }
}

/// A fresh store on the wall clock.
pub async fn test_store() -> TestStore {
    test_store_with_clock(Arc::new(SystemClock)).await
}

/// A fresh store on a manual clock, starting at a fixed instant.
pub async fn test_store_manual() -> (TestStore, ManualClock) {
    let clock = ManualClock::new(1_800_000_000_000);
    (test_store_with_clock(Arc::new(clock.clone())).await, clock)
}

/// Which backend the suite runs on (for messages and backend-specific checks).
pub fn backend_name(store: &Store) -> &'static str {
    match store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The admin the harness signs in as.
pub const ADMIN_EMAIL: &str = "admin@example.test";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// A real Apiary server on a loopback port, over a fresh database.
pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub orch: Orchestrator,
    pub worker: Worker,
    _db: TestStore,
    _server: tokio::task::JoinHandle<()>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _stop_worker: Arc<tokio::sync::Notify>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self._stop_worker.notify_waiters();
    }
}

impl TestApp {
    /// Starts the server (bootstrapped: the Agent user and an admin) on port 0.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|o| o).await
    }

    /// Starts the server with real local boxes run by `agent_exe` (the `apiary` binary),
    /// in a folder of the test's own; the worker runs in the background. The boxes live under
    /// [`boxes_dir`] of the returned folder, whose `data/` is the provider's data folder,
    /// hidden from boxes; scripts and repositories the tests put beside it stay visible.
    pub async fn spawn_with_boxes(agent_exe: &std::path::Path) -> (TestApp, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("boxes dir");
        let provider = apiary_boxes::local::LocalProvider::new(
            boxes_dir(dir.path()),
            agent_exe.to_path_buf(),
            apiary_boxes::local::Sandbox::Auto,
        )
        .expect("local provider");
        let app = Self::spawn_inner(
            move |o| o.with_local_boxes(Arc::new(provider)),
            Some(dir.path().join("data")),
        )
        .await;
        app.start_worker();
        (app, dir)
    }

    /// Starts the server with container boxes through the engine at `engine` (a `unix://`
    /// socket; `runtime` `runsc` when it runs them under gVisor; the `apiary` binary
    /// `agent_exe` as their agent), on a network of the tests' own; the worker runs in the
    /// background. The folder's `data/` is the data folder (never in a box); its `scripts/` is
    /// mounted read-only into every box; repositories go beside them.
    pub async fn spawn_with_container_boxes(
        agent_exe: &std::path::Path,
        engine: &str,
        runtime: Option<&str>,
    ) -> (
        TestApp,
        tempfile::TempDir,
        Arc<apiary_boxes::container::ContainerProvider>,
    ) {
        let dir = tempfile::tempdir().expect("test dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let scripts = dir.path().join("scripts");
        std::fs::create_dir_all(&scripts).expect("scripts dir");
        let gate = tokio::net::TcpListener::bind("0.0.0.0:0")
            .await
            .expect("gate");
        let mut cfg = apiary_boxes::container::ContainerConfig::new(
            engine,
            agent_exe.to_path_buf(),
            std::fs::canonicalize(&data).expect("data dir"),
            gate.local_addr().expect("gate").port(),
        );
        cfg.network = "apiary-test-boxes".into();
        cfg.mounts = vec![std::fs::canonicalize(&scripts).expect("scripts dir")];
        cfg.runtime = runtime.map(str::to_string);
        let provider = apiary_boxes::container::ContainerProvider::new(cfg)
            .await
            .expect("container provider");
        apiary_box_agent::egress::serve_gate(gate, provider.gate_lookup());
        let boxes = provider.clone();
        let app = Self::spawn_inner(move |o| o.with_local_boxes(boxes), Some(data)).await;
        app.start_worker();
        (app, dir, provider)
    }

    /// Runs the job worker in the background (polling often) until the app is dropped.
    pub fn start_worker(&self) {
        let worker = self.orch.worker().build();
        let stop = self._stop_worker.clone();
        tokio::spawn(async move {
            worker
                .run(std::time::Duration::from_millis(50), async move {
                    stop.notified().await;
                })
                .await;
        });
    }

    /// Starts the server with the orchestrator shaped by `f`.
    pub async fn spawn_with(f: impl FnOnce(Orchestrator) -> Orchestrator) -> TestApp {
        Self::spawn_inner(f, None).await
    }

    /// Starts the server; `data_dir` is the data folder the server guards. The system's temp
    /// folder is an allowed root for local repositories, since tests keep theirs there.
    pub async fn spawn_inner(
        f: impl FnOnce(Orchestrator) -> Orchestrator,
        data_dir: Option<std::path::PathBuf>,
    ) -> TestApp {
        let db = test_store().await;
        let store = db.store.clone();
        store
            .bootstrap(Some(ADMIN_EMAIL.into()), Some(ADMIN_PASSWORD.into()))
            .await
            .expect("bootstrap");
        let mut settings = store.settings().await.expect("settings");
        settings.local_repo_roots = vec![std::fs::canonicalize(std::env::temp_dir())
            .expect("temp dir")
            .display()
            .to_string()];
        store.save_settings(&settings).await.expect("settings");
        let orch = f(Orchestrator::new(
            store.clone(),
            Arc::new(Metrics::default()),
        ));
        let state = AppState {
            store: store.clone(),
            orch: orch.clone(),
            hub: apiary_server::fanout::Hub::start(&orch.bus, store.clone()),
            config: Arc::new(ServerConfig {
                data_dir,
                // Tests see a viewer's WebSocket cut within a second of losing access.
                site_recheck: std::time::Duration::from_millis(500),
                ..ServerConfig::default()
            }),
            limits: Arc::new(apiary_server::limits::Limits::default()),
        };
        let mut server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), state)
            .await
            .expect("bind");
        server
            .bind_site("127.0.0.1:0".parse().unwrap(), None)
            .await
            .expect("bind the site origin");
        let base = format!("http://{}", server.addr());
        orch.set_apiary_url(&base);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let worker = orch.worker().build();
        TestApp {
            base,
            store,
            orch,
            worker,
            _db: db,
            _server: handle,
            _stop: stop,
            _stop_worker: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A client with its own cookie jar, not signed in.
    pub fn anonymous(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: self.base.clone(),
            csrf: None,
            bearer: None,
        }
    }

    /// A client signed in with a session cookie (and its CSRF token).
    pub async fn login(&self, email: &str, password: &str) -> Client {
        let mut c = self.anonymous();
        let (status, body) = c
            .post(
                "/api/v1/auth/login",
                serde_json::json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, 200, "login failed: {body}");
        c.csrf = Some(body["csrf_token"].as_str().unwrap().to_string());
        c
    }

    /// The bootstrapped admin, signed in.
    pub async fn admin(&self) -> Client {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// A new member, signed in.
    pub async fn member(&self, email: &str) -> (Client, apiary_store::User) {
        let user = self
            .store
            .create_user(apiary_store::NewUser {
                email: email.into(),
                name: email.split('@').next().unwrap().into(),
                role: apiary_core::Role::Member,
                password: Some("member password".into()),
            })
            .await
            .expect("create member");
        (self.login(email, "member password").await, user)
    }
}

/// A JSON client for the API.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// Sent as `X-CSRF-Token` on writes when set.
    pub csrf: Option<String>,
    /// Sent as `Authorization: Bearer` when set.
    pub bearer: Option<String>,
}

impl Client {
    /// The same cookies, without the CSRF token (to show writes are refused).
    pub fn without_csrf(&self) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            csrf: None,
            bearer: self.bearer.clone(),
        }
    }

    /// A fresh client that only sends a bearer token.
    pub fn with_bearer(base: &str, token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.to_string(),
            csrf: None,
            bearer: Some(token.to_string()),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if method != reqwest::Method::GET {
            if let Some(c) = &self.csrf {
                r = r.header("x-csrf-token", c);
            }
        }
        if let Some(b) = &self.bearer {
            r = r.bearer_auth(b);
        }
        r
    }

    async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::GET, path)).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::POST, path).json(&body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        Self::send(self.req(reqwest::Method::PUT, path).json(&body)).await
    }
    /// Sends a raw body with a JSON content type (for malformed-input tests).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        Self::send(
            self.req(method, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }
}

/// The container engine the container suites drive (`APIARY_TEST_BOX_ENGINE`, a
/// `unix://` socket; `make test` starts Podman's service and sets it). Unset is a failure
/// that says so, never a silent pass.
pub fn box_engine() -> String {
    std::env::var("APIARY_TEST_BOX_ENGINE")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .expect(
            "APIARY_TEST_BOX_ENGINE is not set: the container suites need a Docker Engine API \
             socket (`make test` starts Podman's: make podman-up)",
        )
}

/// Removes the container boxes (and their volumes) of an installation (its id) that a test
/// left on an engine (the [`box_engine`] unless given), when dropped.
pub struct ContainerReaper(pub String, pub Option<String>);

impl Drop for ContainerReaper {
    fn drop(&mut self) {
        let label = format!("{}={}", apiary_boxes::INSTALLATION_LABEL, self.0);
        let url = self.1.clone().unwrap_or_else(box_engine);
        // Dropped inside a runtime: the sweep runs on a thread (and a client) of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let Ok(engine) = apiary_boxes::engine::Engine::connect(&url).await else {
                    return;
                };
                for c in engine.list(&[label]).await.unwrap_or_default() {
                    if let Some(id) = c["Labels"][apiary_boxes::container::BOX_LABEL].as_str() {
                        let _ = engine.remove_container(id).await;
                        let _ = engine.remove_volume(id).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Where [`TestApp::spawn_with_boxes`] keeps the boxes of the folder it returned.
pub fn boxes_dir(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("data").join("boxes")
}

/// Kills every box process left under `root` when dropped, so a failing test leaks nothing.
pub struct BoxReaper(pub std::path::PathBuf);

impl Drop for BoxReaper {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for e in entries.flatten() {
            let state = std::fs::read_to_string(e.path().join("state.json")).unwrap_or_default();
            let pid = serde_json::from_str::<Value>(&state)
                .ok()
                .and_then(|v| v["pid"].as_i64());
            if let Some(pid) = pid {
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
        }
    }
}

/// Runs git in `dir` with a fixed identity; panics with git's output on failure.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare repository at `<dir>/repo.git` with one commit on `main`; returns its path.
pub fn bare_repo(dir: &std::path::Path) -> std::path::PathBuf {
    let repo = dir.join("repo.git");
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(
        dir,
        &["init", "-q", "--bare", "-b", "main", repo.to_str().unwrap()],
    );
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "# Test repo\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "initial"]);
    git(&seed, &["push", "-q", repo.to_str().unwrap(), "main"]);
    repo
}

/// An in-memory box provider for orchestrator tests: boxes are map entries; `down` makes
/// every call fail like an unreachable host.
#[derive(Default)]
pub struct MemProvider {
    pub boxes: std::sync::Mutex<std::collections::BTreeMap<String, apiary_boxes::BoxInfo>>,
    pub down: std::sync::atomic::AtomicBool,
    pub destroyed: std::sync::Mutex<Vec<String>>,
    /// When set, `create` cancels this task (as a human would) before answering: the race
    /// between a cancel and provisioning.
    pub cancel_during_create: std::sync::Mutex<Option<(Store, String, String)>>,
    next: std::sync::atomic::AtomicU64,
}

impl MemProvider {
    fn check(&self) -> Result<(), apiary_boxes::BoxError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(apiary_boxes::BoxError::Host("provider down".into()));
        }
        Ok(())
    }

    /// Puts a box in place as if made outside Apiary (an orphan, or a task's box).
    pub fn add(&self, id: &str, task: &str) {
        self.boxes.lock().unwrap().insert(
            id.to_string(),
            apiary_boxes::BoxInfo {
                id: id.to_string(),
                state: apiary_boxes::BoxState::Running,
                control_url: "http://127.0.0.1:9".into(),
                code_url: None,
                site_url: None,
                labels: std::collections::BTreeMap::from([(
                    apiary_boxes::TASK_LABEL.to_string(),
                    task.to_string(),
                )]),
            },
        );
    }

    /// Makes a box disappear, as a process killed from outside.
    pub fn vanish(&self, id: &str) {
        self.boxes.lock().unwrap().remove(id);
    }
}

#[async_trait::async_trait]
impl apiary_boxes::BoxProvider for MemProvider {
    async fn create(
        &self,
        req: apiary_boxes::CreateBox,
    ) -> Result<apiary_boxes::BoxInfo, apiary_boxes::BoxError> {
        self.check()?;
        let cancel = self.cancel_during_create.lock().unwrap().take();
        if let Some((store, task, user)) = cancel {
            store
                .transition(apiary_store::TransitionRequest::new(
                    &task,
                    apiary_core::AgentStatus::Cancelled,
                    apiary_store::Actor::Human(user),
                ))
                .await
                .expect("cancel during create");
        }
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("mem-{n}");
        let task = req
            .labels
            .get(apiary_boxes::TASK_LABEL)
            .cloned()
            .unwrap_or_default();
        self.add(&id, &task);
        Ok(self.boxes.lock().unwrap()[&id].clone())
    }
    async fn get(&self, id: &str) -> Result<Option<apiary_boxes::BoxInfo>, apiary_boxes::BoxError> {
        self.check()?;
        Ok(self.boxes.lock().unwrap().get(id).cloned())
    }
    async fn list(
        &self,
        label: Option<(&str, &str)>,
    ) -> Result<Vec<apiary_boxes::BoxInfo>, apiary_boxes::BoxError> {
        self.check()?;
        Ok(self
            .boxes
            .lock()
            .unwrap()
            .values()
            .filter(|b| label.is_none_or(|(k, v)| b.labels.get(k).map(String::as_str) == Some(v)))
            .cloned()
            .collect())
    }
    async fn destroy(&self, id: &str) -> Result<(), apiary_boxes::BoxError> {
        self.check()?;
        self.boxes.lock().unwrap().remove(id);
        self.destroyed.lock().unwrap().push(id.to_string());
        Ok(())
    }
    async fn templates(&self) -> Result<Vec<String>, apiary_boxes::BoxError> {
        Ok(vec!["default".into()])
    }
}

/// The bootstrapped admin of a fresh store (the Agent user is made too).
pub async fn seed_admin(store: &Store) -> apiary_store::User {
    store.bootstrap(None, None).await.expect("bootstrap");
    store
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .find(|u| u.role == apiary_core::Role::Admin)
        .expect("an admin")
}

/// An admin, a project "P" and a task "T" in it: the start of most store-level tests.
pub async fn seed_task(
    store: &Store,
) -> (
    apiary_store::User,
    apiary_store::Project,
    apiary_store::Task,
) {
    let admin = seed_admin(store).await;
    let project = store
        .create_project(
            apiary_store::NewProject {
                name: "P".into(),
                description: String::new(),
            },
            &admin,
        )
        .await
        .expect("project");
    let (task, _) = store
        .create_task(
            &project.id,
            apiary_store::NewTask {
                title: "T".into(),
                description: String::new(),
                status: None,
                assignee_id: None,
            },
            &admin,
        )
        .await
        .expect("task");
    (admin, project, task)
}
