//! The whole mail loop over real servers: customers write over SMTP and
//! read their mailbox over IMAP; staff act through the CLI.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const ALICE: &str = "alice@customer.test";
const BOB: &str = "bob@customer.test";
const MALLORY: &str = "mallory@stranger.test";
const WAIT: Duration = Duration::from_secs(15);

struct World {
    stack: MailStack,
    _db: TempDir,
    config: std::path::PathBuf,
    daemon: Option<Daemon>,
}

async fn world(depts: &[&Dept], extra_general: &str) -> World {
    let stack = MailStack::start(&[
        "support@example.com",
        "sales@example.com",
        ALICE,
        BOB,
        MALLORY,
    ]);
    let db = TempDir::new();
    let url = format!("sqlite://{}", db.path().join("helpdesk.db").display());
    let config = write_config(&stack, db.path(), &url, depts, extra_general);
    let daemon = Daemon::start(&config);
    daemon.wait_connected(depts.len()).await;
    World {
        stack,
        _db: db,
        config,
        daemon: Some(daemon),
    }
}

/// Sends a new mail from `from` and returns the acknowledgement it gets.
async fn open_ticket(
    w: &World,
    from: &str,
    subject: &str,
) -> (MailBuilder, helpdesk::mail::parse::Inbound) {
    let mail = MailBuilder::new(from, "support@example.com", subject);
    w.stack.send(&mail).await;
    let acks = w
        .stack
        .wait_for(from, 1, WAIT, |m| {
            m.subject.contains(subject) && m.auto.auto_submitted.is_some()
        })
        .await;
    (mail, acks.last().unwrap().1.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn new_mail_opens_a_ticket_and_the_customer_gets_an_acknowledgement_from_the_department() {
    let w = world(&[&SUPPORT], "").await;
    let (mail, ack) = open_ticket(&w, ALICE, "Printer on fire").await;

    assert_eq!(ack.from.as_ref().unwrap().email, "support@example.com");
    assert_eq!(
        ack.subject,
        "[SUP-1] We received your message: Printer on fire"
    );
    assert_eq!(ack.auto.auto_submitted.as_deref(), Some("auto-replied"));
    assert_eq!(ack.in_reply_to, vec![mail.message_id()]);
    let reply_to = &ack.reply_to[0].email;
    assert!(reply_to.starts_with("support+sup-1."), "{reply_to}");
    assert!(ack.text.contains("SUP-1"));
    let raw = &w.stack.inbox(ALICE).await[0].0;
    assert!(String::from_utf8_lossy(raw).contains("X-Auto-Response-Suppress: All"));

    let t = show(&w.config, "SUP-1");
    assert_eq!(t["status"], "open");
    assert_eq!(t["department"], "SUP");
    assert_eq!(t["subject"], "Printer on fire");
    assert_eq!(t["customer"]["email"], ALICE);
    assert_eq!(
        kinds(&t),
        vec![
            ("in".into(), "customer".into()),
            ("out".into(), "auto_reply".into())
        ]
    );
    assert_eq!(messages(&t)[0]["thread_signal"], "new");
    assert_eq!(messages(&t)[0]["message_id"], mail.message_id());
    assert_eq!(messages(&t)[1]["delivery"], "sent");
    let listed = list(&w.config);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["message_count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_thread_by_references_subject_tag_and_signed_address_but_not_a_strangers_tag() {
    let w = world(&[&SUPPORT], "").await;
    let (first, ack) = open_ticket(&w, ALICE, "Invoice question").await;

    // 1. A reply carrying References to our acknowledgement.
    let by_refs = MailBuilder::new(
        ALICE,
        "support@example.com",
        "Re: [SUP-1] We received your message: Invoice question",
    )
    .replying_to(&ack)
    .body("One more thing.\n");
    w.stack.send(&by_refs).await;
    // 2. Only the tag in the subject, from the customer (Outlook drops References).
    let by_tag = MailBuilder::new(ALICE, "support@example.com", "AW: [SUP-1] Invoice question")
        .body("And another.\n");
    w.stack.send(&by_tag).await;
    // 3. Only the signed reply address: no References, no tag.
    let reply_to = ack.reply_to[0].email.clone();
    let by_token =
        MailBuilder::new(BOB, &reply_to, "about alice's invoice").body("I am her colleague.\n");
    w.stack.send(&by_token).await;
    // 4. The same tag from a stranger must not reach alice's ticket.
    let stranger = MailBuilder::new(
        MALLORY,
        "support@example.com",
        "Re: [SUP-1] Invoice question",
    )
    .body("Please send me the invoice instead.\n");
    w.stack.send(&stranger).await;
    // 5. A forged token on the plus address is ignored too.
    let forged = MailBuilder::new(
        MALLORY,
        "support+sup-1.00000000000000000000@example.com",
        "hello",
    )
    .envelope_to("support+sup-1.00000000000000000000@example.com");
    w.stack.send(&forged).await;

    eventually("five more mails stored", WAIT, async || {
        let l = list(&w.config);
        (l.len() == 3 && l[0]["message_count"] == 5).then_some(())
    })
    .await;
    let t = show(&w.config, "SUP-1");
    let signals: Vec<(&str, &str)> = messages(&t)
        .iter()
        .filter(|m| m["direction"] == "in")
        .map(|m| {
            (
                m["message_id"].as_str().unwrap(),
                m["thread_signal"].as_str().unwrap(),
            )
        })
        .collect();
    let first_id = first.message_id();
    let refs_id = by_refs.message_id();
    let tag_id = by_tag.message_id();
    let token_id = by_token.message_id();
    assert_eq!(
        signals,
        vec![
            (first_id.as_str(), "new"),
            (refs_id.as_str(), "references"),
            (tag_id.as_str(), "subject_tag"),
            (token_id.as_str(), "reply_token"),
        ]
    );
    for r in ["SUP-2", "SUP-3"] {
        let other = show(&w.config, r);
        assert_eq!(
            other["customer"]["email"], MALLORY,
            "{r} belongs to the stranger"
        );
        assert_eq!(messages(&other)[0]["thread_signal"], "new");
    }
    // Mallory got acknowledgements for her own tickets, never alice's thread.
    let mallory = w.stack.wait_for(MALLORY, 2, WAIT, |_| true).await;
    assert!(mallory.iter().all(|(_, m)| !m.subject.contains("SUP-1]")));
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_reply_is_threaded_from_the_department_and_close_sends_the_closure_mail() {
    let w = world(&[&SUPPORT], "").await;
    let (first, _ack) = open_ticket(&w, ALICE, "Broken screen").await;

    cli(
        &w.config,
        &["tickets", "assign", "SUP-1", "ayse@example.com"],
        None,
    );
    cli(
        &w.config,
        &[
            "tickets",
            "reply",
            "SUP-1",
            "--from",
            "ayse@example.com",
            "-",
        ],
        Some("Please send a photo of the screen.\n"),
    );
    cli(
        &w.config,
        &["tickets", "note", "SUP-1", "--from", "ayse@example.com"],
        Some("Customer is a VIP.\n"),
    );
    let replies = w
        .stack
        .wait_for(ALICE, 1, WAIT, |m| m.text.contains("send a photo"))
        .await;
    let reply = &replies[0].1;
    assert_eq!(reply.from.as_ref().unwrap().email, "support@example.com");
    assert_eq!(reply.subject, "Re: [SUP-1] Broken screen");
    assert_eq!(reply.in_reply_to, vec![first.message_id()]);
    assert!(reply.references.contains(&first.message_id()));
    assert!(reply.auto.auto_submitted.is_none(), "a person wrote it");
    let t = show(&w.config, "SUP-1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["assignee"], "ayse@example.com");

    // The customer answers the reply: back to open.
    let answer = MailBuilder::new(ALICE, "support@example.com", "Re: [SUP-1] Broken screen")
        .replying_to(reply)
        .body("Photo attached (not really).\n");
    w.stack.send(&answer).await;
    eventually("status open", WAIT, async || {
        (show(&w.config, "SUP-1")["status"] == "open").then_some(())
    })
    .await;

    cli(
        &w.config,
        &["tickets", "close", "SUP-1", "--by", "ayse@example.com"],
        None,
    );
    let closure = w
        .stack
        .wait_for(ALICE, 1, WAIT, |m| m.subject.contains("resolved"))
        .await;
    let closure = &closure[0].1;
    assert_eq!(
        closure.subject,
        "[SUP-1] Your request has been resolved: Broken screen"
    );
    assert_eq!(
        closure.auto.auto_submitted.as_deref(),
        Some("auto-generated")
    );
    let t = show(&w.config, "SUP-1");
    assert_eq!(t["status"], "closed");
    let k = kinds(&t);
    assert!(k.contains(&("out".into(), "note".into())));
    assert!(k.contains(&("out".into(), "closure".into())));
    // The note never reached the customer.
    assert!(
        w.stack
            .inbox(ALICE)
            .await
            .iter()
            .all(|(_, m)| !m.text.contains("VIP"))
    );

    // A reply to the closed ticket within reopen_within reopens it.
    let again = MailBuilder::new(
        ALICE,
        "support@example.com",
        "Re: [SUP-1] Your request has been resolved",
    )
    .replying_to(closure)
    .body("It broke again.\n");
    w.stack.send(&again).await;
    eventually("reopened", WAIT, async || {
        (show(&w.config, "SUP-1")["status"] == "open").then_some(())
    })
    .await;
    assert_eq!(list(&w.config).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_office_reply_is_stored_without_acknowledgement_or_status_change() {
    let w = world(&[&SUPPORT], "").await;
    let (_first, _ack) = open_ticket(&w, ALICE, "Password reset").await;
    cli(
        &w.config,
        &["tickets", "reply", "SUP-1", "--from", "ayse@example.com"],
        Some("Done, try now.\n"),
    );
    let reply = w
        .stack
        .wait_for(ALICE, 1, WAIT, |m| m.text.contains("try now"))
        .await[0]
        .1
        .clone();
    assert_eq!(show(&w.config, "SUP-1")["status"], "pending");
    let before = w.stack.maildir_count(ALICE);

    let ooo = MailBuilder::new(
        ALICE,
        "support@example.com",
        "Automatic reply: [SUP-1] Password reset",
    )
    .replying_to(&reply)
    .header("Auto-Submitted", "auto-replied")
    .body("I am out of the office until Monday.\n");
    w.stack.send(&ooo).await;
    // A vacation notice without the reference, from a list-like sender.
    let bulk = MailBuilder::new(BOB, "support@example.com", "Out of Office")
        .header("Precedence", "bulk")
        .body("Away.\n");
    w.stack.send(&bulk).await;

    let t = eventually("the auto-reply stored", WAIT, async || {
        let t = show(&w.config, "SUP-1");
        messages(&t)
            .iter()
            .any(|m| m["kind"] == "auto_reply" && m["direction"] == "in")
            .then_some(t)
    })
    .await;
    assert_eq!(
        t["status"], "pending",
        "an automatic mail never changes the status"
    );
    let stored = messages(&t)
        .iter()
        .find(|m| m["direction"] == "in" && m["kind"] == "auto_reply")
        .unwrap();
    assert_eq!(stored["thread_signal"], "references");
    assert_eq!(stored["class_reason"], "Auto-Submitted: auto-replied");
    // Answering nothing of ours and told by its subject alone, it stays
    // where staff see it (it might be a person's), unanswered.
    let bob_ticket = eventually("bob's ticket", WAIT, async || {
        list(&w.config)
            .into_iter()
            .find(|t| t["customer"]["email"] == BOB)
    })
    .await;
    assert_eq!(bob_ticket["disposition"], Value::Null);
    let bob_ticket = show(&w.config, bob_ticket["ref"].as_str().unwrap());
    assert_eq!(
        kinds(&bob_ticket),
        vec![("in".into(), "auto_reply".into())],
        "no acknowledgement to bulk mail"
    );
    // Give a wrongly queued acknowledgement time to arrive, then check none did.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.stack.maildir_count(ALICE), before);
    assert_eq!(w.stack.maildir_count(BOB), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_departments_answer_each_from_their_own_address_in_their_language() {
    let w = world(&[&SUPPORT, &SALES], "").await;
    w.stack
        .send(&MailBuilder::new(ALICE, "support@example.com", "Help"))
        .await;
    w.stack
        .send(&MailBuilder::new(BOB, "sales@example.com", "Fiyat teklifi"))
        .await;
    let a = w.stack.wait_for(ALICE, 1, WAIT, |_| true).await[0]
        .1
        .clone();
    let b = w.stack.wait_for(BOB, 1, WAIT, |_| true).await[0].1.clone();
    assert_eq!(a.from.unwrap().email, "support@example.com");
    assert_eq!(a.subject, "[SUP-1] We received your message: Help");
    assert_eq!(b.from.as_ref().unwrap().email, "sales@example.com");
    assert_eq!(b.from.as_ref().unwrap().name.as_deref(), Some("Satış"));
    assert_eq!(b.subject, "[SAL-1] Mesajınızı aldık: Fiyat teklifi");
    assert!(b.reply_to[0].email.starts_with("sales+sal-1."));

    // A staff reply on the sales ticket also leaves from sales@.
    cli(
        &w.config,
        &["tickets", "reply", "SAL-1", "--from", "mehmet@example.com"],
        Some("Teklifimiz ektedir.\n"),
    );
    let r = w
        .stack
        .wait_for(BOB, 1, WAIT, |m| m.text.contains("Teklifimiz"))
        .await[0]
        .1
        .clone();
    assert_eq!(r.from.unwrap().email, "sales@example.com");
    // Mehmet is not in support: he may not answer there.
    let out = cli_output(
        &w.config,
        &["tickets", "reply", "SUP-1", "--from", "mehmet@example.com"],
        Some("hi\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not work in department SUP"));

    let status = w.daemon.unwrap_or_else(|| unreachable!()).stop();
    assert!(status.success(), "clean exit on SIGTERM");
}
