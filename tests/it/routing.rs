//! Routing rules and hot reload on the real mail stack: rules in an
//! included file route mail, the file changes under a running daemon, a
//! broken file is rejected while the old rules keep working, and
//! departments come and go without touching the other mailboxes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

const BILLING: Dept = Dept {
    key: "BIL",
    name: "Billing",
    address: "billing@example.com",
    language: "en",
    extra: "",
};

const CUSTOMERS: [&str; 4] = [
    "alice@customer.test",
    "bob@customer.test",
    "carol@customer.test",
    "dave@customer.test",
];

fn users() -> Vec<&'static str> {
    let mut u = vec![
        "support@example.com",
        "sales@example.com",
        "billing@example.com",
    ];
    u.extend(CUSTOMERS);
    u
}

/// Replaces a file the way editors do: write a new file, rename it over.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn rules_file(priority: &str, assign: &str) -> String {
    format!(
        "[[team]]\nname = \"billing\"\nmembers = [\"ayse@example.com\", \"mehmet@example.com\"]\n\
         strategy = \"round_robin\"\n\n\
         [[rule]]\nname = \"invoices\"\ndepartment = \"SAL\"\nsubject = \"invoice|fatura\"\n\
         set_department = \"BIL\"\npriority = \"{priority}\"\nassign = \"{assign}\"\n"
    )
}

/// The ticket whose subject is `subject`, once it exists.
async fn ticket(config: &Path, subject: &str) -> Value {
    eventually(&format!("a ticket for {subject:?}"), WAIT, async || {
        list(config).into_iter().find(|t| t["subject"] == subject)
    })
    .await
}

fn with_include(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("include = [\"rules.d/*.toml\"]\n\n{text}")).unwrap();
}

async fn wait_log(daemon: &Daemon, what: &str, count: usize) -> String {
    eventually(
        &format!("{count} × {what:?} in the log"),
        WAIT,
        async || {
            let log = daemon.log();
            (log.matches(what).count() >= count).then_some(log)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_route_invoices_to_billing_and_follow_file_changes_without_losing_mail() {
    let stack = MailStack::start(&users());
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(&stack, dir.path(), &url, &[&SUPPORT, &SALES, &BILLING], "");
    with_include(&config);
    let rules_dir = dir.path().join("rules.d");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let rules: PathBuf = rules_dir.join("10-billing.toml");
    std::fs::write(&rules, rules_file("high", "billing")).unwrap();
    let daemon = Daemon::start(&config);
    daemon.wait_connected(3).await;

    // Invoice mail to sales goes to billing, high, round-robin.
    let mut assignees = Vec::new();
    for (i, from) in CUSTOMERS.iter().enumerate() {
        let subject = format!("Invoice {i} is wrong");
        stack
            .send(&MailBuilder::new(from, "sales@example.com", &subject))
            .await;
        let t = ticket(&config, &subject).await;
        assert_eq!(t["department"], "BIL", "{t}");
        assert_eq!(t["priority"], "high");
        assert!(t["ref"].as_str().unwrap().starts_with("BIL-"), "{t}");
        assignees.push(t["assignee"].as_str().unwrap().to_string());
    }
    assert_eq!(
        assignees,
        [
            "ayse@example.com",
            "mehmet@example.com",
            "ayse@example.com",
            "mehmet@example.com"
        ]
    );
    // The acknowledgement comes from the billing address.
    let acks = stack
        .wait_for("alice@customer.test", 1, WAIT, |m| {
            m.subject.contains("Invoice 0")
        })
        .await;
    assert_eq!(
        acks[0].1.from.as_ref().unwrap().email,
        "billing@example.com"
    );
    // Other sales mail is not touched; the decision is on the history.
    stack
        .send(&MailBuilder::new(
            CUSTOMERS[0],
            "sales@example.com",
            "A quote please",
        ))
        .await;
    let quote = ticket(&config, "A quote please").await;
    assert_eq!(
        (quote["department"].as_str(), quote["priority"].as_str()),
        (Some("SAL"), Some("medium"))
    );
    let shown = show(
        &config,
        assignees_ref(&config, "Invoice 0 is wrong").await.as_str(),
    );
    let routing = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "routing")
        .expect("a routing event")
        .clone();
    assert_eq!(routing["detail"]["rules"], serde_json::json!(["invoices"]));
    assert_eq!(routing["detail"]["department"], "BIL");

    // Change the file while mail keeps arriving: nothing is lost.
    let mut burst = Vec::new();
    for i in 0..5 {
        let subject = format!("Before reload {i}");
        stack
            .send(&MailBuilder::new(
                CUSTOMERS[1],
                "support@example.com",
                &subject,
            ))
            .await;
        burst.push(subject);
    }
    replace(&rules, &rules_file("urgent", "mehmet@example.com"));
    for i in 0..5 {
        let subject = format!("During reload {i}");
        stack
            .send(&MailBuilder::new(
                CUSTOMERS[2],
                "support@example.com",
                &subject,
            ))
            .await;
        burst.push(subject);
    }
    wait_log(&daemon, "config reloaded", 1).await;
    for subject in &burst {
        ticket(&config, subject).await;
    }
    stack
        .send(&MailBuilder::new(
            CUSTOMERS[3],
            "sales@example.com",
            "Fatura hatalı",
        ))
        .await;
    let t = ticket(&config, "Fatura hatalı").await;
    assert_eq!(
        (
            t["department"].as_str(),
            t["priority"].as_str(),
            t["assignee"].as_str()
        ),
        (Some("BIL"), Some("urgent"), Some("mehmet@example.com"))
    );

    // A broken file is refused; the daemon keeps the last good rules.
    replace(
        &rules,
        &rules_file("low", "billing").replace("invoice|fatura", "invoice(|fatura"),
    );
    let log = wait_log(&daemon, "config reload failed", 1).await;
    assert!(log.contains("10-billing.toml:9:"), "{log}");
    assert!(log.contains("invalid regex"), "{log}");
    stack
        .send(&MailBuilder::new(
            CUSTOMERS[0],
            "sales@example.com",
            "Second invoice",
        ))
        .await;
    // The CLI refuses the broken config too: read the database directly.
    let store = helpdesk::store::Store::open(&url, 1).await.unwrap();
    let all = eventually("the second invoice stored", WAIT, async || {
        let all = store
            .list_tickets(&helpdesk::store::TicketFilter::default())
            .await
            .unwrap();
        all.iter()
            .any(|t| t.subject == "Second invoice")
            .then_some(all)
    })
    .await;
    let t = all.iter().find(|t| t.subject == "Second invoice").unwrap();
    assert_eq!(
        (t.priority.as_str(), t.assignee.as_deref()),
        ("urgent", Some("mehmet@example.com"))
    );
    assert_eq!(all.len(), 4 + 1 + 10 + 1 + 1, "every mail is on a ticket");
    store.close().await;

    // SIGHUP reloads too (the file is fixed meanwhile or not: both are
    // reported); `systemctl reload` sends it.
    replace(&rules, &rules_file("low", "billing"));
    wait_log(&daemon, "config reloaded", 2).await;
    daemon.signal(libc::SIGHUP);
    let log = wait_log(&daemon, "config reloaded", 3).await;
    assert!(
        log.lines()
            .any(|l| l.contains("config reloaded") && l.contains("SIGHUP")),
        "{log}"
    );
    assert!(daemon.stop().success());
}

async fn assignees_ref(config: &Path, subject: &str) -> String {
    ticket(config, subject).await["ref"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_starts_and_stops_mailboxes_without_touching_the_others() {
    let stack = MailStack::start(&users());
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("helpdesk.db").display());
    let config = write_config(&stack, dir.path(), &url, &[&SUPPORT], "");
    let daemon = Daemon::start(&config);
    daemon.wait_connected(1).await;

    // Add sales: its mailbox starts, support's stays connected. The new
    // file is written elsewhere and renamed over, as editors do.
    let scratch = TempDir::new();
    let next = |depts: &[&Dept]| {
        let written = write_config(&stack, scratch.path(), &url, depts, "");
        std::fs::rename(&written, &config).unwrap();
    };
    next(&[&SUPPORT, &SALES]);
    daemon.wait_connected(2).await;
    stack
        .send(&MailBuilder::new(
            CUSTOMERS[0],
            "sales@example.com",
            "Teklif",
        ))
        .await;
    let t = ticket(&config, "Teklif").await;
    assert_eq!(t["department"], "SAL");
    let log = daemon.log();
    assert_eq!(log.matches("mailbox connected").count(), 2, "{log}");

    // Remove sales again: only its reader stops.
    next(&[&SUPPORT]);
    let log = wait_log(&daemon, "stopping the mailbox reader", 1).await;
    assert!(
        log.lines()
            .any(|l| l.contains("stopping the mailbox reader") && l.contains("SAL")),
        "{log}"
    );
    stack
        .send(&MailBuilder::new(
            CUSTOMERS[1],
            "support@example.com",
            "Still here",
        ))
        .await;
    ticket(&config, "Still here").await;
    assert_eq!(daemon.log().matches("mailbox connected").count(), 2);
    assert!(daemon.stop().success());
}
