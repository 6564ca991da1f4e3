//! Sessions and personal API tokens. Only SHA-256 hashes of the random tokens are stored:
//! a leaked database gives no usable credential.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{new_id, Store};
use crate::error::{StoreError, StoreResult};
use crate::users::{User, UserRow, USER_COLS};

/// A random 256-bit token, hex-encoded, with a readable prefix (`apiary_pat_…`).
pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A signed-in session: its user and the CSRF token writes must echo.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: User,
    pub csrf_token: String,
}

impl Store {
    /// Opens a session for `user_id`; returns (cookie token, CSRF token).
    pub async fn create_session(
        &self,
        user_id: &str,
        ttl_ms: i64,
    ) -> StoreResult<(String, String)> {
        let token = new_token("");
        let csrf = new_token("");
        let now = self.now();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&token))
        .bind(user_id)
        .bind(&csrf)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&self.pool)
        .await?;
        Ok((token, csrf))
    }

    /// The live session behind a cookie token, if any.
    pub async fn session(&self, token: &str) -> StoreResult<Option<SessionInfo>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT user_id, csrf_token FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(hash_token(token))
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((user_id, csrf_token)) => Ok(Some(SessionInfo {
                user: self.get_user(&user_id).await?,
                csrf_token,
            })),
            None => Ok(None),
        }
    }

    /// Ends a session (logout). Unknown tokens are fine.
    pub async fn delete_session(&self, token: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(hash_token(token))
            .bind(self.now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates a personal API token; returns (token id, token). The token is shown once.
    pub async fn create_api_token(
        &self,
        user_id: &str,
        name: &str,
    ) -> StoreResult<(String, String)> {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
        }
        let user = self.get_user(user_id).await?;
        if user.role == apiary_core::Role::Agent {
            return Err(StoreError::invalid(
                "user",
                "the Agent user cannot hold personal tokens",
            ));
        }
        let id = new_id();
        let token = new_token("apiary_pat_");
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(name.trim())
        .bind(hash_token(&token))
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok((id, token))
    }

    /// The user a personal token belongs to, unless it is unknown or revoked.
    pub async fn api_token_user(&self, token: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {} FROM users u JOIN api_tokens t ON t.user_id = u.id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
            USER_COLS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(UserRow::into_user))
    }

    /// The user behind a credential named by its hash (`s<hash>`: a live session, `t<hash>`: a
    /// personal token not revoked), so what was handed out on its strength (a site preview's
    /// cookie) ends with it.
    pub async fn credential_user(&self, grant: &str) -> StoreResult<Option<User>> {
        let row: Option<(String,)> =
            match grant.split_at_checked(1) {
                Some(("s", hash)) => {
                    sqlx::query_as(
                        "SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > $2",
                    )
                    .bind(hash)
                    .bind(self.now())
                    .fetch_optional(&self.pool)
                    .await?
                }
                Some(("t", hash)) => sqlx::query_as(
                    "SELECT user_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
                _ => None,
            };
        match row {
            Some((user_id,)) => Ok(Some(self.get_user(&user_id).await?)),
            None => Ok(None),
        }
    }

    /// Revokes a personal token by id.
    pub async fn revoke_api_token(&self, id: &str) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("token"));
        }
        Ok(())
    }
}
