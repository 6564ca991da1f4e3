//! Small domain enums shared by the store and the HTTP layer.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// What a user may do across Apiary. The Agent user exists so tasks can be assigned to it;
/// it can never sign in nor review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
    Agent,
}

/// The board column of a task; the agent loop never changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardStatus {
    Todo,
    InProgress,
    Done,
}

/// A member's access to one project; admins have write access everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectAccess {
    Read,
    Write,
}

/// A spelling that is not one of the enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

macro_rules! spelled {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// The wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($s => Ok($ty::$variant),)+ other => Err(UnknownValue(other.to_string())) }
            }
        }
    };
}

spelled!(Role { Admin => "admin", Member => "member", Agent => "agent" });
spelled!(BoardStatus { Todo => "todo", InProgress => "in_progress", Done => "done" });
spelled!(ProjectAccess { Read => "read", Write => "write" });

impl BoardStatus {
    /// The column a card moves to when the agent's work moves into `to`, on a board that
    /// follows the agent: a hand-off (or retry) is work in progress, a merge is done, a
    /// cancel puts the task back to do. Other steps leave the card where people put it.
    pub fn following(to: crate::AgentStatus) -> Option<BoardStatus> {
        match to {
            crate::AgentStatus::Queued => Some(BoardStatus::InProgress),
            crate::AgentStatus::Merged => Some(BoardStatus::Done),
            crate::AgentStatus::Cancelled => Some(BoardStatus::Todo),
            _ => None,
        }
    }
}
