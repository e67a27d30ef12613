//! Delivery failures: RFC 3464 delivery status notifications and the
//! common non-standard formats (Postfix, Exim, qmail, Exchange texts,
//! `X-Failed-Recipients`, Amazon SES notifications). Pure: reads the raw
//! bytes of a mail that `classify` already called a bounce.
//!
//! Where the facts come from, most reliable first:
//!
//! - the `message/delivery-status` part (`Final-Recipient`, `Action`,
//!   `Status`, `Diagnostic-Code`, `X-Original-Message-ID`);
//! - the returned message (`message/rfc822`, `text/rfc822-headers` and
//!   their `global` forms) for the original `Message-ID`;
//! - `X-Failed-Recipients`;
//! - the human-readable notice (the first text part, cut where the copy of
//!   the returned message starts): `<user@host>:` lines (Postfix, qmail),
//!   lines that are just an address (Exim), SMTP reply lines, status codes
//!   such as `5.1.1` or qmail's `(#5.1.1)`.
//!
//! A delay warning is a bounce too (class `bounce`), with action `delayed`
//! and kind [`Kind::Delayed`]: the mail is still being retried and nothing
//! failed yet. Only [`Kind::Hard`] says an address does not take mail.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

use super::thread::normalize_message_id;

/// What a bounce means for the address it names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Permanent failure (`5.x.x` other than a full mailbox): the address
    /// does not take mail.
    Hard,
    /// Failed after temporary errors (`4.x.x`), or a full mailbox
    /// (`x.2.2`): the address exists; a later mail may arrive.
    Soft,
    /// A warning: still being retried (`Action: delayed`).
    Delayed,
    /// A success notice (`delivered`, `relayed`, `expanded`).
    Delivered,
    /// Nothing says which.
    #[default]
    Unknown,
}

/// What a bounce says about the failed delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// The addresses that could not be reached, lower case.
    pub recipients: Vec<String>,
    /// RFC 3464 `Action` (failed, delayed, ...), or what the text of a
    /// non-standard bounce says (a permanent error is `failed`, a warning
    /// `delayed`).
    pub action: Option<String>,
    /// The status code (5.1.1), from `Status` or the text.
    pub status: Option<String>,
    /// The remote server's words, when given.
    pub diagnostic: Option<String>,
    /// The `Message-ID` of the mail that bounced, from the returned
    /// message, without angle brackets.
    pub original_message_id: Option<String>,
    /// Hard, soft, delayed...: see [`Kind`].
    pub kind: Kind,
}

impl Bounce {
    /// A permanent failure: the address should not be written to again
    /// without a person checking it.
    pub fn is_hard(&self) -> bool {
        self.kind == Kind::Hard
    }
}

/// Most of a bounce that is read (a bounce returning a huge attachment is
/// cut; its headers and report come first).
const MAX_READ: usize = 1 << 20;

/// Reads a bounce; `own_message_id` is the bounce's own id (never the
/// original).
pub fn parse(raw: &[u8], own_message_id: Option<&str>) -> Bounce {
    let cut = &raw[..raw.len().min(MAX_READ)];
    let own = own_message_id.map(normalize_message_id);
    let structure = catch_unwind(AssertUnwindSafe(|| Structure::read(cut))).unwrap_or_default();
    let whole = unfold(&String::from_utf8_lossy(cut));
    let notice = notice(&structure, &whole);
    let mut b = Bounce::default();

    // The delivery-status part; without one, report fields in the notice
    // of a mail without MIME structure (old sendmail texts carry them).
    let report = match &structure.report {
        Some(r) => r.as_str(),
        None if structure.parsed => "",
        None => notice.as_str(),
    };
    let original_from_report = read_report(report, &mut b);
    for a in &structure.failed_recipients {
        add_recipient(&mut b, a);
    }
    if b.recipients.is_empty() {
        text_recipients(&notice, &mut b);
    }
    if b.status.is_none() {
        b.status = text_status(&notice);
    }
    if b.diagnostic.is_none() {
        b.diagnostic = text_diagnostic(&notice);
    }
    ses_notification(&notice, &mut b);
    if b.action.is_none() {
        b.action = text_action(&notice, &structure.subject);
    }

    let ok = |id: Option<String>| id.filter(|id| !id.is_empty() && Some(id) != own.as_ref());
    b.original_message_id = ok(structure.returned_message_id.clone())
        .or_else(|| ok(original_from_report))
        .or_else(|| ok(returned_copy_message_id(&whole)))
        .or_else(|| ok(structure.in_reply_to.clone()))
        .or_else(|| ok(last_message_id(&whole)));
    b.kind = kind(&b);
    b
}

fn add_recipient(b: &mut Bounce, a: &str) {
    let a = clean_address(a);
    if a.contains('@')
        && a.split('@').all(|p| !p.is_empty())
        && !a.contains(char::is_whitespace)
        && !b.recipients.contains(&a)
        && b.recipients.len() < 100
    {
        b.recipients.push(a);
    }
}

/// What the MIME structure of a bounce tells.
#[derive(Default)]
struct Structure {
    /// The mail's MIME structure was read.
    parsed: bool,
    subject: String,
    /// The `message/delivery-status` part(s), as text.
    report: Option<String>,
    /// The first text part (the human-readable notice).
    notice: Option<String>,
    returned_message_id: Option<String>,
    failed_recipients: Vec<String>,
    in_reply_to: Option<String>,
}

impl Structure {
    fn read(raw: &[u8]) -> Structure {
        let Some(m) = MessageParser::default().parse(raw) else {
            return Structure::default();
        };
        let mut s = Structure {
            parsed: m
                .content_type()
                .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart")),
            subject: m.subject().unwrap_or_default().to_string(),
            ..Structure::default()
        };
        s.failed_recipients = m
            .header_values("X-Failed-Recipients")
            .filter_map(|v| v.as_text())
            .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
        s.in_reply_to = match m.in_reply_to() {
            HeaderValue::Text(t) => Some(normalize_message_id(t)),
            HeaderValue::TextList(l) => l.first().map(|t| normalize_message_id(t)),
            _ => None,
        };
        for (i, part) in m.parts.iter().enumerate() {
            let (ctype, sub) = part
                .content_type()
                .map(|ct| {
                    (
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase(),
                    )
                })
                .unwrap_or_default();
            match (ctype.as_str(), sub.as_str()) {
                ("message", "delivery-status" | "global-delivery-status")
                | ("text", "delivery-status") => {
                    let text = unfold(&String::from_utf8_lossy(part.contents()));
                    let r = s.report.get_or_insert_with(String::new);
                    r.push_str(&text);
                    r.push_str("\n\n");
                }
                ("message", "rfc822" | "global") if s.returned_message_id.is_none() => {
                    s.returned_message_id = match &part.body {
                        PartType::Message(inner) => inner.message_id().map(normalize_message_id),
                        _ => headers_message_id(part.contents()),
                    };
                }
                ("text", "rfc822-headers") | ("message", "rfc822-headers" | "global-headers")
                    if s.returned_message_id.is_none() =>
                {
                    s.returned_message_id = headers_message_id(part.contents());
                }
                _ if s.notice.is_none()
                    && (i > 0 || !s.parsed)
                    && (ctype.is_empty() || (ctype == "text" && sub == "plain")) =>
                {
                    if let PartType::Text(t) = &part.body {
                        s.notice = Some(t.to_string());
                    }
                }
                _ => {}
            }
        }
        if s.notice.is_none() {
            s.notice = m.body_text(0).map(|t| t.into_owned());
        }
        s
    }
}

/// The `Message-ID` of a returned header block.
fn headers_message_id(bytes: &[u8]) -> Option<String> {
    let mut block = bytes.to_vec();
    block.extend_from_slice(b"\r\n\r\n");
    let m = MessageParser::default().parse(&block)?;
    m.message_id()
        .map(normalize_message_id)
        .filter(|id| !id.is_empty())
}

/// Lines that start the copy of the returned message in plain-text bounces.
const RETURNED_COPY_MARKERS: &[&str] = &[
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message follows",
    "copy of the original message",
    "the original message was received",
    "original message headers",
    "original mail as follows",
    "undelivered message follows",
    "returned message follows",
    "bounced e-mail:",
    "message headers follow",
];

fn is_copy_marker(line: &str) -> bool {
    let l = line.to_lowercase();
    RETURNED_COPY_MARKERS.iter().any(|m| l.contains(m))
}

/// The human-readable notice, without the returned copy.
fn notice(structure: &Structure, whole: &str) -> String {
    let text = match &structure.notice {
        Some(n) => n.as_str(),
        None => whole,
    };
    let mut out = String::new();
    for line in text.lines() {
        if is_copy_marker(line) {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Per-message and per-recipient fields of a delivery-status report;
/// returns `X-Original-Message-ID` when given.
fn read_report(report: &str, b: &mut Bounce) -> Option<String> {
    let mut original = None;
    for line in report.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" => {
                // `rfc822; user@example.com`
                add_recipient(b, value.rsplit(';').next().unwrap_or(value));
            }
            "action" if b.action.is_none() && is_word(value) => {
                b.action = Some(value.to_ascii_lowercase());
            }
            "status" if b.status.is_none() => {
                b.status = value
                    .split_whitespace()
                    .next()
                    .filter(|s| is_status(s))
                    .map(str::to_string);
            }
            "diagnostic-code" if b.diagnostic.is_none() => {
                let d = value.split_once(';').map_or(value, |(_, d)| d).trim();
                if !d.is_empty() {
                    b.diagnostic = Some(d.chars().take(500).collect());
                }
            }
            "x-original-message-id" if original.is_none() => {
                original = Some(normalize_message_id(value)).filter(|id| !id.is_empty());
            }
            _ => {}
        }
    }
    if b.recipients.is_empty() {
        // `Original-Recipient` only when no `Final-Recipient` was given.
        for line in report.lines() {
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("original-recipient")
            {
                add_recipient(b, value.rsplit(';').next().unwrap_or(value));
            }
        }
    }
    original
}

/// Addresses in the human-readable part: `<user@host>:` (Postfix, qmail),
/// lines that are just an address (Exim), `user@host: reason`.
fn text_recipients(text: &str, b: &mut Bounce) {
    for line in text.lines().take(400) {
        let t = line.trim().trim_start_matches(['*', '-']).trim();
        let candidate = if let Some(rest) = t.strip_prefix('<') {
            rest.split_once('>').map(|(a, _)| a)
        } else if t.contains('@') && !t.contains(' ') && !t.contains(':') {
            Some(t)
        } else if let Some((a, _)) = t.split_once(": ")
            && a.contains('@')
            && !a.contains(' ')
        {
            Some(a)
        } else {
            None
        };
        if let Some(a) = candidate {
            add_recipient(b, a);
        }
        if b.recipients.len() >= 50 {
            break;
        }
    }
}

/// The first status code in the text: `5.1.1`, qmail's `(#5.1.1)`.
fn text_status(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '#' | '[' | ']'))
        .map(|w| w.trim_end_matches(['.', ',', ';', ':']))
        .find(|w| is_status(w))
        .map(str::to_string)
}

/// An SMTP reply line (`550 5.1.1 ...`, `550-...`), else the line after a
/// qmail `<address>:` line.
fn text_diagnostic(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let smtp = |l: &str| {
        l.len() > 8
            && (l.starts_with('5') || l.starts_with('4'))
            && l.as_bytes()
                .get(3)
                .is_some_and(|c| *c == b' ' || *c == b'-')
            && l[..3].chars().all(|c| c.is_ascii_digit())
    };
    if let Some(l) = lines.iter().find(|l| smtp(l)) {
        return Some(l.chars().take(500).collect());
    }
    // `said: 550 ...` inside a Postfix-style line.
    for l in &lines {
        if let Some((_, rest)) = l.split_once("said: ")
            && smtp(rest.trim())
        {
            return Some(rest.trim().chars().take(500).collect());
        }
    }
    // qmail: `<user@host>:` and the reason on the next line.
    lines.windows(2).find_map(|w| {
        (w[0].starts_with('<') && w[0].ends_with(">:") && !w[1].is_empty())
            .then(|| w[1].chars().take(500).collect())
    })
}

/// Amazon SES notifications (JSON over SNS, the notification itself or
/// escaped inside SNS's envelope): type, recipients, status.
fn ses_notification(text: &str, b: &mut Bounce) {
    let compact: String = text
        .replace("\\\"", "\"")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let lower = compact.to_ascii_lowercase();
    let Some(at) = lower.find("\"notificationtype\":\"") else {
        return;
    };
    let kind = &lower[at + 20..];
    if b.action.is_none() {
        b.action = if kind.starts_with("delivery") {
            Some("delivered".into())
        } else if kind.starts_with("bounce") {
            Some("failed".into())
        } else {
            None
        };
    }
    for key in ["\"emailaddress\":\"", "\"recipients\":[\""] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(key) {
            rest = &rest[i + key.len()..];
            if let Some(end) = rest.find('"') {
                add_recipient(b, &rest[..end]);
            }
        }
    }
}

/// Phrases of warnings that the mail is still being retried.
const DELAY_PHRASES: &[&str] = &[
    "warning only",
    "still being retried",
    "will be retried",
    "will retry",
    "delivery has been delayed",
    "delivery delayed",
    "has not yet been delivered",
    "not yet been delivered",
    "delivery status notification (delay)",
    "delayed mail",
];

/// The action of a bounce without a report: a delay warning, else a failure.
fn text_action(notice: &str, subject: &str) -> Option<String> {
    let text = format!("{subject}\n{notice}").to_lowercase();
    if DELAY_PHRASES.iter().any(|p| text.contains(p)) {
        Some("delayed".into())
    } else {
        Some("failed".into())
    }
}

fn kind(b: &Bounce) -> Kind {
    match b.action.as_deref() {
        Some("delayed") => return Kind::Delayed,
        Some("delivered" | "relayed" | "expanded") => return Kind::Delivered,
        _ => {}
    }
    let status = b.status.as_deref().or_else(|| {
        // `550 ...` in the diagnostic when no status code was given.
        b.diagnostic.as_deref().and_then(|d| d.get(..1))
    });
    match status {
        Some(s) if s.starts_with('4') => Kind::Soft,
        Some(s) if s.starts_with('5') => {
            // X.2.2: mailbox full (RFC 3463 calls it persistent transient).
            if s.get(1..).is_some_and(|rest| rest.starts_with(".2.2")) {
                Kind::Soft
            } else {
                Kind::Hard
            }
        }
        _ if b.action.as_deref() == Some("failed") => Kind::Hard,
        _ => Kind::Unknown,
    }
}

/// The first `Message-ID` after a "copy of the message" line.
fn returned_copy_message_id(text: &str) -> Option<String> {
    let mut after = false;
    for line in text.lines() {
        if !after {
            after = is_copy_marker(line);
            continue;
        }
        if let Some((name, value)) = line.trim_start().split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            let id = normalize_message_id(value);
            if !id.is_empty() {
                return Some(id);
            }
        }
    }
    None
}

/// The last `Message-ID` line anywhere (a bounce that lost its structure).
fn last_message_id(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| {
            let (name, value) = l.trim_start().split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| normalize_message_id(value))
        })
        .find(|id| !id.is_empty())
}

fn clean_address(a: &str) -> String {
    let a = a.trim();
    let a = a.strip_prefix("rfc822;").unwrap_or(a);
    a.trim()
        .trim_matches(['<', '>', '"', '\'', ' ', ',', ';', '(', ')'])
        .to_ascii_lowercase()
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.len() < 20 && s.chars().all(|c| c.is_ascii_alphabetic())
}

/// `5.1.1`, `4.4.7`: class.subject.detail.
fn is_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
}

/// Continuation lines joined to their header line.
fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) && !out.is_empty() && !line.trim().is_empty() {
            out.push(' ');
            out.push_str(line.trim());
        } else {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &str = "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Message-ID: <bounce-1@mx.example.com>\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\n\
<gone@customer.test>: host mx.customer.test[1.2.3.4] said: 550 5.1.1\r\n    <gone@customer.test>: Recipient address rejected: User unknown\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.com\r\n\r\n\
Final-Recipient: rfc822; gone@customer.test\r\n\
Original-Recipient: rfc822;gone@customer.test\r\n\
Action: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.test>: Recipient address\r\n    rejected: User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: Support <support@example.com>\r\nMessage-ID: <reply-7@example.com>\r\nSubject: [SUP-7] Re: printer\r\n\r\n--B--\r\n";

    #[test]
    fn reads_an_rfc3464_report() {
        let b = parse(POSTFIX.as_bytes(), Some("bounce-1@mx.example.com"));
        assert_eq!(b.recipients, ["gone@customer.test"]);
        assert_eq!(b.action.as_deref(), Some("failed"));
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("550 5.1.1 <gone@customer.test>: Recipient address rejected: User unknown")
        );
        assert_eq!(
            b.original_message_id.as_deref(),
            Some("reply-7@example.com")
        );
    }

    #[test]
    fn reads_exim_and_x_failed_recipients() {
        let exim = "From: Mail Delivery System <Mailer-Daemon@mx.test>\r\n\
X-Failed-Recipients: nobody@customer.test\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\n\
This message was created automatically by mail delivery software.\r\n\r\n\
A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n\
  nobody@customer.test\r\n    SMTP error from remote mail server after RCPT TO:<nobody@customer.test>:\r\n    550 5.1.1 No such user\r\n\r\n\
------ This is a copy of the message, including all the headers. ------\r\n\
Message-ID: <ack-3@example.com>\r\nFrom: support@example.com\r\n";
        let b = parse(exim.as_bytes(), None);
        assert_eq!(b.recipients, ["nobody@customer.test"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(b.original_message_id.as_deref(), Some("ack-3@example.com"));
    }

    #[test]
    fn never_panics_on_noise() {
        for raw in [
            &b""[..],
            b"Status: 5.",
            b"<@>:",
            b"Final-Recipient: ;",
            b"\xff\xfe:\n\t\n",
        ] {
            let _ = parse(raw, None);
        }
    }

    fn dsn(action: &str, status: &str, returned: &str) -> String {
        format!(
            "From: MAILER-DAEMON@mx.test\r\nMessage-ID: <own@mx.test>\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nnotice\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n\
Final-Recipient: rfc822; a@b.test\r\nAction: {action}\r\nStatus: {status}\r\n\r\n\
--B\r\n{returned}\r\n--B--\r\n"
        )
    }

    #[test]
    fn kinds_tell_hard_soft_and_delayed_apart() {
        let headers =
            "Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <hd.1.ab@example.com>\r\n";
        for (action, status, kind) in [
            ("failed", "5.1.1", Kind::Hard),
            ("failed", "4.4.7", Kind::Soft),
            ("failed", "5.2.2", Kind::Soft),
            ("delayed", "4.4.1", Kind::Delayed),
            ("delivered", "2.0.0", Kind::Delivered),
        ] {
            let b = parse(dsn(action, status, headers).as_bytes(), Some("own@mx.test"));
            assert_eq!(b.kind, kind, "{action} {status}");
            assert_eq!(b.recipients, ["a@b.test"]);
            assert_eq!(
                b.original_message_id.as_deref(),
                Some("hd.1.ab@example.com")
            );
        }
    }

    #[test]
    fn the_returned_message_wins_over_ids_in_its_body() {
        let returned = "Content-Type: message/rfc822\r\n\r\nFrom: support@example.com\r\n\
Message-ID: <hd.2.cd@example.com>\r\nSubject: x\r\n\r\nA quoted header in the body:\r\nMessage-ID: <other@x.test>\r\n";
        let b = parse(
            dsn("failed", "5.1.1", returned).as_bytes(),
            Some("own@mx.test"),
        );
        assert_eq!(
            b.original_message_id.as_deref(),
            Some("hd.2.cd@example.com")
        );
        // No returned message: X-Original-Message-ID, then In-Reply-To.
        let raw = "From: mailer-daemon@mx.test\r\nIn-Reply-To: <hd.4.ff@example.com>\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nX-Original-Message-ID: <hd.3.ee@example.com>\r\n\r\n\
Final-Recipient: rfc822; a@b.test\r\nAction: failed\r\nStatus: 5.0.0\r\n--B--\r\n";
        let b = parse(raw.as_bytes(), None);
        assert_eq!(
            b.original_message_id.as_deref(),
            Some("hd.3.ee@example.com")
        );
        let b = parse(
            raw.replace("X-Original-Message-ID", "X-Other").as_bytes(),
            None,
        );
        assert_eq!(
            b.original_message_id.as_deref(),
            Some("hd.4.ff@example.com")
        );
    }

    #[test]
    fn reads_qmail_texts() {
        let qmail = "From: MAILER-DAEMON@old.test\r\nSubject: failure notice\r\n\r\n\
Hi. This is the qmail-send program at old.test.\r\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n\
<gone@old.test>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n\
--- Below this line is a copy of the message.\r\n\r\nFrom: support@example.com\r\n\
To: <kept@old.test>\r\nMessage-ID: <hd.5.aa@example.com>\r\n\r\nhello\r\n";
        let b = parse(qmail.as_bytes(), None);
        assert_eq!(b.recipients, ["gone@old.test"]);
        assert_eq!(b.status.as_deref(), Some("5.1.1"));
        assert_eq!(b.action.as_deref(), Some("failed"));
        assert_eq!(b.kind, Kind::Hard);
        assert_eq!(
            b.diagnostic.as_deref(),
            Some("Sorry, no mailbox here by that name. (#5.1.1)")
        );
        assert_eq!(
            b.original_message_id.as_deref(),
            Some("hd.5.aa@example.com")
        );
    }

    #[test]
    fn reads_ses_notifications_alone_and_in_an_sns_envelope() {
        let headers =
            "From: no-reply@sns.amazonaws.com\r\nSubject: AWS Notification Message\r\n\r\n";
        let alone = "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\
\"bouncedRecipients\":[{\"emailAddress\":\"gone@customer.test\",\"status\":\"5.1.1\"}]}}\r\n";
        let envelope = "{\r\n  \"Type\" : \"Notification\",\r\n  \"Message\" : \"{\\\"notificationType\\\":\\\"Bounce\\\",\
\\\"bounce\\\":{\\\"bouncedRecipients\\\":[{\\\"emailAddress\\\":\\\"gone@customer.test\\\"}]}}\"\r\n}\r\n";
        for body in [alone, envelope] {
            let b = parse(format!("{headers}{body}").as_bytes(), None);
            assert_eq!(b.recipients, ["gone@customer.test"], "{body}");
            assert_eq!(b.action.as_deref(), Some("failed"), "{body}");
        }
    }
}
