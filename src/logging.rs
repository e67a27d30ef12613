//! Structured logs on stderr (journald picks them up under systemd).
//! `RUST_LOG` filters; `--log-format json` for machines.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Libraries that log protocol lines, credentials included (IMAP `LOGIN`,
/// SMTP `AUTH`), at debug or trace: capped whatever `RUST_LOG` says.
const CAPPED: &[&str] = &["async_imap=info", "imap_proto=info", "lettre=info"];

pub fn init(format: Format) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in CAPPED {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Text => builder.try_init(),
        Format::Json => builder.json().try_init(),
    };
}
