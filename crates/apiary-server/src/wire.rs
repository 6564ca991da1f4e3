//! Wire types of the user API (DESIGN §3), mapped from the store's types. Inputs reject
//! unknown fields, so a client cannot believe it wrote something (like `agent_status`) that
//! was silently ignored. Times are RFC 3339 strings.

use apiary_core::{BoardStatus, ProjectAccess, Role};
use apiary_store as store;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Formats milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

impl From<store::User> for UserOut {
    fn from(u: store::User) -> Self {
        UserOut {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginOut {
    pub user: UserOut,
    /// Echo this in `X-CSRF-Token` on every cookie-authenticated write.
    pub csrf_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeOut {
    pub user: UserOut,
    /// Present for cookie sessions.
    pub csrf_token: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptsIo {
    pub spec: String,
    pub implement: String,
    pub changes: String,
    pub revise: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectAgentOut {
    pub enabled: bool,
    pub repo_url: String,
    pub base_branch: String,
    pub template: String,
    pub preset: String,
    pub command: String,
    pub forge: String,
    pub prompts: PromptsIo,
    /// The GitHub token of the `github` forge: write-only, read back as `{"set": bool}`.
    pub github_token: crate::routes::settings::SecretState,
    /// Run in the box after each round, before the PR (e.g. `make test`); a failure starts
    /// an automatic fix round. Blank: none. Admins set it.
    pub check_command: String,
    /// Serves the project's site in the box after each round, on `$PORT`, under
    /// `$APIARY_SITE_BASE` (e.g. `npm run dev -- --port $PORT --base $APIARY_SITE_BASE`); the
    /// task's Site link shows it. Blank: no preview. Admins set it.
    pub preview_command: String,
    /// The path (under the site's base) that answers once the preview is up; default `/`.
    pub preview_ready_path: String,
    /// The GitHub issue label that makes an issue a task of this project.
    pub trigger_label: String,
    /// The project's own GitHub webhook secret: write-only, read back as `{"set": bool}`.
    pub github_webhook_secret: crate::routes::settings::SecretState,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectOut {
    pub id: String,
    pub name: String,
    pub description: String,
    pub agent: ProjectAgentOut,
    /// The agent's progress moves the task's card (hand-off → in progress, merged → done,
    /// cancelled → to do); people's own moves still win until the agent's next step.
    pub board_follows_agent: bool,
    /// The caller's access: `read` or `write`.
    #[schema(value_type = String)]
    pub access: ProjectAccess,
    pub created_at: String,
    pub updated_at: String,
}

impl ProjectOut {
    pub fn new(p: store::Project, access: ProjectAccess) -> Self {
        let a = p.agent;
        ProjectOut {
            id: p.id,
            name: p.name,
            description: p.description,
            agent: ProjectAgentOut {
                enabled: a.enabled,
                repo_url: if access == ProjectAccess::Write {
                    a.repo_url
                } else {
                    strip_credentials(&a.repo_url)
                },
                base_branch: a.base_branch,
                template: a.template,
                preset: a.preset,
                command: a.command,
                forge: a.forge,
                prompts: PromptsIo {
                    spec: a.prompts.spec,
                    implement: a.prompts.implement,
                    changes: a.prompts.changes,
                    revise: a.prompts.revise,
                },
                github_token: crate::routes::settings::SecretState {
                    set: a.forge_token_set,
                },
                check_command: a.check_command,
                preview_command: a.preview_command,
                preview_ready_path: a.preview_ready_path,
                trigger_label: a.trigger_label,
                github_webhook_secret: crate::routes::settings::SecretState {
                    set: a.webhook_secret_set,
                },
            },
            board_follows_agent: p.board_follows_agent,
            access,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// `repo_url` without the user information of a `scheme://user:secret@host/…` URL (a token
/// often rides there), for members who may only read the project.
pub fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A user as every member sees them: who can be assigned or named; email and role only for
/// admins.
#[derive(Serialize, ToSchema)]
pub struct PersonOut {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "member")]
    pub role: Option<Role>,
}

impl PersonOut {
    pub fn new(u: store::User, full: bool) -> Self {
        PersonOut {
            id: u.id,
            name: u.name,
            email: full.then_some(u.email),
            role: full.then_some(u.role),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectIn {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptsPatch {
    pub spec: Option<String>,
    pub implement: Option<String>,
    pub changes: Option<String>,
    pub revise: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectAgentPatch {
    pub enabled: Option<bool>,
    pub repo_url: Option<String>,
    pub base_branch: Option<String>,
    pub template: Option<String>,
    pub preset: Option<String>,
    pub command: Option<String>,
    pub forge: Option<String>,
    pub prompts: Option<PromptsPatch>,
    /// `""` or absent keeps, `null` clears, a value replaces.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<String>, nullable)]
    pub github_token: Option<Option<String>>,
    pub check_command: Option<String>,
    pub preview_command: Option<String>,
    pub preview_ready_path: Option<String>,
    pub trigger_label: Option<String>,
    /// The project's own GitHub webhook secret; `""` or absent keeps, `null` clears.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<String>, nullable)]
    pub github_webhook_secret: Option<Option<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatchIn {
    pub name: Option<String>,
    pub description: Option<String>,
    pub board_follows_agent: Option<bool>,
    pub agent: Option<ProjectAgentPatch>,
}

impl ProjectPatchIn {
    /// The token write this patch asks for: `Some(None)` clears, `Some(Some(t))` sets.
    pub fn github_token(&self) -> Option<Option<String>> {
        secret_write(self.agent.as_ref().and_then(|a| a.github_token.clone()))
    }

    /// The webhook secret write this patch asks for, as [`Self::github_token`].
    pub fn webhook_secret(&self) -> Option<Option<String>> {
        secret_write(
            self.agent
                .as_ref()
                .and_then(|a| a.github_webhook_secret.clone()),
        )
    }
}

impl From<ProjectPatchIn> for store::ProjectPatch {
    fn from(p: ProjectPatchIn) -> Self {
        let a = p.agent.unwrap_or_default();
        let pr = a.prompts.unwrap_or_default();
        store::ProjectPatch {
            name: p.name,
            description: p.description,
            enabled: a.enabled,
            repo_url: a.repo_url,
            base_branch: a.base_branch,
            template: a.template,
            preset: a.preset,
            command: a.command,
            forge: a.forge,
            prompt_spec: pr.spec,
            prompt_implement: pr.implement,
            prompt_changes: pr.changes,
            prompt_revise: pr.revise,
            check_command: a.check_command,
            preview_command: a.preview_command,
            preview_ready_path: a.preview_ready_path,
            trigger_label: a.trigger_label,
            board_follows_agent: p.board_follows_agent,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    #[schema(value_type = String, example = "write")]
    pub access: ProjectAccess,
}

#[derive(Serialize, ToSchema)]
pub struct TaskAgentOut {
    pub status: String,
    pub pr_url: Option<String>,
    pub spec: Option<String>,
    pub spec_revision: i64,
    pub last_error: Option<String>,
    pub box_id: Option<String>,
    pub code_url: Option<String>,
    pub site_url: Option<String>,
    pub branch: Option<String>,
    pub box_torn_down: bool,
    pub parked: bool,
    pub round: i64,
    pub attempt: i64,
    pub queue_position: Option<i64>,
    pub status_changed_at: String,
    /// The GitHub issue the task came from.
    pub github_issue: Option<i64>,
    /// Automatic fix rounds spent on failing checks in this attempt.
    pub fix_rounds: i64,
    /// What this attempt spent through the model gateway, in US dollars.
    pub spent_usd: f64,
    /// The last check result of the PR's head (the check command's, or GitHub's failing checks).
    pub checks: Option<apiary_core::forge::CheckReport>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskOut {
    pub id: String,
    pub project_id: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = String, example = "todo")]
    pub status: BoardStatus,
    pub assignee_id: Option<String>,
    pub agent: TaskAgentOut,
    pub created_at: String,
    pub updated_at: String,
}

impl From<store::Task> for TaskOut {
    fn from(t: store::Task) -> Self {
        TaskOut {
            id: t.id,
            project_id: t.project_id,
            title: t.title,
            description: t.description,
            status: t.status,
            assignee_id: t.assignee_id,
            agent: TaskAgentOut {
                status: t.agent_status.as_str().to_string(),
                pr_url: t.pr_url,
                spec: t.spec,
                spec_revision: t.spec_revision,
                last_error: t.last_error,
                box_id: t.box_id,
                code_url: t.code_url,
                site_url: t.site_url,
                branch: t.branch,
                box_torn_down: t.box_torn_down,
                parked: t.parked,
                round: t.round,
                attempt: t.attempt,
                queue_position: t.queue_position,
                status_changed_at: rfc3339(t.status_changed_at),
                github_issue: t.github_issue,
                fix_rounds: t.fix_rounds,
                spent_usd: t.spent_micros as f64 / 1e6,
                checks: t
                    .checks_json
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok()),
            },
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIn {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Option<String>, example = "todo")]
    pub status: Option<BoardStatus>,
    pub assignee_id: Option<String>,
}

/// A write-only field's write: `""` keeps (as absent does).
fn secret_write(w: Option<Option<String>>) -> Option<Option<String>> {
    match w {
        Some(Some(t)) if t.is_empty() => None,
        other => other,
    }
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn explicit_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatchIn {
    pub title: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<String>, example = "in_progress")]
    pub status: Option<BoardStatus>,
    /// A user id; the Agent user's id hands the task to the agent; `null` unassigns.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<String>, nullable)]
    pub assignee_id: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct CommentOut {
    pub id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: String,
}

impl From<store::Comment> for CommentOut {
    fn from(c: store::Comment) -> Self {
        CommentOut {
            id: c.id,
            author_id: c.author_id,
            body: c.body,
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    pub body: String,
}

#[derive(Serialize, ToSchema)]
pub struct TaskEventOut {
    pub id: i64,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    /// `human`, `system` or `box`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub message: Option<String>,
    /// The chat a human acted from (`telegram`, `slack`); absent for the web and the API.
    pub via: Option<String>,
    pub created_at: String,
}

impl From<store::TaskEvent> for TaskEventOut {
    fn from(e: store::TaskEvent) -> Self {
        TaskEventOut {
            id: e.id,
            kind: e.kind,
            from_status: e.from_status,
            to_status: e.to_status,
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            message: e.message,
            via: e.via,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogLineOut {
    pub seq: i64,
    pub line: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogPage {
    pub lines: Vec<LogLineOut>,
    /// Pass as `after` to read on.
    pub next_after: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TransitionOut {
    pub task: TaskOut,
    /// False when the task already had the requested status (nothing happened).
    pub changed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct SpecRevisionOut {
    pub revision: i64,
    pub spec: String,
    /// The reviewer's feedback that asked for this revision (none for the first).
    pub feedback: Option<String>,
    pub created_at: String,
}

impl From<store::SpecRevision> for SpecRevisionOut {
    fn from(r: store::SpecRevision) -> Self {
        SpecRevisionOut {
            revision: r.revision,
            spec: r.spec,
            feedback: r.feedback,
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ReviewCommentOut {
    pub author: String,
    pub body: String,
    pub path: Option<String>,
    pub line: Option<i64>,
}

impl From<store::ReviewComment> for ReviewCommentOut {
    fn from(c: store::ReviewComment) -> Self {
        ReviewCommentOut {
            author: c.author_name,
            body: c.body,
            path: c.path,
            line: c.line,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TimeoutsOut {
    pub provisioning_s: u64,
    pub speccing_s: u64,
    pub implementing_s: u64,
    pub idle_s: u64,
    pub failed_grace_s: u64,
    /// A box that cannot reach Apiary this long exits, cleaning up after itself.
    pub orphan_s: u64,
    /// An agent with no model request and no log line this long is stopped.
    pub stall_s: u64,
}

impl From<apiary_core::Timeouts> for TimeoutsOut {
    fn from(t: apiary_core::Timeouts) -> Self {
        TimeoutsOut {
            provisioning_s: t.provisioning_s,
            speccing_s: t.speccing_s,
            implementing_s: t.implementing_s,
            idle_s: t.idle_s,
            failed_grace_s: t.failed_grace_s,
            orphan_s: t.orphan_s,
            stall_s: t.stall_s,
        }
    }
}

impl From<apiary_core::Prompts> for PromptsIo {
    fn from(p: apiary_core::Prompts) -> Self {
        PromptsIo {
            spec: p.spec,
            implement: p.implement,
            changes: p.changes,
            revise: p.revise,
        }
    }
}

#[cfg(test)]
mod credential_tests {
    #[test]
    fn credentials_are_stripped_from_repo_urls() {
        use super::strip_credentials as s;
        assert_eq!(
            s("https://x:ghp_secret@github.com/o/r.git"),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            s("https://ghp_secret@github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(s("https://github.com/a@b"), "https://github.com/a@b");
        assert_eq!(s("git@github.com:o/r.git"), "git@github.com:o/r.git");
        assert_eq!(s("/srv/repo.git"), "/srv/repo.git");
    }
}
