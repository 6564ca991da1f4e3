//! The settings table: one JSON document per key.

use apiary_core::Settings;
use sqlx::AnyConnection;

use crate::db::Store;
use crate::error::{StoreError, StoreResult};

const AGENT_KEY: &str = "agent";

impl Store {
    /// The global agent settings, defaults filled in for anything never saved.
    pub async fn settings(&self) -> StoreResult<Settings> {
        let mut conn = self.pool.acquire().await?;
        read_settings(&mut conn).await
    }

    /// Replaces the global agent settings.
    pub async fn save_settings(&self, settings: &Settings) -> StoreResult<()> {
        let json = serde_json::to_string(settings)
            .map_err(|e| StoreError::invalid("settings", e.to_string()))?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(AGENT_KEY)
        .bind(json)
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Reads the settings on a given connection (inside a transaction when called from one).
pub(crate) async fn read_settings(conn: &mut AnyConnection) -> StoreResult<Settings> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
        .bind(AGENT_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some((json,)) => serde_json::from_str(&json).map_err(|e| {
            StoreError::invalid("settings", format!("stored settings unreadable: {e}"))
        }),
        None => Ok(Settings::default()),
    }
}
