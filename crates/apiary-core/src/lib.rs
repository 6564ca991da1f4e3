//! Apiary's pure domain: the agent state machine of DESIGN §2, the roles and the small value
//! types every other crate shares.
//!
//! Invariants: this crate does no IO and no async; it knows nothing of SQL, HTTP or processes.
//! Every decision about an `agent_status` change is made by [`state::decide`].

pub mod boot;
pub mod callback;
pub mod chat;
pub mod clock;
pub mod forge;
pub mod gateway;
pub mod model;
pub mod notify;
pub mod prompts;
pub mod settings;
pub mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use model::{BoardStatus, ProjectAccess, Role};
pub use settings::{
    EmailSettings, GatewaySettings, Prompts, Settings, SlackSettings, TelegramSettings, Timeouts,
    WebhookSettings,
};
pub use state::{
    allowed_targets, decide, ActorKind, AgentStatus, Decision, NotifyEvent, SideEffect,
    TransitionError,
};
