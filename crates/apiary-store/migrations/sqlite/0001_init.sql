-- Apiary schema, SQLite flavour. Kept in step with ../postgres/0001_init.sql:
-- same tables, columns and indexes; only the auto-increment key differs. Flags are BIGINT 0/1 (the
-- sqlx Any driver cannot read SQLite booleans).
-- Times are milliseconds since the Unix epoch.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'agent')),
    password_hash TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    agent_enabled BIGINT NOT NULL DEFAULT 0,
    repo_url TEXT NOT NULL DEFAULT '',
    base_branch TEXT NOT NULL DEFAULT 'main',
    template TEXT NOT NULL DEFAULT '',
    preset TEXT NOT NULL DEFAULT 'claude-code',
    command TEXT NOT NULL DEFAULT '',
    forge TEXT NOT NULL DEFAULT 'local',
    prompt_spec TEXT NOT NULL DEFAULT '',
    prompt_implement TEXT NOT NULL DEFAULT '',
    prompt_changes TEXT NOT NULL DEFAULT '',
    prompt_revise TEXT NOT NULL DEFAULT '',
    forge_token_secret TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access TEXT NOT NULL CHECK (access IN ('read', 'write')),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'in_progress', 'done')),
    assignee_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    agent_status TEXT NOT NULL DEFAULT 'none',
    box_id TEXT,
    control_url TEXT,
    code_url TEXT,
    site_url TEXT,
    control_secret_id TEXT,
    callback_token_hash TEXT UNIQUE,
    pr_url TEXT,
    branch TEXT,
    spec TEXT,
    spec_revision BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    box_torn_down BIGINT NOT NULL DEFAULT 1,
    parked BIGINT NOT NULL DEFAULT 0,
    status_changed_at BIGINT NOT NULL,
    queued_at BIGINT,
    round BIGINT NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX tasks_project ON tasks(project_id, created_at);
-- The watchdog and the queue read only agent-managed, non-terminal tasks.
CREATE INDEX tasks_active ON tasks(agent_status, status_changed_at)
    WHERE agent_status NOT IN ('none', 'merged', 'cancelled');
CREATE INDEX tasks_queue ON tasks(queued_at) WHERE agent_status = 'queued';
CREATE INDEX tasks_live_boxes ON tasks(box_id) WHERE box_torn_down = 0;

CREATE TABLE comments (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    author_id TEXT NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX comments_task ON comments(task_id, created_at);

CREATE TABLE task_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    message TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX task_events_task ON task_events(task_id, id);
CREATE INDEX task_events_project ON task_events(project_id, id);

CREATE TABLE agent_logs (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    line TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    task_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempt BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    dedupe_key TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs(run_at, id) WHERE state = 'pending';
CREATE INDEX jobs_leases ON jobs(lease_until) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_dedupe ON jobs(dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('pending', 'running');
