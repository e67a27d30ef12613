//! `helpdesk rules explain` and `helpdesk rules test`: what the daemon
//! would do with a mail, without changing anything. They run the same
//! threading and routing code as the daemon (`pipeline::find_ticket`,
//! `routing::plan`), on a read-only transaction that is rolled back, or
//! on an empty state for `rules test`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::config::{Config, Department, SecretSource};
use crate::mail::classify::Class;
use crate::mail::{classify, parse};
use crate::pipeline::{Signal, classify_mail, find_ticket};
use crate::routing::{self, AutoReplyPlan, State};
use crate::rules::Verdict;
use crate::store::{Status, Store, Ticket};

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub arrived_in: String,
    /// How `arrived_in` was chosen.
    pub arrived_by: String,
    pub thread: Thread,
    /// customer, auto_reply, bounce, list, loop or spam.
    pub class: Class,
    pub class_reason: String,
    /// Why the mail counts as automatic (no acknowledgement), if it does.
    pub automatic: Option<String>,
    pub rules: Vec<RuleLine>,
    pub decision: DecisionOut,
}

#[derive(Debug, Serialize)]
pub struct Thread {
    pub signal: String,
    pub ticket: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleLine {
    pub name: String,
    pub at: String,
    /// matched | not_matched | not_reached
    pub result: &'static str,
    pub failed_condition: Option<String>,
    pub why: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DecisionOut {
    pub department: String,
    pub category: Option<String>,
    pub priority: String,
    pub tags: Vec<String>,
    pub assignee: Option<String>,
    pub assigned_by: String,
    pub auto_reply: bool,
    pub auto_reply_template: Option<String>,
    pub auto_reply_reason: Option<String>,
    pub notify: Vec<String>,
    pub spam: bool,
    pub reject: Option<String>,
}

/// What `rules test` may fix about the situation of a mail.
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub department: Option<String>,
    /// Unix milliseconds; default now.
    pub at: Option<i64>,
    pub is_reply: bool,
}

/// The department a mail arrived in: given, else the one whose address
/// it was sent to, else the first.
fn arrival(
    config: &Config,
    mail: &parse::Inbound,
    given: Option<&str>,
) -> anyhow::Result<(Arc<Department>, String)> {
    if let Some(k) = given {
        let d = config
            .department(k)
            .cloned()
            .with_context(|| format!("no department with key {k}"))?;
        return Ok((d, "--department".into()));
    }
    let recipients: Vec<&str> = mail
        .delivered_to
        .iter()
        .map(String::as_str)
        .chain(
            mail.to
                .iter()
                .chain(mail.cc.iter())
                .map(|m| m.email.as_str()),
        )
        .collect();
    for d in &config.departments {
        if recipients
            .iter()
            .any(|r| classify::same_mailbox(r, &d.address))
        {
            return Ok((d.clone(), format!("addressed to {}", d.address)));
        }
    }
    let d = config
        .departments
        .first()
        .cloned()
        .context("no departments")?;
    Ok((d, "not addressed to a department; assumed the first".into()))
}

/// The secret if it exists; never generated here.
fn secret(config: &Config) -> Vec<u8> {
    match &config.general.secret {
        SecretSource::Generated(p) if !p.exists() => Vec::new(),
        _ => crate::daemon::load_secret(config).unwrap_or_default(),
    }
}

/// Whether the database can be read without creating it.
fn database_exists(config: &Config) -> bool {
    match crate::store::sqlite_path(&config.database.url) {
        Some(p) => p.exists(),
        None => true,
    }
}

/// Explains one mail against the database (when there is one).
pub async fn explain(
    config: &Config,
    raw: &[u8],
    department: Option<&str>,
) -> anyhow::Result<Explanation> {
    let mail = parse::parse(raw);
    let (arrived, arrived_by) = arrival(config, &mail, department)?;
    let now = crate::now_ms();
    if !database_exists(config) {
        let mut e = explain_with(
            config,
            &mail,
            arrived,
            arrived_by,
            None,
            &mut State::Empty,
            now,
        )
        .await?;
        e.thread.note = Some("no database yet: threading and history not consulted".into());
        return Ok(e);
    }
    let store = Store::open(&config.database.url, 1).await?;
    let result = async {
        let mut tx = store.begin().await?;
        let ours = config.our_addresses();
        let sender = mail.from.as_ref().map_or("", |m| m.email.as_str());
        let (found, signal) =
            find_ticket(&mut tx, config, &secret(config), &mail, sender, &ours).await?;
        let e = explain_with(
            config,
            &mail,
            arrived,
            arrived_by,
            found.map(|t| (t, signal)),
            &mut State::Peek(&mut tx),
            now,
        )
        .await;
        // Dropped without commit: rolled back.
        drop(tx);
        e
    }
    .await;
    store.close().await;
    result
}

async fn explain_with(
    config: &Config,
    mail: &parse::Inbound,
    arrived: Arc<Department>,
    arrived_by: String,
    found: Option<(Ticket, Signal)>,
    state: &mut State<'_>,
    now: i64,
) -> anyhow::Result<Explanation> {
    let (class, class_reason) =
        classify_mail(mail, &config.our_addresses(), &config.general.installation);
    // Auto-replies, bounces and loops are stored without routing; list and
    // spam mail are routed but never answered.
    let automatic = match class {
        Class::AutoReply | Class::Bounce | Class::Loop => {
            Some(format!("{}: {class_reason}", class.as_str()))
        }
        Class::Customer | Class::List | Class::Spam => None,
    };
    let mut thread = Thread {
        signal: Signal::New.as_str().into(),
        ticket: None,
        note: None,
    };
    let mut existing = None;
    if let Some((t, signal)) = &found {
        thread.signal = signal.as_str().into();
        thread.ticket = Some(t.reference.clone());
        let stale = t.status == Status::Closed
            && automatic.is_none()
            && now - t.closed_at.unwrap_or(t.updated_at) > arrived.reopen_within.as_millis() as i64;
        if matches!(class, Class::AutoReply | Class::Bounce | Class::Loop) {
            thread.note = Some(format!(
                "{}: stored on {} without a status change; no rules run",
                class.as_str(),
                t.reference
            ));
        } else if stale {
            thread.note = Some(format!(
                "{} closed longer than reopen_within: a new linked ticket",
                t.reference
            ));
        } else {
            if t.status == Status::Closed && automatic.is_none() {
                thread.note = Some(format!("reopens {}", t.reference));
            }
            existing = Some(t);
        }
    }
    let mut trace = Vec::new();
    let mut plan = routing::plan(
        config,
        state,
        &arrived,
        existing,
        mail,
        automatic.as_deref(),
        now,
        Some(&mut trace),
    )
    .await?;
    crate::pipeline::plan_for_class(&mut plan, class, &class_reason);
    Ok(Explanation {
        arrived_in: arrived.key.clone(),
        arrived_by,
        thread,
        class,
        class_reason,
        automatic,
        rules: rule_lines(config, &trace),
        decision: decision_out(&plan),
    })
}

fn rule_lines(config: &Config, trace: &[Verdict]) -> Vec<RuleLine> {
    config
        .rules
        .rules
        .iter()
        .zip(trace)
        .map(|(r, v)| {
            let (result, failed_condition, why) = match v {
                Verdict::Matched => ("matched", None, None),
                Verdict::Failed { condition, why } => {
                    ("not_matched", Some(condition.clone()), Some(why.clone()))
                }
                Verdict::NotReached => ("not_reached", None, None),
            };
            RuleLine {
                name: r.name.clone(),
                at: r.origin.to_string(),
                result,
                failed_condition,
                why,
            }
        })
        .collect()
}

fn decision_out(plan: &routing::Plan) -> DecisionOut {
    let a = &plan.decision.actions;
    let (auto_reply, auto_reply_template, auto_reply_reason) = match &plan.auto_reply {
        AutoReplyPlan::Acknowledgement => (true, Some("acknowledgement".to_string()), None),
        AutoReplyPlan::Template(t) => (true, Some(t.clone()), None),
        AutoReplyPlan::Off(why) => (false, None, Some(why.clone())),
    };
    DecisionOut {
        department: plan.department.key.clone(),
        category: a.category.clone(),
        priority: a.priority.map_or("medium", |p| p.as_str()).to_string(),
        tags: a.tags.clone(),
        assignee: plan.assignee.clone(),
        assigned_by: plan.assigned_by.clone(),
        auto_reply,
        auto_reply_template,
        auto_reply_reason,
        notify: plan.notify.clone(),
        spam: plan.spam,
        reject: plan.reject.clone(),
    }
}

/// Explains a mail on an empty state (no database): for `rules test`.
pub async fn explain_offline(
    config: &Config,
    raw: &[u8],
    given: &Given,
) -> anyhow::Result<Explanation> {
    let mail = parse::parse(raw);
    let (arrived, arrived_by) = arrival(config, &mail, given.department.as_deref())?;
    let found = given.is_reply.then(|| {
        (
            Ticket {
                ticket_id: 0,
                reference: format!("{}-0", arrived.key),
                department: arrived.key.clone(),
                status: Status::Open,
                subject: mail.subject.clone(),
                customer_email: mail
                    .from
                    .as_ref()
                    .map_or(String::new(), |m| m.email.clone()),
                customer_name: None,
                assignee: None,
                linked_ticket_id: None,
                created_at: 0,
                updated_at: 0,
                closed_at: None,
                priority: "medium".into(),
                category: None,
                tags: String::new(),
                disposition: None,
                message_count: 0,
            },
            Signal::References,
        )
    });
    explain_with(
        config,
        &mail,
        arrived,
        arrived_by,
        found,
        &mut State::Empty,
        given.at.unwrap_or_else(crate::now_ms),
    )
    .await
}

/// Prints an explanation for people.
pub fn print(e: &Explanation) {
    println!("arrived in:  {} ({})", e.arrived_in, e.arrived_by);
    match &e.thread.ticket {
        Some(t) => println!("threading:   {} by {}", t, e.thread.signal),
        None => println!("threading:   new ticket"),
    }
    if let Some(n) = &e.thread.note {
        println!("             {n}");
    }
    println!("class:       {} ({})", e.class.as_str(), e.class_reason);
    println!();
    if e.rules.is_empty() {
        println!("no rules configured");
    }
    for (i, r) in e.rules.iter().enumerate() {
        let mark = match r.result {
            "matched" => "MATCH",
            "not_matched" => "no   ",
            _ => "  -  ",
        };
        print!("{mark} {:>3}. {} ({})", i + 1, r.name, r.at);
        match (&r.failed_condition, &r.why) {
            (Some(c), Some(w)) => println!(": {c} failed: {w}"),
            _ if r.result == "not_reached" => println!(": not reached"),
            _ => println!(),
        }
    }
    let d = &e.decision;
    println!();
    println!("department:  {}", d.department);
    println!("category:    {}", d.category.as_deref().unwrap_or("-"));
    println!("priority:    {}", d.priority);
    println!(
        "tags:        {}",
        if d.tags.is_empty() {
            "-".to_string()
        } else {
            d.tags.join(" ")
        }
    );
    println!(
        "assignee:    {} ({})",
        d.assignee.as_deref().unwrap_or("nobody"),
        d.assigned_by
    );
    match (&d.auto_reply_template, &d.auto_reply_reason) {
        (Some(t), _) => println!("auto-reply:  yes ({t})"),
        (None, Some(r)) => println!("auto-reply:  no ({r})"),
        _ => println!("auto-reply:  no"),
    }
    if !d.notify.is_empty() {
        println!("notify:      {}", d.notify.join(", "));
    }
    if d.spam {
        println!("spam:        yes (stored, hidden, no reply)");
    }
    if let Some(r) = &d.reject {
        println!("reject:      yes (template {r}; stored, no ticket work)");
    }
}

/// The expectations of one `rules test` case (`foo.expect.toml`).
#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    // The situation.
    arrived_in: Option<String>,
    at: Option<String>,
    #[serde(default)]
    is_reply: bool,
    // What must come out.
    department: Option<String>,
    assignee: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    tags: Option<Vec<String>>,
    auto_reply: Option<bool>,
    spam: Option<bool>,
    reject: Option<bool>,
    rules: Option<Vec<String>>,
    notify: Option<Vec<String>>,
}

/// Result of `rules test`.
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
}

/// Runs every `NAME.eml` that has a `NAME.expect.toml` in `dir`.
pub async fn test_dir(config: &Config, dir: &Path) -> anyhow::Result<TestReport> {
    let mut emls: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    emls.sort();
    let mut report = TestReport {
        passed: 0,
        failed: 0,
    };
    for eml in emls {
        let name = eml
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expect_path = eml.with_file_name(format!("{name}.expect.toml"));
        if !expect_path.exists() {
            println!("skip {name}: no {name}.expect.toml");
            continue;
        }
        match run_case(config, &eml, &expect_path).await {
            Ok(failures) if failures.is_empty() => {
                report.passed += 1;
                println!("ok   {name}");
            }
            Ok(failures) => {
                report.failed += 1;
                println!("FAIL {name}");
                for f in failures {
                    println!("     {f}");
                }
            }
            Err(e) => {
                report.failed += 1;
                println!("FAIL {name}: {e:#}");
            }
        }
    }
    Ok(report)
}

async fn run_case(config: &Config, eml: &Path, expect_path: &Path) -> anyhow::Result<Vec<String>> {
    let raw = std::fs::read(eml).with_context(|| format!("reading {}", eml.display()))?;
    let text = std::fs::read_to_string(expect_path)
        .with_context(|| format!("reading {}", expect_path.display()))?;
    let expect: Expect = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", expect_path.display(), e.message()))?;
    let at = match &expect.at {
        None => None,
        Some(t) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: `at` = {t:?}: {e} (use RFC 3339, e.g. 2026-11-23T10:00:00+03:00)",
                        expect_path.display()
                    )
                })?
                .as_millisecond(),
        ),
    };
    let given = Given {
        department: expect.arrived_in.clone(),
        at,
        is_reply: expect.is_reply,
    };
    let e = explain_offline(config, &raw, &given).await?;
    let d = &e.decision;
    let mut failures = Vec::new();
    let mut check = |what: &str, want: String, got: String| {
        if want != got {
            failures.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    if let Some(w) = &expect.department {
        check("department", w.to_ascii_uppercase(), d.department.clone());
    }
    if let Some(w) = &expect.assignee {
        let want = if w.is_empty() || w == "none" {
            "none".to_string()
        } else {
            w.to_ascii_lowercase()
        };
        check("assignee", want, opt(&d.assignee));
    }
    if let Some(w) = &expect.priority {
        check("priority", w.clone(), d.priority.clone());
    }
    if let Some(w) = &expect.category {
        check("category", w.clone(), opt(&d.category));
    }
    if let Some(w) = &expect.tags {
        let (mut a, mut b) = (w.clone(), d.tags.clone());
        a.sort();
        b.sort();
        check("tags", format!("{a:?}"), format!("{b:?}"));
    }
    if let Some(w) = expect.auto_reply {
        check("auto_reply", w.to_string(), d.auto_reply.to_string());
    }
    if let Some(w) = expect.spam {
        check("spam", w.to_string(), d.spam.to_string());
    }
    if let Some(w) = expect.reject {
        check("reject", w.to_string(), d.reject.is_some().to_string());
    }
    if let Some(w) = &expect.rules {
        let got: Vec<&str> = e
            .rules
            .iter()
            .filter(|r| r.result == "matched")
            .map(|r| r.name.as_str())
            .collect();
        check("rules", format!("{w:?}"), format!("{got:?}"));
    }
    if let Some(w) = &expect.notify {
        check("notify", format!("{w:?}"), format!("{:?}", d.notify));
    }
    Ok(failures)
}
