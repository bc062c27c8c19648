//! Wire protocol v1: frames, requests and responses between compute nodes and pagecore.
//!
//! The canonical byte-for-byte description is `PROTOCOL.md` at the top of the repository; this
//! module implements exactly that and does not repeat it. A test decodes the spec's example
//! frames so the two cannot drift apart.
//!
//! Layering (STYLE S15): [`frame`] cuts bytes into frames and is the only place a connection can
//! be declared broken; [`request`] turns a frame into a typed request, and any error there is an
//! in-band `BadRequest` for that request alone; [`response`] encodes answers into a caller-owned
//! output buffer (the server) and decodes them (the client). Decoders never panic on input.

pub mod frame;
pub mod request;
pub mod response;
pub mod status;

pub use frame::{Frame, FrameError, Tag, FRAME_HEADER_SIZE, MAX_FRAME_SIZE};
pub use request::{Hello, Request, RequestError, Role};
pub use response::Response;
pub use status::Status;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Most blocks in one `GetPages` request.
pub const MAX_GET_PAGES_BLOCKS: usize = 64;
/// Most records in one `AppendWal` request.
pub const MAX_APPEND_RECORDS: usize = 1024;
/// Longest auth token in `Hello`.
pub const MAX_TOKEN_SIZE: usize = 4096;
/// Longest error message in a response.
pub const MAX_MESSAGE_SIZE: usize = 1024;

#[cfg(test)]
mod tests;
