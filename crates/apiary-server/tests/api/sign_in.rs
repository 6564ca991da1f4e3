//! Sign-in against a guessing attacker: attempts are counted before the slow check, password
//! checks are bounded, each address is rate limited, and the answers never tell which emails
//! have accounts. The host can always let a locked-out admin back in.

use std::sync::Arc;

use apiary_orchestrator::{Metrics, Orchestrator};
use apiary_server::limits::{LimitConfig, Limits};
use apiary_server::{AppState, HttpServer, ServerConfig};
use apiary_testkit::{test_store, TestApp, TestStore, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

/// A server with these limits and this config; the limits stay reachable from the test.
pub async fn spawn(limits: Arc<Limits>, config: ServerConfig) -> (String, TestStore) {
    let db = test_store().await;
    db.store
        .bootstrap(Some(ADMIN_EMAIL.into()), Some(ADMIN_PASSWORD.into()))
        .await
        .unwrap();
    let orch = Orchestrator::new(db.store.clone(), Arc::new(Metrics::default()));
    let state = AppState {
        store: db.store.clone(),
        hub: apiary_server::fanout::Hub::start(&orch.bus, db.store.clone()),
        orch,
        config: Arc::new(config),
        limits,
    };
    let server = HttpServer::bind("127.0.0.1:0".parse().unwrap(), state)
        .await
        .unwrap();
    let base = format!("http://{}", server.addr());
    tokio::spawn(server.serve(std::future::pending()));
    (base, db)
}

async fn login(base: &str, email: &str, password: &str, forwarded: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_password_checks_than_the_lockout_allows() {
    let app = TestApp::spawn().await;
    let guesses = (0..24).map(|i| {
        let base = app.base.clone();
        tokio::spawn(async move { login(&base, ADMIN_EMAIL, &format!("guess {i}"), None).await })
    });
    let mut checked = 0;
    for g in guesses {
        let (status, body) = g.await.unwrap();
        match status {
            // Only a checked password answers 401.
            401 => checked += 1,
            429 => assert_eq!(body["error"]["code"], "rate_limited"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} passwords checked past a limit of 5"
    );
    assert_eq!(
        login(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD, None).await.0,
        429
    );
}

#[tokio::test]
async fn unknown_and_known_emails_get_the_same_answers_locked_or_not() {
    let app = TestApp::spawn().await;
    for _ in 0..6 {
        let known = login(&app.base, ADMIN_EMAIL, "wrong", None).await;
        let unknown = login(&app.base, "nobody@example.test", "wrong", None).await;
        assert_eq!(known, unknown);
    }
    let known = login(&app.base, ADMIN_EMAIL, "wrong", None).await;
    assert_eq!(known.0, 429, "{known:?}");
    assert!(known.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("locked"));
    assert_eq!(
        known,
        login(&app.base, "nobody@example.test", "wrong", None).await
    );
}

#[tokio::test]
async fn past_the_password_check_limit_sign_in_answers_429() {
    let limits = Arc::new(Limits::new(LimitConfig {
        login_concurrency: 2,
        ..LimitConfig::default()
    }));
    let (base, _db) = spawn(limits.clone(), ServerConfig::default()).await;
    let held = (limits.login_check().unwrap(), limits.login_check().unwrap());
    let (status, body) = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD, None).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at once"));
    drop(held);
    assert_eq!(login(&base, ADMIN_EMAIL, ADMIN_PASSWORD, None).await.0, 200);
}

#[tokio::test]
async fn each_address_is_rate_limited_and_forwarded_for_counts_only_when_trusted() {
    let config = || LimitConfig {
        logins_per_minute: 3,
        ..LimitConfig::default()
    };
    let (base, _db) = spawn(Arc::new(Limits::new(config())), ServerConfig::default()).await;
    for i in 0..3 {
        let forwarded = format!("10.0.0.{i}");
        assert_eq!(
            login(&base, "a@example.test", "x", Some(&forwarded))
                .await
                .0,
            401
        );
    }
    let (status, body) = login(&base, ADMIN_EMAIL, ADMIN_PASSWORD, Some("10.9.9.9")).await;
    assert_eq!(
        status, 429,
        "a made-up X-Forwarded-For does not escape the limit: {body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("address"));

    let trusted = ServerConfig {
        trust_forwarded_for: true,
        ..ServerConfig::default()
    };
    let (base, _db) = spawn(Arc::new(Limits::new(config())), trusted).await;
    for _ in 0..3 {
        assert_eq!(
            login(&base, "a@example.test", "x", Some("10.0.0.1"))
                .await
                .0,
            401
        );
    }
    assert_eq!(
        login(&base, "a@example.test", "x", Some("10.0.0.1"))
            .await
            .0,
        429
    );
    // The proxy appends the real client last; what the client sent before it is ignored.
    assert_eq!(
        login(
            &base,
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
            Some("10.0.0.1, 10.0.0.2")
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn a_password_reset_on_the_host_lets_a_locked_out_admin_back_in() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for _ in 0..6 {
        login(&app.base, ADMIN_EMAIL, "wrong", None).await;
    }
    assert_eq!(
        login(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD, None).await.0,
        429
    );
    // What `apiary user reset-password` calls.
    let user = app
        .store
        .reset_password(ADMIN_EMAIL, "a new long password")
        .await
        .unwrap();
    assert_eq!(user.email, ADMIN_EMAIL);
    assert_eq!(admin.get("/api/v1/me").await.0, 401, "old sessions end");
    assert_eq!(
        login(&app.base, ADMIN_EMAIL, ADMIN_PASSWORD, None).await.0,
        401
    );
    assert_eq!(
        login(&app.base, ADMIN_EMAIL, "a new long password", None)
            .await
            .0,
        200
    );
    let e = app
        .store
        .reset_password("nobody@example.test", "a new long password")
        .await;
    assert!(e.is_err());
    let e = app.store.reset_password(ADMIN_EMAIL, "short").await;
    assert!(e.is_err());
}
