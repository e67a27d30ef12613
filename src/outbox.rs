//! The sender task: delivers queued outbox rows over SMTP (lettre) from
//! each department's own server and address, a few at a time. A row is
//! marked sent only after the server accepted the DATA; temporary failures
//! retry with exponential backoff; permanent ones (5xx) give up with a note
//! on the ticket. Cancellation is honoured between mails, never between
//! the server's acceptance and marking the row sent.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::{Config, Smtp, TlsMode};
use crate::pipeline::Backlog;
use crate::store::{OutboxMail, Store};

/// Mails in flight at once per department (one connection each).
const CONCURRENCY: usize = 4;
/// Above this many mails waiting to be ingested, each department sends
/// over one connection, at most one mail per `BURST_GAP`: storing mail
/// (which makes it safe) gets the CPU first, acknowledgements follow.
const BACKLOG_THROTTLE: usize = 64;
const BURST_GAP: Duration = Duration::from_millis(50);
/// A whole send (connect, TLS, AUTH, DATA) ends within this many SMTP
/// timeouts, well inside the lease and the shutdown grace.
const SEND_TIMEOUTS: u32 = 2;
/// How long a claimed row is reserved for this daemon.
const LEASE_MS: i64 = 10 * 60 * 1000;
/// Mail queued by another process (the CLI) is picked up this often.
const POLL: Duration = Duration::from_secs(1);
/// Give up on temporary failures after this many attempts (about 2 days).
const MAX_ATTEMPTS: i64 = 60;

/// Connections of one department to its SMTP server: lettre speaks the
/// protocol, we own the sockets. lettre's own pool writes the message and
/// its final `.` in two writes on a socket without `TCP_NODELAY`, which
/// costs a delayed-ACK stall (~40 ms) per mail; here every socket has
/// `TCP_NODELAY` and every step runs under the configured timeout.
pub struct Transport {
    smtp: Smtp,
    credentials: Option<Credentials>,
    /// Idle connections with the time they were last used.
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Idle connections older than this are closed rather than reused (servers
/// drop idle clients; Postfix after 300 s by default).
const IDLE_REUSE: Duration = Duration::from_secs(20);

impl Transport {
    pub fn new(smtp: &Smtp) -> anyhow::Result<Transport> {
        // Fail early on a broken CA file rather than at the first mail.
        if smtp.tls != TlsMode::None {
            tls_parameters(smtp)?;
        }
        Ok(Transport {
            smtp: smtp.clone(),
            credentials: match (&smtp.username, &smtp.password) {
                (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.expose().to_string())),
                _ => None,
            },
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.smtp.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e, what)),
            Err(_) => Err(Failure::Temporary(format!(
                "{what}: no answer within {:?}",
                self.smtp.timeout
            ))),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let smtp = &self.smtp;
        let temporary = |what: &str, e: &dyn std::fmt::Display| {
            Failure::Temporary(format!("{what} {}:{}: {e}", smtp.host, smtp.port))
        };
        let tcp = match tokio::time::timeout(
            smtp.timeout,
            TcpStream::connect((smtp.host.as_str(), smtp.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(temporary("connecting to", &e)),
            Err(_) => return Err(temporary("connecting to", &"timed out")),
        };
        let _ = tcp.set_nodelay(true);
        let hello = ClientId::default();
        let stream: Box<dyn AsyncTokioStream> = if smtp.tls == TlsMode::Tls {
            let config = crate::tls::client_config(smtp.ca_file.as_deref())
                .map_err(|e| Failure::Temporary(format!("{e:#}")))?;
            let name = rustls_pki_types::ServerName::try_from(smtp.host.clone())
                .map_err(|e| Failure::Temporary(format!("{}: {e}", smtp.host)))?;
            match tokio::time::timeout(
                smtp.timeout,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            {
                Ok(Ok(tls)) => Box::new(TlsTcp(tls)),
                Ok(Err(e)) => return Err(temporary("TLS handshake with", &e)),
                Err(_) => return Err(temporary("TLS handshake with", &"timed out")),
            }
        } else {
            Box::new(tcp)
        };
        let mut conn = self
            .timed(
                "greeting",
                AsyncSmtpConnection::connect_with_transport(stream, &hello),
            )
            .await?;
        if smtp.tls == TlsMode::Starttls {
            let params = tls_parameters(smtp).map_err(|e| Failure::Temporary(format!("{e:#}")))?;
            self.timed("STARTTLS", conn.starttls(params, &hello))
                .await?;
        }
        if let Some(credentials) = &self.credentials {
            self.timed(
                "AUTH",
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await?;
        }
        Ok(conn)
    }

    /// Sends one mail; a reused connection that fails is retried once on a
    /// fresh one (the server may have closed it while idle).
    async fn send(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Failure> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|(_, used)| used.elapsed() < IDLE_REUSE);
            idle.pop().map(|(c, _)| c)
        };
        if let Some(mut conn) = reused {
            match self.timed("sending", conn.send(envelope, data)).await {
                Ok(_) => {
                    self.put_back(conn);
                    return Ok(());
                }
                // Only a broken connection is retried at once; after a
                // timeout or a 4xx the server may hold the mail already,
                // and a greylisting server wants us to wait.
                Err(Failure::Connection(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let mut conn = self.connect().await?;
        self.timed("sending", conn.send(envelope, data)).await?;
        self.put_back(conn);
        Ok(())
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn, Instant::now()));
        }
    }

    /// Says QUIT on every idle connection.
    pub async fn shutdown(&self) {
        let conns: Vec<_> = self
            .idle
            .lock()
            .map(|mut idle| idle.drain(..).map(|(c, _)| c).collect())
            .unwrap_or_default();
        for mut c in conns {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.quit()).await;
        }
    }
}

fn tls_parameters(smtp: &Smtp) -> anyhow::Result<TlsParameters> {
    let mut b = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        b = b.add_root_certificate(Certificate::from_pem(&pem).context("parsing the CA file")?);
    }
    b.build_rustls().context("TLS parameters")
}

/// A rustls client stream as lettre wants it (implicit TLS, SMTPS).
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Permanent (5xx) or temporary; authentication and local configuration
/// problems are temporary: the operator fixes them and the mail goes out.
fn classify(e: &lettre::transport::smtp::Error, what: &str) -> Failure {
    let code = e.status().map(u16::from);
    let auth = matches!(code, Some(530 | 534 | 535 | 538));
    if e.is_permanent() && !auth {
        Failure::Permanent(format!("{what}: {e}"))
    } else if !e.is_permanent() && !e.is_transient() && !e.is_client() && !e.is_timeout() {
        Failure::Connection(format!("{what}: {e}"))
    } else {
        Failure::Temporary(format!("{what}: {e}"))
    }
}

/// The longest a send can take with this config: shutdown waits this
/// long for mail in flight, so none is cut between the server's acceptance
/// and marking it sent.
pub fn longest_send(config: &Config) -> Duration {
    config
        .departments
        .iter()
        .filter_map(|d| d.smtp.as_ref())
        .map(|s| s.timeout * SEND_TIMEOUTS)
        .max()
        .unwrap_or(Duration::ZERO)
}

/// Delivers one department's outbox until cancelled. The daemon runs one
/// per department, so a slow or dead SMTP server of one department never
/// delays another's mail, and a reload restarts only the ones it changed.
pub fn sender(
    department: &crate::config::Department,
    store: Store,
    wakeup: Arc<Notify>,
    backlog: Backlog,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let transport = department.smtp.as_ref().and_then(|smtp| match Transport::new(smtp) {
        Ok(t) => Some(t),
        Err(e) => {
            warn!(department = %department.key, error = format!("{e:#}"), "cannot set up SMTP; its mail waits in the outbox");
            None
        }
    });
    department_sender(
        department.key.clone(),
        transport,
        store,
        wakeup,
        backlog,
        cancel,
    )
}

/// Sends one department's mail, up to `CONCURRENCY` at a time, claiming
/// a row only when a slot is free (so no claimed row waits under a lease).
async fn department_sender(
    department: String,
    transport: Option<Transport>,
    store: Store,
    wakeup: Arc<Notify>,
    backlog: Backlog,
    cancel: CancellationToken,
) {
    let transport = transport.map(Arc::new);
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        // Registered before looking, so a wake-up between the look and the
        // wait is not lost.
        let woken = wakeup.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let burst = backlog.get() > BACKLOG_THROTTLE;
        let slots = if burst { 1 } else { CONCURRENCY };
        let free = slots.saturating_sub(in_flight.len());
        if !cancel.is_cancelled() && free > 0 {
            match store
                .claim_outbox(crate::now_ms(), LEASE_MS, free as i64, Some(&department))
                .await
            {
                Ok(mails) => {
                    for mail in mails {
                        let (store, transport) = (store.clone(), transport.clone());
                        in_flight.spawn(async move {
                            let started = Instant::now();
                            deliver(&store, transport.as_deref(), mail).await;
                            if burst {
                                // A trickle while mail waits to be stored.
                                tokio::time::sleep(BURST_GAP.saturating_sub(started.elapsed()))
                                    .await;
                            }
                        });
                    }
                }
                Err(e) => {
                    warn!(department = %department, error = format!("{e:#}"), "cannot read the outbox")
                }
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
        let has_room = in_flight.len() < slots;
        tokio::select! {
            _ = in_flight.join_next() => {}
            () = &mut woken, if has_room && !cancel.is_cancelled() => {}
            () = tokio::time::sleep(POLL), if has_room && !cancel.is_cancelled() => {}
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
        Some(t) => {
            let cap = t.smtp.timeout * SEND_TIMEOUTS;
            match tokio::time::timeout(cap, send(t, &mail)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Temporary(format!(
                    "sending took longer than {cap:?}"
                ))),
            }
        }
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
        Err(Failure::Temporary(e) | Failure::Connection(e))
            if mail.attempts + 1 >= MAX_ATTEMPTS =>
        {
            let e = format!("gave up after {} attempts: {e}", mail.attempts + 1);
            warn!(outbox_id = mail.outbox_id, ticket_id = mail.ticket_id, error = %e, "delivery failed");
            store.outbox_failed(&mail, &e, now).await
        }
        Err(Failure::Temporary(e) | Failure::Connection(e)) => {
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
    /// The connection failed (closed, reset): on a reused connection this
    /// usually means the server dropped it while idle.
    Connection(String),
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
    transport.send(&envelope, &mail.data).await
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
