//! Bounds-checked little-endian reading and writing of byte formats.
//!
//! Every decoder in pagecore (WAL records, segment headers, wire frames) reads through
//! [`Reader`], which returns [`Truncated`] instead of panicking or over-reading, so arbitrary
//! bytes from a socket or a disk can only produce an error. Writers append to a `Vec<u8>` that
//! the caller owns and reuses.

/// Input ended before the field being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// Cursor over a byte slice. Reads are little-endian and bounds-checked.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], Truncated> {
        let end = self.position.checked_add(count).ok_or(Truncated)?;
        let slice = self.bytes.get(self.position..end).ok_or(Truncated)?;
        self.position = end;
        Ok(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Skips `count` reserved bytes. They are not checked: readers of a newer minor revision
    /// may find them used.
    pub fn skip(&mut self, count: usize) -> Result<(), Truncated> {
        self.take(count).map(|_| ())
    }

    /// The unread rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.position..).unwrap_or(&[]);
        self.position = self.bytes.len();
        rest
    }
}

/// Little-endian appends to a caller-owned buffer.
pub trait Writer {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_bytes(&mut self, bytes: &[u8]);
    /// Reserved or padding bytes: always written as zero.
    fn put_zeros(&mut self, count: usize);
}

impl Writer for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }
    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_zeros(&mut self, count: usize) {
        self.resize(self.len() + count, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_end() {
        let mut out = Vec::new();
        out.put_u16(0x0102);
        out.put_u32(0x0304_0506);
        out.put_u64(7);
        out.put_zeros(2);
        let mut reader = Reader::new(&out);
        assert_eq!(reader.u16(), Ok(0x0102));
        assert_eq!(reader.u32(), Ok(0x0304_0506));
        assert_eq!(reader.u64(), Ok(7));
        assert_eq!(reader.remaining(), 2);
        assert_eq!(reader.u32(), Err(Truncated));
        assert_eq!(reader.take(usize::MAX), Err(Truncated));
        assert_eq!(reader.take(2), Ok(&[0u8, 0][..]));
    }
}
