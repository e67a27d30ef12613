//! Ingest benchmark on the real mail stack: prints figures, asserts nothing.
//!
//! For SQLite, then PostgreSQL:
//! 1. Throughput: N mails (default 2,000; mixed sizes, 20 % with a 100 KB
//!    attachment, 30 % replies to earlier mails) are delivered into the
//!    support mailbox before `helpdesk run` starts; we time from the
//!    daemon's start until the last mail is committed.
//! 2. Latency: with the daemon idle in IMAP IDLE, new mails arrive at a
//!    steady rate; for each we take the time from LMTP delivery to the
//!    moment Postfix accepted its acknowledgement (`outbox.sent_at`).
//! 3. Peak RSS of the daemon (`VmHWM`).
//!
//! `cargo bench --bench ingest` (env: BENCH_MAILS, BENCH_LATENCY_MAILS,
//! BENCH_LATENCY_RATE, BENCH_BACKENDS=sqlite,postgres).

#[path = "../tests/it/support.rs"]
mod support;

#[path = "common/mod.rs"]
mod common;
use common::{Rng, env_or};
use std::time::{Duration, Instant};

use sqlx::Row;
use support::*;

const WORDS: &[&str] = &[
    "printer", "invoice", "delivery", "order", "broken", "please", "help", "yazıcı", "fatura",
    "teslimat", "sipariş", "bozuk", "lütfen", "merhaba", "thanks", "urgent", "screen", "password",
    "account", "refund",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    let mut col = 0;
    while s.len() < bytes {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        s.push_str(w);
        col += w.len() + 1;
        if col > 70 {
            s.push('\n');
            col = 0;
        } else {
            s.push(' ');
        }
    }
    s.push('\n');
    s
}

/// The benchmark's mail mix; returns (recipient, raw) pairs.
fn mails(n: usize, seed: u64, tag: &str) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut sent: Vec<(String, String, String)> = Vec::new(); // (from, message-id, subject)
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let reply = !sent.is_empty() && rng.below(100) < 30;
        let (from, subject, parent) = if reply {
            let (f, id, s) = sent[rng.below(sent.len() as u64) as usize].clone();
            (f, format!("Re: {s}"), Some(id))
        } else {
            (
                format!("c{}{tag}@customer.test", rng.below(250)),
                format!("Request {tag}{i}: {}", text(&mut rng, 30).trim()),
                None,
            )
        };
        let id = format!("bench.{tag}.{i}@client.test");
        let len = 500 + rng.below(15_000) as usize;
        let body = text(&mut rng, len);
        let mut m = format!(
            "From: Customer <{from}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n\
             Message-ID: <{id}>\r\nDate: {}\r\nMIME-Version: 1.0\r\n",
            chrono::Utc::now().to_rfc2822()
        );
        if let Some(p) = &parent {
            m.push_str(&format!("In-Reply-To: <{p}>\r\nReferences: <{p}>\r\n"));
        }
        if rng.below(100) < 20 {
            let attachment: Vec<u8> = (0..100 * 1024).map(|_| rng.next_u64() as u8).collect();
            m.push_str(
                "Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n--b0undary\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            );
            m.push_str(&body.replace('\n', "\r\n"));
            m.push_str(
                "\r\n--b0undary\r\nContent-Type: application/pdf\r\n\
                 Content-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            );
            m.push_str(&base64_lines(&attachment));
            m.push_str("\r\n--b0undary--\r\n");
        } else {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str(&body.replace('\n', "\r\n"));
        }
        if parent.is_none() {
            sent.push((from, id, subject));
        }
        out.push(("support@example.com".to_string(), m.into_bytes()));
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn run(backend: Backend, n: usize, latency_mails: usize, rate: usize) {
    let stack = MailStack::start(&["support@example.com"]);
    let db = TestDb::new(backend).await;
    // BENCH_GENERAL adds [general] lines (diagnostics, e.g. no acknowledgements).
    let general = std::env::var("BENCH_GENERAL").unwrap_or_default();
    let config = write_config(&stack, db.dir.path(), &db.url, &[&SUPPORT], &general);
    let store = db.store().await;

    // 1. Throughput.
    let bulk = mails(n, 42, "a");
    let bytes: usize = bulk.iter().map(|(_, m)| m.len()).sum();
    stack.lmtp_deliver(&bulk).await;
    let start = Instant::now();
    let daemon = Daemon::start(&config);
    let pid = daemon.child.id();
    loop {
        // The checkpoint moves in the transaction that commits a mail's
        // ticket change; LMTP gave the bulk UIDs 1..=n.
        let done = store
            .checkpoint("SUP", "INBOX")
            .await
            .unwrap()
            .map_or(0, |(_, uid)| uid);
        if done as usize >= n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stalled:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed();
    let (tickets, messages, _) = store.counts().await.unwrap();
    println!(
        "{backend:?}: ingested {n} mails ({:.1} MB) in {:.2} s = {:.0} mails/s ({tickets} tickets, {messages} messages)",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    // Let the acknowledgements of the bulk drain before measuring latency.
    let drain = Instant::now();
    loop {
        let c = store.outbox_counts().await.unwrap();
        if c.iter().all(|(s, _)| s != "queued") {
            break;
        }
        assert!(drain.elapsed() < Duration::from_secs(600), "outbox stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{backend:?}: {} acknowledgements accepted by Postfix {:.2} s after the start",
        store
            .outbox_counts()
            .await
            .unwrap()
            .iter()
            .map(|(_, c)| c)
            .sum::<i64>(),
        start.elapsed().as_secs_f64()
    );

    // 2. Latency, at a steady rate while the daemon idles in IDLE.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let trickle = mails(latency_mails, 7, "l");
    let mut delivered_at: Vec<(String, i64)> = Vec::new();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let t0 = Instant::now();
    for (i, mail) in trickle.iter().enumerate() {
        let due = t0 + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        lmtp_deliver(stack.lmtp_port, std::slice::from_ref(mail)).await;
        let id = helpdesk::mail::parse::parse(&mail.1).message_id.unwrap();
        delivered_at.push((id, chrono::Utc::now().timestamp_millis()));
    }
    let url = db.url.clone();
    let mut latencies: Vec<f64> = Vec::new();
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(60) {
        latencies.clear();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        for (id, at) in &delivered_at {
            // The acknowledgement of the ticket this mail opened.
            let row = sqlx::query(
                "select o.sent_at from message m join outbox o on o.ticket_id = m.ticket_id \
                 where m.internet_message_id = $1 and o.kind = 'auto_reply' and o.status = 'sent'",
            )
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap();
            if let Some(r) = row {
                latencies.push((r.get::<i64, _>(0) - at) as f64);
            }
        }
        pool.close().await;
        let expected = trickle_new_tickets(&trickle);
        if latencies.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{backend:?}: acknowledgement latency over {} new tickets at {rate} mails/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "{backend:?}: daemon peak RSS {:.1} MB",
        common::proc_status_kb(Some(pid), "VmHWM:") as f64 / 1024.0
    );
    let status = daemon.stop();
    assert!(status.success());
    store.close().await;
}

/// Mails in the trickle that open a ticket (and so get an acknowledgement).
fn trickle_new_tickets(trickle: &[(String, Vec<u8>)]) -> usize {
    trickle
        .iter()
        .filter(|(_, m)| helpdesk::mail::parse::parse(m).in_reply_to.is_empty())
        .count()
}

fn main() {
    // The production log level: per-mail lines at info.
    if std::env::var_os("HELPDESK_TEST_LOG").is_none() {
        // SAFETY: single-threaded at this point, before any runtime starts.
        unsafe { std::env::set_var("HELPDESK_TEST_LOG", "info") };
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let n = env_or("BENCH_MAILS", 2000);
    let latency_mails = env_or("BENCH_LATENCY_MAILS", 300);
    let rate = env_or("BENCH_LATENCY_RATE", 50);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for b in backends.split(',') {
        let backend = match b.trim() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => panic!("unknown backend {other}"),
        };
        rt.block_on(run(backend, n, latency_mails, rate));
    }
}
