//! `helpdesk mail inspect` and `mail score` on the real binary, without a
//! config or a database.

use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, TempDir};

const BOUNCE: &str = "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
To: support@example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <bounce-1@mx.example.com>\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.com\r\n\r\n\
Final-Recipient: rfc822; gone@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: Support <support@example.com>\r\nMessage-ID: <reply-7@example.com>\r\n\r\n--B--\r\n";

const REPLY: &str = "From: Ali <ali@customer.test>\r\nTo: support@example.com\r\n\
Subject: Re: [SUP-7] Yazıcı\r\nMessage-ID: <r1@customer.test>\r\nIn-Reply-To: <ack-7@example.com>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\
Tamam, teşekkürler.\r\n\r\niPhone'umdan gönderildi\r\n\r\n\
1 Oca 2026 Pzt, Destek <support@example.com> şunu yazdı:\r\n> Kaydınız açıldı.\r\n";

fn inspect(dir: &TempDir, raw: &str) -> Value {
    let path = dir.path().join("mail.eml");
    std::fs::write(&path, raw).unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            "/nonexistent/helpdesk.toml",
            "mail",
            "inspect",
            "--json",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_prints_every_field_the_issue_names() {
    let dir = TempDir::new();
    let v = inspect(&dir, BOUNCE);
    for key in [
        "from",
        "to",
        "cc",
        "subject",
        "subject_clean",
        "message_id",
        "in_reply_to",
        "references",
        "class",
        "class_reason",
        "bounce",
        "text",
        "quoted",
        "signature",
        "html_sanitized",
        "attachments",
        "charset_issues",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["class"], "bounce");
    assert_eq!(
        v["bounce"]["recipients"],
        serde_json::json!(["gone@customer.test"])
    );
    assert_eq!(v["bounce"]["action"], "failed");
    assert_eq!(v["bounce"]["status"], "5.1.1");
    assert_eq!(v["bounce"]["original_message_id"], "reply-7@example.com");

    let v = inspect(&dir, REPLY);
    assert_eq!(v["class"], "customer");
    assert_eq!(v["bounce"], Value::Null);
    assert_eq!(v["text"], "Tamam, teşekkürler.");
    assert_eq!(v["signature"], "iPhone'umdan gönderildi");
    assert!(
        v["quoted"].as_str().unwrap().contains("Kaydınız açıldı."),
        "{v}"
    );
    assert_eq!(v["charset_issues"], serde_json::json!([]));
}

#[test]
fn score_prints_precision_and_recall_per_class() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("b.eml"), BOUNCE).unwrap();
    std::fs::write(dir.path().join("r.eml"), REPLY).unwrap();
    std::fs::write(dir.path().join("r.txt"), "Tamam, teşekkürler.\n").unwrap();
    std::fs::write(
        dir.path().join("labels.tsv"),
        "# path\tclass\ttext\nb.eml\tbounce\nr.eml\tcustomer\tr.txt\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/helpdesk.toml", "mail", "score"])
        .arg(dir.path().join("labels.tsv"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 mails"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["bounce", "1", "0", "0", "1.000", "1.000"]),
        "{text}"
    );
    assert!(text.contains("reply text extracted exactly: 1/1"), "{text}");
}
