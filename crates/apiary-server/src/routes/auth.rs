//! Sign-in, sign-out and "who am I".

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::{Caller, Credential, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::{ErrorBody, LoginIn, LoginOut, MeOut, UserOut};
use crate::AppState;

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Signs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginIn, tag = "auth",
    responses((status = 200, body = LoginOut), (status = 401, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginIn>,
) -> ApiResult<Response> {
    if body.email.len() > 254 || body.password.len() > 1024 {
        return Err(ApiError::unauthorized("wrong email or password"));
    }
    let now = state.store.now();
    if let Some(until) = state.store.login_locked_until(&body.email).await? {
        return Err(ApiError::rate_limited(
            "too many failed sign-ins: this account is locked for a while",
            std::time::Duration::from_millis((until - now).max(1000) as u64),
        ));
    }
    let Some(user) = state
        .store
        .verify_password(&body.email, &body.password)
        .await?
    else {
        let cfg = &state.limits.config;
        state
            .store
            .record_login_failure(
                &body.email,
                cfg.login_failures,
                cfg.lockout.as_millis() as i64,
            )
            .await?;
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    state.store.clear_login_failures(&user.id).await?;
    let ttl = state.config.session_ttl_ms;
    let (token, csrf_token) = state.store.create_session(&user.id, ttl).await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        ttl / 1000,
        if secure(&state, &headers) {
            "; Secure"
        } else {
            ""
        }
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(LoginOut {
            user: user.into(),
            csrf_token,
        }),
    )
        .into_response())
}

/// Ends the caller's session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    if let Credential::Session { token, .. } = &caller.credential {
        state.store.delete_session(token).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// The signed-in user (and the CSRF token of a cookie session, so a reloaded page can write).
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = MeOut), (status = 401, body = ErrorBody)))]
pub async fn get_me(caller: Caller) -> Json<MeOut> {
    let csrf_token = match caller.credential {
        Credential::Session { csrf_token, .. } => Some(csrf_token),
        Credential::Bearer => None,
    };
    Json(MeOut {
        user: caller.user.into(),
        csrf_token,
    })
}

/// Everyone who can be assigned or added to a project.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth", responses((status = 200, body = [UserOut])))]
pub async fn list_users(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<UserOut>>> {
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(UserOut::from)
            .collect(),
    ))
}
