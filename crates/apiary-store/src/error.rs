//! The store's failures, described in domain terms so callers can map them to statuses.

use apiary_core::{ActorKind, AgentStatus};

/// A store failure. `Backend` carries the database error; the rest are domain answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        field: &'static str,
        message: String,
    },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("cannot move from {from} to {to} as {actor}")]
    InvalidTransition {
        from: AgentStatus,
        to: AgentStatus,
        actor: ActorKind,
        allowed: Vec<AgentStatus>,
    },
    #[error("secret could not be decrypted (wrong APIARY_SECRET_KEY?)")]
    Crypto,
    #[error("database error")]
    Backend(#[from] sqlx::Error),
    /// A group write failed; every request in the group gets this (none of it was stored).
    #[error("database error in a group write: {0}")]
    Group(String),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Builds an `Invalid` naming the field at fault.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// Maps a unique-constraint violation to a `Conflict` on `field`; passes others through.
    pub(crate) fn unique(err: sqlx::Error, field: &'static str, message: &str) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict {
                    field,
                    message: message.to_string(),
                };
            }
        }
        StoreError::Backend(err)
    }
}
