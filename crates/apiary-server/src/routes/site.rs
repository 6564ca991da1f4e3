//! The site preview through Apiary (issue 19): `/tasks/{id}/site/…` forwards a viewer to the
//! preview server in the task's box, WebSockets included.
//!
//! The preview is code the agent wrote: it must never run with Apiary's origin, or its scripts
//! could call Apiary's API as the viewer. So it is served from an origin of its own (the
//! *site origin*: another port or host name, `--site-bind` / `--site-url`). The Site link on
//! Apiary's origin checks the viewer (403 without read access to the project) and sends them
//! to the site origin with a ticket (signed, bound to the task and the viewer, valid 60 s);
//! the site origin trades it for a cookie scoped to that task's path (12 h) and checks the
//! viewer's access again on every request. API clients may send their bearer token to the site
//! origin instead. Apiary's own cookies and the viewer's token are stripped before the request
//! goes on; the box's control token is added for the hop to the box.

use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{cookie, Caller, Credential, SESSION_COOKIE};
use crate::AppState;
use apiary_store::hash_token;

/// Carries the app's own `Authorization` across the hop to the box, whose control plane takes
/// the control token in `Authorization`; the box agent hands it to the preview as sent.
pub const APP_AUTHORIZATION: &str = "x-apiary-site-authorization";
/// The site origin's cookie: who the viewer is, for one task's site.
pub const SITE_COOKIE: &str = "apiary_site";
/// The query parameter that carries a ticket from Apiary's origin to the site origin.
const TICKET_PARAM: &str = "apiary_ticket";
/// The query parameter that proves a click on the Site link's click-through page.
const GO_PARAM: &str = "apiary_go";
const GO_TTL_MS: i64 = 5 * 60_000;
const TICKET_TTL_MS: i64 = 60_000;
const COOKIE_TTL_MS: i64 = 12 * 3600 * 1000;
/// Largest request body forwarded to a preview (a form's upload, say).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// How long the box's preview has to answer a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(150);

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Signs `<kind>.<task>.<grant>.<expires>`: a ticket or a cookie, only for that task, on the
/// strength of the viewer's credential (`grant`: its hash, see
/// [`apiary_store::Store::credential_user`]), so signing out or revoking the token ends it.
fn sign(state: &AppState, kind: &str, task: &str, grant: &str, ttl_ms: i64) -> String {
    let body = format!("{kind}.{task}.{grant}.{}", now_ms() + ttl_ms);
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.store.derived_key("site-preview"))
        .expect("any key length");
    mac.update(body.as_bytes());
    format!("{body}.{}", hex::encode(mac.finalize().into_bytes()))
}

/// The grant a ticket or cookie of `kind` carries, if it is genuine, for `task`, and unexpired.
fn verify(state: &AppState, kind: &str, task: &str, token: &str) -> Option<String> {
    let (body, sig) = token.rsplit_once('.')?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.store.derived_key("site-preview"))
        .expect("any key length");
    mac.update(body.as_bytes());
    mac.verify_slice(&hex::decode(sig).ok()?).ok()?;
    let mut parts = body.split('.');
    let (k, t, grant, expires) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let fresh = expires.parse::<i64>().ok()? > now_ms();
    (parts.next().is_none() && k == kind && t == task && fresh).then(|| grant.to_string())
}

/// The site origin of `task`, without a trailing slash: `{task}` in the configured one (a
/// host name per task, `https://{task}.preview.example.com`) gives each task's preview an
/// origin of its own, so no preview's scripts can read another's.
fn site_origin(state: &AppState, task: &str) -> Option<String> {
    state.config.site_origin.get().map(|o| origin_for(o, task))
}

fn origin_for(configured: &str, task: &str) -> String {
    configured.trim_end_matches('/').replace("{task}", task)
}

/// The Site link on Apiary's own origin: checks the viewer and sends them, with a ticket, to
/// the same path on the site origin.
pub async fn enter(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<Vec<(String, String)>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(id) = params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone())
    else {
        return page(StatusCode::NOT_FOUND, "no such task");
    };
    let Ok(task) = state.store.get_task(&id).await else {
        return page(StatusCode::NOT_FOUND, "no such task");
    };
    if caller
        .readable_project(&state, &task.project_id)
        .await
        .is_err()
    {
        return page(
            StatusCode::FORBIDDEN,
            "you have no read access to this task's project",
        );
    }
    let Some(origin) = site_origin(&state, &task.id) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "site previews are off: Apiary serves them only from an origin of their own (--site-bind)",
        );
    };
    let grant = match &caller.credential {
        Credential::Session { token, .. } => format!("s{}", hash_token(token)),
        _ => match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            Some(token) => format!("t{}", hash_token(token.trim())),
            None => return page(StatusCode::UNAUTHORIZED, "sign in to Apiary first"),
        },
    };
    // A page elsewhere (another task's preview, say) must not open this site as the viewer
    // and read it. A request from Apiary's own pages (or typed, bookmarked) goes on; one from
    // another site, or from a browser that does not say (`Sec-Fetch-Site` is sent only to
    // https and localhost), gets a page to click through, whose link carries a proof (signed
    // for this viewer and task, 5 min) that no other site can read.
    let query = uri.query().map(without_ours).unwrap_or_default();
    let fetched_from = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let proven = uri
        .query()
        .and_then(|q| param(q, GO_PARAM))
        .and_then(|p| verify(&state, "go", &task.id, p))
        .is_some_and(|g| g == grant);
    if !matches!(fetched_from, Some("same-origin" | "none")) && !proven {
        let proof = sign(&state, "go", &task.id, &grant, GO_TTL_MS);
        let here = if query.is_empty() {
            format!("{}?{GO_PARAM}={proof}", uri.path())
        } else {
            format!("{}?{query}&{GO_PARAM}={proof}", uri.path())
        };
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            format!(
                "<!doctype html><html lang=en><title>Open the site preview</title>\
                 <p>Open the site preview of task {}?</p>\
                 <p><a href=\"{}\">Open it</a></p>",
                html_escape(&task.title),
                html_escape(&here)
            ),
        )
            .into_response();
    }
    let ticket = sign(&state, "ticket", &task.id, &grant, TICKET_TTL_MS);
    // A ticket planted in the link by someone else never rides along.
    let query = if query.is_empty() {
        format!("?{TICKET_PARAM}={ticket}")
    } else {
        format!("?{query}&{TICKET_PARAM}={ticket}")
    };
    let to = format!("{origin}{}{query}", uri.path());
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, to),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The query without Apiary's own parameters (the ticket, the click-through's proof).
fn without_ours(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| {
            !kv.is_empty()
                && !kv.starts_with(&format!("{TICKET_PARAM}="))
                && !kv.starts_with(&format!("{GO_PARAM}="))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `name` in `query`, if there.
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The Cookie header without Apiary's own cookies (the site's own pass).
fn foreign_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            !kv.is_empty() && name != SESSION_COOKIE && name != SITE_COOKIE
        })
        .collect();
    (!kept.is_empty())
        .then(|| HeaderValue::from_str(&kept.join("; ")).ok())
        .flatten()
}

/// Whether the request came over https (directly or through a proxy that says so).
fn https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Every request on the site origin: the viewer checked, the request forwarded to the box.
pub async fn serve(State(state): State<AppState>, mut req: Request) -> Response {
    // `/tasks/{id}/site[/rest]`: the router only sends such paths here.
    let path = req.uri().path().to_string();
    let Some((id, rest)) = path
        .strip_prefix("/tasks/")
        .and_then(|p| p.split_once("/site"))
        .map(|(id, rest)| (id.to_string(), rest.to_string()))
    else {
        return page(StatusCode::NOT_FOUND, "not found");
    };
    if !rest.is_empty() && !rest.starts_with('/') {
        return page(StatusCode::NOT_FOUND, "not found");
    }
    let Ok(task) = state.store.get_task(&id).await else {
        return page(StatusCode::NOT_FOUND, "no such task");
    };
    // Without the trailing slash, so the bare `/tasks/{id}/site` gets it too.
    let cookie_path = format!("/tasks/{id}/site");
    let query = req.uri().query().unwrap_or("").to_string();
    // A ticket from Apiary's origin: traded for this task's cookie, then the clean URL.
    if let Some(ticket) = param(&query, TICKET_PARAM) {
        let Some(grant) = verify(&state, "ticket", &id, ticket) else {
            return page(
                StatusCode::FORBIDDEN,
                "this link has expired: open the task's Site link in Apiary again",
            );
        };
        let value = sign(&state, "cookie", &id, &grant, COOKIE_TTL_MS);
        // Secure when the site origin is https: a Secure cookie on http would be dropped.
        let secure = if site_origin(&state, &id).is_some_and(|o| o.starts_with("https://")) {
            "; Secure"
        } else {
            ""
        };
        let set = format!(
            "{SITE_COOKIE}={value}; Path={cookie_path}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            COOKIE_TTL_MS / 1000
        );
        let rest_q = without_ours(&query);
        let to = if rest_q.is_empty() {
            path.clone()
        } else {
            format!("{path}?{rest_q}")
        };
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, set),
                (header::LOCATION, to),
                (header::REFERRER_POLICY, "no-referrer".to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response();
    }
    // Who: this task's cookie, or a personal token.
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    // The site's cookie first: then an `Authorization` header is the app's own, and goes on
    // to it. Either way, the credential by its hash: it is checked again while a WebSocket
    // stays open.
    let by_cookie =
        cookie(req.headers(), SITE_COOKIE).and_then(|c| verify(&state, "cookie", &id, &c));
    let (grant, app_authorization) = match (by_cookie, bearer) {
        (Some(g), _) => (Some(g), req.headers().get(header::AUTHORIZATION).cloned()),
        (None, Some(token)) => (Some(format!("t{}", hash_token(&token))), None),
        (None, None) => (None, None),
    };
    let user = match &grant {
        Some(g) => state.store.credential_user(g).await.ok().flatten(),
        None => None,
    };
    let Some(user) = user else {
        // A browser without this task's cookie goes through the Site link to get one.
        if req.method() == Method::GET {
            if let Ok(base) = state.orch.public_url().await {
                let q = if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                };
                return (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("{base}{path}{q}"))],
                )
                    .into_response();
            }
        }
        return page(
            StatusCode::UNAUTHORIZED,
            "sign in to Apiary and open the task's Site link",
        );
    };
    match state.store.project_access(&task.project_id, &user).await {
        Ok(Some(_)) => {}
        _ => {
            return page(
                StatusCode::FORBIDDEN,
                "you have no read access to this task's project",
            )
        }
    }
    if task.parked {
        return page(
            StatusCode::CONFLICT,
            "the box is parked — it resumes on your next action",
        );
    }
    let (Some(control), false) = (&task.control_url, task.box_torn_down) else {
        return page(
            StatusCode::CONFLICT,
            "the task has no box now (not started yet, or torn down)",
        );
    };
    let Ok(Some(token)) = state.store.control_token(&task.id).await else {
        return page(StatusCode::CONFLICT, "the task has no box now");
    };
    let Some(addr) = control
        .parse::<Uri>()
        .ok()
        .filter(|u| u.scheme_str() == Some("http"))
        .and_then(|u| Some(format!("{}:{}", u.host()?, u.port_u16().unwrap_or(80))))
    else {
        return page(
            StatusCode::BAD_GATEWAY,
            "the box's control plane is not plain http: the preview cannot be reached",
        );
    };
    // The request as the box takes it.
    let host = req.headers().get(header::HOST).cloned();
    let forwarded_proto = if https(&state, req.headers()) {
        "https"
    } else {
        "http"
    };
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let Ok(uri) = format!("/site{rest}{q}").parse::<Uri>() else {
        return page(StatusCode::BAD_REQUEST, "the path is not a valid URI");
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    let cookies = foreign_cookies(headers);
    headers.remove(header::COOKIE);
    if let Some(c) = cookies {
        headers.insert(header::COOKIE, c);
    }
    for name in [
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-prefix",
        "x-csrf-token",
    ] {
        headers.remove(name);
    }
    if let Some(host) = host {
        headers.insert("x-forwarded-host", host);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(forwarded_proto),
    );
    if let Ok(prefix) = HeaderValue::from_str(&cookie_path) {
        headers.insert("x-forwarded-prefix", prefix);
    }
    match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(v) => headers.insert(header::AUTHORIZATION, v),
        Err(_) => return page(StatusCode::BAD_GATEWAY, "the box's token is unusable"),
    };
    // The app's own `Authorization` rides past the control token in a header of its own.
    headers.remove(APP_AUTHORIZATION);
    if let Some(v) = app_authorization {
        headers.insert(APP_AUTHORIZATION, v);
    }
    if let Ok(h) = HeaderValue::from_str(&addr) {
        headers.insert(header::HOST, h);
    }
    let io = match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(io)) => io,
        _ => {
            return page(
                StatusCode::BAD_GATEWAY,
                "the box does not answer (it may be restarting)",
            )
        }
    };
    // An open WebSocket lasts while its viewer may still read the project.
    let cut = {
        let (state, project, grant) = (
            state.clone(),
            task.project_id.clone(),
            grant.unwrap_or_default(),
        );
        async move {
            loop {
                tokio::time::sleep(state.config.site_recheck).await;
                // A failing database cuts nothing: only an answer that access is gone does.
                let allowed = match state.store.credential_user(&grant).await {
                    Ok(Some(u)) => {
                        !matches!(state.store.project_access(&project, &u).await, Ok(None))
                    }
                    Ok(None) => false,
                    Err(_) => true,
                };
                if !allowed {
                    return;
                }
            }
        }
    };
    let mut resp = match apiary_proxy::forward(req, io, HEAD_TIMEOUT, cut).await {
        Ok(resp) => resp,
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!("the box did not answer: {e}"),
            )
        }
    };
    // The site may set its own cookies, never Apiary's.
    let kept: Vec<HeaderValue> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let name = v
                .to_str()
                .unwrap_or("")
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            name != SESSION_COOKIE && name != SITE_COOKIE
        })
        .cloned()
        .collect();
    resp.headers_mut().remove(header::SET_COOKIE);
    for v in kept {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apiarys_cookies_never_pass_and_the_sites_own_do() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "apiary_session=s1; theme=dark; apiary_site=x.y; csrftoken=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(foreign_cookies(&h).unwrap(), "theme=dark; csrftoken=abc");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, "apiary_session=s1".parse().unwrap());
        assert!(foreign_cookies(&only).is_none());
    }

    #[test]
    fn a_task_placeholder_gives_each_task_a_host_of_its_own() {
        assert_eq!(
            origin_for("https://{task}.preview.example.com/", "0193ab"),
            "https://0193ab.preview.example.com"
        );
        assert_eq!(
            origin_for("http://127.0.0.1:7881", "0193ab"),
            "http://127.0.0.1:7881"
        );
    }

    #[test]
    fn the_ticket_leaves_the_query_and_the_rest_stays() {
        assert_eq!(
            without_ours("a=1&apiary_ticket=t.x&b=2&apiary_go=g"),
            "a=1&b=2"
        );
        assert_eq!(param("a=1&apiary_go=p.q", GO_PARAM), Some("p.q"));
        assert_eq!(param("apiary_gox=1", GO_PARAM), None);
        assert_eq!(without_ours("apiary_ticket=t"), "");
    }
}
