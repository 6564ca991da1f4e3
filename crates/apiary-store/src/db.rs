//! The connection pool, the backend it speaks to, and write transactions that take the
//! write lock up front.

use std::sync::Arc;
use std::time::Duration;

use apiary_core::Clock;
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::error::StoreResult;
use crate::migrate::Embedded;
use crate::secrets::SecretKey;

/// Which database the store talks to; chosen from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open a store.
pub struct StoreOptions {
    /// `sqlite://PATH?mode=rwc` or `postgres://…`.
    pub url: String,
    /// The key that encrypts secrets at rest.
    pub secret_key: SecretKey,
    /// Where time comes from (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Pool size; SQLite writes are serialised anyway, so a handful is plenty.
    pub max_connections: u32,
}

impl StoreOptions {
    /// The SQLite URL for a database file inside `data_dir`.
    pub fn sqlite_url(data_dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("apiary.db").display())
    }
}

/// The handle every other crate uses to read and write Apiary's state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key: Arc<SecretKey>,
    /// Serialises this process's write transactions on SQLite.
    pub(crate) writer: Arc<tokio::sync::Mutex<()>>,
    /// The database URL (PostgreSQL listeners open their own connection).
    pub(crate) url: Arc<String>,
    /// Log batches waiting for their group commit.
    pub(crate) logs: Arc<crate::logs::LogQueue>,
    /// Recently checked callback tokens.
    pub(crate) tokens: Arc<crate::boxes::TokenCache>,
    /// Metered model requests waiting for their group commit.
    pub(crate) usage: Arc<crate::gateway::UsageQueue>,
    /// Bumped whenever this process changes who may see a project, so open live streams
    /// check their access again.
    pub(crate) access_gen: Arc<std::sync::atomic::AtomicU64>,
    /// This installation's id, once read (it never changes).
    pub(crate) installation: Arc<tokio::sync::OnceCell<String>>,
}

/// A write transaction on the store's database. On SQLite it also holds this process's writer
/// lock: SQLite has one writer anyway, and queueing here is far cheaper than its busy-wait
/// back-off when many requests write at once.
pub struct Tx {
    tx: Transaction<'static, Any>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Tx {
    /// Makes the transaction's writes permanent.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Drops the transaction's writes.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Store {
    /// Changes whenever this process changed project access (a membership, a password reset).
    pub fn access_generation(&self) -> u64 {
        self.access_gen.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn access_changed(&self) {
        self.access_gen
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens the pool (creating the SQLite file if needed, in WAL mode) without migrating.
    pub async fn connect(opts: StoreOptions) -> StoreResult<Store> {
        install_default_drivers();
        let backend = if opts.url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 15000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&opts.url)
            .await?;
        Ok(Store {
            pool,
            backend,
            clock: opts.clock,
            key: Arc::new(opts.secret_key),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            url: Arc::new(opts.url.clone()),
            logs: Arc::default(),
            tokens: Arc::default(),
            usage: Arc::default(),
            access_gen: Arc::default(),
            installation: Arc::default(),
        })
    }

    /// Brings the schema up to date with the embedded migrations of this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = sqlx::migrate::Migrator::new(Embedded(self.backend)).await?;
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The backend this store speaks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Now, in milliseconds, from the injected clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Closes the pool; pending work is finished first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails on a stale snapshot; on
    /// PostgreSQL rows are locked with `FOR UPDATE` where it matters.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => {
                let guard = self.writer.clone().lock_owned().await;
                Tx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _writer: Some(guard),
                }
            }
            Backend::Postgres => Tx {
                tx: self.pool.begin().await?,
                _writer: None,
            },
        };
        Ok(tx)
    }

    /// The rows of a JSON array of arrays bound at `param`, as a table whose column `value`
    /// holds each inner array (read with `value ->> 0`, …). Many rows travel as one parameter.
    pub(crate) fn json_rows(&self, param: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each({param})"),
            Backend::Postgres => format!("json_array_elements({param}::json)"),
        }
    }

    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write transactions are exclusive.
    /// A write transaction that may add to the audit trail. From its start to its commit no
    /// other such transaction runs, so events commit in id order on both backends (SQLite
    /// writes one transaction at a time anyway; PostgreSQL takes a transaction-scoped advisory
    /// lock as the first statement, before any row lock, so the lock order is the same for
    /// everyone and no deadlock can form). A live stream can then hold an event back until
    /// every lower id is known, and resuming after an id is exact. Every transaction that
    /// inserts into `task_events` starts here.
    pub(crate) async fn begin_events(&self) -> StoreResult<Tx> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7305926143)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }
}

/// A fresh, time-ordered identifier.
pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// 0/1 flag columns (see the migration's header) read back as booleans.
pub(crate) fn flag(v: i64) -> bool {
    v != 0
}
