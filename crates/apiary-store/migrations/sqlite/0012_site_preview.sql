-- The site preview (issue 19): a command that serves the project's site in the box, and the
-- path that answers once it is up.
ALTER TABLE projects ADD COLUMN preview_command TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN preview_ready_path TEXT NOT NULL DEFAULT '/';
