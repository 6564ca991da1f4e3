//! Projects, their agent settings and who may see or change them.

use apiary_core::{ProjectAccess, Prompts, Role};

use crate::db::{flag, new_id, Store};
use crate::error::{StoreError, StoreResult};
use crate::users::User;

/// How the agent works on a project (DESIGN §3 `project.agent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectAgent {
    pub enabled: bool,
    pub repo_url: String,
    pub base_branch: String,
    pub template: String,
    pub preset: String,
    pub command: String,
    pub forge: String,
    pub prompts: Prompts,
    /// Whether a forge token (GitHub) is stored; the token itself never leaves the store
    /// except into a box's boot env.
    pub forge_token_set: bool,
    /// Run in the box after each implement/changes round, before the PR is submitted; a
    /// failure starts an automatic fix round. Blank: no checks.
    pub check_command: String,
    /// Serves the project's site in the box after each round (`$PORT`); blank: no preview.
    pub preview_command: String,
    /// The path under the site's base that answers once the preview is up.
    pub preview_ready_path: String,
    /// The GitHub issue label that turns an issue into a task of this project.
    pub trigger_label: String,
    /// Whether the project has a webhook secret of its own.
    pub webhook_secret_set: bool,
}

/// A project with its agent settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub agent: ProjectAgent,
    /// The agent's progress moves the task's card: a hand-off to "In progress", a merge to
    /// "Done", a cancel back to "To do".
    pub board_follows_agent: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

struct ProjectRow {
    id: String,
    name: String,
    description: String,
    agent_enabled: i64,
    repo_url: String,
    base_branch: String,
    template: String,
    preset: String,
    command: String,
    forge: String,
    prompt_spec: String,
    prompt_implement: String,
    prompt_changes: String,
    prompt_revise: String,
    forge_token_secret: Option<String>,
    check_command: String,
    preview_command: String,
    preview_ready_path: String,
    trigger_label: String,
    webhook_secret_id: Option<String>,
    board_follows_agent: i64,
    created_at: i64,
    updated_at: i64,
}
from_row!(ProjectRow {
    id,
    name,
    description,
    agent_enabled,
    repo_url,
    base_branch,
    template,
    preset,
    command,
    forge,
    prompt_spec,
    prompt_implement,
    prompt_changes,
    prompt_revise,
    forge_token_secret,
    check_command,
    preview_command,
    preview_ready_path,
    trigger_label,
    webhook_secret_id,
    board_follows_agent,
    created_at,
    updated_at
});

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            name: r.name,
            description: r.description,
            agent: ProjectAgent {
                enabled: flag(r.agent_enabled),
                repo_url: r.repo_url,
                base_branch: r.base_branch,
                template: r.template,
                preset: r.preset,
                command: r.command,
                forge: r.forge,
                prompts: Prompts {
                    spec: r.prompt_spec,
                    implement: r.prompt_implement,
                    changes: r.prompt_changes,
                    revise: r.prompt_revise,
                },
                forge_token_set: r.forge_token_secret.is_some(),
                check_command: r.check_command,
                preview_command: r.preview_command,
                preview_ready_path: r.preview_ready_path,
                trigger_label: r.trigger_label,
                webhook_secret_set: r.webhook_secret_id.is_some(),
            },
            board_follows_agent: flag(r.board_follows_agent),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const PROJECT_COLS: &str = "id, name, description, agent_enabled, repo_url, base_branch, template, \
    preset, command, forge, prompt_spec, prompt_implement, prompt_changes, prompt_revise, forge_token_secret, \
    check_command, preview_command, preview_ready_path, trigger_label, webhook_secret_id, \
    board_follows_agent, created_at, updated_at";

/// A new project's name and description.
#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    pub description: String,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub repo_url: Option<String>,
    pub base_branch: Option<String>,
    pub template: Option<String>,
    pub preset: Option<String>,
    pub command: Option<String>,
    pub forge: Option<String>,
    pub prompt_spec: Option<String>,
    pub prompt_implement: Option<String>,
    pub prompt_changes: Option<String>,
    pub prompt_revise: Option<String>,
    pub check_command: Option<String>,
    pub preview_command: Option<String>,
    pub preview_ready_path: Option<String>,
    pub trigger_label: Option<String>,
    pub board_follows_agent: Option<bool>,
}

/// The agent presets a project may pick (DESIGN §4).
pub const PRESETS: &[&str] = &[
    "claude-code",
    "codex",
    "aider",
    "opencode",
    "gemini",
    "script",
];

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> StoreResult<()> {
    let n = value.trim().chars().count();
    if n < min || value.len() > max {
        return Err(StoreError::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(())
}

impl ProjectPatch {
    fn validate(&self) -> StoreResult<()> {
        if let Some(v) = &self.name {
            check_len("name", v, 1, 200)?;
        }
        if let Some(v) = &self.description {
            check_len("description", v, 0, 20_000)?;
        }
        for (field, v) in [
            ("repo_url", &self.repo_url),
            ("template", &self.template),
            ("command", &self.command),
            ("check_command", &self.check_command),
            ("preview_command", &self.preview_command),
        ] {
            if let Some(v) = v {
                check_len(field, v, 0, 2_000)?;
            }
        }
        if let Some(v) = &self.base_branch {
            check_len("base_branch", v, 1, 200)?;
            if v.contains("..")
                || v.starts_with('-')
                || v.chars()
                    .any(|c| c.is_whitespace() || c == '~' || c == '^' || c == ':')
            {
                return Err(StoreError::invalid(
                    "base_branch",
                    "is not a valid branch name",
                ));
            }
        }
        if let Some(v) = &self.preset {
            if !PRESETS.contains(&v.as_str()) {
                return Err(StoreError::invalid(
                    "preset",
                    format!("must be one of {}", PRESETS.join(", ")),
                ));
            }
        }
        if let Some(v) = &self.preview_ready_path {
            check_len("preview_ready_path", v, 1, 500)?;
            if !v.starts_with('/') || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(StoreError::invalid(
                    "preview_ready_path",
                    "must be a path starting with / and without spaces",
                ));
            }
        }
        if let Some(v) = &self.trigger_label {
            check_len("trigger_label", v, 1, 50)?;
        }
        if let Some(v) = &self.forge {
            if v != "local" && v != "github" {
                return Err(StoreError::invalid("forge", "must be local or github"));
            }
        }
        for (field, v) in [
            ("prompts.spec", &self.prompt_spec),
            ("prompts.implement", &self.prompt_implement),
            ("prompts.changes", &self.prompt_changes),
            ("prompts.revise", &self.prompt_revise),
        ] {
            if let Some(v) = v {
                apiary_core::prompts::check_template(v)
                    .map_err(|e| StoreError::invalid(field, e))?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Creates a project; its creator gets write access.
    pub async fn create_project(&self, new: NewProject, creator: &User) -> StoreResult<Project> {
        check_len("name", &new.name, 1, 200)?;
        check_len("description", &new.description, 0, 20_000)?;
        let id = new_id();
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(new.name.trim())
        .bind(&new.description)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, access) VALUES ($1, $2, 'write')",
        )
        .bind(&id)
        .bind(&creator.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_project(&id).await
    }

    /// One project by id.
    pub async fn get_project(&self, id: &str) -> StoreResult<Project> {
        sqlx::query_as::<_, ProjectRow>(&format!(
            "SELECT {PROJECT_COLS} FROM projects WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(Project::from)
        .ok_or(StoreError::NotFound("project"))
    }

    /// The projects `user` can see: all of them for an admin, else those they are a member of.
    pub async fn list_projects_for(&self, user: &User) -> StoreResult<Vec<Project>> {
        let rows = if user.role == Role::Admin {
            sqlx::query_as::<_, ProjectRow>(&format!(
                "SELECT {PROJECT_COLS} FROM projects ORDER BY created_at, id"
            ))
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query_as::<_, ProjectRow>(&format!(
                "SELECT {PROJECT_COLS} FROM projects WHERE id IN \
                 (SELECT project_id FROM project_members WHERE user_id = $1) ORDER BY created_at, id"
            ))
            .bind(&user.id)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(rows.into_iter().map(Project::from).collect())
    }

    /// Applies a partial update; validation failures name the field and change nothing.
    pub async fn update_project(&self, id: &str, patch: ProjectPatch) -> StoreResult<Project> {
        patch.validate()?;
        let current = self.get_project(id).await?;
        let a = &current.agent;
        let pick = |new: &Option<String>, old: &str| new.clone().unwrap_or_else(|| old.to_string());
        sqlx::query(
            "UPDATE projects SET name = $1, description = $2, agent_enabled = $3, repo_url = $4, \
             base_branch = $5, template = $6, preset = $7, command = $8, forge = $9, prompt_spec = $10, \
             prompt_implement = $11, prompt_changes = $12, prompt_revise = $13, updated_at = $14, \
             check_command = $16, trigger_label = $17, board_follows_agent = $18, \
             preview_command = $19, preview_ready_path = $20 WHERE id = $15",
        )
        .bind(pick(&patch.name, &current.name).trim().to_string())
        .bind(pick(&patch.description, &current.description))
        .bind(i64::from(patch.enabled.unwrap_or(a.enabled)))
        .bind(pick(&patch.repo_url, &a.repo_url))
        .bind(pick(&patch.base_branch, &a.base_branch))
        .bind(pick(&patch.template, &a.template))
        .bind(pick(&patch.preset, &a.preset))
        .bind(pick(&patch.command, &a.command))
        .bind(pick(&patch.forge, &a.forge))
        .bind(pick(&patch.prompt_spec, &a.prompts.spec))
        .bind(pick(&patch.prompt_implement, &a.prompts.implement))
        .bind(pick(&patch.prompt_changes, &a.prompts.changes))
        .bind(pick(&patch.prompt_revise, &a.prompts.revise))
        .bind(self.now())
        .bind(id)
        .bind(pick(&patch.check_command, &a.check_command))
        .bind(
            pick(&patch.trigger_label, &a.trigger_label)
                .trim()
                .to_string(),
        )
        .bind(i64::from(
            patch
                .board_follows_agent
                .unwrap_or(current.board_follows_agent),
        ))
        .bind(pick(&patch.preview_command, &a.preview_command))
        .bind(pick(&patch.preview_ready_path, &a.preview_ready_path))
        .execute(&self.pool)
        .await?;
        self.get_project(id).await
    }

    /// What `user` may do in a project: admins write everywhere; the Agent user only reads
    /// (it acts through box tokens, never as a reviewer); members per membership.
    pub async fn project_access(
        &self,
        project_id: &str,
        user: &User,
    ) -> StoreResult<Option<ProjectAccess>> {
        match user.role {
            Role::Admin => Ok(Some(ProjectAccess::Write)),
            Role::Agent => Ok(None),
            Role::Member => {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT access FROM project_members WHERE project_id = $1 AND user_id = $2",
                )
                .bind(project_id)
                .bind(&user.id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.and_then(|(a,)| a.parse().ok()))
            }
        }
    }

    /// Grants (or changes) a member's access to a project.
    pub async fn set_project_member(
        &self,
        project_id: &str,
        user_id: &str,
        access: ProjectAccess,
    ) -> StoreResult<()> {
        self.get_project(project_id).await?;
        let user = self.get_user(user_id).await?;
        if user.role == Role::Agent {
            return Err(StoreError::invalid(
                "user_id",
                "the Agent user cannot be a project member",
            ));
        }
        sqlx::query(
            "INSERT INTO project_members (project_id, user_id, access) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET access = excluded.access",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(access.as_str())
        .execute(&self.pool)
        .await?;
        self.access_changed();
        Ok(())
    }

    /// Removes a member from a project.
    pub async fn remove_project_member(&self, project_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        self.access_changed();
        Ok(())
    }

    /// The addresses of the project's reviewers: members with write access.
    pub async fn project_reviewer_emails(&self, project_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT u.email FROM users u JOIN project_members m ON m.user_id = u.id \
             WHERE m.project_id = $1 AND m.access = 'write' AND u.role <> 'agent' ORDER BY u.email",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Stores (`Some`) or clears (`None`) the project's forge token, encrypted.
    pub async fn set_project_forge_token(
        &self,
        project_id: &str,
        token: Option<&str>,
    ) -> StoreResult<()> {
        self.set_project_secret(project_id, ProjectSecret::ForgeToken, token)
            .await
    }

    /// The project's forge token, decrypted (for a box's boot env and GitHub calls only).
    pub async fn project_forge_token(&self, project_id: &str) -> StoreResult<Option<String>> {
        self.project_secret(project_id, ProjectSecret::ForgeToken)
            .await
    }

    /// Stores (`Some`) or clears (`None`) one of the project's secrets, encrypted.
    pub async fn set_project_secret(
        &self,
        project_id: &str,
        which: ProjectSecret,
        value: Option<&str>,
    ) -> StoreResult<()> {
        let column = which.column();
        let mut tx = self.begin().await?;
        let old: Option<(Option<String>,)> =
            sqlx::query_as(&format!("SELECT {column} FROM projects WHERE id = $1"))
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((old,)) = old else {
            return Err(StoreError::NotFound("project"));
        };
        if let Some(old) = old {
            sqlx::query("DELETE FROM secrets WHERE id = $1")
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        let new = match value {
            Some(t) => Some(self.put_secret_in(&mut tx, t).await?),
            None => None,
        };
        sqlx::query(&format!(
            "UPDATE projects SET {column} = $1, updated_at = $2 WHERE id = $3"
        ))
        .bind(new)
        .bind(self.now())
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One of the project's secrets, decrypted (for the code that uses it; never for an API
    /// answer).
    pub async fn project_secret(
        &self,
        project_id: &str,
        which: ProjectSecret,
    ) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(&format!(
            "SELECT {} FROM projects WHERE id = $1",
            which.column()
        ))
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        match row.and_then(|r| r.0) {
            Some(id) => self.get_secret(&id).await,
            None => Ok(None),
        }
    }
}

/// The secrets a project keeps (encrypted in `secrets`, referenced from its row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectSecret {
    /// The GitHub token of the `github` forge.
    ForgeToken,
    /// The project's own GitHub webhook secret: deliveries for its repository must be signed
    /// with it (the global one no longer reaches the project).
    WebhookSecret,
}

impl ProjectSecret {
    fn column(self) -> &'static str {
        match self {
            ProjectSecret::ForgeToken => "forge_token_secret",
            ProjectSecret::WebhookSecret => "webhook_secret_id",
        }
    }
}
