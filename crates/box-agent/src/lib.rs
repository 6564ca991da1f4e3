//! The box agent: the process that runs inside every box. It clones the project's repository,
//! works on the box's own branch, runs the coding agent for each phase (spec, revise,
//! implement, changes), streams the agent's output to Apiary in batches, serves the control
//! plane (DESIGN §3) and reports back through the callback API.
//!
//! Invariants: the box agent never touches the database; it talks to Apiary only through the
//! callback API with its own token; the agent process never sees the box's tokens (they are
//! removed from its environment) and is killed, with its whole process group, at its timeout.

mod callback;
mod config;
mod control;
mod git;
mod logs;
mod phases;
pub mod presets;
mod runner;

use std::sync::Arc;

use anyhow::{Context, Result};

pub use config::BoxAgentConfig;

/// Runs the box agent until the process is killed.
pub async fn run(config: BoxAgentConfig) -> Result<()> {
    run_until(config, std::future::pending()).await
}

/// Runs the box agent until `shutdown` resolves (tests).
pub async fn run_until(
    config: BoxAgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.control_bind)
        .await
        .with_context(|| format!("binding the control plane on {}", config.control_bind))?;
    let port = listener.local_addr()?.port();
    let agent = Arc::new(phases::Agent::new(config)?);
    agent.announce(port)?;
    let setup = agent.clone();
    tokio::spawn(async move { setup.start().await });
    axum::serve(listener, control::router(agent))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the control plane")?;
    Ok(())
}

/// The pull request's URL: Apiary's own review page on the `local` forge; on `github` the PR
/// opened (or found open) through the GitHub REST API.
async fn forge_pr_url(cfg: &BoxAgentConfig, title: &str) -> Result<String> {
    if cfg.forge != "github" {
        return Ok(format!("{}/tasks/{}/review", cfg.apiary_url, cfg.task_id));
    }
    let repo = cfg
        .repo_url
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .take(2)
        .collect::<Vec<_>>();
    let [name, owner] = repo.as_slice() else {
        anyhow::bail!("cannot tell owner/repo from {}", cfg.repo_url);
    };
    let http = reqwest::Client::new();
    let api = cfg.github_api.trim_end_matches('/');
    let resp = http
        .post(format!("{api}/repos/{owner}/{name}/pulls"))
        .bearer_auth(&cfg.github_token)
        .header("user-agent", "apiary")
        .header("accept", "application/vnd.github+json")
        .json(&serde_json::json!({ "title": title, "head": cfg.branch, "base": cfg.base_branch }))
        .send()
        .await
        .context("opening the pull request on GitHub")?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if let Some(url) = body["html_url"].as_str() {
        return Ok(url.to_string());
    }
    if status.as_u16() == 422 {
        // Already open: find it.
        let list: serde_json::Value = http
            .get(format!("{api}/repos/{owner}/{name}/pulls"))
            .query(&[
                ("head", format!("{owner}:{}", cfg.branch)),
                ("state", "open".into()),
            ])
            .bearer_auth(&cfg.github_token)
            .header("user-agent", "apiary")
            .send()
            .await?
            .json()
            .await?;
        if let Some(url) = list[0]["html_url"].as_str() {
            return Ok(url.to_string());
        }
    }
    anyhow::bail!("GitHub answered {status} to opening the pull request: {body}")
}
