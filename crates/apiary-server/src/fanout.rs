//! The fan-out of live events to SSE streams. One task reads the event bus, gathers what
//! arrived in a short window, folds the `agent_log` events of one task into the newest (each
//! only says "the log now ends at seq N"), and puts every event on the wire once. Streams get
//! the whole flush as shared bytes and write it in one go, so a thousand listeners cost a
//! thousand writes per flush, not a thousand serialisations and writes per event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apiary_orchestrator::{EventBus, LiveEvent, LiveEventKind};
use axum::body::Bytes;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;

/// Flushes are at least this far apart; a lone event after a quiet spell goes out at once.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// One event as it goes on the wire, with what streams filter on.
#[derive(Debug)]
pub struct Framed {
    pub id: i64,
    pub task_id: String,
    pub project_id: String,
    /// `id: …\nevent: …\ndata: …\n\n`.
    pub bytes: Bytes,
}

/// What streams receive from the hub.
#[derive(Debug, Clone)]
pub enum Flush {
    /// The events of one flush, in id order, and all of them as one buffer.
    Events(Arc<(Vec<Framed>, Bytes)>),
    /// The hub fell behind the bus and missed events: streams reload from the audit trail.
    Gap,
}

/// The handle streams subscribe to. Cheap to clone.
#[derive(Clone)]
pub struct Hub(broadcast::Sender<Flush>);

impl Hub {
    /// Starts the fan-out task on the current runtime; it ends when the bus closes.
    pub fn start(bus: &EventBus) -> Hub {
        let (tx, _) = broadcast::channel(256);
        let rx = bus.subscribe();
        tokio::spawn(run(rx, tx.clone()));
        Hub(tx)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Flush> {
        self.0.subscribe()
    }
}

/// The wire form of one event (also used for events replayed from the database).
pub fn frame(id: i64, name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
}

fn frame_live(e: &LiveEvent) -> Framed {
    let bytes = match e.kind {
        LiveEventKind::AgentUpdate => frame(
            e.id,
            "agent_update",
            &json!({ "task": e.task_id, "project": e.project_id, "agent_status": e.agent_status }),
        ),
        LiveEventKind::AgentLog => frame(
            e.id,
            "agent_log",
            &json!({ "task": e.task_id, "project": e.project_id, "seq": e.seq }),
        ),
    };
    Framed {
        id: e.id,
        task_id: e.task_id.clone(),
        project_id: e.project_id.clone(),
        bytes,
    }
}

/// Keeps every `agent_update` and, per task, only the newest `agent_log`; sorts by id.
pub fn fold(mut events: Vec<LiveEvent>) -> Vec<LiveEvent> {
    let mut newest_log: HashMap<&str, i64> = HashMap::new();
    for e in &events {
        if e.kind == LiveEventKind::AgentLog {
            let id = newest_log.entry(e.task_id.as_str()).or_insert(e.id);
            *id = (*id).max(e.id);
        }
    }
    let keep: Vec<bool> = events
        .iter()
        .map(|e| e.kind != LiveEventKind::AgentLog || newest_log[e.task_id.as_str()] == e.id)
        .collect();
    let mut k = keep.into_iter();
    events.retain(|_| k.next().unwrap_or(true));
    events.sort_by_key(|e| e.id);
    events
}

async fn run(mut rx: broadcast::Receiver<LiveEvent>, tx: broadcast::Sender<Flush>) {
    let mut last_flush = Instant::now() - FLUSH_EVERY;
    loop {
        let mut gap = false;
        let mut events = Vec::new();
        match rx.recv().await {
            Ok(e) => events.push(e),
            Err(RecvError::Lagged(_)) => gap = true,
            Err(RecvError::Closed) => return,
        }
        tokio::time::sleep_until(last_flush + FLUSH_EVERY).await;
        loop {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(TryRecvError::Lagged(_)) => gap = true,
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
        last_flush = Instant::now();
        if gap {
            let _ = tx.send(Flush::Gap);
        }
        let framed: Vec<Framed> = fold(events).iter().map(frame_live).collect();
        if framed.is_empty() {
            continue;
        }
        let mut all = Vec::with_capacity(framed.iter().map(|f| f.bytes.len()).sum());
        for f in &framed {
            all.extend_from_slice(&f.bytes);
        }
        let _ = tx.send(Flush::Events(Arc::new((framed, Bytes::from(all)))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, kind: LiveEventKind, task: &str) -> LiveEvent {
        LiveEvent {
            id,
            kind,
            task_id: task.into(),
            project_id: "p".into(),
            agent_status: None,
            seq: Some(id),
        }
    }

    #[test]
    fn fold_keeps_updates_and_the_newest_log_of_each_task_in_id_order() {
        use LiveEventKind::{AgentLog as L, AgentUpdate as U};
        let out = fold(vec![
            ev(3, L, "a"),
            ev(1, U, "a"),
            ev(5, L, "b"),
            ev(7, L, "a"),
            ev(4, U, "b"),
            ev(6, L, "a"),
        ]);
        let got: Vec<(i64, &str)> = out.iter().map(|e| (e.id, e.task_id.as_str())).collect();
        assert_eq!(got, vec![(1, "a"), (4, "b"), (5, "b"), (7, "a")]);
    }

    #[tokio::test]
    async fn a_burst_goes_out_as_one_flush_and_a_lone_event_at_once() {
        let bus = EventBus::new(64);
        let hub = Hub::start(&bus);
        let mut rx = hub.subscribe();
        tokio::task::yield_now().await;
        bus.send(ev(1, LiveEventKind::AgentLog, "a"));
        let Flush::Events(first) = rx.recv().await.unwrap() else {
            panic!("expected events")
        };
        assert_eq!(first.0.len(), 1);
        for id in 2..=10 {
            bus.send(ev(
                id,
                LiveEventKind::AgentLog,
                if id % 2 == 0 { "a" } else { "b" },
            ));
        }
        let Flush::Events(burst) = rx.recv().await.unwrap() else {
            panic!("expected events")
        };
        let ids: Vec<i64> = burst.0.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![9, 10]);
        let text = std::str::from_utf8(&burst.1).unwrap();
        assert!(text.starts_with("id: 9\nevent: agent_log\ndata: {"));
        assert_eq!(text.matches("\n\n").count(), 2);
    }
}
