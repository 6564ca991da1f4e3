//! Who is calling: a session cookie (with CSRF on writes) or a personal bearer token.
//! Every handler that needs a user takes [`Caller`]; there is no other way in.

use apiary_core::{ProjectAccess, Role};
use apiary_store::{Project, User};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "apiary_session";

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session cookie; the CSRF token is what writes must echo.
    Session { token: String, csrf_token: String },
    /// A personal API token (no CSRF: browsers never attach it on their own).
    Bearer,
    /// A linked chat account pressing a button or replying (the chat service's request was
    /// verified instead: a secret token or a signature), with the audit event the button was
    /// made for: the action applies only while the task has not moved on since.
    Chat {
        via: apiary_core::chat::Via,
        event: Option<i64>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
}

/// The value of a cookie in the request, if present.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            let user = state
                .store
                .api_token_user(token)
                .await?
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
            return Ok(Caller {
                user,
                credential: Credential::Bearer,
            });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or_else(|| ApiError::unauthorized("sign in or send a bearer token"))?;
        let session = state
            .store
            .session(&token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("session expired; sign in again"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
                return Err(ApiError::forbidden(
                    "missing or wrong X-CSRF-Token for a cookie-authenticated write",
                ));
            }
        }
        Ok(Caller {
            user: session.user,
            credential: Credential::Session {
                token,
                csrf_token: session.csrf_token,
            },
        })
    }
}

impl Caller {
    /// A linked chat user acting as `user` from a button made for audit event `event`.
    pub fn from_chat(user: User, via: apiary_core::chat::Via, event: Option<i64>) -> Caller {
        Caller {
            user,
            credential: Credential::Chat { via, event },
        }
    }

    /// The chat the caller acts from, for the audit trail.
    pub fn via(&self) -> Option<apiary_core::chat::Via> {
        match self.credential {
            Credential::Chat { via, .. } => Some(via),
            _ => None,
        }
    }

    /// The audit event a chat button was made for.
    pub fn chat_event(&self) -> Option<i64> {
        match self.credential {
            Credential::Chat { event, .. } => event,
            _ => None,
        }
    }

    /// The project, if the caller may see it (404 otherwise, so its existence does not leak).
    pub async fn readable_project(
        &self,
        state: &AppState,
        id: &str,
    ) -> ApiResult<(Project, ProjectAccess)> {
        let project = state.store.get_project(id).await?;
        match state.store.project_access(id, &self.user).await? {
            Some(access) => Ok((project, access)),
            None => Err(ApiError::not_found("project")),
        }
    }

    /// The project, if the caller may change it: 404 when invisible, 403 when read-only.
    pub async fn writable_project(&self, state: &AppState, id: &str) -> ApiResult<Project> {
        let (project, access) = self.readable_project(state, id).await?;
        if access != ProjectAccess::Write {
            return Err(ApiError::forbidden(
                "you have read-only access to this project",
            ));
        }
        Ok(project)
    }

    /// Refuses anyone but an admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.user.role != Role::Admin {
            return Err(ApiError::forbidden("admins only"));
        }
        Ok(())
    }
}
