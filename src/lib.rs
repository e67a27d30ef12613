//! helpdesk: an email-driven helpdesk daemon.
//!
//! The modules follow a mail's journey: `config` → `ingest` (IMAP, pipe) →
//! `mail` (parse, thread, classify, compose; pure) → `pipeline` (one
//! transaction per inbound mail) → `store` → `outbox` (SMTP). `service`
//! holds the staff actions that the CLI (and later the web view) call.
//! See ARCHITECTURE.md.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod explain;
pub mod ingest;
pub mod inspect;
pub mod logging;
pub mod mail;
pub mod outbox;
pub mod pipeline;
pub mod routing;
pub mod rules;
pub mod service;
pub mod store;
pub mod templates;
pub mod tls;

/// Current time in Unix milliseconds, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
