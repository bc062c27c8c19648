//! Requests: typed decoding of request frames (server) and their encoding (client).
//! Byte layouts: `PROTOCOL.md`, "Requests".

use super::frame::{begin_frame, finish_frame, Frame, Tag};
use super::{MAX_APPEND_RECORDS, MAX_GET_PAGES_BLOCKS, MAX_TOKEN_SIZE, PROTOCOL_VERSION};
use wal::codec::{Reader, Truncated, Writer};
use wal::{BlockNumber, Fork, Lsn, PageKey, Record, RecordError, RelTag, TenantId, TimelineId};

/// What a connection intends to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Reader = 1,
    Writer = 2,
}

/// The first frame of every connection.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hello<'a> {
    pub protocol_version: u16,
    pub role: Role,
    pub tenant_id: TenantId,
    pub timeline_id: TimelineId,
    pub writer_term: u64,
    pub auth_token: &'a [u8],
}

/// A decoded request; borrowed parts point into the frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request<'a> {
    Hello(Hello<'a>),
    Ping,
    GetPage { key: PageKey, request_lsn: Lsn, not_modified_since: Lsn },
    GetPages { rel: RelTag, lsn: Lsn, blocks: BlockList<'a> },
    RelSize { rel: RelTag, lsn: Lsn },
    AppendWal { records: RecordList<'a> },
}

/// Block numbers of a `GetPages`, validated for count, read lazily.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockList<'a>(&'a [u8]);

impl<'a> BlockList<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = BlockNumber> + 'a {
        self.0.chunks_exact(4).map(|c| BlockNumber(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
    }
}

/// Records of an `AppendWal`, with their framing validated; each record decodes lazily.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RecordList<'a> {
    count: usize,
    bytes: &'a [u8],
}

impl<'a> RecordList<'a> {
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Encoded records, one slice each.
    pub fn raw(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut reader = Reader::new(self.bytes);
        std::iter::from_fn(move || {
            let len = reader.u32().ok()?;
            reader.take(len as usize).ok()
        })
    }
    /// Decodes every record, stopping at the first invalid one.
    pub fn decode(&self) -> Result<Vec<Record>, RecordError> {
        self.raw().map(Record::decode).collect()
    }
}

/// Why a well-framed request was rejected (answered in-band with `BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown request tag {0:#04x}")]
    UnknownTag(u8),
    #[error("request payload truncated")]
    Truncated,
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("unknown fork {0}")]
    UnknownFork(u8),
    #[error("unknown role {0}")]
    UnknownRole(u8),
    #[error("{what} {count} exceeds the maximum {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("flags must be zero")]
    NonZeroFlags,
}

impl From<Truncated> for RequestError {
    fn from(_: Truncated) -> Self {
        RequestError::Truncated
    }
}

impl<'a> Request<'a> {
    /// Decodes the typed request carried by `frame`.
    pub fn decode(frame: &Frame<'a>) -> Result<Request<'a>, RequestError> {
        if frame.flags != 0 {
            return Err(RequestError::NonZeroFlags);
        }
        let tag = Tag::from_u8(frame.tag).ok_or(RequestError::UnknownTag(frame.tag))?;
        let mut reader = Reader::new(frame.payload);
        let request = match tag {
            Tag::Hello => Request::Hello(decode_hello(&mut reader)?),
            Tag::Ping => Request::Ping,
            Tag::GetPage => {
                let rel = decode_rel(&mut reader)?;
                let block = BlockNumber(reader.u32()?);
                let request_lsn = Lsn(reader.u64()?);
                let not_modified_since = Lsn(reader.u64()?);
                Request::GetPage { key: PageKey { rel, block }, request_lsn, not_modified_since }
            }
            Tag::GetPages => {
                let rel = decode_rel(&mut reader)?;
                let lsn = Lsn(reader.u64()?);
                let count = usize::from(reader.u16()?);
                reader.skip(2)?;
                check_max("GetPages block count", count, MAX_GET_PAGES_BLOCKS)?;
                Request::GetPages { rel, lsn, blocks: BlockList(reader.take(count * 4)?) }
            }
            Tag::RelSize => {
                let rel = decode_rel(&mut reader)?;
                Request::RelSize { rel, lsn: Lsn(reader.u64()?) }
            }
            Tag::AppendWal => Request::AppendWal { records: decode_records(&mut reader)? },
        };
        match reader.remaining() {
            0 => Ok(request),
            extra => Err(RequestError::TrailingBytes(extra)),
        }
    }

    /// Appends the frame for this request to `out`.
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        let tag = match self {
            Request::Hello(_) => Tag::Hello,
            Request::Ping => Tag::Ping,
            Request::GetPage { .. } => Tag::GetPage,
            Request::GetPages { .. } => Tag::GetPages,
            Request::RelSize { .. } => Tag::RelSize,
            Request::AppendWal { .. } => Tag::AppendWal,
        };
        let start = begin_frame(out, tag as u8, request_id);
        match self {
            Request::Hello(hello) => encode_hello(hello, out),
            Request::Ping => {}
            Request::GetPage { key, request_lsn, not_modified_since } => {
                encode_rel(&key.rel, out);
                out.put_u32(key.block.0);
                out.put_u64(request_lsn.0);
                out.put_u64(not_modified_since.0);
            }
            Request::GetPages { rel, lsn, blocks } => {
                encode_rel(rel, out);
                out.put_u64(lsn.0);
                out.put_u16(u16::try_from(blocks.len()).expect("GetPages block count fits u16"));
                out.put_zeros(2);
                out.put_bytes(blocks.0);
            }
            Request::RelSize { rel, lsn } => {
                encode_rel(rel, out);
                out.put_u64(lsn.0);
            }
            Request::AppendWal { records } => {
                out.put_u32(u32::try_from(records.count).expect("record count fits u32"));
                out.put_bytes(records.bytes);
            }
        }
        finish_frame(out, start);
    }
}

/// Builds the block list of a `GetPages` request in `storage` (4 bytes per block).
pub fn block_list<'a>(blocks: &[BlockNumber], storage: &'a mut Vec<u8>) -> BlockList<'a> {
    storage.clear();
    for block in blocks {
        storage.put_u32(block.0);
    }
    BlockList(storage)
}

/// Encodes records for an `AppendWal` into `storage`.
pub fn record_list<'a>(records: &[Record], storage: &'a mut Vec<u8>) -> RecordList<'a> {
    storage.clear();
    for record in records {
        let len = u32::try_from(record.encoded_size()).expect("record size bounded");
        storage.put_u32(len);
        record.encode_into(storage);
    }
    RecordList { count: records.len(), bytes: storage }
}

fn check_max(what: &'static str, count: usize, max: usize) -> Result<(), RequestError> {
    if count > max {
        return Err(RequestError::TooMany { what, count, max });
    }
    Ok(())
}

fn decode_hello<'a>(reader: &mut Reader<'a>) -> Result<Hello<'a>, RequestError> {
    let protocol_version = reader.u16()?;
    let role = match reader.u8()? {
        1 => Role::Reader,
        2 => Role::Writer,
        other => return Err(RequestError::UnknownRole(other)),
    };
    reader.skip(1)?;
    let tenant_id = TenantId(reader.array()?);
    let timeline_id = TimelineId(reader.array()?);
    let writer_term = reader.u64()?;
    let token_len = usize::from(reader.u16()?);
    check_max("auth token length", token_len, MAX_TOKEN_SIZE)?;
    let auth_token = reader.take(token_len)?;
    Ok(Hello { protocol_version, role, tenant_id, timeline_id, writer_term, auth_token })
}

fn encode_hello(hello: &Hello<'_>, out: &mut Vec<u8>) {
    out.put_u16(hello.protocol_version);
    out.put_u8(hello.role as u8);
    out.put_u8(0);
    out.put_bytes(&hello.tenant_id.0);
    out.put_bytes(&hello.timeline_id.0);
    out.put_u64(hello.writer_term);
    out.put_u16(u16::try_from(hello.auth_token.len()).expect("token length checked by caller"));
    out.put_bytes(hello.auth_token);
}

fn decode_rel(reader: &mut Reader<'_>) -> Result<RelTag, RequestError> {
    let spc_oid = reader.u32()?;
    let db_oid = reader.u32()?;
    let rel_number = reader.u32()?;
    let fork_byte = reader.u8()?;
    let fork = Fork::from_u8(fork_byte).ok_or(RequestError::UnknownFork(fork_byte))?;
    reader.skip(3)?;
    Ok(RelTag { spc_oid, db_oid, rel_number, fork })
}

pub(crate) fn encode_rel(rel: &RelTag, out: &mut Vec<u8>) {
    out.put_u32(rel.spc_oid);
    out.put_u32(rel.db_oid);
    out.put_u32(rel.rel_number);
    out.put_u8(rel.fork as u8);
    out.put_zeros(3);
}

fn decode_records<'a>(reader: &mut Reader<'a>) -> Result<RecordList<'a>, RequestError> {
    let count = reader.u32()? as usize;
    check_max("AppendWal record count", count, MAX_APPEND_RECORDS)?;
    let start = reader.clone();
    for _ in 0..count {
        let len = reader.u32()? as usize;
        reader.skip(len)?;
    }
    let used = reader.position() - start.position();
    let bytes = start.clone().take(used)?;
    Ok(RecordList { count, bytes })
}

impl Hello<'_> {
    /// A hello for this build's protocol version.
    pub fn new(role: Role, tenant_id: TenantId, timeline_id: TimelineId, writer_term: u64) -> Self {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            role,
            tenant_id,
            timeline_id,
            writer_term,
            auth_token: &[],
        }
    }
}
