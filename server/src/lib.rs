//! pagecore's server: cores, O_DIRECT WAL I/O, the wire protocol, the admin API, and the Rust
//! client library.
//!
//! Public surface: [`proto`] (the wire codec), [`client`] (blocking protocol client),
//! [`admin_client`] (admin HTTP client), [`auth`] (tenant tokens), [`config`] and
//! [`serve::run`]. Everything else is crate-private. See `ARCHITECTURE.md` for the codemap and invariants.

pub mod admin_client;
pub mod auth;
pub mod client;
pub mod config;
pub mod proto;
pub mod serve;
pub mod tls;

mod admin;
mod conn;
mod core;
mod hex;
mod keys;
mod layer_io;
mod limits;
mod metrics;
mod read;
mod runtime;
#[cfg(test)]
mod sim;
mod store;
mod timeline;
mod transport;
mod wal_io;
mod watch;
