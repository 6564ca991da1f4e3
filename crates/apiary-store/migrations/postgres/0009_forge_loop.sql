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
ALTER TABLE review_comments ALTER COLUMN author_id DROP NOT NULL;
ALTER TABLE review_comments ADD COLUMN author_name TEXT;
