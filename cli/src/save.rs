//! Where downloads go and how they get there without ever leaving a partial
//! file under the name the user asked for, or writing anywhere else.
//!
//! Bytes go to `DEST.part` in the same folder. Only when exactly the promised
//! number of bytes arrived (and, with `--verify`, their BLAKE3 digest matches
//! the server's) is the `.part` flushed to disk and renamed to DEST: a rename
//! within one folder is atomic, so DEST is either absent or complete. Without
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

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferry_proto::WirePath;
use rustix::fs::OFlags;

use crate::args::GetArgs;
use crate::error::{ClientError, SaveError};
use crate::progress::{Progress, human_bytes};
use crate::show::escaped;

/// Everything one `get` will fetch, decided before connecting.
#[derive(Debug)]
pub struct Plan {
    /// The files to request, in request order.
    pub items: Vec<Item>,
    /// Whether each GET is followed by a SUM whose digest must match.
    pub verify: bool,
    /// Files that will not be requested because their destination is in
    /// the way, each with the reason: each fails alone.
    pub refused: Vec<SaveError>,
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
}

/// Where a body goes.
#[derive(Debug, Clone)]
pub enum Dest {
    /// Written as it arrives, to something that is not a file to commit.
    Stream(Stream),
    /// A file, saved atomically.
    File(Target),
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
                Ok((dest, offset)) => plan.items.push(Item { path, dest, offset }),
                Err(error) => plan.refused.push(error),
            }
        }
        Ok(plan)
    }
}

/// Whether `-o` names standard output.
fn is_stdout(output: &Path) -> bool {
    ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"].iter().any(|name| output == Path::new(name))
}

fn ends_with_slash(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/")
}

/// The folder a file path is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Checks that `path` is a folder, creating it (and its parents) when the
/// user passed `--create-dirs`.
fn folder(path: &Path, create: bool) -> Result<(), SaveError> {
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
fn destination(dest: PathBuf, force: bool, resume: bool) -> Result<(Dest, u64), SaveError> {
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
        Ok(_) if !force => return Err(SaveError::Exists { path: dest }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SaveError::io(dest, e)),
    }
    let target = Target::new(dest, force);
    let offset = target.probe_part(resume)?;
    Ok((Dest::File(target), offset))
}

fn is_device(kind: std::fs::FileType) -> bool {
    kind.is_char_device() || kind.is_block_device() || kind.is_fifo() || kind.is_socket()
}

impl Item {
    /// A progress bar for this item's body of `len` bytes, hidden when the
    /// body itself goes to the terminal (a bar would be drawn over it).
    pub fn progress(&self, len: u64) -> Progress {
        let onto_terminal = match &self.dest {
            Dest::Stream(Stream::Stdout) => io::stdout().is_terminal(),
            Dest::Stream(Stream::Device(_)) | Dest::File(_) => false,
        };
        Progress::new(&escaped(self.path.as_str()), self.offset + len, self.offset, !onto_terminal)
    }
}

impl Dest {
    /// The name messages use: `stdout`, a device's path, or the `.part`.
    pub fn name(&self) -> &Path {
        match self {
            Dest::Stream(stream) => stream.name(),
            Dest::File(target) => &target.part,
        }
    }

    /// Opens where a body goes: the stream, or the `.part`, locked (see
    /// [`Target::open_part`]), resumed at `offset`. Blocking.
    pub fn open(&self, offset: u64) -> Result<File, SaveError> {
        match self {
            Dest::Stream(stream) => stream.open(),
            Dest::File(target) => target.open_part(offset),
        }
    }

    /// Makes a received body the destination: a `.part` is committed
    /// ([`Target::commit`]); a stream has nothing to commit. Blocking.
    pub fn commit(&self, file: File, digest: Option<&[u8; 32]>) -> Result<(), SaveError> {
        match self {
            Dest::Stream(_) => Ok(()),
            Dest::File(target) => target.commit(file, digest),
        }
    }

    /// Checks the digest of bytes that were streamed (computed on their
    /// way out, since they cannot be read back) against the server's.
    pub fn check(&self, local: &blake3::Hash, remote: &[u8; 32]) -> Result<(), SaveError> {
        if local.as_bytes() == remote {
            Ok(())
        } else {
            Err(SaveError::StreamMismatch {
                name: self.name().to_owned(),
                local: local.to_hex().to_string(),
                remote: blake3::Hash::from_bytes(*remote).to_hex().to_string(),
            })
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

impl Target {
    fn new(dest: PathBuf, force: bool) -> Target {
        let mut part = OsString::from(dest.as_os_str());
        part.push(".part");
        Target { dest, part: PathBuf::from(part), force }
    }

    /// Looks at the `.part` before anything is requested: the offset to
    /// resume from (0 for a fresh download), or why this file cannot go on.
    fn probe_part(&self, resume: bool) -> Result<u64, SaveError> {
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
    fn lock(&self, file: File) -> Result<File, SaveError> {
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
    fn open_error(&self, error: io::Error) -> SaveError {
        let errno = error.raw_os_error().map(rustix::io::Errno::from_raw_os_error);
        if matches!(errno, Some(rustix::io::Errno::LOOP | rustix::io::Errno::NXIO)) {
            self.part_not_a_file()
        } else {
            SaveError::io(&self.part, error)
        }
    }

    fn part_not_a_file(&self) -> SaveError {
        SaveError::PartNotAFile { part: self.part.clone() }
    }

    /// Makes the complete `.part` the destination: flush it to disk, check
    /// its digest against the server's when given, then rename. The lock is
    /// held until the rename is done, since `file` stays open until then.
    pub fn commit(&self, file: File, digest: Option<&[u8; 32]>) -> Result<(), SaveError> {
        file.sync_all().map_err(|e| SaveError::io(&self.part, e))?;
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
        if let Ok(folder) = File::open(parent(&self.dest)) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// Creates `path` new: fails if anything, a link included, is there.
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).custom_flags(OFlags::CLOEXEC.bits() as i32).open(path)
}

/// Opens an existing `path` for writing without following a link, and
/// without waiting if it is a FIFO.
fn open_existing(path: &Path, append: bool) -> io::Result<File> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    OpenOptions::new().read(true).write(true).append(append).custom_flags(flags.bits() as i32).open(path)
}

/// The digest of everything in the open `.part`, read through its own
/// handle, not its name, which someone else could have replaced.
fn digest_of(mut file: &File, name: &Path) -> Result<blake3::Hash, SaveError> {
    let fail = |e| SaveError::io(name, e);
    let mut hasher = blake3::Hasher::new();
    file.seek(io::SeekFrom::Start(0)).map_err(fail)?;
    io::copy(&mut file, &mut hasher).map_err(fail)?;
    Ok(hasher.finalize())
}

/// Asks on the terminal where to save `path`, offering `default`, until the
/// answer is a place a download can go: `~` is the home folder, a folder
/// means "into it", an existing file is asked about again unless `--force`
/// was given, and end-of-input (Ctrl-D) cancels.
fn ask(path: &WirePath, default: &Path, force: bool) -> Result<PathBuf, SaveError> {
    let stdin = |e| SaveError::io("stdin", e);
    loop {
        crate::say::write(
            format!("Save {} as [{}]: ", escaped(path.as_str()), escaped(&default.to_string_lossy())).as_bytes(),
        );
        let mut answer = String::new();
        if io::stdin().lock().read_line(&mut answer).map_err(stdin)? == 0 {
            crate::say!();
            return Err(SaveError::Cancelled);
        }
        let answer = expand_home(answer.trim_end_matches(['\r', '\n']));
        let chosen = match answer {
            None => default.to_owned(),
            Some(folder) if folder.is_dir() => folder.join(default),
            Some(file) => file,
        };
        let problem = match std::fs::symlink_metadata(&chosen) {
            Ok(metadata) if !force && !is_device(metadata.file_type()) => {
                format!("{} already exists; give another name, or Ctrl-D to cancel", escaped(&chosen.to_string_lossy()))
            }
            Err(_) if !parent(&chosen).is_dir() => {
                format!("{}: no such folder", escaped(&parent(&chosen).to_string_lossy()))
            }
            _ => return Ok(chosen),
        };
        crate::say!("{problem}");
    }
}

/// The path an answer names, with a leading `~` for the home folder, or
/// `None` for an empty answer.
fn expand_home(answer: &str) -> Option<PathBuf> {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    match answer {
        "" => None,
        "~" => Some(home().unwrap_or_else(|| PathBuf::from("~"))),
        _ => match (answer.strip_prefix("~/"), home()) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(PathBuf::from(answer)),
        },
    }
}

/// Tells the user how each item went and decides the exit status.
#[derive(Debug)]
pub struct Report {
    total: usize,
    saved: usize,
    failed: usize,
}

impl Report {
    /// A report for `total` items.
    pub fn new(total: usize) -> Report {
        Report { total, saved: 0, failed: 0 }
    }

    /// `item` was saved; `digest` is the server's, when it was verified
    /// against it. A resumed or verified file gets one line saying so, so
    /// that success is not silent where the user asked for more than a copy.
    pub fn saved(&mut self, item: &Item, digest: Option<&[u8; 32]>) {
        self.saved += 1;
        let mut done = Vec::new();
        if item.offset > 0 {
            done.push(format!("resumed at {}", human_bytes(item.offset)));
        }
        if let Some(digest) = digest {
            done.push(format!("verified BLAKE3 {}", blake3::Hash::from_bytes(*digest).to_hex()));
        }
        if !done.is_empty() {
            crate::say!("{}: {}", escaped(item.path.as_str()), done.join(", "));
        }
    }

    /// How `item` went, as a session's [`crate::session::Step::Report`] says.
    pub fn record(&mut self, item: &Item, outcome: Result<Option<[u8; 32]>, ClientError>) {
        match outcome {
            Ok(digest) => self.saved(item, digest.as_ref()),
            Err(error) => self.failed(&error),
        }
    }

    /// An item failed; the others go on.
    pub fn failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        self.failed += 1;
    }

    /// The connection failed: every item not yet reported failed with it.
    pub fn connection_failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        self.failed = self.total - self.saved;
    }

    /// 0 when everything was saved, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 && self.saved == self.total { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn plan(args: &[&str]) -> Result<Plan, PlanError> {
        let cli = Cli::try_parse_from(["ferry", "get", "127.0.0.1:1"].iter().chain(args)).expect("parses");
        let Command::Get(get) = cli.command else { panic!("not get") };
        Plan::new(&get)
    }

    fn usage(args: &[&str]) -> String {
        match plan(args) {
            Err(PlanError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn one_path_into_a_folder_or_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().to_str().expect("utf-8");
        let into = plan(&["docs/a.pdf", "-o", folder]).expect("plan");
        let Dest::File(target) = &into.items[0].dest else { panic!("not a file") };
        assert_eq!(target.dest, dir.path().join("a.pdf"));
        assert_eq!(target.part, dir.path().join("a.pdf.part"));

        let named = dir.path().join("b.bin");
        let as_file = plan(&["docs/a.pdf", "-o", named.to_str().expect("utf-8")]).expect("plan");
        let Dest::File(target) = &as_file.items[0].dest else { panic!("not a file") };
        assert_eq!(target.dest, named);

        assert!(matches!(plan(&["a", "-o", "-"]).expect("plan").items[0].dest, Dest::Stream(Stream::Stdout)));
        assert!(matches!(plan(&["a", "-o", "/dev/stdout"]).expect("plan").items[0].dest, Dest::Stream(Stream::Stdout)));
        let null = plan(&["a", "-o", "/dev/null"]).expect("plan");
        assert!(matches!(&null.items[0].dest, Dest::Stream(Stream::Device(path)) if path == Path::new("/dev/null")));
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&["a/x", "b/x"]).contains("would both be saved as x"));
        assert!(usage(&["a", "b", "-o", "-"]).contains("single PATH"));
        assert!(matches!(plan(&["a", "b", "-o", "/no/such/folder"]), Err(PlanError::Save(SaveError::NoFolder { .. }))));
        assert!(usage(&["/"]).contains("shared folder itself"));
        assert!(usage(&["../x"]).contains("FORBIDDEN"));
    }

    /// The one refusal a single-path plan made.
    fn refused(args: &[&str]) -> SaveError {
        let mut plan = plan(args).expect("plan");
        assert!(plan.items.is_empty(), "{:?}", plan.items);
        plan.refused.pop().expect("a refusal")
    }

    #[test]
    fn an_existing_dest_is_refused_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("x");
        std::fs::write(&dest, b"mine").expect("write");
        let dest_arg = dest.to_str().expect("utf-8");
        assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::Exists { .. }));
        assert_eq!(plan(&["x", "-o", dest_arg, "--force"]).expect("plan").items.len(), 1);
    }

    #[test]
    fn a_batch_refuses_each_file_in_the_way_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b"), b"mine").expect("write");
        std::fs::write(dir.path().join("c.part"), b"half").expect("write");
        let plan = plan(&["a", "b", "c", "-o", dir.path().to_str().expect("utf-8")]).expect("plan");
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].path.as_str(), "a");
        let messages: Vec<String> = plan.refused.iter().map(ToString::to_string).collect();
        assert!(messages[0].contains("already exists"), "{messages:?}");
        assert!(messages[1].contains("--continue") && messages[1].contains("4 bytes"), "{messages:?}");
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let dest = dir.path().join("x");
        let dest_arg = dest.to_str().expect("utf-8");

        // A link at DEST: refused; with --force the link is replaced.
        std::os::unix::fs::symlink(&victim, &dest).expect("symlink");
        assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::Link { .. }));
        let forced = plan(&["x", "-o", dest_arg, "--force"]).expect("plan");
        let Dest::File(target) = &forced.items[0].dest else { panic!("not a file") };
        let mut file = target.open_part(0).expect("open");
        file.write_all(b"new").expect("write");
        target.commit(file, None).expect("commit");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(std::fs::read(&dest).expect("read"), b"new");
        assert!(!std::fs::symlink_metadata(&dest).expect("stat").is_symlink());
        std::fs::remove_file(&dest).expect("rm");

        // A link at DEST.part: refused, resumed or not; --force replaces it.
        std::os::unix::fs::symlink(&victim, dir.path().join("x.part")).expect("symlink");
        assert!(matches!(refused(&["x", "-o", dest_arg]), SaveError::PartNotAFile { .. }));
        assert!(matches!(refused(&["x", "-o", dest_arg, "--continue"]), SaveError::PartNotAFile { .. }));
        let target = Target::new(dest.clone(), false);
        assert!(matches!(target.open_part(0), Err(SaveError::PartExists { .. })));
        assert!(matches!(target.open_part(8), Err(SaveError::PartNotAFile { .. })));
        let forced = Target::new(dest.clone(), true);
        let mut file = forced.open_part(0).expect("replaces the link");
        file.write_all(b"new").expect("write");
        forced.commit(file, None).expect("commit");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    }

    #[test]
    fn one_download_per_dest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("x");
        let first = Target::new(dest.clone(), false);
        let held = first.open_part(0).expect("first");
        // A second client, even with --force or --continue, finds it locked.
        for flags in [&[][..], &["--force"][..], &["--continue"][..]] {
            let mut args = vec!["x", "-o", dest.to_str().expect("utf-8")];
            args.extend(flags);
            assert!(matches!(refused(&args), SaveError::Downloading { .. }), "{flags:?}");
        }
        assert!(matches!(Target::new(dest.clone(), true).open_part(0), Err(SaveError::Downloading { .. })));
        first.commit(held, None).expect("commit");
        assert!(dest.exists());
    }

    #[test]
    fn a_part_is_never_emptied_unasked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("report.pdf");
        std::fs::write(dir.path().join("report.pdf.part"), b"notes").expect("write");
        let message = refused(&["report.pdf", "-o", dest.to_str().expect("utf-8")]).to_string();
        assert!(message.contains("--continue") && message.contains("--force"), "{message}");
        assert_eq!(std::fs::read(dir.path().join("report.pdf.part")).expect("read"), b"notes");
    }

    #[test]
    fn missing_folders_are_named_or_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nodir = format!("{}/nodir/", dir.path().display());
        let Err(PlanError::Save(error)) = plan(&["a", "-o", &nodir]) else { panic!("planned") };
        assert!(error.to_string().contains("nodir/: no such folder"), "{error}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").expect("write");
        let into_file = format!("{}/x", plain.display());
        assert!(matches!(plan(&["a", "-o", &into_file]), Err(PlanError::Save(SaveError::NotAFolder { .. }))));
        let created = plan(&["a", "-o", &nodir, "--create-dirs"]).expect("plan");
        let Dest::File(target) = &created.items[0].dest else { panic!("not a file") };
        assert_eq!(target.dest, dir.path().join("nodir/a"));
        assert!(dir.path().join("nodir").is_dir());
    }

    #[test]
    fn devices_and_fifos_are_streams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
        let planned = plan(&["a", "-o", fifo.to_str().expect("utf-8")]).expect("plan");
        assert!(matches!(&planned.items[0].dest, Dest::Stream(Stream::Device(path)) if *path == fifo));
        // A link to a device outside /dev is a link, not a device.
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).expect("symlink");
        assert!(matches!(refused(&["a", "-o", link.to_str().expect("utf-8")]), SaveError::Link { .. }));
    }

    #[test]
    fn home_is_expanded_in_answers() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        assert_eq!(expand_home(""), None);
        assert_eq!(expand_home("x/y"), Some(PathBuf::from("x/y")));
        if let Some(home) = home {
            assert_eq!(expand_home("~/dl"), Some(home.join("dl")));
            assert_eq!(expand_home("~"), Some(home));
        }
    }

    #[test]
    fn commit_is_atomic_and_checks_the_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = Target::new(dir.path().join("f"), false);
        let mut file = target.open_part(0).expect("open");
        file.write_all(b"hello").expect("write");
        assert!(!target.dest.exists());
        let wrong = [0u8; 32];
        assert!(matches!(target.commit(file, Some(&wrong)), Err(SaveError::Mismatch { .. })));
        assert!(!target.dest.exists() && target.part.exists());

        let file = target.open_part(5).expect("resume");
        target.commit(file, Some(blake3::hash(b"hello").as_bytes())).expect("commit");
        assert_eq!(std::fs::read(&target.dest).expect("read"), b"hello");
        assert!(!target.part.exists());

        // Someone else created DEST meanwhile: it is not replaced.
        let mut file = target.open_part(0).expect("open");
        file.write_all(b"other").expect("write");
        assert!(matches!(target.commit(file, None), Err(SaveError::Exists { .. })));
        assert_eq!(std::fs::read(&target.dest).expect("read"), b"hello");
    }
}
