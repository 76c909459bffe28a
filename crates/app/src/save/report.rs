//! Telling the user how each download went, how to pick up one that was
//! cut, and the exit status.

use std::ffi::OsString;
use std::process::ExitCode;

use ferry_engine::client::{ClientError, Outcomes};
use ferry_engine::show::escaped;

use crate::progress::human_bytes;

use super::*;

impl Outcomes<Item> for Report {
    fn record(&mut self, item: &Item, outcome: Result<Option<[u8; 32]>, ClientError>) {
        match outcome {
            Ok(digest) => self.saved(item, digest.as_ref()),
            Err(error) => {
                self.failed(&error);
                self.failures.push(item.path.as_str().to_owned());
            }
        }
        if let Some(tree) = &item.tree {
            tree.file_done();
        }
    }
}

/// Tells the user how each item went and decides the exit status.
#[derive(Debug)]
pub struct Report {
    total: usize,
    saved: usize,
    failed: usize,
    quiet: bool,
    /// The binary and the server, for hints that name a command.
    command: Option<(String, String)>,
    /// Paths the server does not have, for a suggestion once it is over.
    pub missing: Vec<String>,
    /// The items that failed, by path, for a summary.
    pub failures: Vec<String>,
}

impl Report {
    /// A report for `total` items.
    pub fn new(total: usize) -> Report {
        Report { total, saved: 0, failed: 0, quiet: false, command: None, missing: Vec::new(), failures: Vec::new() }
    }

    /// Hints that name a command name `binary` and the server at `addr`.
    pub fn with_hints(self, binary: &str, addr: &str) -> Report {
        Report { command: Some((binary.to_owned(), addr.to_owned())), ..self }
    }

    /// Says only what failed (`-q`).
    pub fn quiet(self, quiet: bool) -> Report {
        Report { quiet, ..self }
    }

    /// `item` was saved; `digest` is the server's, when it was verified
    /// against it. A resumed or verified file gets one line saying so, so
    /// that success is not silent where the user asked for more than a copy.
    pub fn saved(&mut self, item: &Item, digest: Option<&[u8; 32]>) {
        self.saved += 1;
        let mut done = Vec::new();
        if let Dest::Complete(_) = item.dest {
            done.push(format!("already complete ({})", human_bytes(item.offset)));
        } else if item.offset > 0 {
            done.push(format!("resumed at {}", human_bytes(item.offset)));
        }
        if let Some(digest) = digest {
            done.push(format!("verified BLAKE3 {}", blake3::Hash::from_bytes(*digest).to_hex()));
        }
        if !done.is_empty() && !self.quiet {
            crate::say!("{}: {}", escaped(item.path.as_str()), done.join(", "));
        }
    }

    /// An item failed; the others go on.
    pub fn failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        if let Some((binary, addr)) = &self.command
            && let Some(hint) = crate::hint::for_refusal(binary, addr, error)
        {
            crate::say!("{hint}");
        }
        if let Some(path) = crate::hint::not_found(error) {
            self.missing.push(path.to_owned());
        }
        self.failed += 1;
    }

    /// The connection failed: every item not yet reported failed with it.
    pub fn connection_failed(&mut self, error: &ClientError) {
        crate::say!("error: {error}");
        self.failed = self.total - self.saved;
    }

    /// Takes in what another report of the same run (another connection's)
    /// counted.
    pub fn merge(&mut self, other: Report) {
        self.saved += other.saved;
        self.failed += other.failed;
        self.missing.extend(other.missing);
        self.failures.extend(other.failures);
    }

    /// How many items were saved, and how many failed, so far.
    pub fn counts(&self) -> (usize, usize) {
        (self.saved, self.failed)
    }

    /// 0 when everything was saved, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.failed == 0 && self.saved == self.total { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

/// How to pick up downloads where they stopped: the `.part`s a run fills,
/// and the command that resumes them, the user's own with `--continue`.
#[derive(Debug, Clone)]
pub struct Resume {
    parts: Vec<PathBuf>,
    command: String,
}

impl Resume {
    /// For `plan`, fetched by `binary` with the arguments this process got.
    pub fn new(binary: &str, plan: &Plan) -> Resume {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let parts: Vec<PathBuf> = plan
            .items
            .iter()
            .filter_map(|item| match &item.dest {
                Dest::File(target) => Some(target.part.clone()),
                Dest::Stream(_) | Dest::Complete(_) => None,
            })
            .collect();
        let mut words: Vec<String> = vec![binary.to_owned()];
        words.extend(args.iter().map(|arg| shell_word(&arg.to_string_lossy())));
        let has = |flags: &[&str]| args.iter().any(|arg| flags.iter().any(|flag| arg == *flag));
        // Where the prompt chose the destination, the command names it, so
        // that running it again asks nothing.
        if let ([item], false) = (&plan.items[..], has(&["-o", "--output"]))
            && let Dest::File(target) = &item.dest
        {
            words.extend(["-o".to_owned(), shell_word(&target.dest.to_string_lossy())]);
        }
        if !has(&["-c", "--continue"]) {
            words.push("--continue".to_owned());
        }
        Resume { parts, command: words.join(" ") }
    }

    /// Says what the `.part`s hold and the command that resumes them, if
    /// any holds bytes: one line.
    pub fn tell(&self) {
        let kept: Vec<(String, u64)> = self
            .parts
            .iter()
            .filter_map(|part| {
                let len = std::fs::symlink_metadata(part).ok().filter(|m| m.is_file())?.len();
                (len > 0).then(|| (escaped(&part.to_string_lossy()).into_owned(), len))
            })
            .collect();
        let said = match &kept[..] {
            [] => return,
            [(part, len)] => format!("{} kept in {part}", human_bytes(*len)),
            many => {
                format!("{} kept in {} .part files", human_bytes(many.iter().map(|(_, len)| len).sum()), many.len())
            }
        };
        crate::say!("{said}; resume with: {}", escaped(&self.command));
    }
}

/// `word` as a shell reads it back: as it is when it holds nothing the
/// shell would change, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
