//! Delivery failures: RFC 3464 delivery status notifications and the
//! common non-standard formats (Postfix, Exim, qmail, Exchange texts,
//! `X-Failed-Recipients`). Pure: reads the raw bytes of a mail that
//! `classify` already called a bounce.

use serde::Serialize;

/// What a bounce says about the failed delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bounce {
    /// The addresses that could not be reached, lower case.
    pub recipients: Vec<String>,
    /// RFC 3464 `Action` (failed, delayed, ...), when given.
    pub action: Option<String>,
    /// The status code (5.1.1), from `Status` or the text.
    pub status: Option<String>,
    /// The remote server's words, when given.
    pub diagnostic: Option<String>,
    /// The `Message-ID` of the mail that bounced, from the returned
    /// headers, without angle brackets.
    pub original_message_id: Option<String>,
}

/// Reads a bounce; `own_message_id` is the bounce's own id (never the
/// original).
pub fn parse(raw: &[u8], own_message_id: Option<&str>) -> Bounce {
    let cut = &raw[..raw.len().min(1 << 20)];
    let text = String::from_utf8_lossy(cut);
    let text = unfold(&text);
    let mut b = Bounce::default();
    let add = |b: &mut Bounce, a: &str| {
        let a = clean_address(a);
        if a.contains('@') && !b.recipients.contains(&a) {
            b.recipients.push(a);
        }
    };
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "final-recipient" => {
                // `rfc822; user@example.com`
                let addr = value.rsplit(';').next().unwrap_or(value);
                add(&mut b, addr);
            }
            "x-failed-recipients" => {
                for a in value.split(',') {
                    add(&mut b, a);
                }
            }
            "action" if b.action.is_none() && is_word(value) => {
                b.action = Some(value.to_ascii_lowercase());
            }
            "status"
                if b.status.is_none()
                    && is_status(value.split_whitespace().next().unwrap_or("")) =>
            {
                b.status = value.split_whitespace().next().map(str::to_string);
            }
            "diagnostic-code" if b.diagnostic.is_none() => {
                let d = value.split_once(';').map_or(value, |(_, d)| d).trim();
                if !d.is_empty() {
                    b.diagnostic = Some(d.chars().take(500).collect());
                }
            }
            _ => {}
        }
    }
    if b.recipients.is_empty() {
        text_recipients(&text, &mut b);
    }
    if b.status.is_none() {
        b.status = text
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .find(|w| is_status(w.trim_end_matches(['.', ',', ';'])))
            .map(|w| w.trim_end_matches(['.', ',', ';']).to_string());
    }
    if b.diagnostic.is_none() {
        b.diagnostic = text
            .lines()
            .map(str::trim)
            .find(|l| {
                l.len() > 8
                    && (l.starts_with("5") || l.starts_with("4"))
                    && l.as_bytes()
                        .get(3)
                        .is_some_and(|c| *c == b' ' || *c == b'-')
                    && l[..3].chars().all(|c| c.is_ascii_digit())
            })
            .map(|l| l.chars().take(500).collect());
    }
    b.original_message_id = original_message_id(&text, own_message_id);
    b
}

/// Addresses in the human-readable part: `<user@host>:` (Postfix, qmail),
/// lines that are just an address (Exim), `user@host: host ... said`.
fn text_recipients(text: &str, b: &mut Bounce) {
    for line in text.lines().take(400) {
        let t = line.trim();
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
            let a = clean_address(a);
            if a.contains('@') && a.split('@').all(|p| !p.is_empty()) && !b.recipients.contains(&a)
            {
                b.recipients.push(a);
            }
        }
        if b.recipients.len() >= 50 {
            break;
        }
    }
}

/// The last `Message-ID` in the returned headers that is not the bounce's
/// own.
fn original_message_id(text: &str, own: Option<&str>) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| value.trim().trim_matches(['<', '>']).trim().to_string())
        })
        .find(|id| !id.is_empty() && Some(id.as_str()) != own)
}

fn clean_address(a: &str) -> String {
    a.trim()
        .trim_matches(['<', '>', '"', '\'', ' ', ',', ';'])
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
}
