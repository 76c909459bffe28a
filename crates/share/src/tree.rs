//! The answer to TREE: every entry under a folder, at any depth, walked
//! beneath the root and sorted through the same bounded spool as a LIST.

use ferry_engine::{ErrorCode, Refusal, TreeEntry, TreeKind, WirePath, encode_path, encode_tree_entry, tree_key};

use crate::root::refusal;
use crate::spool::Listing;
use crate::{Halt, LIST_CHUNK, Reply, Root, Work};

/// The most entries one TREE lists; past it, `ERR TOO_LARGE`. A million
/// lines is some 100 MB of answer, sent from a temporary file, never held.
pub const TREE_ENTRIES: usize = 1_000_000;

/// How many folders deep a TREE goes; a folder deeper than this makes it
/// `ERR TOO_LARGE` (a bind mount of a folder inside itself would otherwise
/// make the walk endless; symlinks are never descended).
pub const TREE_DEPTH: usize = 256;

impl Root {
    pub(crate) fn tree(&self, path: &WirePath, work: &Work<'_>) -> Result<Reply, Halt> {
        work.check("TREE", path)?;
        let relative = path.to_relative();
        let metadata = self.dir.metadata(&relative).map_err(|e| refusal(path, &e))?;
        if !metadata.is_dir() {
            return Err(Refusal::new(ErrorCode::NotADirectory, format!("{path} is not a directory")).into());
        }
        // What is below must be nameable in a request with `path` in front.
        let room = ferry_engine::MAX_TREE_PATH.saturating_sub(path.encoded().len() + 1);
        let too_large = |what: String| {
            Halt::from(Refusal::new(
                ErrorCode::TooLarge,
                format!("{path} holds {what}; ask for its folders one by one"),
            ))
        };
        let mut listing = Listing::new("TREE", path);
        let (mut pending, mut read, mut listed) = (vec![String::new()], 0usize, 0usize);
        while let Some(folder) = pending.pop() {
            let depth = if folder.is_empty() { 0 } else { folder.split('/').count() };
            // A folder that cannot be opened (permission denied, replaced
            // meanwhile) is listed, with nothing under it: a LIST of it says why.
            let Ok(dir) = self.dir.open_dir(relative.join(&folder)) else { continue };
            let Ok(entries) = dir.entries() else { continue };
            for entry in entries {
                read += 1;
                if read.is_multiple_of(LIST_CHUNK) {
                    work.check("TREE", path)?;
                }
                let Ok(entry) = entry else { continue };
                // As in a LIST: names that are not UTF-8 cannot be asked
                // for, nor names with a backslash (SPEC.md §2).
                let Ok(name) = entry.file_name().into_string() else { continue };
                if name.contains('\\') {
                    continue;
                }
                let below = if folder.is_empty() { name } else { format!("{folder}/{name}") };
                if encode_path(&below).len() > room {
                    continue;
                }
                let Ok(file_type) = entry.file_type() else { continue };
                let (kind, found) = if file_type.is_symlink() {
                    // Resolved from the root, as every path is: a link that
                    // leads outside, dangles or is absolute is left out.
                    match self.dir.metadata(relative.join(&below)) {
                        Ok(target) if target.is_file() => (TreeKind::File, target),
                        Ok(target) if target.is_dir() => (TreeKind::Link, target),
                        _ => continue,
                    }
                } else if file_type.is_dir() || file_type.is_file() {
                    let Ok(found) = entry.metadata() else { continue };
                    let kind = if file_type.is_dir() { TreeKind::Directory } else { TreeKind::File };
                    (kind, found)
                } else {
                    continue;
                };
                listed += 1;
                if listed > TREE_ENTRIES {
                    return Err(too_large(format!("more than {TREE_ENTRIES} entries")));
                }
                if kind == TreeKind::Directory {
                    if depth + 1 >= TREE_DEPTH {
                        return Err(too_large(format!("folders more than {TREE_DEPTH} deep")));
                    }
                    pending.push(below.clone());
                }
                let modified = found
                    .modified()
                    .ok()
                    .and_then(|time| time.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |since| since.as_secs());
                // The encoder writes 0 for anything but a file.
                let entry = TreeEntry { kind, size: found.len(), modified, path: below };
                let mut line = Vec::with_capacity(entry.path.len() + 32);
                encode_tree_entry(&entry, &mut line);
                listing.push(tree_key(&entry.path), line)?;
            }
        }
        listing.answer(&self.listings, work)
    }
}
