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
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| {
            let fail = |reason| ListingError { line: index + 1, reason };
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
        })
        .collect()
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
    fn malformed_listings() {
        assert_eq!(parse_listing(b""), Ok(Vec::new()));
        assert!(parse_listing(b"f 1 a").is_err());
        assert!(parse_listing(b"x 1 a\n").is_err());
        assert!(parse_listing(b"f one a\n").is_err());
        assert!(parse_listing(b"f 1\n").is_err());
        assert!(parse_listing(b"f 1 %zz\n").is_err());
    }
}
