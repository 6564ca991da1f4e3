//! `apiary bench load`: simulated boxes post status changes and log batches to a real
//! `apiary serve` (a child process on SQLite in a temporary folder) while SSE clients listen.
//! Reports callback throughput and latency, event delivery lag, the server's memory, and
//! checks that every log line was stored once and in order; also the raw SQLite insert rate
//! on the same machine as the ceiling.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apiary_core::{AgentStatus, Role, SystemClock};
use apiary_store::{
    Actor, NewProject, NewTask, NewUser, SecretKey, Store, StoreOptions, TransitionRequest,
};

/// What the load run is asked to do.
pub struct LoadArgs {
    pub boxes: usize,
    pub sse_clients: usize,
    pub seconds: u64,
    pub lines_per_batch: usize,
    /// Requests per second offered in total; 0 = each box as fast as it is answered.
    pub rate: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The task and seq of an `agent_log` frame, read without a JSON parser (the listeners share
/// the server's two cores, so they stay cheap).
fn log_event(frame: &str) -> Option<(&str, i64)> {
    if !frame.contains("event: agent_log") {
        return None;
    }
    let task = frame.split("\"task\":\"").nth(1)?.split('"').next()?;
    let seq = frame
        .split("\"seq\":")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((task, seq))
}

/// CPU time (user + system) a process has used, in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th, stime 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn open_store(dir: &Path) -> Result<Store> {
    let key = SecretKey::load_or_create(&dir.join("secret.key"))?;
    let store = Store::connect(StoreOptions {
        url: StoreOptions::sqlite_url(dir),
        secret_key: key,
        clock: Arc::new(SystemClock),
        max_connections: 4,
    })
    .await?;
    store.migrate().await?;
    Ok(store)
}

/// The raw insert rate of this SQLite (one transaction per 10-row batch, like a log batch).
async fn sqlite_ceiling(dir: &Path) -> Result<f64> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", dir.join("ceiling.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE TABLE t (k TEXT, seq BIGINT, line TEXT, PRIMARY KEY (k, seq))")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    let mut n = 0i64;
    while started.elapsed() < Duration::from_secs(3) {
        let mut tx = conn.begin().await?;
        for _ in 0..10 {
            n += 1;
            sqlx::query("INSERT INTO t (k, seq, line) VALUES ($1, $2, $3)")
                .bind("k")
                .bind(n)
                .bind("a log line of moderate length")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(n as f64 / 10.0 / started.elapsed().as_secs_f64())
}

/// The id of the newest event stored (every listener should have got it).
async fn newest_event(data: &Path) -> Result<i64> {
    let store = open_store(data).await?;
    let newest = store.latest_event_id().await?;
    store.close().await;
    Ok(newest)
}

/// Runs the load and prints the figures.
pub async fn run(args: LoadArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = std::fs::canonicalize(dir.path())?;
    // Prepare the database before the server starts: users, a project, tasks with box tokens.
    let store = open_store(&data).await?;
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
                name: "load".into(),
                description: String::new(),
            },
            &admin,
        )
        .await?;
    let mut boxes = Vec::new();
    for i in 0..args.boxes {
        let (task, _) = store
            .create_task(
                &project.id,
                NewTask {
                    title: format!("load {i}"),
                    description: String::new(),
                    status: None,
                    assignee_id: None,
                },
                &admin,
            )
            .await?;
        store.hand_off(&task.id, &admin).await?;
        store
            .transition(TransitionRequest::new(
                &task.id,
                AgentStatus::Provisioning,
                Actor::System,
            ))
            .await?;
        // Tokens without a box at the provider, so the server's watchdog leaves these tasks be.
        let tokens = store.mint_box_tokens(&task.id).await?;
        boxes.push((task.id, tokens.callback_token));
    }
    // SSE listeners: 20 streams per user (the per-user limit), as many users as needed.
    let mut sessions = Vec::new();
    for u in 0..args.sse_clients.div_ceil(20) {
        let user = store
            .create_user(NewUser {
                email: format!("watcher{u}@example.test"),
                name: format!("watcher {u}"),
                role: Role::Member,
                password: None,
            })
            .await?;
        store
            .set_project_member(&project.id, &user.id, apiary_core::ProjectAccess::Read)
            .await?;
        sessions.push(store.create_session(&user.id, 3_600_000).await?.0);
    }
    // The box tokens above were minted by hand: the provisioning and drain jobs the hand-offs
    // queued have nothing to do, so they are consumed here rather than run by the server.
    while let Some(job) = store
        .claim_job(&["provision_box", "drain_queue"], 60_000)
        .await?
    {
        store.complete_job(&job).await?;
    }
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--site-bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env("APIARY_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting apiary serve")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()?;
    let started = Instant::now();
    while http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            bail!("apiary serve did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_rss = rss_mb(server.id());

    // Listeners: every tenth records when each `agent_log` event (task, seq) arrived; every
    // one keeps the id of the last event it got (all must reach the end).
    let task_index: Arc<HashMap<String, usize>> = Arc::new(
        boxes
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (t.clone(), i))
            .collect(),
    );
    // The listeners stand for browsers on other machines: they get a runtime (and thread) of
    // their own, so reading a flush on a thousand streams does not hold up the boxes' requests
    // in this process's scheduler (which would count as server latency).
    let sse_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut recorders = Vec::new();
    let mut last_ids = Vec::new();
    let mut listeners = Vec::new();
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..args.sse_clients {
        let cookie = format!("apiary_session={}", sessions[i / 20]);
        let url = format!("{base}/api/v1/events?project={}", project.id);
        let http = http.clone();
        let record = i % 10 == 0;
        let seen: Arc<Mutex<Vec<(usize, i64, Instant)>>> = Arc::default();
        if record {
            recorders.push(seen.clone());
        }
        let last_id = Arc::new(std::sync::atomic::AtomicI64::new(0));
        last_ids.push(last_id.clone());
        let task_index = task_index.clone();
        let connected = connected.clone();
        listeners.push(sse_runtime.spawn(async move {
            let Ok(mut resp) = http.get(&url).header("cookie", cookie).send().await else {
                return;
            };
            if resp.status().is_success() {
                connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                // Whole frames only; a frame cut by the network waits for its end.
                let Some(end) = buf.windows(2).rposition(|w| w == b"\n\n") else {
                    continue;
                };
                let frames = std::str::from_utf8(&buf[..end]).unwrap_or("");
                if let Some(id) = frames
                    .rsplit("id: ")
                    .next()
                    .and_then(|rest| rest.split('\n').next())
                    .and_then(|id| id.parse::<i64>().ok())
                {
                    last_id.fetch_max(id, std::sync::atomic::Ordering::Relaxed);
                }
                if record {
                    let mut seen = seen.lock().unwrap();
                    for frame in frames.split("\n\n") {
                        if let Some((task, seq)) = log_event(frame) {
                            if let Some(t) = task_index.get(task) {
                                seen.push((*t, seq, at));
                            }
                        }
                    }
                }
                buf.drain(..end + 2);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = connected.load(std::sync::atomic::Ordering::Relaxed);
    if connected < args.sse_clients {
        bail!(
            "only {connected} of {} SSE clients connected",
            args.sse_clients
        );
    }

    // Boxes: report speccing once, then post log batches on a fixed schedule (open loop, the
    // offered rate spread evenly), or back to back when no rate is given.
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let acked: Arc<Mutex<Vec<(usize, i64, Instant)>>> = Arc::default();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let behind = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cpu_before = (cpu_s(server.id()), cpu_s(std::process::id()));
    let load_start = Instant::now();
    let deadline = load_start + Duration::from_secs(args.seconds);
    let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.boxes as f64 / args.rate));
    let mut workers = Vec::new();
    for (index, (task, token)) in boxes.iter().cloned().enumerate() {
        let http = http.clone();
        let base = base.clone();
        let latencies = latencies.clone();
        let acked = acked.clone();
        let errors = errors.clone();
        let behind = behind.clone();
        let lines = args.lines_per_batch;
        let boxes_n = args.boxes;
        workers.push(tokio::spawn(async move {
            let url = format!("{base}/api/v1/agent/tasks/{task}");
            let fail = |what: String| {
                if errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                    eprintln!("{what}");
                }
            };
            let t0 = Instant::now();
            match http
                .post(format!("{url}/status"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "status": "speccing" }))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => latencies.lock().unwrap().push(t0.elapsed()),
                Ok(r) => fail(format!(
                    "status callback answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => fail(format!("status callback failed: {e}")),
            }
            let mut next = period.map(|p| load_start + p.mul_f64(index as f64 / boxes_n as f64));
            let mut n = 0u64;
            let mut mine = Vec::new();
            let mut acks = Vec::new();
            loop {
                if let (Some(at), Some(p)) = (next.as_mut(), period) {
                    let now = Instant::now();
                    if *at > now {
                        tokio::time::sleep_until((*at).into()).await;
                    } else if now - *at > p {
                        behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    *at += p;
                }
                if Instant::now() >= deadline {
                    break;
                }
                let body = serde_json::to_vec(&serde_json::json!({
                    "lines": (0..lines)
                        .map(|k| format!("{task} line {}", n * lines as u64 + k as u64))
                        .collect::<Vec<_>>()
                }))
                .expect("json");
                let t0 = Instant::now();
                let resp = http
                    .post(format!("{url}/logs"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        let done = Instant::now();
                        mine.push(done - t0);
                        if let Some(seq) = v["last_seq"].as_i64() {
                            acks.push((index, seq, done));
                        }
                        n += 1;
                    }
                    Ok(r) => fail(format!(
                        "log batch answered {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => fail(format!("log batch failed: {e}")),
                }
            }
            latencies.lock().unwrap().extend(mine);
            acked.lock().unwrap().extend(acks);
            n
        }));
    }
    let mut peak_rss = idle_rss;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_rss = peak_rss.max(rss_mb(server.id()));
    }
    let mut batches = 0u64;
    for w in workers {
        batches += w.await.unwrap_or(0);
    }
    let elapsed = load_start.elapsed().as_secs_f64();
    let cpu_server = (cpu_s(server.id()) - cpu_before.0) / elapsed;
    let cpu_generator = (cpu_s(std::process::id()) - cpu_before.1) / elapsed;
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak_rss = peak_rss.max(rss_mb(server.id()));
    for l in &listeners {
        l.abort();
    }
    sse_runtime.shutdown_background();
    let _ = server.kill();
    let _ = server.wait();

    // Nothing lost: every line stored once, in order.
    let store = open_store(&data).await?;
    let mut stored = 0usize;
    for (task, _) in &boxes {
        let lines = store.list_logs(task, 0, 1_000_000).await?;
        for (i, l) in lines.iter().enumerate() {
            if l.seq != i as i64 + 1 || l.line != format!("{task} line {i}") {
                bail!(
                    "task {task}: line {} is {:?} (seq {}), expected line {i}",
                    i,
                    l.line,
                    l.seq
                );
            }
        }
        stored += lines.len();
    }
    let expected = batches as usize * args.lines_per_batch;
    if stored != expected {
        bail!("{stored} lines stored, {expected} acknowledged");
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    // Event lag: for every acknowledged batch and every recording listener, the first
    // `agent_log` of that task at or past the batch's last line (events of one task that
    // arrive together are folded into the newest), counted from the acknowledgement.
    let acked = acked.lock().unwrap().clone();
    let mut lags: Vec<Duration> = Vec::with_capacity(acked.len() * recorders.len());
    let mut missed = 0usize;
    for seen in &recorders {
        let mut per_task: Vec<Vec<(i64, Instant)>> = vec![Vec::new(); boxes.len()];
        for (t, seq, at) in seen.lock().unwrap().iter() {
            per_task[*t].push((*seq, *at));
        }
        for (t, seq, done) in &acked {
            let events = &per_task[*t];
            let i = events.partition_point(|(s, _)| s < seq);
            match events.get(i) {
                Some((_, at)) => lags.push(at.saturating_duration_since(*done)),
                None => missed += 1,
            }
        }
    }
    lags.sort();
    let requests = lat.len();
    println!(
        "load: {} boxes, {} SSE clients, {:.0} s, offered {}: {} callback requests ({:.0}/s), {} log lines stored once and in order, {} errors, {} requests started over a period late",
        args.boxes,
        args.sse_clients,
        elapsed,
        if args.rate > 0.0 { format!("{:.0}/s", args.rate) } else { "as fast as answered".into() },
        requests,
        requests as f64 / elapsed,
        stored,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        behind.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!(
        "callback latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "event delivery lag ({} batches x {} recording listeners, {} never delivered): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        acked.len(),
        recorders.len(),
        missed,
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0)
    );
    let newest = newest_event(&data).await?;
    let reached = last_ids
        .iter()
        .filter(|l| l.load(std::sync::atomic::Ordering::Relaxed) >= newest)
        .count();
    println!(
        "listeners that got the last event (id {newest}): {reached} of {}",
        args.sse_clients
    );
    println!(
        "CPU while loaded: server {:.0} %, load generator {:.0} % (of one core; the machine has {})",
        cpu_server * 100.0,
        cpu_generator * 100.0,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("server RSS: {idle_rss:.0} MB idle, {peak_rss:.0} MB peak");
    println!(
        "raw SQLite ceiling on this machine: {:.0} batch transactions/s (10 rows each)",
        sqlite_ceiling(&data).await?
    );
    Ok(())
}
