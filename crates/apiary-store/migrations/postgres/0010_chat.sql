-- Acting from chat (issue 16): a Telegram or Slack user linked to an Apiary user (made with a
-- one-time code, kept hashed), the replies Apiary waits for after "Ask for revision" /
-- "Request changes" and the chat an audit event came from.
CREATE TABLE chat_links (
    via TEXT NOT NULL,
    chat_user_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    chat_user_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (via, chat_user_id)
);
CREATE UNIQUE INDEX chat_links_user ON chat_links (user_id, via);
CREATE TABLE chat_link_codes (
    code_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX chat_link_codes_user ON chat_link_codes (user_id);
CREATE TABLE chat_prompts (
    via TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    -- The audit event of the button pressed: a reply after the task moved on changes nothing.
    event_id BIGINT NOT NULL,
    chat_user_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (via, chat_id, message_id)
);
ALTER TABLE task_events ADD COLUMN via TEXT;
