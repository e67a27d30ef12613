//! Pure mail handling: no I/O, no database. `parse` reads raw bytes,
//! `thread` and `token` extract threading signals, `classify` tells people
//! from machines, `compose` writes our outgoing mail.

pub mod bounce;
pub mod classify;
pub mod compose;
pub mod html;
pub mod parse;
pub mod quote;
pub mod thread;
pub mod token;
