//! One integration-test binary: real Postfix + Dovecot (`scripts/mailstack`),
//! the real `helpdesk` binary, SQLite and PostgreSQL.

#[macro_use]
mod support;

mod classes;
mod crash;
mod golden;
mod inspect;
mod mail_loop;
mod malformed;
mod pipeline;
mod props;
mod routing;
mod rules_cli;
mod rules_config;
mod shared;
mod store;
