//! The WAL service's formats and decisions: domain types, records, segments, recovery.
//!
//! This crate does no I/O: it never opens files, reads the clock or spawns threads (STYLE S3).
//! The server reads and writes segment files with O_DIRECT and hands byte images here to be
//! encoded, scanned and judged. What it owns:
//! - [`types`]: `Lsn`, `RelTag`, `BlockNumber`, `PageKey`, `TenantId`, `TimelineId`.
//! - [`record`]: the record encoding (also used on the wire) and native redo of deltas.
//! - [`segment`]: the segment file format and the frame scanner.
//! - [`recovery`]: the decision table for damaged or partial segments.
//! - [`codec`]: bounds-checked little-endian reading and writing.

pub mod codec;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod types;

pub use record::{Delta, Record, RecordBody, RecordError};
pub use types::{BlockNumber, Fork, Lsn, PageKey, RelTag, TenantId, TimelineId, PAGE_SIZE};
