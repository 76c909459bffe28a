//! Running ferry's client for a case and checking what it left: its exit
//! status and words, and the files it saved or must not have.

use std::path::{Path, PathBuf};
use std::process::Output;

use tempfile::TempDir;

use super::{ClientContext, ensure};
use crate::Check;
use crate::implementation::ClientLaunch;
use crate::wire::{WAIT, same_bytes};

pub(super) fn absent(path: &Path) -> Check {
    ensure(!path.exists(), || format!("{} exists, but must not", path.display()))
}

/// Runs ferry's `get` with `args` against the real server.
pub(super) fn get(context: &ClientContext<'_>, dir: &Path, args: &[&str]) -> Result<Output, String> {
    get_from_addr(context, &context.server.addr.to_string(), dir, args)
}

/// Runs ferry's `get` with `args` against `addr`.
pub(super) fn get_from_addr(
    context: &ClientContext<'_>,
    addr: &str,
    dir: &Path,
    args: &[&str],
) -> Result<Output, String> {
    let Some(ClientLaunch::Ferry(binary)) = &context.client.client else {
        return Err("this case needs a client with ferry's command line".into());
    };
    let mut command = std::process::Command::new(binary);
    command.args(["get", addr]).args(args);
    run(command, dir, &binary.display().to_string())
}

pub(super) fn saved(path: &Path, expected: &[u8]) -> Check {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    same_bytes(&path.display().to_string(), &bytes, expected)?;
    let part = part_of(path);
    ensure(!part.exists(), || format!("{} was left behind", part.display()))
}

pub(super) fn scratch() -> Result<TempDir, String> {
    tempfile::Builder::new().prefix("ferry-client-").tempdir().map_err(|e| format!("temp dir: {e}"))
}

pub(super) fn status(output: &Output, expected: i32) -> Check {
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure(output.status.code() == Some(expected), || match output.status.code() {
        Some(code) => format!("exit status {code}, expected {expected}; stderr: {}", stderr.trim()),
        None => format!(
            "killed after {} s with no exit, expected exit status {expected}; stderr: {}",
            WAIT.as_secs(),
            stderr.trim()
        ),
    })
}

pub(super) fn stderr_names(output: &Output, words: &[&str]) -> Check {
    let stderr = String::from_utf8_lossy(&output.stderr);
    for word in words {
        ensure(stderr.contains(word), || format!("the message {:?} does not mention {word:?}", stderr.trim()))?;
    }
    Ok(())
}

/// Runs a command in `dir`, stdin not a terminal, within [`WAIT`].
pub(super) fn run(command: std::process::Command, dir: &Path, what: &str) -> Result<Output, String> {
    assert_cmd::Command::from_std(command)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .timeout(WAIT)
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))
}

pub(super) fn part_of(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}
