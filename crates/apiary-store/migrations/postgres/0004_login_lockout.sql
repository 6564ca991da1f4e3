-- Failed sign-ins per user, so a password cannot be guessed: after five in a row the account
-- is locked for a while (kept in the database so every replica agrees).
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT;
