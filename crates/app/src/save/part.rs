//! A `.part` from creation to commit: created without following links,
//! locked for one download, resumed only when asked, flushed, checked and
//! renamed into place.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ferry_engine::client::SaveError;
use rustix::fs::OFlags;

use super::*;

impl Target {
    pub(crate) fn new(dest: PathBuf, force: bool) -> Target {
        let mut part = OsString::from(dest.as_os_str());
        part.push(".part");
        Target { dest, part: PathBuf::from(part), force, modified: None, flush: true }
    }

    /// Looks at the `.part` before anything is requested: the offset to
    /// resume from (0 for a fresh download), or why this file cannot go on.
    pub(crate) fn probe_part(&self, resume: bool) -> Result<u64, SaveError> {
        let metadata = match std::fs::symlink_metadata(&self.part) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(SaveError::io(&self.part, e)),
        };
        if !metadata.is_file() {
            // --force replaces it (the entry, never what a link points at).
            return if self.force && !resume { Ok(0) } else { Err(self.part_not_a_file()) };
        }
        // Locked: another client is filling it right now. The probe's lock
        // is released at once, when the file is closed.
        self.lock(open_existing(&self.part, false).map_err(|e| self.open_error(e))?)?;
        match (resume, self.force) {
            (true, _) => Ok(metadata.len()),
            (false, true) => Ok(0),
            (false, false) => Err(SaveError::PartExists { part: self.part.clone(), len: metadata.len() }),
        }
    }

    /// Finishes a commit cut between its two steps: the `.part` linked as
    /// DEST, not yet unlinked (the client killed there), leaves the complete
    /// file under both names. Found by `--continue`, which takes DEST as
    /// complete, the `.part` name is removed if it is DEST's very file and
    /// no download holds it; any other `.part` is left alone.
    pub(crate) fn drop_committed_part(&self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(part) = open_existing(&self.part, false) else { return };
        let (Ok(held), Ok(dest)) = (part.metadata(), std::fs::symlink_metadata(&self.dest)) else { return };
        let same = held.is_file() && dest.is_file() && (held.dev(), held.ino()) == (dest.dev(), dest.ino());
        if same && part.try_lock().is_ok() {
            let _ = std::fs::remove_file(&self.part);
        }
    }

    /// Refuses `len` bytes that would not fit in the space free (for this
    /// user) in the folder the `.part` goes into. Where that cannot be
    /// told, the writes will say.
    pub fn check_room(&self, len: u64) -> Result<(), SaveError> {
        let folder = parent(&self.part);
        let Ok(stat) = rustix::fs::statvfs(folder) else { return Ok(()) };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if len > free {
            return Err(SaveError::NoSpace { dest: self.dest.clone(), folder: folder.to_owned(), need: len, free });
        }
        Ok(())
    }

    /// Opens the `.part` for the body, locked for as long as the file is
    /// open: created new for a fresh download (emptied first with `--force`),
    /// or appended to at `offset` for a resumed one. Never through a link.
    pub fn open_part(&self, offset: u64) -> Result<File, SaveError> {
        let fail = |e| SaveError::io(&self.part, e);
        if offset > 0 {
            let file = self.lock(open_existing(&self.part, true).map_err(|e| self.open_error(e))?)?;
            let metadata = file.metadata().map_err(fail)?;
            if !metadata.is_file() {
                return Err(self.part_not_a_file());
            }
            if metadata.len() != offset {
                return Err(fail(io::Error::other(format!(
                    "changed size while resuming ({} bytes, expected {offset})",
                    metadata.len()
                ))));
            }
            return Ok(file);
        }
        match create_new(&self.part) {
            Ok(file) => return self.lock(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.force => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // An empty .part (a download cut before its first byte, which
                // `--continue` resumes from 0) holds nothing to lose: taken
                // over, locked, if it is a plain file nobody holds.
                if let Ok(file) = open_existing(&self.part, false)
                    && file.metadata().is_ok_and(|m| m.is_file() && m.len() == 0)
                {
                    return self.lock(file);
                }
                let len = std::fs::symlink_metadata(&self.part).map_or(0, |m| m.len());
                return Err(SaveError::PartExists { part: self.part.clone(), len });
            }
            Err(e) => return Err(fail(e)),
        }
        // --force: start over in the .part that is there, if it is a plain
        // file nobody holds; anything else there is unlinked and replaced.
        match open_existing(&self.part, false) {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                let file = self.lock(file)?;
                file.set_len(0).map_err(fail)?;
                Ok(file)
            }
            Ok(_) | Err(_) => {
                std::fs::remove_file(&self.part).map_err(fail)?;
                self.lock(create_new(&self.part).map_err(fail)?)
            }
        }
    }

    /// Takes the exclusive lock on an open `.part`, or says who has it.
    pub(crate) fn lock(&self, file: File) -> Result<File, SaveError> {
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(SaveError::Downloading { dest: self.dest.clone(), part: self.part.clone() })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(SaveError::io(&self.part, e)),
        }
    }

    /// What a failed open of an existing `.part` means: a link (`ELOOP`
    /// under `O_NOFOLLOW`) or a FIFO with no reader (`ENXIO`) is not a file.
    pub(crate) fn open_error(&self, error: io::Error) -> SaveError {
        let errno = error.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
        if matches!(errno, Some(rustix::io::Errno::LOOP | rustix::io::Errno::NXIO)) {
            self.part_not_a_file()
        } else {
            SaveError::io(&self.part, error)
        }
    }

    pub(crate) fn part_not_a_file(&self) -> SaveError {
        SaveError::PartNotAFile { part: self.part.clone() }
    }

    /// Makes the complete `.part` the destination: flush it to disk, check
    /// its digest against the server's when given, then rename. The lock is
    /// held until the rename is done, since `file` stays open until then.
    pub fn commit(&self, file: File, digest: Option<&[u8; 32]>) -> Result<(), SaveError> {
        if let Some(modified) = self.modified {
            // Through the open handle, before the rename: the time is the
            // file's from the moment it has its name.
            file.set_modified(modified).map_err(|e| SaveError::io(&self.part, e))?;
        }
        if self.flush {
            file.sync_all().map_err(|e| SaveError::io(&self.part, e))?;
        } else if file.metadata().is_ok_and(|m| m.len() >= EARLY_WRITEBACK) {
            // Flushed later with the whole copy (`get -r`): its writeback
            // starts now, without waiting for it (Linux starts writing a
            // file's dirty pages on this advice, then drops the pages that
            // are clean), so the disk writes while the next files arrive
            // rather than all at the end. An advice: refused, nothing lost.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        }
        if let Some(remote) = digest {
            let local = digest_of(&file, &self.part)?;
            if local.as_bytes() != remote {
                return Err(SaveError::Mismatch {
                    dest: self.dest.clone(),
                    part: self.part.clone(),
                    local: local.to_hex().to_string(),
                    remote: blake3::Hash::from_bytes(*remote).to_hex().to_string(),
                });
            }
        }
        if self.force {
            // rename(2) replaces the directory entry: a link at DEST is
            // replaced, its target untouched.
            std::fs::rename(&self.part, &self.dest).map_err(|e| SaveError::io(&self.dest, e))?;
        } else {
            // A hard link fails if DEST exists; rename would silently replace it.
            match std::fs::hard_link(&self.part, &self.dest) {
                Ok(()) => std::fs::remove_file(&self.part).map_err(|e| SaveError::io(&self.part, e))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(SaveError::Exists { path: self.dest.clone() });
                }
                // File systems without hard links: check, then rename.
                Err(_) if std::fs::symlink_metadata(&self.dest).is_err() => {
                    std::fs::rename(&self.part, &self.dest).map_err(|e| SaveError::io(&self.dest, e))?;
                }
                Err(e) => return Err(SaveError::io(&self.dest, e)),
            }
        }
        drop(file);
        // Make the rename itself durable.
        if self.flush
            && let Ok(folder) = File::open(parent(&self.dest))
        {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// The size from which a file flushed later with the whole copy has its
/// writeback started when it is committed: a tree of large files was
/// copied much faster with it, on every runtime (benches/README.md,
/// "Measurements behind design choices"); small files, which would make
/// many small writes to the disk, are left to the kernel.
const EARLY_WRITEBACK: u64 = 1 << 20;

/// Creates `path` new: fails if anything, a link included, is there.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).custom_flags(OFlags::CLOEXEC.bits() as i32).open(path)
}

/// Opens an existing `path` for writing without following a link, and
/// without waiting if it is a FIFO.
pub(crate) fn open_existing(path: &Path, append: bool) -> io::Result<File> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    OpenOptions::new().read(true).write(true).append(append).custom_flags(flags.bits() as i32).open(path)
}

/// The digest of everything in the open `.part`, read through its own
/// handle, not its name, which someone else could have replaced.
pub(crate) fn digest_of(mut file: &File, name: &Path) -> Result<blake3::Hash, SaveError> {
    let fail = |e| SaveError::io(name, e);
    let mut hasher = blake3::Hasher::new();
    file.seek(io::SeekFrom::Start(0)).map_err(fail)?;
    io::copy(&mut file, &mut hasher).map_err(fail)?;
    Ok(hasher.finalize())
}

/// Checks a file already there against the server's `remote` digest
/// (`--continue` on a complete file, with `--verify`): it stays as it is
/// either way, and a difference is said.
pub(crate) fn verify_in_place(file: &File, path: &Path, remote: &[u8; 32]) -> Result<(), SaveError> {
    let local = digest_of(file, path)?;
    if local.as_bytes() == remote {
        return Ok(());
    }
    Err(SaveError::Mismatch {
        dest: path.to_owned(),
        part: path.to_owned(),
        local: local.to_hex().to_string(),
        remote: blake3::Hash::from_bytes(*remote).to_hex().to_string(),
    })
}
