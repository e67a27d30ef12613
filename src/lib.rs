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

/// A stored timestamp as RFC 3339 UTC (`2026-11-23T10:00:00Z`).
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}
