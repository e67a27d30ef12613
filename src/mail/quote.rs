//! The new text of a reply, without the quoted history. A first, careful
//! cut: `>` quote blocks and the attribution or separator line that
//! introduces the history (`On … wrote:`, `-----Original Message-----`,
//! an Outlook `From:`/`Sent:` block, the Turkish and Czech attributions).
//! When unsure it keeps the text: losing the customer's words is worse
//! than showing some history.

/// The part of `text` written for this mail.
pub fn new_text(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        let next = lines.peek().map_or("", |l| l.trim());
        if is_separator(trimmed)
            || is_attribution(trimmed, next)
            || (trimmed.starts_with('>') && rest_is_quoted(&text[offset..]))
        {
            let cut = text[..offset].trim_end();
            // Nothing before the history: keep everything.
            return if cut.is_empty() { text } else { cut };
        }
        offset += line.len();
    }
    text
}

fn is_separator(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    (l.starts_with("-----") && (l.contains("original message") || l.contains("forwarded message")))
        || l.starts_with("________________________________")
}

fn is_attribution(line: &str, next: &str) -> bool {
    let both = format!("{line} {next}");
    let ends_like = |s: &str| {
        let s = s.trim_end();
        s.ends_with("wrote:")
            || s.ends_with("şunu yazdı:")
            || s.ends_with("napsal(a):")
            || s.ends_with("napsal:")
            || s.ends_with("schrieb:")
            || s.ends_with("a écrit :")
            || s.ends_with("a écrit:")
            || s.ends_with("escribió:")
            || s.ends_with("scritto:")
            || s.ends_with("geschreven:")
            || s.ends_with("napisał(a):")
            || s.ends_with("escreveu:")
            || s.ends_with("написал(а):")
            || s.ends_with("написал:")
    };
    let outlook = line.starts_with("From:") && next.starts_with("Sent:")
        || line.starts_with("Kimden:") && next.starts_with("Gönderildi:")
        || line.starts_with("Od:") && next.starts_with("Odesláno:");
    outlook || ends_like(line) || (line.len() < 200 && !line.is_empty() && ends_like(&both))
}

/// A `>` line starts the history only when what follows is quotes,
/// blank lines or a signature: inline answers between quotes stay.
fn rest_is_quoted(rest: &str) -> bool {
    let mut unquoted = 0;
    for l in rest.lines() {
        let t = l.trim();
        if t == "--" || t == "-- " {
            break;
        }
        if !t.is_empty() && !t.starts_with('>') {
            unquoted += 1;
        }
    }
    unquoted == 0
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
    fn keeps_text_when_unsure() {
        let inline = "> question one\nanswer one\n> question two\nanswer two\n";
        assert_eq!(new_text(inline), inline);
        let only_quote = "> all quoted\n";
        assert_eq!(new_text(only_quote), only_quote);
        assert_eq!(new_text("plain text"), "plain text");
    }
}
