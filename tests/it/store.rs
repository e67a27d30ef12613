//! `Store` and `Tx` on both backends: every public function, each check
//! written once and run against SQLite and PostgreSQL. The store takes
//! every time as an argument, so these tests use a fixed clock.

use std::collections::HashSet;

use helpdesk::store::{
    Backend as StoreBackend, NewMessage, NewOutbox, NewTicket, OutboxMail, RawSource, Status,
    Store, Ticket, TicketFilter, Tx,
};

use crate::support::{Backend, TestDb, eventually};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

const ALICE: &str = "alice@customer.test";
const BOB: &str = "bob@customer.test";
const AYSE: &str = "ayse@example.com";
const SUPPORT: &str = "support@example.com";

async fn fresh(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    (db, store)
}

fn new_ticket<'a>(department: &'a str, customer: &'a str, now: i64) -> NewTicket<'a> {
    NewTicket {
        department,
        subject: "Printer on fire",
        customer_email: customer,
        customer_name: None,
        assignee: None,
        linked_ticket_id: None,
        priority: "medium",
        category: None,
        tags: "",
        disposition: None,
        now,
    }
}

/// Opens a ticket in a transaction of its own.
async fn open_ticket(store: &Store, department: &str, customer: &str, now: i64) -> Ticket {
    let mut tx = store.begin().await.unwrap();
    let ticket = tx
        .insert_ticket(&new_ticket(department, customer, now))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ticket
}

/// An inbound mail from the customer.
fn customer_mail(ticket_id: i64, message_id: &str, now: i64) -> NewMessage<'_> {
    NewMessage {
        ticket_id,
        direction: "in",
        kind: "customer",
        from_email: ALICE,
        internet_message_id: Some(message_id),
        body_text: "hello",
        created_at: now,
        ..NewMessage::default()
    }
}

/// Stores an outgoing mail of `kind` on the ticket and queues it, as
/// `pipeline::queue_mail` does; returns the outbox id.
async fn queue(store: &Store, ticket: &Ticket, kind: &str, recipients: &[&str], now: i64) -> i64 {
    let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let data = format!("Subject: {kind}\r\n\r\nbody\r\n");
    let mut tx = store.begin().await.unwrap();
    let message_id = tx
        .insert_message(&NewMessage {
            ticket_id: ticket.ticket_id,
            direction: "out",
            kind,
            from_email: SUPPORT,
            to_list: &recipients.join(", "),
            body_text: "we are on it",
            created_at: now,
            ..NewMessage::default()
        })
        .await
        .unwrap();
    let outbox_id = tx
        .enqueue(&NewOutbox {
            message_id,
            ticket_id: ticket.ticket_id,
            department: &ticket.department,
            kind,
            mail_from: SUPPORT,
            recipients: &recipients,
            data: data.as_bytes(),
            now,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outbox_id
}

/// A raw IMAP mail (a new UID each time) in `state`.
async fn raw(tx: &mut Tx, sha256: &str, state: &str) -> i64 {
    static UID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    let source = RawSource {
        source: "imap",
        department: "SUP",
        folder: Some("INBOX"),
        uidvalidity: Some(1),
        uid: Some(UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    };
    let id = tx
        .store_raw(&source, sha256, 5, b"hello", false, T0)
        .await
        .unwrap()
        .raw_message_id;
    if state != "received" {
        assert!(tx.claim_raw(id, state).await.unwrap());
    }
    id
}

/// The message read from raw mail `raw_id`.
async fn attach(tx: &mut Tx, ticket_id: i64, raw_id: i64, internet_message_id: Option<&str>) {
    tx.insert_message(&NewMessage {
        ticket_id,
        raw_message_id: Some(raw_id),
        direction: "in",
        kind: "customer",
        internet_message_id,
        created_at: T0,
        ..NewMessage::default()
    })
    .await
    .unwrap();
}

fn ids(mails: &[OutboxMail]) -> Vec<i64> {
    mails.iter().map(|m| m.outbox_id).collect()
}

fn refs(tickets: &[Ticket]) -> Vec<&str> {
    tickets.iter().map(|t| t.reference.as_str()).collect()
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// A number straight from the database, for what `Store` never reads back.
async fn scalar(db: &TestDb, sql: &'static str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

// ---------------------------------------------------------------------------
// Opening, transactions

#[tokio::test]
async fn open_refuses_unsupported_urls_and_in_memory_sqlite() {
    for url in ["mysql://localhost/helpdesk", "sqlite::memory:", "sqlite://"] {
        assert!(Store::open(url, 1).await.is_err(), "{url} was accepted");
    }
}

async fn check_migrations_apply_twice_without_error(backend: Backend) {
    let db = TestDb::new(backend).await;
    let first = db.store().await;
    let expected = match backend {
        Backend::Sqlite => StoreBackend::Sqlite,
        Backend::Postgres => StoreBackend::Postgres,
    };
    assert_eq!(first.backend(), expected);
    open_ticket(&first, "SUP", ALICE, T0).await;
    first.close().await;
    assert!(
        first.begin().await.is_err(),
        "a closed store still hands out transactions"
    );

    let second = Store::open(&db.url, 2)
        .await
        .expect("opening an up-to-date database");
    assert_eq!(second.counts().await.unwrap(), (1, 0, 0));
    assert!(second.ticket_by_ref("SUP-1").await.unwrap().is_some());
}
on_both_backends!(check_migrations_apply_twice_without_error =>
    sqlite_migrations_apply_twice_without_error_and_keep_data,
    postgres_migrations_apply_twice_without_error_and_keep_data);

async fn check_dropped_transaction_rolls_back(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_ticket(&new_ticket("SUP", ALICE, T0))
        .await
        .unwrap();
    drop(tx);
    assert!(store.ticket_by_ref("SUP-1").await.unwrap().is_none());
    assert_eq!(store.counts().await.unwrap(), (0, 0, 0));
    let next = open_ticket(&store, "SUP", ALICE, T0).await;
    assert_eq!(next.reference, "SUP-1", "the counter was rolled back too");
}
on_both_backends!(check_dropped_transaction_rolls_back =>
    sqlite_dropped_transaction_rolls_back,
    postgres_dropped_transaction_rolls_back);

async fn check_concurrent_transactions_both_succeed(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let writer = |store: Store| {
        tokio::spawn(async move {
            let mut refs = Vec::new();
            for i in 0..50 {
                let mut tx = store
                    .begin()
                    .await
                    .expect("BEGIN waits for the other writer");
                let t = tx
                    .insert_ticket(&new_ticket("SUP", ALICE, T0 + i))
                    .await
                    .unwrap();
                tx.insert_message(&customer_mail(t.ticket_id, "m@x", T0 + i))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                refs.push(t.reference);
            }
            refs
        })
    };
    let (a, b) = tokio::join!(writer(store.clone()), writer(store.clone()));
    let all: Vec<String> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 100, "{all:?}");
    let expected: HashSet<String> = (1..=100).map(|n| format!("SUP-{n}")).collect();
    assert_eq!(distinct, expected.iter().collect());
    assert_eq!(store.counts().await.unwrap(), (100, 100, 0));
}
on_both_backends!(check_concurrent_transactions_both_succeed =>
    sqlite_concurrent_transactions_both_succeed,
    postgres_concurrent_transactions_both_succeed);

// ---------------------------------------------------------------------------
// Tickets

async fn check_ticket_numbers_are_per_department_and_sequential(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let mut made = Vec::new();
    for department in ["SUP", "SUP", "SAL", "SUP"] {
        made.push(open_ticket(&store, department, ALICE, T0).await);
    }
    assert_eq!(refs(&made), ["SUP-1", "SUP-2", "SAL-1", "SUP-3"]);

    let mut tx = store.begin().await.unwrap();
    let linked = tx
        .insert_ticket(&NewTicket {
            department: "SAL",
            subject: "Quote",
            customer_email: BOB,
            customer_name: Some("Bob"),
            assignee: Some(AYSE),
            linked_ticket_id: Some(made[2].ticket_id),
            priority: "high",
            category: Some("request"),
            tags: "vip billing",
            disposition: None,
            now: T0 + 1,
        })
        .await
        .unwrap();
    assert_eq!(linked.reference, "SAL-2");
    assert_eq!(linked.status, Status::Open);
    assert_eq!(
        (
            linked.priority.as_str(),
            linked.category.as_deref(),
            linked.tags.as_str()
        ),
        ("high", Some("request"), "vip billing")
    );
    let in_tx = tx.ticket_by_ref("sal-2").await.unwrap().expect("SAL-2");
    assert_eq!(in_tx.ticket_id, linked.ticket_id);
    assert_eq!(
        (in_tx.priority.as_str(), in_tx.tags.as_str()),
        ("high", "vip billing")
    );
    assert!(tx.ticket_by_ref("SAL-3").await.unwrap().is_none());
    tx.commit().await.unwrap();

    let t = store.ticket_by_ref("sal-2").await.unwrap().expect("SAL-2");
    assert_eq!(t.ticket_id, linked.ticket_id);
    assert_eq!(
        (t.department.as_str(), t.status, t.subject.as_str()),
        ("SAL", Status::Open, "Quote")
    );
    assert_eq!(
        (t.customer_email.as_str(), t.customer_name.as_deref()),
        (BOB, Some("Bob"))
    );
    assert_eq!(t.assignee.as_deref(), Some(AYSE));
    assert_eq!(t.linked_ticket_id, Some(made[2].ticket_id));
    assert_eq!(
        (t.created_at, t.updated_at, t.closed_at),
        (T0 + 1, T0 + 1, None)
    );
    assert!(store.ticket_by_ref("SUP-99").await.unwrap().is_none());
}
on_both_backends!(check_ticket_numbers_are_per_department_and_sequential =>
    sqlite_ticket_numbers_are_per_department_and_sequential,
    postgres_ticket_numbers_are_per_department_and_sequential);

async fn check_ticket_by_message_ids_tries_ids_in_order(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let a = open_ticket(&store, "SUP", ALICE, T0).await;
    let b = open_ticket(&store, "SUP", ALICE, T0).await;
    let c = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_message(&customer_mail(a.ticket_id, "x@id", T0))
        .await
        .unwrap();
    tx.insert_message(&customer_mail(b.ticket_id, "y@id", T0))
        .await
        .unwrap();
    // The same Message-ID again, later, on another ticket.
    tx.insert_message(&customer_mail(c.ticket_id, "x@id", T0 + 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let mut lookup = async |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        tx.ticket_by_message_ids(&ids)
            .await
            .unwrap()
            .map(|t| t.reference)
    };
    assert_eq!(
        lookup(&["nope@id", "x@id", "y@id"]).await.as_deref(),
        Some("SUP-3"),
        "the first known id wins, and of its messages the newest"
    );
    assert_eq!(lookup(&["y@id", "x@id"]).await.as_deref(), Some("SUP-2"));
    assert_eq!(lookup(&["nope@id"]).await, None);
    assert_eq!(lookup(&[]).await, None);
}
on_both_backends!(check_ticket_by_message_ids_tries_ids_in_order =>
    sqlite_ticket_by_message_ids_tries_ids_in_order_and_takes_the_newest_message,
    postgres_ticket_by_message_ids_tries_ids_in_order_and_takes_the_newest_message);

async fn check_participants(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let other = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    assert!(tx.participants(t.ticket_id).await.unwrap().is_empty());
    tx.add_participant(t.ticket_id, "Carol@Customer.test")
        .await
        .unwrap();
    tx.add_participant(t.ticket_id, BOB).await.unwrap();
    tx.add_participant(t.ticket_id, BOB)
        .await
        .expect("adding a participant twice is harmless");
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.participants(t.ticket_id).await.unwrap(),
        [BOB, "carol@customer.test"]
    );
    assert!(tx.is_participant(t.ticket_id, BOB).await.unwrap());
    assert!(
        tx.is_participant(t.ticket_id, "CAROL@customer.TEST")
            .await
            .unwrap()
    );
    assert!(!tx.is_participant(t.ticket_id, ALICE).await.unwrap());
    assert!(!tx.is_participant(other.ticket_id, BOB).await.unwrap());
    assert!(tx.participants(other.ticket_id).await.unwrap().is_empty());
}
on_both_backends!(check_participants =>
    sqlite_participants_are_lowercased_sorted_and_added_once,
    postgres_participants_are_lowercased_sorted_and_added_once);

async fn check_set_status_sets_and_clears_closed_at(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let read = async |expected: (Status, Option<i64>, i64)| {
        let now = store.ticket_by_ref("SUP-1").await.unwrap().unwrap();
        assert_eq!((now.status, now.closed_at, now.updated_at), expected);
    };
    for (status, at, closed_at) in [
        (Status::Pending, T0 + 1, None),
        (Status::Closed, T0 + 2, Some(T0 + 2)),
        (Status::Open, T0 + 3, None),
        (Status::Closed, T0 + 4, Some(T0 + 4)),
    ] {
        let mut tx = store.begin().await.unwrap();
        tx.set_status(t.ticket_id, status, at).await.unwrap();
        tx.commit().await.unwrap();
        read((status, closed_at, at)).await;
    }
}
on_both_backends!(check_set_status_sets_and_clears_closed_at =>
    sqlite_set_status_sets_and_clears_closed_at,
    postgres_set_status_sets_and_clears_closed_at);

async fn check_set_assignee_and_touch(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    tx.set_assignee(t.ticket_id, Some(AYSE), T0 + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let now = store.ticket_by_ref("SUP-1").await.unwrap().unwrap();
    assert_eq!(
        (now.assignee.as_deref(), now.updated_at),
        (Some(AYSE), T0 + 1)
    );

    let mut tx = store.begin().await.unwrap();
    tx.touch(t.ticket_id, T0 + 2).await.unwrap();
    tx.commit().await.unwrap();
    let now = store.ticket_by_ref("SUP-1").await.unwrap().unwrap();
    assert_eq!(
        (now.assignee.as_deref(), now.updated_at),
        (Some(AYSE), T0 + 2)
    );

    let mut tx = store.begin().await.unwrap();
    tx.set_assignee(t.ticket_id, None, T0 + 3).await.unwrap();
    tx.commit().await.unwrap();
    let now = store.ticket_by_ref("SUP-1").await.unwrap().unwrap();
    assert_eq!((now.assignee, now.updated_at), (None, T0 + 3));
    assert_eq!(now.status, Status::Open);
}
on_both_backends!(check_set_assignee_and_touch =>
    sqlite_set_assignee_sets_and_clears_and_touch_updates_the_time,
    postgres_set_assignee_sets_and_clears_and_touch_updates_the_time);

async fn check_list_tickets(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let sup1 = open_ticket(&store, "SUP", ALICE, T0).await;
    let sup2 = open_ticket(&store, "SUP", BOB, T0).await;
    let sal1 = open_ticket(&store, "SAL", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    tx.set_status(sup2.ticket_id, Status::Pending, T0)
        .await
        .unwrap();
    tx.set_status(sal1.ticket_id, Status::Closed, T0)
        .await
        .unwrap();
    for (ticket, id) in [(&sup1, "a@x"), (&sup1, "b@x"), (&sal1, "c@x")] {
        tx.insert_message(&customer_mail(ticket.ticket_id, id, T0))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let list = async |status: Option<Status>, department: Option<&str>, customer: Option<&str>| {
        store
            .list_tickets(&TicketFilter {
                status,
                department: department.map(str::to_string),
                customer: customer.map(str::to_string),
                hidden: false,
            })
            .await
            .unwrap()
    };
    let all = list(None, None, None).await;
    assert_eq!(refs(&all), ["SUP-1", "SUP-2", "SAL-1"]);
    let message_counts: Vec<i64> = all.iter().map(|t| t.message_count).collect();
    assert_eq!(message_counts, [2, 0, 1]);
    let statuses: Vec<Status> = all.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Status::Open, Status::Pending, Status::Closed]);

    assert_eq!(
        refs(&list(Some(Status::Pending), None, None).await),
        ["SUP-2"]
    );
    assert_eq!(
        refs(&list(None, Some("sup"), None).await),
        ["SUP-1", "SUP-2"]
    );
    assert_eq!(
        refs(&list(None, None, Some("ALICE@customer.test")).await),
        ["SUP-1", "SAL-1"]
    );
    assert_eq!(
        refs(&list(Some(Status::Open), Some("SUP"), Some(ALICE)).await),
        ["SUP-1"]
    );
    assert!(
        list(Some(Status::Closed), Some("SUP"), None)
            .await
            .is_empty()
    );
}
on_both_backends!(check_list_tickets =>
    sqlite_list_tickets_filters_by_status_department_and_customer_with_message_counts,
    postgres_list_tickets_filters_by_status_department_and_customer_with_message_counts);

// ---------------------------------------------------------------------------
// Messages and events

async fn check_messages_in_order_with_attachments_and_delivery(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let other = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    let raw_id = tx
        .store_raw(
            &RawSource {
                source: "pipe",
                department: "SUP",
                folder: None,
                uidvalidity: None,
                uid: None,
            },
            "sha",
            100,
            b"raw",
            false,
            T0,
        )
        .await
        .unwrap()
        .raw_message_id;
    let first = tx
        .insert_message(&NewMessage {
            ticket_id: t.ticket_id,
            raw_message_id: Some(raw_id),
            direction: "in",
            kind: "customer",
            class: Some("customer"),
            class_reason: None,
            thread_signal: Some("new"),
            author: None,
            from_email: ALICE,
            from_name: Some("Alice"),
            to_list: SUPPORT,
            cc_list: BOB,
            subject: "Printer on fire",
            internet_message_id: Some("c1@customer.test"),
            in_reply_to: Some("p@x"),
            references_list: Some("o@x p@x"),
            body_text: "It burns.\nPlease help.",
            new_text: Some("It burns."),
            problems: Some("unknown charset `x-klingon`"),
            created_at: T0 + 1,
        })
        .await
        .unwrap();
    tx.insert_attachment(first, Some("photo.jpg"), "image/jpeg", &[0xff; 1234])
        .await
        .unwrap();
    tx.insert_attachment(first, None, "application/octet-stream", b"")
        .await
        .unwrap();
    let on_other = tx
        .insert_message(&customer_mail(other.ticket_id, "o1@x", T0))
        .await
        .unwrap();
    tx.insert_attachment(on_other, Some("other.pdf"), "application/pdf", b"%PDF")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let outbox_id = queue(&store, &t, "auto_reply", &[ALICE], T0 + 2).await;

    let msgs = store.messages(t.ticket_id).await.unwrap();
    assert_eq!(msgs.len(), 2);
    let m = &msgs[0];
    assert_eq!(m.message_id, first);
    assert_eq!(
        (
            m.direction.as_str(),
            m.kind.as_str(),
            m.class_reason.as_deref()
        ),
        ("in", "customer", None)
    );
    assert_eq!(
        (m.thread_signal.as_deref(), m.author.as_deref()),
        (Some("new"), None)
    );
    assert_eq!(
        (m.from_email.as_str(), m.from_name.as_deref()),
        (ALICE, Some("Alice"))
    );
    assert_eq!(
        (m.to_list.as_str(), m.cc_list.as_str(), m.subject.as_str()),
        (SUPPORT, BOB, "Printer on fire")
    );
    assert_eq!(m.internet_message_id.as_deref(), Some("c1@customer.test"));
    assert_eq!(
        (m.in_reply_to.as_deref(), m.references_list.as_deref()),
        (Some("p@x"), Some("o@x p@x"))
    );
    assert_eq!(m.body_text, "It burns.\nPlease help.");
    assert_eq!(m.problems.as_deref(), Some("unknown charset `x-klingon`"));
    assert_eq!((m.created_at, m.raw_message_id), (T0 + 1, Some(raw_id)));
    assert_eq!(
        (m.delivery.as_deref(), m.delivery_error.as_deref()),
        (None, None)
    );
    let atts: Vec<(Option<&str>, &str, i64)> = m
        .attachments
        .iter()
        .map(|a| (a.filename.as_deref(), a.content_type.as_str(), a.size))
        .collect();
    assert_eq!(
        atts,
        [
            (Some("photo.jpg"), "image/jpeg", 1234),
            (None, "application/octet-stream", 0)
        ]
    );

    let ack = &msgs[1];
    assert_eq!(
        (ack.direction.as_str(), ack.kind.as_str()),
        ("out", "auto_reply")
    );
    assert_eq!(ack.delivery.as_deref(), Some("queued"));
    assert!(ack.attachments.is_empty());

    store.outbox_sent(outbox_id, T0 + 3).await.unwrap();
    let msgs = store.messages(t.ticket_id).await.unwrap();
    assert_eq!(msgs[1].delivery.as_deref(), Some("sent"));
    assert!(store.messages(-1).await.unwrap().is_empty());
}
on_both_backends!(check_messages_in_order_with_attachments_and_delivery =>
    sqlite_messages_come_back_in_order_with_attachments_and_delivery_state,
    postgres_messages_come_back_in_order_with_attachments_and_delivery_state);

async fn check_events_are_recorded(backend: Backend) {
    let (db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_event(t.ticket_id, "assigned", Some(AYSE), Some("by hand"), T0)
        .await
        .unwrap();
    tx.insert_event(t.ticket_id, "created", None, None, T0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        scalar(
            &db,
            "select count(*) from event e join ticket t on t.ticket_id = e.ticket_id \
             where t.ref = 'SUP-1' and e.kind = 'assigned' and e.actor = 'ayse@example.com' \
               and e.detail = 'by hand' and e.created_at = 1700000000000"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &db,
            "select count(*) from event where kind = 'created' and actor is null and detail is null"
        )
        .await,
        1
    );
}
on_both_backends!(check_events_are_recorded =>
    sqlite_events_are_recorded_with_actor_and_detail,
    postgres_events_are_recorded_with_actor_and_detail);

async fn check_thread_parent_prefers_newest_inbound_customer_mail(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let only_ours = open_ticket(&store, "SUP", ALICE, T0).await;
    let only_note = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.thread_parent(t.ticket_id).await.unwrap(), None);

    tx.insert_message(&customer_mail(t.ticket_id, "c1@x", T0))
        .await
        .unwrap();
    tx.insert_message(&NewMessage {
        references_list: Some("a@x c1@x"),
        ..customer_mail(t.ticket_id, "c2@x", T0 + 1)
    })
    .await
    .unwrap();
    // Newer, but not from the customer.
    for (direction, kind, id) in [
        ("out", "staff", "s3@x"),
        ("in", "auto_reply", "ooo4@x"),
        ("out", "note", "n5@x"),
    ] {
        tx.insert_message(&NewMessage {
            ticket_id: t.ticket_id,
            direction,
            kind,
            internet_message_id: Some(id),
            references_list: Some("c1@x c2@x"),
            created_at: T0 + 2,
            ..NewMessage::default()
        })
        .await
        .unwrap();
    }
    tx.insert_message(&NewMessage {
        ticket_id: only_ours.ticket_id,
        direction: "out",
        kind: "auto_reply",
        internet_message_id: Some("ack1@x"),
        created_at: T0,
        ..NewMessage::default()
    })
    .await
    .unwrap();
    tx.insert_message(&NewMessage {
        ticket_id: only_note.ticket_id,
        direction: "out",
        kind: "note",
        internet_message_id: Some("n1@x"),
        created_at: T0,
        ..NewMessage::default()
    })
    .await
    .unwrap();

    assert_eq!(
        tx.thread_parent(t.ticket_id).await.unwrap(),
        Some((
            "c2@x".to_string(),
            vec!["a@x".to_string(), "c1@x".to_string()]
        ))
    );
    assert_eq!(
        tx.thread_parent(only_ours.ticket_id).await.unwrap(),
        Some(("ack1@x".to_string(), vec![]))
    );
    assert_eq!(
        tx.thread_parent(only_note.ticket_id).await.unwrap(),
        None,
        "notes are never mailed, so nothing threads under them"
    );
}
on_both_backends!(check_thread_parent_prefers_newest_inbound_customer_mail =>
    sqlite_thread_parent_prefers_the_newest_inbound_customer_message,
    postgres_thread_parent_prefers_the_newest_inbound_customer_message);

// ---------------------------------------------------------------------------
// Raw mail and mailbox checkpoints

async fn check_store_raw_counts_imap_attempts(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let imap = |department, uidvalidity, uid| RawSource {
        source: "imap",
        department,
        folder: Some("INBOX"),
        uidvalidity: Some(uidvalidity),
        uid: Some(uid),
    };
    let store_raw = async |source: RawSource<'_>| {
        let mut tx = store.begin().await.unwrap();
        let r = tx
            .store_raw(&source, "sha", 5, b"hello", false, T0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!r.already_stored);
        (r.raw_message_id, r.attempts)
    };

    let (id, attempts) = store_raw(imap("SUP", 7, 3)).await;
    assert_eq!(attempts, 1);
    // Fetched again after a crash before it was stored: the same row, and
    // the pipeline counts the attempt.
    assert_eq!(store_raw(imap("SUP", 7, 3)).await, (id, 1));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.count_attempt(id).await.unwrap(), 2);
    assert_eq!(tx.count_attempt(id).await.unwrap(), 3);
    tx.commit().await.unwrap();
    assert_eq!(store_raw(imap("SUP", 7, 3)).await, (id, 3));

    let mut others = HashSet::from([id]);
    for source in [
        imap("SUP", 7, 4),
        imap("SUP", 8, 3),
        imap("SAL", 7, 3),
        RawSource {
            folder: Some("Archive"),
            ..imap("SUP", 7, 3)
        },
    ] {
        let (other, attempts) = store_raw(source).await;
        assert_eq!(attempts, 1);
        assert!(others.insert(other), "a new row for another mail");
    }
    // Piped mail is recognised by its bytes within the department.
    let pipe = |department| RawSource {
        source: "pipe",
        department,
        folder: None,
        uidvalidity: None,
        uid: None,
    };
    let (p1, _) = store_raw(pipe("SUP")).await;
    let (p2, _) = store_raw(pipe("SUP")).await;
    let (p3, _) = store_raw(pipe("SAL")).await;
    assert_eq!(p1, p2, "an MTA retry of the same bytes");
    assert!(p1 != p3 && !others.contains(&p1) && !others.contains(&p3));
    assert_eq!(store.counts().await.unwrap(), (0, 0, 7));

    // Once stored, the same UID is reported as already stored.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.claim_raw(id, "stored").await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let again = tx
        .store_raw(&imap("SUP", 7, 3), "sha", 5, b"hello", false, T0)
        .await
        .unwrap();
    assert!(again.already_stored && !again.fresh);
}
on_both_backends!(check_store_raw_counts_imap_attempts =>
    sqlite_store_raw_recognises_the_same_mail_and_counts_attempts_only_when_asked,
    postgres_store_raw_recognises_the_same_mail_and_counts_attempts_only_when_asked);

async fn check_raw_message_returns_the_exact_bytes(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let bytes: &[u8] = b"Subject: caf\xe9\r\n\r\n\x00\xff binary\r\n";
    let mut tx = store.begin().await.unwrap();
    let id = tx
        .store_raw(
            &RawSource {
                source: "imap",
                department: "SUP",
                folder: Some("INBOX"),
                uidvalidity: Some(1),
                uid: Some(1),
            },
            "sha",
            1_000_000,
            bytes,
            true,
            T0,
        )
        .await
        .unwrap()
        .raw_message_id;
    tx.commit().await.unwrap();
    assert_eq!(store.raw_message(id).await.unwrap().as_deref(), Some(bytes));
    assert_eq!(store.raw_message(id + 1000).await.unwrap(), None);
}
on_both_backends!(check_raw_message_returns_the_exact_bytes =>
    sqlite_raw_message_returns_the_exact_bytes,
    postgres_raw_message_returns_the_exact_bytes);

async fn check_is_duplicate(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    let original = raw(&mut tx, "sha-a", "stored").await;
    attach(&mut tx, t.ticket_id, original, Some("m1@x")).await;
    let again = raw(&mut tx, "sha-a", "received").await;

    assert!(
        tx.is_duplicate("SUP", "sha-a", Some("m1@x"), again)
            .await
            .unwrap()
    );
    assert!(
        !tx.is_duplicate("SAL", "sha-a", Some("m1@x"), again)
            .await
            .unwrap(),
        "the same mail in another department is its own"
    );
    assert!(
        !tx.is_duplicate("SUP", "sha-a", Some("m1@x"), original)
            .await
            .unwrap(),
        "a raw mail is no duplicate of itself"
    );
    assert!(
        !tx.is_duplicate("SUP", "sha-a", Some("m2@x"), again)
            .await
            .unwrap()
    );
    assert!(
        !tx.is_duplicate("SUP", "sha-b", Some("m1@x"), again)
            .await
            .unwrap()
    );
    assert!(!tx.is_duplicate("SUP", "sha-a", None, again).await.unwrap());

    // Only stored mail counts.
    let pending = raw(&mut tx, "sha-c", "received").await;
    attach(&mut tx, t.ticket_id, pending, Some("m3@x")).await;
    assert!(
        !tx.is_duplicate("SUP", "sha-c", Some("m3@x"), again)
            .await
            .unwrap()
    );
    assert!(tx.claim_raw(pending, "stored").await.unwrap());
    assert!(
        !tx.claim_raw(pending, "stored").await.unwrap(),
        "claimed once only"
    );
    assert!(
        tx.is_duplicate("SUP", "sha-c", Some("m3@x"), again)
            .await
            .unwrap()
    );

    // Stored raw bytes without a message attached are no evidence.
    raw(&mut tx, "sha-d", "stored").await;
    assert!(!tx.is_duplicate("SUP", "sha-d", None, again).await.unwrap());

    // Mail without a Message-ID matches on the bytes alone.
    let anonymous = raw(&mut tx, "sha-e", "stored").await;
    attach(&mut tx, t.ticket_id, anonymous, None).await;
    assert!(tx.is_duplicate("SUP", "sha-e", None, again).await.unwrap());
    assert!(
        !tx.is_duplicate("SUP", "sha-e", Some("m5@x"), again)
            .await
            .unwrap()
    );
}
on_both_backends!(check_is_duplicate =>
    sqlite_is_duplicate_needs_same_bytes_same_message_id_and_a_stored_message,
    postgres_is_duplicate_needs_same_bytes_same_message_id_and_a_stored_message);

async fn check_checkpoint_upsert(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    assert_eq!(store.checkpoint("SUP", "INBOX").await.unwrap(), None);
    for (uidvalidity, last_uid) in [(7, 10), (7, 12), (8, 1)] {
        let mut tx = store.begin().await.unwrap();
        tx.set_checkpoint("SUP", "INBOX", uidvalidity, last_uid, T0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.checkpoint("SUP", "INBOX").await.unwrap(),
            Some((uidvalidity, last_uid))
        );
    }
    let mut tx = store.begin().await.unwrap();
    tx.set_checkpoint("SUP", "Archive", 3, 4, T0).await.unwrap();
    tx.set_checkpoint("SAL", "INBOX", 5, 6, T0).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.checkpoint("SUP", "INBOX").await.unwrap(),
        Some((8, 1))
    );
    assert_eq!(
        store.checkpoint("SUP", "Archive").await.unwrap(),
        Some((3, 4))
    );
    assert_eq!(
        store.checkpoint("SAL", "INBOX").await.unwrap(),
        Some((5, 6))
    );
    assert_eq!(store.checkpoint("SAL", "Archive").await.unwrap(), None);
}
on_both_backends!(check_checkpoint_upsert =>
    sqlite_checkpoint_is_upserted_per_department_and_folder,
    postgres_checkpoint_is_upserted_per_department_and_folder);

// ---------------------------------------------------------------------------
// Outbox

async fn check_claim_outbox_leases_rows(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let first = queue(&store, &t, "auto_reply", &[ALICE], T0).await;
    let second = queue(&store, &t, "staff", &[ALICE, BOB], T0 + 1).await;

    assert!(
        store
            .claim_outbox(T0 - 1, MINUTE, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due yet"
    );
    let claimed = store.claim_outbox(T0 + 1, MINUTE, 10, None).await.unwrap();
    assert_eq!(ids(&claimed), [first, second]);
    let m = &claimed[1];
    assert_eq!(
        (m.ticket_id, m.department.as_str(), m.kind.as_str()),
        (t.ticket_id, "SUP", "staff")
    );
    assert_eq!(m.mail_from, SUPPORT);
    assert_eq!(m.recipients, [ALICE, BOB]);
    assert_eq!(m.data, b"Subject: staff\r\n\r\nbody\r\n");
    assert_eq!(m.attempts, 0);

    assert!(
        store
            .claim_outbox(T0 + 1, MINUTE, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "a second claim at the same time gets nothing"
    );
    assert!(
        store
            .claim_outbox(T0 + MINUTE / 2, MINUTE, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "still leased"
    );
    let after_expiry = T0 + 2 + MINUTE;
    let again = store
        .claim_outbox(after_expiry, MINUTE, 1, None)
        .await
        .unwrap();
    assert_eq!(ids(&again), [first], "the limit takes the oldest first");
    let rest = store
        .claim_outbox(after_expiry, MINUTE, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&rest), [second]);
}
on_both_backends!(check_claim_outbox_leases_rows =>
    sqlite_claim_outbox_leases_rows_until_the_lease_expires,
    postgres_claim_outbox_leases_rows_until_the_lease_expires);

async fn check_outbox_sent(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let sent = queue(&store, &t, "auto_reply", &[ALICE], T0).await;
    let waiting = queue(&store, &t, "staff", &[ALICE], T0).await;
    assert_eq!(
        store
            .claim_outbox(T0, MINUTE, 10, None)
            .await
            .unwrap()
            .len(),
        2
    );

    store.outbox_sent(sent, T0 + 5).await.unwrap();
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        counts(&[("queued", 1), ("sent", 1)])
    );
    let later = store
        .claim_outbox(T0 + 2 * MINUTE, MINUTE, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&later), [waiting], "sent mail is never claimed again");
    let msgs = store.messages(t.ticket_id).await.unwrap();
    let delivery: Vec<Option<&str>> = msgs.iter().map(|m| m.delivery.as_deref()).collect();
    assert_eq!(delivery, [Some("sent"), Some("queued")]);
}
on_both_backends!(check_outbox_sent =>
    sqlite_outbox_sent_marks_the_mail_sent_and_never_claims_it_again,
    postgres_outbox_sent_marks_the_mail_sent_and_never_claims_it_again);

async fn check_outbox_retry(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let id = queue(&store, &t, "staff", &[ALICE], T0).await;
    assert_eq!(
        ids(&store.claim_outbox(T0, MINUTE, 10, None).await.unwrap()),
        [id]
    );

    store
        .outbox_retry(id, T0 + 10 * MINUTE, "451 try again later")
        .await
        .unwrap();
    assert!(
        store
            .claim_outbox(T0 + 2 * MINUTE, MINUTE, 10, None)
            .await
            .unwrap()
            .is_empty(),
        "not claimable before next_attempt_at"
    );
    let m = store.messages(t.ticket_id).await.unwrap().remove(0);
    assert_eq!(
        (m.delivery.as_deref(), m.delivery_error.as_deref()),
        (Some("queued"), Some("451 try again later"))
    );
    let due = store
        .claim_outbox(T0 + 10 * MINUTE, MINUTE, 10, None)
        .await
        .unwrap();
    assert_eq!(ids(&due), [id]);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        counts(&[("queued", 1)])
    );
}
on_both_backends!(check_outbox_retry =>
    sqlite_outbox_retry_postpones_the_mail_until_next_attempt_at,
    postgres_outbox_retry_postpones_the_mail_until_next_attempt_at);

async fn check_outbox_failed(backend: Backend) {
    let (db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    queue(&store, &t, "staff", &[ALICE, BOB], T0).await;
    let mail = store
        .claim_outbox(T0, MINUTE, 10, None)
        .await
        .unwrap()
        .remove(0);

    store
        .outbox_failed(&mail, "550 no such user", T0 + 5)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        counts(&[("failed", 1)])
    );
    assert!(
        store
            .claim_outbox(T0 + 10 * MINUTE, MINUTE, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let msgs = store.messages(t.ticket_id).await.unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (
            msgs[0].delivery.as_deref(),
            msgs[0].delivery_error.as_deref()
        ),
        (Some("failed"), Some("550 no such user"))
    );
    let note = &msgs[1];
    assert_eq!(
        (
            note.direction.as_str(),
            note.kind.as_str(),
            note.author.as_deref()
        ),
        ("out", "note", Some("helpdesk"))
    );
    assert_eq!((note.created_at, note.delivery.as_deref()), (T0 + 5, None));
    for part in ["staff", ALICE, BOB, "550 no such user"] {
        assert!(
            note.body_text.contains(part),
            "{part} in {:?}",
            note.body_text
        );
    }
    assert_eq!(
        scalar(
            &db,
            "select count(*) from event where kind = 'delivery_failed' and detail = '550 no such user'"
        )
        .await,
        1
    );
}
on_both_backends!(check_outbox_failed =>
    sqlite_outbox_failed_marks_the_mail_failed_and_notes_it_on_the_ticket,
    postgres_outbox_failed_marks_the_mail_failed_and_notes_it_on_the_ticket);

async fn check_release_outbox_leases(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    let id = queue(&store, &t, "staff", &[ALICE], T0).await;
    assert_eq!(
        ids(&store.claim_outbox(T0, MINUTE, 10, None).await.unwrap()),
        [id]
    );

    store.release_outbox_leases().await.unwrap();
    let again = store.claim_outbox(T0, MINUTE, 10, None).await.unwrap();
    match backend {
        // The single daemon owning the file: its previous run is dead.
        Backend::Sqlite => assert_eq!(ids(&again), [id]),
        // Another daemon sharing the database may be sending right now.
        Backend::Postgres => assert!(again.is_empty()),
    }
}
on_both_backends!(check_release_outbox_leases =>
    sqlite_release_outbox_leases_frees_leased_mail,
    postgres_release_outbox_leases_keeps_leases_of_daemons_sharing_the_database);

async fn check_auto_replies_since(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    queue(&store, &t, "auto_reply", &[ALICE], T0).await;
    queue(&store, &t, "auto_reply", &[ALICE], T0 + MINUTE).await;
    queue(&store, &t, "staff", &[ALICE], T0 + 2 * MINUTE).await;
    queue(&store, &t, "closure", &[ALICE], T0 + 3 * MINUTE).await;
    queue(&store, &t, "auto_reply", &[BOB], T0 + 4 * MINUTE).await;

    let mut tx = store.begin().await.unwrap();
    let mut since =
        async |recipient: &str, since: i64| tx.auto_replies_since(recipient, since).await.unwrap();
    assert_eq!(since(ALICE, T0 - 1).await, 2);
    assert_eq!(since("Alice@Customer.TEST", T0 - 1).await, 2);
    assert_eq!(since(ALICE, T0).await, 1, "strictly after `since`");
    assert_eq!(since(ALICE, T0 + MINUTE).await, 0);
    assert_eq!(since(BOB, T0 - 1).await, 1);
    assert_eq!(since("carol@customer.test", T0 - 1).await, 0);
}
on_both_backends!(check_auto_replies_since =>
    sqlite_auto_replies_since_counts_only_auto_replies_to_that_recipient_after_the_time,
    postgres_auto_replies_since_counts_only_auto_replies_to_that_recipient_after_the_time);

async fn check_counts_and_outbox_counts(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    assert_eq!(store.counts().await.unwrap(), (0, 0, 0));
    assert!(store.outbox_counts().await.unwrap().is_empty());

    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    open_ticket(&store, "SAL", ALICE, T0).await;
    let mut tx = store.begin().await.unwrap();
    let raw_id = raw(&mut tx, "sha", "stored").await;
    attach(&mut tx, t.ticket_id, raw_id, Some("c1@x")).await;
    tx.commit().await.unwrap();
    let sent = queue(&store, &t, "auto_reply", &[ALICE], T0).await;
    queue(&store, &t, "staff", &[ALICE], T0).await;
    queue(&store, &t, "closure", &[ALICE], T0).await;
    let claimed = store.claim_outbox(T0, MINUTE, 10, None).await.unwrap();
    store.outbox_sent(sent, T0).await.unwrap();
    store
        .outbox_failed(&claimed[1], "550 gone", T0)
        .await
        .unwrap();

    // The failure adds a note: 1 inbound + 3 outbound + 1 note.
    assert_eq!(store.counts().await.unwrap(), (2, 5, 1));
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        counts(&[("failed", 1), ("queued", 1), ("sent", 1)])
    );
}
on_both_backends!(check_counts_and_outbox_counts =>
    sqlite_counts_and_outbox_counts_add_up,
    postgres_counts_and_outbox_counts_add_up);

async fn check_lock_mailbox(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let first = store.lock_mailbox("SUP", "INBOX").await.unwrap();
    assert!(first.is_some());
    let second = store.lock_mailbox("SUP", "INBOX").await.unwrap();
    let other = store.lock_mailbox("SAL", "INBOX").await.unwrap();
    assert!(other.is_some(), "another mailbox is free");
    match backend {
        // One daemon per SQLite database: nothing to exclude.
        Backend::Sqlite => assert!(second.is_some()),
        Backend::Postgres => {
            assert!(second.is_none(), "held by the first reader");
            drop(first);
            // The lock goes with its connection.
            let again = eventually(
                "lock released",
                std::time::Duration::from_secs(5),
                async || store.lock_mailbox("SUP", "INBOX").await.unwrap(),
            )
            .await;
            drop(again);
        }
    }
}
on_both_backends!(check_lock_mailbox =>
    sqlite_lock_mailbox_admits_one_reader_per_mailbox,
    postgres_lock_mailbox_admits_one_reader_per_mailbox);

async fn check_partial_uids(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let mut tx = store.begin().await.unwrap();
    for (uid, truncated) in [(1, false), (2, true), (3, false), (4, true)] {
        let source = RawSource {
            source: "imap",
            department: "SUP",
            folder: Some("INBOX"),
            uidvalidity: Some(9),
            uid: Some(uid),
        };
        tx.store_raw(&source, "sha", 5, b"x", truncated, T0)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut uids = store.partial_uids("SUP", "INBOX", 9).await.unwrap();
    uids.sort_unstable();
    assert_eq!(uids, [2, 4]);
    assert!(
        store
            .partial_uids("SUP", "INBOX", 8)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .partial_uids("SUP", "Archive", 9)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both_backends!(check_partial_uids =>
    sqlite_partial_uids_lists_mail_stored_without_its_content,
    postgres_partial_uids_lists_mail_stored_without_its_content);

async fn check_ticket_by_id_and_lock(backend: Backend) {
    let (_db, store) = fresh(backend).await;
    let t = open_ticket(&store, "SUP", ALICE, T0).await;
    assert_eq!(
        store
            .ticket_by_id(t.ticket_id)
            .await
            .unwrap()
            .unwrap()
            .reference,
        "SUP-1"
    );
    assert!(store.ticket_by_id(t.ticket_id + 1).await.unwrap().is_none());
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.lock_ticket("sup-1").await.unwrap().unwrap().ticket_id,
        t.ticket_id
    );
    assert!(tx.lock_ticket("SUP-2").await.unwrap().is_none());
    tx.commit().await.unwrap();
}
on_both_backends!(check_ticket_by_id_and_lock =>
    sqlite_ticket_by_id_and_lock_ticket_find_the_ticket,
    postgres_ticket_by_id_and_lock_ticket_find_the_ticket);

async fn check_concurrent_first_open(backend: Backend) {
    // Regression: the daemon and a CLI command starting together on a
    // fresh SQLite file both applied the first migration; one failed.
    for _ in 0..5 {
        let db = TestDb::new(backend).await;
        let (a, b, c) = tokio::join!(
            Store::open(&db.url, 2),
            Store::open(&db.url, 2),
            Store::open(&db.url, 2)
        );
        for s in [a, b, c] {
            s.unwrap().close().await;
        }
    }
}
on_both_backends!(check_concurrent_first_open =>
    sqlite_processes_opening_a_fresh_database_together_all_succeed,
    postgres_processes_opening_a_fresh_database_together_all_succeed);
