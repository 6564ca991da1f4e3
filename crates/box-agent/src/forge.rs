//! Where a pull request lives: on the `local` forge it is Apiary's own review page (the diff of
//! base...branch in the project's repository); on `github` it is opened through the GitHub REST
//! API with the project's token.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::config::BoxAgentConfig;

/// `owner` and `repo` of a GitHub repository URL (`https://github.com/o/r(.git)`,
/// `git@github.com:o/r.git`, `ssh://git@github.com/o/r`).
pub fn github_repo(url: &str) -> Option<(String, String)> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let mut parts = url.rsplit(['/', ':']);
    let repo = parts.next().filter(|s| !s.is_empty())?;
    let owner = parts.next().filter(|s| !s.is_empty() && !s.contains('@'))?;
    Some((owner.to_string(), repo.to_string()))
}

/// The pull request's URL for the box's branch, opening it on GitHub when needed (an already
/// open one is found and reused, so a changes round keeps its PR).
pub async fn pr_url(cfg: &BoxAgentConfig, title: &str) -> Result<String> {
    if cfg.forge != "github" {
        return Ok(format!("{}/tasks/{}/review", cfg.apiary_url, cfg.task_id));
    }
    let Some((owner, repo)) = github_repo(&cfg.repo_url) else {
        bail!("cannot tell the GitHub owner/repo from {}", cfg.repo_url);
    };
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let pulls = format!("{}/repos/{owner}/{repo}/pulls", cfg.github_api);
    let send = |req: reqwest::RequestBuilder| {
        req.bearer_auth(&cfg.github_token)
            .header("user-agent", "apiary-box-agent")
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
    };
    let body = json!({
        "title": title,
        "head": cfg.branch,
        "base": cfg.base_branch,
        "body": format!("Opened by Apiary for task {} ({}/tasks/{}).", cfg.task_id, cfg.apiary_url, cfg.task_id),
    });
    let resp = send(http.post(&pulls).json(&body))
        .await
        .with_context(|| format!("opening the pull request at {pulls}"))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or_default();
    if let Some(url) = answer["html_url"].as_str() {
        return Ok(url.to_string());
    }
    if status.as_u16() == 422 {
        // One is open already for this branch: find it.
        let head = format!("{owner}:{}", cfg.branch);
        let open: Value = send(
            http.get(&pulls)
                .query(&[("head", head.as_str()), ("state", "open")]),
        )
        .await
        .context("finding the open pull request")?
        .json()
        .await
        .context("reading the open pull requests")?;
        if let Some(url) = open[0]["html_url"].as_str() {
            return Ok(url.to_string());
        }
    }
    bail!("GitHub answered {status} to opening the pull request: {answer}")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::Path;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Json, Router};

    use super::*;

    #[test]
    fn owner_and_repo_come_from_any_github_url() {
        let want = Some(("acme".to_string(), "site".to_string()));
        for url in [
            "https://github.com/acme/site.git",
            "https://github.com/acme/site",
            "https://x-access-token:t@github.com/acme/site/",
            "git@github.com:acme/site.git",
            "ssh://git@github.com/acme/site",
        ] {
            assert_eq!(github_repo(url), want, "{url}");
        }
        assert_eq!(github_repo("site"), None);
        assert_eq!(github_repo("git@github.com:site"), None);
    }

    fn cfg(forge: &str, api: String) -> BoxAgentConfig {
        BoxAgentConfig {
            apiary_url: "http://apiary.test".into(),
            task_id: "t9".into(),
            callback_token: "c".into(),
            control_token: "k".into(),
            repo_url: "https://github.com/acme/site.git".into(),
            base_branch: "main".into(),
            branch: "apiary/t9-x".into(),
            agent: "script".into(),
            agent_command: "true".into(),
            forge: forge.into(),
            spec_timeout_s: 1,
            impl_timeout_s: 1,
            box_dir: "/nonexistent".into(),
            control_bind: "127.0.0.1:0".into(),
            github_api: api,
            github_token: "ghp_token".into(),
            sandbox: crate::config::AgentSandbox::Bwrap,
            bwrap: "bwrap".into(),
            orphan_s: 1800,
            egress: None,
            gateway_token: String::new(),
            model: String::new(),
            agent_env: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_local_forge_points_at_the_review_page() {
        let url = pr_url(&cfg("local", String::new()), "x").await.unwrap();
        assert_eq!(url, "http://apiary.test/tasks/t9/review");
    }

    #[tokio::test]
    async fn the_github_forge_opens_the_pr_and_reuses_an_open_one() {
        let seen: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
        let rec = seen.clone();
        let app = Router::new().route(
            "/repos/{owner}/{repo}/pulls",
            post(
                move |Path((o, r)): Path<(String, String)>,
                      headers: HeaderMap,
                      Json(b): Json<Value>| async move {
                    let auth = headers["authorization"].to_str().unwrap().to_string();
                    let first = rec.lock().unwrap().is_empty();
                    rec.lock().unwrap().push((format!("{o}/{r}"), auth, b));
                    if first {
                        (
                            StatusCode::CREATED,
                            Json(json!({"html_url": "https://gh/acme/site/pull/1"})),
                        )
                    } else {
                        (
                            StatusCode::UNPROCESSABLE_ENTITY,
                            Json(json!({"message": "exists"})),
                        )
                    }
                },
            )
            .get(|| async { Json(json!([{"html_url": "https://gh/acme/site/pull/1"}])) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = cfg("github", api);
        assert_eq!(
            pr_url(&c, "Add it").await.unwrap(),
            "https://gh/acme/site/pull/1"
        );
        assert_eq!(
            pr_url(&c, "Add it").await.unwrap(),
            "https://gh/acme/site/pull/1"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "acme/site");
        assert_eq!(seen[0].1, "Bearer ghp_token");
        assert_eq!(seen[0].2["head"], "apiary/t9-x");
        assert_eq!(seen[0].2["base"], "main");
        assert_eq!(seen[0].2["title"], "Add it");
    }
}
