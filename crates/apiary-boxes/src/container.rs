//! The container provider: a box is an OCI container made through the Docker Engine API
//! ([`crate::engine`]), so Docker and Podman both run boxes.
//!
//! Each box is one container named after the box, running this host's `apiary` binary
//! (mounted read-only at `/opt/apiary/apiary`) as its box agent as uid 1000 with every
//! capability dropped, no new privileges, the settings' memory/CPU/process limits, and its
//! folder (`/box`, holding the workspace) in a volume of the same name. Teardown removes both.
//! The `default` template is an image Apiary builds offline from this host's own programs: a
//! few kilobytes of root file system with the host's `/usr` mounted read-only (the same tools
//! a local box sees); any other template names an image the engine has.
//!
//! Network: boxes sit on an internal network (no route out; on Podman no DNS either). Its only
//! way out is the gate on this host, at the network's gateway address: an allowlisting proxy
//! serving each box with its own allowlist (the one its agent gets, plus the GitHub API for the
//! box agent), found by the connection's address. The box agent's own proxy — the sandboxed
//! coding agent's only way out, whose refusals go to the task's log — sends what it allows on
//! to the gate. Apiary reaches a box's control plane at the container's address, so the engine
//! runs on this host (for another machine, run `apiary boxd` there).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::{valid_box_id, BoxError, BoxInfo, BoxProvider, BoxState, CreateBox};

/// The label naming a container as an Apiary box (its value: the box id).
pub const BOX_LABEL: &str = "apiary.box";
/// The label holding the hosts a box may reach through the gate.
pub const EGRESS_LABEL: &str = "apiary.egress";
/// Where the box agent's control plane listens inside the container.
const CONTROL_PORT: u16 = 7000;
/// The image the `default` template runs: a root file system built from [`host_rootfs`]
/// (bump the tag when that changes).
pub const HOST_IMAGE: &str = "localhost/apiary-box:host-1";
/// How long the gate's view of the running boxes holds.
const GATE_VIEW_TTL: Duration = Duration::from_secs(2);
/// The box user's uid and gid (the box agent's inner bubblewrap needs an unprivileged user).
const BOX_USER: &str = "1000:1000";

/// Finds the allowlist of the box at an address (the gate's question).
pub type GateLookup = Arc<
    dyn Fn(IpAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
        + Send
        + Sync,
>;

/// How the container provider reaches its engine and shapes boxes.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The engine's socket: `unix:///run/podman/podman.sock`, `unix:///var/run/docker.sock`.
    pub engine: String,
    /// The `apiary` binary, mounted into every box as its agent.
    pub agent_exe: PathBuf,
    /// Apiary's data folder: never mounted into a box, nor any folder holding it.
    pub data_dir: PathBuf,
    /// The internal network boxes sit on (made when missing).
    pub network: String,
    /// The port the gate listens on (on every address of this host; it serves only boxes).
    pub gate_port: u16,
    /// `runsc` when the engine runs boxes under gVisor: the agent then runs without an inner
    /// sandbox of its own (bubblewrap does not run in gVisor; gVisor is the boundary). Docker
    /// is asked for this runtime per container; Podman ignores that, so point `engine` at a
    /// Podman service started with `--runtime runsc`.
    pub runtime: Option<String>,
    /// Folders of this host mounted read-only at the same path into every box (the agents'
    /// CLIs, when they live outside `/usr`).
    pub mounts: Vec<PathBuf>,
    /// How long a box may take until its control plane answers.
    pub start_timeout: Duration,
}

impl ContainerConfig {
    /// The defaults for an engine: the `apiary-boxes` network, 60 s to start.
    pub fn new(engine: &str, agent_exe: PathBuf, data_dir: PathBuf, gate_port: u16) -> Self {
        ContainerConfig {
            engine: engine.to_string(),
            agent_exe,
            data_dir,
            network: "apiary-boxes".into(),
            gate_port,
            runtime: None,
            mounts: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// Boxes as containers.
pub struct ContainerProvider {
    engine: Engine,
    cfg: ContainerConfig,
    /// This host's address on the boxes' network: where the gate is reached.
    gateway: String,
    /// The running boxes' allowlists by address, for the gate: read from the engine's labels
    /// at most every [`GATE_VIEW_TTL`] (a removed box's address is never served its list for
    /// longer; a stranger's connections cost no more engine calls than that).
    egress: tokio::sync::Mutex<(Option<Instant>, HashMap<IpAddr, String>)>,
    http: reqwest::Client,
}

impl ContainerProvider {
    /// Connects to the engine, makes the boxes' network and the default image when missing.
    pub async fn new(cfg: ContainerConfig) -> Result<Arc<Self>, BoxError> {
        let engine = Engine::connect(&cfg.engine).await?;
        if !cfg.agent_exe.is_file() {
            return Err(BoxError::Invalid(format!(
                "the box agent {} is not a file",
                cfg.agent_exe.display()
            )));
        }
        let mut cfg = cfg;
        let mut mounts = Vec::new();
        for m in &cfg.mounts {
            mounts.push(
                crate::mountable_folder(m, &cfg.data_dir).map_err(|why| {
                    BoxError::Invalid(format!("--box-mount {}: {why}", m.display()))
                })?,
            );
        }
        cfg.mounts = mounts;
        let gateway = engine.internal_network(&cfg.network).await?;
        if !engine.has_image(HOST_IMAGE).await? {
            engine.import_image(HOST_IMAGE, host_rootfs()?).await?;
            tracing::info!(image = HOST_IMAGE, "built the default box image");
        }
        tracing::info!(engine = %cfg.engine, podman = engine.podman, network = %cfg.network, %gateway, "container boxes");
        Ok(Arc::new(ContainerProvider {
            engine,
            cfg,
            gateway,
            egress: tokio::sync::Mutex::new((None, HashMap::new())),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| BoxError::Host(e.to_string()))?,
        }))
    }

    /// The engine, for tests that act on boxes from outside.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The hosts the running box at `ip` may reach (comma-separated), or `None` when no
    /// running box has that address.
    pub async fn egress_for(&self, ip: IpAddr) -> Option<String> {
        let mut view = self.egress.lock().await;
        if view.0.is_none_or(|at| at.elapsed() > GATE_VIEW_TTL) {
            let all = self.engine.list(&[BOX_LABEL.to_string()]).await.ok()?;
            view.1 = all
                .iter()
                .filter(|c| c["State"] == "running")
                .filter_map(|c| {
                    let addr = self.address(c)?.parse().ok()?;
                    Some((addr, c["Labels"][EGRESS_LABEL].as_str()?.to_string()))
                })
                .collect();
            view.0 = Some(Instant::now());
        }
        view.1.get(&ip).cloned()
    }

    /// Makes the gate read the engine again at its next connection (a box came or went).
    async fn refresh_gate(&self) {
        self.egress.lock().await.0 = None;
    }

    /// The gate's way to find a box's allowlist by its address (for
    /// `apiary_box_agent::egress::serve_gate`).
    pub fn gate_lookup(self: &Arc<Self>) -> GateLookup {
        let me = self.clone();
        Arc::new(move |ip| {
            let me = me.clone();
            Box::pin(async move { me.egress_for(ip).await })
        })
    }

    /// A container's address on the boxes' network (from a listing or an inspection).
    fn address(&self, c: &Value) -> Option<String> {
        c["NetworkSettings"]["Networks"][&self.cfg.network]["IPAddress"]
            .as_str()
            .filter(|a| !a.is_empty())
            .map(str::to_string)
    }

    fn info(&self, id: &str, c: &Value) -> BoxInfo {
        // An inspection says `State.Running`; a listing says `State: "running"`.
        let running = c["State"]["Running"] == Value::Bool(true) || c["State"] == "running";
        let labels: BTreeMap<String, String> = c["Labels"]
            .as_object()
            .or(c["Config"]["Labels"].as_object())
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != EGRESS_LABEL)
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        BoxInfo {
            id: id.to_string(),
            state: if running {
                BoxState::Running
            } else {
                BoxState::Exited
            },
            control_url: self
                .address(c)
                .filter(|_| running)
                .map(|a| format!("http://{a}:{CONTROL_PORT}"))
                .unwrap_or_default(),
            code_url: None,
            site_url: None,
            labels,
        }
    }

    /// The container's definition for a box.
    fn spec(&self, id: &str, req: &CreateBox) -> Result<Value, BoxError> {
        let gate = format!("{}:{}", self.gateway, self.cfg.gate_port);
        let proxy = format!("http://{gate}");
        let gvisor = self.cfg.runtime.as_deref() == Some("runsc");
        let mut env: BTreeMap<String, String> = req.env.clone();
        for (k, v) in [
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("HOME", "/box"),
            ("TMPDIR", "/tmp"),
            ("APIARY_BOX_DIR", "/box"),
            ("APIARY_CONTROL_BIND", "0.0.0.0:7000"),
            (
                "APIARY_AGENT_SANDBOX",
                if gvisor { "none" } else { "bwrap" },
            ),
            ("APIARY_EGRESS_UPSTREAM", gate.as_str()),
            ("HTTP_PROXY", proxy.as_str()),
            ("HTTPS_PROXY", proxy.as_str()),
            ("http_proxy", proxy.as_str()),
            ("https_proxy", proxy.as_str()),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        let mut labels: BTreeMap<String, String> = req.labels.clone();
        labels.insert(BOX_LABEL.into(), id.to_string());
        labels.insert(EGRESS_LABEL.into(), gate_allowlist(&req.env));
        let mut mounts = vec![
            json!({ "Type": "volume", "Source": id, "Target": "/box" }),
            bind(
                &self.cfg.agent_exe.display().to_string(),
                "/opt/apiary/apiary",
                true,
            ),
        ];
        let host_image = req.template.is_empty() || req.template == "default";
        if host_image {
            mounts.push(bind("/usr", "/usr", true));
            for p in ["/etc/ssl", "/etc/alternatives", "/etc/ld.so.cache"] {
                if std::path::Path::new(p).exists() {
                    mounts.push(bind(p, p, true));
                }
            }
        }
        for m in &self.cfg.mounts {
            let p = m.display().to_string();
            mounts.push(bind(&p, &p, true));
        }
        if let Some(repo) = req.env.get("APIARY_REPO_URL") {
            let boxes = self.cfg.data_dir.join("boxes");
            if let Some(r) = crate::mountable_repo(repo, &self.cfg.data_dir, &boxes)? {
                let p = r.display().to_string();
                mounts.push(bind(&p, &p, false));
            }
        }
        let limits = req.limits.unwrap_or_default();
        // gVisor's sandbox needs room for its own threads.
        let pids = if gvisor {
            limits.pids.max(1024)
        } else {
            limits.pids
        };
        let mut security = vec!["no-new-privileges".to_string()];
        let mut host = json!({
            "Memory": limits.memory_mb * 1024 * 1024,
            // No swap beyond the memory limit.
            "MemorySwap": limits.memory_mb * 1024 * 1024,
            "NanoCpus": limits.cpu_millis * 1_000_000,
            "PidsLimit": pids,
            // Explicit: an engine's defaults may exceed what it can set here.
            "Ulimits": [
                { "Name": "nofile", "Soft": 4096, "Hard": 4096 },
                { "Name": "nproc", "Soft": 4096, "Hard": 4096 },
            ],
            "Mounts": mounts,
            "NetworkMode": self.cfg.network,
            "CapDrop": ["ALL"],
            "Init": true,
        });
        if self.engine.podman {
            // The inner bubblewrap mounts a fresh /proc, which masked paths forbid.
            security.push("systempaths=unconfined".into());
        } else {
            host["MaskedPaths"] = json!([]);
            host["ReadonlyPaths"] = json!([]);
            if let Some(rt) = &self.cfg.runtime {
                host["Runtime"] = json!(rt);
            }
        }
        host["SecurityOpt"] = json!(security);
        Ok(json!({
            "Image": if host_image { HOST_IMAGE } else { req.template.as_str() },
            // Explicit: an image's own entrypoint never wraps the box agent.
            "Entrypoint": ["/opt/apiary/apiary"],
            "Cmd": ["box-agent"],
            "Env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "User": BOX_USER,
            "WorkingDir": "/box",
            "Labels": labels,
            "HostConfig": host,
        }))
    }

    /// Waits until the box's control plane answers (any HTTP answer: it asks for a token);
    /// a container that stops first is an error carrying its last output.
    async fn wait_ready(&self, id: &str) -> Result<Value, BoxError> {
        let started = Instant::now();
        loop {
            let c =
                self.engine.inspect(id).await?.ok_or_else(|| {
                    BoxError::Start("the container vanished while starting".into())
                })?;
            if c["State"]["Running"] != Value::Bool(true) {
                let tail = self.engine.logs_tail(id, 5).await;
                let tail = tail.lines().collect::<Vec<_>>().join(" | ");
                return Err(BoxError::Start(format!(
                    "box agent exited at start: {tail}"
                )));
            }
            if let Some(addr) = self.address(&c) {
                let url = format!("http://{addr}:{CONTROL_PORT}/health");
                if self.http.get(&url).send().await.is_ok() {
                    return Ok(c);
                }
            }
            if started.elapsed() > self.cfg.start_timeout {
                return Err(BoxError::Start(format!(
                    "box agent did not listen within {} s",
                    self.cfg.start_timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn bind(source: &str, target: &str, read_only: bool) -> Value {
    json!({ "Type": "bind", "Source": source, "Target": target, "ReadOnly": read_only })
}

/// What the gate lets a box reach: what its agent may (Apiary, the git host, the admin's
/// list), plus the GitHub API the box agent opens pull requests with.
pub(crate) fn gate_allowlist(env: &BTreeMap<String, String>) -> String {
    let mut list: Vec<String> = env
        .get("APIARY_EGRESS_ALLOW")
        .map(|l| {
            l.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(api) = env
        .get("APIARY_GITHUB_API")
        .and_then(|a| apiary_core::boot::host_port(a))
    {
        list.push(api);
    }
    list.join(",")
}

/// The default image's root file system (a tar): links into `/usr`, which is this host's,
/// mounted read-only at run time; the box user; empty folders for the box and the agent.
pub fn host_rootfs() -> Result<Vec<u8>, BoxError> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = |path: &str, mode: u32, uid: u64| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty())
    };
    for (path, mode, uid) in [
        ("usr", 0o755, 0),
        ("etc", 0o755, 0),
        ("opt", 0o755, 0),
        ("opt/apiary", 0o755, 0),
        ("box", 0o755, 1000),
        ("tmp", 0o1777, 0),
        ("var", 0o755, 0),
        ("var/tmp", 0o1777, 0),
        ("run", 0o755, 0),
        ("proc", 0o555, 0),
        ("sys", 0o555, 0),
        ("dev", 0o755, 0),
        ("root", 0o700, 0),
    ] {
        dir(path, mode, uid)?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, link, target)?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nbox:x:1000:1000:box:/box:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("etc/group", "root:x:0:\nbox:x:1000:\nnogroup:x:65534:\n"),
        ("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        b.append_data(&mut h, path, text.as_bytes())?;
    }
    Ok(b.into_inner()?)
}

#[async_trait]
impl BoxProvider for ContainerProvider {
    async fn create(&self, req: CreateBox) -> Result<BoxInfo, BoxError> {
        let id = format!("box-{}", &uuid::Uuid::now_v7().simple().to_string()[8..]);
        let spec = self.spec(&id, &req)?;
        if let Some(image) = spec["Image"].as_str().filter(|i| *i != HOST_IMAGE) {
            if !self.engine.has_image(image).await? {
                return Err(BoxError::Invalid(format!(
                    "the image {image:?} (the project's template) is not on the container \
                     engine; pull or build it there first"
                )));
            }
        }
        self.engine.create_volume(&id, &spec["Labels"]).await?;
        let made = async {
            self.engine.create_container(&id, &spec).await?;
            self.engine.start(&id).await?;
            // gVisor was asked for: a box the engine ran under another runtime (Podman takes
            // the runtime per service) would run its agent without any sandbox. Refused.
            if let Some(want) = &self.cfg.runtime {
                let got = self.engine.oci_runtime(&id).await?;
                if got.as_deref() != Some(want.as_str()) {
                    return Err(BoxError::Start(format!(
                        "the engine runs boxes under {} but {want} was asked for (--box-runtime); \
                         point --box-engine at a service that runs {want}",
                        got.as_deref().unwrap_or("an unknown runtime")
                    )));
                }
            }
            self.refresh_gate().await;
            self.wait_ready(&id).await
        }
        .await;
        match made {
            Ok(c) => {
                tracing::info!(box_id = %id, "container box started");
                Ok(self.info(&id, &c))
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
        Ok(self
            .engine
            .inspect(id)
            .await?
            .filter(|c| c["Config"]["Labels"][BOX_LABEL] == id)
            .map(|c| self.info(id, &c)))
    }

    async fn list(&self, label: Option<(&str, &str)>) -> Result<Vec<BoxInfo>, BoxError> {
        let mut filters = vec![BOX_LABEL.to_string()];
        if let Some((k, v)) = label {
            filters.push(format!("{k}={v}"));
        }
        let mut out: Vec<BoxInfo> = self
            .engine
            .list(&filters)
            .await?
            .iter()
            .filter_map(|c| {
                let id = c["Labels"][BOX_LABEL].as_str()?;
                Some(self.info(id, c))
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn destroy(&self, id: &str) -> Result<(), BoxError> {
        if !valid_box_id(id) {
            return Err(BoxError::Invalid(format!("bad box id {id:?}")));
        }
        // Only a container that is one of Apiary's boxes.
        if let Some(c) = self.engine.inspect(id).await? {
            if c["Config"]["Labels"][BOX_LABEL] != id {
                return Err(BoxError::Invalid(format!(
                    "{id} is not an Apiary box on this engine"
                )));
            }
            self.engine.remove_container(id).await?;
            self.refresh_gate().await;
        }
        self.engine.remove_volume(id).await
    }

    async fn templates(&self) -> Result<Vec<String>, BoxError> {
        Ok(vec!["default".to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_lets_a_box_reach_its_agents_hosts_and_the_github_api() {
        let env = BTreeMap::from([
            (
                "APIARY_EGRESS_ALLOW".to_string(),
                "127.0.0.1:7878, github.com".to_string(),
            ),
            (
                "APIARY_GITHUB_API".to_string(),
                "http://127.0.0.1:9000/api".to_string(),
            ),
        ]);
        assert_eq!(
            gate_allowlist(&env),
            "127.0.0.1:7878,github.com,127.0.0.1:9000"
        );
        assert_eq!(gate_allowlist(&BTreeMap::new()), "");
        // Never a bare host: that would open every port of it.
        let env = BTreeMap::from([(
            "APIARY_GITHUB_API".to_string(),
            "http://user@127.0.0.1/api/v3".to_string(),
        )]);
        assert_eq!(gate_allowlist(&env), "127.0.0.1:80");
    }

    #[test]
    fn the_default_image_is_a_few_kilobytes_linking_into_usr() {
        let tar = host_rootfs().unwrap();
        assert!(tar.len() < 64 * 1024, "{} bytes", tar.len());
        let mut a = tar::Archive::new(&tar[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        for want in ["box", "bin", "lib64", "etc/passwd", "opt/apiary"] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want} in {names:?}"
            );
        }
    }
}
