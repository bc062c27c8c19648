//! Layer files, format version 2 (version 1 still read): immutable files of page versions,
//! optionally encrypted. All integers little-endian.
//!
//! Two kinds share one layout. A **delta layer** holds every version of its keys over an LSN
//! range `(lsn_start, lsn_end]` (images and deltas, grouped by key, ordered by LSN). An **image
//! layer** holds one full page per key as of a single LSN (`lsn_start == lsn_end`).
//!
//! ```text
//! [header block 4096][data ...][index ...]     every section starts 4096-aligned
//! ```
//!
//! **Header** (first 4096 bytes; the rest of the block is zero):
//!
//! | off | size | field           | meaning                                                 |
//! |-----|------|-----------------|---------------------------------------------------------|
//! | 0   | 8    | magic           | `b"PCLAYER\0"`                                          |
//! | 8   | 2    | format_version  | 2 written; readers accept `1..=2`; others: corrupt      |
//! | 10  | 1    | kind            | 1 delta, 2 image                                        |
//! | 11  | 5    | reserved        | zero                                                    |
//! | 16  | 16   | tenant_id       |                                                         |
//! | 32  | 16   | timeline_id     |                                                         |
//! | 48  | 8    | lsn_start       | delta: exclusive lower bound; image: the image LSN      |
//! | 56  | 8    | lsn_end         | delta: inclusive upper bound; image: the image LSN      |
//! | 64  | 8    | index_offset    | file offset of the index (4096-aligned)                 |
//! | 72  | 8    | index_len       | bytes of index (unpadded)                               |
//! | 80  | 8    | index_checksum  | xxh3-64 of the index bytes                              |
//! | 88  | 4    | entry_count     | version entries in the index                            |
//! | 92  | 4    | rel_event_count | relation events in the index                            |
//! | 96  | 16   | file_id         | v2: u128 naming the data key in the tenant's key manifest; 0 = plaintext |
//! | 112 | 16   | index_tag       | v2, encrypted: GCM tag of the index                      |
//! | 128 | 8    | header_checksum | xxh3-64 of bytes `0..128` (v1: at offset 96, of `0..96`) |
//!
//! **Data**: each version's payload at the offset its index entry gives. A page image is 8192
//! bytes at a 4096-aligned offset, so one page is one aligned read. A delta payload is the
//! record delta encoding (`patch_count: u16, reserved: u16`, patches; see `wal::record`),
//! packed after the images of the same layer.
//!
//! **Index**: `entry_count` version entries sorted by `(key, lsn)`, then `rel_event_count`
//! relation events sorted by `(rel, lsn)`.
//!
//! | version entry (v2: 68 bytes, v1: 52) | size | meaning                            |
//! |--------------------------|------|------------------------------------------------|
//! | spc, db, rel             | 12   | u32 each                                       |
//! | fork, reserved           | 4    | u8 + 3 zero bytes                              |
//! | block                    | 4    |                                                |
//! | lsn                      | 8    |                                                |
//! | offset                   | 8    | file offset of the payload                     |
//! | len                      | 4    | payload bytes                                  |
//! | flags                    | 4    | bit 0: image (the version initialises the page)|
//! | checksum                 | 8    | xxh3-64 of the payload as stored               |
//! | tag                      | 16   | v2 only: GCM tag of the payload (zero if plaintext) |
//!
//! | relation event (32 bytes) | size | meaning                                |
//! |---------------------------|------|----------------------------------------|
//! | spc, db, rel, fork+pad    | 16   | as above                               |
//! | lsn                       | 8    |                                        |
//! | nblocks                   | 4    | size from this LSN on                  |
//! | flags                     | 4    | bit 0: dropped (nblocks ignored)       |
//!
//! Image layers restate the size of every relation at their LSN as relation events, so older
//! layers can be garbage-collected without losing relation sizes.
//!
//! **Encryption** (v2, `file_id != 0`): every payload is sealed with AES-256-GCM under the file's
//! data key (`crypto::PageSealer`; nonce position = the payload's file offset, associated data
//! = the file id), and so is the index as a whole (position = `index_offset`, its tag in the
//! header). Payload and index checksums are then over the stored ciphertext, so a torn or rotted
//! block is told apart from a modified one without the key. The index being sealed means an
//! attacker can neither read which pages a file holds nor re-point an entry at another
//! payload: an entry's tag and offset come from authenticated bytes. The data key itself is
//! not in the file: it is wrapped in the tenant's key manifest under the file id, so rotating
//! keys never rewrites a layer.
//!
//! A reader verifies the header checksum and the index checksum when it opens a file, and each
//! payload's checksum when it reads it; any mismatch is `Corrupt`, never served. Files are
//! written under a temporary name, synced, renamed and the directory synced, so a visible layer
//! file is whole.

use crypto::{PageOpener, PageSealer, PageTag, TAG_SIZE_BYTES};
use wal::codec::{Reader, Writer};
use wal::{BlockNumber, Fork, Lsn, PageKey, RelTag, TenantId, TimelineId, PAGE_SIZE};
use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: [u8; 8] = *b"PCLAYER\0";
pub const FORMAT_VERSION: u16 = 2;
/// Alignment of sections, images and O_DIRECT I/O.
pub const BLOCK: u64 = 4096;
pub const HEADER_SIZE: usize = 4096;
/// Bytes of a version entry (format 2).
pub const ENTRY_SIZE: usize = 68;
const ENTRY_SIZE_V1: usize = 52;
pub const REL_EVENT_SIZE: usize = 32;
const HEADER_CHECKSUMMED_V1: usize = 96;
const HEADER_CHECKSUMMED: usize = 128;
const FLAG_IMAGE: u32 = 1;
const FLAG_DROPPED: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Delta = 1,
    Image = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerHeader {
    pub kind: LayerKind,
    pub tenant_id: TenantId,
    pub timeline_id: TimelineId,
    pub lsn_start: Lsn,
    pub lsn_end: Lsn,
    pub index_offset: u64,
    pub index_len: u64,
    pub index_checksum: u64,
    pub entry_count: u32,
    pub rel_event_count: u32,
    /// Format version read (always [`FORMAT_VERSION`] when written).
    pub format_version: u16,
    /// The data key's file id when the file is encrypted.
    pub file_id: Option<u128>,
    /// GCM tag of the (sealed) index.
    pub index_tag: [u8; TAG_SIZE_BYTES],
}

/// Where one version lives in a layer file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: PageKey,
    pub lsn: Lsn,
    pub offset: u64,
    pub len: u32,
    /// The version is a full page image.
    pub is_image: bool,
    pub checksum: u64,
    /// GCM tag of the payload in an encrypted file (zero otherwise).
    pub tag: [u8; TAG_SIZE_BYTES],
}

/// A relation's size from `lsn` on; `None` = dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelEvent {
    pub rel: RelTag,
    pub lsn: Lsn,
    pub nblocks: Option<u32>,
}

/// A layer file's header and index, as held in memory while the layer is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerIndex {
    pub header: LayerHeader,
    /// Sorted by `(key, lsn)`.
    pub entries: Vec<IndexEntry>,
    pub rel_events: Vec<RelEvent>,
}

/// Why a layer file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("layer file truncated ({0})")]
    Truncated(&'static str),
    #[error("bad layer magic")]
    BadMagic,
    #[error("unsupported layer format version {0}")]
    UnsupportedVersion(u16),
    #[error("unknown layer kind {0}")]
    UnknownKind(u8),
    #[error("layer header checksum mismatch")]
    HeaderChecksum,
    #[error("layer index checksum mismatch")]
    IndexChecksum,
    #[error("layer index malformed: {0}")]
    BadIndex(&'static str),
    #[error("payload checksum mismatch for {key} at {lsn}")]
    PayloadChecksum { key: PageKey, lsn: Lsn },
    #[error("layer is encrypted and no key was given")]
    KeyMissing,
    #[error("layer index does not authenticate (modified, or the wrong key)")]
    IndexAuthentication,
    #[error("payload for {key} at {lsn} does not authenticate (modified, or the wrong key)")]
    PayloadAuthentication { key: PageKey, lsn: Lsn },
}

impl LayerIndex {
    /// Bytes of memory this index holds (for the per-page metadata metric).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<IndexEntry>()
            + self.rel_events.capacity() * std::mem::size_of::<RelEvent>()
    }

    /// Entries of `key`, in LSN order.
    pub fn versions_of(&self, key: PageKey) -> &[IndexEntry] {
        let start = self.entries.partition_point(|e| e.key < key);
        let end = start + self.entries[start..].partition_point(|e| e.key == key);
        &self.entries[start..end]
    }

    /// The key range `[first, last]` covered, if any.
    pub fn key_range(&self) -> Option<(PageKey, PageKey)> {
        Some((self.entries.first()?.key, self.entries.last()?.key))
    }
}

/// Builds a layer file in memory: payloads are added in `(key, lsn)` order, then [`finish`]
/// appends the index and returns the whole file image (its length a multiple of [`BLOCK`]).
///
/// [`finish`]: LayerWriter::finish
pub struct LayerWriter {
    kind: LayerKind,
    tenant_id: TenantId,
    timeline_id: TimelineId,
    lsn_start: Lsn,
    lsn_end: Lsn,
    images: Vec<u8>,
    deltas: Vec<u8>,
    /// Entries with offsets relative to their region (images or deltas) until `finish`.
    entries: Vec<(IndexEntry, bool)>,
    rel_events: Vec<RelEvent>,
}

impl LayerWriter {
    pub fn new(
        kind: LayerKind,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        lsn_start: Lsn,
        lsn_end: Lsn,
    ) -> Self {
        assert!(lsn_start <= lsn_end, "layer LSN range is inverted");
        LayerWriter {
            kind,
            tenant_id,
            timeline_id,
            lsn_start,
            lsn_end,
            images: Vec::new(),
            deltas: Vec::new(),
            entries: Vec::new(),
            rel_events: Vec::new(),
        }
    }

    fn check_order(&self, key: PageKey, lsn: Lsn) {
        assert!(
            self.entries.last().is_none_or(|(last, _)| (last.key, last.lsn) < (key, lsn)),
            "layer versions must be added in (key, lsn) order"
        );
    }

    pub fn add_image(&mut self, key: PageKey, lsn: Lsn, page: &[u8; PAGE_SIZE]) {
        self.check_order(key, lsn);
        let offset = self.images.len() as u64;
        self.images.extend_from_slice(page);
        let entry = IndexEntry {
            key,
            lsn,
            offset,
            len: PAGE_SIZE as u32,
            is_image: true,
            checksum: xxh3_64(page),
            tag: [0; TAG_SIZE_BYTES],
        };
        self.entries.push((entry, true));
    }

    /// `payload` is the delta encoding (`patch_count`, reserved, patches).
    pub fn add_delta(&mut self, key: PageKey, lsn: Lsn, payload: &[u8]) {
        assert_eq!(self.kind, LayerKind::Delta, "image layers hold images only");
        self.check_order(key, lsn);
        let offset = self.deltas.len() as u64;
        self.deltas.extend_from_slice(payload);
        let len =
            u32::try_from(payload.len()).expect("delta payloads are bounded by MAX_RECORD_SIZE");
        let entry = IndexEntry {
            key,
            lsn,
            offset,
            len,
            is_image: false,
            checksum: xxh3_64(payload),
            tag: [0; TAG_SIZE_BYTES],
        };
        self.entries.push((entry, false));
    }

    pub fn add_rel_event(&mut self, event: RelEvent) {
        assert!(
            self.rel_events.last().is_none_or(|last| (last.rel, last.lsn) < (event.rel, event.lsn)),
            "relation events must be added in (rel, lsn) order"
        );
        self.rel_events.push(event);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.rel_events.is_empty()
    }

    /// The complete file image and its index. With a `sealer` (a fresh one: one data key per
    /// file) every payload and the index are encrypted in the image; the returned index holds
    /// their tags and the checksums of the stored bytes.
    pub fn finish(mut self, mut sealer: Option<&mut PageSealer>) -> (Vec<u8>, LayerIndex) {
        let images_at = HEADER_SIZE as u64;
        let deltas_at = images_at + self.images.len() as u64;
        let index_offset = (deltas_at + self.deltas.len() as u64).div_ceil(BLOCK) * BLOCK;
        if let Some(sealer) = sealer.as_deref_mut() {
            // Seal in increasing file offset (the nonce position): the image region, then
            // the delta region, each in entry order.
            for image_region in [true, false] {
                for (entry, in_images) in self.entries.iter_mut() {
                    if *in_images != image_region {
                        continue;
                    }
                    let (region, base) = if image_region {
                        (&mut self.images, images_at)
                    } else {
                        (&mut self.deltas, deltas_at)
                    };
                    let at = entry.offset as usize;
                    let payload = &mut region[at..at + entry.len as usize];
                    entry.tag = sealer.seal_payload(base + entry.offset, payload).to_bytes();
                    entry.checksum = xxh3_64(payload);
                }
            }
        }
        let entries: Vec<IndexEntry> = self
            .entries
            .into_iter()
            .map(|(mut entry, image_region)| {
                entry.offset += if image_region { images_at } else { deltas_at };
                entry
            })
            .collect();
        let mut index =
            Vec::with_capacity(entries.len() * ENTRY_SIZE + self.rel_events.len() * REL_EVENT_SIZE);
        for entry in &entries {
            encode_entry(entry, &mut index);
        }
        for event in &self.rel_events {
            encode_rel_event(event, &mut index);
        }
        let (file_id, index_tag) = match sealer {
            Some(sealer) => {
                let tag = sealer.seal_payload(index_offset, &mut index);
                (Some(sealer.file_id().0), tag.to_bytes())
            }
            None => (None, [0; TAG_SIZE_BYTES]),
        };
        let header = LayerHeader {
            kind: self.kind,
            tenant_id: self.tenant_id,
            timeline_id: self.timeline_id,
            lsn_start: self.lsn_start,
            lsn_end: self.lsn_end,
            index_offset,
            index_len: index.len() as u64,
            index_checksum: xxh3_64(&index),
            entry_count: u32::try_from(entries.len()).expect("layer entry count fits u32"),
            rel_event_count: u32::try_from(self.rel_events.len()).expect("rel events fit u32"),
            format_version: FORMAT_VERSION,
            file_id,
            index_tag,
        };
        let total = (index_offset + index.len() as u64).div_ceil(BLOCK) * BLOCK;
        let mut file = Vec::with_capacity(total as usize);
        encode_header(&header, &mut file);
        file.extend_from_slice(&self.images);
        file.extend_from_slice(&self.deltas);
        file.resize(index_offset as usize, 0);
        file.extend_from_slice(&index);
        file.resize(total as usize, 0);
        (file, LayerIndex { header, entries, rel_events: self.rel_events })
    }
}

fn encode_header(header: &LayerHeader, out: &mut Vec<u8>) {
    let start = out.len();
    out.put_bytes(&MAGIC);
    out.put_u16(FORMAT_VERSION);
    out.put_u8(header.kind as u8);
    out.put_zeros(5);
    out.put_bytes(&header.tenant_id.0);
    out.put_bytes(&header.timeline_id.0);
    out.put_u64(header.lsn_start.0);
    out.put_u64(header.lsn_end.0);
    out.put_u64(header.index_offset);
    out.put_u64(header.index_len);
    out.put_u64(header.index_checksum);
    out.put_u32(header.entry_count);
    out.put_u32(header.rel_event_count);
    out.put_bytes(&header.file_id.unwrap_or(0).to_le_bytes());
    out.put_bytes(&header.index_tag);
    let checksum = xxh3_64(&out[start..start + HEADER_CHECKSUMMED]);
    out.put_u64(checksum);
    out.resize(start + HEADER_SIZE, 0);
}

fn encode_rel(rel: &RelTag, out: &mut Vec<u8>) {
    out.put_u32(rel.spc_oid);
    out.put_u32(rel.db_oid);
    out.put_u32(rel.rel_number);
    out.put_u8(rel.fork as u8);
    out.put_zeros(3);
}

fn encode_entry(entry: &IndexEntry, out: &mut Vec<u8>) {
    encode_rel(&entry.key.rel, out);
    out.put_u32(entry.key.block.0);
    out.put_u64(entry.lsn.0);
    out.put_u64(entry.offset);
    out.put_u32(entry.len);
    out.put_u32(if entry.is_image { FLAG_IMAGE } else { 0 });
    out.put_u64(entry.checksum);
    out.put_bytes(&entry.tag);
}

fn encode_rel_event(event: &RelEvent, out: &mut Vec<u8>) {
    encode_rel(&event.rel, out);
    out.put_u64(event.lsn.0);
    out.put_u32(event.nblocks.unwrap_or(0));
    out.put_u32(if event.nblocks.is_none() { FLAG_DROPPED } else { 0 });
}

/// Decodes and verifies a header block.
pub fn decode_header(bytes: &[u8]) -> Result<LayerHeader, LayerError> {
    let mut r = Reader::new(bytes);
    let t = |_| LayerError::Truncated("header");
    if r.array::<8>().map_err(t)? != MAGIC {
        return Err(LayerError::BadMagic);
    }
    let version = r.u16().map_err(t)?;
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(LayerError::UnsupportedVersion(version));
    }
    let checksummed_len = if version == 1 { HEADER_CHECKSUMMED_V1 } else { HEADER_CHECKSUMMED };
    let checksummed = bytes.get(..checksummed_len).ok_or(LayerError::Truncated("header"))?;
    let kind = match r.u8().map_err(t)? {
        1 => LayerKind::Delta,
        2 => LayerKind::Image,
        other => return Err(LayerError::UnknownKind(other)),
    };
    r.skip(5).map_err(t)?;
    let mut header = LayerHeader {
        kind,
        tenant_id: TenantId(r.array().map_err(t)?),
        timeline_id: TimelineId(r.array().map_err(t)?),
        lsn_start: Lsn(r.u64().map_err(t)?),
        lsn_end: Lsn(r.u64().map_err(t)?),
        index_offset: r.u64().map_err(t)?,
        index_len: r.u64().map_err(t)?,
        index_checksum: r.u64().map_err(t)?,
        entry_count: r.u32().map_err(t)?,
        rel_event_count: r.u32().map_err(t)?,
        format_version: version,
        file_id: None,
        index_tag: [0; TAG_SIZE_BYTES],
    };
    if version >= 2 {
        header.file_id = Some(u128::from_le_bytes(r.array().map_err(t)?)).filter(|id| *id != 0);
        header.index_tag = r.array().map_err(t)?;
    }
    if r.u64().map_err(t)? != xxh3_64(checksummed) {
        return Err(LayerError::HeaderChecksum);
    }
    let expected_len = u64::from(header.entry_count) * entry_size(version) as u64
        + u64::from(header.rel_event_count) * REL_EVENT_SIZE as u64;
    if header.index_len != expected_len
        || header.index_offset % BLOCK != 0
        || header.lsn_start > header.lsn_end
    {
        return Err(LayerError::BadIndex("header fields are inconsistent"));
    }
    Ok(header)
}

fn entry_size(version: u16) -> usize {
    if version == 1 {
        ENTRY_SIZE_V1
    } else {
        ENTRY_SIZE
    }
}

/// Decodes and verifies the index bytes (`index_len` bytes read from `index_offset`). An
/// encrypted file's index is authenticated and decrypted in place with `opener`, which must be
/// the file's ([`LayerError::KeyMissing`] without one).
pub fn decode_index(
    header: LayerHeader,
    index: &mut [u8],
    opener: Option<&PageOpener>,
) -> Result<LayerIndex, LayerError> {
    let index = index.get_mut(..header.index_len as usize).ok_or(LayerError::Truncated("index"))?;
    if xxh3_64(index) != header.index_checksum {
        return Err(LayerError::IndexChecksum);
    }
    if header.file_id.is_some() {
        let opener = opener.ok_or(LayerError::KeyMissing)?;
        opener
            .open_payload(header.index_offset, index, &PageTag::from_bytes(header.index_tag))
            .map_err(|_| LayerError::IndexAuthentication)?;
    }
    let index = &*index;
    let mut r = Reader::new(index);
    let t = |_| LayerError::Truncated("index");
    let mut entries = Vec::with_capacity(header.entry_count as usize);
    for _ in 0..header.entry_count {
        let key = PageKey { rel: decode_rel(&mut r)?, block: BlockNumber(r.u32().map_err(t)?) };
        let entry = IndexEntry {
            key,
            lsn: Lsn(r.u64().map_err(t)?),
            offset: r.u64().map_err(t)?,
            len: r.u32().map_err(t)?,
            is_image: r.u32().map_err(t)? & FLAG_IMAGE != 0,
            checksum: r.u64().map_err(t)?,
            tag: if header.format_version >= 2 { r.array().map_err(t)? } else { [0; 16] },
        };
        // checked_add: an offset near u64::MAX must not wrap back into the data section
        // (test `entry_end_past_u64_max_is_rejected`, found by the layer_read fuzz target).
        let end = entry.offset.checked_add(u64::from(entry.len));
        let in_data = entry.offset >= HEADER_SIZE as u64
            && end.is_some_and(|end| end <= header.index_offset)
            && (!entry.is_image || (entry.len as usize == PAGE_SIZE && entry.offset % BLOCK == 0));
        if !in_data {
            return Err(LayerError::BadIndex("entry points outside the data section"));
        }
        if entries
            .last()
            .is_some_and(|last: &IndexEntry| (last.key, last.lsn) >= (entry.key, entry.lsn))
        {
            return Err(LayerError::BadIndex("entries out of order"));
        }
        entries.push(entry);
    }
    let mut rel_events = Vec::with_capacity(header.rel_event_count as usize);
    for _ in 0..header.rel_event_count {
        let rel = decode_rel(&mut r)?;
        let lsn = Lsn(r.u64().map_err(t)?);
        let nblocks = r.u32().map_err(t)?;
        let dropped = r.u32().map_err(t)? & FLAG_DROPPED != 0;
        rel_events.push(RelEvent { rel, lsn, nblocks: if dropped { None } else { Some(nblocks) } });
    }
    Ok(LayerIndex { header, entries, rel_events })
}

fn decode_rel(r: &mut Reader<'_>) -> Result<RelTag, LayerError> {
    let t = |_| LayerError::Truncated("index");
    let spc_oid = r.u32().map_err(t)?;
    let db_oid = r.u32().map_err(t)?;
    let rel_number = r.u32().map_err(t)?;
    let fork = Fork::from_u8(r.u8().map_err(t)?).ok_or(LayerError::BadIndex("unknown fork"))?;
    r.skip(3).map_err(t)?;
    Ok(RelTag { spc_oid, db_oid, rel_number, fork })
}

/// Verifies a payload read from disk against its index entry and, in an encrypted file
/// (`opener` is the file's; it must be given exactly when the header has a `file_id`),
/// authenticates and decrypts it in place. On error the payload is never plaintext garbage:
/// it is either unverified stored bytes or still ciphertext.
pub fn verify_payload(
    entry: &IndexEntry,
    payload: &mut [u8],
    opener: Option<&PageOpener>,
) -> Result<(), LayerError> {
    if payload.len() != entry.len as usize || xxh3_64(payload) != entry.checksum {
        return Err(LayerError::PayloadChecksum { key: entry.key, lsn: entry.lsn });
    }
    if let Some(opener) = opener {
        opener
            .open_payload(entry.offset, payload, &PageTag::from_bytes(entry.tag))
            .map_err(|_| LayerError::PayloadAuthentication { key: entry.key, lsn: entry.lsn })?;
    }
    Ok(())
}

/// The aligned byte range `[start, end)` to read to get an entry's payload with O_DIRECT.
pub fn aligned_span(entry: &IndexEntry) -> (u64, u64) {
    let start = entry.offset / BLOCK * BLOCK;
    let end = (entry.offset + u64::from(entry.len)).div_ceil(BLOCK) * BLOCK;
    (start, end)
}

#[cfg(test)]
mod tests;
