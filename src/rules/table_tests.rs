//! Table-driven tests of the routing rules: every condition and every
//! action, compiled from a whole config text through `Config::parse` (as
//! the daemon loads it) and evaluated over mails read by `parse::parse`;
//! then the team strategies through `pick`.
//!
//! A condition row is: the arrival department, the mail, the facts the
//! caller supplies (reply, customer known, time) and what `evaluate` must
//! say about the one rule: matched, or the first failed condition and why.

use std::collections::HashMap;
use std::path::Path;

use super::{
    Actions, Assign, AutoReply, Decision, Facts, Member, Pick, Priority, Strategy, TeamState,
    Verdict, evaluate, pick,
};
use crate::config::{Config, Options, Problem, Problems};
use crate::mail::parse::{Inbound, parse};
use crate::mail::quote;

/// Two departments (SUP with categories hardware/account, SAL with
/// invoice), three staff, one team; rules are appended.
const BASE: &str = r#"
[general]
secret = "0123456789abcdef0123"

[[department]]
key = "SUP"
name = "Support"
address = "support@example.com"
categories = ["hardware", "account"]
[department.imap]
host = "127.0.0.1"
username = "support@example.com"
password = "x"
[department.smtp]
host = "127.0.0.1"

[[department]]
key = "SAL"
name = "Sales"
address = "sales@example.com"
categories = ["invoice"]
[department.imap]
host = "127.0.0.1"
username = "sales@example.com"
password = "x"
[department.smtp]
host = "127.0.0.1"

[[staff]]
email = "ayse@example.com"
departments = ["SUP"]

[[staff]]
email = "mehmet@example.com"
departments = ["SUP", "SAL"]

[[staff]]
email = "zeynep@example.com"
departments = ["SAL"]

[[team]]
name = "first-line"
members = ["ayse@example.com", "mehmet@example.com"]
strategy = "least_open"
"#;

fn load(src: &str) -> Result<(Config, Vec<Problem>), Problems> {
    Config::parse(
        src,
        Path::new("/tmp/x/helpdesk.toml"),
        Options { read_files: false },
    )
}

/// BASE plus `rules`; must load without errors or warnings.
fn config(rules: &str) -> Config {
    config_from(&format!("{BASE}\n{rules}"))
}

fn config_from(src: &str) -> Config {
    let (config, warnings) = load(src).unwrap_or_else(|p| panic!("{p}\n--- in ---\n{src}"));
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    config
}

/// A mail with default `From`, `To`, `Subject`, `Message-ID` and `Date`
/// unless `headers` names them (an empty value leaves the header out).
fn mail(headers: &[(&str, &str)], body: &str) -> Inbound {
    let defaults = [
        ("From", "Ann Customer <ann@client.example>"),
        ("To", "support@example.com"),
        ("Subject", "Hello"),
        ("Message-ID", "<m1@client.example>"),
        ("Date", "Mon, 2 Mar 2026 10:00:00 +0000"),
    ];
    let mut raw = String::new();
    for (name, value) in defaults {
        if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)) {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in headers {
        if !value.is_empty() {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !headers
        .iter()
        .any(|(h, _)| h.eq_ignore_ascii_case("Content-Type"))
    {
        raw.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
    }
    raw.push_str("\r\n");
    raw.push_str(&body.replace('\n', "\r\n"));
    parse(raw.as_bytes())
}

fn plain(body: &str) -> Inbound {
    mail(&[], body)
}

fn with_attachment() -> Inbound {
    mail(
        &[
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/mixed; boundary=\"b1\""),
        ],
        "--b1\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         The invoice is attached.\n\
         --b1\n\
         Content-Type: application/pdf; name=\"invoice.pdf\"\n\
         Content-Disposition: attachment; filename=\"invoice.pdf\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iago=\n\
         --b1--\n",
    )
}

const ENGLISH: &str = "Hello, I ordered a laptop from your shop two weeks ago and it still \
has not arrived. Could you please tell me when it will be delivered? I have been waiting \
for a long time and I need it for my work next week. Thank you very much for your help.";

const TURKISH: &str = "Merhaba, iki hafta önce mağazanızdan bir dizüstü bilgisayar sipariş \
ettim ve hâlâ elime ulaşmadı. Ne zaman teslim edileceğini söyleyebilir misiniz? Uzun \
zamandır bekliyorum ve gelecek hafta işim için ona ihtiyacım var. Yardımınız için çok \
teşekkür ederim.";

/// Monday 2 March 2026, 10:00 UTC.
const MONDAY_10_UTC: &str = "2026-03-02T10:00:00Z";

#[derive(Debug)]
enum Want {
    Match,
    /// The first failed condition (as `describe` puts it) and why.
    Fail(&'static str, String),
}

struct Row {
    what: &'static str,
    department: &'static str,
    mail: Inbound,
    reply: bool,
    known: bool,
    at: &'static str,
    want: Want,
}

fn row(what: &'static str, mail: Inbound) -> Row {
    Row {
        what,
        department: "SUP",
        mail,
        reply: false,
        known: false,
        at: MONDAY_10_UTC,
        want: Want::Match,
    }
}

impl Row {
    fn dept(mut self, d: &'static str) -> Row {
        self.department = d;
        self
    }
    fn reply(mut self) -> Row {
        self.reply = true;
        self
    }
    fn known(mut self) -> Row {
        self.known = true;
        self
    }
    fn at(mut self, t: &'static str) -> Row {
        self.at = t;
        self
    }
    fn matches(mut self) -> Row {
        self.want = Want::Match;
        self
    }
    fn fails(mut self, condition: &'static str, why: &str) -> Row {
        self.want = Want::Fail(condition, why.to_string());
        self
    }
}

/// Evaluates the rules for a row, as `routing::plan` does: the body
/// conditions see the text without quoted history.
fn run(config: &Config, r: &Row) -> (Decision, Vec<Verdict>) {
    let new_text = quote::new_text(&r.mail.text);
    let now_ms =
        r.at.parse::<jiff::Timestamp>()
            .expect("row time")
            .as_millisecond();
    let facts = Facts::new(r.department, &r.mail, new_text, r.reply, r.known, now_ms);
    let mut trace = Vec::new();
    let d = evaluate(&config.rules, &facts, Some(&mut trace));
    // The daemon runs without a trace: same decision.
    let facts = Facts::new(r.department, &r.mail, new_text, r.reply, r.known, now_ms);
    assert_eq!(evaluate(&config.rules, &facts, None), d, "{}", r.what);
    (d, trace)
}

/// One rule made of `conditions` (tagging `hit`), checked against every
/// row; all mismatches are reported together.
fn table(conditions: &str, rows: Vec<Row>) {
    let config = config(&format!(
        "[[rule]]\nname = \"under-test\"\n{conditions}\ntags = \"hit\"\n"
    ));
    let mut wrong = Vec::new();
    for r in &rows {
        let (d, trace) = run(&config, r);
        let expected = match &r.want {
            Want::Match => Verdict::Matched,
            Want::Fail(c, why) => Verdict::Failed {
                condition: c.to_string(),
                why: why.clone(),
            },
        };
        let tags: &[&str] = if matches!(r.want, Want::Match) {
            &["hit"]
        } else {
            &[]
        };
        if trace != [expected.clone()] || d.actions.tags != tags {
            wrong.push(format!(
                "{}: expected {expected:?}, got {trace:?} (tags {:?})",
                r.what, d.actions.tags
            ));
        }
        assert_eq!(d.matched.is_empty(), d.actions.tags.is_empty());
    }
    assert!(
        wrong.is_empty(),
        "rule:\n{conditions}\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Conditions

#[test]
fn condition_department() {
    table(
        r#"department = "sal""#,
        vec![
            row("arrived in SAL", plain("x")).dept("SAL").matches(),
            row("arrived in SUP", plain("x")).fails("department = SAL", "arrived in SUP"),
        ],
    );
    table(
        r#"department = ["SUP", "SAL"]"#,
        vec![
            row("SUP of the list", plain("x")).matches(),
            row("SAL of the list", plain("x")).dept("SAL").matches(),
        ],
    );
}

#[test]
fn condition_is_reply() {
    table(
        "is_reply = true",
        vec![
            row("a reply", plain("x")).reply().matches(),
            row("a new mail", plain("x")).fails("is_reply = true", "is_reply is false"),
        ],
    );
    table(
        "is_reply = false",
        vec![
            row("a new mail", plain("x")).matches(),
            row("a reply", plain("x"))
                .reply()
                .fails("is_reply = false", "is_reply is true"),
        ],
    );
}

#[test]
fn condition_customer_known() {
    table(
        "customer_known = true",
        vec![
            row("known", plain("x")).known().matches(),
            row("unknown", plain("x")).fails("customer_known = true", "customer_known is false"),
        ],
    );
    table(
        "customer_known = false",
        vec![
            row("unknown", plain("x")).matches(),
            row("known", plain("x"))
                .known()
                .fails("customer_known = false", "customer_known is true"),
        ],
    );
}

#[test]
fn condition_has_attachment() {
    assert_eq!(with_attachment().attachments.len(), 1);
    table(
        "has_attachment = true",
        vec![
            row("a pdf attached", with_attachment()).matches(),
            row("text only", plain("x")).fails("has_attachment = true", "has_attachment is false"),
        ],
    );
    table(
        "has_attachment = false",
        vec![
            row("text only", plain("x")).matches(),
            row("a pdf attached", with_attachment())
                .fails("has_attachment = false", "has_attachment is true"),
        ],
    );
}

#[test]
fn condition_from() {
    let from = |a: &'static str| mail(&[("From", a)], "x");
    let cond = "from = client.example | *@*.bigcorp.example | Boss+vip@Partner.example";
    table(
        r#"from = ["client.example", "*@*.bigcorp.example", "Boss+vip@Partner.example"]"#,
        vec![
            row("a domain alone", from("Ann <ann@client.example>")).matches(),
            row("upper case", from("ANN@CLIENT.EXAMPLE")).matches(),
            row("plus tag on the sender", from("ann+orders@client.example")).matches(),
            row(
                "a subdomain is another domain",
                from("ann@eu.client.example"),
            )
            .fails(cond, "from ann@eu.client.example"),
            row("glob over subdomains", from("cfo@eu.bigcorp.example")).matches(),
            row("the glob needs a subdomain", from("cfo@bigcorp.example"))
                .fails(cond, "from cfo@bigcorp.example"),
            row(
                "plus tags on both sides",
                from("boss+other@partner.example"),
            )
            .matches(),
            row("no plus tag on the sender", from("boss@partner.example")).matches(),
            row("another local part", from("bossy@partner.example"))
                .fails(cond, "from bossy@partner.example"),
            row("no From header", from("")).fails(cond, "from no address"),
        ],
    );
    table(
        r#"from = "b?b-*@shop.example""#,
        vec![
            row("? and *", from("bob-orders@shop.example")).matches(),
            row("? is one character", from("boob-x@shop.example"))
                .fails("from = b?b-*@shop.example", "from boob-x@shop.example"),
        ],
    );
}

#[test]
fn condition_to() {
    let to = |t: &'static str| mail(&[("To", t)], "x");
    let cond = "to = support@example.com | help-*@example.org";
    table(
        r#"to = ["support@example.com", "help-*@example.org"]"#,
        vec![
            row("exact", to("support@example.com")).matches(),
            row("name and case", to("Support Desk <SUPPORT@Example.com>")).matches(),
            row("plus tag (reply token)", to("support+abc123@example.com")).matches(),
            row("one of several", to("ops@example.com, support@example.com")).matches(),
            row("glob", to("help-desk@example.org")).matches(),
            row(
                "only Delivered-To",
                mail(
                    &[
                        ("To", "undisclosed-recipients:;"),
                        ("Delivered-To", "support+tok@example.com"),
                    ],
                    "x",
                ),
            )
            .matches(),
            row("others", to("sales@example.com, ops@example.com"))
                .fails(cond, "to sales@example.com, ops@example.com"),
            row(
                "Cc is not To",
                mail(
                    &[("To", "sales@example.com"), ("Cc", "support@example.com")],
                    "x",
                ),
            )
            .fails(cond, "to sales@example.com"),
        ],
    );
}

#[test]
fn condition_cc() {
    let cond = "cc = *@partner.example";
    table(
        r#"cc = "*@partner.example""#,
        vec![
            row(
                "in Cc",
                mail(&[("Cc", "Ops <ops@partner.example>, x@y.example")], "x"),
            )
            .matches(),
            row("no Cc", plain("x")).fails(cond, "cc no address"),
            row("other Cc", mail(&[("Cc", "x@y.example")], "x")).fails(cond, "cc x@y.example"),
            row(
                "To is not Cc",
                mail(&[("To", "ops@partner.example"), ("Cc", "x@y.example")], "x"),
            )
            .fails(cond, "cc x@y.example"),
        ],
    );
}

#[test]
fn condition_hours_with_timezone() {
    // Europe/Istanbul is UTC+3 all year.
    let cond = "hours = Mon-Fri 09:00-18:00 (Europe/Istanbul)";
    table(
        "hours = \"Mon-Fri 09:00-18:00\"\ntimezone = \"Europe/Istanbul\"",
        vec![
            row("Mon 09:00 local", plain("x"))
                .at("2026-03-02T06:00:00Z")
                .matches(),
            row("Mon 08:59 local", plain("x"))
                .at("2026-03-02T05:59:00Z")
                .fails(cond, "it is Mon 08:59 +03"),
            row("Fri 17:59 local", plain("x"))
                .at("2026-03-06T14:59:00Z")
                .matches(),
            row("Fri 18:00 local: the end is excluded", plain("x"))
                .at("2026-03-06T15:00:00Z")
                .fails(cond, "it is Fri 18:00 +03"),
            row("Sat noon", plain("x"))
                .at("2026-03-07T09:00:00Z")
                .fails(cond, "it is Sat 12:00 +03"),
            row("Mon 00:30 local is still Sun 21:30 UTC", plain("x"))
                .at("2026-03-01T21:30:00Z")
                .fails(cond, "it is Mon 00:30 +03"),
        ],
    );
    // Without `timezone`: [general] timezone, here the default UTC.
    table(
        r#"hours = "Mon-Fri 09:00-18:00""#,
        vec![
            row("Mon 10:00 UTC", plain("x")).matches(),
            row("Mon 06:30 UTC", plain("x"))
                .at("2026-03-02T06:30:00Z")
                .fails("hours = Mon-Fri 09:00-18:00 (UTC)", "it is Mon 06:30 UTC"),
        ],
    );
    // A window past midnight: the early morning belongs to the next day.
    let cond = "hours = Fri 22:00-06:00 (UTC)";
    table(
        r#"hours = "Fri 22:00-06:00""#,
        vec![
            row("Fri 23:00", plain("x"))
                .at("2026-03-06T23:00:00Z")
                .matches(),
            row("Sat 05:59", plain("x"))
                .at("2026-03-07T05:59:00Z")
                .matches(),
            row("Sat 06:00", plain("x"))
                .at("2026-03-07T06:00:00Z")
                .fails(cond, "it is Sat 06:00 UTC"),
            row("Fri 05:00", plain("x"))
                .at("2026-03-06T05:00:00Z")
                .fails(cond, "it is Fri 05:00 UTC"),
        ],
    );
}

#[test]
fn condition_outside_hours_with_timezone() {
    // New York changes to summer time on Sunday 8 March 2026.
    let cond = "outside_hours = Mon-Fri 09:00-18:00 | Sat 10:00-14:00 (America/New_York)";
    table(
        "outside_hours = [\"Mon-Fri 09:00-18:00\", \"Sat 10:00-14:00\"]\n\
         timezone = \"America/New_York\"",
        vec![
            row("Fri 09:30 EST is office time", plain("x"))
                .at("2026-03-06T14:30:00Z")
                .fails(cond, "it is Fri 09:30 EST"),
            row("Fri 08:30 EST", plain("x"))
                .at("2026-03-06T13:30:00Z")
                .matches(),
            row("Mon 09:30 EDT (same UTC hour as Fri 08:30 EST)", plain("x"))
                .at("2026-03-09T13:30:00Z")
                .fails(cond, "it is Mon 09:30 EDT"),
            row("Mon 08:30 EDT", plain("x"))
                .at("2026-03-09T12:30:00Z")
                .matches(),
            row("Sat 11:00 EST, second window", plain("x"))
                .at("2026-03-07T16:00:00Z")
                .fails(cond, "it is Sat 11:00 EST"),
            row("Sat 15:00 EST", plain("x"))
                .at("2026-03-07T20:00:00Z")
                .matches(),
            row("Sunday", plain("x"))
                .at("2026-03-08T16:00:00Z")
                .matches(),
            row("Mon 2 Mar 10:00 UTC is 05:00 EST", plain("x")).matches(),
        ],
    );
}

#[test]
fn condition_language() {
    let turkish = |body: &str| mail(&[("Subject", "Siparişim hakkında")], body);
    let english = |body: &str| mail(&[("Subject", "About my order")], body);
    table(
        r#"language = "tr""#,
        vec![
            row("Turkish", turkish(TURKISH)).matches(),
            row("English", english(ENGLISH)).fails("language = tr", "language is en"),
            row("too short to tell", mail(&[("Subject", "")], "ok"))
                .fails("language = tr", "language not detected"),
            row(
                "Turkish answer above English history",
                turkish(&format!(
                    "{TURKISH}\n\nOn Mon, 2 Mar 2026 at 10:00, Support <support@example.com> wrote:\n\
                     > {ENGLISH}\n> {ENGLISH}\n> {ENGLISH}\n"
                )),
            )
            .matches(),
        ],
    );
    // ISO 639-3 codes and any-of lists are accepted; `describe` shows
    // the 639-1 codes compared.
    table(
        r#"language = ["ENG", "de"]"#,
        vec![
            row("English", english(ENGLISH)).matches(),
            row("Turkish", turkish(TURKISH)).fails("language = en | de", "language is tr"),
        ],
    );
}

#[test]
fn condition_header() {
    let h = |value: &'static str| mail(&[("X-Priority", value)], "x");
    let cond = "header X-Priority ~ /^1/";
    table(
        r#"header = { X-Priority = "^1" }"#,
        vec![
            row("1 (Highest)", h("1 (Highest)")).matches(),
            row(
                "header name in another case",
                mail(&[("x-priority", "1")], "x"),
            )
            .matches(),
            row("3 (Normal)", h("3 (Normal)")).fails(cond, "X-Priority does not match"),
            row("no header", plain("x")).fails(cond, "no X-Priority header"),
            row(
                "any of two values",
                mail(&[("X-Priority", "3"), ("X-Priority", "1")], "x"),
            )
            .matches(),
        ],
    );
    // A list of regexes is any-of; case-insensitive by default.
    let cond = "header X-Spam-Status ~ /^yes/ | /score=[5-9]/";
    table(
        r#"header = { X-Spam-Status = ["^yes", "score=[5-9]"] }"#,
        vec![
            row("YES", mail(&[("X-Spam-Status", "YES, hits=9")], "x")).matches(),
            row(
                "second regex",
                mail(&[("X-Spam-Status", "No, SCORE=7")], "x"),
            )
            .matches(),
            row("neither", mail(&[("X-Spam-Status", "No, score=1")], "x"))
                .fails(cond, "X-Spam-Status does not match"),
        ],
    );
    // Several headers: each is a condition, all must hold.
    table(
        r#"header = { X-A = "a", X-B = "b" }"#,
        vec![
            row("both", mail(&[("X-A", "a"), ("X-B", "b")], "x")).matches(),
            row("only X-A", mail(&[("X-A", "a")], "x")).fails("header X-B ~ /b/", "no X-B header"),
        ],
    );
    // case_sensitive applies to header regexes too.
    table(
        "header = { X-Mailer = \"^Outlook\" }\ncase_sensitive = true",
        vec![
            row("same case", mail(&[("X-Mailer", "Outlook 16")], "x")).matches(),
            row("other case", mail(&[("X-Mailer", "outlook 16")], "x"))
                .fails("header X-Mailer ~ /^Outlook/", "X-Mailer does not match"),
        ],
    );
}

#[test]
fn condition_subject() {
    let s = |subject: &'static str| mail(&[("Subject", subject)], "x");
    let cond = r"subject ~ /invoice|fatura/ | /INV-\d{4,}/";
    let long = "Question about the delivery of the order I placed three weeks ago";
    table(
        r#"subject = ['invoice|fatura', 'INV-\d{4,}']"#,
        vec![
            row("case-insensitive", s("Your Invoice for March")).matches(),
            row("Turkish word", s("FATURA talebi")).matches(),
            row("second regex", s("about inv-12345")).matches(),
            row("too few digits", s("about inv-123")).fails(cond, r#"subject is "about inv-123""#),
            row("not in the body", mail(&[("Subject", "Hello")], "invoice"))
                .fails(cond, r#"subject is "Hello""#),
            row("long subjects are cut at 60 characters", s(long)).fails(
                cond,
                &format!(
                    "subject is {:?}",
                    format!("{}…", long.chars().take(60).collect::<String>())
                ),
            ),
            row("empty subject", mail(&[("Subject", "")], "x")).fails(cond, r#"subject is """#),
        ],
    );
    table(
        "subject = \"URGENT\"\ncase_sensitive = true",
        vec![
            row("same case", s("URGENT: server down")).matches(),
            row("other case", s("urgent: server down"))
                .fails("subject ~ /URGENT/", r#"subject is "urgent: server down""#),
        ],
    );
}

#[test]
fn condition_body_sees_new_text_only() {
    let cond = "body ~ /printer|yazıcı/";
    let why = "no match in the new text";
    table(
        "body = 'printer|yazıcı'",
        vec![
            row("case-insensitive", plain("My PRINTER is broken.")).matches(),
            row("Turkish", plain("Yazıcı çalışmıyor.")).matches(),
            row(
                "only in the history after On ... wrote:",
                plain(
                    "Thanks, that solved it.\n\n\
                     On Mon, 2 Mar 2026 at 10:00, Support <support@example.com> wrote:\n\
                     > Please restart the printer.\n",
                ),
            )
            .reply()
            .fails(cond, why),
            row(
                "attribution folded over two lines",
                plain(
                    "Thanks, that solved it.\n\n\
                     On Mon, 2 Mar 2026 at 10:00, Support Team\n\
                     <support@example.com> wrote:\n\
                     > Please restart the printer.\n",
                ),
            )
            .reply()
            .fails(cond, why),
            row(
                "only in > quotes at the end",
                plain("Still not working.\n\n> Please restart the printer.\n> Regards\n"),
            )
            .reply()
            .fails(cond, why),
            row(
                "Turkish attribution",
                plain(
                    "Teşekkürler, düzeldi.\n\n\
                     2 Mar 2026 Pzt 10:00 tarihinde Destek <support@example.com> şunu yazdı:\n\
                     > Yazıcıyı yeniden başlatın.\n",
                ),
            )
            .reply()
            .fails(cond, why),
            row(
                "in the new text above the history",
                plain(
                    "The printer is broken again.\n\n\
                     On Mon, 2 Mar 2026 at 10:00, Support <support@example.com> wrote:\n\
                     > Anything else?\n",
                ),
            )
            .reply()
            .matches(),
            row(
                "not in the subject",
                mail(&[("Subject", "printer")], "Hello"),
            )
            .fails(cond, why),
        ],
    );
}

/// Conditions are checked cheapest first, whatever their order in the
/// file; the first that fails is the one reported.
#[test]
fn the_first_failed_condition_is_reported_cheapest_first() {
    let rule = "language = \"en\"\nbody = \"refund\"\nsubject = \"order\"\n\
                hours = \"Mon-Fri 09:00-18:00\"\nfrom = \"client.example\"\n\
                is_reply = false\ndepartment = \"SAL\"";
    let good = || {
        mail(
            &[("Subject", "About my order")],
            &format!("{ENGLISH} I would like a refund."),
        )
    };
    table(
        rule,
        vec![
            row("all hold", good()).dept("SAL").matches(),
            row("everything fails: department first", plain("x"))
                .reply()
                .at("2026-03-07T10:00:00Z")
                .fails("department = SAL", "arrived in SUP"),
            row("then is_reply", plain("x"))
                .dept("SAL")
                .reply()
                .fails("is_reply = false", "is_reply is true"),
            row("then from", mail(&[("From", "x@other.example")], "x"))
                .dept("SAL")
                .fails("from = client.example", "from x@other.example"),
            row("then hours", plain("x"))
                .dept("SAL")
                .at("2026-03-07T10:00:00Z")
                .fails("hours = Mon-Fri 09:00-18:00 (UTC)", "it is Sat 10:00 UTC"),
            row("then subject", plain("x"))
                .dept("SAL")
                .fails("subject ~ /order/", r#"subject is "Hello""#),
            row("then body", mail(&[("Subject", "order")], TURKISH))
                .dept("SAL")
                .fails("body ~ /refund/", "no match in the new text"),
            row(
                "language last",
                mail(&[("Subject", "order")], &format!("{TURKISH} refund")),
            )
            .dept("SAL")
            .fails("language = en", "language is tr"),
        ],
    );
}

#[test]
fn a_rule_without_conditions_matches_every_mail() {
    table(
        "",
        vec![
            row("SUP", plain("x")).matches(),
            row("SAL reply", plain("")).dept("SAL").reply().matches(),
        ],
    );
}

// ---------------------------------------------------------------------------
// Actions

/// One rule per row, matching every mail; the decision's actions.
#[test]
fn every_action() {
    let rows: Vec<(&str, &str, Actions)> = vec![
        (
            "set_department (case-insensitive key)",
            r#"set_department = "sal""#,
            Actions {
                set_department: Some("SAL".into()),
                ..Actions::default()
            },
        ),
        (
            "category declared in the rule's department",
            "department = \"SUP\"\ncategory = \"hardware\"",
            Actions {
                category: Some("hardware".into()),
                ..Actions::default()
            },
        ),
        (
            "category declared in the department set",
            "set_department = \"SAL\"\ncategory = \"invoice\"",
            Actions {
                set_department: Some("SAL".into()),
                category: Some("invoice".into()),
                ..Actions::default()
            },
        ),
        (
            "priority low",
            r#"priority = "low""#,
            Actions {
                priority: Some(Priority::Low),
                ..Actions::default()
            },
        ),
        (
            "priority medium",
            r#"priority = "medium""#,
            Actions {
                priority: Some(Priority::Medium),
                ..Actions::default()
            },
        ),
        (
            "priority high",
            r#"priority = "high""#,
            Actions {
                priority: Some(Priority::High),
                ..Actions::default()
            },
        ),
        (
            "priority urgent",
            r#"priority = "urgent""#,
            Actions {
                priority: Some(Priority::Urgent),
                ..Actions::default()
            },
        ),
        (
            "one tag",
            r#"tags = "vip""#,
            Actions {
                tags: vec!["vip".into()],
                ..Actions::default()
            },
        ),
        (
            "tags, listed once each",
            r#"tags = ["vip", " b2b ", "vip"]"#,
            Actions {
                tags: vec!["vip".into(), "b2b".into()],
                ..Actions::default()
            },
        ),
        (
            "assign a staff member (lower-cased)",
            r#"assign = "Ayse@Example.com""#,
            Actions {
                assign: Some(Assign::Staff("ayse@example.com".into())),
                ..Actions::default()
            },
        ),
        (
            "assign a team (its own strategy)",
            r#"assign = "first-line""#,
            Actions {
                assign: Some(Assign::Team {
                    team: "first-line".into(),
                    strategy: None,
                }),
                ..Actions::default()
            },
        ),
        (
            "assign a team with another strategy",
            "assign = \"first-line\"\nstrategy = \"round_robin\"",
            Actions {
                assign: Some(Assign::Team {
                    team: "first-line".into(),
                    strategy: Some(Strategy::RoundRobin),
                }),
                ..Actions::default()
            },
        ),
        (
            "auto_reply = false",
            "auto_reply = false",
            Actions {
                auto_reply: Some(AutoReply::Off),
                ..Actions::default()
            },
        ),
        (
            "auto_reply = true is the acknowledgement (no change)",
            "auto_reply = true\npriority = \"low\"",
            Actions {
                priority: Some(Priority::Low),
                ..Actions::default()
            },
        ),
        (
            "notify staff (lower-cased) and a team",
            r#"notify = ["Mehmet@example.com", "first-line"]"#,
            Actions {
                notify: vec!["mehmet@example.com".into(), "first-line".into()],
                ..Actions::default()
            },
        ),
        (
            "reject = true sends the rejection template",
            "reject = true",
            Actions {
                reject: Some("rejection".into()),
                ..Actions::default()
            },
        ),
        (
            "reject with a named template",
            r#"reject = "closure""#,
            Actions {
                reject: Some("closure".into()),
                ..Actions::default()
            },
        ),
        (
            "spam",
            "spam = true",
            Actions {
                spam: true,
                ..Actions::default()
            },
        ),
        (
            "stop",
            "stop = true",
            Actions {
                stop: true,
                ..Actions::default()
            },
        ),
        (
            "everything at once",
            "department = \"SUP\"\ncategory = \"account\"\npriority = \"high\"\n\
             tags = [\"a\", \"b\"]\nassign = \"mehmet@example.com\"\nauto_reply = false\n\
             notify = \"ayse@example.com\"",
            Actions {
                category: Some("account".into()),
                priority: Some(Priority::High),
                tags: vec!["a".into(), "b".into()],
                assign: Some(Assign::Staff("mehmet@example.com".into())),
                auto_reply: Some(AutoReply::Off),
                notify: vec!["ayse@example.com".into()],
                ..Actions::default()
            },
        ),
    ];
    let mut wrong = Vec::new();
    for (what, rule, want) in rows {
        let config = config(&format!("[[rule]]\n{rule}\n"));
        let (d, trace) = run(&config, &row(what, plain("x")));
        if d.matched != [0] || trace != [Verdict::Matched] || d.actions != want {
            wrong.push(format!("{what}: expected {want:?}, got {d:?} {trace:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn auto_reply_names_a_template_loaded_with_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vip.en.txt"),
        "Subject: Thank you {customer_name}\n\nYour request {ref} comes first.\n",
    )
    .unwrap();
    let src = BASE.replace(
        "[general]\n",
        &format!(
            "[general]\ntemplates_dir = {:?}\n",
            dir.path().to_str().unwrap()
        ),
    ) + "[[rule]]\ndepartment = \"SUP\"\nauto_reply = \"vip\"\n";
    let config = config_from(&src);
    let (d, _) = run(&config, &row("vip", plain("x")));
    assert_eq!(
        d.actions.auto_reply,
        Some(AutoReply::Template("vip".into()))
    );
    let sup = config.department("SUP").unwrap();
    let (subject, body) = sup.named_templates["vip"].render(&crate::templates::Values {
        reference: "SUP-1",
        subject: "s",
        department: "Support",
        customer_name: "Ann",
        detail: "",
    });
    assert_eq!(
        (subject.as_str(), body.as_str()),
        ("Thank you Ann", "Your request SUP-1 comes first.\n")
    );
    // Only the departments the rule can apply to need the template.
    assert!(config.department("SAL").unwrap().named_templates.is_empty());

    // A template that exists nowhere is an error at load time.
    let missing = BASE.to_string() + "[[rule]]\nauto_reply = \"nope\"\n";
    let problems = load(&missing).unwrap_err().0;
    let messages: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "rule[0].auto_reply",
                "department SUP: no template `nope`: add nope.en.txt to templates_dir"
            ),
            (
                "rule[0].auto_reply",
                "department SAL: no template `nope`: add nope.en.txt to templates_dir"
            ),
        ]
    );
}

#[test]
fn a_rule_without_action_warns_unless_its_action_is_an_error() {
    let messages = |problems: &[Problem]| -> Vec<(String, String)> {
        problems
            .iter()
            .map(|p| (p.key.clone(), p.message.clone()))
            .collect()
    };
    let (_, warnings) = load(&format!(
        "{BASE}[[rule]]\nfrom = \"client.example\"\nauto_reply = true\n"
    ))
    .unwrap();
    assert_eq!(
        messages(&warnings),
        [(
            "rule[0]".to_string(),
            "this rule has no action: a mail it matches ends the rules with nothing decided \
             (add an action, or `continue = true`)"
                .to_string()
        )]
    );
    // The only action is wrong: its error alone, not "no action" too.
    let problems = load(&format!(
        "{BASE}[[rule]]\nfrom = \"client.example\"\nassign = \"first-lin\"\n"
    ))
    .unwrap_err()
    .0;
    assert_eq!(
        messages(&problems),
        [(
            "rule[0].assign".to_string(),
            "no [[team]] named `first-lin` (and not a staff email); did you mean `first-line`?"
                .to_string()
        )]
    );
}

#[test]
fn a_rule_after_a_catch_all_is_reported_unreachable() {
    let src = format!(
        "{BASE}[[rule]]\nname = \"sales\"\ndepartment = \"SAL\"\ntags = \"s\"\n\
         [[rule]]\nname = \"sales-printer\"\ndepartment = \"SAL\"\nbody = \"printer\"\ntags = \"p\"\n\
         [[rule]]\nname = \"support-printer\"\ndepartment = \"SUP\"\nbody = \"printer\"\ntags = \"p\"\n"
    );
    let (config, warnings) = load(&src).unwrap();
    let line = |name: &str| {
        config
            .rules
            .rules
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .origin
            .line
    };
    assert_eq!(
        warnings
            .iter()
            .map(|w| (w.line, w.column, w.key.as_str(), w.message.clone()))
            .collect::<Vec<_>>(),
        [(
            line("sales-printer"),
            1,
            "sales-printer",
            format!(
                "unreachable: `sales` at /tmp/x/helpdesk.toml:{} matches every mail this rule \
                 could see and does not `continue`",
                line("sales")
            )
        )]
    );
}

// ---------------------------------------------------------------------------
// Several rules: first match, continue, stop

fn names(config: &Config, d: &Decision) -> Vec<String> {
    d.rule_names(&config.rules)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_first_matching_rule_wins() {
    let config = config(
        "[[rule]]\nname = \"sales-only\"\ndepartment = \"SAL\"\npriority = \"low\"\n\
         [[rule]]\nname = \"first\"\nfrom = \"client.example\"\npriority = \"high\"\ntags = \"one\"\n\
         [[rule]]\nname = \"second\"\ndepartment = \"SUP\"\npriority = \"urgent\"\ntags = \"two\"\n",
    );
    let (d, trace) = run(&config, &row("x", plain("x")));
    assert_eq!(names(&config, &d), ["first"]);
    assert_eq!(d.matched, [1]);
    assert_eq!(
        d.actions,
        Actions {
            priority: Some(Priority::High),
            tags: vec!["one".into()],
            ..Actions::default()
        }
    );
    assert_eq!(
        trace,
        [
            Verdict::Failed {
                condition: "department = SAL".into(),
                why: "arrived in SUP".into()
            },
            Verdict::Matched,
            Verdict::NotReached,
        ]
    );
    let (d, _) = run(&config, &row("x", plain("x")).dept("SAL"));
    assert_eq!(names(&config, &d), ["sales-only"]);
}

#[test]
fn continue_merges_tags_and_notify_and_later_scalars_replace() {
    let config = config(
        r#"
[[rule]]
name = "a"
tags = ["x", "y"]
priority = "low"
category = "hardware"
department = "SUP"
assign = "ayse@example.com"
auto_reply = false
notify = "ayse@example.com"
continue = true

[[rule]]
name = "not-matching"
department = "SAL"
tags = "never"
priority = "urgent"
continue = true

[[rule]]
name = "b"
tags = ["y", "z"]
priority = "high"
assign = "first-line"
notify = ["first-line", "ayse@example.com"]
set_department = "SAL"
category = "invoice"
continue = true

[[rule]]
name = "c"
from = "client.example"
spam = true

[[rule]]
name = "never-reached"
tags = "late"
"#,
    );
    let (d, trace) = run(&config, &row("x", plain("x")));
    assert_eq!(names(&config, &d), ["a", "b", "c"]);
    assert_eq!(
        d.actions,
        Actions {
            set_department: Some("SAL".into()),
            category: Some("invoice".into()),
            priority: Some(Priority::High),
            tags: vec!["x".into(), "y".into(), "z".into()],
            assign: Some(Assign::Team {
                team: "first-line".into(),
                strategy: None
            }),
            auto_reply: Some(AutoReply::Off),
            notify: vec!["ayse@example.com".into(), "first-line".into()],
            reject: None,
            spam: true,
            stop: false,
        }
    );
    assert_eq!(
        trace,
        [
            Verdict::Matched,
            Verdict::Failed {
                condition: "department = SAL".into(),
                why: "arrived in SUP".into()
            },
            Verdict::Matched,
            Verdict::Matched,
            Verdict::NotReached,
        ]
    );
}

#[test]
fn stop_ends_the_run_even_with_continue() {
    let config = config(
        r#"
[[rule]]
name = "tag"
tags = "a"
continue = true

[[rule]]
name = "halt"
from = "client.example"
tags = "b"
stop = true
continue = true

[[rule]]
name = "after"
tags = "c"
"#,
    );
    let (d, trace) = run(&config, &row("x", plain("x")));
    assert_eq!(names(&config, &d), ["tag", "halt"]);
    assert_eq!(d.actions.tags, ["a", "b"]);
    assert!(d.actions.stop);
    assert_eq!(
        trace,
        [Verdict::Matched, Verdict::Matched, Verdict::NotReached]
    );
    // When `halt` does not match, the run goes on.
    let other = mail(&[("From", "x@other.example")], "x");
    let (d, _) = run(&config, &row("x", other));
    assert_eq!(names(&config, &d), ["tag", "after"]);
    assert_eq!(d.actions.tags, ["a", "c"]);
    assert!(!d.actions.stop);
}

#[test]
fn continue_on_every_rule_runs_them_all_and_no_match_decides_nothing() {
    let config = config(
        "[[rule]]\ntags = \"a\"\ncontinue = true\n\
         [[rule]]\ndepartment = \"SAL\"\ntags = \"b\"\ncontinue = true\n",
    );
    let (d, trace) = run(&config, &row("x", plain("x")).dept("SAL"));
    assert_eq!(names(&config, &d), ["rule 1", "rule 2"]);
    assert_eq!(d.actions.tags, ["a", "b"]);
    assert_eq!(trace, [Verdict::Matched, Verdict::Matched]);

    let config = self::config("[[rule]]\ndepartment = \"SAL\"\ntags = \"b\"\n");
    let (d, _) = run(&config, &row("x", plain("x")));
    assert_eq!(d, Decision::default());
}

// ---------------------------------------------------------------------------
// Team strategies

fn members<'a>(emails: &[&'a str]) -> Vec<Member<'a>> {
    emails
        .iter()
        .map(|e| Member {
            email: e,
            away: false,
            capacity: None,
        })
        .collect()
}

fn rr(n: i64) -> TeamState {
    TeamState {
        round_robin: n,
        ..TeamState::default()
    }
}

fn open(counts: &[(&str, i64)]) -> HashMap<String, i64> {
    counts.iter().map(|(e, n)| (e.to_string(), *n)).collect()
}

fn counts_of(picks: &[String]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for p in picks {
        *out.entry(p.clone()).or_default() += 1;
    }
    out
}

#[test]
fn round_robin_rotates_strictly_and_fairly() {
    let team = members(&["a@x", "b@x", "c@x"]);
    let picks: Vec<String> = (1..=1000)
        .map(|n| {
            let p = pick(&team, Strategy::RoundRobin, Strategy::RoundRobin, &rr(n));
            assert_eq!(p.how, format!("round_robin #{n}"));
            p.assignee.unwrap()
        })
        .collect();
    for (i, p) in picks.iter().enumerate() {
        assert_eq!(p, team[i % 3].email, "pick #{}", i + 1);
    }
    let counts = counts_of(&picks);
    assert_eq!(counts.len(), 3);
    for (who, n) in &counts {
        assert!(*n == 333 || *n == 334, "{who}: {n}");
    }
    assert_eq!(counts.values().sum::<usize>(), 1000);
}

#[test]
fn round_robin_skips_an_away_member_and_the_others_share_evenly() {
    for away in 0..3 {
        let mut team = members(&["a@x", "b@x", "c@x"]);
        team[away].away = true;
        let picks: Vec<String> = (1..=1000)
            .map(|n| {
                pick(&team, Strategy::RoundRobin, Strategy::RoundRobin, &rr(n))
                    .assignee
                    .unwrap()
            })
            .collect();
        let counts = counts_of(&picks);
        assert!(!counts.contains_key(team[away].email), "{counts:?}");
        assert_eq!(counts.len(), 2);
        for (who, n) in &counts {
            assert_eq!(*n, 500, "{who} with {} away: {counts:?}", team[away].email);
        }
        // Strict alternation: never the same person twice in a row.
        assert!(picks.windows(2).all(|w| w[0] != w[1]), "{away}");
    }
}

#[test]
fn round_robin_skips_members_at_capacity() {
    let mut team = members(&["a@x", "b@x", "c@x"]);
    team[2].capacity = Some(3);
    let state = |n| TeamState {
        round_robin: n,
        open: open(&[("c@x", 3)]),
        last_assignee: None,
    };
    let picks: Vec<String> = (1..=6)
        .map(|n| {
            pick(&team, Strategy::RoundRobin, Strategy::RoundRobin, &state(n))
                .assignee
                .unwrap()
        })
        .collect();
    assert_eq!(picks, ["a@x", "b@x", "a@x", "b@x", "a@x", "b@x"]);
}

/// A team of a@x, b@x, c@x with one member changed, a state, and the
/// pick it must give.
struct PickCase {
    what: &'static str,
    away: Option<usize>,
    capacity: Option<(usize, i64)>,
    open: &'static [(&'static str, i64)],
    last_assignee: Option<&'static str>,
    fallback: Strategy,
    who: &'static str,
    how: &'static str,
}

const CASE: PickCase = PickCase {
    what: "",
    away: None,
    capacity: None,
    open: &[],
    last_assignee: None,
    fallback: Strategy::RoundRobin,
    who: "",
    how: "",
};

fn check_picks(strategy: Strategy, round_robin: i64, cases: &[PickCase]) {
    let mut wrong = Vec::new();
    for c in cases {
        let mut team = members(&["a@x", "b@x", "c@x"]);
        if let Some(i) = c.away {
            team[i].away = true;
        }
        if let Some((i, n)) = c.capacity {
            team[i].capacity = Some(n);
        }
        let state = TeamState {
            round_robin,
            open: open(c.open),
            last_assignee: c.last_assignee.map(str::to_string),
        };
        let p = pick(&team, strategy, c.fallback, &state);
        let want = Pick {
            assignee: Some(c.who.to_string()),
            how: c.how.to_string(),
        };
        if p != want {
            wrong.push(format!("{}: expected {want:?}, got {p:?}", c.what));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn least_open_picks_the_least_loaded_within_capacity() {
    const LOADS: &[(&str, i64)] = &[("a@x", 5), ("b@x", 2), ("c@x", 7)];
    check_picks(
        Strategy::LeastOpen,
        1,
        &[
            PickCase {
                what: "the least loaded",
                open: LOADS,
                who: "b@x",
                how: "least_open (2 open)",
                ..CASE
            },
            PickCase {
                what: "nobody in the counts has 0",
                open: &[("a@x", 5), ("b@x", 2)],
                who: "c@x",
                how: "least_open (0 open)",
                ..CASE
            },
            PickCase {
                what: "a tie goes to the first listed",
                open: &[("a@x", 4), ("b@x", 1), ("c@x", 1)],
                who: "b@x",
                how: "least_open (1 open)",
                ..CASE
            },
            PickCase {
                what: "the least loaded is away",
                away: Some(1),
                open: LOADS,
                who: "a@x",
                how: "least_open (5 open)",
                ..CASE
            },
            PickCase {
                what: "the least loaded is at capacity",
                capacity: Some((1, 2)),
                open: LOADS,
                who: "a@x",
                how: "least_open (5 open)",
                ..CASE
            },
            PickCase {
                what: "below capacity is fine",
                capacity: Some((1, 3)),
                open: LOADS,
                who: "b@x",
                how: "least_open (2 open)",
                ..CASE
            },
        ],
    );
}

#[test]
fn nobody_available_is_none_for_every_strategy() {
    let nobody = Pick {
        assignee: None,
        how: "nobody available (away or at capacity)".into(),
    };
    let mut team = members(&["a@x", "b@x", "c@x"]);
    team[0].away = true;
    team[1].capacity = Some(1);
    team[2].capacity = Some(2);
    let s = TeamState {
        round_robin: 7,
        open: open(&[("b@x", 1), ("c@x", 5)]),
        last_assignee: Some("a@x".into()),
    };
    for strategy in [
        Strategy::RoundRobin,
        Strategy::LeastOpen,
        Strategy::StickyCustomer,
    ] {
        assert_eq!(
            pick(&team, strategy, Strategy::LeastOpen, &s),
            nobody,
            "{strategy:?}"
        );
        assert_eq!(
            pick(&[], strategy, Strategy::RoundRobin, &rr(1)),
            nobody,
            "{strategy:?} with no members"
        );
    }
}

#[test]
fn sticky_customer_keeps_the_last_assignee_else_falls_back() {
    const LOADS: &[(&str, i64)] = &[("a@x", 3), ("b@x", 9), ("c@x", 1)];
    let sticky = |what, away, capacity, last_assignee, fallback, who, how| PickCase {
        what,
        away,
        capacity,
        open: LOADS,
        last_assignee,
        fallback,
        who,
        how,
    };
    use Strategy::{LeastOpen, RoundRobin, StickyCustomer};
    let fell_back_rr = "sticky_customer fell back to round_robin #5";
    let fell_back_lo = "sticky_customer fell back to least_open (1 open)";
    check_picks(
        StickyCustomer,
        5,
        &[
            sticky(
                "previous assignee available",
                None,
                None,
                Some("b@x"),
                RoundRobin,
                "b@x",
                "sticky_customer (previous assignee)",
            ),
            sticky(
                "previous assignee available, even if others have less",
                None,
                None,
                Some("b@x"),
                LeastOpen,
                "b@x",
                "sticky_customer (previous assignee)",
            ),
            // #5 among the available a and c.
            sticky(
                "previous assignee away: round_robin",
                Some(1),
                None,
                Some("b@x"),
                RoundRobin,
                "a@x",
                fell_back_rr,
            ),
            sticky(
                "previous assignee away: least_open",
                Some(1),
                None,
                Some("b@x"),
                LeastOpen,
                "c@x",
                fell_back_lo,
            ),
            sticky(
                "previous assignee at capacity: least_open",
                None,
                Some((1, 9)),
                Some("b@x"),
                LeastOpen,
                "c@x",
                fell_back_lo,
            ),
            // #5 among a, b and c.
            sticky(
                "no previous ticket: round_robin",
                None,
                None,
                None,
                RoundRobin,
                "b@x",
                fell_back_rr,
            ),
            sticky(
                "previous assignee left the team: least_open",
                None,
                None,
                Some("gone@x"),
                LeastOpen,
                "c@x",
                fell_back_lo,
            ),
            sticky(
                "a sticky fallback means round_robin",
                None,
                None,
                None,
                StickyCustomer,
                "b@x",
                fell_back_rr,
            ),
        ],
    );
}
