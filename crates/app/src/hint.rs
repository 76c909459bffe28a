//! What to try next when a server refuses a path: the name the user
//! probably meant (from the parent folder's listing, one edit away, or
//! the same but for case), `ls` for a folder that `get` was given, `get`
//! for a file that `ls` was given.

use ferry_engine::client::{ClientError, Outcomes};
use ferry_engine::show::escaped;
use ferry_engine::{Entry, ErrorCode, Kind, WirePath};

use crate::save::Item;

/// The most names of one folder looked through for a suggestion: a hostile
/// or huge listing costs a bounded scan.
pub const MOST_NAMES: usize = 100_000;

/// The hint for `error`, a refusal of `path` by the server at `addr`, if
/// it has one that needs no more from the server: `get` of a folder, `ls`
/// of a file.
pub fn for_refusal(binary: &str, addr: &str, error: &ClientError) -> Option<String> {
    let ClientError::Refused { path, refusal } = error else { return None };
    let path = escaped(path);
    match refusal.code {
        ErrorCode::NotAFile => Some(format!(
            "{path} is a folder; copy it with: {binary} get -r {addr} {path}, or list it with: {binary} ls {addr} {path}"
        )),
        ErrorCode::NotADirectory => Some(format!("{path} is a file; fetch it with: {binary} get {addr} {path}")),
        _ => None,
    }
}

/// Whether `error` says the server has nothing at its path.
pub fn not_found(error: &ClientError) -> Option<&str> {
    match error {
        ClientError::Refused { path, refusal } if refusal.code == ErrorCode::NotFound => Some(path),
        _ => None,
    }
}

/// The folder a missing `path` would be in, to list for a suggestion.
pub fn parent(path: &str) -> Option<WirePath> {
    let trimmed = path.trim_end_matches('/');
    let parent = trimmed.rsplit_once('/').map_or("/", |(parent, _)| if parent.is_empty() { "/" } else { parent });
    WirePath::new(parent).ok()
}

/// Collects a listing's names, as far as [`MOST_NAMES`].
#[derive(Debug, Default)]
pub struct Names {
    /// Each entry's name, and whether it is a folder.
    pub names: Vec<(String, bool)>,
}

impl Outcomes<Item> for Names {
    fn record(&mut self, _: &Item, _: Result<Option<[u8; 32]>, ClientError>) {}

    fn listed(&mut self, entry: Entry) {
        if self.names.len() < MOST_NAMES {
            self.names.push((entry.name, entry.kind == Kind::Directory));
        }
    }
}

/// The name in `names` that `missing` most likely meant: the same but for
/// case, or else the single closest within one edit per four characters
/// (at least one). `None` when nothing is that close, or two are equally.
pub fn closest<'a>(missing: &str, names: &'a [(String, bool)]) -> Option<&'a str> {
    if let Some((name, _)) = names.iter().find(|(name, _)| name.eq_ignore_ascii_case(missing)) {
        return Some(name);
    }
    let most = (missing.chars().count() / 4).max(1);
    let mut best: Option<(usize, &str)> = None;
    let mut tied = false;
    for (name, _) in names {
        let distance = edits(missing, name, most);
        match best {
            _ if distance > most => {}
            Some((shortest, _)) if distance > shortest => {}
            Some((shortest, _)) if distance == shortest => tied = true,
            _ => {
                best = Some((distance, name));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, name)| name)
}

/// The edits (insert, delete, replace a character) from `a` to `b`, or a
/// number above `most` as soon as it is clear that it is more.
fn edits(a: &str, b: &str, most: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > most {
        return most + 1;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            row[j + 1] = (previous[j] + usize::from(ca != cb)).min(previous[j + 1] + 1).min(row[j] + 1);
        }
        if row.iter().min().is_some_and(|least| *least > most) {
            return most + 1;
        }
        previous = row;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<(String, bool)> {
        list.iter().map(|name| ((*name).to_owned(), false)).collect()
    }

    #[test]
    fn a_typo_one_edit_away_or_a_case_slip_is_suggested() {
        let here = names(&["report.pdf", "notes.txt", "README.md"]);
        assert_eq!(closest("reprot.pdf", &here), Some("report.pdf"), "a swap is two edits, allowed in 10 characters");
        assert_eq!(closest("rpt.pdf", &here), None, "three edits in 7 characters is another name");
        assert_eq!(closest("repor.pdf", &here), Some("report.pdf"));
        assert_eq!(closest("readme.md", &here), Some("README.md"));
        assert_eq!(closest("nothing-like-it", &here), None);
        assert_eq!(closest("a", &names(&["b", "c"])), None, "two equally close: no guess");
    }

    #[test]
    fn a_missing_path_is_looked_for_in_its_parent() {
        assert_eq!(parent("docs/a.pdf").map(|p| p.as_str().to_owned()), Some("docs".to_owned()));
        assert_eq!(parent("a.pdf").map(|p| p.as_str().to_owned()), Some("/".to_owned()));
    }
}
