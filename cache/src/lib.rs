//! Page versions indexed by `(PageKey, Lsn)`: the in-memory layer, relation size history, and
//! the layer file format. Like `wal`, this crate does no I/O, spawns no threads and reads no
//! clock: the server reads and writes the bytes.
//!
//! - [`memory_layer`]: versions ingested from the WAL and not yet in a layer file; native redo.
//! - [`rels`]: relation sizes, truncations and drops over LSNs.
//! - [`layer`]: the immutable layer file format (delta and image layers), with its index.
//! - [`buffer`]: the per-core buffer cache of materialised page versions, with eviction.

pub mod buffer;
pub mod layer;
pub mod memory_layer;
pub mod rels;

pub use buffer::{BufferCache, CacheKey, CacheStats, FrameRef, PolicyKind};
pub use memory_layer::{redo, InMemoryLayer, LayerStats, PageBody, Version};
pub use rels::RelSizes;
