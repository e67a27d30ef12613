//! Texts of the automatic mails (acknowledgement, closure), per language.
//!
//! English and Turkish are compiled in; an operator overrides any of them
//! with `<templates_dir>/<name>.<language>.txt` on the department or in
//! `[general]`. A template is a `Subject:` line, a blank line and the body,
//! with `{ref}`, `{subject}`, `{department}` and `{customer_name}` filled
//! in. Overrides are read and checked when the config loads, never while a
//! mail is being handled.

use std::path::Path;

/// The automatic mails that have templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Acknowledgement,
    Closure,
    /// Sent to the sender of mail a routing rule rejects.
    Rejection,
    /// Sent to staff: a new ticket for them or nobody.
    Notification,
    /// Sent to the assignee: a mail of the ticket bounced ({detail}).
    Bounce,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Acknowledgement,
        Kind::Closure,
        Kind::Rejection,
        Kind::Notification,
        Kind::Bounce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Acknowledgement => "acknowledgement",
            Kind::Closure => "closure",
            Kind::Rejection => "rejection",
            Kind::Notification => "notification",
            Kind::Bounce => "bounce",
        }
    }
}

/// Languages with compiled-in templates.
pub const LANGUAGES: &[&str] = &["en", "tr"];

const PLACEHOLDERS: &[&str] = &["ref", "subject", "department", "customer_name", "detail"];

fn builtin(name: &str, language: &str) -> Option<&'static str> {
    Some(match (name, language) {
        ("acknowledgement", "en") => include_str!("../templates/acknowledgement.en.txt"),
        ("acknowledgement", "tr") => include_str!("../templates/acknowledgement.tr.txt"),
        ("closure", "en") => include_str!("../templates/closure.en.txt"),
        ("closure", "tr") => include_str!("../templates/closure.tr.txt"),
        ("rejection", "en") => include_str!("../templates/rejection.en.txt"),
        ("rejection", "tr") => include_str!("../templates/rejection.tr.txt"),
        ("notification", "en") => include_str!("../templates/notification.en.txt"),
        ("notification", "tr") => include_str!("../templates/notification.tr.txt"),
        ("bounce", "en") => include_str!("../templates/bounce.en.txt"),
        ("bounce", "tr") => include_str!("../templates/bounce.tr.txt"),
        _ => return None,
    })
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    subject: String,
    body: String,
}

/// What a template is filled with.
#[derive(Default)]
pub struct Values<'a> {
    pub reference: &'a str,
    pub subject: &'a str,
    pub department: &'a str,
    pub customer_name: &'a str,
    /// What happened, where a kind has more to say (a bounce: recipient,
    /// status, diagnostic); empty otherwise.
    pub detail: &'a str,
}

impl Template {
    /// Parses template text; the error says what is wrong, for the operator.
    pub fn parse(text: &str) -> Result<Template, String> {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text
            .split_once("\n\n")
            .ok_or("expected a `Subject:` line, a blank line, then the body")?;
        let subject = head
            .strip_prefix("Subject:")
            .ok_or("the first line must start with `Subject:`")?
            .trim();
        if head.contains('\n') {
            return Err(
                "only one header line (`Subject:`) is allowed before the blank line".into(),
            );
        }
        for part in [subject, body] {
            check_placeholders(part)?;
        }
        Ok(Template {
            subject: subject.to_string(),
            body: body.trim_end().to_string() + "\n",
        })
    }

    /// The template for a department: its own directory first, then the
    /// general one, then the compiled-in text.
    pub fn load(kind: Kind, language: &str, dirs: &[&Path]) -> Result<Template, String> {
        Template::load_named(kind.name(), language, dirs)
    }

    /// A template by name (`auto_reply = "vip"` in a rule reads
    /// `vip.<language>.txt`); the shipped names fall back to their
    /// compiled-in text.
    pub fn load_named(name: &str, language: &str, dirs: &[&Path]) -> Result<Template, String> {
        for dir in dirs {
            let path = dir.join(format!("{name}.{language}.txt"));
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return Template::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        let text = builtin(name, language).ok_or_else(|| {
            if builtin(name, "en").is_some() {
                format!(
                    "no {name} template for language `{language}` (shipped: {}); add {name}.{language}.txt to templates_dir",
                    LANGUAGES.join(", "),
                )
            } else {
                format!("no template `{name}`: add {name}.{language}.txt to templates_dir")
            }
        })?;
        Template::parse(text)
    }

    /// `(subject, body)` with the placeholders filled in.
    pub fn render(&self, v: &Values<'_>) -> (String, String) {
        (fill(&self.subject, v), fill(&self.body, v))
    }
}

fn check_placeholders(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("unclosed `{` in template")?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// One pass, so a value that itself contains `{...}` (a customer's
/// subject) is never expanded again.
fn fill(s: &str, v: &Values<'_>) -> String {
    let mut out = String::with_capacity(s.len() + 64);
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let v = match &after[..close] {
                "ref" => v.reference,
                "subject" => v.subject,
                "department" => v.department,
                "customer_name" => v.customer_name,
                "detail" => v.detail,
                _ => return None,
            };
            Some((v, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_parses_and_mentions_the_reference() {
        for kind in Kind::ALL {
            for lang in LANGUAGES {
                let t = Template::load(kind, lang, &[]).unwrap();
                let (subject, body) = t.render(&Values {
                    reference: "SUP-7",
                    subject: "Yazıcı",
                    department: "Destek",
                    customer_name: "Ali",
                    detail: "",
                });
                assert!(subject.contains("Yazıcı"), "{kind:?} {lang}");
                assert!(body.contains("SUP-7"), "{kind:?} {lang}");
            }
        }
    }

    #[test]
    fn rejects_unknown_placeholders_and_missing_subject() {
        assert!(
            Template::parse("Subject: x {nme}\n\nbody")
                .unwrap_err()
                .contains("{nme}")
        );
        assert!(Template::parse("Hello\n\nbody").is_err());
        assert!(Template::parse("Subject: x").is_err());
    }

    #[test]
    fn values_are_never_expanded_twice() {
        let t = Template::parse("Subject: {subject}\n\nHi {customer_name}, {ref}\n").unwrap();
        let (s, b) = t.render(&Values {
            reference: "SUP-1",
            subject: "{customer_name} {ref}",
            department: "D",
            customer_name: "{subject}",
            detail: "{ref}",
        });
        assert_eq!(s, "{customer_name} {ref}");
        assert_eq!(b, "Hi {subject}, SUP-1\n");
    }

    #[test]
    fn missing_language_is_a_clear_error() {
        let e = Template::load(Kind::Closure, "cs", &[]).unwrap_err();
        assert!(e.contains("cs") && e.contains("templates_dir"), "{e}");
    }

    #[test]
    fn override_directory_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("closure.en.txt"),
            "Subject: Done {ref}\n\nBye {customer_name}\n",
        )
        .unwrap();
        let t = Template::load(Kind::Closure, "en", &[dir.path()]).unwrap();
        let (s, b) = t.render(&Values {
            reference: "SUP-1",
            subject: "",
            department: "",
            customer_name: "Ann",
            detail: "",
        });
        assert_eq!((s.as_str(), b.as_str()), ("Done SUP-1", "Bye Ann\n"));
    }
}
