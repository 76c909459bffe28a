//! Whole folders (SPEC.md §3 "TREE"): a server's TREE of the fixture's
//! `tree/`, and a client's `get -r` of it, resumed, and against scripted
//! servers whose listings lie, never end, or lack TREE.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::outcome::{absent, get, get_from_addr, saved, scratch, status, stderr_names};
use super::{ClientContext, ServerContext, ensure};
use crate::Check;
use crate::fixture::{TREE, TREE_FILES, TREE_TIME};
use crate::script::{Script, expect_request};
use crate::wire::Wire;

/// The entries of `TREE tree`, as `<kind> <size> <path>` (times apart), in
/// the order SPEC.md gives them.
fn expected_tree(context: &ServerContext<'_>) -> Vec<String> {
    let size = |name: &str| context.fixture.bytes(&format!("{TREE}/{name}")).len();
    vec![
        "d 0 a".into(),
        "d 0 a/b".into(),
        "d 0 a/b/c".into(),
        "d 0 a/b/c/d".into(),
        "d 0 a/b/c/d/e".into(),
        format!("f {} a/b/c/d/e/deep.txt", size("a/b/c/d/e/deep.txt")),
        "d 0 docs".into(),
        "d 0 docs/old".into(),
        format!("f {} docs/q3%20report.txt", size("docs/q3 report.txt")),
        "f 0 empty".into(),
        "l 0 link-dir".into(),
        format!("f {} link-file", size("docs/q3 report.txt")),
        "d 0 %C3%BC".into(),
        format!("f {} %C3%BC/na%C3%AFve%20caf%C3%A9.txt", size("ü/naïve café.txt")),
    ]
}

/// `TREE tree`: every entry, sorted name by name, each with the time the
/// fixture gave it; the link to a folder as `l`, the one outside left out.
pub(super) fn tree_folder(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    wire.send(format!("TREE {TREE}\n").as_bytes())?;
    let body = String::from_utf8(wire.ok_body()?).map_err(|e| format!("the TREE body is not UTF-8: {e}"))?;
    ensure(body.ends_with('\n') || body.is_empty(), || "the TREE body does not end in LF".into())?;
    let mut got = Vec::new();
    for line in body.lines() {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        let [kind, size, time, path] = fields[..] else {
            return Err(format!("a TREE line of fewer than four fields: {line:?}"));
        };
        ensure(time == TREE_TIME.to_string(), || {
            format!("{path}: time {time}, but the fixture gave every entry {TREE_TIME} (seconds since 1970)")
        })?;
        got.push(format!("{kind} {size} {path}"));
    }
    let expected = expected_tree(context);
    ensure(got == expected, || format!("TREE {TREE} gave\n{}\nexpected\n{}", got.join("\n"), expected.join("\n")))
}

/// `TREE` of a file, of a path out of the root, of nothing.
pub(super) fn tree_refused(context: &ServerContext<'_>) -> Check {
    let mut wire = context.connect()?;
    for (line, code) in [
        ("TREE one-byte", "NOT_A_DIRECTORY"),
        ("TREE out-dir", "FORBIDDEN"),
        ("TREE ../outside", "FORBIDDEN"),
        ("TREE nowhere", "NOT_FOUND"),
    ] {
        wire.send(format!("{line}\n").as_bytes())?;
        wire.expect_err(code).map_err(|e| format!("{line}: {e}"))?;
    }
    Ok(())
}

/// Checks a copy of the fixture's tree at `copy`: every file byte-identical
/// with the server's time, the empty folder there, the link to a file as a
/// file, the link to a folder and the one outside absent.
fn copied(context: &ClientContext<'_>, copy: &Path) -> Check {
    let time = UNIX_EPOCH + Duration::from_secs(TREE_TIME);
    for name in TREE_FILES {
        let path = copy.join(name);
        saved(&path, context.fixture.bytes(&format!("{TREE}/{name}")))?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
        ensure(modified == time, || format!("{}: modified {modified:?}, the server's is {time:?}", path.display()))?;
    }
    saved(&copy.join("link-file"), context.fixture.bytes(&format!("{TREE}/docs/q3 report.txt")))?;
    let old = copy.join("docs/old");
    ensure(old.is_dir(), || format!("the empty folder {} was not made", old.display()))?;
    let link = std::fs::symlink_metadata(copy.join("link-file")).map_err(|e| e.to_string())?;
    ensure(link.is_file(), || "link-file arrived as something other than a file".into())?;
    absent(&copy.join("link-dir"))?;
    absent(&copy.join("link-out"))
}

/// `get -r ADDR tree -o DEST`: the tree arrives whole under DEST/tree.
pub(super) fn client_tree_copy(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let output = get(context, dir.path(), &["-r", TREE, "-o", "dest", "--create-dirs"])?;
    status(&output, 0)?;
    stderr_names(&output, &["link-dir"])?;
    copied(context, &dir.path().join("dest").join(TREE))
}

/// A copy cut short, run again with `--continue`: a file already there with
/// the server's size and time is not fetched again (its different bytes
/// stay), a `.part` is resumed, the rest arrives.
pub(super) fn client_tree_continue(context: &ClientContext<'_>) -> Check {
    let dir = scratch()?;
    let copy = dir.path().join(TREE);
    let report = "docs/q3 report.txt";
    let deep = "a/b/c/d/e/deep.txt";
    std::fs::create_dir_all(copy.join("docs")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(copy.join("a/b/c/d/e")).map_err(|e| e.to_string())?;
    // Same size and time as the server's, other bytes: proof that it was
    // left alone rather than fetched again.
    let theirs = context.fixture.bytes(&format!("{TREE}/{report}"));
    let mine = vec![b'#'; theirs.len()];
    std::fs::write(copy.join(report), &mine).map_err(|e| e.to_string())?;
    let time = UNIX_EPOCH + Duration::from_secs(TREE_TIME);
    std::fs::File::options()
        .write(true)
        .open(copy.join(report))
        .and_then(|file| file.set_modified(time))
        .map_err(|e| e.to_string())?;
    let head = &context.fixture.bytes(&format!("{TREE}/{deep}"))[..5];
    std::fs::write(copy.join(format!("{deep}.part")), head).map_err(|e| e.to_string())?;
    let output = get(context, dir.path(), &["-r", TREE, "-o", ".", "--continue"])?;
    status(&output, 0)?;
    let kept = std::fs::read(copy.join(report)).map_err(|e| e.to_string())?;
    ensure(kept == mine, || format!("{report}, already complete, was fetched again"))?;
    saved(&copy.join(deep), context.fixture.bytes(&format!("{TREE}/{deep}")))?;
    saved(&copy.join("ü/naïve café.txt"), context.fixture.bytes(&format!("{TREE}/ü/naïve café.txt")))
}

/// A scripted server greeting, then answering each request line from
/// `answers` (an unknown one with `ERR BAD_REQUEST`) until QUIT, on each
/// of `connections` connections in turn.
fn serving(connections: usize, answers: HashMap<String, Vec<u8>>) -> Result<Script, String> {
    answering(connections, move |line| answers.get(line).cloned())
}

/// [`serving`], each answer made by `answer` from the request line.
fn answering(connections: usize, answer: impl Fn(&str) -> Option<Vec<u8>> + Send + 'static) -> Result<Script, String> {
    Script::start_each(connections, move |wire: &mut Wire| {
        wire.send(b"FERRY/1 script\n")?;
        loop {
            let Ok(line) = wire.line() else { return Ok(()) };
            let line = String::from_utf8_lossy(&line).into_owned();
            if line == "QUIT" {
                return wire.send(b"BYE\n");
            }
            match answer(&line) {
                Some(answer) => wire.send(&answer)?,
                None => wire.send(format!("ERR BAD_REQUEST unknown command in {line:?}\n").as_bytes())?,
            }
        }
    })
}

/// A listing whose names try to lead out of DEST: each refused and named,
/// nothing written outside, the rest made, exit 1.
pub(super) fn client_tree_hostile(context: &ClientContext<'_>) -> Check {
    let listing = "f 1 0 ../escape\nf 1 0 sub/../../escape\nf 1 0 /abs-escape\nf 1 0 nul%00x\nf 1 0 a%2Fb\n\
d 0 0 fine\nd 0 0 fine\nf 1 0 ghost/x\n";
    let answers = HashMap::from([("TREE x".to_owned(), format!("OK {}\n{listing}", listing.len()).into_bytes())]);
    let script = serving(1, answers)?;
    let dir = scratch()?;
    let dest = dir.path().join("dest");
    std::fs::create_dir(&dest).map_err(|e| e.to_string())?;
    let output = get_from_addr(context, &script.addr.to_string(), dir.path(), &["-r", "x", "-o", "dest"])?;
    status(&output, 1)?;
    stderr_names(
        &output,
        &["../escape", "sub/../../escape", "/abs-escape", "nul%00x", "a%2Fb", "listed twice", "ghost/x"],
    )?;
    ensure(dest.join("x/fine").is_dir(), || "the one good folder of the listing was not made".into())?;
    for outside in ["escape", "dest/escape", "abs-escape", "dest/a", "dest/x/a"] {
        absent(&dir.path().join(outside))?;
    }
    absent(Path::new("/abs-escape"))?;
    script.verdict()
}

/// A TREE whose body never ends: the client stops at `--max-entries`,
/// says so, and writes nothing.
pub(super) fn client_tree_endless(context: &ClientContext<'_>) -> Check {
    let script = Script::start(|wire: &mut Wire| {
        wire.send(b"FERRY/1 script\n")?;
        expect_request(wire, "TREE x")?;
        wire.send(format!("OK {}\n", u64::MAX).as_bytes())?;
        // Until the client hangs up (a bounded number, in case it never does).
        for chunk in 0..10_000 {
            let lines: String = (0..100).map(|n| format!("f 1 0 n{chunk}-{n}\n")).collect();
            if wire.send(lines.as_bytes()).is_err() {
                return Ok(());
            }
        }
        Err("the client read a million entries with --max-entries 1000".into())
    })?;
    let dir = scratch()?;
    let started = SystemTime::now();
    let args = ["-r", "x", "-o", ".", "--max-entries", "1000"];
    let output = get_from_addr(context, &script.addr.to_string(), dir.path(), &args)?;
    status(&output, 1)?;
    stderr_names(&output, &["--max-entries"])?;
    absent(&dir.path().join("x"))?;
    let took = started.elapsed().unwrap_or_default();
    ensure(took < Duration::from_secs(10), || format!("stopping took {:.1} s", took.as_secs_f64()))?;
    script.verdict()
}

/// A server without TREE (it answers `BAD_REQUEST`): the client walks the
/// tree with LIST instead and copies it.
pub(super) fn client_tree_without_tree(context: &ClientContext<'_>) -> Check {
    let listing = |body: &str| format!("OK {}\n{body}", body.len()).into_bytes();
    let file = |bytes: &str| format!("OK {}\n{bytes}", bytes.len()).into_bytes();
    let answers = HashMap::from([
        ("LIST x".to_owned(), listing("f 3 a.txt\nd 0 sub\n")),
        ("LIST x/sub".to_owned(), listing("f 2 b.txt\nd 0 empty\n")),
        ("LIST x/sub/empty".to_owned(), listing("")),
        ("GET x/a.txt".to_owned(), file("aaa")),
        ("GET x/sub/b.txt".to_owned(), file("bb")),
    ]);
    // The TREE, a LIST for each folder, and the files' connection.
    let script = serving(5, answers)?;
    let dir = scratch()?;
    let output = get_from_addr(context, &script.addr.to_string(), dir.path(), &["-r", "x", "-o", ".", "-j", "1"])?;
    status(&output, 0)?;
    saved(&dir.path().join("x/a.txt"), b"aaa")?;
    saved(&dir.path().join("x/sub/b.txt"), b"bb")?;
    ensure(dir.path().join("x/sub/empty").is_dir(), || "the empty folder was not made".into())?;
    script.verdict()
}

/// A server without TREE whose LIST shows a folder inside itself without
/// end (as a link to a folder above it would look): the walk stops at
/// `--max-depth`, says so, and copies the rest; exit 1.
pub(super) fn client_tree_cycle(context: &ClientContext<'_>) -> Check {
    let listing = |body: &str| format!("OK {}\n{body}", body.len()).into_bytes();
    // The TREE, a LIST for each of four levels, and the file's connection.
    let script = answering(6, move |line| match line {
        "LIST x" => Some(listing("f 1 a\nd 0 loop\n")),
        "GET x/a" => Some(b"OK 1\na".to_vec()),
        _ if line.starts_with("LIST x/loop") => Some(listing("d 0 loop\n")),
        _ => None,
    })?;
    let dir = scratch()?;
    let args = ["-r", "x", "-o", ".", "-j", "1", "--max-depth", "4"];
    let output = get_from_addr(context, &script.addr.to_string(), dir.path(), &args)?;
    status(&output, 1)?;
    stderr_names(&output, &["loop/loop/loop/loop", "--max-depth"])?;
    saved(&dir.path().join("x/a"), b"a")?;
    ensure(dir.path().join("x/loop/loop/loop/loop").is_dir(), || "the folders above the bound were not made".into())?;
    absent(&dir.path().join("x/loop/loop/loop/loop/loop"))?;
    script.verdict()
}
