//! Live events reach streams in id order, and `Last-Event-ID` resumes exactly: a transaction
//! held open while a later one wants to commit, and commits published in the wrong order.

use std::time::Duration;

use apiary_core::AgentStatus;
use apiary_store::{Actor, TransitionRequest};
use apiary_testkit::{Client, TestApp};
use serde_json::json;

/// One open event stream, read frame by frame.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(c: &Client, after: i64) -> Stream {
        let resp = c
            .http
            .get(format!("{}/api/v1/events", c.base))
            .header("last-event-id", after.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Stream {
            resp,
            buf: String::new(),
        }
    }

    /// The ids of the events that arrive within `wait`.
    async fn ids_within(&mut self, wait: Duration) -> Vec<i64> {
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id: ")) {
                    ids.push(id.parse().unwrap());
                }
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                _ => return ids,
            }
        }
    }
}

/// The signed-in admin, its user id, and two tasks of a fresh project.
async fn two_tasks(app: &TestApp) -> (Client, String, String, String) {
    let admin = app.admin().await;
    let (_, me) = admin.get("/api/v1/me").await;
    let me = me["user"]["id"].as_str().expect("signed in").to_string();
    let (_, p) = admin.post("/api/v1/projects", json!({ "name": "P" })).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for title in ["first", "second"] {
        let (_, t) = admin
            .post(
                &format!("/api/v1/projects/{pid}/tasks"),
                json!({ "title": title }),
            )
            .await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    (admin, me, ids.remove(0), ids.remove(0))
}

fn queued(task: &str, admin: &str) -> TransitionRequest {
    TransitionRequest::new(task, AgentStatus::Queued, Actor::Human(admin.to_string()))
}

#[tokio::test]
async fn a_stream_reconnecting_while_a_transaction_is_held_open_misses_nothing() {
    let app = TestApp::spawn().await;
    let (admin, me, a, b) = two_tasks(&app).await;
    let start = app.store.latest_event_id().await.unwrap();
    let mut stream = Stream::open(&admin, start).await;

    // A takes its event id and stays open; B wants to commit after it.
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let store = app.store.clone();
    let orch = app.orch.clone();
    let earlier = queued(&a, &me);
    let first = tokio::spawn(async move {
        let out = store
            .transition_held(earlier, async {
                let _ = held.await;
            })
            .await
            .unwrap();
        orch.publish(&out);
        out
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let orch = app.orch.clone();
    let later = queued(&b, &me);
    let second = tokio::spawn(async move { orch.transition(later).await.unwrap() });
    // Whatever reaches the client now is all it has when it reconnects.
    let seen = stream.ids_within(Duration::from_millis(400)).await;
    drop(stream);
    let resume = seen.last().copied().unwrap_or(start);
    let mut stream = Stream::open(&admin, resume).await;
    release.send(()).unwrap();
    let a_id = first.await.unwrap().event_id.unwrap();
    let b_id = second.await.unwrap().event_id.unwrap();
    let mut got = seen.clone();
    got.extend(stream.ids_within(Duration::from_millis(600)).await);
    got.retain(|id| *id == a_id || *id == b_id);
    assert_eq!(
        got,
        vec![a_id, b_id],
        "both events, in order, once each (seen before reconnect: {seen:?})"
    );
}

#[tokio::test]
async fn commits_published_out_of_order_reach_the_stream_in_order_once_each() {
    let app = TestApp::spawn().await;
    let (admin, me, a, b) = two_tasks(&app).await;
    let start = app.store.latest_event_id().await.unwrap();
    let mut stream = Stream::open(&admin, start).await;
    // Both commit; only the later one is published (the earlier publisher is slow).
    let first = app.store.transition(queued(&a, &me)).await.unwrap();
    let second = app.store.transition(queued(&b, &me)).await.unwrap();
    let (a_id, b_id) = (first.event_id.unwrap(), second.event_id.unwrap());
    assert!(a_id < b_id);
    app.orch.publish(&second);
    let got = stream.ids_within(Duration::from_millis(500)).await;
    assert_eq!(
        got,
        vec![a_id, b_id],
        "the earlier event first, read from the audit trail"
    );
    // Its late publish is not sent again; a reconnect after the last id replays nothing.
    app.orch.publish(&first);
    assert!(stream
        .ids_within(Duration::from_millis(300))
        .await
        .is_empty());
    let mut again = Stream::open(&admin, b_id).await;
    assert!(again
        .ids_within(Duration::from_millis(300))
        .await
        .is_empty());
}
