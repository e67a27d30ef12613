//! The whole read path on arbitrary bytes: parse → classify → bounce →
//! quote split → HTML sanitise and to-text, as `mail inspect` runs it.
#![no_main]

use helpdesk::inspect::{Options, inspect};
use helpdesk::mail::{bounce, html, quote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // Panics that the daemon catches (mail-parser's, inside
        // `parse::parse`) are not crashes: keep fuzzing. A panic that
        // escapes still aborts the run (libfuzzer-sys catches it).
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    let options = Options {
        ours: &["support@example.com"],
        keys: &["SUP"],
        fallback_charset: Some("windows-1254"),
        installation: Some("helpdesk@desk.test"),
    };
    let i = inspect(data, &options);
    let _ = bounce::parse(data, i.message_id.as_deref());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = quote::split(text);
        let _ = html::to_text(text);
        let _ = html::sanitize(text, &|_| None);
    }
    }
);
