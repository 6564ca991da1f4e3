//! The site preview (issue 19): a repository whose preview is a tiny HTTP server (Python's
//! standard library, with a WebSocket echo), served through Apiary's site origin.

use std::time::{Duration, Instant};

use apiary_testkit::{bare_repo, boxes_dir, BoxReaper, TestApp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    configure, exe, project_with_agent, wait_for, webhook_of, webhook_receiver, write_script,
};

/// The agent writes the site: a page and the server that serves it (and echoes WebSocket
/// messages at `<base>ws`); a review round changes the page.
const SITE_AGENT: &str = r#"#!/bin/sh
set -eu
case "$APIARY_PHASE" in
  spec|revise) mkdir -p .apiary; printf '# Spec\n\nA page.\n' > .apiary/SPEC.md ;;
  implement)
    printf '<h1>version one</h1>\n' > index.html
    cat > serve.py <<'EOF'
import base64, hashlib, os, struct, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BASE = os.environ["APIARY_SITE_BASE"]
class Site(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == BASE + "ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
            self.end_headers()
            self.wfile.flush()
            while True:
                head = self.rfile.read(2)
                if len(head) < 2 or head[0] & 0x0F == 8:
                    return
                n = head[1] & 0x7F
                mask = self.rfile.read(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
                reply = b"echo: " + data
                self.wfile.write(bytes([0x81, len(reply)]) + reply)
                self.wfile.flush()
        if not self.path.startswith(BASE):
            self.send_error(404)
            return
        body = open("index.html", "rb").read()
        body += ("<p>cookie: %s</p>" % self.headers.get("Cookie", "")).encode()
        body += ("<p>authorization: %s</p>" % self.headers.get("Authorization", "")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("served " + self.path, flush=True)
print("site on port " + os.environ["PORT"], flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Site).serve_forever()
EOF
    ;;
  changes) printf '<h1>version two</h1>\n' > index.html ;;
esac
"#;

/// The processes whose command line holds `marker`.
pub(crate) fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            found.push(pid);
        }
    }
    found
}

/// A client that follows no redirect, so each hop can be checked.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The site origin's cookie for the task, the way a browser gets it: the Site link on
/// Apiary's origin (signed in), its ticket, traded on the site origin.
pub(crate) async fn site_cookie(session: &str, site_url: &str) -> (String, String) {
    let http = no_redirects();
    // A click in Apiary's own page.
    let r = http
        .get(site_url)
        .header("cookie", session)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "the Site link sends the viewer to the site origin"
    );
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains("apiary_ticket="), "{to}");
    assert!(
        !to.starts_with(site_url.split("/tasks/").next().unwrap()),
        "another origin than Apiary's: {to}"
    );
    let r = http.get(&to).send().await.unwrap();
    assert_eq!(r.status(), 303, "the ticket is traded for a cookie");
    let clean = r.headers()["location"].to_str().unwrap().to_string();
    assert!(!clean.contains("apiary_ticket"), "{clean}");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/tasks/"),
        "{cookie}"
    );
    let origin = to.split("/tasks/").next().unwrap().to_string();
    (cookie.split(';').next().unwrap().to_string(), origin)
}

/// The page at `url` with `cookie`, once it shows `want` (the preview restarts between rounds).
pub(crate) async fn page_showing(cookie: &str, url: &str, want: &str) -> String {
    let http = no_redirects();
    let start = Instant::now();
    loop {
        let r = http.get(url).header("cookie", cookie).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        if status == 200 && text.contains(want) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the site never showed {want:?}: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The README's static-folder recipe, serving the workspace as the site.
pub(crate) const STATIC_PREVIEW: &str = r#"mkdir -p "$TMPDIR/www${APIARY_SITE_BASE%/*/}" && ln -sfn "$PWD" "$TMPDIR/www${APIARY_SITE_BASE%/}" && exec python3 -m http.server $PORT --bind 127.0.0.1 --directory "$TMPDIR/www""#;

/// The task's site through Apiary, as the admin signed in: `path` (under the site's base)
/// shows `want`.
pub(crate) async fn site_shows(app: &TestApp, tid: &str, path: &str, want: &str) {
    let site_url = app.store.get_task(tid).await.unwrap().site_url.unwrap();
    let admin = app
        .store
        .verify_password(apiary_testkit::ADMIN_EMAIL, apiary_testkit::ADMIN_PASSWORD)
        .await
        .unwrap()
        .unwrap();
    let (session, _) = app
        .store
        .create_session(&admin.id, 3_600_000)
        .await
        .unwrap();
    let (cookie, origin) = site_cookie(&format!("apiary_session={session}"), &site_url).await;
    page_showing(&cookie, &format!("{origin}/tasks/{tid}/site/{path}"), want).await;
}

/// A WebSocket through the site origin, upgraded.
async fn websocket_open(origin: &str, path: &str, cookie: &str) -> tokio::net::TcpStream {
    let addr = origin.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "closed in the head: {head:?}"
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the server's accept key passed: {head}"
    );
    s
}

/// One text message on an open WebSocket, and its answer.
async fn websocket_echo(s: &mut tokio::net::TcpStream, text: &str) -> String {
    // A masked text frame, as a browser sends it.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await.unwrap();
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).await.unwrap();
    let mut body = vec![0u8; (hdr[1] & 0x7F) as usize];
    s.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn the_site_preview_is_served_through_apiary_to_readers_only_and_ends_with_the_box() {
    let (hook_url, hooks) = webhook_receiver().await;

    let (app, dir) = TestApp::spawn_with_boxes(&exe()).await;
    let _reaper = BoxReaper(boxes_dir(dir.path()));
    let admin = app.admin().await;
    let repo = bare_repo(dir.path());
    let command = write_script(dir.path(), "site-agent.sh", SITE_AGENT);
    configure(
        &admin,
        json!({ "webhooks": [{ "url": hook_url, "secret": "s" }] }),
    )
    .await;
    let pid = project_with_agent(&admin, &repo, &command).await;
    let marker = format!(
        "preview-{}",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "preview_command": format!("exec python3 serve.py {marker}"),
                               "preview_ready_path": "/" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["agent"]["preview_command"],
        format!("exec python3 serve.py {marker}")
    );
    // A bad readiness path is refused, naming the field.
    let (status, body) = admin
        .patch(
            &format!("/api/v1/projects/{pid}"),
            json!({ "agent": { "preview_ready_path": "no slash" } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("preview_ready_path"), "{body}");

    let (_, task) = admin
        .post(
            &format!("/api/v1/projects/{pid}/tasks"),
            json!({ "title": "A page" }),
        )
        .await;
    let tid = task["id"].as_str().unwrap().to_string();
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/handoff"), json!({}))
        .await;
    assert_eq!(status, 200);
    wait_for(&admin, &tid, "spec_ready", Duration::from_secs(60)).await;
    admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/approve-spec"),
            json!({}),
        )
        .await;
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    let site_url = t["agent"]["site_url"].as_str().unwrap().to_string();
    assert_eq!(site_url, format!("{}/tasks/{tid}/site/", app.base));

    // The page through Apiary: Apiary's cookies and the viewer's token never reach it.
    let admin_user = app
        .store
        .verify_password(apiary_testkit::ADMIN_EMAIL, apiary_testkit::ADMIN_PASSWORD)
        .await
        .unwrap()
        .unwrap();
    let (admin_session, _) = app
        .store
        .create_session(&admin_user.id, 3_600_000)
        .await
        .unwrap();
    let session = format!("apiary_session={admin_session}");
    let (cookie, origin) = site_cookie(&session, &site_url).await;
    let page_url = format!("{origin}/tasks/{tid}/site/");
    let both = format!("{session}; {cookie}; theme=dark");
    let page = page_showing(&both, &page_url, "version one").await;
    assert!(
        page.contains("cookie: theme=dark</p>"),
        "only the site's own cookie: {page}"
    );
    assert!(page.contains("authorization: </p>"), "no token: {page}");
    // The app's own Authorization (its pages' API calls) reaches it, past the control token.
    let r = no_redirects()
        .get(&page_url)
        .header("cookie", &cookie)
        .header("authorization", "Bearer the-apps-own")
        .send()
        .await
        .unwrap();
    let own = r.text().await.unwrap();
    assert!(
        own.contains("authorization: Bearer the-apps-own</p>"),
        "{own}"
    );
    // The panel's word on it, from the box.
    let (status, preview) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/preview"))
        .await;
    assert_eq!(
        (status, preview["state"].as_str()),
        (200, Some("ready")),
        "{preview}"
    );
    // A browser without the site's cookie is sent through the Site link for one.
    let r = no_redirects().get(&page_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], site_url.as_str());
    // Another task's path does not take this task's cookie.
    let r = no_redirects()
        .get(format!("{origin}/tasks/{tid}x/site/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Another site (a preview on the site origin, say) cannot make the viewer's browser fetch
    // a ticket: it gets a page to click through, which no page may frame — nor Apiary's own.
    let r = no_redirects()
        .get(&site_url)
        .header("cookie", &session)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.text().await.unwrap().contains("Open it"));
    // So does a browser that does not say where the request came from (plain http off
    // localhost); the page's link carries a proof only the viewer's own page holds.
    let r = no_redirects()
        .get(&site_url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let through = r.text().await.unwrap();
    let link = through
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to click")
        .replace("&amp;", "&");
    assert!(link.contains("apiary_go="), "{link}");
    let r = no_redirects()
        .get(format!("{}{link}", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the click goes on to the site origin");
    let to = r.headers()["location"].to_str().unwrap();
    assert!(
        to.contains("apiary_ticket=") && !to.contains("apiary_go"),
        "{to}"
    );
    // The proof is the viewer's own: another session does not take it.
    let (other, _) = app
        .store
        .create_session(&admin_user.id, 3_600_000)
        .await
        .unwrap();
    let r = no_redirects()
        .get(format!("{}{link}", app.base))
        .header("cookie", format!("apiary_session={other}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a click-through page again");
    let r = no_redirects()
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    // A ticket planted in the link never rides along: the viewer gets their own.
    let r = no_redirects()
        .get(format!("{site_url}?apiary_ticket=planted&x=1"))
        .header("cookie", &session)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.contains("?x=1&apiary_ticket=") && !to.contains("planted"),
        "{to}"
    );

    // Signing out ends the site's cookie too: it was handed out on that session's strength.
    let (short, _) = app
        .store
        .create_session(&admin_user.id, 3_600_000)
        .await
        .unwrap();
    let (short_cookie, _) = site_cookie(&format!("apiary_session={short}"), &site_url).await;
    page_showing(&short_cookie, &page_url, "version one").await;
    app.store.delete_session(&short).await.unwrap();
    let r = no_redirects()
        .get(&page_url)
        .header("cookie", &short_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "back through the Site link for a new one");

    // The WebSocket of a dev server's hot reload passes both hops...
    let (ws_session, _) = app
        .store
        .create_session(&admin_user.id, 3_600_000)
        .await
        .unwrap();
    let (ws_cookie, _) = site_cookie(&format!("apiary_session={ws_session}"), &site_url).await;
    let ws_path = format!("/tasks/{tid}/site/ws");
    let mut ws = websocket_open(&origin, &ws_path, &ws_cookie).await;
    assert_eq!(websocket_echo(&mut ws, "ping").await, "echo: ping");
    assert_eq!(websocket_echo(&mut ws, "again").await, "echo: again");
    // ... and is cut once its viewer signs out.
    app.store.delete_session(&ws_session).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), ws.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "the WebSocket outlived the viewer's session"
    );

    // A member without read access: 403 on the link, and on the site origin with a token.
    let (_, outsider) = app.member("outsider@example.test").await;
    let (outsider_session, _) = app
        .store
        .create_session(&outsider.id, 3_600_000)
        .await
        .unwrap();
    let r = no_redirects()
        .get(&site_url)
        .header("cookie", format!("apiary_session={outsider_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, token) = app
        .store
        .create_api_token(&outsider.id, "site")
        .await
        .unwrap();
    let r = no_redirects()
        .get(&page_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // ... nor does the admin's cookie for this task serve as the outsider's.
    let r = no_redirects().get(&site_url).send().await.unwrap();
    assert_eq!(r.status(), 401, "no one signed in: no ticket");

    // The PR_READY notification carries the Site link beside the Code link.
    let pr_ready = webhook_of(&hooks, "PR_READY").await;
    assert_eq!(pr_ready["links"]["site"], site_url.as_str(), "{pr_ready}");
    assert!(pr_ready["links"]["code"].is_string(), "{pr_ready}");

    // A review round: the preview restarts on the new content.
    let (status, _) = admin
        .post(
            &format!("/api/v1/tasks/{tid}/agent/request-changes"),
            json!({ "comments": [{ "body": "make it version two" }] }),
        )
        .await;
    assert_eq!(status, 200);
    let t = wait_for(&admin, &tid, "pr_ready", Duration::from_secs(60)).await;
    assert_eq!(t["agent"]["round"], 2);
    page_showing(&cookie, &page_url, "version two").await;
    let (_, logs) = admin
        .get(&format!("/api/v1/tasks/{tid}/agent/logs?limit=500"))
        .await;
    let logs = logs.to_string();
    assert!(
        logs.contains("[preview] site on port"),
        "its output, prefixed: {logs}"
    );
    assert!(
        logs.contains("[preview] stopped"),
        "stopped for the round: {logs}"
    );

    // Teardown ends the preview: no process of it is left.
    assert!(!processes_with(&marker).is_empty(), "the preview runs");
    let (status, _) = admin
        .post(&format!("/api/v1/tasks/{tid}/agent/mark-merged"), json!({}))
        .await;
    assert_eq!(status, 200);
    let start = Instant::now();
    while !processes_with(&marker).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the preview outlived its box: {:?}",
            processes_with(&marker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    loop {
        let r = no_redirects()
            .get(&page_url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        if r.status() == 409 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
