//! Live events across replicas (DESIGN §8): on PostgreSQL each committed event is also sent
//! with `NOTIFY`, and every replica listens; SQLite has a single process, so nothing to do.

use crate::db::{Backend, Store};
use crate::error::StoreResult;

/// The channel replicas talk on.
const CHANNEL: &str = "apiary_events";

/// A replica's subscription to the other replicas' events (PostgreSQL only).
pub struct ReplicaListener(sqlx::postgres::PgListener);

impl ReplicaListener {
    /// The next event's payload, as the sending replica wrote it.
    pub async fn recv(&mut self) -> StoreResult<String> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

impl Store {
    /// Tells the other replicas about a committed event; nothing on SQLite.
    pub async fn broadcast_event(&self, payload: &str) -> StoreResult<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Listens to the other replicas' events; `None` on SQLite (one process sees everything).
    pub async fn listen_replicas(&self) -> StoreResult<Option<ReplicaListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(&self.url).await?;
        l.listen(CHANNEL).await?;
        Ok(Some(ReplicaListener(l)))
    }
}
