//! The folder a FERRY/1 server shares, and the replies it gives.
//!
//! Every server turns a parsed [`Request`] into a [`Reply`] the same way, and
//! pipelined requests into a [`Batch`] of writes, so that logic lives here
//! once. It is blocking file-system code with no sockets: `ferry-std` calls
//! [`Root::batch`] directly on its connection thread, `ferry-tokio` inside
//! `spawn_blocking`, `ferry-smol` inside `smol::unblock`.
//!
//! The key decision: every path is opened through a [`cap_std::fs::Dir`] for
//! the root, never through an absolute path. `cap-std` resolves each
//! component itself (with `openat2(RESOLVE_BENEATH)` where the kernel has
//! it), so a symlink or `..` that leads out of the root fails to open rather
//! than depending on string checks made before opening. The protocol core
//! already refuses `..` components; this is the second, stronger wall. An
//! absolute symlink is never followed, even one whose target is inside the
//! root: under `RESOLVE_BENEATH` it names a place from outside, and SPEC.md
//! §5 says so.
//!
//! The second decision: no client can make the server do unbounded work.
//! [`Request::Sum`] and [`Request::List`] are **heavy**: their cost grows
//! with the file or folder, not with the request. The rule every driver
//! follows, each with its own runtime's semaphore:
//!
//! - at most [`heavy_permits`] heavy requests run at once server-wide; the
//!   rest wait for a permit (asynchronously on the async runtimes, so a
//!   flood of SUMs never fills a blocking pool and a GET is still answered);
//! - a heavy request must be answered by its [`Work::deadline`] (the
//!   driver's idle timeout, counted from when the request was read, its
//!   wait for a permit included), or it is answered `ERR TIMEOUT` and the
//!   connection closes;
//! - it stops within one chunk when [`Work::stop`] says the client has left
//!   or the server is shutting down, and the connection closes unanswered;
//! - a SUM of a file unchanged since the last one (same device, inode,
//!   size, modification and change times) is answered from a cache.
//!
//! The third: a GET of a file the kernel already has in memory can be
//! answered without blocking at all ([`Root::batch_cached`]), so the async
//! drivers answer hot files on their event loop and send only the rest to
//! the pool. `openat2(RESOLVE_BENEATH | RESOLVE_CACHED)` resolves the path
//! from the kernel's caches or fails with `EAGAIN` rather than go to disk
//! (and confines it exactly as cap-std does, with the kernel's own
//! `RESOLVE_BENEATH`); an inline body is read with `preadv2(RWF_NOWAIT)`,
//! which fails rather than wait for a page not in the cache. Anything else
//! (a would-block, an error other than "does not exist", a kernel or file
//! system without these flags) falls back to the pool, where cap-std gives
//! the answer: the two paths never disagree on what a client is told. Only
//! file systems whose open and stat are answered from memory take this path
//! at all ([`Root::open`] checks the shared folder's; `RESOLVE_NO_XDEV`
//! sends a path that crosses into another mount to the pool): on FUSE or
//! NFS, opening a file asks a daemon or a server, however warm the caches.
//!
//! The fourth: a large body is sent from the event loop only where the
//! kernel has its pages ([`FileBody::resident`]); a window that is not goes
//! through the pool in reads of [`COLD_READ`] bytes ([`FileBody::read_cold`]),
//! so a slow disk holds up a pool thread, never an event loop.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions, OpenOptionsExt};
use ferry_proto::{Answer, Entry, ErrorCode, Kind, Refusal, Request, WirePath, encode_listing};
use thiserror::Error;

mod batch;

pub use batch::{BATCH_BYTES, BATCH_REQUESTS, Batch, Logged, Part, starts_heavy};

/// How many heavy requests (SUM, LIST) a server runs at once: one per core.
/// Hashing is CPU-bound, so more would only slow each one down, and a
/// bounded number keeps them from taking every thread of a blocking pool.
pub fn heavy_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Whether answering `request` is heavy work, under the limits above.
pub fn is_heavy(request: &Request) -> bool {
    matches!(request, Request::Sum { .. } | Request::List { .. })
}

/// How heavy work is bounded: asked between chunks, so it ends within one
/// chunk of the client leaving, shutdown, or the deadline.
#[derive(Clone, Copy)]
pub struct Work<'a> {
    /// When the answer must be ready; past it, `ERR TIMEOUT`.
    pub deadline: Instant,
    /// The idle timeout the deadline was counted with, for the message.
    pub limit: Duration,
    /// Whether to give up now: the client left, or the server is shutting
    /// down. The connection then closes without an answer.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl std::fmt::Debug for Work<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").field("deadline", &self.deadline).field("limit", &self.limit).finish()
    }
}

impl Work<'_> {
    /// Work that is never stopped, with a day to finish; for tests and tools.
    pub fn unbounded() -> Work<'static> {
        Work {
            deadline: Instant::now() + Duration::from_secs(86_400),
            limit: Duration::from_secs(86_400),
            stop: &|| false,
        }
    }

    /// Checks between chunks of the heavy request about `path`.
    fn check(&self, verb: &str, path: &WirePath) -> Result<(), Halt> {
        if (self.stop)() {
            return Err(Halt::Stopped);
        }
        if Instant::now() >= self.deadline {
            return Err(Halt::Refused(Refusal::new(
                ErrorCode::Timeout,
                format!("{verb} {path} did not finish within {:.1} s; closing", self.limit.as_secs_f64()),
            )));
        }
        Ok(())
    }
}

/// Why a request was not answered as asked.
enum Halt {
    /// With a refusal.
    Refused(Refusal),
    /// Not at all: the connection is to close.
    Stopped,
}

impl From<Refusal> for Halt {
    fn from(refusal: Refusal) -> Self {
        Halt::Refused(refusal)
    }
}

/// How many bytes a SUM hashes between checks of its [`Work`].
const SUM_CHUNK: usize = 1 << 20;

/// How many entries a LIST reads between checks of its [`Work`].
const LIST_CHUNK: usize = 256;

/// How many digests the cache keeps; it starts over when full.
const DIGEST_CACHE: usize = 4096;

/// What identifies a file's contents without reading them: if none of
/// these changed, neither did the bytes (short of deliberate forgery of the
/// times, which needs the file's owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(metadata: &std::fs::Metadata) -> Identity {
        Identity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

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

/// The shared folder could not be opened.
#[derive(Debug, Error)]
#[error("cannot share {}: {source}", path.display())]
pub struct RootError {
    /// The folder that was asked for.
    pub path: PathBuf,
    /// Why it could not be opened.
    #[source]
    pub source: io::Error,
}

/// What a server sends for one request.
#[derive(Debug)]
pub enum Reply {
    /// No answer: heavy work was stopped because the client left or the
    /// server is shutting down. The connection closes.
    Abandon,
    /// A whole answer already in memory (ERR, BYE, LIST, SUM): one write.
    Bytes {
        /// Header and body.
        bytes: Vec<u8>,
        /// Whether the server closes the connection after sending it.
        closes: bool,
    },
    /// An `OK` header, then `body.len` bytes of a file.
    File {
        /// The `OK <n>` line.
        header: Vec<u8>,
        /// The bytes to send after it.
        body: FileBody,
    },
}

/// A byte range of an open file, ready to send.
#[derive(Debug)]
pub struct FileBody {
    /// The file, its position already at `offset`.
    pub file: File,
    /// Where the range starts, for drivers that send with `pread`-style calls.
    pub offset: u64,
    /// How many bytes to send: exactly what the header promised.
    pub len: u64,
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

impl Reply {
    /// The reply to a request the parser refused.
    pub fn refuse(refusal: Refusal) -> Reply {
        let closes = refusal.code.closes_connection();
        let mut bytes = Vec::new();
        Answer::Err(refusal).encode(&mut bytes);
        Reply::Bytes { bytes, closes }
    }

    /// An `OK` answer whose body is in memory.
    fn body(body: &[u8]) -> Reply {
        let mut bytes = Vec::with_capacity(body.len() + 24);
        Answer::Ok { len: body.len() as u64 }.encode(&mut bytes);
        bytes.extend_from_slice(body);
        Reply::Bytes { bytes, closes: false }
    }

    /// Whether the connection ends after this reply.
    pub fn closes(&self) -> bool {
        matches!(self, Reply::Bytes { closes: true, .. } | Reply::Abandon)
    }
}

/// The shared folder.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    path: PathBuf,
    digests: Mutex<HashMap<Identity, [u8; 32]>>,
    /// Whether GETs may be answered without blocking ([`Root::get_cached`]):
    /// the folder is on a file system that answers open and stat from
    /// memory, and the kernel takes `RESOLVE_CACHED`; cleared the first time
    /// it is refused as unknown.
    cached: AtomicBool,
}

impl Root {
    /// Opens `path` as the folder to share.
    pub fn open(path: &Path) -> Result<Root, RootError> {
        let fail = |source| RootError { path: path.to_owned(), source };
        let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(fail)?;
        // Resolve once, for the log line that tells the user what is shared.
        let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        let cached = AtomicBool::new(answers_from_memory(&dir));
        Ok(Root { dir, path, digests: Mutex::default(), cached })
    }

    /// The shared folder, as the server's user named it (canonicalised).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers one request; heavy ones within `work`'s bounds.
    ///
    /// Blocking: it opens, stats, reads directories and hashes files.
    pub fn reply(&self, request: &Request, work: &Work<'_>) -> Reply {
        let result = match request {
            Request::Get { path, offset, length } => self.get(path, *offset, *length).map_err(Halt::from),
            Request::List { path } => self.list(path, work),
            Request::Sum { path } => self.sum(path, work),
            Request::Quit => {
                let mut bytes = Vec::new();
                Answer::Bye.encode(&mut bytes);
                return Reply::Bytes { bytes, closes: true };
            }
        };
        match result {
            Ok(reply) => reply,
            Err(Halt::Refused(refusal)) => Reply::refuse(refusal),
            Err(Halt::Stopped) => Reply::Abandon,
        }
    }

    fn get(&self, path: &WirePath, offset: u64, length: Option<u64>) -> Result<Reply, Refusal> {
        let (mut file, size) = self.open_file(path)?;
        if offset > size {
            return Err(Refusal::new(
                ErrorCode::Range,
                format!("offset {offset} is past the end of {path} ({size} bytes)"),
            ));
        }
        let len = length.map_or(size - offset, |length| length.min(size - offset));
        file.seek(SeekFrom::Start(offset)).map_err(|e| internal(path, &e))?;
        let mut header = Vec::with_capacity(24 + if len <= INLINE_BODY { len as usize } else { 0 });
        Answer::Ok { len }.encode(&mut header);
        if len <= INLINE_BODY {
            let start = header.len();
            header.resize(start + len as usize, 0);
            // Nothing is sent yet, so a file that shrank can still be an ERR.
            file.read_exact(&mut header[start..]).map_err(|e| internal(path, &e))?;
            return Ok(Reply::Bytes { bytes: header, closes: false });
        }
        Ok(Reply::File { header, body: FileBody { file, offset, len } })
    }

    /// The reply to `GET path offset length` if it can be made without
    /// blocking: `None` when any step would wait (or is unsupported, or is an
    /// error cap-std should phrase), for the blocking path to answer.
    pub fn get_cached(&self, path: &WirePath, offset: u64, length: Option<u64>) -> Option<Reply> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::{Errno, ReadWriteFlags};
        if !self.cached.load(Ordering::Relaxed) {
            return None;
        }
        let relative = path.to_relative();
        if relative.as_os_str().is_empty() {
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        // NO_XDEV: a mount inside the root may be one whose open waits
        // (FUSE, NFS); a path into it fails here with EXDEV and goes to the
        // pool, whatever the dentry cache holds.
        let resolve = ResolveFlags::BENEATH | ResolveFlags::CACHED | ResolveFlags::NO_XDEV;
        let fd = match rustix::fs::openat2(&self.dir, &relative, flags, Mode::empty(), resolve) {
            Ok(fd) => fd,
            // Known not to exist (a negative dentry): the same words as the
            // blocking path, from the same function.
            Err(errno @ (Errno::NOENT | Errno::NOTDIR)) => {
                return Some(Reply::refuse(refusal(path, &io::Error::from(errno))));
            }
            Err(Errno::NOSYS | Errno::INVAL) => {
                self.cached.store(false, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None,
        };
        let mut file = File::from(fd);
        let metadata = file.metadata().ok().filter(std::fs::Metadata::is_file)?;
        let size = metadata.len();
        if offset > size {
            return None;
        }
        let len = length.map_or(size - offset, |length| length.min(size - offset));
        let mut header = Vec::with_capacity(24 + if len <= INLINE_BODY { len as usize } else { 0 });
        Answer::Ok { len }.encode(&mut header);
        if len > INLINE_BODY {
            // Positioned for drivers that read rather than send from an
            // offset; seeking does not wait for the disk.
            file.seek(SeekFrom::Start(offset)).ok()?;
            return Some(Reply::File { header, body: FileBody { file, offset, len } });
        }
        let start = header.len();
        header.resize(start + len as usize, 0);
        let mut read = 0;
        while read < len as usize {
            let mut bufs = [io::IoSliceMut::new(&mut header[start + read..])];
            match rustix::io::preadv2(&file, &mut bufs, offset + read as u64, ReadWriteFlags::NOWAIT) {
                Ok(0) => return None,
                Ok(n) => read += n,
                Err(Errno::INTR) => {}
                Err(_) => return None,
            }
        }
        Some(Reply::Bytes { bytes: header, closes: false })
    }

    fn sum(&self, path: &WirePath, work: &Work<'_>) -> Result<Reply, Halt> {
        work.check("SUM", path)?;
        let (mut file, _) = self.open_file(path)?;
        let metadata = file.metadata().map_err(|e| internal(path, &e))?;
        let identity = Identity::of(&metadata);
        let cached = self.digests.lock().unwrap_or_else(|e| e.into_inner()).get(&identity).copied();
        let digest = match cached {
            Some(digest) => digest,
            None => {
                let mut hasher = blake3::Hasher::new();
                let mut chunk = vec![0; SUM_CHUNK];
                loop {
                    work.check("SUM", path)?;
                    match file.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => hasher.update(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(internal(path, &e).into()),
                    };
                }
                let digest = *hasher.finalize().as_bytes();
                // Keep it only if the file did not change while being read.
                if file.metadata().is_ok_and(|after| Identity::of(&after) == identity) {
                    let mut digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
                    if digests.len() >= DIGEST_CACHE {
                        digests.clear();
                    }
                    digests.insert(identity, digest);
                }
                digest
            }
        };
        Ok(Reply::body(blake3::Hash::from_bytes(digest).to_hex().as_bytes()))
    }

    fn list(&self, path: &WirePath, work: &Work<'_>) -> Result<Reply, Halt> {
        work.check("LIST", path)?;
        let relative = path.to_relative();
        let metadata = self.dir.metadata(&relative).map_err(|e| refusal(path, &e))?;
        if !metadata.is_dir() {
            return Err(Refusal::new(ErrorCode::NotADirectory, format!("{path} is not a directory")).into());
        }
        let dir = self.dir.open_dir(&relative).map_err(|e| refusal(path, &e))?;
        let mut entries = Vec::new();
        for (n, entry) in dir.entries().map_err(|e| refusal(path, &e))?.enumerate() {
            if n % LIST_CHUNK == LIST_CHUNK - 1 {
                work.check("LIST", path)?;
            }
            let Ok(entry) = entry else { continue };
            // Names that are not UTF-8 cannot be named in a request; leave them out.
            let Ok(name) = entry.file_name().into_string() else { continue };
            // Resolve from the root, not from `dir`: a symlink may point to a
            // sibling folder and still be inside the root. Entries that lead
            // outside, dangle, or cannot be read are left out.
            let Ok(target) = self.dir.metadata(relative.join(&name)) else { continue };
            if let Some(kind) = kind(&target) {
                entries.push(Entry { kind, size: target.len(), name });
            }
        }
        let mut body = Vec::new();
        encode_listing(entries, &mut body);
        Ok(Reply::body(&body))
    }

    /// Opens a regular file for reading; returns it with its size, taken from
    /// the open handle so that a rename or replace after opening cannot make
    /// the header disagree with the bytes.
    fn open_file(&self, path: &WirePath) -> Result<(File, u64), Refusal> {
        let not_a_file = || Refusal::new(ErrorCode::NotAFile, format!("{path} is not a regular file"));
        // O_NONBLOCK: opening a FIFO must not wait for a writer; on a regular
        // file it changes nothing.
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let file = self.dir.open_with(path.to_relative(), &options).map_err(|e| refusal(path, &e))?;
        let metadata = file.metadata().map_err(|e| internal(path, &e))?;
        if !metadata.is_file() {
            return Err(not_a_file());
        }
        Ok((file.into_std(), metadata.len()))
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

/// Whether `dir` is on a file system known to answer open and stat from
/// memory once its caches are warm: local disks and memory. FUSE, NFS, SMB
/// and the like ask a daemon or a server on every open, and a file system
/// not named here is not assumed to be safe.
fn answers_from_memory(dir: &Dir) -> bool {
    const LOCAL: [u64; 9] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0xCA45_1A4E, // bcachefs
    ];
    rustix::fs::fstatfs(dir).is_ok_and(|stat| LOCAL.contains(&(stat.f_type as u64)))
}

fn kind(metadata: &Metadata) -> Option<Kind> {
    if metadata.is_file() {
        Some(Kind::File)
    } else if metadata.is_dir() {
        Some(Kind::Directory)
    } else {
        None
    }
}

/// Maps a failure to open or inspect `path` to the code SPEC.md §4 gives it.
fn refusal(path: &WirePath, error: &io::Error) -> Refusal {
    use rustix::io::Errno;
    let errno = error.raw_os_error().map(Errno::from_raw_os_error);
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            Refusal::new(ErrorCode::NotFound, format!("{path} does not exist"))
        }
        io::ErrorKind::PermissionDenied if errno.is_some() => {
            Refusal::new(ErrorCode::Forbidden, format!("{path}: permission denied"))
        }
        // cap-std reports an escape from the root as PermissionDenied
        // without an OS error number: `..` past the root, a link that leads
        // out, or an absolute link (never followed, SPEC.md §5).
        io::ErrorKind::PermissionDenied => Refusal::new(
            ErrorCode::Forbidden,
            format!("{path} leads outside the shared folder (or through an absolute link)"),
        ),
        _ if errno == Some(Errno::LOOP) => {
            Refusal::new(ErrorCode::NotFound, format!("{path} does not exist (symlink loop)"))
        }
        _ => internal(path, error),
    }
}

fn internal(path: &WirePath, error: &io::Error) -> Refusal {
    tracing::warn!(%path, %error, "I/O error");
    Refusal::new(ErrorCode::Internal, format!("{path}: {error}"))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    fn request(line: &str) -> Request {
        match ferry_proto::parse_request(format!("{line}\n").as_bytes()) {
            ferry_proto::Parsed::Complete { value, .. } => value.expect("valid request"),
            ferry_proto::Parsed::Incomplete => unreachable!(),
        }
    }

    /// A root with a file, a folder and links in and out, beside an outside file.
    fn fixture() -> (tempfile::TempDir, Root) {
        let top = tempfile::tempdir().expect("tempdir");
        let root = top.path().join("root");
        std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
        std::fs::write(root.join("hello.txt"), b"hello, world").expect("write");
        std::fs::write(root.join("sub/inner.bin"), [7u8; 10]).expect("write");
        std::fs::write(top.path().join("secret"), b"outside").expect("write");
        symlink("../hello.txt", root.join("sub/up-link")).expect("symlink");
        symlink("../secret", root.join("out-file")).expect("symlink");
        symlink(top.path(), root.join("out-dir")).expect("symlink");
        symlink("missing", root.join("dangling")).expect("symlink");
        let shared = Root::open(&root).expect("open root");
        (top, shared)
    }

    fn bytes(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Bytes { bytes, .. } => bytes,
            Reply::Abandon => b"(abandoned)".to_vec(),
            Reply::File { mut header, mut body } => {
                let mut rest = Vec::new();
                (&mut body.file).take(body.len).read_to_end(&mut rest).expect("read");
                header.extend(rest);
                header
            }
        }
    }

    fn answer(root: &Root, line: &str) -> String {
        String::from_utf8_lossy(&bytes(root.reply(&request(line), &Work::unbounded()))).into_owned()
    }

    #[test]
    fn get_whole_and_ranges() {
        let (_top, root) = fixture();
        assert_eq!(answer(&root, "GET hello.txt"), "OK 12\nhello, world");
        assert_eq!(answer(&root, "GET /hello.txt 7"), "OK 5\nworld");
        assert_eq!(answer(&root, "GET hello.txt 7 2"), "OK 2\nwo");
        assert_eq!(answer(&root, "GET hello.txt 7 100"), "OK 5\nworld");
        assert_eq!(answer(&root, "GET hello.txt 12"), "OK 0\n");
        assert!(answer(&root, "GET hello.txt 13").starts_with("ERR RANGE "));
        assert_eq!(answer(&root, "GET sub/up-link"), "OK 12\nhello, world");
    }

    #[test]
    fn large_bodies_come_from_the_file() {
        let (top, root) = fixture();
        let big = vec![3u8; INLINE_BODY as usize + 2];
        std::fs::write(top.path().join("root/big"), &big).expect("write");
        match root.reply(&request("GET big 1"), &Work::unbounded()) {
            Reply::File { header, body } => {
                assert_eq!(header, format!("OK {}\n", INLINE_BODY + 1).as_bytes());
                assert_eq!((body.offset, body.len), (1, INLINE_BODY + 1));
            }
            other => panic!("expected a file body, got {other:?}"),
        }
        assert!(matches!(root.reply(&request("GET big 2"), &Work::unbounded()), Reply::Bytes { .. }));
    }

    #[test]
    fn the_cached_path_agrees_with_the_blocking_one_or_declines() {
        let (top, root) = fixture();
        let big = vec![5u8; INLINE_BODY as usize + 10];
        std::fs::write(top.path().join("root/big"), &big).expect("write");
        let lines = [
            "GET hello.txt",
            "GET hello.txt 7 2",
            "GET /hello.txt 12",
            "GET sub/up-link",
            "GET sub/inner.bin",
            "GET nope.txt",
            "GET sub/nope/x",
            "GET hello.txt/x",
            "GET big 3",
            "GET out-file",
            "GET out-dir/secret",
            "GET dangling",
            "GET sub",
            "GET hello.txt 13",
            "GET /",
        ];
        let mut answered = 0;
        for line in lines {
            let Request::Get { path, offset, length } = request(line) else { unreachable!() };
            // Twice: the first may find the caches cold.
            let cached = root.get_cached(&path, offset, length).or_else(|| root.get_cached(&path, offset, length));
            let Some(cached) = cached else { continue };
            answered += 1;
            assert_eq!(bytes(cached), bytes(root.reply(&request(line), &Work::unbounded())), "{line}");
        }
        assert!(answered >= 6, "the cached path answered only {answered} of the plain GETs");
        for declined in ["GET out-file", "GET out-dir/secret", "GET sub", "GET hello.txt 13", "GET /"] {
            let Request::Get { path, offset, length } = request(declined) else { unreachable!() };
            assert!(root.get_cached(&path, offset, length).is_none(), "{declined} must go to the blocking path");
        }
    }

    #[test]
    fn a_batch_from_the_caches_stops_where_the_blocking_path_must_answer() {
        let (_top, root) = fixture();
        let mut pending = VecDeque::new();
        for line in ["GET hello.txt\n", "GET hello.txt\n", "SUM hello.txt\n", "GET hello.txt\n"] {
            let mut queued = VecDeque::new();
            ferry_proto::parse_pipelined(line.as_bytes(), &mut queued, BATCH_REQUESTS);
            pending.extend(queued);
        }
        root.batch_cached(&mut VecDeque::from(vec![Ok(request("GET hello.txt"))]));
        let batch = root.batch_cached(&mut pending);
        assert_eq!(batch.log.len(), 2);
        assert_eq!(pending.len(), 2, "SUM and what follows it wait for the pool");
    }

    #[test]
    fn a_body_is_sent_in_windows() {
        let body = FileBody { file: tempfile::tempfile().expect("file"), offset: 2, len: 10 };
        assert_eq!(body.windows(4).collect::<Vec<_>>(), [2..6, 6..10, 10..12]);
        assert_eq!(body.windows(100).collect::<Vec<_>>(), vec![2..12]);
        assert_eq!(FileBody { len: 0, ..body }.windows(4).count(), 0);
    }

    #[test]
    fn refusals_name_the_path() {
        let (_top, root) = fixture();
        assert_eq!(answer(&root, "GET docs/x.pdf"), "ERR NOT_FOUND docs/x.pdf does not exist\n");
        assert_eq!(answer(&root, "GET /etc/passwd"), "ERR NOT_FOUND /etc/passwd does not exist\n");
        assert_eq!(answer(&root, "GET hello.txt/x"), "ERR NOT_FOUND hello.txt/x does not exist\n");
        assert_eq!(answer(&root, "GET dangling"), "ERR NOT_FOUND dangling does not exist\n");
        assert_eq!(answer(&root, "GET sub"), "ERR NOT_A_FILE sub is not a regular file\n");
        assert_eq!(answer(&root, "SUM /"), "ERR NOT_A_FILE / is not a regular file\n");
        assert_eq!(answer(&root, "LIST hello.txt"), "ERR NOT_A_DIRECTORY hello.txt is not a directory\n");
        let long = "a".repeat(300);
        assert!(answer(&root, &format!("GET {long}")).starts_with("ERR NOT_FOUND "));
    }

    #[test]
    fn links_out_of_the_root_are_forbidden() {
        let (_top, root) = fixture();
        for line in ["GET out-file", "SUM out-file", "GET out-dir/secret", "LIST out-dir", "GET out-dir/root/hello.txt"]
        {
            let got = answer(&root, line);
            assert!(got.starts_with("ERR FORBIDDEN "), "{line}: {got}");
            assert!(!got.contains("outside\n") && !got.contains("OK"), "{line}: {got}");
        }
    }

    #[test]
    fn listing_follows_links_inside_only() {
        let (_top, root) = fixture();
        let ok = |body: &str| format!("OK {}\n{body}", body.len());
        assert_eq!(answer(&root, "LIST /"), ok("f 12 hello.txt\nd 0 sub\n"));
        assert_eq!(answer(&root, "LIST sub"), ok("d 0 deeper\nf 10 inner.bin\nf 12 up-link\n"));
        assert_eq!(answer(&root, "LIST sub/deeper"), "OK 0\n");
    }

    #[test]
    fn sum_is_blake3_of_the_bytes() {
        let (_top, root) = fixture();
        let expected = blake3::hash(b"hello, world").to_hex();
        assert_eq!(answer(&root, "SUM hello.txt"), format!("OK 64\n{expected}"));
    }

    #[test]
    fn quit_and_parser_refusals_close_as_spec_says() {
        let (_top, root) = fixture();
        let bye = root.reply(&Request::Quit, &Work::unbounded());
        assert!(bye.closes());
        assert_eq!(bytes(bye), b"BYE\n");
        assert!(Reply::refuse(Refusal::new(ErrorCode::TooLong, "x")).closes());
        assert!(!Reply::refuse(Refusal::new(ErrorCode::BadRequest, "x")).closes());
    }

    #[test]
    fn heavy_work_stops_when_told_and_times_out() {
        let (top, root) = fixture();
        // Sparse: 4 GiB that take no disk, and seconds to hash.
        let huge = std::fs::File::create(top.path().join("root/huge")).expect("create");
        huge.set_len(4 << 30).expect("truncate");
        let stopped = Work { stop: &|| true, ..Work::unbounded() };
        assert!(matches!(root.reply(&request("SUM huge"), &stopped), Reply::Abandon));
        assert!(matches!(root.reply(&request("LIST /"), &stopped), Reply::Abandon));
        let late = Work {
            deadline: Instant::now() + Duration::from_millis(50),
            limit: Duration::from_millis(50),
            stop: &|| false,
        };
        let started = Instant::now();
        let reply = root.reply(&request("SUM huge"), &late);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(reply.closes());
        assert!(String::from_utf8_lossy(&bytes(reply)).starts_with("ERR TIMEOUT SUM huge did not finish within 0.1 s"));
        // GET is not heavy: a past deadline does not touch it.
        let past = Work { deadline: Instant::now(), ..late };
        assert!(matches!(root.reply(&request("GET hello.txt"), &past), Reply::Bytes { closes: false, .. }));
    }

    #[test]
    fn a_repeated_sum_of_an_unchanged_file_comes_from_the_cache() {
        let (top, root) = fixture();
        let expected = format!("OK 64\n{}", blake3::hash(b"hello, world").to_hex());
        assert_eq!(answer(&root, "SUM hello.txt"), expected);
        assert_eq!(answer(&root, "SUM hello.txt"), expected);
        assert_eq!(root.digests.lock().expect("lock").len(), 1);
        std::fs::write(top.path().join("root/hello.txt"), b"changed!").expect("write");
        assert_eq!(answer(&root, "SUM hello.txt"), format!("OK 64\n{}", blake3::hash(b"changed!").to_hex()));
    }

    #[test]
    fn absolute_links_are_refused_even_inside() {
        let (top, root) = fixture();
        symlink(top.path().join("root/hello.txt"), top.path().join("root/abs-inside")).expect("symlink");
        assert!(answer(&root, "GET abs-inside").starts_with("ERR FORBIDDEN "));
        assert!(!answer(&root, "LIST /").contains("abs-inside"));
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_block() {
        let (top, root) = fixture();
        let fifo = top.path().join("root/pipe");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
        assert_eq!(answer(&root, "GET pipe"), "ERR NOT_A_FILE pipe is not a regular file\n");
        assert!(!answer(&root, "LIST /").contains("pipe"));
    }
}
