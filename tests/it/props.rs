//! No-panic properties for everything that reads a mail: parse → classify
//! → bounce → quote split → HTML sanitise/to-text, through
//! `inspect::inspect`, the same path the daemon takes. Inputs are both
//! arbitrary bytes and mails assembled from the pieces that break parsers
//! (odd headers, nested and broken multiparts, charsets, encodings, HTML).
//! The figures of a long run come from the cargo-fuzz target in fuzz/.

use helpdesk::inspect::{Options, inspect};
use helpdesk::mail::{bounce, html, quote};
use proptest::prelude::*;

fn options() -> Options<'static> {
    Options {
        ours: &["support@example.com"],
        keys: &["SUP"],
        fallback_charset: Some("windows-1254"),
        installation: Some("helpdesk@desk.test"),
    }
}

const HEADERS: &[&str] = &[
    "From: \"Ali Veli\" <ali@example.org>",
    "From: =?windows-1254?Q?=DD=FE=E7i?= <isci@example.org>",
    "From: <>",
    "From: MAILER-DAEMON@mx.example.net",
    "To: support@example.com, =?utf-8?B?w7Z6Z8O8cg==?= <ozgur@example.org>",
    "Subject: =?iso-8859-9?Q?Fatura_=F0=FE?=",
    "Subject: Re: Fwd: AW: [SUP-12] Printer",
    "Subject: Automatic reply: out of office",
    "Subject: Undelivered Mail Returned to Sender",
    "Subject: =?utf-7?Q?+AGQ-?=",
    "Message-ID: <a@b>",
    "Message-ID: <<<>>>",
    "In-Reply-To: <hd.1.x@example.com> garbage <",
    "References: <a@b> <c@d>\t<e@f>",
    "Auto-Submitted: auto-replied",
    "X-Autoreply: yes",
    "Precedence: bulk",
    "List-Id: <list.example.org>",
    "Return-Path: <>",
    "X-Spam-Flag: YES",
    "X-Failed-Recipients: gone@example.org",
    "X-Helpdesk-Loop: helpdesk@host",
    "Content-Transfer-Encoding: base64",
    "Content-Transfer-Encoding: quoted-printable",
    "Content-Type: text/plain; charset=koi8-r",
    "Content-Type: text/plain; charset=iso-2022-jp",
    "Content-Type: text/plain; charset=x-unknown",
    "Content-Type: text/html; charset=gb2312",
    "Content-Type: multipart/alternative; boundary=\"b1\"",
    "Content-Type: multipart/mixed; boundary=b1",
    "Content-Type: multipart/report; report-type=delivery-status; boundary=b1",
    "Content-Disposition: attachment; filename*0*=utf-8''%C3%A7; filename*1*=%ZZ",
    "Content-ID: <img1>",
    "X-Weird:\t\t",
    "no colon here",
    " folded continuation",
];

const BODIES: &[&str] = &[
    "Hello,\nit broke.\n\nOn Mon, 5 Jan 2026 at 10:00, Destek <support@example.com> wrote:\n> old\n",
    "Merhaba\n\n5 Oca 2026 Pzt 10:00 tarihinde Destek <d@example.com> şunu yazdı:\n> eski\n",
    "Dobrý den\n\nDne po 5. 1. 2026 v 10:00 Podpora <p@example.com> napsal(a):\n> staré\n",
    "-----Original Message-----\nFrom: a\nSent: b\nTo: c\nSubject: d\n",
    "________________________________\nFrom: x\n",
    "--b1\nContent-Type: text/plain\n\nhi\n--b1\nContent-Type: text/html\n\n<p>hi</p>\n--b1--\n",
    "--b1\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; x@y\nAction: failed\nStatus: 5.1.1\n\n--b1\nContent-Type: text/rfc822-headers\n\nMessage-ID: <hd.1@example.com>\n--b1--\n",
    "--b1\n--b1\n--b1--\n--b1--",
    "<html><body><div class=\"gmail_quote\"><blockquote type=\"cite\">x</blockquote></div><script>alert(1)</script><img src=\"cid:img1\"><a href=\"javascript:x\">y</a><form><input></form></body></html>",
    "<div><div><div><table><tr><td><blockquote><blockquote>",
    "=C3=A7=\n=ZZ=\n",
    "SGVsbG8gd29ybGQ=\n!!!!\n",
    "\u{0}\u{1}\u{7f}\u{feff}",
    "> > > > > > > >\n>\n-- \n--\nSent from my iPhone\n",
];

/// A mail assembled from pieces: header lines, a blank line, body pieces,
/// with LF or CRLF line ends and optional raw bytes spliced in.
fn assembled() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::sample::select(HEADERS), 0..12),
        prop::collection::vec(prop::sample::select(BODIES), 0..6),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<u16>(),
    )
        .prop_map(|(headers, bodies, crlf, noise, at)| {
            let mut text = headers.join("\n");
            text.push_str("\n\n");
            text.push_str(&bodies.concat());
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            let mut bytes = text.into_bytes();
            let at = usize::from(at) % (bytes.len() + 1);
            bytes.splice(at..at, noise);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        let i = inspect(&raw, &options());
        // The new text is never more than the mail's text.
        prop_assert!(i.text.len() <= raw.len() * 4 + 64 || raw.is_empty());
        let _ = bounce::parse(&raw, None);
    }

    #[test]
    fn assembled_mails_never_panic(raw in assembled()) {
        let i = inspect(&raw, &options());
        if let Some(h) = &i.html_sanitized {
            let lower = h.to_ascii_lowercase();
            prop_assert!(!lower.contains("<script"), "{h}");
            prop_assert!(!lower.contains("javascript:"), "{h}");
        }
        let _ = bounce::parse(&raw, i.message_id.as_deref());
    }

    #[test]
    fn arbitrary_text_splits_into_parts_of_itself(text in "(?s).{0,2000}") {
        let s = quote::split(&text);
        // Every part is a piece of the input: nothing invented.
        for part in [s.text, s.quoted, s.signature] {
            prop_assert!(text.contains(part.trim()), "{part:?} not in {text:?}");
        }
    }

    #[test]
    fn arbitrary_html_never_panics(html_in in "(?s)(<[a-z/!]{0,12}[^>]{0,30}>|[^<]{0,20}|&[a-z#0-9]{0,6};?){0,200}") {
        let text = html::to_text(&html_in);
        let safe = html::sanitize(&html_in, &|_| None);
        prop_assert!(!safe.to_ascii_lowercase().contains("<script"));
        let _ = quote::split(&text);
    }
}
