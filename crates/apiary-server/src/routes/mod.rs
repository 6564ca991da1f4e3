//! Route handlers, one module per resource; each reads as verb + noun.

pub mod agent;
pub mod auth;
pub mod callback;
pub mod chat_links;
pub mod events;
pub mod fleet;
pub mod gateway;
pub mod github;
pub mod ops;
pub mod projects;
pub mod prompts;
pub mod settings;
pub mod site;
pub mod slack;
pub mod tasks;
pub mod telegram;
pub mod usage;
