//! Bad input loses nothing: every fixture under `fixtures/mail/malformed`
//! is kept raw and visible on a ticket, over IMAP and through the MTA
//! pipe, without a panic; a 10 MB attachment is stored whole; mail over
//! `max_message_size` is recorded with its headers and a note.

use std::path::PathBuf;
use std::time::Duration;

use helpdesk::store::{Store, TicketFilter};

use crate::support::*;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(ROOT).join("fixtures/mail/malformed");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "malformed fixtures missing");
    out
}

/// Every stored inbound message: (raw bytes, problems, ticket ref).
async fn stored(store: &Store) -> Vec<(Vec<u8>, Option<String>, String)> {
    let mut out = Vec::new();
    for t in store.list_tickets(&TicketFilter::default()).await.unwrap() {
        for m in store.messages(t.ticket_id).await.unwrap() {
            if m.direction == "in" {
                let raw = store
                    .raw_message(m.raw_message_id.unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                out.push((raw, m.problems.clone(), t.reference.clone()));
            }
        }
    }
    out
}

trait Lf {
    fn replace_crlf(&self) -> Vec<u8>;
}

impl Lf for Vec<u8> {
    fn replace_crlf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for (i, b) in self.iter().enumerate() {
            if *b == b'\r' && self.get(i + 1) == Some(&b'\n') {
                continue;
            }
            out.push(*b);
        }
        out
    }
}

fn ends_with(hay: &[u8], needle: &[u8]) -> bool {
    let trim = |b: &[u8]| {
        let mut b = b.to_vec();
        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            b.pop();
        }
        b
    };
    trim(hay).ends_with(&trim(needle))
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_mail_over_imap_is_kept_raw_flagged_and_on_a_ticket() {
    let stack = MailStack::start(&["support@example.com", "big@customer.test"]);
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(&stack, dir.path(), &url, &[&SUPPORT], "");
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;

    let fixtures = fixtures();
    let deliveries: Vec<(String, Vec<u8>)> = fixtures
        .iter()
        .map(|(_, raw)| ("support@example.com".to_string(), raw.clone()))
        .collect();
    stack.lmtp_deliver(&deliveries).await;

    // 10 MB attachment, over SMTP like a customer would send it.
    let attachment: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big = format!(
        "From: big@customer.test\r\nTo: support@example.com\r\nSubject: scan\r\nMessage-ID: <big@customer.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         see attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=scan.bin\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64_lines(&attachment)
    );
    stack
        .send_raw(
            "big@customer.test",
            &["support@example.com"],
            big.as_bytes(),
        )
        .await;

    let store = Store::open(&url, 2).await.unwrap();
    let all = eventually("every mail stored", Duration::from_secs(30), async || {
        let s = stored(&store).await;
        (s.len() == fixtures.len() + 1).then_some(s)
    })
    .await;
    for (name, raw) in &fixtures {
        // Dovecot serves NUL as 0x80 over IMAP (NUL is not allowed in literals).
        let served: Vec<u8> = raw
            .iter()
            .map(|b| if *b == 0 { 0x80 } else { *b })
            .collect();
        let (_, problems, reference) = all
            .iter()
            .find(|(stored, _, _)| ends_with(&stored.replace_crlf(), &served.replace_crlf()))
            .unwrap_or_else(|| panic!("{name} not stored raw"));
        assert!(
            problems.is_some(),
            "{name} on {reference} should be flagged"
        );
        // Visible to staff through the CLI.
        let t = show(&config, reference);
        assert!(!t["messages"].as_array().unwrap().is_empty());
    }
    let big_ticket = store
        .list_tickets(&TicketFilter {
            customer: Some("big@customer.test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let msgs = store.messages(big_ticket[0].ticket_id).await.unwrap();
    assert_eq!(msgs[0].attachments[0].size, 10 * 1024 * 1024);
    assert_eq!(msgs[0].attachments[0].filename.as_deref(), Some("scan.bin"));
    assert!(msgs[0].problems.is_none(), "{:?}", msgs[0].problems);

    // No panic escaped: the only ones are mail-parser's on the mail the
    // fuzzer found (mime-parser-panic.eml), caught inside parse::parse.
    let log = daemon.log();
    assert!(
        log.lines()
            .filter(|l| l.contains("panicked"))
            .all(|l| l.contains("mail-parser")),
        "{log}"
    );
    assert!(daemon.stop().success());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_mail_through_the_mta_pipe_is_stored_exactly_and_exit_codes_tell_the_mta() {
    let stack = MailStack::start(&[]);
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(&stack, dir.path(), &url, &[&SUPPORT], "");
    for (name, raw) in fixtures() {
        let path = dir.path().join(&name);
        std::fs::write(&path, &raw).unwrap();
        let out = cli_output(
            &config,
            &["ingest", "--department", "SUP", path.to_str().unwrap()],
            None,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The same mail again (an MTA retry) is recognised, not doubled.
        let again = cli_output(
            &config,
            &["ingest", "--department", "SUP", path.to_str().unwrap()],
            None,
        );
        assert!(again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("duplicate"),
            "{name}"
        );
    }
    let store = Store::open(&url, 2).await.unwrap();
    let all = stored(&store).await;
    assert_eq!(all.len(), fixtures().len());
    for (name, raw) in fixtures() {
        assert!(
            all.iter().any(|(s, p, _)| *s == raw && p.is_some()),
            "{name} kept byte for byte and flagged"
        );
    }
    // From standard input, too.
    let out = cli_output(
        &config,
        &["ingest", "--department", "SUP", "-"],
        Some("From: a@b.test\r\nSubject: piped\r\n\r\nhi\r\n"),
    );
    assert!(out.status.success());
    // An unknown department is a temporary failure: the MTA keeps the mail.
    let out = cli_output(
        &config,
        &["ingest", "--department", "NOPE"],
        Some("Subject: x\r\n\r\ny\r\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_over_max_message_size_is_recorded_with_its_headers_and_a_note() {
    let stack = MailStack::start(&["support@example.com", "huge@customer.test"]);
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(
        &stack,
        dir.path(),
        &url,
        &[&SUPPORT],
        "max_message_size = \"1MB\"",
    );
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;
    let body = "x".repeat(76) + "\r\n";
    let huge = MailBuilder::new("huge@customer.test", "support@example.com", "Huge log file")
        .body(&body.repeat(30_000));
    stack.send(&huge).await;
    let acks = stack
        .wait_for("huge@customer.test", 1, Duration::from_secs(15), |_| true)
        .await;
    assert!(
        acks[0].1.subject.contains("Huge log file"),
        "a customer still gets the acknowledgement"
    );
    let t = show(&config, "SUP-1");
    let first = &t["messages"][0];
    assert_eq!(first["subject"], "Huge log file");
    assert_eq!(first["message_id"], huge.message_id());
    assert!(
        first["problems"]
            .as_str()
            .unwrap()
            .contains("max_message_size"),
        "{first}"
    );
    let store = Store::open(&url, 2).await.unwrap();
    let msgs = store.messages(1).await.unwrap();
    let raw = store
        .raw_message(msgs[0].raw_message_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.len() < 64 * 1024,
        "only the headers were kept ({} bytes)",
        raw.len()
    );
    store.close().await;
    drop(daemon);
}

#[test]
fn check_config_reports_file_line_and_key_and_exits_1() {
    let path = PathBuf::from(ROOT).join("fixtures/config/unknown-key.toml");
    let out = cli_output(&path, &["check-config"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{}:7:1: error: `department[0].langauge`: unknown key",
            path.display()
        )),
        "{stdout}"
    );
    let example = PathBuf::from(ROOT).join("config/helpdesk.example.toml");
    let out = cli_output(&example, &["check-config"], None);
    // The example names files that only exist on a real installation.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = stdout.lines().filter(|l| l.contains(": error: ")).collect();
    assert!(errors.iter().all(|l| l.contains("_file`")), "{stdout}");
}
