//! Asking on the terminal where a download should go.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};

use ferry_engine::WirePath;
use ferry_engine::client::SaveError;
use ferry_engine::show::escaped;

use super::*;

/// Asks on the terminal where to save `path`, offering `default`, until the
/// answer is a place a download can go: `~` is the home folder, a folder
/// means "into it", an existing file is asked about again unless `--force`
/// was given, and end-of-input (Ctrl-D) cancels.
pub(crate) fn ask(path: &WirePath, default: &Path, force: bool) -> Result<PathBuf, SaveError> {
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
pub(crate) fn expand_home(answer: &str) -> Option<PathBuf> {
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
