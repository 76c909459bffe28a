//! TREE bodies (SPEC.md §3 "TREE"): one `<kind> <size> <mtime> <path>\n`
//! line for every entry under a folder, at any depth, sorted so that a
//! folder's contents follow it; and the checks a client makes on every name
//! before it becomes a file on its disk.

use std::fmt;

use thiserror::Error;

use crate::line::parse_u64;
use crate::listing::{Lines, ListingError};
use crate::path::{decode_text, encode_name, escape};

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// A regular file, or a link to one inside the share (`f`).
    File,
    /// A folder (`d`), whose entries follow it.
    Directory,
    /// A link to a folder inside the share (`l`): listed, never descended,
    /// so no link can make a tree endless.
    Link,
}

/// One line of a TREE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// File, folder or link to a folder.
    pub kind: TreeKind,
    /// The file's size in bytes; 0 otherwise.
    pub size: u64,
    /// Last modification, in whole seconds since 1970 (0 for earlier).
    pub modified: u64,
    /// The path below the folder asked for, decoded: names joined by `/`,
    /// each one checked ([`check_name`]) when parsed.
    pub path: String,
}

impl TreeEntry {
    /// How many folders down it is: 1 for an entry of the folder asked for.
    pub fn depth(&self) -> usize {
        self.path.split('/').count()
    }
}

/// The longest line a TREE body may hold: a path that fits in a request
/// line, with its kind, size and time.
pub const MAX_TREE_LINE: usize = 8192;

/// The longest a path below the folder may be, encoded, for a server to
/// list it: with the folder's own path in front, it must still fit in a
/// request line (SPEC.md §1), or no client could ask for it.
pub const MAX_TREE_PATH: usize = 8000;

/// The bytes of a name's key in the order a TREE has: names compared one
/// by one, so a folder's entries come right after it, before any sibling
/// that sorts after it byte by byte (`a`, `a/z`, `a-b`). Joining the names
/// with NUL, which no name holds, gives that order to a plain byte sort.
pub fn tree_key(path: &str) -> String {
    path.replace('/', "\0")
}

/// Appends one entry's line of a TREE body.
pub fn encode_tree_entry(entry: &TreeEntry, out: &mut Vec<u8>) {
    let kind = match entry.kind {
        TreeKind::File => 'f',
        TreeKind::Directory => 'd',
        TreeKind::Link => 'l',
    };
    let size = if entry.kind == TreeKind::File { entry.size } else { 0 };
    out.extend_from_slice(format!("{kind} {size} {} ", entry.modified).as_bytes());
    for (n, name) in entry.path.split('/').enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(encode_name(name).as_bytes());
    }
    out.push(b'\n');
}

/// A name in a tree that a client will not use: why, and the name as it
/// can be shown (escaped).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{shown}: {reason}")]
pub struct BadName {
    /// The path as the server sent it, escaped for a terminal.
    pub shown: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks one name (a path component) before a client uses it on its
/// disk: not empty, not `.` or `..`, no `/` (a `%2F` decoded), no NUL,
/// no control character, no backslash (no request could name it), and at
/// most 255 bytes (no Linux file system holds more).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("an empty name (an absolute path, or a doubled /)"),
        "." | ".." => Err("a . or .. name, which would lead out of its folder"),
        _ if name.contains('/') => Err("a / inside one name"),
        _ if name.contains('\0') => Err("a NUL byte in a name"),
        _ if name.chars().any(char::is_control) => Err("a control character in a name"),
        _ if name.contains('\\') => Err("a backslash in a name"),
        _ if name.len() > 255 => Err("a name longer than 255 bytes"),
        _ => Ok(()),
    }
}

/// Parses one line of a TREE body (without its LF), the `number`th: a
/// malformed line is an error for the whole body; a name a client must not
/// use is an error for that entry alone.
fn parse_tree_entry(line: &[u8], number: usize) -> Result<Result<TreeEntry, BadName>, ListingError> {
    let fail = |reason| ListingError { line: number, reason };
    let mut tokens = line.splitn(4, |&b| b == b' ');
    let kind = match tokens.next() {
        Some(b"f") => TreeKind::File,
        Some(b"d") => TreeKind::Directory,
        Some(b"l") => TreeKind::Link,
        _ => return Err(fail("kind is not f, d or l")),
    };
    let size = tokens.next().and_then(parse_u64).ok_or_else(|| fail("bad size"))?;
    let modified = tokens.next().and_then(parse_u64).ok_or_else(|| fail("bad modification time"))?;
    let raw = tokens.next().filter(|n| !n.is_empty()).ok_or_else(|| fail("no path"))?;
    let shown = || escape(&String::from_utf8_lossy(raw));
    let mut names = Vec::new();
    // Split before decoding: a `%2F` is then a `/` inside one name, which
    // is refused, never a separator that would make a path of its own.
    for encoded in raw.split(|&b| b == b'/') {
        let Ok(name) = decode_text(encoded) else {
            return Ok(Err(BadName { shown: shown(), reason: "a malformed % escape, or not UTF-8" }));
        };
        if let Err(reason) = check_name(&name) {
            return Ok(Err(BadName { shown: shown(), reason }));
        }
        names.push(name);
    }
    Ok(Ok(TreeEntry { kind, size, modified, path: names.join("/") }))
}

/// A TREE body read as it arrives, in any pieces, each entry handed on as
/// soon as its line is whole: a client holds one line, however large the
/// tree.
pub struct TreeLines<'a> {
    lines: Lines,
    stopped: Option<String>,
    each: &'a mut dyn FnMut(Result<TreeEntry, BadName>) -> Result<(), String>,
}

impl fmt::Debug for TreeLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeLines").field("lines", &self.lines).field("stopped", &self.stopped).finish()
    }
}

impl<'a> TreeLines<'a> {
    /// Hands each entry (or why its name is refused) to `each`, until it
    /// says to stop (with why).
    pub fn new(each: &'a mut dyn FnMut(Result<TreeEntry, BadName>) -> Result<(), String>) -> TreeLines<'a> {
        TreeLines { lines: Lines::new(MAX_TREE_LINE, "a line longer than 8192 bytes"), stopped: None, each }
    }

    /// Why `each` stopped the listing, if it did: the rest is not wanted.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// The next bytes of the body. After a malformed line, or once `each`
    /// stopped it, the rest is ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        let (each, stopped) = (&mut self.each, &mut self.stopped);
        self.lines.feed(bytes, |line, number| match each(parse_tree_entry(line, number)?) {
            Ok(()) => Ok(true),
            Err(why) => {
                *stopped = Some(why);
                Ok(false)
            }
        });
    }

    /// The body is over (or stopped): whether it was well formed as far
    /// as it was read.
    pub fn finish(self) -> Result<(), ListingError> {
        self.lines.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Vec<Result<TreeEntry, BadName>>, ListingError> {
        let mut got = Vec::new();
        let mut each = |entry| {
            got.push(entry);
            Ok(())
        };
        let mut lines = TreeLines::new(&mut each);
        lines.feed(body);
        lines.finish()?;
        Ok(got)
    }

    fn entry(kind: TreeKind, size: u64, path: &str) -> TreeEntry {
        TreeEntry { kind, size, modified: 1_700_000_000, path: path.to_owned() }
    }

    #[test]
    fn entries_round_trip_with_their_names_encoded_one_by_one() {
        let entries = [
            entry(TreeKind::Directory, 0, "docs"),
            entry(TreeKind::File, 7, "docs/q3 report.txt"),
            entry(TreeKind::Link, 0, "docs/latest"),
            entry(TreeKind::File, 2, "café/é%"),
        ];
        let mut body = Vec::new();
        entries.iter().for_each(|e| encode_tree_entry(e, &mut body));
        assert!(body.starts_with(b"d 0 1700000000 docs\nf 7 1700000000 docs/q3%20report.txt\n"));
        assert!(body.ends_with(b"f 2 1700000000 caf%C3%A9/%C3%A9%25\n"));
        let parsed: Vec<TreeEntry> = parse(&body).expect("valid").into_iter().map(|e| e.expect("good name")).collect();
        assert_eq!(parsed, entries);
        // Pieces of any size give the same entries.
        for split in 0..body.len() {
            let mut got = Vec::new();
            let mut each = |entry| {
                got.push(entry);
                Ok(())
            };
            let mut lines = TreeLines::new(&mut each);
            lines.feed(&body[..split]);
            lines.feed(&body[split..]);
            lines.finish().expect("valid");
            assert_eq!(got.len(), entries.len(), "split at {split}");
        }
    }

    #[test]
    fn hostile_names_are_refused_one_by_one_and_the_rest_goes_on() {
        let body = b"f 1 0 ../escape\nf 1 0 sub/../../escape\nf 1 0 /etc/passwd\nf 1 0 a%2Fb\n\
f 1 0 nul%00x\nf 1 0 bell%07\nf 1 0 back%5Cslash\nf 1 0 ./x\nf 1 0 a//b\nf 1 0 %zz\nf 1 0 fine\n";
        let got = parse(body).expect("well-formed lines");
        assert_eq!(got.len(), 11);
        let refused: Vec<&BadName> = got.iter().filter_map(|e| e.as_ref().err()).collect();
        assert_eq!(refused.len(), 10, "{got:?}");
        assert_eq!(got[10], Ok(TreeEntry { kind: TreeKind::File, size: 1, modified: 0, path: "fine".into() }));
        assert_eq!(refused[3].reason, "a / inside one name");
        assert_eq!(refused[4].shown, "nul%00x", "shown escaped, never raw");
        let long = format!("f 1 0 {}\n", "n".repeat(256));
        assert_eq!(
            parse(long.as_bytes()).expect("well formed")[0].as_ref().err().map(|e| e.reason),
            Some("a name longer than 255 bytes")
        );
    }

    #[test]
    fn malformed_lines_end_the_body() {
        assert!(parse(b"x 1 0 a\n").is_err());
        assert!(parse(b"f one 0 a\n").is_err());
        assert!(parse(b"f 1 -5 a\n").is_err());
        assert!(parse(b"f 1 0\n").is_err());
        assert!(parse(b"f 1 0 a").is_err(), "no final LF");
        assert!(parse(&[b'f'; MAX_TREE_LINE + 1]).is_err(), "an endless line is refused, not held");
        assert_eq!(parse(b"").map(|v| v.len()), Ok(0));
    }

    #[test]
    fn a_listing_stopped_by_its_reader_reads_no_further() {
        let mut seen = 0;
        let mut each = |_| {
            seen += 1;
            if seen < 2 { Ok(()) } else { Err("enough".to_owned()) }
        };
        let mut lines = TreeLines::new(&mut each);
        lines.feed(b"f 1 0 a\nf 1 0 b\nf 1 0 c\nnot even a line");
        assert_eq!(lines.stopped(), Some("enough"));
        assert_eq!(lines.finish(), Ok(()));
        assert_eq!(seen, 2);
    }

    #[test]
    fn the_key_puts_a_folders_entries_right_after_it() {
        let mut paths = vec!["a-b", "a/z", "a", "b", "a/y/x", "a/y"];
        paths.sort_by_key(|p| tree_key(p));
        assert_eq!(paths, ["a", "a/y", "a/y/x", "a/z", "a-b", "b"]);
    }
}
