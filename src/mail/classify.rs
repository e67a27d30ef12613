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

/// Subjects of delivery failures, lower case. Unconditional at the start of
/// a subject; anywhere in it when a machine sent the mail.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail returned to sender",
    "undeliverable",
    "undelivered mail",
    "delivery status notification",
    "delivery failure",
    "delivery has failed",
    "delivery notification: delivery has failed",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery system",
    "failure notice",
    "failure delivery",
    "returned mail",
    "return mail",
    "mail could not be delivered",
    "message not delivered",
    "message delivery failure",
    "undelivered message",
    "non-delivery report",
    "nondeliverable",
    "delayed mail",
    "warning: could not send message",
    "email bounce notification",
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

/// Phrases of delivery-failure texts, lower case; looked for at the start
/// of the text (before any forwarded or quoted part) of mail that has no
/// other decisive signal.
const BOUNCE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "wasn't delivered to",
    "was not delivered to",
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
    "an error has occurred while attempting to deliver",
    "\"notificationtype\":\"bounce\"",
    "\"notificationtype\":\"complaint\"",
    "\"notificationtype\":\"delivery\"",
    "are not member",
    "not a member of this",
    "the following address(es) failed",
    "message could not be delivered",
    "this is the mailer-daemon",
    "this is the mail system at host",
    "this is the qmail-send program",
    "delivery status notification",
    "original mail as follows",
    "below is a copy of the original message",
    "this is a copy of the message",
    "returned mail",
];

/// Subjects of autoresponders, lower case: the part of a subject before
/// its first colon (after `[tag]`s) starts with one, or the whole subject
/// is one. A person's subject that merely mentions a holiday does not
/// count.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "out of office",
    "out of the office",
    "automatic reply",
    "automatic response",
    "auto reply",
    "auto-reply",
    "autoreply",
    "auto response",
    "auto-response",
    "autoresponse",
    "autorespons",
    "vacation",
    "on vacation",
    "away from the office",
    "abwesenheitsnotiz",
    "abwesenheit",
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
    "автоответ",
    "we received your",
    "we have received your",
    "thank you for contacting",
    "your request has been received",
    "ticket received",
];

/// Display names of delivery systems, lower case.
const MACHINE_NAMES: &[&str] = &[
    "mail delivery",
    "mailer-daemon",
    "mailer daemon",
    "mail system",
    "postmaster",
    "microsoft outlook",
    "microsoft exchange",
];

/// Headers only list managers write: what they send is a machine's.
const LIST_MANAGER_HEADERS: &[&str] = &[
    "X-MLServer",
    "X-ML-Name",
    "X-ML-Info",
    "Mailing-List",
    "List-Subscribe",
    "List-Help",
    "X-Mailman-Version",
    "X-List-Administrivia",
];

/// `[tag] text` → `text`, repeatedly.
fn strip_tags(s: &str) -> &str {
    let mut s = s.trim_start();
    while let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        s = rest[end + 1..].trim_start();
    }
    s
}

/// The autoresponder phrase a subject starts with (see
/// `AUTO_REPLY_SUBJECTS`).
fn auto_reply_subject(subject_lower: &str) -> Option<&'static str> {
    let s = subject_lower.replace('\u{a0}', " ");
    let s = strip_tags(&s);
    let (prefix, whole) = match s.split_once(':') {
        Some((p, _)) => (strip_tags(p).trim(), false),
        None => (s.trim(), true),
    };
    AUTO_REPLY_SUBJECTS.iter().copied().find(|p| {
        if whole {
            prefix == *p
        } else {
            prefix.starts_with(p)
                && prefix[p.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric())
        }
    })
}

/// What says a machine sent the mail, when anything does.
fn machine_marker(mail: &Inbound) -> Option<String> {
    let h = &mail.auto;
    if h.return_path_empty {
        return Some("empty Return-Path".into());
    }
    if let Some(v) = &h.auto_submitted
        && !v.trim().eq_ignore_ascii_case("no")
        && !v.trim().is_empty()
    {
        return Some(format!("Auto-Submitted: {}", v.trim()));
    }
    let from = mail.from.as_ref();
    let email = from.map(|m| m.email.as_str()).unwrap_or("");
    if email.is_empty() {
        return Some("no sender address".into());
    }
    let local = email.split('@').next().unwrap_or("").to_ascii_lowercase();
    let base = local.split('+').next().unwrap_or("");
    if ROBOT_LOCAL_PARTS.contains(&base) || local.contains("daemon") || local.contains("postmaster")
    {
        return Some(format!("sender {email}"));
    }
    if let Some(name) = from.and_then(|m| m.name.as_deref()) {
        let n = name.to_lowercase();
        if let Some(m) = MACHINE_NAMES.iter().find(|m| n.contains(*m)) {
            return Some(format!("sender name like \"{m}\""));
        }
    }
    if let Some(rp) = header(mail, "Return-Path").next() {
        let l = rp.trim_matches(['<', '>', ' ']).to_ascii_lowercase();
        let local = l.split('@').next().unwrap_or("");
        if local == "mailer-daemon" || local == "postmaster" {
            return Some(format!("Return-Path: {}", rp.trim()));
        }
    }
    if let Some(name) = LIST_MANAGER_HEADERS
        .iter()
        .find(|n| header(mail, n).next().is_some())
    {
        return Some(format!("list manager header {name}"));
    }
    None
}

fn header<'m>(mail: &'m Inbound, name: &str) -> impl Iterator<Item = &'m str> {
    let name = name.to_string();
    mail.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.trim())
}

/// Lines that start a forwarded or quoted mail inside a text.
fn starts_history(line_lower: &str) -> bool {
    let t = line_lower.trim();
    t.starts_with('>')
        || (t.starts_with("-----") || t.starts_with("---------- "))
            && (t.contains("forward") || t.contains("original message"))
        || t.starts_with("begin forwarded message")
        || t.starts_with("________________________________")
}

/// The start of what the sender wrote (at most 4000 characters, up to the
/// first forwarded or quoted part), lower case. A mail whose text could not
/// be found (broken structure) is read from its textual parts.
fn own_words(mail: &Inbound) -> String {
    let mut text: String = mail.text.chars().take(4000).collect();
    if text.trim().len() < 20 {
        for a in &mail.attachments {
            let ct = a.content_type.as_str();
            if ct.starts_with("text/") || ct.starts_with("multipart/") || ct.starts_with("message/")
            {
                let cut = &a.content[..a.content.len().min(4000)];
                text.push('\n');
                text.push_str(&String::from_utf8_lossy(cut));
            }
            if text.len() >= 4000 {
                break;
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for line in text.to_lowercase().lines() {
        if starts_history(line) {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// An SMTP reply or status code in a text: a line starting `550 `/`451-`,
/// a `5.1.1`-style code, or the words "smtp error".
fn has_smtp_error(text_lower: &str) -> bool {
    let is_status = |w: &str| {
        let p: Vec<&str> = w.split('.').collect();
        p.len() == 3
            && matches!(p[0], "4" | "5")
            && p[1..]
                .iter()
                .all(|x| !x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit()))
    };
    text_lower.contains("smtp error")
        || text_lower.lines().any(|l| {
            let t = l.trim().as_bytes();
            t.len() > 4
                && matches!(t[0], b'4' | b'5')
                && t[1].is_ascii_digit()
                && t[2].is_ascii_digit()
                && matches!(t[3], b' ' | b'-')
        })
        || text_lower
            .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '#' | '[' | ']'))
            .any(|w| is_status(w.trim_end_matches(['.', ',', ';', ':'])))
}

/// What `classify_with` knows beyond the mail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The department addresses of this installation.
    pub ours: &'a [&'a str],
    /// `[general] installation`: the value of our `X-Helpdesk-Loop`.
    pub installation: Option<&'a str>,
}

/// One class per mail, with the signal that decided it; see
/// `classify_with`. `ours` are the department addresses.
pub fn classify(mail: &Inbound, ours: &[&str]) -> (Class, Reason) {
    classify_with(
        mail,
        &Context {
            ours,
            installation: None,
        },
    )
}

/// One class per mail, with the signal that decided it. Signals in order:
///
/// 1. our own mail coming back (`X-Helpdesk-Loop` naming our installation,
///    `X-Loop` naming a department address, a department address as the
///    sender): `loop`;
/// 2. spam flags of a filter before us: `spam`;
/// 3. delivery reports: `multipart/report; report-type=delivery-status`, a
///    `message/delivery-status` part, `X-Failed-Recipients`, Exchange's
///    NDR header, `MAILER-DAEMON`/`postmaster` senders, bounce subjects
///    (at the start; anywhere from a machine), failure texts with a
///    machine marker or an SMTP error: `bounce`. Delay warnings and
///    success notices are reports too: `bounce::Bounce::kind` tells them
///    apart, and only a hard failure should count against an address;
/// 4. autoresponders: `Auto-Submitted` (other than `no`), `X-Autoreply`,
///    `Precedence: auto_reply`, read receipts, autoresponder subjects in
///    many languages: `auto_reply`;
/// 5. lists: `List-Id`, `List-Unsubscribe`, `Precedence: bulk|list|junk`;
/// 6. other machine markers (empty `Return-Path`, `noreply`
///    senders): `auto_reply`;
/// 7. everything else: `customer`.
pub fn classify_with(mail: &Inbound, ctx: &Context<'_>) -> (Class, Reason) {
    let ours = ctx.ours;
    let h = &mail.auto;
    let header = |name: &'static str| header(mail, name);
    let from = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
    let subject = mail.subject.to_lowercase();
    let local = from.split('@').next().unwrap_or("").to_ascii_lowercase();

    // 1. Loops.
    if let Some(installation) = ctx.installation.map(str::trim).filter(|i| !i.is_empty())
        && let Some(v) = header(super::compose::LOOP_HEADER)
            .find(|v| v.trim().eq_ignore_ascii_case(installation))
    {
        return (Class::Loop, format!("{}: {v}", super::compose::LOOP_HEADER));
    }
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

    // 2. Spam.
    if let Some(v) = header("X-Spam-Flag").find(|v| v.eq_ignore_ascii_case("yes")) {
        return (Class::Spam, format!("X-Spam-Flag: {v}"));
    }
    if header("X-Spam-Status").any(|v| v.to_ascii_lowercase().starts_with("yes")) {
        return (Class::Spam, "X-Spam-Status: Yes".into());
    }

    // 3. Delivery reports.
    let machine = machine_marker(mail);
    let content_type = header("Content-Type")
        .next()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let report = content_type.starts_with("multipart/report");
    if report && content_type.contains("delivery-status") {
        return (
            Class::Bounce,
            "multipart/report; report-type=delivery-status".into(),
        );
    }
    if report && content_type.contains("disposition-notification") {
        return (
            Class::AutoReply,
            "multipart/report; report-type=disposition-notification (read receipt)".into(),
        );
    }
    if report && content_type.contains("feedback-report") {
        return (
            Class::Bounce,
            "multipart/report; report-type=feedback-report".into(),
        );
    }
    if mail.attachments.iter().any(|a| {
        matches!(
            a.content_type.as_str(),
            "message/delivery-status" | "message/global-delivery-status"
        )
    }) {
        return (Class::Bounce, "a message/delivery-status part".into());
    }
    if let Some(v) = header("X-Failed-Recipients").next() {
        return (Class::Bounce, format!("X-Failed-Recipients: {v}"));
    }
    if header("X-MS-Exchange-Message-Is-Ndr").next().is_some() {
        return (Class::Bounce, "X-MS-Exchange-Message-Is-Ndr".into());
    }
    if matches!(local.as_str(), "mailer-daemon" | "postmaster") {
        return (Class::Bounce, format!("sender {from}"));
    }
    let starts_bounce = BOUNCE_SUBJECTS
        .iter()
        .find(|s| strip_tags(&subject).starts_with(*s));
    let bounce_subject = BOUNCE_SUBJECTS.iter().find(|s| subject.contains(*s));
    if report && let Some(m) = &machine {
        return (
            Class::Bounce,
            format!("multipart/report from a machine ({m})"),
        );
    }
    if report && let Some(s) = bounce_subject {
        return (
            Class::Bounce,
            format!("multipart/report and subject like \"{s}\""),
        );
    }
    if let Some(s) = bounce_subject
        && let Some(m) = &machine
    {
        return (
            Class::Bounce,
            format!("subject like \"{s}\" from a machine ({m})"),
        );
    }
    let words = own_words(mail);
    let phrase = BOUNCE_PHRASES.iter().find(|p| words.contains(*p));
    if let Some(p) = phrase
        && machine.is_some()
    {
        return (
            Class::Bounce,
            format!(
                "text like \"{p}\" from a machine ({})",
                machine.as_deref().unwrap_or("")
            ),
        );
    }

    // 4. Autoresponders.
    if let Some(v) = &h.auto_submitted {
        let v = v.trim();
        if !v.eq_ignore_ascii_case("no") && !v.is_empty() {
            return (Class::AutoReply, format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(v) = &h.x_autoreply {
        return (Class::AutoReply, v.clone());
    }
    for name in ["X-Autogenerated", "X-Mail-Autoreply", "X-Autoreply-From"] {
        if let Some(v) = header(name).next() {
            return (Class::AutoReply, format!("{name}: {v}"));
        }
    }
    if let Some(v) = &h.precedence
        && v.trim().eq_ignore_ascii_case("auto_reply")
    {
        return (Class::AutoReply, format!("Precedence: {}", v.trim()));
    }
    let auto_subject = auto_reply_subject(&subject);
    if let Some(v) = header("X-Auto-Response-Suppress").next()
        && let Some(s) = auto_subject
    {
        return (
            Class::AutoReply,
            format!("X-Auto-Response-Suppress: {v} and subject like \"{s}\""),
        );
    }
    if let Some(s) = auto_subject {
        return (Class::AutoReply, format!("subject like \"{s}\""));
    }

    // 5. Lists.
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

    // Bounces without a machine marker: a bounce subject at the start, or
    // a failure text with an SMTP error (a person forwarding a bounce
    // writes a `Fwd:` subject and their own words first).
    if let Some(s) = starts_bounce {
        return (Class::Bounce, format!("subject like \"{s}\""));
    }
    if let Some(p) = phrase
        && has_smtp_error(&words)
    {
        return (
            Class::Bounce,
            format!("text like \"{p}\" and an SMTP error"),
        );
    }

    // 6. Other machine markers. A mail without a sender is not one: it is
    // usually a broken client or a mangled mail, and must stay where staff
    // see it (it is flagged, and nobody can be answered anyway).
    match machine {
        Some(m) if m.starts_with("list manager") => (Class::List, m),
        Some(m) if m == "no sender address" => {
            (Class::Customer, "a person (no sender address)".into())
        }
        Some(m) => (Class::AutoReply, m),
        None => (Class::Customer, "a person".into()),
    }
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

    fn class_with(raw: &str, installation: Option<&str>) -> (Class, Reason) {
        classify_with(
            &parse(raw.as_bytes()),
            &Context {
                ours: &["support@example.com"],
                installation,
            },
        )
    }

    #[test]
    fn our_installation_header_is_a_loop_and_classify_delegates() {
        let raw = "From: robot@elsewhere.test\r\nSubject: Re: x\r\nX-Helpdesk-Loop: helpdesk@host-1\r\n\r\nx\r\n";
        assert_eq!(class_with(raw, Some("helpdesk@host-1")).0, Class::Loop);
        // Another installation's header is not our loop.
        assert_ne!(class_with(raw, Some("helpdesk@host-2")).0, Class::Loop);
        assert_eq!(
            classify(&parse(raw.as_bytes()), &["support@example.com"]),
            class_with(raw, None)
        );
    }

    #[test]
    fn people_who_mention_machines_stay_customers() {
        for (headers, body) in [
            // A holiday in the subject is not an autoresponder subject.
            (
                "From: oli@customer.test\r\nSubject: Vacation days are not shown in the portal",
                "Hi, the portal shows 0 days.",
            ),
            (
                "From: oli@customer.test\r\nSubject: Out of office replies do not work",
                "Since the update nobody gets my out of office reply.",
            ),
            // A person forwarding a bounce asks for help.
            (
                "From: ayse@customer.test\r\nSubject: Fwd: Undelivered Mail Returned to Sender",
                "Why does this happen?\r\n\r\n---------- Forwarded message ---------\r\n\
From: MAILER-DAEMON@mx.test\r\n\r\nThis is the mail system at host mx.test.\r\n\
<x@y.test>: host mx.y.test said: 550 5.1.1 User unknown\r\n",
            ),
            (
                "From: ayse@customer.test\r\nSubject: Re: bounce",
                "I get \"user unknown\" when I write to sales, can you check?",
            ),
        ] {
            assert_eq!(class_of(headers, body), Class::Customer, "{headers}");
        }
    }

    #[test]
    fn reports_and_notices_from_machines() {
        for (headers, body, want) in [
            // A report without report-type, from a delivery system.
            (
                "From: Mail Delivery System <mds@mx.test>\r\nReturn-Path: <MAILER-DAEMON@mx.test>\r\n\
Subject: Delivery status notification\r\nContent-Type: multipart/report; boundary=b",
                "--b\r\nContent-Type: text/plain\r\n\r\nDelivery to the following recipients failed permanently:\r\n  * a@b.test\r\n--b--",
                Class::Bounce,
            ),
            // A DSN wrapped in multipart/mixed: the delivery-status part says it.
            (
                "From: relay@mx.test\r\nSubject: notice\r\nContent-Type: multipart/mixed; boundary=b",
                "--b\r\nContent-Type: text/plain\r\n\r\nsee report\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Final-Recipient: rfc822; a@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--",
                Class::Bounce,
            ),
            // A delay warning is a report too (its kind tells it apart).
            (
                "From: MAILER-DAEMON@mx.test\r\nSubject: Delayed Mail (still being retried)",
                "This is the mail system at host mx.test.\r\n# THIS IS A WARNING ONLY. #",
                Class::Bounce,
            ),
            // A list manager refusing a non-member.
            (
                "From: list-admin@lists.test\r\nSubject: You are not a member\r\nX-MLServer: fml 4.0",
                "You are not a member of this mailing list <l@lists.test>.",
                Class::Bounce,
            ),
            // A delivery service's JSON notification.
            (
                "From: no-reply@notifications.test\r\nSubject: Notification",
                "{\"notificationType\":\"Complaint\",\"complaint\":{}}",
                Class::Bounce,
            ),
            // Exchange's NDR header.
            (
                "From: Microsoft Outlook <MicrosoftExchange00ff@x.test>\r\nSubject: Undeliverable: hi\r\nX-MS-Exchange-Message-Is-Ndr:",
                "x",
                Class::Bounce,
            ),
            // A read receipt.
            (
                "From: ali@customer.test\r\nSubject: Read: x\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b",
                "--b--",
                Class::AutoReply,
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nPrecedence: auto_reply",
                "away",
                Class::AutoReply,
            ),
            (
                "From: a@x.test\r\nSubject: =?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_x?=",
                "absent",
                Class::AutoReply,
            ),
            (
                "From: helpdesk@vendor.test\r\nSubject: [#12345] We received your request: x",
                "thanks",
                Class::AutoReply,
            ),
        ] {
            assert_eq!(class_of(headers, body), want, "{headers} / {body}");
        }
    }

    #[test]
    fn a_bounce_whose_text_sits_in_an_unreadable_part_is_found() {
        // The inner boundary lost its folding: the text ends up in an
        // "attachment", not in `text`.
        let raw = "From: post_office@mx.test\r\nSubject: Re: Test\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\n\
Content-Type: multipart/alternative;\r\nboundary=\"i\"\r\n\r\n--i\r\n\
Content-Type: text/plain\r\n\r\nError: Invalid user address\r\n\r\n550 - Requested action not taken: no such user here\r\n\
--i--\r\n--o--\r\n";
        assert_eq!(classify(&parse(raw.as_bytes()), &[]).0, Class::Bounce);
    }
}
