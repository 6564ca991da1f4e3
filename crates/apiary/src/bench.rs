//! `apiary bench boot`: how long from a hand-off until the box's control plane answers
//! `/health`, with the local provider or (`--box-engine`) container boxes, everything else real (SQLite store, job worker, the
//! box agent process). The agent itself never runs long enough to matter: it is a script that
//! writes a spec at once; the measurement ends before it starts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apiary_boxes::BoxProvider;
use apiary_core::{Role, SystemClock};
use apiary_orchestrator::{Metrics, Orchestrator};
use apiary_store::{NewProject, NewTask, ProjectPatch, SecretKey, Store, StoreOptions};

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Bench",
            "-c",
            "user.email=bench@apiary.local",
        ])
        .args(args)
        .status()?
        .success();
    if !ok {
        bail!("git {args:?} failed");
    }
    Ok(())
}

/// Runs `runs` hand-offs one after another and prints the median and worst time to `/health`.
/// A fresh, migrated SQLite store in `root` with its bootstrapped admin: where a bench starts.
pub async fn bench_store(root: &Path) -> Result<(Store, apiary_store::User)> {
    let store = Store::connect(StoreOptions {
        url: StoreOptions::sqlite_url(root),
        secret_key: SecretKey::generate(),
        clock: Arc::new(SystemClock),
        max_connections: 8,
    })
    .await?;
    store.migrate().await?;
    store.bootstrap(None, Some("bench password".into())).await?;
    let admin = store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin)
        .context("admin")?;
    Ok((store, admin))
}

pub async fn boot(runs: usize, boxes: &crate::BoxArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = std::fs::canonicalize(dir.path())?;
    let (store, admin) = bench_store(&root).await?;
    let repo = root.join("repo.git");
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed)?;
    git(
        &root,
        &["init", "-q", "--bare", "-b", "main", repo.to_str().unwrap()],
    )?;
    git(&seed, &["init", "-q", "-b", "main"])?;
    std::fs::write(seed.join("README.md"), "bench\n")?;
    git(&seed, &["add", "-A"])?;
    git(&seed, &["commit", "-q", "-m", "init"])?;
    git(&seed, &["push", "-q", repo.to_str().unwrap(), "main"])?;
    // A container box's user (uid 1000) pushes to it too.
    git(&repo, &["config", "core.sharedRepository", "world"])?;
    std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&repo)
        .status()?;
    let project = store
        .create_project(
            NewProject {
                name: "bench".into(),
                description: String::new(),
            },
            &admin,
        )
        .await?;
    store
        .update_project(
            &project.id,
            ProjectPatch {
                enabled: Some(true),
                repo_url: Some(repo.display().to_string()),
                preset: Some("script".into()),
                command: Some("sleep 30".into()),
                ..Default::default()
            },
        )
        .await?;
    let mut settings = store.settings().await?;
    settings.agent_orchestration_enabled = true;
    settings.max_concurrent_boxes = 1000;
    store.save_settings(&settings).await?;
    let provider = crate::box_provider(&root, boxes).await?;
    match &boxes.box_engine {
        Some(engine) => eprintln!("container boxes through {engine}"),
        None => eprintln!("local boxes, sandbox: {:?}", boxes.sandbox),
    }
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()))
        .with_local_boxes(provider.clone());
    orch.set_apiary_url("http://127.0.0.1:9");
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let worker = tokio::spawn(
        orch.worker().build().run(
            Duration::from_millis(200),
            async move { stop2.notified().await },
        ),
    );
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for i in 0..runs {
        let (task, _) = store
            .create_task(
                &project.id,
                NewTask {
                    title: format!("bench {i}"),
                    description: String::new(),
                    status: None,
                    assignee_id: None,
                },
                &admin,
            )
            .await?;
        let started = Instant::now();
        let outcome = store.hand_off(&task.id, &admin).await?;
        orch.publish(&outcome);
        loop {
            let t = store.get_task(&task.id).await?;
            if let (Some(url), Some(token)) = (&t.control_url, store.control_token(&task.id).await?)
            {
                let ok = http
                    .get(format!("{url}/health"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "run {i}: no healthy box within 30 s (status {})",
                    t.agent_status
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
        if let Some(id) = store.get_task(&task.id).await?.box_id {
            provider_destroy(&provider, &id).await;
        }
        store.detach_box(&task.id, false).await?;
    }
    stop.notify_waiters();
    let _ = worker.await;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "hand-off → box /health, {} runs: median {:.1} ms, worst {:.1} ms, best {:.1} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap()),
        ms(times[0])
    );
    Ok(())
}

async fn provider_destroy(provider: &Arc<dyn BoxProvider>, id: &str) {
    if let Err(e) = provider.destroy(id).await {
        eprintln!("destroy {id}: {e}");
    }
}

/// A provider that answers at once (every box alive), so the watchdog bench measures Apiary.
struct InstantBoxes;

#[async_trait::async_trait]
impl apiary_boxes::BoxProvider for InstantBoxes {
    async fn create(
        &self,
        _req: apiary_boxes::CreateBox,
    ) -> Result<apiary_boxes::BoxInfo, apiary_boxes::BoxError> {
        Err(apiary_boxes::BoxError::Invalid(
            "the bench creates no boxes".into(),
        ))
    }
    async fn get(&self, id: &str) -> Result<Option<apiary_boxes::BoxInfo>, apiary_boxes::BoxError> {
        Ok(Some(apiary_boxes::BoxInfo {
            id: id.to_string(),
            state: apiary_boxes::BoxState::Running,
            control_url: String::new(),
            code_url: None,
            site_url: None,
            labels: Default::default(),
        }))
    }
    async fn list(
        &self,
        _label: Option<(&str, &str)>,
    ) -> Result<Vec<apiary_boxes::BoxInfo>, apiary_boxes::BoxError> {
        Ok(Vec::new())
    }
    async fn destroy(&self, _id: &str) -> Result<(), apiary_boxes::BoxError> {
        Ok(())
    }
    async fn templates(&self) -> Result<Vec<String>, apiary_boxes::BoxError> {
        Ok(vec![])
    }
}

/// Times watchdog passes over `total` tasks of which `active` are active, and prints the plans.
pub async fn watchdog(
    total: usize,
    active: usize,
    passes: usize,
    database_url: Option<String>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = match &database_url {
        Some(base) => {
            // A fresh database next to the given one, dropped afterwards.
            sqlx_fresh_db(base).await?
        }
        None => StoreOptions::sqlite_url(dir.path()),
    };
    let store = Store::connect(StoreOptions {
        url: url.clone(),
        secret_key: SecretKey::generate(),
        clock: Arc::new(SystemClock),
        max_connections: 8,
    })
    .await?;
    store.migrate().await?;
    store.bootstrap(None, Some("bench password".into())).await?;
    let admin = store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin)
        .context("admin")?;
    let project = store
        .create_project(
            NewProject {
                name: "bench".into(),
                description: String::new(),
            },
            &admin,
        )
        .await?;
    let seeded = Instant::now();
    store.seed_bench_tasks(&project.id, total, active).await?;
    eprintln!(
        "seeded {total} tasks ({active} active) in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()))
        .with_local_boxes(Arc::new(InstantBoxes));
    let mut times = Vec::new();
    for i in 0..passes {
        let started = Instant::now();
        let sum = orch.watchdog_pass("bench").await?;
        times.push(started.elapsed());
        if i == 0 {
            eprintln!("first pass: {sum:?}");
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let backend = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "watchdog pass on {backend}, {total} tasks / {active} active, {passes} passes: median {:.1} ms, worst {:.1} ms, best {:.1} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap()),
        ms(times[0])
    );
    for plan in store.watchdog_query_plans().await? {
        println!("plan: {plan}");
    }
    store.close().await;
    if let Some(base) = &database_url {
        use sqlx::Connection;
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        let mut conn = sqlx::AnyConnection::connect(base).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

/// Creates a fresh PostgreSQL database on the server of `base` and returns its URL.
async fn sqlx_fresh_db(base: &str) -> Result<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("apiary_bench_{}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(base).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let (prefix, _) = base
        .rsplit_once('/')
        .context("the database URL ends in /DATABASE")?;
    Ok(format!("{prefix}/{name}"))
}
