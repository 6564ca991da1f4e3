//! The two migration folders, embedded in the binary; the backend picks its own.

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use crate::db::Backend;

/// One migration as (version, description, sqlite sql, postgres sql); both sides always move together.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "agent api",
        include_str!("../migrations/sqlite/0002_agent_api.sql"),
        include_str!("../migrations/postgres/0002_agent_api.sql"),
    ),
    (
        3,
        "lifecycle and notifications",
        include_str!("../migrations/sqlite/0003_lifecycle.sql"),
        include_str!("../migrations/postgres/0003_lifecycle.sql"),
    ),
    (
        4,
        "login lockout",
        include_str!("../migrations/sqlite/0004_login_lockout.sql"),
        include_str!("../migrations/postgres/0004_login_lockout.sql"),
    ),
    (
        5,
        "login attempts per email",
        include_str!("../migrations/sqlite/0005_login_attempts.sql"),
        include_str!("../migrations/postgres/0005_login_attempts.sql"),
    ),
    (
        6,
        "log bytes per task",
        include_str!("../migrations/sqlite/0006_task_log_bytes.sql"),
        include_str!("../migrations/postgres/0006_task_log_bytes.sql"),
    ),
    (
        7,
        "review comments per attempt",
        include_str!("../migrations/sqlite/0007_review_attempt.sql"),
        include_str!("../migrations/postgres/0007_review_attempt.sql"),
    ),
    (
        8,
        "model gateway",
        include_str!("../migrations/sqlite/0008_model_gateway.sql"),
        include_str!("../migrations/postgres/0008_model_gateway.sql"),
    ),
    (
        9,
        "forge loop",
        include_str!("../migrations/sqlite/0009_forge_loop.sql"),
        include_str!("../migrations/postgres/0009_forge_loop.sql"),
    ),
    (
        10,
        "chat actions",
        include_str!("../migrations/sqlite/0010_chat.sql"),
        include_str!("../migrations/postgres/0010_chat.sql"),
    ),
    (
        11,
        "board follows the agent",
        include_str!("../migrations/sqlite/0011_board_follows_agent.sql"),
        include_str!("../migrations/postgres/0011_board_follows_agent.sql"),
    ),
    (
        12,
        "site preview",
        include_str!("../migrations/sqlite/0012_site_preview.sql"),
        include_str!("../migrations/postgres/0012_site_preview.sql"),
    ),
];

/// The embedded migrations of one backend.
#[derive(Debug)]
pub(crate) struct Embedded(pub Backend);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, desc, sqlite, postgres)| {
                    let sql = match self.0 {
                        Backend::Sqlite => sqlite,
                        Backend::Postgres => postgres,
                    };
                    Migration::new(
                        *version,
                        Cow::Borrowed(*desc),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
