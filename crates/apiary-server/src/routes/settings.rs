//! Global agent settings (admins only). Secrets are write-only: they read back as
//! `{"set": true|false}`; a write of `""` (or leaving the field out) keeps the stored value,
//! `null` clears it, anything else replaces it. Secrets are stored encrypted.

use apiary_core::{Prompts, Settings, TelegramSettings, Timeouts};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::ErrorBody;
use crate::AppState;

/// The settings secrets, by the name they are stored under.
const BOX_HOST_KEY: &str = "box_host_key";
const TELEGRAM_BOT_TOKEN: &str = "telegram.bot_token";

/// Whether a write-only secret holds a value.
#[derive(Serialize, ToSchema)]
pub struct SecretState {
    pub set: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TelegramOut {
    pub bot_token: SecretState,
    pub chat_id: String,
    pub api_base: String,
}

/// The settings as an admin reads them.
#[derive(Serialize, ToSchema)]
pub struct SettingsOut {
    pub agent_orchestration_enabled: bool,
    pub box_provider: String,
    pub box_host_url: String,
    pub box_host_key: SecretState,
    pub callback_base_url: String,
    pub default_template: String,
    pub max_concurrent_boxes: u32,
    #[schema(value_type = Object)]
    pub timeouts: Timeouts,
    pub watchdog_interval_s: u64,
    pub notifications_enabled: bool,
    pub chatty_events: bool,
    pub telegram: TelegramOut,
    #[schema(value_type = Object)]
    pub prompts: Prompts,
}

fn secret_write<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsPatch {
    pub provisioning_s: Option<u64>,
    pub speccing_s: Option<u64>,
    pub implementing_s: Option<u64>,
    pub idle_s: Option<u64>,
    pub failed_grace_s: Option<u64>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TelegramPatch {
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "secret_write")]
    #[schema(value_type = Option<String>, nullable)]
    pub bot_token: Option<Option<String>>,
    pub chat_id: Option<String>,
    pub api_base: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptsPatch {
    pub spec: Option<String>,
    pub implement: Option<String>,
    pub changes: Option<String>,
    pub revise: Option<String>,
}

/// A partial update of the settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub agent_orchestration_enabled: Option<bool>,
    pub box_provider: Option<String>,
    pub box_host_url: Option<String>,
    /// `""` keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "secret_write")]
    #[schema(value_type = Option<String>, nullable)]
    pub box_host_key: Option<Option<String>>,
    pub callback_base_url: Option<String>,
    pub default_template: Option<String>,
    pub max_concurrent_boxes: Option<u32>,
    pub timeouts: Option<TimeoutsPatch>,
    pub watchdog_interval_s: Option<u64>,
    pub notifications_enabled: Option<bool>,
    pub chatty_events: Option<bool>,
    pub telegram: Option<TelegramPatch>,
    pub prompts: Option<PromptsPatch>,
}

async fn read(state: &AppState) -> ApiResult<SettingsOut> {
    let s = state.store.settings().await?;
    let is_set = |v: Option<String>| SecretState { set: v.is_some() };
    Ok(SettingsOut {
        box_host_key: is_set(state.store.setting_secret(BOX_HOST_KEY).await?),
        telegram: TelegramOut {
            bot_token: is_set(state.store.setting_secret(TELEGRAM_BOT_TOKEN).await?),
            chat_id: s.telegram.chat_id,
            api_base: s.telegram.api_base,
        },
        agent_orchestration_enabled: s.agent_orchestration_enabled,
        box_provider: s.box_provider,
        box_host_url: s.box_host_url,
        callback_base_url: s.callback_base_url,
        default_template: s.default_template,
        max_concurrent_boxes: s.max_concurrent_boxes,
        timeouts: s.timeouts,
        watchdog_interval_s: s.watchdog_interval_s,
        notifications_enabled: s.notifications_enabled,
        chatty_events: s.chatty_events,
        prompts: s.prompts,
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

fn set<T>(target: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *target = v;
    }
}

/// Changes the global agent settings; a refused value names its field and changes nothing.
#[utoipa::path(patch, path = "/api/v1/settings", request_body = SettingsPatch, tag = "settings",
    responses((status = 200, body = SettingsOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<SettingsPatch>,
) -> ApiResult<Json<SettingsOut>> {
    caller.require_admin()?;
    let mut s: Settings = state.store.settings().await?;
    set(
        &mut s.agent_orchestration_enabled,
        p.agent_orchestration_enabled,
    );
    set(&mut s.box_provider, p.box_provider);
    set(&mut s.box_host_url, p.box_host_url);
    set(&mut s.callback_base_url, p.callback_base_url);
    set(&mut s.default_template, p.default_template);
    set(&mut s.max_concurrent_boxes, p.max_concurrent_boxes);
    set(&mut s.watchdog_interval_s, p.watchdog_interval_s);
    set(&mut s.notifications_enabled, p.notifications_enabled);
    set(&mut s.chatty_events, p.chatty_events);
    if let Some(t) = p.timeouts {
        set(&mut s.timeouts.provisioning_s, t.provisioning_s);
        set(&mut s.timeouts.speccing_s, t.speccing_s);
        set(&mut s.timeouts.implementing_s, t.implementing_s);
        set(&mut s.timeouts.idle_s, t.idle_s);
        set(&mut s.timeouts.failed_grace_s, t.failed_grace_s);
    }
    let mut telegram_token = None;
    if let Some(t) = p.telegram {
        let TelegramSettings { chat_id, api_base } = &mut s.telegram;
        set(chat_id, t.chat_id);
        set(api_base, t.api_base);
        telegram_token = t.bot_token;
    }
    if let Some(pr) = p.prompts {
        set(&mut s.prompts.spec, pr.spec);
        set(&mut s.prompts.implement, pr.implement);
        set(&mut s.prompts.changes, pr.changes);
        set(&mut s.prompts.revise, pr.revise);
    }
    s.validate()
        .map_err(|(field, msg)| ApiError::bad_request(field, format!("{field}: {msg}")))?;
    for (field, v) in [
        ("box_host_url", &s.box_host_url),
        ("callback_base_url", &s.callback_base_url),
        ("telegram.api_base", &s.telegram.api_base),
    ] {
        if !(v.is_empty() || v.starts_with("http://") || v.starts_with("https://"))
            || v.len() > 2000
        {
            return Err(ApiError::bad_request(
                field,
                format!("{field}: must be an http(s) URL"),
            ));
        }
    }
    let writes: Vec<(&str, Option<String>)> = [
        (BOX_HOST_KEY, p.box_host_key),
        (TELEGRAM_BOT_TOKEN, telegram_token),
    ]
    .into_iter()
    .filter_map(|(name, w)| match w {
        None => None,
        Some(Some(v)) if v.is_empty() => None,
        Some(v) => Some((name, v)),
    })
    .collect();
    // Check everything before writing anything.
    if let Some((name, _)) = writes
        .iter()
        .find(|(_, v)| v.as_ref().is_some_and(|v| v.len() > 4096))
    {
        return Err(ApiError::bad_request(
            name,
            format!("{name}: at most 4096 bytes"),
        ));
    }
    for (name, v) in writes {
        state.store.set_setting_secret(name, v.as_deref()).await?;
    }
    state.store.save_settings(&s).await?;
    Ok(Json(read(&state).await?))
}
