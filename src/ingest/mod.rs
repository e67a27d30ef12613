//! Where mail comes in: one IMAP task per department mailbox, or one
//! message piped in by an MTA (`helpdesk ingest`). Both hand raw bytes to
//! `pipeline`, which decides everything else.

pub mod imap;
