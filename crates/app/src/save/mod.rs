//! Where downloads go and how they get there without ever leaving a partial
//! file under the name the user asked for, or writing anywhere else.
//!
//! Bytes go to `DEST.part` in the same folder. Only when exactly the promised
//! number of bytes arrived (and, with `--verify`, their BLAKE3 digest matches
//! the server's) is the `.part` flushed to disk and renamed to DEST: a rename
//! within one folder is atomic, so DEST is either absent or complete. (`get
//! -r` flushes once, the whole copy, at its end: [`Target::flush`].) Without
//! `--force`, the rename is a hard link that fails if DEST appeared in the
//! meantime, so an existing file is never replaced.
//!
//! The client often runs in folders others can write to (`/tmp`, a shared
//! download folder), so nothing here trusts what it finds there:
//!
//! - **No link is followed.** A fresh `.part` is created with `O_EXCL`, which
//!   fails on anything already there, links included; an existing one is
//!   opened with `O_NOFOLLOW` and must be a regular file. A DEST that is a
//!   symbolic link is refused, or with `--force` the link itself is replaced
//!   by the rename, never its target.
//! - **One download per DEST.** The `.part` is locked (`flock`, exclusive)
//!   from the moment it is opened until it is committed; a second client
//!   finds it locked and refuses, touching nothing.
//! - **Nothing discarded unasked.** An existing `.part` is resumed only with
//!   `--continue` and emptied only with `--force`; otherwise that file fails,
//!   saying so.
//! - **Devices stay devices.** A character or block device, FIFO or socket
//!   named as DEST (`-o /dev/null`, a named pipe), and stdout (`-o -`,
//!   `/dev/stdout`), are written to directly, as `curl -o /dev/null` does: no
//!   `.part`, no rename, no `--force` needed, and never replaced.
//!
//! A destination in the way fails that file alone, before anything is
//! requested; the others are fetched. All of this is blocking file-system
//! work and runs before the connection (planning) or once per file (open,
//! commit); the async drivers call it through their runtime's blocking pool.

mod part;
mod prompt;
mod report;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ferry_engine::WirePath;
use ferry_engine::client::{ClientError, Fetch, SaveError};
use ferry_engine::show::escaped;
use rustix::fs::OFlags;

use crate::args::GetArgs;
use crate::progress::Progress;

use prompt::ask;
pub(crate) use prompt::expand_home;
pub use report::{Report, Resume};

/// Everything one `get` will fetch, decided before connecting.
#[derive(Debug)]
pub struct Plan {
    /// The files to request, in request order.
    pub items: Vec<Item>,
    /// Whether each GET is followed by a SUM whose digest must match.
    pub verify: bool,
    /// Files that will not be requested because their destination is in
    /// the way, each with the reason: each fails alone.
    pub refused: Vec<(WirePath, SaveError)>,
}

/// One file to fetch.
#[derive(Debug)]
pub struct Item {
    /// The path on the server.
    pub path: WirePath,
    /// Where its bytes go.
    pub dest: Dest,
    /// The first byte to request: the length of a `.part` being resumed.
    pub offset: u64,
    /// Whether its progress bar may be drawn (not with `-q` or
    /// `--no-progress`).
    pub bar: bool,
    /// The bar of the tree it belongs to (`get -r`), drawn instead of one
    /// of its own.
    pub tree: Option<Progress>,
}

/// Where a body goes.
#[derive(Debug, Clone)]
pub enum Dest {
    /// Written as it arrives, to something that is not a file to commit.
    Stream(Stream),
    /// A file, saved atomically.
    File(Target),
    /// A file already there, which `--continue` finds whole (the server
    /// has nothing past its end): checked, with `--verify` its digest
    /// too, and left as it is.
    Complete(PathBuf),
}

/// A destination that bytes are written straight into.
#[derive(Debug, Clone)]
pub enum Stream {
    /// Standard output (`-o -`, `-o /dev/stdout`).
    Stdout,
    /// A character or block device, FIFO or socket the user named.
    Device(PathBuf),
}

/// A file destination and its `.part`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name the user asked for.
    pub dest: PathBuf,
    /// Where bytes go until the file is complete.
    pub part: PathBuf,
    force: bool,
    /// The modification time to give the file, set on the `.part` before
    /// it becomes DEST (`get -r`: the server's).
    pub modified: Option<std::time::SystemTime>,
    /// Whether the file (and its folder) is flushed to disk before and
    /// after the rename. `get -r` clears it and flushes the whole copy once
    /// at its end: two flushes a file cost a tree of small files most of
    /// its time (benches/README.md, "Measurements behind design choices").
    pub flush: bool,
}

/// Why a plan could not be made at all.
#[derive(Debug)]
pub enum PlanError {
    /// The arguments do not make sense (exit status 2).
    Usage(String),
    /// The destination folder is missing, or the user cancelled (exit status 1).
    Save(SaveError),
}

impl From<SaveError> for PlanError {
    fn from(error: SaveError) -> Self {
        PlanError::Save(error)
    }
}

impl Plan {
    /// After `error` ended a download: the `.part` that this run created
    /// and could not write to (a full disk, an I/O error) is removed, and
    /// said so, rather than left as if it could be resumed where it failed.
    /// A `.part` that was being resumed (`--continue`) is the user's: kept.
    pub fn abandon(&self, error: &ClientError) {
        let ClientError::Save(SaveError::Io { path, .. }) = error else { return };
        let fresh = |item: &&Item| item.offset == 0 && matches!(&item.dest, Dest::File(target) if target.part == *path);
        if self.items.iter().any(|item| fresh(&item)) && std::fs::remove_file(path).is_ok() {
            crate::say!(
                "{}: removed; nothing of a download that could not be written is kept",
                escaped(&path.to_string_lossy())
            );
        }
    }

    /// Decides every destination from the arguments, asking on the terminal
    /// when one path was given without `-o` and stdin is a terminal.
    pub fn new(args: &GetArgs) -> Result<Plan, PlanError> {
        let usage = |message: String| PlanError::Usage(message);
        let mut paths = Vec::with_capacity(args.paths.len());
        for text in &args.paths {
            let path = WirePath::new(text)
                .map_err(|refusal| usage(format!("{}: {}", escaped(text), escaped(&refusal.to_string()))))?;
            if path.file_name().is_none() {
                return Err(usage(format!("{} names the shared folder itself, not a file", escaped(text))));
            }
            paths.push(path);
        }
        let verify = args.verify || args.resume;
        let dests: Vec<PathBuf> = if let [path] = &paths[..] {
            let name = Path::new(path.file_name().unwrap_or_default());
            vec![match &args.output {
                Some(output) if is_stdout(output) => PathBuf::from("-"),
                Some(output) if output.is_dir() => output.join(name),
                Some(output) if ends_with_slash(output) => {
                    folder(output, args.create_dirs)?;
                    output.join(name)
                }
                Some(output) => {
                    folder(parent(output), args.create_dirs)?;
                    output.clone()
                }
                None if io::stdin().is_terminal() => ask(path, name, args.force)?,
                None => name.to_owned(),
            }]
        } else {
            if args.output.as_deref().is_some_and(is_stdout) {
                return Err(usage("-o - (stdout) takes a single PATH".to_owned()));
            }
            let into = args.output.clone().unwrap_or_else(|| PathBuf::from("."));
            folder(&into, args.create_dirs)?;
            let mut seen = HashMap::new();
            for path in &paths {
                let name = path.file_name().unwrap_or_default();
                if let Some(earlier) = seen.insert(name, path.as_str()) {
                    return Err(usage(format!(
                        "{} and {} would both be saved as {}; fetch them separately",
                        escaped(earlier),
                        escaped(path.as_str()),
                        escaped(name)
                    )));
                }
            }
            paths.iter().map(|path| into.join(path.file_name().unwrap_or_default())).collect()
        };

        let mut plan = Plan { items: Vec::with_capacity(paths.len()), verify, refused: Vec::new() };
        for (path, dest) in paths.into_iter().zip(dests) {
            match destination(dest, args.force, args.resume) {
                Ok((dest, offset)) => plan.items.push(Item { path, dest, offset, bar: !args.no_progress, tree: None }),
                Err(error) => plan.refused.push((path, error)),
            }
        }
        Ok(plan)
    }
}

/// Whether `-o` names standard output.
pub(crate) fn is_stdout(output: &Path) -> bool {
    ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"].iter().any(|name| output == Path::new(name))
}

pub(crate) fn ends_with_slash(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/")
}

/// The folder a file path is in (`.` for a bare name).
pub(crate) fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Checks that `path` is a folder, creating it (and its parents) when the
/// user passed `--create-dirs`.
pub(crate) fn folder(path: &Path, create: bool) -> Result<(), SaveError> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(SaveError::NotAFolder { path: path.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(path).map_err(|e| SaveError::io(path, e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SaveError::NoFolder { path: path.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(SaveError::NotAFolder { path: path.to_owned() }),
        Err(e) => Err(SaveError::io(path, e)),
    }
}

/// What `dest` is and where a download into it starts: a stream for `-`
/// and for devices, otherwise a [`Target`] whose DEST and `.part` are
/// checked now, so that a file in the way fails before it is requested.
pub(crate) fn destination(dest: PathBuf, force: bool, resume: bool) -> Result<(Dest, u64), SaveError> {
    if dest == Path::new("-") {
        return Ok((Dest::Stream(Stream::Stdout), 0));
    }
    // /dev and /proc are the system's: their links (/dev/stderr, /dev/fd/N)
    // lead to devices by design. Anywhere else a link is never followed.
    let system = dest.starts_with("/dev") || dest.starts_with("/proc");
    let found = if system { std::fs::metadata(&dest) } else { std::fs::symlink_metadata(&dest) };
    match found {
        Ok(metadata) if is_device(metadata.file_type()) => return Ok((Dest::Stream(Stream::Device(dest)), 0)),
        Ok(metadata) if metadata.is_symlink() && !force => return Err(SaveError::Link { path: dest }),
        // `--continue` on a file already there, as `wget -c` does: asked
        // from its end, the server says whether anything is missing.
        Ok(metadata) if resume && metadata.is_file() && !force => {
            Target::new(dest.clone(), false).drop_committed_part();
            return Ok((Dest::Complete(dest), metadata.len()));
        }
        Ok(_) if !force => return Err(SaveError::Exists { path: dest }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SaveError::io(dest, e)),
    }
    let target = Target::new(dest, force);
    let offset = target.probe_part(resume)?;
    Ok((Dest::File(target), offset))
}

pub(crate) fn is_device(kind: std::fs::FileType) -> bool {
    kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket()
}

impl Item {
    /// A progress bar for this item's body of `len` bytes, hidden when the
    /// body itself goes to the terminal (a bar would be drawn over it).
    pub fn progress(&self, len: u64) -> Progress {
        if let Some(tree) = &self.tree {
            return tree.part();
        }
        let onto_terminal = match &self.dest {
            Dest::Stream(Stream::Stdout) => io::stdout().is_terminal(),
            Dest::Stream(Stream::Device(_)) | Dest::File(_) | Dest::Complete(_) => false,
        };
        Progress::new(&escaped(self.path.as_str()), self.offset + len, self.offset, self.bar && !onto_terminal)
    }
}

impl Fetch for Item {
    fn path(&self) -> &WirePath {
        &self.path
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    fn sink(&self) -> &Path {
        self.dest.name()
    }

    fn streams(&self) -> bool {
        matches!(self.dest, Dest::Stream(_))
    }
}

impl Dest {
    /// The name messages use: `stdout`, a device's path, or the `.part`.
    pub fn name(&self) -> &Path {
        match self {
            Dest::Stream(stream) => stream.name(),
            Dest::File(target) => &target.part,
            Dest::Complete(path) => path,
        }
    }

    /// Opens where a body of `len` more bytes goes: the stream, or the
    /// `.part`, locked (see [`Target::open_part`]), resumed at `offset`,
    /// once it is clear that the bytes fit in the space free there (a file
    /// that cannot fit fails before its `.part` exists). Blocking.
    pub fn open(&self, offset: u64, len: u64) -> Result<File, SaveError> {
        match self {
            Dest::Stream(stream) => stream.open(),
            Dest::File(target) => {
                target.check_room(len)?;
                target.open_part(offset)
            }
            // Read, never written: nothing may be missing.
            Dest::Complete(path) if len == 0 => OpenOptions::new()
                .read(true)
                .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
                .open(path)
                .map_err(|e| SaveError::io(path, e)),
            Dest::Complete(path) => Err(SaveError::Incomplete { path: path.clone(), more: len }),
        }
    }

    /// Writes a body held in memory (`bytes`, from `offset`) into the
    /// `.part` it belongs in, opened as [`Dest::open`] opens it, and gives
    /// the file back for [`Dest::commit`]; for a body cut short, what
    /// arrived, which `--continue` resumes from. Blocking.
    pub fn write_held(&self, offset: u64, bytes: &[u8]) -> Result<File, SaveError> {
        let mut file = self.open(offset, bytes.len() as u64)?;
        io::Write::write_all(&mut file, bytes).map_err(|e| SaveError::io(self.name(), e))?;
        Ok(file)
    }

    /// Makes a received body the destination: a `.part` is committed
    /// ([`Target::commit`]); a stream has nothing to commit. Blocking.
    pub fn commit(&self, file: File, digest: Option<&[u8; 32]>) -> Result<(), SaveError> {
        match self {
            Dest::Stream(_) => Ok(()),
            Dest::File(target) => target.commit(file, digest),
            Dest::Complete(path) => match digest {
                Some(remote) => part::verify_in_place(&file, path, remote),
                None => Ok(()),
            },
        }
    }
}

impl Stream {
    /// The name messages use: `stdout`, or the device's path.
    pub fn name(&self) -> &Path {
        match self {
            Stream::Stdout => Path::new("stdout"),
            Stream::Device(path) => path,
        }
    }

    /// Opens the stream for writing. Standard output is duplicated, so every
    /// driver writes to a plain `File` whatever the stream. Blocking: opening
    /// a FIFO waits for a reader, as it does for `curl -o fifo`.
    pub fn open(&self) -> Result<File, SaveError> {
        let fail = |e| SaveError::io(self.name(), e);
        match self {
            Stream::Stdout => Ok(File::from(io::stdout().as_fd().try_clone_to_owned().map_err(fail)?)),
            Stream::Device(path) => OpenOptions::new()
                .write(true)
                .custom_flags((OFlags::NOCTTY | OFlags::CLOEXEC).bits() as i32)
                .open(path)
                .map_err(fail),
        }
    }
}
