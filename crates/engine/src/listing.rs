//! LIST bodies (SPEC.md §3 "LIST"): one `<kind> <size> <name>\n` line per
//! entry, names percent-encoded, sorted by the decoded name's bytes.

use thiserror::Error;

use crate::line::parse_u64;
use crate::path::{decode_text, encode_name};

/// What an entry is. Symlinks are listed as what they point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (`f`).
    File,
    /// A directory (`d`, size 0).
    Directory,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: Kind,
    /// The file's size in bytes; 0 for a directory.
    pub size: u64,
    /// The entry's name, decoded.
    pub name: String,
}

/// Appends a LIST body for `entries` to `out`, sorting them as SPEC.md
/// requires so that every implementation lists a folder identically.
pub fn encode_listing(mut entries: Vec<Entry>, out: &mut Vec<u8>) {
    sort_listing(&mut entries);
    for entry in &entries {
        encode_entry(entry, out);
    }
}

/// Puts entries in the order a listing has them: by name, byte by byte.
pub fn sort_listing(entries: &mut [Entry]) {
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
}

/// Appends one entry's line of a listing, for a server that writes a
/// listing piece by piece ([`encode_listing`] writes it whole).
pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    let (kind, size) = match entry.kind {
        Kind::File => ('f', entry.size),
        Kind::Directory => ('d', 0),
    };
    out.extend_from_slice(format!("{kind} {size} {}\n", encode_name(&entry.name)).as_bytes());
}

/// A LIST body that does not follow SPEC.md.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed listing line {line}: {reason}")]
pub struct ListingError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a LIST body.
pub fn parse_listing(body: &[u8]) -> Result<Vec<Entry>, ListingError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = body.strip_suffix(b"\n") else {
        return Err(ListingError { line: body.split(|&b| b == b'\n').count(), reason: "no final LF" });
    };
    body.split(|&b| b == b'\n').enumerate().map(|(index, line)| parse_entry(line, index + 1)).collect()
}

/// Parses one line of a listing (without its LF), the `number`th.
fn parse_entry(line: &[u8], number: usize) -> Result<Entry, ListingError> {
    let fail = |reason| ListingError { line: number, reason };
    let mut tokens = line.splitn(3, |&b| b == b' ');
    let kind = match tokens.next() {
        Some(b"f") => Kind::File,
        Some(b"d") => Kind::Directory,
        _ => return Err(fail("kind is not f or d")),
    };
    let size = tokens.next().and_then(parse_u64).ok_or_else(|| fail("bad size"))?;
    let name = tokens.next().filter(|n| !n.is_empty()).ok_or_else(|| fail("no name"))?;
    let name = decode_text(name).map_err(|_| fail("name is not a valid encoding"))?;
    Ok(Entry { kind, size, name })
}

/// The longest line a listing may hold: a name of 255 bytes, each encoded
/// as `%XX`, with its kind and size, fits many times over.
pub const MAX_LISTING_LINE: usize = 4096;

/// A listing read as it arrives, in any pieces, each entry handed on as
/// soon as its line is whole: a client holds one line, however long the
/// listing ([`parse_listing`] takes it whole).
pub struct ListingLines<'a> {
    lines: Lines,
    each: &'a mut dyn FnMut(Entry),
}

impl std::fmt::Debug for ListingLines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingLines").field("lines", &self.lines).finish()
    }
}

impl<'a> ListingLines<'a> {
    /// Hands each entry to `each`.
    pub fn new(each: &'a mut dyn FnMut(Entry)) -> ListingLines<'a> {
        ListingLines { lines: Lines::new(MAX_LISTING_LINE, "a line longer than 4096 bytes"), each }
    }

    /// The next bytes of the listing. After a malformed line, the rest is
    /// ignored and [`ListingLines::finish`] says what was wrong.
    pub fn feed(&mut self, bytes: &[u8]) {
        let each = &mut self.each;
        self.lines.feed(bytes, |line, number| {
            each(parse_entry(line, number)?);
            Ok(true)
        });
    }

    /// The listing is over: whether it was well formed to its end.
    pub fn finish(self) -> Result<(), ListingError> {
        self.lines.finish()
    }
}

/// A body of lines read in pieces of any size, one line held at a time,
/// each whole line handed on with its number: what a LIST body and a TREE
/// body are both read with.
#[derive(Debug)]
pub(crate) struct Lines {
    partial: Vec<u8>,
    count: usize,
    most: usize,
    too_long: &'static str,
    failed: Option<ListingError>,
    stopped: bool,
}

impl Lines {
    /// Lines of at most `most` bytes, LF apart; a longer one is refused,
    /// saying `too_long`.
    pub(crate) fn new(most: usize, too_long: &'static str) -> Lines {
        Lines { partial: Vec::new(), count: 0, most, too_long, failed: None, stopped: false }
    }

    /// Hands each line completed by `bytes` to `whole`, which says whether
    /// to go on (`Ok(false)`: the reader has seen enough) or why the line
    /// is malformed; either ends the reading, and the rest is ignored.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut whole: impl FnMut(&[u8], usize) -> Result<bool, ListingError>) {
        while self.failed.is_none() && !self.stopped && !bytes.is_empty() {
            let (line, rest, ends) = match bytes.iter().position(|&b| b == b'\n') {
                Some(lf) => (&bytes[..lf], &bytes[lf + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if self.partial.len() + line.len() > self.most {
                self.failed = Some(ListingError { line: self.count + 1, reason: self.too_long });
                return;
            }
            self.partial.extend_from_slice(line);
            if ends {
                self.count += 1;
                match whole(&self.partial, self.count) {
                    Ok(go_on) => self.stopped = !go_on,
                    Err(error) => self.failed = Some(error),
                }
                self.partial.clear();
            }
        }
    }

    /// The body is over (or was stopped): whether it was well formed as
    /// far as it was read.
    pub(crate) fn finish(self) -> Result<(), ListingError> {
        match self.failed {
            Some(error) => Err(error),
            None if self.stopped => Ok(()),
            None if !self.partial.is_empty() => Err(ListingError { line: self.count + 1, reason: "no final LF" }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, size: u64, name: &str) -> Entry {
        Entry { kind, size, name: name.into() }
    }

    #[test]
    fn golden_listing() {
        let mut out = Vec::new();
        encode_listing(
            vec![
                entry(Kind::File, 5, "b b"),
                entry(Kind::Directory, 99, "a"),
                entry(Kind::File, 0, "Z"),
                entry(Kind::File, 1, "é"),
            ],
            &mut out,
        );
        assert_eq!(out, b"f 0 Z\nd 0 a\nf 5 b%20b\nf 1 %C3%A9\n");
        let parsed = parse_listing(&out).expect("valid");
        assert_eq!(parsed[1], entry(Kind::Directory, 0, "a"));
        assert_eq!(parsed[3].name, "é");
    }

    #[test]
    fn a_listing_read_in_pieces_gives_the_same_entries_holding_one_line() {
        let body = b"f 0 Z\nd 0 a\nf 5 b%20b\nf 1 %C3%A9\n";
        let whole = parse_listing(body).expect("valid");
        for split in 0..body.len() {
            let mut got = Vec::new();
            let mut each = |entry| got.push(entry);
            let mut lines = ListingLines::new(&mut each);
            lines.feed(&body[..split]);
            lines.feed(&body[split..]);
            lines.finish().expect("valid");
            assert_eq!(got, whole, "split at {split}");
        }
        let mut each = |_| {};
        let mut lines = ListingLines::new(&mut each);
        lines.feed(&[b'a'; MAX_LISTING_LINE + 1]);
        assert!(lines.finish().is_err(), "an endless line is refused, not held");
        let mut each = |_| {};
        let mut lines = ListingLines::new(&mut each);
        lines.feed(b"f 1 a\nf 2");
        assert_eq!(lines.finish(), Err(ListingError { line: 2, reason: "no final LF" }));
    }

    #[test]
    fn malformed_listings() {
        assert_eq!(parse_listing(b""), Ok(Vec::new()));
        assert!(parse_listing(b"f 1 a").is_err());
        assert!(parse_listing(b"x 1 a\n").is_err());
        assert!(parse_listing(b"f one a\n").is_err());
        assert!(parse_listing(b"f 1\n").is_err());
        assert!(parse_listing(b"f 1 %zz\n").is_err());
    }
}
