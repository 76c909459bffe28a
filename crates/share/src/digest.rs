//! The SUM cache, and what a cached digest may rely on (SPEC.md §4).
//!
//! A digest is kept, keyed on the file's identity and the metadata that a
//! change of its bytes changes, only when that metadata cannot miss a
//! change:
//!
//! - **Writes through a shared mapping** change bytes without a system
//!   call. The kernel dates them only when a clean page is first written
//!   (the fault that makes it dirty); later writes to a page that is
//!   already dirty leave the times alone. So before hashing a file whose
//!   digest may be kept, its dirty pages are written back (`fdatasync`):
//!   every page is then clean, and any later write, by `write(2)` or
//!   through a mapping, dates the file.
//! - **Timestamps are coarse** (a clock tick; 2 s on FAT): a write in the
//!   same tick as the last one leaves the time as it was. So only a file
//!   whose modification and change times are [`SETTLED`] in the past is
//!   cached: any later write gets a later time.
//! - **Only file systems known to date writes through mappings**: ext2/3/4,
//!   xfs, btrfs, f2fs, bcachefs. tmpfs, for one, never does; FUSE and
//!   network file systems cannot promise it. Elsewhere every SUM hashes.
//! - **Small files are not cached**: hashing one costs less than a lookup
//!   is worth, and no flood of small SUMs can push a large file's digest
//!   out: eviction is per entry, least recently used first, among files
//!   worth keeping.
//!
//! A `write` followed by `utime` to restore the old modification time still
//! changes the change time; a truncate and rewrite changes the size or the
//! times; a rename over the file changes the inode. Each misses the cache.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// How many digests the cache keeps: past it, the least recently used goes.
pub(crate) const DIGEST_CACHE: usize = 4096;

/// Files smaller than this are hashed every time (about a millisecond).
pub(crate) const CACHE_FROM: u64 = 1 << 20;

/// How far in the past a file's times must be for its digest to be kept.
pub(crate) const SETTLED: Duration = Duration::from_secs(2);

/// File systems whose modification time records writes through a shared
/// mapping once the pages were written back (`fstatfs` magic numbers).
const DATES_MAPPED_WRITES: [u64; 5] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0xF2F5_2010, // f2fs
    0xCA45_1A4E, // bcachefs
];

/// What identifies a file's contents without reading them: if none of
/// these changed, neither did the bytes (given the rules above; short of
/// deliberate forgery of the times, which needs the file's owner).
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

/// Digests by identity, bounded, least recently used evicted first.
#[derive(Debug)]
pub(crate) struct DigestCache {
    entries: HashMap<Identity, (u64, [u8; 32])>,
    capacity: usize,
    /// A counter that orders uses.
    clock: u64,
}

impl DigestCache {
    pub(crate) fn new(capacity: usize) -> DigestCache {
        DigestCache { entries: HashMap::new(), capacity, clock: 0 }
    }

    pub(crate) fn get(&mut self, identity: &Identity) -> Option<[u8; 32]> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(identity).map(|(used, digest)| {
            *used = clock;
            *digest
        })
    }

    pub(crate) fn insert(&mut self, identity: Identity, digest: [u8; 32]) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&identity) {
            let oldest = self.entries.iter().min_by_key(|(_, (used, _))| *used).map(|(identity, _)| *identity);
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries.insert(identity, (self.clock, digest));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Default for DigestCache {
    fn default() -> DigestCache {
        DigestCache::new(DIGEST_CACHE)
    }
}

/// Whether a digest of `file`, hashed from now on, may be kept: it is large
/// enough, on a file system that dates mapped writes, its times settled
/// `settled` ago, and its dirty pages written back (which this does).
pub(crate) fn cacheable(file: &File, metadata: &std::fs::Metadata, settled: Duration) -> bool {
    let Some(horizon) = SystemTime::now().checked_sub(settled) else { return false };
    let before = |seconds: i64, nanos: i64| {
        let at = u64::try_from(seconds).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, nanos as u32));
        at.is_some_and(|at| at <= horizon)
    };
    metadata.len() >= CACHE_FROM
        && before(metadata.mtime(), metadata.mtime_nsec())
        && before(metadata.ctime(), metadata.ctime_nsec())
        && rustix::fs::fstatfs(file).is_ok_and(|stat| DATES_MAPPED_WRITES.contains(&(stat.f_type as u64)))
        && file.sync_data().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(ino: u64) -> Identity {
        Identity { dev: 1, ino, size: 1 << 20, mtime: (0, 0), ctime: (0, 0) }
    }

    #[test]
    fn the_least_recently_used_digest_goes_first() {
        let mut cache = DigestCache::new(2);
        cache.insert(identity(1), [1; 32]);
        cache.insert(identity(2), [2; 32]);
        assert_eq!(cache.get(&identity(1)), Some([1; 32]), "1 is used again");
        cache.insert(identity(3), [3; 32]);
        assert_eq!(cache.get(&identity(2)), None, "2 was the least recently used");
        assert_eq!(cache.get(&identity(1)), Some([1; 32]));
        assert_eq!(cache.get(&identity(3)), Some([3; 32]));
        assert_eq!(cache.len(), 2);
    }
}
