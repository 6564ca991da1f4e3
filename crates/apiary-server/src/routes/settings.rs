//! Global agent settings (admins only). Secrets are write-only: they read back as
//! `{"set": true|false}`; a write of `""` (or leaving the field out) keeps the stored value,
//! `null` clears it, anything else replaces it. Secrets are stored encrypted.

use std::collections::BTreeMap;

use apiary_core::gateway::{Price, Provider, DEFAULT_MODELS};
use apiary_core::{EmailSettings, Settings, SlackSettings, TelegramSettings, WebhookSettings};
use apiary_store::provider_key_secret;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::{ErrorBody, PromptsIo, PromptsPatch, TimeoutsOut};
use crate::AppState;

/// The names settings secrets are stored under.
pub const BOX_HOST_KEY: &str = "box_host_key";
pub use apiary_orchestrator::chat::{SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, TELEGRAM_BOT_TOKEN};
pub const EMAIL_PASSWORD: &str = "email.password";

/// The secret name of a webhook's signing secret.
pub fn webhook_secret(id: &str) -> String {
    format!("webhook.{id}.secret")
}

/// Whether a write-only secret holds a value.
#[derive(Serialize, ToSchema)]
pub struct SecretState {
    pub set: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TelegramOut {
    pub enabled: bool,
    pub bot_token: SecretState,
    pub chat_id: String,
    pub api_base: String,
    /// How Apiary hears presses and replies: `off`, `webhook` or `polling`.
    pub updates: String,
    /// The bot's username (for the link that links a user).
    pub bot_username: String,
}

#[derive(Serialize, ToSchema)]
pub struct SlackOut {
    pub enabled: bool,
    pub bot_token: SecretState,
    pub signing_secret: SecretState,
    /// The channel id notifications go to.
    pub channel: String,
    pub api_base: String,
}

#[derive(Serialize, ToSchema)]
pub struct EmailOut {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub tls: String,
    pub username: String,
    pub password: SecretState,
    pub from: String,
    pub to: Vec<String>,
    pub to_reviewers: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub enabled: bool,
    pub secret: SecretState,
}

/// Whether each provider's key is stored (the keys themselves are write-only).
#[derive(Serialize, ToSchema)]
pub struct ProviderKeysOut {
    pub anthropic: SecretState,
    pub openai: SecretState,
    pub gemini: SecretState,
}

/// Provider keys to write: `""` or absent keeps, `null` clears, a value replaces.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderKeysPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub anthropic: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub openai: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub gemini: Option<Option<String>>,
}

impl ProviderKeysPatch {
    /// The secret writes, under the names `scope` gives each provider.
    pub fn writes(
        self,
        scope: impl Fn(Provider) -> String,
    ) -> Vec<(String, Option<Option<String>>)> {
        vec![
            (scope(Provider::Anthropic), self.anthropic),
            (scope(Provider::OpenAi), self.openai),
            (scope(Provider::Gemini), self.gemini),
        ]
    }
}

/// Reads which provider keys are stored under the names `scope` gives.
pub async fn provider_keys(
    state: &AppState,
    scope: impl Fn(Provider) -> String,
) -> ApiResult<ProviderKeysOut> {
    let store = &state.store;
    let is_set = |v: Option<String>| SecretState { set: v.is_some() };
    Ok(ProviderKeysOut {
        anthropic: is_set(store.setting_secret(&scope(Provider::Anthropic)).await?),
        openai: is_set(store.setting_secret(&scope(Provider::OpenAi)).await?),
        gemini: is_set(store.setting_secret(&scope(Provider::Gemini)).await?),
    })
}

/// The model gateway's settings as an admin reads them.
#[derive(Serialize, ToSchema)]
pub struct GatewayOut {
    /// Upstream base of each provider (`anthropic`, `openai`, `gemini`); absent: the public API.
    pub base_urls: BTreeMap<String, String>,
    /// The model of each preset, the built-in defaults filled in.
    pub models: BTreeMap<String, String>,
    /// Plain environment variables every agent gets.
    pub agent_env: BTreeMap<String, String>,
    /// Dollars per million tokens by model (exact name, prefix, or `*` for the rest).
    pub prices: Vec<Price>,
    /// Most a task may spend, in dollars (0: no limit).
    pub task_budget_usd: f64,
    /// Most a project may spend in a calendar month (UTC), in dollars (0: no limit).
    pub project_month_budget_usd: f64,
    /// The same model request this many times in a row stops the agent (0: off).
    pub stall_repeats: u32,
    pub keys: ProviderKeysOut,
}

/// A partial update of the gateway's settings; maps and lists replace what was there.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct GatewayPatch {
    pub base_urls: Option<BTreeMap<String, String>>,
    pub models: Option<BTreeMap<String, String>>,
    pub agent_env: Option<BTreeMap<String, String>>,
    pub prices: Option<Vec<Price>>,
    pub task_budget_usd: Option<f64>,
    pub project_month_budget_usd: Option<f64>,
    pub stall_repeats: Option<u32>,
    pub keys: Option<ProviderKeysPatch>,
}

/// The settings as an admin reads them.
#[derive(Serialize, ToSchema)]
pub struct SettingsOut {
    pub agent_orchestration_enabled: bool,
    pub box_provider: String,
    pub box_host_url: String,
    pub box_host_key: SecretState,
    pub callback_base_url: String,
    /// Where people reach Apiary: the base of links in notifications (blank: the callback base).
    pub public_url: String,
    pub github_api_base: String,
    /// The handle a PR comment mentions to start a round (`@apiary`).
    pub github_handle: String,
    /// Signs GitHub's webhook deliveries: write-only, read back as `{"set": bool}`.
    pub github_webhook_secret: SecretState,
    /// Automatic fix rounds a task gets for failing checks before a human is asked.
    pub ci_fix_rounds: u32,
    /// The GitHub App Apiary acts as for projects without a token of their own (blank: none).
    pub github_app_id: String,
    /// The App's private key (PEM): write-only, read back as `{"set": bool}`.
    pub github_app_private_key: SecretState,
    /// Folders a project's local repository may sit under, besides the data folder's `repos/`.
    pub local_repo_roots: Vec<String>,
    /// Hosts a box's agent may reach through the egress proxy (besides Apiary and the git host).
    pub egress_allow: Vec<String>,
    pub default_template: String,
    pub max_concurrent_boxes: u32,
    /// What each box may use (applied to container boxes).
    pub box_limits: apiary_core::settings::BoxLimits,
    /// Most bytes of agent output kept per task (then one marker line, then nothing).
    pub task_log_bytes: u64,
    pub timeouts: TimeoutsOut,
    pub watchdog_interval_s: u64,
    pub notifications_enabled: bool,
    pub chatty_events: bool,
    pub log_notifications: bool,
    pub telegram: TelegramOut,
    pub slack: SlackOut,
    pub email: EmailOut,
    pub webhooks: Vec<WebhookOut>,
    pub prompts: PromptsIo,
    pub gateway: GatewayOut,
}

/// `Some(None)` for an explicit `null` (clear), `None` when absent (keep): with
/// `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BoxLimitsPatch {
    pub memory_mb: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsPatch {
    pub provisioning_s: Option<u64>,
    pub speccing_s: Option<u64>,
    pub implementing_s: Option<u64>,
    pub idle_s: Option<u64>,
    pub failed_grace_s: Option<u64>,
    pub orphan_s: Option<u64>,
    pub stall_s: Option<u64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TelegramPatch {
    pub enabled: Option<bool>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub bot_token: Option<Option<String>>,
    pub chat_id: Option<String>,
    pub api_base: Option<String>,
    /// `off`, `webhook` (Apiary registers its webhook with Telegram) or `polling`.
    pub updates: Option<String>,
    pub bot_username: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SlackPatch {
    pub enabled: Option<bool>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub bot_token: Option<Option<String>>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub signing_secret: Option<Option<String>>,
    pub channel: Option<String>,
    pub api_base: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EmailPatch {
    pub enabled: Option<bool>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub username: Option<String>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub password: Option<Option<String>>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub to_reviewers: Option<bool>,
}

/// One webhook in a replacement list; an `id` keeps that webhook's stored secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    pub id: Option<String>,
    pub url: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `""` or absent keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub secret: Option<Option<String>>,
}

fn yes() -> bool {
    true
}

/// A partial update of the settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub agent_orchestration_enabled: Option<bool>,
    pub box_provider: Option<String>,
    pub box_host_url: Option<String>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub box_host_key: Option<Option<String>>,
    pub callback_base_url: Option<String>,
    pub public_url: Option<String>,
    pub github_api_base: Option<String>,
    pub github_handle: Option<String>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub github_webhook_secret: Option<Option<String>>,
    pub ci_fix_rounds: Option<u32>,
    pub github_app_id: Option<String>,
    /// The App's private key (PEM). `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub github_app_private_key: Option<Option<String>>,
    /// Replaces the list of folders local repositories may sit under (absolute paths).
    pub local_repo_roots: Option<Vec<String>>,
    /// Replaces the hosts a box's agent may reach (`host`, `host:port`, `*.domain`).
    pub egress_allow: Option<Vec<String>>,
    pub default_template: Option<String>,
    pub max_concurrent_boxes: Option<u32>,
    /// Changes what each container box may use (memory, CPU, processes).
    pub box_limits: Option<BoxLimitsPatch>,
    pub task_log_bytes: Option<u64>,
    pub timeouts: Option<TimeoutsPatch>,
    pub watchdog_interval_s: Option<u64>,
    pub notifications_enabled: Option<bool>,
    pub chatty_events: Option<bool>,
    pub log_notifications: Option<bool>,
    pub telegram: Option<TelegramPatch>,
    pub slack: Option<SlackPatch>,
    pub email: Option<EmailPatch>,
    /// Replaces the list of webhooks.
    pub webhooks: Option<Vec<WebhookIn>>,
    pub prompts: Option<PromptsPatch>,
    pub gateway: Option<GatewayPatch>,
}

async fn read(state: &AppState) -> ApiResult<SettingsOut> {
    let s = state.store.settings().await?;
    let store = &state.store;
    let is_set = |v: Option<String>| SecretState { set: v.is_some() };
    let mut webhooks = Vec::new();
    for w in s.webhooks {
        webhooks.push(WebhookOut {
            secret: is_set(store.setting_secret(&webhook_secret(&w.id)).await?),
            id: w.id,
            url: w.url,
            enabled: w.enabled,
        });
    }
    let TelegramSettings {
        enabled,
        chat_id,
        api_base,
        updates,
        bot_username,
    } = s.telegram;
    let SlackSettings {
        enabled: slack_enabled,
        channel,
        api_base: slack_api_base,
    } = s.slack;
    let e: EmailSettings = s.email;
    let g = s.gateway;
    let models = DEFAULT_MODELS
        .iter()
        .map(|(preset, _)| (preset.to_string(), g.model(preset)))
        .chain(g.models.clone())
        .collect();
    let gateway = GatewayOut {
        base_urls: g.base_urls,
        models,
        agent_env: g.agent_env,
        prices: g.prices,
        task_budget_usd: g.task_budget_usd,
        project_month_budget_usd: g.project_month_budget_usd,
        stall_repeats: g.stall_repeats,
        keys: provider_keys(state, |p| provider_key_secret(None, p)).await?,
    };
    Ok(SettingsOut {
        gateway,
        box_host_key: is_set(store.setting_secret(BOX_HOST_KEY).await?),
        telegram: TelegramOut {
            enabled,
            bot_token: is_set(store.setting_secret(TELEGRAM_BOT_TOKEN).await?),
            chat_id,
            api_base,
            updates,
            bot_username,
        },
        slack: SlackOut {
            enabled: slack_enabled,
            bot_token: is_set(store.setting_secret(SLACK_BOT_TOKEN).await?),
            signing_secret: is_set(store.setting_secret(SLACK_SIGNING_SECRET).await?),
            channel,
            api_base: slack_api_base,
        },
        email: EmailOut {
            enabled: e.enabled,
            host: e.host,
            port: e.port,
            tls: e.tls,
            username: e.username,
            password: is_set(store.setting_secret(EMAIL_PASSWORD).await?),
            from: e.from,
            to: e.to,
            to_reviewers: e.to_reviewers,
        },
        webhooks,
        agent_orchestration_enabled: s.agent_orchestration_enabled,
        box_provider: s.box_provider,
        box_host_url: s.box_host_url,
        callback_base_url: s.callback_base_url,
        public_url: s.public_url,
        github_api_base: s.github_api_base,
        github_handle: s.github_handle,
        github_webhook_secret: is_set(
            store
                .setting_secret(crate::routes::github::WEBHOOK_SECRET)
                .await?,
        ),
        ci_fix_rounds: s.ci_fix_rounds,
        github_app_id: s.github_app_id,
        github_app_private_key: is_set(
            store
                .setting_secret(apiary_orchestrator::github::APP_PRIVATE_KEY)
                .await?,
        ),
        local_repo_roots: s.local_repo_roots,
        egress_allow: s.egress_allow,
        default_template: s.default_template,
        max_concurrent_boxes: s.max_concurrent_boxes,
        box_limits: s.box_limits,
        task_log_bytes: s.task_log_bytes,
        timeouts: s.timeouts.into(),
        watchdog_interval_s: s.watchdog_interval_s,
        notifications_enabled: s.notifications_enabled,
        chatty_events: s.chatty_events,
        log_notifications: s.log_notifications,
        prompts: s.prompts.into(),
    })
}

/// The global agent settings, secrets shown only as set or not.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    responses((status = 200, body = SettingsOut), (status = 403, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SettingsOut>> {
    caller.require_admin()?;
    Ok(Json(read(&state).await?))
}

/// The secret writes that change something (`""` and absent keep), each at most 4096 bytes
/// (else 400 naming the secret).
pub fn secret_writes(
    writes: Vec<(String, Option<Option<String>>)>,
) -> ApiResult<Vec<(String, Option<String>)>> {
    let writes: Vec<(String, Option<String>)> = writes
        .into_iter()
        .filter_map(|(name, w)| match w {
            None => None,
            Some(Some(v)) if v.is_empty() => None,
            Some(v) => Some((name, v)),
        })
        .collect();
    if let Some((name, _)) = writes
        .iter()
        .find(|(_, v)| v.as_ref().is_some_and(|v| v.len() > 4096))
    {
        return Err(ApiError::bad_request(
            name,
            format!("{name}: at most 4096 bytes"),
        ));
    }
    Ok(writes)
}

/// Tells Telegram where Apiary hears it when that changed (the mode, the bot, the address):
/// Apiary's webhook, or none for polling. A refusal changes nothing and names
/// `telegram.updates`; leaving webhook mode drops the webhook on a best-effort basis.
async fn hear_telegram(
    state: &AppState,
    before: &Settings,
    after: &Settings,
    writes: &[(String, Option<String>)],
) -> ApiResult<()> {
    let new_token = writes
        .iter()
        .find(|(name, _)| name == TELEGRAM_BOT_TOKEN)
        .map(|(_, v)| v.clone());
    let (b, a) = (&before.telegram, &after.telegram);
    let address_moved = before.public_url != after.public_url
        || before.callback_base_url != after.callback_base_url;
    let changed = b.hears_updates() != a.hears_updates()
        || b.updates != a.updates
        || b.api_base != a.api_base
        || new_token.is_some()
        || (a.updates == "webhook" && address_moved);
    if !changed || !(a.hears_updates() || b.updates == "webhook") {
        return Ok(());
    }
    let stored = state.store.setting_secret(TELEGRAM_BOT_TOKEN).await?;
    let (token, mode) = match (new_token, a.hears_updates()) {
        (Some(Some(t)), true) => (Some(t), a.updates.as_str()),
        (Some(None), true) => (None, a.updates.as_str()),
        (None, true) => (stored, a.updates.as_str()),
        // Leaving webhook mode (or clearing the token): the webhook goes, with the token
        // Telegram knows it by.
        (_, false) => (stored, "off"),
    };
    let Some(token) = token else {
        if mode == "off" {
            return Ok(());
        }
        return Err(ApiError::bad_request(
            "telegram.bot_token",
            "telegram.bot_token: buttons need the bot's token",
        ));
    };
    let bot = apiary_orchestrator::chat::Telegram::new(&a.api_base, &token);
    let base = match [after.public_url.trim(), after.callback_base_url.trim()]
        .into_iter()
        .find(|u| !u.is_empty())
    {
        Some(u) => u.to_string(),
        None => state.orch.callback_url().await?,
    };
    match crate::routes::telegram::register(state, &bot, mode, &base).await {
        Ok(()) => Ok(()),
        Err(e) if mode == "off" => {
            tracing::warn!(error = %e, "could not drop the Telegram webhook");
            Ok(())
        }
        Err(e) => {
            let mut err = ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "telegram_refused",
                format!("telegram.updates: Telegram did not take Apiary's {mode} setup: {e}"),
            );
            err.extra = serde_json::json!({ "field": "telegram.updates" });
            Err(err)
        }
    }
}

fn set<T>(target: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *target = v;
    }
}

/// Changes the global agent settings; a refused value names its field and changes nothing.
#[utoipa::path(patch, path = "/api/v1/settings", request_body = SettingsPatch, tag = "settings",
    responses((status = 200, body = SettingsOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody, description = "Telegram refused the webhook setup")))]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<SettingsPatch>,
) -> ApiResult<Json<SettingsOut>> {
    caller.require_admin()?;
    let mut s: Settings = state.store.settings().await?;
    let before = s.clone();
    let before_webhooks: Vec<String> = s.webhooks.iter().map(|w| w.id.clone()).collect();
    set(
        &mut s.agent_orchestration_enabled,
        p.agent_orchestration_enabled,
    );
    set(&mut s.box_provider, p.box_provider);
    set(&mut s.box_host_url, p.box_host_url);
    set(&mut s.callback_base_url, p.callback_base_url);
    set(&mut s.public_url, p.public_url);
    set(&mut s.github_api_base, p.github_api_base);
    set(&mut s.github_handle, p.github_handle);
    set(&mut s.ci_fix_rounds, p.ci_fix_rounds);
    set(
        &mut s.github_app_id,
        p.github_app_id.map(|id| id.trim().to_string()),
    );
    if let Some(Some(pem)) = &p.github_app_private_key {
        if !pem.is_empty() {
            apiary_orchestrator::github::check_app_key(pem).map_err(|m| {
                ApiError::bad_request(
                    "github_app_private_key",
                    format!("github_app_private_key: {m}"),
                )
            })?;
        }
    }
    set(&mut s.local_repo_roots, p.local_repo_roots);
    set(&mut s.egress_allow, p.egress_allow);
    set(&mut s.default_template, p.default_template);
    set(&mut s.max_concurrent_boxes, p.max_concurrent_boxes);
    set(&mut s.task_log_bytes, p.task_log_bytes);
    set(&mut s.watchdog_interval_s, p.watchdog_interval_s);
    set(&mut s.notifications_enabled, p.notifications_enabled);
    set(&mut s.chatty_events, p.chatty_events);
    set(&mut s.log_notifications, p.log_notifications);
    if let Some(l) = p.box_limits {
        set(&mut s.box_limits.memory_mb, l.memory_mb);
        set(&mut s.box_limits.cpu_millis, l.cpu_millis);
        set(&mut s.box_limits.pids, l.pids);
    }
    if let Some(t) = p.timeouts {
        set(&mut s.timeouts.provisioning_s, t.provisioning_s);
        set(&mut s.timeouts.speccing_s, t.speccing_s);
        set(&mut s.timeouts.implementing_s, t.implementing_s);
        set(&mut s.timeouts.idle_s, t.idle_s);
        set(&mut s.timeouts.failed_grace_s, t.failed_grace_s);
        set(&mut s.timeouts.orphan_s, t.orphan_s);
        set(&mut s.timeouts.stall_s, t.stall_s);
    }
    // Secret writes, collected first and applied only once everything is valid.
    let mut writes: Vec<(String, Option<Option<String>>)> = vec![
        (BOX_HOST_KEY.into(), p.box_host_key),
        (
            crate::routes::github::WEBHOOK_SECRET.into(),
            p.github_webhook_secret,
        ),
        (
            apiary_orchestrator::github::APP_PRIVATE_KEY.into(),
            p.github_app_private_key,
        ),
    ];
    if let Some(t) = p.telegram {
        set(&mut s.telegram.enabled, t.enabled);
        set(&mut s.telegram.chat_id, t.chat_id);
        set(&mut s.telegram.api_base, t.api_base);
        set(&mut s.telegram.updates, t.updates);
        set(
            &mut s.telegram.bot_username,
            t.bot_username
                .map(|u| u.trim().trim_start_matches('@').to_string()),
        );
        writes.push((TELEGRAM_BOT_TOKEN.into(), t.bot_token));
    }
    if let Some(k) = p.slack {
        set(&mut s.slack.enabled, k.enabled);
        set(
            &mut s.slack.channel,
            k.channel.map(|c| c.trim().to_string()),
        );
        set(&mut s.slack.api_base, k.api_base);
        writes.push((SLACK_BOT_TOKEN.into(), k.bot_token));
        writes.push((SLACK_SIGNING_SECRET.into(), k.signing_secret));
    }
    if let Some(e) = p.email {
        set(&mut s.email.enabled, e.enabled);
        set(&mut s.email.host, e.host);
        set(&mut s.email.port, e.port);
        set(&mut s.email.tls, e.tls);
        set(&mut s.email.username, e.username);
        set(&mut s.email.from, e.from);
        set(&mut s.email.to, e.to);
        set(&mut s.email.to_reviewers, e.to_reviewers);
        writes.push((EMAIL_PASSWORD.into(), e.password));
    }
    if let Some(list) = p.webhooks {
        let mut hooks = Vec::new();
        for w in list {
            let id = match w.id {
                Some(id) if before_webhooks.contains(&id) => id,
                Some(id) => {
                    return Err(ApiError::bad_request(
                        "webhooks.id",
                        format!("webhooks.id: no webhook {id:?}"),
                    ))
                }
                None => apiary_store::new_token("")[..16].to_string(),
            };
            writes.push((webhook_secret(&id), w.secret));
            hooks.push(WebhookSettings {
                id,
                url: w.url,
                enabled: w.enabled,
            });
        }
        for gone in before_webhooks
            .iter()
            .filter(|id| !hooks.iter().any(|h| &h.id == *id))
        {
            writes.push((webhook_secret(gone), Some(None)));
        }
        s.webhooks = hooks;
    }
    if let Some(g) = p.gateway {
        set(&mut s.gateway.base_urls, g.base_urls);
        set(&mut s.gateway.models, g.models);
        set(&mut s.gateway.agent_env, g.agent_env);
        set(&mut s.gateway.prices, g.prices);
        set(&mut s.gateway.task_budget_usd, g.task_budget_usd);
        set(
            &mut s.gateway.project_month_budget_usd,
            g.project_month_budget_usd,
        );
        set(&mut s.gateway.stall_repeats, g.stall_repeats);
        if let Some(keys) = g.keys {
            writes.extend(keys.writes(|p| provider_key_secret(None, p)));
        }
    }
    if let Some(pr) = p.prompts {
        set(&mut s.prompts.spec, pr.spec);
        set(&mut s.prompts.implement, pr.implement);
        set(&mut s.prompts.changes, pr.changes);
        set(&mut s.prompts.revise, pr.revise);
    }
    s.validate()
        .map_err(|(field, msg)| ApiError::bad_request(field, format!("{field}: {msg}")))?;
    crate::repos::check_roots(state.config.data_dir.as_deref(), &s.local_repo_roots)
        .map_err(|m| ApiError::bad_request("local_repo_roots", m))?;
    let writes = secret_writes(writes)?;
    hear_telegram(&state, &before, &s, &writes).await?;
    for (name, v) in writes {
        state.store.set_setting_secret(&name, v.as_deref()).await?;
    }
    state.store.save_settings(&s).await?;
    crate::routes::gateway::forget_cached();
    Ok(Json(read(&state).await?))
}
