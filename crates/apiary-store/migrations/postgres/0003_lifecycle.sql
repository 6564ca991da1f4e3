-- Leases let one replica at a time run a periodic duty (the watchdog pass).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);

-- Failed notification deliveries, readable by admins.
CREATE TABLE notification_errors (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    task_id TEXT,
    status_code BIGINT,
    body TEXT,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notification_errors_time ON notification_errors(created_at);
