//! Notification delivery (DESIGN §6): one `deliver` job per channel. A failing channel is
//! recorded in the admins' error log and retried with backoff (a Telegram 4xx other than 429
//! or Slack refusal other than 429 is not retried: the same request would fail again); it never touches the transition or
//! the other channels, whose jobs are separate.

use std::time::Duration;

use apiary_core::notify::Message;
use apiary_core::NotifyEvent;
use apiary_store::{Job, JobFailure, StoreError};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::json;
use sha2::Sha256;

use crate::chat::{slack_blocks, telegram_keyboard, ChatError, Slack, Telegram};
use crate::worker::JobHandler;
use crate::Orchestrator;

/// Delivers one notification on one channel.
pub struct Deliver {
    http: reqwest::Client,
}

impl Default for Deliver {
    fn default() -> Self {
        Deliver {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }
}

/// The HMAC-SHA256 signature header value of a webhook body.
pub fn webhook_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A delivery failure: what to record, and whether to try again.
struct Failure {
    status: Option<i64>,
    body: Option<String>,
    error: String,
    retry: bool,
}

impl Failure {
    fn retry(error: impl Into<String>) -> Self {
        Failure {
            status: None,
            body: None,
            error: error.into(),
            retry: true,
        }
    }
}

fn chat_failure(e: ChatError) -> Failure {
    let (status, body) = match &e {
        ChatError::Refused {
            status,
            description,
            ..
        } => (Some(i64::from(*status)), Some(description.clone())),
        _ => (None, None),
    };
    Failure {
        status,
        body,
        retry: e.passing(),
        error: e.to_string(),
    }
}

fn store_err(e: StoreError) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

/// What a notification of `event` about the task says, as the task is now (also used to
/// rewrite a chat message once acted on).
pub async fn message(
    orch: &Orchestrator,
    task_id: &str,
    event: NotifyEvent,
) -> Result<Message, StoreError> {
    let task = orch.store.get_task(task_id).await?;
    let project = orch.store.get_project(&task.project_id).await?;
    let base = orch.public_url().await?;
    let task_url = format!("{base}/tasks/{}", task.id);
    Ok(Message {
        event,
        task_title: task.title,
        project_name: project.name,
        spec_url: task.spec.as_ref().map(|_| format!("{task_url}#spec")),
        task_url,
        pr_url: task.pr_url,
        code_url: task.code_url,
        site_url: task.site_url,
        // Chat messages have room for a few thousand characters (a Slack section 3000):
        // the error's start says what failed; the task page has it whole.
        error: task
            .last_error
            .filter(|_| matches!(event, NotifyEvent::Failed | NotifyEvent::ChecksFailing))
            .map(|e| match e.char_indices().nth(1500) {
                Some((at, _)) => format!("{}…", &e[..at]),
                None => e,
            }),
    })
}

impl Deliver {
    /// Telegram: MarkdownV2, with the buttons the event allows when Apiary hears presses.
    async fn telegram(
        &self,
        orch: &Orchestrator,
        task_id: &str,
        event_id: i64,
        msg: &Message,
    ) -> Result<(), Failure> {
        let s = orch
            .store
            .settings()
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let bot = Telegram::configured(orch, &s).await.map_err(chat_failure)?;
        let body = json!({
            "chat_id": s.telegram.chat_id,
            "text": msg.markdown_v2(),
            "parse_mode": "MarkdownV2",
            "link_preview_options": { "is_disabled": true },
            "reply_markup": telegram_keyboard(msg, task_id, event_id, s.telegram.hears_updates()),
        });
        bot.call("sendMessage", &body)
            .await
            .map(|_| ())
            .map_err(chat_failure)
    }

    /// Slack: `mrkdwn` text with Block Kit buttons in the configured channel.
    async fn slack(
        &self,
        orch: &Orchestrator,
        task_id: &str,
        event_id: i64,
        msg: &Message,
    ) -> Result<(), Failure> {
        let s = orch
            .store
            .settings()
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let bot = Slack::configured(orch, &s).await.map_err(chat_failure)?;
        let body = json!({
            "channel": s.slack.channel,
            "text": msg.plain(),
            "blocks": slack_blocks(msg, task_id, event_id),
            "unfurl_links": false,
        });
        bot.call("chat.postMessage", &body)
            .await
            .map(|_| ())
            .map_err(chat_failure)
    }

    async fn email(
        &self,
        orch: &Orchestrator,
        task_id: &str,
        msg: &Message,
    ) -> Result<(), Failure> {
        let fail = |e: String| Failure::retry(e);
        let s = orch
            .store
            .settings()
            .await
            .map_err(|e| fail(e.to_string()))?
            .email;
        let mut to = s.to.clone();
        if s.to_reviewers {
            let task = orch
                .store
                .get_task(task_id)
                .await
                .map_err(|e| fail(e.to_string()))?;
            to.extend(
                orch.store
                    .project_reviewer_emails(&task.project_id)
                    .await
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        to.sort();
        to.dedup();
        if to.is_empty() {
            return Err(Failure {
                retry: false,
                ..fail("the email channel has no recipients".into())
            });
        }
        let mut builder = lettre::Message::builder()
            .from(s.from.parse().map_err(|e| Failure {
                retry: false,
                ..fail(format!("bad sender {:?}: {e}", s.from))
            })?)
            .subject(msg.subject())
            .header(ContentType::TEXT_PLAIN);
        for addr in &to {
            builder = builder.to(addr.parse().map_err(|e| Failure {
                retry: false,
                ..fail(format!("bad recipient {addr:?}: {e}"))
            })?);
        }
        let email = builder.body(msg.plain()).map_err(|e| fail(e.to_string()))?;
        let mut transport = match s.tls.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| fail(e.to_string()))?,
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| fail(e.to_string()))?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        }
        .port(s.port)
        .timeout(Some(Duration::from_secs(10)));
        if !s.username.is_empty() {
            let password = orch
                .store
                .setting_secret("email.password")
                .await
                .map_err(|e| fail(e.to_string()))?
                .unwrap_or_default();
            transport = transport.credentials(Credentials::new(s.username.clone(), password));
        }
        transport
            .build()
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                status: e.status().map(|c| u16::from(c) as i64),
                ..fail(format!("SMTP: {e}"))
            })
    }

    async fn webhook(
        &self,
        orch: &Orchestrator,
        id: &str,
        task_id: &str,
        msg: &Message,
        delivery_id: &str,
    ) -> Result<(), Failure> {
        let s = orch
            .store
            .settings()
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let Some(hook) = s.webhooks.iter().find(|w| w.id == id) else {
            return Err(Failure {
                retry: false,
                ..Failure::retry("the webhook was removed")
            });
        };
        let secret = orch
            .store
            .setting_secret(&format!("webhook.{id}.secret"))
            .await
            .map_err(|e| Failure::retry(e.to_string()))?
            .unwrap_or_default();
        let links: serde_json::Map<String, serde_json::Value> = msg
            .links()
            .into_iter()
            .map(|(label, url)| (label.to_lowercase().replace(' ', "_"), json!(url)))
            .collect();
        let body = serde_json::to_vec(&json!({
            "version": 1,
            "event": msg.event.as_str(),
            "task": { "id": task_id, "title": msg.task_title },
            "project": { "name": msg.project_name },
            "links": links,
            "error": msg.error,
            "text": msg.plain(),
            "delivery": delivery_id,
        }))
        .expect("json");
        let resp = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-apiary-signature", webhook_signature(&secret, &body))
            .header("x-apiary-delivery", delivery_id)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::retry(format!("webhook unreachable: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(Failure {
            status: Some(status.as_u16() as i64),
            body: Some(text),
            error: format!("webhook answered {status}"),
            retry: true,
        })
    }
}

impl Deliver {
    /// GitHub: a comment on the task's issue, and the `Apiary` status of the PR's head.
    async fn github(
        &self,
        orch: &Orchestrator,
        task_id: &str,
        msg: &Message,
    ) -> Result<(), Failure> {
        let fail = |e: crate::github::GitHubError| Failure {
            retry: e.passing(),
            ..Failure::retry(e.to_string())
        };
        let task = orch
            .store
            .get_task(task_id)
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let project = orch
            .store
            .get_project(&task.project_id)
            .await
            .map_err(|e| Failure::retry(e.to_string()))?;
        let Some(repo) = crate::github::Repo::of_project(orch, &project)
            .await
            .map_err(fail)?
        else {
            return Err(Failure {
                retry: false,
                ..Failure::retry("the project has no GitHub token")
            });
        };
        if let Some(issue) = task.github_issue {
            // The headline and links only: an error's text (paths, hosts, a tool's output)
            // stays in Apiary, and no `@` of the title pings anyone.
            let title = msg.task_title.replace('@', "@\u{200b}");
            let mut body = format!("**{}**: [{title}]({})", msg.event.headline(), msg.task_url);
            if let Some(pr) = &msg.pr_url {
                body.push_str(&format!(" · [pull request]({pr})"));
            }
            repo.comment(issue as u64, &body).await.map_err(fail)?;
        }
        let state = match msg.event {
            NotifyEvent::PrReady => Some(("success", "Ready for review")),
            NotifyEvent::ChecksFailing => {
                Some(("failure", "Checks still failing: a human decides"))
            }
            NotifyEvent::Failed => Some(("failure", "The agent failed")),
            _ => None,
        };
        let pr = task
            .pr_url
            .as_deref()
            .and_then(apiary_core::forge::pr_number);
        if let (Some((state, description)), Some(n)) = (state, pr) {
            let head = repo.pull(n).await.map_err(fail)?;
            if let Some(sha) = head["head"]["sha"].as_str() {
                repo.status(sha, state, description, &msg.task_url)
                    .await
                    .map_err(fail)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl JobHandler for Deliver {
    async fn run(&self, orch: &Orchestrator, job: &Job) -> Result<(), JobFailure> {
        let p = job.payload_json();
        let task_id = p["task_id"].as_str().unwrap_or_default().to_string();
        let channel = p["channel"].as_str().unwrap_or_default().to_string();
        let event_id = p["event_id"].as_i64().unwrap_or_default();
        let event: NotifyEvent = serde_json::from_value(p["event"].clone())
            .map_err(|e| JobFailure::Fatal(e.to_string()))?;
        let msg = message(orch, &task_id, event).await.map_err(store_err)?;
        let result = match channel.as_str() {
            "log" => {
                tracing::info!(channel = "log", event = event.as_str(), "{}", msg.plain());
                Ok(())
            }
            "telegram" => self.telegram(orch, &task_id, event_id, &msg).await,
            "slack" => self.slack(orch, &task_id, event_id, &msg).await,
            "email" => self.email(orch, &task_id, &msg).await,
            "github" => self.github(orch, &task_id, &msg).await,
            c => match c.strip_prefix("webhook:") {
                // Delivery is at least once (a crash mid-send resends): the id lets receivers drop repeats.
                Some(id) => {
                    let delivery_id = format!("{}:{channel}", p["event_id"]);
                    self.webhook(orch, id, &task_id, &msg, &delivery_id).await
                }
                None => Err(Failure {
                    retry: false,
                    ..Failure::retry(format!("unknown channel {c:?}"))
                }),
            },
        };
        match result {
            Ok(()) => Ok(()),
            Err(f) => {
                orch.store
                    .record_notification_error(
                        &channel,
                        event.as_str(),
                        Some(&task_id),
                        f.status,
                        f.body.as_deref(),
                        &f.error,
                    )
                    .await
                    .map_err(store_err)?;
                if f.retry {
                    Err(JobFailure::Retryable(f.error))
                } else {
                    Err(JobFailure::Fatal(f.error))
                }
            }
        }
    }
}
