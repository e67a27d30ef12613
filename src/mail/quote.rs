//! The new text of a reply, without the quoted history. A first, careful
//! cut: `>` quote blocks and the attribution or separator line that
//! introduces the history (`On … wrote:`, `-----Original Message-----`,
//! an Outlook `From:`/`Sent:` block, the Turkish and Czech attributions).
//! When unsure it keeps the text: losing the customer's words is worse
//! than showing some history.

/// Only this much of a text is searched for the start of the history;
/// a longer text keeps everything after it.
const MAX_SCAN: usize = 256 * 1024;

/// The part of `text` written for this mail.
pub fn new_text(text: &str) -> &str {
    let mut end = text.len().min(MAX_SCAN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let lines: Vec<&str> = text[..end].split_inclusive('\n').collect();
    // quoted_from[i]: every line from i on is a quote, blank, or after a
    // signature marker; one backward pass (linear in the text).
    let mut quoted_from = vec![true; lines.len() + 1];
    for i in (0..lines.len()).rev() {
        let t = lines[i].trim();
        if t == "--" {
            // Everything below a signature marker does not count.
            quoted_from[i] = true;
            continue;
        }
        quoted_from[i] = (t.is_empty() || t.starts_with('>')) && quoted_from[i + 1];
    }
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        let attribution = is_attribution(trimmed, next);
        if is_separator(trimmed) || attribution || (trimmed.starts_with('>') && quoted_from[i]) {
            let cut = text[..offset].trim_end();
            // Nothing before the history: keep everything.
            return if cut.is_empty() { text } else { cut };
        }
        offset += line.len();
    }
    text
}

/// A mail's text in three parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split<'a> {
    /// What was written for this mail.
    pub text: &'a str,
    /// The quoted history after it.
    pub quoted: &'a str,
    /// The signature at the end of the new text (`-- ` block or a mobile
    /// "Sent from my ..." line).
    pub signature: &'a str,
}

/// Splits `text` into new text, signature and quoted history.
pub fn split(text: &str) -> Split<'_> {
    let new = new_text(text);
    let quoted = text[new.len()..].trim();
    let (body, signature) = signature_split(new);
    Split {
        text: body,
        quoted,
        signature,
    }
}

const MOBILE_SIGNATURES: &[&str] = &[
    "sent from my iphone",
    "sent from my ipad",
    "sent from my android",
    "sent from my samsung",
    "sent from outlook for",
    "get outlook for",
    "sent from mail for windows",
    "sent from yahoo mail",
    "iphone'umdan gönderildi",
    "ipad'imden gönderildi",
    "android'den gönderildi",
    "odesláno z iphonu",
    "odesláno z mého iphonu",
    "von meinem iphone gesendet",
    "envoyé de mon iphone",
    "enviado desde mi iphone",
    "inviato da iphone",
    "verzonden met mijn iphone",
    "wysłane z iphone",
    "enviado do meu iphone",
    "отправлено с iphone",
];

fn signature_split(text: &str) -> (&str, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_end_matches(['\r', '\n']);
        let lower = t.trim().to_lowercase();
        let marker = t == "-- " || t == "--";
        if marker || MOBILE_SIGNATURES.iter().any(|m| lower.starts_with(m)) {
            let body = text[..offset].trim_end();
            if !body.is_empty() {
                // The `-- ` marker itself belongs to neither part.
                let from = if marker { offset + line.len() } else { offset };
                return (body, text[from..].trim());
            }
        }
        offset += line.len();
    }
    (text, "")
}

fn is_separator(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    (l.starts_with("-----") && (l.contains("original message") || l.contains("forwarded message")))
        || l.starts_with("________________________________")
}

/// `On Mon, 1 Jan 2026, Ann <a@x> wrote:` and its translations, on one
/// line or wrapped over two. A real attribution names a date or an
/// address, so prose such as "As my manager wrote:" does not count.
fn is_attribution(line: &str, next: &str) -> bool {
    let ends_like = |s: &str| {
        let s = s.trim_end();
        [
            "wrote:",
            "şunu yazdı:",
            "napsal(a):",
            "napsal:",
            "schrieb:",
            "a écrit :",
            "a écrit:",
            "escribió:",
            "scritto:",
            "geschreven:",
            "napisał(a):",
            "escreveu:",
            "написал(а):",
            "написал:",
        ]
        .iter()
        .any(|e| s.ends_with(e))
    };
    let names_date_or_address = |s: &str| s.contains('@') || s.chars().any(|c| c.is_ascii_digit());
    let outlook = line.starts_with("From:") && next.starts_with("Sent:")
        || line.starts_with("Kimden:") && next.starts_with("Gönderildi:")
        || line.starts_with("Od:") && next.starts_with("Odesláno:");
    if outlook {
        return true;
    }
    if ends_like(line) {
        return names_date_or_address(line);
    }
    // Wrapped: the first half has no ending of its own.
    !line.is_empty()
        && line.len() < 200
        && next.len() < 200
        && ends_like(next)
        && !names_date_or_address(next)
        && names_date_or_address(line)
}

#[cfg(test)]
mod tests {
    use super::new_text;

    #[test]
    fn cuts_history_after_attribution_lines() {
        for (text, want) in [
            (
                "Thanks!\n\nOn Mon, 1 Jan 2026, Ann <a@x> wrote:\n> old\n",
                "Thanks!",
            ),
            (
                "Tamam.\n\n1 Oca 2026 Pzt, Ali <a@x> şunu yazdı:\n> eski\n",
                "Tamam.",
            ),
            (
                "Díky.\n\nDne 1. 1. 2026 Jan <j@x> napsal(a):\n> staré\n",
                "Díky.",
            ),
            ("Yes.\n\n-----Original Message-----\nFrom: x\n", "Yes."),
            ("Ok\nFrom: Support\nSent: Monday\nSubject: x\n", "Ok"),
            ("Hi\n> quoted\n> more\n", "Hi"),
        ] {
            assert_eq!(new_text(text), want, "{text:?}");
        }
    }

    #[test]
    fn prose_that_mentions_writing_is_kept() {
        let text = "Hi team,\nThe printer is broken again.\nAs my manager wrote:\n> fix it\nShould I send it?\n";
        assert_eq!(new_text(text), text);
        let wrapped =
            "Thanks.\n\nOn Mon, 1 Jan 2026 at 10:00, Ann Example <a@x.test>\nwrote:\n> old\n";
        assert_eq!(new_text(wrapped), "Thanks.");
    }

    #[test]
    fn a_long_run_of_quotes_before_an_answer_is_kept() {
        // One backward pass: this took minutes when each `>` line scanned
        // the rest of the text.
        let text = "> x\n".repeat(200_000) + "reply\n";
        assert_eq!(new_text(&text), text);
    }

    #[test]
    fn splits_signatures_and_history() {
        let s = super::split(
            "Fine.\n\nSent from my iPhone\n\nOn Mon, 1 Jan 2026, A <a@x> wrote:\n> q\n",
        );
        assert_eq!(s.text, "Fine.");
        assert_eq!(s.signature, "Sent from my iPhone");
        assert!(s.quoted.starts_with("On Mon"));
        let s = super::split("Tamam.\n-- \nAyşe\nDestek\n");
        assert_eq!((s.text, s.signature), ("Tamam.", "Ayşe\nDestek"));
    }

    #[test]
    fn keeps_text_when_unsure() {
        let inline = "> question one\nanswer one\n> question two\nanswer two\n";
        assert_eq!(new_text(inline), inline);
        let only_quote = "> all quoted\n";
        assert_eq!(new_text(only_quote), only_quote);
        assert_eq!(new_text("plain text"), "plain text");
    }
}
