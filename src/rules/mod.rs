//! Routing rules: the operator's ordered `[[rule]]` tables, compiled once
//! at config load (`load`), evaluated per mail without I/O (`evaluate`),
//! and the team strategies that turn "assign to a team" into a person
//! (`pick`). Whatever needs the database (round-robin position, open
//! tickets per person, the customer's last assignee, whether the customer
//! is known) is read by the caller and passed in.
//!
//! Semantics: rules run in file order (main file, then includes in
//! order); every condition of a rule must hold, a list means any-of; the
//! first matching rule ends the run unless it says `continue = true`
//! (then later matching rules add to the decision: tags and notify
//! accumulate, other actions are replaced); `stop = true` ends the run.

pub mod load;
#[cfg(test)]
mod table_tests;

use std::cell::OnceCell;
use std::path::PathBuf;

use regex::Regex;

use crate::mail::parse::Inbound;

/// Where a rule or team is written, for messages and the ticket history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    LeastOpen,
    StickyCustomer,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastOpen => "least_open",
            Strategy::StickyCustomer => "sticky_customer",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        [
            Strategy::RoundRobin,
            Strategy::LeastOpen,
            Strategy::StickyCustomer,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Team {
    pub name: String,
    /// Lowercase staff emails, in the order round-robin walks them.
    pub members: Vec<String>,
    pub strategy: Strategy,
    /// For `sticky_customer` when the customer has no available previous
    /// assignee.
    pub fallback: Strategy,
    /// Most open tickets a member may hold (a staff `capacity` overrides).
    pub capacity: Option<i64>,
    pub origin: Origin,
}

/// Who a ticket goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assign {
    Staff(String),
    Team {
        team: String,
        strategy: Option<Strategy>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoReply {
    /// Send this named template instead of the acknowledgement.
    Template(String),
    /// Send nothing.
    Off,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actions {
    pub set_department: Option<String>,
    pub category: Option<String>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub assign: Option<Assign>,
    pub auto_reply: Option<AutoReply>,
    /// Staff emails or team names.
    pub notify: Vec<String>,
    /// Template name sent to the sender.
    pub reject: Option<String>,
    pub spam: bool,
    pub stop: bool,
}

/// An address pattern: `local@domain` globs (`*`, `?`), compared in lower
/// case with plus tags removed on both sides. `example.com` alone means
/// `*@example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    local: String,
    domain: String,
    text: String,
}

impl AddressPattern {
    pub fn new(pattern: &str) -> Result<AddressPattern, String> {
        let p = pattern.trim().to_lowercase();
        if p.is_empty() {
            return Err("empty address pattern".into());
        }
        let (local, domain) = match p.rsplit_once('@') {
            Some((l, d)) => (strip_plus(l).to_string(), d.to_string()),
            None => ("*".to_string(), p.clone()),
        };
        if domain.is_empty() || local.is_empty() || domain.contains(char::is_whitespace) {
            return Err(format!(
                "`{pattern}` is not an address pattern (expected user@example.com, *@example.com or example.com)"
            ));
        }
        Ok(AddressPattern {
            local,
            domain,
            text: pattern.trim().to_string(),
        })
    }

    pub fn matches(&self, address: &str) -> bool {
        split_address(address).is_some_and(|(l, d)| self.matches_parts(&l, &d))
    }

    /// Against an address already split by `split_address`.
    fn matches_parts(&self, local: &str, domain: &str) -> bool {
        glob(&self.domain, domain) && glob(&self.local, local)
    }
}

fn strip_plus(local: &str) -> &str {
    if local.starts_with('*') {
        return local;
    }
    local.split('+').next().unwrap_or(local)
}

/// `*` any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return glob_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_units(&p, &t, '*', '?')
}

fn glob_units<T: PartialEq + Copy>(p: &[T], t: &[T], any: T, one: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == any)
}

/// A weekly time window: days (Mon = 0) and minutes of the day; an end
/// before the start wraps past midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    start: u32,
    end: u32,
    text: String,
}

impl Window {
    /// `Mon-Fri 09:00-18:00`, `Sat,Sun 10:00-14:00`, `22:00-06:00` (every
    /// day).
    pub fn parse(s: &str) -> Result<Window, String> {
        let err = |why: &str| {
            format!("`{s}`: {why} (expected e.g. \"Mon-Fri 09:00-18:00\" or \"Sat 10:00-14:00\")")
        };
        let mut parts = s.split_whitespace();
        let (days_text, times) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), None, None) => (None, t),
            (Some(d), Some(t), None) => (Some(d), t),
            _ => return Err(err("one day list and one time range")),
        };
        let mut days = [days_text.is_none(); 7];
        if let Some(d) = days_text {
            for item in d.split(',') {
                let day = |x: &str| {
                    let x = x.to_ascii_lowercase();
                    const NAMES: [&str; 7] = [
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    ];
                    NAMES
                        .iter()
                        .position(|d| x.len() >= 3 && d.starts_with(x.as_str()))
                        .ok_or_else(|| err(&format!("unknown day `{x}`")))
                };
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day(a)?, day(b)?);
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => days[day(item)?] = true,
                }
            }
        }
        let (a, b) = times
            .split_once('-')
            .ok_or_else(|| err("missing time range"))?;
        let minute = |x: &str| -> Result<u32, String> {
            let (h, m) = x
                .split_once(':')
                .ok_or_else(|| err(&format!("`{x}` is not HH:MM")))?;
            let (h, m): (u32, u32) = (
                h.parse().map_err(|_| err(&format!("`{x}` is not HH:MM")))?,
                m.parse().map_err(|_| err(&format!("`{x}` is not HH:MM")))?,
            );
            if m > 59 || h > 24 || (h == 24 && m > 0) {
                return Err(err(&format!("`{x}` is not a time of day")));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minute(a)?, minute(b)?);
        if start == end {
            return Err(err("empty time range"));
        }
        Ok(Window {
            days,
            start,
            end,
            text: s.to_string(),
        })
    }

    /// `weekday` 0 = Monday.
    pub fn contains(&self, weekday: usize, minute: u32) -> bool {
        if self.start < self.end {
            self.days[weekday] && minute >= self.start && minute < self.end
        } else {
            // Past midnight: the evening belongs to the listed day, the
            // early morning to the day after it.
            (self.days[weekday] && minute >= self.start)
                || (self.days[(weekday + 6) % 7] && minute < self.end)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hours {
    pub windows: Vec<Window>,
    pub timezone: jiff::tz::TimeZone,
    pub timezone_name: String,
    /// `outside_hours`: true when the time is in none of the windows.
    pub outside: bool,
}

impl Hours {
    fn holds(&self, now_ms: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(now_ms) else {
            return false;
        };
        let z = ts.to_zoned(self.timezone.clone());
        let weekday = z.weekday().to_monday_zero_offset() as usize;
        let minute = z.hour() as u32 * 60 + z.minute() as u32;
        let inside = self.windows.iter().any(|w| w.contains(weekday, minute));
        inside != self.outside
    }
}

#[derive(Debug, Clone)]
pub enum Condition {
    Department(Vec<String>),
    IsReply(bool),
    CustomerKnown(bool),
    HasAttachment(bool),
    From(Vec<AddressPattern>),
    To(Vec<AddressPattern>),
    Cc(Vec<AddressPattern>),
    Hours(Hours),
    Language(Vec<String>),
    Header { name: String, regexes: Vec<Regex> },
    Subject(Vec<Pattern>),
    Body(Vec<Pattern>),
}

impl Condition {
    /// Cheap conditions first; the order `rules explain` reports.
    fn cost(&self) -> u8 {
        match self {
            Condition::Department(_)
            | Condition::IsReply(_)
            | Condition::CustomerKnown(_)
            | Condition::HasAttachment(_) => 0,
            Condition::From(_) | Condition::To(_) | Condition::Cc(_) => 1,
            Condition::Hours(_) => 2,
            Condition::Header { .. } | Condition::Subject(_) => 3,
            Condition::Body(_) => 4,
            Condition::Language(_) => 5,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            Condition::Department(_) => "department",
            Condition::IsReply(_) => "is_reply",
            Condition::CustomerKnown(_) => "customer_known",
            Condition::HasAttachment(_) => "has_attachment",
            Condition::From(_) => "from",
            Condition::To(_) => "to",
            Condition::Cc(_) => "cc",
            Condition::Hours(h) if h.outside => "outside_hours",
            Condition::Hours(_) => "hours",
            Condition::Language(_) => "language",
            Condition::Header { .. } => "header",
            Condition::Subject(_) => "subject",
            Condition::Body(_) => "body",
        }
    }

    /// What the condition asks, for `rules explain`.
    pub fn describe(&self) -> String {
        fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
            items.iter().map(f).collect::<Vec<_>>().join(" | ")
        }
        let re = |r: &Regex| format!("/{}/", display_regex(r));
        match self {
            Condition::Department(d) => format!("department = {}", d.join(" | ")),
            Condition::IsReply(b) => format!("is_reply = {b}"),
            Condition::CustomerKnown(b) => format!("customer_known = {b}"),
            Condition::HasAttachment(b) => format!("has_attachment = {b}"),
            Condition::From(p) => format!("from = {}", list(p, |p| p.text.clone())),
            Condition::To(p) => format!("to = {}", list(p, |p| p.text.clone())),
            Condition::Cc(p) => format!("cc = {}", list(p, |p| p.text.clone())),
            Condition::Hours(h) => format!(
                "{} = {} ({})",
                self.key(),
                list(&h.windows, |w| w.text.clone()),
                h.timezone_name
            ),
            Condition::Language(l) => format!("language = {}", l.join(" | ")),
            Condition::Header { name, regexes } => {
                format!("header {name} ~ {}", list(regexes, re))
            }
            Condition::Subject(p) => format!("subject ~ {}", list(p, |p| re(&p.re))),
            Condition::Body(p) => format!("body ~ {}", list(p, |p| re(&p.re))),
        }
    }
}

/// The pattern as the operator wrote it (without our `(?i)` prefix).
fn display_regex(r: &Regex) -> &str {
    r.as_str().strip_prefix("(?i)").unwrap_or(r.as_str())
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// `name`, or `rule N` (1-based over all files).
    pub name: String,
    pub origin: Origin,
    pub conditions: Vec<Condition>,
    pub actions: Actions,
    pub continue_: bool,
}

/// Every rule and team, compiled.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub teams: Vec<Team>,
    subject_filter: Option<Prefilter>,
    body_filter: Option<Prefilter>,
    /// Set by `prepare`: some rule reads `customer_known`.
    customer_known_used: bool,
    /// Set by `prepare`: some rule reads the mail's new text.
    text_used: bool,
}

impl RuleSet {
    pub fn team(&self, name: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.name == name)
    }

    /// A rule set ready to evaluate.
    pub fn new(rules: Vec<Rule>, teams: Vec<Team>) -> RuleSet {
        let mut set = RuleSet {
            rules,
            teams,
            subject_filter: None,
            body_filter: None,
            customer_known_used: false,
            text_used: false,
        };
        set.prepare();
        set
    }

    /// Builds the per-field prefilters; call once the rules are complete.
    pub fn prepare(&mut self) {
        let mut subject = Vec::new();
        let mut body = Vec::new();
        for c in self.rules.iter_mut().flat_map(|r| r.conditions.iter_mut()) {
            match c {
                Condition::Subject(p) => subject.extend(p.iter_mut()),
                Condition::Body(p) => body.extend(p.iter_mut()),
                _ => {}
            }
        }
        self.subject_filter = Prefilter::build(subject.into_iter());
        self.body_filter = Prefilter::build(body.into_iter());
        let conditions = || self.rules.iter().flat_map(|r| r.conditions.iter());
        self.customer_known_used = conditions().any(|c| matches!(c, Condition::CustomerKnown(_)));
        self.text_used =
            conditions().any(|c| matches!(c, Condition::Body(_) | Condition::Language(_)));
    }

    /// Whether any rule reads the mail's new text (`body`, `language`):
    /// finding it is skipped otherwise.
    pub fn uses_text(&self) -> bool {
        self.text_used
    }

    /// Whether any rule reads `customer_known` (a database query per mail).
    pub fn uses_customer_known(&self) -> bool {
        self.customer_known_used
    }
}

/// What the rules look at.
pub struct Facts<'a> {
    /// The department (mailbox) the mail arrived in.
    pub department: &'a str,
    pub mail: &'a Inbound,
    /// The mail's text without quoted history.
    pub new_text: &'a str,
    pub is_reply: bool,
    pub customer_known: bool,
    pub now_ms: i64,
    language: OnceCell<Option<&'static str>>,
    addresses: OnceCell<Addresses>,
    subject_hits: OnceCell<Option<regex::SetMatches>>,
    body_hits: OnceCell<Option<regex::SetMatches>>,
}

/// The mail's addresses as patterns compare them: lower case, split at
/// the last `@`, plus tags removed.
#[derive(Default)]
struct Addresses {
    from: Vec<(String, String)>,
    /// `To` and the envelope recipients (`Delivered-To` ...).
    to: Vec<(String, String)>,
    cc: Vec<(String, String)>,
}

fn split_address(a: &str) -> Option<(String, String)> {
    let a = a.to_lowercase();
    let (local, domain) = a.rsplit_once('@')?;
    Some((strip_plus(local).to_string(), domain.to_string()))
}

impl<'a> Facts<'a> {
    pub fn new(
        department: &'a str,
        mail: &'a Inbound,
        new_text: &'a str,
        is_reply: bool,
        customer_known: bool,
        now_ms: i64,
    ) -> Facts<'a> {
        Facts {
            department,
            mail,
            new_text,
            is_reply,
            customer_known,
            now_ms,
            language: OnceCell::new(),
            addresses: OnceCell::new(),
            subject_hits: OnceCell::new(),
            body_hits: OnceCell::new(),
        }
    }

    fn addresses(&self) -> &Addresses {
        self.addresses.get_or_init(|| {
            let m = self.mail;
            let split = |it: &mut dyn Iterator<Item = &str>| -> Vec<(String, String)> {
                it.filter_map(split_address).collect()
            };
            Addresses {
                from: split(&mut m.from.iter().map(|x| x.email.as_str())),
                to: split(
                    &mut m
                        .to
                        .iter()
                        .map(|x| x.email.as_str())
                        .chain(m.delivered_to.iter().map(String::as_str)),
                ),
                cc: split(&mut m.cc.iter().map(|x| x.email.as_str())),
            }
        })
    }

    /// ISO 639-1 code of the mail's language when detection is reliable.
    pub fn language(&self) -> Option<&'static str> {
        *self.language.get_or_init(|| {
            let mut sample: String = self.mail.subject.clone();
            sample.push('\n');
            sample.extend(self.new_text.chars().take(2000));
            let info = whatlang::detect(&sample)?;
            if !info.is_reliable() {
                return None;
            }
            Some(load::iso639_1(info.lang().code()))
        })
    }
}

/// Whether the condition holds. Cheap: no message is built (see
/// `reason`, called only by `rules explain`).
fn holds(c: &Condition, f: &Facts<'_>, rules: &RuleSet) -> bool {
    let m = f.mail;
    let any_address = |list: &[(String, String)], p: &[AddressPattern]| {
        list.iter()
            .any(|(local, domain)| p.iter().any(|p| p.matches_parts(local, domain)))
    };
    match c {
        Condition::Department(d) => d.iter().any(|d| d.eq_ignore_ascii_case(f.department)),
        Condition::IsReply(b) => *b == f.is_reply,
        Condition::CustomerKnown(b) => *b == f.customer_known,
        Condition::HasAttachment(b) => *b != m.attachments.is_empty(),
        Condition::From(p) => any_address(&f.addresses().from, p),
        Condition::To(p) => any_address(&f.addresses().to, p),
        Condition::Cc(p) => any_address(&f.addresses().cc, p),
        Condition::Hours(h) => h.holds(f.now_ms),
        Condition::Language(l) => f.language().is_some_and(|lang| l.iter().any(|x| x == lang)),
        Condition::Header { name, regexes } => m
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| regexes.iter().any(|r| r.is_match(v))),
        Condition::Subject(p) => {
            let hits = f
                .subject_hits
                .get_or_init(|| rules.subject_filter.as_ref().map(|s| s.matches(&m.subject)));
            p.iter()
                .any(|p| p.candidate(hits.as_ref()) && p.re.is_match(&m.subject))
        }
        Condition::Body(p) => {
            let hits = f
                .body_hits
                .get_or_init(|| rules.body_filter.as_ref().map(|s| s.matches(f.new_text)));
            p.iter()
                .any(|p| p.candidate(hits.as_ref()) && p.re.is_match(f.new_text))
        }
    }
}

/// Why a condition that does not hold failed, for `rules explain`.
fn reason(c: &Condition, f: &Facts<'_>) -> String {
    let m = f.mail;
    let seen = |list: &[(String, String)]| {
        if list.is_empty() {
            return "no address".to_string();
        }
        list.iter()
            .take(5)
            .map(|(l, d)| format!("{l}@{d}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match c {
        Condition::Department(_) => format!("arrived in {}", f.department),
        Condition::IsReply(_) => format!("is_reply is {}", f.is_reply),
        Condition::CustomerKnown(_) => format!("customer_known is {}", f.customer_known),
        Condition::HasAttachment(_) => {
            format!("has_attachment is {}", !m.attachments.is_empty())
        }
        Condition::From(_) => format!("from {}", seen(&f.addresses().from)),
        Condition::To(_) => format!("to {}", seen(&f.addresses().to)),
        Condition::Cc(_) => format!("cc {}", seen(&f.addresses().cc)),
        Condition::Hours(h) => jiff::Timestamp::from_millisecond(f.now_ms)
            .map(|t| {
                t.to_zoned(h.timezone.clone())
                    .strftime("it is %a %H:%M %Z")
                    .to_string()
            })
            .unwrap_or_else(|_| "time unknown".into()),
        Condition::Language(_) => match f.language() {
            Some(lang) => format!("language is {lang}"),
            None => "language not detected".into(),
        },
        Condition::Header { name, .. } => {
            if m.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                format!("{name} does not match")
            } else {
                format!("no {name} header")
            }
        }
        Condition::Subject(_) => {
            let mut s: String = m.subject.chars().take(60).collect();
            if s.len() < m.subject.len() {
                s.push('…');
            }
            format!("subject is {s:?}")
        }
        Condition::Body(_) => "no match in the new text".into(),
    }
}

/// A `subject` or `body` regex and its slot in the rule set's prefilter.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub re: Regex,
    pub case_insensitive: bool,
    slot: Option<usize>,
}

impl Pattern {
    pub fn new(re: Regex, case_insensitive: bool) -> Pattern {
        Pattern {
            re,
            case_insensitive,
            slot: None,
        }
    }

    /// False only when the prefilter proves the regex cannot match.
    fn candidate(&self, hits: Option<&regex::SetMatches>) -> bool {
        match (hits, self.slot) {
            (Some(h), Some(slot)) => h.matched(slot),
            _ => true,
        }
    }
}

/// Every `subject` (or `body`) regex of the rule set in one `RegexSet`,
/// scanned once per mail, so a thousand rules cost one pass over the text
/// rather than one each. Each pattern enters the set with its look-around
/// assertions (`\b`, `^`, `$` ...) removed: that matches a superset of what
/// the pattern matches, keeps the set on the fast DFA engines (Unicode
/// `\b` would not), and a hit is confirmed with the real regex.
#[derive(Debug, Clone)]
pub struct Prefilter {
    set: regex::RegexSet,
}

impl Prefilter {
    /// Assigns the slots; `None` (every regex checked alone) when the set
    /// cannot be built within the size limits.
    fn build<'p>(patterns: impl Iterator<Item = &'p mut Pattern>) -> Option<Prefilter> {
        let mut sources = Vec::new();
        let mut slotted = Vec::new();
        for p in patterns {
            p.slot = Some(sources.len());
            sources.push(without_assertions(p.re.as_str(), p.case_insensitive));
            slotted.push(p);
        }
        if sources.is_empty() {
            return None;
        }
        match regex::RegexSetBuilder::new(&sources)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()
        {
            Ok(set) => Some(Prefilter { set }),
            Err(_) => {
                for p in slotted {
                    p.slot = None;
                }
                None
            }
        }
    }

    fn matches(&self, text: &str) -> regex::SetMatches {
        self.set.matches(text)
    }
}

/// The pattern with every look-around assertion replaced by the empty
/// match; the empty pattern (matches everything) if it cannot be read.
fn without_assertions(pattern: &str, case_insensitive: bool) -> String {
    use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};
    fn strip(h: Hir) -> Hir {
        match h.into_kind() {
            HirKind::Look(_) => Hir::empty(),
            HirKind::Repetition(r) => Hir::repetition(Repetition {
                sub: Box::new(strip(*r.sub)),
                ..r
            }),
            HirKind::Capture(c) => Hir::capture(Capture {
                sub: Box::new(strip(*c.sub)),
                ..c
            }),
            HirKind::Concat(v) => Hir::concat(v.into_iter().map(strip).collect()),
            HirKind::Alternation(v) => Hir::alternation(v.into_iter().map(strip).collect()),
            other => other_kind(other),
        }
    }
    fn other_kind(k: HirKind) -> Hir {
        match k {
            HirKind::Empty => Hir::empty(),
            HirKind::Literal(l) => Hir::literal(l.0),
            HirKind::Class(c) => Hir::class(c),
            _ => Hir::empty(),
        }
    }
    regex_syntax::ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .build()
        .parse(pattern)
        .map(|h| strip(h).to_string())
        .unwrap_or_default()
}

/// One rule's fate, for `rules explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Matched,
    /// The first condition that failed, and why.
    Failed {
        condition: String,
        why: String,
    },
    /// An earlier rule ended the run.
    NotReached,
}

/// What the rules decided for one mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Indices into `RuleSet::rules` of the matching rules, in order.
    pub matched: Vec<usize>,
    pub actions: Actions,
}

impl Decision {
    /// The rule names, for the ticket history.
    pub fn rule_names<'r>(&self, rules: &'r RuleSet) -> Vec<&'r str> {
        self.matched
            .iter()
            .map(|i| rules.rules[*i].name.as_str())
            .collect()
    }
}

/// Runs the rules over a mail; `trace` gets one verdict per rule.
pub fn evaluate(rules: &RuleSet, f: &Facts<'_>, mut trace: Option<&mut Vec<Verdict>>) -> Decision {
    let mut d = Decision::default();
    let mut done = false;
    for (i, rule) in rules.rules.iter().enumerate() {
        if done {
            if let Some(t) = trace.as_deref_mut() {
                t.push(Verdict::NotReached);
                continue;
            }
            break;
        }
        if let Some(c) = rule.conditions.iter().find(|c| !holds(c, f, rules)) {
            if let Some(t) = trace.as_deref_mut() {
                t.push(Verdict::Failed {
                    condition: c.describe(),
                    why: reason(c, f),
                });
            }
            continue;
        }
        if let Some(t) = trace.as_deref_mut() {
            t.push(Verdict::Matched);
        }
        d.matched.push(i);
        merge(&mut d.actions, &rule.actions);
        done = !rule.continue_ || rule.actions.stop;
    }
    d
}

fn merge(into: &mut Actions, a: &Actions) {
    fn set<T: Clone>(into: &mut Option<T>, from: &Option<T>) {
        if from.is_some() {
            into.clone_from(from);
        }
    }
    set(&mut into.set_department, &a.set_department);
    set(&mut into.category, &a.category);
    set(&mut into.priority, &a.priority);
    set(&mut into.assign, &a.assign);
    set(&mut into.auto_reply, &a.auto_reply);
    set(&mut into.reject, &a.reject);
    for t in &a.tags {
        if !into.tags.contains(t) {
            into.tags.push(t.clone());
        }
    }
    for n in &a.notify {
        if !into.notify.contains(n) {
            into.notify.push(n.clone());
        }
    }
    into.spam |= a.spam;
    into.stop |= a.stop;
}

/// A staff member as the strategies see them.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub email: &'a str,
    pub away: bool,
    /// Most open tickets (staff `capacity`, else the team's).
    pub capacity: Option<i64>,
}

impl Member<'_> {
    /// Not away and below capacity.
    pub fn available(&self, s: &TeamState) -> bool {
        !self.away
            && self
                .capacity
                .is_none_or(|c| s.open.get(self.email).copied().unwrap_or(0) < c)
    }
}

/// What a strategy may read (from the database, or empty for `rules test`).
#[derive(Debug, Clone, Default)]
pub struct TeamState {
    /// Round-robin number for this pick (1, 2, 3 ...).
    pub round_robin: i64,
    /// Open tickets per staff email.
    pub open: std::collections::HashMap<String, i64>,
    /// The assignee of the customer's previous ticket.
    pub last_assignee: Option<String>,
}

/// Who gets the ticket, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub assignee: Option<String>,
    pub how: String,
}

/// Applies a strategy to a team. Away members and members at capacity
/// are skipped; `None` when nobody is available.
pub fn pick(members: &[Member<'_>], strategy: Strategy, fallback: Strategy, s: &TeamState) -> Pick {
    let open = |e: &str| s.open.get(e).copied().unwrap_or(0);
    let available = |m: &Member<'_>| m.available(s);
    if !members.iter().any(available) {
        return Pick {
            assignee: None,
            how: "nobody available (away or at capacity)".into(),
        };
    }
    match strategy {
        Strategy::RoundRobin => {
            // Rotate over the available members only, so the rotation
            // stays fair when someone is skipped (walking on to the next
            // member would give that one a double share).
            let free: Vec<&Member<'_>> = members.iter().filter(|m| available(m)).collect();
            let m = free[((s.round_robin.max(1) - 1) % free.len() as i64) as usize];
            Pick {
                assignee: Some(m.email.to_string()),
                how: format!("round_robin #{}", s.round_robin),
            }
        }
        Strategy::LeastOpen => {
            let m = members
                .iter()
                .filter(|m| available(m))
                .min_by_key(|m| open(m.email))
                .expect("one is available");
            Pick {
                assignee: Some(m.email.to_string()),
                how: format!("least_open ({} open)", open(m.email)),
            }
        }
        Strategy::StickyCustomer => {
            if let Some(last) = &s.last_assignee
                && let Some(m) = members.iter().find(|m| m.email == last && available(m))
            {
                return Pick {
                    assignee: Some(m.email.to_string()),
                    how: "sticky_customer (previous assignee)".into(),
                };
            }
            let fallback = if fallback == Strategy::StickyCustomer {
                Strategy::RoundRobin
            } else {
                fallback
            };
            let p = pick(members, fallback, fallback, s);
            Pick {
                assignee: p.assignee,
                how: format!("sticky_customer fell back to {}", p.how),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_address_patterns() {
        assert!(glob("*@example.com", "ann@example.com"));
        assert!(glob("a?n", "ann"));
        assert!(!glob("*@example.com", "ann@example.org"));
        assert!(glob("*.example.com", "mail.example.com"));
        let p = AddressPattern::new("Billing+x@Example.com").unwrap();
        assert!(p.matches("billing@example.com"));
        assert!(p.matches("billing+invoice@example.com"));
        assert!(!p.matches("sales@example.com"));
        let d = AddressPattern::new("example.com").unwrap();
        assert!(d.matches("x@example.com"));
        assert!(!d.matches("x@sub.example.com"));
        assert!(AddressPattern::new("a@").is_err());
    }

    #[test]
    fn prefilter_patterns_drop_assertions_and_keep_the_rest() {
        for (pattern, text, hit) in [
            (r"\border\s+#?2\d{3,}\b", "Order 2024 is late", true),
            (r"^invoice$", "see the invoice here", true),
            (r"\\b", r"a \b b", true),
            (r"\\b", "no backslash", false),
            (r"fatura", "FATURA", true),
        ] {
            let p = without_assertions(pattern, true);
            let re = Regex::new(&p).unwrap();
            assert_eq!(re.is_match(text), hit, "{pattern} -> {p} on {text:?}");
        }
        // The prefilter never loses a match of the real pattern.
        let p = without_assertions(r"\bçay\b", true);
        assert!(Regex::new(&p).unwrap().is_match("bir ÇAY lütfen"));
        // Unreadable patterns match everything.
        assert_eq!(without_assertions("(", false), "");
    }

    #[test]
    fn windows_parse_and_wrap_past_midnight() {
        let w = Window::parse("Mon-Fri 09:00-18:00").unwrap();
        assert!(w.contains(0, 9 * 60));
        assert!(!w.contains(0, 18 * 60));
        assert!(!w.contains(5, 10 * 60));
        let n = Window::parse("Fri 22:00-06:00").unwrap();
        assert!(n.contains(4, 23 * 60));
        assert!(n.contains(5, 5 * 60));
        assert!(!n.contains(4, 5 * 60));
        let wrap = Window::parse("Sat-Mon 00:00-24:00").unwrap();
        assert!(wrap.contains(6, 0) && wrap.contains(0, 600) && !wrap.contains(1, 600));
        for bad in [
            "Mon-Fri",
            "Funday 09:00-10:00",
            "09:00-09:00",
            "25:00-26:00",
            "a b c",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
