//! One department mailbox over IMAP: connect (TLS, STARTTLS or plain),
//! list what is new since the checkpoint with sizes first, fetch bodies in
//! bounded batches, hand each mail to the pipeline, and wait with IDLE (or
//! poll). Every command runs under a timeout and every FETCH must end in a
//! tagged OK; any failure drops the connection and reconnects with backoff.
//! Progress lives in the database (`mailbox_checkpoint`), advanced by the
//! pipeline in the same transaction as the ticket change, so nothing here
//! needs to be remembered across a crash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response as ImapResponse, Status};
use async_imap::types::UnsolicitedResponse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{AfterIngest, Department, Imap, TlsMode};
use crate::pipeline::{Incoming, Pipeline, Source};
use crate::store::MailboxLock;

/// Bodies fetched per `UID FETCH`: bounded so one command never buffers
/// more than this many mails, or more than `BATCH_BYTES`.
const BATCH_MAILS: usize = 64;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// IDLE is re-issued well before the 29 minutes RFC 2177 allows; a
/// silently dropped connection is noticed at the latest then.
const IDLE_RENEW: Duration = Duration::from_secs(10 * 60);
/// Attempts at a message the server lists but will not return before it is
/// recorded as unreadable instead of blocking the mailbox.
const MAX_BODY_ATTEMPTS: u32 = 5;
/// How often a daemon retries a mailbox another daemon is reading.
const LOCK_RETRY: Duration = Duration::from_secs(15);

pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapIo for T {}
type Session = async_imap::Session<Box<dyn ImapIo>>;

/// Runs a department's mailbox until `cancel` fires, reconnecting with
/// exponential backoff (1 s doubling to 60 s) after any failure.
pub async fn run(department: Arc<Department>, pipeline: Arc<Pipeline>, cancel: CancellationToken) {
    let Some(imap) = department.imap.clone() else {
        return;
    };
    // Built once per reader (a reload that changes the mailbox settings
    // starts a new reader); retried until it works, like a connection.
    let mut backoff = Duration::from_secs(1);
    let tls = loop {
        match imap.tls {
            TlsMode::None => break None,
            _ => match crate::tls::client_config(imap.ca_file.as_deref()) {
                Ok(c) => break Some(c),
                Err(e) => {
                    warn!(mailbox = %department.key, error = format!("{e:#}"), retry_in = ?backoff, "cannot set up TLS; mailbox not read yet");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            },
        }
    };
    let mut reader = Reader {
        department,
        imap,
        tls,
        pipeline,
        cancel,
        body_failures: HashMap::new(),
        keep_on_server: HashSet::new(),
        new_mail: std::sync::atomic::AtomicBool::new(false),
    };
    let mut backoff = Duration::from_secs(1);
    while !reader.cancel.is_cancelled() {
        let key = reader.department.key.clone();
        let lock = match reader
            .pipeline
            .store()
            .lock_mailbox(&key, &reader.imap.folder)
            .await
        {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                info!(mailbox = %key, "another daemon reads this mailbox; waiting");
                tokio::select! {
                    () = reader.cancel.cancelled() => break,
                    () = tokio::time::sleep(LOCK_RETRY) => continue,
                }
            }
            Err(e) => {
                warn!(mailbox = %key, error = format!("{e:#}"), "cannot lock the mailbox");
                tokio::select! {
                    () = reader.cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        let mut lock = lock;
        let result = reader.serve(&mut backoff, &mut lock).await;
        drop(lock);
        match result {
            Ok(()) => break,
            Err(e) => {
                warn!(
                    mailbox = %key,
                    error = format!("{e:#}"),
                    retry_in_s = backoff.as_secs(),
                    "mailbox connection failed"
                );
                tokio::select! {
                    () = reader.cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
    info!(mailbox = %reader.department.key, "mailbox stopped");
}

struct Reader {
    department: Arc<Department>,
    imap: Imap,
    /// Built once: system roots plus the operator's CA file.
    tls: Option<Arc<rustls::ClientConfig>>,
    pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
    /// UID → failed attempts to get its body (see `MAX_BODY_ATTEMPTS`).
    body_failures: HashMap<u32, u32>,
    /// UIDs stored without their full content (too large, unreadable):
    /// `after_ingest = "delete"` must not remove them from the server.
    keep_on_server: HashSet<u32>,
    /// The server announced new mail during one of our commands.
    new_mail: std::sync::atomic::AtomicBool,
}

/// What one `UID FETCH` returned for one message.
#[derive(Default)]
struct Fetched {
    size: Option<u64>,
    body: Option<Vec<u8>>,
}

impl Reader {
    async fn timed<T, E>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> anyhow::Result<T>
    where
        E: Into<anyhow::Error>,
    {
        match tokio::time::timeout(self.imap.timeout, fut).await {
            Ok(r) => r
                .map_err(Into::into)
                .with_context(|| format!("IMAP {what}")),
            Err(_) => bail!("IMAP {what}: no answer within {:?}", self.imap.timeout),
        }
    }

    /// Runs a `UID FETCH` and collects its results by UID; fails unless the
    /// server ends it with a tagged OK (async-imap's own fetch does not
    /// check, so a NO or a cut connection would look like "no mail").
    async fn fetch(
        &self,
        session: &mut Session,
        what: &str,
        command: String,
    ) -> anyhow::Result<BTreeMap<u32, Fetched>> {
        let timeout = self.imap.timeout;
        let idle_limit = || anyhow!("IMAP {what}: nothing received for {timeout:?}");
        let tag = tokio::time::timeout(timeout, session.run_command(&command))
            .await
            .map_err(|_| idle_limit())?
            .with_context(|| format!("IMAP {what}"))?;
        let mut out: BTreeMap<u32, Fetched> = BTreeMap::new();
        loop {
            // An inactivity limit, not a deadline: a large batch on a slow
            // link may take longer than `timeout` as long as bytes flow.
            let resp = tokio::time::timeout(timeout, session.read_response())
                .await
                .map_err(|_| idle_limit())?
                .with_context(|| format!("IMAP {what}"))?
                .ok_or_else(|| anyhow!("IMAP {what}: connection closed"))?;
            match resp.parsed() {
                ImapResponse::Done {
                    tag: t,
                    status,
                    outcome,
                } if *t == tag => {
                    return match status {
                        Status::Ok => Ok(out),
                        other => Err(anyhow!(
                            "IMAP {what}: server answered {other:?}: {}",
                            outcome.information.as_deref().unwrap_or("")
                        )),
                    };
                }
                ImapResponse::Fetch(_, attributes) => {
                    let mut uid = None;
                    let mut item = Fetched::default();
                    for a in attributes {
                        match a {
                            AttributeValue::Uid(u) => uid = Some(*u),
                            AttributeValue::Rfc822Size(n) => item.size = Some(u64::from(*n)),
                            AttributeValue::BodySection { data: Some(d), .. }
                            | AttributeValue::Rfc822(Some(d)) => item.body = Some(d.to_vec()),
                            _ => {}
                        }
                    }
                    if let Some(uid) = uid {
                        let entry = out.entry(uid).or_default();
                        entry.size = entry.size.or(item.size);
                        if item.body.is_some() {
                            entry.body = item.body;
                        }
                    }
                }
                // The server announces mail that arrived meanwhile at the
                // end of our commands: remember it, or it waits for the
                // next event in the mailbox.
                ImapResponse::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => {
                    self.new_mail
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                ImapResponse::Data {
                    status: Status::Bye,
                    ..
                } => bail!("IMAP {what}: server closed the connection (BYE)"),
                _ => {}
            }
        }
    }

    /// One connection's life: returns `Ok` only when cancelled.
    async fn serve(
        &mut self,
        backoff: &mut Duration,
        lock: &mut MailboxLock,
    ) -> anyhow::Result<()> {
        let mut session = connect(&self.imap, self.tls.clone()).await?;
        let caps = self.timed("CAPABILITY", session.capabilities()).await?;
        let idle = caps.has_str("IDLE");
        let ops = Ops {
            can_move: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        let mailbox = self
            .timed("SELECT", session.select(&self.imap.folder))
            .await?;
        let uidvalidity = mailbox
            .uid_validity
            .ok_or_else(|| anyhow!("SELECT {} gave no UIDVALIDITY", self.imap.folder))?;
        info!(
            mailbox = %self.department.key,
            host = %self.imap.host,
            folder = %self.imap.folder,
            uidvalidity,
            exists = mailbox.exists,
            idle,
            "mailbox connected"
        );
        self.keep_on_server.extend(
            self.pipeline
                .store()
                .partial_uids(
                    &self.department.key,
                    &self.imap.folder,
                    i64::from(uidvalidity),
                )
                .await?,
        );
        if let AfterIngest::Move(target) = &self.department.after_ingest {
            // Fails harmlessly when it exists.
            let _ = self.timed("CREATE", session.create(target)).await;
        }

        // Mail already stored but not yet moved/flagged/deleted (a crash
        // between commit and the server-side action) is finished first.
        if let Some((v, last)) = self
            .pipeline
            .store()
            .checkpoint(&self.department.key, &self.imap.folder)
            .await?
            && v == i64::from(uidvalidity)
            && last > 0
        {
            let last = u32::try_from(last).unwrap_or(u32::MAX);
            self.sweep(&mut session, ops, last).await;
        }

        loop {
            // Still ours? (PostgreSQL restarted: another daemon may read now.)
            lock.check().await.context("the mailbox lease was lost")?;
            self.new_mail
                .store(false, std::sync::atomic::Ordering::Relaxed);
            self.sync(&mut session, uidvalidity, ops).await?;
            // A clean pass through the mailbox: the connection works.
            *backoff = Duration::from_secs(1);
            if self.cancel.is_cancelled() {
                let _ = self.timed("LOGOUT", session.logout()).await;
                return Ok(());
            }
            // Mail that arrived while we were fetching is announced at the
            // end of our commands; look again instead of waiting for the
            // next event.
            let mut new_mail = self.new_mail.load(std::sync::atomic::Ordering::Relaxed);
            while let Ok(u) = session.unsolicited_responses.try_recv() {
                new_mail |= matches!(
                    u,
                    UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
                );
            }
            if new_mail {
                continue;
            }
            if idle {
                let (s, stop) = self.idle(session).await?;
                session = s;
                if stop {
                    let _ = self.timed("LOGOUT", session.logout()).await;
                    return Ok(());
                }
            } else {
                tokio::select! {
                    () = self.cancel.cancelled() => {
                        let _ = self.timed("LOGOUT", session.logout()).await;
                        return Ok(());
                    }
                    () = tokio::time::sleep(self.imap.poll_interval) => {}
                }
                self.timed("NOOP", session.noop()).await?;
            }
        }
    }

    /// Waits in IDLE until the server reports a change, the renewal time
    /// passes (an absolute deadline: async-imap's own timer restarts on
    /// every keep-alive), or we are cancelled (`true`).
    async fn idle(&self, session: Session) -> anyhow::Result<(Session, bool)> {
        // Responses read while IDLE starts go to this channel, not to the
        // wait below; watch it too.
        let notices = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        self.timed("IDLE", handle.init()).await?;
        let stopped;
        {
            let (wait, stop) = handle.wait_with_timeout(IDLE_RENEW);
            let new_mail = async {
                while let Ok(u) = notices.recv().await {
                    if matches!(
                        u,
                        UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
                    ) {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            };
            let res = tokio::select! {
                r = wait => r,
                () = new_mail => Ok(IdleResponse::Timeout),
                () = tokio::time::sleep(IDLE_RENEW) => Ok(IdleResponse::Timeout),
                () = self.cancel.cancelled() => Ok(IdleResponse::ManualInterrupt),
            };
            drop(stop);
            match res.context("IMAP IDLE")? {
                IdleResponse::NewData(data) => {
                    if let ImapResponse::Data {
                        status: Status::Bye,
                        ..
                    } = data.parsed()
                    {
                        bail!("server closed the connection (BYE) during IDLE");
                    }
                    debug!(mailbox = %self.department.key, "IDLE woke up");
                    stopped = false;
                }
                IdleResponse::Timeout => stopped = false,
                // Either our cancellation or the connection ending.
                IdleResponse::ManualInterrupt => stopped = self.cancel.is_cancelled(),
            }
        }
        let session = self.timed("DONE", handle.done()).await?;
        Ok((session, stopped))
    }

    /// Fetches and ingests everything after the checkpoint.
    async fn sync(
        &mut self,
        session: &mut Session,
        uidvalidity: u32,
        ops: Ops,
    ) -> anyhow::Result<()> {
        let key = self.department.key.clone();
        let folder = self.imap.folder.clone();
        loop {
            let last = match self.pipeline.store().checkpoint(&key, &folder).await? {
                Some((v, last)) if v == i64::from(uidvalidity) => last,
                Some((v, _)) => {
                    warn!(mailbox = %key, old = v, new = uidvalidity, "UIDVALIDITY changed; re-reading the folder (duplicates are recognised by content)");
                    0
                }
                None => 0,
            };
            let first = u32::try_from(last + 1).unwrap_or(u32::MAX);
            // Sizes first, never bodies of `1:*`. `N:*` also returns the
            // last message when N is past it: filter.
            let listing = self
                .fetch(
                    session,
                    "UID FETCH (sizes)",
                    format!("UID FETCH {first}:* (UID RFC822.SIZE)"),
                )
                .await?;
            let pending: Vec<(u32, u64)> = listing
                .into_iter()
                .filter(|(uid, _)| *uid >= first)
                // No size reported: take it for too big (headers only).
                .map(|(uid, f)| (uid, f.size.unwrap_or(u64::MAX)))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            debug!(mailbox = %key, new = pending.len(), "new mail");
            let mut backlog = self.pipeline.backlog().hold(pending.len());
            let mut batch: Vec<(u32, u64)> = Vec::new();
            let mut batch_bytes = 0u64;
            for (i, &(uid, size)) in pending.iter().enumerate() {
                batch.push((uid, size));
                batch_bytes = batch_bytes.saturating_add(size);
                let next_too_big = pending
                    .get(i + 1)
                    .is_some_and(|(_, s)| batch_bytes.saturating_add(*s) > BATCH_BYTES);
                if batch.len() >= BATCH_MAILS || next_too_big || i + 1 == pending.len() {
                    let done = self.ingest_batch(session, uidvalidity, &batch).await?;
                    backlog.done(batch.len());
                    self.after_ingest(session, ops, &done).await;
                    if self.cancel.is_cancelled() {
                        return Ok(());
                    }
                    batch.clear();
                    batch_bytes = 0;
                }
            }
        }
    }

    /// Fetches one batch and ingests it in UID order; returns the UIDs
    /// stored. Stops at the first mail it could not get, so the checkpoint
    /// never passes a mail that was not stored.
    async fn ingest_batch(
        &mut self,
        session: &mut Session,
        uidvalidity: u32,
        batch: &[(u32, u64)],
    ) -> anyhow::Result<Vec<u32>> {
        let limit = self.pipeline.max_message_size();
        let whole: Vec<u32> = batch
            .iter()
            .filter(|(_, s)| *s <= limit)
            .map(|(u, _)| *u)
            .collect();
        let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
        if !whole.is_empty() {
            let fetched = self
                .fetch(
                    session,
                    "UID FETCH (bodies)",
                    format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&whole)),
                )
                .await?;
            bodies.extend(
                fetched
                    .into_iter()
                    .filter_map(|(uid, f)| Some((uid, f.body?))),
            );
        }
        for &(uid, size) in batch {
            if size > limit {
                let mut fetched = self
                    .fetch(
                        session,
                        "UID FETCH (header)",
                        format!("UID FETCH {uid} (UID BODY.PEEK[HEADER])"),
                    )
                    .await?;
                if let Some(h) = fetched.remove(&uid).and_then(|f| f.body) {
                    bodies.insert(uid, h);
                }
            }
        }

        let mut items = Vec::with_capacity(batch.len());
        let mut missing = None;
        for &(uid, size) in batch {
            let mut truncated = size > limit;
            let raw = match bodies.remove(&uid) {
                Some(raw) => raw,
                None => match self.missing_body(session, uid).await {
                    // Expunged meanwhile by someone else: nothing to store.
                    Ok(None) => continue,
                    // Recorded as partial: never deleted from the server.
                    Ok(Some(placeholder)) => {
                        truncated = true;
                        placeholder
                    }
                    // Store what came before it, then retry from it.
                    Err(e) => {
                        missing = Some(e);
                        break;
                    }
                },
            };
            if truncated {
                self.keep_on_server.insert(uid);
            }
            items.push(Incoming {
                source: Source::Imap {
                    department: self.department.key.clone(),
                    folder: self.imap.folder.clone(),
                    uidvalidity,
                    uid,
                },
                raw,
                size: if size == u64::MAX { 0 } else { size },
                truncated,
            });
        }
        let uids: Vec<u32> = items
            .iter()
            .filter_map(|i| match i.source {
                Source::Imap { uid, .. } => Some(uid),
                Source::Pipe { .. } => None,
            })
            .collect();
        self.pipeline
            .ingest_many(&self.department, items)
            .await
            .with_context(|| format!("storing UIDs {}", uid_set(&uids)))?;
        for uid in &uids {
            self.body_failures.remove(uid);
        }
        match missing {
            Some(e) => {
                // The stored ones are finished at the next connect.
                Err(e)
            }
            None => Ok(uids),
        }
    }

    /// A listed mail whose body did not come back: `None` when it was
    /// expunged meanwhile, an error (retry) while attempts remain, then a
    /// placeholder that records it as unreadable.
    async fn missing_body(
        &mut self,
        session: &mut Session,
        uid: u32,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let still_there = self
            .fetch(
                session,
                "UID FETCH (check)",
                format!("UID FETCH {uid} (UID)"),
            )
            .await?
            .contains_key(&uid);
        let n = self.body_failures.entry(uid).or_insert(0);
        *n += 1;
        // Expunged meanwhile: it will not be listed again. If it is (a
        // server that lists what it cannot show), it counts like a mail
        // that does not come back, so the mailbox never spins on it.
        if !still_there && *n == 1 {
            info!(mailbox = %self.department.key, uid, "mail was expunged before it could be fetched");
            return Ok(None);
        }
        if *n < MAX_BODY_ATTEMPTS {
            bail!("server listed UID {uid} but did not return it (attempt {n})");
        }
        warn!(mailbox = %self.department.key, uid, "server never returned this mail; recording it as unreadable and leaving it on the server");
        Ok(Some(
            format!(
                "X-Helpdesk-Unreadable: the IMAP server did not return UID {uid} of {} after {MAX_BODY_ATTEMPTS} attempts; the mail is left on the server\r\n\r\n",
                self.imap.folder
            )
            .into_bytes(),
        ))
    }

    /// The operator's `after_ingest` action on a batch just stored.
    async fn after_ingest(&mut self, session: &mut Session, ops: Ops, done: &[u32]) {
        if done.is_empty() {
            return;
        }
        let whole: Vec<u32> = done
            .iter()
            .copied()
            .filter(|u| !self.keep_on_server.contains(u))
            .collect();
        let deletable = (!whole.is_empty()).then(|| uid_set(&whole));
        self.act(session, ops, &uid_set(done), deletable).await;
    }

    /// On connect: `after_ingest` for everything up to the checkpoint, in
    /// case a crash or an error came between a commit and the action.
    async fn sweep(&mut self, session: &mut Session, ops: Ops, last: u32) {
        let deletable = ranges_excluding(last, &self.keep_on_server);
        self.act(session, ops, &format!("1:{last}"), deletable)
            .await;
    }

    /// Applies `after_ingest` to `stored` (a UID set of stored mail), and
    /// `delete` only to `deletable` (mail stored whole). A failure is logged
    /// and never stops ingestion: the mail is safe already.
    async fn act(
        &mut self,
        session: &mut Session,
        ops: Ops,
        stored: &str,
        deletable: Option<String>,
    ) {
        let result = match self.department.after_ingest.clone() {
            AfterIngest::Keep => Ok(()),
            AfterIngest::Seen => {
                let cmd = format!("UID STORE {stored} +FLAGS.SILENT (\\Seen)");
                self.timed("UID STORE", session.run_command_and_check_ok(&cmd))
                    .await
            }
            AfterIngest::Move(target) if ops.can_move => {
                self.timed("UID MOVE", session.uid_mv(stored, &target))
                    .await
            }
            AfterIngest::Move(target) => {
                // Copy only what is not flagged deleted yet: after a copy
                // whose delete failed, a retry must not copy it again.
                match self
                    .timed(
                        "UID SEARCH",
                        session.uid_search(format!("UID {stored} UNDELETED")),
                    )
                    .await
                {
                    Ok(left) if left.is_empty() => Ok(()),
                    Ok(left) => {
                        let set = uid_set(&left.into_iter().collect::<Vec<_>>());
                        match self
                            .timed("UID COPY", session.uid_copy(&set, &target))
                            .await
                        {
                            Ok(()) => self.delete(session, ops, &set).await,
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            AfterIngest::Delete => match deletable {
                Some(set) => self.delete(session, ops, &set).await,
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            warn!(mailbox = %self.department.key, error = format!("{e:#}"), "after_ingest failed; the mail is stored and stays on the server");
        }
    }

    async fn delete(&self, session: &mut Session, ops: Ops, set: &str) -> anyhow::Result<()> {
        let cmd = format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)");
        self.timed("UID STORE", session.run_command_and_check_ok(&cmd))
            .await?;
        // Without UIDPLUS a plain EXPUNGE also removes what other clients
        // flagged \Deleted; that is their intent too.
        let cmd = if ops.uidplus {
            format!("UID EXPUNGE {set}")
        } else {
            "EXPUNGE".to_string()
        };
        self.timed("EXPUNGE", session.run_command_and_check_ok(&cmd))
            .await
    }
}

#[derive(Clone, Copy)]
struct Ops {
    can_move: bool,
    uidplus: bool,
}

/// `1:last` without the UIDs in `keep`, as a UID set; `None` when empty.
fn ranges_excluding(last: u32, keep: &HashSet<u32>) -> Option<String> {
    let mut holes: Vec<u32> = keep.iter().copied().filter(|u| *u <= last).collect();
    holes.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 1u32;
    for h in holes {
        if h > start {
            parts.push(if h - 1 == start {
                start.to_string()
            } else {
                format!("{start}:{}", h - 1)
            });
        }
        start = h.saturating_add(1);
    }
    if start <= last && last > 0 {
        parts.push(if start == last {
            start.to_string()
        } else {
            format!("{start}:{last}")
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// `1,2,3,7` → `1:3,7`.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Connects and logs in; the password is never part of an error message.
/// `tls` is the client configuration for `tls`/`starttls` mailboxes.
pub async fn connect(
    imap: &Imap,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> anyhow::Result<Session> {
    let tls_config = || tls.clone().ok_or_else(|| anyhow!("no TLS configuration"));
    let addr = format!("{}:{}", imap.host, imap.port);
    let what = || format!("connecting to {addr} as {}", imap.username);
    let timeout = imap.timeout;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((imap.host.as_str(), imap.port)))
        .await
        .map_err(|_| anyhow!("no TCP connection within {timeout:?}"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(what)?;
    let _ = tcp.set_nodelay(true);
    // A dead peer during a long IDLE is noticed within minutes.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(120))
        .with_interval(Duration::from_secs(30))
        .with_retries(4);
    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
    let client = match imap.tls {
        TlsMode::None => {
            let mut client = async_imap::Client::new(Box::new(tcp) as Box<dyn ImapIo>);
            greeting(&mut client, timeout).await.with_context(what)?;
            client
        }
        TlsMode::Tls => {
            let tls = tls_wrap(imap, tls_config()?, tcp)
                .await
                .with_context(what)?;
            let mut client = async_imap::Client::new(Box::new(tls) as Box<dyn ImapIo>);
            greeting(&mut client, timeout).await.with_context(what)?;
            client
        }
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client, timeout).await.with_context(what)?;
            tokio::time::timeout(timeout, client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|_| anyhow!("STARTTLS: no answer within {timeout:?}"))?
                .context("STARTTLS")
                .with_context(what)?;
            let tls = tls_wrap(imap, tls_config()?, client.into_inner())
                .await
                .with_context(what)?;
            async_imap::Client::new(Box::new(tls) as Box<dyn ImapIo>)
        }
    };
    let login = client.login(&imap.username, imap.password.expose());
    match tokio::time::timeout(timeout, login).await {
        Err(_) => Err(anyhow!("LOGIN: no answer within {timeout:?}")).with_context(what),
        Ok(Err((e, _))) => Err(anyhow!("LOGIN rejected: {e}")).with_context(what),
        Ok(Ok(session)) => Ok(session),
    }
}

async fn tls_wrap(
    imap: &Imap,
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls_pki_types::ServerName::try_from(imap.host.clone())
        .with_context(|| format!("{} is not a valid TLS server name", imap.host))?;
    tokio::time::timeout(
        imap.timeout,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| anyhow!("TLS handshake: no answer within {:?}", imap.timeout))?
    .context("TLS handshake")
}

async fn greeting<T: ImapIo>(
    client: &mut async_imap::Client<T>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let resp = tokio::time::timeout(timeout, client.read_response())
        .await
        .map_err(|_| anyhow!("no greeting within {timeout:?}"))??
        .ok_or_else(|| anyhow!("connection closed before the greeting"))?;
    match resp.parsed() {
        ImapResponse::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        other => bail!("unexpected greeting: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{ranges_excluding, uid_set};

    #[test]
    fn ranges_leave_out_kept_uids() {
        let keep: HashSet<u32> = [3, 4, 10].into_iter().collect();
        assert_eq!(
            ranges_excluding(12, &keep).as_deref(),
            Some("1:2,5:9,11:12")
        );
        assert_eq!(ranges_excluding(3, &keep).as_deref(), Some("1:2"));
        assert_eq!(ranges_excluding(1, &HashSet::new()).as_deref(), Some("1"));
        assert_eq!(
            ranges_excluding(4, &[1, 2, 3, 4].into_iter().collect()),
            None
        );
        assert_eq!(ranges_excluding(11, &keep).as_deref(), Some("1:2,5:9,11"));
    }

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 2]), "1:3");
    }
}
