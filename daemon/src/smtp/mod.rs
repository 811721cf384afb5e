//! SMTP: the server side of RFC 5321 for inbound mail (port 25) and
//! submission (RFC 6409, ports 587 and 465).
//!
//! `session` is the protocol core, free of I/O; `data` receives message
//! content; `trace` writes the headers added on acceptance; `sasl` decodes
//! AUTH exchanges. The tokio driver lives in `crate::server::smtp`.

pub mod data;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod trace;

pub use reply::Reply;
pub use session::*;

#[cfg(test)]
mod session_tests;
