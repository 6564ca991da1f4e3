//! The agent state machine of DESIGN §2: statuses, actors, the transition table and the
//! side effects each transition asks for. This table is the only place that decides whether
//! an `agent_status` change is allowed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a task stands in the agent loop. Separate from the board column, which it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    None,
    Queued,
    Provisioning,
    Speccing,
    SpecReady,
    SpecApproved,
    Implementing,
    PrReady,
    ChangesRequested,
    Merged,
    Cancelled,
    Failed,
}

impl AgentStatus {
    /// Every status, in table order; tests and the proptest walk this list.
    pub const ALL: [AgentStatus; 12] = [
        AgentStatus::None,
        AgentStatus::Queued,
        AgentStatus::Provisioning,
        AgentStatus::Speccing,
        AgentStatus::SpecReady,
        AgentStatus::SpecApproved,
        AgentStatus::Implementing,
        AgentStatus::PrReady,
        AgentStatus::ChangesRequested,
        AgentStatus::Merged,
        AgentStatus::Cancelled,
        AgentStatus::Failed,
    ];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::None => "none",
            AgentStatus::Queued => "queued",
            AgentStatus::Provisioning => "provisioning",
            AgentStatus::Speccing => "speccing",
            AgentStatus::SpecReady => "spec_ready",
            AgentStatus::SpecApproved => "spec_approved",
            AgentStatus::Implementing => "implementing",
            AgentStatus::PrReady => "pr_ready",
            AgentStatus::ChangesRequested => "changes_requested",
            AgentStatus::Merged => "merged",
            AgentStatus::Cancelled => "cancelled",
            AgentStatus::Failed => "failed",
        }
    }

    /// `merged` and `cancelled` end the loop; only a new hand-off leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, AgentStatus::Merged | AgentStatus::Cancelled)
    }

    /// Whether a task in this status has (or is getting) a box of its own. A `queued` task
    /// waits for one; `failed` keeps its box only for the grace period.
    pub fn holds_box(self) -> bool {
        matches!(
            self,
            AgentStatus::Provisioning
                | AgentStatus::Speccing
                | AgentStatus::SpecReady
                | AgentStatus::SpecApproved
                | AgentStatus::Implementing
                | AgentStatus::PrReady
                | AgentStatus::ChangesRequested
                | AgentStatus::Failed
        )
    }

    /// Statuses a task can be failed or cancelled from: agent-managed and not terminal.
    pub fn is_active(self) -> bool {
        !self.is_terminal() && self != AgentStatus::None
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the statuses of DESIGN §2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown agent status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for AgentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Who asks for a transition. The table allows each row for one kind of actor only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A signed-in reviewer (never the Agent user).
    Human,
    /// Apiary itself: queue drain, dispatch results, the watchdog.
    System,
    /// The task's own box, through the callback API.
    Box,
}

impl ActorKind {
    pub const ALL: [ActorKind; 3] = [ActorKind::Human, ActorKind::System, ActorKind::Box];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Human => "human",
            ActorKind::System => "system",
            ActorKind::Box => "box",
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The notification events of DESIGN §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotifyEvent {
    SpecReady,
    PrReady,
    Failed,
    Merged,
    Queued,
    Provisioning,
    /// The PR's checks still fail after the automatic fix rounds; a human takes over.
    ChecksFailing,
}

/// A follow-up job a transition asks for; enqueued in the transition's own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideEffect {
    /// Provision the oldest queued tasks while under the cap.
    DrainQueue,
    /// Create the task's box.
    ProvisionBox,
    /// POST `/spec/revise` to the box.
    DispatchSpecRevise,
    /// POST `/implement/start` to the box.
    DispatchImplement,
    /// POST `/changes/apply` to the box.
    DispatchChanges,
    /// Destroy the box now.
    TearDown,
    /// Destroy the box once the failed grace period has passed.
    TearDownAfterGrace,
    /// Tell people (one delivery job per enabled channel).
    Notify(NotifyEvent),
}

impl SideEffect {
    /// The job kind the queue stores for this effect.
    pub fn job_kind(self) -> &'static str {
        match self {
            SideEffect::DrainQueue => "drain_queue",
            SideEffect::ProvisionBox => "provision_box",
            SideEffect::DispatchSpecRevise => "dispatch_spec_revise",
            SideEffect::DispatchImplement => "dispatch_implement",
            SideEffect::DispatchChanges => "dispatch_changes",
            SideEffect::TearDown => "teardown",
            SideEffect::TearDownAfterGrace => "teardown_after_grace",
            SideEffect::Notify(_) => "notify",
        }
    }
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// No row of the table leads from `from` to `to` for this actor.
    #[error("cannot move from {from} to {to} as {actor}")]
    Invalid {
        from: AgentStatus,
        to: AgentStatus,
        actor: ActorKind,
        /// The targets this actor may reach from `from`.
        allowed: Vec<AgentStatus>,
    },
}

/// What the table says about a requested transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The task is already there: nothing is written, no job, no notification.
    NoOp,
    /// Allowed: write the new status and enqueue these jobs.
    Apply(Vec<SideEffect>),
}

use AgentStatus as S;

/// One row of the table: the row's source statuses are matched by `from_matches`.
struct Row {
    from: fn(AgentStatus) -> bool,
    to: AgentStatus,
    actor: ActorKind,
    effects: &'static [SideEffect],
}

const fn row(
    from: fn(AgentStatus) -> bool,
    to: AgentStatus,
    actor: ActorKind,
    effects: &'static [SideEffect],
) -> Row {
    Row {
        from,
        to,
        actor,
        effects,
    }
}

/// The transition table of DESIGN §2, row for row.
const TABLE: &[Row] = &[
    row(
        |s| matches!(s, S::None | S::Cancelled | S::Merged),
        S::Queued,
        ActorKind::Human,
        &[SideEffect::DrainQueue],
    ),
    row(
        |s| s == S::Failed,
        S::Queued,
        ActorKind::Human,
        &[SideEffect::DrainQueue],
    ),
    row(
        |s| s == S::Queued,
        S::Provisioning,
        ActorKind::System,
        &[SideEffect::ProvisionBox],
    ),
    row(|s| s == S::Provisioning, S::Speccing, ActorKind::Box, &[]),
    row(
        |s| s == S::Provisioning,
        S::Speccing,
        ActorKind::System,
        &[],
    ),
    row(
        |s| s == S::Speccing,
        S::SpecReady,
        ActorKind::Box,
        &[SideEffect::Notify(NotifyEvent::SpecReady)],
    ),
    row(
        |s| s == S::SpecReady,
        S::Speccing,
        ActorKind::Human,
        &[SideEffect::DispatchSpecRevise],
    ),
    row(
        |s| s == S::SpecReady,
        S::SpecApproved,
        ActorKind::Human,
        &[SideEffect::DispatchImplement],
    ),
    row(
        |s| s == S::SpecApproved,
        S::Implementing,
        ActorKind::System,
        &[],
    ),
    row(
        |s| s == S::Implementing,
        S::SpecApproved,
        ActorKind::System,
        &[],
    ),
    row(
        |s| s == S::Implementing,
        S::PrReady,
        ActorKind::Box,
        &[SideEffect::Notify(NotifyEvent::PrReady)],
    ),
    row(
        |s| s == S::PrReady,
        S::ChangesRequested,
        ActorKind::Human,
        &[SideEffect::DispatchChanges],
    ),
    // An automatic fix round: the PR's checks failed (CI on GitHub, or the project's check
    // command in the box) and rounds are left.
    row(
        |s| s == S::PrReady,
        S::ChangesRequested,
        ActorKind::System,
        &[SideEffect::DispatchChanges],
    ),
    row(
        |s| s == S::ChangesRequested,
        S::Implementing,
        ActorKind::System,
        &[],
    ),
    row(
        |s| s == S::ChangesRequested,
        S::PrReady,
        ActorKind::System,
        &[],
    ),
    row(
        |s| s == S::PrReady,
        S::Merged,
        ActorKind::Human,
        &[SideEffect::TearDown],
    ),
    row(
        AgentStatus::is_active,
        S::Failed,
        ActorKind::Box,
        &[
            SideEffect::Notify(NotifyEvent::Failed),
            SideEffect::TearDownAfterGrace,
        ],
    ),
    row(
        AgentStatus::is_active,
        S::Failed,
        ActorKind::System,
        &[
            SideEffect::Notify(NotifyEvent::Failed),
            SideEffect::TearDownAfterGrace,
        ],
    ),
    row(
        AgentStatus::is_active,
        S::Cancelled,
        ActorKind::Human,
        &[SideEffect::TearDown],
    ),
];

/// Decides a transition: a no-op when `from == to`, the row's side effects when a row allows
/// it for `actor`, else [`TransitionError::Invalid`] with the targets that actor could reach.
pub fn decide(
    from: AgentStatus,
    to: AgentStatus,
    actor: ActorKind,
) -> Result<Decision, TransitionError> {
    if from == to {
        return Ok(Decision::NoOp);
    }
    TABLE
        .iter()
        .find(|r| r.to == to && r.actor == actor && (r.from)(from))
        .map(|r| Decision::Apply(r.effects.to_vec()))
        .ok_or_else(|| TransitionError::Invalid {
            from,
            to,
            actor,
            allowed: allowed_targets(from, actor),
        })
}

/// The statuses `actor` may move a task to from `from`, in table order, without repeats.
pub fn allowed_targets(from: AgentStatus, actor: ActorKind) -> Vec<AgentStatus> {
    let mut out: Vec<AgentStatus> = Vec::new();
    for r in TABLE.iter().filter(|r| r.actor == actor && (r.from)(from)) {
        if r.to != from && !out.contains(&r.to) {
            out.push(r.to);
        }
    }
    out
}

#[cfg(test)]
mod tests;
