//! Page versions indexed by `(PageKey, Lsn)`.
//!
//! Today this crate holds [`index::TimelineIndex`], the in-memory index of every version a
//! timeline has ingested, from which `GetPage@LSN` is answered by native redo. The per-core
//! buffer cache of materialised versions arrives with its own issue. Like `wal`, this crate does
//! no I/O, spawns no threads and reads no clock.

pub mod index;
pub mod layer;

pub use index::{Error, IndexStats, TimelineIndex};
