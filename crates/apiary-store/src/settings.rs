//! The settings table: one JSON document per key.

use apiary_core::Settings;
use sqlx::AnyConnection;

use crate::db::Store;
use crate::error::{StoreError, StoreResult};

const AGENT_KEY: &str = "agent";
const INSTALLATION_KEY: &str = "installation";

impl Store {
    /// This installation's id (made once, on first use, and the same for every replica):
    /// its boxes carry it, so it never takes another installation's boxes for its own.
    pub async fn installation_id(&self) -> StoreResult<String> {
        self.installation
            .get_or_try_init(|| self.read_installation_id())
            .await
            .cloned()
    }

    /// Makes the id on first use; reads it (the same for every replica).
    async fn read_installation_id(&self) -> StoreResult<String> {
        let fresh = serde_json::Value::String(format!("inst-{}", crate::db::new_id()));
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(INSTALLATION_KEY)
        .bind(fresh.to_string())
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        let (value,): (String,) = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(INSTALLATION_KEY)
            .fetch_one(&self.pool)
            .await?;
        serde_json::from_str::<String>(&value)
            .map_err(|e| StoreError::invalid("installation", e.to_string()))
    }

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

/// The id under which a named settings secret is stored.
fn setting_secret_id(name: &str) -> String {
    format!("setting:{name}")
}

impl Store {
    /// Sets (`Some`) or clears (`None`) a named settings secret, encrypted.
    pub async fn set_setting_secret(&self, name: &str, value: Option<&str>) -> StoreResult<()> {
        let id = setting_secret_id(name);
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        if let Some(v) = value {
            self.put_secret_with_id(&mut tx, &id, v).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A named settings secret, decrypted (for the code that uses it; never for an API answer).
    pub async fn setting_secret(&self, name: &str) -> StoreResult<Option<String>> {
        self.get_secret(&setting_secret_id(name)).await
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
