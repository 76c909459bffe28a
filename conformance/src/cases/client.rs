//! Client cases: a client binary against a real server over the fixture,
//! or against a scripted server that misbehaves on purpose. Each checks the
//! exit status, the message, and what is left on disk: DEST only when
//! every byte arrived, and a `.part` holding only bytes that really came.

use std::path::{Path, PathBuf};
use std::process::Output;

use tempfile::TempDir;

use super::{Case, ClientContext, Run, ensure};
use crate::Check;
use crate::script::{Script, expect_request};
use crate::wire::{WAIT, Wire, same_bytes};

macro_rules! case {
    ($id:literal, $spec:literal, $description:literal, $run:expr) => {
        Case { id: $id, spec: $spec, description: $description, run: Run::Client($run) }
    };
}

/// The client cases, in the order they are reported.
pub const CASES: &[Case] = &[
    case!("client.save", "§3", "saves a file byte-identical under the name -o gives, no .part left", save),
    case!(
        "client.save-into-folder",
        "§3",
        "-o naming an existing folder saves under the path's last component",
        save_into_folder
    ),
    case!(
        "client.default-dest",
        "§3",
        "without -o and off a terminal, saves under the last component here",
        default_dest
    ),
    case!("client.no-overwrite", "§3", "an existing DEST is left alone without --force: exit 1", no_overwrite),
    case!("client.force", "§3", "--force replaces an existing DEST", force),
    case!("client.stdout", "§3", "-o - writes the bytes to stdout", stdout),
    case!("client.several", "§2", "several paths over one connection, each saved under its last component", several),
    case!("client.same-name", "§3", "two paths with the same last component are a usage error: exit 2", same_name),
    case!("client.missing", "§4", "NOT_FOUND exits 1 naming the path and code, and creates nothing", missing),
    case!(
        "client.missing-among-several",
        "§4",
        "one missing path fails alone; the others are saved; exit 1",
        missing_among
    ),
    case!("client.verify", "§3", "--verify checks the saved bytes against SUM", verify),
    case!(
        "client.verify-mismatch",
        "§6",
        "a digest that does not match fails loudly and leaves no DEST",
        verify_mismatch
    ),
    case!(
        "client.interrupted-resume",
        "§6",
        "a body cut short leaves only .part; --continue completes it, verified",
        resume
    ),
    case!(
        "client.closed-before-header",
        "§6",
        "a server closing before its answer fails cleanly",
        closed_before_header
    ),
    case!("client.bad-size", "§3", "an OK header with a non-numeric size is a protocol error", bad_size),
    case!("client.stalled", "§6", "a server that stalls mid-body is given up on after --timeout", stalled),
    case!("client.not-ferry", "§1", "an SSH banner is reported as not a FERRY/1 server", not_ferry),
    case!("client.busy", "§1", "ERR BUSY instead of a greeting is reported as busy", busy),
];

/// The file most cases fetch: big enough to take many reads.
const FILE: &str = "one-m.bin";

/// Runs the client with `args`, in `dir`, stdin not a terminal.
fn client(context: &ClientContext<'_>, dir: &Path, args: &[&str]) -> Result<Output, String> {
    assert_cmd::Command::new(&context.client.binary)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .timeout(WAIT)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", context.client.binary.display()))
}

/// Runs `get` against the real server.
fn get(context: &ClientContext<'_>, dir: &Path, args: &[&str]) -> Result<Output, String> {
    let addr = context.server.addr.to_string();
    let mut all = vec!["get", addr.as_str()];
    all.extend_from_slice(args);
    client(context, dir, &all)
}

fn scratch() -> Result<TempDir, String> {
    tempfile::Builder::new().prefix("ferry-client-").tempdir().map_err(|e| format!("temp dir: {e}"))
}

fn status(output: &Output, expected: i32) -> Check {
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure(output.status.code() == Some(expected), || {
        format!("exit status {:?}, expected {expected}; stderr: {}", output.status.code(), stderr.trim())
    })
}

fn stderr_names(output: &Output, words: &[&str]) -> Check {
    let stderr = String::from_utf8_lossy(&output.stderr);
    for word in words {
        ensure(stderr.contains(word), || format!("the message {:?} does not mention {word:?}", stderr.trim()))?;
    }
    Ok(())
}

fn saved(path: &Path, expected: &[u8]) -> Check {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    same_bytes(&path.display().to_string(), &bytes, expected)?;
    let part = part_of(path);
    ensure(!part.exists(), || format!("{} was left behind", part.display()))
}

fn absent(path: &Path) -> Check {
    ensure(!path.exists(), || format!("{} exists, but must not", path.display()))
}

fn empty_dir(dir: &Path) -> Check {
    let names: Vec<_> = std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten().map(|e| e.file_name()).collect();
    ensure(names.is_empty(), || format!("the client created {names:?}"))
}

fn part_of(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}

fn save(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin"])?;
    status(&output, 0)?;
    saved(&dir.path().join("copy.bin"), context.fixture.bytes(FILE))
}

fn save_into_folder(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    std::fs::create_dir(dir.path().join("into")).map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &["a/b/c/nested.txt", "-o", "into"])?;
    status(&output, 0)?;
    saved(&dir.path().join("into/nested.txt"), context.fixture.bytes("a/b/c/nested.txt"))
}

fn default_dest(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &["with space/naïve café.txt"])?;
    status(&output, 0)?;
    saved(&dir.path().join("naïve café.txt"), context.fixture.bytes("with space/naïve café.txt"))
}

fn no_overwrite(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let dest = dir.path().join("copy.bin");
    std::fs::write(&dest, b"precious").map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin"])?;
    status(&output, 1)?;
    stderr_names(&output, &["copy.bin"])?;
    let kept = std::fs::read(&dest).map_err(|e| e.to_string())?;
    ensure(kept == b"precious", || "the existing DEST was changed".into())
}

fn force(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    std::fs::write(dir.path().join("copy.bin"), b"old").map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin", "--force"])?;
    status(&output, 0)?;
    saved(&dir.path().join("copy.bin"), context.fixture.bytes(FILE))
}

fn stdout(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &[FILE, "-o", "-"])?;
    status(&output, 0)?;
    same_bytes("stdout", &output.stdout, context.fixture.bytes(FILE))?;
    empty_dir(dir.path())
}

fn several(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let paths = [FILE, "a/b/c/nested.txt", "with space/naïve café.txt", "empty", "sub/é.txt"];
    let mut args = paths.to_vec();
    args.extend(["-o", "."]);
    let output = get(context, dir.path(), &args)?;
    status(&output, 0)?;
    for path in paths {
        let name = path.rsplit('/').next().unwrap_or(path);
        saved(&dir.path().join(name), context.fixture.bytes(path))?;
    }
    Ok(())
}

fn same_name(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &["sub/x.txt", "other/x.txt"])?;
    status(&output, 2)?;
    stderr_names(&output, &["x.txt"])?;
    empty_dir(dir.path())
}

fn missing(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &["docs/x.pdf"])?;
    status(&output, 1)?;
    stderr_names(&output, &["docs/x.pdf", "NOT_FOUND"])?;
    empty_dir(dir.path())
}

fn missing_among(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &["one-byte", "docs/x.pdf", "eight-k.bin"])?;
    status(&output, 1)?;
    stderr_names(&output, &["docs/x.pdf", "NOT_FOUND"])?;
    saved(&dir.path().join("one-byte"), context.fixture.bytes("one-byte"))?;
    saved(&dir.path().join("eight-k.bin"), context.fixture.bytes("eight-k.bin"))?;
    absent(&dir.path().join("x.pdf"))?;
    absent(&dir.path().join("x.pdf.part"))
}

fn verify(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin", "--verify"])?;
    status(&output, 0)?;
    saved(&dir.path().join("copy.bin"), context.fixture.bytes(FILE))
}

/// Plays a greeting and answers the client's first request with `answer`.
fn scripted(answer: impl FnOnce(&mut Wire) -> Check + Send + 'static) -> Result<Script, String> {
    Script::start(move |wire| {
        wire.send(b"FERRY/1 script\n")?;
        answer(wire)
    })
}

/// Runs `get` against a scripted server.
fn get_from(context: &ClientContext<'_>, script: &Script, dir: &Path, args: &[&str]) -> Result<Output, String> {
    let addr = script.addr.to_string();
    let mut all = vec!["get", addr.as_str()];
    all.extend_from_slice(args);
    client(context, dir, &all)
}

fn verify_mismatch(context: &ClientContext<'_>) -> Check {
    let body = b"genuine bytes\n";
    let script = scripted(move |wire| {
        expect_request(wire, "GET x.txt")?;
        expect_request(wire, "SUM x.txt")?;
        wire.send(format!("OK {}\n", body.len()).as_bytes())?;
        wire.send(body)?;
        let wrong = blake3::hash(b"other bytes").to_hex();
        wire.send(format!("OK 64\n{wrong}").as_bytes())?;
        wire.send(b"BYE\n")
    })?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt", "--verify"])?;
    status(&output, 1)?;
    stderr_names(&output, &["x.txt"])?;
    absent(&dir.path().join("x.txt"))?;
    script.verdict()
}

fn resume(context: &ClientContext<'_>) -> Check {
    let bytes = context.fixture.bytes(FILE).to_vec();
    let half = bytes.len() / 2;
    let sent = bytes[..half].to_vec();
    let len = bytes.len();
    // A server that dies mid-body: it sends half, then its socket closes.
    let script = scripted(move |wire| {
        expect_request(wire, &format!("GET {FILE}"))?;
        wire.send(format!("OK {len}\n").as_bytes())?;
        wire.send(&sent)
    })?;
    let dir = scratch()?;
    let dest = dir.path().join("copy.bin");
    let output = get_from(context, &script, dir.path(), &[FILE, "-o", "copy.bin"])?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &[FILE])?;
    absent(&dest)?;
    let part = std::fs::read(part_of(&dest)).map_err(|e| format!("no .part after the cut: {e}"))?;
    same_bytes(".part after the cut", &part, &bytes[..half])?;

    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin", "--continue"])?;
    status(&output, 0)?;
    saved(&dest, &bytes)
}

/// Checks the outcome of a download from a misbehaving server: exit 1, a
/// message naming `words`, no DEST, and a `.part` holding at most `arrived`.
fn failed_cleanly(dir: &Path, output: &Output, words: &[&str], arrived: &[u8]) -> Check {
    status(output, 1)?;
    stderr_names(output, words)?;
    let dest = dir.join("x.txt");
    absent(&dest)?;
    match std::fs::read(part_of(&dest)) {
        Ok(part) => same_bytes(".part", &part, arrived),
        Err(_) => Ok(()),
    }
}

fn closed_before_header(context: &ClientContext<'_>) -> Check {
    let script = scripted(|wire| expect_request(wire, "GET x.txt").map(drop))?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt"])?;
    script.verdict()?;
    let addr = script.addr.to_string();
    failed_cleanly(dir.path(), &output, &[&addr], b"")
}

fn bad_size(context: &ClientContext<'_>) -> Check {
    let script = scripted(|wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(b"OK lots\nabc")
    })?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt"])?;
    script.verdict()?;
    let addr = script.addr.to_string();
    failed_cleanly(dir.path(), &output, &[&addr], b"")
}

fn stalled(context: &ClientContext<'_>) -> Check {
    let (release, stalled) = std::sync::mpsc::channel::<()>();
    let script = scripted(move |wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(b"OK 100\n0123456789")?;
        // Hold the connection open, silent, until the client has given up.
        let _ = stalled.recv_timeout(WAIT);
        Ok(())
    })?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt", "--timeout", "1"])?;
    let _ = release.send(());
    script.verdict()?;
    failed_cleanly(dir.path(), &output, &["x.txt"], b"0123456789")
}

fn not_ferry(context: &ClientContext<'_>) -> Check {
    let script = Script::start(|wire| wire.send(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt"])?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &["not a FERRY/1 server"])?;
    empty_dir(dir.path())
}

fn busy(context: &ClientContext<'_>) -> Check {
    let script = Script::start(|wire| wire.send(b"ERR BUSY 2 connections already\n"))?;
    let dir = scratch()?;
    let output = get_from(context, &script, dir.path(), &["x.txt"])?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &["busy"])?;
    empty_dir(dir.path())
}
