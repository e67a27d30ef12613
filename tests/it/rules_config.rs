//! `helpdesk check-config` on invalid rule configurations: one fixture per
//! class of mistake under `fixtures/config/rules/`, each otherwise valid
//! (department SUP, inline passwords, two staff, `data_dir` relative), so
//! its output is exactly the one problem (`file:line:column: error: `key`:
//! message`) and the summary; exit 1 with an error, 0 with warnings only.

use std::path::PathBuf;

use crate::support::{ROOT, cli_output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(ROOT).join("fixtures/config/rules").join(name)
}

/// Runs check-config on the fixture and compares the whole output; `{f}`
/// in `lines` is the fixture's path, `{dir}` its directory.
fn check(name: &str, code: i32, lines: &[&str]) {
    let path = fixture(name);
    assert!(path.is_file(), "missing fixture {}", path.display());
    let out = cli_output(&path, &["check-config"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = path.parent().unwrap().display().to_string();
    let f = path.display().to_string();
    let expected: Vec<String> = lines
        .iter()
        .map(|l| l.replace("{f}", &f).replace("{dir}", &dir))
        .collect();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        got,
        expected,
        "{name}: stdout differs\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{name}: exit code\n{stdout}");
}

fn error(name: &str, line: &str) {
    check(name, 1, &[line, "{f}: 1 errors"]);
}

#[test]
fn unknown_rule_key_suggests_the_nearest() {
    error(
        "unknown-rule-key.toml",
        "{f}:39:1: error: `rule[0].subjct`: unknown key; did you mean `subject`?",
    );
}

#[test]
fn invalid_regex_gives_the_regex_error() {
    error(
        "invalid-regex.toml",
        "{f}:39:11: error: `rule[0].subject`: invalid regex `refund (`: unclosed group",
    );
}

#[test]
fn assign_to_an_unknown_staff_email() {
    error(
        "assign-unknown-staff.toml",
        "{f}:40:10: error: `rule[0].assign`: `ayse@exmple.com` is not a [[staff]] member; \
         did you mean `ayse@example.com`?",
    );
}

#[test]
fn assign_to_an_unknown_team() {
    error(
        "assign-unknown-team.toml",
        "{f}:40:10: error: `rule[0].assign`: no [[team]] named `billing` (and not a staff email)",
    );
}

#[test]
fn notify_someone_unknown() {
    error(
        "notify-unknown.toml",
        "{f}:41:10: error: `rule[0].notify`: `managers` is neither a [[staff]] email nor a [[team]]",
    );
}

#[test]
fn unknown_department_in_a_condition() {
    error(
        "unknown-department.toml",
        "{f}:39:14: error: `rule[0].department`: no department with key `SALES`",
    );
}

#[test]
fn unknown_department_in_set_department() {
    error(
        "unknown-set-department.toml",
        "{f}:40:18: error: `rule[0].set_department`: no department with key `SUPP`; \
         did you mean `SUP`?",
    );
}

#[test]
fn category_not_declared_by_the_department() {
    error(
        "category-not-declared.toml",
        "{f}:41:12: error: `rule[0].category`: category `hardwre` is not declared in \
         `categories` of SUP; did you mean `hardware`?",
    );
}

#[test]
fn unknown_priority_suggests_the_nearest() {
    error(
        "unknown-priority.toml",
        "{f}:40:12: error: `rule[0].priority`: unknown priority `urgnt` \
         (low, medium, high, urgent); did you mean `urgent`?",
    );
}

#[test]
fn bad_hours_window() {
    error(
        "bad-hours.toml",
        "{f}:39:9: error: `rule[0].hours`: `Mon-Fri 09:00-25:00`: `25:00` is not a time of day \
         (expected e.g. \"Mon-Fri 09:00-18:00\" or \"Sat 10:00-14:00\")",
    );
}

#[test]
fn unknown_timezone() {
    error(
        "unknown-timezone.toml",
        "{f}:40:12: error: `rule[0].timezone`: unknown time zone `Europe/Istambul` \
         (use an IANA name such as Europe/Istanbul)",
    );
}

#[test]
fn team_member_who_is_not_staff() {
    error(
        "team-member-not-staff.toml",
        "{f}:35:32: error: `team[0].members[1]`: `zeynep@partner.example` is not a [[staff]] member",
    );
}

/// The problem is located in the included file, at its own line; the
/// summary names the main file.
#[test]
fn included_file_with_its_own_error() {
    error(
        "include-error.toml",
        "{dir}/include-error.d/10-billing.toml:11:10: error: `rule[0].assign`: \
         no [[team]] named `billing` (and not a staff email)",
    );
}

#[test]
fn rule_after_a_catch_all_is_a_warning_only() {
    check(
        "shadowed-rule.toml",
        0,
        &[
            "{f}:42:1: warning: `printer`: unreachable: `catch-all` at {f}:37 matches every \
             mail this rule could see and does not `continue`",
            "{f}: ok (1 departments, 2 staff, 1 warnings)",
        ],
    );
}

#[test]
fn department_without_imap_is_a_warning_only() {
    check(
        "no-imap.toml",
        0,
        &[
            "{f}:6:1: warning: `department[0].imap`: no [department.imap]: mail reaches this \
             department only through `helpdesk ingest`",
            "{f}: ok (1 departments, 2 staff, 1 warnings)",
        ],
    );
}

/// Each fixture differs from a valid config only by its mistake: with the
/// mistake corrected, it loads without any problem.
#[test]
fn fixtures_are_valid_but_for_their_mistake() {
    let fixes: &[(&str, &str, &str)] = &[
        ("unknown-rule-key.toml", "subjct", "subject"),
        ("invalid-regex.toml", "refund (", "refund \\\\("),
        ("assign-unknown-staff.toml", "exmple", "example"),
        ("assign-unknown-team.toml", "\"billing\"", "\"first-line\""),
        ("notify-unknown.toml", "\"managers\"", "\"first-line\""),
        ("unknown-department.toml", "SALES", "SUP"),
        ("unknown-set-department.toml", "SUPP", "SUP"),
        ("category-not-declared.toml", "hardwre", "hardware"),
        ("unknown-priority.toml", "urgnt", "urgent"),
        ("bad-hours.toml", "25:00", "18:00"),
        ("unknown-timezone.toml", "Istambul", "Istanbul"),
        (
            "team-member-not-staff.toml",
            "zeynep@partner.example",
            "mehmet@example.com",
        ),
    ];
    let tmp = crate::support::TempDir::new();
    for (name, from, to) in fixes {
        let src = std::fs::read_to_string(fixture(name)).unwrap();
        assert_eq!(src.matches(from).count(), 1, "{name}: `{from}`");
        let fixed = tmp.path().join(name);
        std::fs::write(&fixed, src.replace(from, to)).unwrap();
        let out = cli_output(&fixed, &["check-config"], None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout.trim_end(),
            format!(
                "{}: ok (1 departments, 2 staff, 0 warnings)",
                fixed.display()
            ),
            "{name} corrected"
        );
        assert_eq!(out.status.code(), Some(0), "{name} corrected");
    }
}
