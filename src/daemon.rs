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
use tracing::{error, info, warn};

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::{AfterIngest, Config, Department, Imap, SecretSource, Smtp};
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

/// A task the daemon runs per department, restarted when its settings
/// change on reload.
struct Running<S> {
    settings: S,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// The mailbox readers and outbox senders, matched to the config in force.
struct Tasks {
    pipeline: Arc<Pipeline>,
    store: Store,
    wakeup: Arc<Notify>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    mailboxes: HashMap<String, Running<(Option<Imap>, AfterIngest)>>,
    senders: HashMap<String, Running<Option<Smtp>>>,
}

impl Tasks {
    /// Starts what the config adds, stops what it removes, restarts what
    /// it changes (after the old task has stopped at a safe point), and
    /// leaves the rest running untouched.
    fn apply(&mut self, config: &Config) {
        let mut wanted_mailboxes = HashMap::new();
        let mut wanted_senders = HashMap::new();
        for d in &config.departments {
            if d.imap.is_some() {
                wanted_mailboxes.insert(d.key.clone(), d.clone());
            }
            wanted_senders.insert(d.key.clone(), d.clone());
        }

        let keys: Vec<String> = self.mailboxes.keys().cloned().collect();
        for key in keys {
            let keep = wanted_mailboxes.get(&key).is_some_and(|d| {
                self.mailboxes[&key].settings == (d.imap.clone(), d.after_ingest.clone())
            });
            if !keep {
                let old = self.mailboxes.remove(&key).expect("listed");
                old.cancel.cancel();
                info!(mailbox = %key, "stopping the mailbox reader (config changed)");
                if let Some(d) = wanted_mailboxes.get(&key) {
                    let r = self.start_mailbox(d.clone(), Some(old.handle));
                    self.mailboxes.insert(key, r);
                }
            }
        }
        for (key, d) in wanted_mailboxes {
            if !self.mailboxes.contains_key(&key) {
                let r = self.start_mailbox(d, None);
                self.mailboxes.insert(key, r);
            }
        }

        let keys: Vec<String> = self.senders.keys().cloned().collect();
        for key in keys {
            let keep = wanted_senders
                .get(&key)
                .is_some_and(|d| self.senders[&key].settings == d.smtp);
            if !keep {
                let old = self.senders.remove(&key).expect("listed");
                old.cancel.cancel();
                if let Some(d) = wanted_senders.get(&key) {
                    let r = self.start_sender(d, Some(old.handle));
                    self.senders.insert(key, r);
                }
            }
        }
        for (key, d) in wanted_senders {
            if !self.senders.contains_key(&key) {
                let r = self.start_sender(&d, None);
                self.senders.insert(key, r);
            }
        }
    }

    fn start_mailbox(
        &self,
        d: Arc<Department>,
        after: Option<tokio::task::JoinHandle<()>>,
    ) -> Running<(Option<Imap>, AfterIngest)> {
        let cancel = self.cancel.child_token();
        let settings = (d.imap.clone(), d.after_ingest.clone());
        let pipeline = self.pipeline.clone();
        let token = cancel.clone();
        let handle = self.tracker.spawn(async move {
            // Never two readers of one mailbox in this process.
            if let Some(old) = after {
                let _ = old.await;
            }
            if !token.is_cancelled() {
                crate::ingest::imap::run(d, pipeline, token).await;
            }
        });
        Running {
            settings,
            cancel,
            handle,
        }
    }

    fn start_sender(
        &self,
        d: &Department,
        after: Option<tokio::task::JoinHandle<()>>,
    ) -> Running<Option<Smtp>> {
        let cancel = self.cancel.child_token();
        let token = cancel.clone();
        let sender = crate::outbox::sender(
            d,
            self.store.clone(),
            self.wakeup.clone(),
            self.pipeline.backlog().clone(),
            token.clone(),
        );
        let handle = self.tracker.spawn(async move {
            if let Some(old) = after {
                let _ = old.await;
            }
            if !token.is_cancelled() {
                sender.await;
            }
        });
        Running {
            settings: d.smtp.clone(),
            cancel,
            handle,
        }
    }
}

/// How the last reload went; read by status reporting (and metrics later).
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Configs put in force since start (the first is 1).
    pub generation: u64,
    pub failures: u64,
    /// The problems of the last failed reload, until one succeeds.
    pub last_error: Option<String>,
    pub last_attempt_ms: Option<i64>,
}

/// Settings a running daemon cannot change; a reload keeps the old ones.
fn keep_restart_only(old: &Config, new: &mut Config) {
    let mut kept = Vec::new();
    if old.database.url != new.database.url
        || old.database.max_connections != new.database.max_connections
    {
        new.database = old.database.clone();
        kept.push("database");
    }
    if old.general.data_dir != new.general.data_dir {
        new.general.data_dir = old.general.data_dir.clone();
        kept.push("general.data_dir");
    }
    if format!("{:?}", old.general.secret) != format!("{:?}", new.general.secret) {
        new.general.secret = old.general.secret.clone();
        kept.push("general.secret / secret_file");
    }
    if !kept.is_empty() {
        warn!(
            settings = kept.join(", "),
            "these settings changed but take effect only after a restart"
        );
    }
}

/// A cheap fingerprint of the config files and the `.toml` files in the
/// watched directories (names, sizes, modification times, inodes).
fn fingerprint(config: &Config, extra_dirs: &[PathBuf]) -> Vec<(PathBuf, u64, i128, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut add = |p: PathBuf| {
        if let Ok(m) = std::fs::metadata(&p) {
            out.push((
                p,
                m.len(),
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                m.ino(),
            ));
        } else {
            out.push((p, 0, -1, 0));
        }
    };
    for f in &config.files {
        add(f.clone());
    }
    for dir in config.watch_dirs.iter().chain(extra_dirs) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") && !config.files.contains(&p) {
                    add(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// `fingerprint` on a blocking thread (it reads directories).
async fn fingerprint_off_thread(
    config: &Arc<Config>,
    extra_dirs: &[PathBuf],
) -> Vec<(PathBuf, u64, i128, u64)> {
    let (config, extra) = (config.clone(), extra_dirs.to_vec());
    tokio::task::spawn_blocking(move || fingerprint(&config, &extra))
        .await
        .unwrap_or_default()
}

/// How often the config directories are looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Runs until `shutdown` completes. SIGHUP, or a change in the config
/// files or their directories, reloads the config.
pub async fn run(config: Arc<Config>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_with_status(config, shutdown, Arc::default()).await
}

/// `run`, keeping `status` up to date with every reload (for status
/// pages and metrics, which hold the other end).
pub async fn run_with_status(
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
    status: Arc<std::sync::Mutex<ReloadStatus>>,
) -> anyhow::Result<()> {
    if let Ok(mut st) = status.lock() {
        st.generation = 1;
    }
    run_inner(config, shutdown, status).await
}

async fn run_inner(
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
    status: Arc<std::sync::Mutex<ReloadStatus>>,
) -> anyhow::Result<()> {
    let _sqlite_lock = lock_sqlite(&config.database.url)?;
    let (store, pipeline, wakeup) = open(config.clone()).await?;
    store.release_outbox_leases().await?;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut tasks = Tasks {
        pipeline: pipeline.clone(),
        store: store.clone(),
        wakeup,
        cancel: cancel.clone(),
        tracker: tracker.clone(),
        mailboxes: HashMap::new(),
        senders: HashMap::new(),
    };
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    };
    tasks.apply(&config);
    info!(
        departments = config.departments.len(),
        rules = config.rules.rules.len(),
        database = ?store.backend(),
        "helpdesk running"
    );
    sd_notify("READY=1\nSTATUS=running");

    let path = config.path.clone();
    let mut current = config;
    // Directories a failed reload read besides the running config's (a new
    // include directory with a broken file): watched until a reload works.
    let mut extra_dirs: Vec<PathBuf> = Vec::new();
    let mut seen = fingerprint(&current, &extra_dirs);
    let mut pending: Option<Vec<(PathBuf, u64, i128, u64)>> = None;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let reason = tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
            _ = tick.tick() => {
                let now = fingerprint_off_thread(&current, &extra_dirs).await;
                // Reload once the change has settled (an editor may write
                // a file in several steps).
                match &pending {
                    _ if now == seen => { pending = None; continue; }
                    Some(p) if *p == now => {}
                    _ => { pending = Some(now); continue; }
                }
                "file change"
            }
        };
        pending = None;
        // Taken before loading: a save during the load is seen next time.
        let before = fingerprint_off_thread(&current, &extra_dirs).await;
        let attempt = crate::now_ms();
        let watched_before = (
            current.files.clone(),
            current.watch_dirs.clone(),
            extra_dirs.clone(),
        );
        let loaded = tokio::task::spawn_blocking({
            let path = path.clone();
            move || Config::load(&path)
        })
        .await;
        {
            let mut st = status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            st.last_attempt_ms = Some(attempt);
            match loaded {
                Ok(Ok((mut new, warnings))) => {
                    for w in &warnings {
                        warn!("{w}");
                    }
                    keep_restart_only(&current, &mut new);
                    let new = Arc::new(new);
                    pipeline.set_config(new.clone());
                    tasks.apply(&new);
                    st.generation += 1;
                    st.last_error = None;
                    info!(
                        reason,
                        generation = st.generation,
                        departments = new.departments.len(),
                        rules = new.rules.rules.len(),
                        "config reloaded"
                    );
                    sd_notify(&format!(
                        "STATUS=running (config generation {})",
                        st.generation
                    ));
                    current = new;
                    extra_dirs.clear();
                }
                Ok(Err(problems)) => {
                    st.failures += 1;
                    st.last_error = Some(problems.to_string());
                    error!(
                        reason,
                        errors = problems
                            .0
                            .iter()
                            .filter(|p| p.severity == crate::config::Severity::Error)
                            .count(),
                        "config reload failed; still running on the previous config:\n{problems}"
                    );
                    sd_notify("STATUS=running; the last config reload failed (see the log)");
                    for p in &problems.0 {
                        if let Some(dir) = p.file.parent()
                            && !current.watch_dirs.iter().any(|d| d == dir)
                            && !extra_dirs.iter().any(|d| d == dir)
                        {
                            extra_dirs.push(dir.to_path_buf());
                        }
                    }
                }
                Err(e) => {
                    st.failures += 1;
                    st.last_error = Some(e.to_string());
                    error!(error = %e, "config reload failed; still running on the previous config");
                }
            }
        }
        // What was loaded (or refused) is what `before` saw; when the set
        // of watched files changed, start from what they hold now.
        seen = if (
            current.files.clone(),
            current.watch_dirs.clone(),
            extra_dirs.clone(),
        ) == watched_before
        {
            before
        } else {
            fingerprint_off_thread(&current, &extra_dirs).await
        };
    }

    info!("shutting down: finishing the mail in hand");
    sd_notify("STOPPING=1");
    cancel.cancel();
    tracker.close();
    let grace = SHUTDOWN_GRACE.max(crate::outbox::longest_send(&current) + Duration::from_secs(5));
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
