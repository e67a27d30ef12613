//! The sender task: delivers queued outbox rows over SMTP (lettre) from
//! each department's own server and address, a few at a time. A row is
//! marked sent only after the server accepted the DATA; temporary failures
//! retry with exponential backoff; permanent ones (5xx) give up with a note
//! on the ticket. Cancellation is honoured between mails, never between
//! the server's acceptance and marking the row sent.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Config, Smtp, TlsMode};
use crate::store::{OutboxMail, Store};

/// Mails in flight at once (over pooled connections).
const CONCURRENCY: usize = 4;
/// Rows claimed at once per department.
const BATCH: i64 = 16;
/// How long a claimed row is reserved for this daemon.
const LEASE_MS: i64 = 5 * 60 * 1000;
/// Mail queued by another process (the CLI) is picked up this often.
const POLL: Duration = Duration::from_secs(1);
/// Give up on temporary failures after this many attempts (about 2 days).
const MAX_ATTEMPTS: i64 = 60;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the transport for one department's SMTP settings.
pub fn transport(smtp: &Smtp) -> anyhow::Result<Transport> {
    let params = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &smtp.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            b = b.add_root_certificate(Certificate::from_pem(&pem).context("parsing the CA file")?);
        }
        b.build_rustls().context("TLS parameters")
    };
    let tls = match smtp.tls {
        TlsMode::Tls => Tls::Wrapper(params()?),
        TlsMode::Starttls => Tls::Required(params()?),
        TlsMode::None => Tls::None,
    };
    let mut b = Transport::builder_dangerous(&smtp.host)
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout))
        // Servers close idle connections; a short idle timeout avoids
        // sending on a connection the server already dropped.
        .pool_config(
            PoolConfig::new()
                .max_size(CONCURRENCY as u32)
                .idle_timeout(Duration::from_secs(20)),
        );
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        b = b.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(b.build())
}

/// Delivers the outbox until cancelled: one sender per department, so a
/// slow or dead SMTP server of one department never delays another's mail.
pub async fn run(
    store: Store,
    config: Arc<Config>,
    wakeup: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut senders = tokio::task::JoinSet::new();
    for d in &config.departments {
        let Some(smtp) = &d.smtp else { continue };
        let transport = match transport(smtp) {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(department = %d.key, error = format!("{e:#}"), "cannot set up SMTP; its mail waits in the outbox");
                None
            }
        };
        senders.spawn(department_sender(
            d.key.clone(),
            transport,
            store.clone(),
            wakeup.clone(),
            cancel.clone(),
        ));
    }
    while senders.join_next().await.is_some() {}
    info!("outbox stopped");
}

/// Sends one department's mail, up to `CONCURRENCY` at a time, claiming
/// more as soon as a slot frees up.
async fn department_sender(
    department: String,
    transport: Option<Transport>,
    store: Store,
    wakeup: Arc<Notify>,
    cancel: CancellationToken,
) {
    let transport = transport.map(Arc::new);
    let mut queue: std::collections::VecDeque<OutboxMail> = std::collections::VecDeque::new();
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        // Registered before looking, so a wake-up between the look and the
        // wait is not lost.
        let woken = wakeup.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        if !cancel.is_cancelled() {
            if queue.is_empty() {
                match store
                    .claim_outbox(crate::now_ms(), LEASE_MS, BATCH, Some(&department))
                    .await
                {
                    Ok(mails) => queue.extend(mails),
                    Err(e) => {
                        warn!(department = %department, error = format!("{e:#}"), "cannot read the outbox")
                    }
                }
            }
            while in_flight.len() < CONCURRENCY
                && let Some(mail) = queue.pop_front()
            {
                let (store, transport) = (store.clone(), transport.clone());
                in_flight.spawn(async move { deliver(&store, transport.as_deref(), mail).await });
            }
        }
        if in_flight.is_empty() {
            if cancel.is_cancelled() {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => {}
                () = &mut woken => {}
                () = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        tokio::select! {
            _ = in_flight.join_next() => {}
            () = &mut woken, if queue.is_empty() && !cancel.is_cancelled() => {}
            () = cancel.cancelled(), if !cancel.is_cancelled() => {}
        }
    }
    if let Some(t) = transport {
        t.shutdown().await;
    }
}

async fn deliver(store: &Store, transport: Option<&Transport>, mail: OutboxMail) {
    let result = match transport {
        None => Err(Failure::Temporary(format!(
            "no SMTP transport for department {}",
            mail.department
        ))),
        Some(t) => send(t, &mail).await,
    };
    let now = crate::now_ms();
    let recorded = match &result {
        Ok(()) => {
            debug!(outbox_id = mail.outbox_id, kind = %mail.kind, "sent");
            store.outbox_sent(mail.outbox_id, now).await
        }
        Err(Failure::Permanent(e)) => {
            warn!(outbox_id = mail.outbox_id, ticket_id = mail.ticket_id, error = %e, "delivery failed permanently");
            store.outbox_failed(&mail, e, now).await
        }
        Err(Failure::Temporary(e)) if mail.attempts + 1 >= MAX_ATTEMPTS => {
            let e = format!("gave up after {} attempts: {e}", mail.attempts + 1);
            warn!(outbox_id = mail.outbox_id, ticket_id = mail.ticket_id, error = %e, "delivery failed");
            store.outbox_failed(&mail, &e, now).await
        }
        Err(Failure::Temporary(e)) => {
            let delay = retry_delay(mail.attempts);
            warn!(outbox_id = mail.outbox_id, error = %e, retry_in_s = delay.as_secs(), "delivery deferred");
            store
                .outbox_retry(mail.outbox_id, now + delay.as_millis() as i64, e)
                .await
        }
    };
    if let Err(e) = recorded {
        // The lease expires and the row is retried: at worst a duplicate,
        // never a loss.
        warn!(
            outbox_id = mail.outbox_id,
            error = format!("{e:#}"),
            "cannot record the delivery outcome"
        );
    }
}

/// 5 s, 10 s, 20 s ... capped at one hour.
fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 20) as u32;
    Duration::from_secs(5u64.saturating_mul(1 << exp).min(3600))
}

enum Failure {
    Temporary(String),
    Permanent(String),
}

async fn send(transport: &Transport, mail: &OutboxMail) -> Result<(), Failure> {
    let from: Address = mail
        .mail_from
        .parse()
        .map_err(|e| Failure::Permanent(format!("sender {}: {e}", mail.mail_from)))?;
    let to = mail
        .recipients
        .iter()
        .map(|r| {
            r.parse::<Address>()
                .map_err(|e| Failure::Permanent(format!("recipient {r}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(Some(from), to).map_err(|e| Failure::Permanent(e.to_string()))?;
    let mut last = None;
    // A pooled connection the server closed fails at once; one retry on a
    // fresh connection tells that apart from a real failure.
    for _ in 0..2 {
        match transport.send_raw(&envelope, &mail.data).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let code = e.status().map(u16::from);
                let auth = matches!(code, Some(530 | 534 | 535 | 538));
                if e.is_permanent() && !auth {
                    return Err(Failure::Permanent(format!("{e}")));
                }
                let retry_now = !e.is_permanent() && !e.is_transient() && !e.is_client();
                last = Some(format!("{e}"));
                if !retry_now {
                    break;
                }
            }
        }
    }
    Err(Failure::Temporary(last.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(retry_delay(0), Duration::from_secs(5));
        assert_eq!(retry_delay(3), Duration::from_secs(40));
        assert_eq!(retry_delay(30), Duration::from_secs(3600));
    }
}
