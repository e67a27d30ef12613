//! `[[rule]]` and `[[team]]` tables, from the main config file and the
//! files it includes, checked and compiled. Every problem is reported with
//! the file, line and key path of the value at fault, in one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use toml::Spanned;

use super::{
    Actions, AddressPattern, Assign, AutoReply, Condition, Hours, Origin, Priority, Rule, RuleSet,
    Strategy, Team, Window,
};
use crate::config::{Collector, Department, Staff};
use crate::templates::Template;

/// Compiled size limit of one regex (the `regex` crate's measure).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A value or a list of values (any-of).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum BoolOrName {
    Bool(bool),
    Name(String),
}

type Many = Option<Spanned<OneOrMany<String>>>;

#[derive(Deserialize, Debug)]
pub struct RawRule {
    name: Option<Spanned<String>>,
    // Conditions.
    department: Many,
    to: Many,
    cc: Many,
    from: Many,
    subject: Many,
    body: Many,
    header: Option<Spanned<BTreeMap<String, OneOrMany<String>>>>,
    has_attachment: Option<Spanned<bool>>,
    language: Many,
    is_reply: Option<Spanned<bool>>,
    customer_known: Option<Spanned<bool>>,
    hours: Many,
    outside_hours: Many,
    timezone: Option<Spanned<String>>,
    case_sensitive: Option<Spanned<bool>>,
    // Actions.
    set_department: Option<Spanned<String>>,
    category: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    tags: Many,
    assign: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    auto_reply: Option<Spanned<BoolOrName>>,
    notify: Many,
    reject: Option<Spanned<BoolOrName>>,
    spam: Option<Spanned<bool>>,
    stop: Option<Spanned<bool>>,
    #[serde(rename = "continue")]
    continue_: Option<Spanned<bool>>,
}

/// Every key a `[[rule]]` table accepts (for "did you mean" hints).
pub const RULE_KEYS: &[&str] = &[
    "name",
    "department",
    "to",
    "cc",
    "from",
    "subject",
    "body",
    "header",
    "has_attachment",
    "language",
    "is_reply",
    "customer_known",
    "hours",
    "outside_hours",
    "timezone",
    "case_sensitive",
    "set_department",
    "category",
    "priority",
    "tags",
    "assign",
    "strategy",
    "auto_reply",
    "notify",
    "reject",
    "spam",
    "stop",
    "continue",
];

#[derive(Deserialize, Debug)]
pub struct RawTeam {
    name: Option<Spanned<String>>,
    #[serde(default)]
    members: Vec<Spanned<String>>,
    strategy: Option<Spanned<String>>,
    fallback: Option<Spanned<String>>,
    capacity: Option<Spanned<i64>>,
}

pub const TEAM_KEYS: &[&str] = &["name", "members", "strategy", "fallback", "capacity"];

/// An included file: rules and teams only.
#[derive(Deserialize, Debug, Default)]
pub struct RawIncluded {
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub team: Vec<Spanned<RawTeam>>,
}

pub const INCLUDED_KEYS: &[&str] = &["rule", "team"];

/// The rules and teams of one file, with the collector for its problems.
pub(crate) struct FileRules<'a, 'c> {
    pub c: &'c mut Collector<'a>,
    pub rules: Vec<Spanned<RawRule>>,
    pub teams: Vec<Spanned<RawTeam>>,
}

/// ISO 639-3 (whatlang) to 639-1 where one exists.
pub fn iso639_1(code3: &'static str) -> &'static str {
    const MAP: &[(&str, &str)] = &[
        ("eng", "en"),
        ("tur", "tr"),
        ("deu", "de"),
        ("fra", "fr"),
        ("spa", "es"),
        ("ita", "it"),
        ("nld", "nl"),
        ("pol", "pl"),
        ("por", "pt"),
        ("rus", "ru"),
        ("ces", "cs"),
        ("slk", "sk"),
        ("ukr", "uk"),
        ("ara", "ar"),
        ("cmn", "zh"),
        ("jpn", "ja"),
        ("kor", "ko"),
        ("hun", "hu"),
        ("ron", "ro"),
        ("swe", "sv"),
        ("dan", "da"),
        ("nob", "no"),
        ("fin", "fi"),
        ("ell", "el"),
        ("heb", "he"),
        ("hin", "hi"),
        ("bul", "bg"),
        ("hrv", "hr"),
        ("srp", "sr"),
        ("slv", "sl"),
        ("lit", "lt"),
        ("lav", "lv"),
        ("est", "et"),
        ("aze", "az"),
        ("pes", "fa"),
        ("vie", "vi"),
        ("ind", "id"),
        ("tha", "th"),
        ("cat", "ca"),
    ];
    MAP.iter()
        .find(|(three, _)| *three == code3)
        .map_or(code3, |(_, two)| two)
}

fn known_language(code: &str) -> Option<&'static str> {
    let lower = code.to_ascii_lowercase();
    whatlang::Lang::all().iter().find_map(|l| {
        let three = l.code();
        let two = iso639_1(three);
        (lower == three || lower == two).then_some(two)
    })
}

/// The levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The nearest of `candidates` to `word`, when near enough to be a typo.
pub fn nearest<'k>(word: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|k| (distance(&w, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn did_you_mean<'k>(word: &str, candidates: impl IntoIterator<Item = &'k str>) -> String {
    nearest(word, candidates).map_or_else(String::new, |k| format!("; did you mean `{k}`?"))
}

/// What the rules refer to.
pub(crate) struct Context<'x> {
    pub departments: &'x mut [Department],
    pub staff: &'x [Staff],
    pub default_timezone: &'x (jiff::tz::TimeZone, String),
}

/// Compiles teams, then rules, of every file (main first). Rule and team
/// problems go to the collector of the file they are written in.
pub(crate) fn compile(files: &mut [FileRules<'_, '_>], cx: &mut Context<'_>) -> RuleSet {
    let mut set = RuleSet::default();
    for f in files.iter_mut() {
        for (i, t) in f.teams.iter().enumerate() {
            if let Some(team) = compile_team(f.c, t, i, cx, &set.teams) {
                set.teams.push(team);
            }
        }
    }
    let mut number = 0;
    for f in files.iter_mut() {
        for (i, r) in f.rules.iter().enumerate() {
            number += 1;
            if let Some(rule) = compile_rule(f.c, r, i, number, cx, &set.teams) {
                set.rules.push(rule);
            }
        }
    }
    set.prepare();
    set
}

fn compile_team(
    c: &mut Collector<'_>,
    t: &Spanned<RawTeam>,
    i: usize,
    cx: &Context<'_>,
    earlier: &[Team],
) -> Option<Team> {
    let at = format!("team[{i}]");
    let span = t.span();
    let t = t.get_ref();
    let name = match &t.name {
        Some(n) if !n.get_ref().trim().is_empty() && !n.get_ref().contains('@') => {
            if earlier.iter().any(|e| e.name == *n.get_ref()) {
                c.error(
                    n.span(),
                    &format!("{at}.name"),
                    format!("team `{}` is defined twice", n.get_ref()),
                );
            }
            n.get_ref().trim().to_string()
        }
        Some(n) => {
            c.error(
                n.span(),
                &format!("{at}.name"),
                "a team name must be non-empty and must not contain `@`",
            );
            return None;
        }
        None => {
            c.error(span, &format!("{at}.name"), "missing required key");
            return None;
        }
    };
    let mut members = Vec::new();
    if t.members.is_empty() {
        c.error(
            span.clone(),
            &format!("{at}.members"),
            "a team needs at least one member",
        );
    }
    for (j, m) in t.members.iter().enumerate() {
        let email = m.get_ref().trim().to_ascii_lowercase();
        if !cx.staff.iter().any(|s| s.email == email) {
            let hint = did_you_mean(&email, cx.staff.iter().map(|s| s.email.as_str()));
            c.error(
                m.span(),
                &format!("{at}.members[{j}]"),
                format!("`{}` is not a [[staff]] member{hint}", m.get_ref()),
            );
        } else if members.contains(&email) {
            c.error(m.span(), &format!("{at}.members[{j}]"), "listed twice");
        } else {
            members.push(email);
        }
    }
    let fallback =
        strategy(c, &t.fallback, &format!("{at}.fallback")).unwrap_or(Strategy::RoundRobin);
    let strategy =
        strategy(c, &t.strategy, &format!("{at}.strategy")).unwrap_or(Strategy::RoundRobin);
    if fallback == Strategy::StickyCustomer
        && let Some(f) = &t.fallback
    {
        c.error(
            f.span(),
            &format!("{at}.fallback"),
            "the fallback must be round_robin or least_open",
        );
    }
    let capacity = match &t.capacity {
        Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref()),
        Some(n) => {
            c.error(n.span(), &format!("{at}.capacity"), "must be 1 or more");
            None
        }
        None => None,
    };
    let (line, _) = c.line_col(span.start);
    Some(Team {
        name,
        members,
        strategy,
        fallback,
        capacity,
        origin: Origin {
            file: c.file.to_path_buf(),
            line,
        },
    })
}

fn strategy(c: &mut Collector<'_>, v: &Option<Spanned<String>>, key: &str) -> Option<Strategy> {
    let v = v.as_ref()?;
    match Strategy::parse(v.get_ref()) {
        Some(s) => Some(s),
        None => {
            let hint = did_you_mean(
                v.get_ref(),
                ["round_robin", "least_open", "sticky_customer"],
            );
            c.error(
                v.span(),
                key,
                format!(
                    "unknown strategy `{}` (round_robin, least_open, sticky_customer){hint}",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

fn regexes(
    c: &mut Collector<'_>,
    span: std::ops::Range<usize>,
    key: &str,
    patterns: &[String],
    case_sensitive: bool,
) -> Vec<Regex> {
    let mut out = Vec::new();
    for p in patterns {
        match RegexBuilder::new(p)
            .case_insensitive(!case_sensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(r) => out.push(r),
            Err(e) => {
                let why = match e {
                    regex::Error::CompiledTooBig(limit) => format!(
                        "regex `{p}` is too large (over {limit} bytes compiled); simplify it"
                    ),
                    other => format!(
                        "invalid regex `{p}`: {}",
                        other
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim_start_matches("error: ")
                    ),
                };
                c.error(span.clone(), key, why);
            }
        }
    }
    out
}

fn addresses(
    c: &mut Collector<'_>,
    v: &Spanned<OneOrMany<String>>,
    key: &str,
) -> Vec<AddressPattern> {
    let mut out = Vec::new();
    for p in v.get_ref().to_vec() {
        match AddressPattern::new(&p) {
            Ok(a) => out.push(a),
            Err(e) => c.error(v.span(), key, e),
        }
    }
    out
}

fn compile_rule(
    c: &mut Collector<'_>,
    r: &Spanned<RawRule>,
    i: usize,
    number: usize,
    cx: &mut Context<'_>,
    teams: &[Team],
) -> Option<Rule> {
    let at = format!("rule[{i}]");
    let span = r.span();
    let (line, _) = c.line_col(span.start);
    let r = r.get_ref();
    let key = |k: &str| format!("{at}.{k}");
    let case_sensitive = r.case_sensitive.as_ref().is_some_and(|b| *b.get_ref());
    let dept_keys: Vec<String> = cx.departments.iter().map(|d| d.key.clone()).collect();
    let mut conditions = Vec::new();

    // Departments this rule can apply to: its condition, else all.
    let mut applies_to: Vec<String> = dept_keys.clone();
    if let Some(d) = &r.department {
        let mut keys = Vec::new();
        for k in d.get_ref().to_vec() {
            match dept_keys.iter().find(|x| x.eq_ignore_ascii_case(&k)) {
                Some(x) => keys.push(x.clone()),
                None => {
                    let hint = did_you_mean(&k, dept_keys.iter().map(String::as_str));
                    c.error(
                        d.span(),
                        &key("department"),
                        format!("no department with key `{k}`{hint}"),
                    );
                }
            }
        }
        applies_to = keys.clone();
        conditions.push(Condition::Department(keys));
    }
    for (flag, make) in [
        (&r.is_reply, Condition::IsReply as fn(bool) -> Condition),
        (&r.customer_known, Condition::CustomerKnown),
        (&r.has_attachment, Condition::HasAttachment),
    ] {
        if let Some(b) = flag {
            conditions.push(make(*b.get_ref()));
        }
    }
    if let Some(v) = &r.from {
        conditions.push(Condition::From(addresses(c, v, &key("from"))));
    }
    if let Some(v) = &r.to {
        conditions.push(Condition::To(addresses(c, v, &key("to"))));
    }
    if let Some(v) = &r.cc {
        conditions.push(Condition::Cc(addresses(c, v, &key("cc"))));
    }
    let timezone = match &r.timezone {
        None => cx.default_timezone.clone(),
        Some(tz) => match jiff::tz::TimeZone::get(tz.get_ref()) {
            Ok(z) => (z, tz.get_ref().clone()),
            Err(_) => {
                c.error(
                    tz.span(),
                    &key("timezone"),
                    format!(
                        "unknown time zone `{}` (use an IANA name such as Europe/Istanbul)",
                        tz.get_ref()
                    ),
                );
                cx.default_timezone.clone()
            }
        },
    };
    if r.timezone.is_some()
        && r.hours.is_none()
        && r.outside_hours.is_none()
        && let Some(tz) = &r.timezone
    {
        c.warning(
            tz.span(),
            &key("timezone"),
            "has no effect without `hours` or `outside_hours`",
        );
    }
    for (v, outside, name) in [
        (&r.hours, false, "hours"),
        (&r.outside_hours, true, "outside_hours"),
    ] {
        if let Some(v) = v {
            let mut windows = Vec::new();
            for w in v.get_ref().to_vec() {
                match Window::parse(&w) {
                    Ok(w) => windows.push(w),
                    Err(e) => c.error(v.span(), &key(name), e),
                }
            }
            conditions.push(Condition::Hours(Hours {
                windows,
                timezone: timezone.0.clone(),
                timezone_name: timezone.1.clone(),
                outside,
            }));
        }
    }
    if let Some(v) = &r.language {
        let mut langs = Vec::new();
        for l in v.get_ref().to_vec() {
            match known_language(&l) {
                Some(code) => langs.push(code.to_string()),
                None => c.error(
                    v.span(),
                    &key("language"),
                    format!("unknown language `{l}` (use ISO 639-1 codes such as en, tr, cs)"),
                ),
            }
        }
        conditions.push(Condition::Language(langs));
    }
    if let Some(h) = &r.header {
        if h.get_ref().is_empty() {
            c.error(
                h.span(),
                &key("header"),
                "expected header names with regexes, e.g. header = { X-Priority = \"^1\" }",
            );
        }
        for (name, patterns) in h.get_ref() {
            let regexes = regexes(
                c,
                h.span(),
                &format!("{at}.header.{name}"),
                &patterns.to_vec(),
                case_sensitive,
            );
            conditions.push(Condition::Header {
                name: name.clone(),
                regexes,
            });
        }
    }
    if let Some(v) = &r.subject {
        conditions.push(Condition::Subject(
            regexes(
                c,
                v.span(),
                &key("subject"),
                &v.get_ref().to_vec(),
                case_sensitive,
            )
            .into_iter()
            .map(|r| super::Pattern::new(r, !case_sensitive))
            .collect(),
        ));
    }
    if let Some(v) = &r.body {
        conditions.push(Condition::Body(
            regexes(
                c,
                v.span(),
                &key("body"),
                &v.get_ref().to_vec(),
                case_sensitive,
            )
            .into_iter()
            .map(|r| super::Pattern::new(r, !case_sensitive))
            .collect(),
        ));
    }
    conditions.sort_by_key(Condition::cost);

    // Actions.
    let mut a = Actions::default();
    let mut target_departments = applies_to.clone();
    if let Some(d) = &r.set_department {
        match dept_keys
            .iter()
            .find(|x| x.eq_ignore_ascii_case(d.get_ref()))
        {
            Some(k) => {
                a.set_department = Some(k.clone());
                target_departments = vec![k.clone()];
            }
            None => {
                let hint = did_you_mean(d.get_ref(), dept_keys.iter().map(String::as_str));
                c.error(
                    d.span(),
                    &key("set_department"),
                    format!("no department with key `{}`{hint}", d.get_ref()),
                );
            }
        }
    }
    if let Some(cat) = &r.category {
        let cat_name = cat.get_ref().trim().to_string();
        let missing: Vec<&str> = cx
            .departments
            .iter()
            .filter(|d| target_departments.contains(&d.key) && !d.categories.contains(&cat_name))
            .map(|d| d.key.as_str())
            .collect();
        if !missing.is_empty() {
            let declared: Vec<&str> = cx
                .departments
                .iter()
                .filter(|d| target_departments.contains(&d.key))
                .flat_map(|d| d.categories.iter().map(String::as_str))
                .collect();
            let hint = did_you_mean(&cat_name, declared.iter().copied());
            c.error(
                cat.span(),
                &key("category"),
                format!(
                    "category `{cat_name}` is not declared in `categories` of {}{hint}",
                    missing.join(", ")
                ),
            );
        }
        a.category = Some(cat_name);
    }
    if let Some(p) = &r.priority {
        match Priority::parse(p.get_ref()) {
            Some(p) => a.priority = Some(p),
            None => {
                let hint = did_you_mean(p.get_ref(), Priority::ALL.iter().map(|p| p.as_str()));
                c.error(
                    p.span(),
                    &key("priority"),
                    format!(
                        "unknown priority `{}` (low, medium, high, urgent){hint}",
                        p.get_ref()
                    ),
                );
            }
        }
    }
    if let Some(t) = &r.tags {
        for tag in t.get_ref().to_vec() {
            let tag = tag.trim().to_string();
            if tag.is_empty() || tag.contains(char::is_whitespace) {
                c.error(
                    t.span(),
                    &key("tags"),
                    format!("tag `{tag}` must be one word"),
                );
            } else if !a.tags.contains(&tag) {
                a.tags.push(tag);
            }
        }
    }
    let strategy_override = strategy(c, &r.strategy, &key("strategy"));
    if let Some(target) = &r.assign {
        let name = target.get_ref().trim();
        if name.contains('@') {
            let email = name.to_ascii_lowercase();
            if cx.staff.iter().any(|s| s.email == email) {
                a.assign = Some(Assign::Staff(email));
            } else {
                let hint = did_you_mean(&email, cx.staff.iter().map(|s| s.email.as_str()));
                c.error(
                    target.span(),
                    &key("assign"),
                    format!("`{name}` is not a [[staff]] member{hint}"),
                );
            }
            if let Some(s) = &r.strategy {
                c.warning(
                    s.span(),
                    &key("strategy"),
                    "has no effect when assigning to a person",
                );
            }
        } else if teams.iter().any(|t| t.name == name) {
            a.assign = Some(Assign::Team {
                team: name.to_string(),
                strategy: strategy_override,
            });
        } else {
            let hint = did_you_mean(name, teams.iter().map(|t| t.name.as_str()));
            c.error(
                target.span(),
                &key("assign"),
                format!("no [[team]] named `{name}` (and not a staff email){hint}"),
            );
        }
    } else if let Some(s) = &r.strategy {
        c.warning(s.span(), &key("strategy"), "has no effect without `assign`");
    }
    let template = |c: &mut Collector<'_>,
                    name: &str,
                    span: std::ops::Range<usize>,
                    k: &str,
                    cx: &mut Context<'_>| {
        for d in cx
            .departments
            .iter_mut()
            .filter(|d| target_departments.contains(&d.key) || applies_to.contains(&d.key))
        {
            if d.named_templates.contains_key(name) {
                continue;
            }
            let dirs: Vec<&Path> = d.template_dirs.iter().map(PathBuf::as_path).collect();
            match Template::load_named(name, &d.language, &dirs) {
                Ok(t) => {
                    d.named_templates.insert(name.to_string(), t);
                }
                Err(e) => c.error(span.clone(), k, format!("department {}: {e}", d.key)),
            }
        }
    };
    if let Some(v) = &r.auto_reply {
        match v.get_ref() {
            BoolOrName::Bool(false) => a.auto_reply = Some(AutoReply::Off),
            BoolOrName::Bool(true) => {}
            BoolOrName::Name(n) => {
                template(c, n, v.span(), &key("auto_reply"), cx);
                a.auto_reply = Some(AutoReply::Template(n.clone()));
            }
        }
    }
    if let Some(v) = &r.reject {
        match v.get_ref() {
            BoolOrName::Bool(false) => {}
            BoolOrName::Bool(true) => a.reject = Some("rejection".into()),
            BoolOrName::Name(n) => {
                template(c, n, v.span(), &key("reject"), cx);
                a.reject = Some(n.clone());
            }
        }
        if a.reject.is_some() {
            template(c, "rejection", v.span(), &key("reject"), cx);
        }
    }
    if let Some(n) = &r.notify {
        for who in n.get_ref().to_vec() {
            let w = who.trim().to_ascii_lowercase();
            let ok = if w.contains('@') {
                cx.staff.iter().any(|s| s.email == w)
            } else {
                teams.iter().any(|t| t.name == who.trim())
            };
            if ok {
                a.notify.push(if w.contains('@') {
                    w
                } else {
                    who.trim().to_string()
                });
            } else {
                let hint = did_you_mean(
                    &w,
                    cx.staff
                        .iter()
                        .map(|s| s.email.as_str())
                        .chain(teams.iter().map(|t| t.name.as_str())),
                );
                c.error(
                    n.span(),
                    &key("notify"),
                    format!("`{who}` is neither a [[staff]] email nor a [[team]]{hint}"),
                );
            }
        }
    }
    a.spam = r.spam.as_ref().is_some_and(|b| *b.get_ref());
    a.stop = r.stop.as_ref().is_some_and(|b| *b.get_ref());
    if a.spam
        && a.reject.is_some()
        && let Some(s) = &r.spam
    {
        c.error(
            s.span(),
            &key("spam"),
            "a rule cannot both `reject` and mark as `spam`",
        );
    }
    let continue_ = r.continue_.as_ref().is_some_and(|b| *b.get_ref());
    // With no action decided, these were written but wrong, and their
    // own errors say so.
    let wrote_action = r.set_department.is_some()
        || r.category.is_some()
        || r.priority.is_some()
        || r.tags.is_some()
        || r.assign.is_some()
        || r.notify.is_some();
    if a == Actions::default() && !continue_ && !wrote_action {
        c.warning(span.clone(), &at, "this rule has no action: a mail it matches ends the rules with nothing decided (add an action, or `continue = true`)");
    }
    let name = r
        .name
        .as_ref()
        .map_or_else(|| format!("rule {number}"), |n| n.get_ref().clone());
    Some(Rule {
        name,
        origin: Origin {
            file: c.file.to_path_buf(),
            line,
        },
        conditions,
        actions: a,
        continue_,
    })
}

/// Rules no mail can reach: an earlier rule without `continue` that
/// matches every mail of the departments this one is limited to.
pub fn shadowed(rules: &RuleSet) -> Vec<(usize, usize)> {
    let departments = |r: &Rule| -> Option<Vec<String>> {
        r.conditions.iter().find_map(|c| match c {
            Condition::Department(d) => Some(d.clone()),
            _ => None,
        })
    };
    let catch_all = |r: &Rule| {
        r.conditions
            .iter()
            .all(|c| matches!(c, Condition::Department(_)))
    };
    let mut out = Vec::new();
    for (j, later) in rules.rules.iter().enumerate() {
        for (i, earlier) in rules.rules[..j].iter().enumerate() {
            if earlier.continue_ && !earlier.actions.stop || !catch_all(earlier) {
                continue;
            }
            let covered = match (departments(earlier), departments(later)) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(e), Some(l)) => l.iter().all(|d| e.contains(d)),
            };
            if covered {
                out.push((j, i));
                break;
            }
        }
    }
    out
}

/// Problems for rules that a glob in `include` matches nothing, etc. are
/// reported by the caller; this expands one pattern (`*` and `?` in the
/// file name only), sorted by name.
pub fn expand_include(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let file = full
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| format!("`{pattern}` does not name a file"))?
        .to_string();
    let dir = full.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(format!(
            "`{pattern}`: wildcards are allowed in the file name only"
        ));
    }
    if !file.contains(['*', '?']) {
        return Ok(vec![full]);
    }
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && super::glob(&file, &name) && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}
