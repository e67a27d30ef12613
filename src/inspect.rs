//! `helpdesk mail inspect` and `helpdesk mail score`: how the daemon reads
//! one mail (parse → classify → bounce → split), without a database, and
//! how well it does so over a labelled directory of mails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::mail::bounce::{self, Bounce};
use crate::mail::classify::{self, Class};
use crate::mail::{html, parse, quote, thread};

/// Largest `cid:` image inlined as a `data:` URL in `html_sanitized`.
const MAX_INLINE_IMAGE: usize = 1024 * 1024;

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// Everything `mail inspect` prints (names fixed by issue 4).
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub subject_clean: String,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub class: Class,
    pub class_reason: String,
    pub bounce: Option<Bounce>,
    pub text: String,
    pub quoted: String,
    pub signature: String,
    /// The HTML body made safe to display (`mail::html::sanitize`): `cid:`
    /// images become `data:` URLs of their attachments, remote images are
    /// blocked. Null for a mail without HTML.
    pub html_sanitized: Option<String>,
    pub attachments: Vec<Attachment>,
    pub charset_issues: Vec<String>,
}

/// What a config adds to reading a mail; all empty without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// The department addresses (our own mail coming back is a loop).
    pub ours: &'a [&'a str],
    /// Ticket-reference keys stripped from `subject_clean`.
    pub keys: &'a [&'a str],
    /// The department's charset for undeclared 8-bit bytes.
    pub fallback_charset: Option<&'a str>,
    /// `[general] installation` (our `X-Helpdesk-Loop` value).
    pub installation: Option<&'a str>,
}

/// Reads one mail the way the daemon does.
pub fn inspect(raw: &[u8], options: &Options<'_>) -> Inspection {
    let (ours, keys) = (options.ours, options.keys);
    let mail = parse::parse_with(
        raw,
        parse::Options {
            fallback_charset: options.fallback_charset,
        },
    );
    let (class, class_reason) = classify::classify_with(
        &mail,
        &classify::Context {
            ours,
            installation: options.installation,
        },
    );
    let bounce = (class == Class::Bounce).then(|| bounce::parse(raw, mail.message_id.as_deref()));
    let split = quote::split(&mail.text);
    Inspection {
        from: mail.from.as_ref().map(|m| m.email.clone()),
        to: mail.to.iter().map(|m| m.email.clone()).collect(),
        cc: mail.cc.iter().map(|m| m.email.clone()).collect(),
        subject_clean: thread::clean_subject(&mail.subject, keys),
        subject: mail.subject.clone(),
        message_id: mail.message_id.clone(),
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        class,
        class_reason,
        bounce,
        text: split.text.to_string(),
        quoted: split.quoted.to_string(),
        signature: split.signature.to_string(),
        html_sanitized: mail.html.as_deref().map(|h| {
            html::sanitize(h, &|cid| {
                let a = mail
                    .attachments
                    .iter()
                    .find(|a| a.content_id.as_deref() == Some(cid))?;
                (a.content.len() <= MAX_INLINE_IMAGE)
                    .then(|| format!("data:{};base64,{}", a.content_type, base64(&a.content)))
            })
        }),
        attachments: mail
            .attachments
            .iter()
            .map(|a| Attachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.content.len(),
            })
            .collect(),
        charset_issues: mail
            .problems
            .iter()
            .filter(|p| p.contains("charset") || p.contains("8-bit") || p.contains("undecodable"))
            .cloned()
            .collect(),
    }
}

/// One labelled mail for `mail score`.
#[derive(Debug)]
pub struct Label {
    pub path: PathBuf,
    pub class: Option<Class>,
    /// The expected new text, when the label gives one.
    pub text: Option<String>,
}

fn parse_class(s: &str) -> Option<Class> {
    Class::ALL.into_iter().find(|c| c.as_str() == s.trim())
}

/// Labels from a TSV file: `PATH<TAB>CLASS[<TAB>TEXT_FILE]`, paths
/// relative to the file; `-` for no class; `#` comments.
pub fn read_labels(file: &Path) -> anyhow::Result<Vec<Label>> {
    let base = file.parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split('\t');
        let path = base.join(cols.next().unwrap_or(""));
        let class = match cols.next().map(str::trim) {
            None | Some("-") | Some("") => None,
            Some(c) => Some(parse_class(c).with_context(|| {
                format!(
                    "{}:{}: unknown class `{c}` (customer, auto_reply, bounce, list, loop, spam)",
                    file.display(),
                    n + 1
                )
            })?),
        };
        let text = match cols.next() {
            Some(t) if !t.trim().is_empty() => Some(
                std::fs::read_to_string(base.join(t.trim()))
                    .with_context(|| format!("{}:{}: reading {t}", file.display(), n + 1))?,
            ),
            _ => None,
        };
        out.push(Label { path, class, text });
    }
    Ok(out)
}

/// Precision and recall per class, and exact reply-text extraction.
#[derive(Debug, Default)]
pub struct Score {
    pub mails: usize,
    /// (expected, got) → count.
    pub confusion: BTreeMap<(String, String), usize>,
    pub texts: usize,
    pub texts_exact: usize,
    pub misses: Vec<String>,
}

/// Whitespace-insensitive comparison of extracted text.
fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    norm(a) == norm(b)
}

pub fn score(labels: &[Label]) -> anyhow::Result<Score> {
    let mut s = Score::default();
    for l in labels {
        let raw =
            std::fs::read(&l.path).with_context(|| format!("reading {}", l.path.display()))?;
        let ext = l.path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let raw = if matches!(ext, "txt" | "html" | "htm") && !looks_like_mail(&raw) {
            // A bare body (reply corpora): wrap it as a mail.
            let kind = if ext == "txt" { "plain" } else { "html" };
            let mut m = format!("From: someone@example.org\r\nSubject: x\r\nContent-Type: text/{kind}; charset=utf-8\r\n\r\n").into_bytes();
            m.extend_from_slice(&raw);
            m
        } else {
            raw
        };
        let i = inspect(&raw, &Options::default());
        s.mails += 1;
        if let Some(want) = l.class {
            *s.confusion
                .entry((want.as_str().to_string(), i.class.as_str().to_string()))
                .or_default() += 1;
            if want != i.class && s.misses.len() < 200 {
                s.misses.push(format!(
                    "{}: expected {}, got {} ({})",
                    l.path.display(),
                    want.as_str(),
                    i.class.as_str(),
                    i.class_reason
                ));
            }
        }
        if let Some(want) = &l.text {
            s.texts += 1;
            if same_text(want, &i.text) {
                s.texts_exact += 1;
            } else if s.misses.len() < 200 {
                s.misses
                    .push(format!("{}: new text differs", l.path.display()));
            }
        }
    }
    Ok(s)
}

/// Whether a labelled `.txt`/`.html` file is a whole mail rather than a
/// bare body: its first line is a header field. (A body may quote a
/// `From:` line further down.)
fn looks_like_mail(raw: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&raw[..raw.len().min(2000)]).to_ascii_lowercase();
    let first = head.lines().next().unwrap_or("");
    [
        "from:",
        "received:",
        "return-path:",
        "message-id:",
        "delivered-to:",
        "date:",
        "mime-version:",
        "x-",
    ]
    .iter()
    .any(|h| first.starts_with(h))
        && first.contains(':')
}

/// Prints the per-class table.
pub fn print_score(s: &Score, verbose: bool) {
    let mut per: HashMap<&str, (usize, usize, usize)> = HashMap::new(); // tp, fp, fn
    for ((want, got), n) in &s.confusion {
        if want == got {
            per.entry(want.as_str()).or_default().0 += n;
        } else {
            per.entry(got.as_str()).or_default().1 += n;
            per.entry(want.as_str()).or_default().2 += n;
        }
    }
    println!("{} mails", s.mails);
    println!(
        "{:<12} {:>6} {:>6} {:>6} {:>10} {:>8}",
        "class", "tp", "fp", "fn", "precision", "recall"
    );
    for c in Class::ALL {
        let (tp, fp, fneg) = per.get(c.as_str()).copied().unwrap_or_default();
        if tp + fp + fneg == 0 {
            continue;
        }
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                "-".to_string()
            } else {
                format!("{:.3}", a as f64 / b as f64)
            }
        };
        println!(
            "{:<12} {tp:>6} {fp:>6} {fneg:>6} {:>10} {:>8}",
            c.as_str(),
            ratio(tp, tp + fp),
            ratio(tp, tp + fneg)
        );
    }
    if s.texts > 0 {
        println!(
            "reply text extracted exactly: {}/{} = {:.1} %",
            s.texts_exact,
            s.texts,
            100.0 * s.texts_exact as f64 / s.texts as f64
        );
    }
    if verbose {
        for m in &s.misses {
            println!("  {m}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn cid_images_are_inlined_and_remote_ones_blocked() {
        let raw = b"From: a@example.org\r\nTo: support@example.com\r\nSubject: x\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n\
--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Look <img src=\"cid:logo@x\"> <img src=\"https://tracker.example.net/p.gif\"></p>\
<script>alert(1)</script>\r\n\
--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgo=\r\n--r--\r\n";
        let i = inspect(raw, &Options::default());
        let h = i.html_sanitized.unwrap();
        assert!(
            h.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""),
            "{h}"
        );
        assert!(!h.contains("tracker.example.net"), "{h}");
        assert!(!h.contains("script"), "{h}");
        assert_eq!(i.text.trim(), "Look");
    }
}
