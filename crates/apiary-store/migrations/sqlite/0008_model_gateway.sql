-- The model gateway (DESIGN §9): a box's agent presents its own gateway token (stored as a
-- hash, dead with the box); a project keeps its gateway settings (model, plain agent
-- environment, budgets) as JSON; every model request is metered here.
ALTER TABLE tasks ADD COLUMN gateway_token_hash TEXT;
-- What the task spent in all (µ$), and the stall guard's state: the last request's hash and
-- how many times in a row it came; kept on the task so a request needs one read.
ALTER TABLE tasks ADD COLUMN gateway_spent_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN gateway_last_hash TEXT;
ALTER TABLE tasks ADD COLUMN gateway_repeats BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX tasks_gateway_token ON tasks (gateway_token_hash);
ALTER TABLE projects ADD COLUMN gateway_json TEXT NOT NULL DEFAULT '{}';
CREATE TABLE model_usage (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    phase TEXT NOT NULL,
    round BIGINT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    status BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX model_usage_task ON model_usage (task_id, created_at);
CREATE INDEX model_usage_project ON model_usage (project_id, created_at);
