//! How fast and how big reading mail is: `inspect::inspect` (parse →
//! classify → bounce → quote split → HTML sanitise), the path every
//! inbound mail takes before its transaction.
//!
//! Prints:
//! 1. mails per second and per-mail latency (p50/p90/p99/max) over the
//!    project's fixtures (`fixtures/mail/*`) and, when `BENCH_CORPUS` names
//!    a directory, every `.eml` under it (e.g. ../shared/corpus);
//! 2. the time for hostile HTML (100 000 nested elements, a 100 000-cell
//!    table, 2 MiB of text) through `html::to_text` and `html::sanitize`;
//! 3. peak RSS of this process (`VmHWM`).
//!
//! `BENCH_ROUNDS` (default 20) repeats the mail set.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::env_or;
use helpdesk::inspect::{Options, inspect};
use helpdesk::mail::html;

fn mails_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            mails_under(&p, out);
        } else if p
            .extension()
            .is_some_and(|e| e == "eml" || e == "raw" || e == "msg")
        {
            out.push(p);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn timed(what: &str, f: impl FnOnce() -> usize) {
    let t = Instant::now();
    let n = f();
    println!(
        "  {what:<44} {:>8.1} ms ({n} bytes out)",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    mails_under(&root.join("fixtures/mail"), &mut files);
    if let Ok(dir) = std::env::var("BENCH_CORPUS") {
        mails_under(Path::new(&dir), &mut files);
    }
    let mails: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    let bytes: usize = mails.iter().map(Vec::len).sum();
    let rounds = env_or("BENCH_ROUNDS", 20);
    let options = Options {
        ours: &["support@example.com"],
        keys: &["SUP"],
        fallback_charset: None,
        installation: Some("helpdesk@desk.test"),
    };
    println!(
        "mail read path: {} mails ({:.1} MB), {rounds} rounds",
        mails.len(),
        bytes as f64 / 1e6
    );
    // Warm-up.
    for m in &mails {
        std::hint::black_box(inspect(m, &options));
    }
    let mut latencies = Vec::with_capacity(mails.len() * rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        for m in &mails {
            let t = Instant::now();
            std::hint::black_box(inspect(m, &options));
            latencies.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let total = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "  {:.0} mails/s, {:.1} MB/s",
        latencies.len() as f64 / total,
        (bytes * rounds) as f64 / 1e6 / total
    );
    println!(
        "  per mail: p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );

    println!("hostile HTML:");
    let divs = "<div>".repeat(100_000) + "x" + &"</div>".repeat(100_000);
    let quotes = "<blockquote>".repeat(100_000) + "x";
    let cells = format!(
        "<table>{}</table>",
        "<tr>".to_string() + &"<td>c</td>".repeat(100_000) + "</tr>"
    );
    let text = "word ".repeat(420_000);
    let fonts: String = (0..20_000)
        .map(|i| format!("<font color=\"#{i:06x}\">"))
        .collect();
    for (name, h) in [
        ("100 000 nested <div>", &divs),
        ("100 000 unclosed <blockquote>", &quotes),
        ("table with 100 000 cells", &cells),
        ("2 MiB of plain words", &text),
        ("20 000 unclosed <font> with attributes", &fonts),
    ] {
        timed(&format!("to_text: {name}"), || html::to_text(h).len());
        timed(&format!("sanitize: {name}"), || {
            html::sanitize(h, &|_| None).len()
        });
    }
    println!(
        "peak RSS (VmHWM): {} kB",
        common::proc_status_kb(None, "VmHWM:")
    );
}
