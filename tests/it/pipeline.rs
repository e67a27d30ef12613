//! `Pipeline::ingest` without a mail stack: raw RFC 5322 bytes in, tickets
//! and queued mail out, on both backends. Staff act through `Service`.

use std::sync::Arc;
use std::time::Duration;

use helpdesk::config::{Config, Department, Options};
use helpdesk::mail::parse::{Inbound, parse};
use helpdesk::mail::token;
use helpdesk::pipeline::{Outcome, Pipeline, Signal, Source};
use helpdesk::service::{Service, ServiceError};
use helpdesk::store::{MessageRecord, OutboxMail, Status, Store, Ticket};
use tokio::sync::Notify;

use crate::support::{Backend, TestDb};

const SECRET: &str = "pipeline-test-secret-0123456789";
const SUPPORT: &str = "support@example.com";
const ALICE: &str = "alice@customer.test";
const BOB: &str = "bob@customer.test";
const MALLORY: &str = "mallory@stranger.test";
/// Staff in SUP and SAL.
const AYSE: &str = "ayse@example.com";
/// Staff in SAL only.
const MEHMET: &str = "mehmet@example.com";

/// A helpdesk with departments SUP and SAL on a fresh database; `general`
/// and `support` are extra lines for `[general]` and the SUP department.
struct Desk {
    _db: TestDb,
    store: Store,
    config: Arc<Config>,
    pipeline: Pipeline,
}

impl Desk {
    async fn new(backend: Backend) -> Desk {
        Desk::with(backend, "", "").await
    }

    async fn with(backend: Backend, general: &str, support: &str) -> Desk {
        let db = TestDb::new(backend).await;
        let mailboxes = |address: &str| {
            format!(
                "[department.imap]\nhost = \"127.0.0.1\"\nport = 1143\ntls = \"none\"\n\
                 username = \"{address}\"\npassword = \"pw\"\n\
                 [department.smtp]\nhost = \"127.0.0.1\"\nport = 1025\ntls = \"none\"\n"
            )
        };
        let src = format!(
            "[general]\ndata_dir = \"{data}\"\nsecret = \"{SECRET}\"\n{general}\n\
             [database]\nurl = \"{url}\"\n\n\
             [[department]]\nkey = \"SUP\"\nname = \"Support\"\naddress = \"{SUPPORT}\"\n{support}\n{sup}\n\
             [[department]]\nkey = \"SAL\"\nname = \"Sales\"\naddress = \"sales@example.com\"\n{sal}\n\
             [[staff]]\nemail = \"{AYSE}\"\ndepartments = [\"SUP\", \"SAL\"]\n\n\
             [[staff]]\nemail = \"{MEHMET}\"\ndepartments = [\"SAL\"]\n",
            data = db.dir.path().join("data").display(),
            url = db.url,
            sup = mailboxes(SUPPORT),
            sal = mailboxes("sales@example.com"),
        );
        let path = db.dir.path().join("helpdesk.toml");
        let (config, warnings) = Config::parse(&src, &path, Options { read_files: false })
            .unwrap_or_else(|problems| panic!("{problems}\n{src}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        let config = Arc::new(config);
        let store = db.store().await;
        let pipeline = Pipeline::new(
            store.clone(),
            config.clone(),
            SECRET.as_bytes().to_vec(),
            Arc::new(Notify::new()),
        );
        Desk {
            _db: db,
            store,
            config,
            pipeline,
        }
    }

    fn department(&self, key: &str) -> &Department {
        self.config.department(key).unwrap()
    }

    /// Piped in by the MTA for department `key`.
    async fn pipe_to(&self, key: &str, raw: &[u8]) -> Outcome {
        let source = Source::Pipe {
            department: key.to_string(),
        };
        self.pipeline
            .ingest(
                self.department(key),
                source,
                raw.to_vec(),
                raw.len() as u64,
                false,
            )
            .await
            .unwrap()
    }

    async fn pipe(&self, raw: &[u8]) -> Outcome {
        self.pipe_to("SUP", raw).await
    }

    /// Fetched from the support INBOX.
    async fn imap(&self, uidvalidity: u32, uid: u32, raw: &[u8]) -> Outcome {
        let source = Source::Imap {
            department: "SUP".into(),
            folder: "INBOX".into(),
            uidvalidity,
            uid,
        };
        self.pipeline
            .ingest(
                self.department("SUP"),
                source,
                raw.to_vec(),
                raw.len() as u64,
                false,
            )
            .await
            .unwrap()
    }

    async fn ticket(&self, reference: &str) -> Ticket {
        self.store
            .ticket_by_ref(reference)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no ticket {reference}"))
    }

    async fn messages(&self, reference: &str) -> Vec<MessageRecord> {
        let t = self.ticket(reference).await;
        self.store.messages(t.ticket_id).await.unwrap()
    }

    /// The Message-ID of our newest outgoing mail of `kind` on a ticket.
    async fn our_message_id(&self, reference: &str, kind: &str) -> String {
        self.messages(reference)
            .await
            .into_iter()
            .rev()
            .find(|m| m.direction == "out" && m.kind == kind)
            .and_then(|m| m.internet_message_id)
            .unwrap_or_else(|| panic!("no {kind} mail on {reference}"))
    }

    /// Outbox rows waiting to be sent.
    async fn queued(&self) -> i64 {
        let counts = self.store.outbox_counts().await.unwrap();
        counts
            .iter()
            .find(|(status, _)| status == "queued")
            .map_or(0, |(_, n)| *n)
    }

    /// Everything due in the outbox, as the sender task would take it.
    async fn claim(&self) -> Vec<OutboxMail> {
        self.store
            .claim_outbox(helpdesk::now_ms(), 60_000, 100, None)
            .await
            .unwrap()
    }

    fn service(&self) -> Service<'_> {
        Service {
            store: &self.store,
            config: &self.config,
            secret: SECRET.as_bytes(),
        }
    }
}

fn stored(reference: &str, signal: Signal, acknowledged: bool) -> Outcome {
    Outcome::Stored {
        reference: reference.to_string(),
        signal,
        acknowledged,
    }
}

/// A plain mail as a client writes it; `extra` holds more header lines,
/// each ending in CRLF.
fn mail(id: &str, from: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 6 Jan 2025 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nmy printer is on fire.\r\n"
    )
    .into_bytes()
}

/// Threading headers of a reply to `parent`.
fn replying_to(parent: &str) -> String {
    format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n")
}

/// Alice's first mail: SUP-1 on a fresh desk.
async fn alice_writes(desk: &Desk) -> Outcome {
    desk.pipe(&mail(
        "c1@customer.test",
        &format!("Alice Example <{ALICE}>"),
        SUPPORT,
        "Printer on fire",
        "",
    ))
    .await
}

/// The only queued mail of `kind`, parsed.
async fn queued_mail(desk: &Desk, kind: &str) -> (OutboxMail, Inbound) {
    let mut mails: Vec<OutboxMail> = desk
        .claim()
        .await
        .into_iter()
        .filter(|m| m.kind == kind)
        .collect();
    assert_eq!(mails.len(), 1, "{kind} mails queued");
    let mail = mails.remove(0);
    let parsed = parse(&mail.data);
    (mail, parsed)
}

fn signed_reply_address(reference: &str) -> String {
    token::address(SUPPORT, &token::make(SECRET.as_bytes(), reference))
}

/// Mail sent by machines: (From, extra headers).
/// Mail no person wrote (or that came through a list), with the class it
/// gets and whether, answering nothing of ours, it is kept out of the
/// queue; none of it is acknowledged.
const AUTOMATIC: &[(&str, &str, &str, bool)] = &[
    (
        ALICE,
        "Auto-Submitted: auto-replied\r\n",
        "auto_reply",
        true,
    ),
    (ALICE, "Precedence: bulk\r\n", "list", false),
    (ALICE, "List-Id: <news.customer.test>\r\n", "list", false),
    (ALICE, "Return-Path: <>\r\n", "auto_reply", true),
    // Told by the sender alone: a guess, so it stays visible.
    ("MAILER-DAEMON@customer.test", "", "auto_reply", false),
    ("noreply@customer.test", "", "auto_reply", false),
    // Our own mail coming back (our address alone is not enough: lists
    // rewrite From to it).
    (SUPPORT, "X-Loop: support@example.com\r\n", "loop", true),
];

// ---------------------------------------------------------------------------
// New mail and threading

async fn check_new_mail_opens_a_ticket_with_a_signed_acknowledgement(backend: Backend) {
    let desk = Desk::new(backend).await;
    assert_eq!(
        alice_writes(&desk).await,
        stored("SUP-1", Signal::New, true)
    );

    let t = desk.ticket("SUP-1").await;
    assert_eq!(
        (t.department.as_str(), t.status, t.subject.as_str()),
        ("SUP", Status::Open, "Printer on fire")
    );
    assert_eq!(
        (t.customer_email.as_str(), t.customer_name.as_deref()),
        (ALICE, Some("Alice Example"))
    );
    let msgs = desk.messages("SUP-1").await;
    let shape: Vec<(&str, &str, Option<&str>, Option<&str>)> = msgs
        .iter()
        .map(|m| {
            (
                m.direction.as_str(),
                m.kind.as_str(),
                m.thread_signal.as_deref(),
                m.delivery.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("in", "customer", Some("new"), None),
            ("out", "auto_reply", None, Some("queued"))
        ]
    );
    assert_eq!(
        msgs[0].internet_message_id.as_deref(),
        Some("c1@customer.test")
    );

    let (ack, parsed) = queued_mail(&desk, "auto_reply").await;
    assert_eq!(ack.recipients, [ALICE]);
    assert_eq!(
        (ack.mail_from.as_str(), ack.department.as_str()),
        (SUPPORT, "SUP")
    );
    assert_eq!(parsed.auto.auto_submitted.as_deref(), Some("auto-replied"));
    let reply_to = signed_reply_address("SUP-1");
    assert!(reply_to.starts_with("support+sup-1."), "{reply_to}");
    assert_eq!(parsed.reply_to[0].email, reply_to);
    assert_eq!(
        parsed.subject,
        "[SUP-1] We received your message: Printer on fire"
    );
    assert_eq!(parsed.to[0].email, ALICE);
    assert_eq!(parsed.in_reply_to, ["c1@customer.test"]);
    assert_eq!(
        parsed.message_id.as_deref(),
        msgs[1].internet_message_id.as_deref()
    );
}
on_both_backends!(check_new_mail_opens_a_ticket_with_a_signed_acknowledgement =>
    sqlite_new_mail_opens_a_ticket_and_queues_a_signed_acknowledgement,
    postgres_new_mail_opens_a_ticket_and_queues_a_signed_acknowledgement);

async fn check_reply_to_our_acknowledgement_threads_by_references(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;

    let reply = mail(
        "c2@customer.test",
        ALICE,
        SUPPORT,
        "Re: Printer on fire",
        &replying_to(&ack),
    );
    assert_eq!(
        desk.pipe(&reply).await,
        stored("SUP-1", Signal::References, false)
    );
    assert_eq!(desk.queued().await, 1, "no second acknowledgement");
    assert_eq!(desk.store.counts().await.unwrap().0, 1);
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(
        (
            last.internet_message_id.as_deref(),
            last.thread_signal.as_deref()
        ),
        (Some("c2@customer.test"), Some("references"))
    );
    assert_eq!(last.in_reply_to, Some(ack));
}
on_both_backends!(check_reply_to_our_acknowledgement_threads_by_references =>
    sqlite_reply_to_our_acknowledgement_threads_by_references_without_a_new_acknowledgement,
    postgres_reply_to_our_acknowledgement_threads_by_references_without_a_new_acknowledgement);

async fn check_subject_tag_from_the_customer(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let tagged = mail(
        "c2@customer.test",
        ALICE,
        SUPPORT,
        "Re: [sup-1] Printer on fire",
        "",
    );
    assert_eq!(
        desk.pipe(&tagged).await,
        stored("SUP-1", Signal::SubjectTag, false)
    );
    assert_eq!(desk.queued().await, 1);
}
on_both_backends!(check_subject_tag_from_the_customer =>
    sqlite_subject_tag_from_the_customer_threads_into_the_ticket,
    postgres_subject_tag_from_the_customer_threads_into_the_ticket);

async fn check_subject_tag_from_a_stranger(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let tagged = mail(
        "m1@stranger.test",
        MALLORY,
        SUPPORT,
        "Re: [SUP-1] Printer on fire",
        "",
    );
    assert_eq!(desk.pipe(&tagged).await, stored("SUP-2", Signal::New, true));
    assert_eq!(desk.messages("SUP-1").await.len(), 2, "SUP-1 is untouched");
    let t = desk.ticket("SUP-2").await;
    assert_eq!(
        (t.customer_email.as_str(), t.subject.as_str()),
        (MALLORY, "Printer on fire")
    );
}
on_both_backends!(check_subject_tag_from_a_stranger =>
    sqlite_subject_tag_from_a_stranger_opens_a_new_ticket,
    postgres_subject_tag_from_a_stranger_opens_a_new_ticket);

async fn check_subject_tag_from_a_copied_participant(backend: Backend) {
    let desk = Desk::new(backend).await;
    let first = mail(
        "c1@customer.test",
        ALICE,
        SUPPORT,
        "Printer on fire",
        &format!("Cc: Bob <{BOB}>\r\n"),
    );
    assert_eq!(desk.pipe(&first).await, stored("SUP-1", Signal::New, true));

    let from_bob = mail("b1@customer.test", BOB, SUPPORT, "[SUP-1] Same here", "");
    assert_eq!(
        desk.pipe(&from_bob).await,
        stored("SUP-1", Signal::SubjectTag, false)
    );
    assert_eq!(desk.store.counts().await.unwrap().0, 1);
}
on_both_backends!(check_subject_tag_from_a_copied_participant =>
    sqlite_subject_tag_from_a_person_the_customer_copied_threads_into_the_ticket,
    postgres_subject_tag_from_a_person_the_customer_copied_threads_into_the_ticket);

async fn check_signed_reply_address(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let address = signed_reply_address("SUP-1");

    // Only the envelope shows the signed address (Bcc, list expansion).
    let delivered = mail(
        "d1@elsewhere.test",
        "alice.home@elsewhere.test",
        "team@customer.test",
        "More details",
        &format!("Delivered-To: {address}\r\n"),
    );
    assert_eq!(
        desk.pipe(&delivered).await,
        stored("SUP-1", Signal::ReplyToken, false)
    );
    let to_token = mail(
        "d2@elsewhere.test",
        "alice.home@elsewhere.test",
        &address,
        "Even more details",
        "",
    );
    assert_eq!(
        desk.pipe(&to_token).await,
        stored("SUP-1", Signal::ReplyToken, false)
    );
    assert_eq!(desk.store.counts().await.unwrap().0, 1);
    assert_eq!(desk.queued().await, 1);
}
on_both_backends!(check_signed_reply_address =>
    sqlite_mail_to_the_signed_reply_address_threads_by_its_token,
    postgres_mail_to_the_signed_reply_address_threads_by_its_token);

async fn check_forged_reply_token(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let forged = token::address(
        SUPPORT,
        &token::make(b"not-the-secret-of-this-helpdesk", "SUP-1"),
    );
    let raw = mail("m1@stranger.test", MALLORY, &forged, "Give me the data", "");
    assert_eq!(desk.pipe(&raw).await, stored("SUP-2", Signal::New, true));
    assert_eq!(desk.messages("SUP-1").await.len(), 2, "SUP-1 is untouched");
}
on_both_backends!(check_forged_reply_token =>
    sqlite_forged_reply_token_opens_a_new_ticket,
    postgres_forged_reply_token_opens_a_new_ticket);

// ---------------------------------------------------------------------------
// Automatic mail, status changes, limits

async fn check_automatic_mail_is_not_acknowledged(backend: Backend) {
    let desk = Desk::new(backend).await;
    for (i, (from, extra, class, hidden)) in AUTOMATIC.iter().enumerate() {
        let reference = format!("SUP-{}", i + 1);
        let raw = mail(&format!("auto{i}@x.test"), from, SUPPORT, "Away", extra);
        assert_eq!(
            desk.pipe(&raw).await,
            stored(&reference, Signal::New, false),
            "From {from}, {extra:?}"
        );
        let msgs = desk.messages(&reference).await;
        assert_eq!(
            msgs.len(),
            1,
            "From {from}, {extra:?}: only the mail itself"
        );
        assert_eq!(msgs[0].kind, *class, "From {from}, {extra:?}");
        assert_eq!(msgs[0].class.as_deref(), Some(*class));
        assert!(msgs[0].class_reason.is_some(), "From {from}, {extra:?}");
        // Machines' mail answering nothing of ours is kept out of the
        // queue; list mail and weak guesses stay visible.
        let t = desk.ticket(&reference).await;
        if *hidden {
            assert_eq!(t.disposition.as_deref(), Some(*class), "From {from}");
            assert_eq!(t.status, Status::Closed);
        } else {
            assert_eq!(t.disposition, None, "From {from}");
            assert_eq!(t.status, Status::Open);
        }
    }
    assert!(desk.store.outbox_counts().await.unwrap().is_empty());
}
on_both_backends!(check_automatic_mail_is_not_acknowledged =>
    sqlite_automatic_mail_is_stored_without_acknowledgement,
    postgres_automatic_mail_is_stored_without_acknowledgement);

async fn check_automatic_mail_keeps_a_pending_ticket_pending(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    desk.service()
        .reply("SUP-1", AYSE, "Please unplug it.")
        .await
        .unwrap();
    let ours = desk.our_message_id("SUP-1", "staff").await;
    let queued = desk.queued().await;

    for (i, (from, extra, class, _)) in AUTOMATIC.iter().enumerate() {
        if *class == "list" {
            // A person writing through a list is answered like anyone.
            continue;
        }
        let headers = format!("{}{extra}", replying_to(&ours));
        let raw = mail(
            &format!("auto{i}@x.test"),
            from,
            SUPPORT,
            "Re: Printer",
            &headers,
        );
        assert_eq!(
            desk.pipe(&raw).await,
            stored("SUP-1", Signal::References, false),
            "From {from}, {extra:?}"
        );
        assert_eq!(
            desk.ticket("SUP-1").await.status,
            Status::Pending,
            "From {from}, {extra:?}"
        );
    }
    assert_eq!(desk.queued().await, queued);
}
on_both_backends!(check_automatic_mail_keeps_a_pending_ticket_pending =>
    sqlite_automatic_mail_leaves_a_pending_ticket_pending,
    postgres_automatic_mail_leaves_a_pending_ticket_pending);

async fn check_customer_mail_reopens_a_pending_ticket(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    desk.service()
        .reply("SUP-1", AYSE, "Please unplug it.")
        .await
        .unwrap();
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Pending);

    let ours = desk.our_message_id("SUP-1", "staff").await;
    let answer = mail(
        "c2@customer.test",
        ALICE,
        SUPPORT,
        "Re: [SUP-1] Printer on fire",
        &replying_to(&ours),
    );
    assert_eq!(
        desk.pipe(&answer).await,
        stored("SUP-1", Signal::References, false)
    );
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Open);
}
on_both_backends!(check_customer_mail_reopens_a_pending_ticket =>
    sqlite_customer_mail_moves_a_pending_ticket_to_open,
    postgres_customer_mail_moves_a_pending_ticket_to_open);

async fn check_reply_to_a_closed_ticket(backend: Backend) {
    let desk = Desk::with(backend, "", "reopen_within = \"1s\"").await;
    alice_writes(&desk).await;
    let first = desk.ticket("SUP-1").await;

    desk.service().close("SUP-1", Some(AYSE)).await.unwrap();
    let closure = desk.our_message_id("SUP-1", "closure").await;
    let soon = mail(
        "c2@customer.test",
        ALICE,
        SUPPORT,
        "Re: done?",
        &replying_to(&closure),
    );
    assert_eq!(
        desk.pipe(&soon).await,
        stored("SUP-1", Signal::References, false)
    );
    let reopened = desk.ticket("SUP-1").await;
    assert_eq!((reopened.status, reopened.closed_at), (Status::Open, None));

    desk.service().close("SUP-1", None).await.unwrap();
    let closure = desk.our_message_id("SUP-1", "closure").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = mail(
        "c3@customer.test",
        ALICE,
        SUPPORT,
        "Re: again",
        &replying_to(&closure),
    );
    assert_eq!(desk.pipe(&late).await, stored("SUP-2", Signal::New, true));
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Closed);
    let linked = desk.ticket("SUP-2").await;
    assert_eq!(linked.status, Status::Open);
    assert_eq!(linked.linked_ticket_id, Some(first.ticket_id));
}
on_both_backends!(check_reply_to_a_closed_ticket =>
    sqlite_reply_to_a_closed_ticket_reopens_it_within_reopen_within_and_links_a_new_one_after,
    postgres_reply_to_a_closed_ticket_reopens_it_within_reopen_within_and_links_a_new_one_after);

async fn check_acknowledgements_are_limited_per_hour(backend: Backend) {
    let desk = Desk::with(backend, "auto_reply_limit_per_hour = 2", "").await;
    let mut acknowledged = Vec::new();
    for i in 1..=3 {
        let raw = mail(
            &format!("c{i}@customer.test"),
            ALICE,
            SUPPORT,
            &format!("Problem {i}"),
            "",
        );
        match desk.pipe(&raw).await {
            Outcome::Stored {
                reference,
                signal: Signal::New,
                acknowledged: a,
            } => {
                assert_eq!(reference, format!("SUP-{i}"));
                acknowledged.push(a);
            }
            other => panic!("mail {i}: {other:?}"),
        }
    }
    assert_eq!(acknowledged, [true, true, false]);
    assert_eq!(desk.queued().await, 2);

    let from_bob = mail("b1@customer.test", BOB, SUPPORT, "Problem", "");
    assert_eq!(
        desk.pipe(&from_bob).await,
        stored("SUP-4", Signal::New, true),
        "the limit is per sender"
    );
}
on_both_backends!(check_acknowledgements_are_limited_per_hour =>
    sqlite_acknowledgements_are_limited_per_sender_by_auto_reply_limit_per_hour,
    postgres_acknowledgements_are_limited_per_sender_by_auto_reply_limit_per_hour);

// ---------------------------------------------------------------------------
// Duplicates and checkpoints

async fn check_same_bytes_under_a_new_uid(backend: Backend) {
    let desk = Desk::new(backend).await;
    let raw = mail("c1@customer.test", ALICE, SUPPORT, "Printer on fire", "");
    assert_eq!(
        desk.imap(7, 1, &raw).await,
        stored("SUP-1", Signal::New, true)
    );
    assert_eq!(
        desk.store.checkpoint("SUP", "INBOX").await.unwrap(),
        Some((7, 1))
    );

    assert_eq!(desk.imap(7, 2, &raw).await, Outcome::Duplicate);
    assert_eq!(
        desk.store.checkpoint("SUP", "INBOX").await.unwrap(),
        Some((7, 2))
    );
    // One ticket with the mail and its acknowledgement; both copies kept raw.
    assert_eq!(desk.store.counts().await.unwrap(), (1, 2, 2));
    assert_eq!(desk.queued().await, 1);
}
on_both_backends!(check_same_bytes_under_a_new_uid =>
    sqlite_same_bytes_under_a_new_imap_uid_are_a_duplicate_and_advance_the_checkpoint,
    postgres_same_bytes_under_a_new_imap_uid_are_a_duplicate_and_advance_the_checkpoint);

async fn check_same_bytes_after_uidvalidity_change(backend: Backend) {
    let desk = Desk::new(backend).await;
    let raw = mail("c1@customer.test", ALICE, SUPPORT, "Printer on fire", "");
    assert_eq!(
        desk.imap(7, 5, &raw).await,
        stored("SUP-1", Signal::New, true)
    );

    assert_eq!(desk.imap(8, 1, &raw).await, Outcome::Duplicate);
    assert_eq!(
        desk.store.checkpoint("SUP", "INBOX").await.unwrap(),
        Some((8, 1))
    );
    let new = mail("c2@customer.test", ALICE, SUPPORT, "Scanner too", "");
    assert_eq!(
        desk.imap(8, 2, &new).await,
        stored("SUP-2", Signal::New, true)
    );
    assert_eq!(desk.store.counts().await.unwrap().0, 2);
}
on_both_backends!(check_same_bytes_after_uidvalidity_change =>
    sqlite_same_bytes_after_a_uidvalidity_change_are_a_duplicate,
    postgres_same_bytes_after_a_uidvalidity_change_are_a_duplicate);

async fn check_same_uid_fetched_again(backend: Backend) {
    let desk = Desk::new(backend).await;
    let raw = mail("c1@customer.test", ALICE, SUPPORT, "Printer on fire", "");
    assert_eq!(
        desk.imap(7, 1, &raw).await,
        stored("SUP-1", Signal::New, true)
    );

    // E.g. a second daemon on the same database reading the same mailbox.
    assert_eq!(desk.imap(7, 1, &raw).await, Outcome::Duplicate);
    assert_eq!(desk.store.counts().await.unwrap().0, 1, "one ticket");
    assert_eq!(desk.queued().await, 1, "one acknowledgement");
}
on_both_backends!(check_same_uid_fetched_again =>
    sqlite_same_imap_uid_fetched_again_after_it_was_stored_is_a_duplicate,
    postgres_same_imap_uid_fetched_again_after_it_was_stored_is_a_duplicate);

async fn check_other_folder_same_uid(backend: Backend) {
    let desk = Desk::new(backend).await;
    let inbox = mail("c1@customer.test", ALICE, SUPPORT, "Printer on fire", "");
    assert_eq!(
        desk.imap(7, 1, &inbox).await,
        stored("SUP-1", Signal::New, true)
    );

    // After `folder` is changed in the config: UIDs restart at 1, and
    // servers may reuse a UIDVALIDITY across folders.
    let archive = mail("c2@customer.test", BOB, SUPPORT, "Scanner jammed", "");
    let source = Source::Imap {
        department: "SUP".into(),
        folder: "Archive".into(),
        uidvalidity: 7,
        uid: 1,
    };
    let outcome = desk
        .pipeline
        .ingest(
            desk.department("SUP"),
            source,
            archive.clone(),
            archive.len() as u64,
            false,
        )
        .await
        .unwrap();
    assert_eq!(outcome, stored("SUP-2", Signal::New, true));
    for (reference, raw) in [("SUP-1", &inbox), ("SUP-2", &archive)] {
        let m = &desk.messages(reference).await[0];
        let kept = desk.store.raw_message(m.raw_message_id.unwrap()).await;
        assert_eq!(
            String::from_utf8_lossy(&kept.unwrap().unwrap_or_default()),
            String::from_utf8_lossy(raw),
            "the raw bytes of {reference} are its own mail"
        );
    }
}
on_both_backends!(check_other_folder_same_uid =>
    sqlite_mail_from_another_folder_with_the_same_uidvalidity_and_uid_keeps_its_own_raw_bytes,
    postgres_mail_from_another_folder_with_the_same_uidvalidity_and_uid_keeps_its_own_raw_bytes);

async fn check_same_mail_piped_twice(backend: Backend) {
    let desk = Desk::new(backend).await;
    let raw = mail("c1@customer.test", ALICE, SUPPORT, "Printer on fire", "");
    assert_eq!(desk.pipe(&raw).await, stored("SUP-1", Signal::New, true));
    assert_eq!(desk.pipe(&raw).await, Outcome::Duplicate, "an MTA retry");
    // One ticket, the mail and its acknowledgement, one raw copy.
    assert_eq!(desk.store.counts().await.unwrap(), (1, 2, 1));
    assert_eq!(desk.store.checkpoint("SUP", "INBOX").await.unwrap(), None);
}
on_both_backends!(check_same_mail_piped_twice =>
    sqlite_same_mail_piped_twice_is_a_duplicate,
    postgres_same_mail_piped_twice_is_a_duplicate);

// ---------------------------------------------------------------------------
// Unusual mail

async fn check_unreadable_mail_is_kept(backend: Backend) {
    let desk = Desk::new(backend).await;
    for (reference, raw) in [("SUP-1", &b"just text\n"[..]), ("SUP-2", &b""[..])] {
        assert_eq!(
            desk.pipe(raw).await,
            stored(reference, Signal::New, false),
            "nobody to acknowledge"
        );
        let msgs = desk.messages(reference).await;
        assert_eq!(msgs.len(), 1);
        let problems = msgs[0].problems.as_deref().unwrap_or("");
        assert!(!problems.is_empty(), "{reference}: no problems noted");
        let raw_id = msgs[0].raw_message_id.expect("linked to its raw bytes");
        assert_eq!(
            desk.store.raw_message(raw_id).await.unwrap().as_deref(),
            Some(raw)
        );
    }
    let text = &desk.messages("SUP-1").await[0].body_text;
    assert!(text.contains("just text"), "{text:?}");
}
on_both_backends!(check_unreadable_mail_is_kept =>
    sqlite_mail_without_headers_and_empty_mail_are_stored_with_problems_and_raw_bytes,
    postgres_mail_without_headers_and_empty_mail_are_stored_with_problems_and_raw_bytes);

async fn check_truncated_mail(backend: Backend) {
    let desk = Desk::new(backend).await;
    let headers = format!(
        "From: {ALICE}\r\nTo: {SUPPORT}\r\nSubject: Huge scan\r\nMessage-ID: <big@customer.test>\r\n\r\n"
    );
    let size = 50 * 1024 * 1024;
    let outcome = desk
        .pipeline
        .ingest(
            desk.department("SUP"),
            Source::Pipe {
                department: "SUP".into(),
            },
            headers.clone().into_bytes(),
            size,
            true,
        )
        .await
        .unwrap();
    assert_eq!(outcome, stored("SUP-1", Signal::New, true));
    let m = &desk.messages("SUP-1").await[0];
    let problems = m.problems.as_deref().unwrap_or("");
    assert!(problems.contains("max_message_size"), "{problems:?}");
    assert!(problems.contains(&size.to_string()), "{problems:?}");
    assert_eq!(m.subject, "Huge scan");
    assert_eq!(
        desk.store
            .raw_message(m.raw_message_id.unwrap())
            .await
            .unwrap(),
        Some(headers.into_bytes())
    );
}
on_both_backends!(check_truncated_mail =>
    sqlite_truncated_oversize_mail_notes_max_message_size_in_its_problems,
    postgres_truncated_oversize_mail_notes_max_message_size_in_its_problems);

async fn check_attachments_are_stored(backend: Backend) {
    let desk = Desk::new(backend).await;
    let raw = format!(
        "From: {ALICE}\r\nTo: {SUPPORT}\r\nSubject: Scan\r\nMessage-ID: <a1@customer.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nsee the scan\r\n\
         --B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    );
    assert_eq!(
        desk.pipe(raw.as_bytes()).await,
        stored("SUP-1", Signal::New, true)
    );
    let m = &desk.messages("SUP-1").await[0];
    assert_eq!(m.body_text.trim(), "see the scan");
    let atts: Vec<(Option<&str>, &str, i64)> = m
        .attachments
        .iter()
        .map(|a| (a.filename.as_deref(), a.content_type.as_str(), a.size))
        .collect();
    assert_eq!(atts, [(Some("scan.pdf"), "application/pdf", 9)]);
}
on_both_backends!(check_attachments_are_stored =>
    sqlite_attachments_of_inbound_mail_are_stored_with_the_message,
    postgres_attachments_of_inbound_mail_are_stored_with_the_message);

// ---------------------------------------------------------------------------
// Staff actions

async fn check_staff_reply(backend: Backend) {
    let desk = Desk::new(backend).await;
    let first = mail(
        "c1@customer.test",
        ALICE,
        SUPPORT,
        "Printer on fire",
        &format!("Cc: {BOB}\r\n"),
    );
    desk.pipe(&first).await;
    desk.service()
        .reply("sup-1", "Ayse@Example.com", "Please unplug it.\n\n")
        .await
        .unwrap();

    assert_eq!(desk.ticket("SUP-1").await.status, Status::Pending);
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(
        (
            last.direction.as_str(),
            last.kind.as_str(),
            last.author.as_deref()
        ),
        ("out", "staff", Some(AYSE))
    );
    assert_eq!(last.delivery.as_deref(), Some("queued"));

    let (queued, parsed) = queued_mail(&desk, "staff").await;
    assert_eq!(queued.recipients, [ALICE, BOB]);
    assert_eq!(parsed.auto.auto_submitted, None, "a person wrote it");
    assert_eq!(parsed.subject, "Re: [SUP-1] Printer on fire");
    assert_eq!(parsed.in_reply_to, ["c1@customer.test"]);
    assert_eq!(parsed.reply_to[0].email, signed_reply_address("SUP-1"));
    assert_eq!(
        parsed.text.replace("\r\n", "\n").trim_end(),
        "Please unplug it."
    );
}
on_both_backends!(check_staff_reply =>
    sqlite_staff_reply_sets_pending_and_queues_a_personal_mail_to_customer_and_copied_people,
    postgres_staff_reply_sets_pending_and_queues_a_personal_mail_to_customer_and_copied_people);

async fn check_close(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    desk.service().close("SUP-1", Some(AYSE)).await.unwrap();

    let t = desk.ticket("SUP-1").await;
    assert_eq!(t.status, Status::Closed);
    assert!(t.closed_at.is_some());
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            last.author.as_deref(),
            last.delivery.as_deref()
        ),
        ("closure", Some(AYSE), Some("queued"))
    );
    let (queued, parsed) = queued_mail(&desk, "closure").await;
    assert_eq!(queued.recipients, [ALICE]);
    assert_eq!(
        parsed.auto.auto_submitted.as_deref(),
        Some("auto-generated")
    );
    assert_eq!(
        parsed.subject,
        "[SUP-1] Your request has been resolved: Printer on fire"
    );
    assert_eq!(parsed.in_reply_to, ["c1@customer.test"]);

    let again = desk.service().close("SUP-1", None).await.unwrap_err();
    assert!(
        matches!(again, ServiceError::AlreadyInState(ref r, "closed") if r == "SUP-1"),
        "{again}"
    );
}
on_both_backends!(check_close =>
    sqlite_close_sets_closed_and_queues_an_auto_generated_closure_mail,
    postgres_close_sets_closed_and_queues_an_auto_generated_closure_mail);

async fn check_note(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let before = desk.store.outbox_counts().await.unwrap();
    desk.service()
        .note("SUP-1", AYSE, "Customer called: it is a toaster.")
        .await
        .unwrap();

    assert_eq!(desk.store.outbox_counts().await.unwrap(), before);
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            last.author.as_deref(),
            last.delivery.as_deref()
        ),
        ("note", Some(AYSE), None)
    );
    assert_eq!(last.body_text, "Customer called: it is a toaster.");
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Open);
}
on_both_backends!(check_note =>
    sqlite_note_is_stored_and_never_enters_the_outbox,
    postgres_note_is_stored_and_never_enters_the_outbox);

async fn check_assign(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let err = desk.service().assign("SUP-1", MEHMET).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::NotInDepartment { staff, department }
            if staff == MEHMET && department == "SUP"),
        "{err}"
    );
    assert_eq!(desk.ticket("SUP-1").await.assignee, None);

    desk.service()
        .assign("SUP-1", "AYSE@example.com")
        .await
        .unwrap();
    assert_eq!(desk.ticket("SUP-1").await.assignee.as_deref(), Some(AYSE));

    let sales = mail("s1@customer.test", ALICE, "sales@example.com", "Quote", "");
    assert_eq!(
        desk.pipe_to("SAL", &sales).await,
        stored("SAL-1", Signal::New, true)
    );
    desk.service().assign("SAL-1", MEHMET).await.unwrap();
    assert_eq!(desk.ticket("SAL-1").await.assignee.as_deref(), Some(MEHMET));
}
on_both_backends!(check_assign =>
    sqlite_assign_only_accepts_staff_of_the_tickets_department,
    postgres_assign_only_accepts_staff_of_the_tickets_department);

async fn check_reply_from_unknown_address(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let err = desk
        .service()
        .reply("SUP-1", "eve@example.com", "Send me your password.")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::NotStaff(who) if who == "eve@example.com"),
        "{err}"
    );
    assert_eq!(desk.queued().await, 1, "only the acknowledgement");
    assert_eq!(desk.messages("SUP-1").await.len(), 2);
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Open);
}
on_both_backends!(check_reply_from_unknown_address =>
    sqlite_reply_from_an_unknown_address_is_refused_as_not_staff,
    postgres_reply_from_an_unknown_address_is_refused_as_not_staff);

async fn check_concurrent_close(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let (first, second) = (desk.service(), desk.service());
    let (a, b) = tokio::join!(
        first.close("SUP-1", Some(AYSE)),
        second.close("SUP-1", Some(AYSE)),
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one close wins: {a:?} {b:?}"
    );
    let closures = desk
        .messages("SUP-1")
        .await
        .iter()
        .filter(|m| m.kind == "closure")
        .count();
    assert_eq!(closures, 1, "one closure mail");
}
on_both_backends!(check_concurrent_close =>
    sqlite_two_concurrent_closes_send_one_closure_mail,
    postgres_two_concurrent_closes_send_one_closure_mail);

async fn check_claim_by_department(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    desk.pipe_to(
        "SAL",
        &mail("s1@customer.test", BOB, "sales@example.com", "Offer", ""),
    )
    .await;
    let now = helpdesk::now_ms();
    let sales = desk
        .store
        .claim_outbox(now, 60_000, 10, Some("SAL"))
        .await
        .unwrap();
    assert_eq!(sales.len(), 1);
    assert_eq!(sales[0].department, "SAL");
    let support = desk
        .store
        .claim_outbox(now, 60_000, 10, Some("SUP"))
        .await
        .unwrap();
    assert_eq!(support.len(), 1);
    assert_eq!(support[0].department, "SUP");
}
on_both_backends!(check_claim_by_department =>
    sqlite_each_department_claims_only_its_own_outbox_rows,
    postgres_each_department_claims_only_its_own_outbox_rows);

// ---------------------------------------------------------------------------
// Routing rules through the pipeline (the rule language itself is
// table-tested in src/rules).

const ROUTING: &str = "\n\
[[staff]]\nemail = \"boss@example.com\"\nrole = \"manager\"\ndepartments = [\"SUP\"]\n\n\
[[team]]\nname = \"desk\"\nmembers = [\"ayse@example.com\", \"mehmet@example.com\"]\nstrategy = \"least_open\"\n\n\
[[team]]\nname = \"sticky\"\nmembers = [\"ayse@example.com\", \"mehmet@example.com\"]\nstrategy = \"sticky_customer\"\n\n\
[[rule]]\nname = \"spam\"\nheader = { X-Spam-Flag = \"^yes$\" }\nspam = true\n\n\
[[rule]]\nname = \"blocked\"\nfrom = \"*@blocked.test\"\nreject = true\n\n\
[[rule]]\nname = \"vip\"\nfrom = \"customer.test\"\ntags = [\"vip\"]\ncontinue = true\n\n\
[[rule]]\nname = \"urgent\"\nsubject = \"urgent\"\npriority = \"urgent\"\nassign = \"desk\"\nnotify = \"boss@example.com\"\n\n\
[[rule]]\nname = \"sticky\"\nsubject = \"again\"\nassign = \"sticky\"\n\n\
[[rule]]\nname = \"quiet\"\nsubject = \"no reply\"\nauto_reply = false\n\n";

async fn check_rules_shape_new_tickets(backend: Backend) {
    let desk = Desk::with(backend, ROUTING, "").await;
    // least_open: ayse, then mehmet, then whoever has fewer open.
    let mut who = Vec::new();
    for i in 0..4 {
        let subject = format!("URGENT {i}");
        let from = format!("c{i}@customer.test");
        let Outcome::Stored { reference, .. } = desk
            .pipe(&mail(&format!("u{i}@x"), &from, SUPPORT, &subject, ""))
            .await
        else {
            panic!("not stored")
        };
        let t = desk.ticket(&reference).await;
        assert_eq!(t.priority, "urgent");
        assert_eq!(t.tags, "vip");
        who.push(t.assignee.clone().unwrap());
        if i == 0 {
            let events = desk.store.events(t.ticket_id).await.unwrap();
            let routing = events.iter().find(|e| e.kind == "routing").unwrap();
            let detail: serde_json::Value =
                serde_json::from_str(routing.detail.as_deref().unwrap()).unwrap();
            assert_eq!(detail["rules"], serde_json::json!(["vip", "urgent"]));
            assert_eq!(detail["notify"], serde_json::json!(["boss@example.com"]));
        }
    }
    assert_eq!(who, [AYSE, MEHMET, AYSE, MEHMET]);
    // Each urgent ticket: an acknowledgement and a notification to boss.
    let out = desk.claim().await;
    assert_eq!(out.iter().filter(|o| o.kind == "notification").count(), 4);
    assert!(
        out.iter()
            .filter(|o| o.kind == "notification")
            .all(|o| o.recipients == ["boss@example.com"])
    );

    // sticky_customer: c1 comes back and gets mehmet again.
    let Outcome::Stored { reference, .. } = desk
        .pipe(&mail(
            "again@x",
            "c1@customer.test",
            SUPPORT,
            "Me again",
            "",
        ))
        .await
    else {
        panic!()
    };
    assert_eq!(
        desk.ticket(&reference).await.assignee.as_deref(),
        Some(MEHMET)
    );

    // auto_reply = false: stored, no acknowledgement; nobody assigned, so
    // the department's manager is told.
    let before = desk.queued().await;
    let outcome = desk
        .pipe(&mail("q@x", "q@other.test", SUPPORT, "no reply needed", ""))
        .await;
    let Outcome::Stored {
        reference,
        acknowledged,
        ..
    } = outcome
    else {
        panic!()
    };
    assert!(!acknowledged);
    let t = desk.ticket(&reference).await;
    assert_eq!(t.assignee, None);
    let rows = desk.claim().await;
    assert_eq!(
        desk.queued().await - before,
        1,
        "only the manager's notification"
    );
    assert!(
        rows.iter()
            .any(|o| o.kind == "notification" && o.recipients == ["boss@example.com"])
    );

    // Automatic mail matching a notify rule notifies nobody: a bounce of a
    // notification must not cause the next one.
    let before = desk.queued().await;
    desk.pipe(&mail(
        "ooo@x",
        "c9@customer.test",
        SUPPORT,
        "Out of office: URGENT",
        "Auto-Submitted: auto-replied\r\n",
    ))
    .await;
    assert_eq!(desk.queued().await, before, "no notification, no ack");
}
on_both_backends!(check_rules_shape_new_tickets =>
    sqlite_rules_set_priority_tags_assignee_and_notify,
    postgres_rules_set_priority_tags_assignee_and_notify);

async fn check_spam_and_reject(backend: Backend) {
    let desk = Desk::with(backend, ROUTING, "").await;
    let spam = desk
        .pipe(&mail(
            "s@x",
            "x@spam.test",
            SUPPORT,
            "Cheap",
            "X-Spam-Flag: YES\r\n",
        ))
        .await;
    let rejected = desk
        .pipe(&mail("r@x", "y@blocked.test", SUPPORT, "Hello", ""))
        .await;
    for (outcome, disposition) in [(spam, "spam"), (rejected, "rejected")] {
        let Outcome::Stored {
            reference,
            acknowledged,
            ..
        } = outcome
        else {
            panic!()
        };
        assert!(!acknowledged);
        let t = desk.ticket(&reference).await;
        assert_eq!(t.disposition.as_deref(), Some(disposition));
        assert_eq!(t.status, Status::Closed);
        assert_eq!(t.assignee, None);
        let m = desk.messages(&reference).await;
        assert_eq!(m[0].kind, disposition);
    }
    // Only the rejection is mailed, to the sender; nothing to staff.
    let out = desk.claim().await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].recipients, ["y@blocked.test"]);
    let text = String::from_utf8_lossy(&out[0].data);
    assert!(text.contains("not accepted"), "{text}");
    // Hidden from the default listing.
    let visible = desk
        .store
        .list_tickets(&helpdesk::store::TicketFilter::default())
        .await
        .unwrap();
    assert!(visible.is_empty(), "{visible:?}");

    // The customer's follow-up to the mail set aside as spam brings the
    // ticket back into the queue.
    let Outcome::Stored { reference, .. } = desk
        .pipe(&mail(
            "s2@x",
            "x@spam.test",
            SUPPORT,
            "Re: Cheap",
            &replying_to("s@x"),
        ))
        .await
    else {
        panic!()
    };
    let t = desk.ticket(&reference).await;
    assert_eq!((t.disposition.as_deref(), t.status), (None, Status::Open));
    let visible = desk
        .store
        .list_tickets(&helpdesk::store::TicketFilter::default())
        .await
        .unwrap();
    assert_eq!(visible.len(), 1);
}
on_both_backends!(check_spam_and_reject =>
    sqlite_spam_is_stored_hidden_and_rejected_mail_gets_the_rejection_only,
    postgres_spam_is_stored_hidden_and_rejected_mail_gets_the_rejection_only);

async fn check_round_robin_is_shared(backend: Backend) {
    let desk = Desk::new(backend).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = desk.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let n = tx.next_round_robin("team:x").await.unwrap();
            tx.commit().await.unwrap();
            n
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, (1..=40).collect::<Vec<i64>>(), "every number once");
    let mut tx = desk.store.begin().await.unwrap();
    assert_eq!(tx.peek_round_robin("team:x").await.unwrap(), 41);
    assert_eq!(tx.peek_round_robin("team:y").await.unwrap(), 1);
}
on_both_backends!(check_round_robin_is_shared =>
    sqlite_round_robin_numbers_are_unique_across_concurrent_transactions,
    postgres_round_robin_numbers_are_unique_across_concurrent_transactions);

// ---------------------------------------------------------------------------
// Classes: bounces, suppression, rate limits, loops, spam headers

/// A delivery status notification from the customer's MTA about `failed`;
/// `original` is the Message-ID of the mail that bounced, returned in the
/// headers part (None: a report without the returned headers).
fn dsn(id: &str, failed: &str, original: Option<&str>, action: &str, status: &str) -> Vec<u8> {
    let returned = original
        .map(|o| {
            format!(
                "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Support <{SUPPORT}>\r\n\
                 To: {failed}\r\nSubject: Re: [SUP-1] Printer on fire\r\nMessage-ID: <{o}>\r\n\r\n"
            )
        })
        .unwrap_or_default();
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.test>\r\nTo: {SUPPORT}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 6 Jan 2025 10:05:00 +0000\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nI could not deliver your mail to <{failed}>.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\n\
         Final-Recipient: rfc822; {failed}\r\nAction: {action}\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} <{failed}>: Recipient address rejected\r\n\r\n\
         {returned}--B--\r\n"
    )
    .into_bytes()
}

async fn counter(desk: &Desk, name: &str) -> i64 {
    desk.store
        .counters()
        .await
        .unwrap()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| v)
}

/// Queued mail of `kind`, parsed, without claiming it.
async fn outbox_of(desk: &Desk, reference: &str, kind: &str) -> Vec<MessageRecord> {
    desk.messages(reference)
        .await
        .into_iter()
        .filter(|m| m.direction == "out" && m.kind == kind)
        .collect()
}

async fn check_bounce_of_a_staff_reply(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    desk.service().assign("SUP-1", AYSE).await.unwrap();
    desk.service()
        .reply("SUP-1", AYSE, "Please unplug it.")
        .await
        .unwrap();
    let ours = desk.our_message_id("SUP-1", "staff").await;

    let outcome = desk
        .pipe(&dsn(
            "b1@mx.customer.test",
            ALICE,
            Some(&ours),
            "failed",
            "5.1.1",
        ))
        .await;
    assert_eq!(outcome, stored("SUP-1", Signal::References, false));
    assert_eq!(desk.store.counts().await.unwrap().0, 1, "no new ticket");
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Pending);

    let msgs = desk.messages("SUP-1").await;
    let reply = msgs.iter().find(|m| m.kind == "staff").unwrap();
    assert!(
        reply.bounced_at.is_some(),
        "the staff reply is marked bounced"
    );
    let detail = reply.bounce_detail.as_deref().unwrap();
    assert!(
        detail.contains(ALICE) && detail.contains("5.1.1"),
        "{detail}"
    );
    let last = msgs.iter().rev().find(|m| m.direction == "in").unwrap();
    assert_eq!(last.kind, "bounce");
    assert_eq!(last.class.as_deref(), Some("bounce"));

    // The assignee hears of it once, even when the bounce comes again.
    let notices = outbox_of(&desk, "SUP-1", "bounce_notice").await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].to_list, AYSE);
    assert!(
        notices[0].body_text.contains("5.1.1"),
        "{}",
        notices[0].body_text
    );
    desk.pipe(&dsn(
        "b2@mx.customer.test",
        ALICE,
        Some(&ours),
        "failed",
        "5.1.1",
    ))
    .await;
    assert_eq!(outbox_of(&desk, "SUP-1", "bounce_notice").await.len(), 1);
    assert_eq!(desk.store.counts().await.unwrap().0, 1);
}
on_both_backends!(check_bounce_of_a_staff_reply =>
    sqlite_bounce_of_a_staff_reply_marks_it_and_tells_the_assignee_once,
    postgres_bounce_of_a_staff_reply_marks_it_and_tells_the_assignee_once);

async fn check_bounce_without_returned_headers(backend: Backend) {
    // Matched by the failed recipient to our newest mail to them; nobody
    // is assigned, so the managers... there are none: no notice, no loop.
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;
    let outcome = desk
        .pipe(&dsn("b1@mx.customer.test", ALICE, None, "failed", "5.2.1"))
        .await;
    assert_eq!(outcome, stored("SUP-1", Signal::References, false));
    let msgs = desk.messages("SUP-1").await;
    let acked = msgs
        .iter()
        .find(|m| m.internet_message_id.as_deref() == Some(&ack))
        .unwrap();
    assert!(acked.bounced_at.is_some());

    // A bounce about nothing of ours is kept, hidden, and answered by nobody.
    let queued = desk.queued().await;
    let outcome = desk
        .pipe(&dsn(
            "b2@mx.customer.test",
            "stranger@else.test",
            None,
            "failed",
            "5.1.1",
        ))
        .await;
    assert_eq!(outcome, stored("SUP-2", Signal::New, false));
    let t = desk.ticket("SUP-2").await;
    assert_eq!(t.disposition.as_deref(), Some("bounce"));
    assert_eq!(t.status, Status::Closed);
    assert_eq!(desk.queued().await, queued);
}
on_both_backends!(check_bounce_without_returned_headers =>
    sqlite_bounce_without_returned_headers_finds_the_mail_by_recipient,
    postgres_bounce_without_returned_headers_finds_the_mail_by_recipient);

async fn check_hard_bounces_suppress_automatic_mail(backend: Backend) {
    let desk = Desk::with(
        backend,
        "bounce_suppress_after = 2\nbounce_suppress_for = \"1d\"",
        "",
    )
    .await;
    alice_writes(&desk).await;
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;
    for i in 0..2 {
        desk.pipe(&dsn(
            &format!("h{i}@mx.test"),
            ALICE,
            Some(&ack),
            "failed",
            "5.1.1",
        ))
        .await;
    }
    // Soft bounces do not count.
    desk.pipe(&mail("c1@b.test", BOB, SUPPORT, "Bob's question", ""))
        .await;
    let bob_ack = desk.our_message_id("SUP-2", "auto_reply").await;
    for i in 0..3 {
        desk.pipe(&dsn(
            &format!("s{i}@mx.test"),
            BOB,
            Some(&bob_ack),
            "delayed",
            "4.2.2",
        ))
        .await;
    }
    let bob_ack_row = outbox_of(&desk, "SUP-2", "auto_reply").await;
    assert!(
        bob_ack_row[0].bounced_at.is_none(),
        "a delay is not a bounce"
    );
    assert!(bob_ack_row[0].bounce_detail.is_some());

    let new = mail("c2@customer.test", ALICE, SUPPORT, "Another question", "");
    assert_eq!(desk.pipe(&new).await, stored("SUP-3", Signal::New, false));
    assert_eq!(counter(&desk, "auto_mail_suppressed").await, 1);
    assert_eq!(
        counter(&desk, "auto_mail_suppressed.bounced_address").await,
        1
    );
    let t = desk.ticket("SUP-3").await;
    let events = desk.store.events(t.ticket_id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "suppressed"
                && e.detail.as_deref().is_some_and(|d| d.contains(ALICE))),
        "{events:?}"
    );
    let new = mail("c2@b.test", BOB, SUPPORT, "Bob again", "");
    assert_eq!(desk.pipe(&new).await, stored("SUP-4", Signal::New, true));
}
on_both_backends!(check_hard_bounces_suppress_automatic_mail =>
    sqlite_repeated_hard_bounces_suppress_automatic_mail,
    postgres_repeated_hard_bounces_suppress_automatic_mail);

async fn check_per_ticket_limit(backend: Backend) {
    let general = "auto_mail_per_ticket_per_hour = 3\n\n[[rule]]\nname = \"everything\"\nnotify = [\"ayse@example.com\"]\n";
    let desk = Desk::with(backend, general, "").await;
    alice_writes(&desk).await; // acknowledgement + notification
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;
    for i in 0..4 {
        let raw = mail(
            &format!("r{i}@customer.test"),
            ALICE,
            SUPPORT,
            "Re: Printer on fire",
            &replying_to(&ack),
        );
        assert_eq!(
            desk.pipe(&raw).await,
            stored("SUP-1", Signal::References, false)
        );
    }
    let automatic = desk
        .messages("SUP-1")
        .await
        .into_iter()
        .filter(|m| m.direction == "out")
        .count();
    assert_eq!(automatic, 3, "ack + 2 notifications, then the limit");
    assert_eq!(counter(&desk, "auto_mail_suppressed.ticket_limit").await, 3);
    assert_eq!(counter(&desk, "auto_mail_suppressed").await, 3);
}
on_both_backends!(check_per_ticket_limit =>
    sqlite_automatic_mail_per_ticket_is_limited_and_counted,
    postgres_automatic_mail_per_ticket_is_limited_and_counted);

async fn check_loop_and_spam_headers(backend: Backend) {
    let desk = Desk::with(backend, "installation = \"helpdesk@desk.test\"", "").await;
    alice_writes(&desk).await;
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;
    let (_, parsed) = queued_mail(&desk, "auto_reply").await;
    assert!(
        parsed
            .headers
            .iter()
            .any(|(n, v)| n == "X-Helpdesk-Loop" && v == "helpdesk@desk.test"),
        "{:?}",
        parsed.headers
    );
    // Our own acknowledgement, forwarded back under a new id by a
    // customer's mail rule that strips Auto-Submitted.
    let back = mail(
        "fwd1@customer.test",
        ALICE,
        SUPPORT,
        "Fwd: [SUP-1] Printer on fire",
        &format!(
            "{}X-Helpdesk-Loop: helpdesk@desk.test\r\n",
            replying_to(&ack)
        ),
    );
    let queued = desk.queued().await;
    assert_eq!(
        desk.pipe(&back).await,
        stored("SUP-1", Signal::References, false)
    );
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(last.class.as_deref(), Some("loop"));
    assert_eq!(desk.ticket("SUP-1").await.status, Status::Open);
    assert_eq!(desk.queued().await, queued);

    let spam = mail(
        "s1@stranger.test",
        MALLORY,
        SUPPORT,
        "Cheap pills",
        "X-Spam-Flag: YES\r\n",
    );
    assert_eq!(desk.pipe(&spam).await, stored("SUP-2", Signal::New, false));
    let t = desk.ticket("SUP-2").await;
    assert_eq!(t.disposition.as_deref(), Some("spam"));
    assert_eq!(
        desk.messages("SUP-2").await[0].class.as_deref(),
        Some("spam")
    );
    assert_eq!(desk.queued().await, queued);
}
on_both_backends!(check_loop_and_spam_headers =>
    sqlite_our_loop_marker_and_spam_flags_are_honoured,
    postgres_our_loop_marker_and_spam_flags_are_honoured);

async fn check_messages_keep_class_and_new_text(backend: Backend) {
    let desk = Desk::new(backend).await;
    alice_writes(&desk).await;
    let ack = desk.our_message_id("SUP-1", "auto_reply").await;
    let raw = format!(
        "From: {ALICE}\r\nTo: {SUPPORT}\r\nSubject: Re: [SUP-1] Printer on fire\r\n\
         Message-ID: <r1@customer.test>\r\n{}Content-Type: text/plain; charset=utf-8\r\n\r\n\
         It works again, thank you!\r\n\r\nOn Mon, 6 Jan 2025 at 10:00, Support <{SUPPORT}> wrote:\r\n\
         > We received your request.\r\n> Support\r\n",
        replying_to(&ack)
    );
    desk.pipe(raw.as_bytes()).await;
    let last = desk.messages("SUP-1").await.pop().unwrap();
    assert_eq!(last.class.as_deref(), Some("customer"));
    assert_eq!(
        last.new_text.as_deref().map(str::trim),
        Some("It works again, thank you!")
    );
    assert!(last.body_text.contains("> We received your request."));
}
on_both_backends!(check_messages_keep_class_and_new_text =>
    sqlite_messages_keep_class_and_new_text,
    postgres_messages_keep_class_and_new_text);
