-- Mail classes, bounces and limits on automatic mail (issue 4). The
-- PostgreSQL twin is ../postgres/0003_classes.sql.

-- Inbound: the class (customer, auto_reply, bounce, list, loop, spam) and
-- the new text without quoted history or signature (what is shown first,
-- what notifications quote, what rules match on). Null on older rows and
-- when it is the whole text (most mail: readers fall back to body_text).
alter table message add column class text;
alter table message add column new_text text;
-- Outbound: when a bounce said this mail was not delivered, and what it
-- said ("5.1.1 failed: <diagnostic>"). A delay notice fills only the detail.
alter table message add column bounced_at integer;
alter table message add column bounce_detail text;

-- Hard bounces per address: enough of them within the window stop
-- automatic mail to it until suppressed_until.
create table address_bounce (
    email            text primary key,
    hard_bounces     integer not null,
    first_at         integer not null,
    last_at          integer not null,
    suppressed_until integer
);

-- Counters for operators, e.g. automatic mail held back by a rate limit.
create table counter (
    name  text primary key,
    value integer not null
);

-- The per-ticket limit on automatic mail reads this.
create index outbox_ticket on outbox (ticket_id, created_at);
