//! Crash safety: `kill -9` the daemon while it ingests a burst and while
//! its outbox sends; after a restart every mail is in exactly one ticket
//! and every queued mail reached Postfix (duplicates only for mail that
//! was in flight at the kill).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::support::*;

const MAILS: usize = 500;

async fn inbound_ids(store_url: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(store_url).await.unwrap();
    let rows = sqlx::query("select internet_message_id from message where direction = 'in'")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

async fn queued_ack_ids(store_url: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(store_url).await.unwrap();
    let rows = sqlx::query(
        "select m.internet_message_id from outbox o join message m on m.message_id = o.message_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

fn sent(counts: &[(String, i64)]) -> i64 {
    counts
        .iter()
        .find(|(s, _)| s == "sent")
        .map_or(0, |(_, n)| *n)
}

/// Message-IDs of every mail delivered to customer.test mailboxes.
fn delivered_ids(stack: &MailStack) -> Vec<String> {
    let base = stack.stack_dir().join("mail").join("customer.test");
    let mut ids = Vec::new();
    for user in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        for sub in ["new", "cur"] {
            for f in std::fs::read_dir(user.path().join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                let raw = std::fs::read(f.path()).unwrap();
                if let Some(id) = helpdesk::mail::parse::parse(&raw).message_id {
                    ids.push(id);
                }
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_ingest_and_during_sending_loses_and_doubles_nothing() {
    let stack = MailStack::start(&["support@example.com"]);
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(&stack, dir.path(), &url, &[&SUPPORT], "");

    let mails: Vec<(String, Vec<u8>)> = (0..MAILS)
        .map(|i| {
            let m = MailBuilder::new(
                &format!("cust{i}@customer.test"),
                "support@example.com",
                &format!("Burst {i}"),
            )
            .body(&format!("Mail number {i}.\n"));
            ("support@example.com".to_string(), m.build().into_bytes())
        })
        .collect();
    stack.lmtp_deliver(&mails).await;

    // 1. Kill while ingesting.
    let daemon = Daemon::start(&config);
    let store = eventually("database created", Duration::from_secs(10), async || {
        helpdesk::store::Store::open(&url, 2).await.ok()
    })
    .await;
    let started = Instant::now();
    loop {
        let (_, messages, _) = store.counts().await.unwrap();
        if messages >= 100 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ingest did not start:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill();
    let (tickets_at_kill, _, _) = store.counts().await.unwrap();
    eprintln!("killed during ingest with {tickets_at_kill} of {MAILS} tickets stored");

    // 2. Restart and kill again while the outbox sends.
    let daemon = Daemon::start(&config);
    let started = Instant::now();
    let mut killed_while_sending = false;
    loop {
        let sent_now = sent(&store.outbox_counts().await.unwrap());
        if sent_now >= 20 && (sent_now as usize) < MAILS - 20 {
            daemon.kill();
            killed_while_sending = true;
            eprintln!("killed while sending, {sent_now} of {MAILS} acknowledgements sent");
            break;
        }
        if sent_now as usize >= MAILS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        killed_while_sending,
        "the outbox finished before the test could kill it"
    );

    // 3. Restart and let everything drain.
    let daemon = Daemon::start(&config);
    eventually(
        "all acknowledgements sent",
        Duration::from_secs(60),
        async || (sent(&store.outbox_counts().await.unwrap()) as usize == MAILS).then_some(()),
    )
    .await;
    let acks = queued_ack_ids(&url).await;
    let delivered = eventually(
        "all acknowledgements delivered",
        Duration::from_secs(30),
        async || {
            let d = delivered_ids(&stack);
            acks.iter().all(|a| d.contains(a)).then_some(d)
        },
    )
    .await;
    drop(daemon);

    // Every mail in exactly one ticket.
    let ids = inbound_ids(&url).await;
    assert_eq!(ids.len(), MAILS, "inbound messages stored");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(seen.len(), MAILS, "every mail stored exactly once");
    let (tickets, _, _) = store.counts().await.unwrap();
    assert_eq!(tickets as usize, MAILS);
    assert_eq!(acks.len(), MAILS, "one acknowledgement queued per ticket");

    // Every queued mail reached Postfix; a duplicate is only possible for
    // mail in flight when the process died.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in &delivered {
        *count.entry(id.as_str()).or_default() += 1;
    }
    let duplicates: usize = count.values().map(|n| n - 1).sum();
    eprintln!("duplicates after two kills: {duplicates}");
    assert!(
        duplicates <= 8,
        "{duplicates} duplicates: more than the mail in flight"
    );
    store.close().await;
}
