//! Is this mail from a person, or from a machine? Automatic mail
//! (out-of-office replies, bounces, lists, our own mail coming back) is
//! stored on its ticket but never acknowledged and never changes a ticket's
//! status: that is what keeps two autoresponders from talking forever
//! (RFC 3834 §2, §5).
//!
//! This is the minimum set of signals; the full classification
//! (bounces parsed, auto-reply subjects in many languages) deepens it.

use super::parse::Inbound;

/// Why a mail counts as automatic, for the ticket history and the logs.
pub type Reason = String;

/// Addresses that never belong to a person.
const ROBOT_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "postmaster",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "do_not_reply",
    "bounce",
    "bounces",
];

/// `Some(reason)` when the mail was sent by a machine, `None` for a person.
///
/// `ours` are the department addresses of this installation; our own
/// automatic mail carries one of them in `X-Loop`.
pub fn automatic(mail: &Inbound, ours: &[&str]) -> Option<Reason> {
    let h = &mail.auto;
    if let Some(v) = &h.auto_submitted {
        let v = v.trim();
        if !v.eq_ignore_ascii_case("no") && !v.is_empty() {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = &h.precedence {
        let p = v.trim().to_ascii_lowercase();
        if ["bulk", "junk", "list", "auto_reply"].contains(&p.as_str()) {
            return Some(format!("Precedence: {}", v.trim()));
        }
    }
    if let Some(id) = &h.list_id {
        return Some(format!("List-Id: {}", id.trim()));
    }
    if h.return_path_empty {
        return Some("empty Return-Path".into());
    }
    if let Some(v) = h
        .x_loop
        .iter()
        .find(|v| ours.iter().any(|o| same_mailbox(o, v.trim())))
    {
        return Some(format!("X-Loop: {}", v.trim()));
    }
    if let Some(v) = &h.x_autoreply {
        return Some(v.clone());
    }
    let from = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
    if from.is_empty() {
        return Some("no sender address".into());
    }
    let local = from.split('@').next().unwrap_or("").to_ascii_lowercase();
    let base = local.split('+').next().unwrap_or("");
    if ROBOT_LOCAL_PARTS.contains(&base) {
        return Some(format!("sender {from}"));
    }
    if ours.iter().any(|o| same_mailbox(o, from)) {
        return Some(format!("sender is our own address {from}"));
    }
    None
}

/// The kinds of inbound mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A person.
    Customer,
    /// Out-of-office, vacation, "we received your mail" from another
    /// helpdesk.
    AutoReply,
    /// A delivery status notification or a non-standard bounce.
    Bounce,
    /// Mailing-list or bulk mail.
    List,
    /// Our own mail coming back.
    Loop,
    /// Marked as spam by a filter before us.
    Spam,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Customer,
        Class::AutoReply,
        Class::Bounce,
        Class::List,
        Class::Loop,
        Class::Spam,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Customer => "customer",
            Class::AutoReply => "auto_reply",
            Class::Bounce => "bounce",
            Class::List => "list",
            Class::Loop => "loop",
            Class::Spam => "spam",
        }
    }
}

/// Subjects of delivery failures, lower case, as prefixes or parts.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail returned to sender",
    "undeliverable",
    "delivery status notification (failure)",
    "delivery status notification (delay)",
    "delivery failure",
    "delivery has failed",
    "mail delivery failed",
    "mail delivery failure",
    "failure notice",
    "returned mail",
    "mail could not be delivered",
    "message not delivered",
    "undelivered message",
    "delivery notification: delivery has failed",
    "nicht zustellbar",
    "unzustellbar",
    "non remis",
    "non distribuable",
    "no se puede entregar",
    "iletilemedi",
    "teslim edilemedi",
    "nedoručitelné",
    "nelze doručit",
];

/// Phrases of delivery-failure texts, lower case; looked for in the first
/// part of the text of mail that has no other decisive signal.
const BOUNCE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "delivery to the following recipient",
    "delivery has failed",
    "permanent error",
    "permanently failed",
    "failed permanently",
    "undeliverable",
    "user unknown",
    "invalid user address",
    "mailbox unavailable",
    "recipient address rejected",
    "no such user",
    "there was an error sending your mail",
    "\"notificationtype\":\"bounce\"",
    "are not member",
    "the following address(es) failed",
    "message could not be delivered",
];

/// Subjects of autoresponders, lower case, as prefixes or parts.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto response",
    "autoresponse",
    "vacation",
    "away from the office",
    "abwesenheitsnotiz",
    "automatische antwort",
    "otomatik yanıt",
    "otomatik cevap",
    "ofis dışında",
    "automatická odpověď",
    "mimo kancelář",
    "réponse automatique",
    "absence du bureau",
    "respuesta automática",
    "fuera de la oficina",
    "risposta automatica",
    "fuori sede",
    "automatisch antwoord",
    "afwezig",
    "odpowiedź automatyczna",
    "resposta automática",
    "автоматический ответ",
    "we received your",
    "we have received your",
    "thank you for contacting",
    "your request has been received",
    "ticket received",
];

/// One class per mail, with the signal that decided it. Signals in order:
/// our own loop markers, spam flags, delivery reports and bounce senders
/// and subjects, autoresponder headers and subjects, list headers, other
/// RFC 3834 machine markers. `ours` are the department addresses.
pub fn classify(mail: &Inbound, ours: &[&str]) -> (Class, Reason) {
    let h = &mail.auto;
    fn header<'m>(mail: &'m Inbound, name: &'static str) -> impl Iterator<Item = &'m str> {
        mail.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
    let header = |name: &'static str| header(mail, name);
    let from = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
    let subject = mail.subject.to_lowercase();
    let local = from.split('@').next().unwrap_or("").to_ascii_lowercase();

    if let Some(v) = h
        .x_loop
        .iter()
        .find(|v| ours.iter().any(|o| same_mailbox(o, v.trim())))
    {
        return (Class::Loop, format!("X-Loop: {}", v.trim()));
    }
    if !from.is_empty() && ours.iter().any(|o| same_mailbox(o, from)) {
        return (Class::Loop, format!("sender is our own address {from}"));
    }
    if let Some(v) = header("X-Spam-Flag").find(|v| v.eq_ignore_ascii_case("yes")) {
        return (Class::Spam, format!("X-Spam-Flag: {v}"));
    }
    if header("X-Spam-Status").any(|v| v.to_ascii_lowercase().starts_with("yes")) {
        return (Class::Spam, "X-Spam-Status: Yes".into());
    }
    if let Some(ct) = header("Content-Type").next() {
        let l = ct.to_ascii_lowercase();
        if l.starts_with("multipart/report") && l.contains("delivery-status") {
            return (
                Class::Bounce,
                "multipart/report; report-type=delivery-status".into(),
            );
        }
    }
    if let Some(v) = header("X-Failed-Recipients").next() {
        return (Class::Bounce, format!("X-Failed-Recipients: {v}"));
    }
    let bounce_subject = BOUNCE_SUBJECTS.iter().find(|s| subject.contains(*s));
    if matches!(local.as_str(), "mailer-daemon" | "postmaster") {
        return (Class::Bounce, format!("sender {from}"));
    }
    if let Some(s) = bounce_subject
        && (h.return_path_empty
            || h.auto_submitted.is_some()
            || local.contains("daemon")
            || local.contains("postmaster"))
    {
        return (
            Class::Bounce,
            format!("subject like \"{s}\" from a machine"),
        );
    }
    if let Some(v) = &h.auto_submitted {
        let v = v.trim();
        if !v.eq_ignore_ascii_case("no") && !v.is_empty() {
            if bounce_subject.is_some() {
                return (
                    Class::Bounce,
                    format!("Auto-Submitted: {v} and a bounce subject"),
                );
            }
            let start = mail
                .text
                .chars()
                .take(4000)
                .collect::<String>()
                .to_lowercase();
            if let Some(p) = BOUNCE_PHRASES.iter().find(|p| start.contains(*p)) {
                return (
                    Class::Bounce,
                    format!("Auto-Submitted: {v} and text like \"{p}\""),
                );
            }
            return (Class::AutoReply, format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = &h.x_autoreply {
        return (Class::AutoReply, v.clone());
    }
    if let Some(v) = header("X-Auto-Response-Suppress").next()
        && AUTO_REPLY_SUBJECTS.iter().any(|s| subject.contains(s))
    {
        return (
            Class::AutoReply,
            format!("X-Auto-Response-Suppress: {v} and an autoresponder subject"),
        );
    }
    if let Some(v) = &h.precedence {
        let p = v.trim().to_ascii_lowercase();
        if p == "auto_reply" {
            return (Class::AutoReply, format!("Precedence: {}", v.trim()));
        }
    }
    if let Some(s) = AUTO_REPLY_SUBJECTS.iter().find(|s| {
        subject.starts_with(*s)
            || subject.contains(&format!(": {s}"))
            || subject.contains(&format!("[{s}"))
    }) {
        return (Class::AutoReply, format!("subject like \"{s}\""));
    }
    if let Some(id) = &h.list_id {
        return (Class::List, format!("List-Id: {}", id.trim()));
    }
    if let Some(v) = header("List-Unsubscribe").next() {
        return (
            Class::List,
            format!(
                "List-Unsubscribe: {}",
                v.chars().take(80).collect::<String>()
            ),
        );
    }
    if let Some(v) = &h.precedence {
        let p = v.trim().to_ascii_lowercase();
        if ["bulk", "junk", "list"].contains(&p.as_str()) {
            return (Class::List, format!("Precedence: {}", v.trim()));
        }
    }
    if let Some(s) = bounce_subject {
        return (Class::Bounce, format!("subject like \"{s}\""));
    }
    let start: String = mail
        .text
        .chars()
        .take(4000)
        .collect::<String>()
        .to_lowercase();
    if let Some(p) = BOUNCE_PHRASES.iter().find(|p| start.contains(*p)) {
        // A person may write these words too: only with a machine marker
        // or when the text also carries an SMTP error.
        let machine = h.return_path_empty
            || h.auto_submitted.is_some()
            || from.is_empty()
            || ROBOT_LOCAL_PARTS.contains(&local.split('+').next().unwrap_or(""));
        let smtp_error =
            start.contains("550") || start.contains("5.1.1") || start.contains("error");
        if machine || smtp_error {
            return (Class::Bounce, format!("text like \"{p}\""));
        }
    }
    if h.return_path_empty {
        return (Class::AutoReply, "empty Return-Path".into());
    }
    if from.is_empty() {
        return (Class::AutoReply, "no sender address".into());
    }
    let base = local.split('+').next().unwrap_or("");
    if ROBOT_LOCAL_PARTS.contains(&base) {
        return (Class::AutoReply, format!("sender {from}"));
    }
    (Class::Customer, "a person".into())
}

/// `a@x` and `A+tag@X` are the same mailbox.
pub fn same_mailbox(a: &str, b: &str) -> bool {
    fn split(s: &str) -> (String, String) {
        let (l, d) = s.rsplit_once('@').unwrap_or((s, ""));
        (
            l.split('+').next().unwrap_or("").to_ascii_lowercase(),
            d.to_ascii_lowercase(),
        )
    }
    split(a) == split(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::parse::parse;

    fn mail(headers: &str) -> Inbound {
        parse(format!("{headers}\r\nSubject: x\r\n\r\nbody\r\n").as_bytes())
    }

    fn class_of(headers: &str, body: &str) -> Class {
        let raw = format!("{headers}\r\nMessage-ID: <c@x>\r\n\r\n{body}\r\n");
        classify(&parse(raw.as_bytes()), &["support@example.com"]).0
    }

    #[test]
    fn every_class_has_its_signals() {
        let person = "From: ali@customer.test\r\nSubject: Yazıcı çalışmıyor";
        for (headers, body, want) in [
            (person, "Merhaba", Class::Customer),
            (
                "From: a@x.test\r\nSubject: Otomatik yanıt: Yazıcı",
                "Ofis dışındayım",
                Class::AutoReply,
            ),
            (
                "From: a@x.test\r\nSubject: Automatická odpověď: tiskárna",
                "Nejsem v kanceláři",
                Class::AutoReply,
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nAuto-Submitted: auto-replied",
                "away",
                Class::AutoReply,
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nX-Autoreply: yes",
                "away",
                Class::AutoReply,
            ),
            (
                "From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered Mail Returned to Sender",
                "x",
                Class::Bounce,
            ),
            (
                "From: a@mx.test\r\nSubject: x\r\nX-Failed-Recipients: b@y.test",
                "x",
                Class::Bounce,
            ),
            (
                "From: a@mx.test\r\nSubject: x\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b",
                "--b--",
                Class::Bounce,
            ),
            (
                "From: news@shop.test\r\nSubject: Sale\r\nList-Unsubscribe: <mailto:u@shop.test>",
                "x",
                Class::List,
            ),
            (
                "From: l@lists.test\r\nSubject: x\r\nList-Id: <dev.lists.test>",
                "x",
                Class::List,
            ),
            (
                "From: a@x.test\r\nSubject: x\r\nPrecedence: bulk",
                "x",
                Class::List,
            ),
            (
                "From: a@x.test\r\nSubject: x\r\nX-Loop: support@example.com",
                "x",
                Class::Loop,
            ),
            ("From: support@example.com\r\nSubject: x", "x", Class::Loop),
            (
                "From: a@x.test\r\nSubject: x\r\nX-Spam-Flag: YES",
                "x",
                Class::Spam,
            ),
            // A person writing about a failed delivery is still a person.
            (
                person,
                "My mail to you could not be delivered, so I write again.",
                Class::Customer,
            ),
        ] {
            assert_eq!(class_of(headers, body), want, "{headers} / {body}");
        }
    }

    fn reason(headers: &str) -> Option<Reason> {
        automatic(&mail(headers), &["support@example.com"])
    }

    #[test]
    fn a_person_is_not_automatic() {
        assert_eq!(
            reason("From: Ali <ali@example.org>\r\nAuto-Submitted: no"),
            None
        );
        assert_eq!(
            reason("From: ali@example.org\r\nPrecedence: first-class"),
            None
        );
    }

    #[test]
    fn every_minimum_signal_is_automatic() {
        let cases = [
            "From: a@x.org\r\nAuto-Submitted: auto-replied",
            "From: a@x.org\r\nAuto-Submitted: auto-generated; owner-email=a@x.org",
            "From: a@x.org\r\nPrecedence: bulk",
            "From: a@x.org\r\nPrecedence: JUNK",
            "From: a@x.org\r\nPrecedence: list",
            "From: a@x.org\r\nList-Id: <announce.x.org>",
            "From: a@x.org\r\nReturn-Path: <>",
            "From: MAILER-DAEMON@x.org",
            "From: postmaster@x.org",
            "From: No-Reply@x.org",
            "From: noreply+bills@x.org",
            "From: Support+sup-1.aa@Example.com",
            "From: a@x.org\r\nX-Loop: support@example.com",
            "From: a@x.org\r\nX-Autoreply: yes",
            "Subject: no from at all",
        ];
        for headers in cases {
            assert!(reason(headers).is_some(), "{headers:?} should be automatic");
        }
    }
}
