//! Golden fixtures: every `fixtures/mail/<group>/X.eml` is read by
//! `helpdesk::inspect::inspect` twice (pure LF and pure CRLF line ends)
//! and compared with `X.expect.toml` beside it.
//!
//! An expect file names a subset of the `Inspection` fields:
//!
//! - `field = value`: equal (`text`, `quoted`, `signature` and
//!   `html_sanitized` after CRLF → LF and trimming trailing whitespace of
//!   each line and blank lines around the whole);
//! - `field_contains = "s"` or `["s", ...]`: a string field contains each,
//!   or a list field has an element containing each;
//! - `field_excludes = [...]`: the opposite (a null field fails it too);
//! - `bounce = false` (must be null) or a `[bounce]` table with
//!   `recipients`, `action`, `status`, `kind`, `original_message_id`,
//!   `diagnostic`, `diagnostic_contains`;
//! - `attachments = [{ filename = ..., content_type = ..., size = ... }]`:
//!   the same number of attachments, each named key equal;
//! - `[input]` with `fallback_charset`: how the mail is read.
//!
//! Unknown keys are failures (a typo must not pass silently), and so are a
//! `.eml` without an expect file, an expect file without its `.eml`, and a
//! run that found no fixture. Every mismatch of every fixture is collected
//! and reported once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use helpdesk::inspect::{Options, inspect};
use serde_json::Value;

const GROUPS: [&str; 5] = [
    "clients",
    "auto-replies",
    "bounces",
    "charsets",
    "malformed",
];
/// The installation the fixtures are written for.
const OURS: &[&str] = &["support@example.com", "sales@example.com"];
const KEYS: &[&str] = &["SUP", "SAL"];

/// Fields whose text is compared after line-end and whitespace
/// normalisation.
const TEXT_FIELDS: &[&str] = &["text", "quoted", "signature", "html_sanitized"];

fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, b) in raw.iter().enumerate() {
        if *b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(*b);
    }
    out
}

fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let lf = to_lf(raw);
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n")
        .split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_string()
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    } else {
        s
    }
}

struct Run<'a> {
    fixture: &'a str,
    ending: &'a str,
    failures: &'a mut Vec<String>,
}

impl Run<'_> {
    fn fail(&mut self, field: &str, expected: impl std::fmt::Display, got: impl std::fmt::Display) {
        self.failures.push(format!(
            "{} [{}] {field}:\n      expected {expected}\n      got      {got}",
            self.fixture, self.ending
        ));
    }

    fn equal(&mut self, field: &str, want: &Value, got: &Value, text: bool) {
        let same = match (want, got, text) {
            (Value::String(w), Value::String(g), true) => normalize(w) == normalize(g),
            _ => want == got,
        };
        if !same {
            if text && let (Value::String(w), Value::String(g)) = (want, got) {
                self.fail(
                    field,
                    show(&Value::String(normalize(w))),
                    show(&Value::String(normalize(g))),
                );
            } else {
                self.fail(field, show(want), show(got));
            }
        }
    }

    /// `_contains` (`negate` false) and `_excludes` (true).
    fn contains(&mut self, key: &str, field: &str, want: &Value, got: &Value, negate: bool) {
        let needles: Vec<&str> = match want {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) if a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).collect()
            }
            _ => {
                self.fail(key, "a string or a list of strings", show(want));
                return;
            }
        };
        let hay: Vec<String> = match got {
            Value::String(s) => vec![normalize(s)],
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect(),
            Value::Null => {
                self.fail(key, show(want), format!("{field} is null"));
                return;
            }
            other => vec![other.to_string()],
        };
        for n in needles {
            let found = hay.iter().any(|h| h.contains(&normalize(n)));
            if found == negate {
                let what = if negate {
                    "not to contain"
                } else {
                    "to contain"
                };
                self.fail(key, format!("{what} {n:?}"), show(got));
            }
        }
    }

    fn bounce(&mut self, want: &Value, got: &Value) {
        match want {
            Value::Bool(false) => {
                if !got.is_null() {
                    self.fail("bounce", "null", show(got));
                }
            }
            Value::Object(fields) => {
                if got.is_null() {
                    self.fail("bounce", show(want), "null");
                    return;
                }
                for (k, w) in fields {
                    match k.as_str() {
                        "recipients"
                        | "action"
                        | "status"
                        | "kind"
                        | "original_message_id"
                        | "diagnostic" => {
                            let g = got.get(k).unwrap_or(&Value::Null);
                            self.equal(&format!("bounce.{k}"), w, g, false);
                        }
                        "diagnostic_contains" => {
                            let g = got.get("diagnostic").unwrap_or(&Value::Null);
                            self.contains("bounce.diagnostic_contains", "diagnostic", w, g, false);
                        }
                        _ => self.fail(&format!("bounce.{k}"), "a known key", "unknown key"),
                    }
                }
            }
            _ => self.fail("bounce", "false or a table", show(want)),
        }
    }

    fn attachments(&mut self, want: &Value, got: &Value) {
        let (Some(want), Some(got)) = (want.as_array(), got.as_array()) else {
            self.fail("attachments", "a list of tables", show(want));
            return;
        };
        if want.len() != got.len() {
            self.fail(
                "attachments",
                format!(
                    "{} attachments {}",
                    want.len(),
                    show(&Value::Array(want.clone()))
                ),
                format!(
                    "{} attachments {}",
                    got.len(),
                    show(&Value::Array(got.clone()))
                ),
            );
            return;
        }
        for (i, (w, g)) in want.iter().zip(got).enumerate() {
            let Some(w) = w.as_object() else {
                self.fail(&format!("attachments[{i}]"), "a table", show(w));
                continue;
            };
            for (k, wv) in w {
                match k.as_str() {
                    "filename" | "content_type" | "size" => {
                        let gv = g.get(k).unwrap_or(&Value::Null);
                        self.equal(&format!("attachments[{i}].{k}"), wv, gv, false);
                    }
                    _ => self.fail(
                        &format!("attachments[{i}].{k}"),
                        "a known key",
                        "unknown key",
                    ),
                }
            }
        }
    }

    fn check(&mut self, expect: &serde_json::Map<String, Value>, got: &Value) {
        for (key, want) in expect {
            if key == "input" {
                continue;
            }
            let field_of =
                |suffix: &str| key.strip_suffix(suffix).filter(|f| got.get(*f).is_some());
            if key == "bounce" {
                self.bounce(want, got.get("bounce").unwrap_or(&Value::Null));
            } else if key == "attachments" {
                self.attachments(want, &got["attachments"]);
            } else if let Some(field) = field_of("_contains") {
                self.contains(key, field, want, &got[field], false);
            } else if let Some(field) = field_of("_excludes") {
                self.contains(key, field, want, &got[field], true);
            } else if let Some(g) = got.get(key) {
                self.equal(key, want, g, TEXT_FIELDS.contains(&key.as_str()));
            } else {
                self.fail(
                    key,
                    "a field of Inspection",
                    "unknown key in the expect file",
                );
            }
        }
    }
}

/// `[input]`: how to read the mail.
fn input(
    expect: &serde_json::Map<String, Value>,
    failures: &mut Vec<String>,
    name: &str,
) -> Option<String> {
    let input = expect.get("input")?;
    let Some(table) = input.as_object() else {
        failures.push(format!("{name}: [input] must be a table"));
        return None;
    };
    let mut charset = None;
    for (k, v) in table {
        match (k.as_str(), v) {
            ("fallback_charset", Value::String(s)) => charset = Some(s.clone()),
            _ => failures.push(format!("{name}: unknown or mistyped [input] key `{k}`")),
        }
    }
    charset
}

fn fixtures() -> (Vec<(String, PathBuf, PathBuf)>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mail");
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for group in GROUPS {
        let dir = root.join(group);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            problems.push(format!("missing fixture group {}", dir.display()));
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            if let Some(stem) = name.strip_suffix(".eml") {
                let expect = dir.join(format!("{stem}.expect.toml"));
                if expect.is_file() {
                    out.push((format!("{group}/{name}"), dir.join(name), expect));
                } else {
                    problems.push(format!("{group}/{name}: no {stem}.expect.toml"));
                }
            } else if let Some(stem) = name.strip_suffix(".expect.toml")
                && !names.contains(&format!("{stem}.eml"))
            {
                problems.push(format!("{group}/{name}: no {stem}.eml"));
            }
        }
    }
    (out, problems)
}

#[test]
fn every_fixture_matches_its_expect_file() {
    let (fixtures, mut failures) = fixtures();
    let mut ran = 0;
    for (name, eml, expect_path) in &fixtures {
        let raw = std::fs::read(eml).unwrap();
        let expect: toml::Table = match std::fs::read_to_string(expect_path)
            .map_err(|e| e.to_string())
            .and_then(|s| toml::from_str(&s).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: expect file does not read: {e}"));
                continue;
            }
        };
        let expect = match serde_json::to_value(&expect).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!("a TOML table is an object"),
        };
        let fallback = input(&expect, &mut failures, name);
        for (ending, bytes) in [("LF", to_lf(&raw)), ("CRLF", to_crlf(&raw))] {
            let inspection = inspect(
                &bytes,
                &Options {
                    ours: OURS,
                    keys: KEYS,
                    fallback_charset: fallback.as_deref(),
                    installation: Some("helpdesk@desk.example.com"),
                },
            );
            let got = serde_json::to_value(&inspection).unwrap();
            Run {
                fixture: name,
                ending,
                failures: &mut failures,
            }
            .check(&expect, &got);
            ran += 1;
        }
    }
    if ran == 0 {
        failures.push("no golden fixture ran".to_string());
    }
    if !failures.is_empty() {
        let mut msg = format!(
            "{} golden mismatches ({} fixtures, {ran} runs):\n",
            failures.len(),
            fixtures.len()
        );
        for f in &failures {
            let _ = writeln!(msg, "  {f}");
        }
        panic!("{msg}");
    }
    eprintln!("{} golden fixtures, {ran} runs, all match", fixtures.len());
}

#[test]
fn line_end_conversion_is_pure() {
    assert_eq!(to_lf(b"a\r\nb\nc\r"), b"a\nb\nc\r");
    assert_eq!(to_crlf(b"a\r\nb\nc"), b"a\r\nb\r\nc");
    assert_eq!(normalize("a  \r\nb\t\n\n\n"), "a\nb");
}
