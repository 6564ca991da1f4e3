//! `apiary bench gateway`: what the model gateway adds. A local upstream streams an Anthropic
//! Messages answer (its first event at once, the rest after a fixed think time); `streams`
//! clients at once send `requests` streamed requests each, first straight to the upstream, then
//! through a real Apiary (SQLite store, token check, budget check, stall guard, key swap,
//! metering); the streams start spread over one think time, as independent agents would.
//! Printed: requests per second, and the time to the first streamed byte and to the
//! whole answer (p50, p99), direct and through the gateway, and the difference.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apiary_core::AgentStatus;
use apiary_orchestrator::{Metrics, Orchestrator};
use apiary_server::{AppState, HttpServer, ServerConfig};
use apiary_store::{Actor, BoxAddress, NewProject, NewTask, TransitionRequest};
use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::json;

/// Time the upstream "thinks" between its first event and the rest.
const THINK: Duration = Duration::from_millis(20);

/// The upstream: a streamed Messages answer with usage, its first event sent at once.
async fn upstream() -> Result<SocketAddr> {
    async fn messages(_body: Bytes) -> Response {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        tokio::spawn(async move {
            let first = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n";
            let _ = tx.send(Ok(Bytes::from_static(first.as_bytes()))).await;
            tokio::time::sleep(THINK).await;
            let rest = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
                        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20}}\n\n\
                        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
            let _ = tx.send(Ok(Bytes::from_static(rest.as_bytes()))).await;
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .expect("a response")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route("/v1/messages", axum::routing::post(messages));
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// An Apiary on loopback whose gateway forwards to `upstream`, and one working task's token.
async fn apiary(dir: &std::path::Path, upstream: SocketAddr) -> Result<(String, String)> {
    let (store, admin) = crate::bench::bench_store(dir).await?;
    let mut settings = store.settings().await?;
    settings
        .gateway
        .base_urls
        .insert("anthropic".into(), format!("http://{upstream}"));
    settings.gateway.task_budget_usd = 0.0;
    store.save_settings(&settings).await?;
    store
        .set_setting_secret("provider.anthropic.api_key", Some("sk-bench"))
        .await?;
    let project = store
        .create_project(
            NewProject {
                name: "bench".into(),
                description: String::new(),
            },
            &admin,
        )
        .await?;
    let (task, _) = store
        .create_task(
            &project.id,
            NewTask {
                title: "bench".into(),
                description: String::new(),
                status: None,
                assignee_id: None,
            },
            &admin,
        )
        .await?;
    let orch = Orchestrator::new(store.clone(), Arc::new(Metrics::default()));
    orch.publish(&store.hand_off(&task.id, &admin).await?);
    for to in [AgentStatus::Provisioning] {
        orch.transition(TransitionRequest::new(&task.id, to, Actor::System))
            .await?;
    }
    let tokens = store
        .attach_box(
            &task.id,
            &BoxAddress {
                box_id: "bench-box".into(),
                control_url: "http://127.0.0.1:9".into(),
                ..Default::default()
            },
        )
        .await?;
    orch.transition(TransitionRequest::new(
        &task.id,
        AgentStatus::Speccing,
        Actor::System,
    ))
    .await?;
    let state = AppState {
        store: store.clone(),
        hub: apiary_server::fanout::Hub::start(&orch.bus, store.clone()),
        orch,
        config: Arc::new(ServerConfig::default()),
        limits: Arc::new(apiary_server::limits::Limits::default()),
    };
    let server = HttpServer::bind("127.0.0.1:0".parse()?, state).await?;
    let base = format!("http://{}", server.addr());
    tokio::spawn(async move {
        let _ = server.serve(std::future::pending()).await;
    });
    Ok((base, tokens.gateway_token))
}

/// (time to the first byte, time to the whole answer) of each request, and the wall time.
async fn run(
    url: &str,
    token: &str,
    streams: usize,
    requests: usize,
) -> Result<(Vec<Duration>, Vec<Duration>, Duration)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(streams)
        .build()?;
    let started = Instant::now();
    let mut clients = Vec::new();
    for s in 0..streams {
        let http = http.clone();
        let url = url.to_string();
        let token = token.to_string();
        // Agents are independent: the streams start spread over one think time, not in step.
        let offset = THINK * s as u32 / streams as u32;
        clients.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut out = Vec::new();
            for i in 0..requests {
                // Each body differs: the stall guard stops repeats.
                let body = json!({"model": "claude-sonnet-4-5", "stream": true, "max_tokens": 10,
                    "messages": [{"role": "user", "content": format!("stream {s} request {i}")}]});
                let t0 = Instant::now();
                let mut r = http
                    .post(&url)
                    .header("x-api-key", &token)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.chunk().await?;
                let first = t0.elapsed();
                while r.chunk().await?.is_some() {}
                out.push((first, t0.elapsed()));
            }
            anyhow::Ok(out)
        }));
    }
    let (mut firsts, mut totals) = (Vec::new(), Vec::new());
    for c in clients {
        for (f, t) in c.await?? {
            firsts.push(f);
            totals.push(t);
        }
    }
    let wall = started.elapsed();
    firsts.sort();
    totals.sort();
    Ok((firsts, totals, wall))
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark and prints its figures.
pub async fn gateway(streams: usize, requests: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstream().await?;
    let (base, token) = apiary(dir.path(), up).await?;
    let direct_url = format!("http://{up}/v1/messages");
    let gateway_url = format!("{base}/gateway/anthropic/v1/messages");
    // Warm both paths (connections, the first SQLite pages).
    run(&direct_url, &token, streams.min(4), 2).await?;
    run(&gateway_url, &token, streams.min(4), 2).await?;
    let (df, dt, dwall) = run(&direct_url, &token, streams, requests).await?;
    let (gf, gt, gwall) = run(&gateway_url, &token, streams, requests).await?;
    let n = (streams * requests) as f64;
    println!(
        "gateway bench: {streams} concurrent streams × {requests} requests, upstream think time {} ms",
        THINK.as_millis()
    );
    println!(
        "  requests/s: direct {:.0}, through the gateway {:.0}",
        n / dwall.as_secs_f64(),
        n / gwall.as_secs_f64()
    );
    for (what, d, g) in [("first byte", &df, &gf), ("whole answer", &dt, &gt)] {
        let (d50, d99, g50, g99) = (pct(d, 0.5), pct(d, 0.99), pct(g, 0.5), pct(g, 0.99));
        println!(
            "  {what}: direct p50 {:.2} ms p99 {:.2} ms; gateway p50 {:.2} ms p99 {:.2} ms; added p50 {:.2} ms p99 {:.2} ms",
            ms(d50),
            ms(d99),
            ms(g50),
            ms(g99),
            ms(g50) - ms(d50),
            ms(g99) - ms(d99)
        );
    }
    Ok(())
}
