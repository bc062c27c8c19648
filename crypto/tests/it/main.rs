//! Integration tests of the `crypto` crate through its public API only: the hot path allocates
//! nothing (STYLE S29), and the envelope supports rotation and revocation as the server will
//! drive them.

mod alloc_count;
mod envelope;
