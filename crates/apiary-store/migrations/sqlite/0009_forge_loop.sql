-- The forge loop (issue 15): GitHub webhook deliveries (kept by delivery id, so a redelivery
-- does nothing), a project's check command and issue trigger label, a task's issue, its
-- automatic fix rounds and its last check result, and review comments by people who are not
-- Apiary users (a GitHub reviewer, CI), shown under their own name.
ALTER TABLE projects ADD COLUMN check_command TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN trigger_label TEXT NOT NULL DEFAULT 'apiary';
-- The project's own webhook secret (in `secrets`), when it has one.
ALTER TABLE projects ADD COLUMN webhook_secret_id TEXT;
ALTER TABLE tasks ADD COLUMN github_issue BIGINT;
ALTER TABLE tasks ADD COLUMN fix_rounds BIGINT NOT NULL DEFAULT 0;
-- Set once people were told the checks still fail after the last fix round.
ALTER TABLE tasks ADD COLUMN fix_notified BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN checks_json TEXT;
CREATE UNIQUE INDEX tasks_github_issue ON tasks (project_id, github_issue);
CREATE TABLE forge_deliveries (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX forge_deliveries_age ON forge_deliveries (received_at);
CREATE TABLE review_comments_new (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    round BIGINT NOT NULL,
    author_id TEXT REFERENCES users(id),
    author_name TEXT,
    body TEXT NOT NULL,
    path TEXT,
    line BIGINT,
    created_at BIGINT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0
);
INSERT INTO review_comments_new (id, task_id, round, author_id, body, path, line, created_at, attempt)
    SELECT id, task_id, round, author_id, body, path, line, created_at, attempt FROM review_comments;
DROP TABLE review_comments;
ALTER TABLE review_comments_new RENAME TO review_comments;
CREATE INDEX review_comments_task ON review_comments(task_id, round);
