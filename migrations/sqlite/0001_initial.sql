-- Foundation schema (SQLite dialect). Times are Unix milliseconds (UTC).
-- The PostgreSQL twin in ../postgres/0001_initial.sql must stay identical
-- in tables, columns and meaning.

create table department_counter (
    department  text primary key,
    last_number integer not null
);

create table ticket (
    ticket_id        integer primary key autoincrement,
    ref              text not null unique,
    department       text not null,
    status           text not null check (status in ('open', 'pending', 'closed')),
    subject          text not null,
    customer_email   text not null,
    customer_name    text,
    assignee         text,
    linked_ticket_id integer references ticket (ticket_id),
    created_at       integer not null,
    updated_at       integer not null,
    closed_at        integer
);
create index ticket_status_department on ticket (status, department);
create index ticket_customer on ticket (customer_email);

-- Everyone besides the customer who may thread into a ticket by its subject
-- tag: people the customer copied.
create table participant (
    ticket_id integer not null references ticket (ticket_id),
    email     text not null,
    primary key (ticket_id, email)
);

-- Every inbound mail exactly as received, written before it is parsed.
create table raw_message (
    raw_message_id integer primary key autoincrement,
    source         text not null,          -- imap | pipe
    department     text not null,
    folder         text,                   -- IMAP folder
    uidvalidity    integer,
    uid            integer,
    sha256         text not null,
    size           integer not null,       -- size on the server
    truncated      integer not null default 0,
    attempts       integer not null default 1,
    state          text not null check (state in ('received', 'stored', 'duplicate')),
    last_error     text,                   -- why the last attempt failed (not a crash)
    received_at    integer not null,
    -- Large values last: SQLite keeps the columns after a large value on
    -- overflow pages, which every read of them would then walk.
    data           blob not null          -- headers only when truncated
);
create unique index raw_message_imap on raw_message (department, folder, uidvalidity, uid);
create index raw_message_sha256 on raw_message (sha256);

create table message (
    message_id          integer primary key autoincrement,
    ticket_id           integer not null references ticket (ticket_id),
    raw_message_id      integer references raw_message (raw_message_id),
    direction           text not null check (direction in ('in', 'out')),
    kind                text not null,
    class_reason        text,
    thread_signal       text,
    author              text,
    from_email          text not null default '',
    from_name           text,
    to_list             text not null default '',
    cc_list             text not null default '',
    subject             text not null default '',
    internet_message_id text,
    in_reply_to         text,
    references_list     text,
    problems            text,
    created_at          integer not null,
    body_text           text not null default ''    -- large values last
);
create index message_internet_message_id on message (internet_message_id);
create index message_ticket on message (ticket_id, message_id);
create index message_raw_message on message (raw_message_id);

create table attachment (
    attachment_id integer primary key autoincrement,
    message_id    integer not null references message (message_id),
    filename      text,
    content_type  text not null,
    size          integer not null,
    content       blob not null
);
create index attachment_message on attachment (message_id);

-- Outgoing mail, written in the transaction of the event that causes it and
-- delivered by the sender task; `data` is the complete RFC 5322 message.
create table outbox (
    outbox_id       integer primary key autoincrement,
    message_id      integer not null references message (message_id),
    ticket_id       integer not null references ticket (ticket_id),
    department      text not null,
    kind            text not null,
    mail_from       text not null,
    recipients      text not null,
    status          text not null check (status in ('queued', 'sent', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at integer not null,
    lease_until     integer,
    last_error      text,
    created_at      integer not null,
    sent_at         integer,
    data            blob not null         -- large values last (see raw_message)
);
create index outbox_due on outbox (status, next_attempt_at);
-- Acknowledgements have one recipient: the per-sender rate limit reads this.
create index outbox_auto_reply on outbox (recipients, created_at) where kind = 'auto_reply';

-- How far each mailbox has been read; advanced in the same transaction as
-- the ticket change the mail caused.
create table mailbox_checkpoint (
    department  text not null,
    folder      text not null,
    uidvalidity integer not null,
    last_uid    integer not null,
    updated_at  integer not null,
    primary key (department, folder)
);

-- Ticket history: status changes, assignment, links.
create table event (
    event_id   integer primary key autoincrement,
    ticket_id  integer not null references ticket (ticket_id),
    kind       text not null,
    actor      text,
    detail     text,
    created_at integer not null
);
create index event_ticket on event (ticket_id, event_id);
