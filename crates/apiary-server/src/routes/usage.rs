//! What agents spend, and a project's own gateway settings: a task's model usage by phase and
//! round, a project's month, and the project's model, agent environment, budgets and keys.

use std::collections::BTreeMap;

use apiary_core::gateway::{usd_to_micros, ProjectGateway};
use apiary_core::Role;
use apiary_store::{month_start_ms, provider_key_secret, UsageSum};
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::routes::settings::{
    nullable, provider_keys, secret_writes, ProviderKeysOut, ProviderKeysPatch,
};
use crate::routes::tasks::readable_task;
use crate::wire::{rfc3339, ErrorBody};
use crate::AppState;

/// Usage of one group of model requests.
#[derive(Serialize, ToSchema, Default)]
pub struct UsageOut {
    /// The phase the agent was in (`speccing`, `implementing`, …); blank in a project's sums.
    pub phase: String,
    /// The review round (0 before the first review); 0 in a project's sums.
    pub round: i64,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_usd: f64,
}

impl From<UsageSum> for UsageOut {
    fn from(u: UsageSum) -> Self {
        UsageOut {
            phase: u.phase,
            round: u.round,
            model: u.model,
            requests: u.requests,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            cost_usd: u.cost_micros as f64 / 1e6,
        }
    }
}

/// Groups and their total.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    pub groups: Vec<UsageOut>,
    pub total: UsageOut,
    /// The budget in force (dollars; 0: no limit).
    pub budget_usd: f64,
    /// Where the sums start (a project's month); absent for a task (all its attempts).
    pub since: Option<String>,
}

fn report(groups: Vec<UsageSum>, budget_usd: f64, since: Option<i64>) -> UsageReport {
    let mut total = UsageOut::default();
    let mut micros = 0i64;
    for g in &groups {
        total.requests += g.requests;
        total.input_tokens += g.input_tokens;
        total.output_tokens += g.output_tokens;
        total.cache_read_tokens += g.cache_read_tokens;
        total.cache_write_tokens += g.cache_write_tokens;
        micros += g.cost_micros;
    }
    total.cost_usd = micros as f64 / 1e6;
    UsageReport {
        groups: groups.into_iter().map(UsageOut::from).collect(),
        total,
        budget_usd,
        since: since.map(rfc3339),
    }
}

/// What the task's agent spent on models, by phase, round and model (every attempt).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/agent/usage", tag = "agent",
    responses((status = 200, body = UsageReport), (status = 404, body = ErrorBody)))]
pub async fn get_task_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UsageReport>> {
    let task = readable_task(&state, &caller, &id).await?;
    let settings = state.store.settings().await?;
    let own = state.store.project_gateway(&task.project_id).await?;
    let budget = own
        .task_budget_usd
        .unwrap_or(settings.gateway.task_budget_usd);
    Ok(Json(report(
        state.store.task_usage(&task.id).await?,
        budget,
        None,
    )))
}

/// What the project's agents spent this calendar month (UTC), by model.
#[utoipa::path(get, path = "/api/v1/projects/{id}/usage", tag = "projects",
    responses((status = 200, body = UsageReport), (status = 404, body = ErrorBody)))]
pub async fn get_project_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UsageReport>> {
    caller.readable_project(&state, &id).await?;
    let settings = state.store.settings().await?;
    let own = state.store.project_gateway(&id).await?;
    let budget = own
        .month_budget_usd
        .unwrap_or(settings.gateway.project_month_budget_usd);
    let since = month_start_ms(state.store.now());
    Ok(Json(report(
        state.store.project_usage(&id, since).await?,
        budget,
        Some(since),
    )))
}

/// A project's own gateway settings; blank or absent values fall through to the global ones.
#[derive(Serialize, ToSchema)]
pub struct ProjectGatewayOut {
    /// The model of the project's preset (blank: the global one for the preset).
    pub model: String,
    /// The model its boxes get after falling through.
    pub effective_model: String,
    pub agent_env: BTreeMap<String, String>,
    /// Per-task budget in dollars (absent: the global one; 0: no limit).
    pub task_budget_usd: Option<f64>,
    /// Monthly budget in dollars (absent: the global one; 0: no limit).
    pub month_budget_usd: Option<f64>,
    /// The project's own provider keys (write-only; unset ones fall through to the global keys).
    pub keys: ProviderKeysOut,
}

/// A change of a project's gateway settings. Budgets are admins' (403 naming the field).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectGatewayPatch {
    pub model: Option<String>,
    pub agent_env: Option<BTreeMap<String, String>>,
    /// `null` falls back to the global budget.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, nullable)]
    pub task_budget_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>, nullable)]
    pub month_budget_usd: Option<Option<f64>>,
    pub keys: Option<ProviderKeysPatch>,
}

async fn gateway_out(state: &AppState, id: &str) -> ApiResult<ProjectGatewayOut> {
    let g = state.store.project_gateway(id).await?;
    let project = state.store.get_project(id).await?;
    let settings = state.store.settings().await?;
    let effective_model = if g.model.trim().is_empty() {
        settings.gateway.model(&project.agent.preset)
    } else {
        g.model.clone()
    };
    Ok(ProjectGatewayOut {
        model: g.model,
        effective_model,
        agent_env: g.agent_env,
        task_budget_usd: g.task_budget_usd,
        month_budget_usd: g.month_budget_usd,
        keys: provider_keys(state, |p| provider_key_secret(Some(id), p)).await?,
    })
}

/// The project's gateway settings (read access).
#[utoipa::path(get, path = "/api/v1/projects/{id}/gateway", tag = "projects",
    responses((status = 200, body = ProjectGatewayOut), (status = 404, body = ErrorBody)))]
pub async fn get_project_gateway(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ProjectGatewayOut>> {
    caller.readable_project(&state, &id).await?;
    Ok(Json(gateway_out(&state, &id).await?))
}

/// Changes the project's gateway settings (write access; budgets: admins only).
#[utoipa::path(patch, path = "/api/v1/projects/{id}/gateway", request_body = ProjectGatewayPatch, tag = "projects",
    responses((status = 200, body = ProjectGatewayOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_project_gateway(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(p): ApiJson<ProjectGatewayPatch>,
) -> ApiResult<Json<ProjectGatewayOut>> {
    caller.writable_project(&state, &id).await?;
    let mut g: ProjectGateway = state.store.project_gateway(&id).await?;
    let admin = caller.user.role == Role::Admin;
    for (field, new, old) in [
        (
            "agent.gateway.task_budget_usd",
            p.task_budget_usd,
            g.task_budget_usd,
        ),
        (
            "agent.gateway.month_budget_usd",
            p.month_budget_usd,
            g.month_budget_usd,
        ),
    ] {
        let changed = new.is_some_and(|n| n.map(usd_to_micros) != old.map(usd_to_micros));
        if changed && !admin {
            return Err(ApiError::forbidden_field(
                field,
                format!("{field}: only an admin sets budgets"),
            ));
        }
    }
    if let Some(m) = p.model {
        g.model = m.trim().to_string();
    }
    if let Some(env) = p.agent_env {
        g.agent_env = env;
    }
    if let Some(b) = p.task_budget_usd {
        g.task_budget_usd = b;
    }
    if let Some(b) = p.month_budget_usd {
        g.month_budget_usd = b;
    }
    g.validate()
        .map_err(|(field, msg)| ApiError::bad_request(field, format!("{field}: {msg}")))?;
    let writes = secret_writes(
        p.keys
            .map(|k| k.writes(|prov| provider_key_secret(Some(&id), prov)))
            .unwrap_or_default(),
    )?;
    state.store.set_project_gateway(&id, &g).await?;
    for (name, v) in writes {
        state.store.set_setting_secret(&name, v.as_deref()).await?;
    }
    crate::routes::gateway::forget_cached();
    Ok(Json(gateway_out(&state, &id).await?))
}
