//! Mail from machines, on the real mail stack: out-of-office replies to
//! our mail, real Postfix bounces of a staff reply, another helpdesk, and
//! a naive autoresponder. Each is stored where an operator looks for it
//! and answered by nothing.
//!
//! That something did NOT happen (an answer, a second notice) is checked
//! once the whole system is quiet (`quiet`): every department mailbox
//! stored up to its last mail, no outbox row waiting, Postfix's queue
//! empty, the bot (if any) done with its mail, and nothing moved while
//! this was checked. A mail the daemon caused is queued in the same
//! transaction that stores the mail causing it, so at that point anything
//! that was going to be sent has been delivered to its maildir.
//!
//! (A marker mail alone would not prove it: the outbox sends up to four
//! mails at once, and Postfix delivers concurrently, so a later
//! acknowledgement can overtake an earlier mail.)

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use helpdesk::mail::parse::Inbound;
use helpdesk::store::Store;
use serde_json::Value;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);
/// Generous: the whole system settling after an exchange.
const SETTLE: Duration = Duration::from_secs(90);

const SUPPORT_ADDR: &str = "support@example.com";
const AYSE: &str = "ayse@example.com";
const ALICE: &str = "alice@customer.test";
const BOB: &str = "bob@customer.test";
const LEAVER: &str = "leaver@customer.test";
const BOT: &str = "helpbot@vendor.test";

/// The other company's helpdesk (another installation, another domain).
const HELP: Dept = Dept {
    key: "HLP",
    name: "Other Help",
    address: "help@other.test",
    language: "en",
    extra: "",
};

/// One helpdesk installation: config, SQLite database, running daemon.
struct Desk {
    dept: &'static Dept,
    config: PathBuf,
    /// Read-only use by the test: mailbox checkpoint and outbox state.
    store: Store,
    daemon: Option<Daemon>,
    _dir: TempDir,
}

async fn desk(stack: &MailStack, dept: &'static Dept, general: &str) -> Desk {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(stack, dir.path(), &url, &[dept], general);
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;
    let store = Store::open(&url, 1).await.unwrap();
    Desk {
        dept,
        config,
        store,
        daemon: Some(daemon),
        _dir: dir,
    }
}

impl Desk {
    fn show(&self, reference: &str) -> Value {
        show(&self.config, reference)
    }

    /// `tickets list --all --json`: hidden tickets too.
    fn list_all(&self) -> Vec<Value> {
        serde_json::from_str(&cli(
            &self.config,
            &["tickets", "list", "--all", "--json"],
            None,
        ))
        .unwrap()
    }

    fn stats(&self) -> Value {
        serde_json::from_str(&cli(&self.config, &["stats", "--json"], None)).unwrap()
    }

    /// Outbox rows not yet accepted by the SMTP server.
    async fn outbox_waiting(&self) -> i64 {
        self.store
            .outbox_counts()
            .await
            .unwrap()
            .iter()
            .filter(|(status, _)| status == "queued")
            .map(|(_, n)| n)
            .sum()
    }

    /// The last UID of its mailbox that the daemon has stored.
    async fn stored_uid(&self) -> i64 {
        self.store
            .checkpoint(self.dept.key, "INBOX")
            .await
            .unwrap()
            .map_or(0, |(_, uid)| uid)
    }
}

fn history_kinds(ticket: &Value) -> Vec<String> {
    ticket["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn pair(direction: &str, kind: &str) -> (String, String) {
    (direction.to_string(), kind.to_string())
}

/// Everything that can still move mail, in the direction mail flows.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// UIDNEXT of each desk's mailbox.
    uid_next: Vec<u32>,
    /// The bot's maildir count and the mails it has handled.
    bot: Option<(usize, usize)>,
}

async fn snapshot(stack: &MailStack, desks: &[&Desk], bot: Option<&Bot>) -> Snapshot {
    let mut uid_next = Vec::new();
    for d in desks {
        uid_next.push(stack.uid_next(d.dept.address).await);
    }
    Snapshot {
        uid_next,
        bot: bot.map(|b| (stack.maildir_count(BOT), b.handled())),
    }
}

/// Waits until no mail is on its way anywhere (see the module docs).
/// A mail in flight at the first look is in a mailbox not stored yet, an
/// outbox row, Postfix's queue or the bot's unhandled mail; checked in
/// that order (the direction mail flows), wherever it moves meanwhile it
/// changes a mailbox or the bot's count and the second look differs.
async fn quiet(stack: &MailStack, desks: &[&Desk], bot: Option<&Bot>) {
    eventually("no mail on its way anywhere", SETTLE, async || {
        let before = snapshot(stack, desks, bot).await;
        for (d, uid_next) in desks.iter().zip(&before.uid_next) {
            if d.stored_uid().await + 1 != i64::from(*uid_next) {
                return None;
            }
        }
        if let Some(b) = bot {
            assert!(!b.ended(), "the bot's task ended on its own (a panic?)");
        }
        if let Some((count, handled)) = before.bot
            && count != handled
        {
            return None;
        }
        for d in desks {
            if d.outbox_waiting().await > 0 {
                return None;
            }
        }
        if stack.postfix_queue_len() > 0 {
            return None;
        }
        (snapshot(stack, desks, bot).await == before).then_some(())
    })
    .await;
}

/// Sends a new mail and returns the acknowledgement it gets.
async fn open_ticket(stack: &MailStack, from: &str, subject: &str) -> (MailBuilder, Inbound) {
    let mail = MailBuilder::new(from, SUPPORT_ADDR, subject);
    stack.send(&mail).await;
    let acks = stack
        .wait_for(from, 1, WAIT, |m| {
            m.subject.contains(subject) && m.auto.auto_submitted.is_some()
        })
        .await;
    (mail, acks.last().unwrap().1.clone())
}

/// An RFC 3834 vacation responder answering `parent`: `Auto-Submitted:
/// auto-replied`, subject "Re: …".
fn vacation_reply(from: &str, parent: &Inbound) -> MailBuilder {
    MailBuilder::new(from, SUPPORT_ADDR, &format!("Re: {}", parent.subject))
        .replying_to(parent)
        .header("Auto-Submitted", "auto-replied")
        .body("I am on vacation until Monday, with no access to my mail.\n")
}

/// Outlook/Exchange out-of-office as it reaches the outside: no
/// `Auto-Submitted`, only `X-Auto-Response-Suppress: All` and the
/// "Automatic reply:" subject.
fn outlook_ooo(from: &str, parent: &Inbound) -> MailBuilder {
    MailBuilder::new(
        from,
        SUPPORT_ADDR,
        &format!("Automatic reply: {}", parent.subject),
    )
    .replying_to(parent)
    .header("X-Auto-Response-Suppress", "All")
    .body("I am out of the office until Monday. For urgent matters call reception.\n")
}

/// The inbound messages of class auto_reply on a ticket.
fn auto_replies(ticket: &Value) -> Vec<&Value> {
    messages(ticket)
        .iter()
        .filter(|m| m["direction"] == "in" && m["class"] == "auto_reply")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_office_reply_to_an_acknowledgement_causes_no_loop() {
    let stack = MailStack::start(&[SUPPORT_ADDR, ALICE, BOB]);
    let a = desk(&stack, &SUPPORT, "").await;

    // Open ticket: the customer's out-of-office answers our acknowledgement.
    let (_first, ack) = open_ticket(&stack, ALICE, "Printer on fire").await;
    assert_eq!(show(&a.config, "SUP-1")["status"], "open");
    stack.send(&vacation_reply(ALICE, &ack)).await;
    stack.send(&outlook_ooo(ALICE, &ack)).await;
    let t = eventually("both out-of-office replies stored", WAIT, async || {
        let t = a.show("SUP-1");
        (auto_replies(&t).len() == 2).then_some(t)
    })
    .await;
    assert_eq!(t["status"], "open", "an automatic mail changes no status");
    let ooo = auto_replies(&t);
    let reasons: Vec<&str> = ooo
        .iter()
        .map(|m| m["class_reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"Auto-Submitted: auto-replied"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("X-Auto-Response-Suppress: All")),
        "Outlook's OOO without Auto-Submitted: {reasons:?}"
    );
    for m in &ooo {
        assert_eq!(m["kind"], "auto_reply");
        assert_eq!(m["thread_signal"], "references", "{m}");
        assert_eq!(m["from"], ALICE);
        assert!(m["text"].as_str().unwrap().contains("until Monday"), "{m}");
    }

    // Pending ticket: the out-of-office answers the staff reply.
    cli(
        &a.config,
        &["tickets", "reply", "SUP-1", "--from", AYSE],
        Some("Please unplug it and send us the model number.\n"),
    );
    let reply = stack
        .wait_for(ALICE, 1, WAIT, |m| m.text.contains("model number"))
        .await[0]
        .1
        .clone();
    assert_eq!(a.show("SUP-1")["status"], "pending");
    stack.send(&vacation_reply(ALICE, &reply)).await;
    stack.send(&outlook_ooo(ALICE, &reply)).await;
    let t = eventually("two more out-of-office replies stored", WAIT, async || {
        let t = a.show("SUP-1");
        (auto_replies(&t).len() == 4).then_some(t)
    })
    .await;
    assert_eq!(t["status"], "pending", "the ticket still waits for alice");

    // A marker from another customer is acknowledged as usual...
    let (_marker, marker_ack) = open_ticket(&stack, BOB, "Marker").await;
    assert!(marker_ack.subject.starts_with("[SUP-2]"));
    // ...and once nothing is on its way any more, alice has exactly the
    // acknowledgement and the staff reply.
    quiet(&stack, &[&a], None).await;
    let inbox = stack.inbox(ALICE).await;
    let subjects: Vec<&str> = inbox.iter().map(|(_, m)| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "[SUP-1] We received your message: Printer on fire",
            "Re: [SUP-1] Printer on fire"
        ]
    );

    let t = a.show("SUP-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(
        kinds(&t),
        [
            pair("in", "customer"),
            pair("out", "auto_reply"),
            pair("in", "auto_reply"),
            pair("in", "auto_reply"),
            pair("out", "staff"),
            pair("in", "auto_reply"),
            pair("in", "auto_reply"),
        ]
    );
    let history = history_kinds(&t);
    assert!(
        !history
            .iter()
            .any(|k| ["status", "reopened", "suppressed"].contains(&k.as_str())),
        "{history:?}"
    );
    let all = a.list_all();
    assert_eq!(
        all.iter()
            .map(|t| t["ref"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["SUP-1", "SUP-2"],
        "no ticket for the out-of-office replies"
    );
    assert!(a.daemon.unwrap().stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn bounce_of_a_staff_reply_marks_it_bounced() {
    let stack = MailStack::start(&[SUPPORT_ADDR, AYSE, LEAVER]);
    let a = desk(&stack, &SUPPORT, "").await;
    let (_first, _ack) = open_ticket(&stack, LEAVER, "Refund for order 1234").await;
    cli(&a.config, &["tickets", "assign", "SUP-1", AYSE], None);

    // The customer leaves the company: the mail server still takes mail
    // for the address, the mailbox is gone, Postfix bounces it (a real
    // DSN to the envelope sender, our department address).
    stack.remove_mailbox(&[LEAVER]);
    cli(
        &a.config,
        &["tickets", "reply", "SUP-1", "--from", AYSE],
        Some("Your refund has been approved.\n"),
    );
    let staff_reply = |t: &Value| {
        messages(t)
            .iter()
            .find(|m| m["kind"] == "staff")
            .cloned()
            .unwrap()
    };
    let t = eventually("the staff reply marked bounced", WAIT, async || {
        let t = a.show("SUP-1");
        (staff_reply(&t)["bounced"] == true).then_some(t)
    })
    .await;
    let reply = staff_reply(&t);
    assert_eq!(reply["delivery"], "sent", "Postfix accepted it: {reply}");
    assert!(reply["bounced_at"].is_string(), "{reply}");
    let detail = reply["bounce"].as_str().unwrap();
    assert!(
        detail.starts_with("leaver@customer.test: failed (5.1.1)"),
        "{detail}"
    );
    assert!(
        detail.contains("User doesn't exist"),
        "Dovecot's words: {detail}"
    );
    assert_eq!(t["status"], "pending", "a bounce changes no status");
    assert_eq!(t["assignee"], AYSE);
    let bounces: Vec<&Value> = messages(&t)
        .iter()
        .filter(|m| m["direction"] == "in" && m["class"] == "bounce")
        .collect();
    assert_eq!(bounces.len(), 1, "{t}");
    assert_eq!(bounces[0]["kind"], "bounce");
    assert_eq!(
        bounces[0]["class_reason"],
        "multipart/report; report-type=delivery-status"
    );
    assert!(
        bounces[0]["from"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("MAILER-DAEMON@mailstack.localhost"),
        "{}",
        bounces[0]
    );
    assert!(history_kinds(&t).contains(&"bounce".to_string()));

    // Ayşe hears of it once; nobody else does, nothing else moves.
    quiet(&stack, &[&a], None).await;
    let notices = stack.inbox(AYSE).await;
    assert_eq!(notices.len(), 1, "exactly one bounce notice");
    let notice = &notices[0].1;
    assert_eq!(
        notice.subject,
        "Undelivered mail on SUP-1: Refund for order 1234"
    );
    assert_eq!(notice.from.as_ref().unwrap().email, SUPPORT_ADDR);
    assert_eq!(
        notice.auto.auto_submitted.as_deref(),
        Some("auto-generated")
    );
    assert!(notice.text.contains("5.1.1"), "{}", notice.text);
    assert!(notice.text.contains(LEAVER), "{}", notice.text);
    let all = a.list_all();
    assert_eq!(all.len(), 1, "no ticket for the bounce: {all:?}");
    let t = a.show("SUP-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(
        kinds(&t),
        [
            pair("in", "customer"),
            pair("out", "auto_reply"),
            pair("out", "staff"),
            pair("in", "bounce"),
            pair("out", "bounce_notice"),
        ]
    );

    // The same mail bounces a second time (the same message sent again
    // through the server, as a retrying relay would): stored, no second
    // notice.
    let resent = MailBuilder::new(SUPPORT_ADDR, LEAVER, reply["subject"].as_str().unwrap())
        .header("From", "Support <support@example.com>")
        .header(
            "Message-ID",
            &format!("<{}>", reply["message_id"].as_str().unwrap()),
        )
        .body("Your refund has been approved.\n");
    stack.send(&resent).await;
    let t = eventually("the second bounce stored", WAIT, async || {
        let t = a.show("SUP-1");
        (messages(&t)
            .iter()
            .filter(|m| m["class"] == "bounce")
            .count()
            == 2)
            .then_some(t)
    })
    .await;
    assert_eq!(staff_reply(&t)["bounced_at"], reply["bounced_at"]);
    quiet(&stack, &[&a], None).await;
    assert_eq!(stack.inbox(AYSE).await.len(), 1, "still one notice");
    assert_eq!(a.list_all().len(), 1);
    let t = a.show("SUP-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(
        kinds(&t),
        [
            pair("in", "customer"),
            pair("out", "auto_reply"),
            pair("out", "staff"),
            pair("in", "bounce"),
            pair("out", "bounce_notice"),
            pair("in", "bounce"),
        ]
    );
}

// ---------------------------------------------------------------------------
// Autoresponders facing each other

/// A badly written autoresponder: answers every mail in its INBOX with a
/// new mail to the sender, a new subject, no auto headers, no
/// In-Reply-To. Stops answering (but keeps counting) after `BOT_CAP`
/// mails, so a broken limit fails the test instead of running forever.
struct Bot {
    handled: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

const BOT_CAP: usize = 25;

fn bot_mail(to: &str, n: usize) -> MailBuilder {
    let number = 4711 + n;
    MailBuilder::new(BOT, to, &format!("Ticket #{number} has been created"))
        .header("From", "Vendor Helpdesk <helpbot@vendor.test>")
        .body(&format!(
            "Hello,\n\nyour request has been logged as ticket #{number}.\n\
             Our team will contact you.\n"
        ))
}

impl Bot {
    /// Writes to `to` first, then answers whatever comes back.
    async fn start(stack: Arc<MailStack>, to: &str) -> Bot {
        stack.send(&bot_mail(to, 0)).await;
        let handled = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (handled, sent, stop) = (handled.clone(), sent.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let inbox = stack.inbox(BOT).await;
                    for (_, m) in inbox.iter().skip(handled.load(Ordering::SeqCst)) {
                        if sent.load(Ordering::SeqCst) < BOT_CAP
                            && let Some(from) = &m.from
                        {
                            let n = sent.load(Ordering::SeqCst);
                            stack.send(&bot_mail(&from.email, n)).await;
                            sent.fetch_add(1, Ordering::SeqCst);
                        }
                        handled.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Bot {
            handled,
            sent,
            stop,
            task: Some(task),
        }
    }

    /// Mails of its INBOX it is done with.
    fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    fn ended(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.await.expect("the bot task");
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The ticket holding an automatic mail (class auto_reply) from `from`,
/// and that message, once stored.
async fn stored_auto_reply(d: &Desk, from: &str) -> (Value, Value) {
    eventually(
        &format!("{} storing the auto-reply from {from}", d.dept.key),
        WAIT,
        async || {
            d.list_all()
                .iter()
                .filter(|t| t["customer"]["email"] == from)
                .find_map(|listed| {
                    let t = d.show(listed["ref"].as_str().unwrap());
                    let m = messages(&t)
                        .iter()
                        .find(|m| m["direction"] == "in" && m["class"] == "auto_reply")?
                        .clone();
                    Some((t, m))
                })
        },
    )
    .await
}

fn outbox(d: &Desk) -> Value {
    d.stats()["outbox"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_autoresponders_are_bounded_by_the_rate_limit() {
    // (a) Two helpdesks, two installations, facing each other.
    let stack = Arc::new(MailStack::start(&[SUPPORT_ADDR, HELP.address, BOT]));
    let limits = "auto_reply_limit_per_hour = 3\n";
    let a = desk(
        &stack,
        &SUPPORT,
        &format!("{limits}installation = \"helpdesk@a.example\"\n"),
    )
    .await;
    let b = desk(
        &stack,
        &HELP,
        &format!("{limits}installation = \"helpdesk@b.other\"\n"),
    )
    .await;

    // Someone at other.test writes to A from B's shared address: A
    // acknowledges, B stores the acknowledgement and answers nothing.
    stack
        .send(&MailBuilder::new(
            HELP.address,
            SUPPORT_ADDR,
            "Question about your API",
        ))
        .await;
    let (t, m) = stored_auto_reply(&b, SUPPORT_ADDR).await;
    assert_eq!(m["class_reason"], "Auto-Submitted: auto-replied");
    assert_eq!(t["disposition"], "auto_reply", "{t}");
    assert_eq!(kinds(&t), [pair("in", "auto_reply")]);
    // And the other way round: someone at example.com writes to B from A's
    // address.
    stack
        .send(&MailBuilder::new(
            SUPPORT_ADDR,
            HELP.address,
            "Partnership proposal",
        ))
        .await;
    let (t, m) = stored_auto_reply(&a, HELP.address).await;
    assert_eq!(m["class_reason"], "Auto-Submitted: auto-replied");
    assert_eq!(kinds(&t), [pair("in", "auto_reply")]);

    quiet(&stack, &[&a, &b], None).await;
    // Each opening mail caused exactly one mail between the two (≤ the
    // limit of 3): the acknowledgement, never answered.
    assert_eq!(outbox(&a), serde_json::json!({"sent": 1}));
    assert_eq!(outbox(&b), serde_json::json!({"sent": 1}));
    let acks_at_b: Vec<_> = stack
        .inbox(HELP.address)
        .await
        .into_iter()
        .filter(|(_, m)| m.from.as_ref().unwrap().email == SUPPORT_ADDR)
        .collect();
    assert_eq!(acks_at_b.len(), 2, "B's own opener and A's acknowledgement");
    assert_eq!(stack.inbox(SUPPORT_ADDR).await.len(), 2);
    assert!(list(&a.config).len() == 1 && list(&b.config).len() == 1);
    for d in [&a, &b] {
        assert!(
            !d.stats()["counters"]
                .as_object()
                .unwrap()
                .contains_key("auto_mail_suppressed"),
            "the classification stopped it, not the limit"
        );
    }
    drop(b);

    // (b) A naive bot: every answer is a new mail, so every one opens a
    // new ticket and would be acknowledged, but for the per-sender limit.
    let bot = Bot::start(stack.clone(), SUPPORT_ADDR).await;
    quiet(&stack, &[&a], Some(&bot)).await;
    let sent = bot.sent();
    bot.stop().await;

    let acks = stack.inbox(BOT).await;
    assert_eq!(acks.len(), 3, "A stops at auto_reply_limit_per_hour");
    for (_, m) in &acks {
        assert_eq!(m.from.as_ref().unwrap().email, SUPPORT_ADDR);
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
    }
    assert_eq!(
        sent, 4,
        "the bot's opener and one answer per acknowledgement"
    );
    let bot_tickets: Vec<Value> = list(&a.config)
        .into_iter()
        .filter(|t| t["customer"]["email"] == BOT)
        .collect();
    assert_eq!(bot_tickets.len(), 4);
    let last = a.show(bot_tickets[3]["ref"].as_str().unwrap());
    assert_eq!(kinds(&last), [pair("in", "customer")], "not acknowledged");
    let suppressed = last["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "suppressed")
        .unwrap_or_else(|| panic!("a suppressed event: {last}"));
    assert!(
        suppressed["detail"]
            .as_str()
            .unwrap()
            .contains("auto_reply_limit_per_hour"),
        "{suppressed}"
    );
    let stats = a.stats();
    assert_eq!(stats["outbox"], serde_json::json!({"sent": 1 + 3}));
    let counters = &stats["counters"];
    assert_eq!(counters["auto_mail_suppressed.sender_limit"], 1, "{stats}");
    assert_eq!(counters["auto_mail_suppressed"], 1, "{stats}");
    assert!(a.daemon.unwrap().stop().success());
}
