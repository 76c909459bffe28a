//! Client cases: a client binary against a real server over the fixture,
//! or against a scripted server that misbehaves on purpose. Each checks the
//! exit status, the message, and what is left on disk: DEST only when
//! every byte arrived, and a `.part` holding only bytes that really came.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use super::outcome::{absent, get, get_from_addr, part_of, run, saved, scratch, status, stderr_names};
use super::{Case, ClientContext, Needs, Run, ensure, tls, tree};
use crate::Check;
use crate::implementation::ClientLaunch;
use crate::process::shell_quote;
use crate::script::{Script, expect_request};
use crate::wire::{WAIT, Wire, same_bytes};

macro_rules! case {
    ($id:literal, $spec:literal, $description:literal, $run:expr) => {
        case!($id, $spec, $description, Needs::Nothing, $run)
    };
    ($id:literal, $spec:literal, $description:literal, $needs:expr, $run:expr) => {
        Case { id: $id, spec: $spec, description: $description, needs: $needs, run: Run::Client($run) }
    };
}

/// The client cases, in the order they are reported.
pub const CASES: &[Case] = &[
    case!(
        "client.tls.get",
        "§8",
        "get and ls over TLS, pinned, with the token (--token-file, FERRY_TOKEN): the exact bytes",
        Needs::Tls,
        tls::client_tls_get
    ),
    case!(
        "client.tls.wrong-pin",
        "§8",
        "a server whose fingerprint is not the pinned one is refused, both named; nothing written",
        Needs::Tls,
        tls::client_tls_wrong_pin
    ),
    case!(
        "client.tls.token",
        "§2",
        "a missing or wrong token fails, said as such, quickly; nothing written",
        Needs::Tls,
        tls::client_tls_token
    ),
    case!(
        "client.tls.plain-meets-tls",
        "§8",
        "a plain client meeting a TLS server fails quickly, suggesting --tls",
        Needs::Tls,
        tls::client_plain_meets_tls
    ),
    case!(
        "client.tls.tls-meets-plain",
        "§8",
        "a TLS client meeting a plain server fails quickly: drop --tls",
        Needs::Tls,
        tls::client_tls_meets_plain
    ),
    case!(
        "client.tls.unknown",
        "§8",
        "an unknown server, off a terminal, is refused with the --pin to use; nothing remembered",
        Needs::Tls,
        tls::client_tls_unknown
    ),
    case!(
        "client.tls.known",
        "§8",
        "a server whose fingerprint known_servers remembers is trusted",
        Needs::Tls,
        tls::client_tls_known
    ),
    case!(
        "client.tls.changed",
        "§8",
        "a server whose fingerprint changed is refused loudly, naming the file and line",
        Needs::Tls,
        tls::client_tls_changed
    ),
    case!("client.save", "§3", "saves a file byte-identical under the name asked for, no .part left", save),
    case!(
        "client.tree.copy",
        "§3",
        "get -r of a tree (six deep, spaces, non-ASCII, empty file and folder, links): byte-identical, with the server's times",
        Needs::FerryClient,
        tree::client_tree_copy
    ),
    case!(
        "client.tree.continue",
        "§3",
        "get -r --continue skips files already complete (size and time), resumes a .part, fetches the rest",
        Needs::FerryClient,
        tree::client_tree_continue
    ),
    case!(
        "client.tree.hostile",
        "§3",
        "a TREE naming ../, a / inside a name, an absolute path, NUL, duplicates: each refused and named, nothing outside DEST",
        Needs::FerryClient,
        tree::client_tree_hostile
    ),
    case!(
        "client.tree.endless",
        "§3",
        "a TREE that never ends: the client stops at --max-entries, says so, writes nothing",
        Needs::FerryClient,
        tree::client_tree_endless
    ),
    case!(
        "client.tree.cycle",
        "§3",
        "a server without TREE whose LIST shows a folder inside itself without end: the walk stops at --max-depth, said",
        Needs::FerryClient,
        tree::client_tree_cycle
    ),
    case!(
        "client.tree.without-tree",
        "§3",
        "a server that answers TREE with BAD_REQUEST: get -r walks with LIST and copies the tree",
        Needs::FerryClient,
        tree::client_tree_without_tree
    ),
    case!("client.large", "§3", "saves a 64 MiB file byte-identical", large),
    case!(
        "client.save-into-folder",
        "§3",
        "-o naming an existing folder saves under the path's last component",
        Needs::FerryClient,
        save_into_folder
    ),
    case!(
        "client.default-dest",
        "§3",
        "without -o and off a terminal, saves under the last component here",
        Needs::FerryClient,
        default_dest
    ),
    case!(
        "client.no-overwrite",
        "§3",
        "an existing DEST is left alone without --force: exit 1",
        Needs::FerryClient,
        no_overwrite
    ),
    case!("client.force", "§3", "--force replaces an existing DEST", Needs::FerryClient, force),
    case!("client.stdout", "§3", "-o - writes the bytes to stdout", Needs::FerryClient, stdout),
    case!(
        "client.stdout-verify",
        "§3",
        "-o - with --verify hashes the bytes on their way out and checks SUM",
        Needs::FerryClient,
        stdout_verify
    ),
    case!(
        "client.several",
        "§2",
        "several paths over one connection, each saved under its last component",
        Needs::FerryClient,
        several
    ),
    case!(
        "client.same-name",
        "§3",
        "two paths with the same last component are a usage error: exit 2",
        Needs::FerryClient,
        same_name
    ),
    case!("client.missing", "§4", "NOT_FOUND fails naming the path and code, and creates nothing", missing),
    case!(
        "client.missing-among-several",
        "§4",
        "one missing path fails alone; the others are saved; exit 1",
        Needs::FerryClient,
        missing_among
    ),
    case!("client.verify", "§3", "--verify checks the saved bytes against SUM", Needs::FerryClient, verify),
    case!(
        "client.verify-mismatch",
        "§6",
        "a digest that does not match fails loudly and leaves no DEST",
        Needs::FerryClient,
        verify_mismatch
    ),
    case!(
        "client.cut-short",
        "§6",
        "a body cut short fails, leaves no DEST, and a .part of only what arrived",
        cut_short
    ),
    case!(
        "client.interrupted-resume",
        "§6",
        "after a cut (of a large body and of a small one), --continue completes the .part from a real server, verified",
        Needs::FerryClient,
        resume
    ),
    case!(
        "client.closed-before-header",
        "§6",
        "a server closing before its answer fails cleanly",
        closed_before_header
    ),
    case!("client.bad-size", "§3", "an OK header with a non-numeric size is a protocol error", bad_size),
    case!("client.overflow-size", "§3", "an OK size past u64 is a protocol error", overflow_size),
    case!("client.huge-size", "§6", "an OK size larger than what comes is a short body, not a success", huge_size),
    case!(
        "client.ls.giant-listing",
        "§3",
        "ls of a 16 MiB listing prints every entry while holding less than 12 MiB",
        Needs::FerryClient,
        giant_listing
    ),
    case!(
        "client.err-codes",
        "§4",
        "every ERR code fails the download, naming the code, and creates nothing",
        err_codes
    ),
    case!(
        "client.stalled",
        "§6",
        "a server that stalls mid-body is given up on after --timeout",
        Needs::FerryClient,
        stalled
    ),
    case!("client.not-ferry", "§1", "an SSH banner is reported as not a FERRY/1 server", |c| {
        not_ferry(c, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    }),
    case!("client.http-banner", "§1", "an HTTP answer is reported as not a FERRY/1 server", |c| {
        not_ferry(c, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    }),
    case!("client.busy", "§1", "ERR BUSY instead of a greeting is reported as busy", busy),
    case!(
        "client.control-bytes",
        "§4",
        "control bytes in an ERR message or a BUSY greeting never reach the terminal",
        control_bytes
    ),
    case!("client.symlink-part", "§3", "a symlink planted at DEST.part never gets its target written", symlink_part),
    case!(
        "client.symlink-dest",
        "§3",
        "a symlink at DEST is refused; with --force the link is replaced, its target untouched",
        Needs::FerryClient,
        symlink_dest
    ),
    case!("client.fifo-dest", "§3", "a FIFO named as DEST receives the bytes and stays a FIFO", fifo_dest),
    case!(
        "client.device-dest",
        "§3",
        "a character device named as DEST receives the bytes and stays a device",
        device_dest
    ),
    case!("client.same-dest", "§3", "two downloads into one DEST at once never leave a wrong file", same_dest),
    case!(
        "client.batch-conflicts",
        "§3",
        "in a batch, each DEST in the way fails alone, named; the rest are saved",
        Needs::FerryClient,
        batch_conflicts
    ),
    case!(
        "client.trickle",
        "§6",
        "a body trickled a byte at a time fails within twice --timeout",
        Needs::FerryClient,
        trickle
    ),
];

/// The file most cases fetch: big enough to take many reads.
const FILE: &str = "one-m.bin";
/// A file that fits one read.
const SMALL: &str = "eight-k.bin";

/// Fetches one `path` from `addr` into `dest` (relative to `dir`): the one
/// thing every client can be asked to do.
fn fetch(context: &ClientContext<'_>, addr: &str, dir: &Path, path: &str, dest: &str) -> Result<Output, String> {
    match context.client.client.as_ref().ok_or("the implementation has no client")? {
        ClientLaunch::Ferry(binary) => {
            let mut command = std::process::Command::new(binary);
            command.args(["get", addr, path, "-o", dest]);
            run(command, dir, &binary.display().to_string())
        }
        ClientLaunch::Template(template) => {
            let line = template
                .replace("{addr}", &shell_quote(addr))
                .replace("{path}", &shell_quote(path))
                .replace("{dest}", &shell_quote(dest));
            let mut command = std::process::Command::new("sh");
            command.arg("-c").arg(format!("exec {line}"));
            run(command, dir, &line)
        }
    }
}

fn empty_dir(dir: &Path) -> Check {
    let names: Vec<_> = std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten().map(|e| e.file_name()).collect();
    ensure(names.is_empty(), || format!("the client created {names:?}"))
}

fn save(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), FILE, "copy.bin")?;
    status(&output, 0)?;
    saved(&dir.path().join("copy.bin"), context.fixture.bytes(FILE))
}

fn large(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let name = "sixty-four-m.bin";
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), name, "copy.bin")?;
    status(&output, 0)?;
    saved(&dir.path().join("copy.bin"), context.fixture.bytes(name))
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

fn stdout_verify(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &[FILE, "-o", "-", "--verify"])?;
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
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), "docs/x.pdf", "x.pdf")?;
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

/// Runs ferry's `get` with `args` against a scripted server.
fn get_from(context: &ClientContext<'_>, script: &Script, dir: &Path, args: &[&str]) -> Result<Output, String> {
    get_from_addr(context, &script.addr.to_string(), dir, args)
}

/// Fetches `x.txt` into `x.txt` from a scripted server: every client can.
fn fetch_from(context: &ClientContext<'_>, script: &Script, dir: &Path) -> Result<Output, String> {
    fetch(context, &script.addr.to_string(), dir, "x.txt", "x.txt")
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

/// A server that dies mid-body: asked for `path`, it answers with the
/// length of the fixture's `file` and sends half of its bytes, then its
/// socket closes. Returns the script and the bytes it sent.
fn dying(context: &ClientContext<'_>, path: &'static str, file: &str) -> Result<(Script, Vec<u8>), String> {
    let bytes = context.fixture.bytes(file);
    let sent = bytes[..bytes.len() / 2].to_vec();
    let (body, len) = (sent.clone(), bytes.len());
    let script = scripted(move |wire| {
        expect_request(wire, &format!("GET {path}"))?;
        wire.send(format!("OK {len}\n").as_bytes())?;
        wire.send(&body)
    })?;
    Ok((script, sent))
}

fn cut_short(context: &ClientContext<'_>) -> Check {
    let (script, sent) = dying(context, "x.txt", FILE)?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    failed_cleanly(dir.path(), &output, &["x.txt"], &sent)
}

fn resume(context: &ClientContext<'_>) -> Check {
    // A large body and a small one: a client may hold a small body in
    // memory until it is whole, but what arrived before a cut still belongs
    // in the .part.
    for file in [FILE, SMALL] {
        let (script, sent) = dying(context, file, file)?;
        let dir = scratch()?;
        let dest = dir.path().join("copy.bin");
        let output = get_from(context, &script, dir.path(), &[file, "-o", "copy.bin"])?;
        script.verdict()?;
        status(&output, 1)?;
        stderr_names(&output, &[file])?;
        absent(&dest)?;
        let part = std::fs::read(part_of(&dest)).map_err(|e| format!("{file}: no .part after the cut: {e}"))?;
        same_bytes(&format!("{file}: .part after the cut"), &part, &sent)?;

        let output = get(context, dir.path(), &[file, "-o", "copy.bin", "--continue"])?;
        status(&output, 0)?;
        saved(&dest, context.fixture.bytes(file))?;
    }
    Ok(())
}

/// Checks the outcome of a download from a misbehaving server: exit 1, a
/// message naming `words`, no DEST, and a `.part` holding at most `arrived`.
fn failed_cleanly(dir: &Path, output: &Output, words: &[&str], arrived: &[u8]) -> Check {
    ensure(!output.status.success(), || "the client reported success".into())?;
    stderr_names(output, words)?;
    let dest = dir.join("x.txt");
    absent(&dest)?;
    match std::fs::read(part_of(&dest)) {
        Ok(part) => ensure(arrived.starts_with(&part), || {
            format!(".part holds {} bytes that are not a prefix of the {} that arrived", part.len(), arrived.len())
        }),
        Err(_) => Ok(()),
    }
}

fn closed_before_header(context: &ClientContext<'_>) -> Check {
    misbehaving(context, b"", b"")
}

/// Answers `GET x.txt` with `answer` and closes; the client must fail
/// cleanly, naming the server, with at most `body` in its `.part`.
fn misbehaving(context: &ClientContext<'_>, answer: &'static [u8], body: &'static [u8]) -> Check {
    let script = scripted(move |wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(answer)
    })?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    let addr = script.addr.to_string();
    failed_cleanly(dir.path(), &output, &[&addr], body)
}

fn bad_size(context: &ClientContext<'_>) -> Check {
    misbehaving(context, b"OK lots\nabc", b"")
}

fn overflow_size(context: &ClientContext<'_>) -> Check {
    misbehaving(context, b"OK 18446744073709551616\nabc", b"")
}

fn huge_size(context: &ClientContext<'_>) -> Check {
    let script = scripted(|wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(b"OK 18446744073709551615\n0123456789")
    })?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    failed_cleanly(dir.path(), &output, &["x.txt"], b"0123456789")
}

/// Every code of SPEC.md §4 that can answer a GET.
const CODES: [&str; 9] = [
    "BAD_REQUEST",
    "NOT_FOUND",
    "FORBIDDEN",
    "NOT_A_FILE",
    "NOT_A_DIRECTORY",
    "RANGE",
    "INTERNAL",
    "TOO_LONG",
    "TIMEOUT",
];

fn err_codes(context: &ClientContext<'_>) -> Check {
    for code in CODES {
        let script = scripted(move |wire| {
            expect_request(wire, "GET x.txt")?;
            wire.send(format!("ERR {code} x.txt: refused by the script\n").as_bytes())
        })?;
        let dir = scratch()?;
        let output = fetch_from(context, &script, dir.path())?;
        script.verdict()?;
        status(&output, 1).map_err(|e| format!("ERR {code}: {e}"))?;
        stderr_names(&output, &["x.txt", code]).map_err(|e| format!("ERR {code}: {e}"))?;
        empty_dir(dir.path()).map_err(|e| format!("ERR {code}: {e}"))?;
    }
    Ok(())
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

fn not_ferry(context: &ClientContext<'_>, banner: &'static [u8]) -> Check {
    let script = Script::start(move |wire| wire.send(banner))?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &["not a FERRY/1 server"])?;
    empty_dir(dir.path())
}

fn busy(context: &ClientContext<'_>) -> Check {
    let script = Script::start(|wire| wire.send(b"ERR BUSY 2 connections already\n"))?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &["busy"])?;
    empty_dir(dir.path())
}

/// Checks that nothing the client printed holds a control byte other than
/// LF and TAB: no server-chosen escape sequence reached the terminal.
fn no_control_bytes(output: &Output) -> Check {
    for (name, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        if let Some(at) = bytes.iter().position(|&b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f) {
            return Err(format!(
                "{name} carries the control byte 0x{:02x} at {at}: {:?}",
                bytes[at],
                String::from_utf8_lossy(bytes)
            ));
        }
    }
    Ok(())
}

const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[1;31mred\r\x7f\x08";

fn control_bytes(context: &ClientContext<'_>) -> Check {
    let script = scripted(|wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(format!("ERR NOT_FOUND x.txt {HOSTILE}\n").as_bytes())
    })?;
    let dir = scratch()?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    status(&output, 1)?;
    stderr_names(&output, &["NOT_FOUND"])?;
    no_control_bytes(&output).map_err(|e| format!("ERR message: {e}"))?;

    let script = Script::start(|wire| wire.send(format!("ERR BUSY {HOSTILE}\n").as_bytes()))?;
    let output = fetch_from(context, &script, dir.path())?;
    script.verdict()?;
    status(&output, 1)?;
    no_control_bytes(&output).map_err(|e| format!("BUSY greeting: {e}"))?;
    empty_dir(dir.path())
}

/// A file outside the download folder that a planted link points at.
fn victim(dir: &Path) -> Result<PathBuf, String> {
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"precious").map_err(|e| e.to_string())?;
    Ok(victim)
}

fn untouched(victim: &Path) -> Check {
    let kept = std::fs::read(victim).map_err(|e| format!("{}: {e}", victim.display()))?;
    ensure(kept == b"precious", || format!("the link's target {} was written", victim.display()))
}

/// DEST, if the client left one, is a regular file with exactly `expected`.
fn regular_or_absent(dest: &Path, expected: &[u8]) -> Check {
    match std::fs::symlink_metadata(dest) {
        Err(_) => Ok(()),
        Ok(metadata) if metadata.is_file() => {
            let bytes = std::fs::read(dest).map_err(|e| e.to_string())?;
            same_bytes(&dest.display().to_string(), &bytes, expected)
        }
        Ok(_) => Err(format!("{} is left as a link or special file", dest.display())),
    }
}

fn symlink_part(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let victim = victim(dir.path())?;
    std::fs::create_dir(dir.path().join("d")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("../victim.txt", dir.path().join("d/copy.bin.part")).map_err(|e| e.to_string())?;
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), FILE, "d/copy.bin")?;
    untouched(&victim)?;
    let dest = dir.path().join("d/copy.bin");
    regular_or_absent(&dest, context.fixture.bytes(FILE))?;
    if output.status.success() {
        ensure(dest.exists(), || "exit 0 but no DEST".into())
    } else {
        stderr_names(&output, &["copy.bin.part"])
    }
}

fn symlink_dest(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let victim = victim(dir.path())?;
    let dest = dir.path().join("copy.bin");
    std::os::unix::fs::symlink("victim.txt", &dest).map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin"])?;
    status(&output, 1)?;
    stderr_names(&output, &["copy.bin"])?;
    untouched(&victim)?;
    let output = get(context, dir.path(), &[FILE, "-o", "copy.bin", "--force"])?;
    status(&output, 0)?;
    untouched(&victim)?;
    let metadata = std::fs::symlink_metadata(&dest).map_err(|e| e.to_string())?;
    ensure(metadata.is_file(), || "DEST is still a link after --force".into())?;
    saved(&dest, context.fixture.bytes(FILE))
}

/// Reads everything written into the FIFO at `path`, on a thread of its own.
fn drain_fifo(path: &Path) -> std::thread::JoinHandle<Result<Vec<u8>, String>> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut fifo = std::fs::File::open(&path).map_err(|e| format!("open the FIFO to read: {e}"))?;
        std::io::Read::read_to_end(&mut fifo, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    })
}

fn fifo_dest(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let pipe = dir.path().join("pipe");
    rustix::fs::mknodat(rustix::fs::CWD, &pipe, rustix::fs::FileType::Fifo, 0o600.into(), 0)
        .map_err(|e| format!("mkfifo: {e}"))?;
    let reader = drain_fifo(&pipe);
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), FILE, "pipe");
    // If the client never opened the FIFO, the reader is still waiting for a
    // writer: open and close one so that it ends.
    let _ =
        std::fs::OpenOptions::new().write(true).custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32).open(&pipe);
    let got = reader.join().map_err(|_| "the FIFO reader panicked".to_owned())??;
    let output = output?;
    status(&output, 0)?;
    let kind = std::fs::symlink_metadata(&pipe).map_err(|e| e.to_string())?.file_type();
    ensure(kind.is_fifo(), || format!("the FIFO was replaced by {kind:?}"))?;
    absent(&part_of(&pipe))?;
    same_bytes("what came through the FIFO", &got, context.fixture.bytes(FILE))
}

fn device_dest(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    // A null device of our own where we may make one (root); elsewhere the
    // system's, which an unprivileged client could not replace anyway.
    let own = dir.path().join("null");
    let made = rustix::fs::mknodat(
        rustix::fs::CWD,
        &own,
        rustix::fs::FileType::CharacterDevice,
        0o666.into(),
        rustix::fs::makedev(1, 3),
    );
    let device = if made.is_ok() { own } else { PathBuf::from("/dev/null") };
    let output = fetch(context, &context.server.addr.to_string(), dir.path(), FILE, &device.to_string_lossy())?;
    status(&output, 0)?;
    let kind = std::fs::symlink_metadata(&device).map_err(|e| e.to_string())?.file_type();
    ensure(kind.is_char_device(), || format!("{} was replaced by {kind:?}", device.display()))?;
    absent(&part_of(&device))
}

/// Waits, a bounded time, for `condition`.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Check {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        if std::time::Instant::now() > deadline {
            return Err(format!("gave up waiting for {what}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

fn same_dest(context: &ClientContext<'_>) -> Check {
    // The first download stalls half-way, on a scripted server, until the
    // second one (from the real server, into the same DEST) has ended.
    let bytes = context.fixture.bytes(FILE).to_vec();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (half_sent, half) = std::sync::mpsc::channel::<()>();
    let script = scripted(move |wire| {
        expect_request(wire, &format!("GET {FILE}"))?;
        wire.send(format!("OK {}\n", bytes.len()).as_bytes())?;
        wire.send(&bytes[..bytes.len() / 2])?;
        let _ = half_sent.send(());
        let _ = held.recv_timeout(WAIT);
        wire.send(&bytes[bytes.len() / 2..])
    })?;
    let dir = scratch()?;
    let first = spawn_fetch(context, &script.addr.to_string(), dir.path(), FILE, "copy.bin")?;
    half.recv_timeout(WAIT).map_err(|_| "the first client never got half the body".to_owned())?;
    // The first client has the header and is writing: wait until its bytes
    // are somewhere in the folder before starting the second.
    wait_for("the first client to write", || {
        std::fs::read_dir(dir.path()).map(|entries| entries.count() > 0).unwrap_or(false)
    })?;
    let second = fetch(context, &context.server.addr.to_string(), dir.path(), FILE, "copy.bin")?;
    let _ = release.send(());
    let first = first.finish()?;
    script.verdict()?;
    let dest = dir.path().join("copy.bin");
    ensure(first.status.success() || second.status.success(), || {
        format!(
            "neither download succeeded: {} / {}",
            String::from_utf8_lossy(&first.stderr).trim(),
            String::from_utf8_lossy(&second.stderr).trim()
        )
    })?;
    saved(&dest, context.fixture.bytes(FILE))
}

/// A client process running in the background, killed if it outlives [`WAIT`].
struct Background(std::process::Child);

impl Background {
    fn finish(mut self) -> Result<Output, String> {
        wait_for("the first client to exit", || matches!(self.0.try_wait(), Ok(Some(_)))).inspect_err(|_| {
            let _ = self.0.kill();
        })?;
        let mut stderr = Vec::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_end(&mut pipe, &mut stderr);
        }
        let status = self.0.wait().map_err(|e| e.to_string())?;
        Ok(Output { status, stdout: Vec::new(), stderr })
    }
}

/// Starts [`fetch`]'s command without waiting for it.
fn spawn_fetch(
    context: &ClientContext<'_>,
    addr: &str,
    dir: &Path,
    path: &str,
    dest: &str,
) -> Result<Background, String> {
    let mut command = match context.client.client.as_ref().ok_or("the implementation has no client")? {
        ClientLaunch::Ferry(binary) => {
            let mut command = std::process::Command::new(binary);
            command.args(["get", addr, path, "-o", dest]);
            command
        }
        ClientLaunch::Template(template) => {
            let line = template
                .replace("{addr}", &shell_quote(addr))
                .replace("{path}", &shell_quote(path))
                .replace("{dest}", &shell_quote(dest));
            let mut command = std::process::Command::new("sh");
            command.arg("-c").arg(format!("exec {line}"));
            command
        }
    };
    command
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command.spawn().map(Background).map_err(|e| format!("cannot start the client: {e}"))
}

fn batch_conflicts(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    std::fs::write(dir.path().join("one-byte"), b"mine").map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("empty.part"), b"unfinished").map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &["eight-k.bin", "one-byte", "empty", "-o", "."])?;
    status(&output, 1)?;
    stderr_names(&output, &["one-byte", "empty.part"])?;
    saved(&dir.path().join("eight-k.bin"), context.fixture.bytes("eight-k.bin"))?;
    let kept = std::fs::read(dir.path().join("one-byte")).map_err(|e| e.to_string())?;
    ensure(kept == b"mine", || "an existing DEST in the batch was changed".into())?;
    let kept = std::fs::read(dir.path().join("empty.part")).map_err(|e| e.to_string())?;
    ensure(kept == b"unfinished", || "an unfinished .part in the batch was changed".into())?;
    absent(&dir.path().join("empty"))
}

fn trickle(context: &ClientContext<'_>) -> Check {
    let script = scripted(|wire| {
        expect_request(wire, "GET x.txt")?;
        wire.send(b"OK 1000\n")?;
        // A byte every 200 ms until the client hangs up (a bounded number).
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(200));
            if wire.send(b"x").is_err() {
                break;
            }
        }
        Ok(())
    })?;
    let dir = scratch()?;
    let started = std::time::Instant::now();
    let output = get_from(context, &script, dir.path(), &["x.txt", "--timeout", "1"])?;
    let took = started.elapsed();
    ensure(took < std::time::Duration::from_secs(2), || {
        format!("gave up after {:.1} s; with --timeout 1 it must within 2 s", took.as_secs_f64())
    })?;
    failed_cleanly(dir.path(), &output, &["x.txt"], &[b'x'; 100])
}

/// `ls` against a server whose listing is 16 MiB: every entry is printed,
/// and the client's peak memory (`VmHWM`, read while it runs) stays under
/// 12 MiB, less than the listing: a listing is a stream, not a buffer (§3
/// puts no bound on its length).
fn giant_listing(context: &ClientContext<'_>) -> Check {
    use std::io::Read;
    let line = format!("f 1 {}\n", "n".repeat(250)).into_bytes();
    let lines = (16 << 20) / line.len();
    let script = scripted(move |wire| {
        expect_request(wire, "LIST /")?;
        wire.send(format!("OK {}\n", lines * line.len()).as_bytes())?;
        let chunk = line.repeat(1024);
        for _ in 0..lines / 1024 {
            wire.send(&chunk)?;
        }
        wire.send(&line.repeat(lines % 1024))?;
        expect_request(wire, "QUIT")?;
        wire.send(b"BYE\n")
    })?;
    let Some(ClientLaunch::Ferry(binary)) = &context.client.client else {
        return Err("this case needs a client with ferry's command line".into());
    };
    let mut child = std::process::Command::new(binary)
        .args(["ls", &script.addr.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let pid = child.id();
    let counting = std::thread::spawn(move || {
        let (mut buffer, mut count) = (vec![0u8; 1 << 16], 0usize);
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            count += buffer[..n].iter().filter(|&&b| b == b'\n').count();
        }
        count
    });
    // The peak so far, while the process lives: read until it is gone. What
    // the memory was (anonymous, file, shared; threads) is kept as it was
    // at the highest resident size seen, to say in a failure.
    let (mut peak_kib, mut rss_kib, mut at_peak, mut samples) = (0u64, 0u64, String::new(), 0usize);

    // `spawn` can return while the child is still inside `execve`, between
    // releasing its parent and taking its new memory: for that moment its
    // status shows the memory of this (large, many-threaded) test process,
    // under the name of the thread that spawned it. The kernel renames the
    // child only once its new memory is in place, so a sample counts only
    // when the name is no longer that thread's.
    let ours = std::fs::read_to_string("/proc/thread-self/comm").map_err(|e| format!("/proc/thread-self/comm: {e}"))?;
    while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let field = |name: &str| {
            let value = status.lines().find_map(|line| line.strip_prefix(name))?;
            value.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        };
        if status.lines().find_map(|line| line.strip_prefix("Name:")).map(str::trim) == Some(ours.trim()) {
            if field("VmHWM:").is_none() && status.contains("State:\tZ") {
                break; // a zombie: it has exited
            }
            std::thread::yield_now();
            continue;
        }
        match field("VmHWM:") {
            Some(kib) => (peak_kib, samples) = (peak_kib.max(kib), samples + 1),
            None => break, // a zombie: it has exited
        }
        if let Some(rss) = field("VmRSS:").filter(|rss| *rss > rss_kib) {
            rss_kib = rss;
            at_peak = ["RssAnon:", "RssFile:", "RssShmem:", "Threads:"]
                .iter()
                .map(|name| {
                    let unit = if *name == "Threads:" { "" } else { " KiB" };
                    format!("{} {}{unit}", name.trim_end_matches(':'), field(name).unwrap_or(0))
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let printed = counting.join().map_err(|_| "the line counter panicked".to_owned())?;
    let exit = child.wait().map_err(|e| e.to_string())?;
    script.verdict()?;
    ensure(exit.success(), || format!("ls exited with {exit}"))?;
    ensure(printed == lines, || format!("ls printed {printed} entries of {lines}"))?;
    ensure(samples > 0, || format!("the memory of {} was never read while it ran", binary.display()))?;
    ensure(peak_kib < 12 << 10, || {
        format!(
            "ls held {} MiB at its peak, for a 16 MiB listing it could print as it came (at the highest \
             resident size seen, {rss_kib} KiB: {at_peak})",
            peak_kib >> 10
        )
    })
}
