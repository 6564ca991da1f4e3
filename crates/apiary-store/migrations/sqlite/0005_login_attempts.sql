-- Failed sign-ins per email, known or not, so the answer never tells which accounts exist:
-- an attempt is counted before its password is checked, and the count locks the email for a
-- while once it reaches the limit (replaces users.failed_logins / users.locked_until).
CREATE TABLE login_attempts (
    email TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    locked_until BIGINT
);
