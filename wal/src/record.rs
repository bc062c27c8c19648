//! WAL records: `{lsn, key, body}`, and their byte encoding, format version 1.
//!
//! The same encoding is used inside WAL segments (wrapped in the segment frame of
//! [`crate::segment`]) and on the wire in `AppendWal` (see `PROTOCOL.md`). The container always
//! says how long a record is; the decoder must consume exactly that many bytes.
//!
//! All integers little-endian.
//!
//! | off | size | field       | meaning                                                  |
//! |-----|------|-------------|----------------------------------------------------------|
//! | 0   | 8    | lsn         | LSN of the record; > 0; strictly increasing per timeline |
//! | 8   | 4    | spc_oid     | tablespace oid                                           |
//! | 12  | 4    | db_oid      | database oid                                             |
//! | 16  | 4    | rel_number  | relation file number                                     |
//! | 20  | 1    | fork        | 0 main, 1 fsm, 2 vm, 3 init                              |
//! | 21  | 1    | kind        | 1 image, 2 delta, 3 rel_size, 4 rel_drop                 |
//! | 22  | 2    | reserved    | written 0, ignored                                       |
//! | 24  | 4    | block       | block number (0 for rel_size and rel_drop)               |
//! | 28  | ...  | payload     | by kind, below                                           |
//!
//! Payloads:
//! - **image** (1): exactly 8192 bytes, the full page.
//! - **delta** (2): `patch_count: u16`, `reserved: u16`, then `patch_count` patches, each
//!   `offset: u16`, `len: u16`, `len` bytes. Each patch overwrites bytes `offset..offset+len` of
//!   the previous version of the page; `offset + len <= 8192`; at most [`MAX_PATCHES`] patches.
//!   A delta with no earlier image applies to an all-zero page.
//! - **rel_size** (3): `nblocks: u32`, the relation's new size in blocks (extend or truncate).
//! - **rel_drop** (4): empty. The relation no longer exists from this LSN on.
//!
//! A decoder rejects: unknown kind or fork, a payload of the wrong length, a patch past the page
//! end, LSN 0. It never panics, whatever the bytes.

use crate::codec::{Reader, Truncated, Writer};
use crate::types::{BlockNumber, Fork, Lsn, PageKey, RelTag, PAGE_SIZE};

/// Bytes before the payload.
pub const RECORD_HEADER_SIZE: usize = 28;
/// Most patches one delta may carry.
pub const MAX_PATCHES: usize = 1024;
/// Largest encoded record (header + payload). Bounds every buffer that holds one record.
pub const MAX_RECORD_SIZE: usize = 16 * 1024;

const KIND_IMAGE: u8 = 1;
const KIND_DELTA: u8 = 2;
const KIND_REL_SIZE: u8 = 3;
const KIND_REL_DROP: u8 = 4;

/// One WAL record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    pub lsn: Lsn,
    pub key: PageKey,
    pub body: RecordBody,
}

/// What a record does to its page or relation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RecordBody {
    /// A full page image.
    Image(Box<[u8; PAGE_SIZE]>),
    /// Patches applied to the previous version.
    Delta(Delta),
    /// The relation's size in blocks changes to this (extension or truncation).
    RelSize(u32),
    /// The relation is dropped.
    RelDrop,
}

/// A validated, encoded list of patches (the delta payload without its 4-byte count header).
///
/// Invariant: `patch_count` patches, each within the page, encoded back to back in `bytes`.
#[derive(Clone, PartialEq, Eq)]
pub struct Delta {
    patch_count: u16,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Delta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delta({} patches, {} bytes)", self.patch_count, self.bytes.len())
    }
}

/// Why a record could not be decoded or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("unknown fork {0}")]
    UnknownFork(u8),
    #[error("record LSN is 0")]
    ZeroLsn,
    #[error("patch at offset {offset} length {len} runs past the page end")]
    PatchOutOfPage { offset: u16, len: u16 },
    #[error("too many patches ({0})")]
    TooManyPatches(usize),
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    #[error("record larger than {MAX_RECORD_SIZE} bytes")]
    TooLarge,
}

impl From<Truncated> for RecordError {
    fn from(_: Truncated) -> Self {
        RecordError::Truncated
    }
}

impl Delta {
    /// Builds a delta from `(offset, bytes)` patches, checking each lies within the page.
    pub fn from_patches<'a>(
        patches: impl IntoIterator<Item = (u16, &'a [u8])>,
    ) -> Result<Delta, RecordError> {
        let mut bytes = Vec::new();
        let mut count = 0usize;
        for (offset, data) in patches {
            let len = u16::try_from(data.len())
                .map_err(|_| RecordError::PatchOutOfPage { offset, len: u16::MAX })?;
            check_patch(offset, len)?;
            count += 1;
            if count > MAX_PATCHES {
                return Err(RecordError::TooManyPatches(count));
            }
            bytes.put_u16(offset);
            bytes.put_u16(len);
            bytes.put_bytes(data);
        }
        if RECORD_HEADER_SIZE + 4 + bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge);
        }
        let patch_count = u16::try_from(count).map_err(|_| RecordError::TooManyPatches(count))?;
        Ok(Delta { patch_count, bytes })
    }

    pub fn patch_count(&self) -> usize {
        usize::from(self.patch_count)
    }

    /// Encoded size of the patch list in bytes (memory accounting).
    pub fn encoded_size(&self) -> usize {
        self.bytes.len()
    }

    /// The patches in order, as `(offset, bytes)`.
    pub fn patches(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let mut reader = Reader::new(&self.bytes);
        std::iter::from_fn(move || {
            // The invariant (validated at construction) makes these reads infallible; on a
            // violated invariant the iterator ends early rather than panicking.
            let offset = reader.u16().ok()?;
            let len = reader.u16().ok()?;
            let data = reader.take(usize::from(len)).ok()?;
            Some((usize::from(offset), data))
        })
    }

    /// Appends the payload encoding (`patch_count`, reserved, patches), as in a record.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        out.put_u16(self.patch_count);
        out.put_zeros(2);
        out.put_bytes(&self.bytes);
    }

    /// Decodes a payload written by [`Delta::encode_payload`]; it must be exactly that long.
    pub fn decode_payload(bytes: &[u8]) -> Result<Delta, RecordError> {
        let mut reader = Reader::new(bytes);
        let delta = decode_delta(&mut reader)?;
        match reader.remaining() {
            0 => Ok(delta),
            extra => Err(RecordError::TrailingBytes(extra)),
        }
    }

    /// Applies the patches to `page` in order (native redo).
    pub fn apply(&self, page: &mut [u8; PAGE_SIZE]) {
        for (offset, data) in self.patches() {
            page[offset..offset + data.len()].copy_from_slice(data);
        }
    }
}

fn check_patch(offset: u16, len: u16) -> Result<(), RecordError> {
    if usize::from(offset) + usize::from(len) > PAGE_SIZE {
        return Err(RecordError::PatchOutOfPage { offset, len });
    }
    Ok(())
}

impl Record {
    /// Appends the encoding of this record to `out`; returns the number of bytes written.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.put_u64(self.lsn.0);
        out.put_u32(self.key.rel.spc_oid);
        out.put_u32(self.key.rel.db_oid);
        out.put_u32(self.key.rel.rel_number);
        out.put_u8(self.key.rel.fork as u8);
        let kind = match &self.body {
            RecordBody::Image(_) => KIND_IMAGE,
            RecordBody::Delta(_) => KIND_DELTA,
            RecordBody::RelSize(_) => KIND_REL_SIZE,
            RecordBody::RelDrop => KIND_REL_DROP,
        };
        out.put_u8(kind);
        out.put_zeros(2);
        out.put_u32(self.key.block.0);
        match &self.body {
            RecordBody::Image(page) => out.put_bytes(&page[..]),
            RecordBody::Delta(delta) => delta.encode_payload(out),
            RecordBody::RelSize(nblocks) => out.put_u32(*nblocks),
            RecordBody::RelDrop => {}
        }
        out.len() - start
    }

    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        RECORD_HEADER_SIZE
            + match &self.body {
                RecordBody::Image(_) => PAGE_SIZE,
                RecordBody::Delta(delta) => 4 + delta.bytes.len(),
                RecordBody::RelSize(_) => 4,
                RecordBody::RelDrop => 0,
            }
    }

    /// Decodes exactly one record occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge);
        }
        let mut reader = Reader::new(bytes);
        let lsn = Lsn(reader.u64()?);
        if lsn == Lsn::INVALID {
            return Err(RecordError::ZeroLsn);
        }
        let spc_oid = reader.u32()?;
        let db_oid = reader.u32()?;
        let rel_number = reader.u32()?;
        let fork_byte = reader.u8()?;
        let fork = Fork::from_u8(fork_byte).ok_or(RecordError::UnknownFork(fork_byte))?;
        let kind = reader.u8()?;
        reader.skip(2)?;
        let block = BlockNumber(reader.u32()?);
        let body = match kind {
            KIND_IMAGE => RecordBody::Image(Box::new(reader.array::<PAGE_SIZE>()?)),
            KIND_DELTA => RecordBody::Delta(decode_delta(&mut reader)?),
            KIND_REL_SIZE => RecordBody::RelSize(reader.u32()?),
            KIND_REL_DROP => RecordBody::RelDrop,
            other => return Err(RecordError::UnknownKind(other)),
        };
        if reader.remaining() != 0 {
            return Err(RecordError::TrailingBytes(reader.remaining()));
        }
        let rel = RelTag { spc_oid, db_oid, rel_number, fork };
        Ok(Record { lsn, key: PageKey { rel, block }, body })
    }
}

fn decode_delta(reader: &mut Reader<'_>) -> Result<Delta, RecordError> {
    let patch_count = reader.u16()?;
    reader.skip(2)?;
    if usize::from(patch_count) > MAX_PATCHES {
        return Err(RecordError::TooManyPatches(usize::from(patch_count)));
    }
    let start = reader.position();
    let mut patches = reader.clone();
    for _ in 0..patch_count {
        let offset = patches.u16()?;
        let len = patches.u16()?;
        check_patch(offset, len)?;
        patches.skip(usize::from(len))?;
    }
    let used = patches.position() - start;
    let bytes = reader.take(used)?.to_vec();
    Ok(Delta { patch_count, bytes })
}

#[cfg(test)]
mod tests;
