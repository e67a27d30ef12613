//! Is this mail from a person, or from a machine? Automatic mail
//! (out-of-office replies, bounces, lists, our own mail coming back) is
//! stored on its ticket but never acknowledged and never changes a ticket's
//! status: that is what keeps two autoresponders from talking forever
//! (RFC 3834 §2, §5).
//!
//! `classify_with` gives every mail one class with the signal that
//! decided it; docs/mail.md lists the signals.

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

/// Subjects of delivery failures, lower case; they count only on mail with
/// a machine marker (see `bounce_subject`).
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
    "mail failure -",
    "mail failed, returning",
    "failed delivery",
    "mail system error",
    "mail delivery status",
    "warning--could not send",
];

/// Phrases of delivery-failure texts, lower case; looked for at the start
/// of the text (before any forwarded or quoted part) of mail with a machine
/// marker and no other decisive signal.
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
    "created automatically by mail delivery software",
    "did not reach the following recipient",
    "unable to deliver message to the following",
    "the following addresses had",
    "following recipients was rejected",
    "no valid recipients were found",
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
    "List-Post",
    "List-Archive",
    "List-Owner",
    "X-Google-Group-Id",
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

/// `MAILER-DAEMON`, `Mailer_Daemon`, `postmaster`, `post_master`: the
/// local part of a delivery system's own address.
fn is_delivery_system_local(local: &str) -> bool {
    let squeezed: String = local
        .split('+')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    squeezed.contains("daemon") || squeezed.contains("postmaster")
}

/// The delivery-system display name a sender's name starts with (see
/// `MACHINE_NAMES`): "Mail Delivery System", "MAILER-DAEMON", "Microsoft
/// Outlook". A company merely called "… Mail Systems" does not count.
fn delivery_system_name(name: &str) -> Option<&'static str> {
    let n = name.trim().trim_matches(['"', '\'', ' ']).to_lowercase();
    MACHINE_NAMES.iter().copied().find(|m| n.starts_with(m))
}

/// The `Return-Path` of a delivery system (`<MAILER-DAEMON@host>`,
/// `<postmaster@host>`).
fn delivery_system_return_path(mail: &Inbound) -> Option<&str> {
    header(mail, "Return-Path").find(|rp| {
        let a = rp.trim_matches(['<', '>', ' ']);
        !a.is_empty() && is_delivery_system_local(a.split('@').next().unwrap_or(""))
    })
}

/// What says a delivery system wrote the mail, the machine marker a bounce
/// subject or bounce text needs when there is no report structure:
/// a `MAILER-DAEMON`/`postmaster` sender or `Return-Path`, an empty
/// `Return-Path`, `Auto-Submitted` (other than `no`), a delivery-system
/// display name.
///
/// Not a marker: `noreply` senders (shops and carriers write "could not be
/// delivered" about parcels), list-manager headers (a list relays its
/// members' own words: `List-Help`, `List-Subscribe`, `Mailing-List`,
/// Google Groups' headers), a missing sender.
fn bounce_marker(mail: &Inbound) -> Option<Marker> {
    let h = &mail.auto;
    // A From the parser could not read as an address (`MAILER-DAEMON <>`,
    // `Mail Delivery Subsystem <MAILER-DAEMON>`) still names its sender.
    let (name, email) = match &mail.from {
        Some(m) => (m.name.clone(), m.email.clone()),
        None => raw_from(mail),
    };
    let marker = |reason: String, delivery_system: bool| {
        Some(Marker {
            reason,
            delivery_system,
        })
    };
    if !email.is_empty() && is_delivery_system_local(email.split('@').next().unwrap_or("")) {
        return marker(format!("sender {email}"), true);
    }
    if let Some(rp) = delivery_system_return_path(mail) {
        return marker(format!("Return-Path: {rp}"), true);
    }
    if h.return_path_empty {
        return marker("empty Return-Path".into(), false);
    }
    if let Some(v) = &h.auto_submitted
        && !v.trim().eq_ignore_ascii_case("no")
        && !v.trim().is_empty()
    {
        return marker(format!("Auto-Submitted: {}", v.trim()), false);
    }
    if let Some(m) = name.as_deref().and_then(delivery_system_name) {
        return marker(format!("sender name like \"{m}\""), false);
    }
    None
}

/// A machine marker of `bounce_marker`.
struct Marker {
    /// For the reason: `sender MAILER-DAEMON@…`, `empty Return-Path`, ...
    reason: String,
    /// The sender or `Return-Path` is a delivery system's own address
    /// (`MAILER-DAEMON`, `postmaster`): a bare status code in its text
    /// tells a failure. Autoresponders also send with an empty
    /// `Return-Path` and `Auto-Submitted`, and their texts may hold a
    /// "5.1.1" that is a section of a manual (an SMTP reply, `550 5.1.1`,
    /// still counts for them).
    delivery_system: bool,
}

/// The display name and address of a raw `From` header: `Name <addr>`,
/// `addr (Name)`, `addr`.
fn raw_from(mail: &Inbound) -> (Option<String>, String) {
    let Some(v) = header(mail, "From").next() else {
        return (None, String::new());
    };
    let v = v.trim();
    if let Some((name, rest)) = v.split_once('<') {
        let addr = rest.split('>').next().unwrap_or("").trim();
        let name = name.trim().trim_matches('"').trim();
        return (
            (!name.is_empty()).then(|| name.to_string()),
            addr.to_string(),
        );
    }
    if let Some((addr, rest)) = v.split_once('(') {
        let name = rest.split(')').next().unwrap_or("").trim();
        return (
            (!name.is_empty()).then(|| name.to_string()),
            addr.trim().to_string(),
        );
    }
    (None, v.to_string())
}

/// A `noreply`, `bounce`, `MAILER-DAEMON`-like sender address
/// (`ROBOT_LOCAL_PARTS`).
fn robot_sender(email: &str) -> bool {
    let local = email.split('@').next().unwrap_or("").to_ascii_lowercase();
    let base = local.split('+').next().unwrap_or("");
    !email.is_empty() && (ROBOT_LOCAL_PARTS.contains(&base) || is_delivery_system_local(&local))
}

/// A line of `text_lower` with `phrase` and then an address in angle
/// brackets: "could not be delivered to: <a@b.test>".
fn names_failed_address(text_lower: &str, phrase: &str) -> bool {
    text_lower.lines().any(|l| {
        l.find(phrase).is_some_and(|at| {
            let rest = &l[at + phrase.len()..];
            rest.split_once('<')
                .and_then(|(_, a)| a.split_once('>'))
                .is_some_and(|(address, _)| {
                    !address.contains(' ')
                        && address.split_once('@').is_some_and(|(local, domain)| {
                            !local.is_empty() && domain.contains('.')
                        })
                })
        })
    })
}

/// What says a machine sent the mail, when anything does: the last resort
/// of `classify_with`, after bounces, autoresponders and lists. The reasons
/// of weak evidence start with `sender ` (see `is_strong_auto_reply`).
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
    if robot_sender(email) {
        return Some(format!("sender {email}"));
    }
    if let Some(m) = from
        .and_then(|m| m.name.as_deref())
        .and_then(delivery_system_name)
    {
        return Some(format!("sender name like \"{m}\""));
    }
    if let Some(rp) = delivery_system_return_path(mail) {
        return Some(format!("sender {rp} (Return-Path)"));
    }
    if let Some(name) = LIST_MANAGER_HEADERS
        .iter()
        .find(|n| header(mail, n).next().is_some())
    {
        return Some(format!("list manager header {name}"));
    }
    None
}

/// A Message-ID this installation wrote: `hd.<seconds>.<hex>` on the
/// domain of a department address (`compose::new_message_id`), without
/// angle brackets.
fn is_our_message_id(id: &str, ours: &[&str]) -> bool {
    let id = id.trim().trim_matches(['<', '>']);
    let Some((local, domain)) = id.rsplit_once('@') else {
        return false;
    };
    let mut parts = local.split('.');
    let well_formed = parts.next() == Some("hd")
        && parts
            .next()
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_hexdigit()))
        && parts.next().is_none();
    well_formed
        && ours.iter().any(|o| {
            o.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
        })
}

/// An Amazon SES notification (JSON, alone or inside an SNS envelope that
/// escapes it): `Some("Bounce")`, `Complaint`, `Delivery`. Only a text that
/// is JSON, or comes with SNS's `x-amz-sns-message-id` header, counts: a
/// person quoting one in a sentence does not.
fn ses_notification(mail: &Inbound, words: &str) -> Option<&'static str> {
    let json = words.trim_start().starts_with('{');
    if !json && header(mail, "x-amz-sns-message-id").next().is_none() {
        return None;
    }
    let compact: String = words
        .replace("\\\"", "\"")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let at = compact.find("\"notificationtype\":\"")?;
    let kind = &compact[at + 20..];
    [
        ("bounce\"", "Bounce"),
        ("complaint\"", "Complaint"),
        ("delivery\"", "Delivery"),
    ]
    .into_iter()
    .find_map(|(p, k)| kind.starts_with(p).then_some(k))
}

/// Whether the reason `classify_with` gave for an `auto_reply` is strong
/// evidence, a header only autoresponders write, rather than a guess.
///
/// Strong reasons start with the header that decided: `Auto-Submitted:`
/// (other than `no`), `X-Autoreply`/`X-Autorespond`, `Precedence:
/// auto_reply`, `empty Return-Path`, or `X-Auto-Response-Suppress` together
/// with an autoresponder subject (`… and subject like "…"`). Weak reasons
/// (the subject alone, a `noreply`-like sender, a delivery-system display
/// name) start with `subject like`, `sender ` or `sender name like`;
/// anything else (a read receipt, `X-Autogenerated`, `X-Mail-Autoreply`) is
/// not strong either. The pipeline uses this for automatic mail that
/// threads to no ticket: a weak guess must not hide a person's mail.
pub fn is_strong_auto_reply(reason: &str) -> bool {
    let r = reason.trim_start();
    let starts = |p: &str| {
        r.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    };
    if starts("Auto-Submitted:") {
        let v = r["Auto-Submitted:".len()..].trim();
        return !v.is_empty() && !v.eq_ignore_ascii_case("no");
    }
    starts("X-Autoreply")
        || starts("X-Autorespond")
        || starts("Precedence: auto_reply")
        || starts("empty Return-Path")
        || (starts("X-Auto-Response-Suppress") && r.contains(" and subject like "))
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

/// An enhanced status code of a failure (RFC 3463) in a text: `5.1.1`,
/// `4.4.7`, qmail's `(#5.1.1)`, alone or after an SMTP reply code
/// (`550 5.1.1`, `550-5.1.1`). A line that merely starts with three digits
/// ("400 units could not be delivered") is not one, and neither are the
/// words "SMTP error" without a code.
fn has_smtp_error(text_lower: &str) -> bool {
    smtp_statuses(text_lower).next().is_some()
}

/// An SMTP reply code followed by an enhanced status code: `550 5.1.1`,
/// `550-5.1.1`, `451 4.7.1`: what a remote server said, quoted in a
/// delivery report.
fn has_smtp_reply(text_lower: &str) -> bool {
    smtp_statuses(text_lower).any(|after_reply_code| after_reply_code)
}

/// The enhanced failure status codes of a text (see `has_smtp_error`),
/// each `true` when an SMTP reply code comes right before it.
fn smtp_statuses(text_lower: &str) -> impl Iterator<Item = bool> + '_ {
    let is_reply_code = |w: &[u8]| matches!(w, [a, b, c] if matches!(a, b'4' | b'5') && b.is_ascii_digit() && c.is_ascii_digit());
    let is_failure_status = |w: &str| {
        let p: Vec<&str> = w.split('.').collect();
        p.len() == 3
            && matches!(p[0], "4" | "5")
            && p[1].len() == 1
            && p[1].bytes().all(|b| b.is_ascii_digit())
            && !p[2].is_empty()
            && p[2].len() <= 3
            && p[2].bytes().all(|b| b.is_ascii_digit())
    };
    let mut previous = "";
    text_lower
        .split(|c: char| {
            c.is_whitespace() || matches!(c, '(' | ')' | '#' | '[' | ']' | '<' | '>' | '"' | '\'')
        })
        .filter(|w| !w.is_empty())
        .filter_map(move |w| {
            let w = w.trim_end_matches(['.', ',', ';', ':']);
            let before = std::mem::replace(&mut previous, w);
            // `550-5.1.1`: a multi-line SMTP reply.
            if let Some((code, status)) = w.split_once('-')
                && is_reply_code(code.as_bytes())
            {
                return is_failure_status(status).then_some(true);
            }
            is_failure_status(w).then(|| is_reply_code(before.as_bytes()))
        })
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
/// 1. our own mail coming back: `X-Helpdesk-Loop` naming our installation,
///    `X-Loop` naming a department address, or a department address as the
///    sender together with our `X-Helpdesk-Loop` or a Message-ID of ours
///    (`hd.…` on a department's domain): `loop`. A department address as
///    the sender alone is not ours: lists such as Google Groups rewrite
///    `From` under DMARC to `'Dan Smith' via Support <support@…>`; such
///    mail reads on (with `List-Id` it is `list`, below);
/// 2. spam flags of a filter before us: `spam`;
/// 3. delivery reports. A report structure decides alone:
///    `multipart/report; report-type=delivery-status`, a
///    `message/delivery-status` part, `X-Failed-Recipients`, Exchange's
///    NDR header, an Amazon SES notification, an abuse feedback report.
///    Without one, a mail is a bounce only when a machine marker (see
///    `bounce_marker`: a `MAILER-DAEMON`/`postmaster` sender or
///    `Return-Path`, an empty `Return-Path`, `Auto-Submitted`, a
///    delivery-system display name) comes with a bounce subject or a
///    failure text before any quoted part (a bounce phrase; an SMTP reply
///    such as `550 5.1.1`; a bare status code such as `5.1.1` from a
///    `MAILER-DAEMON`/`postmaster` address): `bounce`. A person's subject
///    ("Delivery failure for order 1234") or words ("my parcel could not be
///    delivered", "I get: 550 5.1.1 user unknown") never make one. Delay
///    warnings and success notices are reports too: `bounce::Bounce::kind`
///    tells them apart, and only a hard failure should count against an
///    address;
/// 4. autoresponders: `Auto-Submitted` (other than `no`), `X-Autoreply`,
///    `Precedence: auto_reply`, read receipts, autoresponder subjects in
///    many languages: `auto_reply`;
/// 5. lists: `List-Id`, `List-Unsubscribe`, `Precedence: bulk|list|junk`;
/// 6. other machine markers (empty `Return-Path`, `noreply` or
///    delivery-system senders): `auto_reply`; list-manager headers:
///    `list`;
/// 7. everything else: `customer`.
///
/// The reason of an `auto_reply` tells strong evidence from a guess: see
/// `is_strong_auto_reply`.
pub fn classify_with(mail: &Inbound, ctx: &Context<'_>) -> (Class, Reason) {
    let ours = ctx.ours;
    let h = &mail.auto;
    let header = |name: &'static str| header(mail, name);
    let from = mail.from.as_ref().map(|m| m.email.as_str()).unwrap_or("");
    let subject = mail.subject.to_lowercase();
    let installation = ctx.installation.map(str::trim).filter(|i| !i.is_empty());

    // 1. Loops.
    if let Some(installation) = installation
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
        // Without a configured installation any `X-Helpdesk-Loop` on mail
        // from our own address is taken for ours.
        if installation.is_none()
            && let Some(v) = header(super::compose::LOOP_HEADER).find(|v| !v.is_empty())
        {
            return (
                Class::Loop,
                format!(
                    "sender is our own address {from} with {}: {v}",
                    super::compose::LOOP_HEADER
                ),
            );
        }
        if let Some(id) = mail
            .message_id
            .as_deref()
            .filter(|id| is_our_message_id(id, ours))
        {
            return (
                Class::Loop,
                format!("sender is our own address {from} with our Message-ID {id}"),
            );
        }
    }

    // 2. Spam.
    if let Some(v) = header("X-Spam-Flag").find(|v| v.eq_ignore_ascii_case("yes")) {
        return (Class::Spam, format!("X-Spam-Flag: {v}"));
    }
    if header("X-Spam-Status").any(|v| v.to_ascii_lowercase().starts_with("yes")) {
        return (Class::Spam, "X-Spam-Status: Yes".into());
    }

    // 3. Delivery reports: the structure of one...
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
    let words = own_words(mail);
    if let Some(kind) = ses_notification(mail, &words) {
        return (
            Class::Bounce,
            format!("Amazon SES notification (notificationType {kind})"),
        );
    }
    // ... or a machine's words about a failed delivery.
    if let Some(marker) = bounce_marker(mail) {
        let m = &marker.reason;
        if let Some(s) = bounce_subject(&subject) {
            return (
                Class::Bounce,
                format!("subject like \"{s}\" from a machine ({m})"),
            );
        }
        if let Some(p) = BOUNCE_PHRASES.iter().find(|p| words.contains(*p)) {
            return (
                Class::Bounce,
                format!("text like \"{p}\" from a machine ({m})"),
            );
        }
        if (marker.delivery_system && has_smtp_error(&words)) || has_smtp_reply(&words) {
            return (
                Class::Bounce,
                format!("an SMTP status code in the text from a machine ({m})"),
            );
        }
    } else if robot_sender(from)
        && let Some(p) = BOUNCE_PHRASES.iter().find(|p| words.contains(*p))
    {
        // A `noreply` sender is no delivery system (carriers and shops
        // write "your parcel could not be delivered" from one), but a
        // failure text with the remote server's reply or naming the
        // address that failed is a report (KDDI's "Could not be delivered
        // to: <a@b>").
        let evidence = if has_smtp_reply(&words) {
            Some("an SMTP reply")
        } else {
            BOUNCE_PHRASES
                .iter()
                .find(|p| words.contains(*p) && names_failed_address(&words, p))
                .map(|_| "the failed address")
        };
        if let Some(evidence) = evidence {
            return (
                Class::Bounce,
                format!("text like \"{p}\" with {evidence}, from sender {from}"),
            );
        }
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

    // 6. Other machine markers. A mail without a sender is not one: it is
    // usually a broken client or a mangled mail, and must stay where staff
    // see it (it is flagged, and nobody can be answered anyway).
    match machine_marker(mail) {
        Some(m) if m.starts_with("list manager") => (Class::List, m),
        Some(m) if m == "no sender address" => {
            (Class::Customer, "a person (no sender address)".into())
        }
        Some(m) => (Class::AutoReply, m),
        None => (Class::Customer, "a person".into()),
    }
}

/// Words before a subject's text that make it a reply or a forward.
const REPLY_PREFIXES: &[&str] = &[
    "re:", "aw:", "wg:", "fw:", "fwd:", "tr:", "sv:", "vs:", "antw:", "odp:", "ynt:", "ilt:", "r:",
    "rif:", "enc:", "res:", "odg:", "fwd ",
];

/// The delivery-failure subject (`BOUNCE_SUBJECTS`) in a machine's
/// subject: at its start (after `[tags]`), or later ("Mail System Error -
/// Returned Mail") unless a reply or forward prefix comes first, or the
/// subject is an autoresponder's: "Automatic reply: Re: Delivery failure
/// for order 1234" answers a person's subject and is no bounce.
fn bounce_subject(subject_lower: &str) -> Option<&'static str> {
    let s = subject_lower.replace('\u{a0}', " ");
    let s = strip_tags(&s);
    if let Some(b) = BOUNCE_SUBJECTS.iter().copied().find(|b| s.starts_with(b)) {
        return Some(b);
    }
    if auto_reply_subject(s).is_some() {
        return None;
    }
    BOUNCE_SUBJECTS.iter().copied().find(|b| {
        s.find(b).is_some_and(|at| {
            let before = &s[..at];
            !REPLY_PREFIXES.iter().any(|p| {
                before.match_indices(p).any(|(i, _)| {
                    before[..i]
                        .chars()
                        .next_back()
                        .is_none_or(|c| !c.is_alphanumeric())
                })
            })
        })
    })
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
            // Our own address with our loop header (a department address
            // alone is not enough: see
            // `a_list_rewriting_from_to_our_address_is_no_loop`).
            (
                "From: support@example.com\r\nSubject: x\r\nX-Helpdesk-Loop: helpdesk@host-1",
                "x",
                Class::Loop,
            ),
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
            // A list manager refusing a non-member: list-manager headers
            // are no machine marker (a list relays people's words), so
            // this is list mail, not a bounce.
            (
                "From: list-admin@lists.test\r\nSubject: You are not a member\r\nX-MLServer: fml 4.0",
                "You are not a member of this mailing list <l@lists.test>.",
                Class::List,
            ),
            // The same from the list's MAILER-DAEMON is a bounce.
            (
                "From: MAILER-DAEMON@lists.test\r\nSubject: You are not a member\r\nX-MLServer: fml 4.0",
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
        // "attachment", not in `text`. (`post_master` is a delivery
        // system's sender, as Verizon's and Apache James' write it; the
        // bounce needs that machine marker.)
        let raw = "From: post_master@mx.test\r\nSubject: Re: Test\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\n\
Content-Type: multipart/alternative;\r\nboundary=\"i\"\r\n\r\n--i\r\n\
Content-Type: text/plain\r\n\r\nError: Invalid user address\r\n\r\n550 - Requested action not taken: no such user here\r\n\
--i--\r\n--o--\r\n";
        assert_eq!(classify(&parse(raw.as_bytes()), &[]).0, Class::Bounce);
    }

    fn class_and_reason(headers: &str, body: &str) -> (Class, Reason) {
        let raw = format!("{headers}\r\nMessage-ID: <c@x>\r\n\r\n{body}\r\n");
        classify(&parse(raw.as_bytes()), &["support@example.com"])
    }

    #[test]
    fn a_persons_subject_or_words_about_failed_deliveries_make_no_bounce() {
        let person =
            |subject: &str| format!("From: Ayse <ayse@customer.test>\r\nSubject: {subject}");
        for (headers, body) in [
            (
                person("Delivery failure for order 1234"),
                "Hello,\r\nthe courier brought order 1234 back. Please resend it.",
            ),
            (
                person("Teslim edilemedi - sipariş 1234"),
                "Merhaba,\r\nsiparişim teslim edilemedi, kargo geri döndü.",
            ),
            (
                person("Returned mail: order 88 came back"),
                "Hi, the parcel was returned to you.",
            ),
            (
                person("Undeliverable address on my order"),
                "Your shop says my address is undeliverable. It is not.",
            ),
            (
                person("Non remis : colis 4471"),
                "Bonjour, mon colis est non remis.",
            ),
            (
                person("Failure notice from your courier"),
                "See the subject.",
            ),
            (
                person("Missing stock"),
                "Hi,\r\n400 units could not be delivered last week.\r\nWhen will they arrive?",
            ),
            (
                person("Cannot write to sales"),
                "When I write to sales@x I get: 550 5.1.1 user unknown",
            ),
            (
                person("Cannot write to sales"),
                "When I write to sales I get this:\r\n550 5.1.1 user unknown\r\nCan you check?",
            ),
            // Subject, phrase and an SMTP code together are still a
            // person's words without a machine marker.
            (
                person("Undelivered Mail Returned to Sender"),
                "My mail to sales could not be delivered:\r\n550 5.1.1 <sales@example.com>: Recipient address rejected: User unknown",
            ),
        ] {
            assert_eq!(
                class_and_reason(&headers, body),
                (Class::Customer, "a person".to_string()),
                "{headers} / {body}"
            );
        }
    }

    #[test]
    fn a_bounce_without_report_needs_a_machine_marker_and_a_subject_or_text() {
        for (headers, body, want) in [
            // Subject from a MAILER-DAEMON sender.
            (
                "From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered Mail Returned to Sender",
                "x",
                Class::Bounce,
            ),
            // A From the parser cannot read still names the system.
            (
                "From: MAILER-DAEMON <>\r\nSubject: Mail delivery failed",
                "x",
                Class::Bounce,
            ),
            (
                "From: Mail Delivery Subsystem <MAILER-DAEMON>\r\nSubject: Returned mail: see transcript for details",
                "x",
                Class::Bounce,
            ),
            // Return-Path of a delivery system, failure text.
            (
                "From: relay@mx.test\r\nReturn-Path: <MAILER-DAEMON@mx.test>\r\nSubject: notice",
                "Your message could not be delivered.",
                Class::Bounce,
            ),
            // Empty Return-Path, enhanced status code.
            (
                "From: relay@mx.test\r\nReturn-Path: <>\r\nSubject: notice",
                "<a@b.test>: 550 5.1.1 mailbox gone",
                Class::Bounce,
            ),
            // Auto-Submitted, bounce subject after another word.
            (
                "From: relay@mx.test\r\nAuto-Submitted: auto-replied\r\nSubject: Mail System Error - Returned Mail",
                "x",
                Class::Bounce,
            ),
            // A delivery-system display name.
            (
                "From: Mail Delivery System <relay@mx.test>\r\nSubject: Delivery Status Notification (Failure)",
                "x",
                Class::Bounce,
            ),
            // A company merely named "... Mail Systems" is no delivery
            // system.
            (
                "From: Acme Mail Systems <sales@acme.test>\r\nSubject: Delivery failure for order 1234",
                "x",
                Class::Customer,
            ),
            // A MAILER-DAEMON sender alone says nothing failed.
            (
                "From: MAILER-DAEMON@mx.test\r\nSubject: Daily queue summary",
                "3 mails in the queue.",
                Class::AutoReply,
            ),
            // An autoresponder answering a person's subject is no bounce.
            (
                "From: ali@customer.test\r\nAuto-Submitted: auto-replied\r\nSubject: Automatic reply: Delivery failure for order 1234",
                "I am away.",
                Class::AutoReply,
            ),
            (
                "From: help@vendor.test\r\nAuto-Submitted: auto-generated\r\nSubject: Re: [SUP-1] Undeliverable parcel 77",
                "We received your request.",
                Class::AutoReply,
            ),
            // An autoresponder's "5.1.1" is a section of a manual; only a
            // delivery system's own address makes a status code a failure.
            (
                "From: help@vendor.test\r\nAuto-Submitted: auto-replied\r\nReturn-Path: <>\r\nSubject: Re: printer",
                "We are closed today. Meanwhile see section 5.1.1 of the manual.",
                Class::AutoReply,
            ),
            // A noreply sender is no delivery system: a carrier's notice
            // is weak auto-reply evidence, not a bounce...
            (
                "From: noreply@carrier.test\r\nSubject: Your parcel",
                "Your parcel could not be delivered today.",
                Class::AutoReply,
            ),
            (
                "From: noreply@carrier.test\r\nSubject: Your parcel",
                "Your parcel could not be delivered, see section 5.1.1 of our terms.",
                Class::AutoReply,
            ),
            // ... unless the failure text quotes the remote server or
            // names the address that failed.
            (
                "From: noreply@relay.test\r\nSubject: Problem",
                "Your message could not be delivered: 550 5.1.1 no such user",
                Class::Bounce,
            ),
            (
                "From: no-reply@mail.isp.test\r\nSubject: Mail error",
                "Your mail sent on: Thu, 29 Apr 2013\r\n     Could not be delivered to: <kijitora@isp.test>\r\n     As their mailbox is full.",
                Class::Bounce,
            ),
        ] {
            assert_eq!(class_of(headers, body), want, "{headers} / {body}");
        }
    }

    #[test]
    fn smtp_errors_need_an_enhanced_status_code() {
        for text in [
            "550 5.1.1 user unknown",
            "host said: 550-5.1.1 the account does not exist",
            "sorry, no mailbox here by that name. (#5.1.1)",
            "status: 4.4.7",
            "remote server replied [5.7.1] denied",
        ] {
            assert!(has_smtp_error(text), "{text}");
        }
        for text in [
            "400 units could not be delivered last week.",
            "550 - requested action not taken: no such user here",
            "smtp error from remote mail server",
            "version 2.1.0 of the app",
            "order 5.12.2024 was late",
            "we paid 5.1 eur",
        ] {
            assert!(!has_smtp_error(text), "{text}");
        }
        for (text, reply) in [
            ("550 5.1.1 user unknown", true),
            ("host said: 550-5.1.1 the account does not exist", true),
            ("451 4.7.1 try again later", true),
            ("no mailbox here by that name. (#5.1.1)", false),
            ("see section 5.1.1 of the manual", false),
            ("400 units, 5.1.1 of them", false),
        ] {
            assert_eq!(has_smtp_reply(text), reply, "{text}");
        }
    }

    /// A Google Group relaying a member's mail: its headers, the member's
    /// words.
    const GOOGLE_GROUP: &str = "List-Help: <https://support.google.com/a/example.com/bin/topic.py?topic=25838>, <mailto:support+help@example.com>\r\n\
Mailing-list: list support@example.com; contact support+owners@example.com\r\n\
List-Subscribe: <https://groups.google.com/a/example.com/group/support/subscribe>, <mailto:support+subscribe@example.com>\r\n\
List-Post: <https://groups.google.com/a/example.com/group/support/post>, <mailto:support@example.com>\r\n\
X-Google-Group-Id: 123456789012\r\nX-Original-Sender: dan@customer.test";

    #[test]
    fn list_manager_headers_back_no_bounce() {
        let parcel = "Hi, my parcel could not be delivered, the courier brought it back.\r\nDan";
        for (headers, want) in [
            (
                format!("From: Dan Smith <dan@customer.test>\r\nSubject: My parcel\r\n{GOOGLE_GROUP}\r\nList-Id: <support.example.com>"),
                "List-Id: <support.example.com>",
            ),
            (
                format!("From: Dan Smith <dan@customer.test>\r\nSubject: My parcel\r\n{GOOGLE_GROUP}"),
                "list manager header Mailing-List",
            ),
            (
                "From: Dan Smith <dan@customer.test>\r\nSubject: Returned mail: my parcel\r\nList-Help: <mailto:l-help@lists.test>\r\nList-Subscribe: <mailto:l-subscribe@lists.test>".to_string(),
                "list manager header List-Subscribe",
            ),
        ] {
            assert_eq!(
                class_and_reason(&headers, parcel),
                (Class::List, want.to_string()),
                "{headers}"
            );
        }
    }

    #[test]
    fn a_list_rewriting_from_to_our_address_is_no_loop() {
        let dmarc = "From: 'Dan Smith' via Support <support@example.com>\r\nReply-To: Dan Smith <dan@customer.test>\r\nSubject: Printer broken";
        let body = "Hello, the printer is broken.\r\nDan";
        let raw = |extra: &str, id: &str| {
            format!("{dmarc}\r\n{extra}Message-ID: <{id}>\r\n\r\n{body}\r\n")
        };
        let check = |extra: &str, id: &str, installation: Option<&str>| {
            let ctx = Context {
                ours: &["support@example.com", "sales@example.com"],
                installation,
            };
            classify_with(&parse(raw(extra, id).as_bytes()), &ctx).0
        };
        let group = format!("{GOOGLE_GROUP}\r\nList-Id: <support.example.com>\r\n");
        // Google Groups' DMARC rewrite: list mail, or a person's mail
        // when the list sends no List-Id.
        assert_eq!(check(&group, "CAB=x@mail.gmail.com", None), Class::List);
        assert_eq!(
            check(&group, "CAB=x@mail.gmail.com", Some("helpdesk@desk.test")),
            Class::List
        );
        assert_eq!(check("", "CAB=x@mail.gmail.com", None), Class::Customer);
        // Ours only with our markers.
        for (extra, id, installation) in [
            ("X-Loop: support@example.com\r\n", "a@x.test", None),
            ("X-Helpdesk-Loop: helpdesk@desk.test\r\n", "a@x.test", None),
            (
                "X-Helpdesk-Loop: helpdesk@desk.test\r\n",
                "a@x.test",
                Some("helpdesk@desk.test"),
            ),
            ("", "hd.1736157600.0a1b2c@example.com", None),
            ("", "hd.1736157600.0a1b2c@Example.COM", None),
            // Our own reply relayed back by the group.
            (&group, "hd.1736157600.0a1b2c@example.com", None),
        ] {
            assert_eq!(check(extra, id, installation), Class::Loop, "{extra} {id}");
        }
        // Another installation's marker, ids of others.
        for (extra, id, installation) in [
            (
                "X-Helpdesk-Loop: helpdesk@other.test\r\n",
                "a@x.test",
                Some("helpdesk@desk.test"),
            ),
            ("", "hd.1736157600.0a1b2c@other.test", None),
            ("", "hd.1736157600.xyz@example.com", None),
            ("", "hd.now.0a1b2c@example.com", None),
            ("", "hdx.1736157600.0a1b2c@example.com", None),
        ] {
            assert_eq!(
                check(extra, id, installation),
                Class::Customer,
                "{extra} {id}"
            );
        }
    }

    #[test]
    fn our_message_ids_are_hd_ids_on_a_department_domain() {
        let ours = ["support@example.com", "satis@example.org"];
        let id = super::super::compose::new_message_id("example.org");
        assert!(is_our_message_id(&id, &ours), "{id}");
        assert!(is_our_message_id(&format!("<{id}>"), &ours));
        assert!(!is_our_message_id(&id, &["support@example.com"]));
        assert!(!is_our_message_id("hd.1.2@example.com.evil.test", &ours));
        assert!(!is_our_message_id("hd.1.2", &ours));
    }

    #[test]
    fn ses_notifications_are_reports_and_quoting_one_is_not() {
        let ses = "{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\"}}";
        let sns = "{\r\n  \"Type\" : \"Notification\",\r\n  \"Message\" : \"{\\\"notificationType\\\":\\\"Bounce\\\",\\\"bounce\\\":{}}\"\r\n}";
        for (headers, body, want) in [
            (
                "From: no-reply@sns.amazonaws.com\r\nSubject: AWS Notification Message",
                ses,
                Class::Bounce,
            ),
            (
                "From: no-reply@sns.amazonaws.com\r\nSubject: AWS Notification Message",
                sns,
                Class::Bounce,
            ),
            (
                "From: ops@customer.test\r\nSubject: SES\r\nx-amz-sns-message-id: 42",
                ses,
                Class::Bounce,
            ),
            (
                "From: dev@customer.test\r\nSubject: SES question",
                "Hi, we get {\"notificationType\":\"Bounce\"} for every mail to you. Why?",
                Class::Customer,
            ),
        ] {
            assert_eq!(class_of(headers, body), want, "{headers} / {body}");
        }
    }

    #[test]
    fn auto_reply_reasons_tell_strong_from_weak() {
        let strong = [
            (
                "From: a@x.test\r\nSubject: Re: x\r\nAuto-Submitted: auto-replied",
                "away",
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nX-Autoreply: yes",
                "away",
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nX-Autorespond: yes",
                "away",
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nPrecedence: auto_reply",
                "away",
            ),
            (
                "From: a@x.test\r\nSubject: Re: x\r\nReturn-Path: <>",
                "away",
            ),
            (
                "From: a@x.test\r\nSubject: Automatic reply: x\r\nX-Auto-Response-Suppress: All",
                "away",
            ),
        ];
        for (headers, body) in strong {
            let (class, reason) = class_and_reason(headers, body);
            assert_eq!(class, Class::AutoReply, "{headers}");
            assert!(is_strong_auto_reply(&reason), "{headers}: {reason}");
        }
        let weak = [
            ("From: a@x.test\r\nSubject: Out of office", "subject like"),
            ("From: noreply@shop.test\r\nSubject: Your order", "sender "),
            (
                "From: MAILER-DAEMON@mx.test\r\nSubject: Queue report",
                "sender ",
            ),
            (
                "From: relay@mx.test\r\nReturn-Path: <MAILER-DAEMON@mx.test>\r\nSubject: Queue report",
                "sender ",
            ),
            (
                "From: Mail Delivery System <relay@mx.test>\r\nSubject: Queue report",
                "sender name like",
            ),
        ];
        for (headers, prefix) in weak {
            let (class, reason) = class_and_reason(headers, "nothing failed");
            assert_eq!(class, Class::AutoReply, "{headers}");
            assert!(reason.starts_with(prefix), "{headers}: {reason}");
            assert!(!is_strong_auto_reply(&reason), "{headers}: {reason}");
        }
        for (reason, want) in [
            ("Auto-Submitted: auto-replied", true),
            ("auto-submitted: auto-generated", true),
            ("Auto-Submitted: no", false),
            ("X-Autoreply: yes", true),
            ("X-Autorespond: yes", true),
            ("X-Autoreply-From: a@x.test", true),
            ("Precedence: auto_reply", true),
            ("Precedence: AUTO_REPLY", true),
            ("empty Return-Path", true),
            (
                "X-Auto-Response-Suppress: All and subject like \"automatic reply\"",
                true,
            ),
            ("X-Auto-Response-Suppress: All", false),
            ("subject like \"out of office\"", false),
            ("sender noreply@shop.test", false),
            ("sender name like \"mail delivery\"", false),
            (
                "multipart/report; report-type=disposition-notification (read receipt)",
                false,
            ),
            ("X-Mail-Autoreply: yes", false),
            ("", false),
        ] {
            assert_eq!(is_strong_auto_reply(reason), want, "{reason}");
        }
    }
}
