//! A box's credentials and what it reads: the callback token (stored as a hash, bound to one
//! task and one box), the control token (encrypted), review comments and spec revisions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::{hash_token, new_token};
use crate::db::Store;
use crate::error::{StoreError, StoreResult};

/// The two tokens a new box gets in its boot env. Shown once; never readable again from the API.
#[derive(Debug, Clone)]
pub struct BoxTokens {
    /// The box presents this to the callback API.
    pub callback_token: String,
    /// Apiary presents this to the box's control plane.
    pub control_token: String,
    /// The box's agent presents this to the model gateway (it is the CLI's "API key"; never a
    /// provider's key).
    pub gateway_token: String,
}

/// Where a box can be reached, as its provider reports it.
#[derive(Debug, Clone, Default)]
pub struct BoxAddress {
    pub box_id: String,
    pub control_url: String,
    pub code_url: Option<String>,
    pub site_url: Option<String>,
}

/// A stored review comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    pub id: String,
    pub round: i64,
    /// `None` for an author outside Apiary (a GitHub reviewer, CI).
    pub author_id: Option<String>,
    pub author_name: String,
    pub body: String,
    pub path: Option<String>,
    pub line: Option<i64>,
    pub created_at: i64,
}
from_row!(ReviewComment {
    id,
    round,
    author_id,
    author_name,
    body,
    path,
    line,
    created_at
});

/// One submitted spec, numbered from 1, with the feedback that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRevision {
    pub revision: i64,
    pub spec: String,
    pub feedback: Option<String>,
    pub created_at: i64,
}
from_row!(SpecRevision {
    revision,
    spec,
    feedback,
    created_at
});

/// How long a checked callback token is trusted without asking the database again. A
/// token revoked by this process is forgotten at once; one revoked by another process
/// (a worker, another replica) stops working within this time.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most tokens remembered; past it the cache starts over.
const TOKEN_CACHE_MAX: usize = 10_000;

/// Callback tokens checked recently (by hash): every box call would otherwise read the
/// database before doing anything.
#[derive(Default)]
pub(crate) struct TokenCache {
    /// The generation (bumped by every clear) and the entries.
    entries: Mutex<(u64, HashMap<String, CachedToken>)>,
}

/// Task id, box id, and when the database said so.
type CachedToken = (String, String, Instant);

impl TokenCache {
    /// A fresh entry, or the generation a database read must still see to be remembered.
    fn get(&self, hash: &str) -> Result<(String, String), u64> {
        let entries = self.entries.lock().expect("token cache lock");
        entries
            .1
            .get(hash)
            .filter(|(_, _, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(t, b, _)| (t.clone(), b.clone()))
            .ok_or(entries.0)
    }

    /// Remembers a database answer unless a clear happened since the read began (it could be
    /// stale then).
    fn put(&self, generation: u64, hash: String, task: &str, box_id: &str) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.0 != generation {
            return;
        }
        if entries.1.len() >= TOKEN_CACHE_MAX {
            entries.1.clear();
        }
        entries
            .1
            .insert(hash, (task.to_string(), box_id.to_string(), Instant::now()));
    }

    /// Forgets everything (a token or a box binding changed).
    fn clear(&self) {
        let mut entries = self.entries.lock().expect("token cache lock");
        entries.0 += 1;
        entries.1.clear();
    }
}

impl Store {
    /// Mints a new box's tokens before it is created (they go into its boot env): the
    /// callback token is stored as a hash, the control token encrypted; any earlier box's
    /// tokens stop working. The task's branch is recorded if it had none. From here the task counts against the box cap.
    pub async fn mint_box_tokens(&self, task_id: &str) -> StoreResult<BoxTokens> {
        let tokens = BoxTokens {
            callback_token: new_token("apiary_box_"),
            control_token: new_token("apiary_ctl_"),
            gateway_token: new_token("apiary_gw_"),
        };
        let mut tx = self.begin().await?;
        let task = self.lock_task(&mut tx, task_id).await?;
        let secret = self.put_secret_in(&mut tx, &tokens.control_token).await?;
        if let Some(old) = &task.control_secret_id {
            sqlx::query("DELETE FROM secrets WHERE id = $1")
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        // The branch is fixed with the first box: a later title edit does not move it, and a
        // box may only ever submit this one.
        let branch = task
            .branch
            .clone()
            .unwrap_or_else(|| apiary_core::boot::branch_name(&task.id, &task.title));
        sqlx::query(
            "UPDATE tasks SET box_id = NULL, control_url = NULL, code_url = NULL, site_url = NULL, \
             control_secret_id = $1, callback_token_hash = $2, box_torn_down = 0, parked = 0, updated_at = $3, \
             branch = $4, gateway_token_hash = $5, gateway_last_hash = NULL, gateway_repeats = 0 WHERE id = $6",
        )
        .bind(&secret)
        .bind(hash_token(&tokens.callback_token))
        .bind(self.now())
        .bind(&branch)
        .bind(hash_token(&tokens.gateway_token))
        .bind(task_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.tokens.clear();
        Ok(tokens)
    }

    /// Records where the task's new box can be reached.
    pub async fn set_box_address(&self, task_id: &str, addr: &BoxAddress) -> StoreResult<()> {
        sqlx::query(
            "UPDATE tasks SET box_id = $1, control_url = $2, code_url = $3, site_url = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&addr.box_id)
        .bind(&addr.control_url)
        .bind(&addr.code_url)
        .bind(&addr.site_url)
        .bind(self.now())
        .bind(task_id)
        .execute(&self.pool)
        .await?;
        self.tokens.clear();
        Ok(())
    }

    /// Mints tokens and records the address in one go (a box made outside the provisioning job).
    pub async fn attach_box(&self, task_id: &str, addr: &BoxAddress) -> StoreResult<BoxTokens> {
        let tokens = self.mint_box_tokens(task_id).await?;
        self.set_box_address(task_id, addr).await?;
        Ok(tokens)
    }

    /// The (task id, box id) a callback token is bound to, unless unknown or revoked.
    pub async fn callback_token_task(&self, token: &str) -> StoreResult<Option<(String, String)>> {
        let hash = hash_token(token);
        let generation = match self.tokens.get(&hash) {
            Ok(hit) => return Ok(Some(hit)),
            Err(generation) => generation,
        };
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, box_id FROM tasks WHERE callback_token_hash = $1")
                .bind(&hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(t, b)| {
            let b = b.unwrap_or_default();
            self.tokens.put(generation, hash, &t, &b);
            (t, b)
        }))
    }

    /// The decrypted control token of the task's box.
    pub async fn control_token(&self, task_id: &str) -> StoreResult<Option<String>> {
        let task = self.get_task(task_id).await?;
        match task.control_secret_id {
            Some(id) => self.get_secret(&id).await,
            None => Ok(None),
        }
    }

    /// The teardown sink's bookkeeping, after the provider destroyed the box: the callback
    /// token dies, the control secret is deleted for real, `box_torn_down` is set; `parked`
    /// marks a box taken away while waiting on a human.
    pub async fn detach_box(&self, task_id: &str, parked: bool) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let task = self.lock_task(&mut tx, task_id).await?;
        self.detach_in(&mut tx, &task, parked).await?;
        tx.commit().await?;
        self.tokens.clear();
        Ok(())
    }

    /// [`Store::detach_box`] inside a transaction that holds the task's lock (a retry detaches
    /// the failed attempt's box in the transition itself, so it never inherits it).
    pub(crate) async fn detach_in(
        &self,
        tx: &mut crate::db::Tx,
        task: &crate::Task,
        parked: bool,
    ) -> StoreResult<()> {
        if let Some(id) = &task.control_secret_id {
            sqlx::query("DELETE FROM secrets WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query(
            "UPDATE tasks SET callback_token_hash = NULL, gateway_token_hash = NULL, control_secret_id = NULL, box_torn_down = 1, \
             parked = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(i64::from(parked))
        .bind(self.now())
        .bind(&task.id)
        .execute(&mut **tx)
        .await?;
        // Cleared before the commit as well: a check that reads the old row in between keeps
        // it for at most the cache's second.
        self.tokens.clear();
        Ok(())
    }

    /// Records an error on a task without changing its status (a dispatch being retried).
    pub async fn set_last_error(&self, task_id: &str, error: Option<&str>) -> StoreResult<()> {
        let done = sqlx::query("UPDATE tasks SET last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(error)
            .bind(self.now())
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("task"));
        }
        Ok(())
    }

    /// Review comments of one round of the task's current attempt, oldest first.
    pub async fn review_comments(
        &self,
        task_id: &str,
        round: i64,
    ) -> StoreResult<Vec<ReviewComment>> {
        Ok(sqlx::query_as::<_, ReviewComment>(
            "SELECT c.id, c.round, c.author_id, COALESCE(c.author_name, u.name, 'someone') AS author_name, \
             c.body, c.path, c.line, c.created_at \
             FROM review_comments c LEFT JOIN users u ON u.id = c.author_id \
             WHERE c.task_id = $1 AND c.round = $2 \
             AND c.attempt = (SELECT attempt FROM tasks WHERE id = $1) ORDER BY c.created_at, c.id",
        )
        .bind(task_id)
        .bind(round)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every spec revision of a task, oldest first.
    pub async fn spec_revisions(&self, task_id: &str) -> StoreResult<Vec<SpecRevision>> {
        Ok(sqlx::query_as::<_, SpecRevision>(
            "SELECT revision, spec, feedback, created_at FROM spec_revisions WHERE task_id = $1 ORDER BY revision",
        )
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
