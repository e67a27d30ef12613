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
