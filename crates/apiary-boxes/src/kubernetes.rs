//! The Kubernetes provider: a box is a Pod (through the `kube` client, typed by
//! `k8s-openapi`) in Apiary's namespace, with a Secret of its own holding only its boot env.
//!
//! The Pod runs the project's image (`default`: the configured box image, which carries the
//! `apiary` binary) as uid 1000 with every capability dropped and no privilege escalation,
//! the settings' CPU and memory as its limits, its folder (`/box`) an `emptyDir`, no service
//! account token and no service links. It is ready when the box agent's control plane
//! listens (a TCP readiness probe on it); Apiary reaches it at the Pod's address. A Pod that
//! stops says why in its termination message (the log's tail). Teardown deletes the Pod and
//! the Secret. Egress: boxes get Apiary's gate as their proxy when one is configured (a
//! NetworkPolicy lets box Pods reach only Apiary and DNS: `deploy/kubernetes/`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::container::{gate_allowlist, GateLookup, BOX_LABEL, EGRESS_LABEL};
use crate::{valid_box_id, BoxError, BoxInfo, BoxProvider, BoxState, CreateBox};

/// Where the box agent's control plane listens in the Pod.
const CONTROL_PORT: i32 = 7000;

/// How the Kubernetes provider shapes boxes.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The namespace boxes live in.
    pub namespace: String,
    /// The image of the `default` template; it carries `apiary` at `agent_path`.
    pub image: String,
    /// Where the `apiary` binary is in box images.
    pub agent_path: String,
    /// A RuntimeClass for box Pods (`gvisor`), or the cluster's default.
    pub runtime_class: Option<String>,
    /// `host:port` of Apiary's gate as box Pods reach it: their proxy (blank: none).
    pub gate: Option<String>,
    /// `bwrap` (the default: a sandbox that does not start fails the run) or `none` (under a
    /// RuntimeClass such as gVisor, which is then the boundary).
    pub agent_sandbox: String,
    /// How long a box may take until its control plane listens.
    pub start_timeout: Duration,
}

impl KubernetesConfig {
    /// Defaults: the `apiary` namespace, `apiary` at `/usr/local/bin/apiary`, bubblewrap
    /// inside, two minutes to start (an image pull).
    pub fn new(image: &str) -> Self {
        KubernetesConfig {
            namespace: "apiary".into(),
            image: image.to_string(),
            agent_path: "/usr/local/bin/apiary".into(),
            runtime_class: None,
            gate: None,
            agent_sandbox: "bwrap".into(),
            start_timeout: Duration::from_secs(120),
        }
    }
}

/// Boxes as Pods.
pub struct KubernetesProvider {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    cfg: KubernetesConfig,
}

fn api_err(what: &str, e: kube::Error) -> BoxError {
    BoxError::Host(format!("kubernetes: {what}: {e}"))
}

/// Whether `e` is the API's 404.
fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(r) if r.code == 404)
}

impl KubernetesProvider {
    /// A provider over `client` (from `kube::Config::infer()`: a kubeconfig or the Pod's
    /// service account).
    pub fn new(client: kube::Client, cfg: KubernetesConfig) -> Self {
        KubernetesProvider {
            pods: Api::namespaced(client.clone(), &cfg.namespace),
            secrets: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// The gate's way to find a box's allowlist by its Pod's address (an annotation the box
    /// cannot change).
    pub fn gate_lookup(self: &std::sync::Arc<Self>) -> GateLookup {
        let me = self.clone();
        std::sync::Arc::new(move |ip| {
            let me = me.clone();
            Box::pin(async move {
                let ip = ip.to_string();
                let pods = me
                    .pods
                    .list(
                        &ListParams::default()
                            .labels(BOX_LABEL)
                            .fields(&format!("status.podIP={ip}")),
                    )
                    .await
                    .ok()?;
                pods.items.into_iter().find_map(|p| {
                    let running = Self::info(&p)?.state == BoxState::Running;
                    (running && p.status.as_ref()?.pod_ip.as_deref() == Some(ip.as_str()))
                        .then(|| p.metadata.annotations?.get(EGRESS_LABEL).cloned())
                        .flatten()
                })
            })
        })
    }

    /// Whether boxes go out through Apiary's gate (then Apiary serves it).
    pub fn gates(&self) -> bool {
        self.cfg.gate.is_some()
    }

    fn env_name(id: &str) -> String {
        format!("{id}-env")
    }

    /// The Pod for a box (typed: a field the API does not know fails here, not in the cluster).
    fn pod(&self, id: &str, req: &CreateBox) -> Result<Pod, BoxError> {
        let limits = req.limits.unwrap_or_default();
        let mut labels = req.labels.clone();
        labels.insert(BOX_LABEL.into(), id.to_string());
        let image = if req.template.is_empty() || req.template == "default" {
            self.cfg.image.as_str()
        } else {
            req.template.as_str()
        };
        let resources = json!({
            "cpu": format!("{}m", limits.cpu_millis),
            "memory": format!("{}Mi", limits.memory_mb),
        });
        let mut spec = json!({
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": {
                "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true, "fsGroup": 1000,
            },
            "containers": [{
                "name": "box",
                "image": image,
                "command": [self.cfg.agent_path, "box-agent"],
                "workingDir": "/box",
                "envFrom": [{ "secretRef": { "name": Self::env_name(id) } }],
                "ports": [{ "name": "control", "containerPort": CONTROL_PORT }],
                "readinessProbe": {
                    "tcpSocket": { "port": CONTROL_PORT },
                    "periodSeconds": 1,
                },
                "resources": { "limits": resources, "requests": resources },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": { "drop": ["ALL"] },
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{ "name": "box", "mountPath": "/box" }],
            }],
            "volumes": [{ "name": "box", "emptyDir": {} }],
        });
        if let Some(rc) = &self.cfg.runtime_class {
            spec["runtimeClassName"] = json!(rc);
        }
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": id, "labels": labels,
                          "annotations": { EGRESS_LABEL: gate_allowlist(&req.env) } },
            "spec": spec,
        }))
        .map_err(|e| BoxError::Invalid(format!("the box's Pod: {e}")))
    }

    /// The Secret holding only the box's boot env.
    fn secret(&self, id: &str, req: &CreateBox) -> Result<Secret, BoxError> {
        let mut env: BTreeMap<String, String> = req.env.clone();
        for (k, v) in [
            ("HOME", "/box"),
            ("TMPDIR", "/tmp"),
            ("APIARY_BOX_DIR", "/box"),
            ("APIARY_CONTROL_BIND", "0.0.0.0:7000"),
            ("APIARY_AGENT_SANDBOX", self.cfg.agent_sandbox.as_str()),
        ] {
            env.insert(k.into(), v.into());
        }
        if let Some(gate) = self.cfg.gate.as_deref().filter(|g| !g.is_empty()) {
            let proxy = format!("http://{gate}");
            env.insert("APIARY_EGRESS_UPSTREAM".into(), gate.to_string());
            for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                env.insert(k.into(), proxy.clone());
            }
        }
        let mut labels = req.labels.clone();
        labels.insert(BOX_LABEL.into(), id.to_string());
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": Self::env_name(id), "labels": labels },
            "type": "Opaque",
            "stringData": env,
        }))
        .map_err(|e| BoxError::Invalid(format!("the box's Secret: {e}")))
    }

    fn info(pod: &Pod) -> Option<BoxInfo> {
        let id = pod.metadata.labels.as_ref()?.get(BOX_LABEL)?.clone();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        let terminated = status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|st| st.terminated.is_some()))
            });
        // Pending is a box being made (an image pull), not a vanished one.
        let running = matches!(phase, "Pending" | "Running") && !terminated;
        let ip = status.and_then(|s| s.pod_ip.clone()).filter(|_| running);
        Some(BoxInfo {
            id,
            state: if running {
                BoxState::Running
            } else {
                BoxState::Exited
            },
            control_url: ip
                .map(|ip| format!("http://{ip}:{CONTROL_PORT}"))
                .unwrap_or_default(),
            code_url: None,
            site_url: None,
            labels: pod
                .metadata
                .labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    /// Why a Pod stopped: its container's termination message (the log's tail) or reason.
    fn why_stopped(pod: &Pod) -> String {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find_map(|c| c.state.as_ref()?.terminated.clone()))
            .map(|t| {
                let text = t.message.or(t.reason).unwrap_or_default();
                text.lines().collect::<Vec<_>>().join(" | ")
            })
            .unwrap_or_else(|| "the Pod stopped".into())
    }

    fn ready(pod: &Pod) -> bool {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }

    async fn wait_ready(&self, id: &str) -> Result<Pod, BoxError> {
        let started = Instant::now();
        loop {
            let pod = self
                .pods
                .get_opt(id)
                .await
                .map_err(|e| api_err("reading the box's Pod", e))?
                .ok_or_else(|| BoxError::Start("the Pod vanished while starting".into()))?;
            let info = Self::info(&pod);
            if info.as_ref().is_some_and(|i| i.state == BoxState::Exited) {
                return Err(BoxError::Start(format!(
                    "box agent exited at start: {}",
                    Self::why_stopped(&pod)
                )));
            }
            if Self::ready(&pod) && info.is_some_and(|i| !i.control_url.is_empty()) {
                return Ok(pod);
            }
            if started.elapsed() > self.cfg.start_timeout {
                return Err(BoxError::Start(format!(
                    "the box's Pod was not ready within {} s",
                    self.cfg.start_timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[async_trait]
impl BoxProvider for KubernetesProvider {
    async fn create(&self, req: CreateBox) -> Result<BoxInfo, BoxError> {
        let id = format!("box-{}", &uuid::Uuid::now_v7().simple().to_string()[8..]);
        let secret = self.secret(&id, &req)?;
        let pod = self.pod(&id, &req)?;
        let pp = PostParams::default();
        self.secrets
            .create(&pp, &secret)
            .await
            .map_err(|e| api_err("creating the box's Secret", e))?;
        let made = async {
            self.pods
                .create(&pp, &pod)
                .await
                .map_err(|e| api_err("creating the box's Pod", e))?;
            self.wait_ready(&id).await
        }
        .await;
        match made {
            Ok(pod) => {
                Self::info(&pod).ok_or_else(|| BoxError::Start("the Pod lost its labels".into()))
            }
            Err(e) => {
                let _ = self.destroy(&id).await;
                Err(e)
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<BoxInfo>, BoxError> {
        if !valid_box_id(id) {
            return Ok(None);
        }
        let pod = self
            .pods
            .get_opt(id)
            .await
            .map_err(|e| api_err("reading a box's Pod", e))?;
        Ok(pod.as_ref().and_then(Self::info).filter(|i| i.id == id))
    }

    async fn list(&self, label: Option<(&str, &str)>) -> Result<Vec<BoxInfo>, BoxError> {
        let mut selector = BOX_LABEL.to_string();
        if let Some((k, v)) = label {
            selector.push_str(&format!(",{k}={v}"));
        }
        let pods = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_err("listing box Pods", e))?;
        let mut out: Vec<BoxInfo> = pods.items.iter().filter_map(Self::info).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn destroy(&self, id: &str) -> Result<(), BoxError> {
        if !valid_box_id(id) {
            return Err(BoxError::Invalid(format!("bad box id {id:?}")));
        }
        let dp = DeleteParams::default().grace_period(5);
        // Both, whatever the first answers: the Secret holds the box's tokens.
        let pod = match self.pods.delete(id, &dp).await {
            Err(e) if !not_found(&e) => Err(api_err("deleting a box's Pod", e)),
            _ => Ok(()),
        };
        let secret = match self.secrets.delete(&Self::env_name(id), &dp).await {
            Err(e) if !not_found(&e) => Err(api_err("deleting a box's Secret", e)),
            _ => Ok(()),
        };
        pod.and(secret)
    }

    async fn templates(&self) -> Result<Vec<String>, BoxError> {
        Ok(vec!["default".to_string()])
    }
}
