//! The shared folder: every path opened beneath it and nowhere else, and
//! the answer to each request (GET, SUM, LIST; TREE in `tree.rs`) from what
//! is on disk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, OpenOptions, OpenOptionsExt};
use ferry_engine::{Answer, Entry, ErrorCode, Kind, Refusal, Request, WirePath};
use thiserror::Error;

use crate::*;

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

/// The shared folder.
#[derive(Debug)]
pub struct Root {
    pub(crate) dir: Dir,
    path: PathBuf,
    pub(crate) digests: Mutex<DigestCache>,
    /// The bytes of spooled listings in flight, server-wide.
    pub(crate) listings: crate::spool::Budget,
    /// How far in the past a file's times must be for its digest to be
    /// cached ([`crate::digest::SETTLED`]; tests shorten it).
    pub(crate) settled: Duration,
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
        Ok(Root { dir, path, digests: Mutex::default(), listings: Default::default(), settled: SETTLED, cached })
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
            Request::Tree { path } => self.tree(path, work),
            Request::Sum { path } => self.sum(path, work),
            Request::Quit => {
                let mut bytes = Vec::new();
                Answer::Bye.encode(&mut bytes);
                return Reply::Bytes { bytes, closes: true };
            }
            Request::Auth { .. } => return Root::auth(),
        };
        match result {
            Ok(reply) => reply,
            Err(Halt::Refused(refusal)) => Reply::refuse(refusal),
            Err(Halt::Stopped) => Reply::Abandon,
        }
    }

    /// The answer to `AUTH`. The token was checked before anything was
    /// answered, when the server requires one (`Serving`'s gate); past the
    /// gate, or on a server that requires none, `AUTH` changes nothing.
    pub(crate) fn auth() -> Reply {
        let mut bytes = Vec::new();
        Answer::Ok { len: 0 }.encode(&mut bytes);
        Reply::Bytes { bytes, closes: false }
    }

    pub(crate) fn get(&self, path: &WirePath, offset: u64, length: Option<u64>) -> Result<Reply, Refusal> {
        let (mut file, size) = self.open_file(path)?;
        if offset > size {
            return Err(Refusal::new(
                ErrorCode::Range,
                format!("offset {offset} is past the end of {path} ({size} bytes)"),
            ));
        }
        let len = length.map_or(size - offset, |length| length.min(size - offset));
        let mut header = Vec::with_capacity(24 + if len <= INLINE_BODY { len as usize } else { 0 });
        Answer::Ok { len }.encode(&mut header);
        if len <= INLINE_BODY {
            let start = header.len();
            header.resize(start + len as usize, 0);
            // Nothing is sent yet, so a file that shrank can still be an ERR.
            // Read at the offset (pread): no seek first, a call fewer.
            file.read_exact_at(&mut header[start..], offset).map_err(|e| internal(path, &e))?;
            return Ok(Reply::Bytes { bytes: header, closes: false });
        }
        // Positioned for drivers that read rather than send from an offset
        // (a new file is at 0 already).
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).map_err(|e| internal(path, &e))?;
        }
        Ok(Reply::File { header, body: FileBody { file, offset, len, spooled: None } })
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
            // offset (a new file is at 0 already); seeking does not wait for
            // the disk.
            if offset > 0 {
                file.seek(SeekFrom::Start(offset)).ok()?;
            }
            return Some(Reply::File { header, body: FileBody { file, offset, len, spooled: None } });
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

    pub(crate) fn sum(&self, path: &WirePath, work: &Work<'_>) -> Result<Reply, Halt> {
        work.check("SUM", path)?;
        let (mut file, _) = self.open_file(path)?;
        let metadata = file.metadata().map_err(|e| internal(path, &e))?;
        let identity = Identity::of(&metadata);
        let cached = self.digests.lock().unwrap_or_else(|e| e.into_inner()).get(&identity);
        let digest = match cached {
            Some(digest) => digest,
            None => {
                // Decided (and the file written back) before it is read.
                let keep = cacheable(&file, &metadata, self.settled);
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
                if keep && file.metadata().is_ok_and(|after| Identity::of(&after) == identity) {
                    self.digests.lock().unwrap_or_else(|e| e.into_inner()).insert(identity, digest);
                }
                digest
            }
        };
        Ok(Reply::body(blake3::Hash::from_bytes(digest).to_hex().as_bytes()))
    }

    pub(crate) fn list(&self, path: &WirePath, work: &Work<'_>) -> Result<Reply, Halt> {
        work.check("LIST", path)?;
        let relative = path.to_relative();
        let metadata = self.dir.metadata(&relative).map_err(|e| refusal(path, &e))?;
        if !metadata.is_dir() {
            return Err(Refusal::new(ErrorCode::NotADirectory, format!("{path} is not a directory")).into());
        }
        let dir = self.dir.open_dir(&relative).map_err(|e| refusal(path, &e))?;
        let mut listing = crate::spool::Listing::new("LIST", path);
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
                listing.push_entry(Entry { kind, size: target.len(), name })?;
            }
        }
        listing.answer(&self.listings, work)
    }

    /// Opens a regular file for reading; returns it with its size, taken from
    /// the open handle so that a rename or replace after opening cannot make
    /// the header disagree with the bytes.
    pub(crate) fn open_file(&self, path: &WirePath) -> Result<(File, u64), Refusal> {
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

/// Whether `dir` is on a file system known to answer open and stat from
/// memory once its caches are warm: local disks and memory. FUSE, NFS, SMB
/// and the like ask a daemon or a server on every open, and a file system
/// not named here is not assumed to be safe.
pub(crate) fn answers_from_memory(dir: &Dir) -> bool {
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

pub(crate) fn kind(metadata: &Metadata) -> Option<Kind> {
    if metadata.is_file() {
        Some(Kind::File)
    } else if metadata.is_dir() {
        Some(Kind::Directory)
    } else {
        None
    }
}

/// Maps a failure to open or inspect `path` to the code SPEC.md §4 gives it.
pub(crate) fn refusal(path: &WirePath, error: &io::Error) -> Refusal {
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

pub(crate) fn internal(path: &WirePath, error: &io::Error) -> Refusal {
    tracing::warn!(%path, %error, "I/O error");
    Refusal::new(ErrorCode::Internal, format!("{path}: {error}"))
}
