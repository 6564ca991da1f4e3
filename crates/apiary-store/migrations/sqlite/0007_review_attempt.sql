-- Review comments belong to one attempt of a task: a retry starts at round 0 again, and its
-- round 1 must not resend the last attempt's comments. Existing comments count as the task's
-- current attempt (what they were read as before).
ALTER TABLE review_comments ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
UPDATE review_comments SET attempt = (SELECT attempt FROM tasks WHERE tasks.id = review_comments.task_id);
