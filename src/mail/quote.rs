//! The new text of a reply, without the quoted history, and its signature.
//!
//! The history starts at the first of:
//! - an attribution line (`On … wrote:` and its translations: Turkish
//!   `… şunu yazdı:`, Czech `… napsal(a):`, German `Am … schrieb …:`,
//!   French `Le … a écrit :`, Spanish, Italian, Dutch, Polish, Portuguese,
//!   Russian, Ukrainian, Scandinavian, Chinese; Gmail's `2026-01-05 10:00
//!   GMT+01:00 Name <a@x>:`), possibly wrapped over several lines. A real
//!   attribution names a date or an address, so prose such as "As my
//!   manager wrote:" does not count; one that names no address counts only
//!   when a quote (`>`, or Supercite's `Name>`) or more history follows it
//!   ("On 5 May at 10:00, my colleague wrote:" and their words are prose);
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
//! skipped and what follows it is the new text, unless answers sit between
//! quotes below it (an inline reply again, kept from the top); only a text
//! that is nothing but history (an attribution and its quote, a header
//! block) has an empty new text. A text made only of `>` lines with no
//! attribution is kept.
//!
//! The signature is the end of the new text after a `-- ` line (a bare
//! `--` only with at most 8 non-empty lines after it: else it
//! separates paragraphs), or trailing mobile lines with nothing but blank
//! lines after them ("Sent from my iPhone", "iPhone'umdan gönderildi",
//! "Odesláno z iPhonu", "Get Outlook for Android", …): short, and a known
//! phrase as a whole, with a device's or app's name (a link and an apology
//! for typos may follow), not a sentence that starts the same way
//! ("Enviado desde Madrid …"). [`new_text`] is the new text with its
//! signature; [`split`] separates them.
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
    /// Whether each line is a signature marker: `-- `, or a bare `--`
    /// with a short block after it (see [`SHORT_SIGNATURE`]).
    sig: Vec<bool>,
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
        let truncated = end < text.len();
        // Unquoted lines after each bare `--`: one backward pass.
        let mut sig = vec![false; line.len()];
        let mut after = if truncated { usize::MAX } else { 0 };
        for i in (0..line.len()).rev() {
            sig[i] = match dash_marker(&text[start[i]..start[i + 1]]) {
                Some(true) => true,
                Some(false) => after <= SHORT_SIGNATURE,
                None => false,
            };
            if !line[i].is_empty() && !is_quote(line[i]) {
                after = after.saturating_add(1);
            }
        }
        Lines {
            line,
            start,
            truncated,
            sig,
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

/// A bare `--` line starts a signature only when at most this many
/// non-empty lines follow it; the standard `-- ` always does.
const SHORT_SIGNATURE: usize = 8;

/// A signature delimiter line (one raw line, its end included):
/// `Some(true)` for the standard `-- ` (dash dash space), `Some(false)` for
/// a bare `--` (also a paragraph separator in prose), else `None`.
fn dash_marker(raw: &str) -> Option<bool> {
    let l = raw
        .trim_end_matches(['\n', '\r'])
        .trim_start_matches(invisible);
    let rest = l.strip_prefix("--")?;
    if !rest.chars().all(invisible) {
        return None;
    }
    Some(rest.starts_with(|c: char| c.is_whitespace()))
}

/// A quote line as Supercite writes it: `Ann> …`.
fn is_named_quote(line: &str) -> bool {
    line.split_once('>').is_some_and(|(name, _)| {
        (1..=12).contains(&name.chars().count()) && name.chars().all(char::is_alphanumeric)
    })
}

/// A line drawn with `-`, `_`, `=`, `*`, …: no words.
fn is_decoration(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| "-_=*~#+.•·–—‐".contains(c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Separator,
    Headers,
    Attribution(Strength),
}

/// How sure an attribution line is of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strength {
    /// A date only ("On 5 May the server wrote:").
    Weak,
    /// A time and a comma, no address ("On 5 May at 10:00, Ann wrote:"):
    /// also a customer's sentence.
    Timed,
    /// It names an address, or it is Gmail's ISO-dated attribution.
    Addressed,
}

/// The new text as a byte range of `text`: after the history at its top,
/// if any, up to the history below it.
fn bounds(text: &str) -> (usize, usize) {
    let lines = Lines::new(text);
    let n = lines.len();
    // tail_quoted[i]: every line from i on is a quote or blank (or below a
    // signature marker): one backward pass, linear in the text.
    let mut tail_quoted = vec![!lines.truncated; n + 1];
    for i in (0..n).rev() {
        let l = lines.line[i];
        tail_quoted[i] = lines.sig[i] || ((l.is_empty() || is_quote(l)) && tail_quoted[i + 1]);
    }
    // inline_from[i]: a `>` line at or after i has unquoted text after it
    // (an answer between quotes).
    let mut inline_from = vec![false; n + 1];
    for i in (0..n).rev() {
        inline_from[i] = inline_from[i + 1] || is_quote(lines.line[i]) && !tail_quoted[i];
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
            // attribution.
            if !quoted_history(&lines, i) {
                written = true;
                i += 1;
                continue;
            }
            let next = lines.skip_quote(i);
            if inline_from[next] {
                // Answers between the quotes: all kept.
                written = true;
            } else {
                // Written below the quote.
                top = next;
            }
            i = next;
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
            Kind::Attribution(strength) => {
                if after < n && is_quote(lines.line[after]) {
                    let next = lines.skip_quote(after);
                    if !written {
                        if inline_from[next] {
                            // Answers between the quotes: all kept.
                            written = true;
                        } else {
                            // Written below the quote.
                            top = next;
                        }
                        i = next;
                    } else if next < n && is_reply_text(&lines, next)
                        || next >= n && lines.truncated
                    {
                        // An inline reply: keep it all.
                        i = next;
                    } else {
                        return cut(&lines, top, i);
                    }
                } else if strength == Strength::Addressed
                    || after >= n
                    || is_named_quote(lines.line[after])
                    || history_at(&lines, after).is_some()
                {
                    // The original follows without `>` (Outlook mobile,
                    // Android: their attributions name the address), or
                    // quoted as `Name> …`, or more history follows:
                    // everything after the attribution is history, or, at
                    // the top, the attribution alone.
                    if written {
                        return cut(&lines, top, i);
                    }
                    i += len;
                    top = i;
                } else {
                    // An attribution without an address and without a
                    // quote or more history after it: prose ("On 5 May
                    // at 10:00, my colleague wrote:" and what they wrote).
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
fn is_reply_text(lines: &Lines<'_>, mut i: usize) -> bool {
    // Past lines drawn with dashes (a bare `--` between paragraphs too) to
    // the words under them.
    while i < lines.len()
        && is_decoration(lines.line[i])
        && !lines.sig[i]
        && history_at(lines, i).is_none()
    {
        i = lines.skip_blank(i + 1);
    }
    let Some(&l) = lines.line.get(i) else {
        return false;
    };
    if l.is_empty() || is_quote(l) || lines.sig[i] || is_decoration(l) {
        return false;
    }
    if is_mobile_signature(l) {
        // A signature only when nothing of the customer's follows it.
        let next = lines.skip_blank(i + 1);
        return !(next >= lines.len() && !lines.truncated
            || next < lines.len()
                && (is_quote(lines.line[next])
                    || is_mobile_signature(lines.line[next])
                    || history_at(lines, next).is_some()));
    }
    history_at(lines, i).is_none()
}

/// A `>` block that opens with an attribution. (One that opens with a
/// separator may be a forward: kept.)
fn quoted_history(lines: &Lines<'_>, i: usize) -> bool {
    fn unquote(l: &str) -> &str {
        l.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
    }
    let first = unquote(lines.line[i]);
    if first.len() > 300 {
        return false;
    }
    if attribution_text(first).is_some() {
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
    attribution(lines, i).map(|(len, strength)| (Kind::Attribution(strength), len))
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
    To,
    Subject,
    /// `Cc`, `Reply-To`, …
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

const TO_LABELS: &[&str] = &[
    "to",
    "an",
    "à",
    "para",
    "a",
    "aan",
    "kime",
    "komu",
    "do",
    "кому",
    "till",
    "til",
    "vastaanottaja",
    "címzett",
    "收件人",
    "宛先",
];

const SUBJECT_LABELS: &[&str] = &[
    "subject",
    "betreff",
    "objet",
    "asunto",
    "assunto",
    "oggetto",
    "onderwerp",
    "konu",
    "předmět",
    "temat",
    "тема",
    "ämne",
    "emne",
    "aihe",
    "tárgy",
    "主题",
    "主旨",
    "件名",
];

const OTHER_LABELS: &[&str] = &[
    "cc",
    "bcc",
    "reply-to",
    "kopie",
    "antwort an",
    "répondre à",
    "responder a",
    "rispondi a",
    "bilgi",
    "kopia",
    "копия",
    "копія",
];

/// A `Label: value` header line (`*From:*` too).
fn header_label(line: &str) -> Option<(Label, &str)> {
    let l = line.trim_start_matches(['*', ' ']);
    let colon = l.find([':', '：'])?;
    let label = l[..colon].trim().trim_end_matches('*').trim();
    if label.is_empty() || label.len() > 30 || label.split_whitespace().count() > 3 {
        return None;
    }
    let value = l[colon..].trim_start_matches([':', '：', '*', ' ']);
    let f = fold(label);
    let f = f.as_str();
    let kind = if FROM_LABELS.contains(&f) {
        Label::From
    } else if SENT_LABELS.contains(&f) {
        Label::Sent
    } else if TO_LABELS.contains(&f) {
        Label::To
    } else if SUBJECT_LABELS.contains(&f) {
        Label::Subject
    } else if OTHER_LABELS.contains(&f) {
        Label::Other
    } else if f.chars().all(|c| c.is_alphabetic() || c == '-' || c == ' ') {
        Label::Unknown
    } else {
        return None;
    };
    Some((kind, value))
}

/// An Outlook-style header block starting at line `i` with a known label,
/// and its length in lines: a `From` line with a `Subject` and a `Sent`
/// or `To` line, or a `From` with an address and a `Sent` with a time.
/// (A customer's "From: Istanbul / To: Ankara / Date: 5 May 10:00" is no
/// header block.)
fn header_block(lines: &Lines<'_>, i: usize) -> Option<usize> {
    if matches!(header_label(lines.line[i])?, (Label::Unknown, _)) {
        return None;
    }
    let (mut from, mut addressed, mut sent, mut timed, mut to, mut subject) =
        (false, false, false, false, false, false);
    let mut end = i;
    let mut continued = false;
    let mut j = i;
    while j < lines.len() && j < i + 12 {
        let l = lines.line[j];
        match header_label(l) {
            Some((label, value)) => {
                match label {
                    Label::From => {
                        from = true;
                        addressed |= value.contains('@');
                    }
                    Label::Sent => {
                        sent = true;
                        timed |= has_time(value);
                    }
                    Label::To => to = true,
                    Label::Subject => subject = true,
                    Label::Other | Label::Unknown => {}
                }
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
    (from && (subject && (sent || to) || addressed && timed)).then_some(end - i)
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
/// attribution, and how strong: [`Strength::Addressed`] when it names an
/// address, [`Strength::Timed`] with a time and a comma (`On 5 Jan 2026, at
/// 10:00, Ann wrote:`), [`Strength::Weak`] with a date only ("On 5 May at
/// 10:00 the server wrote:").
fn attribution_text(s: &str) -> Option<Strength> {
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
    let iso = gmail_iso(&f);
    let shape = ENDINGS.iter().any(|e| f.ends_with(e))
        || (f.ends_with(':') && (address || lead) && VERBS_BEFORE_NAME.iter().any(|v| f.contains(v)))
        // Zoho: `---- On … wrote ----`.
        || (dashed && f.ends_with(" wrote"))
        // Gmail in some languages: `<date> <time>, Name <a@x>:`.
        || (f.ends_with(">:") && address && time)
        // Gmail: `2026-01-05 10:00 GMT+01:00 Name <a@x>:`.
        || iso;
    if !shape {
        return None;
    }
    if address || iso {
        Some(Strength::Addressed)
    } else if time && f.contains(',') {
        Some(Strength::Timed)
    } else if f.bytes().any(|b| b.is_ascii_digit()) {
        Some(Strength::Weak)
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

/// Gmail's attribution with an ISO date: `2026-01-05 10:00 GMT+01:00 Name
/// <a@x>:` (the address or the colon may be missing) or `2026/1/5 Name
/// <a@x>`; not a log line such as `2026-01-05 10:00:01 UTC error …`.
fn gmail_iso(f: &str) -> bool {
    if !starts_with_iso_date(f) {
        return false;
    }
    let words = f.split_whitespace().count();
    if let Some(at) = f.find(" gmt+").or_else(|| f.find(" gmt-")) {
        // The offset, then a name.
        let name = f[at + 5..].split_whitespace().skip(1).count();
        return f.ends_with(':') || f.ends_with('>') || (1..=4).contains(&name);
    }
    f.contains('@') && (f.ends_with('>') || f.ends_with(">:")) && words <= 10
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

/// How a line can start a wrapped attribution: `Some(true)` when it starts
/// like one (`On …`, a date), `Some(false)` when it names an address in
/// `<…>` or ends with an opening `<`.
fn anchor(line: &str) -> Option<bool> {
    let f = fold(line);
    if LEADS.iter().any(|l| f.starts_with(l)) || f.starts_with(|c: char| c.is_ascii_digit()) {
        Some(true)
    } else if f.ends_with('<') || f.contains('<') && f.contains('@') {
        Some(false)
    } else {
        None
    }
}

/// An attribution starting at line `i`: its length in lines (a mail client
/// wraps a long one, sometimes with blank lines and the address on lines
/// of their own) and how strong it is.
fn attribution(lines: &Lines<'_>, i: usize) -> Option<(usize, Strength)> {
    let first = lines.line[i];
    if first.len() > 300 {
        return None;
    }
    if let Some(strong) = attribution_text(first) {
        return Some((1, strong));
    }
    let starts_like_one = anchor(first)?;
    let mut pieces = vec![first];
    let mut blanks = 0;
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
        pieces.push(piece);
        let joined = pieces.join(" ");
        if let Some(strong) = attribution_text(&joined) {
            // The attribution starts later when a later part is one of its
            // own: one that starts like an attribution, or any after a
            // first line that does not or that ends a sentence.
            let later = (1..pieces.len()).any(|k| {
                attribution_text(&pieces[k..].join(" ")).is_some()
                    && (!starts_like_one
                        || first.ends_with(['.', '!', '?'])
                        || anchor(pieces[k]) == Some(true))
            });
            let spaced_ok = blanks == 0 || joined.contains('@');
            return (!later && spaced_ok).then_some((j + 1 - i, strong));
        }
        if is_quote(l) || pieces.len() >= 4 {
            return None;
        }
    }
    None
}

/// Beginnings of mobile signatures, lowercase, followed by the name of the
/// sender's own device: a device or app word ("Sent from my iPhone",
/// "Envoyé de mon iPhone"), or one or two capitalised words ("Sent from my
/// TI-85").
const MOBILE_OWN: &[&str] = &[
    "sent from my ",
    "sent on my ",
    "sent with my ",
    "sent via my ",
    "sent using my ",
    "from my ",
    "envoyé de mon ",
    "envoyé depuis mon ",
    "envoyé à partir de mon ",
    "envoyé avec mon ",
    "von meinem ",
    "gesendet von meinem ",
    "gesendet mit meinem ",
    "diese nachricht wurde von meinem ",
    "enviado desde mi ",
    "enviado de mi ",
    "enviado do meu ",
    "enviado de meu ",
    "enviado pelo meu ",
    "enviada do meu ",
    "inviato dal mio ",
    "inviato da mio ",
    "verzonden vanaf mijn ",
    "verstuurd vanaf mijn ",
    "verzonden met mijn ",
    "verstuurd met mijn ",
    "sendt fra min ",
    "sendt fra mit ",
    "skickat från min ",
    "skickat från mitt ",
    "wysłane z mojego ",
    "wysłano z mojego ",
    "odesláno z mého ",
    "отправлено с моего ",
    "надіслано з мого ",
    "从我的",
    "從我的",
    "发自我的",
    "發自我的",
    "来自我的",
    "來自我的",
];

/// Beginnings followed by a device's or an app's name ("Sent from Yahoo
/// Mail on Android", "Lähetetty iPhonesta", "Odesláno z iPhonu"); a
/// sentence such as "Enviado desde Madrid …" names none.
const MOBILE_VIA: &[&str] = &[
    "sent from ",
    "sent via ",
    "sent with ",
    "sent by ",
    "sent using ",
    "sent on ",
    "get outlook for ",
    "télécharger outlook pour ",
    "obtener outlook para ",
    "obter o outlook para ",
    "baixe o outlook para ",
    "scarica outlook per ",
    "envoyé de ",
    "envoyé depuis ",
    "envoyé à partir de ",
    "envoyé avec ",
    "gesendet von ",
    "gesendet vom ",
    "gesendet mit ",
    "enviado desde ",
    "enviado de ",
    "enviado do ",
    "enviado com ",
    "enviado con ",
    "enviado pelo ",
    "inviato da ",
    "inviato dal ",
    "inviato con ",
    "verzonden met ",
    "verzonden vanaf ",
    "verstuurd met ",
    "verstuurd vanaf ",
    "sendt fra ",
    "sendt med ",
    "skickat från ",
    "skickat med ",
    "lähetetty ",
    "wysłane z ",
    "wysłano z ",
    "wysłane ze ",
    "wysłano ze ",
    "odesláno z ",
    "odesláno ze ",
    "odeslané z ",
    "odoslané z ",
    "отправлено с ",
    "отправлено со ",
    "отправлено из ",
    "надіслано з ",
    "надіслано із ",
];

/// Endings after a device's name ("Von meinem iPhone gesendet",
/// "從我的 iPhone 傳送").
const MOBILE_FIXED_ENDS: &[&str] = &[" gesendet", "发送", "傳送", "传送", "發送"];

/// Endings of mobile signatures that name the device before them
/// ("iPhone'umdan gönderildi", "iPhoneから送信").
const MOBILE_ENDS: &[&str] = &[
    " gönderildi",
    " gesendet",
    " küldve",
    "から送信",
    "에서 보냄",
];

/// Parts of device and app names, lowercase (also inflected: "iPhonu",
/// "Mobilgerät", "cihazımdan").
const DEVICES: &[&str] = &[
    "iphon",
    "ipad",
    "ipod",
    "android",
    "samsung",
    "galaxy",
    "pixel",
    "huawei",
    "xiaomi",
    "redmi",
    "oneplus",
    "nokia",
    "motorola",
    "htc",
    "xperia",
    "blackberry",
    "mobil",
    "móvil",
    "movil",
    "celular",
    "cell",
    "phone",
    "telefon",
    "teléfono",
    "telefono",
    "telefone",
    "телефон",
    "мобильн",
    "мобільн",
    "tablet",
    "планшет",
    "device",
    "gerät",
    "appareil",
    "dispositivo",
    "urządzeni",
    "zařízení",
    "cihaz",
    "puhelim",
    "laittee",
    "outlook",
    "yahoo",
    "aol",
    "gmail",
    "airmail",
    "mailbox",
    "bluemail",
    "protonmail",
    "proton mail",
    "k-9",
    "web.de",
    "gmx",
    "mail.ru",
    "yandex",
    "seznam",
    "windows",
    "手机",
    "手機",
];

/// Whole words that name a device or an app.
const DEVICE_WORDS: &[&str] = &[
    "ios", "mac", "pc", "lg", "sony", "mail", "email", "e-mail", "app", "spark", "watch",
];

/// A device's name starts with at most one of these.
const ARTICLES: &[&str] = &[
    "a", "an", "the", "der", "die", "das", "dem", "el", "la", "le", "il", "lo", "o", "um", "uma",
    "un", "una", "une", "het", "de",
];

/// Words of a sentence, not of a device's name.
const SENTENCE_WORDS: &[&str] = &[
    "the", "is", "are", "was", "were", "be", "been", "and", "but", "it", "its", "not", "to", "of",
    "that", "this", "i", "we", "you", "they", "he", "she", "please", "will", "would", "has",
    "have", "had", "can", "does", "did", "do", "los", "las", "es", "y", "que", "no", "pero", "con",
    "ayer", "hoy", "está", "ha", "não", "é", "mas", "foi", "est", "et", "pas", "mais", "elle",
    "ne", "ist", "und", "nicht", "aber", "ich", "wir", "sie", "è", "non", "ma", "e", "ho", "het",
    "niet", "maar", "ik", "en", "ei", "ole", "oli", "ja", "nie", "jest", "się", "je", "není", "se",
    "jsem", "už", "не", "и", "это", "уже", "ve", "bir", "değil", "är", "och", "inte", "er", "og",
    "ikke", "har",
];

/// Apologies for typos after a mobile signature ("Sent from my phone,
/// please excuse typos.").
const EXCUSES: &[&str] = &[
    "please excuse",
    "pls excuse",
    "excuse",
    "pardon",
    "sorry for",
    "sorry about",
    "apologies for",
    "forgive",
    "typos",
    "disculpa",
    "disculpe",
    "perdona",
    "perdone",
    "perdón",
    "desculpe",
    "excusez",
    "veuillez excuser",
    "désolé",
    "scusate",
    "scusa",
    "bitte entschuldigen",
    "entschuldigen sie",
    "entschuldige",
    "omlouvám se",
    "omluvte",
    "извините",
    "простите",
];

/// Whether a line is a mobile signature as a whole: a known phrase and the
/// name of a device or app, a link and an apology for typos after it at
/// most, short (60 characters, 90 with a fixed ending such as "…
/// gesendet"). A sentence that starts the same way is none.
fn is_mobile_signature(line: &str) -> bool {
    const DECORATION: &str = "()<>*_-~[]";
    if line.len() > 300 {
        return false;
    }
    let unlinked = strip_links(line);
    let unlinked = unlinked.trim_matches(|c: char| c.is_whitespace() || DECORATION.contains(c));
    let words: Vec<&str> = unlinked.split_whitespace().collect();
    if words.is_empty() || words.len() > 16 {
        return false;
    }
    let folded: Vec<String> = words.iter().map(|w| fold(w)).collect();
    // Without an apology after the device.
    let mut k = folded.len();
    for w in 1..folded.len() {
        let dashed = |s: &str| s.starts_with(['-', '–', '—', '(']);
        if !(folded[w - 1].ends_with([',', '.', ';', '!', '-', '–', '—']) || dashed(&folded[w]))
        {
            continue;
        }
        let rest = folded[w..].join(" ");
        let rest = rest.trim_start_matches(['-', '–', '—', '(', ' ']);
        if EXCUSES.iter().any(|e| rest.starts_with(e)) {
            if rest.chars().count() > 60 {
                return false;
            }
            k = w;
            break;
        }
    }
    let head = folded[..k].join(" ");
    let head = head.trim_end_matches([',', '.', ';', '!', '-', '–', '—', ' ']);
    let chars = head.chars().count();
    let short = |fixed: bool| chars <= if fixed { 90 } else { 60 };
    for p in MOBILE_OWN {
        if let Some(rem) = head.strip_prefix(p) {
            let (rem, fixed) = without_fixed_end(rem);
            // The original words of the name, for their capitals.
            let own = p
                .ends_with(' ')
                .then(|| &words[p.split_whitespace().count().min(k)..k]);
            return short(fixed) && device_name(rem, own);
        }
    }
    for p in MOBILE_VIA {
        if let Some(rem) = head.strip_prefix(p) {
            let (rem, fixed) = without_fixed_end(rem);
            return short(fixed) && device_name(rem, None);
        }
    }
    for e in MOBILE_ENDS {
        if let Some(rem) = head.strip_suffix(e) {
            return short(true) && device_name(rem, None);
        }
    }
    // "Someone from mobile".
    chars <= 40 && k <= 3 && head.ends_with(" from mobile")
}

/// `rem` without an ending such as " gesendet", and whether it had one.
fn without_fixed_end(rem: &str) -> (&str, bool) {
    let rem = rem.trim_end_matches(['.', ' ']);
    MOBILE_FIXED_ENDS
        .iter()
        .find_map(|e| rem.strip_suffix(e))
        .map_or((rem, false), |r| (r, true))
}

/// Whether `rem` (lowercase) is the name of a device or an app: at most
/// five words, none of a sentence, naming a known device or app; or, with
/// the original words of one's `own` device, one or two capitalised words.
fn device_name(rem: &str, own: Option<&[&str]>) -> bool {
    let rem = rem.trim_matches([' ', '.', ',']);
    if rem.is_empty()
        || rem.chars().count() > 40
        || rem.contains(['?', '!', ':', ';', '¿', '¡', '"'])
    {
        return false;
    }
    let mut words: Vec<&str> = rem.split(' ').collect();
    let mut skip = 0;
    if words.len() > 1 && ARTICLES.contains(&words[0]) {
        words.remove(0);
        skip = 1;
    }
    fn bare(w: &str) -> &str {
        w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
    }
    if words.len() > 5 || words.iter().any(|w| SENTENCE_WORDS.contains(&bare(w))) {
        return false;
    }
    if DEVICES.iter().any(|d| rem.contains(d))
        || words.iter().any(|w| DEVICE_WORDS.contains(&bare(w)))
    {
        return true;
    }
    own.is_some_and(|own| {
        words.len() <= 2
            && (skip..skip + words.len()).all(|j| {
                own.get(j).is_some_and(|w| {
                    w.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit())
                })
            })
    })
}

/// `s` without links: `[text](http…)` as its text, `<http…>` and a link at
/// the very end (glued or not) left out, and without `[`/`]`.
fn strip_links(s: &str) -> String {
    fn is_url(s: &str) -> bool {
        ["http://", "https://", "mailto:"].iter().any(|p| {
            s.as_bytes()
                .get(..p.len())
                .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
        })
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match c {
            '[' => {
                if let Some(close) = rest.find("](")
                    && is_url(&rest[close + 2..])
                    && let Some(end) = rest[close + 2..].find(')')
                {
                    out.push_str(&rest[1..close]);
                    rest = &rest[close + 2 + end + 1..];
                    continue;
                }
            }
            '<' if is_url(&rest[1..]) => {
                if let Some(end) = rest.find('>') {
                    rest = &rest[end + 1..];
                    continue;
                }
            }
            'h' | 'H' | 'm' | 'M' if is_url(rest) && !rest.contains(char::is_whitespace) => break,
            _ => {}
        }
        if !matches!(c, '[' | ']') {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The new text and its signature: after a `-- ` line (or a bare `--`
/// line with a short block after it), or the trailing mobile lines (only
/// blank lines after them).
fn signature_split(text: &str) -> (&str, &str) {
    let mut offset = 0;
    let mut lines = Vec::new();
    for raw in text.split_inclusive('\n') {
        lines.push((offset, raw, clean(raw)));
        offset += raw.len();
    }
    // Non-empty lines after each line, and whether one is a quote.
    let n = lines.len();
    let mut after = vec![(0, false); n + 1];
    for i in (0..n).rev() {
        let t = lines[i].2;
        after[i] = (
            after[i + 1].0 + usize::from(!t.is_empty()),
            after[i + 1].1 || is_quote(t),
        );
    }
    for (i, &(offset, raw, _)) in lines.iter().enumerate() {
        let marker = match dash_marker(raw) {
            Some(true) => true,
            Some(false) => after[i + 1].0 <= SHORT_SIGNATURE && !after[i + 1].1,
            None => false,
        };
        if marker {
            let body = clean(&text[..offset]);
            if !body.is_empty() {
                // The marker itself belongs to neither part.
                return (body, text[offset + raw.len()..].trim());
            }
        }
    }
    // From the end: mobile lines and blank ones, nothing else after them.
    let mut start = None;
    for &(offset, _, t) in lines.iter().rev() {
        if t.is_empty() {
            continue;
        }
        if !is_mobile_signature(t) {
            break;
        }
        start = Some(offset);
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
    use super::{new_text, split};

    /// `(mail text, expected new text)`: the new text is compared after
    /// trimming.
    fn check(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            assert_eq!(split(text).text.trim(), *want, "{text:?}");
        }
    }

    #[test]
    fn gmail_attributions() {
        check(&[
            (
                "Thanks!\n\nOn Mon, 5 Jan 2026 at 10:00, Ann Lee <ann@example.com> wrote:\n> old\n",
                "Thanks!",
            ),
            (
                "Works now.\n\nOn Mon, Jan 5, 2026 at 10:00 AM Ann Lee <ann@example.com> wrote:\n\n> old\n> older\n",
                "Works now.",
            ),
            // Wrapped before the address, and with the address alone.
            (
                "Done.\n\nOn Mon, Jan 5, 2026 at 10:00 AM, Someone With A Long Name <\nsomeone@example.com> wrote:\n\n> old\n",
                "Done.",
            ),
            (
                "Done.\nOn Mon, 5 Jan 2026 10:00, \"Ann Lee\"\n<ann@example.com>\nwrote:\n\n> old\n",
                "Done.",
            ),
            // A link rendered around the address, over blank lines.
            (
                "Yes\n\nOn Mon, 5 Jan 2026 at 10:00 Ann Lee\n\n<\nmailto:Ann Lee <ann@example.com>\n> wrote:\n\nold text\n",
                "Yes",
            ),
            // Gmail with ISO dates, with and without an address.
            (
                "Fine.\n\n2026-01-05 10:00 GMT+01:00 Ann Lee <ann@example.com>:\n> old\n",
                "Fine.",
            ),
            (
                "Fine.\n\n2026-01-05 10:00 GMT+01:00 Ann Lee\n\nold text\n",
                "Fine.",
            ),
            (
                "Fine.\n\n2026/1/5 Ann Lee <ann@example.com>\n\n| old text\n",
                "Fine.",
            ),
            // Zoho.
            (
                "Ok.\n\n---- On Mon, 05 Jan 2026 10:00:00 +0100 Ann <ann@example.com> wrote ----\n\nold\n",
                "Ok.",
            ),
        ]);
    }

    #[test]
    fn outlook_header_blocks() {
        check(&[
            (
                "Yes.\n\n-----Original Message-----\nFrom: Ann <ann@example.com>\nSent: Monday, January 5, 2026 10:00 AM\nTo: Support\nSubject: Printer\n\nold\n",
                "Yes.",
            ),
            (
                "Yes.\n\n________________________________\nFrom: Ann Lee <ann@example.com>\nSent: Monday, 5 January 2026 10:00\nTo: Support\nSubject: Printer\n\nold\n",
                "Yes.",
            ),
            // Outlook mobile: no separator line.
            (
                "Yes.\n\nFrom: Ann Lee <ann@example.com>\nSent: Monday, January 5, 2026 10:00:00 AM\nTo: Support <help@example.org>\nSubject: Re: Printer\n\nold\n",
                "Yes.",
            ),
            // Bold labels after a dashed line (Outlook for Mac, some webmails).
            (
                "Yes.\n\n ---------------------\n\n*From:* Ann\n*Sent:* 2026-01-05\n*To:* help@example.org\n*Subject:* Printer\n\nold\n",
                "Yes.",
            ),
            // A wrapped subject; Cc between.
            (
                "Yes.\n\nFrom: Ann\nDate: Mon, 5 Jan 2026 10:00\nTo: Support\nCc: Bob\nSubject: A subject long enough\n to wrap\n\nold\n",
                "Yes.",
            ),
            ("Ok\nFrom: Support\nSent: Monday 10:00\nSubject: x\n", "Ok"),
            (
                "Ok\nFrom: ann@example.com\nSent: Monday 10:00\n\nold\n",
                "Ok",
            ),
        ]);
    }

    #[test]
    fn other_clients() {
        check(&[
            // Apple Mail, iOS.
            (
                "Sure.\n\n> On 5 Jan 2026, at 10:00, Ann Lee <ann@example.com> wrote:\n> \n> old\n",
                "Sure.",
            ),
            (
                "Sure.\n\nOn 5 Jan 2026, at 10:00, Ann Lee <ann@example.com> wrote:\n\n> old\n",
                "Sure.",
            ),
            (
                "Sure.\n\n> Begin forwarded message:\n> \n> From: Ann <ann@example.com>\n> Subject: x\n",
                "Sure.",
            ),
            // Thunderbird.
            (
                "Sure.\n\nOn 05/01/2026 10:00, Ann Lee wrote:\n> old\n",
                "Sure.",
            ),
            // Yahoo.
            (
                "Sure.\n\nOn Monday, January 5, 2026, 10:00:00 AM GMT+1, Ann Lee <ann@example.com> wrote:\n\n\nold\n",
                "Sure.",
            ),
            (
                "Sure.\n\n----- Original Message -----\nFrom: Ann <ann@example.com>\nTo: help@example.org\nSent: Monday, January 5, 2026 10:00 AM\nSubject: x\n",
                "Sure.",
            ),
            // ProtonMail (with its Unicode hyphens too).
            (
                "Sure.\n\n------- Original Message -------\nOn Monday, January 5th, 2026 at 10:00, Ann <ann@example.com> wrote:\n\n> old\n",
                "Sure.",
            ),
            (
                "Sure.\n\n\u{2010}\u{2010}\u{2010}\u{2010}\u{2010}\u{2010}\u{2010} Original Message \u{2010}\u{2010}\u{2010}\u{2010}\u{2010}\u{2010}\u{2010}\nold\n",
                "Sure.",
            ),
            // Android (Samsung), Outlook mobile without `>`.
            (
                "Sure.\n\n-------- Original message --------\nFrom: Ann <ann@example.com>\nDate: 05/01/2026 10:00 (GMT+01:00)\nTo: help@example.org\nSubject: x\n\nold\n",
                "Sure.",
            ),
            (
                "Sure.\n\nOn Mon, Jan 5, 2026 at 10:00 AM +0100, \"Ann\" <ann@example.com> wrote:\n\nold text, not quoted\n",
                "Sure.",
            ),
            // Forwarded with a comment: the comment.
            (
                "See below.\n\n---------- Forwarded message ---------\nFrom: Ann <ann@example.com>\nDate: Mon, Jan 5, 2026 at 10:00 AM\nSubject: x\nTo: <bob@example.com>\n\n\nforwarded text\n",
                "See below.",
            ),
        ]);
    }

    #[test]
    fn turkish_and_czech() {
        check(&[
            // Gmail.
            (
                "Tamam, teşekkürler.\n\n5 Oca 2026 Pzt, 10:00 tarihinde Ayşe Yılmaz <ayse@example.com> şunu yazdı:\n> eski\n",
                "Tamam, teşekkürler.",
            ),
            // Wrapped, typographic apostrophe in the name.
            (
                "Tamam.\n\n5 Oca 2026 Pzt, 10:00 tarihinde Ali O\u{2019}Brien <\nali@example.com> şunu yazdı:\n\n> eski\n",
                "Tamam.",
            ),
            // Outlook.
            (
                "Oldu.\n\nKimden: Ayşe Yılmaz <ayse@example.com>\nGönderildi: 5 Ocak 2026 Pazartesi 10:00\nKime: Destek\nKonu: Yazıcı\n\neski\n",
                "Oldu.",
            ),
            (
                "Oldu.\n\n-----Orijinal İleti-----\nKimden: Ayşe\nGönderilme: 5 Ocak 2026 10:00\n",
                "Oldu.",
            ),
            (
                "Oldu.\n\n---------- İletilen ileti ---------\nGönderen: Ayşe <ayse@example.com>\nDate: 5 Oca 2026 Pzt 10:00\nSubject: x\nTo: <destek@example.com>\n",
                "Oldu.",
            ),
            // Czech: Gmail, Seznam, Outlook.
            (
                "Díky.\n\nDne po 5. 1. 2026 10:00 uživatel Jan Novák <jan@example.cz> napsal:\n> staré\n",
                "Díky.",
            ),
            (
                "Díky.\n\npo 5. 1. 2026 v 10:00 odesílatel Jan Novák <jan@example.cz>\nnapsal:\n\n> staré\n",
                "Díky.",
            ),
            (
                "Díky.\n\nDne 5. 1. 2026 Jan <j@example.cz> napsal(a):\n> staré\n",
                "Díky.",
            ),
            (
                "Díky.\n\nOd: Jan Novák <jan@example.cz>\nOdesláno: pondělí 5. ledna 2026 10:00\nKomu: Podpora\nPředmět: Tiskárna\n\nstaré\n",
                "Díky.",
            ),
            (
                "Díky.\n\n-------- Původní zpráva --------\nOd: Jan\n",
                "Díky.",
            ),
        ]);
    }

    #[test]
    fn other_languages() {
        check(&[
            // German.
            (
                "Danke.\n\nAm Mo., 5. Jan. 2026 um 10:00 Uhr schrieb Max Muster <max@example.de>:\n> alt\n",
                "Danke.",
            ),
            (
                "Danke.\n\nMax Muster <max@example.de> schrieb am Mo., 5. Jan.\n2026 um 10:00 Uhr:\n\n> alt\n",
                "Danke.",
            ),
            (
                "Danke.\n\nAm 05.01.26 um 10:00 schrieb Max Muster:\n> alt\n",
                "Danke.",
            ),
            (
                "Danke.\n\n-----Ursprüngliche Nachricht-----\nVon: Max <max@example.de>\nGesendet: Montag, 5. Januar 2026 10:00\nAn: Support\nBetreff: Drucker\n",
                "Danke.",
            ),
            // French, with the non-breaking space before the colon.
            (
                "Merci.\n\nLe lun. 5 janv. 2026 à 10:00, Jean <jean@example.fr> a écrit\u{a0}:\n> ancien\n",
                "Merci.",
            ),
            (
                "Merci.\n\nDe : Jean <jean@example.fr>\nEnvoyé : lundi 5 janvier 2026 10:00\nÀ : Support\nObjet : Imprimante\n",
                "Merci.",
            ),
            // Spanish.
            (
                "Gracias.\n\nEl lun, 5 ene 2026 a las 10:00, Juan (<juan@example.es>) escribió:\n> viejo\n",
                "Gracias.",
            ),
            (
                "Gracias.\n\nDe: Juan <juan@example.es>\nEnviado el: lunes, 5 de enero de 2026 10:00\nPara: Soporte\nAsunto: Impresora\n",
                "Gracias.",
            ),
            // Italian.
            (
                "Grazie.\n\nIl giorno lun 5 gen 2026 alle ore 10:00 Mario <mario@example.it> ha scritto:\n> vecchio\n",
                "Grazie.",
            ),
            (
                "Grazie.\n\nDa: Mario <mario@example.it>\nInviato: lunedì 5 gennaio 2026 10:00\nA: Supporto\nOggetto: Stampante\n",
                "Grazie.",
            ),
            // Dutch.
            (
                "Bedankt.\n\nOp ma 5 jan. 2026 om 10:00 schreef Jan <jan@example.nl>:\n> oud\n",
                "Bedankt.",
            ),
            (
                "Bedankt.\n\nVan: Jan <jan@example.nl>\nVerzonden: maandag 5 januari 2026 10:00\nAan: Support\nOnderwerp: Printer\n",
                "Bedankt.",
            ),
            // Polish.
            (
                "Dzięki.\n\npon., 5 sty 2026 o 10:00 Jan Kowalski <jan@example.pl> napisał(a):\n> stare\n",
                "Dzięki.",
            ),
            (
                "Dzięki.\n\nW dniu 5.01.2026 o 10:00, Jan <jan@example.pl> pisze:\n> stare\n",
                "Dzięki.",
            ),
            (
                "Dzięki.\n\nOd: Jan <jan@example.pl>\nWysłano: poniedziałek, 5 stycznia 2026 10:00\nDo: Pomoc\nTemat: Drukarka\n",
                "Dzięki.",
            ),
            // Portuguese.
            (
                "Obrigado.\n\nEm seg., 5 de jan. de 2026 às 10:00, João <joao@example.pt> escreveu:\n> antigo\n",
                "Obrigado.",
            ),
            // Russian, Ukrainian.
            (
                "Спасибо.\n\n5 янв. 2026 г., в 10:00, Иван <ivan@example.ru> написал(а):\n> старое\n",
                "Спасибо.",
            ),
            (
                "Спасибо.\n\nпн, 5 янв. 2026 г. в 10:00, Иван <ivan@example.ru>:\n> старое\n",
                "Спасибо.",
            ),
            (
                "Спасибо.\n\nИван <ivan@example.ru> пишет:\n> 05.01.2026 старое\n",
                "Спасибо.",
            ),
            (
                "Спасибо.\n\nОт: Иван <ivan@example.ru>\nОтправлено: 5 января 2026 г. 10:00\nКому: Поддержка\nТема: Принтер\n",
                "Спасибо.",
            ),
            (
                "Дякую.\n\n5 січ. 2026 р. 10:00 \"Іван\" <ivan@example.ua> пише:\n> старе\n",
                "Дякую.",
            ),
            // Norwegian; Chinese inside a quote.
            (
                "Takk.\n\nDen 5. jan. 2026 kl. 10.00 skrev Ola <ola@example.no>:\n\nold\n",
                "Takk.",
            ),
            (
                "谢谢。\n\n> 在 2026年1月5日，上午10:00，Li <li@example.cn> 写道：\n> 旧\n",
                "谢谢。",
            ),
        ]);
    }

    #[test]
    fn mobile_signatures() {
        for (text, signature) in [
            ("Fine.\n\nSent from my iPhone\n", "Sent from my iPhone"),
            ("Fine.\n\nSent from my Galaxy\n", "Sent from my Galaxy"),
            (
                "Tamam.\n\niPhone'umdan gönderildi\n",
                "iPhone'umdan gönderildi",
            ),
            (
                "Tamam.\n\niPhone\u{2019}umdan gönderildi",
                "iPhone\u{2019}umdan gönderildi",
            ),
            ("Díky.\n\nOdesláno z iPhonu\n", "Odesláno z iPhonu"),
            (
                "Danke.\n\nVon meinem iPhone gesendet\n",
                "Von meinem iPhone gesendet",
            ),
            ("Merci.\n\nEnvoyé de mon iPhone\n", "Envoyé de mon iPhone"),
            (
                "Ok.\n\nGet Outlook for Android\n",
                "Get Outlook for Android",
            ),
            (
                "Ok.\n\nGet Outlook for iOS<https://aka.ms/x>\n",
                "Get Outlook for iOS<https://aka.ms/x>",
            ),
            (
                "Ok.\n\nSent from Yahoo Mail on Android\n",
                "Sent from Yahoo Mail on Android",
            ),
            ("Ok.\n\nSendt fra min iPad\n", "Sendt fra min iPad"),
            (
                "Ok.\n\nEnviado desde mi iPhone\n",
                "Enviado desde mi iPhone",
            ),
            (
                "Ok.\n\nSent from my phone, please excuse typos.\n",
                "Sent from my phone, please excuse typos.",
            ),
            (
                "Ok.\n\nSent from my HTC M8 Android phone.  Please excuse typoze\n",
                "Sent from my HTC M8 Android phone.  Please excuse typoze",
            ),
            ("Ok.\n\nSent from my TI-85\n", "Sent from my TI-85"),
            ("Ok.\n\n(sent from a phone)\n", "(sent from a phone)"),
            ("Kiitos.\n\nLähetetty iPhonesta\n", "Lähetetty iPhonesta"),
            (
                "Ok.\n\nGet [Outlook for Android](https://aka.ms/ghei36)\n",
                "Get [Outlook for Android](https://aka.ms/ghei36)",
            ),
            ("谢谢\n\n从我的 iPhone 发送\n", "从我的 iPhone 发送"),
            (
                "Danke.\n\nDiese Nachricht wurde von meinem Android-Mobiltelefon mit K-9 Mail gesendet.\n",
                "Diese Nachricht wurde von meinem Android-Mobiltelefon mit K-9 Mail gesendet.",
            ),
        ] {
            let s = split(text);
            assert_eq!(
                (s.text, s.signature),
                (text.split("\n\n").next().unwrap(), signature),
                "{text:?}"
            );
        }
        // Before the history too.
        let s = split(
            "Fine.\n\nSent from my iPhone\n\nOn 5 Jan 2026, at 10:00, A <a@x.test> wrote:\n> q\n",
        );
        assert_eq!((s.text, s.signature), ("Fine.", "Sent from my iPhone"));
        assert!(s.quoted.starts_with("On 5 Jan"));
        // A sentence that starts the same way, followed by more text, stays.
        let text = "Hi,\nSent from my iPhone the app crashes.\nOn the iPad it works, then it stops, then it works again after a restart.\nAnd after that nothing works any more at all.\nAnn\n";
        assert_eq!(split(text).signature, "");
        // Only the last mobile lines and what follows them.
        let s = split("Hi\nSent from my iPhone\nWhy?\nSent via mobile\n");
        assert_eq!(
            (s.text, s.signature),
            ("Hi\nSent from my iPhone\nWhy?", "Sent via mobile")
        );
        // Nothing but the signature: it is the text.
        assert_eq!(split("Sent from my iPhone").text, "Sent from my iPhone");
    }

    #[test]
    fn dash_signatures() {
        let s = split("Tamam.\n-- \nAyşe\nDestek\n");
        assert_eq!((s.text, s.signature), ("Tamam.", "Ayşe\nDestek"));
        let s = split(
            "Ok.\n\n--\nJan Novák\nFirma s.r.o.\n\nDne 5. 1. 2026 10:00 Jan <j@example.cz> napsal(a):\n> q\n",
        );
        assert_eq!((s.text, s.signature), ("Ok.", "Jan Novák\nFirma s.r.o."));
        // new_text keeps the signature.
        assert_eq!(
            new_text("Ok.\n-- \nAnn\n\nOn 5 Jan 2026, Ann <a@x.test> wrote:\n> q\n"),
            "Ok.\n-- \nAnn"
        );
        // A tracking dot alone on a line before the signature.
        assert_eq!(split("Ok.\n\n\u{1427}\n--\nAnn\n").text, "Ok.");
    }

    #[test]
    fn mobile_line_followed_by_text_is_no_signature() {
        // Case 2 of the review: the refund request stays in the text.
        let text = "I want to cancel.\n\nSent from my iPhone\n\nAlso please refund the shipping.";
        let s = split(text);
        assert_eq!((s.text, s.signature, s.quoted), (text, "", ""));
        // A name under it too: nothing is lost.
        let text = "Ok.\n\nSent from my phone, please excuse typos.\nAnn\n";
        assert_eq!((split(text).text, split(text).signature), (text, ""));
        // Blank lines and the history after it: a signature.
        let s = split(
            "Ok.\n\nSent from my iPhone\n\n\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> q\n",
        );
        assert_eq!((s.text, s.signature), ("Ok.", "Sent from my iPhone"));
        // Under an inline quote: the words after it are kept.
        let text = "Hi,\n\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> Which one?\nSent from my iPhone\n\nAlso please refund the shipping.\n";
        assert_eq!(new_text(text), text);
        // With nothing after it, the quote above it is history.
        let s = split(
            "Hi,\n\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> Which one?\nSent from my iPhone\n",
        );
        assert_eq!(s.text, "Hi,");
    }

    #[test]
    fn sentences_that_start_like_a_mobile_signature_stay() {
        // Case 4 of the review: the whole phrase, a device's name, short.
        for text in [
            "Kiitos.\n\nLähetetty paketti ei ole vieläkään saapunut.",
            "Kiitos.\n\nLähetetty eilen.",
            "Gracias.\n\nEnviado desde Madrid el lunes, pero el paquete aún no ha llegado.",
            "Gracias.\n\nEnviado desde Madrid.",
            "Gracias.\n\nEnviado desde Madrid con mi iPhone",
            "Thanks.\n\nSent from my office, the printer still jams every morning.",
            "Thanks.\n\nSent from my iPhone the app crashes.",
            "Thanks.\n\nSent from my iPhone. Please refund the shipping.",
            "Thanks.\n\nSent via courier on Monday",
            "Thanks.\n\nFrom my side everything works now",
        ] {
            let s = split(text);
            assert_eq!((s.text, s.signature), (text, ""), "{text:?}");
        }
    }

    #[test]
    fn bare_dashes_between_paragraphs_stay() {
        // Case 3 of the review: a bare `--` with a long block after it.
        let text = "The printer jams.\n--\nIt started on Monday.\nThen it stopped.\nToday again.\nWe restarted it.\nWe cleaned it.\nWe replaced the drum.\nNothing helps.\nPlease call me.\nThe number is 555.\n";
        let s = split(text);
        assert_eq!((s.text, s.signature), (text, ""));
        // Below an inline quote too.
        let inline = format!(
            "Hi,\n\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> Which one?\n{}",
            &text[18..]
        );
        assert_eq!(new_text(&inline), inline);
        // A short block at the end is a signature.
        let s = split("The printer jams.\n--\nAnn Lee\nACME\n");
        assert_eq!(
            (s.text, s.signature),
            ("The printer jams.", "Ann Lee\nACME")
        );
        // The standard `-- ` always is.
        let long = text.replacen("--\n", "-- \n", 1);
        let s = split(&long);
        assert_eq!(s.text, "The printer jams.");
        assert!(s.signature.starts_with("It started") && s.signature.ends_with("555."));
        // A bare `--` with quotes and answers after it is no signature.
        let text = "Ok.\n--\n> Which one?\nThe small one.\n";
        assert_eq!(split(text).signature, "");
    }

    #[test]
    fn attribution_without_a_quote_is_prose() {
        // Case 1 of the review: a time and a comma but no address, and no
        // quote after it.
        let text = "Hello,\n\nOn 5 May at 10:00, my colleague wrote:\nthe server is down again\n\nIt is still down.";
        let s = split(text);
        assert_eq!((s.text, s.quoted, s.signature), (text, "", ""));
        assert_eq!(new_text(text), text);
        // At the top as well.
        let text = "On 5 May at 10:00, my colleague wrote:\nthe server is down again\n";
        assert_eq!(new_text(text), text);
        // With a quote, a `Name>` quote or a header block after it: history.
        check(&[
            (
                "Hello,\n\nOn 5 May at 10:00, Ann wrote:\n> the server is down again\n",
                "Hello,",
            ),
            (
                "Hello,\n\nOn 5 May 2026, at 10:00, Ann wrote:\n\nAnn> the server is down again\n",
                "Hello,",
            ),
            (
                "Hello,\n\nOn 5 May 2026, at 10:00, Ann wrote:\n\n-----Original Message-----\nFrom: Bob <b@x.test>\nSent: Monday 10:00\nSubject: x\n",
                "Hello,",
            ),
        ]);
    }

    #[test]
    fn replies_below_the_quote_and_inline() {
        // Written below the quote: the text after it.
        let s = split("On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> question?\n\nanswer.\n");
        assert_eq!(
            (s.text, s.quoted),
            (
                "answer.",
                "On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> question?"
            )
        );
        // Answers between quotes under an attribution: kept from the top,
        // without the quoted greeting after the last answer.
        let s = split(
            "On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> Which model?\n\nThe small one.\n\n> Since when?\n\nSince Monday.\n\n> Regards,\n> Ann\n",
        );
        assert_eq!(
            (s.text, s.quoted),
            (
                "On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> Which model?\n\nThe small one.\n\n> Since when?\n\nSince Monday.",
                "> Regards,\n> Ann"
            )
        );
        // Interleaved after an attribution: kept whole.
        let inline = "Hi,\n\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> question one\nanswer one\n> question two\nanswer two\n";
        assert_eq!(new_text(inline), inline);
        // Without one.
        let inline = "> question one\nanswer one\n> question two\nanswer two\n";
        assert_eq!(new_text(inline), inline);
        let text = "> a quote\n\nAnd some text.\n";
        assert_eq!(new_text(text), text);
        // An attribution at the top of unquoted text: only the attribution goes.
        assert_eq!(
            split("On 5 Jan 2026 10:00, \"Ann\" <a@x.test> wrote:\n\nthe text\n").text,
            "the text"
        );
        // A forward without a comment: what was forwarded.
        assert_eq!(
            split("---------- Forwarded message ----------\nFrom: Ann <a@x.test>\nDate: Mon, 5 Jan 2026 at 10:00\nSubject: A subject that\nwraps\nTo: help@example.org\n\n\nThe forwarded text.\n").text,
            "The forwarded text."
        );
    }

    #[test]
    fn nothing_but_history() {
        let text = "On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> old\n";
        assert_eq!(new_text(text), "");
        assert_eq!(split(text).quoted, text.trim());
        let text = "> On 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n>\n>> On 4 Jan 2026 10:00, Bob <b@x.test> wrote:\n";
        assert_eq!(new_text(text), "");
        // A quote with no attribution is kept.
        assert_eq!(new_text("> all quoted\n"), "> all quoted\n");
        assert_eq!(new_text("plain text"), "plain text");
        assert_eq!(new_text(""), "");
    }

    #[test]
    fn prose_is_kept() {
        for text in [
            "Hi team,\nThe printer is broken again.\nAs my manager wrote:\n> fix it\nShould I send it?\n",
            // A date, "wrote:" and unquoted text: no address, no time.
            "Hi,\nIn 2025 my colleague wrote:\nthe printer needs a new drum.\nIs that still true?\n",
            "Hi,\nOn 5 May at 10:00 the server wrote:\nERROR disk full\nWhat does it mean?\n",
            // Headers a customer might write.
            "Hello,\nI need a ticket.\nFrom: Istanbul\nTo: Ankara\nDate: 5 May 2026 10:00\nThanks\n",
            // A short line of underscores inside a form.
            "Name: ____\nSignature: ____\n",
            "This is not a ---------- separator.\nNor is this.\n",
            // Log lines.
            "Hi,\nthe log says:\n2026-01-05 10:00:01 UTC error: disk full\n2026-01-05 10:00:02 GMT+01:00 retrying in 5s. Then it stops.\nPlease check.\n",
        ] {
            assert_eq!(new_text(text), text);
        }
        // A sentence before an attribution is not part of it.
        check(&[
            (
                "On Monday we talked.\nAnn <a@x.test> wrote:\n> old\n",
                "On Monday we talked.",
            ),
            (
                "Please ask bob@example.com about it\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> old\n",
                "Please ask bob@example.com about it",
            ),
            (
                "On Monday at 9:00 I wrote twice\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> old\n",
                "On Monday at 9:00 I wrote twice",
            ),
        ]);
    }

    #[test]
    fn long_inputs_stay_linear() {
        // One backward pass: this took minutes when each `>` line scanned
        // the rest of the text.
        let text = "> x\n".repeat(200_000) + "reply\n";
        assert_eq!(new_text(&text), text);
        let text = "On 5 Jan 2026 10:00 Ann <\n".repeat(50_000);
        let _ = split(&text);
        let text = "From: a\nTo: b\nX: y\n".repeat(30_000);
        let _ = split(&text);
        let text = "é".repeat(400_000) + "\n> q\n";
        assert_eq!(new_text(&text), text);
        let text = "Hi\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> q\n".repeat(20_000)
            + &"--\n".repeat(100_000)
            + "Sent from my iPhone\n\n".repeat(20_000).as_str();
        let _ = split(&text);
        // Past the scan limit: kept.
        let text = "x".repeat(300_000) + "\nOn 5 Jan 2026 10:00, Ann <a@x.test> wrote:\n> q\n";
        assert_eq!(new_text(&text), text);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_parts_come_from_the_text(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "> ", ">", "\n", "\r\n", " ", "-- ", "--", "On ", "5 Jan 2026 ", "10:00", ", ",
                    "Ann <a@x.test>", " wrote:", " şunu yazdı:", " napsal(a):", " a écrit\u{a0}:", "From: ", "Sent: ",
                    "Subject: ", "To: ", "Kimden: ", "-----Original Message-----", "____________________________________",
                    "Sent from my iPhone", "iPhone’umdan gönderildi", "İ", "é", "\u{1427}", "\u{feff}", "<", ":", "@",
                    "2026-01-05 ", "GMT", "text", "Odesláno z iPhonu", "ж", "👍", "\u{ff1a}",
                    "[", "](https://x)", "<http://a>", "http://b", "Sent from my ", ", please excuse typos",
                    "从我的", " gesendet", "Lähetetty ", "Ann> ", "a ", "--\n", "-- \n",
                ]),
                0..60,
            )
        ) {
            let text: String = pieces.concat();
            let s = split(&text);
            let new = new_text(&text);
            let range = text.as_ptr() as usize..=text.as_ptr() as usize + text.len();
            for part in [s.text, s.quoted, s.signature, new].into_iter().filter(|p| !p.is_empty()) {
                proptest::prop_assert!(range.contains(&(part.as_ptr() as usize)));
                proptest::prop_assert!(range.contains(&(part.as_ptr() as usize + part.len())));
            }
            proptest::prop_assert!(new.contains(s.text));
            proptest::prop_assert!(new.contains(s.signature));
        }
    }
}
