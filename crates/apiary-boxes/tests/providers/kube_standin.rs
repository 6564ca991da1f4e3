//! A stand-in for the Kubernetes API (no cluster can run here): Pods and Secrets in one
//! namespace, answering in the API's shapes (objects, lists, `Status` on errors). Its
//! "kubelet" runs a Pod's container as a local process — the command given as the agent,
//! with the Secret's variables as its env — at a loopback address of its own (the Pod's IP),
//! and reports it Running and Ready once the control port accepts, Failed (with the log's
//! tail as the termination message) once it exits. Every request and answer is recorded for
//! `scripts/check_kubernetes_requests.py`, which validates them against the Kubernetes
//! OpenAPI types (PyPI `kubernetes-validate`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One exchange, as the checker reads it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    pub request: Option<Value>,
    pub status: u16,
    pub response: Value,
}

struct Running {
    pod: Value,
    child: Option<std::process::Child>,
    log: PathBuf,
}

#[derive(Default)]
struct World {
    pods: BTreeMap<String, Running>,
    secrets: BTreeMap<String, Value>,
    next_ip: u8,
    version: u64,
}

#[derive(Clone)]
pub struct KubeStandin {
    world: Arc<Mutex<World>>,
    pub exchanges: Arc<Mutex<Vec<Exchange>>>,
    agent: PathBuf,
    logs: PathBuf,
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code })
}

fn now() -> String {
    "2026-12-02T00:00:00Z".to_string()
}

impl KubeStandin {
    /// Serves on loopback; `agent` is what every Pod's container runs.
    pub async fn start(agent: PathBuf, logs: PathBuf) -> (KubeStandin, String) {
        let s = KubeStandin {
            world: Arc::default(),
            exchanges: Arc::default(),
            agent,
            logs,
        };
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/{kind}",
                get(Self::list).post(Self::create),
            )
            .route(
                "/api/v1/namespaces/{ns}/{kind}/{name}",
                get(Self::read).delete(Self::delete),
            )
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (s, url)
    }

    fn record(
        &self,
        method: &Method,
        uri: &Uri,
        request: Option<Value>,
        code: StatusCode,
        response: Value,
    ) -> Response {
        self.exchanges.lock().unwrap().push(Exchange {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or_default().to_string(),
            request,
            status: code.as_u16(),
            response: response.clone(),
        });
        (code, Json(response)).into_response()
    }

    /// The Pod as the API shows it now (its status from its process).
    fn observe(r: &mut Running) -> Value {
        let mut pod = r.pod.clone();
        let ip = pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let exited = match r.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        };
        match exited {
            Some(code) => {
                let tail = std::fs::read_to_string(&r.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().collect();
                let message = tail[tail.len().saturating_sub(5)..].join("\n");
                pod["status"]["phase"] = json!("Failed");
                pod["status"]["conditions"] = json!([{ "type": "Ready", "status": "False" }]);
                pod["status"]["containerStatuses"] = json!([{
                    "name": "box", "ready": false, "restartCount": 0, "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "", "state": { "terminated": {
                        "exitCode": code.code().unwrap_or(137), "reason": "Error", "message": message } }
                }]);
            }
            None => {
                let ready = std::net::TcpStream::connect((ip.as_str(), 7000)).is_ok();
                pod["status"]["phase"] = json!("Running");
                pod["status"]["conditions"] =
                    json!([{ "type": "Ready", "status": if ready { "True" } else { "False" } }]);
                pod["status"]["containerStatuses"] = json!([{
                    "name": "box", "ready": ready, "restartCount": 0, "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "", "state": { "running": { "startedAt": now() } }
                }]);
            }
        }
        pod
    }

    fn matches(obj: &Value, selector: &str) -> bool {
        selector
            .split(',')
            .filter(|s| !s.is_empty())
            .all(|term| match term.split_once('=') {
                Some((k, v)) => obj["metadata"]["labels"][k] == v,
                None => !obj["metadata"]["labels"][term].is_null(),
            })
    }

    async fn list(
        State(s): State<KubeStandin>,
        Path((_ns, kind)): Path<(String, String)>,
        Query(q): Query<BTreeMap<String, String>>,
        method: Method,
        uri: Uri,
    ) -> Response {
        let selector = q.get("labelSelector").cloned().unwrap_or_default();
        let mut w = s.world.lock().unwrap();
        let (list_kind, items): (&str, Vec<Value>) = match kind.as_str() {
            "pods" => (
                "PodList",
                w.pods
                    .values_mut()
                    .map(Self::observe)
                    .filter(|p| Self::matches(p, &selector))
                    .collect(),
            ),
            "secrets" => (
                "SecretList",
                w.secrets
                    .values()
                    .filter(|p| Self::matches(p, &selector))
                    .cloned()
                    .collect(),
            ),
            _ => {
                return s.record(
                    &method,
                    &uri,
                    None,
                    StatusCode::NOT_FOUND,
                    status(404, "NotFound", "no such resource"),
                )
            }
        };
        w.version += 1;
        let body = json!({ "kind": list_kind, "apiVersion": "v1",
                           "metadata": { "resourceVersion": w.version.to_string() }, "items": items });
        drop(w);
        s.record(&method, &uri, None, StatusCode::OK, body)
    }

    async fn read(
        State(s): State<KubeStandin>,
        Path((_ns, kind, name)): Path<(String, String, String)>,
        method: Method,
        uri: Uri,
    ) -> Response {
        let mut w = s.world.lock().unwrap();
        let found = match kind.as_str() {
            "pods" => w.pods.get_mut(&name).map(Self::observe),
            "secrets" => w.secrets.get(&name).cloned(),
            _ => None,
        };
        drop(w);
        match found {
            Some(obj) => s.record(&method, &uri, None, StatusCode::OK, obj),
            None => s.record(
                &method,
                &uri,
                None,
                StatusCode::NOT_FOUND,
                status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
            ),
        }
    }

    async fn create(
        State(s): State<KubeStandin>,
        Path((ns, kind)): Path<(String, String)>,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
            return s.record(
                &method,
                &uri,
                None,
                StatusCode::BAD_REQUEST,
                status(400, "BadRequest", "not JSON"),
            );
        };
        let request = Some(obj.clone());
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut w = s.world.lock().unwrap();
        w.version += 1;
        obj["metadata"]["namespace"] = json!(ns);
        obj["metadata"]["uid"] = json!(uuid::Uuid::now_v7().to_string());
        obj["metadata"]["resourceVersion"] = json!(w.version.to_string());
        obj["metadata"]["creationTimestamp"] = json!(now());
        match kind.as_str() {
            "secrets" => {
                if w.secrets.contains_key(&name) {
                    drop(w);
                    return s.record(
                        &method,
                        &uri,
                        request,
                        StatusCode::CONFLICT,
                        status(409, "AlreadyExists", "exists"),
                    );
                }
                // The API keeps stringData as data (base64), never echoing stringData back.
                let mut data = serde_json::Map::new();
                if let Some(m) = obj["stringData"].as_object() {
                    use base64::Engine;
                    for (k, v) in m {
                        data.insert(
                            k.clone(),
                            json!(base64::engine::general_purpose::STANDARD
                                .encode(v.as_str().unwrap_or_default())),
                        );
                    }
                }
                obj.as_object_mut().unwrap().remove("stringData");
                obj["data"] = Value::Object(data);
                w.secrets.insert(name, obj.clone());
                drop(w);
                s.record(&method, &uri, request, StatusCode::CREATED, obj)
            }
            "pods" => {
                // The kubelet: the Secret the container's env comes from must exist.
                let secret_name = obj["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let Some(secret) = w.secrets.get(&secret_name).cloned() else {
                    drop(w);
                    return s.record(
                        &method,
                        &uri,
                        request,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        status(422, "Invalid", "the Pod's Secret does not exist"),
                    );
                };
                w.next_ip += 1;
                let ip = format!("127.0.0.{}", 10 + w.next_ip);
                obj["status"] = json!({ "phase": "Pending", "podIP": ip, "hostIP": "127.0.0.1" });
                let log = s.logs.join(format!("{name}.log"));
                let mut cmd = std::process::Command::new(&s.agent);
                cmd.args(
                    obj["spec"]["containers"][0]["command"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .skip(1)
                        .filter_map(|a| a.as_str()),
                );
                cmd.env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default());
                use base64::Engine;
                for (k, v) in secret["data"].as_object().cloned().unwrap_or_default() {
                    let v = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap_or_default())
                        .unwrap_or_default();
                    cmd.env(k, String::from_utf8_lossy(&v).to_string());
                }
                // The Pod's own address, and a folder for its emptyDir.
                let dir = s.logs.join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                cmd.env("APIARY_CONTROL_BIND", format!("{ip}:7000"))
                    .env("APIARY_BOX_DIR", &dir);
                let file = std::fs::File::create(&log).unwrap();
                cmd.stdout(file.try_clone().unwrap()).stderr(file);
                std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
                let child = cmd.spawn().ok();
                w.pods.insert(
                    name.clone(),
                    Running {
                        pod: obj.clone(),
                        child,
                        log,
                    },
                );
                drop(w);
                s.record(&method, &uri, request, StatusCode::CREATED, obj)
            }
            _ => {
                drop(w);
                s.record(
                    &method,
                    &uri,
                    request,
                    StatusCode::NOT_FOUND,
                    status(404, "NotFound", "no such resource"),
                )
            }
        }
    }

    async fn delete(
        State(s): State<KubeStandin>,
        Path((_ns, kind, name)): Path<(String, String, String)>,
        method: Method,
        uri: Uri,
        body: Bytes,
    ) -> Response {
        let request = serde_json::from_slice::<Value>(&body).ok();
        let mut w = s.world.lock().unwrap();
        let gone = match kind.as_str() {
            "pods" => w.pods.remove(&name).map(|mut r| {
                let pod = Self::observe(&mut r);
                if let Some(mut c) = r.child.take() {
                    unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                    let _ = c.wait();
                }
                pod
            }),
            "secrets" => w.secrets.remove(&name),
            _ => None,
        };
        drop(w);
        match gone {
            Some(obj) => s.record(&method, &uri, request, StatusCode::OK, obj),
            None => s.record(
                &method,
                &uri,
                request,
                StatusCode::NOT_FOUND,
                status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
            ),
        }
    }

    /// Kills a Pod's container from outside (as an OOM kill or a node's loss would).
    pub fn kill(&self, name: &str) {
        let mut w = self.world.lock().unwrap();
        if let Some(c) = w.pods.get_mut(name).and_then(|r| r.child.as_mut()) {
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Whether anything of the box `id` (its Pod, its Secret) is still there.
    pub fn holds(&self, id: &str) -> bool {
        let w = self.world.lock().unwrap();
        w.pods.contains_key(id) || w.secrets.contains_key(&format!("{id}-env"))
    }

    /// Ends every Pod's process (at the end of a test).
    pub fn stop_all(&self) {
        let mut w = self.world.lock().unwrap();
        for r in w.pods.values_mut() {
            if let Some(c) = r.child.as_mut() {
                unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
                let _ = c.wait();
            }
        }
    }
}
