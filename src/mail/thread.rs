//! Threading signals that can be read off one mail without the database:
//! reply/forward prefixes folded out of a subject, `[KEY-n]` ticket tags,
//! and the ordered list of referenced Message-IDs to look up.
//!
//! The decision itself (which signal wins, whether a tag is trusted) is in
//! `pipeline`, because it needs the tickets; everything here is pure.

/// Reply and forward prefixes as mail clients write them, lowercased.
///
/// Compared after `fold_case`, so `İlt`, `ILT` and `ilt` all match `ilt`.
const PREFIXES: &[&str] = &[
    // English and the defaults of most clients
    "re", "fw", "fwd", // German
    "aw", "wg", "antw", "antwort", // Turkish: Yanıt, İlet, İletildi
    "ynt", "yanıt", "ilt", "ilet", // Scandinavian and Finnish
    "sv", "vs", "vb", "vl", // Dutch
    "doorst",
    // French (TR = transféré), Italian (R, RIF, I = inoltrato), Spanish, Portuguese
    "tr", "rif", "r", "i", "rv", "res", "enc", "reenv", // Polish, Czech, Slovak
    "odp", "pd", "přep", "fwd", // Greek, Hebrew, Chinese, Japanese, Korean
    "απ", "σχετ", "πρθ", "השב", "回复", "回覆", "答复", "转发", "轉寄", "返信", "転送", "회신",
    "전달",
];

/// Lowercases with the Turkish dotted/dotless i folded onto ASCII `i`.
fn fold_case(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            'İ' | 'ı' | 'I' => ['i'].into_iter().collect::<Vec<_>>(),
            c => c.to_lowercase().collect(),
        })
        .filter(|c| *c != '\u{307}')
        .collect()
}

/// Removes one leading prefix such as `Re:`, `AW:`, `Fwd[2]:`, `Re^3:` or
/// `Ynt：`, returning the rest, or `None` when the subject has none.
fn strip_one_prefix(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let word_end = s
        .char_indices()
        .find(|(_, c)| !c.is_alphabetic())
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    if word_end == 0 {
        return None;
    }
    let word = fold_case(&s[..word_end]);
    if !PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let mut rest = &s[word_end..];
    // Counters some clients add: "Re[2]:", "Re(2):", "Re^2:"
    if let Some(r) = rest.strip_prefix('[').or_else(|| rest.strip_prefix('(')) {
        let close = r.find([']', ')'])?;
        if !r[..close].chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        rest = &r[close + 1..];
    } else if let Some(r) = rest.strip_prefix('^') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let rest = rest.trim_start_matches(' ');
    rest.strip_prefix(':')
        .or_else(|| rest.strip_prefix('：'))
        .map(str::trim_start)
}

/// A ticket tag found in a subject: `[SUP-1042]` gives `("SUP", 1042)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub number: i64,
}

impl Tag {
    pub fn reference(&self) -> String {
        format!("{}-{}", self.key, self.number)
    }
}

/// Every `[KEY-n]` in the subject whose key is one of `keys` (compared
/// case-insensitively), in order of appearance.
pub fn subject_tags(subject: &str, keys: &[&str]) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        // A tag is short: look for its `]` nearby only (linear time on
        // hostile subjects full of `[`).
        let window = &rest.as_bytes()[..rest.len().min(40)];
        let Some(close) = window.iter().position(|b| *b == b']') else {
            continue;
        };
        let inner = rest[..close].trim();
        if let Some((key, number)) = inner.rsplit_once('-')
            && let Some(known) = keys.iter().find(|k| k.eq_ignore_ascii_case(key))
            && !number.is_empty()
            && number.len() <= 18
            && number.bytes().all(|b| b.is_ascii_digit())
            && let Ok(number) = number.parse()
        {
            tags.push(Tag {
                key: (*known).to_string(),
                number,
            });
        }
    }
    tags
}

/// The subject with reply/forward prefixes and our own ticket tags removed,
/// whitespace collapsed. Used as the ticket subject and to build ours.
pub fn clean_subject(subject: &str, keys: &[&str]) -> String {
    let mut s = subject.trim();
    loop {
        let before = s.len();
        while let Some(rest) = strip_one_prefix(s) {
            s = rest;
        }
        s = remove_leading_tag(s, keys);
        if s.len() == before {
            break;
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn remove_leading_tag<'a>(s: &'a str, keys: &[&str]) -> &'a str {
    let t = s.trim_start();
    if let Some(inner) = t.strip_prefix('[')
        && let Some(close) = inner.find(']')
        && !subject_tags(&t[..close + 2], keys).is_empty()
    {
        return inner[close + 1..].trim_start();
    }
    s
}

/// Most Message-IDs looked up per mail.
const MAX_CANDIDATES: usize = 50;

/// The Message-IDs a reply points at, most specific first: `In-Reply-To`,
/// then `References` from the newest to the oldest, without duplicates and
/// without angle brackets; at most `MAX_CANDIDATES`.
pub fn reference_candidates(in_reply_to: &[String], references: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        if out.len() == MAX_CANDIDATES {
            break;
        }
        let id = normalize_message_id(id);
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Message-IDs compared without brackets and surrounding space; the local
/// part is case-sensitive in theory, but clients never change case.
pub fn normalize_message_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["SUP", "SAL"];

    #[test]
    fn folds_reply_prefixes_in_many_languages() {
        let cases = [
            ("Re: Printer broken", "Printer broken"),
            ("RE: RE: Printer broken", "Printer broken"),
            ("AW: WG: Drucker", "Drucker"),
            ("Ynt: Yazıcı", "Yazıcı"),
            ("YNT: Yazıcı", "Yazıcı"),
            ("İlt: Yazıcı", "Yazıcı"),
            ("ILT: Yazıcı", "Yazıcı"),
            ("Odp: Drukarka", "Drukarka"),
            ("Sv: Skrivare", "Skrivare"),
            ("Antw: Printer", "Printer"),
            ("TR: Imprimante", "Imprimante"),
            ("Rif: Stampante", "Stampante"),
            ("Fwd: Fw: printer", "printer"),
            ("Re[2]: printer", "printer"),
            ("Re^3: printer", "printer"),
            ("回复：打印机", "打印机"),
            ("Re: [SUP-12] Printer", "Printer"),
            ("[SUP-12] Re: Printer", "Printer"),
            ("Ynt: [sup-12]   Printer   jam", "Printer jam"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean_subject(input, KEYS), expected, "input {input:?}");
        }
    }

    #[test]
    fn keeps_words_that_only_look_like_prefixes() {
        assert_eq!(clean_subject("Return policy", KEYS), "Return policy");
        assert_eq!(
            clean_subject("Re-order: 5 units", KEYS),
            "Re-order: 5 units"
        );
        assert_eq!(clean_subject("Fwdx: thing", KEYS), "Fwdx: thing");
        assert_eq!(clean_subject("[OTHER-5] Re: x", KEYS), "[OTHER-5] Re: x");
        assert_eq!(clean_subject("", KEYS), "");
    }

    #[test]
    fn finds_tags_of_known_departments_only() {
        let tags = subject_tags(
            "Re: [SUP-1042] and [sal-7] not [ABC-1] [SUP-] [SUP-x1]",
            KEYS,
        );
        assert_eq!(
            tags,
            vec![
                Tag {
                    key: "SUP".into(),
                    number: 1042
                },
                Tag {
                    key: "SAL".into(),
                    number: 7
                }
            ]
        );
        assert!(subject_tags("[SUP-99999999999999999999]", KEYS).is_empty());
        assert!(subject_tags("[SUP-12", KEYS).is_empty());
        assert_eq!(subject_tags("[[[[SUP-3]", KEYS).len(), 1);
    }

    #[test]
    fn hostile_subjects_are_handled() {
        // Quadratic scanning made this take minutes.
        let hostile = "Re: ".repeat(1000) + &"[".repeat(200_000);
        assert!(subject_tags(&hostile, KEYS).is_empty());
        assert!(clean_subject(&hostile, KEYS).starts_with("[[["));
    }

    #[test]
    fn reference_candidates_prefer_in_reply_to_then_newest_reference() {
        let got = reference_candidates(
            &["<c@x>".into()],
            &["<a@x>".into(), "<b@x>".into(), "<c@x>".into()],
        );
        assert_eq!(got, vec!["c@x", "b@x", "a@x"]);
    }
}
