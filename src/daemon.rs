//! `helpdesk run`: one IMAP task per department mailbox plus the outbox
//! sender, until SIGTERM/SIGINT. Shutdown is cooperative: tasks stop at
//! safe points (between mails, never inside a transaction or between an
//! SMTP server's acceptance and marking the row sent) and the daemon waits
//! for them.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, SecretSource};
use crate::pipeline::Pipeline;
use crate::store::Store;

/// How long shutdown waits for the mailboxes to reach a safe point (the
/// outbox may take `outbox::longest_send`).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// The HMAC key for reply tokens; generated on first start when the
/// config names neither `secret` nor `secret_file`.
pub fn load_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    match &config.general.secret {
        SecretSource::Inline(s) => Ok(s.expose().as_bytes().to_vec()),
        SecretSource::File(path) => read_secret(path),
        SecretSource::Generated(path) => {
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let key: [u8; 32] = rand::random();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                match options.open(path) {
                    Ok(mut f) => {
                        f.write_all(hex::encode(key).as_bytes())
                            .and_then(|()| f.sync_all())
                            .with_context(|| format!("writing {}", path.display()))?;
                        info!(path = %path.display(), "generated a new reply-token secret");
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("creating {}", path.display()));
                    }
                }
            }
            read_secret(path)
        }
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret {}", path.display()))?;
    let s = s.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        s.len() >= 16,
        "the secret in {} is shorter than 16 characters",
        path.display()
    );
    Ok(s.as_bytes().to_vec())
}

/// Opens the store and builds the pipeline for a loaded config.
pub async fn open(config: Arc<Config>) -> anyhow::Result<(Store, Arc<Pipeline>, Arc<Notify>)> {
    let secret = load_secret(&config)?;
    let store = Store::open(&config.database.url, config.database.max_connections).await?;
    let wakeup = Arc::new(Notify::new());
    let pipeline = Arc::new(Pipeline::new(store.clone(), config, secret, wakeup.clone()));
    Ok((store, pipeline, wakeup))
}

/// One `helpdesk run` per SQLite database: a second would read the same
/// mailboxes and, at its start, release the first one's outbox leases.
/// The lock lives as long as the returned file.
fn lock_sqlite(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let Some(db) = crate::store::sqlite_path(url) else {
        return Ok(None);
    };
    let path = db.with_extension("run.lock");
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own, for the file's lifetime.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    anyhow::ensure!(
        locked,
        "another `helpdesk run` uses {} (lock {}); use PostgreSQL to run several daemons",
        db.display(),
        path.display()
    );
    Ok(Some(file))
}

/// Runs until `shutdown` completes.
pub async fn run(config: Arc<Config>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _sqlite_lock = lock_sqlite(&config.database.url)?;
    let (store, pipeline, wakeup) = open(config.clone()).await?;
    store.release_outbox_leases().await?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    for department in &config.departments {
        if department.imap.is_some() {
            tracker.spawn(crate::ingest::imap::run(
                department.clone(),
                pipeline.clone(),
                cancel.clone(),
            ));
        }
    }
    tracker.spawn(crate::outbox::run(
        store.clone(),
        config.clone(),
        wakeup,
        pipeline.backlog().clone(),
        cancel.clone(),
    ));
    tracker.close();
    info!(
        departments = config.departments.len(),
        database = ?store.backend(),
        "helpdesk running"
    );
    sd_notify("READY=1\nSTATUS=running");

    shutdown.await;
    info!("shutting down: finishing the mail in hand");
    sd_notify("STOPPING=1");
    cancel.cancel();
    let grace = SHUTDOWN_GRACE.max(crate::outbox::longest_send(&config) + Duration::from_secs(5));
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        warn!(
            "tasks did not stop within {grace:?}; exiting anyway (nothing is committed half-way)"
        );
    }
    store.close().await;
    info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Tells systemd about our state when run as `Type=notify`.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), Path::new(&path))
    };
    if let Err(e) = result {
        warn!(error = %e, "cannot notify systemd");
    }
}
