//! A file's bytes on their way to a socket: the range to send, cut into
//! windows, and whether the kernel has a window in memory (so an event
//! loop can send it without waiting for a disk).

use std::fs::File;
use std::io;

/// Bodies up to this size are read into memory and sent with their header in
/// one write: one syscall instead of two, and no small trailing segment for
/// Nagle's algorithm to hold back. Larger ones are sent from the file, where
/// drivers can use the kernel's zero-copy path.
pub const INLINE_BODY: u64 = 64 * 1024;

/// [`FileBody::resident`] asks the kernel about one byte in every this many
/// of a window (and its last byte): a page is either in the cache or not,
/// and readahead brings pages in runs far longer than a page. A probe that
/// read every byte would prove more and cost what `sendfile` saves.
pub const PROBE_STRIDE: u64 = 64 * 1024;

/// How much of a body a driver's blocking pool reads at a time when the
/// kernel does not have it in memory ([`FileBody::read_cold`]): a buffer per
/// body in flight, so small enough for thousands of them.
pub const COLD_READ: u64 = 256 * 1024;

/// A byte range of an open file, ready to send.
#[derive(Debug)]
pub struct FileBody {
    /// The file, its position already at `offset`.
    pub file: File,
    /// Where the range starts, for drivers that send with `pread`-style calls.
    pub offset: u64,
    /// How many bytes to send: exactly what the header promised.
    pub len: u64,
    /// For a listing spooled to a temporary file, its share of the
    /// server's budget for listings in flight, held until the body is dropped.
    pub spooled: Option<crate::spool::Spooled>,
}

impl FileBody {
    /// The range cut into windows of at most `size` bytes (as offsets in the
    /// file), for drivers that give each window its own deadline.
    pub fn windows(&self, size: u64) -> impl Iterator<Item = std::ops::Range<u64>> + use<> {
        let (start, end) = (self.offset, self.offset + self.len);
        (start..end).step_by(usize::try_from(size).unwrap_or(usize::MAX).max(1)).map(move |at| at..end.min(at + size))
    }

    /// The error a driver reports when the file yields nothing at
    /// `position` before the promised end: it shrank after its size was
    /// sent. The connection must then close, so the client sees a short body.
    pub fn shrank_at(&self, position: u64) -> std::io::Error {
        FileBody::shrunk(self.offset, self.len, position)
    }

    /// [`FileBody::shrank_at`], for a driver that has handed the file
    /// itself to an operation that owns it (a completion-based runtime).
    pub fn shrunk(offset: u64, len: u64, position: u64) -> std::io::Error {
        let sent = position - offset;
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("file ended after {sent} of {len} bytes"))
    }

    /// Whether the kernel has `window`'s bytes in memory, so that sending
    /// them from an event loop cannot wait for a disk ([`resident`]).
    pub fn resident(&self, window: &std::ops::Range<u64>) -> bool {
        resident(&self.file, window)
    }

    /// Reads the next at most [`COLD_READ`] bytes of the body from `at`, not
    /// past `end`, only as far as the kernel has them in memory: `None`
    /// when it has none of them (or cannot say), for [`FileBody::read_cold`]
    /// on a blocking pool. Never waits for a disk, so an event loop may call
    /// it: the way a body goes where `sendfile` cannot take it (into TLS).
    pub fn read_hot(&self, at: u64, end: u64) -> Option<Vec<u8>> {
        use rustix::io::{Errno, ReadWriteFlags};
        let mut bytes = vec![0; usize::try_from((end - at).min(COLD_READ)).unwrap_or(0)];
        loop {
            match rustix::io::preadv2(&self.file, &mut [io::IoSliceMut::new(&mut bytes)], at, ReadWriteFlags::NOWAIT) {
                Err(Errno::INTR) => continue,
                // Past the end (it shrank), or nothing in memory: the
                // blocking read finds out which, and says so.
                Ok(0) | Err(_) => return None,
                Ok(read) => {
                    bytes.truncate(read);
                    return Some(bytes);
                }
            }
        }
    }

    /// Reads the next at most [`COLD_READ`] bytes of the body from `at`, not
    /// past `end`, waiting for the disk if it must: a driver runs this on
    /// its blocking pool for a window that is not [`resident`](FileBody::resident),
    /// and sends what it returns. Fails if the file ends first (it shrank).
    pub fn read_cold(&self, at: u64, end: u64) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0; usize::try_from((end - at).min(COLD_READ)).unwrap_or(0)];
        let read = loop {
            match self.file.read_at(&mut bytes, at) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                read => break read?,
            }
        };
        if read == 0 && !bytes.is_empty() {
            return Err(self.shrank_at(at));
        }
        bytes.truncate(read);
        Ok(bytes)
    }
}

/// Whether the kernel has bytes `window` of `file` in memory, so that
/// sending them from an event loop cannot wait for a disk. Never blocks:
/// each probe is a one-byte `preadv2(RWF_NOWAIT)`, which fails rather than
/// wait, every [`PROBE_STRIDE`] bytes and at the last byte. `false` on a
/// file system without `RWF_NOWAIT` (FUSE, some network mounts), so that
/// its bodies always take the pool. Reading the pages is `sendfile`'s own
/// work; what this adds is a syscall per 64 KiB.
pub fn resident(file: impl std::os::fd::AsFd, window: &std::ops::Range<u64>) -> bool {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut byte = [0u8; 1];
    let mut at = window.start;
    while at < window.end {
        match rustix::io::preadv2(&file, &mut [io::IoSliceMut::new(&mut byte)], at, ReadWriteFlags::NOWAIT) {
            Ok(1) => {}
            Err(Errno::INTR) => continue,
            // Not in memory, not supported, or the file ended early: the
            // pool finds out which.
            _ => return false,
        }
        at = if at + 1 == window.end { window.end } else { (at + PROBE_STRIDE).min(window.end - 1) };
    }
    true
}
