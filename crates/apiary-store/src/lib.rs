//! Apiary's persistence: every table of DESIGN §8 behind one [`Store`], on SQLite (the
//! embedded default) or PostgreSQL, through one sqlx code path (the `Any` driver; SQL written
//! once with `$N` parameters, which both backends read).
//!
//! Invariants: this is the only crate with SQL. Only [`Store::transition`] writes a task's
//! `agent_status`, and it writes the audit event and the follow-up jobs in the same
//! transaction. Secrets are stored encrypted; passwords and tokens only as hashes.

/// Reads a row into a struct by column name: the field names are the column names. (The
/// sqlx derive would compile a second copy of the SQLite driver for the proc-macro.)
macro_rules! from_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $ty {
            fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok($ty { $($field: row.try_get(stringify!($field))?),* })
            }
        }
    };
}

mod auth;
mod bench;
mod boxes;
mod chat;
mod comments;
mod db;
mod error;
mod events;
mod fleet;
mod forge;
mod gateway;
mod jobs;
mod logs;
mod migrate;
mod notifications;
mod projects;
mod queue;
mod replicas;
mod secrets;
mod settings;
mod tasks;
mod transition;
mod users;
mod watch;

pub use auth::{hash_token, new_token, SessionInfo};
pub use boxes::{BoxAddress, BoxTokens, ReviewComment, SpecRevision};
pub use chat::{ChatLink, ChatPrompt};
pub use comments::Comment;
pub use db::{Backend, Store, StoreOptions, Tx};
pub use error::{StoreError, StoreResult};
pub use events::TaskEvent;
pub use fleet::FleetTask;
pub use gateway::{month_start_ms, provider_key_secret, GatewayTask, UsageRecord, UsageSum};
pub use jobs::{Job, JobFailure, NewJob};
pub use logs::{LogAppend, LogLine};
pub use notifications::{enabled_channels, NotificationError};
pub use projects::{NewProject, Project, ProjectAgent, ProjectPatch, ProjectSecret};
pub use replicas::ReplicaListener;
pub use secrets::SecretKey;
pub use tasks::{NewTask, Task, TaskPatch};
pub use transition::{Actor, NewReviewComment, TaskWrites, TransitionOutcome, TransitionRequest};
pub use users::{NewUser, User, AGENT_EMAIL};
pub use watch::WatchedTask;
