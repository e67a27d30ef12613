//! Operating details over the real stack: `after_ingest` acts only on
//! stored mail, and two daemons sharing one PostgreSQL database never
//! double a mail.

use std::time::Duration;

use helpdesk::store::Store;

use crate::support::*;

async fn run_with(
    after_ingest: &'static str,
    extra_general: &str,
) -> (MailStack, TempDir, std::path::PathBuf, Daemon) {
    let stack = MailStack::start(&["support@example.com"]);
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let dept = Dept {
        extra: after_ingest,
        ..SUPPORT
    };
    let config = write_config(&stack, dir.path(), &url, &[&dept], extra_general);
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;
    (stack, dir, config, daemon)
}

fn burst(n: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let m = MailBuilder::new(
                &format!("c{i}@customer.test"),
                "support@example.com",
                &format!("{tag} {i}"),
            );
            ("support@example.com".to_string(), m.build().into_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_ingest_move_empties_the_inbox_into_the_target_folder() {
    let (stack, _dir, config, daemon) = run_with("after_ingest = \"move:Processed\"", "").await;
    stack.lmtp_deliver(&burst(20, "Move")).await;
    eventually("20 tickets", Duration::from_secs(20), async || {
        (list(&config).len() == 20).then_some(())
    })
    .await;
    eventually("inbox emptied", Duration::from_secs(10), async || {
        (stack.folder_count("support@example.com", None) == 0
            && stack.folder_count("support@example.com", Some("Processed")) == 20)
            .then_some(())
    })
    .await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_ingest_delete_keeps_mail_that_was_stored_only_in_part() {
    let (stack, _dir, config, daemon) =
        run_with("after_ingest = \"delete\"", "max_message_size = \"64KB\"").await;
    stack.lmtp_deliver(&burst(5, "Delete")).await;
    let big = MailBuilder::new("big@customer.test", "support@example.com", "Too big")
        .body(&"y".repeat(200_000));
    stack
        .lmtp_deliver(&[("support@example.com".to_string(), big.build().into_bytes())])
        .await;
    eventually("6 tickets", Duration::from_secs(20), async || {
        (list(&config).len() == 6).then_some(())
    })
    .await;
    eventually("whole mail deleted", Duration::from_secs(10), async || {
        (stack.folder_count("support@example.com", None) == 1).then_some(())
    })
    .await;
    // After a restart the on-connect sweep must not delete it either.
    drop(daemon);
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.folder_count("support@example.com", None),
        1,
        "the oversize mail stays on the server"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_ingest_seen_flags_stored_mail() {
    let (stack, _dir, config, daemon) = run_with("after_ingest = \"seen\"", "").await;
    stack.lmtp_deliver(&burst(3, "Seen")).await;
    eventually("3 tickets", Duration::from_secs(20), async || {
        (list(&config).len() == 3).then_some(())
    })
    .await;
    eventually("flagged seen", Duration::from_secs(10), async || {
        let cur = stack.stack_dir().join("mail/example.com/support/cur");
        let seen = std::fs::read_dir(cur)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(",S"))
                    .count()
            })
            .unwrap_or(0);
        (seen == 3).then_some(())
    })
    .await;
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_sharing_postgresql_store_each_mail_once() {
    let stack = MailStack::start(&["support@example.com"]);
    let db = TestDb::new(Backend::Postgres).await;
    let config = write_config(&stack, db.dir.path(), &db.url, &[&SUPPORT], "");
    let first = Daemon::start(&config);
    let second = Daemon::start(&config);
    eventually(
        "one daemon connected",
        Duration::from_secs(20),
        async || {
            (first.log().contains("mailbox connected")
                || second.log().contains("mailbox connected"))
            .then_some(())
        },
    )
    .await;
    // Only one of them reads the mailbox; the other waits for the lease.
    eventually("the other waiting", Duration::from_secs(20), async || {
        [&first, &second]
            .iter()
            .any(|d| d.log().contains("another daemon reads this mailbox"))
            .then_some(())
    })
    .await;
    let connected = [&first, &second]
        .iter()
        .filter(|d| d.log().contains("mailbox connected"))
        .count();
    assert_eq!(connected, 1, "exactly one daemon reads the mailbox");
    stack.lmtp_deliver(&burst(100, "Shared")).await;
    let store = Store::open(&db.url, 2).await.unwrap();
    eventually("100 tickets", Duration::from_secs(30), async || {
        let (t, _, _) = store.counts().await.unwrap();
        (t == 100).then_some(())
    })
    .await;
    // The reader dies: the other takes over the mailbox.
    let (reader, standby) = if first.log().contains("mailbox connected") {
        (first, second)
    } else {
        (second, first)
    };
    reader.kill();
    stack.lmtp_deliver(&burst(10, "Takeover")).await;
    eventually("110 tickets", Duration::from_secs(40), async || {
        let (t, _, _) = store.counts().await.unwrap();
        (t == 110).then_some(())
    })
    .await;
    assert!(standby.log().contains("mailbox connected"));
    let (tickets, _, raw) = store.counts().await.unwrap();
    assert_eq!((tickets, raw), (110, 110));
    drop(standby);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_the_same_sqlite_database_refuses_to_start() {
    let (_stack, _dir, config, first) = run_with("", "").await;
    let mut second = Daemon::start(&config);
    let status = eventually(
        "the second daemon exits",
        Duration::from_secs(10),
        async || second.child.try_wait().unwrap(),
    )
    .await;
    assert!(!status.success());
    assert!(
        second.log().contains("another `helpdesk run` uses"),
        "{}",
        second.log()
    );
    std::mem::forget(second);
    // The first one is untouched.
    assert!(first.log().contains("mailbox connected"));
    assert!(first.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_rejections_fail_with_a_note_when_permanent_and_wait_for_a_retry_when_temporary() {
    let (stack, _dir, config, daemon) = run_with("", "").await;
    // The stack refuses rejected.test with 550 and deferred.test with 450.
    let mails = [
        MailBuilder::new("gone@rejected.test", "support@example.com", "Bounce me"),
        MailBuilder::new("busy@deferred.test", "support@example.com", "Defer me"),
    ];
    let deliveries: Vec<(String, Vec<u8>)> = mails
        .iter()
        .map(|m| ("support@example.com".to_string(), m.build().into_bytes()))
        .collect();
    stack.lmtp_deliver(&deliveries).await;
    eventually("2 tickets", Duration::from_secs(20), async || {
        (list(&config).len() == 2).then_some(())
    })
    .await;

    let failed = eventually(
        "the permanent failure noted",
        Duration::from_secs(20),
        async || {
            let t = show(&config, "SUP-1");
            let ack = t["messages"]
                .as_array()?
                .iter()
                .find(|m| m["kind"] == "auto_reply")?
                .clone();
            (ack["delivery"] == "failed").then_some(t)
        },
    )
    .await;
    let messages = failed["messages"].as_array().unwrap();
    let ack = messages.iter().find(|m| m["kind"] == "auto_reply").unwrap();
    assert!(
        ack["delivery_error"].as_str().unwrap().contains("550"),
        "{ack}"
    );
    let note = messages
        .iter()
        .find(|m| m["kind"] == "note")
        .expect("a note on the ticket");
    assert_eq!(note["author"], "helpdesk");
    assert!(
        note["text"]
            .as_str()
            .unwrap()
            .contains("failed permanently"),
        "{note}"
    );

    let deferred = eventually(
        "the temporary failure recorded",
        Duration::from_secs(20),
        async || {
            let t = show(&config, "SUP-2");
            let ack = t["messages"]
                .as_array()?
                .iter()
                .find(|m| m["kind"] == "auto_reply")?
                .clone();
            ack["delivery_error"]
                .as_str()
                .is_some_and(|e| e.contains("450"))
                .then_some(ack)
        },
    )
    .await;
    assert_eq!(
        deferred["delivery"], "queued",
        "a temporary failure is retried later"
    );
    assert!(
        daemon.log().contains("delivery deferred"),
        "{}",
        daemon.log()
    );
    assert!(
        !show(&config, "SUP-2")["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "note")
    );
    drop(daemon);
}
