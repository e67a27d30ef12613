-- Routing rules (issue 3). The SQLite twin is ../sqlite/0002_routing.sql.

-- What the rules decided for a ticket. `tags` is space-separated;
-- `disposition` is null for normal tickets, 'spam' or 'rejected' for mail a
-- rule kept out of the work queue (stored, hidden from default listings).
alter table ticket add column priority text not null default 'medium';
alter table ticket add column category text;
alter table ticket add column tags text not null default '';
alter table ticket add column disposition text;
create index ticket_assignee on ticket (assignee, status);

-- Round-robin position per team, shared by every daemon on the database.
create table team_cursor (
    team    text primary key,
    counter bigint not null
);
