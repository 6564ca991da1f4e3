//! The store suite. Runs on SQLite, and on PostgreSQL when APIARY_TEST_DATABASE_URL is set.

mod jobs;
mod records;
mod transition;
mod usage;
