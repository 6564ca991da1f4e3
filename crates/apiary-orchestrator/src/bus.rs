//! The in-process live event bus. Events are sent only after the change they describe has
//! committed; subscribers that fall behind catch up from the audit trail.

use apiary_core::AgentStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What a live event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveEventKind {
    AgentUpdate,
    AgentLog,
}

/// One live event: an `agent_update` after a committed transition (id = audit event id) or an
/// `agent_log` after a committed log batch (seq = last line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub id: i64,
    pub kind: LiveEventKind,
    pub task_id: String,
    pub project_id: String,
    pub agent_status: Option<AgentStatus>,
    pub seq: Option<i64>,
}

/// A broadcast channel of [`LiveEvent`]s.
#[derive(Clone)]
pub struct EventBus(broadcast::Sender<LiveEvent>);

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        EventBus(broadcast::channel(capacity).0)
    }

    /// Sends to whoever listens; nobody listening is fine.
    pub fn send(&self, ev: LiveEvent) {
        let _ = self.0.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.subscribe()
    }
}
