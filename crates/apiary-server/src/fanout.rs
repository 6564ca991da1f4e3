//! The fan-out of live events to SSE streams. One task reads the event bus, gathers what
//! arrived in a short window, folds the `agent_log` events of one task into the newest (each
//! only says "the log now ends at seq N"), and puts every event on the wire once. Streams get
//! the whole flush as shared bytes and write it in one go, so a thousand listeners cost a
//! thousand writes per flush, not a thousand serialisations and writes per event.
//!
//! Events reach streams strictly in id order. Events are published after their commits by
//! different tasks (and replicas), so they can reach the hub out of order; the hub holds an
//! event back until every lower id has been seen. The store commits events in id order (see
//! `Store::order_events`), so once an event is here every lower id is final: a missing one that
//! is not published within [`GAP_WAIT`] is read from the audit trail (or was rolled back and
//! never exists). A client's `Last-Event-ID` therefore never skips an event it has not had.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apiary_orchestrator::{EventBus, LiveEvent, LiveEventKind};
use apiary_store::{Store, TaskEvent};
use axum::body::Bytes;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// How often each stream gets what arrived since its last flush.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Streams are split into this many shards, flushed in turn (one every
/// `FLUSH_EVERY / SHARDS`), so a thousand streams never all write at the same moment and
/// callbacks are not left waiting behind them.
pub const SHARDS: usize = 5;

/// How long the hub waits for a missing lower id to be published before reading it from the
/// audit trail.
pub const GAP_WAIT: Duration = Duration::from_millis(20);
/// A hole wider than this is not read event by event: streams reload from the audit trail.
const MAX_BACKFILL: i64 = 1000;

/// Reads the committed events with ids in `(after, before)` (the audit trail); `None` when it
/// could not (streams then reload from the audit trail themselves, so nothing is lost).
pub type Backfill =
    Arc<dyn Fn(i64, i64) -> BoxFuture<'static, Option<Vec<LiveEvent>>> + Send + Sync>;

/// A stored event as the live event it was (or `None` for kinds streams do not carry).
pub fn live_from_stored(e: &TaskEvent) -> Option<LiveEvent> {
    let (kind, agent_status, seq) = match e.kind.as_str() {
        "transition" => (
            LiveEventKind::AgentUpdate,
            e.to_status.as_deref().and_then(|s| s.parse().ok()),
            None,
        ),
        "log" => (
            LiveEventKind::AgentLog,
            None,
            e.message.as_deref().and_then(|m| m.parse::<i64>().ok()),
        ),
        _ => return None,
    };
    Some(LiveEvent {
        id: e.id,
        kind,
        task_id: e.task_id.clone(),
        project_id: e.project_id.clone(),
        agent_status,
        seq,
    })
}

/// The audit trail as the hub's backfill.
fn store_backfill(store: Store) -> Backfill {
    Arc::new(move |after, before| {
        let store = store.clone();
        Box::pin(async move {
            match store.events_after(after, before - after - 1).await {
                Ok(rows) => Some(
                    rows.iter()
                        .filter(|e| e.id < before)
                        .filter_map(live_from_stored)
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "live events: cannot read the audit trail");
                    None
                }
            }
        })
    })
}

/// Puts events back in id order: releases an event once every lower id has been released,
/// read from the audit trail, or found never to exist.
struct Sequencer {
    /// Every id up to here is done with.
    released: i64,
    held: BTreeMap<i64, LiveEvent>,
    /// Since when the lowest held event waits for the ids below it.
    waiting_since: Option<Instant>,
}

impl Sequencer {
    /// Takes one event; returns what is now ready, in order.
    fn offer(&mut self, e: LiveEvent) -> Vec<LiveEvent> {
        if e.id <= self.released {
            return Vec::new(); // Read from the audit trail already (or a repeat).
        }
        self.held.insert(e.id, e);
        self.ready()
    }

    fn ready(&mut self) -> Vec<LiveEvent> {
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.released + 1 {
                break;
            }
            self.released += 1;
            out.push(entry.remove());
        }
        self.waiting_since = match self.held.is_empty() {
            true => None,
            false => Some(self.waiting_since.unwrap_or_else(Instant::now)),
        };
        out
    }

    /// The hole below the lowest held event, when it has waited long enough: `(after, before)`.
    fn overdue(&self) -> Option<(i64, i64)> {
        let since = self.waiting_since?;
        let (&lowest, _) = self.held.first_key_value()?;
        (since.elapsed() >= GAP_WAIT).then_some((self.released, lowest))
    }

    /// Fills the hole `(after, before)` with what the audit trail holds; the rest never exists.
    fn fill(&mut self, before: i64, found: Vec<LiveEvent>) -> Vec<LiveEvent> {
        let mut out: Vec<LiveEvent> = found
            .into_iter()
            .filter(|e| e.id > self.released && e.id < before)
            .collect();
        out.sort_by_key(|e| e.id);
        self.released = self.released.max(before - 1);
        self.waiting_since = None;
        out.extend(self.ready());
        out
    }
}

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
    /// Starts the fan-out task on the current runtime over `store`'s audit trail (where it
    /// starts, and what it reads when an event was not published); it ends when the bus closes.
    pub fn start(bus: &EventBus, store: Store) -> Hub {
        let rx = bus.subscribe();
        let backfill = store_backfill(store.clone());
        Self::spawn(rx, backfill, async move {
            store.latest_event_id().await.unwrap_or(0)
        })
    }

    /// The hub over any backfill, starting after the id `start` resolves to.
    fn spawn(
        rx: broadcast::Receiver<LiveEvent>,
        backfill: Backfill,
        start: impl std::future::Future<Output = i64> + Send + 'static,
    ) -> Hub {
        let shards: Vec<_> = (0..SHARDS).map(|_| broadcast::channel(256).0).collect();
        let out = shards.clone();
        tokio::spawn(async move {
            let released = start.await;
            run(rx, out, backfill, released).await
        });
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

/// What woke the hub.
enum Wake {
    Bus(Result<LiveEvent, RecvError>),
    Flush,
    Hole,
}

async fn run(
    mut rx: broadcast::Receiver<LiveEvent>,
    shards: Vec<broadcast::Sender<Flush>>,
    backfill: Backfill,
    released: i64,
) {
    let tick = FLUSH_EVERY / SHARDS as u32;
    let mut pending: Vec<Vec<Arc<Framed>>> = vec![Vec::new(); shards.len()];
    let mut gap = vec![false; shards.len()];
    let mut turn = 0;
    let mut next_tick = Instant::now();
    let mut seq = Sequencer {
        released,
        held: BTreeMap::new(),
        waiting_since: None,
    };
    let push = |pending: &mut Vec<Vec<Arc<Framed>>>, ready: Vec<LiveEvent>| {
        for e in ready {
            let f = Arc::new(frame_live(&e));
            for p in pending.iter_mut() {
                p.push(f.clone());
            }
        }
    };
    loop {
        if let Some((after, before)) = seq.overdue() {
            if before - after - 1 > MAX_BACKFILL {
                // Too wide to read event by event: streams reload from the audit trail.
                let ready = seq.fill(before, Vec::new());
                gap.fill(true);
                push(&mut pending, ready);
            } else {
                let ready = match backfill(after, before).await {
                    Some(found) => seq.fill(before, found),
                    None => {
                        // Unreadable now: streams reload from the audit trail instead.
                        gap.fill(true);
                        seq.fill(before, Vec::new())
                    }
                };
                push(&mut pending, ready);
            }
            continue;
        }
        let idle = pending.iter().all(Vec::is_empty) && !gap.contains(&true);
        let hole = seq.waiting_since.map(|since| since + GAP_WAIT);
        let wake = match (idle, hole) {
            // Nothing waits: sleep on the bus; the shard whose turn it is flushes at once.
            (true, None) => Wake::Bus(rx.recv().await),
            (_, hole) => {
                let hole_at = hole.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    r = rx.recv() => Wake::Bus(r),
                    _ = tokio::time::sleep_until(next_tick), if !idle => Wake::Flush,
                    _ = tokio::time::sleep_until(hole_at), if hole.is_some() => Wake::Hole,
                }
            }
        };
        if idle {
            next_tick = next_tick.max(Instant::now());
        }
        match wake {
            Wake::Bus(Ok(e)) => {
                let ready = seq.offer(e);
                push(&mut pending, ready);
            }
            Wake::Bus(Err(RecvError::Lagged(_))) => gap.fill(true),
            Wake::Bus(Err(RecvError::Closed)) => return,
            Wake::Hole => {} // Read at the top of the loop.
            Wake::Flush => {
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
        let hub = Hub::spawn(
            bus.subscribe(),
            Arc::new(|_, _| Box::pin(async { Some(Vec::new()) })),
            async { 0 },
        );
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
