-- The agent API (issue 3): what the human told the box, review comments per round, and every
-- spec revision kept with the feedback that led to it. Same text for both backends.

ALTER TABLE tasks ADD COLUMN spec_feedback TEXT;
ALTER TABLE tasks ADD COLUMN approve_note TEXT;

CREATE TABLE review_comments (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    round BIGINT NOT NULL,
    author_id TEXT NOT NULL REFERENCES users(id),
    body TEXT NOT NULL,
    path TEXT,
    line BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX review_comments_task ON review_comments(task_id, round);

CREATE TABLE spec_revisions (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    spec TEXT NOT NULL,
    feedback TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, revision)
);
