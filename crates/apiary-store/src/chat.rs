//! Chat identities and chat state: a Telegram or Slack user linked to an Apiary user (through
//! a one-time code kept only as a hash), the replies Apiary waits for after a button that
//! needs words, and whether a button's task moved on since the button was made.

use apiary_core::chat::{ChatAction, Via};
use rand::Rng;

use crate::auth::hash_token;
use crate::db::Store;
use crate::error::StoreResult;
use crate::users::{User, UserRow, USER_COLS};

/// How long a link code works.
const LINK_CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// How long Apiary waits for the reply to a "what should change?" prompt.
const PROMPT_TTL_MS: i64 = 24 * 3600 * 1000;
/// The settings row holding Telegram's poll offset.
const POLL_OFFSET_KEY: &str = "telegram.poll_offset";
/// Letters and digits that cannot be mistaken for one another when typed from a screen.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A chat user acting as an Apiary user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLink {
    pub via: String,
    pub chat_user_id: String,
    pub user_id: String,
    pub chat_user_name: String,
    pub created_at: i64,
}
from_row!(ChatLink {
    via,
    chat_user_id,
    user_id,
    chat_user_name,
    created_at
});

/// A reply Apiary waits for: the words for `action` on `task_id`, from `chat_user_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPrompt {
    pub task_id: String,
    pub action: ChatAction,
    /// The audit event of the button that asked.
    pub event_id: i64,
    pub chat_user_id: String,
}

struct PromptRow {
    task_id: String,
    action: String,
    event_id: i64,
    chat_user_id: String,
}
from_row!(PromptRow {
    task_id,
    action,
    event_id,
    chat_user_id
});

impl Store {
    /// A new one-time link code for `user_id` (any earlier one stops working), and when it
    /// expires.
    pub async fn new_chat_link_code(&self, user_id: &str) -> StoreResult<(String, i64)> {
        let code: String = {
            let mut rng = rand::rngs::OsRng;
            (0..10)
                .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
                .collect()
        };
        let now = self.now();
        let expires_at = now + LINK_CODE_TTL_MS;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM chat_link_codes WHERE user_id = $1 OR expires_at < $2")
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO chat_link_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(hash_token(&code))
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((code, expires_at))
    }

    /// Redeems a link code from a chat user: the code is used up, and the chat user now acts
    /// as the code's user (replacing that user's earlier account on this chat, and whoever
    /// this chat account was linked to). `None` for an unknown or expired code.
    pub async fn redeem_chat_link_code(
        &self,
        code: &str,
        via: Via,
        chat_user_id: &str,
        chat_user_name: &str,
    ) -> StoreResult<Option<User>> {
        let code = code.trim().to_ascii_uppercase();
        if code.is_empty() || code.len() > 64 {
            return Ok(None);
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "DELETE FROM chat_link_codes WHERE code_hash = $1 AND expires_at >= $2 RETURNING user_id",
        )
        .bind(hash_token(&code))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id,)) = row else {
            return Ok(None);
        };
        sqlx::query(
            "DELETE FROM chat_links WHERE via = $1 AND (chat_user_id = $2 OR user_id = $3)",
        )
        .bind(via.as_str())
        .bind(chat_user_id)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_links (via, chat_user_id, user_id, chat_user_name, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(via.as_str())
        .bind(chat_user_id)
        .bind(&user_id)
        .bind(chat_user_name.chars().take(200).collect::<String>())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let user =
            sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                .bind(&user_id)
                .fetch_one(&mut *tx)
                .await?
                .into_user();
        tx.commit().await?;
        Ok(Some(user))
    }

    /// The Apiary user a chat user acts as, if linked.
    pub async fn chat_user(&self, via: Via, chat_user_id: &str) -> StoreResult<Option<User>> {
        let cols = USER_COLS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {cols} FROM chat_links l JOIN users u ON u.id = l.user_id \
             WHERE l.via = $1 AND l.chat_user_id = $2"
        ))
        .bind(via.as_str())
        .bind(chat_user_id)
        .fetch_optional(&self.pool)
        .await?
        .map(UserRow::into_user))
    }

    /// A user's chat accounts.
    pub async fn chat_links(&self, user_id: &str) -> StoreResult<Vec<ChatLink>> {
        Ok(sqlx::query_as::<_, ChatLink>(
            "SELECT via, chat_user_id, user_id, chat_user_name, created_at FROM chat_links \
             WHERE user_id = $1 ORDER BY via",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Unlinks a user's account on one chat; `false` when there was none.
    pub async fn unlink_chat(&self, user_id: &str, via: Via) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM chat_links WHERE user_id = $1 AND via = $2")
            .bind(user_id)
            .bind(via.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Remembers that the chat message `message_id` in `chat_id` is `prompt`'s question.
    pub async fn save_chat_prompt(
        &self,
        via: Via,
        chat_id: &str,
        message_id: &str,
        prompt: &ChatPrompt,
    ) -> StoreResult<()> {
        let now = self.now();
        sqlx::query("DELETE FROM chat_prompts WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO chat_prompts (via, chat_id, message_id, task_id, action, event_id, chat_user_id, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (via, chat_id, message_id) DO NOTHING",
        )
        .bind(via.as_str())
        .bind(chat_id)
        .bind(message_id)
        .bind(&prompt.task_id)
        .bind(prompt.action.code())
        .bind(prompt.event_id)
        .bind(&prompt.chat_user_id)
        .bind(now + PROMPT_TTL_MS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The prompt a chat message is, while it waits for its reply.
    pub async fn chat_prompt(
        &self,
        via: Via,
        chat_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<ChatPrompt>> {
        let row = sqlx::query_as::<_, PromptRow>(
            "SELECT task_id, action, event_id, chat_user_id FROM chat_prompts \
             WHERE via = $1 AND chat_id = $2 AND message_id = $3 AND expires_at >= $4",
        )
        .bind(via.as_str())
        .bind(chat_id)
        .bind(message_id)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            Some(ChatPrompt {
                action: ChatAction::parse(&r.action)?,
                task_id: r.task_id,
                event_id: r.event_id,
                chat_user_id: r.chat_user_id,
            })
        }))
    }

    /// Takes a prompt away once answered; `false` when another reply took it first.
    pub async fn drop_chat_prompt(
        &self,
        via: Via,
        chat_id: &str,
        message_id: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM chat_prompts WHERE via = $1 AND chat_id = $2 AND message_id = $3",
        )
        .bind(via.as_str())
        .bind(chat_id)
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the task changed status after its audit event `event_id` (what a chat button
    /// was made for): such a button no longer applies.
    pub async fn moved_on_since(&self, task_id: &str, event_id: i64) -> StoreResult<bool> {
        let (later,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM task_events WHERE task_id = $1 AND kind = 'transition' AND id > $2",
        )
        .bind(task_id)
        .bind(event_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(later > 0)
    }

    /// The next Telegram update to ask for (`getUpdates`' offset), kept so that a restart or
    /// another replica taking over the poll does not take the last updates again.
    pub async fn telegram_poll_offset(&self) -> StoreResult<Option<i64>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(POLL_OFFSET_KEY)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(v,)| v.parse().ok()))
    }

    /// Records [`Store::telegram_poll_offset`].
    pub async fn set_telegram_poll_offset(&self, offset: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(POLL_OFFSET_KEY)
        .bind(offset.to_string())
        .bind(self.now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
