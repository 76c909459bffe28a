//! What a cached SUM digest is keyed on: the file's identity and the
//! metadata that changes when its bytes do.

use std::os::unix::fs::MetadataExt;

/// How many digests the cache keeps; it starts over when full.
pub(crate) const DIGEST_CACHE: usize = 4096;

/// What identifies a file's contents without reading them: if none of
/// these changed, neither did the bytes (short of deliberate forgery of the
/// times, which needs the file's owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> Identity {
        Identity {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.len(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}
