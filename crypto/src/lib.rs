//! Page encryption and key handling (customer-managed keys).
//!
//! Empty on purpose in the foundation: nothing is encrypted yet, and the crate exists so the
//! dependency edges of the workspace (`crypto` depends on nothing internal; `wal`, `cache` and
//! `server` may depend on it) are fixed from the start. The envelope-encryption issue fills it.
