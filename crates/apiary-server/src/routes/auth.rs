//! Sign-in, sign-out and "who am I".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;

use crate::auth::{Caller, Credential, SESSION_COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::wire::{ErrorBody, LoginIn, LoginOut, MeOut, PersonOut};
use crate::AppState;

/// Who is signing in, for the per-address limit: the socket's peer, or the address the
/// reverse proxy appended last to `X-Forwarded-For` when `trust_forwarded_for` is set.
fn client_address(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> String {
    if state.config.trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| v.parse::<IpAddr>().is_ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    peer.map_or_else(|| "unknown".to_string(), |p| p.ip().to_string())
}

fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Signs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginIn, tag = "auth",
    responses((status = 200, body = LoginOut), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginIn>,
) -> ApiResult<Response> {
    let cfg = &state.limits.config;
    let address = client_address(&state, connect.map(|c| c.0 .0), &headers);
    if let Err(wait) = state.limits.hit_in(
        &format!("login:{address}"),
        cfg.logins_per_minute,
        Duration::from_secs(60),
    ) {
        return Err(ApiError::rate_limited(
            "too many sign-in attempts from this address; wait a minute",
            wait,
        ));
    }
    // Each check holds about 19 MiB for a moment: only so many at once.
    let Some(_permit) = state.limits.login_check() else {
        return Err(ApiError::rate_limited(
            "too many sign-ins at once; try again in a moment",
            Duration::from_secs(1),
        ));
    };
    if body.email.len() > 254 || body.password.len() > 1024 {
        return Err(ApiError::unauthorized("wrong email or password"));
    }
    // Counted before the slow check, in one statement, whether the email has an account or
    // not: concurrent guesses cannot pass the limit, and the answers do not tell who exists.
    let claim = state
        .store
        .claim_login_attempt(
            &body.email,
            cfg.login_failures,
            cfg.lockout.as_millis() as i64,
        )
        .await?;
    if let Err(until) = claim {
        let left = (until - state.store.now()).max(1000) as u64;
        return Err(ApiError::rate_limited(
            "too many failed sign-ins: this email is locked for a while",
            Duration::from_millis(left),
        ));
    }
    let Some(user) = state
        .store
        .verify_password(&body.email, &body.password)
        .await?
    else {
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    state.store.clear_login_failures(&body.email).await?;
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
        Credential::Bearer | Credential::Chat { .. } => None,
    };
    Json(MeOut {
        user: caller.user.into(),
        csrf_token,
    })
}

/// Everyone who can be assigned or added to a project: id and name, with email and role for
/// admins only.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth", responses((status = 200, body = [PersonOut])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PersonOut>>> {
    let full = caller.user.role == apiary_core::Role::Admin;
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| PersonOut::new(u, full))
            .collect(),
    ))
}
