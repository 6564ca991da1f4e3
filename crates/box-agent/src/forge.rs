//! Where a pull request lives: on the `local` forge it is Apiary's own review page (the diff of
//! base...branch in the project's repository); on `github` it is opened through the GitHub REST
//! API with the project's token.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::config::BoxAgentConfig;

pub use apiary_core::forge::github_repo;

/// Longest spec quoted in a PR body (GitHub takes 65536 characters in all).
const MAX_SPEC_IN_BODY: usize = 50_000;

/// The PR's body: the task's link, `Fixes #N` for a task made from an issue (GitHub closes the
/// issue on merge), and the approved spec.
pub fn pr_body(cfg: &BoxAgentConfig, spec: &str, issue: Option<i64>) -> String {
    let mut body = format!(
        "Opened by Apiary for task {} ({}/tasks/{}).",
        cfg.task_id, cfg.apiary_url, cfg.task_id
    );
    if let Some(n) = issue {
        body.push_str(&format!("\n\nFixes #{n}"));
    }
    if !spec.trim().is_empty() {
        let mut end = spec.len().min(MAX_SPEC_IN_BODY);
        while !spec.is_char_boundary(end) {
            end -= 1;
        }
        body.push_str("\n\n## Approved spec\n\n");
        body.push_str(spec[..end].trim_end());
        if end < spec.len() {
            body.push_str("\n\n… (the spec goes on in Apiary)");
        }
    }
    body
}

/// The pull request's URL for the box's branch, opening it on GitHub when needed (an already
/// open one is found and reused, so a changes round keeps its PR).
pub async fn pr_url(cfg: &BoxAgentConfig, title: &str, pr_body: &str) -> Result<String> {
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
        "body": pr_body,
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
            egress_upstream: None,
            gateway_token: String::new(),
            model: String::new(),
            agent_env: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_local_forge_points_at_the_review_page() {
        let url = pr_url(&cfg("local", String::new()), "x", "b")
            .await
            .unwrap();
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
            pr_url(&c, "Add it", "b").await.unwrap(),
            "https://gh/acme/site/pull/1"
        );
        assert_eq!(
            pr_url(&c, "Add it", "b").await.unwrap(),
            "https://gh/acme/site/pull/1"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, "acme/site");
        assert_eq!(seen[0].1, "Bearer ghp_token");
        assert_eq!(seen[0].2["head"], "apiary/t9-x");
        assert_eq!(seen[0].2["base"], "main");
        assert_eq!(seen[0].2["title"], "Add it");
    }

    #[test]
    fn the_pr_body_links_the_task_fixes_the_issue_and_quotes_the_spec() {
        let c = cfg("github", String::new());
        let body = pr_body(&c, "# Plan\n\nAdd it.\n", Some(42));
        assert!(body.starts_with("Opened by Apiary for task t9 (http://apiary.test/tasks/t9)."));
        assert!(body.contains("\n\nFixes #42\n\n"), "{body}");
        assert!(
            body.ends_with("## Approved spec\n\n# Plan\n\nAdd it."),
            "{body}"
        );
        let plain = pr_body(&c, "", None);
        assert!(
            !plain.contains("Fixes") && !plain.contains("spec"),
            "{plain}"
        );
        let long = pr_body(&c, &"é".repeat(MAX_SPEC_IN_BODY), None);
        assert!(long.ends_with("… (the spec goes on in Apiary)"));
    }
}
