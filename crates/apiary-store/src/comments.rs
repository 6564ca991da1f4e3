//! Task comments written by people.

use crate::db::{new_id, Store};
use crate::error::{StoreError, StoreResult};

/// One comment on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub task_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: i64,
}
from_row!(Comment {
    id,
    task_id,
    author_id,
    body,
    created_at
});

impl Store {
    /// Adds a comment; the body must be 1 to 20,000 characters.
    pub async fn create_comment(
        &self,
        task_id: &str,
        author_id: &str,
        body: &str,
    ) -> StoreResult<Comment> {
        if body.trim().is_empty() || body.len() > 20_000 {
            return Err(StoreError::invalid("body", "must be 1 to 20000 characters"));
        }
        self.get_task(task_id).await?;
        let c = Comment {
            id: new_id(),
            task_id: task_id.to_string(),
            author_id: author_id.to_string(),
            body: body.to_string(),
            created_at: self.now(),
        };
        sqlx::query("INSERT INTO comments (id, task_id, author_id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&c.id)
            .bind(&c.task_id)
            .bind(&c.author_id)
            .bind(&c.body)
            .bind(c.created_at)
            .execute(&self.pool)
            .await?;
        Ok(c)
    }

    /// A task's comments, oldest first.
    pub async fn list_comments(&self, task_id: &str) -> StoreResult<Vec<Comment>> {
        Ok(sqlx::query_as::<_, Comment>(
            "SELECT id, task_id, author_id, body, created_at FROM comments WHERE task_id = $1 ORDER BY created_at, id",
        )
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
