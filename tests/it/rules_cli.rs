//! `helpdesk rules test` and `helpdesk rules explain` as an operator runs
//! them: the real binary on the rule suite in `fixtures/rules` (no mail
//! stack, no database: the fixture's database does not exist, and
//! `rules explain` must not create it).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::*;

/// The fixture's `data_dir`: must never come into existence.
const FIXTURE_DATA_DIR: &str = "/nonexistent-helpdesk-rules-fixture";

fn fixture() -> PathBuf {
    Path::new(ROOT).join("fixtures/rules")
}

fn config() -> PathBuf {
    fixture().join("helpdesk.toml")
}

fn cases() -> PathBuf {
    fixture().join("cases")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cli_output(&config(), args, None);
    (
        status.code().expect("helpdesk exited by a signal"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Case names in the fixture directory (those with an expect file).
fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cases())
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".expect.toml")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_fixture_suite_passes() {
    let names = case_names();
    assert!(
        (6..=10).contains(&names.len()),
        "fixtures/rules/cases should hold 6-10 cases, has {}",
        names.len()
    );
    for n in &names {
        assert!(
            cases().join(format!("{n}.eml")).exists(),
            "{n}.expect.toml has no {n}.eml"
        );
    }
    let (code, out, err) = run(&["rules", "test", path_arg(&cases())]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for n in &names {
        assert!(out.contains(&format!("ok   {n}\n")), "{n} not ok:\n{out}");
    }
    assert!(
        out.contains(&format!("{} passed, 0 failed", names.len())),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    assert!(!Path::new(FIXTURE_DATA_DIR).exists());
}

#[test]
fn a_wrong_expectation_fails_and_names_the_field() {
    let dir = TempDir::new();
    for case in ["01-invoice-to-sales", "03-spam-flag"] {
        std::fs::copy(
            cases().join(format!("{case}.eml")),
            dir.path().join(format!("{case}.eml")),
        )
        .unwrap();
    }
    // The spam case unchanged: it must still pass next to the failure.
    std::fs::copy(
        cases().join("03-spam-flag.expect.toml"),
        dir.path().join("03-spam-flag.expect.toml"),
    )
    .unwrap();
    let expect = std::fs::read_to_string(cases().join("01-invoice-to-sales.expect.toml")).unwrap();
    assert!(expect.contains("priority = \"high\""), "{expect}");
    std::fs::write(
        dir.path().join("01-invoice-to-sales.expect.toml"),
        expect.replace("priority = \"high\"", "priority = \"low\""),
    )
    .unwrap();

    let (code, out, err) = run(&["rules", "test", path_arg(dir.path())]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("FAIL 01-invoice-to-sales"), "{out}");
    assert!(out.contains("priority: expected low, got high"), "{out}");
    assert!(out.contains("ok   03-spam-flag"), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");
    // Only the field that is wrong is reported.
    let failures: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(": expected "))
        .map(str::trim)
        .collect();
    assert_eq!(failures, ["priority: expected low, got high"], "{out}");
}

#[test]
fn a_broken_expect_file_fails_with_its_path() {
    let dir = TempDir::new();
    std::fs::copy(
        cases().join("01-invoice-to-sales.eml"),
        dir.path().join("x.eml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("x.expect.toml"), "priorty = \"high\"\n").unwrap();
    let (code, out, _) = run(&["rules", "test", path_arg(dir.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL x:"), "{out}");
    assert!(out.contains("x.expect.toml"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn an_empty_directory_is_a_failure() {
    let dir = TempDir::new();
    // A mail without expectations is skipped, not counted.
    std::fs::copy(
        cases().join("01-invoice-to-sales.eml"),
        dir.path().join("lonely.eml"),
    )
    .unwrap();
    let (code, out, err) = run(&["rules", "test", path_arg(dir.path())]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("skip lonely"), "{out}");
    assert!(out.contains("0 passed, 0 failed"), "{out}");
    assert!(err.contains("no cases in"), "{err}");

    let empty = TempDir::new();
    let (code, out, _) = run(&["rules", "test", path_arg(empty.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("0 passed, 0 failed"), "{out}");
}

#[test]
fn explain_json_shows_the_rules_and_the_decision() {
    let eml = cases().join("01-invoice-to-sales.eml");
    let (code, out, err) = run(&["rules", "explain", path_arg(&eml), "--json"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    assert_eq!(v["arrived_in"], "SAL");
    assert_eq!(v["arrived_by"], "addressed to sales@example.com");
    assert_eq!(v["thread"]["signal"], "new");
    assert_eq!(v["thread"]["ticket"], Value::Null);
    assert!(
        v["thread"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("no database")),
        "{v}"
    );
    assert_eq!(v["automatic"], Value::Null);

    let rules = v["rules"].as_array().unwrap();
    let summary: Vec<(&str, &str, Option<&str>)> = rules
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
                r["failed_condition"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "spam-flag",
                "not_matched",
                Some("header X-Spam-Flag ~ /^yes$/")
            ),
            (
                "blocked-sender",
                "not_matched",
                Some("from = spam-factory.example")
            ),
            (
                "noreply-senders",
                "not_matched",
                Some("from = *-noreply@* | notifications@*")
            ),
            (
                "vip",
                "not_matched",
                Some("from = bigcorp.example | *@*.bigcorp.example")
            ),
            ("invoices", "matched", None),
            ("urgent-header", "not_reached", None),
            ("after-hours", "not_reached", None),
            ("printer", "not_reached", None),
        ]
    );
    assert_eq!(rules[0]["why"], "no X-Spam-Flag header");
    assert_eq!(rules[1]["why"], "from ali@customer.example");
    assert!(
        rules[4]["at"]
            .as_str()
            .is_some_and(|a| a.ends_with("helpdesk.toml:139")),
        "{}",
        rules[4]
    );

    let d = &v["decision"];
    assert_eq!(d["department"], "BIL");
    assert_eq!(d["priority"], "high");
    assert_eq!(d["category"], "invoice");
    assert_eq!(d["tags"], serde_json::json!([]));
    assert_eq!(d["assignee"], "zeynep@example.com");
    assert_eq!(
        d["assigned_by"],
        "rule `invoices`: team `billing` round_robin #1"
    );
    assert_eq!(d["auto_reply"], true);
    assert_eq!(d["auto_reply_template"], "acknowledgement");
    assert_eq!(d["notify"], serde_json::json!([]));
    assert_eq!(d["spam"], false);
    assert_eq!(d["reject"], Value::Null);

    assert!(
        !Path::new(FIXTURE_DATA_DIR).exists(),
        "rules explain created the database directory"
    );
}

#[test]
fn explain_lists_every_rule_with_its_first_failed_condition() {
    let eml = cases().join("10-sales-unassigned.eml");
    let (code, out, err) = run(&["rules", "explain", path_arg(&eml)]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("arrived in:  SAL (addressed to sales@example.com)"),
        "{out}"
    );
    let rule_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("MATCH") || l.starts_with("no ") || l.starts_with("  -  "))
        .collect();
    assert_eq!(rule_lines.len(), 8, "{out}");
    // `(file:line)` varies with the checkout; compare what is around it.
    let expected = [
        (
            "no      1. spam-flag (",
            "): header X-Spam-Flag ~ /^yes$/ failed: no X-Spam-Flag header",
        ),
        (
            "no      2. blocked-sender (",
            "): from = spam-factory.example failed: from ece@customer.example",
        ),
        (
            "no      3. noreply-senders (",
            "): from = *-noreply@* | notifications@* failed: from ece@customer.example",
        ),
        (
            "no      4. vip (",
            "): from = bigcorp.example | *@*.bigcorp.example failed: from ece@customer.example",
        ),
        (
            "no      5. invoices (",
            "): subject ~ /invoice|fatura/ | /(?:inv|ftr)-\\d{4,}/ failed: subject is \"Teklif talebi: 40 adet yazıcı\"",
        ),
        (
            "no      6. urgent-header (",
            "): department = SUP failed: arrived in SAL",
        ),
        (
            "no      7. after-hours (",
            "): department = SUP failed: arrived in SAL",
        ),
        (
            "no      8. printer (",
            "): department = SUP failed: arrived in SAL",
        ),
    ];
    for (line, (start, end)) in rule_lines.iter().zip(expected) {
        assert!(
            line.starts_with(start) && line.ends_with(end),
            "{line:?} should look like {start:?} … {end:?}\n{out}"
        );
    }
    assert!(out.contains("department:  SAL\n"), "{out}");
    assert!(
        out.contains("assignee:    nobody (no rule assigns and no default_assignee)"),
        "{out}"
    );
    assert!(out.contains("notify:      mehmet@example.com"), "{out}");

    // A matching rule: MATCH, and the rules after it are not reached.
    let eml = cases().join("01-invoice-to-sales.eml");
    let (code, out, _) = run(&["rules", "explain", path_arg(&eml)]);
    assert_eq!(code, 0, "{out}");
    let marks: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("MATCH") || l.starts_with("no ") || l.starts_with("  -  "))
        .map(|l| l.split(" (").next().unwrap())
        .collect();
    assert_eq!(
        marks,
        [
            "no      1. spam-flag",
            "no      2. blocked-sender",
            "no      3. noreply-senders",
            "no      4. vip",
            "MATCH   5. invoices",
            "  -     6. urgent-header",
            "  -     7. after-hours",
            "  -     8. printer",
        ],
        "{out}"
    );
    assert!(out.contains("8. printer ("), "{out}");
    assert!(out.contains("): not reached"), "{out}");
    assert!(
        out.contains(
            "assignee:    zeynep@example.com (rule `invoices`: team `billing` round_robin #1)"
        ),
        "{out}"
    );
}

#[test]
fn explain_with_department_overrides_the_arrival() {
    // Addressed to sales, but fed to the support mailbox: the invoices
    // rule (limited to SAL) fails on its department.
    let eml = cases().join("01-invoice-to-sales.eml");
    let (code, out, err) = run(&[
        "rules",
        "explain",
        path_arg(&eml),
        "--department",
        "SUP",
        "--json",
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["arrived_in"], "SUP");
    assert_eq!(v["arrived_by"], "--department");
    let invoices = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "invoices")
        .unwrap();
    assert_eq!(invoices["result"], "not_matched");
    assert_eq!(invoices["failed_condition"], "department = SAL");
    assert_eq!(invoices["why"], "arrived in SUP");
    assert_eq!(v["decision"]["department"], "SUP");
    assert_eq!(v["decision"]["assignee"], "ayse@example.com");
}
