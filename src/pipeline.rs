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
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::{Config, Department};
use crate::mail::classify;
use crate::mail::compose::{self, Author, Outgoing};
use crate::mail::parse::{self, Inbound, Mailbox};
use crate::mail::thread;
use crate::mail::token;
use crate::store::{NewMessage, NewOutbox, NewTicket, RawSource, Status, Store, Ticket, Tx};
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

/// Everything the pipeline needs, shared by all mailbox tasks.
pub struct Pipeline {
    store: Store,
    config: Arc<Config>,
    secret: Vec<u8>,
    outbox_wakeup: Arc<Notify>,
    /// Raw messages whose processing failed with an error (not a crash)
    /// in this process: retrying them is not counted as a parse attempt.
    failed_here: Mutex<HashSet<i64>>,
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
            config,
            secret,
            outbox_wakeup,
            failed_here: Mutex::new(HashSet::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    pub fn max_message_size(&self) -> u64 {
        self.config.general.max_message_size
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
        let now = crate::now_ms();
        let (raw, sha256) = if raw.len() > 1 << 20 {
            tokio::task::spawn_blocking(move || {
                let sha = hex::encode(Sha256::digest(&raw));
                (raw, sha)
            })
            .await
            .context("hashing the message")?
        } else {
            let sha = hex::encode(Sha256::digest(&raw));
            (raw, sha)
        };
        let raw_source = match &source {
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
        };

        // 1. Raw first.
        let mut tx = self.store.begin().await?;
        let stored = tx
            .store_raw(&raw_source, &sha256, size as i64, &raw, truncated, now)
            .await
            .context("storing the raw message")?;
        let raw_id = stored.raw_message_id;
        if stored.already_stored {
            // Fetched or piped again (another reader, a lost checkpoint, an
            // MTA retry): only move the checkpoint on.
            self.advance(&mut tx, &source, now).await?;
            tx.commit().await?;
            info!(mailbox = %department.key, raw_message_id = raw_id, "mail already stored; skipped");
            return Ok(Outcome::Duplicate);
        }
        // An earlier attempt that ended in an error in this process is not
        // counted; one that ended the process (a crash) is.
        let failed_here = self
            .failed_here
            .lock()
            .map(|f| f.contains(&raw_id))
            .unwrap_or(false);
        let attempts = if stored.fresh || failed_here {
            stored.attempts
        } else {
            tx.count_attempt(raw_id).await?
        };
        tx.commit().await?;

        // 2. Parse.
        let raw_len = raw.len();
        let mut mail = if attempts > MAX_PARSE_ATTEMPTS {
            warn!(mailbox = %department.key, raw_message_id = raw_id, attempts, "mail crashed the daemon before; storing it unparsed");
            Inbound {
                text: parse::clean_text(
                    &String::from_utf8_lossy(&raw[..raw_len.min(1 << 20)]),
                    usize::MAX,
                ),
                problems: vec![format!(
                    "processing failed {} times; stored without parsing",
                    attempts - 1
                )],
                ..Inbound::default()
            }
        } else if raw_len > 256 * 1024 {
            tokio::task::spawn_blocking(move || parse::parse(&raw))
                .await
                .unwrap_or_else(|_| Inbound {
                    problems: vec!["the parser crashed on this mail".into()],
                    ..Inbound::default()
                })
        } else {
            parse::parse(&raw)
        };
        if truncated {
            mail.problems.push(format!(
                "message of {size} bytes exceeds max_message_size ({} bytes): only its headers were stored",
                self.config.general.max_message_size
            ));
        }

        // 3. One transaction for everything else.
        let result = self
            .finish(
                department,
                &source,
                raw_id,
                &sha256,
                raw_len == 0 || truncated,
                &mail,
                now,
            )
            .await;
        if let Ok(mut failed) = self.failed_here.lock() {
            match &result {
                Ok(_) => failed.remove(&raw_id),
                Err(_) => failed.insert(raw_id),
            };
        }
        let outcome = result.with_context(|| {
            format!(
                "storing mail {} (raw message {raw_id})",
                mail.message_id.as_deref().unwrap_or("without Message-ID")
            )
        })?;

        let uid = match &source {
            Source::Imap { uid, .. } => Some(*uid),
            Source::Pipe { .. } => None,
        };
        match &outcome {
            Outcome::Stored {
                reference,
                signal,
                acknowledged,
            } => {
                if *acknowledged {
                    self.outbox_wakeup.notify_one();
                }
                info!(
                    mailbox = %department.key,
                    uid,
                    message_id = mail.message_id.as_deref().unwrap_or(""),
                    ticket = %reference,
                    signal = signal.as_str(),
                    acknowledged,
                    problems = mail.problems.len(),
                    "mail stored"
                );
            }
            Outcome::Duplicate => info!(
                mailbox = %department.key,
                uid,
                message_id = mail.message_id.as_deref().unwrap_or(""),
                "duplicate mail skipped"
            ),
        }
        Ok(outcome)
    }

    async fn advance(&self, tx: &mut Tx, source: &Source, now: i64) -> anyhow::Result<()> {
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

    /// Step 3: duplicate check, the ticket change, the checkpoint.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        department: &Department,
        source: &Source,
        raw_id: i64,
        sha256: &str,
        partial: bool,
        mail: &Inbound,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        let mut tx = self.store.begin().await?;
        // Empty or truncated raw bytes say nothing about identity.
        let duplicate = !partial
            && tx
                .is_duplicate(&department.key, sha256, mail.message_id.as_deref(), raw_id)
                .await?;
        if !tx
            .claim_raw(raw_id, if duplicate { "duplicate" } else { "stored" })
            .await?
        {
            // Another daemon stored this mail meanwhile.
            return Ok(Outcome::Duplicate);
        }
        let outcome = if duplicate {
            Outcome::Duplicate
        } else {
            self.apply(&mut tx, department, raw_id, mail, now).await?
        };
        self.advance(&mut tx, source, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        department: &Department,
        raw_id: i64,
        mail: &Inbound,
        now: i64,
    ) -> anyhow::Result<Outcome> {
        let ours = self.config.our_addresses();
        let automatic = classify::automatic(mail, &ours);
        let sender = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");

        let (found, signal) = self.find_ticket(tx, mail, sender).await?;
        let (ticket, signal) = match found {
            Some(t) if t.status == Status::Closed && automatic.is_none() => {
                let closed_at = t.closed_at.unwrap_or(t.updated_at);
                if now - closed_at <= department.reopen_within.as_millis() as i64 {
                    tx.set_status(t.ticket_id, Status::Open, now).await?;
                    tx.insert_event(
                        t.ticket_id,
                        "reopened",
                        Some(sender),
                        Some("customer replied"),
                        now,
                    )
                    .await?;
                    (t, signal)
                } else {
                    let new = self
                        .open_ticket(tx, department, mail, Some(t.ticket_id), now)
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
            }
            Some(t) => {
                if t.status == Status::Pending && automatic.is_none() {
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
                (t, signal)
            }
            None => (
                self.open_ticket(tx, department, mail, None, now).await?,
                Signal::New,
            ),
        };

        // People the customer copied may later write with the subject tag.
        // Not from mail threaded by its tag alone: a forged From with a
        // guessed tag must not subscribe a stranger to the staff's replies.
        if automatic.is_none() && sender == ticket.customer_email && signal != Signal::SubjectTag {
            for m in mail.to.iter().chain(mail.cc.iter()) {
                if m.email != ticket.customer_email
                    && !ours.iter().any(|o| classify::same_mailbox(o, &m.email))
                {
                    tx.add_participant(ticket.ticket_id, &m.email).await?;
                }
            }
        }

        let problems = (!mail.problems.is_empty()).then(|| mail.problems.join("; "));
        let message_id = tx
            .insert_message(&NewMessage {
                ticket_id: ticket.ticket_id,
                raw_message_id: Some(raw_id),
                direction: "in",
                kind: if automatic.is_some() {
                    "auto_reply"
                } else {
                    "customer"
                },
                class_reason: automatic.as_deref(),
                thread_signal: Some(signal.as_str()),
                author: None,
                from_email: sender,
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

        let acknowledged = if signal == Signal::New {
            self.acknowledge(tx, department, &ticket, mail, automatic.as_deref(), now)
                .await?
        } else {
            false
        };
        Ok(Outcome::Stored {
            reference: ticket.reference,
            signal,
            acknowledged,
        })
    }

    async fn find_ticket(
        &self,
        tx: &mut Tx,
        mail: &Inbound,
        sender: &str,
    ) -> anyhow::Result<(Option<Ticket>, Signal)> {
        let candidates = thread::reference_candidates(&mail.in_reply_to, &mail.references);
        if !candidates.is_empty()
            && let Some(t) = tx.ticket_by_message_ids(&candidates).await?
        {
            return Ok((Some(t), Signal::References));
        }

        let ours = self.config.our_addresses();
        let recipients = mail.delivered_to.iter().map(String::as_str).chain(
            mail.to
                .iter()
                .chain(mail.cc.iter())
                .map(|m| m.email.as_str()),
        );
        for address in recipients {
            if let Some(tok) = token::token_in_address(address, &ours)
                && let Some(reference) = token::verify(&self.secret, tok)
                && let Some(t) = tx.ticket_by_ref(&reference).await?
            {
                return Ok((Some(t), Signal::ReplyToken));
            }
        }

        for tag in thread::subject_tags(&mail.subject, &self.config.keys()) {
            if let Some(t) = tx.ticket_by_ref(&tag.reference()).await? {
                let trusted = !sender.is_empty()
                    && (t.customer_email == sender
                        || tx.is_participant(t.ticket_id, sender).await?);
                if trusted {
                    return Ok((Some(t), Signal::SubjectTag));
                }
            }
        }
        Ok((None, Signal::New))
    }

    async fn open_ticket(
        &self,
        tx: &mut Tx,
        department: &Department,
        mail: &Inbound,
        linked: Option<i64>,
        now: i64,
    ) -> anyhow::Result<Ticket> {
        let subject = thread::clean_subject(&mail.subject, &self.config.keys());
        let customer = mail.from.as_ref();
        let ticket = tx
            .insert_ticket(&NewTicket {
                department: &department.key,
                subject: &subject,
                customer_email: customer.map_or("", |m| m.email.as_str()),
                customer_name: customer.and_then(|m| m.name.as_deref()),
                assignee: department.default_assignee.as_deref(),
                linked_ticket_id: linked,
                now,
            })
            .await?;
        tx.insert_event(ticket.ticket_id, "created", None, None, now)
            .await?;
        if let Some(a) = &department.default_assignee {
            tx.insert_event(ticket.ticket_id, "assigned", None, Some(a), now)
                .await?;
        }
        Ok(ticket)
    }

    /// Queues the acknowledgement unless the mail is automatic or the
    /// sender already got `auto_reply_limit_per_hour` of them.
    async fn acknowledge(
        &self,
        tx: &mut Tx,
        department: &Department,
        ticket: &Ticket,
        mail: &Inbound,
        automatic: Option<&str>,
        now: i64,
    ) -> anyhow::Result<bool> {
        let customer = match (&mail.from, automatic) {
            (Some(c), None) => c,
            (_, Some(reason)) => {
                tx.insert_event(
                    ticket.ticket_id,
                    "no_acknowledgement",
                    None,
                    Some(reason),
                    now,
                )
                .await?;
                return Ok(false);
            }
            (None, None) => return Ok(false),
        };
        let sent = tx
            .auto_replies_since(&customer.email, now - 3_600_000)
            .await?;
        if sent >= self.config.general.auto_reply_limit_per_hour {
            warn!(sender = %customer.email, sent, "acknowledgement suppressed by auto_reply_limit_per_hour");
            tx.insert_event(
                ticket.ticket_id,
                "no_acknowledgement",
                None,
                Some("auto_reply_limit_per_hour reached"),
                now,
            )
            .await?;
            return Ok(false);
        }
        let (subject, body) = department
            .template(templates::Kind::Acknowledgement)
            .render(&templates::Values {
                reference: &ticket.reference,
                subject: &ticket.subject,
                department: &department.name,
                customer_name: customer.name.as_deref().unwrap_or(&customer.email),
            });
        let mut references = mail.references.clone();
        references.extend(mail.message_id.clone());
        let queued = queue_mail(
            tx,
            department,
            ticket,
            &self.secret,
            QueuedMail {
                kind: "auto_reply",
                author: Author::AutoReplied,
                staff: None,
                to: std::slice::from_ref(customer),
                cc: &[],
                subject: &compose::tagged_subject(&ticket.reference, &subject, false),
                body: &body,
                in_reply_to: mail.message_id.as_deref(),
                references: &references,
            },
            now,
        )
        .await;
        match queued {
            Ok(()) => Ok(true),
            Err(e) => {
                // An address lettre cannot use is the customer's problem,
                // not a reason to refuse the mail.
                warn!(ticket = %ticket.reference, error = %e, "no acknowledgement");
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

fn join(list: &[Mailbox]) -> String {
    list.iter()
        .map(|m| m.email.as_str())
        .collect::<Vec<_>>()
        .join(", ")
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
