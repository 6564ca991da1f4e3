//! Secrets at rest: ChaCha20-Poly1305 with a key from `APIARY_SECRET_KEY` or a key file in
//! the data folder. Plaintext never reaches the database and is never returned by an API.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::path::Path;

use crate::db::{new_id, Store, Tx};
use crate::error::{StoreError, StoreResult};

/// The 256-bit key that encrypts secrets.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key for `purpose` (signing site-preview links, say) derived from this one, so the
    /// secrets key itself is never used for anything but secrets.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"apiary-derived-key\0");
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(self.0);
        h.finalize().into()
    }

    /// A random key (tests, and the first start without a key file).
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        SecretKey(k)
    }

    /// Parses 64 hex characters or standard base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .or_else(|_| B64.decode(text))
            .map_err(|_| "APIARY_SECRET_KEY must be 32 bytes in hex or base64".to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "APIARY_SECRET_KEY must be exactly 32 bytes".to_string())?;
        Ok(SecretKey(arr))
    }

    /// Reads the key file, creating it (mode 0600) with a random key when absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        if path.exists() {
            let text = std::fs::read_to_string(path)?;
            return SecretKey::parse(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
        let key = SecretKey::generate();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        use std::io::Write;
        let mut f = opts.open(path)?;
        f.write_all(hex::encode(key.0).as_bytes())?;
        Ok(key)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.0))
    }
}

impl Store {
    /// A key for `purpose`, the same on every replica that shares the secrets key.
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.key.derive(purpose)
    }

    /// Encrypts and stores a secret inside `tx`; returns its id (the "secret ref").
    pub(crate) async fn put_secret_in(&self, tx: &mut Tx, plaintext: &str) -> StoreResult<String> {
        let id = new_id();
        self.put_secret_with_id(tx, &id, plaintext).await?;
        Ok(id)
    }

    /// Encrypts and stores a secret under a chosen id inside `tx`.
    pub(crate) async fn put_secret_with_id(
        &self,
        tx: &mut Tx,
        id: &str,
        plaintext: &str,
    ) -> StoreResult<()> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .key
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| StoreError::Crypto)?;
        sqlx::query(
            "INSERT INTO secrets (id, nonce, ciphertext, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(B64.encode(nonce))
        .bind(B64.encode(ct))
        .bind(self.now())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Encrypts and stores a secret; returns its id.
    pub async fn put_secret(&self, plaintext: &str) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        let id = self.put_secret_in(&mut tx, plaintext).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Decrypts a stored secret; `None` when it was deleted.
    pub async fn get_secret(&self, id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT nonce, ciphertext FROM secrets WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((nonce, ct)) = row else {
            return Ok(None);
        };
        let nonce = B64.decode(nonce).map_err(|_| StoreError::Crypto)?;
        let ct = B64.decode(ct).map_err(|_| StoreError::Crypto)?;
        if nonce.len() != 12 {
            return Err(StoreError::Crypto);
        }
        let pt = self
            .key
            .cipher()
            .decrypt(Nonce::from_slice(&nonce), ct.as_slice())
            .map_err(|_| StoreError::Crypto)?;
        String::from_utf8(pt)
            .map(Some)
            .map_err(|_| StoreError::Crypto)
    }

    /// Deletes a secret for real (not a soft delete).
    pub async fn delete_secret(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM secrets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The raw stored ciphertext, so tests can show the plaintext is not in the database.
    pub async fn secret_ciphertext(&self, id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT ciphertext FROM secrets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }
}
