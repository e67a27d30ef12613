//! All SQL lives here. One `Store` over SQLite (the embedded default) or
//! PostgreSQL (to share the load between daemons), picked by the URL
//! scheme; the same `$N` queries run on both through sqlx's `Any` driver,
//! and each dialect has its own migrations with the same versions.
//!
//! Times are Unix milliseconds in BIGINT columns; flags are 0/1 integers.
//! A `Tx` is one unit of work (one inbound mail, one staff action): SQLite
//! transactions start with `BEGIN IMMEDIATE` so two writers queue on the
//! busy timeout instead of failing on lock upgrade.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Row, SqlSafeStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Pending,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Closed => "closed",
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "open" => Ok(Status::Open),
            "pending" => Ok(Status::Pending),
            "closed" => Ok(Status::Closed),
            other => Err(format!("unknown status `{other}` (open, pending, closed)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ticket {
    pub ticket_id: i64,
    pub reference: String,
    pub department: String,
    pub status: Status,
    pub subject: String,
    pub customer_email: String,
    pub customer_name: Option<String>,
    pub assignee: Option<String>,
    pub linked_ticket_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub priority: String,
    pub category: Option<String>,
    /// Space-separated.
    pub tags: String,
    /// `spam` or `rejected` for mail a rule kept out of the queue.
    pub disposition: Option<String>,
    /// Filled by listings only.
    pub message_count: i64,
}

const TICKET_COLUMNS: &str = "t.ticket_id, t.ref, t.department, t.status, t.subject, \
    t.customer_email, t.customer_name, t.assignee, t.linked_ticket_id, t.created_at, \
    t.updated_at, t.closed_at, t.priority, t.category, t.tags, t.disposition";

fn ticket_from_row(row: &AnyRow) -> Result<Ticket, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Ticket {
        ticket_id: row.try_get("ticket_id")?,
        reference: row.try_get("ref")?,
        department: row.try_get("department")?,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        subject: row.try_get("subject")?,
        customer_email: row.try_get("customer_email")?,
        customer_name: row.try_get("customer_name")?,
        assignee: row.try_get("assignee")?,
        linked_ticket_id: row.try_get("linked_ticket_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        closed_at: row.try_get("closed_at")?,
        priority: row.try_get("priority")?,
        category: row.try_get("category")?,
        tags: row.try_get("tags")?,
        disposition: row.try_get("disposition")?,
        message_count: row
            .try_get::<Option<i64>, _>("message_count")
            .ok()
            .flatten()
            .unwrap_or(0),
    })
}

#[derive(Debug, Clone)]
pub struct AttachmentMeta {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub message_id: i64,
    pub direction: String,
    pub kind: String,
    /// Inbound: customer, auto_reply, bounce, list, loop or spam.
    pub class: Option<String>,
    pub class_reason: Option<String>,
    pub thread_signal: Option<String>,
    pub author: Option<String>,
    pub from_email: String,
    pub from_name: Option<String>,
    pub to_list: String,
    pub cc_list: String,
    pub subject: String,
    pub internet_message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references_list: Option<String>,
    pub body_text: String,
    /// Inbound: the new text without quoted history or signature.
    pub new_text: Option<String>,
    pub problems: Option<String>,
    pub created_at: i64,
    /// Outbound: when a bounce reported it undelivered, and what it said.
    pub bounced_at: Option<i64>,
    pub bounce_detail: Option<String>,
    /// Outbound mail: queued, sent or failed.
    pub delivery: Option<String>,
    pub delivery_error: Option<String>,
    pub raw_message_id: Option<i64>,
    pub attachments: Vec<AttachmentMeta>,
}

/// A new row of `message`.
#[derive(Debug, Clone, Default)]
pub struct NewMessage<'a> {
    pub ticket_id: i64,
    pub raw_message_id: Option<i64>,
    pub direction: &'a str,
    pub kind: &'a str,
    pub class: Option<&'a str>,
    pub class_reason: Option<&'a str>,
    pub thread_signal: Option<&'a str>,
    pub author: Option<&'a str>,
    pub from_email: &'a str,
    pub from_name: Option<&'a str>,
    pub to_list: &'a str,
    pub cc_list: &'a str,
    pub subject: &'a str,
    pub internet_message_id: Option<&'a str>,
    pub in_reply_to: Option<&'a str>,
    pub references_list: Option<&'a str>,
    pub body_text: &'a str,
    pub new_text: Option<&'a str>,
    pub problems: Option<&'a str>,
    pub created_at: i64,
}

/// An outbound message a bounce may be about.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub message_id: i64,
    pub ticket_id: i64,
    pub kind: String,
    pub bounced_at: Option<i64>,
    /// Its To and Cc addresses, lower case.
    pub recipients: Vec<String>,
}

impl Outbound {
    pub fn was_sent_to(&self, email: &str) -> bool {
        self.recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(email))
    }
}

#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub department: &'a str,
    pub subject: &'a str,
    pub customer_email: &'a str,
    pub customer_name: Option<&'a str>,
    pub assignee: Option<&'a str>,
    pub linked_ticket_id: Option<i64>,
    pub priority: &'a str,
    pub category: Option<&'a str>,
    pub tags: &'a str,
    pub disposition: Option<&'a str>,
    pub now: i64,
}

/// What the routing rules set on an existing ticket.
#[derive(Debug, Clone)]
pub struct Routing<'a> {
    pub department: &'a str,
    pub priority: &'a str,
    pub category: Option<&'a str>,
    pub tags: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct NewOutbox<'a> {
    pub message_id: i64,
    pub ticket_id: i64,
    pub department: &'a str,
    pub kind: &'a str,
    pub mail_from: &'a str,
    pub recipients: &'a [String],
    pub data: &'a [u8],
    pub now: i64,
}

/// A claimed outbox row, ready to send.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub outbox_id: i64,
    pub ticket_id: i64,
    pub department: String,
    pub kind: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub data: Vec<u8>,
    pub attempts: i64,
}

/// Where a raw message came from; identifies IMAP mail for retries.
#[derive(Debug, Clone)]
pub struct RawSource<'a> {
    pub source: &'a str,
    pub department: &'a str,
    pub folder: Option<&'a str>,
    pub uidvalidity: Option<i64>,
    pub uid: Option<i64>,
}

/// Held while a daemon reads a mailbox (see `Store::lock_mailbox`).
pub struct MailboxLock {
    conn: Option<sqlx::AnyConnection>,
}

impl MailboxLock {
    /// Fails when the lock's connection is gone (PostgreSQL restarted or
    /// dropped it): the lock went with it and another daemon may read.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        if let Some(conn) = &mut self.conn {
            sqlx::query("select 1").execute(conn).await?;
        }
        Ok(())
    }
}

/// The outcome of `Tx::store_raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRaw {
    pub raw_message_id: i64,
    /// Times this mail was received without being stored.
    pub attempts: i64,
    /// The same mail was stored before (fetched or piped again).
    pub already_stored: bool,
    /// Inserted just now (not seen before).
    pub fresh: bool,
    /// The last attempt ended in an error that was recorded (not a crash).
    pub errored: bool,
}

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<Status>,
    pub department: Option<String>,
    pub customer: Option<String>,
    /// Also spam and rejected tickets (hidden by default).
    pub hidden: bool,
}

/// One line of a ticket's history.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub actor: Option<String>,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// The file of a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    Some(path.split('?').next().unwrap_or(path).into())
}

fn migrations(backend: Backend) -> Migrator {
    let files: [(i64, &str, &'static str); 3] = match backend {
        Backend::Sqlite => [
            (
                1,
                "initial",
                include_str!("../migrations/sqlite/0001_initial.sql"),
            ),
            (
                2,
                "routing",
                include_str!("../migrations/sqlite/0002_routing.sql"),
            ),
            (
                3,
                "classes",
                include_str!("../migrations/sqlite/0003_classes.sql"),
            ),
        ],
        Backend::Postgres => [
            (
                1,
                "initial",
                include_str!("../migrations/postgres/0001_initial.sql"),
            ),
            (
                2,
                "routing",
                include_str!("../migrations/postgres/0002_routing.sql"),
            ),
            (
                3,
                "classes",
                include_str!("../migrations/postgres/0003_classes.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        files
            .into_iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

impl Store {
    /// Connects, creating the SQLite file (and its directory) on first
    /// start, and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = sqlite_path(url) {
            let path = path.to_str().context("the SQLite path is not UTF-8")?;
            if path.is_empty() || path == ":memory:" {
                bail!("SQLite needs a file path (sqlite:///var/lib/helpdesk/helpdesk.db)");
            }
            if let Some(dir) = Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("creating the database directory {}", dir.display())
                })?;
            }
            (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            bail!("unsupported database URL scheme (use sqlite:// or postgres://)");
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("connecting to the {backend:?} database"))?;
        // Two processes starting on a fresh SQLite file (the daemon and a
        // CLI command) race to apply the first migration; sqlx locks only on
        // PostgreSQL. The loser fails on "table exists"; on retry it sees
        // the migration applied.
        let mut attempt = 0;
        loop {
            match migrations(backend).run(&pool).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e).context("applying database migrations"),
            }
        }
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Exclusive right to read one mailbox, so daemons sharing a
    /// PostgreSQL database never read the same mailbox at once: a session
    /// advisory lock on a connection of its own, released when the guard
    /// (and so the connection) is dropped or the daemon dies. `None` when
    /// another daemon holds it. SQLite has one daemon by construction.
    pub async fn lock_mailbox(
        &self,
        department: &str,
        folder: &str,
    ) -> anyhow::Result<Option<MailboxLock>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(MailboxLock { conn: None }));
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("helpdesk mailbox {department} {folder}"));
        let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let mut conn = self.pool.acquire().await?.detach();
        // A dead daemon's lock is released within about a minute, not
        // after the kernel's two-hour keepalive default.
        for setting in [
            "set tcp_keepalives_idle = 30",
            "set tcp_keepalives_interval = 10",
            "set tcp_keepalives_count = 3",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(setting))
                .execute(&mut conn)
                .await?;
        }
        let row = sqlx::query("select pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        Ok(row
            .try_get::<bool, _>(0)?
            .then_some(MailboxLock { conn: Some(conn) }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn begin(&self) -> anyhow::Result<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .context("starting a database transaction")?;
        Ok(Tx {
            tx,
            backend: self.backend,
        })
    }

    /// `(uidvalidity, last_uid)` of a mailbox.
    pub async fn checkpoint(
        &self,
        department: &str,
        folder: &str,
    ) -> anyhow::Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "select uidvalidity, last_uid from mailbox_checkpoint where department = $1 and folder = $2",
        )
        .bind(department)
        .bind(folder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    pub async fn ticket_by_ref(&self, reference: &str) -> anyhow::Result<Option<Ticket>> {
        let sql = format!("select {TICKET_COLUMNS} from ticket t where t.ref = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference.to_ascii_uppercase())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ticket_from_row(&r)).transpose()?)
    }

    /// Records why processing a received mail failed (best effort: the
    /// database may be the failure), so the retry is not taken for a crash.
    pub async fn note_raw_error(&self, raw_message_id: i64, error: &str) {
        let _ = sqlx::query("update raw_message set last_error = $2 where raw_message_id = $1 and state = 'received'")
            .bind(raw_message_id)
            .bind(error)
            .execute(&self.pool)
            .await;
    }

    /// Forgets a recorded error before a new attempt (see `note_raw_error`).
    pub async fn clear_raw_error(&self, raw_message_id: i64) -> anyhow::Result<()> {
        sqlx::query("update raw_message set last_error = null where raw_message_id = $1")
            .bind(raw_message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// UIDs of a mailbox stored without their full content (too large or
    /// unreadable): `after_ingest = "delete"` leaves them on the server.
    pub async fn partial_uids(
        &self,
        department: &str,
        folder: &str,
        uidvalidity: i64,
    ) -> anyhow::Result<Vec<u32>> {
        let rows = sqlx::query(
            "select uid from raw_message where department = $1 and folder = $2 and uidvalidity = $3 \
             and truncated = 1 and uid is not null",
        )
        .bind(department)
        .bind(folder)
        .bind(uidvalidity)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                r.try_get::<i64, _>(0)
                    .ok()
                    .and_then(|u| u32::try_from(u).ok())
            })
            .collect())
    }

    pub async fn ticket_by_id(&self, ticket_id: i64) -> anyhow::Result<Option<Ticket>> {
        let sql = format!("select {TICKET_COLUMNS} from ticket t where t.ticket_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ticket_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| ticket_from_row(&r)).transpose()?)
    }

    pub async fn list_tickets(&self, filter: &TicketFilter) -> anyhow::Result<Vec<Ticket>> {
        let sql = format!(
            "select {TICKET_COLUMNS}, \
               (select count(*) from message m where m.ticket_id = t.ticket_id) as message_count \
             from ticket t \
             where ($1 = '' or t.status = $1) and ($2 = '' or t.department = $2) \
               and ($3 = '' or t.customer_email = $3) \
               and ($4 = 1 or t.disposition is null) \
             order by t.ticket_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.status.map_or("", Status::as_str))
            .bind(
                filter
                    .department
                    .as_deref()
                    .unwrap_or("")
                    .to_ascii_uppercase(),
            )
            .bind(
                filter
                    .customer
                    .as_deref()
                    .unwrap_or("")
                    .to_ascii_lowercase(),
            )
            .bind(i64::from(filter.hidden))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(ticket_from_row).collect::<Result<_, _>>()?)
    }

    /// A ticket's messages, oldest first, with attachment metadata and the
    /// delivery state of outgoing mail.
    /// A ticket's history, oldest first.
    pub async fn events(&self, ticket_id: i64) -> anyhow::Result<Vec<Event>> {
        let rows = sqlx::query(
            "select kind, actor, detail, created_at from event where ticket_id = $1 \
             order by event_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    kind: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    detail: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    pub async fn messages(&self, ticket_id: i64) -> anyhow::Result<Vec<MessageRecord>> {
        let rows = sqlx::query(
            "select m.message_id, m.direction, m.kind, m.class, m.class_reason, m.thread_signal, \
                    m.author, m.from_email, m.from_name, m.to_list, m.cc_list, m.subject, \
                    m.internet_message_id, m.in_reply_to, m.references_list, m.body_text, \
                    m.new_text, m.bounced_at, m.bounce_detail, \
                    m.problems, m.created_at, m.raw_message_id, o.status as delivery, \
                    o.last_error as delivery_error \
             from message m left join outbox o on o.message_id = m.message_id \
             where m.ticket_id = $1 order by m.message_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        let attachments = sqlx::query(
            "select a.message_id, a.filename, a.content_type, a.size from attachment a \
             join message m on m.message_id = a.message_id \
             where m.ticket_id = $1 order by a.attachment_id",
        )
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let message_id: i64 = r.try_get("message_id")?;
            let mut atts = Vec::new();
            for a in &attachments {
                if a.try_get::<i64, _>("message_id")? == message_id {
                    atts.push(AttachmentMeta {
                        filename: a.try_get("filename")?,
                        content_type: a.try_get("content_type")?,
                        size: a.try_get("size")?,
                    });
                }
            }
            out.push(MessageRecord {
                message_id,
                direction: r.try_get("direction")?,
                kind: r.try_get("kind")?,
                class: r.try_get("class")?,
                class_reason: r.try_get("class_reason")?,
                thread_signal: r.try_get("thread_signal")?,
                author: r.try_get("author")?,
                from_email: r.try_get("from_email")?,
                from_name: r.try_get("from_name")?,
                to_list: r.try_get("to_list")?,
                cc_list: r.try_get("cc_list")?,
                subject: r.try_get("subject")?,
                internet_message_id: r.try_get("internet_message_id")?,
                in_reply_to: r.try_get("in_reply_to")?,
                references_list: r.try_get("references_list")?,
                body_text: r.try_get("body_text")?,
                new_text: r.try_get("new_text")?,
                bounced_at: r.try_get("bounced_at")?,
                bounce_detail: r.try_get("bounce_detail")?,
                problems: r.try_get("problems")?,
                created_at: r.try_get("created_at")?,
                delivery: r.try_get("delivery")?,
                delivery_error: r.try_get("delivery_error")?,
                raw_message_id: r.try_get("raw_message_id")?,
                attachments: atts,
            });
        }
        Ok(out)
    }

    /// The stored raw bytes of an inbound mail.
    pub async fn raw_message(&self, raw_message_id: i64) -> anyhow::Result<Option<Vec<u8>>> {
        let row = sqlx::query("select data from raw_message where raw_message_id = $1")
            .bind(raw_message_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Operator counters (e.g. `auto_mail_suppressed`), by name.
    pub async fn counters(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = sqlx::query("select name, value from counter order by name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Counts for tests and the benchmark: (tickets, messages, raw messages).
    pub async fn counts(&self) -> anyhow::Result<(i64, i64, i64)> {
        let r = sqlx::query(
            "select (select count(*) from ticket), (select count(*) from message), \
                    (select count(*) from raw_message)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
    }

    // -- outbox --------------------------------------------------------

    /// Leases up to `limit` due rows (of one department, or all) for
    /// `lease_ms`; another daemon sharing the database skips leased rows.
    pub async fn claim_outbox(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
        department: Option<&str>,
    ) -> anyhow::Result<Vec<OutboxMail>> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "update outbox set lease_until = $1 \
             where outbox_id in (select outbox_id from outbox \
                                 where status = 'queued' and next_attempt_at <= $2 \
                                   and (lease_until is null or lease_until < $2) \
                                   and ($4 = '' or department = $4) \
                                 order by outbox_id limit $3) \
               and status = 'queued' and (lease_until is null or lease_until < $2) \
             returning outbox_id, ticket_id, department, kind, mail_from, recipients, data, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .bind(department.unwrap_or(""))
        .fetch_all(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(OutboxMail {
                    outbox_id: r.try_get("outbox_id")?,
                    ticket_id: r.try_get("ticket_id")?,
                    department: r.try_get("department")?,
                    kind: r.try_get("kind")?,
                    mail_from: r.try_get("mail_from")?,
                    recipients: r
                        .try_get::<String, _>("recipients")?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    data: r.try_get("data")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        out.sort_by_key(|m| m.outbox_id);
        Ok(out)
    }

    /// Drops every lease: only at the start of the single daemon that owns
    /// a SQLite database, whose previous run may have died mid-send.
    pub async fn release_outbox_leases(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("update outbox set lease_until = null where status = 'queued'")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn outbox_sent(&self, outbox_id: i64, now: i64) -> anyhow::Result<()> {
        sqlx::query(
            "update outbox set status = 'sent', sent_at = $2, lease_until = null, \
             attempts = attempts + 1, last_error = null where outbox_id = $1",
        )
        .bind(outbox_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn outbox_retry(
        &self,
        outbox_id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "update outbox set attempts = attempts + 1, next_attempt_at = $2, lease_until = null, \
             last_error = $3 where outbox_id = $1",
        )
        .bind(outbox_id)
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a mail and says so on its ticket, in one transaction.
    pub async fn outbox_failed(
        &self,
        mail: &OutboxMail,
        error: &str,
        now: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "update outbox set status = 'failed', attempts = attempts + 1, lease_until = null, \
             last_error = $2 where outbox_id = $1",
        )
        .bind(mail.outbox_id)
        .bind(error)
        .execute(&mut *tx.tx)
        .await?;
        let text = format!(
            "Delivery of the {} mail to {} failed permanently: {error}",
            mail.kind,
            mail.recipients.join(", ")
        );
        tx.insert_message(&NewMessage {
            ticket_id: mail.ticket_id,
            direction: "out",
            kind: "note",
            author: Some("helpdesk"),
            from_email: "",
            body_text: &text,
            created_at: now,
            ..NewMessage::default()
        })
        .await?;
        tx.insert_event(mail.ticket_id, "delivery_failed", None, Some(error), now)
            .await?;
        tx.commit().await
    }

    /// `(status, count)` of the outbox, for tests and the benchmark.
    pub async fn outbox_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("select status, count(*) from outbox group by status order by status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }
}

/// One unit of work; dropped without `commit` it rolls back.
pub struct Tx {
    tx: sqlx::Transaction<'static, Any>,
    backend: Backend,
}

impl Tx {
    pub async fn commit(self) -> anyhow::Result<()> {
        self.tx.commit().await.context("committing")
    }

    // -- raw mail --------------------------------------------------------

    /// Stores raw bytes (before parsing) unless this mail was received
    /// before: IMAP mail is recognised by department, folder, UIDVALIDITY
    /// and UID, piped mail by department and SHA-256. A mail received but
    /// never stored (a crash, an error) is returned with its attempts so
    /// far; one already stored is reported as such. Nothing is counted
    /// here: see `count_attempt`.
    pub async fn store_raw(
        &mut self,
        source: &RawSource<'_>,
        sha256: &str,
        size: i64,
        data: &[u8],
        truncated: bool,
        now: i64,
    ) -> anyhow::Result<StoredRaw> {
        let existing = match (source.uidvalidity, source.uid) {
            (Some(v), Some(uid)) => {
                sqlx::query(
                    "select raw_message_id, attempts, state, last_error from raw_message \
                     where department = $1 and folder = $2 and uidvalidity = $3 and uid = $4",
                )
                .bind(source.department)
                .bind(source.folder)
                .bind(v)
                .bind(uid)
                .fetch_optional(&mut *self.tx)
                .await?
            }
            _ => {
                sqlx::query(
                    "select raw_message_id, attempts, state, last_error from raw_message \
                     where department = $1 and sha256 = $2 and source = $3 and uid is null \
                     order by raw_message_id desc limit 1",
                )
                .bind(source.department)
                .bind(sha256)
                .bind(source.source)
                .fetch_optional(&mut *self.tx)
                .await?
            }
        };
        if let Some(r) = existing {
            let state: String = r.try_get(2)?;
            return Ok(StoredRaw {
                raw_message_id: r.try_get(0)?,
                attempts: r.try_get(1)?,
                already_stored: state != "received",
                fresh: false,
                errored: r.try_get::<Option<String>, _>(3)?.is_some(),
            });
        }
        let r = sqlx::query(
            "insert into raw_message (source, department, folder, uidvalidity, uid, sha256, size, \
                                      truncated, attempts, state, received_at, data) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, 1, 'received', $9, $10) \
             returning raw_message_id",
        )
        .bind(source.source)
        .bind(source.department)
        .bind(source.folder)
        .bind(source.uidvalidity)
        .bind(source.uid)
        .bind(sha256)
        .bind(size)
        .bind(i64::from(truncated))
        .bind(now)
        .bind(data)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(StoredRaw {
            raw_message_id: r.try_get(0)?,
            attempts: 1,
            already_stored: false,
            fresh: true,
            errored: false,
        })
    }

    /// Counts one more attempt at processing a received mail.
    pub async fn count_attempt(&mut self, raw_message_id: i64) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "update raw_message set attempts = attempts + 1, last_error = null \
             where raw_message_id = $1 returning attempts",
        )
        .bind(raw_message_id)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// Moves a received mail to `stored` or `duplicate`; `false` when it is
    /// no longer `received` (another daemon got there first). On PostgreSQL
    /// the row stays locked until commit, which serialises two daemons
    /// working on the same mail. A duplicate's bytes are dropped: the
    /// original holds them.
    pub async fn claim_raw(&mut self, raw_message_id: i64, state: &str) -> anyhow::Result<bool> {
        let done = if state == "duplicate" {
            sqlx::query(
                "update raw_message set state = 'duplicate', data = $2 \
                 where raw_message_id = $1 and state = 'received'",
            )
            .bind(raw_message_id)
            .bind(Vec::<u8>::new())
            .execute(&mut *self.tx)
            .await?
        } else {
            sqlx::query("update raw_message set state = $2 where raw_message_id = $1 and state = 'received'")
                .bind(raw_message_id)
                .bind(state)
                .execute(&mut *self.tx)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    /// Whether the same bytes with the same Message-ID were stored before
    /// in this department (the same mail seen again after a UIDVALIDITY
    /// change, a second copy in the mailbox, an MTA retry).
    pub async fn is_duplicate(
        &mut self,
        department: &str,
        sha256: &str,
        internet_message_id: Option<&str>,
        except_raw: i64,
    ) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "select count(*) from raw_message r join message m on m.raw_message_id = r.raw_message_id \
             where r.sha256 = $1 and r.department = $4 and r.state = 'stored' \
               and r.raw_message_id <> $3 and coalesce(m.internet_message_id, '') = $2",
        )
        .bind(sha256)
        .bind(internet_message_id.unwrap_or(""))
        .bind(except_raw)
        .bind(department)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get::<i64, _>(0)? > 0)
    }

    /// Advances a mailbox checkpoint; it never moves back within one
    /// UIDVALIDITY (a slower reader cannot undo a faster one's progress).
    pub async fn set_checkpoint(
        &mut self,
        department: &str,
        folder: &str,
        uidvalidity: i64,
        last_uid: i64,
        now: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "insert into mailbox_checkpoint (department, folder, uidvalidity, last_uid, updated_at) \
             values ($1, $2, $3, $4, $5) \
             on conflict (department, folder) do update set \
               last_uid = case when mailbox_checkpoint.uidvalidity = $3 \
                                and mailbox_checkpoint.last_uid > $4 \
                               then mailbox_checkpoint.last_uid else $4 end, \
               uidvalidity = $3, updated_at = $5",
        )
        .bind(department)
        .bind(folder)
        .bind(uidvalidity)
        .bind(last_uid)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    // -- tickets ---------------------------------------------------------

    /// The ticket of the newest message with one of these Message-IDs,
    /// trying them in order.
    pub async fn ticket_by_message_ids(
        &mut self,
        ids: &[String],
    ) -> anyhow::Result<Option<Ticket>> {
        for id in ids {
            let sql = format!(
                "select {TICKET_COLUMNS} from message m join ticket t on t.ticket_id = m.ticket_id \
                 where m.internet_message_id = $1 order by m.message_id desc limit 1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
            if let Some(r) = row {
                return Ok(Some(ticket_from_row(&r)?));
            }
        }
        Ok(None)
    }

    pub async fn ticket_by_id(&mut self, ticket_id: i64) -> anyhow::Result<Option<Ticket>> {
        let sql = format!("select {TICKET_COLUMNS} from ticket t where t.ticket_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ticket_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| ticket_from_row(&r)).transpose()?)
    }

    pub async fn ticket_by_ref(&mut self, reference: &str) -> anyhow::Result<Option<Ticket>> {
        let sql = format!("select {TICKET_COLUMNS} from ticket t where t.ref = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference.to_ascii_uppercase())
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| ticket_from_row(&r)).transpose()?)
    }

    /// The ticket, locked until commit (PostgreSQL `FOR UPDATE`; a SQLite
    /// write transaction holds the whole database already), so two staff
    /// actions on one ticket run one after the other.
    pub async fn lock_ticket(&mut self, reference: &str) -> anyhow::Result<Option<Ticket>> {
        let lock = if self.backend == Backend::Postgres {
            " for update"
        } else {
            ""
        };
        let sql = format!("select {TICKET_COLUMNS} from ticket t where t.ref = $1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(reference.to_ascii_uppercase())
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| ticket_from_row(&r)).transpose()?)
    }

    pub async fn is_participant(&mut self, ticket_id: i64, email: &str) -> anyhow::Result<bool> {
        let r = sqlx::query("select count(*) from participant where ticket_id = $1 and email = $2")
            .bind(ticket_id)
            .bind(email.to_ascii_lowercase())
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(r.try_get::<i64, _>(0)? > 0)
    }

    pub async fn add_participant(&mut self, ticket_id: i64, email: &str) -> anyhow::Result<()> {
        sqlx::query(
            "insert into participant (ticket_id, email) values ($1, $2) on conflict do nothing",
        )
        .bind(ticket_id)
        .bind(email.to_ascii_lowercase())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn participants(&mut self, ticket_id: i64) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("select email from participant where ticket_id = $1 order by email")
            .bind(ticket_id)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Opens a ticket with the department's next number.
    pub async fn insert_ticket(&mut self, t: &NewTicket<'_>) -> anyhow::Result<Ticket> {
        let r = sqlx::query(
            "insert into department_counter (department, last_number) values ($1, 1) \
             on conflict (department) do update set last_number = department_counter.last_number + 1 \
             returning last_number",
        )
        .bind(t.department)
        .fetch_one(&mut *self.tx)
        .await?;
        let number: i64 = r.try_get(0)?;
        let reference = format!("{}-{number}", t.department);
        // Spam and rejected mail is kept on a closed ticket: stored, out of
        // the queue.
        let status = if t.disposition.is_some() {
            Status::Closed
        } else {
            Status::Open
        };
        let closed_at = t.disposition.is_some().then_some(t.now);
        let r = sqlx::query(
            "insert into ticket (ref, department, status, subject, customer_email, customer_name, \
                                 assignee, linked_ticket_id, created_at, updated_at, closed_at, \
                                 priority, category, tags, disposition) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14) \
             returning ticket_id",
        )
        .bind(&reference)
        .bind(t.department)
        .bind(status.as_str())
        .bind(t.subject)
        .bind(t.customer_email)
        .bind(t.customer_name)
        .bind(t.assignee)
        .bind(t.linked_ticket_id)
        .bind(t.now)
        .bind(closed_at)
        .bind(t.priority)
        .bind(t.category)
        .bind(t.tags)
        .bind(t.disposition)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(Ticket {
            ticket_id: r.try_get(0)?,
            reference,
            department: t.department.to_string(),
            status,
            subject: t.subject.to_string(),
            customer_email: t.customer_email.to_string(),
            customer_name: t.customer_name.map(str::to_string),
            assignee: t.assignee.map(str::to_string),
            linked_ticket_id: t.linked_ticket_id,
            created_at: t.now,
            updated_at: t.now,
            closed_at,
            priority: t.priority.to_string(),
            category: t.category.map(str::to_string),
            tags: t.tags.to_string(),
            disposition: t.disposition.map(str::to_string),
            message_count: 0,
        })
    }

    pub async fn set_status(
        &mut self,
        ticket_id: i64,
        status: Status,
        now: i64,
    ) -> anyhow::Result<()> {
        let closed_at = (status == Status::Closed).then_some(now);
        sqlx::query(
            "update ticket set status = $2, closed_at = $3, updated_at = $4 where ticket_id = $1",
        )
        .bind(ticket_id)
        .bind(status.as_str())
        .bind(closed_at)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn set_assignee(
        &mut self,
        ticket_id: i64,
        assignee: Option<&str>,
        now: i64,
    ) -> anyhow::Result<()> {
        sqlx::query("update ticket set assignee = $2, updated_at = $3 where ticket_id = $1")
            .bind(ticket_id)
            .bind(assignee)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// What the routing rules decided for an existing ticket.
    pub async fn set_routing(&mut self, ticket_id: i64, r: &Routing<'_>) -> anyhow::Result<()> {
        sqlx::query(
            "update ticket set department = $2, priority = $3, category = $4, tags = $5, \
             updated_at = $6 where ticket_id = $1",
        )
        .bind(ticket_id)
        .bind(r.department)
        .bind(r.priority)
        .bind(r.category)
        .bind(r.tags)
        .bind(r.now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Puts a spam or rejected ticket back in the queue.
    pub async fn clear_disposition(&mut self, ticket_id: i64, now: i64) -> anyhow::Result<()> {
        sqlx::query("update ticket set disposition = null, updated_at = $2 where ticket_id = $1")
            .bind(ticket_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The next round-robin number of a team (1, 2, 3 ...), shared by all
    /// daemons: the row stays locked until the transaction ends.
    pub async fn next_round_robin(&mut self, team: &str) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "insert into team_cursor (team, counter) values ($1, 1) \
             on conflict (team) do update set counter = team_cursor.counter + 1 \
             returning counter",
        )
        .bind(team)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// The round-robin number a team would get next, without taking it.
    pub async fn peek_round_robin(&mut self, team: &str) -> anyhow::Result<i64> {
        let r = sqlx::query("select counter from team_cursor where team = $1")
            .bind(team)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(r.map(|r| r.try_get::<i64, _>(0)).transpose()?.unwrap_or(0) + 1)
    }

    /// Tickets not closed, per assignee.
    pub async fn open_counts(&mut self) -> anyhow::Result<std::collections::HashMap<String, i64>> {
        let rows = sqlx::query(
            "select assignee, count(*) from ticket \
             where assignee is not null and status <> 'closed' group by assignee",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The assignee of the customer's most recent assigned ticket.
    pub async fn last_assignee_of(&mut self, customer: &str) -> anyhow::Result<Option<String>> {
        let r = sqlx::query(
            "select assignee from ticket where customer_email = $1 and assignee is not null \
             order by ticket_id desc limit 1",
        )
        .bind(customer)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(r.map(|r| r.try_get(0)).transpose()?)
    }

    /// Whether the address has a ticket already.
    pub async fn customer_known(&mut self, customer: &str) -> anyhow::Result<bool> {
        // Spam and rejected mail does not make anyone a known customer.
        let r = sqlx::query(
            "select 1 from ticket where customer_email = $1 and disposition is null limit 1",
        )
        .bind(customer)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(r.is_some())
    }

    pub async fn touch(&mut self, ticket_id: i64, now: i64) -> anyhow::Result<()> {
        sqlx::query("update ticket set updated_at = $2 where ticket_id = $1")
            .bind(ticket_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn insert_message(&mut self, m: &NewMessage<'_>) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "insert into message (ticket_id, raw_message_id, direction, kind, class_reason, \
                thread_signal, author, from_email, from_name, to_list, cc_list, subject, \
                internet_message_id, in_reply_to, references_list, body_text, problems, created_at, \
                class, new_text) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                     $19, $20) \
             returning message_id",
        )
        .bind(m.ticket_id)
        .bind(m.raw_message_id)
        .bind(m.direction)
        .bind(m.kind)
        .bind(m.class_reason)
        .bind(m.thread_signal)
        .bind(m.author)
        .bind(m.from_email)
        .bind(m.from_name)
        .bind(m.to_list)
        .bind(m.cc_list)
        .bind(m.subject)
        .bind(m.internet_message_id)
        .bind(m.in_reply_to)
        .bind(m.references_list)
        .bind(m.body_text)
        .bind(m.problems)
        .bind(m.created_at)
        .bind(m.class)
        .bind(m.new_text)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    pub async fn insert_attachment(
        &mut self,
        message_id: i64,
        filename: Option<&str>,
        content_type: &str,
        content: &[u8],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "insert into attachment (message_id, filename, content_type, size, content) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(message_id)
        .bind(filename)
        .bind(content_type)
        .bind(content.len() as i64)
        .bind(content)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn insert_event(
        &mut self,
        ticket_id: i64,
        kind: &str,
        actor: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "insert into event (ticket_id, kind, actor, detail, created_at) values ($1, $2, $3, $4, $5)",
        )
        .bind(ticket_id)
        .bind(kind)
        .bind(actor)
        .bind(detail)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The Message-ID and References of the newest inbound mail from a
    /// person on the ticket (what our replies thread under), or failing
    /// that of the newest message at all.
    pub async fn thread_parent(
        &mut self,
        ticket_id: i64,
    ) -> anyhow::Result<Option<(String, Vec<String>)>> {
        let row = sqlx::query(
            "select internet_message_id, references_list from message \
             where ticket_id = $1 and internet_message_id is not null and kind <> 'note' \
             order by case when direction = 'in' and kind = 'customer' then 0 else 1 end, message_id desc \
             limit 1",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let id: String = r.try_get(0)?;
        let refs: Option<String> = r.try_get(1)?;
        let refs = refs
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Some((id, refs)))
    }

    pub async fn enqueue(&mut self, o: &NewOutbox<'_>) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "insert into outbox (message_id, ticket_id, department, kind, mail_from, recipients, \
                                 data, status, attempts, next_attempt_at, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8) returning outbox_id",
        )
        .bind(o.message_id)
        .bind(o.ticket_id)
        .bind(o.department)
        .bind(o.kind)
        .bind(o.mail_from)
        .bind(o.recipients.join(","))
        .bind(o.data)
        .bind(o.now)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// Automatic replies queued for one recipient since `since`.
    pub async fn auto_replies_since(&mut self, recipient: &str, since: i64) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "select count(*) from outbox where kind = 'auto_reply' and recipients = $1 and created_at > $2",
        )
        .bind(recipient.to_ascii_lowercase())
        .bind(since)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// Automatic mail (everything but staff replies) queued on a ticket
    /// since `since`: the per-ticket limit.
    pub async fn automatic_mail_since(
        &mut self,
        ticket_id: i64,
        since: i64,
    ) -> anyhow::Result<i64> {
        let r = sqlx::query(
            "select count(*) from outbox where ticket_id = $1 and kind <> 'staff' and created_at > $2",
        )
        .bind(ticket_id)
        .bind(since)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(r.try_get(0)?)
    }

    fn outbound_from_row(r: &AnyRow) -> Result<Outbound, sqlx::Error> {
        Ok(Outbound {
            message_id: r.try_get("message_id")?,
            ticket_id: r.try_get("ticket_id")?,
            kind: r.try_get("kind")?,
            bounced_at: r.try_get("bounced_at")?,
            recipients: [r.try_get::<String, _>("to_list")?, r.try_get("cc_list")?]
                .iter()
                .flat_map(|l| l.split(','))
                .map(|a| a.trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        })
    }

    /// Our outbound message with this Message-ID (without brackets).
    pub async fn outbound_by_message_id(&mut self, id: &str) -> anyhow::Result<Option<Outbound>> {
        let row = sqlx::query(
            "select message_id, ticket_id, kind, bounced_at, to_list, cc_list from message \
             where internet_message_id = $1 and direction = 'out' order by message_id desc limit 1",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.as_ref().map(Tx::outbound_from_row).transpose()?)
    }

    /// The newest outbound message to `email` since `since`: what a bounce
    /// that returned no headers is most likely about.
    pub async fn latest_outbound_to(
        &mut self,
        email: &str,
        since: i64,
    ) -> anyhow::Result<Option<Outbound>> {
        let row = sqlx::query(
            "select message_id, ticket_id, kind, bounced_at, to_list, cc_list from message \
             where direction = 'out' and created_at > $2 \
               and (', ' || to_list || ', ' || cc_list || ',') like ('%, ' || $1 || ',%') escape '\\' \
             order by message_id desc limit 1",
        )
        // The address is data, not a pattern: `%` and `_` match only
        // themselves.
        .bind(
            email
                .to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_"),
        )
        .bind(since)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.as_ref().map(Tx::outbound_from_row).transpose()?)
    }

    /// Notes what a bounce said about an outbound message; `failed` marks
    /// it bounced (a delay notice only adds the detail).
    pub async fn mark_bounced(
        &mut self,
        message_id: i64,
        detail: &str,
        failed: bool,
        now: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "update message set bounce_detail = $2, \
                    bounced_at = case when $3 = 1 then coalesce(bounced_at, $4) else bounced_at end \
             where message_id = $1",
        )
        .bind(message_id)
        .bind(detail)
        .bind(i64::from(failed))
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Counts a hard bounce from `email`; once `after` of them fall within
    /// `window` ms, automatic mail to it stops for `window` ms. Returns the
    /// end of a suppression that starts now.
    pub async fn record_hard_bounce(
        &mut self,
        email: &str,
        now: i64,
        window: i64,
        after: i64,
    ) -> anyhow::Result<Option<i64>> {
        let email = email.to_ascii_lowercase();
        let row = sqlx::query(
            "select hard_bounces, first_at, suppressed_until from address_bounce where email = $1",
        )
        .bind(&email)
        .fetch_optional(&mut *self.tx)
        .await?;
        let (count, first, was) = match &row {
            Some(r) => {
                let count: i64 = r.try_get(0)?;
                let first: i64 = r.try_get(1)?;
                let until: Option<i64> = r.try_get(2)?;
                if now - first > window {
                    (1, now, until)
                } else {
                    (count + 1, first, until)
                }
            }
            None => (1, now, None),
        };
        let active = was.is_some_and(|u| u > now);
        let until = if after > 0 && count >= after && !active {
            Some(now + window)
        } else {
            None
        };
        sqlx::query(
            "insert into address_bounce (email, hard_bounces, first_at, last_at, suppressed_until) \
             values ($1, $2, $3, $4, $5) \
             on conflict (email) do update set hard_bounces = excluded.hard_bounces, \
                 first_at = excluded.first_at, last_at = excluded.last_at, \
                 suppressed_until = coalesce(excluded.suppressed_until, address_bounce.suppressed_until)",
        )
        .bind(&email)
        .bind(count)
        .bind(first)
        .bind(now)
        .bind(until)
        .execute(&mut *self.tx)
        .await?;
        Ok(until)
    }

    /// Until when automatic mail to `email` is suppressed by its bounces.
    pub async fn suppressed_until(&mut self, email: &str, now: i64) -> anyhow::Result<Option<i64>> {
        let row = sqlx::query(
            "select suppressed_until from address_bounce where email = $1 and suppressed_until > $2",
        )
        .bind(email.to_ascii_lowercase())
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Adds `n` to an operator counter.
    pub async fn bump_counter(&mut self, name: &str, n: i64) -> anyhow::Result<()> {
        sqlx::query(
            "insert into counter (name, value) values ($1, $2) \
             on conflict (name) do update set value = counter.value + excluded.value",
        )
        .bind(name)
        .bind(n)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
