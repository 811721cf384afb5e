//! Roost: one process that is a whole mail server.
//!
//! ```text
//!   TCP listeners (25, 587, 465)        control socket (CLI)
//!        │  thin tokio drivers (server)         │ (ctl)
//!        ▼                                      ▼
//!   smtp::ServerConn  (sans-IO)            admin operations
//!        │ events: authenticate, check recipient, deliver
//!        ▼
//!   delivery (recipient resolution, trace headers)
//!        │
//!        ▼
//!   store (one redb file; group-commit writer thread)
//! ```
//!
//! Protocol cores never touch sockets or clocks: the drivers feed them bytes
//! and the current time and carry out the events they emit.

pub mod address;
pub mod auth;
pub mod config;
pub mod ctl;
pub mod delivery;
pub mod logging;
pub mod server;
pub mod smtp;
pub mod store;
pub mod tls;
