//! `apiary`: the one binary. `serve` runs the whole system; the other commands administer it.

mod bench;
mod bench_gateway;
mod demo;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use apiary_boxes::container::{ContainerConfig, ContainerProvider};
use apiary_boxes::kubernetes::{KubernetesConfig, KubernetesProvider};
use apiary_boxes::local::{LocalProvider, Sandbox};
use apiary_boxes::BoxProvider;
use apiary_core::{Role, SystemClock};
use apiary_orchestrator::{Metrics, Orchestrator};
use apiary_server::{AppState, HttpServer, ServerConfig};
use apiary_store::{NewUser, SecretKey, Store, StoreOptions};
use clap::{Args, Parser, Subcommand};

/// Apiary: hand software tasks to AI coding agents.
#[derive(Parser)]
#[command(name = "apiary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives.
#[derive(Args, Clone)]
struct DbArgs {
    /// Data folder for the SQLite database and the secret key file.
    #[arg(long, env = "APIARY_DATA_DIR", default_value = "./apiary-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…); SQLite in --data-dir when absent.
    #[arg(long, env = "APIARY_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the UI, the APIs, the job worker and the watchdog in one process.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on.
        #[arg(long, env = "APIARY_BIND", default_value = "127.0.0.1:7878")]
        bind: SocketAddr,
        /// Mark session cookies Secure (set when Apiary is reached over https).
        #[arg(long, env = "APIARY_SECURE_COOKIES")]
        secure_cookies: bool,
        /// Take the client address (for the sign-in rate limit) from X-Forwarded-For; only
        /// behind a reverse proxy that sets it.
        #[arg(long, env = "APIARY_TRUST_FORWARDED_FOR")]
        trust_forwarded_for: bool,
        /// Require `Authorization: Bearer <token>` on /metrics (open when unset).
        #[arg(long, env = "APIARY_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// Address the site previews are served on: an origin of their own, so a preview's
        /// scripts never act as the viewer on Apiary's. `off` serves none.
        #[arg(long, env = "APIARY_SITE_BIND", default_value = "127.0.0.1:7881")]
        site_bind: String,
        /// The site origin as viewers reach it, behind a reverse proxy; `{task}` in it gives
        /// each task a host of its own (`https://{task}.preview.example.com`, with a wildcard
        /// DNS name and certificate), so no preview can read another. Default:
        /// `http://<site-bind>`.
        #[arg(long, env = "APIARY_SITE_URL")]
        site_url: Option<String>,
        #[command(flatten)]
        boxes: BoxArgs,
        /// On first start, set up a demo project with a local repository and a bundled agent script.
        #[arg(long)]
        demo: bool,
    },
    /// Serve the Box Host API over local boxes (a remote box host).
    Boxd {
        /// Address to listen on.
        #[arg(long, env = "APIARY_BOXD_BIND", default_value = "127.0.0.1:7879")]
        bind: SocketAddr,
        /// Folder for the boxes and the host key file.
        #[arg(long, env = "APIARY_BOXD_DATA_DIR", default_value = "./apiary-boxd")]
        data_dir: PathBuf,
        #[command(flatten)]
        boxes: BoxArgs,
        /// Reap a box its owner has not listed or touched for this many seconds.
        #[arg(long, env = "APIARY_BOXD_ORPHAN_S", default_value_t = 1800)]
        orphan_s: u64,
    },
    /// Run inside a box: clone, run the agent, serve the control plane (reads the boot env).
    BoxAgent,
    /// Inside an agent's sandbox: relay LISTEN to the box's egress proxy at SOCKET while the
    /// command runs (the box agent starts this; not for people).
    #[command(hide = true)]
    EgressRelay {
        listen: Option<String>,
        socket: Option<PathBuf>,
        /// Further `LISTEN=SOCKET` pairs to relay (the model gateway).
        #[arg(long = "also")]
        also: Vec<String>,
        /// `SOCKET=ADDRESS` pairs relayed inwards: a connection to SOCKET goes to ADDRESS inside
        /// the namespace (the site preview).
        #[arg(long = "serve")]
        serve: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print the OpenAPI document of the HTTP API (the web UI's types are generated from it).
    Openapi,
    /// Measure Apiary (figures for docs/PERFORMANCE.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run jobs without serving HTTP (extra replicas on PostgreSQL).
    Worker {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        boxes: BoxArgs,
    },
    /// Bring the database schema up to date and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage personal API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// Where this process's boxes run: local processes, or containers through an engine.
#[derive(clap::Args, Clone)]
struct BoxArgs {
    /// How local boxes are isolated: auto (bubblewrap; boxes are refused when it does not
    /// run), bwrap (refuse to start without it) or none (no sandbox, said in every log).
    #[arg(long, env = "APIARY_SANDBOX", default_value = "auto")]
    sandbox: Sandbox,
    /// Run boxes as containers through this engine's Docker Engine API socket
    /// (unix:///run/podman/podman.sock, unix:///var/run/docker.sock) instead of as local
    /// processes.
    #[arg(long, env = "APIARY_BOX_ENGINE")]
    box_engine: Option<String>,
    /// `runsc` when the engine runs containers under gVisor.
    #[arg(long, env = "APIARY_BOX_RUNTIME")]
    box_runtime: Option<String>,
    /// Host folders mounted read-only into every container box (comma-separated).
    #[arg(long = "box-mount", env = "APIARY_BOX_MOUNTS", value_delimiter = ',')]
    box_mounts: Vec<PathBuf>,
    /// The internal network container boxes sit on (made when missing).
    #[arg(long, env = "APIARY_BOX_NETWORK", default_value = "apiary-boxes")]
    box_network: String,
    /// Run boxes as Pods: `infer` (a kubeconfig, else the Pod's service account) or the API's
    /// URL (a `kubectl proxy`).
    #[arg(long, env = "APIARY_BOX_KUBERNETES")]
    box_kubernetes: Option<String>,
    /// The namespace box Pods live in.
    #[arg(long, env = "APIARY_BOX_NAMESPACE", default_value = "apiary")]
    box_namespace: String,
    /// The image of the `default` template for Pods (it carries `apiary` at
    /// /usr/local/bin/apiary).
    #[arg(long, env = "APIARY_BOX_IMAGE", default_value = "")]
    box_image: String,
    /// A RuntimeClass for box Pods (`gvisor`); the agent then runs without its inner sandbox.
    #[arg(long, env = "APIARY_BOX_RUNTIME_CLASS")]
    box_runtime_class: Option<String>,
    /// Where box Pods reach Apiary's gate (`host:port`, e.g. the apiary-gate Service); the
    /// gate listens on --box-gate-port.
    #[arg(long, env = "APIARY_BOX_GATE")]
    box_gate: Option<String>,
    /// The port the gate (the boxes' way out) listens on. Fixed, so boxes still reach it
    /// after a restart; every Apiary process on a host serves the same gate, the first to
    /// start binds it.
    #[arg(long, env = "APIARY_BOX_GATE_PORT", default_value_t = 7880)]
    box_gate_port: u16,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time from hand-off to the box's control plane answering /health (local boxes, or
    /// container boxes with --box-engine).
    Boot {
        /// How many hand-offs to time.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[command(flatten)]
        boxes: BoxArgs,
    },
    /// What the model gateway adds to streamed model requests (against a local upstream).
    Gateway {
        /// Concurrent streams.
        #[arg(long, default_value_t = 50)]
        streams: usize,
        /// Requests each stream sends, one after another.
        #[arg(long, default_value_t = 20)]
        requests: usize,
    },
    /// Simulated boxes posting callbacks while SSE clients listen, against a real `apiary serve`.
    Load {
        #[arg(long, default_value_t = 200)]
        boxes: usize,
        #[arg(long, default_value_t = 1000)]
        sse_clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 10)]
        lines_per_batch: usize,
        /// Callback requests per second offered in total, spread evenly over the boxes; 0 sends
        /// each box's next request as soon as the last is answered (the most the server takes).
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
    },
    /// Time watchdog passes over many tasks, and print the query plans.
    Watchdog {
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        #[arg(long, default_value_t = 1_000)]
        active: usize,
        #[arg(long, default_value_t = 20)]
        passes: usize,
        /// A PostgreSQL server URL (a fresh database is made on it); SQLite when absent.
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password comes from APIARY_USER_PASSWORD or is generated and printed.
    Create {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin or member.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Set a user's password on the host (the way back in for a locked-out admin): clears the
    /// sign-in lock and ends the user's sessions. The password comes from
    /// APIARY_USER_PASSWORD or is generated and printed.
    ResetPassword {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a personal API token for a user; it is printed once.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

/// Opens (and migrates) the store described by the arguments.
async fn open_store(db: &DbArgs) -> Result<Store> {
    std::fs::create_dir_all(&db.data_dir)
        .with_context(|| format!("creating data folder {}", db.data_dir.display()))?;
    let secret_key = match std::env::var("APIARY_SECRET_KEY") {
        Ok(k) if !k.trim().is_empty() => SecretKey::parse(&k).map_err(anyhow::Error::msg)?,
        _ => SecretKey::load_or_create(&db.data_dir.join("secret.key"))
            .context("reading or creating the secret key file")?,
    };
    let url = db
        .database_url
        .clone()
        .unwrap_or_else(|| StoreOptions::sqlite_url(&db.data_dir));
    let store = Store::connect(StoreOptions {
        url,
        secret_key,
        clock: Arc::new(SystemClock),
        max_connections: 8,
    })
    .await
    .context("connecting to the database")?;
    tracing::info!(backend = ?store.backend(), "migrating database");
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

fn nonempty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// How long a job claim holds before another worker may take the job over
/// (`APIARY_JOB_LEASE_S`, default 300 s): after a crash, unfinished jobs wait this long.
fn job_lease_ms() -> i64 {
    nonempty_env("APIARY_JOB_LEASE_S")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(300)
        * 1000
}

/// This process's name for leases: host and pid.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "host".into());
    format!("{}:{}", host.trim(), std::process::id())
}

/// This process's box provider: containers through `--box-engine`, else local boxes under
/// `<data-dir>/boxes`; both run this very binary as the box agent.
async fn box_provider(data_dir: &std::path::Path, args: &BoxArgs) -> Result<Arc<dyn BoxProvider>> {
    // APIARY_BOX_AGENT_EXE runs boxes with another binary (a wrapper script, a different build).
    let exe = match nonempty_env("APIARY_BOX_AGENT_EXE") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe().context("locating the apiary binary")?,
    };
    let data_dir = std::fs::canonicalize(data_dir)?;
    if let Some(api) = args
        .box_kubernetes
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        return Ok(kubernetes_boxes(api.trim(), args).await?);
    }
    if let Some(engine) = args.box_engine.as_deref().filter(|e| !e.trim().is_empty()) {
        let mut cfg = ContainerConfig::new(engine.trim(), exe, data_dir, args.box_gate_port);
        cfg.runtime = args.box_runtime.clone().filter(|r| !r.trim().is_empty());
        cfg.mounts = args.box_mounts.clone();
        cfg.network = args.box_network.clone();
        return Ok(container_boxes(cfg).await?);
    }
    let provider = LocalProvider::new(data_dir.join("boxes"), exe, args.sandbox)?;
    tracing::info!(sandbox = ?provider.sandbox(), "local boxes ready");
    Ok(Arc::new(provider))
}

/// Pods, with the gate they reach Apiary's allowlist through when `--box-gate` is set.
async fn kubernetes_boxes(api: &str, args: &BoxArgs) -> Result<Arc<KubernetesProvider>> {
    if args.box_image.trim().is_empty() {
        anyhow::bail!(
            "--box-kubernetes needs --box-image: the image box Pods run (with apiary in it)"
        );
    }
    let config = if api == "infer" {
        kube::Config::infer()
            .await
            .context("reading the Kubernetes config")?
    } else {
        kube::Config::new(api.parse().context("--box-kubernetes: not a URL")?)
    };
    let client = kube::Client::try_from(config).context("the Kubernetes client")?;
    let mut cfg = KubernetesConfig::new(args.box_image.trim());
    cfg.namespace = args.box_namespace.clone();
    cfg.runtime_class = args
        .box_runtime_class
        .clone()
        .filter(|r| !r.trim().is_empty());
    if cfg.runtime_class.is_some() {
        cfg.agent_sandbox = "none".into();
    }
    cfg.gate = args.box_gate.clone().filter(|g| !g.trim().is_empty());
    let provider = Arc::new(KubernetesProvider::new(client, cfg));
    if provider.gates() {
        if let Some(gate) = bind_gate(args.box_gate_port).await? {
            apiary_box_agent::egress::serve_gate(gate, provider.gate_lookup());
        }
    }
    tracing::info!(namespace = %args.box_namespace, "boxes are Pods");
    Ok(provider)
}

/// Container boxes, with their gate (their only way out) listening on a port of this host.
async fn container_boxes(cfg: ContainerConfig) -> Result<Arc<ContainerProvider>> {
    let gate = bind_gate(cfg.gate_port).await?;
    let provider = ContainerProvider::new(cfg)
        .await
        .context("setting up container boxes")?;
    if let Some(gate) = gate {
        apiary_box_agent::egress::serve_gate(gate, provider.gate_lookup());
    }
    Ok(provider)
}

/// The gate's listener, or `None` when another Apiary process on this host serves it (the
/// gate finds boxes through the engine, so any process's gate serves every box).
async fn bind_gate(port: u16) -> Result<Option<tokio::net::TcpListener>> {
    match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(
                port,
                "the box gate's port is taken: another Apiary process serves it"
            );
            Ok(None)
        }
        Err(e) => Err(e).context("binding the box gate"),
    }
}

async fn serve(
    db: DbArgs,
    bind: SocketAddr,
    config: ServerConfig,
    site: Option<(SocketAddr, Option<String>)>,
    boxes: BoxArgs,
    demo: bool,
) -> Result<()> {
    let store = open_store(&db).await?;
    // The default home of local repositories projects may point at (DESIGN §3).
    let repos = db.data_dir.join("repos");
    std::fs::create_dir_all(&repos).with_context(|| format!("creating {}", repos.display()))?;
    if let Some((admin, generated)) = store
        .bootstrap(
            nonempty_env("APIARY_ADMIN_EMAIL"),
            nonempty_env("APIARY_ADMIN_PASSWORD"),
        )
        .await
        .context("creating the first users")?
    {
        match generated {
            Some(pw) => println!("First admin: {}  password: {pw}  (shown once)", admin.email),
            None => println!(
                "First admin: {} (password from APIARY_ADMIN_PASSWORD)",
                admin.email
            ),
        }
    }
    if demo {
        demo::ensure_demo(&store, &db.data_dir)
            .await
            .context("setting up the demo project")?;
    }
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()))
        .with_local_boxes(box_provider(&db.data_dir, &boxes).await?);
    let state = AppState {
        store: store.clone(),
        orch: orch.clone(),
        hub: apiary_server::fanout::Hub::start(&orch.bus, store.clone()),
        limits: Arc::new(apiary_server::limits::Limits::default()),
        config: Arc::new(config),
    };
    let mut server = HttpServer::bind(bind, state)
        .await
        .with_context(|| format!("binding {bind}"))?;
    println!("Apiary is listening on http://{}", server.addr());
    if let Some((addr, public)) = site {
        let bound = server
            .bind_site(addr, public.as_deref())
            .await
            .with_context(|| format!("binding the site previews' listener {addr} (--site-bind)"))?;
        println!("Site previews are served on http://{bound}");
    }
    orch.set_apiary_url(&format!("http://{}", server.addr()));
    // Tasks queued before a restart get their turn.
    orch.request_drain().await?;
    // On PostgreSQL, events committed by other replicas reach this one's live streams.
    tokio::spawn(orch.clone().run_replica_listener());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watchdog_stop = stop_rx.clone();
    let watchdog_task = tokio::spawn(orch.clone().run_watchdog(replica_name(), async move {
        let mut rx = watchdog_stop;
        let _ = rx.wait_for(|v| *v).await;
    }));
    let worker_task = tokio::spawn(orch.worker().lease_ms(job_lease_ms()).build().run(
        Duration::from_secs(1),
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|v| *v).await;
        },
    ));
    server
        .serve(shutdown_signal())
        .await
        .context("serving HTTP")?;
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    let _ = watchdog_task.await;
    store.close().await;
    Ok(())
}

/// `apiary boxd`: the Box Host API over local boxes, guarded by a host key.
async fn boxd(bind: SocketAddr, data_dir: PathBuf, boxes: BoxArgs, orphan_s: u64) -> Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key = match nonempty_env("APIARY_BOXD_KEY") {
        Some(k) => k,
        None => {
            let path = data_dir.join("host.key");
            if path.exists() {
                std::fs::read_to_string(&path)?.trim().to_string()
            } else {
                let k = apiary_store::new_token("apiary_host_");
                std::fs::write(&path, &k)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                }
                println!("Host key (set it as box_host_key in Apiary's settings): {k}");
                k
            }
        }
    };
    let provider = box_provider(&data_dir, &boxes).await?;
    let leases = Arc::new(apiary_boxes::host::Leases::default());
    let lease = std::time::Duration::from_secs(orphan_s.max(1));
    tokio::spawn(apiary_boxes::host::reap_unowned(
        provider.clone(),
        leases.clone(),
        lease,
    ));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    println!("Box host listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        apiary_boxes::host::router(provider, key, leases).into_make_service(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    Ok(())
}

/// `apiary box-agent`: runs inside a box, configured only by its boot env.
async fn box_agent() -> Result<()> {
    apiary_box_agent::run(apiary_box_agent::BoxAgentConfig::from_env()?).await
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("APIARY_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            db,
            bind,
            secure_cookies,
            trust_forwarded_for,
            metrics_token,
            site_bind,
            site_url,
            boxes,
            demo,
        } => {
            let config = ServerConfig {
                secure_cookies,
                trust_forwarded_for,
                metrics_token: metrics_token.filter(|t| !t.trim().is_empty()),
                data_dir: Some(db.data_dir.clone()),
                ..ServerConfig::default()
            };
            let site = match site_bind.trim() {
                "off" | "" => None,
                addr => Some((
                    addr.parse::<SocketAddr>().with_context(|| {
                        format!("--site-bind must be host:port or off, not {addr:?}")
                    })?,
                    site_url,
                )),
            };
            serve(db, bind, config, site, boxes, demo).await
        }
        Command::Boxd {
            bind,
            data_dir,
            boxes,
            orphan_s,
        } => boxd(bind, data_dir, boxes, orphan_s).await,
        Command::BoxAgent => box_agent().await,
        Command::EgressRelay {
            listen,
            socket,
            also,
            serve,
            command,
        } => {
            let mut pairs: Vec<(String, PathBuf)> = listen.into_iter().zip(socket).collect();
            for pair in also {
                let (l, s) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--also takes LISTEN=SOCKET, not {pair:?}"))?;
                pairs.push((l.to_string(), PathBuf::from(s)));
            }
            let mut inwards = Vec::new();
            for pair in serve {
                let (s, a) = pair
                    .rsplit_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--serve takes SOCKET=ADDRESS, not {pair:?}"))?;
                inwards.push((PathBuf::from(s), a.to_string()));
            }
            let code = apiary_box_agent::egress::relay(&pairs, &inwards, &command).await?;
            std::process::exit(code);
        }
        Command::Openapi => {
            use utoipa::OpenApi;
            println!(
                "{}",
                apiary_server::openapi::ApiDoc::openapi().to_pretty_json()?
            );
            Ok(())
        }
        Command::Bench {
            command: BenchCommand::Boot { runs, boxes },
        } => bench::boot(runs.max(1), &boxes).await,
        Command::Bench {
            command: BenchCommand::Gateway { streams, requests },
        } => bench_gateway::gateway(streams.max(1), requests.max(1)).await,
        Command::Bench {
            command:
                BenchCommand::Load {
                    boxes,
                    sse_clients,
                    seconds,
                    lines_per_batch,
                    rate,
                },
        } => {
            load::run(load::LoadArgs {
                boxes,
                sse_clients,
                seconds,
                lines_per_batch,
                rate,
            })
            .await
        }
        Command::Bench {
            command:
                BenchCommand::Watchdog {
                    tasks,
                    active,
                    passes,
                    database_url,
                },
        } => bench::watchdog(tasks, active.min(tasks), passes.max(1), database_url).await,
        Command::Worker { db, boxes } => {
            let store = open_store(&db).await?;
            let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()))
                .with_local_boxes(box_provider(&db.data_dir, &boxes).await?);
            tracing::info!("worker running; Ctrl-C to stop");
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let watchdog = tokio::spawn(orch.clone().run_watchdog(replica_name(), async move {
                let mut rx = stop_rx;
                let _ = rx.wait_for(|v| *v).await;
            }));
            orch.worker()
                .lease_ms(job_lease_ms())
                .build()
                .run(Duration::from_secs(1), shutdown_signal())
                .await;
            let _ = stop_tx.send(true);
            let _ = watchdog.await;
            store.close().await;
            Ok(())
        }
        Command::Migrate { db } => {
            open_store(&db).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    db,
                    email,
                    name,
                    role,
                },
        } => {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "member" => Role::Member,
                other => bail!("--role must be admin or member, not {other:?}"),
            };
            let store = open_store(&db).await?;
            let (password, generated) = match nonempty_env("APIARY_USER_PASSWORD") {
                Some(p) => (p, false),
                None => (apiary_store::new_token("")[..20].to_string(), true),
            };
            let user = store
                .create_user(NewUser {
                    email,
                    name,
                    role,
                    password: Some(password.clone()),
                })
                .await?;
            println!("created {} ({}) id {}", user.email, role.as_str(), user.id);
            if generated {
                println!("password: {password}  (shown once)");
            }
            Ok(())
        }
        Command::User {
            command: UserCommand::ResetPassword { db, email },
        } => {
            let store = open_store(&db).await?;
            let (password, generated) = match nonempty_env("APIARY_USER_PASSWORD") {
                Some(p) => (p, false),
                None => (apiary_store::new_token("")[..20].to_string(), true),
            };
            let user = store
                .reset_password(&email, &password)
                .await
                .with_context(|| format!("resetting the password of {email}"))?;
            println!(
                "reset the password of {} (id {}); sign-in unlocked",
                user.email, user.id
            );
            if generated {
                println!("password: {password}  (shown once)");
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { db, email, name },
        } => {
            let store = open_store(&db).await?;
            let user = store
                .list_users()
                .await?
                .into_iter()
                .find(|u| u.email == email.trim().to_lowercase())
                .with_context(|| format!("no user with email {email}"))?;
            let (_, token) = store.create_api_token(&user.id, &name).await?;
            println!("{token}");
            eprintln!("(shown once; send it as 'Authorization: Bearer <token>')");
            Ok(())
        }
    }
}
