//! Where downloads go and how they get there without ever leaving a partial
//! file under the name the user asked for.
//!
//! Bytes go to `DEST.part` in the same folder. Only when exactly the promised
//! number of bytes arrived (and, with `--verify`, their BLAKE3 digest matches
//! the server's) is the `.part` flushed to disk and renamed to DEST: a rename
//! within one folder is atomic, so DEST is either absent or complete. Without
//! `--force`, the rename is a hard link that fails if DEST appeared in the
//! meantime, so an existing file is never replaced.
//!
//! All of this is blocking file-system work and runs before the connection
//! (planning) or once per file (open, commit); the async drivers call it
//! through their runtime's blocking pool.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferry_proto::{Request, WirePath};

use crate::args::GetArgs;
use crate::error::{ClientError, SaveError};

/// Everything one `get` will fetch, decided before connecting.
#[derive(Debug)]
pub struct Plan {
    /// The files, in request order.
    pub items: Vec<Item>,
    /// Whether each GET is followed by a SUM whose digest must match.
    pub verify: bool,
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
#[derive(Debug)]
pub enum Dest {
    /// Standard output (`-o -`): streamed, nothing to commit.
    Stdout,
    /// A file, saved atomically.
    File(Target),
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

/// Why a plan could not be made.
#[derive(Debug)]
pub enum PlanError {
    /// The arguments do not make sense (exit status 2).
    Usage(String),
    /// A destination is in the way (exit status 1).
    Save(SaveError),
}

impl Plan {
    /// Decides every destination from the arguments, asking on the terminal
    /// when one path was given without `-o` and stdin is a terminal.
    pub fn new(args: &GetArgs) -> Result<Plan, PlanError> {
        let usage = |message: String| PlanError::Usage(message);
        let mut paths = Vec::with_capacity(args.paths.len());
        for text in &args.paths {
            let path = WirePath::new(text).map_err(|refusal| usage(format!("{text}: {refusal}")))?;
            if path.file_name().is_none() {
                return Err(usage(format!("{text} names the shared folder itself, not a file")));
            }
            paths.push(path);
        }
        let is_stdout = args.output.as_deref() == Some(Path::new("-"));
        let verify = args.verify || args.resume;
        let dests: Vec<Option<PathBuf>> = if let [path] = &paths[..] {
            let name = path.file_name().unwrap_or_default();
            vec![match &args.output {
                _ if is_stdout => None,
                Some(output) if output.is_dir() => Some(output.join(name)),
                Some(output) => Some(output.clone()),
                None if io::stdin().is_terminal() => {
                    Some(ask(path, Path::new(name)).map_err(|e| PlanError::Save(SaveError::io("stdin", e)))?)
                }
                None => Some(PathBuf::from(name)),
            }]
        } else {
            if is_stdout {
                return Err(usage("-o - (stdout) takes a single PATH".to_owned()));
            }
            let folder = args.output.clone().unwrap_or_else(|| PathBuf::from("."));
            if !folder.is_dir() {
                return Err(usage(format!(
                    "{}: with several PATHs, -o must name an existing folder",
                    folder.display()
                )));
            }
            let mut seen = HashMap::new();
            for path in &paths {
                let name = path.file_name().unwrap_or_default();
                if let Some(earlier) = seen.insert(name, path.as_str()) {
                    return Err(usage(format!(
                        "{earlier} and {} would both be saved as {name}; fetch them separately",
                        path.as_str()
                    )));
                }
            }
            paths.iter().map(|path| Some(folder.join(path.file_name().unwrap_or_default()))).collect()
        };

        let mut items = Vec::with_capacity(paths.len());
        for (path, dest) in paths.into_iter().zip(dests) {
            let Some(dest) = dest else {
                items.push(Item { path, dest: Dest::Stdout, offset: 0 });
                continue;
            };
            if !args.force && dest.exists() {
                return Err(PlanError::Save(SaveError::Exists { path: dest }));
            }
            let target = Target::new(dest, args.force);
            let offset = if args.resume { target.resume_offset().map_err(PlanError::Save)? } else { 0 };
            items.push(Item { path, dest: Dest::File(target), offset });
        }
        Ok(Plan { items, verify })
    }

    /// The request lines for item `index`: its GET (from its offset) and,
    /// when verifying, a SUM after it.
    fn item_requests(&self, index: usize, out: &mut Vec<u8>) {
        let item = &self.items[index];
        Request::Get { path: item.path.clone(), offset: item.offset, length: None }.encode(out);
        if self.verify {
            Request::Sum { path: item.path.clone() }.encode(out);
        }
    }
}

/// How many items' requests a client keeps ahead of the answers it has read.
///
/// Pipelining hides the round trip per file; a bounded window keeps a client
/// with thousands of paths from writing requests while the server, blocked
/// on writing answers nobody reads yet, stops reading them: a deadlock.
pub const PIPELINE_WINDOW: usize = 32;

/// Which requests of a [`Plan`] have been sent.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// Items whose requests are written, plus one once QUIT is.
    sent: usize,
}

impl Pipeline {
    /// Nothing sent yet.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// The request lines to write now that `done` items have been answered:
    /// enough to keep [`PIPELINE_WINDOW`] items in flight, and QUIT after the
    /// last, so the server closes once it has answered everything. Empty
    /// when there is nothing new to send.
    pub fn refill(&mut self, plan: &Plan, done: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let until = (done + PIPELINE_WINDOW).min(plan.items.len());
        while self.sent < until {
            plan.item_requests(self.sent, &mut out);
            self.sent += 1;
        }
        if self.sent == plan.items.len() {
            Request::Quit.encode(&mut out);
            self.sent += 1;
        }
        out
    }
}

impl Target {
    fn new(dest: PathBuf, force: bool) -> Target {
        let mut part = OsString::from(dest.as_os_str());
        part.push(".part");
        Target { dest, part: PathBuf::from(part), force }
    }

    /// The length of an existing `.part`, or 0 when there is none.
    fn resume_offset(&self) -> Result<u64, SaveError> {
        match std::fs::metadata(&self.part) {
            Ok(metadata) => Ok(metadata.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(SaveError::io(&self.part, e)),
        }
    }

    /// Opens the `.part` for the body: truncated for a fresh download, or
    /// appended to at `offset` for a resumed one.
    pub fn open_part(&self, offset: u64) -> Result<File, SaveError> {
        let fail = |e| SaveError::io(&self.part, e);
        let mut options = OpenOptions::new();
        if offset == 0 {
            options.write(true).create(true).truncate(true);
        } else {
            options.append(true);
        }
        let file = options.open(&self.part).map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        if len != offset {
            return Err(fail(io::Error::other(format!(
                "changed size while resuming ({len} bytes, expected {offset})"
            ))));
        }
        Ok(file)
    }

    /// Makes the complete `.part` the destination: flush it to disk, check
    /// its digest against the server's when given, then rename.
    pub fn commit(&self, file: File, digest: Option<&[u8; 32]>) -> Result<(), SaveError> {
        file.sync_all().map_err(|e| SaveError::io(&self.part, e))?;
        drop(file);
        if let Some(remote) = digest {
            let local = digest_of(&self.part)?;
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
            std::fs::rename(&self.part, &self.dest).map_err(|e| SaveError::io(&self.dest, e))?;
        } else {
            // A hard link fails if DEST exists; rename would silently replace it.
            match std::fs::hard_link(&self.part, &self.dest) {
                Ok(()) => std::fs::remove_file(&self.part).map_err(|e| SaveError::io(&self.part, e))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(SaveError::Exists { path: self.dest.clone() });
                }
                // File systems without hard links: check, then rename.
                Err(_) if !self.dest.exists() => {
                    std::fs::rename(&self.part, &self.dest).map_err(|e| SaveError::io(&self.dest, e))?;
                }
                Err(e) => return Err(SaveError::io(&self.dest, e)),
            }
        }
        // Make the rename itself durable.
        let folder = self.dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Ok(folder) = File::open(folder) {
            let _ = folder.sync_all();
        }
        Ok(())
    }
}

/// Checks a digest computed while streaming to stdout.
pub fn check_stdout(local: &blake3::Hash, remote: &[u8; 32]) -> Result<(), SaveError> {
    if local.as_bytes() == remote {
        Ok(())
    } else {
        Err(SaveError::StdoutMismatch {
            local: local.to_hex().to_string(),
            remote: blake3::Hash::from_bytes(*remote).to_hex().to_string(),
        })
    }
}

fn digest_of(path: &Path) -> Result<blake3::Hash, SaveError> {
    let mut hasher = blake3::Hasher::new();
    let file = File::open(path).map_err(|e| SaveError::io(path, e))?;
    hasher.update_reader(file).map_err(|e| SaveError::io(path, e))?;
    Ok(hasher.finalize())
}

/// Asks on the terminal where to save `path`, offering `default`.
fn ask(path: &WirePath, default: &Path) -> io::Result<PathBuf> {
    eprint!("Save {path} as [{}]: ", default.display());
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim_end_matches(['\r', '\n']);
    Ok(match answer {
        "" => default.to_owned(),
        folder if Path::new(folder).is_dir() => Path::new(folder).join(default),
        file => PathBuf::from(file),
    })
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

    /// An item was saved.
    pub fn saved(&mut self) {
        self.saved += 1;
    }

    /// An item failed; the others go on.
    pub fn failed(&mut self, error: &ClientError) {
        eprintln!("error: {error}");
        self.failed += 1;
    }

    /// The connection failed: every item not yet reported failed with it.
    pub fn connection_failed(&mut self, error: &ClientError) {
        eprintln!("error: {error}");
        self.failed = self.total - self.saved;
    }

    /// 0 when everything was saved, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 && self.saved == self.total { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

/// Reads all of `reader` into a digest; for tests and tools.
pub fn digest_reader(reader: impl Read) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(reader)?;
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
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

        assert!(matches!(plan(&["a", "-o", "-"]).expect("plan").items[0].dest, Dest::Stdout));
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&["a/x", "b/x"]).contains("would both be saved as x"));
        assert!(usage(&["a", "b", "-o", "-"]).contains("single PATH"));
        assert!(usage(&["a", "b", "-o", "/no/such/folder"]).contains("existing folder"));
        assert!(usage(&["/"]).contains("shared folder itself"));
        assert!(usage(&["../x"]).contains("FORBIDDEN"));
    }

    #[test]
    fn an_existing_dest_is_refused_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("x");
        std::fs::write(&dest, b"mine").expect("write");
        let dest_arg = dest.to_str().expect("utf-8");
        assert!(matches!(plan(&["x", "-o", dest_arg]), Err(PlanError::Save(SaveError::Exists { .. }))));
        assert!(plan(&["x", "-o", dest_arg, "--force"]).is_ok());
    }

    #[test]
    fn requests_pipeline_get_sum_and_quit() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.part"), b"123").expect("write");
        let folder = dir.path().to_str().expect("utf-8");
        let resumed = plan(&["a", "x/b", "-o", folder, "--continue"]).expect("plan");
        assert_eq!(Pipeline::new().refill(&resumed, 0), b"GET a\nSUM a\nGET x/b 3\nSUM x/b\nQUIT\n");
        let plain = plan(&["my file", "-o", folder]).expect("plan");
        let mut pipeline = Pipeline::new();
        assert_eq!(pipeline.refill(&plain, 0), b"GET my%20file\nQUIT\n");
        assert_eq!(pipeline.refill(&plain, 1), b"");
    }

    #[test]
    fn the_pipeline_keeps_a_bounded_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (0..PIPELINE_WINDOW + 2).map(|i| format!("f{i}")).collect();
        let mut args: Vec<&str> = names.iter().map(String::as_str).collect();
        args.extend(["-o", dir.path().to_str().expect("utf-8")]);
        let many = plan(&args).expect("plan");
        let mut pipeline = Pipeline::new();
        let lines = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8").lines().count();
        assert_eq!(lines(pipeline.refill(&many, 0)), PIPELINE_WINDOW);
        assert_eq!(lines(pipeline.refill(&many, 0)), 0);
        assert_eq!(lines(pipeline.refill(&many, 1)), 1);
        // The last item's GET and QUIT.
        assert_eq!(lines(pipeline.refill(&many, 2)), 2);
        assert_eq!(lines(pipeline.refill(&many, PIPELINE_WINDOW + 2)), 0);
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
        let file = target.open_part(0).expect("open");
        assert!(matches!(target.commit(file, None), Err(SaveError::Exists { .. })));
        assert_eq!(std::fs::read(&target.dest).expect("read"), b"hello");
    }
}
