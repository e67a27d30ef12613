//! Rules benchmark: prints figures, asserts nothing.
//!
//! 1. Writes a config with 3 departments and 1,000 `[[rule]]` tables (a mix
//!    of department + sender-domain globs, subject regexes such as
//!    `(?:invoice|fatura)-\d{4,}`, body regexes, header conditions, some
//!    `continue = true`, a few time windows and language checks) to a temp
//!    file.
//! 2. Reload time: `Config::load` of that file, median and max of 20.
//! 3. Decision time per mail: `rules::evaluate` over ~50 parsed, realistic
//!    mails (a third match no rule, so all 1,000 rules are evaluated),
//!    ≥ 20,000 evaluations; p50/p90/p99 and mean in microseconds, overall
//!    and for the mails no rule matches.
//! 4. Where the time goes: the rules grouped by their most expensive
//!    condition, and how many conditions of each kind a mail reaches.
//! 5. Peak RSS of this process (`VmHWM`).
//!
//! `cargo bench --bench rules` (env: BENCH_RULES, BENCH_ROUNDS).
//! Goal: a median under 50 µs per mail with 1,000 rules.

#[path = "common/mod.rs"]
mod common;
use common::{Rng, env_or};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use helpdesk::config::Config;
use helpdesk::mail::parse::{Inbound, parse};
use helpdesk::mail::quote;
use helpdesk::rules::{self, Condition, Facts, RuleSet};

const DEPARTMENTS: [(&str, &str); 3] = [
    ("SUP", "support@example.com"),
    ("SAL", "sales@example.com"),
    ("BIL", "billing@example.com"),
];

// ---------------------------------------------------------------------------
// The config

fn config_text(rules: usize) -> String {
    let mut s = String::from(
        "[general]\n\
         data_dir = \"/nonexistent-helpdesk-bench\"\n\
         secret = \"bench-secret-0123456789abcdef\"\n\
         timezone = \"Europe/Istanbul\"\n\n",
    );
    for (key, address) in DEPARTMENTS {
        let _ = write!(
            s,
            "[[department]]\nkey = \"{key}\"\naddress = \"{address}\"\n\
             categories = [\"invoice\", \"hardware\", \"order\", \"account\"]\n\
             [department.imap]\nhost = \"127.0.0.1\"\nusername = \"{address}\"\npassword = \"pw\"\n\
             [department.smtp]\nhost = \"127.0.0.1\"\n\n"
        );
    }
    for (email, deps) in [
        ("ayse@example.com", "\"SUP\", \"SAL\""),
        ("mehmet@example.com", "\"SAL\""),
        ("zeynep@example.com", "\"BIL\""),
        ("can@example.com", "\"BIL\""),
    ] {
        let _ = write!(
            s,
            "[[staff]]\nemail = \"{email}\"\ndepartments = [{deps}]\n\n"
        );
    }
    s.push_str(
        "[[team]]\nname = \"billing\"\nmembers = [\"zeynep@example.com\", \"can@example.com\"]\n\n",
    );
    for i in 0..rules {
        let _ = writeln!(s, "[[rule]]\nname = \"r{i}\"");
        match i % 8 {
            // A supplier's domain, in sales.
            0 => {
                let _ = writeln!(
                    s,
                    "department = \"SAL\"\nfrom = [\"*@vendor{i}.example\", \"*@*.vendor{i}.example\"]\n\
                     set_department = \"BIL\"\ntags = \"vendor\""
                );
            }
            // An invoice number in the subject.
            1 => {
                let _ = writeln!(
                    s,
                    "subject = '(?:invoice|fatura)-{i}\\d{{4,}}'\npriority = \"high\"\n\
                     category = \"invoice\"\nassign = \"billing\""
                );
            }
            // An order or tracking number in the text.
            2 => {
                let _ = writeln!(
                    s,
                    "body = ['\\border\\s+#?{i}\\d{{3,}}\\b', 'tracking number:?\\s*TRK{i}\\d+']\n\
                     category = \"order\"\ntags = \"order\""
                );
            }
            // A header set by a CRM or a campaign tool.
            3 => {
                let _ = writeln!(
                    s,
                    "header = {{ X-Customer-Id = '^C{i}-\\d+$' }}\npriority = \"high\"\ntags = \"crm\""
                );
            }
            // A customer's domain and an urgent word; goes on.
            4 => {
                let _ = writeln!(
                    s,
                    "department = [\"SUP\", \"BIL\"]\nfrom = \"*@customer{i}.example\"\n\
                     subject = 'urgent|acil|asap'\npriority = \"urgent\"\ncontinue = true"
                );
            }
            // A partner in Cc; goes on.
            5 => {
                let _ = writeln!(
                    s,
                    "to = \"*@example.com\"\ncc = [\"*@partner{i}.example\", \"*@*.partner{i}.example\"]\n\
                     tags = \"partner\"\ncontinue = true"
                );
            }
            // An error code in new support mail with an attachment.
            6 => {
                if i % 200 == 6 {
                    // Now and then: only outside office hours.
                    let _ = writeln!(s, "outside_hours = \"Mon-Fri 09:00-18:00\"");
                }
                let _ = writeln!(
                    s,
                    "department = \"SUP\"\nis_reply = false\nhas_attachment = true\n\
                     body = '(?:error|hata) (?:code|kodu) E{i}\\b'\ncategory = \"hardware\""
                );
            }
            // A reference in the subject from a known customer domain.
            _ => {
                if i % 200 == 199 {
                    // Now and then: a language.
                    let _ = writeln!(s, "language = [\"tr\", \"de\"]");
                }
                let _ = writeln!(
                    s,
                    "from = [\"*@*.client{i}.example\", \"client{i}.example\"]\n\
                     subject = ['^\\[?ticket {i}\\]?', 'ref[: ]+R{i}-\\d+']\ntags = \"ref\""
                );
            }
        }
        if i % 10 == 9 && !s.ends_with("continue = true\n") {
            s.push_str("continue = true\n");
        }
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------
// The mails

const EN: &[&str] = &[
    "the",
    "printer",
    "invoice",
    "delivery",
    "order",
    "please",
    "help",
    "screen",
    "password",
    "account",
    "refund",
    "cannot",
    "since",
    "yesterday",
    "office",
    "second",
    "floor",
    "again",
    "thanks",
    "error",
    "message",
    "update",
    "when",
    "could",
    "you",
    "check",
    "our",
    "contract",
];
const TR: &[&str] = &[
    "merhaba",
    "yazıcı",
    "fatura",
    "teslimat",
    "sipariş",
    "lütfen",
    "yardım",
    "ekran",
    "şifre",
    "hesap",
    "iade",
    "dün",
    "ofis",
    "ikinci",
    "kat",
    "tekrar",
    "teşekkürler",
    "hata",
    "mesaj",
    "güncelleme",
    "kontrol",
    "eder",
    "misiniz",
    "bizim",
    "sözleşme",
    "çalışmıyor",
    "için",
];

fn prose(rng: &mut Rng, words: &[&str], bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 80);
    let mut col = 0;
    while s.len() < bytes {
        let w = rng.pick(words);
        s.push_str(w);
        col += w.len() + 1;
        if rng.below(12) == 0 {
            s.push('.');
        }
        if col > 68 {
            s.push('\n');
            col = 0;
        } else {
            s.push(' ');
        }
    }
    s.push('\n');
    s
}

struct MailSpec {
    from: String,
    to: &'static str,
    cc: Option<String>,
    subject: String,
    body: String,
    headers: Vec<String>,
    attachment: bool,
    reply: bool,
    /// Whether some rule is meant to match it.
    matches: bool,
}

fn raw_mail(n: usize, m: &MailSpec) -> Vec<u8> {
    let mut s = String::new();
    let _ = write!(s, "From: Customer {n} <{}>\r\nTo: {}\r\n", m.from, m.to);
    if let Some(cc) = &m.cc {
        let _ = write!(s, "Cc: {cc}\r\n");
    }
    let subject = if m.subject.is_ascii() {
        m.subject.clone()
    } else {
        // Encoded-word, as mail clients send it.
        let mut q = String::from("=?utf-8?q?");
        for b in m.subject.bytes() {
            match b {
                b' ' => q.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => q.push(b as char),
                _ => {
                    let _ = write!(q, "={b:02X}");
                }
            }
        }
        q.push_str("?=");
        q
    };
    let _ = write!(
        s,
        "Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:{:02}:00 +0300\r\n\
         Message-ID: <bench-{n}@mail.example>\r\nMIME-Version: 1.0\r\n",
        n % 60
    );
    if m.reply {
        let _ = write!(
            s,
            "In-Reply-To: <ack-{n}@example.com>\r\nReferences: <orig-{n}@mail.example> <ack-{n}@example.com>\r\n"
        );
    }
    for h in &m.headers {
        let _ = write!(s, "{h}\r\n");
    }
    let body = m.body.replace('\n', "\r\n");
    if m.attachment {
        let _ = write!(
            s,
            "Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n\
             --b{n}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
             {body}\r\n--b{n}\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"screen{n}.png\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\r\n\
             --b{n}--\r\n"
        );
    } else {
        let _ = write!(
            s,
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
        );
    }
    s.into_bytes()
}

/// ~50 mails: some match a rule early or late, a third match nothing.
fn mail_specs(rules: usize) -> Vec<(usize, MailSpec)> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut out = Vec::new();
    let rule_of = |kind: usize, rng: &mut Rng| -> usize {
        // A rule number of this kind somewhere in the file.
        let blocks = (rules / 8).max(1) as u64;
        (rng.below(blocks) as usize) * 8 + kind
    };
    for n in 0..50 {
        let lang = if n % 3 == 0 { TR } else { EN };
        let size = [300, 800, 1500, 3000, 6000, 12000][rng.below(6) as usize];
        let mut body = prose(&mut rng, lang, size);
        let reply = n % 4 == 1;
        if reply {
            body.push_str("\nOn Fri, 20 Nov 2026 at 17:00, Support <support@example.com> wrote:\n");
            for line in prose(&mut rng, lang, size.min(3000)).lines() {
                body.push_str("> ");
                body.push_str(line);
                body.push('\n');
            }
        }
        // Every third mail to each department; the vendor mails (n % 6
        // == 3, below) to sales every other time.
        let arrival = if n % 12 == 3 { 1 } else { n % 3 };
        let to = DEPARTMENTS[arrival].1;
        let mut m = MailSpec {
            from: format!("person{n}@mail{n}.example"),
            to,
            cc: None,
            subject: prose(&mut rng, lang, 30).trim().replace('\n', " "),
            body,
            headers: vec![
                "X-Mailer: Thunderbird 128.4".to_string(),
                "X-Spam-Status: No, score=-1.2".to_string(),
            ],
            attachment: n % 5 == 2,
            reply,
            matches: true,
        };
        match n % 6 {
            // A subject invoice number (rule kind 1).
            0 => {
                let r = rule_of(1, &mut rng);
                m.subject = format!("Fatura-{r}20261 hakkında");
            }
            // An order number in the text (kind 2).
            1 => {
                let r = rule_of(2, &mut rng);
                // In the first paragraph (not in the quoted history).
                let at = m.body.find('\n').map_or(0, |i| i + 1);
                m.body
                    .insert_str(at, &format!("Order #{r}5531 has not arrived yet.\n"));
            }
            // A CRM header (kind 3).
            2 => {
                let r = rule_of(3, &mut rng);
                m.headers.push(format!("X-Customer-Id: C{r}-{n}0042"));
            }
            // A vendor writing to sales (kind 0), else a partner in Cc
            // (kind 5: it continues, so every later rule is evaluated too).
            3 => {
                if arrival == 1 {
                    let r = rule_of(0, &mut rng);
                    m.from = format!("accounts@eu.vendor{r}.example");
                } else {
                    let r = rule_of(5, &mut rng);
                    m.cc = Some(format!("Partner <pm@partner{r}.example>"));
                }
            }
            // Nothing matches: ordinary mail (4 and 5).
            _ => m.matches = false,
        }
        out.push((arrival, m));
    }
    out
}

// ---------------------------------------------------------------------------
// Measuring

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    let p50 = percentile(samples, 0.5);
    println!(
        "  {label:<34} n={:<6} p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  mean {:>8.2}  max {:>9.2}  (µs)",
        samples.len(),
        p50,
        percentile(samples, 0.9),
        percentile(samples, 0.99),
        mean,
        samples.last().copied().unwrap_or(f64::NAN),
    );
    p50
}

struct Mail {
    department: &'static str,
    inbound: Inbound,
    new_text: String,
    is_reply: bool,
    matches: bool,
}

/// What the rules see of a bench mail (nobody is a known customer).
fn facts(m: &Mail, now_ms: i64) -> Facts<'_> {
    Facts::new(
        m.department,
        &m.inbound,
        &m.new_text,
        m.is_reply,
        false,
        now_ms,
    )
}

/// One evaluation in µs.
fn decide(set: &RuleSet, m: &Mail, now_ms: i64) -> (f64, usize) {
    let start = Instant::now();
    let facts = facts(m, now_ms);
    let d = rules::evaluate(set, &facts, None);
    let us = start.elapsed().as_secs_f64() * 1e6;
    (us, black_box(d).matched.len())
}

fn vm_kb(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Median µs per mail of `set` over `mails`, `rounds` times each.
fn median_over(set: &RuleSet, mails: &[Mail], rounds: usize, now_ms: i64) -> f64 {
    let mut t: Vec<f64> = Vec::with_capacity(rounds * mails.len());
    for _ in 0..rounds {
        for m in mails {
            t.push(decide(set, m, now_ms).0);
        }
    }
    t.sort_by(f64::total_cmp);
    percentile(&t, 0.5)
}

fn main() {
    let n_rules = env_or("BENCH_RULES", 1000);
    let rounds = env_or("BENCH_ROUNDS", 500);
    println!("rules benchmark: {n_rules} rules, 3 departments");
    println!("  VmRSS at start: {}", vm_kb("VmRSS:"));

    // 1. The config file.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("helpdesk.toml");
    let text = config_text(n_rules);
    std::fs::write(&path, &text).unwrap();
    println!(
        "  config: {} bytes, {} lines, at {}",
        text.len(),
        text.lines().count(),
        path.display()
    );

    // 2. Reload time.
    let mut loads = Vec::new();
    let mut loaded = None;
    for _ in 0..20 {
        let start = Instant::now();
        let result = Config::load(&path);
        loads.push(start.elapsed());
        match result {
            Ok(c) => loaded = Some(c),
            Err(problems) => panic!("the generated config does not load:\n{problems}"),
        }
    }
    let (config, warnings) = loaded.unwrap();
    loads.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("reload (Config::load of the file, 20 times):");
    println!(
        "  median {:.1} ms, max {:.1} ms, min {:.1} ms ({} rules, {} warnings)",
        ms(loads[loads.len() / 2]),
        ms(*loads.last().unwrap()),
        ms(loads[0]),
        config.rules.rules.len(),
        warnings.len()
    );
    let n_conditions: usize = config.rules.rules.iter().map(|r| r.conditions.len()).sum();
    let n_regex: usize = config
        .rules
        .rules
        .iter()
        .flat_map(|r| &r.conditions)
        .map(|c| match c {
            Condition::Subject(r) | Condition::Body(r) => r.len(),
            Condition::Header { regexes, .. } => regexes.len(),
            _ => 0,
        })
        .sum();
    println!("  {n_conditions} conditions, {n_regex} regexes");
    println!("  VmRSS with the config loaded: {}", vm_kb("VmRSS:"));
    // Of which: compiling the regexes (same flags as `rules::load`).
    let patterns: Vec<String> = config
        .rules
        .rules
        .iter()
        .flat_map(|r| &r.conditions)
        .flat_map(|c| match c {
            Condition::Subject(p) | Condition::Body(p) => {
                p.iter().map(|p| p.re.as_str().to_string()).collect()
            }
            Condition::Header { regexes, .. } => {
                regexes.iter().map(|r| r.as_str().to_string()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = patterns.iter().collect();
    let start = Instant::now();
    for p in &patterns {
        black_box(
            regex::RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(rules::load::REGEX_SIZE_LIMIT)
                .build()
                .unwrap(),
        );
    }
    println!(
        "  of which compiling the {} regexes ({} distinct): {:.1} ms",
        patterns.len(),
        distinct.len(),
        ms(start.elapsed())
    );

    // 3. The mails.
    let parse_start = Instant::now();
    let mails: Vec<Mail> = mail_specs(n_rules)
        .into_iter()
        .enumerate()
        .map(|(n, (arrival, spec))| {
            let inbound = parse(&raw_mail(n, &spec));
            let new_text = quote::new_text(&inbound.text).to_string();
            Mail {
                department: DEPARTMENTS[arrival].0,
                inbound,
                new_text,
                is_reply: spec.reply,
                matches: spec.matches,
            }
        })
        .collect();
    let parse_us = parse_start.elapsed().as_secs_f64() * 1e6 / mails.len() as f64;
    // A Monday 10:00 in Istanbul: inside office hours.
    let now_ms = "2026-11-23T10:00:00+03:00"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();

    // Which mails really match, and how many rules each one reaches.
    let mut no_match = Vec::new();
    let mut surprises = 0;
    let mut reach_all = 0;
    for (i, m) in mails.iter().enumerate() {
        let facts = facts(m, now_ms);
        let mut trace = Vec::new();
        let d = rules::evaluate(&config.rules, &facts, Some(&mut trace));
        if trace
            .iter()
            .all(|v| !matches!(v, rules::Verdict::NotReached))
        {
            reach_all += 1;
        }
        if d.matched.is_empty() {
            no_match.push(i);
        }
        if d.matched.is_empty() == m.matches {
            surprises += 1;
        }
    }
    let body_kb: f64 = mails
        .iter()
        .map(|m| m.inbound.text.len() as f64)
        .sum::<f64>()
        / mails.len() as f64
        / 1024.0;
    println!();
    println!(
        "mails: {} (avg text {:.1} KB; {} match no rule; {} reach all {} rules; \
         {} with attachment; {} replies; parse {:.0} µs/mail){}",
        mails.len(),
        body_kb,
        no_match.len(),
        reach_all,
        config.rules.rules.len(),
        mails
            .iter()
            .filter(|m| !m.inbound.attachments.is_empty())
            .count(),
        mails.iter().filter(|m| m.is_reply).count(),
        parse_us,
        if surprises > 0 {
            format!(" [{surprises} matched other than planned]")
        } else {
            String::new()
        }
    );

    // 4. Decision time.
    for m in &mails {
        decide(&config.rules, m, now_ms); // warm-up
    }
    let mut all = Vec::with_capacity(rounds * mails.len());
    let mut none = Vec::new();
    let mut some = Vec::new();
    let mut matched_total = 0;
    for _ in 0..rounds {
        for (i, m) in mails.iter().enumerate() {
            let (us, matched) = decide(&config.rules, m, now_ms);
            matched_total += matched;
            all.push(us);
            if no_match.contains(&i) {
                none.push(us);
            } else {
                some.push(us);
            }
        }
    }
    println!();
    println!("decision time per mail (Facts::new + rules::evaluate, {rounds} rounds):");
    let p50 = summary("all mails", &mut all);
    summary("mails no rule matches", &mut none);
    summary("mails some rule matches", &mut some);
    black_box(matched_total);
    println!(
        "  goal: median under 50 µs -> {}",
        if p50 < 50.0 {
            format!("met ({p50:.1} µs)")
        } else {
            format!("NOT met ({p50:.1} µs)")
        }
    );
    println!(
        "  peak RSS so far (config + mails + samples): {}",
        vm_kb("VmHWM:")
    );

    // 5. Where the time goes: rules grouped by their most expensive
    // condition (conditions are sorted cheapest first), each group alone
    // over the mails no rule matches (every rule in the group evaluated).
    let none_mails: Vec<Mail> = no_match
        .iter()
        .map(|i| {
            let m = &mails[*i];
            Mail {
                department: m.department,
                inbound: m.inbound.clone(),
                new_text: m.new_text.clone(),
                is_reply: m.is_reply,
                matches: m.matches,
            }
        })
        .collect();
    println!();
    println!("split: rules grouped by their costliest condition, over the no-match mails:");
    let groups = [
        "department",
        "is_reply",
        "has_attachment",
        "from",
        "to",
        "cc",
        "hours",
        "outside_hours",
        "header",
        "subject",
        "body",
        "language",
    ];
    let split_rounds = (rounds / 5).max(20);
    let whole = median_over(&config.rules, &none_mails, split_rounds, now_ms);
    let mut sum = 0.0;
    for g in groups {
        let rules: Vec<_> = config
            .rules
            .rules
            .iter()
            .filter(|r| r.conditions.last().is_some_and(|c| c.key() == g))
            .cloned()
            .collect();
        if rules.is_empty() {
            continue;
        }
        let count = rules.len();
        let set = RuleSet::new(rules, config.rules.teams.clone());
        let t = median_over(&set, &none_mails, split_rounds, now_ms);
        sum += t;
        println!("  {g:<14} {count:>4} rules  median {t:>8.2} µs");
    }
    println!("  sum of groups  {sum:>8.2} µs; all rules together {whole:>8.2} µs");

    // Which conditions are reached at all, per no-match mail.
    let mut reached: std::collections::BTreeMap<&str, usize> = Default::default();
    for m in &none_mails {
        let facts = facts(m, now_ms);
        let mut trace = Vec::new();
        rules::evaluate(&config.rules, &facts, Some(&mut trace));
        for (r, v) in config.rules.rules.iter().zip(&trace) {
            // The failed condition and every one before it ran.
            if let rules::Verdict::Failed { condition, .. } = v {
                for c in &r.conditions {
                    *reached.entry(c.key()).or_default() += 1;
                    if c.describe() == *condition {
                        break;
                    }
                }
            }
        }
    }
    let per_mail: Vec<String> = reached
        .iter()
        .map(|(k, n)| format!("{k} {:.0}", *n as f64 / none_mails.len() as f64))
        .collect();
    println!(
        "  conditions checked per no-match mail: {}",
        per_mail.join(", ")
    );

    println!();
    println!("peak RSS (VmHWM) at the end: {}", vm_kb("VmHWM:"));
    drop(config);
    drop(dir);
}
