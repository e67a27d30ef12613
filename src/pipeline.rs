//! One inbound mail, start to finish.
//!
//! 1. The raw bytes are committed first (`raw_message`, state `received`),
//!    so a mail that crashes the parser is still kept; after
//!    `MAX_PARSE_ATTEMPTS` tries it is stored unparsed instead of being
//!    fetched and crashing forever.
//! 2. It is parsed (pure, on a blocking thread).
//! 3. One transaction: duplicate check, threading, the ticket change, the
//!    message and its attachments, the acknowledgement in the outbox, and the
//!    mailbox checkpoint. A crash anywhere leaves either all of it or none.
//!
//! Threading, in order: a referenced Message-ID we know; a signed reply
//! address; a `[KEY-n]` subject tag from the ticket's customer or a
//! participant; otherwise a new ticket.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{Config, Department};
use crate::mail::bounce;
use crate::mail::classify::{self, Class};
use crate::mail::compose::{self, Author, Outgoing};
use crate::mail::parse::{self, Inbound, Mailbox};
use crate::mail::quote;
use crate::mail::thread;
use crate::mail::token;
use crate::routing;
use crate::store::{
    NewMessage, NewOutbox, NewTicket, RawSource, Routing, Status, Store, StoredRaw, Ticket, Tx,
};
use crate::templates;

/// Parse attempts before a mail is stored without parsing.
const MAX_PARSE_ATTEMPTS: i64 = 3;

/// Where a mail came from.
#[derive(Debug, Clone)]
pub enum Source {
    Imap {
        department: String,
        folder: String,
        uidvalidity: u32,
        uid: u32,
    },
    Pipe {
        department: String,
    },
}

/// Which signal put a mail on its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    References,
    ReplyToken,
    SubjectTag,
    New,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::References => "references",
            Signal::ReplyToken => "reply_token",
            Signal::SubjectTag => "subject_tag",
            Signal::New => "new",
        }
    }
}

/// What happened to a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored {
        reference: String,
        signal: Signal,
        acknowledged: bool,
    },
    Duplicate,
}

/// One mail handed to the pipeline.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub source: Source,
    pub raw: Vec<u8>,
    /// Size on the server.
    pub size: u64,
    /// `raw` holds only the headers of a mail over `max_message_size`.
    pub truncated: bool,
}

/// A mail after step 1 (its raw bytes committed).
struct Received {
    item: Incoming,
    sha256: String,
    stored: StoredRaw,
}

fn raw_source(source: &Source) -> RawSource<'_> {
    match source {
        Source::Imap {
            department,
            folder,
            uidvalidity,
            uid,
        } => RawSource {
            source: "imap",
            department,
            folder: Some(folder),
            uidvalidity: Some(i64::from(*uidvalidity)),
            uid: Some(i64::from(*uid)),
        },
        Source::Pipe { department } => RawSource {
            source: "pipe",
            department,
            folder: None,
            uidvalidity: None,
            uid: None,
        },
    }
}

/// Moves an IMAP mailbox's checkpoint to this mail.
async fn advance(tx: &mut Tx, source: &Source, now: i64) -> anyhow::Result<()> {
    if let Source::Imap {
        department,
        folder,
        uidvalidity,
        uid,
    } = source
    {
        tx.set_checkpoint(
            department,
            folder,
            i64::from(*uidvalidity),
            i64::from(*uid),
            now,
        )
        .await?;
    }
    Ok(())
}

fn log_outcome(
    department: &Department,
    source: &Source,
    mail: Option<&Inbound>,
    outcome: &Outcome,
) {
    let uid = match source {
        Source::Imap { uid, .. } => Some(*uid),
        Source::Pipe { .. } => None,
    };
    let message_id = mail.and_then(|m| m.message_id.as_deref()).unwrap_or("");
    match outcome {
        Outcome::Stored {
            reference,
            signal,
            acknowledged,
        } => info!(
            mailbox = %department.key,
            uid,
            message_id,
            ticket = %reference,
            signal = signal.as_str(),
            acknowledged,
            problems = mail.map_or(0, |m| m.problems.len()),
            "mail stored"
        ),
        Outcome::Duplicate => {
            info!(mailbox = %department.key, uid, message_id, "duplicate mail skipped")
        }
    }
}

/// Mail listed on the mail servers but not stored yet, over all mailboxes.
/// While it is large (a burst, a restart after downtime) the outbox holds
/// back, so storing mail, which makes it safe, gets the CPU first.
#[derive(Debug, Clone, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts `n` mails until the returned guard is dropped or told
    /// they are done.
    pub fn hold(&self, n: usize) -> BacklogGuard {
        self.0.fetch_add(n, Ordering::Relaxed);
        BacklogGuard {
            backlog: self.clone(),
            left: n,
        }
    }
}

pub struct BacklogGuard {
    backlog: Backlog,
    left: usize,
}

impl BacklogGuard {
    pub fn done(&mut self, n: usize) {
        let n = n.min(self.left);
        self.left -= n;
        self.backlog.0.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for BacklogGuard {
    fn drop(&mut self) {
        self.backlog.0.fetch_sub(self.left, Ordering::Relaxed);
    }
}

/// Everything the pipeline needs, shared by all mailbox tasks.
pub struct Pipeline {
    store: Store,
    /// Swapped whole by a reload; each mail reads one snapshot.
    config: std::sync::RwLock<Arc<Config>>,
    secret: Vec<u8>,
    outbox_wakeup: Arc<Notify>,
    /// Raw messages whose processing failed with an error (not a crash)
    /// in this process: retrying them is not counted as a parse attempt.
    failed_here: Mutex<HashSet<i64>>,
    backlog: Backlog,
    /// Mail other than acknowledgements (notifications, rejections) was
    /// queued: wake the outbox after the commit.
    queued_other: std::sync::atomic::AtomicBool,
}

impl Pipeline {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        secret: Vec<u8>,
        outbox_wakeup: Arc<Notify>,
    ) -> Pipeline {
        Pipeline {
            store,
            config: std::sync::RwLock::new(config),
            secret,
            outbox_wakeup,
            failed_here: Mutex::new(HashSet::new()),
            backlog: Backlog::default(),
            queued_other: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts a reloaded config in force for the next mail.
    pub fn set_config(&self, config: Arc<Config>) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    pub fn max_message_size(&self) -> u64 {
        self.config().general.max_message_size
    }

    /// Stores one mail. `size` is the size on the server; `truncated` says
    /// `raw` holds only the headers of a mail over `max_message_size`.
    /// An error means nothing after the raw bytes was stored: retry later.
    pub async fn ingest(
        &self,
        department: &Department,
        source: Source,
        raw: Vec<u8>,
        size: u64,
        truncated: bool,
    ) -> anyhow::Result<Outcome> {
        let mut outcomes = self
            .ingest_many(
                department,
                vec![Incoming {
                    source,
                    raw,
                    size,
                    truncated,
                }],
            )
            .await?;
        Ok(outcomes.pop().expect("one outcome per mail"))
    }

    /// Stores mails in order (one fetched IMAP batch); outcomes in the same
    /// order. Mail never seen before is stored together: one transaction
    /// for the raw bytes, one for everything else with a single checkpoint
    /// (group commit). A batch seen before (a crash or an error interrupted
    /// it) is processed one mail at a time, each attempt counted right
    /// before its parse, so a crash is blamed on the mail that caused it.
    /// An error means the mails from the failing one on are not stored.
    pub async fn ingest_many(
        &self,
        department: &Department,
        items: Vec<Incoming>,
    ) -> anyhow::Result<Vec<Outcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = crate::now_ms();
        let mut hashed = Vec::with_capacity(items.len());
        for item in items {
            let (item, sha256) = if item.raw.len() > 1 << 20 {
                tokio::task::spawn_blocking(move || {
                    let sha = hex::encode(Sha256::digest(&item.raw));
                    (item, sha)
                })
                .await
                .context("hashing the message")?
            } else {
                let sha = hex::encode(Sha256::digest(&item.raw));
                (item, sha)
            };
            hashed.push((item, sha256));
        }

        // 1. Raw first.
        let mut tx = self.store.begin().await?;
        let mut received = Vec::with_capacity(hashed.len());
        for (item, sha256) in hashed {
            let stored = tx
                .store_raw(
                    &raw_source(&item.source),
                    &sha256,
                    item.size as i64,
                    &item.raw,
                    item.truncated,
                    now,
                )
                .await
                .context("storing the raw message")?;
            received.push(Received {
                item,
                sha256,
                stored,
            });
        }
        tx.commit().await?;

        let seen_before = received
            .iter()
            .any(|r| !r.stored.fresh && !r.stored.already_stored);
        let outcomes = if seen_before {
            self.one_by_one(department, &received).await?
        } else {
            match self.together(department, &received).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    warn!(mailbox = %department.key, error = format!("{e:#}"), mails = received.len(), "storing the batch failed; retrying mail by mail");
                    if let Ok(mut failed) = self.failed_here.lock() {
                        failed.extend(received.iter().map(|r| r.stored.raw_message_id));
                    }
                    self.one_by_one(department, &received).await?
                }
            }
        };
        let other = self.queued_other.swap(false, Ordering::Relaxed);
        if other
            || outcomes.iter().any(|o| {
                matches!(
                    o,
                    Outcome::Stored {
                        acknowledged: true,
                        ..
                    }
                )
            })
        {
            self.outbox_wakeup.notify_waiters();
        }
        Ok(outcomes)
    }

    /// Steps 2 and 3 for a batch of fresh mail, in one transaction.
    async fn together(
        &self,
        department: &Department,
        received: &[Received],
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut mails = Vec::with_capacity(received.len());
        for r in received {
            mails.push(if r.stored.already_stored {
                None
            } else {
                Some(self.parse(department, r, r.stored.attempts).await)
            });
        }
        let now = crate::now_ms();
        let mut tx = self.store.begin().await?;
        let mut outcomes = Vec::with_capacity(received.len());
        for (r, mail) in received.iter().zip(&mails) {
            outcomes.push(match mail {
                None => Outcome::Duplicate,
                Some(mail) => self.finish(&mut tx, department, r, mail, now).await?,
            });
        }
        if let Some(last) = received.last() {
            advance(&mut tx, &last.item.source, now).await?;
        }
        tx.commit().await?;
        for ((r, mail), outcome) in received.iter().zip(&mails).zip(&outcomes) {
            log_outcome(department, &r.item.source, mail.as_ref(), outcome);
        }
        Ok(outcomes)
    }

    /// Steps 2 and 3 mail by mail, each in its own transaction.
    async fn one_by_one(
        &self,
        department: &Department,
        received: &[Received],
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(received.len());
        for r in received {
            let raw_id = r.stored.raw_message_id;
            if r.stored.already_stored {
                // Fetched or piped again (another reader, a lost
                // checkpoint, an MTA retry): only move the checkpoint on.
                let now = crate::now_ms();
                let mut tx = self.store.begin().await?;
                advance(&mut tx, &r.item.source, now).await?;
                tx.commit().await?;
                if let Ok(mut failed) = self.failed_here.lock() {
                    failed.remove(&raw_id);
                }
                log_outcome(department, &r.item.source, None, &Outcome::Duplicate);
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            // An earlier attempt that ended in an error (recorded on the
            // row, or seen by this process) is not counted; one that ended
            // the process (a crash) is.
            let failed_here = self
                .failed_here
                .lock()
                .map(|f| f.contains(&raw_id))
                .unwrap_or(false);
            let attempts = if r.stored.fresh || failed_here {
                r.stored.attempts
            } else if r.stored.errored {
                self.store.clear_raw_error(raw_id).await?;
                r.stored.attempts
            } else {
                let mut tx = self.store.begin().await?;
                let n = tx.count_attempt(raw_id).await?;
                tx.commit().await?;
                n
            };
            let mail = self.parse(department, r, attempts).await;
            let now = crate::now_ms();
            let result = async {
                let mut tx = self.store.begin().await?;
                let outcome = self.finish(&mut tx, department, r, &mail, now).await?;
                advance(&mut tx, &r.item.source, now).await?;
                tx.commit().await?;
                anyhow::Ok(outcome)
            }
            .await;
            if let Ok(mut failed) = self.failed_here.lock() {
                match &result {
                    Ok(_) => failed.remove(&raw_id),
                    Err(_) => {
                        // Bounded: entries of mail that never came back
                        // (expunged, taken over) would pile up otherwise.
                        if failed.len() > 10_000 {
                            failed.clear();
                        }
                        failed.insert(raw_id)
                    }
                };
            }
            if let Err(e) = &result {
                self.store.note_raw_error(raw_id, &format!("{e:#}")).await;
            }
            let outcome = result.with_context(|| {
                format!(
                    "storing mail {} (raw message {raw_id})",
                    mail.message_id.as_deref().unwrap_or("without Message-ID")
                )
            })?;
            log_outcome(department, &r.item.source, Some(&mail), &outcome);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Step 2: the parsed mail, or what is kept of a mail that crashed the
    /// daemon `MAX_PARSE_ATTEMPTS` times.
    async fn parse(&self, department: &Department, r: &Received, attempts: i64) -> Inbound {
        let raw = &r.item.raw;
        let mut mail = if attempts > MAX_PARSE_ATTEMPTS {
            warn!(mailbox = %department.key, raw_message_id = r.stored.raw_message_id, attempts, "mail crashed the daemon before; storing it unparsed");
            Inbound {
                text: parse::clean_text(
                    &String::from_utf8_lossy(&raw[..raw.len().min(1 << 20)]),
                    usize::MAX,
                ),
                problems: vec![format!(
                    "processing failed {} times; stored without parsing",
                    attempts - 1
                )],
                ..Inbound::default()
            }
        } else if raw.len() > 256 * 1024 {
            let raw = raw.clone();
            let fallback = department.fallback_charset.clone();
            tokio::task::spawn_blocking(move || {
                parse::parse_with(
                    &raw,
                    parse::Options {
                        fallback_charset: fallback.as_deref(),
                    },
                )
            })
            .await
            .unwrap_or_else(|_| Inbound {
                problems: vec!["the parser crashed on this mail".into()],
                ..Inbound::default()
            })
        } else {
            parse::parse_with(
                raw,
                parse::Options {
                    fallback_charset: department.fallback_charset.as_deref(),
                },
            )
        };
        if r.item.truncated {
            mail.problems.push(format!(
                "message of {} bytes exceeds max_message_size ({} bytes): only its headers were stored",
                r.item.size, self.config().general.max_message_size
            ));
        }
        mail
    }

    /// Step 3 for one mail inside the caller's transaction: duplicate
    /// check, claiming the raw row, the ticket change.
    async fn finish(
        &self,
        tx: &mut Tx,
        department: &Department,
        r: &Received,
        mail: &Inbound,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        let raw_id = r.stored.raw_message_id;
        // Empty or truncated raw bytes say nothing about identity.
        let partial = r.item.raw.is_empty() || r.item.truncated;
        let duplicate = !partial
            && tx
                .is_duplicate(
                    &department.key,
                    &r.sha256,
                    mail.message_id.as_deref(),
                    raw_id,
                )
                .await?;
        if !tx
            .claim_raw(raw_id, if duplicate { "duplicate" } else { "stored" })
            .await?
        {
            // Another daemon stored this mail meanwhile.
            return Ok(Outcome::Duplicate);
        }
        if duplicate {
            return Ok(Outcome::Duplicate);
        }
        self.apply(tx, department, raw_id, &r.item.raw, mail, now)
            .await
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        department: &Department,
        raw_id: i64,
        raw: &[u8],
        mail: &Inbound,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        // One config for the whole mail, even when a reload lands now.
        let config = self.config();
        let arrival = config
            .department(&department.key)
            .cloned()
            .unwrap_or_else(|| Arc::new(department.clone()));
        let ours = config.our_addresses();
        let (class, class_reason) = classify_mail(mail, &ours, &config.general.installation);
        let sender = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
        if class == Class::Bounce {
            return self
                .apply_bounce(tx, &config, &arrival, raw_id, raw, mail, &class_reason, now)
                .await;
        }

        let (found, found_signal) =
            find_ticket(tx, &config, &self.secret, mail, sender, &ours).await?;
        // An auto-reply that answers nothing of ours, told only by its
        // subject or sender (a customer's "Out of office: my autoreply is
        // broken", a web form sending as noreply@ with the customer in
        // Reply-To), opens a visible ticket, unanswered: a weak guess must
        // not hide a person's mail.
        let weak_guess = class == Class::AutoReply
            && found.is_none()
            && !classify::is_strong_auto_reply(&class_reason);
        if matches!(class, Class::AutoReply | Class::Loop) && !weak_guess {
            return self
                .set_aside(
                    tx,
                    &config,
                    &arrival,
                    raw_id,
                    mail,
                    (class, &class_reason),
                    found.map(|t| (t, found_signal)),
                    now,
                )
                .await;
        }
        // A reply to a ticket closed longer than reopen_within opens a new
        // one: the rules see it as new.
        let stale = found.as_ref().is_some_and(|t| {
            t.status == Status::Closed
                && now - t.closed_at.unwrap_or(t.updated_at)
                    > arrival.reopen_within.as_millis() as i64
        });
        let existing = if stale { None } else { found.as_ref() };
        let mut plan = routing::plan(
            &config,
            &mut routing::State::Live(tx),
            &arrival,
            existing,
            mail,
            None,
            now,
            None,
        )
        .await?;
        plan_for_class(&mut plan, class, &class_reason);
        // Mail the rules set aside changes no status.
        let quiet = plan.spam || plan.reject.is_some();
        let target = plan.department.clone();

        let (ticket, signal) = match found {
            Some(t) if stale => {
                let new = self
                    .open_ticket(tx, &config, &plan, mail, Some(t.ticket_id), now)
                    .await?;
                tx.insert_event(
                    new.ticket_id,
                    "linked",
                    None,
                    Some(&format!("reply to {} after reopen_within", t.reference)),
                    now,
                )
                .await?;
                (new, Signal::New)
            }
            Some(t) => {
                if t.disposition.is_some() && !quiet {
                    // A follow-up to mail set aside as spam or rejected:
                    // back in the queue, where someone will see it.
                    tx.clear_disposition(t.ticket_id, now).await?;
                    tx.insert_event(
                        t.ticket_id,
                        "restored",
                        Some(sender),
                        Some(&format!(
                            "was {}; a follow-up arrived",
                            t.disposition.as_deref().unwrap_or("")
                        )),
                        now,
                    )
                    .await?;
                }
                if t.status == Status::Closed && !quiet {
                    tx.set_status(t.ticket_id, Status::Open, now).await?;
                    tx.insert_event(
                        t.ticket_id,
                        "reopened",
                        Some(sender),
                        Some("customer replied"),
                        now,
                    )
                    .await?;
                } else if t.status == Status::Pending && !quiet {
                    tx.set_status(t.ticket_id, Status::Open, now).await?;
                    tx.insert_event(
                        t.ticket_id,
                        "status",
                        Some(sender),
                        Some("pending -> open"),
                        now,
                    )
                    .await?;
                } else {
                    tx.touch(t.ticket_id, now).await?;
                }
                self.route_existing(tx, &t, &plan, now).await?;
                (t, found_signal)
            }
            None => (
                self.open_ticket(tx, &config, &plan, mail, None, now)
                    .await?,
                Signal::New,
            ),
        };

        // People the customer copied may later write with the subject tag.
        // Not from mail threaded by its tag alone: a forged From with a
        // guessed tag must not subscribe a stranger to the staff's replies.
        if !quiet && sender == ticket.customer_email && signal != Signal::SubjectTag {
            for m in mail.to.iter().chain(mail.cc.iter()) {
                if m.email != ticket.customer_email
                    && !ours.iter().any(|o| classify::same_mailbox(o, &m.email))
                {
                    tx.add_participant(ticket.ticket_id, &m.email).await?;
                }
            }
        }

        let kind = if plan.spam {
            "spam"
        } else if plan.reject.is_some() {
            "rejected"
        } else {
            class.as_str()
        };
        let new_text = quote::split(&mail.text).text;
        self.store_inbound(
            tx,
            &ticket,
            raw_id,
            mail,
            &Reading {
                kind,
                class,
                reason: (class != Class::Customer).then_some(class_reason.as_str()),
                new_text,
            },
            signal,
            now,
        )
        .await?;

        let mut acknowledged = false;
        // Only a person is told their mail was rejected; never a list.
        if let Some(name) = plan.reject.as_ref().filter(|_| class == Class::Customer) {
            let template = target
                .named_templates
                .get(name)
                .cloned()
                .unwrap_or_else(|| target.template(templates::Kind::Rejection).clone());
            self.auto_mail(
                tx,
                &config,
                &target,
                &ticket,
                mail,
                &template,
                "rejection",
                now,
            )
            .await?;
        } else if signal == Signal::New {
            acknowledged = match &plan.auto_reply {
                routing::AutoReplyPlan::Off(reason) => {
                    tx.insert_event(
                        ticket.ticket_id,
                        "no_acknowledgement",
                        None,
                        Some(reason),
                        now,
                    )
                    .await?;
                    false
                }
                routing::AutoReplyPlan::Acknowledgement | routing::AutoReplyPlan::Template(_) => {
                    let ack = target.template(templates::Kind::Acknowledgement);
                    let template = match &plan.auto_reply {
                        routing::AutoReplyPlan::Template(name) => {
                            target.named_templates.get(name).unwrap_or(ack)
                        }
                        _ => ack,
                    }
                    .clone();
                    self.auto_mail(
                        tx,
                        &config,
                        &target,
                        &ticket,
                        mail,
                        &template,
                        "auto_reply",
                        now,
                    )
                    .await?
                }
            };
        }
        if self
            .staff_mail(
                tx,
                &config,
                &target,
                &ticket,
                &plan.notify,
                templates::Kind::Notification,
                // A mail of nothing but history: quote what there is.
                &excerpt(if new_text.trim().is_empty() {
                    &mail.text
                } else {
                    new_text
                }),
                now,
            )
            .await?
            || plan.reject.is_some()
        {
            self.queued_other.store(true, Ordering::Relaxed);
        }
        Ok(Outcome::Stored {
            reference: ticket.reference,
            signal,
            acknowledged,
        })
    }

    /// Auto-replies and loops: stored on the ticket they answer (or, when
    /// they answer none, on a closed ticket hidden from listings), never
    /// acknowledged, never a status change, nobody notified.
    #[allow(clippy::too_many_arguments)]
    async fn set_aside(
        &self,
        tx: &mut Tx,
        config: &Config,
        arrival: &Department,
        raw_id: i64,
        mail: &Inbound,
        (class, reason): (Class, &str),
        found: Option<(Ticket, Signal)>,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        let (ticket, signal) = match found {
            Some(found) => found,
            None => {
                let ticket = self
                    .hidden_ticket(tx, config, arrival, mail, class, now)
                    .await?;
                (ticket, Signal::New)
            }
        };
        let reading = Reading::automatic(class, reason, mail);
        self.store_inbound(tx, &ticket, raw_id, mail, &reading, signal, now)
            .await?;
        info!(ticket = %ticket.reference, class = class.as_str(), reason, "automatic mail stored");
        Ok(Outcome::Stored {
            reference: ticket.reference,
            signal,
            acknowledged: false,
        })
    }

    /// A closed ticket, hidden from default listings (`disposition` = the
    /// class), for automatic mail that answers none of ours.
    async fn hidden_ticket(
        &self,
        tx: &mut Tx,
        config: &Config,
        department: &Department,
        mail: &Inbound,
        class: Class,
        now: i64,
    ) -> anyhow::Result<Ticket> {
        let customer = mail.from.as_ref();
        tx.insert_ticket(&NewTicket {
            department: &department.key,
            subject: &thread::clean_subject(&mail.subject, &config.keys()),
            customer_email: customer.map_or("", |m| m.email.as_str()),
            customer_name: customer.and_then(|m| m.name.as_deref()),
            assignee: None,
            linked_ticket_id: None,
            priority: "low",
            category: None,
            tags: "",
            disposition: Some(class.as_str()),
            now,
        })
        .await
    }

    /// The inbound message row and its attachments, without any other
    /// effect on the ticket.
    #[allow(clippy::too_many_arguments)]
    async fn store_inbound(
        &self,
        tx: &mut Tx,
        ticket: &Ticket,
        raw_id: i64,
        mail: &Inbound,
        reading: &Reading<'_>,
        signal: Signal,
        now: i64,
    ) -> anyhow::Result<i64> {
        let problems = (!mail.problems.is_empty()).then(|| mail.problems.join("; "));
        let message_id = tx
            .insert_message(&NewMessage {
                ticket_id: ticket.ticket_id,
                raw_message_id: Some(raw_id),
                direction: "in",
                kind: reading.kind,
                class: Some(reading.class.as_str()),
                class_reason: reading.reason,
                thread_signal: Some(signal.as_str()),
                author: None,
                from_email: mail.from.as_ref().map_or("", |m| m.email.as_str()),
                from_name: mail.from.as_ref().and_then(|m| m.name.as_deref()),
                to_list: &join(&mail.to),
                cc_list: &join(&mail.cc),
                subject: &mail.subject,
                internet_message_id: mail.message_id.as_deref(),
                in_reply_to: mail.in_reply_to.first().map(String::as_str),
                references_list: Some(&mail.references.join(" "))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.as_str()),
                body_text: &mail.text,
                // Only when it differs: most mail has no history, and a
                // second copy of the text would double every row.
                new_text: (reading.new_text.trim() != mail.text.trim()).then_some(reading.new_text),
                problems: problems.as_deref(),
                created_at: now,
            })
            .await?;
        for a in &mail.attachments {
            tx.insert_attachment(
                message_id,
                a.filename.as_deref(),
                &a.content_type,
                &a.content,
            )
            .await?;
        }
        Ok(message_id)
    }

    /// A bounce: attached to the ticket of the outbound mail that bounced
    /// (by the returned Message-ID, else the newest mail to a failed
    /// recipient), which is marked bounced; hard bounces count towards
    /// suppressing automatic mail to the address; the assignee hears of it
    /// once. Never a new (visible) ticket, never an acknowledgement.
    #[allow(clippy::too_many_arguments)]
    async fn apply_bounce(
        &self,
        tx: &mut Tx,
        config: &Config,
        arrival: &Department,
        raw_id: i64,
        raw: &[u8],
        mail: &Inbound,
        reason: &str,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        let report = bounce::parse(raw, mail.message_id.as_deref());
        let mut outbound = None;
        if let Some(id) = &report.original_message_id {
            outbound = tx.outbound_by_message_id(id).await?;
        }
        if outbound.is_none() {
            let since = now - BOUNCE_LOOKBACK_MS;
            for r in report.recipients.iter().take(MAX_BOUNCE_RECIPIENTS) {
                outbound = tx.latest_outbound_to(r, since).await?;
                if outbound.is_some() {
                    break;
                }
            }
        }
        let found = match &outbound {
            Some(o) => tx.ticket_by_id(o.ticket_id).await?,
            None => None,
        };
        let (ticket, signal) = match found {
            Some(t) => (t, Signal::References),
            None => {
                let ours = config.our_addresses();
                let sender = mail.from.as_ref().map_or("", |m| m.email.as_str());
                match find_ticket(tx, config, &self.secret, mail, sender, &ours).await? {
                    (Some(t), signal) => (t, signal),
                    (None, _) => (
                        self.hidden_ticket(tx, config, arrival, mail, Class::Bounce, now)
                            .await?,
                        Signal::New,
                    ),
                }
            }
        };
        let reading = Reading::automatic(Class::Bounce, reason, mail);
        self.store_inbound(tx, &ticket, raw_id, mail, &reading, signal, now)
            .await?;

        let failed = bounce_failed(&report);
        let detail = bounce_summary(&report);
        tx.insert_event(ticket.ticket_id, "bounce", None, Some(&detail), now)
            .await?;
        info!(ticket = %ticket.reference, failed, detail = %detail, "bounce stored");
        // Only permanent failures count against an address (a full mailbox
        // or a failure after retries may take mail next time).
        // Only what provably bounced counts: a permanent 5.x.x failure for
        // a recipient of the mail of ours it matched. Anyone can send a
        // mail that looks like a bounce; it must not silence an address.
        let permanent =
            report.is_hard() && report.status.as_deref().is_some_and(|s| s.starts_with('5'));
        if permanent && let Some(o) = &outbound {
            let window = config.general.bounce_suppress_for.as_millis() as i64;
            for r in report
                .recipients
                .iter()
                .filter(|r| o.was_sent_to(r))
                .take(MAX_BOUNCE_RECIPIENTS)
            {
                if let Some(until) = tx
                    .record_hard_bounce(r, now, window, config.general.bounce_suppress_after)
                    .await?
                {
                    warn!(address = %r, until = %crate::format_ms(until), "address bounced repeatedly: automatic mail to it suppressed");
                    tx.insert_event(
                        ticket.ticket_id,
                        "suppressed",
                        None,
                        Some(&format!(
                            "{r} bounced {} times: no automatic mail to it until {}",
                            config.general.bounce_suppress_after,
                            crate::format_ms(until)
                        )),
                        now,
                    )
                    .await?;
                }
            }
        }
        let Some(o) = outbound else {
            return Ok(Outcome::Stored {
                reference: ticket.reference,
                signal,
                acknowledged: false,
            });
        };
        tx.mark_bounced(o.message_id, &detail, failed, now).await?;
        // Once per bounced mail, and never about mail to staff (a bouncing
        // staff address would otherwise be told of its own bounces).
        // Staff hear of mail a person wrote or closed with, once per mail;
        // a bounced acknowledgement or rejection (spam with a forged sender,
        // most often) and mail to staff only leave the record.
        let tell =
            failed && o.bounced_at.is_none() && matches!(o.kind.as_str(), "staff" | "closure");
        if tell {
            let department = config
                .department(&ticket.department)
                .cloned()
                .unwrap_or_else(|| Arc::new(arrival.clone()));
            let to = match &ticket.assignee {
                Some(a) => vec![a.clone()],
                None => routing::managers(config, &ticket.department),
            };
            if self
                .staff_mail(
                    tx,
                    config,
                    &department,
                    &ticket,
                    &to,
                    templates::Kind::Bounce,
                    &detail,
                    now,
                )
                .await?
            {
                self.queued_other.store(true, Ordering::Relaxed);
            }
        }
        Ok(Outcome::Stored {
            reference: ticket.reference,
            signal,
            acknowledged: false,
        })
    }

    /// Whether automatic mail to `recipient` on `ticket` must be held back:
    /// the address bounced repeatedly, the ticket had its share this hour,
    /// or (for replies to a sender, `per_sender`) the sender had theirs.
    /// A held-back mail is counted and noted on the ticket.
    async fn hold_back(
        &self,
        tx: &mut Tx,
        config: &Config,
        ticket: &Ticket,
        recipient: &str,
        per_sender: bool,
        now: i64,
    ) -> anyhow::Result<Option<String>> {
        let hour_ago = now - 3_600_000;
        let ours = config
            .our_addresses()
            .iter()
            .any(|o| classify::same_mailbox(o, recipient));
        let why = if ours {
            // Never write to ourselves: that is how loops start.
            Some((
                "own_address",
                format!("{recipient} is one of our addresses"),
            ))
        } else if let Some(until) = tx.suppressed_until(recipient, now).await? {
            Some((
                "bounced_address",
                format!(
                    "{recipient} bounced repeatedly: no automatic mail to it until {}",
                    crate::format_ms(until)
                ),
            ))
        } else if per_sender
            && tx.auto_replies_since(recipient, hour_ago).await?
                >= config.general.auto_reply_limit_per_hour
        {
            Some((
                "sender_limit",
                format!("auto_reply_limit_per_hour reached for {recipient}"),
            ))
        } else if tx.automatic_mail_since(ticket.ticket_id, hour_ago).await?
            >= config.general.auto_mail_per_ticket_per_hour
        {
            Some((
                "ticket_limit",
                format!(
                    "auto_mail_per_ticket_per_hour reached on {}",
                    ticket.reference
                ),
            ))
        } else {
            None
        };
        let Some((counter, why)) = why else {
            return Ok(None);
        };
        warn!(ticket = %ticket.reference, to = %recipient, "automatic mail suppressed: {why}");
        tx.insert_event(ticket.ticket_id, "suppressed", None, Some(&why), now)
            .await?;
        tx.bump_counter("auto_mail_suppressed", 1).await?;
        tx.bump_counter(&format!("auto_mail_suppressed.{counter}"), 1)
            .await?;
        Ok(Some(why))
    }

    /// Mail from the department to staff (`kind` names the template);
    /// returns whether any was queued.
    #[allow(clippy::too_many_arguments)]
    async fn staff_mail(
        &self,
        tx: &mut Tx,
        config: &Config,
        department: &Department,
        ticket: &Ticket,
        to: &[String],
        kind: templates::Kind,
        detail: &str,
        now: i64,
    ) -> anyhow::Result<bool> {
        let mut queued = false;
        for email in to {
            if self
                .hold_back(tx, config, ticket, email, false, now)
                .await?
                .is_some()
            {
                continue;
            }
            let name = config.staff_member(email).map(|s| s.name.clone());
            let to = [Mailbox {
                name,
                email: email.clone(),
            }];
            let customer = match &ticket.customer_name {
                Some(n) => format!("{n} <{}>", ticket.customer_email),
                None => ticket.customer_email.clone(),
            };
            let (subject, body) = department.template(kind).render(&templates::Values {
                reference: &ticket.reference,
                subject: &ticket.subject,
                department: &department.name,
                customer_name: &customer,
                detail,
            });
            let result = queue_mail(
                tx,
                department,
                ticket,
                &self.secret,
                QueuedMail {
                    kind: if kind == templates::Kind::Bounce {
                        "bounce_notice"
                    } else {
                        "notification"
                    },
                    author: Author::AutoGenerated,
                    staff: None,
                    to: &to,
                    cc: &[],
                    subject: &subject,
                    body: &body,
                    in_reply_to: None,
                    references: &[],
                    installation: &config.general.installation,
                },
                now,
            )
            .await;
            match result {
                Ok(()) => queued = true,
                Err(e) => {
                    warn!(ticket = %ticket.reference, to = %email, error = %e, "no staff mail")
                }
            }
        }
        Ok(queued)
    }

    /// What the rules change on a ticket a mail threads into.
    async fn route_existing(
        &self,
        tx: &mut Tx,
        t: &Ticket,
        plan: &routing::Plan,
        now: i64,
    ) -> anyhow::Result<()> {
        if plan.rules.is_empty() {
            return Ok(());
        }
        if plan.spam || plan.reject.is_some() {
            // The mail is set aside; the ticket stays as it is.
            tx.insert_event(t.ticket_id, "routing", None, Some(&plan.history()), now)
                .await?;
            return Ok(());
        }
        let a = &plan.decision.actions;
        let mut tags: Vec<&str> = t.tags.split_whitespace().collect();
        for tag in &a.tags {
            if !tags.contains(&tag.as_str()) {
                tags.push(tag);
            }
        }
        if plan.department.key != t.department {
            tx.insert_event(
                t.ticket_id,
                "moved",
                None,
                Some(&format!("{} -> {}", t.department, plan.department.key)),
                now,
            )
            .await?;
        }
        tx.set_routing(
            t.ticket_id,
            &Routing {
                department: &plan.department.key,
                priority: a.priority.map_or(t.priority.as_str(), |p| p.as_str()),
                category: a.category.as_deref().or(t.category.as_deref()),
                tags: &tags.join(" "),
                now,
            },
        )
        .await?;
        if t.assignee.is_none()
            && let Some(a) = &plan.assignee
        {
            tx.set_assignee(t.ticket_id, Some(a), now).await?;
            tx.insert_event(t.ticket_id, "assigned", None, Some(a), now)
                .await?;
        }
        tx.insert_event(t.ticket_id, "routing", None, Some(&plan.history()), now)
            .await?;
        Ok(())
    }

    async fn open_ticket(
        &self,
        tx: &mut Tx,
        config: &Config,
        plan: &routing::Plan,
        mail: &Inbound,
        linked: Option<i64>,
        now: i64,
    ) -> anyhow::Result<Ticket> {
        let subject = thread::clean_subject(&mail.subject, &config.keys());
        let customer = mail.from.as_ref();
        let a = &plan.decision.actions;
        let disposition = if plan.spam {
            Some("spam")
        } else if plan.reject.is_some() {
            Some("rejected")
        } else {
            None
        };
        let ticket = tx
            .insert_ticket(&NewTicket {
                department: &plan.department.key,
                subject: &subject,
                customer_email: customer.map_or("", |m| m.email.as_str()),
                customer_name: customer.and_then(|m| m.name.as_deref()),
                assignee: plan.assignee.as_deref(),
                linked_ticket_id: linked,
                priority: a.priority.map_or("medium", |p| p.as_str()),
                category: a.category.as_deref(),
                tags: &a.tags.join(" "),
                disposition,
                now,
            })
            .await?;
        tx.insert_event(
            ticket.ticket_id,
            "routing",
            None,
            Some(&plan.history()),
            now,
        )
        .await?;
        if let Some(a) = &plan.assignee {
            tx.insert_event(ticket.ticket_id, "assigned", None, Some(a), now)
                .await?;
        }
        Ok(ticket)
    }

    /// Queues an automatic reply to the sender (acknowledgement or
    /// rejection) unless the sender already got `auto_reply_limit_per_hour`
    /// of them.
    #[allow(clippy::too_many_arguments)]
    async fn auto_mail(
        &self,
        tx: &mut Tx,
        config: &Config,
        department: &Department,
        ticket: &Ticket,
        mail: &Inbound,
        template: &templates::Template,
        kind: &str,
        now: i64,
    ) -> anyhow::Result<bool> {
        let Some(customer) = &mail.from else {
            return Ok(false);
        };
        if self
            .hold_back(tx, config, ticket, &customer.email, true, now)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let (subject, body) = template.render(&templates::Values {
            reference: &ticket.reference,
            subject: &ticket.subject,
            department: &department.name,
            customer_name: customer.name.as_deref().unwrap_or(&customer.email),
            detail: "",
        });
        let mut references = mail.references.clone();
        references.extend(mail.message_id.clone());
        let queued = queue_mail(
            tx,
            department,
            ticket,
            &self.secret,
            QueuedMail {
                // The per-sender limit counts every automatic reply.
                kind: if kind == "rejection" {
                    "auto_reply"
                } else {
                    kind
                },
                author: Author::AutoReplied,
                staff: None,
                to: std::slice::from_ref(customer),
                cc: &[],
                subject: &compose::tagged_subject(&ticket.reference, &subject, false),
                body: &body,
                in_reply_to: mail.message_id.as_deref(),
                references: &references,
                installation: &config.general.installation,
            },
            now,
        )
        .await;
        match queued {
            Ok(()) => Ok(true),
            Err(e) => {
                // An address lettre cannot use is the customer's problem,
                // not a reason to refuse the mail.
                warn!(ticket = %ticket.reference, error = %e, "no automatic reply");
                tx.insert_event(
                    ticket.ticket_id,
                    "no_acknowledgement",
                    None,
                    Some(&e.to_string()),
                    now,
                )
                .await?;
                Ok(false)
            }
        }
    }
}

/// The ticket a mail belongs to, and the signal that said so: a
/// referenced Message-ID we know; a signed reply address; a `[KEY-n]`
/// subject tag from the ticket's customer or a participant.
pub async fn find_ticket(
    tx: &mut Tx,
    config: &Config,
    secret: &[u8],
    mail: &Inbound,
    sender: &str,
    ours: &[&str],
) -> anyhow::Result<(Option<Ticket>, Signal)> {
    let candidates = thread::reference_candidates(&mail.in_reply_to, &mail.references);
    if !candidates.is_empty()
        && let Some(t) = tx.ticket_by_message_ids(&candidates).await?
    {
        return Ok((Some(t), Signal::References));
    }

    let recipients = mail.delivered_to.iter().map(String::as_str).chain(
        mail.to
            .iter()
            .chain(mail.cc.iter())
            .map(|m| m.email.as_str()),
    );
    if !secret.is_empty() {
        for address in recipients {
            if let Some(tok) = token::token_in_address(address, ours)
                && let Some(reference) = token::verify(secret, tok)
                && let Some(t) = tx.ticket_by_ref(&reference).await?
            {
                return Ok((Some(t), Signal::ReplyToken));
            }
        }
    }

    for tag in thread::subject_tags(&mail.subject, &config.keys()) {
        if let Some(t) = tx.ticket_by_ref(&tag.reference()).await? {
            let trusted = !sender.is_empty()
                && (t.customer_email == sender || tx.is_participant(t.ticket_id, sender).await?);
            if trusted {
                return Ok((Some(t), Signal::SubjectTag));
            }
        }
    }
    Ok((None, Signal::New))
}

fn join(list: &[Mailbox]) -> String {
    list.iter()
        .map(|m| m.email.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far back a bounce without the original Message-ID is matched to
/// our newest mail to its failed recipient.
const BOUNCE_LOOKBACK_MS: i64 = 30 * 86_400_000;
/// How an inbound mail was read, as stored with it.
struct Reading<'a> {
    /// `message.kind`: the class, or spam/rejected when a rule set it aside.
    kind: &'a str,
    class: Class,
    /// Why it is not a person's mail; None for customer mail.
    reason: Option<&'a str>,
    /// The new text without quoted history or signature.
    new_text: &'a str,
}

impl<'a> Reading<'a> {
    fn automatic(class: Class, reason: &'a str, mail: &'a Inbound) -> Reading<'a> {
        Reading {
            kind: class.as_str(),
            class,
            reason: Some(reason),
            new_text: quote::split(&mail.text).text,
        }
    }
}

/// Adjusts a routing plan to the mail's class, in the daemon and in
/// `rules explain`: spam is kept aside (never rejected, assigned or
/// announced), list and bulk mail is never answered (RFC 3834 §2).
pub fn plan_for_class(plan: &mut routing::Plan, class: Class, reason: &str) {
    match class {
        Class::AutoReply => {
            plan.auto_reply = routing::AutoReplyPlan::Off(format!("possibly automatic: {reason}"));
        }
        Class::Spam => {
            plan.spam = true;
            // A rejection would be backscatter to a forged sender.
            plan.reject = None;
            plan.assignee = None;
            plan.notify.clear();
            plan.auto_reply = routing::AutoReplyPlan::Off(format!("spam: {reason}"));
        }
        Class::List => {
            plan.auto_reply = routing::AutoReplyPlan::Off(format!("list or bulk mail: {reason}"));
        }
        _ => {}
    }
}

/// Most failed recipients of one bounce that are looked up or counted.
const MAX_BOUNCE_RECIPIENTS: usize = 10;
/// Most of the customer's new text quoted in a notification.
const MAX_EXCERPT: usize = 2000;

/// Whether a bounce reports a failed delivery (not a delay or a success
/// notice). A bounce that says nothing either way failed.
fn bounce_failed(b: &bounce::Bounce) -> bool {
    match b.kind {
        bounce::Kind::Hard | bounce::Kind::Soft => true,
        bounce::Kind::Delayed | bounce::Kind::Delivered => false,
        bounce::Kind::Unknown => !matches!(
            b.action.as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some(a) if a != "failed"
        ),
    }
}

/// One line for the ticket history and the staff notice.
fn bounce_summary(b: &bounce::Bounce) -> String {
    let mut out = if b.recipients.is_empty() {
        "recipient unknown".to_string()
    } else {
        b.recipients.join(", ")
    };
    out.push_str(": ");
    out.push_str(
        b.action
            .as_deref()
            .unwrap_or(if bounce_failed(b) { "failed" } else { "notice" }),
    );
    if let Some(s) = &b.status {
        out.push_str(&format!(" ({s})"));
    }
    if let Some(d) = &b.diagnostic {
        out.push_str(" — ");
        out.push_str(&parse::clean_text(d, 500));
    }
    out
}

/// The start of the customer's new text, for notifications.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_EXCERPT {
        return text.to_string();
    }
    let mut end = MAX_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} […]", &text[..end])
}

/// The class of an inbound mail (`classify::classify_with`), with our own
/// `X-Helpdesk-Loop` marker recognised as a loop.
pub fn classify_mail(mail: &Inbound, ours: &[&str], installation: &str) -> (Class, String) {
    classify::classify_with(
        mail,
        &classify::Context {
            ours,
            installation: Some(installation),
        },
    )
}

/// An outgoing mail before composition.
pub struct QueuedMail<'a> {
    /// `message.kind` and `outbox.kind`: auto_reply, staff, closure.
    pub kind: &'a str,
    pub author: Author,
    pub staff: Option<&'a str>,
    pub to: &'a [Mailbox],
    pub cc: &'a [Mailbox],
    pub subject: &'a str,
    pub body: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// `[general] installation` (see `compose::LOOP_HEADER`).
    pub installation: &'a str,
}

/// Composes a mail from the department address, stores it on the ticket
/// and queues it, inside the caller's transaction. Fails only when the
/// mail cannot be composed (an unusable address); the transaction is then
/// untouched.
pub async fn queue_mail(
    tx: &mut Tx,
    department: &Department,
    ticket: &Ticket,
    secret: &[u8],
    q: QueuedMail<'_>,
    now: i64,
) -> anyhow::Result<()> {
    let message_id = compose::new_message_id(department.domain());
    let reply_to = token::address(&department.address, &token::make(secret, &ticket.reference));
    let data = compose::compose(&Outgoing {
        from_name: &department.name,
        from_address: &department.address,
        to: q.to,
        cc: q.cc,
        reply_to: &reply_to,
        subject: q.subject,
        body: q.body,
        message_id: &message_id,
        in_reply_to: q.in_reply_to,
        references: q.references,
        author: q.author,
        installation: q.installation,
    })
    .map_err(anyhow::Error::msg)?;
    let recipients: Vec<String> = q.to.iter().chain(q.cc).map(|m| m.email.clone()).collect();
    let stored_id = tx
        .insert_message(&NewMessage {
            ticket_id: ticket.ticket_id,
            direction: "out",
            kind: q.kind,
            author: q.staff,
            from_email: &department.address,
            from_name: Some(&department.name),
            to_list: &join(q.to),
            cc_list: &join(q.cc),
            subject: q.subject,
            internet_message_id: Some(&message_id),
            in_reply_to: q.in_reply_to,
            references_list: Some(&q.references.join(" "))
                .filter(|s| !s.is_empty())
                .map(|s| s.as_str()),
            body_text: q.body,
            created_at: now,
            ..NewMessage::default()
        })
        .await?;
    tx.enqueue(&NewOutbox {
        message_id: stored_id,
        ticket_id: ticket.ticket_id,
        department: &department.key,
        kind: q.kind,
        mail_from: &department.address,
        recipients: &recipients,
        data: &data,
        now,
    })
    .await?;
    Ok(())
}
