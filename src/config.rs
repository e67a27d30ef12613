//! The operator's TOML file, in two phases: a raw mirror of the file (every
//! value kept with its position, for error messages) and the checked,
//! compiled `Config` the daemon runs on. Loading collects *every* problem,
//! each with file, line, column and key path, instead of stopping at the
//! first; unknown keys are errors.
//!
//! Relative paths in the file (`secret_file`, `password_file`, `ca_file`,
//! `templates_dir`) are relative to the directory of the config file.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::rules::RuleSet;
use crate::rules::load::{RawIncluded, RawRule, RawTeam};
use crate::templates::{self, Template};

// ---------------------------------------------------------------------------
// Problems

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with the file, located for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Key path such as `department[1].imap.port`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}",
            self.file.display(),
            self.line,
            self.column
        )?;
        if !self.key.is_empty() {
            write!(f, ": `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found; returned when at least one is an error.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Problems of one file, located by byte span.
pub(crate) struct Collector<'a> {
    pub(crate) file: &'a Path,
    src: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a Path, src: &'a str) -> Collector<'a> {
        Collector {
            file,
            src,
            problems: Vec::new(),
        }
    }

    pub(crate) fn line_col(&self, byte: usize) -> (usize, usize) {
        line_col(self.src, byte)
    }

    fn at(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) {
        let (line, column) = line_col(self.src, span.start);
        self.problems.push(Problem {
            severity,
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.at(Severity::Error, span, key, message);
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.at(Severity::Warning, span, key, message);
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, byte: usize) -> (usize, usize) {
    let mut byte = byte.min(src.len());
    while !src.is_char_boundary(byte) {
        byte -= 1;
    }
    let before = &src[..byte];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, src[start..byte].chars().count() + 1)
}

// ---------------------------------------------------------------------------
// Raw mirror of the file

#[derive(Deserialize, Default)]
struct RawConfig {
    general: Option<Spanned<RawGeneral>>,
    database: Option<Spanned<RawDatabase>>,
    #[serde(default)]
    department: Vec<Spanned<RawDepartment>>,
    #[serde(default)]
    staff: Vec<Spanned<RawStaff>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    team: Vec<Spanned<RawTeam>>,
}

/// Known keys per table, for "did you mean" on unknown keys.
fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "general",
            "database",
            "department",
            "staff",
            "include",
            "rule",
            "team",
        ],
        "general" => &[
            "data_dir",
            "secret_file",
            "secret",
            "max_message_size",
            "auto_reply_limit_per_hour",
            "auto_mail_per_ticket_per_hour",
            "bounce_suppress_after",
            "bounce_suppress_for",
            "installation",
            "templates_dir",
            "timezone",
        ],
        "database" => &["url", "max_connections"],
        "department" => &[
            "key",
            "name",
            "address",
            "language",
            "reopen_within",
            "after_ingest",
            "default_assignee",
            "templates_dir",
            "categories",
            "fallback_charset",
            "imap",
            "smtp",
        ],
        "department.imap" => &[
            "host",
            "port",
            "tls",
            "ca_file",
            "username",
            "password",
            "password_file",
            "folder",
            "poll_interval",
            "timeout",
        ],
        "department.smtp" => &[
            "host",
            "port",
            "tls",
            "ca_file",
            "username",
            "password",
            "password_file",
            "timeout",
        ],
        "staff" => &["email", "name", "departments", "role", "away", "capacity"],
        "rule" => crate::rules::load::RULE_KEYS,
        "team" => crate::rules::load::TEAM_KEYS,
        _ => &[],
    }
}

#[derive(Deserialize, Default)]
struct RawGeneral {
    data_dir: Option<Spanned<String>>,
    secret_file: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    max_message_size: Option<Spanned<SizeValue>>,
    auto_reply_limit_per_hour: Option<Spanned<i64>>,
    auto_mail_per_ticket_per_hour: Option<Spanned<i64>>,
    bounce_suppress_after: Option<Spanned<i64>>,
    bounce_suppress_for: Option<Spanned<String>>,
    installation: Option<Spanned<String>>,
    templates_dir: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
struct RawDatabase {
    url: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
struct RawDepartment {
    key: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    language: Option<Spanned<String>>,
    reopen_within: Option<Spanned<String>>,
    after_ingest: Option<Spanned<String>>,
    default_assignee: Option<Spanned<String>>,
    templates_dir: Option<Spanned<String>>,
    #[serde(default)]
    categories: Vec<Spanned<String>>,
    fallback_charset: Option<Spanned<String>>,
    imap: Option<Spanned<RawImap>>,
    smtp: Option<Spanned<RawSmtp>>,
}

#[derive(Deserialize)]
struct RawImap {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    folder: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawSmtp {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawStaff {
    email: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    departments: Vec<Spanned<String>>,
    role: Option<Spanned<String>>,
    away: Option<Spanned<bool>>,
    capacity: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------
// Compiled configuration

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub general: General,
    pub database: Database,
    pub departments: Vec<std::sync::Arc<Department>>,
    pub staff: Vec<Staff>,
    pub rules: RuleSet,
    /// Every file read: the main file and the included ones.
    pub files: Vec<PathBuf>,
    /// Directories whose changes may change the config (watched for
    /// hot reload: editors replace files rather than write them).
    pub watch_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct General {
    pub data_dir: PathBuf,
    /// The HMAC key for reply tokens: from `secret`, `secret_file`, or
    /// `<data_dir>/secret` (created on first start when neither is set).
    pub secret: SecretSource,
    pub max_message_size: u64,
    pub auto_reply_limit_per_hour: i64,
    /// At most this many automatic mails (acknowledgements, rejections,
    /// notifications, bounce notices) per ticket per hour.
    pub auto_mail_per_ticket_per_hour: i64,
    /// This many hard bounces from one address within `bounce_suppress_for`
    /// stop automatic mail to it for `bounce_suppress_for`.
    pub bounce_suppress_after: i64,
    pub bounce_suppress_for: Duration,
    /// Names this installation in the `X-Helpdesk-Loop` header of every
    /// automatic mail; mail carrying our own name is a loop.
    pub installation: String,
    /// For `hours` in rules without their own `timezone`. Default: UTC.
    pub timezone: (jiff::tz::TimeZone, String),
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
    /// `<data_dir>/secret`, generated when missing.
    Generated(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Implicit TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    Starttls,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterIngest {
    Keep,
    Seen,
    Move(String),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    pub folder: String,
    pub poll_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Department {
    pub key: String,
    pub name: String,
    pub address: String,
    pub language: String,
    pub reopen_within: Duration,
    pub after_ingest: AfterIngest,
    pub default_assignee: Option<String>,
    pub imap: Option<Imap>,
    pub smtp: Option<Smtp>,
    pub templates: HashMap<templates::Kind, Template>,
    /// Declared categories (what rules may set).
    pub categories: Vec<String>,
    /// Charset for undeclared 8-bit bytes that are not UTF-8 (and not in
    /// a charset the mail's text declares). Default: windows-1252.
    pub fallback_charset: Option<String>,
    /// Templates named by rules (`auto_reply = "vip"`, `reject = ...`).
    pub named_templates: HashMap<String, Template>,
    /// Where template overrides are looked up, in order.
    pub template_dirs: Vec<PathBuf>,
}

impl Department {
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
    }

    pub fn template(&self, kind: templates::Kind) -> &Template {
        &self.templates[&kind]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Manager,
}

#[derive(Debug, Clone)]
pub struct Staff {
    pub email: String,
    pub name: String,
    pub departments: Vec<String>,
    pub role: Role,
    /// Skipped by the team strategies.
    pub away: bool,
    /// Most open tickets team strategies give this person.
    pub capacity: Option<i64>,
}

impl Config {
    pub fn department(&self, key: &str) -> Option<&std::sync::Arc<Department>> {
        self.departments
            .iter()
            .find(|d| d.key.eq_ignore_ascii_case(key))
    }

    pub fn staff_member(&self, email: &str) -> Option<&Staff> {
        self.staff
            .iter()
            .find(|s| s.email.eq_ignore_ascii_case(email))
    }

    /// Every department address: mail from these is never acknowledged.
    pub fn our_addresses(&self) -> Vec<&str> {
        self.departments
            .iter()
            .map(|d| d.address.as_str())
            .collect()
    }

    /// Department keys, for reading `[KEY-n]` tags.
    pub fn keys(&self) -> Vec<&str> {
        self.departments.iter().map(|d| d.key.as_str()).collect()
    }

    /// Reads and checks the file; warnings are returned alongside.
    pub fn load(path: &Path) -> Result<(Config, Vec<Problem>), Problems> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                severity: Severity::Error,
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Config::parse(&src, path, Options::default())
    }

    /// Checks `src` as if it were the file at `path`.
    pub fn parse(
        src: &str,
        path: &Path,
        options: Options,
    ) -> Result<(Config, Vec<Problem>), Problems> {
        let mut c = Collector::new(path, src);
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let raw: Option<RawConfig> = deserialize(src, &mut c, known_keys(""));

        // Included files (rules and teams), read in order.
        let mut included: Vec<(PathBuf, String)> = Vec::new();
        let mut watch_dirs = vec![base.clone()];
        for (i, inc) in raw.iter().flat_map(|r| r.include.iter()).enumerate() {
            let key = format!("include[{i}]");
            match crate::rules::load::expand_include(&base, inc.get_ref()) {
                Ok(files) => {
                    if files.is_empty() {
                        c.warning(
                            inc.span(),
                            &key,
                            format!("`{}` matches no file", inc.get_ref()),
                        );
                    }
                    if let Some(dir) = resolve(&base, inc.get_ref()).parent()
                        && !watch_dirs.iter().any(|d| d == dir)
                    {
                        watch_dirs.push(dir.to_path_buf());
                    }
                    for f in files {
                        if f == path || included.iter().any(|(p, _)| *p == f) {
                            c.error(
                                inc.span(),
                                &key,
                                format!("{} is included twice", f.display()),
                            );
                            continue;
                        }
                        match std::fs::read_to_string(&f) {
                            Ok(text) => included.push((f, text)),
                            Err(e) => c.error(
                                inc.span(),
                                &key,
                                format!("cannot read {}: {e}", f.display()),
                            ),
                        }
                    }
                }
                Err(e) => c.error(inc.span(), &key, e),
            }
        }
        let mut extra: Vec<(Collector<'_>, Option<RawIncluded>)> = included
            .iter()
            .map(|(p, text)| {
                let mut ic = Collector::new(p, text);
                let raw = deserialize(text, &mut ic, crate::rules::load::INCLUDED_KEYS);
                (ic, raw)
            })
            .collect();
        let config = compile(raw, &base, &mut c, options, &mut extra).map(|mut config| {
            config.files = std::iter::once(path.to_path_buf())
                .chain(included.iter().map(|(p, _)| p.clone()))
                .collect();
            config.watch_dirs = watch_dirs;
            config
        });
        let mut problems = c.problems;
        for (ic, _) in extra {
            problems.extend(ic.problems);
        }
        // Main file first, then the included files in order.
        let order = |f: &Path| {
            std::iter::once(path)
                .chain(included.iter().map(|(p, _)| p.as_path()))
                .position(|p| p == f)
                .unwrap_or(usize::MAX)
        };
        problems.sort_by_key(|p| (order(&p.file), p.line, p.column, p.severity));
        match config {
            Some(config) if !problems.iter().any(|p| p.severity == Severity::Error) => {
                Ok((config, problems))
            }
            _ => Err(Problems(problems)),
        }
    }
}

/// What loading does besides checking the text.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read password, secret and template files (off to check a config
    /// written for another machine).
    pub read_files: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { read_files: true }
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(
    src: &str,
    c: &mut Collector<'_>,
    root_keys: &[&str],
) -> Option<T> {
    let root = match toml::de::DeTable::parse(src) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", format!("TOML syntax: {}", e.message()));
            return None;
        }
    };
    let spans = key_spans(root.get_ref());
    let mut unknown: Vec<String> = Vec::new();
    let result: Result<T, toml::de::Error> =
        serde_ignored::deserialize(toml::de::Deserializer::from(root), |path| {
            unknown.push(ignored_path(&path))
        });
    for key in unknown {
        let span = spans.get(&key).cloned().unwrap_or(0..0);
        // `department[0].imap.prt` → table `department.imap`, name `prt`.
        let plain: String = {
            let mut out = String::new();
            let mut depth = 0;
            for ch in key.chars() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ if depth == 0 => out.push(ch),
                    _ => {}
                }
            }
            out
        };
        let (table, name) = plain.rsplit_once('.').unwrap_or(("", &plain));
        let known = if table.is_empty() {
            root_keys
        } else {
            known_keys(table)
        };
        let hint = match crate::rules::load::nearest(name, known.iter().copied()) {
            Some(k) => format!("; did you mean `{k}`?"),
            None if !known.is_empty() => format!(" (known keys here: {})", known.join(", ")),
            None => String::new(),
        };
        c.error(span, &key, format!("unknown key{hint}"));
    }
    match result {
        Ok(raw) => Some(raw),
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), "", without_value(e.message()));
            None
        }
    }
}

/// A type error without the value it quotes (`invalid type: string
/// "hunter2", expected i64`): the value may be a password.
fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(expected) = rest.find(", expected")
        {
            let kind = rest.split_whitespace().next().unwrap_or("value");
            return format!("{prefix}{kind}{}", &rest[expected..]);
        }
    }
    message.to_string()
}

/// Key path → span of the key, in the `department[0].imap.port` format.
fn key_spans(table: &toml::de::DeTable<'_>) -> HashMap<String, Range<usize>> {
    fn walk(prefix: &str, t: &toml::de::DeTable<'_>, out: &mut HashMap<String, Range<usize>>) {
        for (k, v) in t.iter() {
            let path = if prefix.is_empty() {
                k.get_ref().to_string()
            } else {
                format!("{prefix}.{}", k.get_ref())
            };
            out.insert(path.clone(), k.span());
            match v.get_ref() {
                toml::de::DeValue::Table(sub) => walk(&path, sub, out),
                toml::de::DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let toml::de::DeValue::Table(sub) = item.get_ref() {
                            walk(&format!("{path}[{i}]"), sub, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = HashMap::new();
    walk("", table, &mut out);
    out
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        // `Spanned<T>` deserialises through a private wrapper field.
        P::Map { parent, key } if key.starts_with("$__serde_spanned") => ignored_path(parent),
        P::Map { parent, key } => {
            let p = ignored_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

// ---------------------------------------------------------------------------
// Checking and compiling

fn compile<'a>(
    raw: Option<RawConfig>,
    base: &Path,
    c: &mut Collector<'a>,
    options: Options,
    included: &mut [(Collector<'a>, Option<RawIncluded>)],
) -> Option<Config> {
    let mut raw = raw?;
    let whole = 0..0;

    let general = raw.general.map(Spanned::into_inner).unwrap_or_default();
    let data_dir = general.data_dir.as_ref().map_or_else(
        || PathBuf::from("/var/lib/helpdesk"),
        |d| resolve(base, d.get_ref()),
    );

    let secret = match (&general.secret, &general.secret_file) {
        (Some(s), Some(_)) => {
            c.error(
                s.span(),
                "general.secret",
                "set either `secret` or `secret_file`, not both",
            );
            None
        }
        (Some(s), None) => {
            if s.get_ref().len() < 16 {
                c.error(
                    s.span(),
                    "general.secret",
                    "the secret must be at least 16 characters",
                );
            }
            Some(SecretSource::Inline(Secret::new(s.get_ref().clone())))
        }
        (None, Some(f)) => {
            let path = resolve(base, f.get_ref());
            if options.read_files {
                match read_secret_file(&path) {
                    Ok(s) if s.expose().len() < 16 => c.error(
                        f.span(),
                        "general.secret_file",
                        format!("{} holds fewer than 16 characters", path.display()),
                    ),
                    Ok(_) => {}
                    Err(e) => c.error(f.span(), "general.secret_file", e),
                }
            }
            Some(SecretSource::File(path))
        }
        (None, None) => Some(SecretSource::Generated(data_dir.join("secret"))),
    };

    let max_message_size = match &general.max_message_size {
        None => 25 * 1024 * 1024,
        Some(v) => match v.get_ref() {
            SizeValue::Bytes(n) if *n > 0 => *n as u64,
            SizeValue::Bytes(_) => {
                c.error(v.span(), "general.max_message_size", "must be positive");
                0
            }
            SizeValue::Text(t) => parse_size(t).unwrap_or_else(|e| {
                c.error(v.span(), "general.max_message_size", e);
                0
            }),
        },
    };
    let auto_reply_limit_per_hour = match &general.auto_reply_limit_per_hour {
        None => 10,
        Some(v) if *v.get_ref() >= 0 => *v.get_ref(),
        Some(v) => {
            c.error(
                v.span(),
                "general.auto_reply_limit_per_hour",
                "must be zero or more",
            );
            0
        }
    };
    let count = |c: &mut Collector, v: &Option<Spanned<i64>>, key: &str, default: i64| match v {
        None => default,
        Some(v) if *v.get_ref() >= 0 => *v.get_ref(),
        Some(v) => {
            c.error(v.span(), &format!("general.{key}"), "must be zero or more");
            0
        }
    };
    let auto_mail_per_ticket_per_hour = count(
        c,
        &general.auto_mail_per_ticket_per_hour,
        "auto_mail_per_ticket_per_hour",
        5,
    );
    let bounce_suppress_after = count(
        c,
        &general.bounce_suppress_after,
        "bounce_suppress_after",
        3,
    );
    let bounce_suppress_for = match &general.bounce_suppress_for {
        None => Duration::from_secs(7 * 86400),
        Some(v) => parse_duration(v.get_ref()).unwrap_or_else(|e| {
            c.error(v.span(), "general.bounce_suppress_for", e);
            Duration::ZERO
        }),
    };
    let installation = match &general.installation {
        None => default_installation(),
        Some(v) => {
            let name = v.get_ref().trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ".-_@".contains(ch))
            {
                c.error(
                    v.span(),
                    "general.installation",
                    "use letters, digits, `.`, `-`, `_` and `@` only (it goes into a mail header)",
                );
            }
            name.to_string()
        }
    };
    let timezone = match &general.timezone {
        None => (jiff::tz::TimeZone::UTC, "UTC".to_string()),
        Some(tz) => match jiff::tz::TimeZone::get(tz.get_ref()) {
            Ok(z) => (z, tz.get_ref().clone()),
            Err(_) => {
                c.error(
                    tz.span(),
                    "general.timezone",
                    format!(
                        "unknown time zone `{}` (use an IANA name such as Europe/Istanbul)",
                        tz.get_ref()
                    ),
                );
                (jiff::tz::TimeZone::UTC, "UTC".to_string())
            }
        },
    };
    let general_templates = general
        .templates_dir
        .as_ref()
        .map(|d| resolve(base, d.get_ref()));

    let database_raw = raw.database.map(Spanned::into_inner).unwrap_or_default();
    let url = match &database_raw.url {
        None => format!("sqlite://{}", data_dir.join("helpdesk.db").display()),
        Some(u) => {
            let s = u.get_ref();
            if !(s.starts_with("sqlite:")
                || s.starts_with("postgres://")
                || s.starts_with("postgresql://"))
            {
                c.error(
                    u.span(),
                    "database.url",
                    "expected sqlite:///path/to/helpdesk.db or postgres://user@host/db",
                );
            }
            s.clone()
        }
    };
    let max_connections = match &database_raw.max_connections {
        None => 8,
        Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            c.error(
                n.span(),
                "database.max_connections",
                "must be between 1 and 1000",
            );
            8
        }
    };

    // Staff first: departments refer to them.
    let mut staff = Vec::new();
    for (i, s) in raw.staff.iter().enumerate() {
        let at = format!("staff[{i}]");
        let span = s.span();
        let s = s.get_ref();
        let email = required(c, &s.email, span.clone(), &format!("{at}.email"));
        if let Some(e) = &s.email
            && !is_address(e.get_ref())
        {
            c.error(
                e.span(),
                &format!("{at}.email"),
                format!("`{}` is not an email address", e.get_ref()),
            );
        }
        if let Some(e) = &s.email
            && staff
                .iter()
                .any(|o: &Staff| o.email.eq_ignore_ascii_case(e.get_ref()))
        {
            c.error(e.span(), &format!("{at}.email"), "listed twice");
        }
        let role = match &s.role {
            None => Role::Agent,
            Some(r) => match r.get_ref().as_str() {
                "agent" => Role::Agent,
                "manager" => Role::Manager,
                other => {
                    c.error(
                        r.span(),
                        &format!("{at}.role"),
                        format!("`{other}`: expected agent or manager"),
                    );
                    Role::Agent
                }
            },
        };
        staff.push(Staff {
            name: s
                .name
                .as_ref()
                .map_or_else(|| email.clone(), |n| n.get_ref().clone()),
            email: email.to_ascii_lowercase(),
            departments: s
                .departments
                .iter()
                .map(|d| d.get_ref().to_ascii_uppercase())
                .collect(),
            role,
            away: s.away.as_ref().is_some_and(|a| *a.get_ref()),
            capacity: match &s.capacity {
                None => None,
                Some(n) if *n.get_ref() >= 1 => Some(*n.get_ref()),
                Some(n) => {
                    c.error(n.span(), &format!("{at}.capacity"), "must be 1 or more");
                    None
                }
            },
        });
    }

    let mut departments = Vec::new();
    if raw.department.is_empty() {
        c.error(whole.clone(), "department", "no [[department]] configured");
    }
    for (i, d) in raw.department.iter().enumerate() {
        let at = format!("department[{i}]");
        let span = d.span();
        let d = d.get_ref();
        let key = required(c, &d.key, span.clone(), &format!("{at}.key"));
        if let Some(k) = &d.key {
            let ok = k.get_ref().len() <= 10
                && k.get_ref().starts_with(|ch: char| ch.is_ascii_uppercase())
                && k.get_ref()
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit());
            if !ok {
                c.error(
                    k.span(),
                    &format!("{at}.key"),
                    "expected 1-10 uppercase letters or digits, starting with a letter (e.g. SUP)",
                );
            }
            if departments
                .iter()
                .any(|o: &Department| o.key == *k.get_ref())
            {
                c.error(
                    k.span(),
                    &format!("{at}.key"),
                    format!("department key `{}` is used twice", k.get_ref()),
                );
            }
        }
        let address =
            required(c, &d.address, span.clone(), &format!("{at}.address")).to_ascii_lowercase();
        if let Some(a) = &d.address {
            if !is_address(a.get_ref()) {
                c.error(
                    a.span(),
                    &format!("{at}.address"),
                    format!("`{}` is not an email address", a.get_ref()),
                );
            } else if a
                .get_ref()
                .split('@')
                .next()
                .is_some_and(|l| l.contains('+'))
            {
                c.error(
                    a.span(),
                    &format!("{at}.address"),
                    "must not contain `+`: plus addresses carry reply tokens",
                );
            }
            if departments
                .iter()
                .any(|o: &Department| o.address == address)
            {
                c.error(
                    a.span(),
                    &format!("{at}.address"),
                    "another department already uses this address",
                );
            }
        }
        let language = d
            .language
            .as_ref()
            .map_or_else(|| "en".to_string(), |l| l.get_ref().clone());
        let reopen_within = match &d.reopen_within {
            None => Duration::from_secs(30 * 86400),
            Some(v) => parse_duration(v.get_ref()).unwrap_or_else(|e| {
                c.error(v.span(), &format!("{at}.reopen_within"), e);
                Duration::ZERO
            }),
        };
        let fallback_charset = d.fallback_charset.as_ref().map(|v| {
            let name = v.get_ref().trim().to_string();
            if mail_parser::decoders::charsets::map::charset_decoder(name.as_bytes()).is_none() {
                c.error(
                    v.span(),
                    &format!("{at}.fallback_charset"),
                    format!("unknown charset `{name}` (e.g. windows-1254, iso-8859-2, koi8-r)"),
                );
            }
            name
        });
        let after_ingest = match &d.after_ingest {
            None => AfterIngest::Keep,
            Some(v) => parse_after_ingest(v.get_ref()).unwrap_or_else(|e| {
                c.error(v.span(), &format!("{at}.after_ingest"), e);
                AfterIngest::Keep
            }),
        };
        let default_assignee = d.default_assignee.as_ref().map(|a| {
            if !a.get_ref().contains('@') {
                // A team name: checked once teams are compiled.
                return a.get_ref().trim().to_string();
            }
            match staff
                .iter()
                .find(|s| s.email.eq_ignore_ascii_case(a.get_ref()))
            {
                None => c.error(
                    a.span(),
                    &format!("{at}.default_assignee"),
                    format!("`{}` is not a [[staff]] member", a.get_ref()),
                ),
                Some(s) if !s.departments.contains(&key) => c.warning(
                    a.span(),
                    &format!("{at}.default_assignee"),
                    format!("`{}` is not in this department's staff", a.get_ref()),
                ),
                Some(_) => {}
            }
            a.get_ref().to_ascii_lowercase()
        });

        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(t) = &d.templates_dir {
            dirs.push(resolve(base, t.get_ref()));
        }
        if let Some(g) = &general_templates {
            dirs.push(g.clone());
        }
        let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        let mut tpls = HashMap::new();
        for kind in templates::Kind::ALL {
            let loaded = if options.read_files {
                Template::load(kind, &language, &dir_refs)
            } else {
                Template::load(kind, &language, &[])
            };
            match loaded {
                Ok(t) => {
                    tpls.insert(kind, t);
                }
                Err(e) => {
                    let span = d.language.as_ref().map_or(span.clone(), Spanned::span);
                    c.error(span, &format!("{at}.language"), e);
                }
            }
        }

        let imap = match &d.imap {
            None => {
                c.warning(span.clone(), &format!("{at}.imap"), "no [department.imap]: mail reaches this department only through `helpdesk ingest`");
                None
            }
            Some(m) => compile_imap(c, m, base, &format!("{at}.imap"), options),
        };
        let smtp = match &d.smtp {
            None => {
                c.error(
                    span.clone(),
                    &format!("{at}.smtp"),
                    "missing [department.smtp]: needed to send acknowledgements and replies",
                );
                None
            }
            Some(s) => compile_smtp(c, s, base, &format!("{at}.smtp"), options),
        };
        departments.push(Department {
            name: d
                .name
                .as_ref()
                .map_or_else(|| key.clone(), |n| n.get_ref().clone()),
            key,
            address,
            language,
            reopen_within,
            after_ingest,
            default_assignee,
            fallback_charset,
            imap,
            smtp,
            templates: tpls,
            categories: {
                let mut cats: Vec<String> = Vec::new();
                for (j, cat) in d.categories.iter().enumerate() {
                    let name = cat.get_ref().trim().to_string();
                    if name.is_empty() || cats.contains(&name) {
                        c.error(
                            cat.span(),
                            &format!("{at}.categories[{j}]"),
                            "categories must be non-empty and listed once",
                        );
                    } else {
                        cats.push(name);
                    }
                }
                cats
            },
            named_templates: HashMap::new(),
            template_dirs: dirs,
        });
    }

    let rules = {
        let mut files = vec![crate::rules::load::FileRules {
            c: &mut *c,
            rules: std::mem::take(&mut raw.rule),
            teams: std::mem::take(&mut raw.team),
        }];
        for (ic, r) in included.iter_mut() {
            if let Some(r) = r.take() {
                files.push(crate::rules::load::FileRules {
                    c: ic,
                    rules: r.rule,
                    teams: r.team,
                });
            }
        }
        let mut cx = crate::rules::load::Context {
            departments: &mut departments,
            staff: &staff,
            default_timezone: &timezone,
        };
        crate::rules::load::compile(&mut files, &mut cx)
    };
    for (i, d) in raw.department.iter().enumerate() {
        if let Some(a) = &d.get_ref().default_assignee
            && !a.get_ref().contains('@')
            && rules.team(a.get_ref().trim()).is_none()
        {
            let hint = crate::rules::load::nearest(
                a.get_ref(),
                rules.teams.iter().map(|t| t.name.as_str()),
            )
            .map_or_else(String::new, |k| format!("; did you mean `{k}`?"));
            c.error(
                a.span(),
                &format!("department[{i}].default_assignee"),
                format!(
                    "`{}` is neither a [[staff]] email nor a [[team]]{hint}",
                    a.get_ref()
                ),
            );
        }
    }
    for (later, earlier) in crate::rules::load::shadowed(&rules) {
        let (l, e) = (&rules.rules[later], &rules.rules[earlier]);
        let problem = Problem {
            severity: Severity::Warning,
            file: l.origin.file.clone(),
            line: l.origin.line,
            column: 1,
            key: l.name.clone(),
            message: format!(
                "unreachable: `{}` at {} matches every mail this rule could see and does not `continue`",
                e.name, e.origin
            ),
        };
        if l.origin.file == c.file {
            c.problems.push(problem);
        } else if let Some((ic, _)) = included.iter_mut().find(|(ic, _)| ic.file == l.origin.file) {
            ic.problems.push(problem);
        }
    }

    for (i, s) in raw.staff.iter().enumerate() {
        for (j, dep) in s.get_ref().departments.iter().enumerate() {
            if !departments
                .iter()
                .any(|d| d.key.eq_ignore_ascii_case(dep.get_ref()))
            {
                c.error(
                    dep.span(),
                    &format!("staff[{i}].departments[{j}]"),
                    format!("no department with key `{}`", dep.get_ref()),
                );
            }
        }
    }

    Some(Config {
        path: c.file.to_path_buf(),
        general: General {
            data_dir,
            secret: secret?,
            max_message_size,
            auto_reply_limit_per_hour,
            auto_mail_per_ticket_per_hour,
            bounce_suppress_after,
            bounce_suppress_for,
            installation,
            timezone,
        },
        database: Database {
            url,
            max_connections,
        },
        departments: departments.into_iter().map(std::sync::Arc::new).collect(),
        staff,
        rules,
        files: Vec::new(),
        watch_dirs: Vec::new(),
    })
}

fn required(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    table: Range<usize>,
    key: &str,
) -> String {
    match v {
        Some(v) if !v.get_ref().trim().is_empty() => v.get_ref().trim().to_string(),
        Some(v) => {
            c.error(v.span(), key, "must not be empty");
            String::new()
        }
        None => {
            c.error(table, key, "missing required key");
            String::new()
        }
    }
}

fn tls_mode(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: TlsMode,
) -> TlsMode {
    match v {
        None => default,
        Some(v) => match v.get_ref().as_str() {
            "tls" => TlsMode::Tls,
            "starttls" => TlsMode::Starttls,
            "none" => TlsMode::None,
            other => {
                c.error(
                    v.span(),
                    key,
                    format!("`{other}`: expected tls, starttls or none"),
                );
                default
            }
        },
    }
}

fn port(c: &mut Collector<'_>, v: &Option<Spanned<i64>>, key: &str, default: u16) -> u16 {
    match v {
        None => default,
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| {
                c.error(p.span(), key, "expected a port number between 1 and 65535");
                default
            }),
    }
}

fn duration_key(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Duration {
    match v {
        None => default,
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                c.error(v.span(), key, "must be longer than zero");
                default
            }
            Err(e) => {
                c.error(v.span(), key, e);
                default
            }
        },
    }
}

fn password(
    c: &mut Collector<'_>,
    inline: &Option<Spanned<String>>,
    file: &Option<Spanned<String>>,
    base: &Path,
    at: &str,
    options: Options,
) -> Option<Secret> {
    match (inline, file) {
        (Some(p), Some(_)) => {
            c.error(
                p.span(),
                &format!("{at}.password"),
                "set either `password` or `password_file`, not both",
            );
            None
        }
        (Some(p), None) => Some(Secret::new(p.get_ref().clone())),
        (None, Some(f)) => {
            let path = resolve(base, f.get_ref());
            if !options.read_files {
                return Some(Secret::new(String::new()));
            }
            match read_secret_file(&path) {
                Ok(s) => Some(s),
                Err(e) => {
                    c.error(f.span(), &format!("{at}.password_file"), e);
                    None
                }
            }
        }
        (None, None) => None,
    }
}

fn ca_file(
    c: &mut Collector<'_>,
    v: &Option<Spanned<String>>,
    base: &Path,
    key: &str,
    options: Options,
) -> Option<PathBuf> {
    let v = v.as_ref()?;
    let path = resolve(base, v.get_ref());
    if options.read_files
        && let Err(e) = crate::tls::read_pem_certificates(&path)
    {
        c.error(v.span(), key, format!("{e:#}"));
    }
    Some(path)
}

fn compile_imap(
    c: &mut Collector<'_>,
    m: &Spanned<RawImap>,
    base: &Path,
    at: &str,
    options: Options,
) -> Option<Imap> {
    let span = m.span();
    let m = m.get_ref();
    let host = required(c, &m.host, span.clone(), &format!("{at}.host"));
    let tls = tls_mode(c, &m.tls, &format!("{at}.tls"), TlsMode::Tls);
    let default_port = if tls == TlsMode::Tls { 993 } else { 143 };
    let port = port(c, &m.port, &format!("{at}.port"), default_port);
    let username = required(c, &m.username, span.clone(), &format!("{at}.username"));
    let password = password(c, &m.password, &m.password_file, base, at, options);
    if m.password.is_none() && m.password_file.is_none() {
        c.error(
            span.clone(),
            &format!("{at}.password"),
            "missing: set `password_file` (or `password`)",
        );
    }
    let folder = m
        .folder
        .as_ref()
        .map_or_else(|| "INBOX".to_string(), |f| f.get_ref().clone());
    Some(Imap {
        host,
        port,
        tls,
        ca_file: ca_file(c, &m.ca_file, base, &format!("{at}.ca_file"), options),
        username,
        password: password?,
        folder,
        poll_interval: duration_key(
            c,
            &m.poll_interval,
            &format!("{at}.poll_interval"),
            Duration::from_secs(60),
        ),
        timeout: duration_key(
            c,
            &m.timeout,
            &format!("{at}.timeout"),
            Duration::from_secs(60),
        ),
    })
}

fn compile_smtp(
    c: &mut Collector<'_>,
    s: &Spanned<RawSmtp>,
    base: &Path,
    at: &str,
    options: Options,
) -> Option<Smtp> {
    let span = s.span();
    let s = s.get_ref();
    let host = required(c, &s.host, span.clone(), &format!("{at}.host"));
    let tls = tls_mode(c, &s.tls, &format!("{at}.tls"), TlsMode::Starttls);
    let default_port = match tls {
        TlsMode::Tls => 465,
        TlsMode::Starttls => 587,
        TlsMode::None => 25,
    };
    let port = port(c, &s.port, &format!("{at}.port"), default_port);
    let password = password(c, &s.password, &s.password_file, base, at, options);
    let username = s.username.as_ref().map(|u| u.get_ref().clone());
    if username.is_some() != (s.password.is_some() || s.password_file.is_some()) {
        c.error(span.clone(), at, "`username` and `password`/`password_file` go together (both for AUTH, neither without)");
    }
    Some(Smtp {
        host,
        port,
        tls,
        ca_file: ca_file(c, &s.ca_file, base, &format!("{at}.ca_file"), options),
        username,
        password,
        timeout: duration_key(
            c,
            &s.timeout,
            &format!("{at}.timeout"),
            Duration::from_secs(60),
        ),
    })
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end_matches(['\r', '\n']).to_string()))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && d.contains('.')
                && !s.contains(char::is_whitespace)
                && !s.contains(['<', '>', ',', '"'])
        }
        None => false,
    }
}

/// `25MB`, `512 KiB`, `1048576`: sizes in bytes (K, M, G are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}`: expected a size such as 25MB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}` (use B, KB, MB or GB)"
            ));
        }
    };
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("`{s}`: must be positive")),
    }
}

/// `30d`, `12h`, `1h30m`, `90s`, `500ms`.
/// `helpdesk@<host name>`: unique per machine; daemons sharing one
/// database should set the same `installation`.
fn default_installation() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("helpdesk@{host}")
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("`{s}`: expected a duration such as 30d, 12h, 15m, 90s or 500ms");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => {
                total += Duration::from_millis(n);
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => return Err(err()),
        };
        total += Duration::from_secs(n.checked_mul(secs).ok_or_else(err)?);
    }
    Ok(total)
}

fn parse_after_ingest(s: &str) -> Result<AfterIngest, String> {
    match s {
        "keep" => Ok(AfterIngest::Keep),
        "seen" => Ok(AfterIngest::Seen),
        "delete" => Ok(AfterIngest::Delete),
        m if m.starts_with("move:") && m.len() > 5 => Ok(AfterIngest::Move(m[5..].to_string())),
        other => Err(format!(
            "`{other}`: expected keep, seen, move:FOLDER or delete"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str) -> Result<(Config, Vec<Problem>), Problems> {
        Config::parse(
            src,
            Path::new("/etc/helpdesk/helpdesk.toml"),
            Options { read_files: false },
        )
    }

    const MINIMAL: &str = r#"
[general]
secret = "0123456789abcdef0123"

[[department]]
key = "SUP"
name = "Support"
address = "support@example.com"
[department.imap]
host = "imap.example.com"
username = "support@example.com"
password = "pw"
[department.smtp]
host = "smtp.example.com"
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let (cfg, warnings) = check(MINIMAL).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let d = &cfg.departments[0];
        assert_eq!(d.language, "en");
        assert_eq!(d.reopen_within, Duration::from_secs(30 * 86400));
        assert_eq!(d.after_ingest, AfterIngest::Keep);
        let imap = d.imap.as_ref().unwrap();
        assert_eq!(
            (imap.port, imap.tls, imap.folder.as_str()),
            (993, TlsMode::Tls, "INBOX")
        );
        let smtp = d.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, TlsMode::Starttls));
        assert_eq!(cfg.general.max_message_size, 25 * 1024 * 1024);
        assert_eq!(cfg.general.auto_reply_limit_per_hour, 10);
        assert_eq!(cfg.database.url, "sqlite:///var/lib/helpdesk/helpdesk.db");
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_line() {
        let src = MINIMAL
            .replace("key = \"SUP\"", "key = \"SUP\"\nlanguag = \"en\"")
            .replace("[department.smtp]", "[department.smtp]\nhots = \"x\"")
            + "\n[extra]\nx = 1\n";
        let problems = check(&src).unwrap_err().0;
        let found: Vec<(usize, &str, &str)> = problems
            .iter()
            .map(|p| (p.line, p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    7,
                    "department[0].languag",
                    "unknown key; did you mean `language`?"
                ),
                (
                    15,
                    "department[0].smtp.hots",
                    "unknown key; did you mean `host`?"
                ),
                (
                    18,
                    "extra",
                    "unknown key (known keys here: general, database, department, staff, include, rule, team)"
                ),
            ]
        );
        assert!(
            problems[0]
                .to_string()
                .starts_with("/etc/helpdesk/helpdesk.toml:7:1: error: `department[0].languag`")
        );
    }

    #[test]
    fn semantic_errors_are_all_collected() {
        let src = MINIMAL
            .replace("key = \"SUP\"", "key = \"sup\"\nreopen_within = \"soon\"\nafter_ingest = \"archive\"\nlanguage = \"xx\"")
            .replace("host = \"smtp.example.com\"", "host = \"smtp.example.com\"\ntls = \"ssl\"\nport = 70000")
            + "\n[[staff]]\nemail = \"ayse@example.com\"\ndepartments = [\"NOPE\"]\nrole = \"boss\"\n";
        let problems = check(&src).unwrap_err().0;
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "department[0].key",
            "department[0].reopen_within",
            "department[0].after_ingest",
            "department[0].language",
            "department[0].smtp.tls",
            "department[0].smtp.port",
            "staff[0].departments[0]",
            "staff[0].role",
        ] {
            assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
        }
        let tls = problems
            .iter()
            .find(|p| p.key == "department[0].smtp.tls")
            .unwrap();
        assert_eq!(tls.line, 18);
    }

    #[test]
    fn missing_keys_point_at_their_table() {
        let src = MINIMAL.replace("username = \"support@example.com\"\n", "");
        let problems = check(&src).unwrap_err().0;
        let p = problems
            .iter()
            .find(|p| p.key == "department[0].imap.username")
            .unwrap();
        assert_eq!((p.line, p.message.as_str()), (9, "missing required key"));
    }

    #[test]
    fn wrong_type_and_syntax_errors_have_positions() {
        let p = check(&MINIMAL.replace(
            "host = \"imap.example.com\"",
            "host = \"imap.example.com\"\nport = \"x\"",
        ))
        .unwrap_err()
        .0;
        assert_eq!(p[0].line, 11);
        let p = check("[general\n").unwrap_err().0;
        assert_eq!(p[0].line, 1);
        assert!(p[0].message.starts_with("TOML syntax"));
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let (cfg, _) = check(MINIMAL).unwrap();
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("0123456789abcdef0123") && !dbg.contains("\"pw\""),
            "{dbg}"
        );
    }

    #[test]
    fn the_example_config_parses_and_documents_every_key() {
        let src = include_str!("../config/helpdesk.example.toml");
        let (cfg, warnings) = Config::parse(
            src,
            Path::new("helpdesk.example.toml"),
            Options { read_files: false },
        )
        .unwrap_or_else(|p| panic!("{p}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.departments.len(), 2);
        // Every key the loader accepts (tables aside) is documented.
        let tables = [
            "general",
            "database",
            "department",
            "department.imap",
            "department.smtp",
            "staff",
            "rule",
            "team",
        ];
        let keys = tables
            .iter()
            .flat_map(|t| known_keys(t).iter().copied())
            .filter(|k| !["imap", "smtp"].contains(k))
            .chain(["include"]);
        for key in keys {
            let documented = src.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
            });
            assert!(documented, "`{key}` is not in config/helpdesk.example.toml");
        }
    }

    #[test]
    fn type_errors_do_not_quote_the_value() {
        let src = MINIMAL.replace(
            "[general]",
            "[general]\nauto_reply_limit_per_hour = \"98765432123\"",
        );
        let problems = check(&src).unwrap_err().0;
        let text = problems[0].to_string();
        assert!(text.contains("invalid type"), "{text}");
        assert!(!text.contains("98765432123"), "{text}");
    }

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!(parse_size("25MB"), Ok(25 * 1024 * 1024));
        assert_eq!(parse_size("512 KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("25 parsecs").is_err());
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
