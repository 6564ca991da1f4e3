//! The HTTP suite against a real server on loopback. Runs on SQLite, and on PostgreSQL when
//! APIARY_TEST_DATABASE_URL is set.

mod agent_loop;
mod auth;
mod authz;
mod box_input;
mod chat;
mod event_order;
mod exposure;
mod gateway;
mod host_power;
mod kill_switch;
mod limits;
mod log_cap;
mod notify;
mod resources;
mod sign_in;
mod team;
mod teardown;
mod templates;
