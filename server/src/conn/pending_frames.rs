//! Cached pages a connection owes its client, sent straight from their cache frames.
//!
//! A cache hit's response header goes into the connection's output buffer `out`; the page
//! itself stays in its cache frame, and an entry `(place, FrameRef)` records that the page's
//! 8 KiB belong at byte `place` of `out` (the header's length already counts them). Writing
//! hands the kernel `out`'s pieces and the frames in one vectored `sendmsg`, so a cached page
//! is copied once, frame → socket buffer, instead of frame → `out` → socket buffer. Measured on
//! the cached 8 × 32 GetPage load: ~20 % less server CPU per reply (bench/RESULTS.md).
//!
//! Invariant: entries never live across anything that can change a cache frame. A
//! [`FrameRef`] resolves only while no frame changed since its hit; the cache changes frames
//! on a miss's insert, on invalidation and purge, and other tasks of the core run only at an
//! await. So before a miss is rebuilt, before any request other than a GetPage, and before
//! any await, the connection either sends the entries (`write_out`) or copies them into `out`
//! ([`PendingFrames::materialize`]). A frame that no longer resolves is therefore a bug in
//! that logic, and stops the core rather than send another page's bytes (S17).
//!
//! The send is a plain non-blocking `sendmsg` on the socket's fd, synchronous, with the cache
//! borrowed for its duration; what the socket does not take is materialized and written by
//! the connection's usual async path. TLS connections cannot use it (they encrypt from a
//! buffer): they materialize before writing.

use crate::conn::OUTPUT_FLUSH_BYTES;
use cache::{BufferCache, FrameRef};
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use wal::PAGE_SIZE;

/// Most frames pending at once. `serve_requests` writes the output once it holds
/// `OUTPUT_FLUSH_BYTES` counting pending frames, so at most this many accumulate; a hit beyond
/// it (not expected) is copied into `out` instead.
const FRAMES_MAX: usize = OUTPUT_FLUSH_BYTES / PAGE_SIZE + 1;

/// `out` pieces around the frames, plus the frames: well below the kernel's `IOV_MAX` (1024).
const IOVECS_MAX: usize = 2 * FRAMES_MAX + 1;
const _: () = assert!(IOVECS_MAX <= 1024);

pub(crate) struct PendingFrames {
    cache: Option<Rc<RefCell<BufferCache>>>,
    /// `(place in out, frame)`, places non-decreasing; capacity `FRAMES_MAX`, never grows.
    frames: Vec<(usize, FrameRef)>,
    /// Scratch for `materialize`; grows to one output's size once, then is reused.
    spill: Vec<u8>,
}

impl PendingFrames {
    /// For a connection whose hits come from `cache` (the core's; `None`: no cache).
    pub(crate) fn new(cache: Option<Rc<RefCell<BufferCache>>>) -> Self {
        PendingFrames { cache, frames: Vec::with_capacity(FRAMES_MAX), spill: Vec::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.frames.len() == FRAMES_MAX
    }

    /// Bytes owed beyond `out`'s own.
    pub(crate) fn bytes(&self) -> usize {
        self.frames.len() * PAGE_SIZE
    }

    /// Records that `frame`'s page follows `out`'s bytes up to `place`.
    pub(crate) fn push(&mut self, place: usize, frame: FrameRef) {
        assert!(!self.is_full(), "pending frames beyond FRAMES_MAX");
        debug_assert!(self.frames.last().is_none_or(|&(last, _)| last <= place));
        self.frames.push((place, frame));
    }

    /// Copies the pending pages into `out` at their places; afterwards `out` holds every byte
    /// owed and nothing is pending.
    pub(crate) fn materialize(&mut self, out: &mut Vec<u8>) {
        if self.frames.is_empty() {
            return;
        }
        let cache = self.cache.as_ref().expect("pending frames come from a cache").borrow();
        self.spill.clear();
        let mut at = 0;
        for &(place, frame) in &self.frames {
            self.spill.extend_from_slice(&out[at..place]);
            self.spill.extend_from_slice(resolve(&cache, frame));
            at = place;
        }
        self.spill.extend_from_slice(&out[at..]);
        std::mem::swap(out, &mut self.spill);
        self.frames.clear();
    }

    /// Sends as much of `out` with the pending pages in place as the socket takes now, without
    /// blocking. Returns the bytes sent (0 if the socket is full); the caller then clears or
    /// materializes.
    pub(crate) fn try_send(&self, socket: RawFd, out: &[u8]) -> io::Result<usize> {
        let cache = self.cache.as_ref().expect("pending frames come from a cache").borrow();
        let empty = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        let mut iovecs = [empty; IOVECS_MAX];
        let mut count = 0;
        let mut at = 0;
        for &(place, frame) in &self.frames {
            add_piece(&mut iovecs, &mut count, &out[at..place]);
            add_piece(&mut iovecs, &mut count, resolve(&cache, frame));
            at = place;
        }
        add_piece(&mut iovecs, &mut count, &out[at..]);
        // SAFETY: an all-zero msghdr is valid (null name and control, no flags).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = iovecs.as_mut_ptr();
        message.msg_iovlen = count;
        // SAFETY: every iovec points into `out` or a cache frame, both borrowed until this
        // function returns, and `sendmsg` only reads them during the call (no MSG_ZEROCOPY).
        let sent =
            unsafe { libc::sendmsg(socket, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        match usize::try_from(sent) {
            Ok(sent) => Ok(sent),
            Err(_) => {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                    _ => Err(error),
                }
            }
        }
    }

    /// Forgets the pending pages once they were sent.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
    }
}

fn resolve(cache: &BufferCache, frame: FrameRef) -> &[u8; PAGE_SIZE] {
    cache.frame(frame).expect("a pending frame changed before it was sent")
}

fn add_piece(iovecs: &mut [libc::iovec; IOVECS_MAX], count: &mut usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    iovecs[*count] =
        libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    *count += 1;
}
