//! Helpers that let the tests read like specs: a real mail stack
//! (`scripts/mailstack`: Postfix + Dovecot on loopback), the real
//! `helpdesk` binary running against it, customers who send over SMTP and
//! read their mailbox over IMAP, and databases on both backends.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use helpdesk::mail::parse::{Inbound, parse};
use helpdesk::store::Store;
use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

/// One `#[tokio::test]` per backend for an `async fn check(Backend)`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($check:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $sqlite() {
            $check(Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $postgres() {
            $check(Backend::Postgres).await;
        }
    };
}

pub const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short unique name for temp dirs and databases.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed on drop. Short path: the mail stack puts UNIX
/// sockets in it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = PathBuf::from("/tmp").join(unique("hd"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("HELPDESK_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------
// Mail stack

pub struct MailStack {
    pub dir: TempDir,
    pub smtp_port: u16,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub ca_file: PathBuf,
    pub password: String,
}

impl MailStack {
    /// Starts Postfix and Dovecot with IMAP logins for `users`.
    pub fn start(users: &[&str]) -> MailStack {
        let dir = TempDir::new();
        let stack_dir = dir.path().join("m");
        let out = Command::new(Path::new(ROOT).join("scripts/mailstack"))
            .arg("start")
            .arg(&stack_dir)
            .args(users)
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/mailstack");
        assert!(out.status.success(), "scripts/mailstack start failed");
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let port = |k: &str| env[k].parse::<u16>().unwrap();
        MailStack {
            smtp_port: port("SMTP_PORT"),
            imap_port: port("IMAP_PORT"),
            imaps_port: port("IMAPS_PORT"),
            lmtp_port: port("LMTP_PORT"),
            ca_file: PathBuf::from(&env["CA_FILE"]),
            password: env["MAIL_PASSWORD"].clone(),
            dir,
        }
    }

    pub fn stack_dir(&self) -> PathBuf {
        self.dir.path().join("m")
    }

    pub fn add_users(&self, users: &[&str]) {
        let ok = Command::new(Path::new(ROOT).join("scripts/mailstack"))
            .arg("add-user")
            .arg(self.stack_dir())
            .args(users)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mailstack add-user failed");
    }

    /// From now on mail to these addresses bounces: Postfix still accepts
    /// it, Dovecot's LMTP refuses it (550 5.1.1 User doesn't exist), and
    /// Postfix returns a real DSN to the envelope sender. Their IMAP
    /// logins stop working too (the mailbox is gone).
    pub fn remove_mailbox(&self, users: &[&str]) {
        let ok = Command::new(Path::new(ROOT).join("scripts/mailstack"))
            .arg("remove-mailbox")
            .arg(self.stack_dir())
            .args(users)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mailstack remove-mailbox failed");
    }

    /// Mails in Postfix's queue: accepted over SMTP (or generated, like
    /// a DSN) and not yet delivered or bounced. Zero means everything
    /// Postfix accepted is in a maildir.
    pub fn postfix_queue_len(&self) -> usize {
        fn files(dir: &Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => files(&e.path()),
                        Ok(t) if t.is_file() => 1,
                        _ => 0,
                    })
                    .sum()
            })
        }
        let spool = self.stack_dir().join("spool");
        [
            "maildrop", "incoming", "active", "deferred", "hold", "corrupt",
        ]
        .iter()
        .map(|q| files(&spool.join(q)))
        .sum()
    }

    /// The UID the next mail delivered to `user`'s INBOX will get.
    pub async fn uid_next(&self, user: &str) -> u32 {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tcp);
        let _ = client.read_response().await.unwrap();
        let mut session = client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let mailbox = session.select("INBOX").await.unwrap();
        let _ = session.logout().await;
        mailbox.uid_next.expect("UIDNEXT in the SELECT response")
    }

    /// Sends raw bytes over SMTP as `from` to `to` (no auth, loopback).
    pub async fn send_raw(&self, from: &str, to: &[&str], raw: &[u8]) {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(self.smtp_port)
            .build();
        let envelope = Envelope::new(
            Some(from.parse().unwrap()),
            to.iter().map(|t| t.parse().unwrap()).collect(),
        )
        .unwrap();
        transport
            .send_raw(&envelope, raw)
            .await
            .expect("SMTP send to the test stack");
    }

    /// Sends a simple mail built by `MailBuilder`.
    pub async fn send(&self, mail: &MailBuilder) {
        let rcpts: Vec<&str> = mail.envelope_to.iter().map(String::as_str).collect();
        self.send_raw(&mail.envelope_from, &rcpts, mail.build().as_bytes())
            .await;
    }

    /// Delivers raw mails straight to Dovecot over LMTP (one connection,
    /// one transaction each): a burst as fast as Dovecot takes it.
    pub async fn lmtp_deliver(&self, mails: &[(String, Vec<u8>)]) {
        lmtp_deliver(self.lmtp_port, mails).await;
    }

    /// Every message in `user`'s INBOX, parsed, oldest first.
    pub async fn inbox(&self, user: &str) -> Vec<(Vec<u8>, Inbound)> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .unwrap();
        let mut client = async_imap::Client::new(tcp);
        let _ = client.read_response().await.unwrap();
        let mut session = client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let mailbox = session.select("INBOX").await.unwrap();
        let mut out = Vec::new();
        if mailbox.exists > 0 {
            let fetched: Vec<_> = session
                .uid_fetch("1:*", "(UID BODY.PEEK[])")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let mut fetched: Vec<(u32, Vec<u8>)> = fetched
                .iter()
                .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
                .collect();
            fetched.sort_by_key(|(uid, _)| *uid);
            for (_, raw) in fetched {
                let parsed = parse(&raw);
                out.push((raw, parsed));
            }
        }
        let _ = session.logout().await;
        out
    }

    /// Waits until `user` has at least `n` messages matching `pred`.
    pub async fn wait_for(
        &self,
        user: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Inbound) -> bool,
    ) -> Vec<(Vec<u8>, Inbound)> {
        let start = Instant::now();
        loop {
            let got: Vec<_> = self
                .inbox(user)
                .await
                .into_iter()
                .filter(|(_, m)| pred(m))
                .collect();
            if got.len() >= n {
                return got;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{user} has {} matching messages after {timeout:?}, expected {n}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Number of messages in `user`'s INBOX, read from the maildir.
    pub fn maildir_count(&self, user: &str) -> usize {
        self.folder_count(user, None)
    }

    /// Number of messages in one of `user`'s folders (`None`: INBOX).
    pub fn folder_count(&self, user: &str, folder: Option<&str>) -> usize {
        let (local, domain) = user.split_once('@').unwrap();
        let mut base = self.stack_dir().join("mail").join(domain).join(local);
        if let Some(f) = folder {
            base = base.join(format!(".{f}"));
        }
        ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(base.join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// Base64 in 76-character lines, as mail clients write attachments.
pub fn base64_lines(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 14 / 10 + 4);
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for j in 0..4 {
            out.push(if j <= c.len() {
                T[(n >> (18 - 6 * j) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

impl Drop for MailStack {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(ROOT).join("scripts/mailstack"))
            .arg("stop")
            .arg(self.stack_dir())
            .stdout(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// Mail

/// A customer's mail, written the way mail clients write it.
#[derive(Clone)]
pub struct MailBuilder {
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl MailBuilder {
    pub fn new(from: &str, to: &str, subject: &str) -> MailBuilder {
        let id = format!("<{}@client.test>", unique("m"));
        MailBuilder {
            envelope_from: from.to_string(),
            envelope_to: vec![to.to_string()],
            headers: vec![
                ("From".into(), from.into()),
                ("To".into(), to.into()),
                ("Subject".into(), subject.into()),
                ("Message-ID".into(), id),
                ("Date".into(), chrono::Utc::now().to_rfc2822()),
                ("MIME-Version".into(), "1.0".into()),
                ("Content-Type".into(), "text/plain; charset=utf-8".into()),
                ("Content-Transfer-Encoding".into(), "8bit".into()),
            ],
            body: "Hello,\nmy printer does not print.\n".into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> MailBuilder {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: &str) -> MailBuilder {
        self.body = body.into();
        self
    }

    pub fn cc(mut self, cc: &str) -> MailBuilder {
        self.envelope_to.push(cc.into());
        self.header("Cc", cc)
    }

    /// Delivered to this address instead of (the envelope of) `To`.
    pub fn envelope_to(mut self, to: &str) -> MailBuilder {
        self.envelope_to = vec![to.into()];
        self
    }

    /// A reply to `parent`: `In-Reply-To`/`References` as clients write them.
    pub fn replying_to(self, parent: &Inbound) -> MailBuilder {
        let id = parent.message_id.clone().unwrap();
        let mut refs: Vec<String> = parent.references.iter().map(|r| format!("<{r}>")).collect();
        refs.push(format!("<{id}>"));
        self.header("In-Reply-To", &format!("<{id}>"))
            .header("References", &refs.join(" "))
    }

    pub fn message_id(&self) -> String {
        let v = &self
            .headers
            .iter()
            .find(|(n, _)| n == "Message-ID")
            .unwrap()
            .1;
        v.trim_matches(['<', '>']).to_string()
    }

    pub fn build(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.push_str(&self.body.replace('\n', "\r\n"));
        s
    }
}

// ---------------------------------------------------------------------------
// The daemon

/// One department for `HelpdeskConfig`.
pub struct Dept {
    pub key: &'static str,
    pub name: &'static str,
    pub address: &'static str,
    pub language: &'static str,
    pub extra: &'static str,
}

pub const SUPPORT: Dept = Dept {
    key: "SUP",
    name: "Support",
    address: "support@example.com",
    language: "en",
    extra: "",
};
pub const SALES: Dept = Dept {
    key: "SAL",
    name: "Satış",
    address: "sales@example.com",
    language: "tr",
    extra: "",
};

/// Writes a config for the stack: IMAP with STARTTLS and the stack's CA,
/// SMTP with STARTTLS and AUTH as the department.
pub fn write_config(
    stack: &MailStack,
    dir: &Path,
    db_url: &str,
    depts: &[&Dept],
    extra_general: &str,
) -> PathBuf {
    let mut s = format!(
        "[general]\ndata_dir = \"{data}\"\nsecret = \"test-secret-0123456789abcdef\"\n{extra_general}\n\
         [database]\nurl = \"{db_url}\"\n\n",
        data = dir.join("data").display(),
    );
    std::fs::write(dir.join("mail.pass"), format!("{}\n", stack.password)).unwrap();
    for d in depts {
        s.push_str(&format!(
            "[[department]]\nkey = \"{key}\"\nname = \"{name}\"\naddress = \"{addr}\"\nlanguage = \"{lang}\"\n{extra}\n\
             [department.imap]\nhost = \"127.0.0.1\"\nport = {imap}\ntls = \"starttls\"\nca_file = \"{ca}\"\n\
             username = \"{addr}\"\npassword_file = \"mail.pass\"\ntimeout = \"20s\"\n\
             [department.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"starttls\"\nca_file = \"{ca}\"\n\
             username = \"{addr}\"\npassword_file = \"mail.pass\"\ntimeout = \"20s\"\n\n",
            key = d.key,
            name = d.name,
            addr = d.address,
            lang = d.language,
            extra = d.extra,
            imap = stack.imap_port,
            smtp = stack.smtp_port,
            ca = stack.ca_file.display(),
        ));
    }
    let keys = |wanted: &[&str]| {
        let present: Vec<String> = wanted
            .iter()
            .filter(|k| depts.iter().any(|d| d.key == **k))
            .map(|k| format!("\"{k}\""))
            .collect();
        present.join(", ")
    };
    s.push_str(&format!(
        "[[staff]]\nemail = \"ayse@example.com\"\nname = \"Ayşe Yılmaz\"\ndepartments = [{}]\n\n\
         [[staff]]\nemail = \"mehmet@example.com\"\nname = \"Mehmet Kaya\"\ndepartments = [{}]\n",
        keys(&["SUP", "SAL"]),
        keys(&["SAL"]),
    ));
    let path = dir.join("helpdesk.toml");
    std::fs::write(&path, s).unwrap();
    path
}

/// The real `helpdesk run` process; SIGTERM on drop.
pub struct Daemon {
    pub child: Child,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let log = config.with_extension(format!("{}.log", unique("run")));
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("HELPDESK_TEST_LOG").unwrap_or_else(|_| "helpdesk=debug,info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting helpdesk run");
        Daemon {
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until every configured mailbox is connected.
    pub async fn wait_connected(&self, mailboxes: usize) {
        let start = Instant::now();
        while self.log().matches("mailbox connected").count() < mailboxes {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "daemon did not connect:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(30));
        std::mem::forget(self);
        status
    }

    /// SIGKILL: the crash case.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let _ = wait_timeout(&mut self.child, Duration::from_secs(30));
        if std::thread::panicking() {
            eprintln!("--- helpdesk log ---\n{}", self.log());
        }
    }
}

/// Runs the CLI and returns stdout; panics with stderr on failure.
pub fn cli(config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = cli_output(config, args, stdin);
    assert!(
        out.status.success(),
        "helpdesk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn cli_output(config: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn show(config: &Path, reference: &str) -> Value {
    serde_json::from_str(&cli(
        config,
        &["tickets", "show", reference, "--json"],
        None,
    ))
    .unwrap()
}

pub fn list(config: &Path) -> Vec<Value> {
    serde_json::from_str(&cli(config, &["tickets", "list", "--json"], None)).unwrap()
}

/// The `messages` of a `tickets show --json` object.
pub fn messages(ticket: &Value) -> &Vec<Value> {
    ticket["messages"].as_array().unwrap()
}

/// (direction, kind) of every message of a ticket, in order.
pub fn kinds(ticket: &Value) -> Vec<(String, String)> {
    messages(ticket)
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every ticket, the hidden ones (spam, rejected, automatic mail that
/// answers nothing of ours) included.
pub fn list_all(config: &Path) -> Vec<Value> {
    serde_json::from_str(&cli(config, &["tickets", "list", "--all", "--json"], None)).unwrap()
}

/// Polls `f` until it returns `Some`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `[SUP-n]` reference in a subject.
pub fn reference_in(subject: &str) -> String {
    let start = subject.find('[').expect("tag in subject") + 1;
    let end = subject[start..].find(']').unwrap() + start;
    subject[start..end].to_string()
}

// ---------------------------------------------------------------------------
// Databases

/// The PostgreSQL server tests use: `HELPDESK_TEST_PG` (set by
/// `scripts/test`, which starts a throw-away server when none answers), or
/// the local one on 127.0.0.1:5432.
pub fn pg_admin_url() -> String {
    std::env::var("HELPDESK_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database on one backend; dropped (PostgreSQL) with the value.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    pg_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = TempDir::new();
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("helpdesk.db").display()),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = pg_admin_url();
                let name = unique("hd_test_");
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL at {admin} is required for the tests: {e}")
                    });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                TestDb {
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url, 4).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = pg_admin_url();
            // A plain thread: Drop may run inside or outside a runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "drop database if exists {name} with (force)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// LMTP client: `mails` are (recipient, raw bytes).
pub async fn lmtp_deliver(port: u16, mails: &[(String, Vec<u8>)]) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut last;
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).await.unwrap() > 0, "LMTP closed");
            let done = line.as_bytes().get(3) == Some(&b' ');
            last = line;
            if done {
                break;
            }
        }
        assert!(
            last.starts_with('2') || last.starts_with('3'),
            "LMTP: {last}"
        );
        last
    }
    reply(&mut r).await;
    w.write_all(b"LHLO test\r\n").await.unwrap();
    reply(&mut r).await;
    for (rcpt, raw) in mails {
        let mut data = Vec::with_capacity(raw.len() + 64);
        data.extend_from_slice(
            format!("MAIL FROM:<sender@test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes(),
        );
        w.write_all(&data).await.unwrap();
        reply(&mut r).await;
        reply(&mut r).await;
        reply(&mut r).await;
        data.clear();
        let text = if raw.ends_with(b"\n") {
            raw.clone()
        } else {
            [raw.as_slice(), b"\r\n"].concat()
        };
        for line in text.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        data.extend_from_slice(b".\r\n");
        w.write_all(&data).await.unwrap();
        reply(&mut r).await;
    }
    let _ = w.write_all(b"QUIT\r\n").await;
}
