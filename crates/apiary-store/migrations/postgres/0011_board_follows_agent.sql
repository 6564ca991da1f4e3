-- The board follows the agent (issue 17): per project, on by default; off keeps a card's
-- column where people put it.
ALTER TABLE projects ADD COLUMN board_follows_agent BIGINT NOT NULL DEFAULT 1;
