//! The command line: `run`, `ingest`, `check-config` and `tickets ...`.
//! Each command loads the config, does one thing through the library, and
//! prints for people (tables) or for scripts (`--json`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{Config, Severity};
use crate::pipeline::{Outcome, Source};
use crate::service::Service;
use crate::store::{MessageRecord, Status, Store, Ticket, TicketFilter};

/// sysexits.h EX_TEMPFAIL: the MTA keeps the mail and retries.
const EX_TEMPFAIL: u8 = 75;

#[derive(Parser, Debug)]
#[command(name = "helpdesk", version, about = "An email-driven helpdesk daemon")]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(
        long,
        global = true,
        env = "HELPDESK_CONFIG",
        default_value = "/etc/helpdesk/helpdesk.toml"
    )]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = crate::logging::Format::Text)]
    pub log_format: crate::logging::Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: every department mailbox and the outbox sender.
    Run,
    /// Store one RFC 5322 message from an MTA pipe (exit 75 to make it retry).
    Ingest {
        #[arg(long)]
        department: String,
        /// The message file, or `-` for standard input.
        file: Option<PathBuf>,
    },
    /// Check the configuration; print every problem; exit 1 on errors.
    CheckConfig,
    /// Work with tickets.
    #[command(subcommand)]
    Tickets(TicketsCommand),
    /// Explain and test the routing rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// How the daemon reads mail, without a database.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Counts for operators: tickets, messages, the outbox, and automatic
    /// mail held back by rate limits and bounce suppression.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Parse and classify one mail; print what the daemon would store.
    Inspect {
        /// The mail (.eml), or `-` for standard input.
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Read it as this department would (its `fallback_charset`).
        /// Default: the first department of the config, if one loads.
        #[arg(long)]
        department: Option<String>,
    },
    /// Classify a labelled set of mails and print precision/recall per
    /// class and the share of reply texts extracted exactly.
    Score {
        /// `PATH<TAB>CLASS[<TAB>EXPECTED_TEXT_FILE]` per line, paths
        /// relative to this file.
        labels: PathBuf,
        /// Also list every miss.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Show how a mail would be threaded and routed, changing nothing.
    Explain {
        /// The mail (.eml), or `-` for standard input.
        file: PathBuf,
        /// The mailbox it arrives in (default: the department it is
        /// addressed to).
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run `NAME.eml` + `NAME.expect.toml` cases in DIR; exit 1 on a failure.
    Test { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum TicketsCommand {
    /// List tickets.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// Also spam and rejected tickets.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with all its messages.
    Show {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Reply to the customer (text from FILE or standard input).
    Reply(TextArgs),
    /// Add an internal note (never mailed).
    Note(TextArgs),
    /// Assign the ticket to a staff member.
    Assign { reference: String, staff: String },
    /// Close the ticket and mail the customer the closure message.
    Close {
        reference: String,
        #[arg(long)]
        by: Option<String>,
    },
    /// Reopen a closed ticket.
    Reopen { reference: String },
}

#[derive(Args, Debug)]
pub struct TextArgs {
    reference: String,
    /// The staff member acting.
    #[arg(long)]
    from: String,
    /// The text, or `-` for standard input.
    file: Option<PathBuf>,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig => Ok(check_config(&cli.config)),
        Command::Run => {
            let config = load(&cli.config)?;
            crate::daemon::run(config, crate::daemon::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { department, file } => Ok(
            match ingest(&cli.config, &department, file.as_deref()).await {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Stored { reference, .. } => eprintln!("stored on {reference}"),
                        Outcome::Duplicate => {
                            eprintln!("duplicate of a stored mail; nothing to do")
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("helpdesk ingest: {e:#} (temporary failure, the MTA should retry)");
                    ExitCode::from(EX_TEMPFAIL)
                }
            },
        ),
        Command::Tickets(cmd) => tickets(&cli.config, cmd).await,
        Command::Rules(cmd) => rules(&cli.config, cmd).await,
        Command::Mail(cmd) => mail(&cli.config, cmd),
        Command::Stats { json } => stats(&cli.config, json).await,
    }
}

fn load(path: &Path) -> anyhow::Result<Arc<Config>> {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(Arc::new(config))
        }
        Err(problems) => bail!("invalid configuration:\n{problems}"),
    }
}

fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok((config, warnings)) => {
            for w in &warnings {
                println!("{w}");
            }
            println!(
                "{}: ok ({} departments, {} staff, {} warnings)",
                path.display(),
                config.departments.len(),
                config.staff.len(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems.0 {
                println!("{p}");
            }
            let errors = problems
                .0
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            println!("{}: {errors} errors", path.display());
            ExitCode::FAILURE
        }
    }
}

fn read_input(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        None => std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?,
        Some(p) if p == Path::new("-") => std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?,
        Some(p) => {
            buf = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            buf.len()
        }
    };
    Ok(buf)
}

async fn ingest(config: &Path, department: &str, file: Option<&Path>) -> anyhow::Result<Outcome> {
    let raw = read_input(file)?;
    let config = load(config)?;
    let dept = config
        .department(department)
        .cloned()
        .with_context(|| format!("no department with key {department}"))?;
    let (store, pipeline, _) = crate::daemon::open(config.clone()).await?;
    let size = raw.len() as u64;
    let (raw, truncated) = if size > config.general.max_message_size {
        (header_part(&raw).to_vec(), true)
    } else {
        (raw, false)
    };
    let outcome = pipeline
        .ingest(
            &dept,
            Source::Pipe {
                department: dept.key.clone(),
            },
            raw,
            size,
            truncated,
        )
        .await;
    store.close().await;
    outcome
}

/// The header block of a raw message (everything before the first blank line).
fn header_part(raw: &[u8]) -> &[u8] {
    for (i, w) in raw.windows(4).enumerate() {
        if w == b"\r\n\r\n" {
            return &raw[..i + 4];
        }
    }
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return &raw[..i + 2];
        }
    }
    &raw[..raw.len().min(64 * 1024)]
}

async fn stats(config_path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let store = Store::open(&config.database.url, 2).await?;
    let (tickets, messages, raw) = store.counts().await?;
    let outbox = store.outbox_counts().await?;
    let counters = store.counters().await?;
    store.close().await;
    if as_json {
        let map = |v: &[(String, i64)]| {
            v.iter()
                .map(|(k, n)| (k.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
        };
        let out = json!({
            "tickets": tickets,
            "messages": messages,
            "raw_messages": raw,
            "outbox": map(&outbox),
            "counters": map(&counters),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("tickets:      {tickets}");
        println!("messages:     {messages}");
        println!("raw messages: {raw}");
        for (status, n) in &outbox {
            println!("outbox {status}: {n}");
        }
        for (name, n) in &counters {
            println!("{name}: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tickets(config_path: &Path, cmd: TicketsCommand) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let secret = crate::daemon::load_secret(&config)?;
    let store = Store::open(&config.database.url, 2).await?;
    let service = Service {
        store: &store,
        config: &config,
        secret: &secret,
    };
    let result = match cmd {
        TicketsCommand::List {
            status,
            department,
            all,
            json,
        } => {
            let status = status
                .map(|s| s.parse::<Status>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let list = store
                .list_tickets(&TicketFilter {
                    status,
                    department,
                    customer: None,
                    hidden: all,
                })
                .await?;
            if json {
                let arr: Vec<Value> = list
                    .iter()
                    .map(|t| {
                        let mut v = ticket_json(t);
                        v["message_count"] = json!(t.message_count);
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&arr)?);
            } else {
                print_list(&list);
            }
            Ok(())
        }
        TicketsCommand::Show { reference, json } => {
            let ticket = store
                .ticket_by_ref(&reference)
                .await?
                .with_context(|| format!("no ticket {}", reference.to_ascii_uppercase()))?;
            let messages = store.messages(ticket.ticket_id).await?;
            let events = store.events(ticket.ticket_id).await?;
            let linked = match ticket.linked_ticket_id {
                Some(id) => store.ticket_by_id(id).await?.map(|t| t.reference),
                None => None,
            };
            if json {
                let mut v = ticket_json(&ticket);
                v["linked_ticket"] = json!(linked);
                v["messages"] = Value::Array(messages.iter().map(message_json).collect());
                v["history"] = Value::Array(
                    events
                        .iter()
                        .map(|e| {
                            // Routing decisions are JSON: keep them structured.
                            let detail = e
                                .detail
                                .as_deref()
                                .map(|d| match serde_json::from_str::<Value>(d) {
                                    Ok(v) if v.is_object() => v,
                                    _ => json!(d),
                                })
                                .unwrap_or(Value::Null);
                            json!({
                                "kind": e.kind,
                                "actor": e.actor,
                                "detail": detail,
                                "at": time(e.created_at),
                            })
                        })
                        .collect(),
                );
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_ticket(&ticket, linked.as_deref(), &messages);
            }
            Ok(())
        }
        TicketsCommand::Reply(a) => {
            let text = String::from_utf8(read_input(a.file.as_deref())?)
                .context("the reply text is not UTF-8")?;
            service.reply(&a.reference, &a.from, &text).await
        }
        .map_err(anyhow::Error::from),
        TicketsCommand::Note(a) => {
            let text = String::from_utf8(read_input(a.file.as_deref())?)
                .context("the note text is not UTF-8")?;
            service.note(&a.reference, &a.from, &text).await
        }
        .map_err(anyhow::Error::from),
        TicketsCommand::Assign { reference, staff } => service
            .assign(&reference, &staff)
            .await
            .map_err(anyhow::Error::from),
        TicketsCommand::Close { reference, by } => service
            .close(&reference, by.as_deref())
            .await
            .map_err(anyhow::Error::from),
        TicketsCommand::Reopen { reference } => service
            .reopen(&reference)
            .await
            .map_err(anyhow::Error::from),
    };
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

fn mail(config_path: &Path, cmd: MailCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MailCommand::Inspect {
            file,
            json,
            department,
        } => {
            let raw = read_input(Some(&file))?;
            // The config (when it loads) says which addresses are ours and
            // which ticket keys to strip; inspecting works without one.
            let config = Config::load(config_path).ok().map(|(c, _)| c);
            let ours = config
                .as_ref()
                .map(|c| c.our_addresses())
                .unwrap_or_default();
            let keys = config.as_ref().map(|c| c.keys()).unwrap_or_default();
            let dept = match (&config, &department) {
                (Some(c), Some(key)) => Some(
                    c.department(key)
                        .with_context(|| format!("no department `{key}` in the config"))?,
                ),
                (Some(c), None) => c.departments.first(),
                (None, Some(_)) => anyhow::bail!("--department needs a config that loads"),
                (None, None) => None,
            };
            let i = crate::inspect::inspect(
                &raw,
                &crate::inspect::Options {
                    ours: &ours,
                    keys: &keys,
                    fallback_charset: dept.and_then(|d| d.fallback_charset.as_deref()),
                    installation: config.as_ref().map(|c| c.general.installation.as_str()),
                },
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                println!("from:      {}", i.from.as_deref().unwrap_or("-"));
                println!("to:        {}", i.to.join(", "));
                if !i.cc.is_empty() {
                    println!("cc:        {}", i.cc.join(", "));
                }
                println!("subject:   {} (clean: {})", i.subject, i.subject_clean);
                println!("class:     {} ({})", i.class.as_str(), i.class_reason);
                if let Some(b) = &i.bounce {
                    println!(
                        "bounce:    {} {} {} original {}",
                        b.recipients.join(", "),
                        b.action.as_deref().unwrap_or("-"),
                        b.status.as_deref().unwrap_or("-"),
                        b.original_message_id.as_deref().unwrap_or("-")
                    );
                }
                for a in &i.attachments {
                    println!(
                        "attachment: {} ({}, {} bytes)",
                        a.filename.as_deref().unwrap_or("unnamed"),
                        a.content_type,
                        a.size
                    );
                }
                for c in &i.charset_issues {
                    println!("charset:   {c}");
                }
                println!("--- text\n{}", i.text);
                if !i.signature.is_empty() {
                    println!("--- signature\n{}", i.signature);
                }
                if !i.quoted.is_empty() {
                    println!("--- quoted ({} bytes)", i.quoted.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MailCommand::Score { labels, verbose } => {
            let labels = crate::inspect::read_labels(&labels)?;
            anyhow::ensure!(!labels.is_empty(), "no labelled mail");
            let s = crate::inspect::score(&labels)?;
            crate::inspect::print_score(&s, verbose);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn rules(config_path: &Path, cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    match cmd {
        RulesCommand::Explain {
            file,
            department,
            json,
        } => {
            let raw = read_input(Some(&file))?;
            let e = crate::explain::explain(&config, &raw, department.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                crate::explain::print(&e);
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test { dir } => {
            let report = crate::explain::test_dir(&config, &dir).await?;
            println!("{} passed, {} failed", report.passed, report.failed);
            if report.passed + report.failed == 0 {
                eprintln!(
                    "helpdesk rules test: no cases in {} (NAME.eml with NAME.expect.toml)",
                    dir.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn ticket_json(t: &Ticket) -> Value {
    json!({
        "ref": t.reference,
        "department": t.department,
        "status": t.status.as_str(),
        "subject": t.subject,
        "customer": { "email": t.customer_email, "name": t.customer_name },
        "assignee": t.assignee,
        "priority": t.priority,
        "category": t.category,
        "tags": t.tags.split_whitespace().collect::<Vec<_>>(),
        "disposition": t.disposition,
        "created_at": time(t.created_at),
        "updated_at": time(t.updated_at),
        "closed_at": t.closed_at.map(time),
    })
}

fn split_list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn message_json(m: &MessageRecord) -> Value {
    json!({
        "direction": m.direction,
        "kind": m.kind,
        "class": m.class,
        "class_reason": m.class_reason,
        "author": m.author,
        "from": m.from_email,
        "from_name": m.from_name,
        "to": split_list(&m.to_list),
        "cc": split_list(&m.cc_list),
        "subject": m.subject,
        "message_id": m.internet_message_id,
        "in_reply_to": m.in_reply_to,
        "thread_signal": m.thread_signal,
        "text": m.new_text.as_deref().unwrap_or(&m.body_text),
        "body": m.body_text,
        "problems": m.problems,
        "delivery": m.delivery,
        "delivery_error": m.delivery_error,
        "bounced": m.bounced_at.is_some(),
        "bounced_at": m.bounced_at.map(time),
        "bounce": m.bounce_detail,
        "created_at": time(m.created_at),
        "attachments": m.attachments.iter().map(|a| json!({
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
        })).collect::<Vec<_>>(),
    })
}

fn print_list(list: &[Ticket]) {
    println!(
        "{:<12} {:<8} {:<6} {:<24} {:>4}  {:<28} SUBJECT",
        "REF", "STATUS", "DEPT", "ASSIGNEE", "MSGS", "CUSTOMER"
    );
    for t in list {
        println!(
            "{:<12} {:<8} {:<6} {:<24} {:>4}  {:<28} {}",
            t.reference,
            t.status.as_str(),
            t.department,
            t.assignee.as_deref().unwrap_or("-"),
            t.message_count,
            t.customer_email,
            t.subject
        );
    }
}

fn print_ticket(t: &Ticket, linked: Option<&str>, messages: &[MessageRecord]) {
    println!("{} [{}] {}", t.reference, t.status.as_str(), t.subject);
    println!(
        "customer: {}{}",
        t.customer_name
            .as_deref()
            .map(|n| format!("{n} "))
            .unwrap_or_default(),
        format_args!("<{}>", t.customer_email)
    );
    println!(
        "department: {}   assignee: {}   priority: {}",
        t.department,
        t.assignee.as_deref().unwrap_or("-"),
        t.priority
    );
    if t.category.is_some() || !t.tags.is_empty() {
        println!(
            "category: {}   tags: {}",
            t.category.as_deref().unwrap_or("-"),
            t.tags
        );
    }
    if let Some(d) = &t.disposition {
        println!("disposition: {d}");
    }
    println!(
        "opened: {}   updated: {}",
        time(t.created_at),
        time(t.updated_at)
    );
    if let Some(l) = linked {
        println!("follows: {l}");
    }
    for m in messages {
        println!();
        let who = m.author.as_deref().unwrap_or(&m.from_email);
        let delivery = match (&m.bounced_at, m.delivery.as_deref()) {
            (Some(_), _) => " (bounced)".to_string(),
            (None, Some(d)) => format!(" ({d})"),
            (None, None) => String::new(),
        };
        println!(
            "--- {} {} {} from {}{}",
            time(m.created_at),
            m.direction,
            m.kind,
            who,
            delivery
        );
        if let Some(p) = &m.problems {
            println!("!!! {p}");
        }
        for a in &m.attachments {
            println!(
                "[attachment] {} ({}, {} bytes)",
                a.filename.as_deref().unwrap_or("unnamed"),
                a.content_type,
                a.size
            );
        }
        if let Some(b) = &m.bounce_detail {
            println!("!!! bounce: {b}");
        }
        let text = m.new_text.as_deref().unwrap_or(&m.body_text);
        println!("{}", text.trim_end());
        let hidden = m
            .body_text
            .lines()
            .count()
            .saturating_sub(text.lines().count());
        if hidden > 0 {
            println!("[{hidden} more lines of quoted history or signature: --json shows `body`]");
        }
    }
}
