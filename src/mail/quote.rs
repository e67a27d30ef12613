//! The new text of a reply, without the quoted history, and its signature.
//!
//! The history starts at the first of:
//! - an attribution line (`On … wrote:` and its translations: Turkish
//!   `… şunu yazdı:`, Czech `… napsal(a):`, German `Am … schrieb …:`,
//!   French `Le … a écrit :`, Spanish, Italian, Dutch, Polish, Portuguese,
//!   Russian, Ukrainian, Scandinavian, Chinese; Gmail's `2026-01-05 10:00
//!   GMT+01:00 Name <a@x>:`), possibly wrapped over several lines. A real
//!   attribution names a date or an address, so prose such as "As my
//!   manager wrote:" does not count; one that names neither an address nor
//!   a time counts only when a `>` quote follows it;
//! - a separator line (`-----Original Message-----`, ProtonMail's
//!   `------- Original Message -------`, `---------- Forwarded message
//!   ---------`, Apple's `Begin forwarded message:`, their translations,
//!   Outlook's line of underscores);
//! - an Outlook header block (`From:`/`Sent:`/`To:`/`Subject:`, also
//!   localised: `De:`/`Envoyé :`, `Von:`/`Gesendet:`, `Kimden:`/
//!   `Gönderildi:`, `Od:`/`Odesláno:`, `От:`/`Отправлено:`, …);
//! - a run of `>` lines that goes on to the end of the text.
//!
//! When unsure it keeps the text: losing the customer's words is worse than
//! showing some history. So an attribution followed by a `>` quote and then
//! more unquoted text is an inline reply, kept whole; a history at the very
//! top (a reply written below the quote, a forward without a comment) is
//! skipped and what follows it is the new text; only a text that is nothing
//! but history (an attribution or separator and its quote, nothing written
//! after it) has an empty new text. A text made only of `>` lines with no
//! attribution is kept.
//!
//! The signature is the end of the new text after a `-- ` line, or a
//! trailing mobile line ("Sent from my iPhone", "iPhone'umdan gönderildi",
//! "Odesláno z iPhonu", "Get Outlook for Android", …). [`new_text`] is the
//! new text with its signature; [`split`] separates them.
//!
//! Everything is one pass over the lines, each looking at a few lines
//! around it, and only the first [`MAX_SCAN`] bytes are searched.

/// Only this much of a text is searched for the start of the history;
/// a longer text keeps everything after it.
const MAX_SCAN: usize = 256 * 1024;

/// The part of `text` written for this mail, signature included: `text`
/// itself when it has no history, else the trimmed new text (empty when
/// the text is nothing but history).
pub fn new_text(text: &str) -> &str {
    let (start, end) = bounds(text);
    if start == 0 && end == text.len() {
        text
    } else {
        clean(&text[start..end])
    }
}

/// A mail's text in three parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split<'a> {
    /// What was written for this mail, without its signature.
    pub text: &'a str,
    /// The quoted history: after the new text, or before it when the
    /// reply was written below the quote.
    pub quoted: &'a str,
    /// The signature at the end of the new text (`-- ` block or a mobile
    /// "Sent from my ..." line).
    pub signature: &'a str,
}

/// Splits `text` into new text, signature and quoted history;
/// `text` + `signature` is [`new_text`].
pub fn split(text: &str) -> Split<'_> {
    let (start, end) = bounds(text);
    let new = if start == 0 && end == text.len() {
        text
    } else {
        clean(&text[start..end])
    };
    let after = text[end..].trim();
    let quoted = if after.is_empty() {
        text[..start].trim()
    } else {
        after
    };
    let (body, signature) = signature_split(new);
    Split {
        text: body,
        quoted,
        signature,
    }
}

/// Characters that count as blank around a line: white space, zero-width
/// characters and the dot Gmail's read-tracking extensions add (U+1427).
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{1427}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'
        )
}

fn clean(s: &str) -> &str {
    s.trim_matches(invisible)
}

/// Lowercase, for matching: Turkish `İ` without its combining dot, typographic
/// apostrophes and full-width colons as ASCII.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter(|&c| c != '\u{307}')
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' => '\'',
            '\u{ff1a}' => ':',
            '\u{a0}' | '\u{202f}' => ' ',
            c => c,
        })
        .collect()
}

/// The scanned lines of a text.
struct Lines<'a> {
    /// Each line without its end and surrounding blanks.
    line: Vec<&'a str>,
    /// Where each line starts in the text; one more entry: where the scan
    /// ends.
    start: Vec<usize>,
    /// Whether the scan stopped before the end of the text.
    truncated: bool,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut end = text.len().min(MAX_SCAN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut line = Vec::new();
        let mut start = Vec::new();
        let mut offset = 0;
        for l in text[..end].split_inclusive('\n') {
            line.push(clean(l));
            start.push(offset);
            offset += l.len();
        }
        start.push(end);
        Lines {
            line,
            start,
            truncated: end < text.len(),
        }
    }

    fn len(&self) -> usize {
        self.line.len()
    }

    /// The first line at or after `i` that is not blank.
    fn skip_blank(&self, mut i: usize) -> usize {
        while i < self.len() && self.line[i].is_empty() {
            i += 1;
        }
        i
    }

    /// The first line at or after `i` that is neither a quote nor blank.
    fn skip_quote(&self, mut i: usize) -> usize {
        while i < self.len() && (self.line[i].is_empty() || is_quote(self.line[i])) {
            i += 1;
        }
        i
    }
}

fn is_quote(line: &str) -> bool {
    line.starts_with('>')
}

fn is_signature_marker(line: &str) -> bool {
    line == "--"
}

/// A line drawn with `-`, `_`, `=`, `*`, …: no words.
fn is_decoration(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| "-_=*~#+.•·–—‐".contains(c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Separator,
    Headers,
    /// `strong`: names an address or a time, not only a date.
    Attribution {
        strong: bool,
    },
}

/// Where the history starts, as a byte range of the new text.
fn bounds(text: &str) -> (usize, usize) {
    let lines = Lines::new(text);
    let n = lines.len();
    // tail_quoted[i]: every line from i on is a quote or blank (or below a
    // signature marker): one backward pass, linear in the text.
    let mut tail_quoted = vec![!lines.truncated; n + 1];
    for i in (0..n).rev() {
        let l = lines.line[i];
        tail_quoted[i] =
            is_signature_marker(l) || ((l.is_empty() || is_quote(l)) && tail_quoted[i + 1]);
    }
    // The new text starts at `top`; `written`: something of it seen.
    let mut top = 0;
    let mut written = false;
    let mut i = 0;
    while i < n {
        let l = lines.line[i];
        if l.is_empty() || is_decoration(l) {
            i += 1;
            continue;
        }
        if is_quote(l) {
            if written {
                if tail_quoted[i] {
                    return cut(&lines, top, i);
                }
                // An inline quote: kept.
                i += 1;
                continue;
            }
            // A quote at the top: history when it opens with an
            // attribution or a separator.
            if !quoted_history(&lines, i) {
                written = true;
                i += 1;
                continue;
            }
            i = lines.skip_quote(i);
            top = i;
            continue;
        }
        let Some((kind, len)) = history_at(&lines, i) else {
            written = true;
            i += 1;
            continue;
        };
        let after = lines.skip_blank(i + len);
        match kind {
            Kind::Separator | Kind::Headers if written => return cut(&lines, top, i),
            Kind::Separator | Kind::Headers => {
                // A forward without a comment: what was forwarded is the text.
                i += len;
                if kind == Kind::Separator
                    && let Some((Kind::Headers, len)) =
                        (after < n).then(|| history_at(&lines, after)).flatten()
                {
                    i = after + len;
                }
                top = i;
            }
            Kind::Attribution { strong } => {
                if after < n && is_quote(lines.line[after]) {
                    let next = lines.skip_quote(after);
                    if !written {
                        // Written below the quote.
                        i = next;
                        top = i;
                    } else if next < n && is_reply_text(&lines, next)
                        || next >= n && lines.truncated
                    {
                        // An inline reply: keep it all.
                        i = next;
                    } else {
                        return cut(&lines, top, i);
                    }
                } else if strong || after >= n {
                    // The original follows without `>` (Outlook mobile,
                    // Android): everything after the attribution is history,
                    // or, at the top, the attribution alone.
                    if written {
                        return cut(&lines, top, i);
                    }
                    i += len;
                    top = i;
                } else {
                    // A date and words ending in "wrote:" but no quote, no
                    // address, no time: prose.
                    written = true;
                    i += 1;
                }
            }
        }
    }
    (lines.start[top.min(n)], text.len())
}

/// The new text from line `top` up to the history starting at line `at`,
/// without the blank and decoration lines before the history.
fn cut(lines: &Lines<'_>, top: usize, at: usize) -> (usize, usize) {
    let mut end = at;
    while end > top && (lines.line[end - 1].is_empty() || is_decoration(lines.line[end - 1])) {
        end -= 1;
    }
    (lines.start[top], lines.start[end])
}

/// Words of the customer after an inline quote, not the quoted mail's
/// signature or history.
fn is_reply_text(lines: &Lines<'_>, i: usize) -> bool {
    let l = lines.line[i];
    !l.is_empty()
        && !is_quote(l)
        && !is_signature_marker(l)
        && !is_decoration(l)
        && !is_mobile_signature(l)
        && history_at(lines, i).is_none()
}

/// A `>` block that opens with an attribution or a separator.
fn quoted_history(lines: &Lines<'_>, i: usize) -> bool {
    fn unquote(l: &str) -> &str {
        l.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
    }
    let first = unquote(lines.line[i]);
    if first.len() > 300 {
        return false;
    }
    if is_separator(first) || attribution_text(first).is_some() {
        return true;
    }
    match lines.line.get(i + 1) {
        Some(next) if is_quote(next) && next.len() <= 300 => {
            attribution_text(&format!("{first} {}", unquote(next))).is_some()
        }
        _ => false,
    }
}

/// The history that starts at line `i` (not blank, not a quote), and how
/// many lines its first part (the attribution or the separator or header
/// lines) takes.
fn history_at(lines: &Lines<'_>, i: usize) -> Option<(Kind, usize)> {
    let l = lines.line[i];
    if is_separator(l) {
        return Some((Kind::Separator, 1));
    }
    if let Some(len) = header_block(lines, i) {
        return Some((Kind::Headers, len));
    }
    attribution(lines, i).map(|(len, strong)| (Kind::Attribution { strong }, len))
}

/// Separator lines, lowercase, without their dashes and final colon.
const SEPARATORS: &[&str] = &[
    "original message",
    "original e-mail",
    "forwarded message",
    "forwarded e-mail",
    "begin forwarded message",
    "reply message",
    // de
    "ursprüngliche nachricht",
    "weitergeleitete nachricht",
    "anfang der weitergeleiteten nachricht",
    // fr
    "message d'origine",
    "message original",
    "message transféré",
    "début du message réexpédié",
    "début du message transféré",
    // es
    "mensaje original",
    "mensaje reenviado",
    "comienzo del mensaje reenviado",
    // it
    "messaggio originale",
    "messaggio inoltrato",
    "inizio messaggio inoltrato",
    // nl
    "oorspronkelijk bericht",
    "origineel bericht",
    "doorgestuurd bericht",
    "begin doorgestuurd bericht",
    // pt
    "mensagem original",
    "mensagem encaminhada",
    "início da mensagem reencaminhada",
    "início da mensagem encaminhada",
    // tr
    "orijinal ileti",
    "özgün ileti",
    "orijinal mesaj",
    "iletilen ileti",
    "iletilmiş ileti",
    "iletilen mesaj",
    // cs
    "původní zpráva",
    "přeposlaná zpráva",
    "začátek přeposílané zprávy",
    // pl
    "oryginalna wiadomość",
    "wiadomość oryginalna",
    "przekazana wiadomość",
    "wiadomość przekazana dalej",
    // ru, uk
    "исходное сообщение",
    "пересылаемое сообщение",
    "переслано",
    "начало переадресованного сообщения",
    "оригінальне повідомлення",
    "пересланий лист",
    // sv, no, da, fi
    "ursprungligt meddelande",
    "vidarebefordrat meddelande",
    "opprinnelig melding",
    "videresendt melding",
    "oprindelig meddelelse",
    "videresendt meddelelse",
    "alkuperäinen viesti",
    "välitetty viesti",
];

fn is_separator(line: &str) -> bool {
    if line.len() > 120 {
        return false;
    }
    // Outlook's line (32 underscores, more or fewer in some versions).
    if line.len() >= 30 && line.chars().all(|c| c == '_') {
        return true;
    }
    let core = line.trim_matches(|c: char| c.is_whitespace() || "-_=*‐–—".contains(c));
    if core.len() < 6 {
        return false;
    }
    let f = fold(core);
    let f = f.trim_end_matches([':', ' ']);
    SEPARATORS.contains(&f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    From,
    Sent,
    Other,
    /// `Word: value`, a header these lists do not know.
    Unknown,
}

const FROM_LABELS: &[&str] = &[
    "from",
    "von",
    "de",
    "da",
    "van",
    "kimden",
    "gönderen",
    "od",
    "от",
    "від",
    "från",
    "fra",
    "lähettäjä",
    "feladó",
    "nadawca",
    "afzender",
    "absender",
    "expéditeur",
    "remitente",
    "mittente",
    "发件人",
    "寄件者",
    "差出人",
];

const SENT_LABELS: &[&str] = &[
    "sent",
    "date",
    "gesendet",
    "datum",
    "envoyé",
    "enviado",
    "enviado el",
    "enviada em",
    "fecha",
    "inviato",
    "data",
    "verzonden",
    "verstuurd",
    "gönderildi",
    "gönderilme",
    "tarih",
    "odesláno",
    "wysłano",
    "wysłane",
    "отправлено",
    "дата",
    "надіслано",
    "skickat",
    "sendt",
    "lähetetty",
    "päivämäärä",
    "elküldve",
    "dátum",
    "发送时间",
    "日期",
    "寄件日期",
    "送信日時",
];

const OTHER_LABELS: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "an",
    "kopie",
    "betreff",
    "antwort an",
    "à",
    "cc ",
    "objet",
    "répondre à",
    "para",
    "asunto",
    "responder a",
    "assunto",
    "a",
    "oggetto",
    "rispondi a",
    "aan",
    "onderwerp",
    "kime",
    "bilgi",
    "konu",
    "komu",
    "předmět",
    "do",
    "temat",
    "kopia",
    "кому",
    "копия",
    "тема",
    "till",
    "ämne",
    "til",
    "emne",
    "vastaanottaja",
    "aihe",
    "címzett",
    "tárgy",
    "收件人",
    "主题",
    "抄送",
    "件名",
    "宛先",
];

/// The label of a `Label: value` header line (`*From:*` too).
fn header_label(line: &str) -> Option<Label> {
    let l = line.trim_start_matches(['*', ' ']);
    let colon = l.find([':', '：'])?;
    let label = l[..colon].trim().trim_end_matches('*').trim();
    if label.is_empty() || label.len() > 30 || label.split_whitespace().count() > 3 {
        return None;
    }
    let f = fold(label);
    let f = f.as_str();
    if FROM_LABELS.contains(&f) {
        Some(Label::From)
    } else if SENT_LABELS.contains(&f) {
        Some(Label::Sent)
    } else if OTHER_LABELS.contains(&f) {
        Some(Label::Other)
    } else if f.chars().all(|c| c.is_alphabetic() || c == '-' || c == ' ') {
        Some(Label::Unknown)
    } else {
        None
    }
}

/// An Outlook-style header block starting at line `i` with a known label:
/// a `From` line and a `Sent`/`Date` one, or three known labels with a
/// `From`; its length in lines.
fn header_block(lines: &Lines<'_>, i: usize) -> Option<usize> {
    let first = header_label(lines.line[i])?;
    if first == Label::Unknown {
        return None;
    }
    let (mut from, mut sent, mut known) = (false, false, 0);
    let mut end = i;
    let mut continued = false;
    let mut j = i;
    while j < lines.len() && j < i + 12 {
        let l = lines.line[j];
        match header_label(l) {
            Some(label) => {
                match label {
                    Label::From => from = true,
                    Label::Sent => sent = true,
                    Label::Other | Label::Unknown => {}
                }
                known += usize::from(label != Label::Unknown);
                continued = false;
                end = j + 1;
            }
            // A long subject wrapped onto a second line.
            None if !l.is_empty() && !continued && j > i && !is_quote(l) => {
                continued = true;
                end = j + 1;
            }
            None => break,
        }
        j += 1;
    }
    (from && (sent || known >= 3) && known >= 2).then_some(end - i)
}

/// Lowercase words that start an attribution (`On …`, `Am …`, `Le …`).
const LEADS: &[&str] = &[
    "on ", "am ", "le ", "el ", "il ", "op ", "em ", "den ", "dne ", "dnia ", "w dniu ", "at ",
    "в ", "---- on ",
];

/// Endings of attributions, lowercase, `:` without a space before it.
const ENDINGS: &[&str] = &[
    "wrote:",
    "writes:",
    "yazdı:",
    "napsal(a):",
    "napsal:",
    "napsala:",
    "napísal(a):",
    "schrieb:",
    "a écrit:",
    "escribió:",
    "escrito:",
    "scritto:",
    "geschreven:",
    "schreef:",
    "napisał(a):",
    "napisał:",
    "napisała:",
    "pisze:",
    "escreveu:",
    "написал(а):",
    "написал:",
    "написала:",
    "пишет:",
    "пише:",
    "написав:",
    "написав(ла):",
    "skrev:",
    "kirjoitti:",
    "írta:",
    "写道:",
    "寫道:",
];

/// Verbs that come before the name (`Am … schrieb Name <a@x>:`).
const VERBS_BEFORE_NAME: &[&str] = &[
    " schrieb ",
    " schreef ",
    " skrev ",
    " escribió ",
    " a écrit ",
];

/// Whether `s` (one line, or a wrapped attribution joined with spaces) is an
/// attribution: `Some(strong)`, strong when it names an address or a time.
fn attribution_text(s: &str) -> Option<bool> {
    if s.len() > 600 {
        return None;
    }
    let dashed = s.starts_with("---") && s.ends_with("---");
    let core = s.trim_matches(|c: char| c.is_whitespace() || matches!(c, '-' | '*' | '_'));
    let mut f = fold(core);
    if f.ends_with(" :") {
        f.remove(f.len() - 2);
    }
    let address = f.contains('@');
    let time = has_time(&f);
    let lead = LEADS.iter().any(|l| f.starts_with(l));
    let iso = starts_with_iso_date(&f);
    let shape = ENDINGS.iter().any(|e| f.ends_with(e))
        || (f.ends_with(':') && (address || lead) && VERBS_BEFORE_NAME.iter().any(|v| f.contains(v)))
        // Zoho: `---- On … wrote ----`.
        || (dashed && f.ends_with(" wrote"))
        // Gmail in some languages: `<date> <time>, Name <a@x>:`.
        || (f.ends_with(">:") && address && time)
        // Gmail: `2026-01-05 10:00 GMT+01:00 Name <a@x>:`.
        || (iso && (address || f.contains("gmt") || f.contains("utc")));
    if !shape {
        return None;
    }
    if address || time || iso {
        Some(true)
    } else if f.bytes().any(|b| b.is_ascii_digit()) {
        Some(false)
    } else {
        None
    }
}

/// `10:00`, `20.42`.
fn has_time(s: &str) -> bool {
    let b = s.as_bytes();
    (1..b.len().saturating_sub(2)).any(|i| {
        matches!(b[i], b':' | b'.')
            && b[i - 1].is_ascii_digit()
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && b.get(i + 3).is_none_or(|c| !c.is_ascii_digit())
    })
}

/// `2026-01-05 …` or `2026/1/5 …`.
fn starts_with_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 9 || !b[..4].iter().all(u8::is_ascii_digit) || !matches!(b[4], b'-' | b'/') {
        return false;
    }
    let sep = b[4];
    let mut i = 5;
    for part in 0..2 {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=2).contains(&digits) {
            return false;
        }
        i += digits;
        if part == 0 {
            if b.get(i) != Some(&sep) {
                return false;
            }
            i += 1;
        }
    }
    b.get(i).is_none_or(|&c| c == b' ')
}

/// Whether a wrapped attribution may start with this line.
fn is_anchor(line: &str) -> bool {
    let f = fold(line);
    LEADS.iter().any(|l| f.starts_with(l))
        || f.starts_with(|c: char| c.is_ascii_digit())
        || f.contains('@')
        || f.ends_with('<')
}

/// An attribution starting at line `i`: its length in lines (a mail client
/// wraps a long one, sometimes with blank lines and the address on lines
/// of their own) and whether it is strong.
fn attribution(lines: &Lines<'_>, i: usize) -> Option<(usize, bool)> {
    let first = lines.line[i];
    if first.len() > 300 {
        return None;
    }
    if let Some(strong) = attribution_text(first) {
        return Some((1, strong));
    }
    if !is_anchor(first) {
        return None;
    }
    let mut joined = first.to_string();
    let mut rest = String::new();
    let (mut blanks, mut words) = (0, 1);
    for j in i + 1..lines.len().min(i + 7) {
        let l = lines.line[j];
        if l.is_empty() {
            blanks += 1;
            if blanks > 2 {
                return None;
            }
            continue;
        }
        if l.len() > 200 {
            return None;
        }
        // The end of a wrapped attribution can look like a quote (`> wrote:`).
        let piece = if is_quote(l) {
            let p = l.trim_start_matches(['>', ' ']);
            if p.len() > 12 {
                return None;
            }
            p
        } else {
            l
        };
        joined.push(' ');
        joined.push_str(piece);
        rest.push(' ');
        rest.push_str(piece);
        words += 1;
        if let Some(strong) = attribution_text(&joined) {
            // The attribution starts later when its lines after the first
            // are one already, after a sentence or starting like one.
            let rest = rest.trim();
            let later = attribution_text(rest).is_some()
                && (first.ends_with(['.', '!', '?'])
                    || fold(rest).starts_with(|c: char| c.is_ascii_digit())
                    || LEADS.iter().any(|l| fold(rest).starts_with(l)));
            let spaced_ok = blanks == 0 || joined.contains('@');
            return (!later && spaced_ok).then_some((j + 1 - i, strong));
        }
        if is_quote(l) || words >= 4 {
            return None;
        }
    }
    None
}

/// Mobile signatures, lowercase, without brackets around them.
const MOBILE: &[&str] = &[
    "sent from my ",
    "sent from outlook",
    "sent from yahoo mail",
    "sent from mail for windows",
    "sent from windows mail",
    "sent from [mail]",
    "sent from mailbox",
    "sent from samsung",
    "sent from the all new aol app",
    "sent using ",
    "get outlook for",
    "get [outlook for",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "envoyé à partir de ",
    "von meinem iphone",
    "von meinem ipad",
    "von meinem android",
    "von meinem samsung",
    "von meinem mobil",
    "von meinem smartphone",
    "gesendet von meinem ",
    "gesendet von iphone",
    "diese nachricht wurde von meinem ",
    "enviado desde mi ",
    "enviado desde ",
    "enviado do meu ",
    "enviado de meu ",
    "enviado de mi ",
    "inviato da ",
    "verzonden met ",
    "verzonden vanaf ",
    "verstuurd vanaf ",
    "verstuurd met ",
    "sendt fra min ",
    "sendt fra ",
    "skickat från min ",
    "skickat från ",
    "lähetetty ",
    "wysłane z ",
    "wysłano z ",
    "odesláno z ",
    "odesláno ze ",
    "odeslané z ",
    "отправлено с ",
    "отправлено из ",
    "надіслано з ",
    "iphone'umdan",
    "ipad'imden",
    "android'den",
    "android cihazımdan",
    "samsung cihazımdan",
    "从我的",
    "從我的",
    "发自我的",
    "來自我的",
];

/// Beginnings that are a signature only on a short line.
const MOBILE_SHORT: &[&str] = &[
    "sent from ",
    "sent via ",
    "sent with ",
    "sent by ",
    "sent on my ",
    "von meinem ",
    "envoyé de ",
    "envoyé depuis ",
    "gesendet mit ",
    "enviado com ",
    "inviato con ",
];

/// Words that make a very short line a mobile signature.
const MOBILE_WORDS: &[&str] = &[
    "from my iphone",
    "from my ipad",
    "from my android",
    "from my phone",
    "from my mobile",
    "from mobile",
];

fn is_mobile_signature(line: &str) -> bool {
    let l = line.trim_matches(|c: char| c.is_whitespace() || "()<>*_-~".contains(c));
    if l.is_empty() || l.len() > 160 {
        return false;
    }
    let f = fold(l);
    let chars = f.chars().count();
    MOBILE.iter().any(|m| f.starts_with(m))
        || (chars <= 60 && MOBILE_SHORT.iter().any(|m| f.starts_with(m)))
        || (chars <= 40 && MOBILE_WORDS.iter().any(|m| f.contains(m)))
        || (chars <= 60
            && (f.ends_with("gönderildi") || f.ends_with("gesendet"))
            && [
                "iphone", "ipad", "android", "samsung", "galaxy", "telefon", "mobil",
            ]
            .iter()
            .any(|w| f.contains(w)))
}

/// The new text and its signature: after a `-- ` line, or trailing mobile
/// lines (at most two short other lines after them).
fn signature_split(text: &str) -> (&str, &str) {
    let mut offset = 0;
    let mut lines = Vec::new();
    for line in text.split_inclusive('\n') {
        let t = clean(line);
        if is_signature_marker(t) {
            let body = clean(&text[..offset]);
            if !body.is_empty() {
                // The `-- ` marker itself belongs to neither part.
                return (body, text[offset + line.len()..].trim());
            }
        }
        lines.push((offset, t));
        offset += line.len();
    }
    // other_after: lines after the current one that are not mobile ones
    // (`None`: too many or too long).
    let mut other_after = Some(0_usize);
    let mut start = None;
    for &(offset, t) in lines.iter().rev() {
        if t.is_empty() {
            continue;
        }
        if is_mobile_signature(t) {
            if other_after.is_some() {
                start = Some(offset);
            }
            continue;
        }
        other_after = other_after
            .filter(|&n| n < 2 && t.chars().count() <= 80)
            .map(|n| n + 1);
    }
    if let Some(start) = start {
        let body = clean(&text[..start]);
        if !body.is_empty() {
            return (body, text[start..].trim());
        }
    }
    (text, "")
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
