//! The fan-out of live events to SSE streams. One task reads the event bus, gathers what
//! arrived in a short window, folds the `agent_log` events of one task into the newest (each
//! only says "the log now ends at seq N"), and puts every event on the wire once. Streams get
//! the whole flush as shared bytes and write it in one go, so a thousand listeners cost a
//! thousand writes per flush, not a thousand serialisations and writes per event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary_orchestrator::{EventBus, LiveEvent, LiveEventKind};
use axum::body::Bytes;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// How often each stream gets what arrived since its last flush.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Streams are split into this many shards, flushed in turn (one every
/// `FLUSH_EVERY / SHARDS`), so a thousand streams never all write at the same moment and
/// callbacks are not left waiting behind them.
pub const SHARDS: usize = 5;

/// One event as it goes on the wire, with what streams filter on.
#[derive(Debug)]
pub struct Framed {
    pub id: i64,
    /// An `agent_log` (foldable into a newer one of the same task).
    pub log: bool,
    pub task_id: String,
    pub project_id: String,
    /// `id: …\nevent: …\ndata: …\n\n`.
    pub bytes: Bytes,
}

/// The events of one flush.
#[derive(Debug)]
pub struct Batch {
    /// In id order.
    pub events: Vec<Arc<Framed>>,
    /// Every event's bytes, one after the other.
    pub all: Bytes,
    /// The project of every event, when they share one (streams then decide once).
    pub project: Option<String>,
}

/// What streams receive from the hub.
#[derive(Debug, Clone)]
pub enum Flush {
    Events(Arc<Batch>),
    /// The hub fell behind the bus and missed events: streams reload from the audit trail.
    Gap,
}

/// The handle streams subscribe to. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    shards: Arc<Vec<broadcast::Sender<Flush>>>,
    next: Arc<AtomicUsize>,
}

impl Hub {
    /// Starts the fan-out task on the current runtime; it ends when the bus closes.
    pub fn start(bus: &EventBus) -> Hub {
        let shards: Vec<_> = (0..SHARDS).map(|_| broadcast::channel(256).0).collect();
        let rx = bus.subscribe();
        tokio::spawn(run(rx, shards.clone()));
        Hub {
            shards: Arc::new(shards),
            next: Arc::default(),
        }
    }

    /// A new stream's feed, on the next shard in turn.
    pub fn subscribe(&self) -> broadcast::Receiver<Flush> {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.shards[shard].subscribe()
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
        log: e.kind == LiveEventKind::AgentLog,
        task_id: e.task_id.clone(),
        project_id: e.project_id.clone(),
        bytes,
    }
}

/// Keeps every update and, per task, only the newest `agent_log`; sorts by id.
pub fn fold(mut events: Vec<Arc<Framed>>) -> Vec<Arc<Framed>> {
    let mut newest_log: HashMap<&str, i64> = HashMap::new();
    for e in &events {
        if e.log {
            let id = newest_log.entry(e.task_id.as_str()).or_insert(e.id);
            *id = (*id).max(e.id);
        }
    }
    let keep: Vec<bool> = events
        .iter()
        .map(|e| !e.log || newest_log[e.task_id.as_str()] == e.id)
        .collect();
    let mut k = keep.into_iter();
    events.retain(|_| k.next().unwrap_or(true));
    events.sort_by_key(|e| e.id);
    events
}

fn batch(events: Vec<Arc<Framed>>) -> Option<Batch> {
    let events = fold(events);
    let first = events.first()?;
    let project =
        Some(first.project_id.clone()).filter(|p| events.iter().all(|f| &f.project_id == p));
    let mut all = Vec::with_capacity(events.iter().map(|f| f.bytes.len()).sum());
    for f in &events {
        all.extend_from_slice(&f.bytes);
    }
    Some(Batch {
        events,
        all: Bytes::from(all),
        project,
    })
}

async fn run(mut rx: broadcast::Receiver<LiveEvent>, shards: Vec<broadcast::Sender<Flush>>) {
    let tick = FLUSH_EVERY / SHARDS as u32;
    let mut pending: Vec<Vec<Arc<Framed>>> = vec![Vec::new(); shards.len()];
    let mut gap = vec![false; shards.len()];
    let mut turn = 0;
    let mut next_tick = Instant::now();
    loop {
        let idle = pending.iter().all(Vec::is_empty) && !gap.contains(&true);
        let received = if idle {
            // Nothing waits: sleep on the bus; the shard whose turn it is flushes at once.
            let r = rx.recv().await;
            next_tick = next_tick.max(Instant::now());
            Some(r)
        } else {
            tokio::select! {
                r = rx.recv() => Some(r),
                _ = tokio::time::sleep_until(next_tick) => None,
            }
        };
        match received {
            Some(Ok(e)) => {
                let f = Arc::new(frame_live(&e));
                for p in &mut pending {
                    p.push(f.clone());
                }
            }
            Some(Err(RecvError::Lagged(_))) => gap.fill(true),
            Some(Err(RecvError::Closed)) => return,
            None => {
                if std::mem::take(&mut gap[turn]) {
                    let _ = shards[turn].send(Flush::Gap);
                }
                if let Some(b) = batch(std::mem::take(&mut pending[turn])) {
                    let _ = shards[turn].send(Flush::Events(Arc::new(b)));
                }
                turn = (turn + 1) % shards.len();
                next_tick += tick;
            }
        }
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
        let events = [
            ev(3, L, "a"),
            ev(1, U, "a"),
            ev(5, L, "b"),
            ev(7, L, "a"),
            ev(4, U, "b"),
            ev(6, L, "a"),
        ];
        let out = fold(events.iter().map(|e| Arc::new(frame_live(e))).collect());
        let got: Vec<(i64, &str)> = out.iter().map(|e| (e.id, e.task_id.as_str())).collect();
        assert_eq!(got, vec![(1, "a"), (4, "b"), (5, "b"), (7, "a")]);
    }

    #[tokio::test]
    async fn every_shard_gets_each_burst_folded_and_framed_once() {
        let bus = EventBus::new(64);
        let hub = Hub::start(&bus);
        let mut streams: Vec<_> = (0..SHARDS * 2).map(|_| hub.subscribe()).collect();
        tokio::task::yield_now().await;
        for id in 1..=10 {
            bus.send(ev(
                id,
                LiveEventKind::AgentLog,
                if id % 2 == 0 { "a" } else { "b" },
            ));
        }
        bus.send(ev(11, LiveEventKind::AgentUpdate, "a"));
        let mut shared = Vec::new();
        for rx in &mut streams {
            let Flush::Events(batch) = rx.recv().await.unwrap() else {
                panic!("expected events")
            };
            let ids: Vec<i64> = batch.events.iter().map(|f| f.id).collect();
            assert_eq!(ids, vec![9, 10, 11]);
            assert_eq!(batch.project.as_deref(), Some("p"));
            let text = std::str::from_utf8(&batch.all).unwrap();
            assert!(
                text.starts_with("id: 9\nevent: agent_log\ndata: {"),
                "{text}"
            );
            assert_eq!(text.matches("\n\n").count(), 3);
            shared.push(batch.events[0].clone());
        }
        // One framing per event, whatever the number of streams and shards.
        assert!(shared.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    }
}
