//! Integration tests: the real `pagecore` binary, real sockets, real O_DIRECT files.

mod auth;
mod bad_input;
mod cache;
mod cores;
mod crash;
mod durability;
mod encryption;
mod faults;
mod harness;
mod limits;
mod observability;
mod reads;
mod store;
mod support;
mod tenants;
mod tidy;
mod tls;
