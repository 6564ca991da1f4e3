-- Bytes of agent output stored per task, so a looping agent cannot fill the disk: past the
-- `task_log_bytes` setting one marker line is stored and further lines are dropped. Counted
-- once here for the lines already stored (characters, close enough), then kept by the writer.
ALTER TABLE tasks ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE tasks SET log_bytes = (SELECT COALESCE(SUM(LENGTH(l.line)), 0) FROM agent_logs l WHERE l.task_id = tasks.id);
