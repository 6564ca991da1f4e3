//! Users, password checks and the first-start bootstrap (the Agent user and the first admin).

use apiary_core::Role;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distributions::{Alphanumeric, DistString};

use crate::db::{new_id, Store};
use crate::error::{StoreError, StoreResult};

/// The Agent user's address; it has no password and can never sign in.
pub const AGENT_EMAIL: &str = "agent@apiary.local";

/// A user as the rest of Apiary sees it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

pub(crate) struct UserRow {
    id: String,
    email: String,
    name: String,
    role: String,
    created_at: i64,
}
from_row!(UserRow {
    id,
    email,
    name,
    role,
    created_at
});

impl UserRow {
    pub(crate) fn into_user(self) -> User {
        User {
            id: self.id,
            email: self.email,
            name: self.name,
            role: self.role.parse().unwrap_or(Role::Member),
            created_at: self.created_at,
        }
    }
}

pub(crate) const USER_COLS: &str = "id, email, name, role, created_at";

/// What `user create` and the bootstrap need to make a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// `None` makes a user that cannot sign in (the Agent user).
    pub password: Option<String>,
}

/// Hashes a password with argon2id off the async threads (it is deliberately slow).
async fn hash_password(password: String) -> StoreResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| StoreError::invalid("password", e.to_string()))
    })
    .await
    .map_err(|e| StoreError::invalid("password", e.to_string()))?
}

/// A real hash of a random password, made once, to verify against for unknown users.
async fn dummy_hash() -> StoreResult<String> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password(Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24)))
        .await
        .cloned()
}

fn validate_new_user(u: &NewUser) -> StoreResult<()> {
    let email = u.email.trim();
    if email.is_empty() || email.len() > 254 || !email.contains('@') {
        return Err(StoreError::invalid("email", "must be an email address"));
    }
    if u.name.trim().is_empty() || u.name.len() > 200 {
        return Err(StoreError::invalid("name", "must be 1 to 200 characters"));
    }
    if let Some(p) = &u.password {
        if p.len() < 8 || p.len() > 1024 {
            return Err(StoreError::invalid(
                "password",
                "must be 8 to 1024 characters",
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Creates a user; a taken email answers `Conflict` on `email`.
    pub async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        validate_new_user(&new)?;
        let hash = match new.password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let id = new_id();
        let now = self.now();
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(new.email.trim().to_lowercase())
        .bind(new.name.trim())
        .bind(new.role.as_str())
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::unique(e, "email", "a user with this email exists"))?;
        self.get_user(&id).await
    }

    /// One user by id.
    pub async fn get_user(&self, id: &str) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(UserRow::into_user)
            .ok_or(StoreError::NotFound("user"))
    }

    /// Every user, oldest first (for assignee pickers).
    pub async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLS} FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(UserRow::into_user)
        .collect())
    }

    /// The Agent user, which the bootstrap guarantees exists.
    pub async fn agent_user(&self) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLS} FROM users WHERE role = 'agent' ORDER BY created_at LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::into_user)
        .ok_or(StoreError::NotFound("agent user"))
    }

    /// Checks an email and password; `None` for an unknown email, a wrong password or a user
    /// without one. Takes about as long either way.
    pub async fn verify_password(&self, email: &str, password: &str) -> StoreResult<Option<User>> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
        // An unknown user still pays for one hash so timing does not reveal who exists.
        let (id, hash) = match row {
            Some((id, Some(hash))) => (Some(id), hash),
            _ => (None, dummy_hash().await?),
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        match (ok, id) {
            (true, Some(id)) => Ok(Some(self.get_user(&id).await?)),
            _ => Ok(None),
        }
    }

    /// Makes sure the Agent user and one admin exist. Returns the admin created now and its
    /// password when it was generated here (to be printed once); `None` when nothing changed.
    pub async fn bootstrap(
        &self,
        admin_email: Option<String>,
        admin_password: Option<String>,
    ) -> StoreResult<Option<(User, Option<String>)>> {
        let agents: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE role = 'agent'")
            .fetch_one(&self.pool)
            .await?;
        if agents.0 == 0 {
            self.create_user(NewUser {
                email: AGENT_EMAIL.into(),
                name: "Agent".into(),
                role: Role::Agent,
                password: None,
            })
            .await?;
        }
        let admins: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE role = 'admin'")
            .fetch_one(&self.pool)
            .await?;
        if admins.0 > 0 {
            return Ok(None);
        }
        let generated = admin_password.is_none();
        let password = admin_password
            .unwrap_or_else(|| Alphanumeric.sample_string(&mut rand::rngs::OsRng, 20));
        let admin = self
            .create_user(NewUser {
                email: admin_email.unwrap_or_else(|| "admin@localhost".into()),
                name: "Admin".into(),
                role: Role::Admin,
                password: Some(password.clone()),
            })
            .await?;
        Ok(Some((admin, generated.then_some(password))))
    }

    /// When sign-in for `email` (an account or not) is locked, until when (ms).
    pub async fn login_locked_until(&self, email: &str) -> StoreResult<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT locked_until FROM login_attempts WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| r.0).filter(|until| *until > self.now()))
    }

    /// Counts a sign-in attempt for `email` before its password is checked, in one statement
    /// (so concurrent guesses cannot all pass a check made earlier): refused with the lock's
    /// end while the email is locked; the `max`-th attempt in a row locks it for `lock_ms`.
    /// Emails without an account are counted the same way. A lock that has passed starts
    /// the count again.
    pub async fn claim_login_attempt(
        &self,
        email: &str,
        max: i64,
        lock_ms: i64,
    ) -> StoreResult<Result<(), i64>> {
        let email = email.trim().to_lowercase();
        let now = self.now();
        let until = now + lock_ms;
        let fresh = "CASE WHEN login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $3 \
                     THEN 1 ELSE login_attempts.failures + 1 END";
        let claimed: Option<(i64,)> = sqlx::query_as(&format!(
            "INSERT INTO login_attempts (email, failures, locked_until) \
             VALUES ($1, 1, CASE WHEN 1 >= $2 THEN $4 ELSE NULL END) \
             ON CONFLICT (email) DO UPDATE SET failures = {fresh}, \
             locked_until = CASE WHEN {fresh} >= $2 THEN $4 ELSE NULL END \
             WHERE login_attempts.locked_until IS NULL OR login_attempts.locked_until <= $3 \
             RETURNING failures"
        ))
        .bind(&email)
        .bind(max)
        .bind(now)
        .bind(until)
        .fetch_optional(&self.pool)
        .await?;
        if claimed.is_some() {
            return Ok(Ok(()));
        }
        Ok(Err(self.login_locked_until(&email).await?.unwrap_or(until)))
    }

    /// A successful sign-in (or a password reset) clears the count and any lock.
    pub async fn clear_login_failures(&self, email: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_attempts WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a user's password (the host's way back in, `apiary user reset-password`): clears
    /// the sign-in lock and ends the user's sessions.
    pub async fn reset_password(&self, email: &str, password: &str) -> StoreResult<User> {
        if password.len() < 8 || password.len() > 1024 {
            return Err(StoreError::invalid("password", "must be 8 to 1024 bytes"));
        }
        let email = email.trim().to_lowercase();
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, role FROM users WHERE email = $1")
                .bind(&email)
                .fetch_optional(&self.pool)
                .await?;
        let Some((id, role)) = row else {
            return Err(StoreError::NotFound("user"));
        };
        if role == "agent" {
            return Err(StoreError::invalid(
                "email",
                "the Agent user has no password",
            ));
        }
        let hash = hash_password(password.to_string()).await?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2")
            .bind(&hash)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM login_attempts WHERE email = $1")
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.access_changed();
        self.get_user(&id).await
    }
}
