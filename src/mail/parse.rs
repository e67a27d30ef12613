//! Raw RFC 5322 bytes → `Inbound`, the facts the rest of the daemon needs.
//!
//! Contract: never panics, always returns something. Whatever could not be
//! read cleanly (no headers at all, broken MIME, unknown charsets, raw 8-bit
//! headers) is listed in `problems`; the raw bytes are kept by the caller,
//! so nothing is lost by a best-effort reading.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use super::thread::normalize_message_id;

/// Charset assumed for undeclared 8-bit bytes that are not UTF-8 when
/// neither the mail nor the department's `fallback_charset` says
/// otherwise: windows-1252 is the common default of such clients.
pub const FALLBACK_CHARSET: &str = "windows-1252";
/// Most HTML kept for display (beyond it the HTML is cut; the text and the
/// raw mail are complete).
const MAX_HTML: usize = 4 * 1024 * 1024;
/// Text kept from a mail whose structure could not be read at all.
const MAX_FALLBACK_TEXT: usize = 1024 * 1024;
/// Longest subject kept (folded subjects may exceed one line, but
/// thousands of characters are an attack, not a subject).
const MAX_SUBJECT: usize = 2000;
/// Longest single header-derived value (a line is at most 998 bytes), and
/// the most Message-IDs kept from `References`.
const MAX_VALUE: usize = 998;
const MAX_REFERENCES: usize = 100;
/// Headers kept for routing rules.
const MAX_HEADERS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    /// Lowercased.
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    /// Without angle brackets: what `cid:` URLs in the HTML name.
    pub content_id: Option<String>,
    pub content: Vec<u8>,
}

/// How to read what a mail leaves undeclared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// The department's charset for undeclared 8-bit bytes that are not
    /// UTF-8 (see `fallback_charset`); `None` = windows-1252.
    pub fallback_charset: Option<&'a str>,
}

/// The headers that say a machine sent the mail (see `classify`).
#[derive(Debug, Clone, Default)]
pub struct AutoHeaders {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub list_id: Option<String>,
    pub return_path_empty: bool,
    pub x_loop: Vec<String>,
    /// `X-Autoreply`/`X-Autorespond`, as `Name: value`.
    pub x_autoreply: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// `Delivered-To`, `X-Original-To`, `Envelope-To`: where the mail was
    /// really delivered (a reply token may only be visible here).
    pub delivered_to: Vec<String>,
    pub subject: String,
    /// Unix seconds from the `Date` header.
    pub date: Option<i64>,
    pub text: String,
    /// The HTML body as sent (unsanitised: `mail::html::sanitize` it before
    /// display), when the mail has one.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    pub auto: AutoHeaders,
    /// Every header in order, names as written, values unfolded (decoded
    /// where mail-parser reads them as text); for routing rules.
    pub headers: Vec<(String, String)>,
    /// What could not be read cleanly; empty for a clean mail.
    pub problems: Vec<String>,
}

/// Reads a mail; see the module contract.
pub fn parse(raw: &[u8]) -> Inbound {
    parse_with(raw, Options::default())
}

/// `parse` with the department's reading options.
pub fn parse_with(raw: &[u8], options: Options<'_>) -> Inbound {
    match catch_unwind(AssertUnwindSafe(|| parse_inner(raw, options))) {
        Ok(inbound) => inbound.sanitized(),
        Err(_) => unreadable(raw, "the MIME parser failed on this mail").sanitized(),
    }
}

/// Text safe to store anywhere: NUL (which PostgreSQL refuses in text)
/// becomes U+FFFD, and the value is cut at `max` bytes on a char boundary.
pub fn clean_text(s: &str, max: usize) -> String {
    let mut s = if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_string()
    };
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Inbound {
    /// Every field made storable (see `clean_text`) and bounded.
    fn sanitized(mut self) -> Inbound {
        let value = |s: &mut String| *s = clean_text(s, MAX_VALUE);
        let mailbox = |m: &mut Mailbox| {
            m.email = clean_text(&m.email, 320);
            if let Some(n) = &mut m.name {
                *n = clean_text(n, MAX_VALUE);
            }
        };
        if let Some(id) = &mut self.message_id {
            value(id);
        }
        self.in_reply_to.truncate(MAX_REFERENCES);
        self.in_reply_to.iter_mut().for_each(value);
        let skip = self.references.len().saturating_sub(MAX_REFERENCES);
        self.references.drain(..skip);
        self.references.iter_mut().for_each(value);
        self.from.iter_mut().for_each(mailbox);
        for list in [&mut self.reply_to, &mut self.to, &mut self.cc] {
            list.truncate(1000);
            list.iter_mut().for_each(mailbox);
        }
        self.delivered_to.truncate(100);
        for (name, v) in &mut self.headers {
            *name = clean_text(name, 200);
            value(v);
        }
        self.delivered_to.iter_mut().for_each(value);
        self.subject = clean_text(&self.subject, MAX_SUBJECT);
        self.text = clean_text(&self.text, usize::MAX);
        if let Some(h) = &mut self.html {
            *h = clean_text(h, MAX_HTML);
        }
        for a in &mut self.attachments {
            if let Some(c) = &mut a.content_id {
                *c = clean_text(c, MAX_VALUE);
            }
            if let Some(f) = &mut a.filename {
                *f = clean_text(f, 255);
            }
            a.content_type = clean_text(&a.content_type, 255);
        }
        self
    }
}

/// What is kept of a mail nothing could be parsed from.
fn unreadable(raw: &[u8], why: &str) -> Inbound {
    let cut = &raw[..raw.len().min(MAX_FALLBACK_TEXT)];
    Inbound {
        text: String::from_utf8_lossy(cut).into_owned(),
        problems: vec![why.to_string()],
        ..Inbound::default()
    }
}

fn parse_inner(raw: &[u8], options: Options<'_>) -> Inbound {
    if raw.is_empty() {
        return unreadable(raw, "empty message");
    }
    let (raw, mut problems) = repair(raw);
    let raw = raw.as_ref();
    let Some(m) = MessageParser::default().parse(raw) else {
        return unreadable(raw, "no header could be read");
    };
    let fallback = fallback_charset(&m, options.fallback_charset);

    let subject = header_text(&m, "Subject", &fallback, &mut problems).unwrap_or_default();
    let repaired = repaired_address_headers(&m, &fallback, &mut problems);
    let pick = |name: &str, original: Option<&Address<'_>>| -> Vec<Mailbox> {
        match repaired
            .as_ref()
            .and_then(|r| r.header(name))
            .and_then(|h| h.as_address())
        {
            Some(a) => addresses(Some(a)),
            None => addresses(original),
        }
    };
    let from = pick("From", m.from()).into_iter().next();
    if from.is_none() {
        problems.push("no From address".to_string());
    }
    let delivered_to = [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
    ]
    .iter()
    .flat_map(|h| m.header_values(*h))
    .filter_map(|v| v.as_text())
    .map(|s| s.trim().trim_matches(['<', '>']).to_ascii_lowercase())
    .collect();

    let (text, text_problems) = body_text(&m, &fallback);
    let html = m
        .html_body
        .first()
        .and_then(|&i| match &m.parts.get(i as usize)?.body {
            PartType::Html(h) => Some(h.to_string()),
            _ => None,
        });
    problems.extend(text_problems);

    let attachments = m
        .attachments()
        .map(|a| Attachment {
            filename: a.attachment_name().map(str::to_string),
            content_type: a
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string())
                .to_ascii_lowercase(),
            content_id: a
                .content_id()
                .map(|c| c.trim().trim_matches(['<', '>']).to_string())
                .filter(|c| !c.is_empty()),
            content: a.contents().to_vec(),
        })
        .collect();

    Inbound {
        message_id: m
            .message_id()
            .map(normalize_message_id)
            .filter(|s| !s.is_empty()),
        in_reply_to: ids(m.in_reply_to()),
        references: ids(m.references()),
        from,
        reply_to: pick("Reply-To", m.reply_to()),
        to: pick("To", m.to()),
        cc: pick("Cc", m.cc()),
        delivered_to,
        subject,
        date: m.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp()),
        text,
        html,
        attachments,
        auto: auto_headers(&m),
        headers: all_headers(&m),
        problems,
    }
}

fn all_headers(m: &Message<'_>) -> Vec<(String, String)> {
    m.headers()
        .iter()
        .take(MAX_HEADERS)
        .map(|h| {
            let value = match h.value().as_text() {
                Some(t) => t.to_string(),
                None => {
                    let start = usize::try_from(h.offset_start).unwrap_or(0);
                    let end = usize::try_from(h.offset_end).unwrap_or(0);
                    let raw = m.raw_message.get(start..end).unwrap_or_default();
                    unfold(&String::from_utf8_lossy(raw))
                }
            };
            (h.name().to_string(), value)
        })
        .collect()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(s) => vec![normalize_message_id(s)],
        HeaderValue::TextList(l) => l.iter().map(|s| normalize_message_id(s)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

fn addresses(a: Option<&Address<'_>>) -> Vec<Mailbox> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|x| {
            let email = x.address()?.trim().to_ascii_lowercase();
            email.contains('@').then(|| Mailbox {
                name: x
                    .name()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
                email,
            })
        })
        .collect()
}

/// The charset undeclared 8-bit bytes are read in when they are not valid
/// UTF-8: the first charset a text part of the mail declares (clients write
/// raw headers in the charset of their body), else the department's
/// `fallback_charset`, else windows-1252.
fn fallback_charset(m: &Message<'_>, configured: Option<&str>) -> String {
    m.parts
        .iter()
        .filter(|p| matches!(p.body, PartType::Text(_) | PartType::Html(_)))
        .filter_map(|p| p.content_type()?.attribute("charset"))
        .find(|cs| {
            let l = cs.to_ascii_lowercase();
            !["utf-8", "utf8", "us-ascii", "ascii"].contains(&l.as_str())
                && charset_decoder(cs.as_bytes()).is_some()
        })
        .or(configured.filter(|c| charset_decoder(c.as_bytes()).is_some()))
        .unwrap_or(FALLBACK_CHARSET)
        .to_string()
}

/// The raw bytes of the last header called `name`.
fn raw_header<'a>(m: &'a Message<'_>, name: &str) -> Option<&'a [u8]> {
    let header = m
        .headers()
        .iter()
        .rev()
        .find(|h| h.name().eq_ignore_ascii_case(name))?;
    let start = usize::try_from(header.offset_start).ok()?;
    let end = usize::try_from(header.offset_end).ok()?;
    m.raw_message.get(start..end)
}

fn is_raw_8bit(raw: &[u8]) -> bool {
    !raw.is_ascii() && std::str::from_utf8(raw).is_err()
}

/// A header as text; raw 8-bit bytes that are not UTF-8 are decoded with
/// the fallback charset (and noted) instead of being replaced.
fn header_text(
    m: &Message<'_>,
    name: &str,
    fallback: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    let raw = raw_header(m, name)?;
    if is_raw_8bit(raw) {
        problems.push(format!(
            "undeclared 8-bit bytes in the {name} header (read as {fallback})"
        ));
        let decode = charset_decoder(fallback.as_bytes())?;
        return Some(unfold(&decode(raw)));
    }
    let value = m
        .header(name)?
        .as_text()
        .map(str::to_string)
        .unwrap_or_default();
    if value.contains('\u{FFFD}') {
        problems.push(format!("undecodable characters in the {name} header"));
    }
    Some(value)
}

/// Address headers with raw 8-bit display names, decoded with the
/// fallback charset and parsed again; `None` when all were clean.
fn repaired_address_headers(
    m: &Message<'_>,
    fallback: &str,
    problems: &mut Vec<String>,
) -> Option<Message<'static>> {
    let decode = charset_decoder(fallback.as_bytes())?;
    let mut block = String::new();
    for name in ["From", "To", "Cc", "Reply-To"] {
        if let Some(raw) = raw_header(m, name)
            && is_raw_8bit(raw)
        {
            problems.push(format!(
                "undeclared 8-bit bytes in the {name} header (read as {fallback})"
            ));
            block.push_str(&format!("{name}:{}\r\n", decode(raw).trim_end()));
        }
    }
    if block.is_empty() {
        return None;
    }
    block.push_str("\r\n");
    MessageParser::default()
        .parse(block.as_bytes())
        .map(Message::into_owned)
}

fn unfold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Mistakes of real mail fixed before parsing, each noted: bare CR line
/// ends (old Mac clients), a header block without a final line end, and
/// `Content-Type` parameters written on a line of their own without the
/// folding whitespace (some webmailers). Header lines without a colon are
/// only noted. Linear in the size of the mail.
fn repair(raw: &[u8]) -> (Cow<'_, [u8]>, Vec<String>) {
    let mut problems = Vec::new();
    let mut out = Cow::Borrowed(raw);
    if !raw.contains(&b'\n') && raw.contains(&b'\r') {
        problems.push("bare CR line ends (read as CRLF)".to_string());
        let mut v = Vec::with_capacity(raw.len() + raw.len() / 32);
        for &b in raw {
            v.push(b);
            if b == b'\r' {
                v.push(b'\n');
            }
        }
        out = Cow::Owned(v);
    }
    // Lines, with the header block of the top level and of each part.
    let mut fixed: Option<Vec<u8>> = None;
    let mut in_header = true;
    let mut prev_param_open = false;
    let mut pos = 0;
    let bytes = out.as_ref();
    let mut no_colon = 0usize;
    // Boundaries declared so far: only their delimiter lines start a
    // part's header block (a `-- ` signature or `-----Original Message`
    // in a body does not).
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            in_header = false;
            prev_param_open = false;
        } else if content.starts_with(b"--")
            && boundaries.iter().any(|b| content[2..].starts_with(b))
        {
            // A MIME boundary: a part's header block follows.
            in_header = true;
            prev_param_open = false;
        } else if in_header {
            if let Some(b) = declared_boundary(content)
                && boundaries.len() < 64
            {
                boundaries.push(b);
            }
            let starts_ws = matches!(content[0], b' ' | b'\t');
            let lower: Vec<u8> = content
                .iter()
                .take(24)
                .map(u8::to_ascii_lowercase)
                .collect();
            let param = [&b"boundary="[..], b"charset=", b"name=", b"filename="]
                .iter()
                .any(|p| lower.starts_with(p));
            if !starts_ws && prev_param_open && param {
                let v = fixed.get_or_insert_with(|| bytes[..pos].to_vec());
                v.push(b'\t');
                if !problems
                    .iter()
                    .any(|p: &String| p.starts_with("a Content-Type parameter"))
                {
                    problems.push(
                        "a Content-Type parameter on a line of its own (read as folded)"
                            .to_string(),
                    );
                }
            } else if !starts_ws && !content.contains(&b':') {
                no_colon += 1;
            }
            let header_start =
                lower.starts_with(b"content-type:") || lower.starts_with(b"content-disposition:");
            prev_param_open =
                (header_start || (starts_ws && prev_param_open) || (param && prev_param_open))
                    && content.trim_ascii_end().ends_with(b";");
        }
        if let Some(v) = &mut fixed {
            v.extend_from_slice(line);
        }
        pos = end;
    }
    if no_colon > 0 {
        problems.push(format!("{no_colon} header line(s) without a colon"));
    }
    if let Some(v) = fixed {
        out = Cow::Owned(v);
    }
    // Headers only, the last one without a line end: mail-parser would
    // drop it.
    let b = out.as_ref();
    if !b.ends_with(b"\n")
        && !b.windows(2).any(|w| w == b"\n\n")
        && !b.windows(3).any(|w| w == b"\n\r\n")
    {
        problems.push("no body: the header block does not end".to_string());
        let mut v = out.into_owned();
        v.extend_from_slice(b"\r\n\r\n");
        out = Cow::Owned(v);
    }
    (out, problems)
}

/// The `boundary=` value a header line declares, if any.
fn declared_boundary(line: &[u8]) -> Option<Vec<u8>> {
    let lower: Vec<u8> = line.iter().map(u8::to_ascii_lowercase).collect();
    let at = lower.windows(9).position(|w| w == b"boundary=")? + 9;
    let rest = &line[at..];
    let value: Vec<u8> = if let Some(q) = rest.strip_prefix(b"\"") {
        q.iter().take_while(|&&c| c != b'"').copied().collect()
    } else {
        rest.iter()
            .take_while(|&&c| !matches!(c, b';' | b' ' | b'\t' | b'\r'))
            .copied()
            .collect()
    };
    (!value.is_empty()).then_some(value)
}

/// Decodes UTF-7 (RFC 2152): mail-parser's decoder drops the character
/// that ends a base64 run when it is not `-`.
fn decode_utf7(bytes: &[u8]) -> String {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = String::with_capacity(bytes.len());
    let mut units: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'+' {
            out.push(if b.is_ascii() { b as char } else { '\u{FFFD}' });
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'-') {
            out.push('+');
            i += 1;
            continue;
        }
        let (mut acc, mut bits) = (0u32, 0u32);
        units.clear();
        while let Some(v) = bytes.get(i).and_then(|&c| value(c)) {
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
            i += 1;
        }
        out.extend(char::decode_utf16(units.iter().copied()).map(|r| r.unwrap_or('\u{FFFD}')));
        // A `-` ends the run and is absorbed; anything else is text.
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    out
}

/// A text part whose bytes mail-parser could not read right, decoded
/// again from its raw bytes: UTF-7 (see `decode_utf7`), and parts without
/// a declared charset, or with one nobody knows, whose bytes are not
/// UTF-8 (read with the fallback charset instead of replaced).
fn undeclared_8bit_text(m: &Message<'_>, index: usize, fallback: &str) -> Option<String> {
    let part = m.parts.get(index)?;
    let PartType::Text(text) = &part.body else {
        return None;
    };
    let declared = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_ascii_lowercase);
    let utf7 = matches!(
        declared.as_deref(),
        Some("utf-7" | "utf7" | "unicode-1-1-utf-7")
    );
    let known = declared
        .as_deref()
        .is_some_and(|cs| charset_decoder(cs.as_bytes()).is_some());
    if !utf7 && (known || !text.contains('\u{FFFD}')) {
        return None;
    }
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let body = m.raw_message.get(start..end)?;
    let bytes = match part.encoding {
        mail_parser::Encoding::None => body.to_vec(),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)?
        }
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(body)?,
    };
    if utf7 {
        return Some(decode_utf7(&bytes));
    }
    if std::str::from_utf8(&bytes).is_ok() {
        return None;
    }
    Some(charset_decoder(fallback.as_bytes())?(&bytes))
}

fn body_text(m: &Message<'_>, fallback: &str) -> (String, Vec<String>) {
    let mut problems = Vec::new();
    if m.parts.iter().any(|p| p.is_encoding_problem) {
        problems.push("broken MIME structure or transfer encoding".to_string());
    }
    for part in m.parts.iter() {
        if matches!(part.body, PartType::Text(_) | PartType::Html(_))
            && let Some(cs) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && charset_decoder(cs.as_bytes()).is_none()
            && !["utf-8", "utf8", "us-ascii", "ascii"].contains(&cs.to_ascii_lowercase().as_str())
        {
            problems.push(format!("unknown charset `{cs}`"));
        }
    }
    let redecoded = m
        .text_body
        .first()
        .and_then(|&i| undeclared_8bit_text(m, i as usize, fallback));
    let utf7 = m.text_body.first().and_then(|&i| {
        m.parts
            .get(i as usize)?
            .content_type()?
            .attribute("charset")
            .map(|c| c.to_ascii_lowercase().contains("utf-7") || c.eq_ignore_ascii_case("utf7"))
    }) == Some(true);
    if redecoded.is_some() && !utf7 {
        problems.push(format!(
            "undeclared 8-bit bytes in the text (read as {fallback})"
        ));
    }
    // An HTML-only mail: our own HTML-to-text, which marks quoted history
    // for the splitter (mail-parser's conversion drops that structure).
    let from_html = || {
        let &i = m.text_body.first()?;
        match &m.parts.get(i as usize)?.body {
            PartType::Html(h) => Some(Cow::Owned(super::html::to_text(h))),
            _ => None,
        }
    };
    let text = match redecoded
        .map(Cow::Owned)
        .or_else(from_html)
        .or_else(|| m.body_text(0))
    {
        Some(t) => t.into_owned(),
        None => {
            // No text part: a multipart whose boundary never matches, or a
            // body of only binary parts. Keep whatever text the root has.
            let root_type = m.content_type().map(|ct| ct.ctype().to_ascii_lowercase());
            let textual = matches!(
                root_type.as_deref(),
                None | Some("multipart") | Some("text")
            );
            let raw_body = m.parts.first().map(|p| p.contents()).unwrap_or_default();
            if textual && !raw_body.is_empty() {
                if root_type.as_deref() == Some("multipart") {
                    problems
                        .push("no readable text part (broken multipart structure?)".to_string());
                }
                let cut = &raw_body[..raw_body.len().min(MAX_FALLBACK_TEXT)];
                String::from_utf8_lossy(cut).into_owned()
            } else {
                String::new()
            }
        }
    };
    if text.contains('\u{FFFD}') && !problems.iter().any(|p| p.starts_with("unknown charset")) {
        problems.push("undecodable characters in the text".to_string());
    }
    (text, problems)
}

/// Every occurrence of a header, raw and trimmed, whatever its bytes
/// (a forwarded or relayed mail can carry several).
fn all_raw(m: &Message<'_>, name: &str) -> Vec<String> {
    m.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| {
            let start = usize::try_from(h.offset_start).ok()?;
            let end = usize::try_from(h.offset_end).ok()?;
            let raw = m.raw_message.get(start..end)?;
            Some(unfold(&String::from_utf8_lossy(raw)))
        })
        .collect()
}

fn auto_headers(m: &Message<'_>) -> AutoHeaders {
    // Any occurrence that says "machine" counts.
    let auto_submitted = all_raw(m, "Auto-Submitted");
    let precedence = all_raw(m, "Precedence");
    let x_autoreply = ["X-Autoreply", "X-Autorespond"].iter().find_map(|h| {
        all_raw(m, h)
            .into_iter()
            .next()
            .map(|v| format!("{h}: {v}"))
    });
    AutoHeaders {
        auto_submitted: auto_submitted
            .iter()
            .find(|v| !v.eq_ignore_ascii_case("no"))
            .or(auto_submitted.first())
            .cloned(),
        precedence: precedence
            .iter()
            .find(|v| {
                ["bulk", "junk", "list", "auto_reply"].contains(&v.to_ascii_lowercase().as_str())
            })
            .or(precedence.first())
            .cloned(),
        list_id: all_raw(m, "List-Id").into_iter().next(),
        return_path_empty: all_raw(m, "Return-Path")
            .iter()
            .any(|v| v.trim_matches(['<', '>', ' ']).is_empty()),
        x_loop: all_raw(m, "X-Loop"),
        x_autoreply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plain_mail() {
        let m = parse(
            b"From: =?utf-8?q?Ay=C5=9Fe?= <Ayse@Example.org>\r\nTo: support@example.com\r\n\
Cc: a@x.org, B <b@x.org>\r\nSubject: =?windows-1254?Q?Yaz=FDc=FD?=\r\nMessage-ID: <m1@x>\r\n\
In-Reply-To: <p@x>\r\nReferences: <a@x> <p@x>\r\nDelivered-To: support+tok@example.com\r\n\r\nHello\r\n",
        );
        assert_eq!(m.from.as_ref().unwrap().email, "ayse@example.org");
        assert_eq!(m.from.as_ref().unwrap().name.as_deref(), Some("Ayşe"));
        assert_eq!(m.subject, "Yazıcı");
        assert_eq!(m.message_id.as_deref(), Some("m1@x"));
        assert_eq!(m.in_reply_to, vec!["p@x"]);
        assert_eq!(m.references, vec!["a@x", "p@x"]);
        assert_eq!(m.cc.len(), 2);
        assert_eq!(m.delivered_to, vec!["support+tok@example.com"]);
        assert_eq!(m.text.trim(), "Hello");
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }

    #[test]
    fn nul_bytes_and_huge_headers_become_storable() {
        let long = "x".repeat(100_000);
        let raw = format!(
            "From: a\0b <a@x.org>\r\nSubject: S\0{long}\r\nMessage-ID: <{long}@x>\r\n\r\nbody\0end\r\n"
        );
        let m = parse(raw.as_bytes());
        assert!(
            !m.subject.contains('\0') && m.subject.len() <= MAX_SUBJECT,
            "{}",
            m.subject.len()
        );
        assert!(m.message_id.unwrap().len() <= MAX_VALUE);
        assert_eq!(m.text.trim_end(), "body\u{FFFD}end");
        assert!(!m.from.unwrap().name.unwrap_or_default().contains('\0'));
        let m = parse(b"\0\0 no header\n");
        assert!(!m.text.contains('\0'));
    }

    #[test]
    fn unreadable_input_is_kept_as_text_and_flagged() {
        for raw in [&b""[..], b"just some words without any header\n"] {
            let m = parse(raw);
            assert!(!m.problems.is_empty());
            assert_eq!(m.text.as_bytes(), raw);
        }
    }

    #[test]
    fn raw_8bit_subject_is_decoded_not_replaced() {
        let m = parse(b"From: a@x.org\r\nSubject: Caf\xe9 cr\xe8me\r\n\r\nbody\r\n");
        assert_eq!(m.subject, "Café crème");
        assert!(m.problems[0].contains("8-bit"), "{:?}", m.problems);
    }

    #[test]
    fn raw_8bit_headers_are_read_in_the_body_charset() {
        let m = parse(
            b"From: \xde\xfckr\xfc <S@x.org>\r\nSubject: Yaz\xfdc\xfd\r\nContent-Type: text/plain; charset=windows-1254\r\n\r\nMerhaba\r\n",
        );
        assert_eq!(m.subject, "Yazıcı");
        let from = m.from.unwrap();
        assert_eq!(
            (from.name.as_deref(), from.email.as_str()),
            (Some("Şükrü"), "s@x.org")
        );
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
    }

    #[test]
    fn unknown_charset_and_broken_boundary_are_flagged() {
        let m = parse(
            b"From: a@x.org\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nCaf\xe9\r\n",
        );
        assert!(
            m.problems.iter().any(|p| p.contains("x-klingon")),
            "{:?}",
            m.problems
        );
        let m = parse(
            b"From: a@x.org\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n--WRONG\r\nContent-Type: text/plain\r\n\r\nhello\r\n--WRONG--\r\n",
        );
        assert!(m.text.contains("hello"), "{:?}", m.text);
        assert!(!m.problems.is_empty());
    }

    #[test]
    fn null_return_path_and_auto_headers_are_read() {
        let m = parse(b"Return-Path: <>\r\nFrom: a@x.org\r\nAuto-Submitted: auto-replied\r\nPrecedence: bulk\r\nList-Id: <l.x.org>\r\nX-Loop: hd\r\n\r\nx");
        assert!(m.auto.return_path_empty);
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(m.auto.precedence.as_deref(), Some("bulk"));
        assert_eq!(m.auto.list_id.as_deref(), Some("<l.x.org>"));
        assert_eq!(m.auto.x_loop, vec!["hd"]);
    }

    #[test]
    fn every_occurrence_of_an_auto_header_counts() {
        let m = parse(
            b"From: a@x.org\r\nAuto-Submitted: auto-replied\r\nAuto-Submitted: no\r\n\
Precedence: bulk\r\nPrecedence: normal\r\nReturn-Path: <>\r\nReturn-Path: <a@x.org>\r\n\
X-Loop: one@x.org\r\nX-Loop: Caf\xe9@x.org\r\n\r\nbody",
        );
        assert_eq!(m.auto.auto_submitted.as_deref(), Some("auto-replied"));
        assert_eq!(m.auto.precedence.as_deref(), Some("bulk"));
        assert!(m.auto.return_path_empty);
        assert_eq!(m.auto.x_loop.len(), 2);
    }

    #[test]
    fn attachments_are_decoded() {
        let m = parse(
            b"From: a@x.org\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n",
        );
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename.as_deref(), Some("a.pdf"));
        assert_eq!(m.attachments[0].content_type, "application/pdf");
        assert_eq!(m.attachments[0].content, b"%PDF-1.4\n");
        assert_eq!(m.text.trim(), "see file");
    }

    #[test]
    fn utf7_keeps_the_character_that_ends_a_run() {
        assert_eq!(decode_utf7(b"Hi Mom -+Jjo--!"), "Hi Mom -\u{263A}-!");
        assert_eq!(decode_utf7(b"A+ImIDkQ."), "A\u{2262}\u{391}.");
        assert_eq!(
            decode_utf7(b"yaz+ATE-c+ATE- +AOc-al"),
            "yaz\u{131}c\u{131} \u{e7}al"
        );
        assert_eq!(decode_utf7(b"1 +- 1"), "1 + 1");
        assert_eq!(decode_utf7(b"+2D3eAA- x"), "\u{1F600} x");
        // Broken input is read, never a panic.
        assert_eq!(decode_utf7(b"+"), "");
        assert_eq!(decode_utf7(b"+2D3"), "\u{FFFD}");
    }

    #[test]
    fn bare_cr_mail_and_unfolded_parameters_are_repaired_and_flagged() {
        let m = parse(b"From: a@example.org\rSubject: Old Mac\r\rHello\r");
        assert_eq!(m.from.unwrap().email, "a@example.org");
        assert_eq!(m.subject, "Old Mac");
        assert!(
            m.problems.iter().any(|p| p.contains("bare CR")),
            "{:?}",
            m.problems
        );

        let raw = b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative;\r\nboundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nfound me\r\n--b--\r\n";
        let m = parse(raw);
        assert_eq!(m.text.trim(), "found me");
        assert!(
            m.problems.iter().any(|p| p.contains("line of its own")),
            "{:?}",
            m.problems
        );

        // Body lines that only look like MIME are left alone.
        let m = parse(
            b"From: a@example.org\r\nSubject: x\r\n\r\nHi\r\n-- \r\nAnn\r\n\
-----Original Message-----\r\nno colon here\r\nContent-Type: text/plain;\r\ncharset=x\r\n",
        );
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert!(m.text.contains("text/plain;\r\ncharset=x"), "{:?}", m.text);
        let m = parse(b"From: a@example.org\nSubject: x\n\r\nbody");
        assert!(m.problems.is_empty(), "{:?}", m.problems);

        let m = parse(b"From: a@example.org\r\nSubject: last line");
        assert_eq!(m.subject, "last line");
        assert!(
            m.problems.iter().any(|p| p.contains("no body")),
            "{:?}",
            m.problems
        );
    }
}
